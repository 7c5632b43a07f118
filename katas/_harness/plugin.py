"""The pytest plugin behind every kata run (switched on by pytest_entry.py): hooks only."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, Phase, settings

from . import gpu, policy, stubs, tracebacks
from . import messages as msg
from .known_errors import likely_cause
from .manifest import PROJECT_ROOT, Manifest, ManifestError, UnknownExercise, load
from .session import EXERCISE_PROPERTY, TODO_PROPERTY, KataSession, carry_properties, report_property

# Learners re-run a kata every few minutes: 30 random cases per property keep a run short
# and still catch every mutant in tests/mutants/. No deadline: torch code on a busy laptop
# is too slow for Hypothesis's default 200 ms.
KATA_EXAMPLES = 30
# No explain phase: its "lines only run by failing examples" point into the harness, not at the
# learner's mistake.
LEARNER_PHASES = [Phase.explicit, Phase.reuse, Phase.generate, Phase.target, Phase.shrink]
settings.register_profile("katas", deadline=None, max_examples=KATA_EXAMPLES, phases=LEARNER_PHASES)
# For the project's own checks: as many cases as a learner gets, the same ones every time,
# and no time spent shrinking.
settings.register_profile(
    "katas-check",
    deadline=None,
    max_examples=KATA_EXAMPLES,
    derandomize=True,
    database=None,
    phases=[Phase.explicit, Phase.reuse, Phase.generate],
    suppress_health_check=[HealthCheck.too_slow],
)

SESSION = pytest.StashKey[KataSession]()
# A learner's infinite loop should cost a minute, not the afternoon (pytest-timeout).
KATA_TEST_TIMEOUT = 60


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
        "--all",
        dest="katas_all",
        action="store_true",
        default=None,
        help="show every failing exercise's full message (default: the current exercise's; -v does the same)",
    )
    parser.addini("katas_all", type="bool", default=False, help="the default of --all")
    group.addoption(
        "--katas-source",
        metavar="DIR",
        help="(maintainers) import kata modules from DIR/<kata>/<module>.py, e.g. a mutant",
    )
    group.addoption(
        "--katas-root",
        metavar="DIR",
        help="(maintainers) project root holding katas/manifest.toml; default: found from the paths given",
    )


@pytest.hookimpl(trylast=True)
def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "exercise(name): the manifest exercise a kata test belongs to")
    config.addinivalue_line("markers", f"gpu: {msg.NEEDS_CUDA}; skipped without it")
    config.addinivalue_line("markers", f"multi_gpu: {msg.NEEDS_MULTI_GPU}; skipped without them")
    if current_profile() == "default":  # never override --hypothesis-profile or CI's
        settings.load_profile("katas")

    from .pytest_entry import FOUND_ROOT  # here, not above: the root conftest asks if pytest loaded it

    root = Path(config.getoption("katas_root") or config.stash.get(FOUND_ROOT, PROJECT_ROOT)).resolve()
    try:
        manifest = load(root)
    except ManifestError as err:
        raise pytest.UsageError(str(err)) from None
    against_solutions = bool(config.getoption("solutions"))
    source = config.getoption("katas_source")
    source_root = Path(source).resolve() if source else root / ("solutions" if against_solutions else "katas")
    session = KataSession(manifest, source_root, against_solutions, show_all=_show_all(config))
    session.finder.install()
    config.stash[SESSION] = session
    if not hasattr(config, "workerinput"):  # under xdist only the controller reports progress
        config.pluginmanager.register(session, "katas-progress")
        config.pluginmanager.register(session.focus, "katas-focus")


def _show_all(config: pytest.Config) -> bool:
    """Every failure in full, not only the current exercise's: asked for, or a run that is not the
    learner's own practice (solutions, one exercise, a mutant, the grader)."""
    chosen = config.getoption("katas_all")
    return bool(
        (config.getini("katas_all") if chosen is None else chosen)
        or config.getoption("verbose", 0) > 0  # absent under -p no:terminal (list, watch)
        or config.getoption("solutions")
        or config.getoption("exercise")
        or config.getoption("katas_source")
        or config.pluginmanager.has_plugin("katas._harness.grading.child")
    )


def current_profile() -> str:
    getter = getattr(settings, "get_current_profile_name", None)  # absent in older Hypothesis
    return getter() if getter else settings._current_profile


def pytest_report_header(config: pytest.Config) -> str:
    session = config.stash[SESSION]
    return msg.HEADER.format(source=session.shown_path(session.source_root))


def pytest_unconfigure(config: pytest.Config) -> None:
    session = config.stash.get(SESSION, None)
    if session is not None:
        session.finder.uninstall()
        for plugin in (session, session.focus):
            if config.pluginmanager.is_registered(plugin):
                config.pluginmanager.unregister(plugin)


