"""The grade's reports: JUnit valid against Jenkins xUnit's schema, Gradescope's results.json,
Markdown and JSON that put the likely cause first, a grader failure stated as such, exit codes."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import junitparser
import pytest
import xmlschema

from katas._harness.grading import bundle, grade_command, junit, report
from katas._harness.grading import run as grading_run
from katas._harness.grading.report import GraderFailure
from katas._harness.grading.run import ExerciseScore, Grade, KataScore, Limits
from tests.project_copy import MANIFEST, katas_command
from tests.test_grade import FIRST, SECOND, submission, two_katas  # noqa: F401 (a fixture)

SCHEMA = xmlschema.XMLSchema(Path(__file__).parent / "schemas" / "junit-10.xsd")
CAUSE = "gradients doubled: did you forget optimizer.zero_grad()?"
LONG_TRACEBACK = "\n".join(f"  File 'train.py', line {n}, in step" for n in range(400))
IMPORT_ERROR = (
    "ERROR collecting katas/01_autograd/test_autograd_basics.py\n"
    "katas/01_autograd/autograd_basics.py raised an error while being imported, "
    "so none of its tests can run:\n"
    "Traceback:\n"
    "katas/01_autograd/autograd_basics.py:166: in <module>\n"
    "    import nonexistent_mod_xyz\n"
    "E   ModuleNotFoundError: No module named 'nonexistent_mod_xyz'\n"
    "!!!!!!!!!!!!!!!!!!!! Interrupted: 1 error during collection !!!!!!!!!!!!!!!!!!!!\n"
    "1 error in 0.26s"
)


def sample_grade() -> Grade:
    """Every case a report shows: passed, a wrong answer with a likely cause, a stub, a kata not graded."""
    wrong = f"{LONG_TRACEBACK}\nAssertionError: weights differ\nLikely cause: {CAUSE}"
    return Grade(
        [
            KataScore(
                "06_training_loop",
                [
                    ExerciseScore("06_training_loop/train_step", 2, 2, "passed"),
                    ExerciseScore("06_training_loop/fit", 0, 3, "failed", wrong, CAUSE),
                    ExerciseScore(
                        "06_training_loop/seeded_losses", 0, 1, "todo", "TODO: implement seeded_losses()"
                    ),
                ],
                seconds=6.0,
            ),
            KataScore(
                "01_autograd",
                [
                    ExerciseScore(
                        "01_autograd/grad_at",
                        0,
                        1,
                        "error",
                        f"the kata file does not import:\n{IMPORT_ERROR}",
                    )
                ],
                problem=f"the kata file does not import:\n{IMPORT_ERROR}",
                seconds=1.5,
            ),
        ]
    )


def valid(xml_text: str) -> list[str]:
    return [error.reason for error in SCHEMA.iter_errors(xml_text)]


# --- JUnit -----------------------------------------------------------------------------------


def test_the_junit_report_is_valid_against_the_jenkins_schema_and_reads_back():
    text = junit.render(sample_grade())
    assert valid(text) == []
    xml = junitparser.JUnitXml.fromstring(text)
    suites = {suite.name: suite for suite in xml}
    assert list(suites) == ["06_training_loop", "01_autograd"]
    training = suites["06_training_loop"]
    properties = {p.name: p.value for p in training.properties()}
    assert properties["points"] == "2" and properties["max_points"] == "6"
    assert properties["points.fit"] == "0/3"
    cases = {case.name: case for case in training}
    assert {case.classname for case in training} == {"06_training_loop"}
    assert cases["train_step"].is_passed
    (failure,) = cases["fit"].result
    assert isinstance(failure, junitparser.Failure) and failure.message.startswith(f"Likely cause: {CAUSE}")
    assert isinstance(cases["seeded_losses"].result[0], junitparser.Failure)
    (error,) = next(iter(suites["01_autograd"])).result
    assert isinstance(error, junitparser.Error), "a kata that was not graded is an error, not a wrong answer"
    assert "ModuleNotFoundError" in error.message
    assert training.time == pytest.approx(6.0) and all(case.time > 0 for case in training)
    assert sum(case.time for case in training) == pytest.approx(training.time, abs=0.01)
    assert (xml.tests, xml.failures, xml.errors) == (4, 2, 1)


def test_the_junit_report_stays_valid_xml_whatever_the_learner_printed():
    grade = sample_grade()
    grade.katas[0].exercises[1].message = "colour \x1b[31mred\x1b[0m, a NUL \x00, a form feed \x0c"
    text = junit.render(grade)
    assert valid(text) == []
    assert "\\x1b[31mred" in text


# --- the likely cause, every note complete -----------------------------------------------------


def test_the_likely_cause_comes_first_in_every_format_and_survives_the_cut():
    grade = sample_grade()
    data = json.loads(report.as_json(grade))
    (fit,) = [e for e in data["katas"][0]["exercises"] if e["exercise"].endswith("/fit")]
    assert fit["cause"] == CAUSE
    assert fit["message"].startswith(f"Likely cause: {CAUSE}") and len(fit["message"]) <= report.SHOWN_CHARS
    assert fit["message"].count(CAUSE) == 1, "the cause is moved to the top, not repeated"
    gradescope = json.loads(report.as_gradescope(grade))
    (test,) = [t for t in gradescope["tests"] if t["name"].endswith("/fit")]
    assert test["output"].startswith(f"Likely cause: {CAUSE}") and len(test["output"]) <= report.SHOWN_CHARS
    markdown = report.as_markdown(grade)
    assert "next: `06_training_loop/fit` (failed; likely cause: gradients doubled" in markdown
    failure = next(
        c for c in next(iter(junitparser.JUnitXml.fromstring(junit.render(grade)))) if c.name == "fit"
    )
    assert failure.result[0].text.startswith(f"Likely cause: {CAUSE}")


@pytest.mark.parametrize(
    "problem",
    [
        f"the kata file does not import:\n{IMPORT_ERROR}",
        "the kata file does not import: E   ModuleNotFoundError: No module named 'nonexistent_mod_xyz'\n"
        + IMPORT_ERROR,
    ],
    ids=["the error on the next lines", "the error on the first line"],
)
def test_a_kata_that_does_not_import_says_why_in_one_complete_line(problem):
    grade = sample_grade()
    grade.katas[1].problem = problem
    row = next(line for line in report.as_markdown(grade).splitlines() if line.startswith("| 01_autograd "))
    assert row.endswith(
        "| the kata file does not import: ModuleNotFoundError: No module named 'nonexistent_mod_xyz' |"
    )


def test_a_syntax_error_note_names_the_line():
    problem = (
        "the kata file does not import:\n==== ERRORS ====\n"
        "katas/01_autograd/autograd_basics.py does not compile, so none of its tests can run:\n"
        "  line 1: def broken(:\n                     ^\n  SyntaxError: invalid syntax\n"
        "Fix the line above and run again."
    )
    assert (
        report.problem_line(problem) == "the kata file does not import: SyntaxError: invalid syntax (line 1)"
    )


# --- Gradescope ------------------------------------------------------------------------------


def test_gradescope_results_carry_the_markdown_summary_numbers_and_tags():
    grade = sample_grade()
    data = json.loads(report.as_gradescope(grade, elapsed=42.4))
    assert data["score"] == grade.points and data["execution_time"] == 42
    assert data["output_format"] == "md" and data["output"] == report.as_markdown(grade, 42.4)
    numbers = [(t["number"], t["name"]) for t in data["tests"]]
    assert numbers == [
        ("1.1", "06_training_loop/train_step"),
        ("1.2", "06_training_loop/fit"),
        ("1.3", "06_training_loop/seeded_losses"),
        ("2.1", "01_autograd/grad_at"),
    ]
    assert all(t["tags"][0] == t["name"].split("/")[0] for t in data["tests"])
    not_graded = data["tests"][3]
    assert not_graded["status"] == "failed" and not_graded["output"].startswith(
        "not graded: the kata file does not import: ModuleNotFoundError"
    )


def test_a_grader_failure_is_stated_in_every_format_and_blames_no_one_else():
    failure = GraderFailure("RuntimeError: collecting the grader's own tests failed", 88, "Traceback ...")
    for fmt in report.FORMATS:
        text = report.render(failure, fmt)
        assert "grader failed" in text.lower(), fmt
    gradescope = json.loads(report.as_gradescope(failure))
    assert gradescope["score"] == 0 and "contact the instructor" in gradescope["output"]
    data = json.loads(report.as_json(failure))
    assert data["grader_error"].startswith("The grader failed (RuntimeError")
    xml = report.render(failure, "junit")
    assert valid(xml) == []
    (case,) = next(iter(junitparser.JUnitXml.fromstring(xml)))
    assert isinstance(case.result[0], junitparser.Error)


# --- writing: stdout, files, the step summary --------------------------------------------------


def test_out_dash_is_standard_output_not_a_file(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    report.write(sample_grade(), "junit", "-")
    assert valid(capsys.readouterr().out) == []
    assert not (tmp_path / "-").exists()


def test_a_report_file_is_replaced_whole(tmp_path):
    out = tmp_path / "deep" / "results.json"
    report.write(sample_grade(), "gradescope", out)
    assert json.loads(out.read_text(encoding="utf-8"))["tests"]
    assert [p.name for p in out.parent.iterdir()] == ["results.json"]


def test_the_step_summary_gets_the_markdown_table(tmp_path, monkeypatch):
    summary = tmp_path / "summary.md"
    summary.write_text("earlier step\n", encoding="utf-8")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    report.append_step_summary(sample_grade())
    assert summary.read_text(encoding="utf-8") == "earlier step\n" + report.as_markdown(sample_grade())


# --- the command around grade(): exit codes, progress, the deadline ----------------------------


@pytest.fixture
def fake_grade(monkeypatch):
    """run.grade replaced: returns sample_grade(), calling on_kata per kata; or raises `error`."""
    calls = {}

    def fake(manifest, submission, limits=None, on_kata=None):
        calls["limits"] = limits
        if "error" in calls:
            raise calls["error"]
        grade = sample_grade()
        for kata in grade.katas:
            if on_kata is not None:
                on_kata(kata)
        return grade

    monkeypatch.setattr(grading_run, "grade", fake)
    return calls


def test_grade_exits_0_whatever_the_score_and_1_below_fail_under(fake_grade, tmp_path, capsys):
    out = str(tmp_path / "grade.json")
    assert grade_command.run(MANIFEST, tmp_path, Limits(), [("json", out)]) == 0
    assert grade_command.run(MANIFEST, tmp_path, Limits(), [("json", out)], fail_under=threshold("2")) == 0
    assert grade_command.run(MANIFEST, tmp_path, Limits(), [("json", out)], fail_under=threshold("3")) == 1
    assert grade_command.run(MANIFEST, tmp_path, Limits(), [("json", out)], fail_under=threshold("80%")) == 1
    assert grade_command.run(MANIFEST, tmp_path, Limits(), [("json", out)], fail_under=threshold("25%")) == 0
    assert "2/7 points is below --fail-under 3 points" in capsys.readouterr().err


def threshold(text: str) -> grade_command.Threshold:
    return grade_command.Threshold.parse(text)


def test_fail_under_rejects_what_is_neither_points_nor_a_percentage():
    with pytest.raises(ValueError, match=r"points \(e.g. 40\) or a percentage \(e.g. 80%\)"):
        threshold("most")


def test_grade_says_what_it_does_and_prints_a_line_per_kata(fake_grade, tmp_path, capsys):
    grade_command.run(MANIFEST, tmp_path, Limits(jobs=1), [("markdown", "-")])
    out, err = capsys.readouterr()
    assert out.startswith("## torch-katas: 2/7 points")
    lines = err.splitlines()
    assert lines[0].startswith(
        f"torch-katas: grading {len(MANIFEST.katas)} kata(s) of {tmp_path}, 1 at a time"
    )
    assert "  06_training_loop: 2/6 points (6 s)" in lines
    assert (
        "  01_autograd: 0/1 points (2 s)  the kata file does not import: "
        "ModuleNotFoundError: No module named 'nonexistent_mod_xyz'"
    ) in lines
    assert lines[-1].startswith("torch-katas: 2/7 points in ")


def test_a_grader_failure_is_exit_3_one_line_and_written_reports(fake_grade, tmp_path, capsys):
    fake_grade["error"] = RuntimeError("collecting the grader's own tests failed:\nImportError: no torch")
    outs = {fmt: tmp_path / f"grade.{fmt}" for fmt in report.FORMATS}
    code = grade_command.run(MANIFEST, tmp_path, Limits(), [(fmt, str(path)) for fmt, path in outs.items()])
    assert code == grade_command.EXIT_GRADER_FAILED
    err = capsys.readouterr().err
    assert "Traceback" not in err
    (line,) = [line for line in err.splitlines() if line.startswith("error: ")]
    assert (
        "the grader failed (RuntimeError: collecting the grader's own tests failed: ImportError: no torch)"
        in line
    )
    for fmt, path in outs.items():
        assert "grader failed" in path.read_text(encoding="utf-8").lower(), fmt
    assert valid(outs["junit"].read_text(encoding="utf-8")) == []


def test_at_the_deadline_the_katas_not_finished_are_not_graded(monkeypatch, tmp_path):
    release = threading.Event()

    def stuck(manifest, submission, limits=None, on_kata=None):
        release.wait()  # a kata that never ends
        return Grade([])

    monkeypatch.setattr(grading_run, "grade", stuck)
    monkeypatch.setattr(grade_command, "DEADLINE_GRACE_S", 0.0)
    try:
        result, still_running = grade_command._grade(MANIFEST, tmp_path, Limits(), deadline=0.01)
    finally:
        release.set()
    assert still_running
    assert [k.kata for k in result.katas] == [k.name for k in MANIFEST.katas]
    assert all(k.problem.startswith("not graded: the grading time ran out") for k in result.katas)
    assert result.points == 0 and result.max_points == sum(ex.points for ex in MANIFEST.exercises)


# --- a learner's own --junitxml ----------------------------------------------------------------

DEMO_MANIFEST = """
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
DEMO_STUB = """
def add(a: int, b: int) -> int:
    raise NotImplementedError("add")


def double(x: int) -> int:
    return x + x + 1
"""
DEMO_TESTS = """
import demo_ops
import pytest


@pytest.mark.exercise("add")
def test_add():
    assert demo_ops.add(2, 3) == 5


@pytest.mark.exercise("double")
def test_double():
    assert demo_ops.double(4) == 8
"""


