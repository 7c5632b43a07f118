"""`python -m katas bench --only set`: the whole kata set against its solutions, and each kata alone.

Targets (DESIGN.md and the curriculum issues): `pytest katas --solutions -n 2` in at most 25 s
on 2 cores, wall clock with the interpreter's start; each kata's solution run at most 10 s
inside pytest (the time pytest reports, without the start).
"""

from __future__ import annotations

import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

from .manifest import load

TARGET_SET_SECONDS = 25.0
TARGET_KATA_SECONDS = 10.0
_PYTEST_TIME = re.compile(r" in (\d+(?:\.\d+)?)s")


def _pytest(root: Path, *args: str) -> tuple[float, float | None, int]:
    """Wall seconds, the seconds pytest reports, and the exit code of one pytest run."""
    command = [sys.executable, "-m", "pytest", *args, "-q", "-p", "no:cacheprovider"]
    start = time.perf_counter()
    done = subprocess.run(command, cwd=root, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - start
    reported = _PYTEST_TIME.findall(done.stdout)
    return wall, float(reported[-1]) if reported else None, done.returncode


def run(root: Path, runs: int) -> int:
    manifest = load(root)
    _pytest(root, "katas", "--solutions", "-n", "2")  # warm-up: bytecode caches, as a learner's first run
    walls, codes = [], set()
    for _ in range(runs):
        wall, _, code = _pytest(root, "katas", "--solutions", "-n", "2")
        walls.append(wall)
        codes.add(code)
    whole = statistics.median(walls)
    print(f"Python {sys.version.split()[0]}, {os.cpu_count()} cores, median of {runs} runs")
    print(f"  pytest katas --solutions -n 2        {whole:6.2f} s wall (target {TARGET_SET_SECONDS:g} s)")
    slow = []
    print(f"  each kata alone, inside pytest (target {TARGET_KATA_SECONDS:g} s):")
    for kata in manifest.katas:
        wall, reported, code = _pytest(root, f"katas/{kata.name}", "--solutions")
        codes.add(code)
        inside = reported if reported is not None else wall
        print(f"    {kata.name:<24} {inside:6.2f} s   ({wall:.2f} s wall)")
        if inside > TARGET_KATA_SECONDS:
            slow.append(kata.name)
    failed = codes - {0}
    if failed:
        print(f"  a run failed (exit {sorted(failed)}): the figures time a failing set")
    within = whole <= TARGET_SET_SECONDS and not slow and not failed
    print("  within the targets" if within else f"  OVER a target{': ' + ', '.join(slow) if slow else ''}")
    return 0 if within else 1
