"""A grade in the formats instructors use: JSON, Gradescope's results.json, JUnit XML, Markdown.

Every format puts an exercise's likely cause before its message, so that cutting a long
message never loses it, and states a grader failure as such: not as the submission's score.
"""

from __future__ import annotations

import json
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path

from .run import ExerciseScore, Grade, KataScore

FORMATS = ("json", "gradescope", "junit", "markdown")
STDOUT = "-"  # --out - writes the report to standard output
SHOWN_CHARS = 1500  # a failure message longer than this is cut in every format (its cause is kept)
NOTE_CHARS = 300  # a note in the Markdown table
STATUS_WORDS = {"passed": "passed", "failed": "failed", "todo": "not started", "error": "not graded"}
CAUSE_LABEL = "Likely cause:"
CUT_MARK = "\n... (cut)"
TITLE = "torch-katas"
GRADER_FAILED = (
    "The grader failed ({reason}). This is not the submission's score: contact the instructor, "
    "who can grade it again."
)
# Lines of pytest's own output that say nothing about the error: separators, banners, counts.
_NOISE = re.compile(r"^([=_!\-]{3,}.*|.*[=_!\-]{3,}|\d+ (errors?|failed|passed).* in [\d.]+s.*)$")
_ERROR_LINE = re.compile(r"^(E\s+)?([A-Za-z_][\w.]*(Error|Exception|Exit|Interrupt|Warning)\b.*)$")
_SOURCE_LINE = re.compile(r"^(line \d+):")
_PYTEST_E = re.compile(r":\s+E\s{2,}")  # pytest's "E   " before an exception line


@dataclass
class GraderFailure:
    """No grade: the grader itself failed (its own collection, a crash), not the submission."""

    reason: str  # one line, e.g. "RuntimeError: collecting the grader's own tests failed"
    max_points: int
    detail: str = ""  # the traceback, for the instructor (JSON only)
    points: int = 0
    katas: tuple = ()

    @property
    def statement(self) -> str:
        return GRADER_FAILED.format(reason=self.reason)


Result = Grade | GraderFailure


def cut(text: str, limit: int = SHOWN_CHARS) -> str:
    text = text.strip()
    return text if len(text) <= limit else text[: max(0, limit - len(CUT_MARK))].rstrip() + CUT_MARK


def explained(exercise: ExerciseScore, limit: int = SHOWN_CHARS) -> str:
    """An exercise's failure text: its likely cause first, then the message, cut to `limit`."""
    message = exercise.message.strip()
    if not exercise.cause:
        return cut(message, limit)
    head = f"{CAUSE_LABEL} {exercise.cause}"
    rest = "\n".join(line for line in message.splitlines() if not line.strip().endswith(exercise.cause))
    return head if not rest.strip() else head + "\n\n" + cut(rest, max(0, limit - len(head) - 2))


def problem_line(problem: str) -> str:
    """One complete line for why a kata was not graded, e.g.
    "the kata file does not import: ModuleNotFoundError: No module named 'foo'"."""
    lines = [line.strip() for line in problem.strip().splitlines()]
    lines = [line for line in lines if line and not _NOISE.match(line)]
    if not lines:
        return "not graded"
    first = _PYTEST_E.sub(": ", lines[0])
    if not first.endswith((":", "：")) or len(lines) == 1:
        return first.rstrip(":：")
    rest = lines[1:]
    errors = [m.group(2) for m in map(_ERROR_LINE.match, rest) if m]
    if errors:
        where = next((m.group(1) for m in map(_SOURCE_LINE.match, rest) if m), None)
        detail = errors[-1] + (f" ({where})" if where else "")
    else:
        detail = rest[0].rstrip(":：")
    return f"{first} {detail}"


def first_line(text: str) -> str:
    return next((line.strip() for line in text.strip().splitlines() if line.strip()), "")


# --- JSON ------------------------------------------------------------------------------------


def as_json(result: Result, elapsed: float | None = None) -> str:
    if isinstance(result, GraderFailure):
        body = {
            "score": 0,
            "max_score": result.max_points,
            "grader_error": result.statement,
            "grader_detail": result.detail,
            "seconds": _seconds(elapsed),
            "katas": [],
        }
        return json.dumps(body, indent=2, ensure_ascii=False)
    body = {
        "score": result.points,
        "max_score": result.max_points,
        "grader_error": None,
        "seconds": _seconds(elapsed),
        "isolation": list(getattr(result, "isolation", [])),
        "katas": [
            {
                "kata": k.kata,
                "score": k.points,
                "max_score": k.max_points,
                "problem": k.problem,
                "note": kata_note(k),
                "seconds": round(k.seconds, 2),
                "exercises": [
                    {
                        "exercise": e.qualname,
                        "status": e.status,
                        "score": e.points,
                        "max_score": e.max_points,
                        "cause": e.cause,
                        "message": explained(e),
                    }
                    for e in k.exercises
                ],
            }
            for k in result.katas
        ],
    }
    return json.dumps(body, indent=2, ensure_ascii=False)


