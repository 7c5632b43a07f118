"""`python -m katas grade CLASS_DIR`: a gradebook, one JSON per student and a class report, cached.

Most tests replace the grader with `fake_grade`, which reads the outcome a student's kata file
asks for: fast, and exact about what the CSV, the JSON and the HTML must say. A few grade real
submissions with a grader that knows only the first two katas.
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import stat
import warnings
import zipfile
from html.parser import HTMLParser
from pathlib import Path

import pytest

from katas._harness import pristine
from katas._harness.cli import main
from katas._harness.grading import class_report, classroom, gradebook, report
from katas._harness.grading.run import ExerciseScore, Grade, KataScore, Limits
from katas._harness.manifest import Manifest, load, parse, read
from tests.project_copy import MANIFEST, make_copy

KATAS = MANIFEST.katas[:2]
FIRST, SECOND = KATAS
PLAN = "# plan: "  # a line of a synthetic kata file: the outcome fake_grade gives it
QUICK = Limits(kata_timeout=120, test_timeout=60, memory_mb=3072)


# -- a small grader and synthetic students ---------------------------------------------------------


@pytest.fixture
def grader(tmp_path) -> Manifest:
    """A grader that knows the first two katas, cheap to build and to change (nothing is run)."""
    root = tmp_path / "grader"
    for kata in KATAS:
        (root / "katas" / kata.name).mkdir(parents=True)
        (root / "katas" / kata.name / f"test_{kata.module}.py").write_text("def test_it(): pass\n")
        kata.stub_path(root / "katas").write_text("# the grader's stub\n")
    text = (MANIFEST.root / "katas" / "manifest.toml").read_text(encoding="utf-8")
    (root / "katas" / "manifest.toml").write_text(
        "[[kata]]".join(text.split("[[kata]]")[:3]), encoding="utf-8"
    )
    for name in ("conftest.py", "pyproject.toml"):
        (root / name).write_text(f"# {name}\n")
    assert read(root).katas == KATAS
    return Manifest(root, KATAS)


def fake_grade(manifest: Manifest, path: Path, limits: Limits) -> Grade:
    """The grade a synthetic submission asks for: each exercise passes unless its plan says otherwise."""
    plan = {}
    for kata in manifest.katas:
        for candidate in (kata.stub_path(path / "katas"), path / f"{kata.module}.py"):
            if candidate.is_file():
                for line in candidate.read_text(encoding="utf-8").splitlines():
                    if line.startswith(PLAN):
                        plan.update(json.loads(line[len(PLAN) :]))
    katas = []
    for kata in manifest.katas:
        exercises = []
        for ex in kata.exercises:
            status, cause = plan.get(ex.qualname, ["passed", None])
            points = ex.points if status == "passed" else 0
            message = (
                ""
                if status == "passed"
                else f"{ex.name} failed\nLikely cause: {cause}"
                if cause
                else "failed"
            )
            exercises.append(ExerciseScore(ex.qualname, points, ex.points, status, message, cause))
        katas.append(KataScore(kata.name, exercises, seconds=1.5))
    return Grade(katas)


@pytest.fixture
def graded(monkeypatch) -> list[str]:
    """Grade with fake_grade; the list holds every submission graded, by its first kata file's text."""
    calls = []

    def grade_one(session, path):
        calls.append(path)
        return fake_grade(session.manifest, path, session.limits)

    monkeypatch.setattr(classroom, "_grade_one", grade_one)
    return calls


def write_student(folder: Path, plan: dict, layout: str = "flat", tag: str = "") -> None:
    """A student's files: flat kata files, or a torch-katas project (katas/KATA/MODULE.py)."""
    for n, kata in enumerate(KATAS):
        path = kata.stub_path(folder / "katas") if layout == "project" else folder / f"{kata.module}.py"
        path.parent.mkdir(parents=True, exist_ok=True)
        text = f"# {tag or folder.name}\n" + (f"{PLAN}{json.dumps(plan)}\n" if n == 0 else "")
        path.write_text(text, encoding="utf-8")


