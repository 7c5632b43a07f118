"""The learner's last known result per exercise, in .katas/progress.json.

Every kata run against the learner's stubs updates it, so `python -m katas list`
re-runs only the katas whose files changed since. An entry holds for one
version of a kata's stub and test files (their fingerprint). Deleting the file
loses nothing: the next `list` re-runs what it needs.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from .manifest import Kata

STATE_FILE = Path(".katas") / "progress.json"
BROKEN = "broken"  # the kata's stub does not import


def fingerprint(kata: Kata, katas_dir: Path) -> str:
    digest = hashlib.sha256()
    for name in (f"{kata.module}.py", f"test_{kata.module}.py"):
        try:
            digest.update((katas_dir / kata.name / name).read_bytes())
        except FileNotFoundError:
            digest.update(b"<missing>")
    return digest.hexdigest()


def read(root: Path) -> dict[str, dict]:
    try:
        data = json.loads((root / STATE_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}  # missing or damaged: everything is simply unknown
    return data if isinstance(data, dict) else {}


def known(root: Path, kata: Kata, katas_dir: Path, state: dict | None = None) -> dict[str, dict]:
    """{exercise name: {"status", "detail"}} recorded for the kata's current files, else {}."""
    entry = (read(root) if state is None else state).get(kata.name)
    if not isinstance(entry, dict) or entry.get("fingerprint") != fingerprint(kata, katas_dir):
        return {}
    exercises = entry.get("exercises")
    return exercises if isinstance(exercises, dict) else {}


def update(root: Path, results: dict[Kata, dict[str, dict]], katas_dir: Path) -> None:
    """Merge one run's results: exercises it ran replace what was known for the same files."""
    state = read(root)
    for kata, exercises in results.items():
        merged = {**known(root, kata, katas_dir, state), **exercises}
        state[kata.name] = {"fingerprint": fingerprint(kata, katas_dir), "exercises": merged}
    path = root / STATE_FILE
    try:
        path.parent.mkdir(exist_ok=True)
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(state, indent=1, sort_keys=True), encoding="utf-8")
        tmp.replace(path)
    except OSError:
        pass  # a read-only checkout still runs its tests; `list` then re-runs them
