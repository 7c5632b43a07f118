"""Values coming back from learner code, checked for exact types before any comparison.

A float whose `__eq__` always says True, or a tensor subclass whose `__torch_function__`
fakes `torch.isclose`, would pass any test that compares. So a returned value that is a
float, int, str, bytes, list, tuple, dict, set or tensor must be exactly that type (or
one the library returns: numpy scalars, torch.Size, torch.return_types, namedtuples,
OrderedDict); containers are checked item by item; and an object of a class from
learner code must not override a comparison or conversion. Honest code never notices.

`guard(module, names)` wraps a kata module's exercises so that what they return (and
what a returned generator yields) goes through `check_returned`.
"""

from __future__ import annotations

import collections
import functools
import os
import sys
import types
from collections.abc import Iterable
from typing import Any

import torch

from . import messages as msg
from .testing import fail as _fail

try:
    import numpy as _np
except ImportError:  # pragma: no cover - numpy comes with the project's dependencies
    _np = None

# Types whose instances hold nothing to look into.
_ATOMS = {type(None), bool, int, float, complex, str, bytes, torch.Tensor, torch.nn.Parameter}
if _np is not None:
    _ATOMS |= {_np.float64, _np.complex128, _np.str_, _np.bytes_}  # NumPy's honest subclasses
_ATOMS = frozenset(_ATOMS)
_SEQUENCES = frozenset({list, tuple, set, frozenset, torch.Size})
_MAPPINGS = frozenset({dict, collections.OrderedDict, collections.defaultdict, collections.Counter})
# The types a subclass of which must not come back: the tests compare these.
_PRIMITIVES = (float, int, complex, str, bytes, list, tuple, dict, set, frozenset, torch.Tensor)
_STRUCTSEQS = frozenset(
    t for t in vars(torch.return_types).values() if isinstance(t, type) and issubclass(t, tuple)
)
# What collections.namedtuple and typing.NamedTuple put in a class; anything else is a change.
_NAMEDTUPLE_NAMES = frozenset(
    {
        "__new__", "__repr__", "__getnewargs__", "__match_args__", "__slots__", "__doc__",
        "__module__", "__qualname__", "__orig_bases__", "__annotations__", "__annotate__",
        "__firstlineno__", "__static_attributes__", "__classcell__",
        "__replace__",  # Python 3.13: copy.replace() support
    }
)  # fmt: skip
# Overriding one of these lets a value pass comparisons it should fail.
LYING_DUNDERS = frozenset(
    {
        "__eq__", "__ne__", "__lt__", "__le__", "__gt__", "__ge__", "__bool__", "__float__",
        "__int__", "__index__", "__complex__", "__torch_function__", "__torch_dispatch__",
        "__array__", "__array_ufunc__", "__array_function__", "__array_interface__",
        "__instancecheck__", "__subclasscheck__", "__class__", "__getattribute__",
    }
)  # fmt: skip
# Packages whose classes are trusted to compare honestly: the standard library but its test tools
# (unittest.mock.ANY equals anything, as pytest.approx(x, abs=1e9) would), torch and numpy.
_TEST_TOOLS = {"unittest", "doctest", "test"}
_TRUSTED_PACKAGES = (frozenset(sys.stdlib_module_names) - _TEST_TOOLS) | {"torch", "numpy"}
_SHOWN_BASES = {torch.Tensor: "torch.Tensor"}
_HEAP_TYPE = 1 << 9  # Py_TPFLAGS_HEAPTYPE: set on every class made by a class statement or type()
MAX_DEPTH = 100
MAX_ITEMS = 1_000_000


def check_returned(value: Any, *, call: str) -> None:
    """Fail the test, naming the type, unless `value` is made of honest, exactly typed values."""
    if type(value) in _ATOMS:
        return
    problem = _Checker().problem(value)
    if problem is not None:
        _fail(msg.VALUE_CALLED.format(call=call) + "\n" + problem)


