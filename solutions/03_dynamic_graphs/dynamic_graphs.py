"""Kata 03: dynamic graphs, control flow in the forward pass (reference solution)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

_Tree = Tensor | tuple["_Tree", "_Tree"]


def dynamic_computation(x: Tensor, generator: torch.Generator) -> Tensor:
    """x**2 or sin(x), chosen by one uniform draw from `generator`."""
    if torch.rand(1, generator=generator) > 0.5:
        return x**2
    return torch.sin(x)


def double_until(x: Tensor, bound: float) -> Tensor:
    """Double `x` until its norm reaches `bound`: one recorded multiplication per iteration."""
    y = x
    while y.norm() < bound:
        y = y * 2
    return y


def fold_tree(tree: _Tree, combine: Callable[[Tensor, Tensor], Tensor]) -> Tensor:
    """Reduce a binary tree bottom-up: a leaf is itself, a pair is combine(left, right)."""
    if isinstance(tree, Tensor):
        return tree
    left, right = tree
    return combine(fold_tree(left, combine), fold_tree(right, combine))


def branch_where(x: Tensor) -> Tensor:
    """Elementwise x**2 where x > 0, else sin(x)."""
    return torch.where(x > 0, x**2, torch.sin(x))


def sqrt_or_zero(x: Tensor) -> Tensor:
    """Elementwise sqrt(x) where x > 0, else 0, with a finite gradient everywhere."""
    positive = x > 0
    # sqrt only ever sees positive numbers: where() sends a zero gradient into the branch it
    # did not select, and 0 * (the nan derivative of sqrt at x < 0) would still be nan.
    safe = torch.where(positive, x, torch.ones_like(x))
    return torch.where(positive, torch.sqrt(safe), torch.zeros_like(x))


class LeakyClamp(torch.autograd.Function):
    """Identity on [-1, 1], slope `slope` outside, with a hand-written backward."""

    @staticmethod
    def forward(ctx: Any, x: Tensor, slope: float) -> Tensor:
        ctx.save_for_backward(x)
        ctx.slope = slope
        inner = x.clamp(-1, 1)
        return inner + slope * (x - inner)

    @staticmethod
    def backward(ctx: Any, grad_output: Tensor) -> tuple[Tensor, None]:
        (x,) = ctx.saved_tensors
        grad_x = torch.where(x.abs() <= 1, grad_output, ctx.slope * grad_output)
        return grad_x, None  # one gradient per forward input; the float `slope` gets None


class StraightThroughSign(torch.autograd.Function):
    """sign(x) forward; backward passes grad_output straight through where |x| <= 1."""

    @staticmethod
    def forward(ctx: Any, x: Tensor) -> Tensor:
        ctx.save_for_backward(x)
        return torch.sign(x)

    @staticmethod
    def backward(ctx: Any, grad_output: Tensor) -> Tensor:
        (x,) = ctx.saved_tensors
        return grad_output * (x.abs() <= 1)
