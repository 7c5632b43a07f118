"""Grade a class: one sub-folder or .zip per student, N students at a time, results cached by content.

A class folder holds one entry per student, a folder or a .zip named by the
student's id. Both are untrusted: a zip is unpacked by hand (only the kata
files, capped in size, no links or special files, no path out of its folder)
and a folder is read without following symbolic links. Each result is cached
under a hash of the submission's kata files and of the grader itself, so a
re-run grades only new or changed submissions and a changed grader regrades all.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import stat
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from ..manifest import Kata, Manifest
from . import tree
from .run import ExerciseScore, Grade, Grader, GraderChanged, KataScore, Limits

SINGLE, CLASS = "single", "class"
ZIP_SUFFIX = ".zip"
MAX_ZIP_BYTES = 200 * 1024 * 1024  # the archive itself
MAX_ZIP_ENTRIES = 10_000
MAX_UNPACKED_BYTES = 20 * 1024 * 1024  # every kata file of one zip together
MAX_WRAPPERS = 3  # folders looked through to the submission: alice.zip -> alice/ -> project/ -> katas/
SKIPPED_NAMES = ("__MACOSX",)  # what macOS adds to a zip
CACHE_FOLDER = ".cache"
CACHE_FORMAT = 1
TRANSIENT = ("stopped after", "not graded: the grading time ran out")  # kata problems never cached
UNKEYED_LIMITS = ("jobs", "deadline", "uid_base")  # limits that cannot change a finished kata's score
VERSIONED = ("torch", "numpy", "pytest", "hypothesis", "pytest-timeout")  # they can change a score

NOT_A_FOLDER = "{folder} is not a folder; pass a submission folder or a class folder"
EMPTY = (
    "{folder} holds no kata file and no student submission; pass one submission (a torch-katas folder "
    "with katas/, or kata files such as {example}) or a class folder with one sub-folder or .zip per student"
)
AMBIGUOUS = (
    "{folder} holds kata files ({files}) beside student submissions ({students}); to grade a class, "
    "move the loose kata files into a sub-folder named by their student's id"
)
OUT_DIR_FOR_CLASS = "--out-dir is for a class folder; {folder} is one submission (use --format/--out)"
CLASS_OUTPUTS = (
    "a class writes gradebook.csv, students/*.json and class-report.html to --out-dir; "
    "leave out --format and --out"
)

LINKED = "{name} is a symbolic link; put the submission itself in the class folder"
CLASH = "both {names} are in the class folder; keep one submission per student"
NO_KATA_FILE = "no kata file found; expected katas/<kata>/<module>.py or files such as {example}"
BAD_ZIP = "{name} is not a readable zip file ({why})"
ZIP_TOO_BIG = "{name} is larger than {limit} MB"
ZIP_TOO_MANY = "{name} holds more than {limit} entries"
ZIP_UNSAFE_PATH = "{name} holds a path that leaves its folder ({entry})"
ZIP_LINK = "{name} holds a symbolic link or special file ({entry}); zip the files themselves"
ZIP_ENCRYPTED = "{name} holds an encrypted entry ({entry})"
ZIP_FILE_TOO_BIG = "{name}: {entry} is larger than {limit} kB"
ZIP_UNPACKED_TOO_BIG = "{name} unpacks to more than {limit} MB of kata files"
ZIP_DUPLICATE = "{name} holds {entry} twice"
IGNORED_LINE = "ignored {count} file(s) that are neither a student folder nor a .zip: {names}"
CACHED_LINE = "{cached} of {total} students unchanged since the last run: their grades come from the cache"
NOT_GRADED_LINE = "{student}: not graded: {problem}"
GRADER_FAILED = "the grader failed on this submission: {error}"


class ClassError(Exception):
    """The folder is neither one submission nor a class, or an option does not fit; one line says why."""


class UnsafeZip(Exception):
    """A student's zip that is refused; the message names the zip and the reason."""


@dataclass(frozen=True)
class Student:
    id: str
    path: Path
    problem: str | None = None  # why the entry cannot be graded at all


@dataclass
class Result:
    student: str
    grade: Grade
    problem: str | None = None  # why the submission was not graded (its grade is then zero)
    cached: bool = False


# -- a class folder or one submission -------------------------------------------------------------


