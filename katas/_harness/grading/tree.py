"""The grading tree: the grader's own tests, harness and manifest, plus the submission's stubs."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from ..manifest import Kata, Manifest

MAX_STUB_BYTES = 1_000_000
# Copied from the grader's checkout; never solutions/, never anything from the submission but stubs.
TREE_FILES = ("conftest.py", "pyproject.toml")


@dataclass(frozen=True)
class Taken:
    kata: Kata
    problem: str | None  # why the submission's stub was not used, if it was not


def build(manifest: Manifest, dest: Path) -> None:
    """A pristine tree at `dest`: katas/ (tests, harness, manifest, stubs) and the pytest config."""
    root = manifest.root
    shutil.copytree(
        root / "katas", dest / "katas", ignore=shutil.ignore_patterns("__pycache__", "*.pyc", ".hypothesis")
    )
    for name in TREE_FILES:
        shutil.copy2(root / name, dest / name)


def take_stubs(manifest: Manifest, submission: Path, dest: Path) -> list[Taken]:
    """Copy each kata's stub file from the submission into the tree, and nothing else."""
    taken = []
    for kata in manifest.katas:
        source = kata.stub_path(submission / "katas")
        target = kata.stub_path(dest / "katas")
        problem = _unusable(source)
        if problem is None:
            target.write_bytes(source.read_bytes())
        else:
            target.unlink(missing_ok=True)  # no file: every test of the kata fails to import
        taken.append(Taken(kata, problem))
    return taken


def _unusable(path: Path) -> str | None:
    if path.is_symlink():
        return f"{path.name} is a symbolic link; submit the file itself"
    if not path.is_file():
        return f"{path.name} is missing from the submission"
    if path.stat().st_size > MAX_STUB_BYTES:
        return f"{path.name} is larger than {MAX_STUB_BYTES // 1000} kB"
    return None