def guard(module: types.ModuleType, names: Iterable[str]) -> None:
    """Wrap each named exercise of `module` (a function, or a class's methods) with the check."""
    for name in names:
        target = vars(module).get(name)
        if isinstance(target, type):
            _guard_class(target)
        elif isinstance(target, types.FunctionType):
            setattr(module, name, checked(target, name, module.__name__))


_CLASS_DUNDERS = ("__call__", "__getitem__", "__iter__", "__next__")


def _guard_class(cls: type) -> None:
    module = cls.__module__
    for attribute, value in list(vars(cls).items()):
        if attribute.startswith("_") and attribute not in _CLASS_DUNDERS:
            continue
        qualname = f"{cls.__qualname__}.{attribute}"
        if isinstance(value, staticmethod):
            setattr(cls, attribute, staticmethod(checked(value.__func__, qualname, module)))
        elif isinstance(value, classmethod):
            setattr(cls, attribute, classmethod(checked(value.__func__, qualname, module)))
        elif isinstance(value, types.FunctionType):
            setattr(cls, attribute, checked(value, qualname, module))


def checked(function: types.FunctionType, qualname: str, module: str) -> types.FunctionType:
    """`function`, checking what it returns; it keeps the name, signature and docstring.

    The wrapper claims the place it is stored at (`module`.`qualname`), so that pickle,
    which stores a function by that name, finds the wrapper itself there.
    """
    if getattr(function, "_katas_checked", False):
        return function
    shown = qualname.rpartition(".")[2] if "." in qualname else qualname

    @functools.wraps(function)
    def checked_call(*args, **kwargs):
        __tracebackhide__ = True
        result = function(*args, **kwargs)
        if type(result) in _ATOMS:
            return result
        if type(result) is types.GeneratorType:
            return _checked_items(result, f"{shown}(...)")
        check_returned(result, call=f"{shown}(...)")
        return result

    checked_call.__module__ = module
    checked_call.__qualname__ = qualname
    checked_call._katas_checked = True
    return checked_call


def _checked_items(generator: types.GeneratorType, call: str):
    """Forward everything to `generator` (send, throw, close, its return value), checking each item."""
    __tracebackhide__ = True
    index = 0
    try:
        item = next(generator)
        while True:
            check_returned(item, call=msg.VALUE_YIELDED.format(call=call, index=index))
            index += 1
            try:
                sent = yield item
            except GeneratorExit:
                generator.close()
                raise
            except BaseException as err:  # noqa: B036 - thrown in by the caller: pass it on
                item = generator.throw(err)
            else:
                item = generator.send(sent)
    except StopIteration as stop:
        return stop.value


class _Checker:
    def __init__(self):
        self.seen: set[int] = set()
        self.items = 0

    def problem(self, value: Any, path: str = "", depth: int = 0) -> str | None:
        kind = type(value)
        if kind in _ATOMS:
            return None
        self.items += 1
        if depth > MAX_DEPTH or self.items > MAX_ITEMS:
            return None  # beyond what any test compares
        if kind in _SEQUENCES or kind in _STRUCTSEQS:
            return self._inside(value, enumerate(value), path, depth)
        if kind in _MAPPINGS:
            return self._inside_mapping(value, path, depth)
        if isinstance(value, _PRIMITIVES):
            if isinstance(value, tuple) and _honest_namedtuple(kind):
                return self._inside(value, enumerate(value), path, depth)
            if _made_by_tests(kind):
                return None
            base = next(b for b in _PRIMITIVES if isinstance(value, b))
            shown = _SHOWN_BASES.get(base, base.__name__)
            return msg.VALUE_SUBCLASS.format(what=_what(kind, path), base=shown)
        lying = _lying_dunders(kind)
        if lying:
            return msg.VALUE_OVERRIDES.format(what=_what(kind, path), dunders=", ".join(lying))
        return None

    def _inside(self, container, entries, path: str, depth: int) -> str | None:
        if id(container) in self.seen:
            return None
        self.seen.add(id(container))
        for key, item in entries:
            if type(item) in _ATOMS:
                continue
            found = self.problem(item, f"{path}[{key!r}]", depth + 1)  # key: an index, or the dict's key
            if found is not None:
                return found
        return None

    def _inside_mapping(self, mapping, path: str, depth: int) -> str | None:
        keys = self._inside(mapping, enumerate(mapping), f"{path}.keys()", depth)
        if keys is not None:
            return keys
        self.seen.discard(id(mapping))
        return self._inside(mapping, dict.items(mapping), path, depth)