def classify(folder: Path, manifest: Manifest, skip: Path | None = None) -> str:
    """SINGLE or CLASS; raises ClassError for a folder that is neither, or both."""
    if not folder.is_dir():
        raise ClassError(NOT_A_FOLDER.format(folder=folder))
    if _exists(folder / "katas"):
        return SINGLE  # a project: its other folders and zips are not students
    files = [f"{k.module}.py" for k in manifest.katas if _exists(folder / f"{k.module}.py")]
    students, _ = find_students(folder, skip)
    if files:
        nested = [s.path.name for s in students if _is_zip(s.path) or _is_submission(s.path, manifest)]
        if nested:
            raise ClassError(
                AMBIGUOUS.format(folder=folder, files=", ".join(files[:3]), students=", ".join(nested[:3]))
            )
        return SINGLE
    if not any(
        _is_zip(s.path) or _is_submission(submission_root(s.path, manifest), manifest) for s in students
    ):
        raise ClassError(EMPTY.format(folder=folder, example=_example(manifest)))
    return CLASS


def find_students(folder: Path, skip: Path | None = None) -> tuple[list[Student], list[str]]:
    """The students of a class folder, by id, and the names of the entries that are not students."""
    by_id: dict[str, list[os.DirEntry]] = {}
    ignored = []
    skip = skip.resolve() if skip is not None else None
    with os.scandir(folder) as entries:
        for entry in entries:
            if entry.name.startswith(".") or entry.name in SKIPPED_NAMES:
                continue
            if skip is not None and Path(entry.path).resolve() == skip:
                continue  # the out dir inside the class folder
            if entry.is_symlink() or entry.is_dir(follow_symlinks=False):
                by_id.setdefault(_readable(entry.name), []).append(entry)
            elif entry.is_file(follow_symlinks=False) and entry.name.lower().endswith(ZIP_SUFFIX):
                by_id.setdefault(_readable(entry.name[: -len(ZIP_SUFFIX)]), []).append(entry)
            else:
                ignored.append(_readable(entry.name))
    students = []
    for student, found in sorted(by_id.items(), key=lambda item: (item[0].casefold(), item[0])):
        path = Path(found[0].path)
        if len(found) > 1:
            names = " and ".join(sorted(_readable(e.name) for e in found))
            students.append(Student(student, path, CLASH.format(names=names)))
        elif found[0].is_symlink():
            students.append(Student(student, path, LINKED.format(name=_readable(found[0].name))))
        else:
            students.append(Student(student, path))
    return students, sorted(ignored)


def _readable(name: str) -> str:
    """A file name as text: bytes that are not UTF-8 (surrogates from the file system) become U+FFFD."""
    return os.fsencode(name).decode("utf-8", "replace")


def submission_root(folder: Path, manifest: Manifest) -> Path:
    """The folder that holds the kata files, looking through wrapping folders (alice/project/katas)."""
    for _ in range(MAX_WRAPPERS):
        if not _plain_dir(folder) or _is_submission(folder, manifest):
            return folder
        with os.scandir(folder) as entries:
            inner = [
                Path(e.path)
                for e in entries
                if e.is_dir(follow_symlinks=False)
                and not e.name.startswith(".")
                and e.name not in SKIPPED_NAMES
            ]
        if len(inner) != 1:
            return folder
        folder = inner[0]
    return folder


def _is_submission(folder: Path, manifest: Manifest) -> bool:
    return _plain_dir(folder) and (
        _exists(folder / "katas") or any(_exists(folder / f"{k.module}.py") for k in manifest.katas)
    )


def _is_zip(path: Path) -> bool:
    return path.name.lower().endswith(ZIP_SUFFIX) and _plain_file(path)


def _exists(path: Path) -> bool:
    return os.path.lexists(path)


def _plain_dir(path: Path) -> bool:
    try:
        return stat.S_ISDIR(os.lstat(path).st_mode)
    except OSError:
        return False


def _plain_file(path: Path) -> bool:
    try:
        return stat.S_ISREG(os.lstat(path).st_mode)
    except OSError:
        return False


def _example(manifest: Manifest) -> str:
    return f"{manifest.katas[0].module}.py" if manifest.katas else "autograd_basics.py"


# -- untrusted zips -------------------------------------------------------------------------------


