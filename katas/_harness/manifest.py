"""The manifest (katas/manifest.toml): kata order, exercises, points and hints."""

from __future__ import annotations

import difflib
import sys
from dataclasses import dataclass
from functools import cache
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

PROJECT_ROOT = Path(__file__).resolve().parents[2]
MANIFEST_NAME = "manifest.toml"


class ManifestError(Exception):
    """The manifest is missing or malformed; the message says how to fix it."""


class UnknownExercise(LookupError):
    """A name that matches no exercise; `suggestions` holds the close matches."""

    def __init__(self, name: str, suggestions: list[str]):
        self.name = name
        self.suggestions = suggestions
        super().__init__(name)


@dataclass(frozen=True)
class Exercise:
    kata: str
    name: str
    points: int
    hints: tuple[str, ...]
    hints_zh: tuple[str, ...] = ()  # the same hints in Chinese, in the same order

    @property
    def qualname(self) -> str:
        return f"{self.kata}/{self.name}"


@dataclass(frozen=True)
class Kata:
    name: str
    title: str
    module: str
    exercises: tuple[Exercise, ...]

    def stub_path(self, source_root: Path) -> Path:
        return source_root / self.name / f"{self.module}.py"


@dataclass(frozen=True)
class Manifest:
    root: Path
    katas: tuple[Kata, ...]

    def kata(self, name: str) -> Kata:
        for kata in self.katas:
            if kata.name == name:
                return kata
        raise UnknownExercise(name, difflib.get_close_matches(name, [k.name for k in self.katas]))

    @property
    def exercises(self) -> list[Exercise]:
        return [ex for kata in self.katas for ex in kata.exercises]

    def target(self, name: str) -> tuple[Kata, Exercise | None]:
        """What a command's KATA_OR_EXERCISE names: a kata (`01_autograd`, its folder or its
        stub file `katas/01_autograd/autograd_basics.py`) or one exercise."""
        cleaned = name.strip().replace("\\", "/").removeprefix("./").removeprefix("katas/").rstrip("/")
        if cleaned.endswith(".py"):
            cleaned = cleaned.rsplit("/", 1)[0]  # a kata's file means the kata
        for kata in self.katas:
            if kata.name == cleaned:
                return kata, None
        try:
            exercise = self.exercise(cleaned)
        except UnknownExercise as err:
            close = difflib.get_close_matches(cleaned, [k.name for k in self.katas], n=3)
            raise UnknownExercise(name, close or err.suggestions) from None
        return self.kata(exercise.kata), exercise

    def exercise(self, name: str) -> Exercise:
        """Find `KATA/FUNCTION`, or a bare `FUNCTION` where it is unique."""
        everything = self.exercises
        matches = [ex for ex in everything if name in (ex.qualname, ex.name)]
        if len(matches) == 1:
            return matches[0]
        if matches:
            raise UnknownExercise(name, [ex.qualname for ex in matches])
        by_name = {ex.qualname: ex.qualname for ex in everything}
        by_name.update({ex.name: ex.qualname for ex in everything})
        close = difflib.get_close_matches(name, list(by_name), n=5, cutoff=0.5)
        raise UnknownExercise(name, sorted({by_name[c] for c in close}))


def _require(table: dict, key: str, kind: type, where: str):
    if key not in table:
        raise ManifestError(f"{where}: missing '{key}'; add it to {MANIFEST_NAME}")
    value = table[key]
    if not isinstance(value, kind):
        raise ManifestError(f"{where}: '{key}' must be a {kind.__name__}, got {value!r}")
    return value


def _parse_exercise(kata: str, table: dict, index: int) -> Exercise:
    where = f"kata {kata}, exercise #{index + 1}"
    name = _require(table, "name", str, where)
    where = f"{kata}/{name}"
    points = _require(table, "points", int, where)
    hints = _require(table, "hints", list, where)
    if points <= 0:
        raise ManifestError(f"{where}: points must be positive, got {points}")
    if not hints or not all(isinstance(h, str) and h.strip() for h in hints):
        raise ManifestError(f"{where}: give at least one non-empty hint, mildest first")
    hints_zh = table.get("hints_zh", [])
    if not isinstance(hints_zh, list) or not all(isinstance(h, str) and h.strip() for h in hints_zh):
        raise ManifestError(f"{where}: 'hints_zh' must be a list of non-empty strings")
    if hints_zh and len(hints_zh) != len(hints):
        raise ManifestError(
            f"{where}: 'hints_zh' has {len(hints_zh)} hints, 'hints' has {len(hints)}; translate each one"
        )
    return Exercise(kata=kata, name=name, points=points, hints=tuple(hints), hints_zh=tuple(hints_zh))


def parse(text: str, root: Path) -> Manifest:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise ManifestError(f"{MANIFEST_NAME} is not valid TOML: {err}") from None
    katas = []
    for index, table in enumerate(data.get("kata", [])):
        name = _require(table, "name", str, f"kata #{index + 1}")
        module = _require(table, "module", str, f"kata {name}")
        title = _require(table, "title", str, f"kata {name}")
        raw = _require(table, "exercise", list, f"kata {name}")
        exercises = tuple(_parse_exercise(name, ex, i) for i, ex in enumerate(raw))
        katas.append(Kata(name=name, title=title, module=module, exercises=exercises))
    if not katas:
        raise ManifestError(f"{MANIFEST_NAME} lists no kata; add a [[kata]] table")
    _check_unique([k.name for k in katas], "kata name")
    _check_unique([k.module for k in katas], "module name (two katas would import each other's code)")
    for kata in katas:
        _check_unique([ex.name for ex in kata.exercises], f"exercise name in {kata.name}")
    return Manifest(root=root, katas=tuple(katas))


def _check_unique(names: list[str], what: str) -> None:
    seen = set()
    for name in names:
        if name in seen:
            raise ManifestError(f"duplicate {what}: '{name}'; rename one of them in {MANIFEST_NAME}")
        seen.add(name)


def is_tree(root: Path) -> bool:
    """A torch-katas checkout or handout: the manifest beside the kata folders.

    An installed (non-editable) torch-katas has the manifest in site-packages but no kata folder.
    """
    return (root / "katas" / MANIFEST_NAME).is_file() and any(root.glob("katas/*/test_*.py"))


def find_tree(cwd: Path) -> Path | None:
    """The tree the commands work on: the harness's own, else the one at or above `cwd`."""
    if is_tree(PROJECT_ROOT):
        return PROJECT_ROOT
    return next((folder for folder in (cwd, *cwd.parents) if is_tree(folder)), None)


def read(root: Path = PROJECT_ROOT) -> Manifest:
    path = root / "katas" / MANIFEST_NAME
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ManifestError(
            f"no manifest at {path}; run from a torch-katas checkout or pass --katas-root"
        ) from None
    return parse(text, root)


load = cache(read)
