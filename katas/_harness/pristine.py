"""The untouched stubs, kept apart from the learner's copies so `reset` can restore them.

katas/_harness/pristine_stubs.json maps each stub's path to its text. Maintainers
refresh it with `python -m katas snapshot` after changing a stub; the project's
tests fail while it is stale.
"""

from __future__ import annotations

import ast
import json
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from types import MappingProxyType

from .manifest import Kata, Manifest

SNAPSHOT = Path("katas") / "_harness" / "pristine_stubs.json"  # relative to the project root


def relative_path(kata: Kata) -> str:
    return f"katas/{kata.name}/{kata.module}.py"


def read(root: Path) -> dict[str, str]:
    try:
        data = json.loads((root / SNAPSHOT).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return {k: v for k, v in data.items() if isinstance(k, str) and isinstance(v, str)}


def write(manifest: Manifest) -> list[str]:
    """Snapshot every kata's current stub file; returns the paths written."""
    stubs = {
        relative_path(k): k.stub_path(manifest.root / "katas").read_text(encoding="utf-8")
        for k in manifest.katas
    }
    (manifest.root / SNAPSHOT).write_text(
        json.dumps(stubs, indent=1, ensure_ascii=False) + "\n", encoding="utf-8"
    )
    return list(stubs)


def stale(manifest: Manifest) -> list[str]:
    """Stub files whose text differs from the snapshot (or that it lacks)."""
    stubs = read(manifest.root)
    return [
        relative_path(k)
        for k in manifest.katas
        if stubs.get(relative_path(k)) != _text(k.stub_path(manifest.root / "katas"))
    ]


def _text(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except OSError:
        return None


@lru_cache(maxsize=64)  # `list` asks once per exercise, of the same few files
def definitions(source: str) -> Mapping[str, tuple[int, int]]:
    """Top-level functions and classes of `source`: name -> (first line, last line), 1-based.

    The first line includes decorators. Raises SyntaxError for a file that does not parse.
    """
    spans = {}
    for node in ast.parse(source).body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
            spans[node.name] = (first, node.end_lineno or node.lineno)
    return MappingProxyType(spans)


def segment(source: str, name: str) -> str | None:
    span = definitions(source).get(name)
    if span is None:
        return None
    lines = source.splitlines(keepends=True)
    return "".join(lines[span[0] - 1 : span[1]])


def untouched(current: str, pristine: str, name: str) -> bool:
    """True when the definition `name` reads exactly as in the pristine stub."""
    try:
        mine = segment(current, name)
    except SyntaxError:
        return False
    return mine is not None and mine == segment(pristine, name)
