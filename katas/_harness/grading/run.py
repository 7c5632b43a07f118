"""Grade submissions: a pristine tree, a warm zygote, one caged child per kata, scored here.

Only this process is trusted. Per kata it reads the one submitted file without following
links, checks it against the submission policy before anything imports it, and has the
zygote fork a child that enters its cage (sandbox.py) and runs the grader's own tests on
it. The child streams one signed record per test; a kata counts only when the records are
intact and name exactly the tests this process's own collection of the pristine tree
found. Whether a skip is allowed is decided here, from that collection: only gpu or
multi_gpu tests, on a grader without the GPUs they need, and not with KATAS_REQUIRE_GPU=1.
"""

from __future__ import annotations

import hmac
import json
import os
import re
import secrets
import select
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from queue import Empty

from .. import pristine
from ..gpu import REQUIRE_GPU_ENV
from ..manifest import Kata, Manifest, read
from . import sandbox, tree
from .child import sign
from .zygote import Zygote, ZygoteDied

KATA_TIMEOUT = 300.0  # seconds of wall clock per kata
TEST_TIMEOUT = 60  # seconds per test (pytest-timeout)
MEMORY_MB = 4096  # for a kata's whole process tree (cgroup), else per process, beyond what torch maps
PROFILE = "katas-check"  # derandomized Hypothesis: the same submission, the same score
RESULT_BYTES = 8 << 20  # the most a child may send; past it the kata scores zero
OUTPUT_BYTES = 64 << 10  # the tail of a child's output kept for messages
CAUSE_MARKERS = ("Likely cause:", "可能的原因：")
TAMPERED_TREE = "the kata's code changed the grader's own files (its tests or harness); it earns nothing"
NOT_GRADED_FOR_TIME = "not graded: the grading time ran out before this kata started"


class GraderError(RuntimeError):
    """The grader itself failed (not the submission): the report must say so."""


class GraderChanged(GraderError):
    """The grader's own files changed while it graded: nothing after that is trusted."""


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
    isolation: list[str] = field(default_factory=list)  # what held between the code and the grader

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
    uid_base: int = sandbox.UID_BASE  # dedicated accounts when the grader runs as root
    deadline: float | None = None  # seconds for the whole grading; katas not started by then are not graded
    policy: bool = True  # the submission policy; only the project's tests of the second layer turn it off


def grade(
    manifest: Manifest,
    submission: Path,
    limits: Limits = Limits(),
    on_kata: Callable[[KataScore], None] | None = None,
) -> Grade:
    """Grade one submission (a project folder or a flat folder of kata files)."""
    with Grader(manifest, limits) as grader:
        return grader.grade(submission, on_kata=on_kata)