def pytest_sessionstart(session: pytest.Session) -> None:
    """Forget kata test modules cached by an earlier in-process run (they hold the old stubs)."""
    katas_dir = str(session.config.stash[SESSION].katas_dir.resolve())
    for name, module in list(sys.modules.items()):
        filename = getattr(module, "__file__", None) or ""
        if filename.startswith(katas_dir) and Path(filename).name.startswith("test_"):
            del sys.modules[name]


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(collector: pytest.Collector):
    report = yield
    if report.failed and isinstance(collector, pytest.Module):
        session = collector.config.stash[SESSION]
        kata = session.kata_of(collector.path)
        if kata is not None:
            stubs.explain_import_failure(report, kata.stub_path(session.source_root), session)
    return report


def pytest_collection_finish(session: pytest.Session) -> None:
    torch = sys.modules.get("torch")
    if torch is not None:
        # Kata tensors are tiny: one thread avoids pool stalls on a busy laptop or under -n 2.
        torch.set_num_threads(1)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    session = config.stash[SESSION]
    wanted = _wanted_exercise(config, session.manifest)
    selected, deselected = [], []
    for item in items:
        kata = session.kata_of(item.path)
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
        stubs.stop_hypothesis_at_stubs(item, session)
        tracebacks.hide_torch_frames(item)
        if item.get_closest_marker("timeout") is None:
            item.add_marker(pytest.mark.timeout(KATA_TEST_TIMEOUT))
        selected.append(item)
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = selected
    if any(gpu.needs_gpu(item) for item in items):
        gpu.mark_gpu_skips(items)


def _wanted_exercise(config: pytest.Config, manifest: Manifest) -> str | None:
    name = config.getoption("exercise")
    if not name:
        return None
    try:
        return manifest.exercise(name).qualname
    except UnknownExercise as err:
        close = f"; did you mean {', '.join(err.suggestions)}?" if err.suggestions else ""
        raise pytest.UsageError(msg.UNKNOWN_EXERCISE_OPTION.format(name=name, close=close)) from None


@pytest.hookimpl(trylast=True)
def pytest_terminal_summary(terminalreporter, config: pytest.Config) -> None:
    """Warn, in the grader's own words, about each kata file of this run the grader would score zero."""
    session = config.stash.get(SESSION, None)
    if session is None or hasattr(config, "workerinput"):
        return
    seen = session.progress.katas_seen
    lines = [
        line
        for kata in session.manifest.katas
        if kata.name in seen
        for line in policy.learner_warning(
            kata.name, kata.stub_path(session.source_root), str(session.stub_path(kata))
        )
    ]
    if lines:
        terminalreporter.write_sep("=", policy.text("title"), yellow=True, bold=True)
        for line in lines:
            terminalreporter.write_line(line, yellow=True)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_call(item: pytest.Item) -> None:
    gpu.fail_if_required_gpu_missing(item)


@pytest.hookimpl(wrapper=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function):
    # A stub becomes a message-only failure here, before pytest renders a traceback it would discard.
    try:
        return (yield)
    except (NotImplementedError, stubs.StubNotImplemented) as err:
        todo = stubs.as_todo_failure(err, pyfuncitem.config.stash[SESSION])
        if todo is None:
            raise
        raise todo from None


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> pytest.TestReport | None:
    # Hypothesis would offer a patch adding failing examples to the test file; a learner edits
    # only the stub (and computing the patch imports libcst). Drop the examples it recorded.
    item.__dict__.pop("_hypothesis_failing_examples", None)
    return stubs.todo_report(item, call, item.config.stash[SESSION])


@pytest.hookimpl(wrapper=True, tryfirst=True, specname="pytest_runtest_makereport")
def pytest_runtest_makereport_explain(item: pytest.Item, call: pytest.CallInfo):
    """Outermost: add the likely cause of a known PyTorch error; keep a TODO report one line.

    The harness's properties move to attributes of the report when `--junitxml` writes it: a
    learner's JUnit XML stays valid xunit2 (watch and list never write JUnit and read them too).
    """
    report = yield
    carry_properties(report, keep_user_properties=not item.config.getoption("xmlpath", None))
    if report_property(report, TODO_PROPERTY):
        # Hypothesis adds a section with a seed to reproduce; a stub needs no reproducing.
        report.sections = [s for s in report.sections if s[0] != "Hypothesis"]
        return report
    excinfo = call.excinfo
    # Only errors raised by PyTorch or Python: a test's own teaching message says what it means.
    raised = excinfo is not None and not excinfo.errisinstance(pytest.fail.Exception)
    if raised and report.failed and call.when == "call" and item.config.stash[SESSION].kata_of(item.path):
        if item.config.getoption("tbstyle", "auto") == "auto":  # a learner's --tb=... wins
            report.longrepr = tracebacks.short_repr(item, excinfo)
    if raised and report.failed and hasattr(report.longrepr, "addsection"):
        cause = likely_cause(str(excinfo.value))
        if cause is not None:
            report.longrepr.addsection(msg.LIKELY_CAUSE_TITLE, cause)
    return report
