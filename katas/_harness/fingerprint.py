"""Identity fingerprints of trusted functions: the object, and what a call of it runs.

`f is g` misses a function changed in place: `f.__code__ = other.__code__`, new
`__defaults__` or `__kwdefaults__`, or a closure cell pointed elsewhere. A fingerprint
records the ids of all of these (for a class, those of each function in its namespace;
for a bound method, of its function and its object), so `changed(before, obj)` sees
any of them swapped. Built-ins are just their id: nothing of theirs can be swapped.

Every object whose id a fingerprint records is kept alive here, so that no other object
can take its id later: a swap is never hidden by a freed id handed out again.
"""

from __future__ import annotations

import types
from typing import Any

_MAX_DEPTH = 3  # functools.wraps chains and methods of classes: deep enough, and no cycles
_PINNED: dict[int, object] = {}  # id -> the object: alive, so the id stays its own


def _pin(obj: object) -> int:
    key = id(obj)
    _PINNED.setdefault(key, obj)
    return key


def fingerprint(obj: Any, _depth: int = 0) -> tuple:
    """A tuple of ids that changes when `obj`, or what calling it runs, is swapped."""
    if isinstance(obj, types.FunctionType):
        return ("function", _pin(obj), *_function_parts(obj, _depth))
    if isinstance(obj, types.MethodType):
        return ("method", _pin(obj.__self__), fingerprint(obj.__func__, _depth + 1))
    if isinstance(obj, (staticmethod, classmethod)):
        return (type(obj).__name__, _pin(obj), fingerprint(obj.__func__, _depth + 1))
    if isinstance(obj, property):
        parts = (obj.fget, obj.fset, obj.fdel)
        return ("property", _pin(obj), *(fingerprint(p, _depth + 1) for p in parts))
    if isinstance(obj, type) and _depth < _MAX_DEPTH:
        members = sorted(
            (name, fingerprint(value, _depth + 1))
            for name, value in vars(obj).items()
            if isinstance(value, (types.FunctionType, staticmethod, classmethod, property))
        )
        return ("class", _pin(obj), tuple(members))
    wrapped = getattr(obj, "__wrapped__", None) if _depth < _MAX_DEPTH else None
    if wrapped is not None and not isinstance(obj, type):  # functools.lru_cache and such
        return ("wrapper", _pin(obj), fingerprint(wrapped, _depth + 1))
    return ("object", _pin(obj))


def changed(before: tuple, obj: Any) -> bool:
    """Whether `obj` no longer matches the fingerprint `before` taken of the trusted original."""
    return fingerprint(obj) != before


def _function_parts(function: types.FunctionType, depth: int) -> tuple:
    cells = ()
    if function.__closure__:
        cells = tuple(_cell_id(cell) for cell in function.__closure__)
    wrapped = ()
    inner = function.__dict__.get("__wrapped__")
    if inner is not None and depth < _MAX_DEPTH:
        wrapped = (fingerprint(inner, depth + 1),)
    return (
        _pin(function.__code__),
        _pin(function.__defaults__),
        _pin(function.__kwdefaults__),
        cells,
        *wrapped,
    )


def _cell_id(cell: types.CellType) -> int | None:
    try:
        return _pin(cell.cell_contents)
    except ValueError:  # an empty cell
        return None
