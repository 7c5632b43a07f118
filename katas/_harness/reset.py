"""`python -m katas reset`: put back the pristine stub of a kata or of one exercise.

What it replaces is first copied to .katas/backups/, and nothing else in the
file changes: resetting one exercise rewrites only that definition's lines.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from . import messages as msg
from . import pristine
from .manifest import Exercise, Kata, Manifest, UnknownExercise

BACKUP_DIR = Path(".katas") / "backups"


class ResetError(Exception):
    """Why nothing was reset, and what to do instead."""


@dataclass(frozen=True)
class Plan:
    kata: Kata
    exercise: Exercise | None
    path: Path
    current: str
    new: str

    @property
    def what(self) -> str:
        return self.exercise.qualname if self.exercise else self.kata.name


def plan(manifest: Manifest, target: str) -> Plan:
    kata, exercise = _resolve(manifest, target)
    path = kata.stub_path(manifest.root / "katas")
    original = pristine.read(manifest.root).get(pristine.relative_path(kata))
    if original is None:
        raise ResetError(msg.RESET_NO_PRISTINE.format(path=pristine.relative_path(kata)))
    try:
        current = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        current = ""
    if exercise is None or not current:
        return Plan(kata, exercise if current else None, path, current, original)
    return Plan(kata, exercise, path, current, _splice(current, original, exercise, kata))


def _resolve(manifest: Manifest, target: str) -> tuple[Kata, Exercise | None]:
    try:
        return manifest.target(target)
    except UnknownExercise as err:
        hint = (
            msg.RESET_DID_YOU_MEAN.format(names=", ".join(err.suggestions))
            if err.suggestions
            else msg.RESET_NAMING
        )
        raise ResetError(msg.RESET_UNKNOWN.format(target=target, hint=hint)) from None


def _splice(current: str, original: str, exercise: Exercise, kata: Kata) -> str:
    try:
        mine = pristine.definitions(current)
    except SyntaxError as err:
        raise ResetError(
            msg.RESET_SYNTAX_ERROR.format(path=pristine.relative_path(kata), line=err.lineno, kata=kata.name)
        ) from None
    span = mine.get(exercise.name)
    clean = pristine.segment(original, exercise.name)
    if span is None or clean is None:
        raise ResetError(msg.RESET_MISSING_DEFINITION.format(name=exercise.name, kata=kata.name))
    lines = current.splitlines(keepends=True)
    if not clean.endswith("\n"):
        clean += "\n"
    return "".join([*lines[: span[0] - 1], clean, *lines[span[1] :]])


def backup(root: Path, item: Plan) -> Path:
    folder = root / BACKUP_DIR
    folder.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    target = folder / f"{item.kata.name}.{item.path.stem}.{stamp}.py"
    counter = 1
    while target.exists():
        counter += 1
        target = folder / f"{item.kata.name}.{item.path.stem}.{stamp}-{counter}.py"
    target.write_text(item.current, encoding="utf-8")
    return target


def run(manifest: Manifest, target: str, *, yes: bool, confirm: Callable[[str], bool]) -> list[str]:
    """Reset `target` and return what to tell the learner. Raises ResetError instead of resetting."""
    item = plan(manifest, target)
    shown = pristine.relative_path(item.kata)
    if item.current == item.new:
        return [msg.RESET_NOTHING.format(what=item.what, path=shown)]
    if not yes and not confirm(msg.RESET_CONFIRM.format(what=item.what, path=shown)):
        return [msg.RESET_CANCELLED]
    saved = backup(manifest.root, item) if item.current else None
    tmp = item.path.with_name(f".{item.path.name}.{os.getpid()}.tmp")
    tmp.write_text(item.new, encoding="utf-8")
    os.replace(tmp, item.path)
    lines = [msg.RESET_DONE.format(what=item.what, path=shown)]
    if saved is not None:
        lines.append(msg.RESET_BACKUP.format(backup=saved.relative_to(manifest.root)))
    return lines
