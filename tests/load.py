"""How much slower this machine is right now than an idle 2-core one: limits scale with it.

The project's tests wait on real processes (a kata run, a grade, watch). A fixed limit that
suits an idle machine fails on a loaded one, so every limit is a generous base figure times
the slowdown measured once per test process: the best of a few runs of a small fixed workload
of torch and Python, against the same workload's time on an idle machine.
"""

from __future__ import annotations

import functools
import time

IDLE_SECONDS = 0.02  # the best of 3 on this 2-core CI machine when idle: 0.019-0.026 s (python -m tests.load)
MOST = 20.0  # past this the machine is not loaded but broken: let the limits stop growing


def _workload() -> float:
    import torch

    started = time.perf_counter()
    a = torch.randn(128, 128)
    for _ in range(40):
        a = torch.tanh(a @ a.T / 128)
    sum(i * i for i in range(200_000))
    return time.perf_counter() - started


@functools.cache
def slowdown() -> float:
    """1.0 on an idle machine; about 6 with the cores six times oversubscribed."""
    _workload()  # the first run pays torch's lazy start-up
    best = min(_workload() for _ in range(3))
    return min(MOST, max(1.0, best / IDLE_SECONDS))


def scaled(seconds: float) -> float:
    return seconds * slowdown()


if __name__ == "__main__":  # python -m tests.load: print the figures behind IDLE_SECONDS
    _workload()
    print(f"workload best of 3: {min(_workload() for _ in range(3)):.4f} s; slowdown {slowdown():.2f}")
