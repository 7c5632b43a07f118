"""Turn test outcomes into per-exercise progress and render the progress section."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from . import messages as msg
from . import review
from .manifest import Exercise, Kata, Manifest


@dataclass
class Tally:
    passed: int = 0
    failed: int = 0
    todo: int = 0
    skipped: int = 0

    @property
    def total(self) -> int:
        return self.passed + self.failed + self.todo + self.skipped

    @property
    def status(self) -> str:
        if self.total == 0:
            return "not run"
        if self.failed:
            return "failing"
        if self.todo:
            return "todo"
        if self.passed:
            return "done"
        return "skipped"

    def describe(self) -> str:
        status = self.status
        if status == "failing":
            return msg.STATUS_FAILING.format(failed=self.failed, total=self.total)
        if status == "done" and self.skipped:
            return msg.STATUS_DONE_SKIPPED.format(skipped=self.skipped)
        return msg.STATUS_WORDS[status]

    def counts(self) -> dict[str, int]:
        return {"passed": self.passed, "failed": self.failed, "todo": self.todo, "skipped": self.skipped}


def tally_by_exercise(pairs: Iterable[tuple[str, str]]) -> dict[str, Tally]:
    """Count (exercise, outcome) pairs, outcome one of passed, failed, todo, skipped."""
    tallies: dict[str, Tally] = defaultdict(Tally)
    for exercise, outcome in pairs:
        tally = tallies[exercise]
        setattr(tally, outcome, getattr(tally, outcome) + 1)
    return dict(tallies)


SEVERITY = {"passed": 0, "skipped": 1, "todo": 2, "failed": 3}


@dataclass
class Progress:
    """Outcomes of kata tests, fed one test phase at a time; the worst phase wins."""

    outcomes: dict[str, tuple[str, str]] = field(default_factory=dict)
    broken: set[str] = field(default_factory=set)  # katas whose test module failed to import

    def record(self, nodeid: str, qualname: str, outcome: str) -> None:
        """outcome is one of passed, failed, todo, skipped."""
        previous = self.outcomes.get(nodeid)
        if previous is None or SEVERITY[outcome] > SEVERITY[previous[1]]:
            self.outcomes[nodeid] = (qualname, outcome)

    @property
    def tallies(self) -> dict[str, Tally]:
        return tally_by_exercise(self.outcomes.values())

    @property
    def katas_seen(self) -> set[str]:
        return {qualname.split("/")[0] for qualname, _ in self.outcomes.values()} | self.broken

    def status(self, exercise: Exercise) -> str:
        return self.tallies.get(exercise.qualname, Tally()).status

    def next_exercise(self, manifest: Manifest) -> Exercise | None:
        seen = self.katas_seen
        for kata in manifest.katas:
            if kata.name not in seen or kata.name in self.broken:
                continue
            for exercise in kata.exercises:
                if self.status(exercise) in ("failing", "todo"):
                    return exercise
        return None

    def render(
        self, manifest: Manifest, stub_path: Callable[[Kata], Path], against_solutions: bool
    ) -> list[str]:
        """The progress section; stub_path(kata) is the file to edit, as the learner should see it."""
        lines: list[str] = []
        if against_solutions:
            lines.append(msg.PROGRESS_AGAINST_SOLUTIONS)
        partial = False
        seen, tallies = self.katas_seen, self.tallies
        for kata in manifest.katas:
            if kata.name not in seen:
                continue
            if kata.name in self.broken:
                lines.append(msg.PROGRESS_BROKEN.format(kata=kata.name, path=stub_path(kata)))
                continue
            lines.extend(self._render_kata(kata, tallies))
            partial |= any(tallies.get(ex.qualname, Tally()).status == "not run" for ex in kata.exercises)
        if not against_solutions:  # advice on passing code: python -m katas review
            done = {k.name: {e.name for e in k.exercises if self.status(e) == "done"} for k in manifest.katas}
            lines += review.progress_lines(manifest, lambda kata: manifest.root / stub_path(kata), done)
        if self.broken:
            return lines  # fixing the file comes first; its line above says so
        upcoming = self.next_exercise(manifest)
        if upcoming is not None:
            path = stub_path(manifest.kata(upcoming.kata))
            lines.append(msg.PROGRESS_NEXT.format(exercise=upcoming.qualname, path=path))
        elif partial:
            lines.append(msg.PROGRESS_PARTIAL)
        else:
            lines.append(msg.PROGRESS_ALL_DONE)
        return lines

    def _render_kata(self, kata: Kata, tallies: dict[str, Tally]) -> list[str]:
        done = sum(tallies.get(ex.qualname, Tally()).status == "done" for ex in kata.exercises)
        lines = [msg.PROGRESS_KATA_LINE.format(kata=kata.name, done=done, total=len(kata.exercises))]
        width = max(len(ex.name) for ex in kata.exercises)
        for ex in kata.exercises:
            tally = tallies.get(ex.qualname, Tally())
            lines.append(
                msg.PROGRESS_EXERCISE_LINE.format(
                    mark=msg.STATUS_MARKS[tally.status], name=ex.name, width=width, status=tally.describe()
                )
            )
        return lines
