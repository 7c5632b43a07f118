"""The pytest plugin, exercised on a small fake kata project with the pytester fixture."""

from __future__ import annotations

import textwrap

import pytest
import torch  # imported before pytester snapshots sys.modules: torch cannot be imported twice

MANIFEST = """
[[kata]]
name = "01_demo"
title = "Demo"
module = "demo_ops"

[[kata.exercise]]
name = "add"
points = 1
hints = ["Use +."]

[[kata.exercise]]
name = "double"
points = 2
hints = ["Multiply by two."]
"""

STUB = """
def add(a: int, b: int) -> int:
    raise NotImplementedError("add")


def double(x: int) -> int:
    raise NotImplementedError("double")
"""

SOLUTION = """
def add(a, b):
    return a + b


def double(x):
    return 2 * x
"""

TESTS = """
import demo_ops
import pytest
from hypothesis import given, strategies as st


@pytest.mark.exercise("add")
def test_add_small_numbers():
    assert demo_ops.add(2, 3) == 5


@pytest.mark.exercise("add")
@given(st.integers(), st.integers())
def test_add_matches_plus(a, b):
    assert demo_ops.add(a, b) == a + b


@pytest.mark.exercise("double")
def test_double_four():
    assert demo_ops.double(4) == 8


@pytest.mark.exercise("double")
@pytest.mark.gpu
def test_double_on_the_gpu():
    assert demo_ops.double(1) == 2


@pytest.mark.exercise("double")
@pytest.mark.multi_gpu
def test_double_on_two_gpus():
    assert demo_ops.double(2) == 4
"""


@pytest.fixture
def project(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makepyprojecttoml(
        """
        [tool.pytest.ini_options]
        addopts = ["--import-mode=importlib", "-p", "katas._harness.plugin", "--katas-root=.",
                   "-p", "no:cacheprovider"]
        """
    )
    files = {
        "katas/manifest.toml": MANIFEST,
        "katas/01_demo/demo_ops.py": STUB,
        "katas/01_demo/test_demo_ops.py": TESTS,
        "solutions/01_demo/demo_ops.py": SOLUTION,
    }
    for name, text in files.items():
        path = pytester.path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text), encoding="utf-8")
    return pytester


def write(project: pytest.Pytester, name: str, text: str) -> None:
    path = project.path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text), encoding="utf-8")


def test_untouched_stub_fails_with_one_todo_line_and_no_traceback(project):
    result = project.runpytest("katas/01_demo", "--all")
    result.assert_outcomes(failed=3, skipped=2)
    result.stdout.fnmatch_lines(
        [
            "TODO: implement add() in katas/01_demo/demo_ops.py  (stuck? python -m katas hint 01_demo/add)",
            "TODO: implement double() in katas/01_demo/demo_ops.py  (stuck? python -m katas hint 01_demo/double)",  # noqa: E501
        ]
    )
    assert "raise NotImplementedError" not in result.stdout.str()
    assert "Falsifying example" not in result.stdout.str()


def test_progress_section_lists_each_exercise_and_the_next_one(project):
    result = project.runpytest("katas/01_demo")
    result.stdout.fnmatch_lines(
        [
            "*= torch-katas progress =*",
            "01_demo  0/2 exercises done",
            "  · add     todo",
            "  · double  todo",
            "Next: 01_demo/add in katas/01_demo/demo_ops.py  (hint: python -m katas hint 01_demo/add)",
        ]
    )


def test_solutions_option_runs_the_same_tests_against_solutions(project):
    result = project.runpytest("katas/01_demo", "--solutions")
    result.assert_outcomes(passed=3, skipped=2)
    result.stdout.fnmatch_lines(
        [
            "(tests run against solutions/)",
            "01_demo  2/2 exercises done",
            "  ✓ add     done",
            "  ✓ double  done (2 skipped)",
            "All exercises in this run are done.*",
        ]
    )


def test_a_wrong_answer_is_failing_and_next_points_at_it(project):
    write(project, "katas/01_demo/demo_ops.py", SOLUTION.replace("2 * x", "x + x + 1"))
    result = project.runpytest("katas/01_demo")
    result.assert_outcomes(passed=2, failed=1, skipped=2)
    result.stdout.fnmatch_lines(
        [
            "01_demo  1/2 exercises done",
            "  ✓ add     done",
            "  ✗ double  failing (1 of 3 tests)",
            "Next: 01_demo/double in katas/01_demo/demo_ops.py*",
        ]
    )


