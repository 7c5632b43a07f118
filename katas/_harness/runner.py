"""Run kata tests inside this interpreter and collect one outcome per test.

An in-process run reuses the torch and pytest already imported, so it costs a
fraction of the two seconds a fresh interpreter needs. Used by `list`, `watch`
and the project's own tests.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import pytest
from hypothesis import settings

from .progress import SEVERITY
from .session import outcome_of


@dataclass
class Outcome:
    nodeid: str
    exercise: str  # KATA/FUNCTION
    outcome: str  # passed, skipped, todo or failed
    message: str


@dataclass
class RunResult:
    code: int
    outcomes: dict[str, Outcome] = field(default_factory=dict)
    # (nodeid, text) of each collection error, e.g. a stub that does not compile
    errors: list[tuple[str, str]] = field(default_factory=list)


class Collector:
    """A pytest plugin keeping each test's worst phase and every collection error."""

    def __init__(self) -> None:
        self.result = RunResult(code=-1)

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        recorded = outcome_of(report)
        if recorded is None:
            return
        exercise, outcome = recorded
        previous = self.result.outcomes.get(report.nodeid)
        if previous is None or SEVERITY[outcome] > SEVERITY[previous.outcome]:
            self.result.outcomes[report.nodeid] = Outcome(
                report.nodeid, exercise, outcome, report.longreprtext
            )

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        if report.failed:
            self.result.errors.append((report.nodeid, report.longreprtext))


def run_pytest(
    args: Sequence[str], *, profile: str | None = None, plugins: Sequence[object] = ()
) -> RunResult:
    """pytest.main(args) without terminal output, xdist or cache; returns what it collected."""
    from .plugin import current_profile  # the plugin module registers the Hypothesis profiles

    collector = Collector()
    before = current_profile()
    options = [*args, "-p", "no:cacheprovider", "-p", "no:xdist", "-p", "no:terminal"]
    if profile is not None:
        options.append(f"--hypothesis-profile={profile}")
    try:
        collector.result.code = int(pytest.main(options, plugins=[collector, *plugins]))
    finally:
        settings.load_profile(before)  # a run loads its profile globally
    return collector.result