@pytest.fixture
def demo(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makepyprojecttoml(
        """
        [tool.pytest.ini_options]
        addopts = ["--import-mode=importlib", "-p", "katas._harness.plugin", "--katas-root=.",
                   "-p", "no:cacheprovider"]
        """
    )
    files = {
        "katas/manifest.toml": DEMO_MANIFEST,
        "katas/01_demo/demo_ops.py": DEMO_STUB,
        "katas/01_demo/test_demo_ops.py": DEMO_TESTS,
    }
    for name, text in files.items():
        path = pytester.path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text), encoding="utf-8")
    return pytester


@pytest.mark.parametrize("workers", [[], ["-n", "2"]], ids=["one process", "xdist"])
def test_a_learners_junitxml_is_valid_and_progress_still_counts(demo, workers):
    xml = demo.path / "learner.xml"
    result = demo.runpytest_subprocess("katas/01_demo", f"--junitxml={xml}", *workers)
    result.assert_outcomes(failed=2)
    assert valid(xml.read_text(encoding="utf-8")) == []
    result.stdout.fnmatch_lines(["01_demo  0/2 exercises done", "  · add     todo", "  ✗ double  failing*"])


def test_without_junitxml_the_reports_keep_their_user_properties(demo):
    """watch and list read the exercise from report.user_properties; the grading child from outcome_of."""
    demo.makeconftest(
        """
        from katas._harness.session import EXERCISE_PROPERTY, outcome_of

        def pytest_runtest_logreport(report):
            if report.when == "call":
                print("\\nSEEN", dict(report.user_properties).get(EXERCISE_PROPERTY), outcome_of(report))
        """
    )
    result = demo.runpytest_subprocess("katas/01_demo", "-s")
    result.stdout.fnmatch_lines(
        ["*SEEN 01_demo/add ('01_demo/add', 'todo')*", "*SEEN 01_demo/double ('01_demo/double', 'failed')*"]
    )


