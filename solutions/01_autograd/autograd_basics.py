"""Kata 01: autograd and the dynamic computation graph (reference solution)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Sequence

import torch
from torch import Tensor


def grad_at(f: Callable[[Tensor], Tensor], x: float) -> float:
    """The derivative of the scalar function `f` at `x`, computed by autograd."""
    t = torch.tensor(x, requires_grad=True)
    f(t).backward()
    return t.grad.item()


def partial_derivatives(f: Callable[..., Tensor], point: Sequence[float]) -> list[float]:
    """Every partial derivative of `f(x0, x1, ...)` at `point`."""
    inputs = [torch.tensor(v, requires_grad=True) for v in point]
    f(*inputs).backward()
    return [t.grad.item() for t in inputs]


def vector_jacobian_product(f: Callable[[Tensor], Tensor], x: Tensor, v: Tensor) -> Tensor:
    """v^T J, where J is the Jacobian of `f` at `x`; the caller's `x` is left untouched."""
    x = x.detach().requires_grad_()
    f(x).backward(gradient=v)
    return x.grad


def first_and_second_derivative(f: Callable[[Tensor], Tensor], x: float) -> tuple[float, float]:
    """f'(x) and f''(x), the second by differentiating the first."""
    t = torch.tensor(x, requires_grad=True)
    (first,) = torch.autograd.grad(f(t), t, create_graph=True)
    (second,) = torch.autograd.grad(first, t)
    return first.item(), second.item()


def gradient_history(f: Callable[[Tensor], Tensor], x: float, steps: int, zero_between: bool) -> list[float]:
    """`x.grad` after each of `steps` backward passes through fresh graphs of f(x)."""
    t = torch.tensor(x, requires_grad=True)
    history = []
    for _ in range(steps):
        if zero_between:
            t.grad = None
        f(t).backward()
        history.append(t.grad.item())
    return history


def clamp_weights_(params: Iterable[Tensor], limit: float) -> None:
    """Clamp every parameter into [-limit, limit] in place, outside the graph."""
    with torch.no_grad():
        for p in params:
            p.clamp_(-limit, limit)


def detached_product_grad(f: Callable[[Tensor], Tensor], g: Callable[[Tensor], Tensor], x: float) -> float:
    """d/dx of f(x) * g(x) where g(x) is treated as a constant."""
    t = torch.tensor(x, requires_grad=True)
    (f(t) * g(t).detach()).backward()
    return t.grad.item()


def intermediate_grad(
    inner: Callable[[Tensor], Tensor], outer: Callable[[Tensor], Tensor], x: float
) -> tuple[float, float]:
    """(dL/dh, dL/dx) for h = inner(x) and L = outer(h), from one backward pass."""
    t = torch.tensor(x, requires_grad=True)
    h = inner(t)
    h.retain_grad()
    outer(h).backward()
    return h.grad.item(), t.grad.item()


def count_graph_ops(output: Tensor) -> dict[str, int]:
    """How many nodes of each kind the graph behind `output` has, each node counted once."""
    counts: Counter[str] = Counter()
    seen = set()
    stack = [output.grad_fn]
    while stack:
        node = stack.pop()
        if node is None or node in seen:
            continue
        seen.add(node)
        counts[type(node).__name__] += 1
        stack.extend(parent for parent, _ in node.next_functions)
    return dict(counts)


def per_loss_grads(
    trunk: Callable[[Tensor], Tensor], heads: Sequence[Callable[[Tensor], Tensor]], x: float
) -> list[float]:
    """d head_i(trunk(x)) / dx for each head, running the trunk once."""
    t = torch.tensor(x, requires_grad=True)
    shared = trunk(t)
    grads = []
    for i, head in enumerate(heads):
        (grad,) = torch.autograd.grad(head(shared), t, retain_graph=i < len(heads) - 1)
        grads.append(grad.item())
    return grads
