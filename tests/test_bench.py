"""`python -m katas bench`: its measurement and its verdict."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from katas._harness import bench

ROOT = Path(__file__).resolve().parents[1]


def test_a_run_reports_seconds_and_peak_memory():
    seconds, peak_mb = bench._run([sys.executable, "-c", "x = bytearray(50_000_000)"], ROOT, {})
    assert 0 < seconds < 30
    assert 50 <= peak_mb < 5000  # MB, not KiB or bytes (an interpreter with site hooks starts at 500)


@pytest.mark.parametrize(
    ("kata_seconds", "peak_mb", "code", "verdict"),
    [(2.4, 250, 0, "within both targets"), (2.8, 250, 1, "OVER a target"), (2.4, 700, 1, "OVER a target")],
)
def test_the_verdict_follows_both_targets(monkeypatch, capsys, kata_seconds, peak_mb, code, verdict):
    def fake_run(command, cwd, env):
        return (kata_seconds, peak_mb) if "pytest" in command else (2.0, 100)

    monkeypatch.setattr(bench, "_run", fake_run)
    assert bench.run(ROOT, "01_autograd", runs=3, solutions=False) == code
    out = capsys.readouterr().out
    assert f"ratio {kata_seconds / 2.0:.2f} (target 1.3)" in out
    assert f"peak memory of the kata run {peak_mb} MB (target 600 MB)" in out
    assert verdict in out


@pytest.mark.parametrize(
    ("whole", "slowest", "code", "verdict"),
    [(20.0, 6.0, 0, "within the targets"), (26.0, 6.0, 1, "OVER a target"), (20.0, 11.0, 1, "OVER a target")],
)
def test_the_set_bench_checks_the_whole_set_and_each_kata(monkeypatch, capsys, whole, slowest, code, verdict):
    from katas._harness import bench_set
    from katas._harness.manifest import load

    katas = [k.name for k in load(ROOT).katas]

    def fake_pytest(root, *args):
        if args[0] == "katas":
            return whole, whole - 2, 0
        return 3.0, slowest if args[0] == f"katas/{katas[-1]}" else 1.0, 0

    monkeypatch.setattr(bench_set, "_pytest", fake_pytest)
    assert bench_set.run(ROOT, runs=3) == code
    out = capsys.readouterr().out
    assert f"pytest katas --solutions -n 2        {whole:6.2f} s wall (target 25 s)" in out
    assert f"{katas[-1]:<24} {slowest:6.2f} s" in out
    assert verdict in out


def test_the_set_bench_reads_the_time_pytest_reports(tmp_path):
    from katas._harness import bench_set

    (tmp_path / "test_one.py").write_text("def test_one():\n    pass\n", encoding="utf-8")
    wall, reported, code = bench_set._pytest(tmp_path, "test_one.py")
    assert code == 0 and reported is not None and 0 <= reported <= wall
