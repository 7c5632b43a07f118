"""What a graded kata's process may reach, and how every process it started is ended.

Layers, each used where the machine allows it (Linux; `describe()` says which held):
- an account of its own: when the grader runs as root, each concurrent kata runs under a
  dedicated uid (one per job slot, never shared by two katas at once), so it cannot read
  the grader's memory, environment or root-only files, nor signal the grader;
- a cgroup (memory and process count for the whole process tree) where one can be made;
- rlimits on every process: address space (over what it has mapped when caged), file size,
  core dumps, and the process count when the account is dedicated;
- not dumpable: /proc/<pid>/mem, environ and cwd of the kata (and of the grader, which
  sets the same flag on itself) belong to root, so neither the kata's own memory (the
  report's key) nor the grader's working directory can be read through /proc;
- a session of its own, and a sweep afterwards that kills the process group, every process
  of the dedicated account, every process left in the cgroup, and every orphan the zygote
  (a child subreaper) inherited.
"""

from __future__ import annotations

import os
import signal
import stat
import sys
from dataclasses import dataclass
from pathlib import Path

UID_BASE = 61000  # dedicated accounts: UID_BASE + slot; no passwd entry is needed
FILE_MB = 64  # the largest file a kata may write (its output included)
PROCESSES = 256  # tasks (threads count too) of a dedicated account
_PR_SET_DUMPABLE = 4
_PR_SET_CHILD_SUBREAPER = 36


@dataclass(frozen=True)
class Cage:
    """The limits of one kata's process tree; built by the trusted parent, entered by the child."""

    memory_mb: int
    uid: int | None = None  # None: the grader's own account (it is not root)
    gid: int | None = None
    cgroups: tuple[str, ...] = ()  # cgroup folders the child joins
    hide: tuple[str, ...] = ()  # folders covered by an empty one (a mount namespace of its own)
    keep: tuple[str, ...] = ()  # folders inside `hide` shown again, read-only (Python, torch)

    def enter(self) -> None:
        """Run in the child after fork, before any submitted code: there is no way back."""
        import resource

        limit = address_space_limit(self.memory_mb)  # read /proc before any folder is hidden
        os.setsid()
        if self.hide:
            hide_folders(self.hide, self.keep)
        for folder in self.cgroups:
            Path(folder, "cgroup.procs").write_text(str(os.getpid()))
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        resource.setrlimit(resource.RLIMIT_FSIZE, (FILE_MB * 1024 * 1024,) * 2)
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # an oversized write fails instead of killing
        if self.uid is not None:
            resource.setrlimit(resource.RLIMIT_NPROC, (PROCESSES, PROCESSES))
            os.setgroups([])
            os.setgid(self.gid if self.gid is not None else self.uid)
            os.setuid(self.uid)
        not_dumpable()

    def sweep(self, pid: int) -> None:
        """Kill every process this kata started, wherever it went (trusted parent side)."""
        _kill_group(pid)
        for folder in self.cgroups:
            _empty_cgroup(Path(folder))
        if self.uid is not None:
            _kill_account(self.uid)


def address_space_limit(memory_mb: int) -> int:
    """The address space a caged process may reach: what it has mapped already (the zygote's
    Python and torch) plus `memory_mb`. torch's CUDA builds map over 3 GB of libraries at import
    (2.5.1+cu124: 3.2 GB, against 0.6 GB for a CPU build), so a flat limit would leave a kata on
    a CUDA build no memory at all, and it would crash before its first test."""
    mapped = 0
    try:
        for line in Path("/proc/self/status").read_text(encoding="ascii").splitlines():
            if line.startswith("VmSize:"):
                mapped = int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):  # no /proc: the limit counts from zero
        pass
    return mapped + memory_mb * 1024 * 1024


_CLONE_NEWNS, _MS_RDONLY, _MS_REMOUNT, _MS_BIND, _MS_REC, _MS_PRIVATE = 0x20000, 1, 32, 4096, 16384, 1 << 18


