"""Progressive hints: each request shows one more, remembered in a small state file."""

from __future__ import annotations

import json
from pathlib import Path

from . import language
from .manifest import Exercise

STATE_FILE = Path(".katas") / "hints.json"


def _state_path(root: Path) -> Path:
    return root / STATE_FILE


def _read(root: Path) -> dict[str, int]:
    try:
        data = json.loads(_state_path(root).read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError):
        return {}  # a missing or damaged state file only means "no hint seen yet"
    return {k: v for k, v in data.items() if isinstance(k, str) and isinstance(v, int)}


def _write(root: Path, state: dict[str, int]) -> None:
    path = _state_path(root)
    path.parent.mkdir(exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(state, indent=1, sort_keys=True), encoding="utf-8")
    tmp.replace(path)


def texts(exercise: Exercise) -> tuple[str, ...]:
    """The exercise's hints in the learner's language (English where a translation is missing)."""
    return exercise.hints_zh if language.current() == "zh" and exercise.hints_zh else exercise.hints


def next_hints(root: Path, exercise: Exercise, show_all: bool = False) -> list[tuple[int, str]]:
    """The hints to show now as (number, text): one more than last time, or all of them."""
    hints = texts(exercise)
    if show_all:
        return list(enumerate(hints, start=1))
    state = _read(root)
    shown = min(state.get(exercise.qualname, 0) + 1, len(hints))
    state[exercise.qualname] = shown
    _write(root, state)
    return [(shown, hints[shown - 1])]
