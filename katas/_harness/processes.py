"""Run a test's function on several CPU processes joined in a gloo process group.

`run_ranks(fn, *args, tmp_path=...)` calls `fn(rank, world_size, *args)` in each
child after `init_process_group("gloo")` on a file store of its own, and returns
the results in rank order. Whatever goes wrong in a child fails the test with
that child's message:

- an exception: its type, message and traceback (torch's frames left out); a
  `pytest.fail` inside a child fails the test with its message alone;
- an untouched stub: a NotImplementedError is raised here, carrying
  `stub_origin = (stub file, function)`, so the harness shows its one TODO line;
- a crash, a hang, a collective that one rank never reaches: after a deadline
  every child is stopped and the test fails naming the ranks that did not finish.

Start method: `fork` on Linux, where children inherit the loaded kata module
(also one loaded from --katas-source) and start in milliseconds. Elsewhere
`spawn`, with the harness's kata module finder installed in the child and the
target function loaded from its file; torch's fork safety on macOS is not
promised, and Windows has no fork.

Results travel as pickle files in a fresh folder under `tmp_path`, never
through a pipe a parent must drain before it can join.
"""

from __future__ import annotations

import importlib.util
import multiprocessing
import multiprocessing.connection
import os
import pickle
import sys
import tempfile
import time
import traceback
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from .i18n import N_, _
from .importer import KataModuleFinder
from .testing import fail

WORLD_SIZE = 2
# Below the per-test limit of kata runs (60 s), so that this message, not pytest-timeout's, explains.
TIMEOUT = 30.0
# Once a rank has failed, the others get this long to report their own error before they are
# stopped: a rank blocked in a collective with the failed one would otherwise wait for the deadline.
GRACE = 2.0
RESULT_FILE = "rank{rank}.pickle"

HUNG = N_(
    "Rank(s) {ranks} of {world_size} did not finish within {timeout:g} s{call}, and were stopped.\n"
    "Likely cause: a collective (all_reduce, broadcast, DistributedDataParallel's gradient sync) "
    "waits until every rank calls it; check that all ranks run the same collectives in the same "
    "order, and look for an endless loop."
)
CRASHED = N_(
    "Rank {rank} of {world_size} exited with code {code} without a result{call}.\n"
    "Likely cause: the process crashed or called sys.exit()/os._exit(); a negative code is the "
    "signal that killed it (-9: out of memory)."
)
RAISED = N_("Rank {rank} of {world_size} raised {error}{call}:\n{traceback}")
ALSO = N_("(rank {rank} also failed: {summary})")
STOPPED = N_("(rank(s) {ranks} stopped after the failure above)")
WHILE_RUNNING = N_(" while running {call}")
RAISED_ON_RANK = N_("{message} (raised on rank {rank})\n{traceback}")
PEER_GONE = N_(
    "Likely cause: rank(s) {ranks} finished while rank {rank} still waited in a collective; every rank "
    "must call the same collectives (all_reduce, broadcast, barrier) in the same order."
)
# How gloo reports that the other end of a collective has gone away.
PEER_GONE_ERRORS = ("Connection closed by peer", "Connection reset by peer", "Broken pipe")
UNPICKLABLE = N_("\nThe result, a {result}, cannot be pickled to travel back to the test process.")


@dataclass(frozen=True)
class ChildError:
    """What a child sends back about an exception: plain strings, always picklable."""

    type_name: str
    message: str
    traceback: str
    origin: tuple[str, str]  # innermost frame: (file, qualified function name)
    not_implemented: bool
    test_failure: bool  # pytest.fail() inside the child: its message is the whole story
    when: float  # time.time() when it was raised: the first error is most likely the cause

    @property
    def summary(self) -> str:
        first = self.message.strip().splitlines()[0] if self.message.strip() else ""
        return f"{self.type_name}: {first}" if first else self.type_name


def start_method() -> str:
    return "fork" if sys.platform.startswith("linux") else "spawn"