# --- end to end ----------------------------------------------------------------------------------


def test_grade_end_to_end_junit_on_stdout_and_fail_under(tmp_path, two_katas):  # noqa: F811
    sub = submission(tmp_path, two_katas, solved={SECOND.name})
    json_out = tmp_path / "grade.json"
    result = katas_command(
        two_katas.root,
        "--root", str(two_katas.root), "grade", str(sub), "--jobs", "1",
        "--format", "junit", "--out", "-", "--format", "json", "--out", str(json_out),
        "--fail-under", "100%",
    )  # fmt: skip
    assert result.returncode == 1, result.stderr
    assert valid(result.stdout) == []
    xml = junitparser.JUnitXml.fromstring(result.stdout)
    assert [suite.name for suite in xml] == [FIRST.name, SECOND.name]
    assert all(suite.time > 0 for suite in xml), "a graded kata takes time"
    data = json.loads(json_out.read_text(encoding="utf-8"))
    assert data["score"] == sum(ex.points for ex in SECOND.exercises)
    assert "Traceback" not in result.stderr
    assert result.stderr.splitlines()[0].startswith("torch-katas: grading 2 kata(s)")
    assert "is below --fail-under 100%" in result.stderr


def test_grade_with_no_time_left_grades_nothing_and_says_so(tmp_path, two_katas):  # noqa: F811
    sub = submission(tmp_path, two_katas, solved={SECOND.name})
    result = katas_command(
        two_katas.root,
        "--root",
        str(two_katas.root),
        "grade",
        str(sub),
        "--deadline",
        "0",
        "--format",
        "json",
    )
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["score"] == 0
    assert all("grading time ran out" in k["problem"] for k in data["katas"])