def test_progress_prints_once_and_correctly_under_xdist(project):
    result = project.runpytest_subprocess("katas/01_demo", "-n", "2")
    result.assert_outcomes(failed=3, skipped=2)
    assert result.stdout.str().count("torch-katas progress") == 1
    result.stdout.fnmatch_lines(["01_demo  0/2 exercises done", "Next: 01_demo/add*"])


def test_gpu_tests_are_skipped_with_a_reason_without_cuda(project, monkeypatch):
    monkeypatch.delenv("KATAS_REQUIRE_GPU", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    result = project.runpytest("katas/01_demo", "--solutions", "-rs")
    result.assert_outcomes(passed=3, skipped=2)
    result.stdout.fnmatch_lines(["SKIPPED*needs CUDA", "SKIPPED*needs 2+ CUDA devices"])


def test_require_gpu_turns_the_skips_into_failures(project, monkeypatch):
    monkeypatch.setenv("KATAS_REQUIRE_GPU", "1")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    result = project.runpytest("katas/01_demo", "--solutions")
    result.assert_outcomes(passed=3, failed=2)
    result.stdout.fnmatch_lines(["*needs CUDA, and KATAS_REQUIRE_GPU=1 forbids skipping it*"])


def test_gpu_tests_run_when_cuda_is_there(project, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    result = project.runpytest("katas/01_demo", "--solutions", "-rs")
    result.assert_outcomes(passed=4, skipped=1)
    result.stdout.fnmatch_lines(["SKIPPED*needs 2+ CUDA devices"])


def test_exercise_option_selects_one_exercise(project):
    result = project.runpytest("katas/01_demo", "--solutions", "--exercise", "double")
    result.assert_outcomes(passed=1, skipped=2, deselected=2)
    result.stdout.fnmatch_lines(
        ["  ? add     not run", "  ✓ double  done (2 skipped)", "Some exercises were not run*"]
    )


def test_unknown_exercise_option_names_close_matches(project):
    result = project.runpytest("katas/01_demo", "--exercise", "dubble")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--exercise 'dubble' matches no exercise; did you mean 01_demo/double?*"])


def test_a_kata_test_without_an_exercise_marker_is_a_clear_error(project):
    write(project, "katas/01_demo/test_demo_ops.py", TESTS + "\n\ndef test_orphan():\n    assert True\n")
    result = project.runpytest("katas/01_demo")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["*test_orphan: kata tests need @pytest.mark.exercise(NAME)*one of: add, double*"]
    )


def test_a_known_pytorch_error_gets_its_likely_cause_and_ends_at_the_learners_line(project):
    backward_twice = """
    import torch
    t = torch.tensor(float(x), requires_grad=True)
    y = t.exp()
    y.backward()
    y.backward()
    return 2 * x"""
    write(project, "katas/01_demo/demo_ops.py", SOLUTION.replace("\n    return 2 * x", backward_twice))
    result = project.runpytest("katas/01_demo")
    result.stdout.fnmatch_lines(
        [
            "katas/01_demo/demo_ops.py:*: in double",
            "    y.backward()",
            "E   RuntimeError: Trying to backward through the graph a second time*",
            "*- likely cause -*",
            "*retain_graph=True*",
        ]
    )
    assert "site-packages/torch" not in result.stdout.str()


def test_an_unexpected_error_shows_the_learners_line_not_the_whole_stub_again(project):
    documented = """
def add(a, b):
    \"\"\"Return a + b. THE-DOCSTRING-A-LEARNER-ALREADY-READ.\"\"\"
    total = a + b
    return total("oops")


def double(x):
    return 2 * x
"""
    write(project, "katas/01_demo/demo_ops.py", documented)
    result = project.runpytest("katas/01_demo")
    result.stdout.fnmatch_lines(
        ["katas/01_demo/demo_ops.py:5: in add", '    return total("oops")', "E   TypeError: *not callable"]
    )
    assert "THE-DOCSTRING-A-LEARNER-ALREADY-READ" not in result.stdout.str()
    assert "site-packages/_pytest" not in result.stdout.str()
    verbose = project.runpytest("katas/01_demo", "--tb=long")  # asked for: pytest's own long style
    assert "THE-DOCSTRING-A-LEARNER-ALREADY-READ" in verbose.stdout.str()


def test_two_katas_with_the_same_test_basename_do_not_mix(project):
    # The classic pitfall: same basenames under rootdir-relative imports shadow each other.
    write(
        project,
        "katas/manifest.toml",
        MANIFEST + MANIFEST.replace("01_demo", "02_other").replace("demo_ops", "other_ops"),
    )
    write(project, "katas/01_demo/helpers.py", "WHO = 'demo'\n")
    write(project, "katas/02_other/helpers.py", "WHO = 'other'\n")
    for kata, module in (("01_demo", "demo_ops"), ("02_other", "other_ops")):
        write(project, f"solutions/{kata}/{module}.py", SOLUTION + f"\nWHO = {kata!r}\n")
        write(project, f"katas/{kata}/{module}.py", STUB)
        write(
            project,
            f"katas/{kata}/test_same_name.py",
            f"""
            import pytest
            import {module}

            @pytest.mark.exercise("add")
            def test_imports_its_own_module():
                assert {module}.WHO == {kata!r}

            @pytest.mark.exercise("double")
            def test_double():
                assert {module}.double(1) == 2
            """,
        )
    (project.path / "katas/01_demo/test_demo_ops.py").unlink()
    result = project.runpytest("katas", "--solutions")
    result.assert_outcomes(passed=4)


def test_a_broken_manifest_is_a_usage_error_with_the_fix(project):
    write(project, "katas/manifest.toml", MANIFEST.replace('module = "demo_ops"', ""))
    result = project.runpytest("katas/01_demo")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*kata 01_demo: missing 'module'; add it to manifest.toml*"])


def test_non_kata_tests_are_left_alone(project):
    write(project, "tests/test_plain.py", "def test_plain():\n    assert 1 + 1 == 2\n")
    result = project.runpytest("tests")
    result.assert_outcomes(passed=1)
    assert "torch-katas progress" not in result.stdout.str()


def test_a_syntax_error_in_the_stub_is_shown_plainly(project):
    write(project, "katas/01_demo/demo_ops.py", STUB + "\n\ndef broken(:\n    pass\n")
    result = project.runpytest("katas/01_demo")
    result.stdout.fnmatch_lines(
        [
            "katas/01_demo/demo_ops.py does not compile, so none of its tests can run:",
            "  line 10: def broken(:",
            "                      ^",
            "  SyntaxError: invalid syntax",
            "*= torch-katas progress =*",
            "01_demo  cannot run: katas/01_demo/demo_ops.py does not import (see the error above)",
        ]
    )
    assert "importtestmodule" not in result.stdout.str()


def test_an_import_time_error_in_the_stub_names_the_file(project):
    write(project, "katas/01_demo/demo_ops.py", STUB + "\nundefined_name + 1\n")
    result = project.runpytest("katas/01_demo")
    result.stdout.fnmatch_lines(
        [
            "katas/01_demo/demo_ops.py raised an error while being imported, so none of its tests can run:",
            "*NameError: name 'undefined_name' is not defined",
        ]
    )


@pytest.mark.parametrize(("ci", "profile"), [(True, "ci"), (False, "katas")])
def test_hypothesis_keeps_its_ci_profile_and_otherwise_drops_the_deadline(project, monkeypatch, ci, profile):
    # Hypothesis picks its derandomized `ci` profile at import time, hence a subprocess.
    for name in ("CI", "TF_BUILD"):
        monkeypatch.delenv(name, raising=False)
    if ci:
        monkeypatch.setenv("CI", "true")
    write(
        project,
        "tests/test_profile.py",
        """
        from hypothesis import settings

        from katas._harness.plugin import current_profile

        def test_profile():
            current = current_profile()
            print("PROFILE", current, settings.default.deadline, settings.default.derandomize)
        """,
    )
    result = project.runpytest_subprocess("tests", "-s")
    result.stdout.fnmatch_lines([f"*PROFILE {profile} None {ci}*"])
