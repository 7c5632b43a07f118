"""`python -m katas`: the learner's and maintainer's command line."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from . import bench, hints, selfcheck
from .manifest import PROJECT_ROOT, ManifestError, UnknownExercise, load

EXIT_USAGE = 2


def _error(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return EXIT_USAGE


def _cmd_hint(args: argparse.Namespace) -> int:
    manifest = load(args.root)
    try:
        exercise = manifest.exercise(args.exercise)
    except UnknownExercise as err:
        if err.suggestions:
            return _error(
                f"'{args.exercise}' matches no single exercise; did you mean: {', '.join(err.suggestions)}?"
            )
        return _error(
            f"no exercise named '{args.exercise}'; exercises are named KATA/FUNCTION, "
            "e.g. 01_autograd/grad_at (all are listed in katas/manifest.toml)"
        )
    total = len(exercise.hints)
    for number, text in hints.next_hints(args.root, exercise, show_all=args.all):
        print(f"{exercise.qualname} hint {number}/{total}: {text}")
    if not args.all and number == total:
        print(f"That was the last hint. The lesson is in katas/{exercise.kata}/README.md.")
    return 0


def _cmd_check(args: argparse.Namespace) -> int:
    found = selfcheck.problems(args.root)
    for problem in found:
        print(problem)
    if found:
        print(f"{len(found)} problem(s) found.", file=sys.stderr)
        return 1
    katas = load(args.root).katas
    print(
        f"OK: {len(katas)} kata(s), {sum(len(k.exercises) for k in katas)} exercises; "
        "the manifest matches the files."
    )
    return 0


def _cmd_bench(args: argparse.Namespace) -> int:
    return bench.run(args.root, args.kata, args.runs, args.solutions)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m katas", description="torch-katas: learn PyTorch by practice."
    )
    parser.add_argument("--root", type=Path, default=PROJECT_ROOT, help=argparse.SUPPRESS)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    hint = commands.add_parser("hint", help="show the next hint for an exercise (KATA/FUNCTION or FUNCTION)")
    hint.add_argument("exercise")
    hint.add_argument("--all", action="store_true", help="show every hint at once")
    hint.set_defaults(func=_cmd_hint)

    check = commands.add_parser("check", help="(maintainers) validate the manifest against the kata files")
    check.set_defaults(func=_cmd_check)

    bench_cmd = commands.add_parser("bench", help="(maintainers) time a kata run against importing torch")
    bench_cmd.add_argument("--kata", default="01_autograd")
    bench_cmd.add_argument("--runs", type=int, default=7)
    bench_cmd.add_argument("--solutions", action="store_true", help="time the run against solutions/")
    bench_cmd.set_defaults(func=_cmd_bench)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except ManifestError as err:
        return _error(str(err))
