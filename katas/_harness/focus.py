"""One exercise at a time: a learner's run prints the current exercise's failures only."""

from __future__ import annotations

from collections.abc import Callable, Generator

import pytest

from .manifest import Exercise


class LaterExercisesHidden:
    """Registered beside KataSession: keeps failures (and TODOs) of every exercise but the
    current one out of the FAILURES and short summary sections, and the current exercise's TODO
    but once (each of its tests says the same line); the progress section gives every exercise
    one line instead."""

    def __init__(self, current: Callable[[], Exercise | None]) -> None:
        self.current = current
        self.failures: list[tuple[pytest.TestReport, str, bool]] = []  # (report, exercise, a TODO)
        self.hidden = 0

    def keep(self, report: pytest.TestReport, exercise: str, todo: bool) -> None:
        self.failures.append((report, exercise, todo))

    def hidden_reports(self, current: Exercise) -> set[int]:
        hidden, todo_shown = set(), False
        for report, exercise, todo in self.failures:
            if exercise != current.qualname or (todo and todo_shown):
                hidden.add(id(report))
            elif todo:
                todo_shown = True
        return hidden

    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_terminal_summary(self, terminalreporter) -> Generator[None, object, object]:
        # Outermost around the terminal reporter's own summary wrapper: the hidden reports are
        # back in `stats` before its final count line. Outcomes, counts, the exit status, JUnit
        # XML and the grader (which reads each report as it is made) see every report whole.
        # pytest has no narrower public way to leave a report out of FAILURES: `stats` is the
        # attribute of pytest.TerminalReporter that plugins read; checked on pytest 8.1.0 (the
        # floor) and 9.2.
        current = self.current()
        failed = terminalreporter.stats.get("failed", [])
        if current is not None:
            hidden = self.hidden_reports(current)
            shown = [r for r in failed if id(r) not in hidden]
            self.hidden = len(failed) - len(shown)
            if self.hidden:
                terminalreporter.stats["failed"] = shown
        try:
            return (yield)
        finally:
            if self.hidden:
                terminalreporter.stats["failed"] = failed