def test_the_exported_workflow_fails_only_if_the_instructor_asks():
    workflow = (Path(grading_run.__file__).parent / "grade.yml").read_text(encoding="utf-8")
    active = [line for line in workflow.splitlines() if not line.strip().startswith("#")]
    assert "--fail-under" not in "\n".join(active)
    assert "--fail-under" in workflow


# --- Gradescope's run_autograder -----------------------------------------------------------------

FAKE_PYTHON = """#!/usr/bin/env bash
case "$*" in *--help*) exit 0 ;; esac
cp {root}/results/results.json {root}/during.json
exit {code}
"""


def autograder(tmp_path: Path, python: str | None) -> Path:
    """run_autograder as the bundle has it, with /autograder moved under tmp_path."""
    root = tmp_path / "autograder"
    (root / "source" / "torch-katas").mkdir(parents=True)
    (root / "submission").mkdir()
    if python is not None:
        (root / "venv" / "bin").mkdir(parents=True)
        (root / "venv" / "bin" / "python").write_text(python.format(root=root), encoding="utf-8")
        (root / "venv" / "bin" / "python").chmod(0o755)
    text = bundle.script_text("run_autograder", "2.13.0", "3.12", timeout_minutes=10)
    assert f"deadline={10 * 60 - bundle.MARGIN_SECONDS}" in text
    script = tmp_path / "run_autograder"
    script.write_text(text.replace("/autograder", str(root)), encoding="utf-8")
    return script


