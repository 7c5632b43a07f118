"""Kata 01: autograd and the dynamic computation graph.

Replace each `raise NotImplementedError` with your code, then run
`pytest katas/01_autograd`. The lesson is in README.md beside this file.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

import torch
from torch import Tensor


def grad_at(f: Callable[[Tensor], Tensor], x: float) -> float:
    """Return f'(x), the derivative of the scalar function `f` at `x`, using autograd.

    Make `x` a tensor that requires grad, run `f` on it once, call `backward()`
    on the result and read the gradient. Return it as a Python float.

    >>> grad_at(lambda x: x**2 + 3*x + 2, 1.0)
    5.0

    Docs: https://docs.pytorch.org/docs/stable/generated/torch.Tensor.backward.html
    """
    raise NotImplementedError("grad_at")


def partial_derivatives(f: Callable[..., Tensor], point: Sequence[float]) -> list[float]:
    """Return every partial derivative of `f(x0, x1, ...)` at `point`, in input order.

    `f` takes one scalar tensor per coordinate of `point`. One forward pass and
    one `backward()` are enough: each input collects its own `.grad`.

    >>> partial_derivatives(lambda x, y: x * y + y**2, [3.0, 2.0])
    [2.0, 7.0]

    Docs: https://docs.pytorch.org/docs/stable/notes/autograd.html
    """
    raise NotImplementedError("partial_derivatives")


def vector_jacobian_product(f: Callable[[Tensor], Tensor], x: Tensor, v: Tensor) -> Tensor:
    """Return v^T J, where J is the Jacobian of the vector function `f` at `x`.

    `f(x)` is not a scalar, so `backward()` needs `gradient=v`. The caller's `x`
    must come back untouched (no requires_grad, no .grad): work on a detached copy.
    The result has the shape of `x`.

    >>> vector_jacobian_product(lambda t: t**2, torch.tensor([1., 2., 3.]), torch.tensor([1., .5, -1.]))
    tensor([ 2.,  2., -6.])

    Docs: https://docs.pytorch.org/docs/stable/generated/torch.Tensor.backward.html
    """
    raise NotImplementedError("vector_jacobian_product")


def first_and_second_derivative(f: Callable[[Tensor], Tensor], x: float) -> tuple[float, float]:
    """Return (f'(x), f''(x)), computing the second derivative by differentiating the first.

    `torch.autograd.grad(..., create_graph=True)` returns a first derivative that
    is itself part of a graph, so it can be differentiated again.

    >>> first_and_second_derivative(lambda a: a**3 + 4*a**2 - 5*a + 2, 2.0)
    (23.0, 20.0)

    Docs: https://docs.pytorch.org/docs/stable/generated/torch.autograd.grad.html
    """
    raise NotImplementedError("first_and_second_derivative")


def gradient_history(f: Callable[[Tensor], Tensor], x: float, steps: int, zero_between: bool) -> list[float]:
    """Run `steps` rounds of forward + backward on one leaf x and record x.grad after each.

    Each round builds a fresh graph `f(x)` and calls `backward()`. Gradients
    accumulate in `x.grad` unless you reset it between rounds (`zero_between=True`).

    >>> gradient_history(lambda x: x**2 + 3*x + 2, 1.0, steps=3, zero_between=False)
    [5.0, 10.0, 15.0]
    >>> gradient_history(lambda x: x**2 + 3*x + 2, 1.0, steps=3, zero_between=True)
    [5.0, 5.0, 5.0]

    Docs: https://docs.pytorch.org/docs/stable/notes/autograd.html
    """
    raise NotImplementedError("gradient_history")


def clamp_weights_(params: Iterable[Tensor], limit: float) -> None:
    """Clamp every tensor in `params` into [-limit, limit], in place, invisibly to the graph.

    The parameters must stay trainable leaves (requires_grad=True, no grad_fn).
    Modify them under `torch.no_grad()`, not through `.data`: only then can
    autograd still detect that a tensor it saved for backward has changed.

    >>> w = torch.nn.Parameter(torch.tensor([2.0, -0.5]))
    >>> clamp_weights_([w], 1.0)
    >>> w
    Parameter containing:
    tensor([ 1.0000, -0.5000], requires_grad=True)

    Docs: https://docs.pytorch.org/docs/stable/generated/torch.no_grad.html
    """
    raise NotImplementedError("clamp_weights_")


def detached_product_grad(f: Callable[[Tensor], Tensor], g: Callable[[Tensor], Tensor], x: float) -> float:
    """Return d/dx [f(x) * g(x)] where g(x) is treated as a constant (no gradient through g).

    >>> detached_product_grad(lambda x: x**2, lambda x: x**3, 2.0)  # f'(2) * g(2) = 4 * 8
    32.0

    Docs: https://docs.pytorch.org/docs/stable/generated/torch.Tensor.detach.html
    """
    raise NotImplementedError("detached_product_grad")


def intermediate_grad(
    inner: Callable[[Tensor], Tensor], outer: Callable[[Tensor], Tensor], x: float
) -> tuple[float, float]:
    """Return (dL/dh, dL/dx) for h = inner(x) and L = outer(h), from one backward pass.

    x is a leaf; h is not, so autograd does not keep h.grad unless you ask it to
    with `h.retain_grad()` before calling `backward()`.

    >>> intermediate_grad(lambda x: x**2, lambda h: 3 * h, 2.0)
    (3.0, 12.0)

    Docs: https://docs.pytorch.org/docs/stable/generated/torch.Tensor.retain_grad.html
    """
    raise NotImplementedError("intermediate_grad")


def count_graph_ops(output: Tensor) -> dict[str, int]:
    """Count the nodes of each kind in the graph that produced `output`.

    Start at `output.grad_fn` and follow `node.next_functions` (pairs of
    (node, index); the node is None for inputs that need no gradient). Key each
    node by `type(node).__name__` and count every node once, even when several
    paths reach it. A leaf that requires grad appears as an `AccumulateGrad` node.

    >>> a = torch.tensor(2.0, requires_grad=True)
    >>> count_graph_ops(torch.sin(a) * a) == {"MulBackward0": 1, "SinBackward0": 1, "AccumulateGrad": 1}
    True

    Docs: https://docs.pytorch.org/docs/stable/notes/autograd.html
    """
    raise NotImplementedError("count_graph_ops")


def per_loss_grads(
    trunk: Callable[[Tensor], Tensor], heads: Sequence[Callable[[Tensor], Tensor]], x: float
) -> list[float]:
    """Return d head_i(trunk(x)) / dx for every head, running `trunk` only once.

    All heads share the trunk's graph. The first backward pass frees that graph
    unless it is kept with `retain_graph=True`; and each gradient must be the
    head's own, not a running sum.

    >>> per_loss_grads(lambda x: x**2, [lambda h: h, lambda h: h**2], 3.0)
    [6.0, 108.0]

    Docs: https://docs.pytorch.org/docs/stable/generated/torch.autograd.grad.html
    """
    raise NotImplementedError("per_loss_grads")
