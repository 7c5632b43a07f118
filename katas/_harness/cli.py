"""`python -m katas`: the learner's and maintainer's command line."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from . import bench, hints, pristine, selfcheck
from . import messages as msg
from .manifest import ManifestError, UnknownExercise, find_tree, load
from .version import version

EXIT_USAGE = 2


def _error(message: str) -> int:
    print(f"{msg.ERROR_PREFIX}{message}", file=sys.stderr)
    return EXIT_USAGE


def _unknown_exercise(name: str, err: UnknownExercise) -> int:
    if err.suggestions:
        return _error(msg.HINT_AMBIGUOUS.format(name=name, names=", ".join(err.suggestions)))
    return _error(msg.HINT_UNKNOWN.format(name=name))


def _cmd_hint(args: argparse.Namespace) -> int:
    from .listing import first_unfinished

    manifest = load(args.root)
    try:
        kata, exercise = manifest.target(args.exercise)
    except UnknownExercise as err:
        return _unknown_exercise(args.exercise, err)
    if exercise is None:  # a kata (or its file): the exercise it is at
        exercise = first_unfinished(manifest, kata)
        if exercise is None:
            print(msg.HINT_KATA_DONE.format(kata=kata.name))
            return 0
    texts = hints.texts(exercise)
    total = len(texts)
    for number, text in hints.next_hints(args.root, exercise, show_all=args.all):
        print(msg.HINT_LINE.format(exercise=exercise.qualname, number=number, total=total, text=text))
    if not args.all and number == total:
        print(msg.HINT_LAST.format(kata=exercise.kata))
    return 0


def _cmd_solution(args: argparse.Namespace) -> int:
    from . import solution

    manifest = load(args.root)
    try:
        exercise = manifest.exercise(args.exercise)
    except UnknownExercise as err:
        return _unknown_exercise(args.exercise, err)
    code, lines = solution.show(manifest, exercise)
    for line in lines:
        print(line)
    return code


def _cmd_guided(args: argparse.Namespace) -> int:
    """No command: watch the first unfinished exercise, as rustlings does, after saying how to leave."""
    print(msg.GUIDED_INTRO, flush=True)
    args.kata, args.timeout, args.no_clear, args.once, args.guided = None, 30.0, False, False, True
    return _cmd_watch(args)


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


def _cmd_list(args: argparse.Namespace) -> int:
    from .listing import gather, render

    manifest = load(args.root)
    for line in render(manifest, gather(manifest, rerun=args.rerun)):
        print(line)
    return 0


def _cmd_reset(args: argparse.Namespace) -> int:
    from . import reset

    def confirm(question: str) -> bool:
        if not sys.stdin.isatty():
            raise reset.ResetError(msg.RESET_NEEDS_CONFIRMATION)
        return input(question).strip().lower() in ("y", "yes")

    try:
        lines = reset.run(load(args.root), args.target, yes=args.yes, confirm=confirm)
    except reset.ResetError as err:
        return _error(str(err))
    for line in lines:
        print(line)
    return 0


def _cmd_watch(args: argparse.Namespace) -> int:
    from .watch import Watcher, should_clear

    manifest = load(args.root)
    kata = None
    if args.kata is not None:
        name = args.kata.removeprefix("katas/").rstrip("/")
        try:
            kata = manifest.kata(name)
        except UnknownExercise as err:
            close = (
                msg.DID_YOU_MEAN_SUFFIX.format(names=", ".join(err.suggestions)) if err.suggestions else ""
            )
            names = ", ".join(k.name for k in manifest.katas)
            return _error(msg.WATCH_UNKNOWN_KATA.format(name=args.kata, close=close, names=names))
    clear = should_clear(sys.stdout) and not args.no_clear
    note = msg.GUIDED_INTRO if getattr(args, "guided", False) else ""  # kept on screen when it clears
    return Watcher(manifest, kata, clear=clear, timeout=args.timeout, note=note).run(once=args.once)


def _cmd_review(args: argparse.Namespace) -> int:
    from . import review

    manifest = load(args.root)
    try:
        kata = None if args.kata is None else manifest.kata(args.kata.removeprefix("katas/").rstrip("/"))
    except UnknownExercise:
        names = ", ".join(k.name for k in manifest.katas)
        return _error(review.text("unknown_kata").format(name=args.kata, names=names))
    print("\n".join(review.run(manifest, kata)))
    return 0  # advice, never a grade


def _cmd_grade(args: argparse.Namespace) -> int:
    from .grading import classroom  # a class folder (a sub-folder or .zip per student) goes its own way

    try:
        if classroom.is_class_folder(load(args.root), Path(args.submission), args):
            return classroom.main(load(args.root), args)
    except classroom.ClassError as err:
        return _error(str(err))

    from .grading import grade_command, report
    from .grading.run import Limits

    formats = [f for value in args.format or ["markdown"] for f in value.split(",") if f]
    unknown = sorted(set(formats) - set(report.FORMATS))
    if unknown:
        return _error(f"unknown format {', '.join(unknown)}; choose from {', '.join(report.FORMATS)}")
    outs = args.out or [report.STDOUT] * (len(formats) == 1)
    if len(outs) != len(formats) or outs.count(report.STDOUT) > 1:
        return _error("give one --out FILE per --format, in the same order (at most one --out -)")
    try:
        fail_under = None if args.fail_under is None else grade_command.Threshold.parse(args.fail_under)
    except ValueError as err:
        return _error(str(err))
    from .grading.tree import locate

    manifest = load(args.root)
    submission = Path(args.submission).resolve()
    if not any(locate(kata, submission).is_file() for kata in manifest.katas):
        return _error(
            f"{args.submission} holds no kata file; pass the root of a torch-katas project "
            "(with katas/) or a folder of kata files such as autograd_basics.py"
        )
    limits = Limits(
        kata_timeout=args.kata_timeout,
        test_timeout=args.test_timeout,
        memory_mb=args.memory_mb,
        jobs=getattr(args, "jobs", None) or Limits.jobs,  # --jobs comes with the class options
    )
    reports = list(zip(formats, outs, strict=True))
    return grade_command.run(
        manifest, submission, limits, reports, deadline=args.deadline, fail_under=fail_under
    )


def _cmd_export(args: argparse.Namespace) -> int:
    from .grading.export import ExportError, export

    try:
        files = export(load(args.root), Path(args.dest))
    except ExportError as err:
        return _error(str(err))
    print(f"exported {len(files)} files to {args.dest}: no solutions, with .github/workflows/grade.yml")
    return 0


def _cmd_gradescope(args: argparse.Namespace) -> int:
    from . import pins
    from .grading.bundle import build
    from .grading.export import ExportError
    from .grading.wheels import has_wheel

    torch_version = args.torch or pins.get("pinned.torch")
    python_version = args.python or pins.get("pinned.python")
    if args.torch or args.python:  # the pinned pair is checked by .ci/pins-check; another is asked now
        answer = has_wheel(torch_version, python_version)
        if answer is False:
            return _error(
                f"torch {torch_version} has no CPU wheel for Python {python_version} on PyTorch's index, "
                "so Gradescope's set-up would fail; choose another --torch or --python"
            )
        if answer is None:
            print(
                f"warning: PyTorch's index could not be asked whether torch {torch_version} has a wheel "
                f"for Python {python_version}; the bundle is written unchecked",
                file=sys.stderr,
            )
    try:
        files = build(
            load(args.root),
            Path(args.dest),
            torch_version,
            python_version=python_version,
            timeout_minutes=args.timeout_minutes,
        )
    except ExportError as err:
        return _error(str(err))
    print(
        f"wrote {args.dest} ({len(files)} files, torch {torch_version} on Python {python_version}): "
        "upload it as the autograder of a Gradescope assignment"
    )
    return 0


def _cmd_catalog(args: argparse.Namespace) -> int:
    from . import catalogs

    for line in catalogs.update(args.domains, args.root):
        print(line)
    return 0


def _cmd_plot(args: argparse.Namespace) -> int:
    from . import plot

    manifest = load(args.root)
    try:
        kata = manifest.kata(args.kata.removeprefix("katas/").rstrip("/"))
    except UnknownExercise:
        return _error(f"unknown kata {args.kata}; plot draws {', '.join(plot.RECIPES)}")
    return plot.main(manifest, kata, args.out, solutions=args.solutions)


def _cmd_snapshot(args: argparse.Namespace) -> int:
    written = pristine.write(load(args.root))
    print(f"saved the pristine copy of {len(written)} stub file(s) for `reset`")
    return 0


def _cmd_notebooks(args: argparse.Namespace) -> int:
    from . import notebooks

    manifest = load(args.root)
    if args.check:
        stale = notebooks.stale(manifest)
        for path in stale:
            print(f"{path}: out of date; run `python -m katas notebooks`")
        return 1 if stale else 0
    written = notebooks.write(manifest, args.out)
    made = len(notebooks.ready(manifest))
    where = f" to {args.out}" if args.out else ""
    print(f"{made} kata notebook(s), {len(written)} file(s) written{where}")
    return 0


def _cmd_bench(args: argparse.Namespace) -> int:
    code = 0
    if args.only in (None, "kata"):
        code |= bench.run(args.root, args.kata, args.runs, args.solutions)
    if args.only in (None, "tools"):
        import tempfile

        from . import bench_tools

        with tempfile.TemporaryDirectory(prefix="katas-bench-") as workdir:
            code |= bench_tools.run(args.root, args.kata, args.saves, args.runs, Path(workdir))
    if args.only == "grade":  # minutes: only when asked for
        import tempfile

        from . import bench_grade

        with tempfile.TemporaryDirectory(prefix="katas-bench-") as workdir:
            code |= bench_grade.run(args.root, min(args.runs, 3), Path(workdir))
    if args.only == "set":  # the whole set against the solutions, then each kata: a minute or two
        from . import bench_set

        code |= bench_set.run(args.root, min(args.runs, 3))
    return code


def build_parser() -> argparse.ArgumentParser:
    prog = "katas" if Path(sys.argv[0]).stem == "katas" else "python -m katas"  # the console script
    parser = argparse.ArgumentParser(
        prog=prog,
        description="torch-katas: learn PyTorch by practice. Without a command: the guided loop "
        "(watch on the first unfinished exercise).",
    )
    parser.add_argument("--version", action="version", version=f"torch-katas {version()}")
    parser.add_argument("--root", type=Path, help=argparse.SUPPRESS)  # default: find_tree()
    parser.set_defaults(func=_cmd_guided)  # no command: the guided loop
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    parser.set_defaults(commands=commands)  # main() reports a stray argument with its command's usage

    def add_command(name: str, help: str) -> argparse.ArgumentParser:
        """A command whose --help page begins with what it does."""
        return commands.add_parser(name, help=help, description=help)

    hint = add_command("hint", help="show the next hint for an exercise (KATA/FUNCTION or FUNCTION)")
    hint.add_argument(
        "exercise", metavar="EXERCISE", help="KATA/FUNCTION, FUNCTION, or a kata (its current exercise)"
    )
    hint.add_argument("--all", action="store_true", help="show every hint at once")
    hint.set_defaults(func=_cmd_hint)

    solution_cmd = add_command(
        "solution", help="the reference solution of an exercise beside your code, once your code passes"
    )
    solution_cmd.add_argument("exercise", metavar="EXERCISE", help="KATA/FUNCTION, or FUNCTION where unique")
    solution_cmd.set_defaults(func=_cmd_solution)

    list_cmd = add_command("list", help="every kata and exercise: done, failing or todo")
    list_cmd.add_argument("--rerun", action="store_true", help="run every changed kata's tests again")
    list_cmd.set_defaults(func=_cmd_list)

    watch = add_command("watch", help="re-run a kata on every save (default: the first unfinished)")
    watch.add_argument("kata", nargs="?", metavar="KATA", help="default: the first unfinished kata")
    watch.add_argument(
        "--timeout", type=float, default=30.0, help="stop a run after this many seconds (default: 30)"
    )
    watch.add_argument("--no-clear", action="store_true", help="do not clear the screen between runs")
    watch.add_argument("--once", action="store_true", help="run once, show the result and exit")
    watch.set_defaults(func=_cmd_watch)

    reset_cmd = add_command("reset", help="restore the untouched stub of a kata or one exercise (asks first)")
    reset_cmd.add_argument(
        "target",
        metavar="KATA_OR_EXERCISE",
        help="a kata (or its file), KATA/FUNCTION, or a unique FUNCTION",
    )
    reset_cmd.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    reset_cmd.set_defaults(func=_cmd_reset)

    review_cmd = add_command("review", help="advice on code that passes (default: every kata)")
    review_cmd.add_argument("kata", nargs="?", metavar="KATA", help="default: every kata")
    review_cmd.set_defaults(func=_cmd_review)

    check = add_command("check", help="(maintainers) validate the manifest against the kata files")
    check.set_defaults(func=_cmd_check)

    grade_cmd = add_command("grade", help="grade a submission (default: this project)")
    grade_cmd.add_argument(
        "submission",
        nargs="?",
        default=".",
        metavar="SUBMISSION_DIR",
        help="a learner's copy, or a folder of students' copies (default: the current folder)",
    )
    grade_cmd.add_argument(
        "--format", action="append", help="json, gradescope, junit or markdown; repeat or comma-separate"
    )
    grade_cmd.add_argument(
        "--out", action="append", metavar="FILE", help="one per --format, in order; - is standard output"
    )
    grade_cmd.add_argument(
        "--deadline", type=float, metavar="SECONDS", help="stop grading after this many seconds in all"
    )
    grade_cmd.add_argument(
        "--fail-under",
        metavar="SCORE",
        help="exit 1 if the total is below SCORE: points (40) or a percentage (80%%); default: exit 0",
    )
    grade_cmd.add_argument(
        "--kata-timeout", type=float, default=300.0, help="seconds of wall clock per kata (default: 300)"
    )
    grade_cmd.add_argument("--test-timeout", type=int, default=60, help="seconds per test (default: 60)")
    grade_cmd.add_argument(
        "--memory-mb",
        type=int,
        default=4096,
        help="memory per kata: its process tree (cgroup), and each process's address space beyond "
        "what Python and torch map at import (default: 4096)",
    )
    class_options = grade_cmd.add_argument_group(
        "a class", "SUBMISSIONS_DIR may hold one sub-folder or .zip per student (named by the student's id)"
    )
    class_options.add_argument(
        "--out-dir",
        metavar="DIR",
        help="gradebook.csv, students/ID.json, class-report.html go here (default: SUBMISSIONS_DIR-grades)",
    )
    class_options.add_argument(
        "--jobs", type=int, default=2, metavar="N", help="katas graded N at a time (default: 2)"
    )
    class_options.add_argument(
        "--no-cache", action="store_true", help="grade every student again (default: new or changed ones)"
    )
    grade_cmd.set_defaults(func=_cmd_grade)

    export_cmd = add_command("export", help="a learner's copy: no solutions, with a grading workflow")
    export_cmd.add_argument("dest", metavar="DEST", help="a new or empty folder outside this project")
    export_cmd.set_defaults(func=_cmd_export)

    gradescope = add_command("gradescope", help="a Gradescope autograder bundle (a .zip)")
    gradescope.add_argument("dest", metavar="DEST.zip", help="the bundle to write")
    gradescope.add_argument(
        "--torch", help="the torch release Gradescope installs (default: the tested one, in pins.toml)"
    )
    gradescope.add_argument(
        "--python", help="the Python Gradescope's grader runs on (default: the tested one, pins.toml)"
    )
    gradescope.add_argument(
        "--timeout-minutes",
        type=float,
        default=10,
        help="the assignment's autograder timeout on Gradescope (default 10); grading stops before it",
    )
    gradescope.set_defaults(func=_cmd_gradescope)

    snapshot = add_command("snapshot", help="(maintainers) save the stubs as the copy `reset` restores")
    snapshot.set_defaults(func=_cmd_snapshot)

    notebooks_cmd = add_command(
        "notebooks", help="(maintainers) one notebook per kata from its lesson and stubs, and its Colab badge"
    )
    notebooks_cmd.add_argument("--out", type=Path, metavar="DIR", help="write the notebooks here only")
    notebooks_cmd.add_argument("--check", action="store_true", help="exit 1 if a generated file is stale")
    notebooks_cmd.set_defaults(func=_cmd_notebooks)

    catalog = add_command(
        "catalog", help="(maintainers) extract the test messages, update the .po files, compile the .mo"
    )
    catalog.add_argument(
        "domains", nargs="*", metavar="DOMAIN", help="a kata folder or harness (default: every converted one)"
    )
    catalog.set_defaults(func=_cmd_catalog)

    plot_cmd = add_command("plot", help="your own runs drawn to PNG (07_training_dynamics, 13_capstone)")
    plot_cmd.add_argument("kata", metavar="KATA", help="07_training_dynamics or 13_capstone")
    plot_cmd.add_argument("--out", type=Path, metavar="DIR", help="where the PNGs go (default: .katas/plots)")
    plot_cmd.add_argument("--solutions", action="store_true", help="(maintainers) draw the solutions")
    plot_cmd.set_defaults(func=_cmd_plot)

    bench_cmd = add_command("bench", help="(maintainers) time a kata run against importing torch")
    bench_cmd.add_argument("--kata", default="01_autograd", help="the kata timed (default: 01_autograd)")
    bench_cmd.add_argument("--runs", type=int, default=7, help="runs timed, the median reported (default: 7)")
    bench_cmd.add_argument("--solutions", action="store_true", help="time the run against solutions/")
    bench_cmd.add_argument("--saves", type=int, default=12, help="saves timed in watch (default: 12)")
    bench_cmd.add_argument(
        "--only",
        choices=["kata", "tools", "grade", "set"],
        help="the kata run, the learner tools, grading (minutes; only when asked for), or the whole "
        "set against its solutions and each kata alone (only when asked for)",
    )
    bench_cmd.set_defaults(func=_cmd_bench)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, stray = parser.parse_known_args(argv)
    if stray:  # with the command's own usage line, not the top level's
        command = args.commands.choices.get(args.command, parser)
        command.error(f"unrecognized arguments: {' '.join(stray)}")
    if args.root is None:
        args.root = find_tree(Path.cwd())
        if args.root is None:  # installed apart from a checkout: nothing to work on, nothing written
            return _error(msg.NEEDS_CHECKOUT.format(cwd=Path.cwd()))
    try:
        return args.func(args)
    except ManifestError as err:
        return _error(str(err))
    except KeyboardInterrupt:
        print(file=sys.stderr)
        return 130
