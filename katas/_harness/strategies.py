"""Hypothesis strategies for random smooth functions no learner can differentiate by hand.

A generated function prints as readable maths (`f(x0) = sin(1.5*x0) * tanh(x0)`),
so a failing example in a kata test shows exactly what was differentiated.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache

import torch
from hypothesis import strategies as st

UNARY: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "sin": torch.sin,
    "cos": torch.cos,
    "tanh": torch.tanh,
    "sigmoid": torch.sigmoid,
    "exp": lambda t: torch.exp(torch.tanh(t)),  # shown as exp(tanh(.)) so values stay bounded
}
UNARY_TEXT = {"exp": "exp(tanh({}))"}


class Expr:
    """A smooth function of `arity` tensors, built from torch operations.

    A plain class, not a dataclass: Hypothesis prints dataclasses field by field,
    and this one should print as the maths it computes.
    """

    __slots__ = ("text", "fn", "arity")

    def __init__(self, text: str, fn: Callable[..., torch.Tensor], arity: int):
        self.text, self.fn, self.arity = text, fn, arity

    def __call__(self, *xs: torch.Tensor) -> torch.Tensor:
        return self.fn(*xs)

    def __repr__(self) -> str:
        names = ", ".join(f"x{i}" for i in range(self.arity)) if self.arity > 1 else "x"
        return f"f({names}) = {self.text}"


def _variable(index: int, arity: int) -> Expr:
    name = f"x{index}" if arity > 1 else "x"
    return Expr(name, lambda *xs: xs[index], arity)


def _affine(inner: Expr, scale: float, shift: float) -> Expr:
    scaled = inner.text if scale == 1 else f"{scale:g}*{inner.text}"
    sign = "-" if shift < 0 else "+"
    text = f"({scaled} {sign} {abs(shift):g})" if shift else scaled
    return Expr(text, lambda *xs: scale * inner(*xs) + shift, inner.arity)


def _unary(name: str, inner: Expr) -> Expr:
    op = UNARY[name]
    text = UNARY_TEXT.get(name, name + "({})").format(inner.text)
    return Expr(text, lambda *xs: op(inner(*xs)), inner.arity)


def _binary(symbol: str, left: Expr, right: Expr) -> Expr:
    if symbol == "+":
        return Expr(f"{left.text} + {right.text}", lambda *xs: left(*xs) + right(*xs), left.arity)
    return Expr(f"({left.text}) * ({right.text})", lambda *xs: left(*xs) * right(*xs), left.arity)


coefficients = st.floats(-2.0, 2.0, allow_nan=False).map(lambda v: round(v, 2)).filter(lambda v: v != 0)


@st.composite
def _leaf(draw, arity: int) -> Expr:
    variable = _variable(draw(st.integers(0, arity - 1)), arity)
    if draw(st.booleans()):
        return variable
    return _affine(variable, draw(coefficients), draw(coefficients))


@cache  # tests may build it per example (data.draw); building is not free
def smooth_functions(arity: int = 1, max_leaves: int = 5) -> st.SearchStrategy[Expr]:
    """Random compositions of sin, cos, tanh, sigmoid, exp, +, * and affine maps.

    Every function is smooth (twice differentiable everywhere) and bounded on
    [-3, 3]; each uses every variable at least once when arity > 1.
    """

    def extend(children: st.SearchStrategy[Expr]) -> st.SearchStrategy[Expr]:
        return st.one_of(
            st.builds(_unary, st.sampled_from(sorted(UNARY)), children),
            st.builds(_binary, st.sampled_from("+*"), children, children),
        )

    base = st.recursive(_leaf(arity), extend, max_leaves=max_leaves)
    # Nonlinear at the top, so that the gradient is never a constant a learner could guess.
    functions = st.builds(_unary, st.sampled_from(sorted(UNARY)), base)
    if arity > 1:
        functions = st.builds(_uses_all, functions, st.just(arity))
    return _as_maths(functions)


@st.composite
def _as_maths(draw, functions: st.SearchStrategy[Expr]) -> Expr:
    # A fresh object: Hypothesis prints what builds() made as the nested constructor calls,
    # a new one by its own repr, `f(x) = ...`.
    expr = draw(functions)
    return Expr(expr.text, expr.fn, expr.arity)


def _uses_all(expr: Expr, arity: int) -> Expr:
    """Add a small term in each variable so that no partial derivative is identically zero."""
    for i in range(arity):
        var = _variable(i, arity)
        expr = _binary("+", expr, _unary("sin", _affine(var, 0.5 + 0.25 * i, 0.1 * i)))
    return expr


points = st.floats(-3.0, 3.0, allow_nan=False, allow_infinity=False).map(lambda v: round(v, 3))
