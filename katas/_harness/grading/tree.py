"""The grading tree: the grader's own tests, harness and manifest, plus the submission's stubs."""

from __future__ import annotations

import shutil
from pathlib import Path

from ..manifest import Kata, Manifest

MAX_STUB_BYTES = 1_000_000
# Copied from the grader's checkout; never solutions/, never anything from the submission but stubs.
TREE_FILES = ("conftest.py", "pyproject.toml")


def build(manifest: Manifest, dest: Path) -> None:
    """A pristine tree at `dest`: katas/ (tests, harness, manifest, stubs) and the pytest config."""
    root = manifest.root
    shutil.copytree(
        root / "katas", dest / "katas", ignore=shutil.ignore_patterns("__pycache__", "*.pyc", ".hypothesis")
    )
    for name in TREE_FILES:
        shutil.copy2(root / name, dest / name)


def take_stub(kata: Kata, submission: Path, dest: Path) -> str | None:
    """Copy the kata's stub file, and nothing else, from the submission into the tree at `dest`.

    Returns why the submission's file could not be used, or None.
    """
    source = locate(kata, submission)
    problem = _unusable(source)
    if problem is None:
        kata.stub_path(dest / "katas").write_bytes(source.read_bytes())
    return problem


def locate(kata: Kata, submission: Path) -> Path:
    """The kata's file in a project (katas/KATA/MODULE.py) or in a flat upload (MODULE.py)."""
    in_project = kata.stub_path(submission / "katas")
    flat = submission / f"{kata.module}.py"
    return in_project if in_project.exists() or in_project.is_symlink() or not flat.exists() else flat


def freeze(root: Path) -> None:
    """Make the tree read-only (to another user; its owner could undo it)."""
    for path in [root, *root.rglob("*")]:
        mode = 0o555 if path.is_dir() else 0o444
        path.chmod(mode)


def thaw(root: Path) -> None:
    for path in [root, *root.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)


def _unusable(path: Path) -> str | None:
    if path.is_symlink():
        return f"{path.name} is a symbolic link; submit the file itself"
    if not path.is_file():
        return f"{path.name} is missing from the submission"
    if path.stat().st_size > MAX_STUB_BYTES:
        return f"{path.name} is larger than {MAX_STUB_BYTES // 1000} kB"
    return None
