"""`python -m katas list`: every exercise's status, running only the tests it must.

An exercise whose function still reads as the pristine stub is todo without a
run; one whose kata files are unchanged since the last kata run keeps that
run's result (katas/_harness/record.py); only the rest are tested, in-process.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

from . import messages as msg
from . import pristine, record
from .manifest import Exercise, Kata, Manifest
from .progress import Tally, tally_by_exercise


@dataclass(frozen=True)
class Status:
    status: str  # done, failing, todo, skipped, not run or broken
    detail: str


def _todo() -> Status:
    return Status("todo", msg.STATUS_WORDS["todo"])


def _recorded(entry: object) -> Status | None:
    """A status from the record: test counts, or the kata's file did not import."""
    if not isinstance(entry, dict):
        return None
    if entry.get(record.BROKEN):
        return Status(record.BROKEN, msg.LIST_BROKEN)
    try:
        tally = Tally(**{key: int(entry[key]) for key in ("passed", "failed", "todo", "skipped")})
    except (KeyError, TypeError, ValueError):
        return None
    return Status(tally.status, tally.describe())


def gather(manifest: Manifest, *, rerun: bool = False) -> dict[str, Status]:
    root = manifest.root
    katas_dir = root / "katas"
    clean, state = pristine.read(root), record.read(root)
    found: dict[str, Status] = {}
    stale: list[Kata] = []
    for kata in manifest.katas:
        known = {} if rerun else record.known(root, kata, katas_dir, state)
        current = _text(kata.stub_path(katas_dir))
        original = clean.get(pristine.relative_path(kata))
        for ex in kata.exercises:
            entry = _recorded(known.get(ex.name))
            if entry is not None:
                found[ex.qualname] = entry
            elif (
                current is not None
                and original is not None
                and pristine.untouched(current, original, ex.name)
            ):
                found[ex.qualname] = _todo()
            elif kata not in stale:
                stale.append(kata)
    if stale:
        found.update(_run(manifest, stale))
    return found


def first_unfinished(manifest: Manifest, kata: Kata) -> Exercise | None:
    """The kata's first exercise that its last run did not pass (without running anything)."""
    known = record.known(manifest.root, kata, manifest.root / "katas")
    for exercise in kata.exercises:
        entry = _recorded(known.get(exercise.name))
        if entry is None or entry.status != "done":
            return exercise
    return None


def _run(manifest: Manifest, katas: list[Kata]) -> dict[str, Status]:
    from .runner import run_pytest  # imports pytest (and the tests import torch) only when needed

    names = ", ".join(k.name for k in katas)
    print(msg.LIST_RUNNING.format(katas=names), file=sys.stderr, flush=True)
    root = manifest.root
    result = run_pytest(
        [*(str(root / "katas" / k.name) for k in katas), f"--rootdir={root}", f"--katas-root={root}"]
    )
    broken = {nodeid.split("/")[1] for nodeid, _ in result.errors if nodeid.startswith("katas/")}
    tallies = tally_by_exercise((o.exercise, o.outcome) for o in result.outcomes.values())
    found = {}
    for kata in katas:
        for ex in kata.exercises:
            if kata.name in broken:
                found[ex.qualname] = Status(record.BROKEN, msg.LIST_BROKEN)
            else:
                tally = tallies.get(ex.qualname, Tally())
                found[ex.qualname] = Status(tally.status, tally.describe())
    return found


def render(manifest: Manifest, statuses: dict[str, Status]) -> list[str]:
    lines = [msg.PROGRESS_TITLE]
    done_total = 0
    upcoming = None
    for kata in manifest.katas:
        done = sum(statuses[ex.qualname].status == "done" for ex in kata.exercises)
        done_total += done
        lines.append(msg.PROGRESS_KATA_LINE.format(kata=kata.name, done=done, total=len(kata.exercises)))
        width = max(len(ex.name) for ex in kata.exercises)
        for ex in kata.exercises:
            status = statuses[ex.qualname]
            mark = msg.STATUS_MARKS.get(status.status, "?")
            lines.append(
                msg.PROGRESS_EXERCISE_LINE.format(mark=mark, name=ex.name, width=width, status=status.detail)
            )
            if upcoming is None and status.status != "done":
                upcoming = ex
    total = len(manifest.exercises)
    lines.append(
        msg.LIST_OVERALL.format(done=done_total, total=total, percent=100 * done_total // max(total, 1))
    )
    if upcoming is None:
        lines.append(msg.LIST_ALL_DONE)
    else:
        path = f"katas/{upcoming.kata}/{manifest.kata(upcoming.kata).module}.py"
        lines.append(msg.PROGRESS_NEXT.format(exercise=upcoming.qualname, path=path))
    return lines


def _text(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except OSError:
        return None
