"""`python -m katas bench`: how long a kata run takes next to importing its libraries.

The targets (DESIGN.md): `pytest katas/01_autograd` in at most 1.3x the time of
`python -c "import torch, pytest, hypothesis"`, and under 600 MB of peak memory.
Both commands run alternately on the same machine so that background load hits
them alike; medians are reported.
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
TARGET_PEAK_MB = 600


def _run(command: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, float]:
    """Wall-clock seconds and peak resident memory (MB) of one run of `command`."""
    start = time.perf_counter()
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    process = subprocess.Popen(command, cwd=cwd, env=env, **quiet)
    _, _, usage = os.wait4(process.pid, 0)
    elapsed = time.perf_counter() - start
    process.returncode = 0  # reaped by wait4 above; keep Popen from waiting again
    return elapsed, usage.ru_maxrss / 1024  # ru_maxrss is in KiB on Linux


def run(root: Path, kata: str, runs: int, solutions: bool) -> int:
    kata_run = [sys.executable, "-m", "pytest", f"katas/{kata}"]
    if solutions:
        kata_run.append("--solutions")
    env = dict(os.environ)
    # One unmeasured run first. pytest caches its rewritten bytecode unless PYTHONDONTWRITEBYTECODE
    # is set (as in some sandboxes); let the warm-up write it, as any learner's first run does.
    warm_env = {k: v for k, v in env.items() if k != "PYTHONDONTWRITEBYTECODE"}
    _run(BASELINE, root, warm_env)
    first, _ = _run(kata_run, root, warm_env)
    baseline, kata_times, peaks = [], [], []
    for _ in range(runs):
        baseline.append(_run(BASELINE, root, env)[0])
        seconds, peak = _run(kata_run, root, env)
        kata_times.append(seconds)
        peaks.append(peak)
    base, ours, peak = statistics.median(baseline), statistics.median(kata_times), max(peaks)
    ratio = ours / base
    label = " ".join(kata_run[2:])
    print(f"median of {runs} alternating runs, Python {sys.version.split()[0]}, {os.cpu_count()} cores")
    print(f"  {'import torch, pytest, hypothesis':<48} {base:6.2f} s")
    print(f"  {label:<48} {ours:6.2f} s   (first run, cache warm-up: {first:.2f} s)")
    within = ratio <= TARGET_RATIO and peak <= TARGET_PEAK_MB
    print(f"  ratio {ratio:.2f} (target {TARGET_RATIO})")
    print(f"  peak memory of the kata run {peak:.0f} MB (target {TARGET_PEAK_MB} MB)")
    print("  within both targets" if within else "  OVER a target")
    return 0 if within else 1
