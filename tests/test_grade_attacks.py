"""Attacks on the grader, by class: each must score exactly the honest score.

The first kata (00) is left unsolved and carries the attack, so its honest score is 0;
the second (01) is solved where an attack tries to harm another kata. Two layers are
checked separately: the submission policy refuses the attack before anything imports
it, and, with the policy switched off, the cage and the in-process checks still hold.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import resource
import secrets
import signal
import time
from pathlib import Path

import pytest

from katas._harness.grading import run, sandbox
from katas._harness.grading.run import Grader, Limits
from tests.load import scaled
from tests.test_grade import FIRST, SECOND, points, submission, two_katas  # noqa: F401

ATTACK_LIMITS = Limits(kata_timeout=scaled(240), test_timeout=int(scaled(120)), memory_mb=4096)
FIRST_FILE = f"katas/{FIRST.name}/{FIRST.module}.py"


@pytest.fixture(scope="module")
def grader(two_katas):  # noqa: F811
    with Grader(two_katas, ATTACK_LIMITS) as warm:
        yield warm


@pytest.fixture(scope="module")
def unchecked(two_katas):  # noqa: F811
    """The second layer alone: a grader that skips the submission policy."""
    with Grader(two_katas, dataclasses.replace(ATTACK_LIMITS, policy=False)) as warm:
        yield warm


def stub_of(grader) -> str:
    return FIRST.stub_path(grader.manifest.root / "katas").read_text(encoding="utf-8")


def solution_of(grader, kata=FIRST) -> str:
    return kata.stub_path(grader.manifest.root / "solutions").read_text(encoding="utf-8")


def every_body(stub: str, statement: str, header: str = "") -> str:
    """The stub with each `raise NotImplementedError(...)` replaced by `statement`."""
    body = re.sub(r"raise NotImplementedError\(.*\)", statement, stub)
    future = "from __future__ import annotations\n"
    return body.replace(future, f"{future}{header}\n")


def graded(grader, tmp_path, text: str, solved=()):
    return grader.grade(submission(tmp_path, grader.manifest, solved=solved, edits={FIRST_FILE: text}))


def first(result):
    return next(k for k in result.katas if k.kata == FIRST.name)


# --- skipping -------------------------------------------------------------------------------

SKIPS = {
    "pytest.skip": ("import pytest", 'pytest.skip("later")'),
    "pytest.xfail": ("import pytest", 'pytest.xfail("later")'),
    "unittest.SkipTest": ("import unittest", 'raise unittest.SkipTest("later")'),
    "pytest.skip at import": ("import pytest", "return None"),
}


@pytest.mark.parametrize("kind", SKIPS)
def test_a_skip_raised_by_the_submission_is_a_failure(unchecked, tmp_path, kind):
    grader = unchecked
    header, statement = SKIPS[kind]
    if kind == "pytest.skip at import":
        header += '\npytest.skip("later", allow_module_level=True)'
    result = graded(grader, tmp_path, every_body(stub_of(grader), statement, header))
    assert points(result)[FIRST.name] == 0, kind
    notes = " ".join(e.message for e in first(result).exercises)
    assert "skip" in notes or "missing" in notes, notes


@pytest.mark.parametrize("kind", SKIPS)
def test_the_policy_refuses_a_skip_before_it_runs(grader, tmp_path, kind):
    header, statement = SKIPS[kind]
    result = graded(grader, tmp_path, every_body(stub_of(grader), statement, header))
    kata = first(result)
    assert kata.points == 0 and "policy" in (kata.problem or ""), kind
    assert FIRST_FILE in kata.problem and re.search(r":\d+", kata.problem), kata.problem


# --- values that lie, checks switched off -----------------------------------------------------

LIAR = """
class Anything(float):
    def __eq__(self, other):
        return True
    __ne__ = lambda self, other: False
    __hash__ = float.__hash__
