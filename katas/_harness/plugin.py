"""The pytest plugin behind every kata run (loaded by the root conftest.py)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, Phase, settings

from . import messages as msg
from .importer import KataModuleFinder
from .known_errors import likely_cause
from .manifest import PROJECT_ROOT, Manifest, ManifestError, UnknownExercise, load
from .progress import Progress

# Torch code is too slow for Hypothesis's default 200 ms deadline on a busy laptop.
settings.register_profile("katas", deadline=None)
# For the project's own checks: the same examples every time, and no time spent shrinking.
settings.register_profile(
    "katas-check",
    deadline=None,
    derandomize=True,
    database=None,
    phases=[Phase.explicit, Phase.reuse, Phase.generate],
    suppress_health_check=[HealthCheck.too_slow],
)

STATE = pytest.StashKey["KataSession"]()
MISSING_GPU = pytest.StashKey[str]()
EXERCISE_PROPERTY = "katas_exercise"
TODO_PROPERTY = "katas_todo"
REQUIRE_GPU_ENV = "KATAS_REQUIRE_GPU"
# A learner's infinite loop should cost a minute, not the afternoon (pytest-timeout).
KATA_TEST_TIMEOUT = 60


class StubNotImplemented(BaseException):
    """An untouched stub, raised past Hypothesis so that it stops at the first example.

    Hypothesis catches Exception subclasses and shrinks them, which for a stub that
    fails on every input costs seconds per test; a BaseException ends the test at once.
    """


class TodoFailed(pytest.fail.Exception):
    """A test failed because it reached an untouched stub: report the one TODO line."""

    def __init__(self, todo: str):
        super().__init__(todo, pytrace=False)


class KataSession:
    def __init__(self, manifest: Manifest, source_root: Path, against_solutions: bool):
        self.manifest = manifest
        self.source_root = source_root
        self.against_solutions = against_solutions
        self.finder = KataModuleFinder.for_manifest(manifest, source_root)
        self.progress = Progress()
        self.katas_dir = manifest.root / "katas"
        self.stub_files = {kata.stub_path(source_root).resolve(): kata for kata in manifest.katas}

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        properties = dict(report.user_properties)
        qualname = properties.get(EXERCISE_PROPERTY)
        if qualname is None:
            return
        if report.failed:
            outcome = "todo" if properties.get(TODO_PROPERTY) else "failed"
        elif report.skipped:
            outcome = "skipped"
        elif report.when == "call":
            outcome = "passed"
        else:
            return
        self.progress.record(report.nodeid, qualname, outcome)

    @pytest.hookimpl(trylast=True)
    def pytest_terminal_summary(self, terminalreporter) -> None:
        if not self.progress.outcomes:
            return
        terminalreporter.write_sep("=", msg.PROGRESS_TITLE)
        for line in self.progress.render(self.manifest, self.source_root, self.against_solutions):
            terminalreporter.write_line(line)

    def kata_of(self, path: Path):
        """The manifest kata whose folder holds `path`, None outside katas/, or raise."""
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


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("torch-katas")
    group.addoption(
        "--solutions",
        action="store_true",
        help="run kata tests against the reference solutions in solutions/ instead of your stubs",
    )
    group.addoption(
        "--exercise",
        metavar="NAME",
        help="run only the tests of one exercise, KATA/FUNCTION or a unique FUNCTION",
    )
    group.addoption(
        "--katas-source",
        metavar="DIR",
        help="(maintainers) import kata modules from DIR/<kata>/<module>.py, e.g. a mutant",
    )
    group.addoption(
        "--katas-root",
        metavar="DIR",
        help="(maintainers) project root holding katas/manifest.toml; default: this checkout",
    )


@pytest.hookimpl(trylast=True)
def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "exercise(name): the manifest exercise a kata test belongs to")
    config.addinivalue_line("markers", f"gpu: {msg.NEEDS_CUDA}; skipped without it")
    config.addinivalue_line("markers", f"multi_gpu: {msg.NEEDS_MULTI_GPU}; skipped without them")
    if settings.get_current_profile_name() == "default":
        settings.load_profile("katas")

    root = Path(config.getoption("katas_root") or PROJECT_ROOT).resolve()
    try:
        manifest = load(root)
    except ManifestError as err:
        raise pytest.UsageError(str(err)) from None
    against_solutions = bool(config.getoption("solutions"))
    source = config.getoption("katas_source")
    if source:
        source_root = Path(source).resolve()
    else:
        source_root = root / ("solutions" if against_solutions else "katas")
    session = KataSession(manifest, source_root, against_solutions)
    session.finder.install()
    config.stash[STATE] = session
    if not hasattr(config, "workerinput"):  # under xdist only the controller reports progress
        config.pluginmanager.register(session, "katas-progress")


def pytest_unconfigure(config: pytest.Config) -> None:
    session = config.stash.get(STATE, None)
    if session is not None:
        session.finder.uninstall()
        if config.pluginmanager.is_registered(session):
            config.pluginmanager.unregister(session)


def pytest_sessionstart(session: pytest.Session) -> None:
    """Forget kata test modules cached by an earlier in-process run (they hold the old stubs)."""
    katas_dir = str(session.config.stash[STATE].katas_dir.resolve())
    for name, module in list(sys.modules.items()):
        filename = getattr(module, "__file__", None) or ""
        if filename.startswith(katas_dir) and Path(filename).name.startswith("test_"):
            del sys.modules[name]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    state = config.stash[STATE]
    wanted = _wanted_exercise(config, state.manifest)
    selected, deselected = [], []
    needs_gpu_check = False
    for item in items:
        kata = state.kata_of(item.path)
        if kata is None:
            selected.append(item)
            continue
        marker = item.get_closest_marker("exercise")
        names = [ex.name for ex in kata.exercises]
        if marker is None or not marker.args or marker.args[0] not in names:
            raise pytest.UsageError(
                msg.UNMARKED_TEST.format(nodeid=item.nodeid, kata=kata.name, names=", ".join(names))
            )
        qualname = f"{kata.name}/{marker.args[0]}"
        if wanted is not None and qualname != wanted:
            deselected.append(item)
            continue
        item.user_properties.append((EXERCISE_PROPERTY, qualname))
        _stop_hypothesis_at_stubs(item, state)
        if item.get_closest_marker("timeout") is None:
            item.add_marker(pytest.mark.timeout(KATA_TEST_TIMEOUT))
        needs_gpu_check |= any(item.iter_markers("gpu")) or any(item.iter_markers("multi_gpu"))
        selected.append(item)
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = selected
    if needs_gpu_check:
        _mark_gpu_skips(items)


def _stop_hypothesis_at_stubs(item: pytest.Item, state: KataSession) -> None:
    handle = getattr(getattr(item, "obj", None), "hypothesis", None)
    inner = getattr(handle, "inner_test", None)
    if inner is None or getattr(inner, "_katas_wrapped", False):
        return

    def inner_test(*args, **kwargs):
        try:
            return inner(*args, **kwargs)
        except NotImplementedError as err:
            todo = _todo_line(state, pytest.ExceptionInfo.from_exception(err))
            if todo is None:
                raise
            raise StubNotImplemented(todo) from None

    inner_test._katas_wrapped = True
    handle.inner_test = inner_test


def _wanted_exercise(config: pytest.Config, manifest: Manifest) -> str | None:
    name = config.getoption("exercise")
    if not name:
        return None
    try:
        return manifest.exercise(name).qualname
    except UnknownExercise as err:
        close = f"; did you mean {', '.join(err.suggestions)}?" if err.suggestions else ""
        raise pytest.UsageError(msg.UNKNOWN_EXERCISE_OPTION.format(name=name, close=close)) from None


def _mark_gpu_skips(items: list[pytest.Item]) -> None:
    import torch

    devices = torch.cuda.device_count() if torch.cuda.is_available() else 0
    require = os.environ.get(REQUIRE_GPU_ENV, "") == "1"
    for item in items:
        if any(item.iter_markers("multi_gpu")) and devices < 2:
            reason = msg.NEEDS_MULTI_GPU
        elif any(item.iter_markers("gpu")) and devices < 1:
            reason = msg.NEEDS_CUDA
        else:
            continue
        if require:
            item.stash[MISSING_GPU] = reason
        else:
            item.add_marker(pytest.mark.skip(reason=reason))


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_call(item: pytest.Item) -> None:
    reason = item.stash.get(MISSING_GPU, None)
    if reason is not None:
        pytest.fail(msg.REQUIRED_GPU_MISSING.format(reason=reason), pytrace=False)


@pytest.hookimpl(wrapper=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function):
    # Turned into a message-only failure here, before pytest renders a traceback it would discard.
    try:
        return (yield)
    except StubNotImplemented as err:
        raise TodoFailed(str(err)) from None
    except NotImplementedError as err:
        todo = _todo_line(pyfuncitem.config.stash[STATE], pytest.ExceptionInfo.from_exception(err))
        if todo is None:
            raise
        raise TodoFailed(todo) from None


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> pytest.TestReport | None:
    """The report of a test stopped by an untouched stub: its one TODO line, nothing to render."""
    excinfo = call.excinfo
    if excinfo is None:
        return None
    if excinfo.errisinstance(TodoFailed):
        todo = str(excinfo.value)
    else:
        todo = _todo_line(item.config.stash[STATE], excinfo)  # a stub reached from a fixture
    if todo is None:
        return None
    return pytest.TestReport(
        item.nodeid,
        item.location,
        dict.fromkeys(item.keywords, 1),
        "failed",
        todo,
        call.when,
        [(f"Captured {key} {when}", content) for when, key, content in item._report_sections],
        call.duration,
        call.start,
        call.stop,
        user_properties=[*item.user_properties, (TODO_PROPERTY, True)],
    )


@pytest.hookimpl(wrapper=True, specname="pytest_runtest_makereport")
def pytest_runtest_makereport_likely_cause(item: pytest.Item, call: pytest.CallInfo):
    """Append what usually causes a known PyTorch error to its report."""
    report = yield
    excinfo = call.excinfo
    if excinfo is None or not report.failed:
        return report
    cause = likely_cause(str(excinfo.value))
    if cause is not None and hasattr(report.longrepr, "addsection"):
        report.longrepr.addsection(msg.LIKELY_CAUSE_TITLE, cause)
    return report


def _todo_line(state: KataSession, excinfo: pytest.ExceptionInfo) -> str | None:
    """One line for a NotImplementedError raised by an untouched stub, else None."""
    if not excinfo.errisinstance(NotImplementedError) or not excinfo.traceback:
        return None
    frame = excinfo.traceback[-1]
    kata = state.stub_files.get(Path(frame.path).resolve())
    if kata is None:
        return None
    function = frame.name
    exercise = next((ex.qualname for ex in kata.exercises if ex.name == function), kata.name)
    path = Path(frame.path).resolve()
    try:
        shown = path.relative_to(state.manifest.root)
    except ValueError:
        shown = path
    return msg.TODO_LINE.format(function=function, path=shown, exercise=exercise)
