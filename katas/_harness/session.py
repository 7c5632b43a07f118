"""One pytest run's view of the kata set: where stubs live, and the progress so far."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest

from . import messages as msg
from . import record
from .focus import LaterExercisesHidden
from .importer import KataModuleFinder
from .manifest import Kata, Manifest, UnknownExercise
from .progress import Progress

# Carried on items and test reports as user_properties; on reports also as attributes of the
# same names, which pytest-xdist serialises with the report.
EXERCISE_PROPERTY = "katas_exercise"
TODO_PROPERTY = "katas_todo"
HARNESS_PROPERTIES = (EXERCISE_PROPERTY, TODO_PROPERTY)


def report_property(report: pytest.TestReport, name: str) -> object:
    """One of HARNESS_PROPERTIES of a report: its attribute, else its user_properties entry."""
    value = getattr(report, name, None)
    return value if value is not None else dict(report.user_properties).get(name)


def carry_properties(report: pytest.TestReport, *, keep_user_properties: bool) -> None:
    """Copy the harness's user_properties to attributes of the report; drop them from
    user_properties unless kept (`--junitxml` writes user_properties as <properties> inside
    <testcase>, which the xunit2 schema does not allow)."""
    for name, value in report.user_properties:
        if name in HARNESS_PROPERTIES:
            setattr(report, name, value)
    if not keep_user_properties:
        report.user_properties = [p for p in report.user_properties if p[0] not in HARNESS_PROPERTIES]


def outcome_of(report: pytest.TestReport) -> tuple[str, str] | None:
    """(exercise, outcome) that one phase of a kata test adds to progress, if any.

    outcome is passed, skipped, todo (an untouched stub) or failed.
    """
    qualname = report_property(report, EXERCISE_PROPERTY)
    if qualname is None:
        return None
    if report.failed:
        return qualname, "todo" if report_property(report, TODO_PROPERTY) else "failed"
    if report.skipped:
        return qualname, "skipped"
    if report.when == "call":
        return qualname, "passed"
    return None


class KataSession:
    """Registered as a plugin on the controller: records outcomes and prints progress."""

    def __init__(self, manifest: Manifest, source_root: Path, against_solutions: bool, show_all: bool = True):
        self.manifest = manifest
        self.show_all = show_all
        self.focus = LaterExercisesHidden(lambda: self.progress.next_exercise(self.manifest))
        self.source_root = source_root
        self.against_solutions = against_solutions
        self.finder = KataModuleFinder.for_manifest(manifest, source_root)
        self.progress = Progress()
        self.katas_dir = manifest.root / "katas"
        self.stub_files = {kata.stub_path(source_root).resolve(): kata for kata in manifest.katas}

    def kata_of(self, path: Path) -> Kata | None:
        """The manifest kata whose folder holds `path`, None outside kata folders, or raise."""
        try:
            relative = path.resolve().relative_to(self.katas_dir.resolve())
        except ValueError:
            return None
        if len(relative.parts) < 2 or relative.parts[0].startswith("_"):
            return None
        try:
            return self.manifest.kata(relative.parts[0])
        except UnknownExercise:
            raise pytest.UsageError(msg.UNKNOWN_KATA_DIR.format(path=path.parent)) from None

    def shown_path(self, path: Path) -> Path:
        try:
            return path.resolve().relative_to(self.manifest.root)
        except ValueError:
            return path

    def stub_path(self, kata: Kata) -> Path:
        return self.shown_path(kata.stub_path(self.source_root))

    def todo_line(self, excinfo: pytest.ExceptionInfo) -> str | None:
        """One line for a NotImplementedError raised by an untouched stub, else None.

        An error carried over from another process (a DataLoader worker, a
        distributed rank) names its origin in `stub_origin = (path, function)`.
        """
        if not excinfo.errisinstance(NotImplementedError):
            return None
        origin = getattr(excinfo.value, "stub_origin", None)
        if origin is None:
            if not excinfo.traceback:
                return None
            frame = excinfo.traceback[-1]
            origin = (frame.path, _qualified_name(frame))
        path, function = Path(origin[0]), origin[1]
        kata = self.stub_files.get(path.resolve())
        if kata is None:
            return None
        names = {ex.name for ex in kata.exercises}
        exercise_name = function if function in names else function.split(".")[0]
        exercise = next((ex.qualname for ex in kata.exercises if ex.name == exercise_name), kata.name)
        return msg.TODO_LINE.format(function=function, path=self.shown_path(path), exercise=exercise)

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        if report.failed and report.nodeid:
            kata = self.kata_of(self.manifest.root / report.nodeid.split("::")[0])
            if kata is not None:
                self.progress.broken.add(kata.name)

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        recorded = outcome_of(report)
        if recorded is not None:
            self.progress.record(report.nodeid, *recorded)
            if recorded[1] in ("failed", "todo") and not self.show_all:
                self.focus.keep(report, recorded[0], todo=recorded[1] == "todo")

    def pytest_sessionfinish(self) -> None:
        if self.source_root.resolve() == self.katas_dir.resolve():  # the learner's own stubs
            record.update(self.manifest.root, self._results(), self.katas_dir)

    def _results(self) -> dict[Kata, dict[str, dict]]:
        tallies = self.progress.tallies
        results: dict[Kata, dict[str, dict]] = {}
        for kata in self.manifest.katas:
            if kata.name in self.progress.broken:
                results[kata] = {ex.name: {record.BROKEN: True} for ex in kata.exercises}
                continue
            ran = {ex.name: tallies[ex.qualname].counts() for ex in kata.exercises if ex.qualname in tallies}
            if ran:
                results[kata] = ran
        return results

    @pytest.hookimpl(trylast=True)
    def pytest_terminal_summary(self, terminalreporter) -> None:
        if not (self.progress.outcomes or self.progress.broken):
            return
        terminalreporter.write_sep("=", msg.PROGRESS_TITLE)
        lines = self.progress.render(self.manifest, self.stub_path, self.against_solutions)
        if self.focus.hidden:
            lines.append(msg.PROGRESS_HIDDEN.format(count=self.focus.hidden))
        for line in lines:
            terminalreporter.write_line(line)


def _qualified_name(entry) -> str:
    """`Class.method` for a method of a class stub, else the plain function name."""
    code = entry.frame.code.raw
    qualname = getattr(code, "co_qualname", None)  # Python 3.11+
    if qualname is not None:
        return qualname
    for owner in list(entry.frame.f_globals.values()):  # Python 3.10: find the class defining it
        if isinstance(owner, type):
            for attribute in vars(owner).values():
                function = inspect.unwrap(getattr(attribute, "__func__", attribute))
                if getattr(function, "__code__", None) is code:
                    return f"{owner.__name__}.{entry.name}"
    return entry.name
