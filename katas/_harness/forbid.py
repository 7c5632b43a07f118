""" "Write it yourself" exercises: library calls that the code under test must not make.

`forbidden(call, instead, *calls)` watches the code under test three ways while it runs:

1. by name: each `Library(owner, attribute, ...)` is replaced on its owner (as monkeypatch
   does), so calling it by that name fails at once with the clearest message;
2. by code: a profile hook sees the library function's own code run (or the built-in
   itself called), whatever name reached it: a reference taken at import, a default
   argument, a closure;
3. by aten op: a TorchDispatchMode sees the operators torch executes below Python, so
   that a path to them the other two miss (torch._C._nn.mse_loss, torch.ops.aten...)
   is caught too.

A learner's code that catches the failure gains nothing: the first forbidden call is
recorded, and the test fails when the watched code returns.
"""

from __future__ import annotations

import inspect
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import pytest
import torch

from . import messages as msg
from .testing import fail as _fail

try:
    # torch 2.13 has no public spelling of TorchDispatchMode: torch.utils._python_dispatch is the
    # only module that defines it (torch's own docs on extending torch name it there). Without it
    # only the name and code checks run.
    from torch.utils._python_dispatch import TorchDispatchMode as _DispatchMode
except ImportError:  # pragma: no cover - every torch this project supports has it
    _DispatchMode = None

# Bound before any learner code runs.
_setprofile, _getprofile = sys.setprofile, sys.getprofile
_set_thread_profile, _get_thread_profile = threading.setprofile, threading.getprofile
_RECORD_FUNCTION = torch.ops.profiler._record_function_enter_new
_Failed = pytest.fail.Exception


@dataclass(frozen=True)
class Library:
    """A library call an exercise replaces: `owner.attribute`, shown to the learner as `shown`.

    `aten` names the operators it executes on CPU (overload packets of torch.ops.aten), and
    `regions` the record_function names it opens (torch.optim's "Optimizer.step#SGD.step"),
    for the check below Python.
    """

    owner: object
    attribute: str
    shown: str
    aten: tuple[str, ...] = ()
    regions: tuple[str, ...] = ()


class Watch:
    """The record of one watched call: the first forbidden call seen, and how."""

    def __init__(self, call: str, instead: str, calls: tuple[Library, ...]):
        self.call, self.instead = call, instead
        self.message: str | None = None
        self.codes: dict[int, str] = {}
        self.builtins: dict[int, str] = {}
        self.keep = []  # the originals, alive while their ids are keys above
        for library in calls:
            original = inspect.getattr_static(library.owner, library.attribute)
            original = getattr(original, "__func__", original)  # staticmethod, classmethod
            self.keep.append(original)
            code = getattr(inspect.unwrap(original), "__code__", None) if callable(original) else None
            if code is not None:
                self.codes[id(code)] = library.shown
            elif callable(original):
                self.builtins[id(original)] = library.shown
        self.ops = {
            getattr(torch.ops.aten, op): (library.shown, f"aten.{op}")
            for library in calls
            for op in library.aten
            if hasattr(torch.ops.aten, op)
        }
        self.regions = [(prefix, library.shown) for library in calls for prefix in library.regions]
        self.hook = self.profile  # one bound method, to compare with sys.getprofile() by identity

    def refuse(self, shown: str, seen: str = "") -> None:
        __tracebackhide__ = True
        if self.message is None:
            self.message = "\n".join(
                [
                    msg.VALUE_CALLED.format(call=self.call),
                    msg.FORBIDDEN_CALLED.format(shown=shown, seen=seen),
                    self.instead,
                ]
            )
        _fail(self.message)

    def refusal(self, shown: str):
        def refuse(*args, **kwargs):
            __tracebackhide__ = True
            self.refuse(shown)

        return refuse

    def profile(self, frame, event, arg) -> None:
        if event == "call":
            shown = self.codes.get(id(frame.f_code))
        elif event == "c_call":
            shown = self.builtins.get(id(arg))
        else:
            return
        if shown is not None:
            self.refuse(shown, msg.FORBIDDEN_SEEN_CODE)

    def dispatched(self, func, args) -> None:
        packet = func.overloadpacket
        found = self.ops.get(packet)
        if found is not None:
            self.refuse(found[0], msg.FORBIDDEN_SEEN_AS.format(op=found[1]))
        if packet is _RECORD_FUNCTION and args and isinstance(args[0], str):
            for prefix, shown in self.regions:
                if args[0].startswith(prefix):
                    self.refuse(shown, msg.FORBIDDEN_SEEN_AS.format(op=args[0]))


if _DispatchMode is not None:

    class _OpWatch(_DispatchMode):
        def __init__(self, watch: Watch):
            super().__init__()
            self.watch = watch

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            packet = func.overloadpacket
            if packet in self.watch.ops or packet is _RECORD_FUNCTION:  # one dict lookup for most ops
                self.watch.dispatched(func, args)
            return func(*args, **(kwargs or {}))


def _restore_profile(previous) -> None:
    if previous is None or callable(previous):
        _setprofile(previous)
    else:  # cProfile's profiler, which sys.getprofile() returns but sys.setprofile() does not take
        _setprofile(None)
        previous.enable()


@contextmanager
def forbidden(call: str, instead: str, *calls: Library) -> Iterator[Watch]:
    """While the body runs, each of `calls` fails the test: "Called {call}. It called ... {instead}"."""
    __tracebackhide__ = True
    watch = Watch(call, instead, calls)
    below = watch.ops or watch.regions
    ops = _OpWatch(watch) if below and _DispatchMode is not None else None
    with pytest.MonkeyPatch.context() as patch:
        for library in calls:
            patch.setattr(library.owner, library.attribute, watch.refusal(library.shown))
        previous, previous_threads = _getprofile(), _get_thread_profile()
        _setprofile(watch.hook)
        _set_thread_profile(watch.hook)  # threads it starts
        try:
            if ops is None:
                yield watch
            else:
                with ops:
                    yield watch
        except BaseException as err:
            if watch.message is None or getattr(err, "msg", None) == watch.message:
                raise
            # the code under test caught the first failure and raised something else
            raise _Failed(watch.message, pytrace=False) from None
        finally:
            hook = _getprofile()
            _restore_profile(previous)
            _set_thread_profile(previous_threads)
        if watch.message is not None:
            _fail(watch.message)  # it caught the failure and carried on
        if hook is not watch.hook:
            _fail("\n".join([msg.VALUE_CALLED.format(call=call), msg.FORBIDDEN_UNWATCHED]))