def results_of(script: Path) -> dict:
    done = subprocess.run(["bash", str(script)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return json.loads((script.parent / "autograder" / "results" / "results.json").read_text(encoding="utf-8"))


def test_run_autograder_without_the_grader_installed_says_the_grader_failed(tmp_path):
    results = results_of(autograder(tmp_path, python=None))
    assert results["score"] == 0 and results["tests"] == []
    assert "The grader failed" in results["output"] and "setup.sh did not finish" in results["output"]


@pytest.mark.parametrize(
    ("code", "words"),
    [(1, "The grader failed** (python -m katas grade exited with status 1)"), (2, "No kata file found")],
)
def test_run_autograder_reports_a_grade_that_wrote_nothing(tmp_path, code, words):
    script = autograder(tmp_path, FAKE_PYTHON.replace("{code}", str(code)))
    results = results_of(script)
    assert words in results["output"]
    during = json.loads((tmp_path / "autograder" / "during.json").read_text(encoding="utf-8"))
    assert "Grading did not finish" in during["output"], "a valid results.json is there from the start"


def test_run_autograder_grades_into_results_json(tmp_path, two_katas):  # noqa: F811
    wrapper = f'#!/usr/bin/env bash\nexec {sys.executable} "$@"\n'
    script = autograder(tmp_path, wrapper)
    root = tmp_path / "autograder"
    (root / "source" / "torch-katas").rmdir()
    (root / "source" / "torch-katas").symlink_to(two_katas.root)
    (root / "submission").rmdir()
    shutil.copytree(submission(tmp_path, two_katas, solved={SECOND.name}), root / "submission")
    results = results_of(script)
    assert results["score"] == sum(ex.points for ex in SECOND.exercises)
    assert [t["number"] for t in results["tests"]][:2] == ["1.1", "1.2"]
    assert results["output"].startswith("## torch-katas: ")
