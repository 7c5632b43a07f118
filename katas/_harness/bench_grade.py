"""`python -m katas bench --only grade`: grading next to the solutions' own test run.

Targets (DESIGN.md): grading one solved submission takes at most 1.3x the time of
`pytest katas --solutions -n 2`; in a class run each further submission adds at most
1.0x; grading with `--jobs 1` peaks under 700 MB (the whole process tree's PSS, summed).
The commands alternate on the same machine so that background load hits them alike.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

from .manifest import load

TARGET_ONE, TARGET_MORE, TARGET_PEAK_MB = 1.3, 1.0, 700


def _tree_pss_mb(pid: int) -> float:
    """Proportional set size of `pid` and all its descendants, summed (Linux /proc).

    PSS, not RSS: the zygote's children share its pages (fork), and summed RSS would count
    torch once per process; a memory cgroup (Gradescope's limit) counts each page once too.
    """
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[-1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(entry.name))
    total, todo = 0, [pid]
    while todo:
        current = todo.pop()
        total += _pss_kb(current)
        todo.extend(children.get(current, []))
    return total / 1024


def _pss_kb(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


def _timed(command: list[str], cwd: Path) -> tuple[float, float]:
    """Wall seconds and the peak summed memory of the process tree."""
    started = time.perf_counter()
    process = subprocess.Popen(command, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    peak = [0.0]

    def sample() -> None:
        while process.poll() is None:
            peak[0] = max(peak[0], _tree_pss_mb(process.pid))
            time.sleep(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    _, err = process.communicate()
    sampler.join()
    if process.returncode not in (0,):
        raise RuntimeError(f"{' '.join(command)} failed ({process.returncode}):\n{err.decode()[-2000:]}")
    return time.perf_counter() - started, peak[0]


def run(root: Path, runs: int, workdir: Path) -> int:
    from .bench_tools import copy_project

    copy = copy_project(root, workdir / "project")
    manifest = load(copy)
    solved = workdir / "class" / "student-1"
    shutil.copytree(copy / "katas", solved / "katas")
    for kata in manifest.katas:
        shutil.copy2(kata.stub_path(copy / "solutions"), kata.stub_path(solved / "katas"))
    for n in (2, 3):  # each different: a class run grades identical submissions once
        student = workdir / "class" / f"student-{n}"
        shutil.copytree(solved, student)
        for kata in manifest.katas:
            with open(kata.stub_path(student / "katas"), "a", encoding="utf-8") as handle:
                handle.write(f"\n# student {n}\n")
    katas = [sys.executable, "-m", "katas", "--root", str(copy)]
    tests = [
        sys.executable,
        "-m",
        "pytest",
        "katas",
        "--solutions",
        "-n",
        "2",
        "-q",
        "-p",
        "no:cacheprovider",
    ]
    one = [*katas, "grade", str(solved), "--format", "json", "--out", str(workdir / "one.json")]
    single_job = [*one[:-2], "--jobs", "1", "--out", str(workdir / "one-j1.json")]
    whole_class = [*katas, "grade", str(workdir / "class"), "--out-dir", str(workdir / "class-out")]
    solutions, graded, peaks, classes = [], [], [], []
    for _ in range(runs):
        solutions.append(_timed(tests, copy)[0])
        graded.append(_timed(one, copy)[0])
        peaks.append(_timed(single_job, copy)[1])
        shutil.rmtree(workdir / "class-out", ignore_errors=True)  # no cached results
        classes.append(_timed(whole_class, copy)[0])
    base, single, peak, three = (statistics.median(v) for v in (solutions, graded, peaks, classes))
    further = (three - single) / 2
    one_ratio, more_ratio = single / base, further / base
    print(f"median of {runs} alternating runs, Python {sys.version.split()[0]}, {os.cpu_count()} cores")
    print(f"  {'pytest katas --solutions -n 2':<44} {base:6.2f} s")
    print(
        f"  {'grade one solved submission':<44} {single:6.2f} s   ratio {one_ratio:.2f} (target {TARGET_ONE})"
    )
    print(f"  {'grade a class of 3':<44} {three:6.2f} s")
    print(
        f"  {'each further submission':<44} {further:6.2f} s   ratio {more_ratio:.2f} (target {TARGET_MORE})"
    )
    print(f"  peak memory of grade --jobs 1 (process tree, PSS) {peak:.0f} MB (target {TARGET_PEAK_MB} MB)")
    within = one_ratio <= TARGET_ONE and more_ratio <= TARGET_MORE and peak <= TARGET_PEAK_MB
    print("  within every target" if within else "  OVER a target")
    return 0 if within else 1
