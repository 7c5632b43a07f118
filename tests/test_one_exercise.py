"""One exercise at a time: a kata run shows the current exercise's failures in full; every other
exercise gets its line in the progress section."""

from __future__ import annotations

import pytest
import torch  # noqa: F401  (imported before pytester snapshots sys.modules)

from tests.test_plugin import SOLUTION, project, write  # noqa: F401  (project is a fixture)

BOTH_WRONG = SOLUTION.replace("a + b", "a - b").replace("2 * x", "x + x + 1")
ADD_IN_FULL, DOUBLE_IN_FULL = "assert -1 == 5", "assert 9 == 8"  # what pytest's full reports say
LATER = "  ✗ double*failing*"


@pytest.fixture
def both_wrong(project):  # noqa: F811
    write(project, "katas/01_demo/demo_ops.py", BOTH_WRONG)
    return project


def test_a_kata_run_shows_the_current_exercise_in_full_and_later_ones_in_one_line(both_wrong):
    result = both_wrong.runpytest_subprocess("katas/01_demo")
    result.assert_outcomes(failed=3, skipped=2)  # outcomes and counts are untouched
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    out = result.stdout.str()
    assert ADD_IN_FULL in out  # add, the current exercise, in full
    assert DOUBLE_IN_FULL not in out and "test_double_four" not in out  # double: its progress line only
    result.stdout.fnmatch_lines([LATER, "1 other failing test(s) are not shown above*"])


@pytest.mark.parametrize("option", ["--all", "-v"])
def test_all_or_verbose_shows_every_message(both_wrong, option):
    result = both_wrong.runpytest_subprocess("katas/01_demo", option)
    result.assert_outcomes(failed=3, skipped=2)
    out = result.stdout.str()
    assert ADD_IN_FULL in out and DOUBLE_IN_FULL in out
    assert "not shown above" not in out


def test_the_ini_twin_of_all_shows_every_message(both_wrong):
    result = both_wrong.runpytest_subprocess("katas/01_demo", "-o", "katas_all=true")
    assert DOUBLE_IN_FULL in result.stdout.str()


def test_one_exercise_runs_and_runs_under_xdist_keep_their_rules(both_wrong):
    chosen = both_wrong.runpytest_subprocess("katas/01_demo", "--exercise", "double")
    assert DOUBLE_IN_FULL in chosen.stdout.str()  # the exercise asked for is shown in full
    spread = both_wrong.runpytest_subprocess("katas/01_demo", "-n", "2")
    spread.assert_outcomes(failed=3, skipped=2)
    spread.stdout.fnmatch_lines([LATER])
    assert ADD_IN_FULL in spread.stdout.str() and DOUBLE_IN_FULL not in spread.stdout.str()


def test_untouched_stubs_show_the_first_todo_once(project):  # noqa: F811
    """An untouched kata's first screen is one TODO line, not one per test of every exercise."""
    result = project.runpytest_subprocess("katas/01_demo")
    result.assert_outcomes(failed=3, skipped=2)
    out = result.stdout.str()
    assert todo_sections(out, "add") == 1, out  # the short summary repeats it where CI is set
    assert "TODO: implement double()" not in out
    result.stdout.fnmatch_lines(["  · double*todo", "2 other failing test(s) are not shown above*"])


def test_all_shows_every_todo(project):  # noqa: F811
    out = project.runpytest_subprocess("katas/01_demo", "--all").stdout.str()
    assert todo_sections(out, "add") == 2 and todo_sections(out, "double") == 1, out


def todo_sections(out: str, function: str) -> int:
    """TODO lines in the FAILURES section (the short summary's FAILED lines left out)."""
    return sum(line.startswith(f"TODO: implement {function}()") for line in out.splitlines())


def test_junit_xml_keeps_the_full_message_of_a_later_exercise(both_wrong):
    result = both_wrong.runpytest_subprocess("katas/01_demo", "--junitxml=report.xml")
    assert DOUBLE_IN_FULL not in result.stdout.str()
    assert DOUBLE_IN_FULL in (both_wrong.path / "report.xml").read_text(encoding="utf-8")
