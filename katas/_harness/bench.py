"""`python -m katas bench`: how long a kata run takes next to importing its libraries.

The target (DESIGN.md) is `pytest katas/01_autograd` in at most 1.3x the time of
`python -c "import torch, pytest, hypothesis"`. Both commands run alternately on
the same machine so that background load hits them alike; medians are reported.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

BASELINE = [sys.executable, "-c", "import torch, pytest, hypothesis"]
TARGET_RATIO = 1.3


def _time(command: list[str], cwd: Path, env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(command, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def run(root: Path, kata: str, runs: int, solutions: bool) -> int:
    kata_run = [sys.executable, "-m", "pytest", f"katas/{kata}"]
    if solutions:
        kata_run.append("--solutions")
    env = dict(os.environ)
    # One unmeasured run first. pytest caches its rewritten bytecode unless PYTHONDONTWRITEBYTECODE
    # is set (as in some sandboxes); let the warm-up write it, as any learner's first run does.
    warm_env = {k: v for k, v in env.items() if k != "PYTHONDONTWRITEBYTECODE"}
    _time(BASELINE, root, warm_env)
    first = _time(kata_run, root, warm_env)
    baseline, kata_times = [], []
    for _ in range(runs):
        baseline.append(_time(BASELINE, root, env))
        kata_times.append(_time(kata_run, root, env))
    base, ours = statistics.median(baseline), statistics.median(kata_times)
    ratio = ours / base
    label = " ".join(kata_run[2:])
    print(f"median of {runs} alternating runs, Python {sys.version.split()[0]}, {os.cpu_count()} cores")
    print(f"  {'import torch, pytest, hypothesis':<48} {base:6.2f} s")
    print(f"  {label:<48} {ours:6.2f} s   (first run, cache warm-up: {first:.2f} s)")
    verdict = "within" if ratio <= TARGET_RATIO else "OVER"
    print(f"  ratio {ratio:.2f} ({verdict} the {TARGET_RATIO} target)")
    return 0 if ratio <= TARGET_RATIO else 1