def run_ranks(
    fn: Callable[..., Any],
    *args: Any,
    tmp_path: Path,
    world_size: int = WORLD_SIZE,
    timeout: float = TIMEOUT,
    call: str = "",
    preload: Iterable[str] = (),
    method: str | None = None,
) -> list[Any]:
    """Run `fn(rank, world_size, *args)` on `world_size` processes; return the results by rank.

    `call` names what the children run, for failure messages. `preload` lists modules
    to import here before forking, so that children share them instead of each importing
    them again (DistributedDataParallel's first use imports torch._dynamo: a second).
    Under spawn, `fn` must be defined at module level and `args` must pickle by value.
    """
    method = method or start_method()
    workdir = Path(tempfile.mkdtemp(prefix="ranks-", dir=tmp_path))
    store = (workdir / "store").resolve().as_uri()
    if method == "fork":
        for name in preload:
            importlib.import_module(name)
        target: Any = fn
        modules = None
    else:
        target = _importable(fn)
        modules = _kata_modules()
    context = multiprocessing.get_context(method)
    processes = [
        context.Process(
            target=_child,
            args=(rank, world_size, store, timeout, target, args, workdir, modules),
            name=f"katas-rank{rank}",
        )
        for rank in range(world_size)
    ]
    with warnings.catch_warnings():
        # Python 3.12+ warns that forking a process with threads may deadlock; torch's own
        # fork handlers make this safe for the intra-op pool, and children never touch the rest.
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            for process in processes:
                process.start()
            outcomes, failed = _wait(processes, workdir, timeout)
        finally:
            _stop(processes)
    for rank in range(world_size):  # stopped after writing its result (say, stuck in teardown)
        if rank not in outcomes and (outcome := _read(workdir, rank)) is not None:
            outcomes[rank] = outcome
            if outcome[0] == "error":
                failed = sorted([*failed, rank], key=lambda r: outcomes[r][1].when if outcomes[r] else 0)
    return _results(processes, outcomes, failed, world_size, timeout, call)


def _wait(processes, workdir: Path, timeout: float) -> tuple[dict[int, Any], list[int]]:
    """Wait for the children: {rank: outcome or None} of those that finished, and the failed ranks
    in the order they failed (the first is most likely the cause, the others its consequences)."""
    deadline = time.monotonic() + timeout
    running = dict(enumerate(processes))
    outcomes, failed = {}, []
    while running:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        ready = multiprocessing.connection.wait([p.sentinel for p in running.values()], remaining)
        for rank, process in list(running.items()):
            if process.sentinel not in ready:
                continue
            process.join()
            del running[rank]
            outcomes[rank] = outcome = _read(workdir, rank)
            if outcome is None or outcome[0] == "error":
                failed.append((outcome[1].when if outcome else time.time(), rank))
                deadline = min(deadline, time.monotonic() + GRACE)
    # Several ranks may end in one wait(): order the failures by when they happened.
    return outcomes, [rank for _, rank in sorted(failed)]


def _stop(processes) -> None:
    started = [process for process in processes if process.pid is not None]
    for process in started:
        if process.is_alive():
            process.terminate()
    for process in started:
        process.join(2)
        if process.is_alive():
            process.kill()
            process.join()


def _results(processes, outcomes, failed, world_size, timeout, call) -> list[Any]:
    where = _(WHILE_RUNNING).format(call=call) if call else ""
    errors = [(rank, outcomes[rank][1]) for rank in failed if outcomes[rank] is not None]
    stub = next(((r, e) for r, e in errors if e.not_implemented and _is_stub(e.origin[0])), None)
    if stub is not None:
        raise _stub_error(*stub)
    unfinished = [rank for rank in range(world_size) if rank not in outcomes]
    if failed:
        rank = failed[0]
        lines = [_describe_failure(rank, outcomes[rank], processes[rank], world_size, where)]
        succeeded = [r for r, outcome in sorted(outcomes.items()) if outcome and outcome[0] == "ok"]
        message = outcomes[rank][1].message if outcomes[rank] else ""
        if succeeded and any(text in message for text in PEER_GONE_ERRORS):
            lines.append(_(PEER_GONE).format(ranks=succeeded, rank=rank))
        lines += [_(ALSO).format(rank=r, summary=e.summary) for r, e in errors if r != rank]
        lines += [_(STOPPED).format(ranks=unfinished)] if unfinished else []
        fail("\n".join(lines))
    if unfinished:
        fail(_(HUNG).format(ranks=unfinished, world_size=world_size, timeout=timeout, call=where))
    return [outcomes[rank][1] for rank in range(world_size)]


def _describe_failure(rank, outcome, process, world_size, where) -> str:
    if outcome is None:
        return _(CRASHED).format(rank=rank, world_size=world_size, code=process.exitcode, call=where)
    error: ChildError = outcome[1]
    if error.test_failure:
        return error.message
    return _(RAISED).format(
        rank=rank, world_size=world_size, error=error.summary, call=where, traceback=error.traceback
    )