def hide_folders(hide: tuple[str, ...], keep: tuple[str, ...]) -> None:
    """In a mount namespace of this process's own, cover each folder of `hide` with an empty
    tmpfs and bind the folders of `keep` that lie inside it back, read-only. Needs root."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)

    def call(result: int, what: str) -> None:
        if result != 0:
            errno = ctypes.get_errno()
            raise OSError(errno, f"{what}: {os.strerror(errno)}")

    call(libc.unshare(_CLONE_NEWNS), "unshare(CLONE_NEWNS)")
    call(libc.mount(b"none", b"/", None, _MS_REC | _MS_PRIVATE, None), "mount --make-rprivate /")
    keep = tuple(k for k in keep if not any(_inside(k, other) for other in keep if other != k))
    for folder in hide:
        if any(_inside(folder, k) or folder == k for k in keep):
            continue  # it is (inside) a folder that must stay
        inside = [k for k in keep if _inside(k, folder)]
        handles = [os.open(k, os.O_PATH) for k in inside]  # still reachable once covered
        call(libc.mount(b"tmpfs", folder.encode(), b"tmpfs", 0, b"mode=0755,size=64k"), f"cover {folder}")
        for path, handle in zip(inside, handles, strict=True):
            os.makedirs(path, exist_ok=True)
            source = f"/proc/self/fd/{handle}".encode()
            call(libc.mount(source, path.encode(), None, _MS_BIND | _MS_REC, None), f"bind {path}")
            flags = _MS_BIND | _MS_REMOUNT | _MS_RDONLY
            call(libc.mount(None, path.encode(), None, flags, None), f"read-only {path}")
            os.close(handle)


def _inside(path: str, folder: str) -> bool:
    return path.startswith(folder.rstrip("/") + "/")


def can_hide_folders() -> bool:
    """Whether this machine lets root make a mount namespace (a container may not)."""
    if not can_switch_account() or not sys.platform.startswith("linux"):
        return False
    import subprocess

    try:
        done = subprocess.run(["unshare", "--mount", "true"], capture_output=True, timeout=60, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


def installation_folders() -> tuple[str, ...]:
    """Where this Python, its packages and torch live (real paths)."""
    import importlib.util
    import site

    spec = importlib.util.find_spec("torch")  # where it is, without the 1.5 s import
    torch_dir = os.path.dirname(spec.origin) if spec is not None and spec.origin else sys.prefix
    folders = {sys.prefix, sys.base_prefix, os.path.dirname(os.__file__), torch_dir}
    folders.update(site.getsitepackages())
    return tuple(sorted({os.path.realpath(f) for f in folders if os.path.isdir(f)}))


def closed_ancestors(folders: tuple[str, ...]) -> set[str]:
    """The folders above `folders` that other accounts cannot pass through (mode without o+x,
    as `mktemp -d` makes them): covered too, so that the installation is bound back reachable."""
    closed = set()
    for folder in folders:
        parent = os.path.dirname(folder)
        while parent and parent != os.sep:
            try:
                if not os.stat(parent).st_mode & 0o001:
                    closed.add(parent)
            except OSError:
                pass
            parent = os.path.dirname(parent)
    return closed


def not_dumpable() -> None:
    """Make /proc/<this pid>/{mem,environ,cwd,...} root's; a no-op where prctl is missing."""
    _prctl(_PR_SET_DUMPABLE, 0)


def become_subreaper() -> None:
    """Orphaned descendants are re-parented to this process instead of init (Linux)."""
    _prctl(_PR_SET_CHILD_SUBREAPER, 1)


