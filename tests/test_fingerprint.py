"""Identity fingerprints see a trusted function changed in place, not only replaced."""

from __future__ import annotations

import functools
import math

import pytest
import torch

from katas._harness import testing
from katas._harness.fingerprint import changed, fingerprint


def make_helper():
    """A fresh trusted helper with defaults, keyword defaults and a closure, for each test."""
    tolerance = 1e-6

    def helper(a, b, rtol=1e-5, *, atol=1e-8):
        return abs(a - b) <= atol + rtol * abs(b) + tolerance

    return helper


def always_true(a, b, rtol=1e-5, *, atol=1e-8):
    return True


def test_an_untouched_function_is_unchanged():
    helper = make_helper()
    before = fingerprint(helper)
    helper(1.0, 1.0)
    assert not changed(before, helper)


def test_a_replaced_function_is_changed():
    assert changed(fingerprint(make_helper()), make_helper())


def test_a_swapped_code_object_is_changed():
    helper = make_helper()
    before = fingerprint(helper)
    helper.__code__ = always_true.__code__.replace(co_freevars=helper.__code__.co_freevars)
    assert changed(before, helper)


def test_swapped_defaults_and_keyword_defaults_are_changed():
    helper = make_helper()
    before = fingerprint(helper)
    helper.__defaults__ = (1e9,)
    assert changed(before, helper)
    helper = make_helper()
    before = fingerprint(helper)
    helper.__kwdefaults__ = {"atol": 1e9}
    assert changed(before, helper)


def test_a_closure_cell_pointed_elsewhere_is_changed():
    helper = make_helper()
    before = fingerprint(helper)
    helper.__closure__[0].cell_contents = 1e9
    assert changed(before, helper)


def test_a_class_method_swapped_on_its_class_is_changed():
    class Checker:
        def check(self):
            return False

    before = fingerprint(Checker)
    Checker.check.__code__ = (lambda self: True).__code__
    assert changed(before, Checker)
    Checker.check = lambda self: True
    assert changed(before, Checker)


def test_a_function_behind_a_functools_wrapper_is_followed():
    helper = make_helper()

    @functools.wraps(helper)
    def wrapper(*args, **kwargs):
        return helper(*args, **kwargs)

    before = fingerprint(wrapper)
    helper.__defaults__ = (1e9,)
    assert changed(before, wrapper)


@pytest.mark.parametrize(
    "builtin",
    [math.isclose, torch.isclose, torch.Tensor.equal],
    ids=["math.isclose", "torch.isclose", "torch.Tensor.equal"],  # reprs hold addresses: unstable
)
def test_builtins_are_their_identity(builtin):
    assert not changed(fingerprint(builtin), builtin)
    assert changed(fingerprint(builtin), len)


def test_the_harness_helpers_fingerprint_stably():
    trusted = {name: getattr(testing, name) for name in dir(testing) if callable(getattr(testing, name))}
    before = {name: fingerprint(value) for name, value in trusted.items()}
    testing.is_close(1.0, 1.0)
    assert [name for name, value in trusted.items() if changed(before[name], value)] == []
