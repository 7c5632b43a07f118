"""`python -m katas list`: every exercise's status, running only the tests it must."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.project_copy import MANIFEST, katas_command, make_copy, solve, stub_file

RUNNING = "running the tests of"


@pytest.fixture
def copy(tmp_path):
    return make_copy(tmp_path / "project")


def test_untouched_stubs_list_every_exercise_as_todo_without_running_tests(copy):
    result = katas_command(copy, "list")
    assert result.returncode == 0, result.stderr
    assert RUNNING not in result.stderr
    for kata in MANIFEST.katas:
        assert f"{kata.name}  0/{len(kata.exercises)} exercises done" in result.stdout
    total = len(MANIFEST.exercises)
    assert f"Overall: 0/{total} exercises done (0%)" in result.stdout
    first = MANIFEST.katas[0]
    assert f"Next: {first.exercises[0].qualname} in katas/{first.name}/{first.module}.py" in result.stdout


def test_a_solved_exercise_is_done_and_the_next_one_is_named(copy):
    solve(copy, "grad_at")
    result = katas_command(copy, "list")
    assert result.returncode == 0, result.stderr
    assert f"{RUNNING} 01_autograd" in result.stderr
    assert "01_autograd  1/10 exercises done" in result.stdout
    assert "✓ grad_at" in result.stdout
    assert "· partial_derivatives" in result.stdout


def test_an_unchanged_kata_is_not_run_again(copy):
    solve(copy, "grad_at")
    katas_command(copy, "list")
    again = katas_command(copy, "list")
    assert RUNNING not in again.stderr
    assert "✓ grad_at" in again.stdout


def test_a_kata_run_with_pytest_feeds_list(copy):
    solve(copy, "grad_at")
    subprocess.run([sys.executable, "-m", "pytest", "katas/01_autograd", "-q"], cwd=copy, capture_output=True)
    result = katas_command(copy, "list")
    assert RUNNING not in result.stderr
    assert "✓ grad_at" in result.stdout


def test_a_wrong_answer_is_failing(copy):
    solve(copy, "grad_at")
    stub = stub_file(copy)
    stub.write_text(
        stub.read_text(encoding="utf-8").replace("return t.grad.item()", "return 0.0"), encoding="utf-8"
    )
    result = katas_command(copy, "list")
    assert "✗ grad_at" in result.stdout and "failing" in result.stdout


def test_a_file_that_does_not_compile_is_listed_as_broken(copy):
    stub = stub_file(copy)
    stub.write_text(stub.read_text(encoding="utf-8") + "\ndef oops(:\n", encoding="utf-8")
    result = katas_command(copy, "list")
    assert result.returncode == 0
    assert "! grad_at" in result.stdout and "broken" in result.stdout
    assert "Traceback" not in result.stdout + result.stderr