def _stub_error(rank: int, error: ChildError) -> NotImplementedError:
    carried = NotImplementedError(
        _(RAISED_ON_RANK).format(message=error.message, rank=rank, traceback=error.traceback)
    )
    carried.stub_origin = error.origin
    return carried


def _kata_finders() -> list[KataModuleFinder]:
    return [finder for finder in sys.meta_path if isinstance(finder, KataModuleFinder)]


def _kata_modules() -> dict[str, Path]:
    modules: dict[str, Path] = {}
    for finder in reversed(_kata_finders()):  # the first finder on sys.meta_path wins
        modules.update(finder.modules)
    return modules


def _is_stub(filename: str) -> bool:
    path = Path(filename).resolve()
    return any(path == Path(p).resolve() for p in _kata_modules().values())


def _importable(fn: Callable) -> tuple[str, str]:
    """(file, qualified name) of a module-level function, which a spawned child can load."""
    qualname = getattr(fn, "__qualname__", "")
    code = getattr(fn, "__code__", None)
    if code is None or "<" in qualname:
        raise ValueError(
            f"run_ranks under spawn needs a function defined at module level, not {qualname or fn!r}"
        )
    return code.co_filename, qualname


def _load(target: tuple[str, str]) -> Callable:
    filename, qualname = target
    name = f"_katas_ranks_{abs(hash(filename))}"
    module = sys.modules.get(name)
    if module is None:
        spec = importlib.util.spec_from_file_location(name, filename)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    obj: Any = module
    for part in qualname.split("."):
        obj = getattr(obj, part)
    return obj


# --- in the child -------------------------------------------------------------------------


def _child(rank, world_size, store, timeout, target, args, workdir: Path, modules) -> None:
    import torch
    import torch.distributed as dist

    initialised = False
    try:
        if modules is not None:  # spawned: a fresh interpreter that knows nothing of kata modules
            KataModuleFinder(modules).install()
            target = _load(target)
        torch.set_num_threads(1)  # world_size processes share the machine's cores
        dist.init_process_group(
            "gloo", init_method=store, rank=rank, world_size=world_size, timeout=timedelta(seconds=timeout)
        )
        initialised = True
        # init_process_group can return on one rank while gloo still connects another; a rank that
        # then finished and exited would break that connection. After a barrier all are connected.
        dist.barrier()
        result = target(rank, world_size, *args)
    except BaseException as err:  # noqa: B036 - everything, SystemExit included, goes to the parent
        payload = pickle.dumps(("error", _child_error(err)))
    else:
        try:
            payload = pickle.dumps(("ok", result))
        except Exception as err:
            payload = pickle.dumps(("error", _child_error(err, _(UNPICKLABLE).format(result=type(result)))))
    _write(workdir, rank, payload)
    if initialised:
        dist.destroy_process_group()


def _child_error(err: BaseException, note: str = "") -> ChildError:
    when = time.time()
    import pytest

    entries = traceback.extract_tb(err.__traceback__)
    tb = err.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    code = tb.tb_frame.f_code if tb is not None else None
    function = getattr(code, "co_qualname", None) or (code.co_name if code else "?")
    origin = (code.co_filename if code else "?", function)
    shown = [e for e in entries if not _hidden(e.filename)] or entries
    text = "".join(traceback.format_list(shown) + traceback.format_exception_only(type(err), err))
    text += note
    return ChildError(
        type_name=type(err).__name__,
        message=str(err),
        traceback=text.rstrip("\n"),
        origin=origin,
        not_implemented=isinstance(err, NotImplementedError),
        test_failure=isinstance(err, pytest.fail.Exception),
        when=when,
    )


def _hidden(filename: str) -> bool:
    import torch

    torch_dir = str(Path(torch.__file__).resolve().parent)
    return filename.startswith(torch_dir) or Path(filename).resolve() == Path(__file__).resolve()


def _write(workdir: Path, rank: int, payload: bytes) -> None:
    path = workdir / RESULT_FILE.format(rank=rank)
    partial = path.with_suffix(".partial")
    partial.write_bytes(payload)
    os.replace(partial, path)  # the parent never reads half a file


def _read(workdir: Path, rank: int):
    path = workdir / RESULT_FILE.format(rank=rank)
    if not path.is_file():
        return None
    try:
        return pickle.loads(path.read_bytes())
    except Exception as err:
        message = f"its result could not be unpickled in the test process: {type(err).__name__}: {err}"
        origin = ("?", "?")
        return "error", ChildError(type(err).__name__, message, message, origin, False, False, time.time())
