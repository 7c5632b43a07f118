"""Run kata tests in this process and collect one outcome per test.

In-process runs reuse the already imported torch, so a run costs a fraction of
a second instead of the two seconds a fresh interpreter needs.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import settings

from katas._harness.plugin import current_profile
from katas._harness.progress import SEVERITY
from katas._harness.session import outcome_of

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Outcome:
    nodeid: str
    exercise: str
    outcome: str  # passed, skipped, todo or failed
    message: str


class _Collector:
    def __init__(self) -> None:
        self.outcomes: dict[str, Outcome] = {}

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        recorded = outcome_of(report)
        if recorded is None:
            return
        exercise, outcome = recorded
        previous = self.outcomes.get(report.nodeid)
        if previous is None or SEVERITY[outcome] > SEVERITY[previous.outcome]:
            self.outcomes[report.nodeid] = Outcome(report.nodeid, exercise, outcome, report.longreprtext)


def run_katas(*args: str) -> tuple[int, dict[str, Outcome]]:
    """pytest.main over kata tests with the project's deterministic Hypothesis profile."""
    collector = _Collector()
    profile = current_profile()
    try:
        code = pytest.main(
            [
                *args,
                f"--rootdir={ROOT}",
                "-p",
                "no:cacheprovider",
                "-p",
                "no:xdist",
                "-p",
                "no:terminal",
                "--hypothesis-profile=katas-check",
            ],
            plugins=[collector],
        )
    finally:
        settings.load_profile(profile)  # the nested run loaded its own profile globally
    return int(code), collector.outcomes
