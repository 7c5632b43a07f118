"""The grader's files: its pristine tree, and the one file it takes from each submitted kata.

Nothing here follows a link the submission controls: a submitted file is reached one
folder at a time with O_NOFOLLOW, must be a regular file, and is read up to a bound.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
from pathlib import Path

from ..manifest import Kata, Manifest

MAX_STUB_BYTES = 1_000_000
# Copied from the grader's checkout; never solutions/, never anything from the submission but stubs.
TREE_FILES = ("conftest.py", "pyproject.toml")
_IGNORED = shutil.ignore_patterns("__pycache__", "*.pyc", ".hypothesis", ".pytest_cache")


class Refused(Exception):
    """A submitted file the grader will not use; the message says why and what to do."""


def build(manifest: Manifest, dest: Path) -> None:
    """A pristine tree at `dest`: katas/ (tests, harness, manifest) and the pytest config."""
    root = manifest.root
    shutil.copytree(root / "katas", dest / "katas", ignore=_IGNORED)
    for name in TREE_FILES:
        shutil.copy2(root / name, dest / name)


def locate(kata: Kata, submission: Path) -> Path:
    """The kata's file in a project (katas/KATA/MODULE.py) or in a flat upload (MODULE.py)."""
    in_project = kata.stub_path(submission / "katas")
    flat = submission / f"{kata.module}.py"
    if os.path.lexists(in_project) or not os.path.lexists(flat):
        return in_project
    return flat


def read_submitted(kata: Kata, submission: Path) -> bytes:
    """The bytes of the kata's submitted file, or raise Refused (missing, a link, too large...)."""
    path = locate(kata, submission)
    relative = path.relative_to(submission)
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
    folder = os.open(submission, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        for part in relative.parts[:-1]:
            try:
                inner = os.open(part, flags | getattr(os, "O_DIRECTORY", 0), dir_fd=folder)
            except FileNotFoundError:
                raise Refused(f"{relative} is missing from the submission") from None
            except OSError:
                raise Refused(_not_plain(relative, part)) from None
            os.close(folder)
            folder = inner
        try:
            handle = os.open(relative.name, flags, dir_fd=folder)
        except FileNotFoundError:
            raise Refused(f"{relative} is missing from the submission") from None
        except OSError:
            raise Refused(_not_plain(relative, relative.name)) from None
    finally:
        os.close(folder)
    try:
        if not stat.S_ISREG(os.fstat(handle).st_mode):
            raise Refused(_not_plain(relative, relative.name))
        data = _read_at_most(handle, MAX_STUB_BYTES + 1)
    finally:
        os.close(handle)
    if len(data) > MAX_STUB_BYTES:
        raise Refused(f"{relative} is larger than {MAX_STUB_BYTES // 1000} kB")
    return data


def _not_plain(relative: Path, part: str) -> str:
    return (
        f"{relative}: '{part}' is a symbolic link or a special file; submit plain files and folders "
        "(copy the file itself, not a link to it)"
    )


def _read_at_most(fd: int, limit: int) -> bytes:
    chunks, size = [], 0
    while size < limit:
        chunk = os.read(fd, min(1 << 16, limit - size))
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


def write_read_only(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    path.chmod(0o444)


def freeze(root: Path) -> None:
    """Read-only for everyone but root (the grader's own account could undo it: see hashes)."""
    for path in [root, *root.rglob("*")]:
        if not path.is_symlink():
            path.chmod(0o555 if path.is_dir() else 0o444)


def thaw(root: Path) -> None:
    for path in [root, *root.rglob("*")]:
        if not path.is_symlink():
            path.chmod(0o755 if path.is_dir() else 0o644)


def digest(root: Path, relative_to: Path | None = None) -> str:
    """A hash of every file's path and bytes under `root` (caches and bytecode left out)."""
    base = relative_to or root
    sha = hashlib.sha256()
    for path in sorted(root.rglob("*")):
        if any(part in ("__pycache__", ".hypothesis", ".pytest_cache") for part in path.parts):
            continue
        if path.is_file() and not path.is_symlink() and path.suffix != ".pyc":
            sha.update(str(path.relative_to(base)).encode())
            sha.update(b"\0")
            sha.update(path.read_bytes())
            sha.update(b"\0")
    return sha.hexdigest()
