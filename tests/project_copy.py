"""Throwaway copies of the project, for commands that edit kata files in real processes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from katas._harness import pristine
from katas._harness.bench_tools import copy_project
from katas._harness.manifest import load

ROOT = Path(__file__).resolve().parents[1]
MANIFEST = load(ROOT)


def make_copy(dest: Path) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    copy_project(ROOT, dest)
    pristine.write(load(dest))
    return dest


def stub_file(copy: Path, kata: str = "01_autograd") -> Path:
    return MANIFEST.kata(kata).stub_path(copy / "katas")


def solve(copy: Path, exercise: str, kata: str = "01_autograd") -> None:
    """Replace one stub function of the copy with the reference solution's."""
    solution = MANIFEST.kata(kata).stub_path(ROOT / "solutions").read_text(encoding="utf-8")
    replace_definition(copy, exercise, pristine.segment(solution, exercise), kata)


def replace_definition(copy: Path, name: str, new: str, kata: str = "01_autograd") -> None:
    path = stub_file(copy, kata)
    text = path.read_text(encoding="utf-8")
    first, last = pristine.definitions(text)[name]
    lines = text.splitlines(keepends=True)
    path.write_text("".join([*lines[: first - 1], new, *lines[last:]]), encoding="utf-8")


def katas_command(copy: Path, *args: str, **kwargs) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("KATAS_LANG", None)
    return subprocess.run(
        [sys.executable, "-m", "katas", *args], cwd=copy, env=env, capture_output=True, text=True, **kwargs
    )
