"""`python -m katas watch [KATA]`: re-run a kata on every save, from a warm interpreter.

The parent imports torch, pytest and the harness once; each pass runs in a
fresh child (fork where the platform has it), so a pass costs the tests alone
and a broken, looping or crashing learner file costs only that child. The
child runs the current exercise's tests first and reports them at once, then
the rest of the kata for the progress line.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from pathlib import Path

import pytest

from . import messages as msg
from .listing import gather
from .manifest import Kata, Manifest
from .progress import Tally, tally_by_exercise
from .runner import Collector, Outcome, run_pytest
from .session import EXERCISE_PROPERTY

PASS_TIMEOUT = 30.0  # seconds; a pass past this is stopped (an infinite loop, most likely)
MESSAGE_LINES = 40  # a failure message longer than this is cut
# Quiet time after a file event before it counts as a save. Short is safe: an event that
# arrives during a pass (the rest of an editor's burst) restarts the pass.
STEP_MS = 10


@dataclass
class PassResult:
    kind: str  # "early": the current exercise only; "final": the whole kata; or why it has no result
    outcomes: list[Outcome] = field(default_factory=list)
    errors: list[tuple[str, str]] = field(default_factory=list)
    note: str = ""


# --- the child -------------------------------------------------------------------------------


class _FirstExerciseFirst(Collector):
    """Runs one exercise's tests before the others and sends their outcomes as soon as they end."""

    def __init__(self, first: str | None, conn: Connection):
        super().__init__()
        self.first, self.conn, self.pending = first, conn, 0

    @pytest.hookimpl(trylast=True)
    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> None:
        def rank(item: pytest.Item) -> int:
            return 0 if dict(item.user_properties).get(EXERCISE_PROPERTY) == self.first else 1

        items.sort(key=rank)
        self.pending = sum(rank(item) == 0 for item in items)

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        super().pytest_runtest_logreport(report)
        if (
            report.when == "teardown"
            and self.pending
            and dict(report.user_properties).get(EXERCISE_PROPERTY) == self.first
        ):
            self.pending -= 1
            if not self.pending:
                self.conn.send(PassResult("early", list(self.result.outcomes.values())))


def _child(root: str, kata_dir: str, first: str | None, conn: Connection) -> None:
    streamer = _FirstExerciseFirst(first, conn)
    try:
        result = run_pytest([kata_dir, f"--rootdir={root}", f"--katas-root={root}"], plugins=[streamer])
        conn.send(PassResult("final", list(result.outcomes.values()), result.errors))
    finally:
        conn.close()


# --- the parent ------------------------------------------------------------------------------


class _Changes:
    """File events under a folder, from a watchfiles thread, signalled through a pipe."""

    def __init__(self, folder: Path):
        import watchfiles  # here, not in the thread: a missing package must stop watch, not the thread

        self.watch = watchfiles.watch
        self.reader, self.writer = mp.Pipe(duplex=False)
        self.stop = threading.Event()
        self.paths: set[str] = set()
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self._watch, args=(folder,), daemon=True)
        self.thread.start()

    def _watch(self, folder: Path) -> None:
        for changes in self.watch(folder, stop_event=self.stop, step=STEP_MS, raise_interrupt=False):
            with self.lock:
                self.paths.update(path for _, path in changes)
            self.writer.send(None)

    def take(self) -> set[str]:
        while self.reader.poll():
            self.reader.recv()
        with self.lock:
            paths, self.paths = self.paths, set()
        return paths


def _warm_up(root: Path) -> None:
    """Import now what every pass needs, so a forked child starts with it loaded."""
    import hypothesis  # noqa: F401
    import torch  # noqa: F401

    from . import plugin, strategies, testing  # noqa: F401

    empty = root / ".katas" / "warm-up"
    empty.mkdir(parents=True, exist_ok=True)
    run_pytest([str(empty), f"--rootdir={root}"])  # imports pytest's lazily loaded parts


