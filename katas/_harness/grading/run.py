"""Grade a submission: build the tree, run each kata in its own limited subprocess, score it.

Only this process is trusted. A kata's score comes from its child's signed
report, and counts only when the report holds exactly the tests that a
collection of the pristine tree found; anything else scores that kata zero
with the reason.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from .. import pristine
from ..manifest import Kata, Manifest, read
from . import tree
from .child import SECRET_FD_ENV, sign

KATA_TIMEOUT = 300.0  # seconds of wall clock per kata
TEST_TIMEOUT = 60  # seconds per test (pytest-timeout)
MEMORY_MB = 4096  # address space per kata process; torch alone maps about 1 GB
PROFILE = "katas-check"  # derandomized Hypothesis: the same submission, the same score
PASSING = ("passed", "skipped")


@dataclass
class ExerciseScore:
    qualname: str
    points: int
    max_points: int
    status: str  # passed, failed, todo or error
    message: str = ""
    cause: str | None = None  # the likely cause the harness recognised, if any


@dataclass
class KataScore:
    kata: str
    exercises: list[ExerciseScore]
    problem: str | None = None  # why the kata scored zero as a whole
    seconds: float = 0.0

    @property
    def points(self) -> int:
        return sum(e.points for e in self.exercises)

    @property
    def max_points(self) -> int:
        return sum(e.max_points for e in self.exercises)


@dataclass
class Grade:
    katas: list[KataScore] = field(default_factory=list)

    @property
    def points(self) -> int:
        return sum(k.points for k in self.katas)

    @property
    def max_points(self) -> int:
        return sum(k.max_points for k in self.katas)


@dataclass(frozen=True)
class Limits:
    kata_timeout: float = KATA_TIMEOUT
    test_timeout: int = TEST_TIMEOUT
    memory_mb: int = MEMORY_MB
    jobs: int = 2
    user: str | None = None  # run the submission's code as this (unprivileged) account


def grade(manifest: Manifest, submission: Path, limits: Limits = Limits()) -> Grade:
    with tempfile.TemporaryDirectory(prefix="katas-grade-") as workdir:
        work = Path(workdir)
        work.chmod(0o755)
        base = work / "tree"
        tree.build(manifest, base)
        _write_pristine_stubs(manifest, base)
        expected = _collect(base, limits)
        katas = read(base).katas
        try:
            with ThreadPoolExecutor(max_workers=max(1, limits.jobs)) as pool:
                return Grade(
                    list(pool.map(lambda kata: _grade_kata(work, kata, submission, expected, limits), katas))
                )
        finally:
            for folder in work.iterdir():
                if folder.is_dir():
                    tree.thaw(folder)  # so that the temporary folder can be removed


def _write_pristine_stubs(manifest: Manifest, root: Path) -> None:
    clean = pristine.read(manifest.root)
    for kata in manifest.katas:
        text = clean.get(pristine.relative_path(kata))
        if text is None:
            raise RuntimeError(f"no pristine stub for {kata.name}: run `python -m katas snapshot`")
        kata.stub_path(root / "katas").write_text(text, encoding="utf-8")


def _collect(root: Path, limits: Limits) -> dict[str, set[str]]:
    """Every kata test's node id, collected from the pristine tree (no submission code in it)."""
    process = subprocess.run(
        [sys.executable, "-m", "pytest", "katas", "--collect-only", "-q", "-p", "no:cacheprovider"],
        cwd=root,
        env=_child_env(root),
        capture_output=True,
        text=True,
        timeout=limits.kata_timeout,
    )
    found: dict[str, set[str]] = {}
    for line in process.stdout.splitlines():
        if "::" in line and line.startswith("katas/"):
            found.setdefault(line.split("/")[1], set()).add(line.strip())
    if process.returncode != 0 or not found:
        raise RuntimeError(
            f"collecting the grader's own tests failed:\n{process.stdout[-2000:]}{process.stderr[-2000:]}"
        )
    return found


def _child_env(root: Path) -> dict[str, str]:
    keep = ("PATH", "LANG", "LC_ALL", "SYSTEMROOT", "TMPDIR", "TEMP", "TMP")
    env = {k: v for k, v in os.environ.items() if k in keep}
    env.update(PYTHONPATH=str(root), PYTHONDONTWRITEBYTECODE="1", HOME=str(root), PYTHONHASHSEED="0")
    return env


def _limit_resources(memory_mb: int, user):
    def limit() -> None:
        import resource

        os.setsid()  # its own process group: a timeout kills every process the kata started
        size = memory_mb * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (size, size))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        if user is not None:  # last: an unprivileged user cannot undo the limits above
            os.setgroups([])
            os.setgid(user.pw_gid)
            os.setuid(user.pw_uid)

    return limit if os.name == "posix" else None


