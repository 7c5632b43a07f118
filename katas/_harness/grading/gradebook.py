"""A class's gradebook: one CSV row per student for a spreadsheet or an LMS, one JSON per student."""

from __future__ import annotations

import csv
import hashlib
import re
from pathlib import Path

from ..manifest import Manifest
from .classroom import Result
from .report import as_json

FILE_NAME = "gradebook.csv"
STUDENTS_FOLDER = "students"
FIXED_COLUMNS = ("student", "total", "max", "percent")
PROBLEM_COLUMN = "problem"  # why a submission was not graded; empty for a graded one
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")  # a spreadsheet would run such a cell as a formula
SAFE_NAME = re.compile(r"[\w@+-][\w.@+-]*")  # \w: letters of any script, digits, underscore


def columns(manifest: Manifest) -> list[str]:
    """The header, in the manifest's order: totals, then one column per kata, then per exercise."""
    return [
        *FIXED_COLUMNS,
        *(kata.name for kata in manifest.katas),
        *(ex.qualname for ex in manifest.exercises),
        PROBLEM_COLUMN,
    ]


def percent(points: int, max_points: int) -> float:
    return round(100 * points / max_points, 1) if max_points else 0.0


def row(manifest: Manifest, result: Result) -> list[str | int | float]:
    katas = {k.kata: k for k in result.grade.katas}
    exercises = {e.qualname: e for k in result.grade.katas for e in k.exercises}
    grade = result.grade
    return [
        cell(result.student),
        grade.points,
        grade.max_points,
        percent(grade.points, grade.max_points),
        *(katas[k.name].points if k.name in katas else "" for k in manifest.katas),
        *(exercises[e.qualname].points if e.qualname in exercises else "" for e in manifest.exercises),
        cell(result.problem or ""),
    ]


def cell(text: str) -> str:
    """A text cell that a spreadsheet shows as text, never runs as a formula."""
    return f"'{text}" if text.startswith(FORMULA_STARTS) else text


def write_csv(manifest: Manifest, results: list[Result], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(columns(manifest))
        for result in results:
            writer.writerow(row(manifest, result))
    return path


def student_file(student: str) -> str:
    """A file name for a student's id: the id itself where it is a safe name, else a safe form of it
    with a short hash, so that two ids never share a file."""
    if SAFE_NAME.fullmatch(student) and len(student) <= 100:
        return f"{student}.json"
    safe = re.sub(r"[^\w@+-]", "_", student)[:80]
    return f"{safe}-{hashlib.sha256(student.encode('utf-8', 'surrogateescape')).hexdigest()[:8]}.json"


def write_students(results: list[Result], folder: Path) -> Path:
    """students/<id>.json for each student: what `grade --format json` writes for that submission."""
    folder.mkdir(parents=True, exist_ok=True)
    keep = set()
    for result in results:
        name = student_file(result.student)
        keep.add(name)
        (folder / name).write_text(as_json(result.grade) + "\n", encoding="utf-8")
    for stale in folder.glob("*.json"):  # a student no longer in the class folder
        if stale.name not in keep:
            stale.unlink()
    return folder


def write(manifest: Manifest, results: list[Result], out_dir: Path) -> list[Path]:
    return [
        write_csv(manifest, results, out_dir / FILE_NAME),
        write_students(results, out_dir / STUDENTS_FOLDER),
    ]