class Grader:
    """Set up once (tree, zygote, collection); grades any number of submissions."""

    def __init__(self, manifest: Manifest, limits: Limits = Limits()):
        if not sys.platform.startswith("linux"):
            raise GraderError(
                f"grading runs on Linux only (its sandbox needs /proc, prctl and namespaces), not on "
                f"{sys.platform}; grade in a Linux container, a CI runner or Gradescope"
            )
        self.manifest, self.limits = manifest, limits
        self.started = time.monotonic()
        sandbox.not_dumpable()  # /proc/<grader>/cwd, environ and mem: not readable by a child
        self.work = Path(tempfile.mkdtemp(prefix="katas-grade-"))
        self.work.chmod(0o711)  # children may pass through to their own folders, never list them
        self.cgroups = sandbox.CgroupFactory()
        self.base_lock = threading.Lock()
        self.can_hide = sandbox.can_hide_folders()
        # Covered in each child's own mount namespace: the grader's checkout (solutions/) and home.
        self.shown = sandbox.installation_folders() if self.can_hide else ()
        # ... and any folder above the installation that a kata's account could not pass through
        # (a checkout made with `mktemp -d` is 0700), so that Python stays reachable inside.
        self.hidden = (
            tuple(
                sorted(
                    (
                        {os.path.realpath(manifest.root), os.path.realpath(os.path.expanduser("~"))}
                        | {
                            folder  # never one that holds the grader's own work folder
                            for folder in sandbox.closed_ancestors(self.shown)
                            if not os.path.realpath(self.work).startswith(folder + os.sep)
                        }
                    )
                    - {os.path.realpath(os.sep)}
                )
            )
            if self.can_hide
            else ()
        )
        self.accounts = (
            sandbox.Accounts(max(1, limits.jobs) + 1, limits.uid_base)  # + 1: the collection's
            if sandbox.accounts_usable(self.can_hide)
            else None
        )
        self.zygote: Zygote | None = None
        try:
            self.base = self.work / "base"
            tree.build(manifest, self.base)
            self._write_pristine_stubs()
            tree.freeze(self.base)
            self.katas = read(self.base).katas
            self.base_digest = tree.digest(self.base)
            self.checkout_digest = self._checkout_digest()
            self._start_zygote()
            # The collection runs beside the first katas (it is needed only to score them), except
            # with one job: then it runs first, so that one child at a time holds memory.
            self._collecting = ThreadPoolExecutor(max_workers=1)
            self._collection = self._collecting.submit(self._collect, max(1, limits.jobs))
            if limits.jobs <= 1:
                self._collection.result()
        except BaseException:
            self.close()
            raise

    def __enter__(self) -> Grader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def expected(self) -> dict[str, dict]:
        return self._collection.result()[0]

    @property
    def cuda_devices(self) -> int:
        return self._collection.result()[1]

    def close(self) -> None:
        collecting = getattr(self, "_collecting", None)
        if collecting is not None:
            collecting.shutdown(wait=True)
        if self.zygote is not None:
            self.zygote.close()
            self.zygote = None
        if getattr(self, "accounts", None) is not None:
            self.accounts.release()
            self.accounts = None
        if self.work.exists():
            tree.thaw(self.work)
            shutil.rmtree(self.work, ignore_errors=True)

    # --- set-up ------------------------------------------------------------------------

    def _write_pristine_stubs(self) -> None:
        clean = pristine.read(self.manifest.root)
        for kata in self.manifest.katas:
            text = clean.get(pristine.relative_path(kata))
            if text is None:
                raise GraderError(f"no pristine stub for {kata.name}: run `python -m katas snapshot`")
            kata.stub_path(self.base / "katas").write_text(text, encoding="utf-8")
            # The collection imports stubs from here: a run over the tree's own katas/ would record progress.
            copy = kata.stub_path(self.work / "pristine")
            if not copy.exists():
                tree.write_read_only(copy, text.encode("utf-8"))

    def _checkout_digest(self) -> str:
        return tree.digest(self.manifest.root / "katas", self.manifest.root)

    def _env(self, home: Path) -> dict[str, str]:
        keep = ("PATH", "LANG", "LC_ALL", "SYSTEMROOT")
        env = {k: v for k, v in os.environ.items() if k in keep}
        env.update(
            PYTHONPATH=str(self.base),
            PYTHONDONTWRITEBYTECODE="1",
            PYTHONHASHSEED="0",
            HOME=str(home),
            TMPDIR=str(home),
            HYPOTHESIS_STORAGE_DIRECTORY=str(home / ".hypothesis"),
        )
        if os.environ.get(REQUIRE_GPU_ENV) == "1":
            env[REQUIRE_GPU_ENV] = "1"
        return env

    def _start_zygote(self) -> None:
        try:
            self.zygote = Zygote(self.base, self._env(self.work), self.work / "zygote.log")
        except ZygoteDied as err:
            raise GraderError(str(err)) from None

    def _collect(self, slot: int) -> tuple[dict[str, dict], int]:
        """Every kata test, its exercise and GPU markers, from the pristine tree (no submission)."""
        argv = [
            str(self.base / "katas"),
            "--collect-only",
            "-q",
            "--katas-collect",
            *self._common_argv(),
            f"--katas-source={self.work / 'pristine'}",
        ]
        text, code, output, _ = self._run_child("collect", argv, slot, timeout=self.limits.kata_timeout)
        try:
            found = json.loads(text)
            tests, cuda = found["tests"], int(found["cuda_devices"])
        except (ValueError, KeyError, TypeError):
            raise GraderError(
                f"collecting the grader's own tests failed (exit {code}):\n{output[-3000:]}"
            ) from None
        expected: dict[str, dict] = {}
        for nodeid, info in tests.items():
            expected.setdefault(nodeid.split("/")[1], {})[nodeid] = info
        return expected, cuda

    def _common_argv(self) -> list[str]:
        return [
            "-p",
            "katas._harness.grading.child",
            "-p",
            "no:cacheprovider",
            "-p",
            "no:xdist",
            f"--rootdir={self.base}",
            "-c",
            str(self.base / "pyproject.toml"),
            f"--katas-root={self.base}",
        ]

    # --- grading -----------------------------------------------------------------------

    def grade(self, submission: Path, on_kata: Callable[[KataScore], None] | None = None) -> Grade:
        self.verify()
        slots = list(range(max(1, self.limits.jobs)))
        lock = threading.Lock()

        def one(kata: Kata) -> KataScore:
            with lock:
                slot = slots.pop()
            try:
                score = self._grade_kata(kata, submission, slot)
            finally:
                with lock:
                    slots.append(slot)
            if on_kata is not None:
                on_kata(score)
            return score

        with ThreadPoolExecutor(max_workers=len(slots)) as pool:
            katas = list(pool.map(one, self.katas))
        return Grade(katas, self.isolation())

    def _base_intact(self) -> bool:
        """After each kata: is the tree as built? If not, rebuild it (the kata scores zero).

        Where the kata ran under an account of its own the tree is root's and read-only, so
        this is a second line; under the grader's own account it is the line that holds.
        """
        with self.base_lock:
            if tree.digest(self.base) == self.base_digest:
                return True
            tree.thaw(self.base)
            shutil.rmtree(self.base)
            tree.build(self.manifest, self.base)
            self._write_pristine_stubs()
            tree.freeze(self.base)
            if tree.digest(self.base) != self.base_digest:
                raise GraderError("the grader's tree could not be rebuilt as it was; grading stopped")
            return False

    def verify(self) -> None:
        """Stop if anything of the grader changed since set-up (a child must never reach it)."""
        if tree.digest(self.base) != self.base_digest:
            raise GraderChanged("the grader's working tree changed during grading; grading stopped")
        if self._checkout_digest() != self.checkout_digest:
            raise GraderChanged(
                f"the grader's checkout {self.manifest.root / 'katas'} changed during grading; "
                "grading stopped"
            )

    def isolation(self) -> list[str]:
        notes = []
        unreadable = sandbox.unreadable_installation() if sandbox.can_switch_account() else None
        if self.can_hide:
            notes.append(
                f"each kata ran under an account of its own (uids {self._uids()}), with "
                f"{', '.join(self.hidden)} hidden from it (a mount namespace)"
            )
        elif sandbox.can_switch_account() and unreadable is None:
            notes.append(f"each kata ran under an account of its own (uids {self._uids()})")
        elif unreadable is not None:
            notes.append(
                f"the submission's code ran under the grader's own account: other accounts cannot read "
                f"{unreadable}, where Python or torch is installed (install them where every account "
                "can read)"
            )
        else:
            notes.append(
                "the grader is not root, so the submission's code ran under the grader's own account: "
                "it could read what that account can read (run the grader as root for a separate account)"
            )
        if self.cgroups.available:
            notes.append(f"a cgroup limited each kata's process tree to {self.limits.memory_mb} MB")
        else:
            notes.append(f"no cgroup could be made: {self.limits.memory_mb} MB was the limit per process")
        return notes

    def _uids(self) -> str:
        return ", ".join(str(uid) for uid in self.accounts.uids) if self.accounts else "none"

    def _time_left(self) -> float | None:
        if self.limits.deadline is None:
            return None
        return self.limits.deadline - (time.monotonic() - self.started)

    def _grade_kata(self, kata: Kata, submission: Path, slot: int) -> KataScore:
        started = time.perf_counter()
        score = self._score_kata(kata, submission, slot)
        score.seconds = time.perf_counter() - started  # on every path, a refusal or a timeout too
        return score

    def _score_kata(self, kata: Kata, submission: Path, slot: int) -> KataScore:
        left = self._time_left()
        if left is not None and left <= 1:
            return _zero(kata, NOT_GRADED_FOR_TIME)
        try:
            source = tree.read_submitted(kata, submission)
        except tree.Refused as refused:
            return _zero(kata, str(refused))
        problem = _undecodable(kata, source)
        if problem is not None:
            return _zero(kata, problem)
        job = self.work / secrets.token_hex(8)
        stub = kata.stub_path(job / "src")
        tree.write_read_only(stub, source)
        tree.freeze(job / "src")
        argv = [
            str(self.base / "katas" / kata.name),
            *self._common_argv(),
            f"--katas-source={job / 'src'}",
            "-q",
            "--no-header",
            "-rN",
            f"--hypothesis-profile={PROFILE}",
            f"--timeout={self.limits.test_timeout}",
        ]
        if self.limits.policy:  # checked in the child, before pytest imports anything submitted
            argv += [f"--katas-policy={stub}", f"--katas-policy-name={_shown_name(kata)}"]
        timeout = self.limits.kata_timeout if left is None else min(self.limits.kata_timeout, left)
        text, code, output, key = self._run_child(kata.name, argv, slot, timeout, job)
        score = self._score(kata, text, code, output, key)
        return score if self._base_intact() else _zero(kata, TAMPERED_TREE)

    def _run_child(
        self, name: str, argv: list[str], slot: int, timeout: float, job: Path | None = None
    ) -> tuple[str | None, int | None, str, bytes]:
        """Run pytest in a caged child: (what it sent on the results pipe, exit code, output tail, key)."""
        assert self.zygote is not None
        job = job or self.work / secrets.token_hex(8)
        home = job / "run"
        home.mkdir(parents=True)
        account = (self.accounts.uids[slot],) * 2 if self.accounts is not None else None
        if account is not None:
            os.chown(home, *account)
        home.chmod(0o700)
        (job / "private").mkdir(mode=0o700)  # the grader's alone: output and key never live in home
        cgroups = self.cgroups.make(f"katas-{job.name}", self.limits.memory_mb)
        cage = sandbox.Cage(
            self.limits.memory_mb,
            uid=account[0] if account else None,
            gid=account[1] if account else None,
            cgroups=cgroups,
            hide=tuple(f for f in self.hidden if not str(self.work).startswith(f.rstrip("/") + "/")),
            keep=self.shown,
        )
        key = secrets.token_bytes(32)
        key_read, key_write = os.pipe()
        os.write(key_write, key.hex().encode())
        os.close(key_write)
        results_read, results_write = os.pipe()
        output_path = job / "private" / "output.log"
        output_fd = os.open(output_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        env = self._env(home)
        payload = {
            "argv": [*argv, f"--basetemp={home / 'tmp'}"],
            "cwd": str(home),
            "env": env,
            "cage": {
                "memory_mb": cage.memory_mb,
                "uid": cage.uid,
                "gid": cage.gid,
                "cgroups": list(cage.cgroups),
                "hide": list(cage.hide),
                "keep": list(cage.keep),
            },
        }
        pid = None
        try:
            box = self.zygote.start_job(job.name, payload, [key_read, results_write, output_fd])
        except ZygoteDied as err:
            raise GraderError(str(err)) from None
        finally:
            for fd in (key_read, results_write, output_fd):
                os.close(fd)
        try:
            first = box.get(timeout=60)
            if "died" in first:
                raise GraderError(f"the grader's warm process died: {first['died'][-1500:]}")
            pid = first["pid"]
            data, timed_out = _read_bounded(results_read, time.monotonic() + timeout)
            status = None
            if not timed_out:
                try:
                    status = box.get(timeout=max(5.0, min(60.0, timeout))).get("status")
                except Empty:
                    timed_out = True
        finally:
            os.close(results_read)
            if pid is not None:
                cage.sweep(pid)
            self.cgroups.remove(cgroups)
        output = _tail(output_path)
        if timed_out:
            return None, None, output, key
        return data.decode("utf-8", "replace") if data is not None else None, status, output, key

    # --- scoring -----------------------------------------------------------------------

    def _score(self, kata: Kata, text: str | None, code: int | None, output: str, key: bytes) -> KataScore:
        expected = self.expected.get(kata.name, {})
        if code is None and text is None:
            return _zero(kata, f"stopped after {self.limits.kata_timeout:.0f} s (an infinite loop?)")
        if text is None:
            return _zero(kata, f"the kata sent more than {RESULT_BYTES >> 20} MB of results")
        records, problem = _verified_records(text, key)
        if problem is not None:
            return _zero(kata, problem)
        refused = next((r["policy"] for r in records if "policy" in r), None)
        if refused is not None:
            lines = "\n".join(str(line) for line in refused[:10])
            return _zero(kata, f"the submission policy refused this file; nothing in it ran:\n{lines}")
        results = {r["test"]: r for r in records if "test" in r}
        end = next((r for r in records if r.get("end")), None)
        if not results:
            return _zero(kata, _no_report_reason(output, code))
        if end is None:
            return _zero(kata, _no_report_reason(output, code))
        if set(results) != set(expected):
            missing = len(set(expected) - set(results))
            return _zero(
                kata, f"the run reported {len(results)} of {len(expected)} tests ({missing} missing)"
            )
        exercises = []
        for ex in kata.exercises:
            mine = [(results[t], expected[t]) for t in results if expected[t].get("exercise") == ex.qualname]
            judged = [(r, self._judge(r, info)) for r, info in mine]
            bad = [(r, why) for r, why in judged if why is not None]
            counted = [r for r, why in judged if why is None and r["outcome"] == "passed"]
            if counted and not bad:
                exercises.append(ExerciseScore(ex.qualname, ex.points, ex.points, "passed"))
                continue
            if not bad:
                exercises.append(ExerciseScore(ex.qualname, 0, ex.points, "failed", "no test ran"))
                continue
            status = "todo" if all(r.get("todo") for r, _ in bad) else "failed"
            message = bad[0][1]
            exercises.append(ExerciseScore(ex.qualname, 0, ex.points, status, message, likely_cause(message)))
        return KataScore(kata.name, exercises)

    def _judge(self, result: dict, info: dict) -> str | None:
        """None when the test counts for the exercise (passed, or an allowed skip); else why not."""
        outcome = result.get("outcome")
        if outcome == "passed":
            return None
        if outcome == "skipped" and self._may_skip(info):
            return None
        if outcome in ("skipped", "xfailed"):
            return (
                f"the test was {outcome} ({result.get('message', '')[:300]}); only the grader decides "
                "to skip a test (GPU tests on a machine without CUDA), so it counts as failed"
            )
        return str(result.get("message") or "failed")

    def _may_skip(self, info: dict) -> bool:
        if os.environ.get(REQUIRE_GPU_ENV) == "1":
            return False
        needed = 2 if info.get("multi_gpu") else 1 if info.get("gpu") else 0
        return needed > 0 and self.cuda_devices < needed


def _shown_name(kata: Kata) -> str:
    return f"katas/{kata.name}/{kata.module}.py"


def _undecodable(kata: Kata, source: bytes) -> str | None:
    try:
        source.decode("utf-8")
    except UnicodeDecodeError as err:
        return f"{_shown_name(kata)} is not UTF-8 text (byte {err.start}); save it as UTF-8"
    return None


def _read_bounded(fd: int, deadline: float) -> tuple[bytes | None, bool]:
    """Everything written to `fd` until EOF: (data, timed_out); data None past RESULT_BYTES."""
    chunks, size = [], 0
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return None, True
        ready, _, _ = select.select([fd], [], [], min(left, 1.0))
        if not ready:
            continue
        chunk = os.read(fd, 1 << 16)
        if not chunk:
            return b"".join(chunks), False
        size += len(chunk)
        if size > RESULT_BYTES:
            return None, False
        chunks.append(chunk)


def _tail(path: Path) -> str:
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except OSError:
        return ""
    try:
        size = os.fstat(fd).st_size
        os.lseek(fd, max(0, size - OUTPUT_BYTES), os.SEEK_SET)
        return os.read(fd, OUTPUT_BYTES).decode("utf-8", "replace")
    finally:
        os.close(fd)


def _verified_records(text: str, key: bytes) -> tuple[list[dict], str | None]:
    """The child's records, each checked for its number and signature; or why they are not trusted."""
    records = []
    for seq, line in enumerate(text.splitlines()):
        try:
            envelope = json.loads(line)
            body, mac = envelope["body"], envelope["mac"]
            if envelope["seq"] != seq or not isinstance(body, str) or not isinstance(mac, str):
                raise ValueError
            record = json.loads(body)
            if not isinstance(record, dict):
                raise ValueError
        except (ValueError, KeyError, TypeError):
            return [], "the test report is malformed or out of order; the kata earns nothing"
        if not hmac.compare_digest(mac, sign(key, seq, body)):
            return (
                [],
                "the test report is not the grader's (a signature does not match); the kata earns nothing",
            )
        records.append(record)
    return records, None


def likely_cause(message: str) -> str | None:
    """The first likely cause a failure message names (the harness writes one per line)."""
    for line in message.splitlines():
        for marker in CAUSE_MARKERS:
            if line.strip().startswith(marker):
                return line.strip()[len(marker) :].strip() or None
    return None


def _no_report_reason(output: str, code: int | None) -> str:
    lines = output.strip().splitlines()
    tail = "\n".join(lines[-15:])
    if code is not None and code < 0:
        name = signal.Signals(-code).name if -code in signal.Signals._value2member_map_ else str(-code)
        return f"the test run crashed ({name}); a memory limit or a crash in the code"
    if "does not compile" in output or "raised an error while being imported" in output:
        errors = [
            line.strip()[1:].strip()
            for line in lines
            if re.match(r"E\s+\w+(Error|Exception)\b", line.strip())
        ]
        first = (
            errors[-1] if errors else next((line.strip() for line in lines if "Error" in line), tail[:300])
        )
        return f"the kata file does not import: {first}\n{tail}"
    if "MemoryError" in output or "can't allocate memory" in output:
        return "the run ran out of memory (the limit is per kata)"
    return f"the test run ended without a complete report (exit status {code}; sys.exit or os._exit?)\n{tail}"


def _zero(kata: Kata, reason: str) -> KataScore:
    exercises = [ExerciseScore(ex.qualname, 0, ex.points, "error", reason) for ex in kata.exercises]
    return KataScore(kata.name, exercises, problem=reason)