def _what(kind: type, path: str) -> str:
    where = msg.VALUE_AT.format(path=path) if path else ""
    name = kind.__name__
    return (msg.VALUE_AN if name[:1].lower() in "aeiou" else msg.VALUE_A).format(type=name) + where


def _honest_namedtuple(kind: type) -> bool:
    """A namedtuple class (standard library, torch, or the learner's) that only holds fields."""
    if not isinstance(getattr(kind, "_fields", None), tuple) or _lying_dunders(type(kind)):
        return False
    for cls in kind.__mro__[: kind.__mro__.index(tuple)]:
        for attribute in vars(cls):
            if attribute.startswith("__") and attribute.endswith("__") and attribute not in _NAMEDTUPLE_NAMES:
                return False
    return True


def _lying_dunders(kind: type) -> list[str]:
    """The comparison and conversion dunders that untrusted classes of `kind` (or its metaclass) define."""
    found = set()
    for cls in (*kind.__mro__, *type(kind).__mro__):
        overridden = LYING_DUNDERS & vars(cls).keys()
        if overridden and not _trusted(cls, overridden):
            found |= overridden
    return sorted(found)


def _made_by_tests(kind: type) -> bool:
    """A subclass that a kata test made and passed in (00's CountingTensor records operations):
    every class of it above the built-in base is defined in a kata's test file."""
    above = [cls for cls in kind.__mro__ if cls.__flags__ & _HEAP_TYPE and cls not in _ATOMS]
    return all(_from_test_file(cls) for cls in above)


def _from_test_file(cls: type) -> bool:
    """Defined in a kata's test file, katas/<kata>/test_*.py (a learner's file is never one)."""
    module = sys.modules.get(vars(cls).get("__module__", ""))
    filename = getattr(module, "__file__", None)
    if not isinstance(filename, str) or not os.path.basename(filename).startswith("test_"):
        return False
    if os.path.basename(os.path.dirname(os.path.dirname(filename))) != "katas":
        return False
    codes = [_code(value) for value in vars(cls).values()]
    return all(code.co_filename == filename for code in codes if code is not None)


def _code(value: Any) -> types.CodeType | None:
    return getattr(getattr(value, "__func__", value), "__code__", None)


def _trusted(cls: type, names: Iterable[str]) -> bool:
    """A class of the standard library, torch or numpy, judged by its module and by where the
    code of its `names` lives (a class that only claims such a module is not). Classes written
    in C (int, object, torch.dtype) are trusted: Python code cannot make one."""
    if not cls.__flags__ & _HEAP_TYPE:
        return True
    module = vars(cls).get("__module__")
    if not isinstance(module, str) or module.partition(".")[0] not in _TRUSTED_PACKAGES:
        return _from_test_file(cls)
    codes = [_code(vars(cls)[name]) for name in names]
    return all(code.co_filename.startswith(_trusted_folders()) for code in codes if code is not None)


@functools.cache
def _trusted_folders() -> tuple[str, ...]:
    import sysconfig

    folders = {sysconfig.get_paths()["stdlib"], os.path.dirname(torch.__file__)}
    if _np is not None:
        folders.add(os.path.dirname(_np.__file__))
    found = {os.path.join(os.path.realpath(f), "") for f in folders} | {os.path.join(f, "") for f in folders}
    return (*sorted(found), "<frozen ")  # "<frozen abc>": the standard library's frozen modules
