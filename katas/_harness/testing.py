"""Assertions for kata tests whose failure messages teach.

Every message follows one shape: what was called, what came back, what was
expected, and, when the wrong answer matches a known mistake, its likely cause.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import pytest
import torch
from torch.testing import assert_close as _assert_close

from .i18n import N_, _

# Bound once, before any learner code runs: replacing torch.isclose later changes nothing here.
_isclose, _equal = torch.isclose, torch.equal

Mistakes = Iterable[tuple[str, Any]]


def fail(message: str) -> None:
    """Fail the test with `message` alone: the message is the lesson, not the traceback."""
    pytest.fail(message, pytrace=False)


def show(value: Any) -> str:
    if isinstance(value, torch.Tensor):
        text = (
            repr(value.detach())
            if value.numel() <= 12
            else _("tensor of shape {shape}").format(shape=tuple(value.shape))
        )
        extra = []
        if value.requires_grad:
            extra.append("requires_grad=True")
        if value.grad_fn is not None:
            extra.append(f"grad_fn={type(value.grad_fn).__name__}")
        return f"{text} ({', '.join(extra)})" if extra else text
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, (list, tuple)):
        inner = ", ".join(show(v) for v in value)
        return f"[{inner}]" if isinstance(value, list) else f"({inner})"
    return repr(value)


def is_close(actual: Any, expected: Any, rtol: float = 1e-5, atol: float = 1e-6) -> bool:
    """|actual - expected| <= atol + rtol * |expected| elementwise, with equal shapes.

    The rule of torch.testing.assert_close, through torch.isclose: assert_close's first
    call imports torch.distributed (0.6 s), too slow for a kata run.
    """
    try:
        a = torch.as_tensor(_detached(actual), dtype=torch.float64)
        e = torch.as_tensor(_detached(expected), dtype=torch.float64)
    except (TypeError, ValueError, RuntimeError):
        return False
    return a.shape == e.shape and bool(_isclose(a, e, rtol=rtol, atol=atol, equal_nan=True).all())


def expect_close(
    actual: Any,
    expected: Any,
    *,
    call: str,
    rtol: float = 1e-5,
    atol: float = 1e-6,
    mistakes: Mistakes = (),
    note: str = "",
) -> None:
    """Fail unless `actual` matches `expected` within tolerance.

    `mistakes` lists (likely cause, the value that mistake would produce): when
    the wrong answer matches one, the message names the mistake. Tolerances are
    float32 round-off: learners compute in the default dtype.
    """
    if actual is None:
        fail(_("Called {call}.\nIt returned None. Did you forget the `return` statement?").format(call=call))
    if is_close(actual, expected, rtol, atol):
        return
    actual_shape = tuple(torch.as_tensor(_detached(actual)).shape) if _is_numeric(actual) else None
    expected_shape = tuple(torch.as_tensor(_detached(expected)).shape)
    lines = [
        _("Called {call}.").format(call=call),
        _("It returned {actual}, but the tests expected {expected}.").format(
            actual=show(actual), expected=show(expected)
        ),
    ]
    if actual_shape is not None and actual_shape != expected_shape:
        shape = _("Shape: yours is {actual}, expected {expected}.")
        lines.append(shape.format(actual=actual_shape, expected=expected_shape))
    for cause, wrong in mistakes:
        if is_close(actual, wrong, rtol, atol):
            lines.append(_("Likely cause: {cause}").format(cause=cause))
            break
    if note:
        lines.append(note)
    fail("\n".join(lines))


def expect_tensor_close(
    actual: Any,
    expected: torch.Tensor,
    *,
    call: str,
    rtol: float | None = None,
    atol: float | None = None,
    check_dtype: bool = True,
    mistakes: Mistakes = (),
    note: str = "",
    observed: str | None = None,
) -> None:
    """Fail unless the tensor `actual` equals `expected` under torch.testing.assert_close.

    Shape, dtype (unless check_dtype=False) and device must match; values within
    rtol/atol (assert_close's dtype defaults when both are None: 1.3e-6/1e-5 for
    float32). `mistakes` works as in expect_close: the first wrong value that
    `actual` matches names the likely cause. `observed` says what `actual` is when
    it is not the return value (say, `_("Afterwards the parameters are")`; default "It returned").
    """
    if actual is None:
        fail(_("Called {call}.\nIt returned None. Did you forget the `return` statement?").format(call=call))
    if not isinstance(actual, torch.Tensor):
        fail(
            _("Called {call}.\nIt returned {actual} ({type}); a tensor is asked for.").format(
                call=call, actual=show(actual), type=type(actual).__name__
            )
        )
    if _quickly_close(actual, expected, rtol, atol, check_dtype):
        return
    try:
        _assert_close(actual.detach(), expected.detach(), rtol=rtol, atol=atol, check_dtype=check_dtype)
        return
    except AssertionError as err:
        detail = str(err).strip()
    lines = [
        _("Called {call}.").format(call=call),
        _("{observed} {actual}, but the tests expected {expected}.").format(
            observed=_("It returned") if observed is None else observed,
            actual=show(actual),
            expected=show(expected),
        ),
    ]
    lines.append(_explain_mismatch(detail))
    for cause, wrong in mistakes:
        if _matches(actual, wrong, rtol, atol):
            lines.append(_("Likely cause: {cause}").format(cause=cause))
            break
    if note:
        lines.append(note)
    fail("\n".join(lines))


# The lines of torch.testing.assert_close's report, in the learner's language: (pattern, message).
_DIFF = r"(?P<diff>\S+)"
_AT = r" at index (?P<index>\(.*?\))"
_UP_TO = r" \(up to (?P<allowed>\S+) allowed\)"
_MISMATCH_LINES = [
    (re.compile(r"Tensor-likes are not close!"), N_("Tensor-likes are not close!")),
    (re.compile(r"Tensor-likes are not equal!"), N_("Tensor-likes are not equal!")),
    (re.compile(r"Scalars are not close!"), N_("Scalars are not close!")),
    (re.compile(r"Scalars are not equal!"), N_("Scalars are not equal!")),
    (
        re.compile(r"Mismatched elements: (?P<count>\d+) / (?P<total>\d+) \((?P<percent>[^)]*)\)"),
        N_("Mismatched elements: {count} / {total} ({percent})"),
    ),
    (
        re.compile("Greatest absolute difference: " + _DIFF + _AT + _UP_TO),
        N_("Greatest absolute difference: {diff} at index {index} (up to {allowed} allowed)"),
    ),
    (
        re.compile("Greatest relative difference: " + _DIFF + _AT + _UP_TO),
        N_("Greatest relative difference: {diff} at index {index} (up to {allowed} allowed)"),
    ),
    (
        re.compile("Greatest absolute difference: " + _DIFF + _AT),
        N_("Greatest absolute difference: {diff} at index {index}"),
    ),
    (
        re.compile("Greatest relative difference: " + _DIFF + _AT),
        N_("Greatest relative difference: {diff} at index {index}"),
    ),
    (
        re.compile(r"Expected (?P<expected>.+) but got (?P<actual>.+)\."),
        N_("Expected {expected} but got {actual}."),
    ),
    (
        re.compile("Absolute difference: " + _DIFF + _UP_TO),
        N_("Absolute difference: {diff} (up to {allowed} allowed)"),
    ),
    (
        re.compile("Relative difference: " + _DIFF + _UP_TO),
        N_("Relative difference: {diff} (up to {allowed} allowed)"),
    ),
    (
        re.compile(
            r"The values for attribute '(?P<attribute>\w+)' do not match: "
            r"(?P<actual>.+) != (?P<expected>.+)\."
        ),
        N_("The values for attribute '{attribute}' do not match: {actual} != {expected}."),
    ),
]


def _explain_mismatch(detail: str) -> str:
    """assert_close's report line by line in the learner's language (a line it does not know stays)."""
    lines = []
    for line in detail.splitlines():
        for pattern, message in _MISMATCH_LINES:
            found = pattern.fullmatch(line.strip())
            if found:
                line = _(message).format(**found.groupdict())
                break
        lines.append(line)
    return "\n".join(lines)


# torch.testing.assert_close's default (rtol, atol) per dtype. Its first call imports
# torch.distributed (0.6 s), so a match is confirmed with torch.isclose and assert_close
# only explains a mismatch.
_DEFAULT_TOLERANCES = {
    torch.float16: (1e-3, 1e-5),
    torch.bfloat16: (1.6e-2, 1e-5),
    torch.float32: (1.3e-6, 1e-5),
    torch.float64: (1e-7, 1e-7),
}


def _quickly_close(
    actual: torch.Tensor, expected: torch.Tensor, rtol: float | None, atol: float | None, check_dtype: bool
) -> bool:
    if actual.shape != expected.shape or actual.device != expected.device or type(actual) is not torch.Tensor:
        return False
    if check_dtype and actual.dtype != expected.dtype:
        return False
    if rtol is None or atol is None:
        default = _DEFAULT_TOLERANCES.get(expected.dtype)
        if default is None:
            return bool(_equal(actual, expected)) if actual.dtype == expected.dtype else False
        rtol, atol = default
    try:
        return bool(_isclose(actual.detach(), expected.detach(), rtol=rtol, atol=atol).all())
    except RuntimeError:
        return False


def _matches(actual: torch.Tensor, wrong: Any, rtol: float | None, atol: float | None) -> bool:
    try:
        _assert_close(
            actual.detach(),
            torch.as_tensor(_detached(wrong)),
            rtol=rtol,
            atol=atol,
            check_dtype=False,
            check_device=False,
        )
    except (AssertionError, TypeError, ValueError, RuntimeError):
        return False
    return True


def reference(
    compute: Callable[[torch.dtype], Sequence[float]], atol: float = 1e-6
) -> tuple[list[float], float]:
    """The float64 result of `compute(dtype)`, and an absolute tolerance for float32 answers.

    A correct answer computed in float32 (PyTorch's default) can differ from the float64
    reference by more than any fixed tolerance where the function is ill-conditioned
    (sin of a large argument, say). Running `compute` in float32 too measures that gap.
    """
    exact = [float(v) for v in compute(torch.float64)]
    rough = [float(v) for v in compute(torch.float32)]
    gap = max((abs(a - b) for a, b in zip(exact, rough, strict=True)), default=0.0)
    return exact, atol + 4 * gap


def expect_float(value: Any, *, call: str) -> float:
    """Fail unless `value` is a plain Python number; return it as a float."""
    if isinstance(value, torch.Tensor):
        fail(
            _(
                "Called {call}.\nIt returned a tensor, {value}, but a Python float is asked for.\n"
                "Likely cause: you returned the tensor itself; turn a one-element tensor into a Python "
                "number with .item() (a tensor may also keep its whole graph alive)."
            ).format(call=call, value=show(value))
        )
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        fail(
            _("Called {call}.\nIt returned {value} ({type}); a Python float is asked for.").format(
                call=call, value=repr(value), type=type(value).__name__
            )
        )
    return float(value)


def expect_floats(values: Any, length: int, *, call: str) -> list[float]:
    """Fail unless `values` is a list or tuple of `length` plain numbers."""
    if not isinstance(values, (list, tuple)):
        fail(
            _("Called {call}.\nIt returned {value}; a list of {length} floats is asked for.").format(
                call=call, value=show(values), length=length
            )
        )
    if len(values) != length:
        fail(
            _("Called {call}.\nIt returned {count} values, {value}; expected {length}.").format(
                call=call, count=len(values), value=show(list(values)), length=length
            )
        )
    if any(isinstance(v, torch.Tensor) for v in values):
        kind = type(values).__name__
        shared = len(values) > 1 and all(v is values[0] for v in values)
        fail(
            _(
                "Called {call}.\nIt returned a {kind} of tensors, {value}, but a {kind} of Python "
                "floats is asked for.\nLikely cause: you stored each tensor itself; store a Python number "
                "with .item() as you go."
            ).format(call=call, kind=kind, value=show(values))
            + (
                _(
                    " Every entry is the same tensor object: a tensor such as .grad that later steps "
                    "change in place shows only its last value."
                )
                if shared
                else ""
            )
        )
    return [expect_float(v, call=call) for v in values]


_TRACEBACK_ENTRY = re.compile(r'File "([^"]+)", line \d+, in (\S+)')


@contextmanager
def carried_stub_errors() -> Iterator[None]:
    """Let an untouched stub reached in another process (a DataLoader worker) show its TODO line.

    Such an error arrives re-raised with the worker's traceback as text; its last
    entry names the stub file and function, which the harness needs.
    """
    try:
        yield
    except NotImplementedError as err:
        entries = _TRACEBACK_ENTRY.findall(str(err))
        if entries and getattr(err, "stub_origin", None) is None:
            err.stub_origin = entries[-1]
        raise


class Spy:
    """Wraps a function to record how the code under test calls it."""

    def __init__(self, fn: Callable, name: str = "f"):
        self.fn = fn
        self.name = name
        self.calls: list[tuple] = []

    def __call__(self, *args):
        self.calls.append(args)
        return self.fn(*args)

    def __repr__(self) -> str:
        return repr(self.fn)

    @property
    def count(self) -> int:
        return len(self.calls)

    def expect_calls(self, count: int, *, call: str, why: str) -> None:
        """`why` explains a wrong number of calls; never calling at all has a cause of its own."""
        if self.count != count:
            if self.count == 0 and count > 0:
                why = _(
                    "Likely cause: the result does not depend on {name} at all: a hard-coded formula "
                    "(say, the derivative of the lesson's example) instead of running {name}."
                ).format(name=self.name)
            fail(
                _("Called {call}.\nIt called {name} {count} time(s); expected exactly {expected}.").format(
                    call=call, name=self.name, count=self.count, expected=count
                )
                + f"\n{why}"
            )

    def expect_tracked_inputs(self, *, call: str) -> None:
        """Every tensor argument of every call must require grad (autograd records the graph)."""
        for args in self.calls:
            for arg in args:
                if not isinstance(arg, torch.Tensor):
                    fail(
                        _(
                            "Called {call}.\nIt passed {name} a {type}, {value}; pass a tensor created "
                            "with requires_grad=True so autograd can record the graph."
                        ).format(call=call, name=self.name, type=type(arg).__name__, value=repr(arg))
                    )
                if not arg.requires_grad:
                    fail(
                        _(
                            "Called {call}.\nIt passed {name} {value}, which does not require grad.\n"
                            "Likely cause: create the input with torch.tensor(x, requires_grad=True)."
                        ).format(call=call, name=self.name, value=show(arg))
                    )


def _is_numeric(value: Any) -> bool:
    return isinstance(value, (int, float, torch.Tensor)) or (
        isinstance(value, (list, tuple)) and all(isinstance(v, (int, float)) for v in value)
    )


def _detached(value: Any) -> Any:
    return value.detach() if isinstance(value, torch.Tensor) else value
