"""`python -m katas solution EXERCISE`: the reference solution, once the learner's own code passes.

Whether it passes comes from .katas/progress.json when that was recorded for the kata's
current files (record.py), else from a run of the exercise's tests in this interpreter.
"""

from __future__ import annotations

from pathlib import Path

from . import messages as msg
from . import pristine, record
from .manifest import Exercise, Manifest
from .progress import Tally, tally_by_exercise

EXIT_NOT_YET = 1  # the exercise does not pass yet, or this copy has no solutions


def tally(manifest: Manifest, exercise: Exercise) -> Tally | None:
    """The exercise's test counts for the learner's current files; None if its kata does not import."""
    kata = manifest.kata(exercise.kata)
    entry = record.known(manifest.root, kata, manifest.root / "katas").get(exercise.name)
    if isinstance(entry, dict) and not entry.get(record.BROKEN):
        try:
            return Tally(**{key: int(entry[key]) for key in ("passed", "failed", "todo", "skipped")})
        except (KeyError, TypeError, ValueError):
            pass  # a damaged entry: run the tests instead
    elif isinstance(entry, dict):
        return None
    from .runner import run_pytest  # imports pytest and torch only when the record cannot answer

    root = manifest.root
    result = run_pytest(
        [
            str(root / "katas" / kata.name),
            f"--exercise={exercise.qualname}",
            f"--rootdir={root}",
            f"--katas-root={root}",
        ]
    )
    if result.errors:
        return None
    return tally_by_exercise((o.exercise, o.outcome) for o in result.outcomes.values()).get(
        exercise.qualname, Tally()
    )


def show(manifest: Manifest, exercise: Exercise) -> tuple[int, list[str]]:
    """(exit status, lines): the learner's code and the reference, or why not yet."""
    kata = manifest.kata(exercise.kata)
    reference_file = kata.stub_path(manifest.root / "solutions")
    if not reference_file.is_file():
        return EXIT_NOT_YET, [msg.SOLUTION_NOT_IN_HANDOUT]
    counts = tally(manifest, exercise)
    hint = msg.SOLUTION_HINT.format(exercise=exercise.qualname)
    if counts is None:
        path = pristine.relative_path(kata)
        return EXIT_NOT_YET, [msg.SOLUTION_BROKEN.format(exercise=exercise.qualname, path=path)]
    if counts.status != "done":
        failing = counts.failed + counts.todo
        if failing:
            line = msg.SOLUTION_NOT_YET.format(
                exercise=exercise.qualname, failing=failing, total=counts.total
            )
        else:
            line = msg.SOLUTION_NOT_RUN.format(exercise=exercise.qualname)
        return EXIT_NOT_YET, [line + " " + hint]
    own_file = kata.stub_path(manifest.root / "katas")
    return 0, [
        msg.SOLUTION_PASSES.format(exercise=exercise.qualname),
        "",
        msg.SOLUTION_YOURS.format(path=_shown(own_file, manifest.root)),
        *_definition(own_file, exercise.name),
        msg.SOLUTION_REFERENCE.format(path=_shown(reference_file, manifest.root)),
        *_definition(reference_file, exercise.name),
    ]


def _definition(path: Path, name: str) -> list[str]:
    try:
        text = pristine.segment(path.read_text(encoding="utf-8"), name)
    except (OSError, SyntaxError):
        text = None
    return [*(text or msg.SOLUTION_MISSING + "\n").rstrip("\n").splitlines(), ""]


def _shown(path: Path, root: Path) -> str:
    return path.relative_to(root).as_posix()