def _seconds(elapsed: float | None) -> float | None:
    return None if elapsed is None else round(elapsed, 2)


# --- Gradescope ------------------------------------------------------------------------------


def as_gradescope(result: Result, elapsed: float | None = None) -> str:
    """Gradescope's results.json: the Markdown table as the summary, one test per exercise."""
    body: dict = {"score": result.points, "output_format": "md", "visibility": "visible"}
    if elapsed is not None:
        body["execution_time"] = max(1, round(elapsed))
    if isinstance(result, GraderFailure):
        body.update(output=as_markdown(result, elapsed), tests=[])
        return json.dumps(body, indent=2, ensure_ascii=False)
    body["output"] = as_markdown(result, elapsed)
    body["stdout_visibility"] = "hidden"
    body["tests"] = [
        {
            "name": e.qualname,
            "number": f"{kata_number}.{number}",
            "score": e.points,
            "max_score": e.max_points,
            "status": "passed" if e.status == "passed" else "failed",
            "output": "" if e.status == "passed" else _gradescope_output(k, e),
            "output_format": "text",
            "tags": [k.kata, STATUS_WORDS[e.status]],
            "visibility": "visible",
        }
        for kata_number, k in enumerate(result.katas, start=1)
        for number, e in enumerate(k.exercises, start=1)
    ]
    return json.dumps(body, indent=2, ensure_ascii=False)


def _gradescope_output(kata: KataScore, exercise: ExerciseScore) -> str:
    if kata.problem:  # the same for every exercise of the kata: the reason first, then the detail
        return cut(f"{STATUS_WORDS['error']}: {problem_line(kata.problem)}\n\n{kata.problem}")
    return explained(exercise)


# --- Markdown --------------------------------------------------------------------------------


def as_markdown(result: Result, elapsed: float | None = None) -> str:
    if isinstance(result, GraderFailure):
        return f"## {TITLE}: the grader failed\n\n{_cell(result.statement, 1000)}\n"
    lines = [
        f"## {TITLE}: {result.points}/{result.max_points} points",
        "",
        "| kata | score | exercises passed | note |",
        "| --- | ---: | ---: | --- |",
    ]
    for k in result.katas:
        passed = sum(e.status == "passed" for e in k.exercises)
        lines.append(
            f"| {k.kata} | {k.points}/{k.max_points} | {passed}/{len(k.exercises)} | {_cell(kata_note(k))} |"
        )
    causes = [
        e for k in result.katas if not k.problem for e in k.exercises if e.cause and e.status != "passed"
    ]
    if causes:
        lines += ["", "Likely causes of failures:", ""]
        lines += [f"- `{e.qualname}`: {_cell(e.cause)}" for e in causes]
    if elapsed is not None:
        lines += ["", f"Graded in {elapsed:.0f} s."]
    return "\n".join(lines) + "\n"


def kata_note(kata: KataScore) -> str:
    """Why a kata scored zero, else its next exercise to do (with the likely cause, if known)."""
    if kata.problem:
        return problem_line(kata.problem)
    for e in kata.exercises:
        if e.status != "passed":
            why = f"; {CAUSE_LABEL.lower()} {e.cause}" if e.cause else ""
            return f"next: `{e.qualname}` ({STATUS_WORDS[e.status]}{why})"
    return "all done"


def _cell(text: str, limit: int = NOTE_CHARS) -> str:
    text = " ".join(text.split()).replace("|", "\\|")
    return text if len(text) <= limit else text[: limit - 3].rstrip() + "..."


# --- writing ---------------------------------------------------------------------------------


def render(result: Result, fmt: str, elapsed: float | None = None) -> str:
    if fmt == "json":
        return as_json(result, elapsed)
    if fmt == "gradescope":
        return as_gradescope(result, elapsed)
    if fmt == "markdown":
        return as_markdown(result, elapsed)
    if fmt == "junit":
        from . import junit

        return junit.render(result)
    raise ValueError(fmt)


def write(result: Result, fmt: str, path: Path | str, elapsed: float | None = None) -> None:
    """Write one report; `-` is standard output. A file is replaced whole, never left half-written."""
    text = render(result, fmt, elapsed)
    if str(path) == STDOUT:
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
        sys.stdout.flush()
        return
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    partial.write_text(text, encoding="utf-8")
    os.replace(partial, path)


def append_step_summary(result: Result, elapsed: float | None = None) -> None:
    summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if summary:
        with open(summary, "a", encoding="utf-8") as handle:
            handle.write(as_markdown(result, elapsed))
