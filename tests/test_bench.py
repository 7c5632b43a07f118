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
    assert 50 <= peak_mb < 500


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
