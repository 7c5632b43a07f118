"""Kata 03: dynamic graphs, control flow in the forward pass.

Replace each `raise NotImplementedError` with your code, then run
`pytest katas/03_dynamic_graphs`. The lesson is in README.md beside this file.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

_Tree = Tensor | tuple["_Tree", "_Tree"]  # a leaf tensor, or a pair (left, right) of trees


def dynamic_computation(x: Tensor, generator: torch.Generator) -> Tensor:
    """Return x**2 or sin(x), chosen at random: the article's example, made reproducible.

    Draw one number with `torch.rand(1, generator=generator)`. If it is greater than
    0.5, return `x**2`; otherwise return `torch.sin(x)`. Use the given generator, not
    the global random state, so that a seed decides the branch. Autograd records
    only the branch that ran, so the gradient is 2x or cos(x).

    >>> x = torch.tensor(2.0, requires_grad=True)
    >>> dynamic_computation(x, torch.Generator().manual_seed(1))  # draws 0.758 > 0.5
    tensor(4., grad_fn=<PowBackward0>)
    >>> dynamic_computation(x, torch.Generator().manual_seed(0))  # draws 0.496
    tensor(0.9093, grad_fn=<SinBackward0>)

    Docs: https://docs.pytorch.org/docs/stable/generated/torch.rand.html
    """
    raise NotImplementedError("dynamic_computation")


def double_until(x: Tensor, bound: float) -> Tensor:
    """Double `x` until its norm is at least `bound`, in a loop whose length depends on x.

    While the (Euclidean) norm of the current value is below `bound`, multiply it
    by 2. When x's norm already reaches `bound`, return x itself. Do the doubling
    in the loop, one tensor operation per iteration: the graph then records every
    step, and its size differs from call to call. (x is never all zeros.)

    >>> double_until(torch.tensor([3.0, 4.0]), 40.0)  # norms 5, 10, 20, 40: three doublings
    tensor([24., 32.])

    Docs: https://docs.pytorch.org/docs/stable/notes/autograd.html
    """
    raise NotImplementedError("double_until")


def fold_tree(tree: _Tree, combine: Callable[[Tensor, Tensor], Tensor]) -> Tensor:
    """Reduce a binary tree of tensors bottom-up with `combine`, by recursion.

    A tree is either a leaf (a Tensor), which folds to itself, or a tuple
    `(left, right)` of two trees, which folds to
    `combine(fold_tree(left, combine), fold_tree(right, combine))`.
    The shape of the tree decides the shape of the graph: this is how a recursive
    (tree-structured) neural network runs.

    >>> a, b, c = torch.tensor(1.0), torch.tensor(2.0), torch.tensor(3.0)
    >>> fold_tree((a, (b, c)), torch.sub)  # a - (b - c)
    tensor(2.)
    >>> fold_tree(((a, b), c), torch.sub)  # (a - b) - c
    tensor(-4.)

    Docs: https://docs.pytorch.org/docs/stable/notes/autograd.html
    """
    raise NotImplementedError("fold_tree")


def branch_where(x: Tensor) -> Tensor:
    """Return x**2 where x > 0 and sin(x) elsewhere, element by element, for any shape.

    A Python `if` sees one boolean: on a batch it either raises ("Boolean value of
    Tensor with more than one value is ambiguous") or, given `x.sum() > 0`, picks one
    branch for every element. `torch.where` chooses per element.

    >>> branch_where(torch.tensor([2.0, -1.0, 0.0]))
    tensor([ 4.0000, -0.8415,  0.0000])

    Docs: https://docs.pytorch.org/docs/stable/generated/torch.where.html
    """
    raise NotImplementedError("branch_where")


def sqrt_or_zero(x: Tensor) -> Tensor:
    """Return sqrt(x) where x > 0 and 0 elsewhere, with a finite gradient everywhere.

    The gradient is 1 / (2 sqrt(x)) where x > 0 and exactly 0 elsewhere, never nan
    or inf. Beware: `torch.where(x > 0, torch.sqrt(x), 0.0)` has the right values but
    nan gradients wherever x <= 0. The README explains why, and the fix.

    >>> x = torch.tensor([4.0, 0.0, -1.0], requires_grad=True)
    >>> y = sqrt_or_zero(x)
    >>> y.sum().backward()
    >>> y.detach(), x.grad
    (tensor([2., 0., 0.]), tensor([0.2500, 0.0000, 0.0000]))

    Docs: https://docs.pytorch.org/docs/stable/generated/torch.where.html
    """
    raise NotImplementedError("sqrt_or_zero")


class LeakyClamp(torch.autograd.Function):
    """A custom autograd Function: identity on [-1, 1], slope `slope` outside.

    forward(x, slope) = x                      where |x| <= 1
                      = 1 + slope * (x - 1)    where x > 1
                      = -1 + slope * (x + 1)   where x < -1
    Its derivative is 1 where |x| <= 1 and `slope` elsewhere. Write both methods;
    call the Function with `LeakyClamp.apply(x, slope)`, never by its methods.

    >>> x = torch.tensor([-3.0, 0.5, 2.0], requires_grad=True)
    >>> y = LeakyClamp.apply(x, 0.1)
    >>> y
    tensor([-1.2000,  0.5000,  1.1000], grad_fn=<LeakyClampBackward>)
    >>> y.sum().backward()
    >>> x.grad
    tensor([0.1000, 1.0000, 0.1000])

    Docs: https://docs.pytorch.org/docs/stable/notes/extending.html
    """

    @staticmethod
    def forward(ctx: Any, x: Tensor, slope: float) -> Tensor:
        """Compute the output; save what backward needs: `ctx.save_for_backward(x)` for
        tensors, a plain attribute (`ctx.slope = slope`) for other values."""
        raise NotImplementedError("LeakyClamp.forward")

    @staticmethod
    def backward(ctx: Any, grad_output: Tensor) -> tuple[Tensor, None]:
        """Given dL/d(output), return one gradient per input of forward: (dL/dx, None).

        Chain rule: dL/dx = grad_output * d(output)/dx. `slope` is a Python float,
        so its gradient is None. Read the saved tensors from `ctx.saved_tensors`.
        """
        raise NotImplementedError("LeakyClamp.backward")


class StraightThroughSign(torch.autograd.Function):
    """sign(x) in the forward pass, a straight-through estimator in the backward pass.

    The true derivative of sign is 0 everywhere (except at 0, where it does not
    exist), so no gradient would ever reach x. A straight-through estimator
    pretends the forward was the identity clipped to [-1, 1]: its backward returns
    `grad_output` where |x| <= 1 and 0 where |x| > 1. This is how binarized and
    quantized networks are trained.

    >>> x = torch.tensor([-3.0, 0.5, -0.2, 2.0], requires_grad=True)
    >>> y = StraightThroughSign.apply(x)
    >>> y
    tensor([-1.,  1., -1.,  1.], grad_fn=<StraightThroughSignBackward>)
    >>> y.backward(torch.tensor([1.0, 2.0, 3.0, 4.0]))
    >>> x.grad
    tensor([0., 2., 3., 0.])

    Docs: https://docs.pytorch.org/docs/stable/generated/torch.autograd.Function.backward.html
    """

    @staticmethod
    def forward(ctx: Any, x: Tensor) -> Tensor:
        """Return torch.sign(x), saving x for backward."""
        raise NotImplementedError("StraightThroughSign.forward")

    @staticmethod
    def backward(ctx: Any, grad_output: Tensor) -> Tensor:
        """Return grad_output where |x| <= 1 and 0 where |x| > 1 (not the true derivative)."""
        raise NotImplementedError("StraightThroughSign.backward")
