"""Run kata tests in this process with the project's deterministic Hypothesis profile."""

from __future__ import annotations

from pathlib import Path

from katas._harness.runner import Outcome, run_pytest

ROOT = Path(__file__).resolve().parents[1]

__all__ = ["ROOT", "Outcome", "run_katas"]


def run_katas(*args: str) -> tuple[int, dict[str, Outcome]]:
    result = run_pytest([*args, f"--rootdir={ROOT}"], profile="katas-check")
    return result.code, result.outcomes
