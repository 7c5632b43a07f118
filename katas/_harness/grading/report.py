"""A grade in the formats instructors use: JSON, Gradescope's results.json, JUnit XML, Markdown."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from .run import ExerciseScore, Grade

FORMATS = ("json", "gradescope", "junit", "markdown")
SHOWN_CHARS = 1500  # a failure message longer than this is cut in every format
STATUS_WORDS = {"passed": "passed", "failed": "failed", "todo": "not started", "error": "not graded"}


def _capped(text: str) -> str:
    text = text.strip()
    return text if len(text) <= SHOWN_CHARS else text[:SHOWN_CHARS] + "\n... (cut)"


def as_json(grade: Grade) -> str:
    return json.dumps(
        {
            "score": grade.points,
            "max_score": grade.max_points,
            "katas": [
                {
                    "kata": k.kata,
                    "score": k.points,
                    "max_score": k.max_points,
                    "problem": k.problem,
                    "seconds": round(k.seconds, 2),
                    "exercises": [
                        {
                            "exercise": e.qualname,
                            "status": e.status,
                            "score": e.points,
                            "max_score": e.max_points,
                            "message": _capped(e.message),
                        }
                        for e in k.exercises
                    ],
                }
                for k in grade.katas
            ],
        },
        indent=2,
    )


def as_gradescope(grade: Grade) -> str:
    tests = [
        {
            "name": e.qualname,
            "score": e.points,
            "max_score": e.max_points,
            "status": "passed" if e.status == "passed" else "failed",
            "output": _capped(e.message) if e.status != "passed" else "",
            "visibility": "visible",
        }
        for k in grade.katas
        for e in k.exercises
    ]
    summary = f"torch-katas: {grade.points}/{grade.max_points} points"
    return json.dumps(
        {"score": grade.points, "output": summary, "visibility": "visible", "tests": tests}, indent=2
    )


def as_markdown(grade: Grade) -> str:
    lines = [
        f"## torch-katas: {grade.points}/{grade.max_points} points",
        "",
        "| kata | score | exercises passed | note |",
        "| --- | ---: | ---: | --- |",
    ]
    for k in grade.katas:
        passed = sum(e.status == "passed" for e in k.exercises)
        note = _one_line(k.problem) if k.problem else _first_failure(k.exercises)
        lines.append(f"| {k.kata} | {k.points}/{k.max_points} | {passed}/{len(k.exercises)} | {note} |")
    return "\n".join(lines) + "\n"


def _first_failure(exercises: list[ExerciseScore]) -> str:
    for e in exercises:
        if e.status != "passed":
            return f"next: `{e.qualname}` ({STATUS_WORDS[e.status]})"
    return "all done"


def _one_line(text: str) -> str:
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line.replace("|", "\\|")[:200]


def write_junit(grade: Grade, path: Path) -> None:
    """One test case per exercise, written by pytest's own JUnit writer."""
    from _pytest.junitxml import LogXML

    xml = LogXML(str(path), None, suite_name="torch-katas", family="xunit2")
    xml.pytest_sessionstart()
    for k in grade.katas:
        for e in k.exercises:
            kata, name = e.qualname.split("/")
            outcome = "passed" if e.status == "passed" else "failed"
            longrepr = None if outcome == "passed" else _capped(e.message) or STATUS_WORDS[e.status]
            report = pytest.TestReport(
                nodeid=f"katas/{kata}::{name}",
                location=(f"katas/{kata}", None, name),
                keywords={},
                outcome=outcome,
                longrepr=longrepr,
                when="call",
                user_properties=[("points", f"{e.points}/{e.max_points}")],
            )
            xml.pytest_runtest_logreport(report)
    xml.pytest_sessionfinish()


def render(grade: Grade, fmt: str) -> str:
    if fmt == "json":
        return as_json(grade)
    if fmt == "gradescope":
        return as_gradescope(grade)
    if fmt == "markdown":
        return as_markdown(grade)
    raise ValueError(fmt)


def write(grade: Grade, fmt: str, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "junit":
        write_junit(grade, path)
    else:
        path.write_text(render(grade, fmt), encoding="utf-8")


def append_step_summary(grade: Grade) -> None:
    summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if summary:
        with open(summary, "a", encoding="utf-8") as handle:
            handle.write(as_markdown(grade))