def zip_student(archive: Path, plan: dict, wrapper: str = "") -> None:
    source = archive.parent / f".{archive.name}.src"
    write_student(source, plan, tag=archive.stem)
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zipped:
        for file in sorted(source.iterdir()):
            zipped.write(file, f"{wrapper}{file.name}")
        zipped.writestr(f"{wrapper}notes/README.txt", "not a kata file")
    shutil.rmtree(source)


def run_class(grader: Manifest, folder: Path, out: Path, *extra: str) -> int:
    return main(
        ["--root", str(grader.root), "grade", str(folder), "--out-dir", str(out), "--jobs", "2", *extra]
    )


FAILED = ["failed", None]
PLANS = {
    "ada": {},
    "bo": {FIRST.exercises[0].qualname: ["failed", "gradients doubled: forgot zero_grad()"]},
    "chen": {
        FIRST.exercises[0].qualname: ["failed", "gradients doubled: forgot zero_grad()"],
        FIRST.exercises[1].qualname: FAILED,
        SECOND.exercises[0].qualname: ["todo", None],
    },
    '=HYPERLINK("x")': {ex.qualname: ["todo", None] for ex in FIRST.exercises},
}


@pytest.fixture
def klass(tmp_path) -> Path:
    folder = tmp_path / "class"
    for student, plan in PLANS.items():
        write_student(folder / student, plan, layout="project" if student == "bo" else "flat")
    zip_student(
        folder / "dora.zip", {SECOND.exercises[1].qualname: ["failed", "a <b>bold</b> & wrong cause"]}
    )
    return folder


# -- parsing the outputs ------------------------------------------------------------------------------


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


class ReportParser(HTMLParser):
    """What the class report shows, by the data attributes it puts on its bars and rows."""

    def __init__(self):
        super().__init__()
        self.bins: dict[str, int] = {}
        self.exercises: dict[str, tuple[int, int]] = {}
        self.causes: dict[str, dict[str, int]] = {}
        self.unrecognised: dict[str, int] = {}
        self.students: list[str] = []
        self.tags: set[str] = set()
        self.links: list[str] = []
        self._exercise = None
        self._cause = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.tags.add(tag)
        self.links += [a[k] for k in ("src", "href") if k in a]
        if tag == "g" and "data-bin" in a:
            self.bins[a["data-bin"]] = int(a["data-count"])
        if tag == "tr" and "data-exercise" in a:
            self._exercise = a["data-exercise"]
            self.exercises[self._exercise] = (int(a["data-passed"]), int(a["data-graded"]))
        if tag == "tr" and "data-student" in a:
            self.students.append(a["data-student"])
        if tag == "li" and "data-count" in a:
            if "unrecognised" in a.get("class", ""):
                self.unrecognised[self._exercise] = int(a["data-count"])
            else:
                self._cause = [int(a["data-count"]), ""]

    def handle_data(self, data):
        if self._cause is not None:
            self._cause[1] += data

    def handle_endtag(self, tag):
        if tag == "li" and self._cause is not None:
            count, text = self._cause
            self.causes.setdefault(self._exercise, {})[text.split("×", 1)[1].strip()] = count
            self._cause = None


def parse_report(path: Path) -> ReportParser:
    parser = ReportParser()
    parser.feed(path.read_text(encoding="utf-8"))
    return parser


# -- a class folder or one submission ------------------------------------------------------------


def test_a_folder_with_katas_or_a_kata_file_is_one_submission_and_one_of_student_folders_is_a_class(
    tmp_path, grader
):
    project, flat, klass = tmp_path / "project", tmp_path / "flat", tmp_path / "class"
    write_student(project, {}, layout="project")
    (project / "notes.zip").write_bytes(b"a project may hold zips")
    write_student(flat, {})
    write_student(klass / "ada", {})
    assert classroom.classify(project, grader) == classroom.SINGLE
    assert classroom.classify(flat, grader) == classroom.SINGLE
    assert classroom.classify(klass, grader) == classroom.CLASS


