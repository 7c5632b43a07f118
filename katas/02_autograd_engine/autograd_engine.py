"""Kata 02: autograd from scratch, a scalar engine in the spirit of micrograd.

Replace each `raise NotImplementedError` with your code, then run
`pytest katas/02_autograd_engine`. The lesson is in README.md beside this file.
The exercises build one engine in order: `Value`'s + and *, then `power`, `tanh`
and `relu`, then `backward` and `zero_grad` over a whole graph; the last one,
`simplenet_grads`, does the same by hand with tensors.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor


class Value:
    """A scalar that remembers how it was computed, so that gradients can flow back through it.

    `data` is the number and `grad` the derivative of the final output with respect
    to it (0.0 until a backward pass fills it). A Value made by an operation keeps its
    inputs in `children`, the operation's symbol in `op`, and in `propagate` a function
    that adds its own `grad`, times the local derivative, to each child's `grad`.
    `exp` below is written out as the pattern; write `__add__` and `__mul__` the same
    way. A plain number on either side becomes a Value first, so `2 * v` and `1 - v` work.

    >>> a, b = Value(2.0), Value(-3.0)
    >>> c = a * b + a
    >>> c.data, c.op, c.children[1] is a
    (-4.0, '+', True)
    >>> c.grad = 1.0
    >>> c.propagate()  # one step backward: d c / d a gets its share from the + node
    >>> a.grad
    1.0

    Docs: https://docs.pytorch.org/docs/stable/notes/autograd.html
    """

    def __init__(self, data: float, children: tuple[Value, ...] = (), op: str = "") -> None:
        self.data = float(data)
        self.grad = 0.0
        self.children = children
        self.op = op
        self.propagate: Callable[[], None] = lambda: None  # a leaf has nothing to pass on

    def __repr__(self) -> str:
        return f"Value(data={self.data:.6g}, grad={self.grad:.6g})"

    def exp(self) -> Value:
        out = Value(math.exp(self.data), (self,), "exp")

        def propagate() -> None:
            self.grad += out.data * out.grad  # d exp(x) / dx is exp(x): the output itself

        out.propagate = propagate
        return out

    def __add__(self, other: Value | float) -> Value:
        raise NotImplementedError("Value.__add__")

    def __mul__(self, other: Value | float) -> Value:
        raise NotImplementedError("Value.__mul__")

    # Everything below is given: the other operators are built from the ones above, and the
    # methods hand over to the module-level exercises further down.

    def __radd__(self, other: float) -> Value:
        return self + other

    def __rmul__(self, other: float) -> Value:
        return self * other

    def __neg__(self) -> Value:
        return self * -1

    def __sub__(self, other: Value | float) -> Value:
        return self + (-other)

    def __rsub__(self, other: float) -> Value:
        return other + (-self)

    def __truediv__(self, other: Value | float) -> Value:
        return self * other**-1

    def __rtruediv__(self, other: float) -> Value:
        return other * self**-1

    def __pow__(self, exponent: float) -> Value:
        return power(self, exponent)

    def tanh(self) -> Value:
        return tanh(self)

    def relu(self) -> Value:
        return relu(self)

    def backward(self) -> None:
        backward(self)  # the module-level function below, not this method

    def zero_grad(self) -> None:
        zero_grad(self)


def power(base: Value, exponent: float) -> Value:
    """Return `base ** exponent` for a plain number `exponent`, recorded for backward.

    `v ** k` calls this, and the given division `a / b` is `a * b ** -1`.
    The local derivative of x**k is k * x**(k - 1).

    >>> x = Value(3.0)
    >>> y = power(x, 2)
    >>> y.data, y.children[0] is x
    (9.0, True)
    >>> y.grad = 1.0
    >>> y.propagate()
    >>> x.grad
    6.0

    Docs: https://docs.pytorch.org/docs/stable/generated/torch.pow.html
    """
    raise NotImplementedError("power")


def tanh(v: Value) -> Value:
    """Return tanh(v), recorded for backward.

    The local derivative is 1 - tanh(x)**2: computed from the output, which the
    forward pass already has.

    >>> x = Value(0.5)
    >>> y = tanh(x)
    >>> round(y.data, 4)
    0.4621
    >>> y.grad = 1.0
    >>> y.propagate()
    >>> round(x.grad, 4)
    0.7864

    Docs: https://docs.pytorch.org/docs/stable/generated/torch.tanh.html
    """
    raise NotImplementedError("tanh")


def relu(v: Value) -> Value:
    """Return max(v, 0), recorded for backward.

    The gradient passes where the input was positive and is 0 elsewhere, at 0
    included (PyTorch makes the same choice).

    >>> x = Value(-1.5)
    >>> y = relu(x)
    >>> y.data
    0.0
    >>> y.grad = 1.0
    >>> y.propagate()
    >>> x.grad
    0.0

    Docs: https://docs.pytorch.org/docs/stable/generated/torch.nn.ReLU.html
    """
    raise NotImplementedError("relu")


def backward(root: Value) -> None:
    """Fill `grad` of every Value that `root` was computed from: d root / d node.

    Set root.grad to 1, then call each node's `propagate` once, a node only after
    every node that uses it: its grad is complete only then. Sorting the graph
    topologically (children before parents) and walking that order in reverse
    does it. Assume the grads start at 0 (a fresh graph, or after `zero_grad`).

    >>> x = Value(1.0)
    >>> y = x**2 + 3 * x + 2
    >>> backward(y)
    >>> x.grad
    5.0

    Docs: https://docs.pytorch.org/docs/stable/generated/torch.autograd.backward.html
    """
    raise NotImplementedError("backward")


def zero_grad(root: Value) -> None:
    """Set `grad` to 0.0 on every Value in the graph of `root`: the root, inner nodes and leaves.

    Every node here keeps its grad (PyTorch keeps only the leaves'), and backward
    adds to grads: without zeroing them all, a second backward pass would start from
    the first one's stale values.

    >>> x = Value(2.0)
    >>> y = x * x
    >>> backward(y)
    >>> zero_grad(y)
    >>> x.grad, y.grad
    (0.0, 0.0)

    Docs: https://docs.pytorch.org/docs/stable/generated/torch.optim.Optimizer.zero_grad.html
    """
    raise NotImplementedError("zero_grad")


def simplenet_grads(params: dict[str, Tensor], x: Tensor, y: Tensor) -> dict[str, Tensor]:
    """The gradients of SimpleNet's MSE loss with respect to each parameter, by hand: no autograd.

    SimpleNet is Linear(2, 4) -> ReLU -> Linear(4, 1), and the loss is
    `((out - y) ** 2).mean()`. `params` holds its state_dict tensors, which do not
    require grad: "fc1.weight" (4, 2), "fc1.bias" (4,), "fc2.weight" (1, 4),
    "fc2.bias" (1,). `x` is (N, 2) and `y` is (N, 1). Run the forward pass, keep
    what backward needs, then apply the chain rule layer by layer, from the loss
    back. Return a dict with the same four keys, each gradient shaped like its parameter.

    >>> params = {"fc1.weight": torch.ones(4, 2), "fc1.bias": torch.zeros(4),
    ...           "fc2.weight": torch.ones(1, 4), "fc2.bias": torch.zeros(1)}
    >>> grads = simplenet_grads(params, torch.tensor([[1.0, 2.0]]), torch.tensor([[10.0]]))
    >>> grads["fc2.bias"]  # out = 12, so d/d out of (out - 10)**2 is 2 * 2 = 4
    tensor([4.])

    Docs: https://docs.pytorch.org/docs/stable/generated/torch.nn.MSELoss.html
    """
    raise NotImplementedError("simplenet_grads")
