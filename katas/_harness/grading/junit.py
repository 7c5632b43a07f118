"""A grade as JUnit XML, written with junitparser and valid against Jenkins xUnit's junit-10.xsd.

One <testsuite> per kata (its points as properties: that schema allows no <properties> in a
<testcase>), one <testcase> per exercise (classname the kata, name the function):

- a wrong answer or an untouched stub is a <failure> (type "failed" or "not started"),
- a kata that was not graded (its file does not import, a timeout, a crash) gives each of its
  exercises an <error> (type "not graded") with the reason,
- nothing is <skipped>: a grade has no skipped exercise (a GPU test skipped on a grader
  without CUDA counts as passed).

A suite's time is the kata's wall clock; run.py times katas, not exercises, so each testcase
shows an equal share of it (their sum is the kata's time).
"""

from __future__ import annotations

import io
import re

from junitparser import Error, Failure, JUnitXml, TestCase, TestSuite

from .report import (
    STATUS_WORDS,
    TITLE,
    GraderFailure,
    Result,
    cut,
    explained,
    first_line,
    problem_line,
)
from .run import ExerciseScore, KataScore

# Characters XML 1.0 cannot hold (a learner's output may carry terminal escapes, NUL...).
_NOT_XML = re.compile("[^\x09\x0a\x0d\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def xml_safe(text: str) -> str:
    return _NOT_XML.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def build(result: Result) -> JUnitXml:
    xml = JUnitXml(TITLE)
    suites = [_grader_failure(result)] if isinstance(result, GraderFailure) else map(_suite, result.katas)
    for suite in suites:
        suite.update_statistics()
        xml.add_testsuite(suite)
    # Set by hand: junitparser's update_statistics() adds `skipped` to <testsuites>, which
    # junit-10.xsd does not allow there.
    xml.tests = sum(s.tests for s in xml)
    xml.failures = sum(s.failures for s in xml)
    xml.errors = sum(s.errors for s in xml)
    xml.time = round(sum(s.time for s in xml), 3)
    return xml


def render(result: Result) -> str:
    buffer = io.BytesIO()
    build(result).write(buffer, pretty=True)
    return buffer.getvalue().decode("utf-8")


def _suite(kata: KataScore) -> TestSuite:
    suite = TestSuite(kata.kata)
    suite.add_property("points", str(kata.points))
    suite.add_property("max_points", str(kata.max_points))
    for e in kata.exercises:
        suite.add_property(f"points.{_function(e)}", f"{e.points}/{e.max_points}")
    share = kata.seconds / len(kata.exercises) if kata.exercises else 0.0
    for e in kata.exercises:
        case = TestCase(_function(e), kata.kata, round(share, 3))
        if kata.problem or e.status == "error":
            reason = kata.problem or e.message
            case.result = [_outcome(Error, problem_line(reason), STATUS_WORDS["error"], cut(reason))]
        elif e.status != "passed":
            text = explained(e) or STATUS_WORDS[e.status]
            case.result = [_outcome(Failure, first_line(text), STATUS_WORDS[e.status], text)]
        suite.add_testcase(case)
    suite.time = round(kata.seconds, 3)
    return suite


def _grader_failure(failure: GraderFailure) -> TestSuite:
    suite = TestSuite(TITLE)
    suite.add_property("points", "0")
    suite.add_property("max_points", str(failure.max_points))
    case = TestCase("grader", TITLE, 0.0)
    case.result = [_outcome(Error, failure.statement, "grader failed", failure.statement)]
    suite.add_testcase(case)
    suite.time = 0.0
    return suite


def _outcome(kind, message: str, type_: str, text: str):
    outcome = kind(xml_safe(message), type_)
    outcome.text = xml_safe(text)
    return outcome


def _function(exercise: ExerciseScore) -> str:
    return exercise.qualname.split("/", 1)[-1]
