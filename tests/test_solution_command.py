"""`python -m katas solution EXERCISE`: the reference beside the learner's code, only after a pass."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

from katas._harness import pristine, record
from katas._harness.solution import EXIT_NOT_YET
from tests.load import scaled
from tests.project_copy import MANIFEST, ROOT, katas_command, make_copy, solve

WAIT = scaled(120)  # seconds, longer on a loaded machine (tests/load.py)
KATA = MANIFEST.kata("01_autograd")
REFERENCE = pristine.segment(KATA.stub_path(ROOT / "solutions").read_text(encoding="utf-8"), "grad_at")


@pytest.fixture
def copy(tmp_path):
    return make_copy(tmp_path / "project")


def test_it_refuses_before_the_exercise_passes_and_offers_the_hint(copy):
    result = katas_command(copy, "solution", "01_autograd/grad_at", timeout=WAIT)
    assert result.returncode == EXIT_NOT_YET == 1
    assert result.stdout.count("\n") == 1, result.stdout
    assert "01_autograd/grad_at: " in result.stdout and " tests still fail;" in result.stdout
    assert "python -m katas hint 01_autograd/grad_at" in result.stdout
    assert REFERENCE.splitlines()[-1].strip() not in result.stdout


def test_it_shows_the_reference_beside_the_learners_code_once_it_passes(copy):
    solve(copy, "grad_at")
    stub = KATA.stub_path(copy / "katas")
    stub.write_text(
        stub.read_text(encoding="utf-8").replace("return t.grad.item()", "return t.grad.item()  # mine")
    )
    result = katas_command(copy, "solution", "grad_at", timeout=WAIT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.startswith("01_autograd/grad_at passes.")
    yours, reference = result.stdout.split("--- reference: solutions/01_autograd/autograd_basics.py")
    assert "--- yours: katas/01_autograd/autograd_basics.py" in yours and "# mine" in yours
    assert REFERENCE.strip() in reference and "# mine" not in reference


def write_record(copy, exercises: dict[str, dict]) -> None:
    state = {KATA.name: {"fingerprint": record.fingerprint(KATA, copy / "katas"), "exercises": exercises}}
    path = copy / record.STATE_FILE
    path.parent.mkdir(exist_ok=True)
    path.write_text(json.dumps(state), encoding="utf-8")


def test_a_current_record_answers_without_running_the_tests(copy):
    write_record(copy, {"grad_at": {"passed": 3, "failed": 0, "todo": 0, "skipped": 0}})
    result = katas_command(copy, "solution", "grad_at", timeout=WAIT)
    assert result.returncode == 0, result.stdout + result.stderr  # the stub is untouched: no run did this


def test_a_stale_record_is_not_trusted(copy):
    write_record(copy, {"grad_at": {"passed": 3, "failed": 0, "todo": 0, "skipped": 0}})
    stub = KATA.stub_path(copy / "katas")
    stub.write_text(stub.read_text(encoding="utf-8") + "\n", encoding="utf-8")  # a save since the record
    result = katas_command(copy, "solution", "grad_at", timeout=WAIT)
    assert result.returncode == EXIT_NOT_YET, result.stdout
    assert "still fail" in result.stdout


def test_an_unknown_exercise_gets_close_matches_and_exit_2(copy):
    result = katas_command(copy, "solution", "grad_att")
    assert result.returncode == 2
    assert result.stderr.startswith(
        "error: 'grad_att' matches no single exercise; did you mean: 01_autograd/grad_at"
    )


def test_a_handout_without_solutions_says_so(copy):
    shutil.rmtree(copy / "solutions")
    result = katas_command(copy, "solution", "grad_at")
    assert result.returncode == EXIT_NOT_YET
    assert (
        result.stdout.strip()
        == "the reference solutions are not part of this handout; ask your instructor once your tests pass"
    )  # noqa: E501


def test_it_speaks_chinese(copy):
    env = {**os.environ, "KATAS_LANG": "zh"}
    command = [sys.executable, "-m", "katas", "solution", "grad_at"]
    result = subprocess.run(command, cwd=copy, env=env, capture_output=True, text=True, timeout=WAIT)
    assert result.returncode == EXIT_NOT_YET
    assert "个没通过；全部通过后才显示参考答案。" in result.stdout and "卡住了？" in result.stdout