class Watcher:
    def __init__(
        self,
        manifest: Manifest,
        kata: Kata | None,
        *,
        out=sys.stdout,
        clear: bool,
        timeout: float,
        note: str = "",
    ):
        self.manifest, self.fixed, self.note = manifest, kata, note
        self.out, self.clear, self.timeout = out, clear, timeout
        method = "fork" if "fork" in mp.get_all_start_methods() else "spawn"
        self.context = mp.get_context(method)
        self.passes = 0
        self.once = False
        self.current: dict[str, str] = {}  # kata -> the exercise to run first
        self.done: dict[str, int] = {}  # kata -> exercises done in its last full run

    def choose_kata(self) -> Kata | None:
        if self.fixed is not None:
            return self.fixed
        statuses = gather(self.manifest)
        for kata in self.manifest.katas:
            if any(statuses[ex.qualname].status != "done" for ex in kata.exercises):
                return kata
        return None

    def run(self, *, once: bool = False) -> int:
        self.once = once
        kata = self.choose_kata()
        if kata is None:
            self._show([msg.WATCH_ALL_DONE])
            return 0
        _warm_up(self.manifest.root)
        _ctrl_c_stops()
        changes = None if once else _Changes(self.manifest.root / "katas")
        try:
            while True:
                result = self._one_pass(kata, changes)
                if once:
                    return 0 if result is not None and _all_done(kata, result) else 1
                if result is not None and _all_done(kata, result) and self.fixed is None:
                    following = self.choose_kata()
                    if following is not None and following != kata:
                        kata = following
                        continue
                    self._show([msg.WATCH_ALL_DONE])
                self._wait_for_save(kata, changes)
        except KeyboardInterrupt:
            print(msg.WATCH_STOPPED, file=self.out, flush=True)
            return 0
        finally:
            if changes is not None:
                changes.stop.set()

    def _wait_for_save(self, kata: Kata, changes: _Changes) -> None:
        while True:
            wait([changes.reader])
            if _touches(kata, self.manifest, changes.take()):
                return

    def _one_pass(self, kata: Kata, changes: _Changes | None) -> PassResult | None:
        """Run the kata once; a save meanwhile restarts it. Returns the final result, if any."""
        while True:
            self.passes += 1
            started = time.perf_counter()
            reader, writer = self.context.Pipe(duplex=False)
            first = self.current.get(kata.name)
            first = f"{kata.name}/{first}" if first else None
            root = str(self.manifest.root)
            child = self.context.Process(
                target=_child,
                args=(root, str(self.manifest.root / "katas" / kata.name), first, writer),
                daemon=True,
            )
            child.start()
            writer.close()
            outcome = self._follow(kata, child, reader, changes, started)
            reader.close()
            if outcome != "restart":
                return outcome

    def _follow(self, kata, child, reader, changes, started):
        deadline = started + self.timeout
        watched = [reader, child.sentinel] + ([changes.reader] if changes else [])
        final = None
        while True:
            ready = wait(watched, timeout=max(0.0, deadline - time.perf_counter()))
            if (
                changes is not None
                and changes.reader in ready
                and _touches(kata, self.manifest, changes.take())
            ):
                _stop(child)
                return "restart"
            if reader in ready:
                try:
                    result = reader.recv()
                except EOFError:
                    watched.remove(reader)
                    continue
                self._render(kata, result, time.perf_counter() - started)
                if result.kind == "final":
                    final = result
                continue
            if child.sentinel in ready:
                child.join()
                if final is not None:
                    return final
                self._render(
                    kata, PassResult("crash", note=_crash_note(child.exitcode)), time.perf_counter() - started
                )
                return None
            if not ready:
                _stop(child)
                self._render(
                    kata,
                    PassResult("timeout", note=msg.WATCH_TIMEOUT.format(seconds=self.timeout)),
                    self.timeout,
                )
                return None

    # --- rendering ---

    def _render(self, kata: Kata, result: PassResult, elapsed: float) -> None:
        tallies = tally_by_exercise((o.exercise, o.outcome) for o in result.outcomes)
        complete = result.kind == "final" and not result.errors and not result.note
        if complete:
            done = sum(tallies.get(ex.qualname, Tally()).status == "done" for ex in kata.exercises)
            self.done[kata.name] = done
        else:  # one exercise ran yet, or nothing could run: the count of the last full run
            done = self.done.get(kata.name, 0)
        if result.kind == "early":
            state = msg.WATCH_CHECKING
        elif not complete and kata.name in self.done:
            state = msg.WATCH_LAST_COUNT
        else:
            state = ""
        lines = [
            msg.WATCH_HEADER.format(
                kata=kata.name,
                done=done,
                total=len(kata.exercises),
                run=self.passes,
                seconds=elapsed,
                state=state,
            ),
            "",
        ]
        if result.note:
            lines += [result.note]
        elif result.errors:
            lines += _cut(result.errors[0][1])
        else:
            lines += self._current_block(kata, result, tallies)
        if not self.once:
            lines += ["", msg.WATCH_FOOTER.format(folder=f"katas/{kata.name}/")]
            if self.note and self.clear:  # the guided loop's note, printed once, was cleared away
                lines += self.note.splitlines()[1:]
        self._show(lines)

    def _current_block(self, kata: Kata, result: PassResult, tallies: dict[str, Tally]) -> list[str]:
        pending = [ex for ex in kata.exercises if tallies.get(ex.qualname, Tally()).status != "done"]
        if result.kind == "final":
            if not pending:
                return [msg.WATCH_KATA_DONE.format(kata=kata.name)]
            self.current[kata.name] = pending[0].name
        shown = next((ex for ex in pending if ex.qualname in tallies), None)
        if shown is None:  # early: the first exercise passed; the rest is being checked
            first = self.current.get(kata.name)
            return [msg.WATCH_PASSED.format(exercise=f"{kata.name}/{first}")] if first else []
        tally = tallies[shown.qualname]
        lines = [f"{msg.STATUS_MARKS[tally.status]} {shown.qualname}: {tally.describe()}"]
        failures = [
            o for o in result.outcomes if o.exercise == shown.qualname and o.outcome in ("failed", "todo")
        ]
        if failures:
            lines += [""] + _cut(failures[0].message)
        if not (failures and failures[0].outcome == "todo"):  # the TODO line names the hint already
            lines += ["", msg.WATCH_HINT.format(exercise=shown.qualname)]
        return lines

    def _show(self, lines: list[str]) -> None:
        prefix = "\x1b[2J\x1b[H" if self.clear else "\n" + "-" * 72 + "\n"
        self.out.write(prefix + "\n".join(lines) + "\n")
        self.out.flush()


