"""The pytest plugin inside each graded kata's subprocess (`-p katas._harness.grading.child`).

Before any submission code runs it reads a secret and the report path from a pipe
(never from argv or the environment, which the submission can read), records the
functions the tests trust, and at the end writes every test's outcome, signed
with the secret. A test during which a trusted function was replaced fails.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import os
from pathlib import Path

import pytest

from ..progress import SEVERITY
from ..session import outcome_of

SECRET_FD_ENV = "KATAS_GRADE_FD"
MESSAGE_CHARS = 2000
TAMPERED = "grading: {names} replaced while this test ran; the test earns nothing"


def sign(secret: bytes, body: str) -> str:
    return hmac.new(secret, body.encode("utf-8"), hashlib.sha256).hexdigest()


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


class Grader:
    def __init__(self, secret: bytes, report: Path):
        self.secret, self.report = secret, report
        self.trusted = _trusted()
        self.results: dict[str, dict] = {}

    def replaced(self) -> list[str]:
        return [name for name, value in self.trusted.items() if _current(name) is not value]

    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo):
        report = yield
        if call.when == "call":
            names = self.replaced()
            if names:
                report.outcome = "failed"
                report.longrepr = TAMPERED.format(names=", ".join(names))
        return report

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        recorded = outcome_of(report)
        if recorded is None:
            return
        exercise, outcome = recorded
        previous = self.results.get(report.nodeid)
        if previous is None or SEVERITY[outcome] > SEVERITY[previous["outcome"]]:
            message = report.longreprtext[:MESSAGE_CHARS] if report.failed else ""
            self.results[report.nodeid] = {"exercise": exercise, "outcome": outcome, "message": message}

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        names = self.replaced()
        results = self.results
        if names:  # replaced after the last test ran: trust nothing
            results = {
                k: {**v, "outcome": "failed", "message": TAMPERED.format(names=", ".join(names))}
                for k, v in results.items()
            }
        body = json.dumps({"results": results, "exitstatus": int(exitstatus)}, sort_keys=True)
        self.report.write_text(
            json.dumps({"body": body, "signature": sign(self.secret, body)}), encoding="utf-8"
        )


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    fd = os.environ.pop(SECRET_FD_ENV, None)
    if fd is None:
        raise pytest.UsageError("katas._harness.grading.child runs only under `python -m katas grade`")
    with os.fdopen(int(fd), "r", encoding="utf-8") as pipe:
        handshake = json.loads(pipe.read())
    grader = Grader(bytes.fromhex(handshake["secret"]), Path(handshake["report"]))
    config.pluginmanager.register(grader, "katas-grader")
