"""The pytest plugin inside each graded kata's process (`-p katas._harness.grading.child`).

Before any submission code runs it reads a key from a pipe (never from argv or the
environment), records the functions the tests trust, and then streams one record per
test to the trusted parent over a second pipe, as soon as the test ends, each record
numbered and signed. Code in a later test cannot rewrite what an earlier test sent.

The verdict is taken from what was raised (`call.excinfo`), not from the report object:
a skip, an xfail or unittest's SkipTest is sent as what it is, and the parent alone
decides which skips are allowed. A test during which a trusted function (or its code,
defaults or closure) was replaced fails.

In `--katas-collect` mode (the grader's own collection of the pristine tree) it sends
each test's id, exercise and GPU markers instead, plus what CUDA the machine has.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import os

import pytest

from ..fingerprint import fingerprint
from ..session import EXERCISE_PROPERTY, TODO_PROPERTY, report_property

FDS_ENV = "KATAS_GRADE_FDS"
MESSAGE_CHARS = 4000
TAMPERED = "grading: {names} replaced while this test ran; the test earns nothing"
PASSED = {"outcome": "passed", "message": "", "todo": False}
UNSHOWABLE = "the test raised {kind}, whose message could not be shown ({error})"


def sign(key: bytes, seq: int, body: str) -> str:
    return hmac.new(key, f"{seq}:{body}".encode(), hashlib.sha256).hexdigest()


def _trusted() -> dict[str, object]:
    import torch

    from .. import testing

    found = {
        "torch.testing.assert_close": torch.testing.assert_close,
        "torch.allclose": torch.allclose,
        "torch.isclose": torch.isclose,
        "torch.equal": torch.equal,
        "torch.Tensor.equal": torch.Tensor.equal,
        "torch.Tensor.allclose": torch.Tensor.allclose,
        "math.isclose": math.isclose,
        "pytest.fail": pytest.fail,
        "pytest.raises": pytest.raises,
        "pytest.approx": pytest.approx,
    }
    for name in dir(testing):
        value = getattr(testing, name)
        if callable(value) and not name.startswith("__"):
            found[f"katas._harness.testing.{name}"] = value
    return found


def _current(name: str) -> object:
    import importlib

    module, _, attr = name.rpartition(".")
    owner_path = module.split(".")
    try:
        owner = importlib.import_module(owner_path[0])
        for part in owner_path[1:]:
            owner = getattr(owner, part)
        return getattr(owner, attr)
    except (ImportError, AttributeError):
        return None


def _verdict(call: pytest.CallInfo) -> tuple[str, str]:
    """(outcome, reason) of one phase from what it raised: passed, failed, skipped or xfailed."""
    excinfo = call.excinfo
    if excinfo is None:
        return "passed", ""
    if excinfo.errisinstance(pytest.skip.Exception):
        return "skipped", _safe_str(excinfo.value)
    if excinfo.errisinstance(pytest.xfail.Exception):
        return "xfailed", _safe_str(excinfo.value)
    import unittest

    if excinfo.errisinstance(unittest.SkipTest):
        return "skipped", _safe_str(excinfo.value)
    return "failed", ""


def _safe_str(value: object) -> str:
    try:
        return str(value)[:MESSAGE_CHARS]
    except Exception as err:  # noqa: BLE001 - a submission's exception may fail to print
        return UNSHOWABLE.format(kind=type(value).__name__, error=type(err).__name__)


class Grader:
    def __init__(self, key: bytes, results_fd: int):
        self.key = key
        self.out = os.fdopen(results_fd, "w", encoding="utf-8", buffering=1)
        self.seq = 0
        self.trusted = {name: (value, fingerprint(value)) for name, value in _trusted().items()}
        self.phases: dict[str, dict] = {}

    def send(self, record: dict) -> None:
        body = json.dumps(record, sort_keys=True)
        self.out.write(json.dumps({"seq": self.seq, "body": body, "mac": sign(self.key, self.seq, body)}))
        self.out.write("\n")
        self.out.flush()
        self.seq += 1

    def replaced(self) -> list[str]:
        return [
            name
            for name, (value, print_) in self.trusted.items()
            if _current(name) is not value or fingerprint(value) != print_
        ]

    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo):
        outcome, reason = _verdict(call)
        try:
            report = yield
            message = report.longreprtext[:MESSAGE_CHARS] if outcome == "failed" else reason
        except Exception as err:  # noqa: BLE001 - e.g. an exception whose __str__ raises
            kind = type(call.excinfo.value).__name__ if call.excinfo else "an error"
            message = UNSHOWABLE.format(kind=kind, error=type(err).__name__)
            report = pytest.TestReport(
                item.nodeid, item.location, {}, "failed", message, call.when, list(item.user_properties)
            )
        if call.when == "call":
            names = self.replaced()
            if names:
                outcome, message = "failed", TAMPERED.format(names=", ".join(names))
                report.outcome, report.longrepr = "failed", message
        phase = {"outcome": outcome, "message": message, "todo": bool(report_property(report, TODO_PROPERTY))}
        if hasattr(report, "wasxfail"):
            phase.update(outcome="xfailed", message=str(report.wasxfail)[:MESSAGE_CHARS])
        self.phases.setdefault(item.nodeid, {})[call.when] = phase
        if call.when == "teardown":  # pytest always tears down, whatever setup did
            self._send_test(item)
        return report

    def _send_test(self, item: pytest.Item) -> None:
        phases = self.phases.pop(item.nodeid, None)
        if phases is None:
            return
        worst = next(
            (
                phases[w]
                for w in ("setup", "call", "teardown")
                if w in phases and phases[w]["outcome"] != "passed"
            ),
            {"outcome": "passed", "message": "", "todo": False},
        )
        self.send(
            {
                "test": item.nodeid,
                "exercise": dict(item.user_properties).get(EXERCISE_PROPERTY),
                "outcome": worst["outcome"],
                "todo": worst["todo"],
                "message": worst["message"],
                "phases": sorted(phases),
            }
        )

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        names = self.replaced()
        self.send({"end": True, "count": self.seq, "exitstatus": int(exitstatus), "tampered": names})
        self.out.close()


class Collection:
    """The grader's collection of its own pristine tree: which tests exist, and which need a GPU."""

    def __init__(self, results_fd: int):
        self.out = os.fdopen(results_fd, "w", encoding="utf-8")

    @pytest.hookimpl(trylast=True)
    def pytest_collection_finish(self, session: pytest.Session) -> None:
        import torch

        tests = {
            item.nodeid: {
                "exercise": dict(item.user_properties).get(EXERCISE_PROPERTY),
                "gpu": item.get_closest_marker("gpu") is not None,
                "multi_gpu": item.get_closest_marker("multi_gpu") is not None,
            }
            for item in session.items
        }
        cuda = torch.cuda.device_count() if torch.cuda.is_available() else 0
        json.dump({"tests": tests, "cuda_devices": cuda}, self.out)
        self.out.close()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("torch-katas")
    group.addoption("--katas-collect", action="store_true", help="(grader) send the collected tests")
    group.addoption("--katas-policy", metavar="FILE", help="(grader) check FILE against the policy first")
    group.addoption("--katas-policy-name", metavar="NAME", help="(grader) FILE's name in the messages")


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    fds = os.environ.pop(FDS_ENV, None)
    if fds is None:
        raise pytest.UsageError("katas._harness.grading.child runs only under `python -m katas grade`")
    key_fd, results_fd = (int(fd) for fd in fds.split(","))
    with os.fdopen(key_fd, "r", encoding="utf-8") as pipe:
        key = bytes.fromhex(pipe.read().strip())
    if config.getoption("katas_collect"):
        config.pluginmanager.register(Collection(results_fd), "katas-collection")
    else:
        grader = Grader(key, results_fd)
        config.pluginmanager.register(grader, "katas-grader")
        _check_policy(config, grader)


def _check_policy(config: pytest.Config, grader: Grader) -> None:
    """The submission policy, before collection imports the file: a violation ends the run here.

    Checked in this process rather than the grader's so that the grader never imports torch
    (the policy asks torch which names are modules); nothing submitted has run yet.
    """
    path = config.getoption("katas_policy")
    if path is None:
        return
    from .. import policy

    with open(path, encoding="utf-8") as handle:
        source = handle.read()
    violations = policy.check(source, config.getoption("katas_policy_name") or path)
    if violations:
        grader.send({"policy": [v.describe() for v in violations]})
        grader.send({"end": True, "count": grader.seq, "exitstatus": 0, "tampered": []})
        grader.out.close()
        pytest.exit("the submission policy refused the kata file", returncode=0)