@pytest.mark.parametrize("case", ["empty", "loose files beside students", "nothing like a submission"])
def test_an_empty_or_ambiguous_folder_is_one_error_line_naming_the_fix(tmp_path, grader, capsys, case):
    folder = tmp_path / "in"
    folder.mkdir()
    if case == "loose files beside students":
        write_student(folder, {})
        write_student(folder / "ada", {})
    elif case == "nothing like a submission":
        (folder / "photos").mkdir()
        (folder / "notes.txt").write_text("hello")
    assert run_class(grader, folder, tmp_path / "out") == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1
    fix = "sub-folder named by their student's id" if case.startswith("loose") else "one sub-folder or .zip"
    assert fix in err
    assert not (tmp_path / "out").exists()


def test_out_dir_with_one_submission_and_format_with_a_class_are_refused(tmp_path, grader, klass, capsys):
    write_student(tmp_path / "flat", {})
    assert run_class(grader, tmp_path / "flat", tmp_path / "out") == 2
    assert "--out-dir is for a class folder" in capsys.readouterr().err
    assert run_class(grader, klass, tmp_path / "out", "--format", "json") == 2
    assert "leave out --format" in capsys.readouterr().err


# -- the gradebook, the JSON and the report ------------------------------------------------------


def test_the_gradebook_has_a_row_per_student_and_a_column_per_kata_and_exercise(
    tmp_path, grader, klass, graded
):
    assert run_class(grader, klass, tmp_path / "out") == 0
    raw = (tmp_path / "out" / "gradebook.csv").read_bytes()
    assert not raw.startswith(b"\xef\xbb\xbf")  # plain UTF-8
    rows = read_csv(tmp_path / "out" / "gradebook.csv")
    with open(tmp_path / "out" / "gradebook.csv", encoding="utf-8", newline="") as handle:
        header = next(csv.reader(handle))
    kata_names = [k.name for k in KATAS]
    exercise_names = [ex.qualname for k in KATAS for ex in k.exercises]
    assert header == ["student", "total", "max", "percent", *kata_names, *exercise_names, "problem"]
    assert [r["student"] for r in rows] == ['\'=HYPERLINK("x")', "ada", "bo", "chen", "dora"]
    full = sum(ex.points for k in KATAS for ex in k.exercises)
    for r in rows:
        exercise_points = [int(r[name]) for name in exercise_names]
        assert int(r["total"]) == sum(exercise_points) == sum(int(r[k]) for k in kata_names)
        assert int(r["max"]) == full
        assert float(r["percent"]) == round(100 * int(r["total"]) / full, 1)
        assert r["problem"] == ""
    ada = next(r for r in rows if r["student"] == "ada")
    assert int(ada["total"]) == full
    chen = next(r for r in rows if r["student"] == "chen")
    lost = [FIRST.exercises[0], FIRST.exercises[1], SECOND.exercises[0]]
    assert int(chen["total"]) == full - sum(ex.points for ex in lost)
    assert all(chen[ex.qualname] == "0" for ex in lost)


@pytest.mark.parametrize("student", ["=1+1", "+1", "-1", "@SUM(A1)", "\tx"])
def test_an_id_that_a_spreadsheet_would_run_as_a_formula_is_written_as_text(student):
    assert gradebook.cell(student) == f"'{student}"
    assert gradebook.cell("ada-1") == "ada-1"


def test_each_student_json_is_what_grade_format_json_writes(tmp_path, grader, klass, graded):
    assert run_class(grader, klass, tmp_path / "out") == 0
    students = tmp_path / "out" / "students"
    chen = fake_grade(grader, klass / "chen", QUICK)
    assert (students / "chen.json").read_text(encoding="utf-8") == report.as_json(chen) + "\n"
    names = sorted(p.name for p in students.iterdir())
    assert len(names) == 5 and "ada.json" in names and "dora.json" in names
    odd = next(n for n in names if "HYPERLINK" in n)
    assert "/" not in odd and '"' not in odd and odd.endswith(".json")
    assert json.loads((students / odd).read_text(encoding="utf-8"))["score"] == chen.max_points - sum(
        ex.points for ex in FIRST.exercises
    )