"""


def test_a_float_that_equals_everything_earns_nothing(unchecked, tmp_path):
    grader = unchecked
    stub = stub_of(grader) + LIAR
    text = every_body(stub, "return Anything(0.0)")
    assert points(graded(grader, tmp_path, text))[FIRST.name] == 0


def test_swapping_the_code_of_a_check_earns_nothing(unchecked, tmp_path):
    grader = unchecked
    swap = (
        "import katas._harness.testing as t\n"
        "for name in ('expect_close', 'expect_tensor_close', 'fail'):\n"
        "    getattr(t, name).__code__ = (lambda *a, **k: None).__code__\n"
    )
    text = every_body(stub_of(grader), "return None", swap)
    assert points(graded(grader, tmp_path, text))[FIRST.name] == 0


# --- what the child can reach -----------------------------------------------------------------


def test_the_reference_solutions_are_out_of_reach(unchecked, tmp_path):
    """Through the grader's working folder in /proc, the checkout's own path, or the zygote's."""
    grader = unchecked
    root = str(grader.manifest.root)
    probe = (
        "import os\n"
        "from pathlib import Path\n"
        f"places = [Path({root!r})]\n"
        "for pid in os.listdir('/proc'):\n"
        "    if pid.isdigit():\n"
        "        try:\n"
        "            places.append(Path(os.readlink(f'/proc/{pid}/cwd')))\n"
        "        except OSError:\n"
        "            pass\n"
        f"for place in places:\n"
        f"    target = place / 'solutions' / {FIRST.name!r} / {FIRST.module + '.py'!r}\n"
        "    try:\n"
        "        exec(target.read_text())\n"
        "        break\n"
        "    except OSError:\n"
        "        pass\n"
    )
    text = stub_of(grader) + "\n" + probe
    assert points(graded(grader, tmp_path, text))[FIRST.name] == 0


def test_the_graders_environment_is_out_of_reach(unchecked, tmp_path, monkeypatch):
    grader = unchecked
    secret = secrets.token_hex(8)
    monkeypatch.setenv("KATAS_TEST_CI_TOKEN", secret)
    leak = Path("/tmp") / f"katas-leak-{secrets.token_hex(4)}"
    probe = (
        "import os\n"
        "found = [os.environ.get('KATAS_TEST_CI_TOKEN', '')]\n"
        "for pid in os.listdir('/proc'):\n"
        "    if pid.isdigit():\n"
        "        try:\n"
        "            found.append(open(f'/proc/{pid}/environ', 'rb').read().decode('latin-1'))\n"
        "        except OSError:\n"
        "            pass\n"
        f"with open({str(leak)!r}, 'w') as out:\n"
        "    out.write('\\n'.join(found))\n"
    )
    try:
        graded(grader, tmp_path, stub_of(grader) + "\n" + probe)
        assert leak.exists(), "the probe did not run"
        assert secret not in leak.read_text(encoding="latin-1")
    finally:
        leak.unlink(missing_ok=True)


def test_writing_into_the_graders_tree_harms_no_other_kata(unchecked, tmp_path):
    """A solved second kata keeps its points, whatever the first kata's code writes."""
    grader = unchecked
    vandal = (
        "import os\n"
        "from pathlib import Path\n"
        "roots = [Path(p) for p in os.environ.get('PYTHONPATH', '').split(':') if p]\n"
        f"roots.append(Path({str(grader.manifest.root)!r}))\n"
        "for root in roots:\n"
        "    for path in root.glob('katas/*/test_*.py'):\n"
        "        try:\n"
        "            os.chmod(path, 0o666)\n"
        "            path.write_text('def test_broken():\\n    assert False\\n')\n"
        "        except OSError:\n"
        "            pass\n"
    )
    result = graded(grader, tmp_path, stub_of(grader) + "\n" + vandal, solved={SECOND.name})
    full = sum(ex.points for ex in SECOND.exercises)
    assert points(result) == {FIRST.name: 0, SECOND.name: full}
    grader.verify()  # the grader's own files are as they were


def test_no_process_outlives_its_kata(unchecked, tmp_path):
    grader = unchecked
    marker = Path("/tmp") / f"katas-daemon-{secrets.token_hex(4)}"
    daemon = (
        "import os, time\n"
        "if os.fork() == 0:\n"
        "    os.setsid()\n"
        "    if os.fork() == 0:\n"
        f"        open({str(marker)!r}, 'w').write(str(os.getpid()))\n"
        "        time.sleep(600)\n"
        "    os._exit(0)\n"
        "time.sleep(0.5)\n"
    )
    try:
        graded(grader, tmp_path, stub_of(grader) + "\n" + daemon)
        assert marker.exists(), "the daemon never started"
        pid = int(marker.read_text())
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and _alive(pid):
            time.sleep(0.2)
        assert not _alive(pid), f"process {pid} outlived its kata"
    finally:
        marker.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_a_flood_of_output_does_not_grow_the_grader(unchecked, tmp_path):
    grader = unchecked
    flood = "import sys\nfor _ in range(400):\n    sys.stdout.write('x' * 1_000_000)\n"
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    result = graded(grader, tmp_path, stub_of(grader) + "\n" + flood)
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert points(result)[FIRST.name] == 0
    assert grown_mb < 100, f"the grader grew by {grown_mb:.0f} MB"


