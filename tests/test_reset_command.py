"""`python -m katas reset`: the pristine stub back, a backup kept, nothing else touched."""

from __future__ import annotations

import pytest

from katas._harness import pristine, reset
from katas._harness.manifest import load
from tests.project_copy import MANIFEST, katas_command, make_copy, replace_definition, solve, stub_file

KATA = MANIFEST.kata("01_autograd")


@pytest.fixture
def copy(tmp_path):
    return make_copy(tmp_path / "project")


def pristine_text(copy) -> str:
    return pristine.read(copy)[pristine.relative_path(KATA)]


def backups(copy) -> list:
    folder = copy / reset.BACKUP_DIR
    return sorted(folder.iterdir()) if folder.is_dir() else []


def test_resetting_one_exercise_restores_it_and_keeps_the_rest_of_the_file(copy):
    solve(copy, "grad_at")
    solve(copy, "partial_derivatives")
    stub = stub_file(copy)
    stub.write_text(stub.read_text(encoding="utf-8") + "\n# my notes\n", encoding="utf-8")
    before = stub.read_text(encoding="utf-8")
    tests_before = (copy / "katas/01_autograd/test_autograd_basics.py").read_text(encoding="utf-8")

    result = katas_command(copy, "reset", "01_autograd/grad_at", "--yes")

    assert result.returncode == 0, result.stderr
    after = stub.read_text(encoding="utf-8")
    clean = pristine_text(copy)
    assert pristine.segment(after, "grad_at") == pristine.segment(clean, "grad_at")
    assert pristine.segment(after, "partial_derivatives") == pristine.segment(before, "partial_derivatives")
    assert after.endswith("\n# my notes\n")
    assert (copy / "katas/01_autograd/test_autograd_basics.py").read_text(encoding="utf-8") == tests_before
    (saved,) = backups(copy)
    assert saved.read_text(encoding="utf-8") == before
    assert str(saved.relative_to(copy)) in result.stdout


def test_resetting_a_kata_restores_the_whole_file_with_a_backup(copy):
    solve(copy, "grad_at")
    before = stub_file(copy).read_text(encoding="utf-8")
    result = katas_command(copy, "reset", "01_autograd", "--yes")
    assert result.returncode == 0, result.stderr
    assert stub_file(copy).read_text(encoding="utf-8") == pristine_text(copy)
    assert [b.read_text(encoding="utf-8") for b in backups(copy)] == [before]


def test_without_yes_and_without_a_terminal_it_refuses_and_changes_nothing(copy):
    solve(copy, "grad_at")
    before = stub_file(copy).read_text(encoding="utf-8")
    result = katas_command(copy, "reset", "grad_at", input="y\n")
    assert result.returncode == 2
    assert result.stderr.startswith("error: reset asks before replacing your code")
    assert "--yes" in result.stderr and "Traceback" not in result.stderr
    assert stub_file(copy).read_text(encoding="utf-8") == before
    assert backups(copy) == []


def test_answering_no_changes_nothing(copy):
    solve(copy, "grad_at")
    before = stub_file(copy).read_text(encoding="utf-8")
    lines = reset.run(load(copy), "grad_at", yes=False, confirm=lambda question: False)
    assert lines == ["Nothing was changed."]
    assert stub_file(copy).read_text(encoding="utf-8") == before


def test_the_question_names_what_will_be_replaced(copy):
    solve(copy, "grad_at")
    asked = []
    reset.run(load(copy), "grad_at", yes=False, confirm=lambda question: asked.append(question) or True)
    assert asked and "01_autograd/grad_at" in asked[0] and "a backup is kept" in asked[0]


def test_an_untouched_exercise_needs_no_reset_and_no_backup(copy):
    result = katas_command(copy, "reset", "grad_at", "--yes")
    assert result.returncode == 0 and "nothing to reset" in result.stdout
    assert backups(copy) == []


@pytest.mark.parametrize(
    "target", ["no_such_thing", "01_autogard", "/etc/passwd", "../solutions/01_autograd"]
)
def test_a_bad_name_is_one_line_and_exit_2(copy, target):
    result = katas_command(copy, "reset", target, "--yes")
    assert result.returncode == 2
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1
    assert "Traceback" not in result.stderr


def test_a_close_kata_name_is_suggested(copy):
    result = katas_command(copy, "reset", "01_autogard", "--yes")
    assert "did you mean: 01_autograd" in result.stderr  # first: the closest of the close names


def test_one_exercise_of_a_file_that_does_not_compile_points_to_the_kata_reset(copy):
    stub = stub_file(copy)
    stub.write_text(stub.read_text(encoding="utf-8") + "\ndef oops(:\n", encoding="utf-8")
    result = katas_command(copy, "reset", "grad_at", "--yes")
    assert result.returncode == 2
    assert "syntax error" in result.stderr and "python -m katas reset 01_autograd" in result.stderr


def test_a_deleted_function_points_to_the_kata_reset(copy):
    replace_definition(copy, "grad_at", "")
    result = katas_command(copy, "reset", "grad_at", "--yes")
    assert result.returncode == 2 and "python -m katas reset 01_autograd" in result.stderr


def test_a_deleted_file_comes_back(copy):
    stub_file(copy).unlink()
    result = katas_command(copy, "reset", "01_autograd/grad_at", "--yes")
    assert result.returncode == 0, result.stderr
    assert stub_file(copy).read_text(encoding="utf-8") == pristine_text(copy)


def test_the_snapshot_matches_the_stubs():
    stale = pristine.stale(MANIFEST)
    assert not stale, (
        f"{stale} differ from katas/_harness/pristine_stubs.json, the copy `reset` restores; "
        "after changing a stub on purpose run: python -m katas snapshot"
    )
