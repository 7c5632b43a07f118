"""Benchmarks of the learner tools: watch's latency from save to result, and `list`'s run time.

Both run in a throwaway copy of the project, so the learner's files are never touched.
The watched kata is set up as a learner deep into it: every exercise solved but
the last, so each save re-runs the whole kata behind the current exercise.
"""

from __future__ import annotations

import os
import queue
import re
import shutil
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

from . import pristine
from .manifest import Kata, load

TARGET_WATCH_SECONDS = 0.3
HEADER = re.compile(r"torch-katas watch: .*\[run (\d+)")
COPIED = ("katas", "solutions", "conftest.py", "pyproject.toml")


def copy_project(root: Path, dest: Path) -> Path:
    for name in COPIED:
        source = root / name
        if source.is_dir():
            shutil.copytree(source, dest / name, ignore=shutil.ignore_patterns("__pycache__"))
        elif source.is_file():
            shutil.copy2(source, dest / name)
    return dest


def nearly_done(root: Path, kata: Kata) -> None:
    """Put the solution in the kata's stub file, all but its last exercise (when solutions exist)."""
    solution = kata.stub_path(root / "solutions")
    original = pristine.read(root).get(pristine.relative_path(kata))
    if not solution.is_file() or original is None:
        return
    text = solution.read_text(encoding="utf-8")
    last = kata.exercises[-1].name
    first, end = pristine.definitions(text)[last]
    lines = text.splitlines(keepends=True)
    stub = pristine.segment(original, last) or ""
    kata.stub_path(root / "katas").write_text(
        "".join([*lines[: first - 1], stub, *lines[end:]]), encoding="utf-8"
    )


class _Lines:
    def __init__(self, process: subprocess.Popen):
        self.queue: queue.Queue[tuple[float, str]] = queue.Queue()
        threading.Thread(target=self._read, args=(process,), daemon=True).start()

    def _read(self, process: subprocess.Popen) -> None:
        for line in process.stdout:
            self.queue.put((time.perf_counter(), line))

    def header(self, min_run: int, *, final: bool, timeout: float = 60) -> tuple[float, int, bool]:
        """The next result header of run >= min_run: (time seen, run number, is final)."""
        deadline = time.monotonic() + timeout
        while True:
            seen, line = self.queue.get(timeout=max(0.1, deadline - time.monotonic()))
            match = HEADER.match(line)
            if match and int(match[1]) >= min_run:
                is_final = "checking" not in line
                if is_final or not final:
                    return seen, int(match[1]), is_final


def watch_latency(copy: Path, kata: Kata, saves: int) -> list[float]:
    stub = kata.stub_path(copy / "katas")
    text = stub.read_text(encoding="utf-8")
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    command = [sys.executable, "-m", "katas", "watch", kata.name, "--no-clear"]
    process = subprocess.Popen(
        command, cwd=copy, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    lines = _Lines(process)
    latencies = []
    try:
        _, run, _ = lines.header(1, final=True)
        for number in range(saves):
            time.sleep(0.3)  # a learner pauses between saves; the watcher is idle again
            started = time.perf_counter()
            stub.write_text(f"{text}\n# save {number}\n", encoding="utf-8")
            seen, run, final = lines.header(run + 1, final=False)
            latencies.append(seen - started)
            if not final:
                lines.header(run, final=True)
    finally:
        process.kill()
        process.wait()
    return latencies


def _seconds(command: list[str], cwd: Path) -> float:
    started = time.perf_counter()
    subprocess.run(command, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
    return time.perf_counter() - started


def list_times(copy: Path, kata: Kata, runs: int) -> dict[str, float]:
    """Medians: `list` with nothing to run, `list` after a change to `kata`, and pytest on that kata."""
    listing = [sys.executable, "-m", "katas", "list"]
    kata_run = [sys.executable, "-m", "pytest", f"katas/{kata.name}", "-p", "no:cacheprovider"]
    stub = kata.stub_path(copy / "katas")
    text = stub.read_text(encoding="utf-8")
    _seconds(listing, copy)  # records every kata once
    cached, changed, tests = [], [], []
    for number in range(runs):
        cached.append(_seconds(listing, copy))
        stub.write_text(f"{text}\n# change {number}\n", encoding="utf-8")
        changed.append(_seconds(listing, copy))
        tests.append(_seconds(kata_run, copy))
    return {
        "list, nothing changed": statistics.median(cached),
        f"list, {kata.name} changed": statistics.median(changed),
        f"pytest katas/{kata.name}": statistics.median(tests),
    }


def run(root: Path, kata_name: str, saves: int, runs: int, workdir: Path) -> int:
    manifest = load(root)
    kata = manifest.kata(kata_name)
    copy = copy_project(root, workdir)
    nearly_done(copy, kata)
    latencies = watch_latency(copy, kata, saves)
    median = statistics.median(latencies)
    print(f"watch {kata.name}, {saves} saves (all but the last exercise solved):")
    shown = f"median {median:.3f} s, max {max(latencies):.3f} s"
    print(f"  save to result shown: {shown} (target {TARGET_WATCH_SECONDS} s)")
    times = list_times(copy, kata, runs)
    print(f"list, median of {runs} runs:")
    for label, seconds in times.items():
        print(f"  {label:<40} {seconds:6.2f} s")
    changed, tests = list(times.values())[1:]
    within = median <= TARGET_WATCH_SECONDS and changed <= tests * 1.05
    print(
        "  list takes no longer than the tests it needs"
        if changed <= tests * 1.05
        else "  list is SLOWER than its tests"
    )
    print("  within the tools' targets" if within else "  OVER a target")
    return 0 if within else 1
