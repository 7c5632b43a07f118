"""A warm process that forks one fresh child per graded kata (`python -m ...zygote FD`).

It imports torch, pytest, Hypothesis and the whole harness once, from the grader's
pristine tree and before any submitted file exists, so a kata costs its tests alone.
It holds no secret and no result: the trusted parent sends each job (argv, working
folder, environment, the cage) with its pipes over a socket, and the forked child
enters the cage (sandbox.Cage.enter) before pytest imports anything submitted.

The zygote is a child subreaper: a process that a kata left behind is re-parented to it
and killed when the next job ends.
"""

from __future__ import annotations

import json
import os
import select
import signal
import socket
import subprocess
import sys
import threading
import traceback
from dataclasses import asdict
from pathlib import Path
from queue import Queue

from . import sandbox

MESSAGE_BYTES = 1 << 20
FD_COUNT = 3  # secret (read), results (write), output (write)


# --- the trusted parent's side ------------------------------------------------------------


class ZygoteDied(RuntimeError):
    pass


class Zygote:
    """The parent's handle: start once, then `run` jobs from any thread."""

    def __init__(self, base: Path, env: dict[str, str], log: Path):
        parent_end, child_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        with open(log, "wb") as log_file:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "katas._harness.grading.zygote", str(child_end.fileno())],
                cwd=base,
                env=env,
                pass_fds=(child_end.fileno(),),
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=log_file,
            )
        child_end.close()
        self.sock, self.log = parent_end, log
        self.lock = threading.Lock()
        self.waiting: dict[str, Queue] = {}
        ready = self._receive()
        if ready.get("ready") is not True:
            raise ZygoteDied(f"the grader's warm process did not start: {self._log_tail()}")
        self.reader = threading.Thread(target=self._route, daemon=True)
        self.reader.start()

    def start_job(self, job_id: str, job: dict, fds: list[int]) -> Queue:
        """Send a job; the queue receives {"pid": ...} and then {"status": exit code}."""
        box: Queue = Queue()
        with self.lock:
            self.waiting[job_id] = box
            data = json.dumps({**job, "id": job_id}).encode()
            try:
                socket.send_fds(self.sock, [data], fds)
            except OSError as err:
                raise ZygoteDied(f"the grader's warm process is gone ({err})") from None
        return box

    def close(self) -> None:
        try:
            # shutdown, not close alone: the reader thread's blocked recv keeps the socket open,
            # and the zygote would never see the end of its input.
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        try:
            self.sock.close()
        finally:
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def _receive(self) -> dict:
        try:
            data = self.sock.recv(MESSAGE_BYTES)
        except OSError:
            data = b""
        return json.loads(data) if data else {}

    def _route(self) -> None:
        while True:
            message = self._receive()
            if not message:
                with self.lock:
                    for box in self.waiting.values():
                        box.put({"died": self._log_tail()})
                    self.waiting.clear()
                return
            with self.lock:
                box = self.waiting.get(message.get("id", ""))
                if box is not None and "status" in message:
                    del self.waiting[message["id"]]
            if box is not None:
                box.put(message)

    def _log_tail(self) -> str:
        try:
            with open(self.log, "rb") as handle:
                handle.seek(max(0, os.fstat(handle.fileno()).st_size - 2000))
                return handle.read().decode("utf-8", "replace").strip()
        except OSError:
            return ""


def cage_fields(cage: sandbox.Cage) -> dict:
    return asdict(cage)


# --- the zygote -----------------------------------------------------------------------------


def _warm_up() -> None:
    import hypothesis  # noqa: F401
    import numpy  # noqa: F401
    import pytest  # noqa: F401
    import torch

    torch.set_num_threads(1)
    import pkgutil
    from importlib import import_module

    import katas._harness as harness

    for info in pkgutil.walk_packages(harness.__path__, "katas._harness."):
        if not info.name.endswith("__main__"):
            import_module(info.name)  # nothing the harness needs is left to import from disk later
    # What the first use of each costs once per process, paid here once for every kata:
    # an optimizer imports torch._dynamo (about 1 s), assert_close torch.distributed.
    import torch.utils.data  # noqa: F401

    weight = torch.zeros(1, requires_grad=True)
    torch.optim.SGD([weight], lr=0.1).step()
    torch.testing.assert_close(weight.detach(), weight.detach())
    _warm_pytest()


def _warm_pytest() -> None:
    """One empty pytest run: imports the parts of pytest that load lazily."""
    import tempfile

    import pytest

    with tempfile.TemporaryDirectory(prefix="katas-zygote-") as empty:
        pytest.main([empty, "-q", "-p", "no:cacheprovider", "-p", "no:katas", "--co"], plugins=[])


def _child(job: dict, fds: list[int], sock: socket.socket) -> None:
    """The forked child: into the cage, then pytest. Never returns."""
    code = 70
    try:
        secret_fd, result_fd, out_fd = fds
        sock.close()
        os.dup2(out_fd, 1)
        os.dup2(out_fd, 2)
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        keep = {0, 1, 2, secret_fd, result_fd}
        for fd in _open_fds():
            if fd not in keep:
                try:
                    os.close(fd)
                except OSError:
                    pass
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        os.chdir(job["cwd"])
        sandbox.Cage(**{k: tuple(v) if isinstance(v, list) else v for k, v in job["cage"].items()}).enter()
        os.environ.clear()
        os.environ.update(job["env"], KATAS_GRADE_FDS=f"{secret_fd},{result_fd}")
        import tempfile

        tempfile.tempdir = None  # the zygote's warm-up cached its own; the kata's is in TMPDIR
        sys.argv = ["pytest", *job["argv"]]
        import pytest

        code = int(pytest.main(job["argv"]))
    except BaseException:  # noqa: B036 - nothing may escape a forked child
        traceback.print_exc()
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)


def _open_fds() -> list[int]:
    try:
        return [int(name) for name in os.listdir("/proc/self/fd")]
    except OSError:
        return list(range(3, 256))


def serve(fd: int) -> None:
    sock = socket.socket(fileno=fd)
    _warm_up()
    sandbox.not_dumpable()
    sandbox.become_subreaper()
    sock.send(json.dumps({"ready": True}).encode())
    children: dict[int, str] = {}
    while True:
        readable, _, _ = select.select([sock], [], [], 0.05 if children else 1.0)
        if readable:
            data, fds, _, _ = socket.recv_fds(sock, MESSAGE_BYTES, FD_COUNT)
            if not data:
                break
            job = json.loads(data)
            pid = os.fork()
            if pid == 0:
                _child(job, fds, sock)
            for received in fds:
                os.close(received)
            children[pid] = job["id"]
            sock.send(json.dumps({"id": job["id"], "pid": pid}).encode())
        _reap(children, sock)
    for pid in children:
        sandbox._kill_group(pid)


def _reap(children: dict[int, str], sock: socket.socket) -> None:
    ended = False
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            break
        if pid == 0:
            break
        job = children.pop(pid, None)
        if job is not None:
            ended = True
            sock.send(json.dumps({"id": job, "status": os.waitstatus_to_exitcode(status)}).encode())
    if ended:  # a job just ended: whatever was orphaned to us is left behind by some kata
        for pid in sandbox.orphans_of(os.getpid()):
            if pid not in children:
                sandbox._kill(pid)


if __name__ == "__main__":
    serve(int(sys.argv[1]))