# --- unfair losses ----------------------------------------------------------------------------


def test_an_exception_that_cannot_be_printed_costs_one_exercise_only(grader, tmp_path):
    """An honest solution where one function raises an exception whose __str__ raises."""
    solution = solution_of(grader)
    target = FIRST.exercises[0]
    name = target.qualname.split("/")[1]
    broken = solution + (
        "\n\nclass Unprintable(Exception):\n"
        "    def __str__(self):\n"
        "        raise RuntimeError('no')\n\n\n"
        f"def {name}(*args, **kwargs):\n"
        "    raise Unprintable()\n"
    )
    result = graded(grader, tmp_path, broken)
    kata = first(result)
    assert kata.points == kata.max_points - target.points
    (lost,) = [e for e in kata.exercises if e.status != "passed"]
    assert lost.qualname == target.qualname and lost.message


# --- the parent's decisions -------------------------------------------------------------------


def test_only_gpu_tests_may_skip_and_never_under_require_gpu(grader, monkeypatch):
    skipped = {"outcome": "skipped", "message": "needs CUDA"}
    monkeypatch.setattr(Grader, "cuda_devices", property(lambda self: 0))
    assert grader._judge(skipped, {"gpu": True, "multi_gpu": False}) is None
    assert grader._judge(skipped, {"gpu": False, "multi_gpu": False}) is not None
    assert grader._judge({"outcome": "xfailed", "message": ""}, {"gpu": True}) is not None
    monkeypatch.setenv("KATAS_REQUIRE_GPU", "1")
    assert grader._judge(skipped, {"gpu": True, "multi_gpu": False}) is not None
    assert grader._env(Path("/tmp"))["KATAS_REQUIRE_GPU"] == "1"
    monkeypatch.setattr(Grader, "cuda_devices", property(lambda self: 1))
    monkeypatch.delenv("KATAS_REQUIRE_GPU")
    assert grader._judge(skipped, {"gpu": True, "multi_gpu": False}) is not None
    assert grader._judge(skipped, {"gpu": False, "multi_gpu": True}) is None


def test_forged_or_reordered_records_earn_nothing():
    key = secrets.token_bytes(32)
    body = '{"test": "t", "outcome": "passed"}'
    good = json.dumps({"seq": 0, "body": body, "mac": run.sign(key, 0, body)})
    records, problem = run._verified_records(good, key)
    assert problem is None and records[0]["outcome"] == "passed"
    _, problem = run._verified_records(good, secrets.token_bytes(32))
    assert "signature" in problem
    shifted = good.replace('"seq": 0', '"seq": 1')
    _, problem = run._verified_records(shifted, key)
    assert "order" in problem


def test_submitted_links_and_special_files_are_refused(grader, tmp_path):
    sub = submission(tmp_path, grader.manifest)
    kata_dir = sub / "katas" / FIRST.name
    for entry in kata_dir.iterdir():
        entry.unlink()
    kata_dir.rmdir()
    kata_dir.symlink_to(grader.manifest.root / "solutions" / FIRST.name)
    fifo_kata = sub / "katas" / SECOND.name / f"{SECOND.module}.py"
    fifo_kata.unlink()
    os.mkfifo(fifo_kata)
    result = grader.grade(sub)
    assert result.points == 0
    for kata in result.katas:
        assert "symbolic link or a special file" in (kata.problem or ""), kata.problem


def test_the_isolation_is_stated(grader):
    notes = " ".join(grader.isolation())
    assert "account" in notes and "MB" in notes
    if sandbox.can_switch_account():
        assert grader.accounts is not None or "cannot read" in notes


def test_two_graders_never_share_an_account(two_katas):  # noqa: F811
    if not sandbox.accounts_usable(sandbox.can_hide_folders()):
        pytest.skip("accounts of their own need a root grader")
    first_accounts = sandbox.Accounts(2)
    second_accounts = sandbox.Accounts(2)
    try:
        assert not set(first_accounts.uids) & set(second_accounts.uids)
    finally:
        first_accounts.release()
        second_accounts.release()


def test_signal_names_survive_unknown_codes():
    assert "SIGKILL" in run._no_report_reason("", -signal.SIGKILL)
    assert "crashed" in run._no_report_reason("", -200)
