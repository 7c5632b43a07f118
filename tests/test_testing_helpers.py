"""The assertion helpers and strategies that kata tests are built from."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings

from katas._harness.strategies import points, smooth_functions
from katas._harness.testing import Spy, expect_close, expect_float, expect_floats

Failed = pytest.fail.Exception


def failure(fn, *args, **kwargs) -> str:
    with pytest.raises(Failed) as info:
        fn(*args, **kwargs)
    return str(info.value)


def test_expect_close_passes_within_tolerance():
    expect_close(5.0 + 1e-7, 5.0, call="f()")


def test_expect_close_names_the_call_the_result_and_the_expectation():
    message = failure(expect_close, 4.0, 5.0, call="grad_at(f, 1.0)")
    assert message.splitlines()[:2] == ["Called grad_at(f, 1.0).", "It returned 4, but the tests expected 5."]


def test_expect_close_names_a_known_mistake_only_when_it_matches():
    mistakes = [("gradients doubled", 10.0), ("the value, not the gradient", 6.0)]
    doubled = failure(expect_close, 10.0, 5.0, call="f()", mistakes=mistakes)
    assert "Likely cause: gradients doubled" in doubled
    assert "Likely cause" not in failure(expect_close, 7.0, 5.0, call="f()", mistakes=mistakes)


def test_expect_close_reports_a_shape_mismatch_and_a_missing_return():
    assert "Shape: yours is (3,), expected (2,)" in failure(
        expect_close, torch.zeros(3), torch.zeros(2), call="f()"
    )
    assert "forget the `return`" in failure(expect_close, None, 1.0, call="f()")


def test_expect_float_rejects_tensors_and_explains_item():
    assert ".item()" in failure(expect_float, torch.tensor(5.0), call="f()")
    assert expect_float(5, call="f()") == 5.0
    assert "a Python float is asked for" in failure(expect_float, "5", call="f()")


def test_expect_floats_checks_the_length():
    assert "returned 1 values" in failure(expect_floats, [1.0], 2, call="f()")


def test_spy_counts_calls_and_checks_tracked_inputs():
    spy = Spy(torch.sin)
    spy(torch.tensor(1.0))
    assert "called f 1 time(s); expected exactly 2" in failure(spy.expect_calls, 2, call="g()", why="")
    assert "does not require grad" in failure(spy.expect_tracked_inputs, call="g()")


@settings(max_examples=200, deadline=None)
@given(f=smooth_functions(), x=points)
def test_generated_functions_have_finite_first_and_second_derivatives(f, x):
    t = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    y = f(t)
    (first,) = torch.autograd.grad(y, t, create_graph=True)
    (second,) = torch.autograd.grad(first, t)
    assert all(math.isfinite(v.item()) for v in (y, first, second)), repr(f)
    assert abs(y.item()) < 1e3, repr(f)


@settings(max_examples=50, deadline=None)
@given(f=smooth_functions(arity=3))
def test_generated_functions_of_several_variables_depend_on_each(f):
    inputs = [torch.tensor(0.3 * i, dtype=torch.float64, requires_grad=True) for i in range(3)]
    grads = torch.autograd.grad(f(*inputs), inputs)
    assert all(g is not None for g in grads)
    assert repr(f).startswith("f(x0, x1, x2) = ")