def _all_done(kata: Kata, result: PassResult) -> bool:
    passed = {o.exercise for o in result.outcomes if o.outcome == "passed"}
    bad = {o.exercise for o in result.outcomes if o.outcome in ("failed", "todo")}
    return not result.errors and all(
        ex.qualname in passed and ex.qualname not in bad for ex in kata.exercises
    )


def _touches(kata: Kata, manifest: Manifest, paths: set[str]) -> bool:
    folder = (manifest.root / "katas" / kata.name).resolve()
    return any(Path(p).suffix == ".py" and Path(p).resolve().parent == folder for p in paths)


def _ctrl_c_stops() -> None:
    """Ctrl-C is how watch ends, even when it was started with SIGINT ignored (a job started
    with `&` from a script, some IDE runners): Python then installs no KeyboardInterrupt."""
    if (
        signal.getsignal(signal.SIGINT) is signal.SIG_IGN
        and threading.current_thread() is threading.main_thread()
    ):
        signal.signal(signal.SIGINT, signal.default_int_handler)


def _stop(child) -> None:
    if child.is_alive():
        child.kill()
    child.join()


def _crash_note(code: int | None) -> str:
    if code is not None and code < 0:
        return msg.WATCH_CRASH_SIGNAL.format(signal=signal.Signals(-code).name)
    return msg.WATCH_CRASH_EXIT.format(code=code)


def _cut(text: str) -> list[str]:
    lines = text.rstrip().splitlines()
    if len(lines) > MESSAGE_LINES:
        return [*lines[:MESSAGE_LINES], msg.WATCH_CUT.format(count=len(lines) - MESSAGE_LINES)]
    return lines


def should_clear(stream) -> bool:
    return stream.isatty() and os.environ.get("TERM") != "dumb"