def _prctl(option: int, value: int) -> bool:
    if not sys.platform.startswith("linux"):
        return False
    import ctypes  # the grader's own code; submissions may not import ctypes (see policy.py)

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(option, value, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def can_switch_account() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


def accounts_usable(can_hide: bool = False) -> bool:
    """Whether katas can run under accounts of their own (root, and Python readable by them)."""
    return can_switch_account() and (can_hide or unreadable_installation() is None)


class Accounts:
    """Dedicated uids reserved for one grader, `count` of them, none shared with another grader.

    Each uid is held with a lock file in a folder only root can use, for as long as the grader
    lives, so two graders on one machine (a test run under xdist, two instructors) never kill
    or read each other's katas. A uid is swept clean of processes when it is taken.
    """

    SPAN = 1000

    def __init__(self, count: int, base: int = UID_BASE):
        import fcntl
        import tempfile

        folder = Path(tempfile.gettempdir()) / "katas-grade-uids"
        folder.mkdir(mode=0o700, exist_ok=True)
        info = folder.lstat()
        if not stat.S_ISDIR(info.st_mode) or info.st_uid != 0 or info.st_mode & 0o077:
            raise PermissionError(f"{folder} must be a folder of root's alone (mode 700); remove it")
        self.uids: list[int] = []
        self._locks = []
        for uid in range(base, base + self.SPAN):
            if len(self.uids) == count:
                break
            handle = open(folder / str(uid), "a")  # noqa: SIM115 - held until release()
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.close()
                continue
            _kill_account(uid)  # a grader that died may have left processes behind
            self._locks.append(handle)
            self.uids.append(uid)
        if len(self.uids) < count:
            self.release()
            raise RuntimeError(f"no free account in uids {base}..{base + self.SPAN - 1}")

    def release(self) -> None:
        for handle in self._locks:
            handle.close()
        self._locks.clear()


def unreadable_installation() -> str | None:
    """A folder of this Python or its packages that another account cannot read, if any.

    A caged child imports lazily (torch does), so it must be able to read them; where it
    cannot (a Python under a 0700 home folder), the kata runs under the grader's account.
    """
    for folder in installation_folders():
        path = Path(folder)
        for part in [*reversed(path.parents), path]:
            mode = part.stat().st_mode
            if not mode & stat.S_IXOTH or (part == path and not mode & stat.S_IROTH):
                return str(part)
    return None


class CgroupFactory:
    """Creates and removes per-kata cgroups (v2 unified, or v1 memory + pids), where allowed."""

    def __init__(self) -> None:
        self.parents = _writable_cgroup_parents()

    @property
    def available(self) -> bool:
        return bool(self.parents)

    def make(self, name: str, memory_mb: int) -> tuple[str, ...]:
        made = []
        for kind, parent in self.parents:
            folder = parent / name
            try:
                folder.mkdir()
                if kind == "v2":
                    (folder / "memory.max").write_text(str(memory_mb * 1024 * 1024))
                    (folder / "pids.max").write_text(str(PROCESSES))
                elif kind == "memory":
                    (folder / "memory.limit_in_bytes").write_text(str(memory_mb * 1024 * 1024))
                elif kind == "pids":
                    (folder / "pids.max").write_text(str(PROCESSES))
            except OSError:
                self.remove((str(folder),))
                continue
            made.append(str(folder))
        return tuple(made)

    @staticmethod
    def remove(folders: tuple[str, ...]) -> None:
        for folder in folders:
            _empty_cgroup(Path(folder))
            try:
                os.rmdir(folder)
            except OSError:
                pass


def _writable_cgroup_parents() -> list[tuple[str, Path]]:
    if not sys.platform.startswith("linux"):
        return []
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return []
    found = []
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if controllers == "" and _has_v2_controllers(Path("/sys/fs/cgroup") / path.lstrip("/")):
            found.append(("v2", Path("/sys/fs/cgroup") / path.lstrip("/")))
        for kind in ("memory", "pids"):
            if kind in controllers.split(","):
                found.append((kind, Path("/sys/fs/cgroup") / kind / path.lstrip("/")))
    return [(kind, folder) for kind, folder in found if os.access(folder, os.W_OK)]


def _has_v2_controllers(folder: Path) -> bool:
    try:
        controllers = (folder / "cgroup.subtree_control").read_text().split()
    except OSError:
        return False
    return "memory" in controllers and "pids" in controllers


def _empty_cgroup(folder: Path) -> None:
    kill = folder / "cgroup.kill"
    if kill.exists():
        try:
            kill.write_text("1")
        except OSError:
            pass
    for _ in range(50):  # a fork during the sweep adds a process: repeat until none is left
        try:
            pids = [int(p) for p in (folder / "cgroup.procs").read_text().split()]
        except (OSError, ValueError):
            return
        if not pids:
            return
        for pid in pids:
            _kill(pid)


def _kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError, OSError):
        pass


def _kill_account(uid: int) -> None:
    """`kill -KILL -1` run as the account itself: every process of that uid, and nothing else.

    Linux never signals the caller of kill(-1) itself. An exec rather than a fork: the
    grader has threads, and a fork from a threaded process may deadlock.
    """
    if not can_switch_account():
        return
    import subprocess

    for _ in range(3):
        subprocess.run(
            ["kill", "-KILL", "-1"],
            user=uid,
            group=uid,
            extra_groups=[],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            check=False,
        )


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def orphans_of(parent: int) -> list[int]:
    """Processes whose parent is `parent` (a subreaper collects orphans this way)."""
    found = []
    for entry in Path("/proc").iterdir() if sys.platform.startswith("linux") else ():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[-1].split()
        if len(fields) > 1 and int(fields[1]) == parent:
            found.append(int(entry.name))
    return found