def unpack(archive: Path, dest: Path, manifest: Manifest) -> Path:
    """Unpack the kata files of a student's zip into the empty folder `dest`; raises UnsafeZip.

    Every entry is checked first (path, type, encryption), then only the files named like a kata
    module are written, each read in chunks against the caps: the sizes the zip declares are not
    trusted. Returns the submission's root inside `dest`.
    """
    name = archive.name
    if os.lstat(archive).st_size > MAX_ZIP_BYTES:
        raise UnsafeZip(ZIP_TOO_BIG.format(name=name, limit=MAX_ZIP_BYTES // 2**20))
    wanted = {f"{k.module}.py" for k in manifest.katas}
    try:
        with zipfile.ZipFile(archive) as zipped:
            entries = zipped.infolist()
            if len(entries) > MAX_ZIP_ENTRIES:
                raise UnsafeZip(ZIP_TOO_MANY.format(name=name, limit=MAX_ZIP_ENTRIES))
            for info in entries:
                _check_entry(name, info)
            budget = MAX_UNPACKED_BYTES
            for info in entries:
                parts = _parts(info.filename)
                if info.is_dir() or not parts or parts[-1] not in wanted:
                    continue
                budget -= _extract(zipped, info, dest.joinpath(*parts), name, budget)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError, RuntimeError, EOFError) as err:
        raise UnsafeZip(BAD_ZIP.format(name=name, why=str(err) or type(err).__name__)) from None
    except OSError as err:
        raise UnsafeZip(BAD_ZIP.format(name=name, why=err.strerror or str(err))) from None
    return submission_root(dest, manifest)


def _parts(filename: str) -> list[str]:
    return [p for p in filename.split("/") if p not in ("", ".")]


def _check_entry(name: str, info: zipfile.ZipInfo) -> None:
    entry = info.filename
    parts = entry.split("/")
    if entry.startswith("/") or "\\" in entry or "\0" in entry or ".." in parts or ":" in parts[0]:
        raise UnsafeZip(ZIP_UNSAFE_PATH.format(name=name, entry=ascii(entry)))
    kind = stat.S_IFMT(info.external_attr >> 16)
    if kind not in (0, stat.S_IFREG, stat.S_IFDIR):
        raise UnsafeZip(ZIP_LINK.format(name=name, entry=ascii(entry)))
    if info.flag_bits & 0x1:
        raise UnsafeZip(ZIP_ENCRYPTED.format(name=name, entry=ascii(entry)))


def _extract(zipped: zipfile.ZipFile, info: zipfile.ZipInfo, target: Path, name: str, budget: int) -> int:
    """Write one entry to a new file at `target`, stopping at the caps; the bytes written."""
    cap = min(tree.MAX_STUB_BYTES, budget)
    target.parent.mkdir(parents=True, exist_ok=True)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    try:
        handle = os.open(target, flags, 0o600)
    except FileExistsError:
        raise UnsafeZip(ZIP_DUPLICATE.format(name=name, entry=ascii(info.filename))) from None
    written = 0
    with os.fdopen(handle, "wb") as out, zipped.open(info) as source:
        while chunk := source.read(64 * 1024):
            written += len(chunk)
            if written > cap:
                if cap < tree.MAX_STUB_BYTES:
                    raise UnsafeZip(ZIP_UNPACKED_TOO_BIG.format(name=name, limit=MAX_UNPACKED_BYTES // 2**20))
                limit = tree.MAX_STUB_BYTES // 1000
                raise UnsafeZip(ZIP_FILE_TOO_BIG.format(name=name, entry=ascii(info.filename), limit=limit))
            out.write(chunk)
    return written


# -- the cache ------------------------------------------------------------------------------------


def grader_version(manifest: Manifest) -> str:
    """A hash of everything in the grader that can change a score: its katas/ tree but the stubs
    (a grade uses the pristine copy), its pytest configuration, Python and the libraries' versions."""
    digest = hashlib.sha256()
    stubs = {kata.stub_path(manifest.root / "katas") for kata in manifest.katas}
    katas = manifest.root / "katas"
    for folder, dirs, files in os.walk(katas):
        dirs[:] = sorted(d for d in dirs if d not in ("__pycache__", ".hypothesis", ".pytest_cache"))
        for file in sorted(files):
            path = Path(folder, file)
            if path in stubs or file.endswith(".pyc"):
                continue
            data = os.readlink(path).encode() if path.is_symlink() else path.read_bytes()
            _frame(digest, path.relative_to(manifest.root).as_posix(), data)
    for name in tree.TREE_FILES:
        _frame(digest, name, (manifest.root / name).read_bytes())
    for dist in VERSIONED:
        try:
            _frame(digest, dist, metadata.version(dist).encode())
        except metadata.PackageNotFoundError:
            _frame(digest, dist, b"")
    _frame(digest, "python", sys.version.encode())
    return digest.hexdigest()


def submission_key(manifest: Manifest, root: Path, version: str, limits: Limits) -> str | None:
    """The cache key of a submission: its kata files, the grader and the limits.

    None (never cached) when a kata file is reached through a symbolic link or is not a plain
    file: the grade would then depend on more than the bytes hashed here.
    """
    digest = hashlib.sha256()
    _frame(digest, "grader", version.encode())
    keyed = sorted((k, v) for k, v in dataclasses.asdict(limits).items() if k not in UNKEYED_LIMITS)
    _frame(digest, "limits", repr(keyed).encode())
    for kata in manifest.katas:
        state = _kata_file(root, kata)
        if state is None:
            return None
        _frame(digest, kata.name, state)
    return digest.hexdigest()


def _kata_file(root: Path, kata: Kata) -> bytes | None:
    """What tree.locate would find, read without following links: the bytes, a marker, or None."""
    for relative in (Path("katas", kata.name, f"{kata.module}.py"), Path(f"{kata.module}.py")):
        path = root
        for part in relative.parts:
            path = path / part
            try:
                mode = os.lstat(path).st_mode
            except FileNotFoundError:
                break
            if stat.S_ISLNK(mode):
                return None
        else:
            if not stat.S_ISREG(mode):
                return None
            with open(path, "rb") as handle:
                data = handle.read(tree.MAX_STUB_BYTES + 1)
            return b"file:" + relative.as_posix().encode() + b"\0" + data
    return b"missing"


def _frame(digest, name: str, data: bytes) -> None:
    digest.update(f"{len(name)}:{name}:{len(data)}:".encode())
    digest.update(data)


def grade_to_dict(result: Grade) -> dict:
    return dataclasses.asdict(result)


def grade_from_dict(data: dict) -> Grade:
    """The Grade that grade_to_dict wrote; ValueError, TypeError or KeyError for anything else."""
    values = _typed(Grade, data)
    katas = []
    for kata in values["katas"]:
        fields = _typed(KataScore, kata)
        exercises = [ExerciseScore(**_typed(ExerciseScore, e)) for e in fields["exercises"]]
        katas.append(KataScore(**{**fields, "exercises": exercises}))
    return Grade(**{**values, "katas": katas})


def _typed(cls, values: dict) -> dict:
    """`values` if it holds exactly the fields of `cls` (a cache from other code has others)."""
    names = {f.name for f in dataclasses.fields(cls)}
    if not isinstance(values, dict) or set(values) != names:
        raise ValueError(f"a cached {cls.__name__} does not have the fields {sorted(names)}")
    return values


def cacheable(result: Grade) -> bool:
    """A grade that a clock cut short may differ on a quieter machine: it is graded again next time."""
    return not any(k.problem and k.problem.startswith(TRANSIENT) for k in result.katas)


class Cache:
    """Grades stored as .cache/<key>.json in the out dir, each with the grader version it came from."""

    def __init__(self, folder: Path, version: str, read: bool = True):
        self.folder = folder
        self.version = version
        self.read = read  # False: grade everything again, and store the fresh results

    def get(self, key: str | None) -> Grade | None:
        if key is None or not self.read:
            return None
        try:
            data = json.loads((self.folder / f"{key}.json").read_text(encoding="utf-8"))
            if data.get("format") != CACHE_FORMAT or data.get("grader") != self.version:
                return None
            return grade_from_dict(data["grade"])
        except (OSError, ValueError, TypeError, KeyError, AttributeError):
            return None  # missing or unreadable: grade it again

    def put(self, key: str | None, result: Grade) -> None:
        if key is None or not cacheable(result):
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        data = {"format": CACHE_FORMAT, "grader": self.version, "grade": grade_to_dict(result)}
        partial = self.folder / f"{key}.json.{os.getpid()}.{id(result)}"
        partial.write_text(json.dumps(data), encoding="utf-8")
        os.replace(partial, self.folder / f"{key}.json")


# -- the run --------------------------------------------------------------------------------------


class Session:
    """One warm grader for the whole class, set up when the first submission needs grading.

    Its zygote, tree and collection serve every submission after that; a failed set-up is
    tried again for the next one.
    """

    def __init__(self, manifest: Manifest, limits: Limits):
        self.manifest, self.limits = manifest, limits
        self.grader: Grader | None = None

    def grade(self, path: Path) -> Grade:
        if self.grader is None:
            self.grader = Grader(self.manifest, self.limits)
        return self.grader.grade(path)

    def close(self) -> None:
        if self.grader is not None:
            self.grader.close()
            self.grader = None


def _grade_one(session: Session, path: Path) -> Grade:
    """One submission's grade (the one place a class run calls the grader)."""
    return session.grade(path)


def zero_grade(manifest: Manifest, reason: str) -> Grade:
    """Every exercise at zero, with the reason, for a submission that could not be graded."""
    return Grade(
        [
            KataScore(
                kata.name,
                [ExerciseScore(ex.qualname, 0, ex.points, "error", reason) for ex in kata.exercises],
                problem=reason,
            )
            for kata in manifest.katas
        ]
    )


@dataclass
class _Pending:
    student: Student
    root: Path | None = None
    key: str | None = None
    problem: str | None = None


def grade_class(
    manifest: Manifest,
    students: list[Student],
    cache: Cache | None,
    limits: Limits,
    jobs: int,
    on_start: Callable[[list[Result], int], None] = lambda known, todo: None,
    on_result: Callable[[Result], None] = lambda result: None,
) -> list[Result]:
    """Every student's Result, in the order given: from the cache, or graded now.

    Students are graded one after another, each with its katas `jobs` at a time: that is the
    faster order on two cores (measured: README), and the one a warm grader session serves
    (one set-up, then submission after submission). Each new grade is cached as soon as it is
    known, so an interrupted run resumes where it stopped. A grader error in one submission is
    that student's problem, not the run's.
    """
    version = cache.version if cache is not None else ""
    each = dataclasses.replace(limits, jobs=max(1, jobs))
    with tempfile.TemporaryDirectory(prefix="katas-class-") as scratch:
        pending = [
            _prepare(manifest, s, Path(scratch, str(n)), version, limits) for n, s in enumerate(students)
        ]
        results: dict[str, Result] = {}
        todo: dict[object, list[_Pending]] = {}  # by cache key: identical submissions are graded once
        for item in pending:
            if item.problem is not None:
                results[item.student.id] = _not_graded(manifest, item.student.id, item.problem)
                continue
            cached = cache.get(item.key) if cache is not None else None
            if cached is not None:
                results[item.student.id] = Result(item.student.id, cached, cached=True)
            else:
                todo.setdefault(item.key if item.key is not None else id(item), []).append(item)
        on_start([results[s.id] for s in students if s.id in results], sum(len(g) for g in todo.values()))
        session = Session(manifest, each)
        try:
            _grade_all(manifest, todo, session, cache, results, on_result)
        finally:
            session.close()
    return [results[s.id] for s in students]


def _grade_all(manifest, todo, session, cache, results, on_result) -> None:
    for group in todo.values():
        try:
            outcome, problem = _grade_one(session, group[0].root), None
        except GraderChanged:
            raise  # the grader's own files changed: no grade after this one can be trusted
        except Exception as err:  # the grader's own failure: this student only, and not cached
            outcome, problem = None, GRADER_FAILED.format(error=err)
        else:
            if cache is not None:
                cache.put(group[0].key, outcome)
        for item in group:
            if problem is None:
                results[item.student.id] = Result(item.student.id, outcome)
            else:
                results[item.student.id] = _not_graded(manifest, item.student.id, problem)
            on_result(results[item.student.id])


def _not_graded(manifest: Manifest, student: str, reason: str) -> Result:
    return Result(student, zero_grade(manifest, reason), reason)


def _prepare(manifest: Manifest, student: Student, scratch: Path, version: str, limits: Limits) -> _Pending:
    item = _Pending(student, problem=student.problem)
    if item.problem is not None:
        return item
    try:
        if _is_zip(student.path):
            scratch.mkdir(mode=0o700)
            item.root = unpack(student.path, scratch, manifest)
        else:
            item.root = submission_root(student.path, manifest)
    except UnsafeZip as err:
        item.problem = str(err)
        return item
    if not _is_submission(item.root, manifest):
        item.problem = NO_KATA_FILE.format(example=_example(manifest))
        return item
    item.key = submission_key(manifest, item.root, version, limits)
    return item


# -- the command ----------------------------------------------------------------------------------


def is_class_folder(manifest: Manifest, folder: Path, args) -> bool:
    """Whether `python -m katas grade FOLDER` grades a class; ClassError for what fits neither."""
    out_dir = getattr(args, "out_dir", None)
    kind = classify(folder, manifest, skip=Path(out_dir) if out_dir else None)
    if kind == SINGLE and out_dir is not None:
        raise ClassError(OUT_DIR_FOR_CLASS.format(folder=folder))
    return kind == CLASS


def limits_from(args) -> Limits:
    """The grade options of the command line, as far as this grader's Limits has them."""
    given = {
        "kata_timeout": args.kata_timeout,
        "test_timeout": args.test_timeout,
        "memory_mb": args.memory_mb,
        "user": getattr(args, "user", None),
    }
    known = {f.name for f in dataclasses.fields(Limits)}
    return Limits(**{name: value for name, value in given.items() if name in known})


def default_out_dir(folder: Path) -> Path:
    folder = folder.resolve()
    return folder.parent / f"{folder.name}-grades"


def main(manifest: Manifest, args) -> int:
    """Grade a class folder and write the gradebook, one JSON per student and the class report."""
    from . import class_report, gradebook

    if getattr(args, "format", None) or getattr(args, "out", None):
        raise ClassError(CLASS_OUTPUTS)
    folder = Path(args.submission)
    out_dir = Path(args.out_dir) if args.out_dir else default_out_dir(folder)
    students, ignored = find_students(folder, skip=out_dir)
    limits = limits_from(args)
    out_dir.mkdir(parents=True, exist_ok=True)
    cache = Cache(out_dir / CACHE_FOLDER, grader_version(manifest), read=not args.no_cache)
    if ignored:
        shown = ", ".join(printable(name) for name in ignored[:5]) + (" ..." if len(ignored) > 5 else "")
        print(IGNORED_LINE.format(count=len(ignored), names=shown))
    started = time.perf_counter()
    with Progress(len(students)) as progress:
        try:
            results = grade_class(
                manifest, students, cache, limits, args.jobs, progress.start, progress.finished
            )
        except GraderChanged as err:
            print(f"error: {err}; grades cached so far are kept, run the command again", file=sys.stderr)
            return 3
    written = gradebook.write(manifest, results, out_dir)
    written.append(class_report.write(manifest, results, out_dir / class_report.FILE_NAME))
    fresh = sum(1 for r in results if not r.cached and r.problem is None)
    cached = sum(1 for r in results if r.cached)
    failed = sum(1 for r in results if r.problem is not None)
    print(
        f"torch-katas: {len(results)} students ({fresh} graded, {cached} from the cache, "
        f"{failed} not gradable) in {time.perf_counter() - started:.0f} s; wrote "
        + ", ".join(str(p) for p in written)
    )
    return 0


def printable(text: str) -> str:
    """A student-controlled name, safe to print to a terminal."""
    return text if text.isprintable() else ascii(text)


class Progress:
    """A progress bar with an ETA on a terminal; one line per finished student otherwise."""

    def __init__(self, total: int, stream=None):
        self.total = total
        self.stream = stream if stream is not None else sys.stdout
        self.done = 0
        self.bar = None
        self.task = None

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc) -> None:
        if self.bar is not None:
            self.bar.stop()

    def start(self, known: list[Result], todo: int) -> None:
        self.done = len(known)
        cached = sum(1 for r in known if r.cached)
        if cached:
            print(CACHED_LINE.format(cached=cached, total=self.total), file=self.stream)
        for result in known:
            if result.problem is not None:
                print(
                    NOT_GRADED_LINE.format(student=printable(result.student), problem=result.problem),
                    file=self.stream,
                )
        if todo and self.stream.isatty():
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )

            self.bar = Progress(
                TextColumn("grading"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                TextColumn("ETA"),
                TimeRemainingColumn(),
                TextColumn("{task.fields[last]}"),
                console=Console(file=self.stream),
            )
            self.task = self.bar.add_task("grading", total=todo, last="")
            self.bar.start()

    def finished(self, result: Result) -> None:
        self.done += 1
        line = f"{printable(result.student)}: {result.grade.points}/{result.grade.max_points} points"
        if result.problem is not None:
            line = NOT_GRADED_LINE.format(student=printable(result.student), problem=result.problem)
        if self.bar is not None:
            from rich.markup import escape

            self.bar.update(self.task, advance=1, last=escape(line))
        else:
            print(f"[{self.done}/{self.total}] {line}", file=self.stream, flush=True)
