"""`python -m katas check`: the manifest against the files, and each check able to fail."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from katas._harness import selfcheck
from katas._harness.manifest import ManifestError, parse

ROOT = Path(__file__).resolve().parents[1]
KATA, MODULE = "01_autograd", "autograd_basics"


def test_the_kata_set_has_no_structural_problem():
    assert selfcheck.problems(ROOT) == []


@pytest.fixture
def copy(tmp_path: Path) -> Path:
    """A copy of the project's kata files, to break one invariant at a time."""
    skip = shutil.ignore_patterns("__pycache__", "_harness", "*.pyc")
    shutil.copytree(ROOT / "katas", tmp_path / "katas", ignore=skip)
    shutil.copytree(ROOT / "solutions", tmp_path / "solutions", ignore=skip)
    assert selfcheck.problems(tmp_path) == []
    return tmp_path


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text, f"fixture drift: {old!r} not in {path}"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


def only_problem(root: Path) -> str:
    found = selfcheck.problems(root)
    assert len(found) >= 1, "the check did not notice the broken invariant"
    return "\n".join(found)


def test_missing_solution_is_reported(copy):
    (copy / f"solutions/{KATA}/{MODULE}.py").unlink()
    assert f"solutions/{KATA}/{MODULE}.py: missing" in only_problem(copy)


def test_missing_lesson_is_reported(copy):
    (copy / f"katas/{KATA}/README.md").unlink()
    assert "README.md: missing" in only_problem(copy)


def test_a_stub_that_is_already_solved_is_reported(copy):
    edit(copy / f"katas/{KATA}/{MODULE}.py", 'raise NotImplementedError("grad_at")', "return 0.0")
    assert "grad_at: an untouched stub's body is only `raise NotImplementedError(...)`" in only_problem(copy)


def test_a_signature_that_differs_from_the_solution_is_reported(copy):
    edit(
        copy / f"solutions/{KATA}/{MODULE}.py",
        "def grad_at(f: Callable[[Tensor], Tensor], x: float)",
        "def grad_at(f: Callable[[Tensor], Tensor], x: float, h: float = 1e-3)",
    )
    assert "grad_at: signature differs from the solution's" in only_problem(copy)


def test_a_public_name_only_the_solution_has_is_reported(copy):
    path = copy / f"solutions/{KATA}/{MODULE}.py"
    path.write_text(
        path.read_text(encoding="utf-8") + "\n\ndef helper() -> int:\n    return 1\n", encoding="utf-8"
    )
    assert "public names ['helper'] are not in the stub" in only_problem(copy)


def test_a_stub_without_docs_link_example_or_hints_is_reported(copy):
    edit(copy / f"katas/{KATA}/{MODULE}.py", "    >>> grad_at(lambda x: x**2 + 3*x + 2, 1.0)\n    5.0\n", "")
    edit(
        copy / f"katas/{KATA}/{MODULE}.py",
        "    Docs: https://docs.pytorch.org/docs/stable/generated/torch.Tensor.backward.html\n",
        "",
    )
    edit(
        copy / f"katas/{KATA}/{MODULE}.py",
        "def grad_at(f: Callable[[Tensor], Tensor], x: float) -> float:",
        "def grad_at(f, x: float) -> float:",
    )
    edit(
        copy / f"solutions/{KATA}/{MODULE}.py",
        "def grad_at(f: Callable[[Tensor], Tensor], x: float) -> float:",
        "def grad_at(f, x: float) -> float:",
    )
    found = only_problem(copy)
    assert "docstring needs a small example" in found
    assert "docstring needs a link to the PyTorch docs" in found
    assert "need type hints" in found


def test_given_code_that_differs_from_the_solution_is_reported(copy):
    # 06's evaluate is given code: finished in the stub, not an exercise, the solution's own code.
    edit(copy / "katas/06_training_loop/training_loop.py", "count += len(inputs)", "count += 1")
    assert "evaluate: given code must read as the solution's" in only_problem(copy)


def test_given_code_listed_as_an_exercise_is_reported(copy):
    edit(copy / "katas/manifest.toml", 'name = "fit"\npoints = 1', 'name = "evaluate"\npoints = 1')
    found = selfcheck.problems(copy)
    assert any(
        "evaluate: its docstring starts with 'Given:'" in p and "manifest lists it" in p for p in found
    )


def test_functions_out_of_manifest_order_are_reported(copy):
    edit(copy / "katas/manifest.toml", 'name = "grad_at"', 'name = "grad_at_renamed"')
    assert "must be the manifest's exercises in order" in only_problem(copy)


def test_a_stray_file_in_a_kata_folder_is_reported(copy):
    (copy / f"katas/{KATA}/notes.py").write_text("x = 1\n", encoding="utf-8")
    assert f"katas/{KATA}/notes.py: a kata folder holds only" in only_problem(copy)


def test_a_kata_folder_missing_from_the_manifest_is_reported(copy):
    (copy / "katas/02_extra").mkdir()
    assert "katas/02_extra: not in katas/manifest.toml" in only_problem(copy)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "lists no kata"),
        (
            "[[kata]]\nname = 'a'\ntitle = 't'\nmodule = 'm'\nexercise = []\n"
            "[[kata]]\nname = 'b'\ntitle = 't'\nmodule = 'm'\nexercise = []\n",
            "duplicate module name",
        ),
        (
            "[[kata]]\nname = 'a'\ntitle = 't'\nmodule = 'm'\n[[kata.exercise]]\nname = 'f'\npoints = 1\n"
            "hints = []\n",
            "give at least one non-empty hint",
        ),
        (
            "[[kata]]\nname = 'a'\ntitle = 't'\nmodule = 'm'\n[[kata.exercise]]\nname = 'f'\npoints = 0\n"
            "hints = ['h']\n",
            "points must be positive",
        ),
        ("[[kata]\n", "not valid TOML"),
    ],
)
def test_manifest_errors_say_what_to_fix(text, message):
    with pytest.raises(ManifestError, match=message):
        parse(text, ROOT)


def test_check_command_exits_zero_on_this_project():
    result = subprocess.run(
        [sys.executable, "-m", "katas", "check"], cwd=ROOT, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.startswith("OK: ")


def test_check_command_lists_problems_and_exits_one(copy):
    (copy / f"katas/{KATA}/README.md").unlink()
    result = subprocess.run(
        [sys.executable, "-m", "katas", "--root", str(copy), "check"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 1
    assert "README.md: missing" in result.stdout