def test_the_report_shows_the_numbers_of_the_gradebook(tmp_path, grader, klass, graded):
    assert run_class(grader, klass, tmp_path / "out") == 0
    rows = read_csv(tmp_path / "out" / "gradebook.csv")
    shown = parse_report(tmp_path / "out" / "class-report.html")
    expected_bins = {f"{n * 10}-{n * 10 + 10}": 0 for n in range(10)}
    for r in rows:
        n = min(int(float(r["percent"]) // 10), 9)
        expected_bins[f"{n * 10}-{n * 10 + 10}"] += 1
    assert shown.bins == expected_bins
    points = {ex.qualname: ex.points for k in KATAS for ex in k.exercises}
    rates = {}
    for name, full in points.items():
        passed = sum(int(r[name]) == full for r in rows)
        rates[name] = (passed, len(rows))
    assert shown.exercises == rates
    order = list(shown.exercises)
    assert [passed for passed, _ in shown.exercises.values()] == sorted(p for p, _ in rates.values())
    assert order[0] in (FIRST.exercises[0].qualname, FIRST.exercises[1].qualname)
    assert shown.causes[FIRST.exercises[0].qualname] == {"gradients doubled: forgot zero_grad()": 2}
    assert shown.causes[SECOND.exercises[1].qualname] == {"a <b>bold</b> & wrong cause": 1}
    assert shown.unrecognised == {FIRST.exercises[1].qualname: 1}
    assert shown.students == ['=HYPERLINK("x")', "ada", "bo", "chen", "dora"]


def test_the_report_is_self_contained_and_escapes_what_students_control(tmp_path, grader, graded):
    folder = tmp_path / "class"
    evil = "<script>alert(1)</script>"
    write_student(
        folder / evil.replace("/", "_"), {FIRST.exercises[0].qualname: ["failed", '<img src=x onerror="1">']}
    )
    write_student(folder / "ada", {})
    assert run_class(grader, folder, tmp_path / "out") == 0
    text = (tmp_path / "out" / "class-report.html").read_text(encoding="utf-8")
    shown = parse_report(tmp_path / "out" / "class-report.html")
    assert "<script" not in text and "<img" not in text
    assert shown.tags.isdisjoint({"script", "link", "img", "iframe", "object"})
    assert shown.links == []
    assert "http://" not in text and "https://" not in text and "@import" not in text
    assert "<svg" in text and "<style>" in text
    assert evil.replace("/", "_") in shown.students
    assert shown.causes[FIRST.exercises[0].qualname] == {'<img src=x onerror="1">': 1}


def test_a_class_report_of_no_gradable_student_is_still_written(tmp_path, grader):
    result = classroom.Result("ada", classroom.zero_grade(grader, "bad zip"), "bad zip")
    path = class_report.write(grader, [result], tmp_path / "r.html")
    shown = parse_report(path)
    assert sum(shown.bins.values()) == 0 and shown.students == ["ada"]
    assert all(graded == 0 for _, graded in shown.exercises.values())


# -- untrusted zips and folders --------------------------------------------------------------------


def test_a_zip_is_unpacked_through_its_wrapping_folder_and_only_its_kata_files(tmp_path, grader):
    archive = tmp_path / "ada.zip"
    zip_student(archive, {}, wrapper="ada-project/")
    dest = tmp_path / "unpacked"
    dest.mkdir()
    root = classroom.unpack(archive, dest, grader)
    assert root == dest / "ada-project"
    assert sorted(p.name for p in root.iterdir()) == sorted(f"{k.module}.py" for k in KATAS)


def _zip_with(archive: Path, name: str, data: bytes = b"x = 1\n", mode: int | None = None) -> None:
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zipped, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a duplicate name, on purpose
        zipped.writestr(f"{FIRST.module}.py", "# fine\n")
        info = zipfile.ZipInfo(name)
        if mode is not None:
            info.create_system = 3
            info.external_attr = mode << 16
        info.compress_type = zipfile.ZIP_DEFLATED
        zipped.writestr(info, data)


BAD_ZIPS = {
    "a symbolic link": (f"{SECOND.module}.py", b"/etc/passwd", stat.S_IFLNK | 0o777, "symbolic link"),
    "a fifo": ("pipe", b"", stat.S_IFIFO | 0o644, "special file"),
    "a path out of the folder": (f"../{SECOND.module}.py", b"x", None, "leaves its folder"),
    "an absolute path": (f"/tmp/{SECOND.module}.py", b"x", None, "leaves its folder"),
    "a backslash path": (f"..\\{SECOND.module}.py", b"x", None, "leaves its folder"),
    "a zip bomb": (f"{SECOND.module}.py", b"0" * 3_000_000, None, "larger than 1000 kB"),
    "a duplicate entry": (f"{FIRST.module}.py", b"x", None, "twice"),
}


@pytest.mark.parametrize("case", list(BAD_ZIPS))
def test_an_unsafe_zip_is_refused_with_a_reason_and_writes_nothing_outside(tmp_path, grader, case):
    name, data, mode, reason = BAD_ZIPS[case]
    archive = tmp_path / "eve.zip"
    _zip_with(archive, name, data, mode)
    dest = tmp_path / "scratch" / "eve"
    dest.mkdir(parents=True)
    with pytest.raises(classroom.UnsafeZip, match=reason):
        classroom.unpack(archive, dest, grader)
    assert not (tmp_path / "scratch" / f"{SECOND.module}.py").exists()
    assert not Path(f"/tmp/{SECOND.module}.py").exists()


def test_too_many_entries_an_encrypted_entry_and_a_broken_zip_are_refused(tmp_path, grader, monkeypatch):
    dest = tmp_path / "dest"
    dest.mkdir()
    archive = tmp_path / "many.zip"
    with zipfile.ZipFile(archive, "w") as zipped:
        for n in range(5):
            zipped.writestr(f"f{n}.txt", "")
    monkeypatch.setattr(classroom, "MAX_ZIP_ENTRIES", 4)
    with pytest.raises(classroom.UnsafeZip, match="more than 4 entries"):
        classroom.unpack(archive, dest, grader)
    locked = tmp_path / "locked.zip"
    with zipfile.ZipFile(locked, "w") as zipped:
        zipped.writestr(f"{FIRST.module}.py", b"not really encrypted")
    data = bytearray(locked.read_bytes())
    central = data.index(b"PK\x01\x02")
    data[central + 8] |= 0x1  # the entry's "encrypted" flag in the central directory
    locked.write_bytes(bytes(data))
    with pytest.raises(classroom.UnsafeZip, match="encrypted"):
        classroom.unpack(locked, dest, grader)
    broken = tmp_path / "broken.zip"
    broken.write_bytes(b"PK\x03\x04 this is not a zip")
    with pytest.raises(classroom.UnsafeZip, match="not a readable zip"):
        classroom.unpack(broken, dest, grader)


def test_a_bad_zip_is_one_students_problem_and_the_class_is_still_graded(tmp_path, grader, klass, graded):
    _zip_with(klass / "eve.zip", f"{SECOND.module}.py", b"/etc/passwd", stat.S_IFLNK | 0o777)
    os.symlink(klass / "ada", klass / "fay")
    (klass / "gus").mkdir()
    write_student(klass / "dora", {})  # beside dora.zip
    assert run_class(grader, klass, tmp_path / "out") == 0
    rows = {r["student"]: r for r in read_csv(tmp_path / "out" / "gradebook.csv")}
    assert "symbolic link or special file" in rows["eve"]["problem"]
    assert "fay is a symbolic link" in rows["fay"]["problem"]
    assert "no kata file found" in rows["gus"]["problem"]
    assert "both dora and dora.zip" in rows["dora"]["problem"]
    for student in ("eve", "fay", "gus", "dora"):
        assert rows[student]["total"] == "0" and rows[student]["percent"] == "0.0"
    assert rows["ada"]["problem"] == "" and int(rows["ada"]["total"]) > 0
    shown = parse_report(tmp_path / "out" / "class-report.html")
    assert sum(shown.bins.values()) == 4  # the graded students only
    eve = json.loads((tmp_path / "out" / "students" / "eve.json").read_text(encoding="utf-8"))
    assert eve["score"] == 0 and "symbolic link" in eve["katas"][0]["problem"]


def test_a_linked_kata_file_in_a_student_folder_is_not_read_and_never_cached(tmp_path, grader, graded):
    folder = tmp_path / "class"
    write_student(folder / "ada", {})
    secret = tmp_path / "secret.py"
    secret.write_text("the grader's secret\n")
    write_student(folder / "eve", {})
    (folder / "eve" / f"{SECOND.module}.py").unlink()
    os.symlink(secret, folder / "eve" / f"{SECOND.module}.py")
    write_student(folder / "fay", {})
    (folder / "fay" / f"{FIRST.module}.py").unlink()
    os.mkfifo(folder / "fay" / f"{FIRST.module}.py")  # reading it would wait for ever
    assert classroom.submission_key(grader, folder / "eve", "v", QUICK) is None
    assert classroom.submission_key(grader, folder / "fay", "v", QUICK) is None
    assert classroom.submission_key(grader, folder / "ada", "v", QUICK) is not None
    assert run_class(grader, folder, tmp_path / "out") == 0
    assert run_class(grader, folder, tmp_path / "out") == 0
    assert sorted(p.name for p in graded) == ["ada", "eve", "eve", "fay", "fay"]


# -- the cache -------------------------------------------------------------------------------------


def test_a_rerun_grades_only_new_or_changed_submissions(tmp_path, grader, klass, graded, capsys):
    out = tmp_path / "out"
    assert run_class(grader, klass, out) == 0
    assert len(graded) == 5
    first = (out / "gradebook.csv").read_text(encoding="utf-8")
    assert run_class(grader, klass, out) == 0
    assert len(graded) == 5
    assert (out / "gradebook.csv").read_text(encoding="utf-8") == first
    assert "(0 graded, 5 from the cache" in capsys.readouterr().out
    write_student(klass / "late", {FIRST.exercises[0].qualname: FAILED})
    write_student(klass / "bo", {}, layout="project", tag="bo, second try")
    assert run_class(grader, klass, out) == 0
    assert sorted(p.name for p in graded[5:]) == ["bo", "late"]
    rows = {r["student"]: r for r in read_csv(out / "gradebook.csv")}
    assert len(rows) == 6 and int(rows["bo"]["total"]) == int(rows["ada"]["total"])


def test_a_changed_grader_or_no_cache_grades_everyone_again(tmp_path, grader, klass, graded):
    out = tmp_path / "out"
    assert run_class(grader, klass, out) == 0
    test_file = grader.root / "katas" / FIRST.name / f"test_{FIRST.module}.py"
    test_file.write_text("def test_it(): assert True\n")
    assert run_class(grader, klass, out) == 0
    assert len(graded) == 10
    assert run_class(grader, klass, out, "--no-cache") == 0
    assert len(graded) == 15
    FIRST.stub_path(grader.root / "katas").write_text("# the instructor's own attempt\n")
    assert run_class(grader, klass, out) == 0
    assert len(graded) == 15  # the grader's stubs are not used by a grade


def test_a_cached_grade_from_another_grader_version_or_unreadable_is_not_trusted(tmp_path, grader):
    result = fake_grade(grader, Path("nowhere"), QUICK)
    cache = classroom.Cache(tmp_path / ".cache", "v1")
    cache.put("k", result)
    assert cache.get("k") == result
    assert classroom.Cache(tmp_path / ".cache", "v2").get("k") is None
    stored = json.loads((tmp_path / ".cache" / "k.json").read_text())
    stored["grade"]["katas"][0]["exercises"][0]["bonus"] = 1
    (tmp_path / ".cache" / "k.json").write_text(json.dumps(stored))
    assert cache.get("k") is None
    (tmp_path / ".cache" / "k.json").write_text("{not json")
    assert cache.get("k") is None


def test_a_grade_survives_the_round_trip_through_json(grader):
    result = fake_grade(grader, Path("nowhere"), QUICK)
    result.katas[0].problem = "stopped after 300 s"
    again = classroom.grade_from_dict(json.loads(json.dumps(classroom.grade_to_dict(result))))
    assert again == result and report.as_json(again) == report.as_json(result)


def test_identical_submissions_are_graded_once(tmp_path, grader, graded):
    folder = tmp_path / "class"
    for student in ("ada", "bo"):
        write_student(folder / student, {}, tag="the same files")
    assert run_class(grader, folder, tmp_path / "out") == 0
    assert len(graded) == 1
    full = str(sum(ex.points for k in KATAS for ex in k.exercises))
    assert [(r["student"], r["total"]) for r in read_csv(tmp_path / "out" / "gradebook.csv")] == [
        ("ada", full),
        ("bo", full),
    ]


def test_without_a_terminal_each_finished_student_is_one_line(tmp_path, grader, klass, graded, capsys):
    assert run_class(grader, klass, tmp_path / "out") == 0
    lines = capsys.readouterr().out.splitlines()
    progress = [line for line in lines if line.startswith("[")]
    assert len(progress) == 5 and progress[-1].startswith("[5/5] ")
    assert any(line.startswith("torch-katas: 5 students (5 graded") for line in lines)


def test_on_a_terminal_a_progress_bar_shows_an_eta(grader):
    class Terminal(io.StringIO):
        def isatty(self):
            return True

    stream = Terminal()
    result = classroom.Result("ada", fake_grade(grader, Path("nowhere"), QUICK))
    with classroom.Progress(2, stream) as progress:
        progress.start([], 2)
        progress.finished(result)
    assert "ETA" in stream.getvalue() and "1/2" in stream.getvalue()


# -- real grades -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def two_katas(tmp_path_factory):
    """A real grader that knows only the first two katas (as in test_grade.py)."""
    copy = make_copy(tmp_path_factory.mktemp("grader") / "project")
    text = (copy / "katas" / "manifest.toml").read_text(encoding="utf-8")
    keep = parse(text, copy)
    (copy / "katas" / "manifest.toml").write_text(
        "[[kata]]".join(text.split("[[kata]]")[:3]), encoding="utf-8"
    )
    for kata in keep.katas[2:]:
        shutil.rmtree(copy / "katas" / kata.name)
        shutil.rmtree(copy / "solutions" / kata.name)
    pristine.write(read(copy))
    load.cache_clear()
    return read(copy)


def test_a_real_class_is_graded_and_a_rerun_comes_from_the_cache(tmp_path, two_katas, capsys):
    first, second = two_katas.katas
    folder = tmp_path / "class"
    (folder / "ada" / "katas").mkdir(parents=True)
    shutil.copytree(two_katas.root / "katas", folder / "ada" / "katas", dirs_exist_ok=True)
    shutil.copy2(first.stub_path(two_katas.root / "solutions"), first.stub_path(folder / "ada" / "katas"))
    with zipfile.ZipFile(folder / "=bo.zip", "w") as zipped:
        zipped.write(second.stub_path(two_katas.root / "solutions"), f"bo/{second.module}.py")
        zipped.write(first.stub_path(two_katas.root / "katas"), f"bo/{first.module}.py")
    _zip_with(folder / "eve.zip", f"{second.module}.py", b"/etc/passwd", stat.S_IFLNK | 0o777)
    out = tmp_path / "out"
    args = ["--root", str(two_katas.root), "grade", str(folder), "--out-dir", str(out)]
    limits = ["--kata-timeout", "120", "--memory-mb", "3072"]
    assert main([*args, *limits, "--jobs", "2"]) == 0
    rows = {r["student"]: r for r in read_csv(out / "gradebook.csv")}
    first_points = sum(ex.points for ex in first.exercises)
    second_points = sum(ex.points for ex in second.exercises)
    assert (rows["ada"]["total"], rows["ada"][first.name], rows["ada"][second.name]) == (
        str(first_points),
        str(first_points),
        "0",
    )
    assert rows["'=bo"]["total"] == str(second_points) and rows["'=bo"]["problem"] == ""
    assert "symbolic link" in rows["eve"]["problem"]
    assert [line[:5] for line in capsys.readouterr().out.splitlines() if line.startswith("[")] == [
        "[2/3]",
        "[3/3]",
    ]
    assert main([*args, *limits]) == 0
    assert "(0 graded, 2 from the cache, 1 not gradable)" in capsys.readouterr().out
