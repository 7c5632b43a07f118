"""What `python -m katas grade` does around run.grade(): progress lines on stderr, the
--deadline, the grader's own failures, the reports, and the exit code.

Exit codes: 0 graded (whatever the score), 1 below --fail-under, 3 the grader failed (the
reports say so; the submission is not to blame). Usage errors (2) are the CLI's.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import threading
import time
import traceback
from pathlib import Path

from ..manifest import Manifest
from . import report
from .report import GraderFailure, Result
from .run import ExerciseScore, Grade, KataScore, Limits

EXIT_BELOW = 1
EXIT_GRADER_FAILED = 3
RAN_OUT = "not graded: the grading time ran out (--deadline) before this kata finished"
# run.grade() honours Limits.deadline and returns soon after it; this is how long past it the
# CLI still waits (a kata's child being swept, say) before it reports what finished and exits.
DEADLINE_GRACE_S = 60.0


@dataclasses.dataclass(frozen=True)
class Threshold:
    value: float
    percent: bool

    @classmethod
    def parse(cls, text: str) -> Threshold:
        """40 (points) or 80% (of the maximum); ValueError with a one-line message otherwise."""
        percent = text.strip().endswith("%")
        try:
            value = float(text.strip().rstrip("%"))
        except ValueError:
            raise ValueError(
                f"--fail-under takes points (e.g. 40) or a percentage (e.g. 80%), not '{text}'"
            ) from None
        return cls(value, percent)

    def fails(self, grade: Grade) -> bool:
        if self.percent:
            return grade.max_points > 0 and 100.0 * grade.points / grade.max_points < self.value
        return grade.points < self.value

    def __str__(self) -> str:
        return f"{self.value:g}{'%' if self.percent else ' points'}"


def run(
    manifest: Manifest,
    submission: Path,
    limits: Limits,
    reports: list[tuple[str, str]],
    *,
    deadline: float | None = None,
    fail_under: Threshold | None = None,
) -> int:
    """Grade, write each (format, destination) report ("-" is stdout), return the exit code."""
    started = time.monotonic()
    _say(_start_line(manifest, submission, limits, deadline))
    hard_exit = False
    try:
        result, hard_exit = _grade(manifest, submission, limits, deadline)
    except Exception as err:  # the grader's own failure: a report that says so, never a traceback
        detail = "".join(traceback.format_exception(err))
        result = GraderFailure(_reason(err), sum(ex.points for ex in manifest.exercises), detail)
    elapsed = time.monotonic() - started
    code = _finish(result, reports, elapsed, fail_under)
    if hard_exit:  # run.grade() still runs in its thread: exit without waiting for it
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return code


def _finish(result: Result, reports: list[tuple[str, str]], elapsed: float, fail_under) -> int:
    written = []
    for fmt, out in reports:
        try:
            report.write(result, fmt, out, elapsed)
        except OSError as err:
            _say(f"error: cannot write the {fmt} report to {out} ({err.strerror or err}); check the path")
            return EXIT_GRADER_FAILED
        if out != report.STDOUT:
            written.append(out)
    report.append_step_summary(result, elapsed)
    wrote = f"; wrote {', '.join(written)}" if written else ""
    if isinstance(result, GraderFailure):
        _say(
            f"error: the grader failed ({result.reason}); the reports say so{wrote}. "
            "It is not the submission's fault: check the grader's installation and grade again."
        )
        return EXIT_GRADER_FAILED
    _say(f"torch-katas: {result.points}/{result.max_points} points in {elapsed:.0f} s{wrote}")
    if fail_under is not None and fail_under.fails(result):
        _say(f"torch-katas: {result.points}/{result.max_points} points is below --fail-under {fail_under}")
        return EXIT_BELOW
    return 0


def _grade(
    manifest: Manifest, submission: Path, limits: Limits, deadline: float | None
) -> tuple[Result, bool]:
    """run.grade(), stopped at the deadline: (the result, whether run.grade() is still running)."""
    from .run import grade

    finished: dict[str, KataScore] = {}
    lock = threading.Lock()

    def on_kata(score: KataScore) -> None:
        with lock:
            finished[score.kata] = score
            _say(_kata_line(score))

    if deadline is None:
        return grade(manifest, submission, limits, on_kata=on_kata), False
    end = time.monotonic() + deadline
    limits = dataclasses.replace(limits, deadline=deadline)  # run.grade() stops on time itself
    outcome: dict[str, object] = {}

    def target() -> None:
        try:
            outcome["result"] = grade(manifest, submission, limits, on_kata=on_kata)
        except BaseException as err:  # handed to the main thread, which reports it
            outcome["error"] = err

    worker = threading.Thread(target=target, name="katas-grade", daemon=True)
    worker.start()
    worker.join(timeout=max(0.0, end - time.monotonic()) + DEADLINE_GRACE_S)
    if worker.is_alive():
        with lock:
            return _ran_out(manifest, dict(finished)), True
    if "error" in outcome:
        raise outcome["error"]
    return outcome["result"], False


def _ran_out(manifest: Manifest, finished: dict[str, KataScore]) -> Grade:
    """The katas that finished before the deadline, and the others scored zero as not graded."""
    katas = []
    for kata in manifest.katas:
        score = finished.get(kata.name)
        if score is None:
            exercises = [ExerciseScore(ex.qualname, 0, ex.points, "error", RAN_OUT) for ex in kata.exercises]
            score = KataScore(kata.name, exercises, problem=RAN_OUT)
        katas.append(score)
    return Grade(katas)


def _reason(err: BaseException) -> str:
    return (
        f"{type(err).__name__}: {report.problem_line(str(err))}" if str(err).strip() else type(err).__name__
    )


def _start_line(manifest: Manifest, submission: Path, limits: Limits, deadline: float | None) -> str:
    katas = len(manifest.katas)
    limit = f"; all of it stops after {deadline:.0f} s" if deadline is not None else ""
    return (
        f"torch-katas: grading {katas} kata(s) of {submission}, {max(1, limits.jobs)} at a time "
        f"(each stops after {limits.kata_timeout:.0f} s at most{limit})..."
    )


def _kata_line(score: KataScore) -> str:
    why = f"  {report.problem_line(score.problem)}" if score.problem else ""
    return f"  {score.kata}: {score.points}/{score.max_points} points ({score.seconds:.0f} s){why}"


def _say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)