def _grade_kata(
    work: Path, kata: Kata, submission: Path, expected: dict[str, set[str]], limits: Limits
) -> KataScore:
    """One kata in its own copy of the tree, so that its code cannot reach another kata's tests."""
    started = time.perf_counter()
    root = work / f"tree-{kata.name}"
    shutil.copytree(work / "tree", root)
    problem = tree.take_stub(kata, submission, root)
    if problem is not None:
        return _zero(kata, problem)
    tree.freeze(root)
    private = work / f"run-{kata.name}"  # the report and tmp_path: the only place the child may write
    private.mkdir()
    user = _account(limits.user)
    if user is not None:
        os.chown(private, user.pw_uid, user.pw_gid)
    secret = secrets.token_bytes(32)
    report = private / f"report-{secrets.token_hex(8)}.json"
    read_end, write_end = os.pipe()
    os.write(write_end, json.dumps({"secret": secret.hex(), "report": str(report)}).encode())
    os.close(write_end)
    command = [
        sys.executable,
        "-m",
        "pytest",
        f"katas/{kata.name}",
        "-p",
        "katas._harness.grading.child",
        "-p",
        "no:cacheprovider",
        "-p",
        "no:xdist",
        "-q",
        "--no-header",
        "-rN",
        f"--hypothesis-profile={PROFILE}",
        f"--timeout={limits.test_timeout}",
        f"--basetemp={private / 'tmp'}",
    ]
    env = {
        **_child_env(root),
        SECRET_FD_ENV: str(read_end),
        "TMPDIR": str(private),
        "HYPOTHESIS_STORAGE_DIRECTORY": str(private / ".hypothesis"),
    }
    try:
        process = subprocess.Popen(
            command,
            cwd=root,
            env=env,
            pass_fds=(read_end,),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            preexec_fn=_limit_resources(limits.memory_mb, user),
        )
    finally:
        os.close(read_end)
    try:
        output, _ = process.communicate(timeout=limits.kata_timeout)
    except subprocess.TimeoutExpired:
        _kill_group(process)
        return _zero(kata, f"stopped after {limits.kata_timeout:.0f} s (an infinite loop?)")
    score = _score(
        kata,
        expected.get(kata.name, set()),
        report,
        secret,
        output.decode("utf-8", "replace"),
        process.returncode,
    )
    score.seconds = time.perf_counter() - started
    return score


def _account(name: str | None):
    if name is None:
        return None
    import pwd

    return pwd.getpwnam(name)


def _kill_group(process: subprocess.Popen) -> None:
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError, AttributeError):
        process.kill()
    process.wait()


def _score(kata: Kata, expected: set[str], report: Path, secret: bytes, output: str, code: int) -> KataScore:
    try:
        envelope = json.loads(report.read_text(encoding="utf-8"))
        body = envelope["body"]
        if not isinstance(body, str) or envelope.get("signature") != sign(secret, body):
            return _zero(kata, "the test report is not the grader's (its signature does not match)")
        results = json.loads(body)["results"]
    except FileNotFoundError:
        return _zero(kata, _no_report_reason(output, code))
    except (ValueError, KeyError, TypeError):
        return _zero(kata, "the test report is malformed")
    if not results:
        return _zero(kata, _no_report_reason(output, code))
    if set(results) != expected:
        missing = len(expected - set(results))
        return _zero(kata, f"the run reported {len(results)} of {len(expected)} tests ({missing} missing)")
    exercises = []
    for ex in kata.exercises:
        mine = [r for r in results.values() if r.get("exercise") == ex.qualname]
        bad = [r for r in mine if r.get("outcome") not in PASSING]
        if mine and not bad:
            exercises.append(ExerciseScore(ex.qualname, ex.points, ex.points, "passed"))
        else:
            status = "todo" if bad and all(r.get("outcome") == "todo" for r in bad) else "failed"
            message = str(bad[0].get("message", "")) if bad else "no test ran"
            exercises.append(ExerciseScore(ex.qualname, 0, ex.points, status, message, likely_cause(message)))
    return KataScore(kata.name, exercises)


CAUSE_MARKERS = ("Likely cause:", "可能的原因：")


def likely_cause(message: str) -> str | None:
    """The first likely cause a failure message names (the harness writes one per line)."""
    for line in message.splitlines():
        for marker in CAUSE_MARKERS:
            if line.strip().startswith(marker):
                return line.strip()[len(marker) :].strip() or None
    return None


def _no_report_reason(output: str, code: int) -> str:
    if code < 0:
        return f"the test run crashed ({signal.Signals(-code).name}); a memory limit or a crash in the code"
    tail = "\n".join(output.strip().splitlines()[-15:])
    if "does not compile" in output or "raised an error while being imported" in output:
        return f"the kata file does not import:\n{tail}"
    if "MemoryError" in output or "can't allocate memory" in output:
        return "the run ran out of memory (the limit is per kata)"
    return f"the test run ended without a report (exit status {code}; sys.exit or os._exit?)\n{tail}"


def _zero(kata: Kata, reason: str) -> KataScore:
    exercises = [ExerciseScore(ex.qualname, 0, ex.points, "error", reason) for ex in kata.exercises]
    return KataScore(kata.name, exercises, problem=reason)
