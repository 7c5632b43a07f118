"""Mistakes learners make in kata 02_autograd_engine.

The engine's pieces call each other: a mutant that needs the Value class or another
exercise imports `autograd_engine` when it runs (the module under test, whose other
names are the reference solution's). A mutant of `Value` is a whole class: it inherits
the given operators from `_GivenOperators` and gets + and * wrong.
"""

import importlib
import math

import torch

from tests.mutants import mutant

KATA = "02_autograd_engine"


def _engine():
    return importlib.import_module("autograd_engine")


# --- Value ---


class _GivenOperators:
    """What the stub gives: the constructor, the operators built on + and *, the hand-overs."""

    def __init__(self, data, children=(), op=""):
        self.data = float(data)
        self.grad = 0.0
        self.children = children
        self.op = op
        self.propagate = lambda: None

    def exp(self):
        out = type(self)(math.exp(self.data), (self,), "exp")

        def propagate():
            self.grad += out.data * out.grad

        out.propagate = propagate
        return out

    def _binary(self, other, data, op, local):
        other = other if isinstance(other, _GivenOperators) else type(self)(other)
        out = type(self)(data(self.data, other.data), (self, other), op)
        out.propagate = lambda: local(self, other, out)
        return out

    def __radd__(self, other):
        return self + other

    def __rmul__(self, other):
        return self * other

    def __neg__(self):
        return self * -1

    def __sub__(self, other):
        return self + (-other)

    def __rsub__(self, other):
        return other + (-self)

    def __truediv__(self, other):
        return self * other**-1

    def __rtruediv__(self, other):
        return other * self**-1

    def __pow__(self, exponent):
        return _engine().power(self, exponent)

    def tanh(self):
        return _engine().tanh(self)

    def relu(self):
        return _engine().relu(self)


def _add_right(a, b, out):
    a.grad += out.grad
    b.grad += out.grad


def _mul_right(a, b, out):
    a.grad += b.data * out.grad
    b.grad += a.data * out.grad


@mutant(KATA, "Value", says="(=) instead of adding")
class ValueAssignsGrads(_GivenOperators):
    """propagate assigns the children's grads (=) instead of adding to them (+=)."""

    def __add__(self, other):
        def local(a, b, out):
            a.grad = out.grad
            b.grad = out.grad

        return self._binary(other, lambda x, y: x + y, "+", local)

    def __mul__(self, other):
        def local(a, b, out):
            a.grad = b.data * out.grad
            b.grad = a.data * out.grad

        return self._binary(other, lambda x, y: x * y, "*", local)


@mutant(KATA, "Value", says="the other factor is missing")
class ValueMulWithoutTheOtherFactor(_GivenOperators):
    """The product's propagate passes out.grad on unchanged, as the sum's does: d(a*b)/da = 1."""

    def __add__(self, other):
        return self._binary(other, lambda x, y: x + y, "+", _add_right)

    def __mul__(self, other):
        return self._binary(other, lambda x, y: x * y, "*", _add_right)


@mutant(KATA, "Value", says="multiplies it by out.grad")
class ValueMulWithoutUpstream(_GivenOperators):
    """The product's propagate adds the local derivative but forgets to multiply it by out.grad."""

    def __add__(self, other):
        return self._binary(other, lambda x, y: x + y, "+", _add_right)

    def __mul__(self, other):
        def local(a, b, out):
            a.grad += b.data
            b.grad += a.data

        return self._binary(other, lambda x, y: x * y, "*", local)


@mutant(KATA, "Value", says="turn it into a Value first")
class ValueWithoutPlainNumbers(_GivenOperators):
    """+ and * assume the other operand is a Value: 2 * v and v + 1 crash."""

    def __add__(self, other):
        out = type(self)(self.data + other.data, (self, other), "+")
        out.propagate = lambda: _add_right(self, other, out)
        return out

    def __mul__(self, other):
        out = type(self)(self.data * other.data, (self, other), "*")
        out.propagate = lambda: _mul_right(self, other, out)
        return out


# --- power ---


@mutant(KATA, "power", says="the factor k is missing")
def power_without_the_factor_k(base, exponent):
    """Differentiates x**k as x**(k - 1), dropping the factor k."""
    out = _engine().Value(base.data**exponent, (base,), "**")

    def propagate():
        base.grad += base.data ** (exponent - 1) * out.grad

    out.propagate = propagate
    return out


@mutant(KATA, "power", says="the exponent was not lowered")
def power_exponent_not_lowered(base, exponent):
    """Differentiates x**k as k * x**k."""
    out = _engine().Value(base.data**exponent, (base,), "**")

    def propagate():
        base.grad += exponent * base.data**exponent * out.grad

    out.propagate = propagate
    return out


# --- tanh ---


@mutant(KATA, "tanh", says="the derivative used the input")
def tanh_derivative_from_the_input(v):
    """Uses 1 - x**2, the input squared, where the derivative is 1 - tanh(x)**2."""
    out = _engine().Value(math.tanh(v.data), (v,), "tanh")

    def propagate():
        v.grad += (1 - v.data**2) * out.grad

    out.propagate = propagate
    return out


@mutant(KATA, "tanh", says="multiplies it by out.grad")
def tanh_without_upstream(v):
    """Adds 1 - tanh(x)**2 without multiplying it by out.grad."""
    out = _engine().Value(math.tanh(v.data), (v,), "tanh")

    def propagate():
        v.grad += 1 - out.data**2

    out.propagate = propagate
    return out


# --- relu ---


@mutant(KATA, "relu", says="where the input was negative")
def relu_derivative_on_the_wrong_side(v):
    """Passes the gradient where the input was negative instead of positive."""
    out = _engine().Value(max(v.data, 0.0), (v,), "relu")

    def propagate():
        v.grad += (v.data < 0) * out.grad

    out.propagate = propagate
    return out


@mutant(KATA, "relu", says="at exactly 0")
def relu_passes_at_zero(v):
    """Passes the gradient where the input is >= 0: at 0 PyTorch passes none."""
    out = _engine().Value(max(v.data, 0.0), (v,), "relu")

    def propagate():
        v.grad += (v.data >= 0) * out.grad

    out.propagate = propagate
    return out


# --- backward ---


@mutant(KATA, "backward", says="topological order")
def backward_recursive_without_order(root):
    """Recursion from the root: each node propagates, then its children do, once per path."""
    root.grad = 1.0

    def visit(node):
        node.propagate()
        for child in node.children:
            visit(child)

    visit(root)


@mutant(KATA, "backward", says="topological order")
def backward_at_first_visit(root):
    """Propagates each node once, but at its first visit: a shared node before all its users."""
    root.grad = 1.0
    seen = set()

    def visit(node):
        if node not in seen:
            seen.add(node)
            node.propagate()
            for child in node.children:
                visit(child)

    visit(root)


@mutant(KATA, "backward", says="leaves first")
def backward_leaves_first(root):
    """Builds the topological order but walks it without reversing it."""
    order, seen = [], set()

    def visit(node):
        if node not in seen:
            seen.add(node)
            for child in node.children:
                visit(child)
            order.append(node)

    visit(root)
    root.grad = 1.0
    for node in order:
        node.propagate()


@mutant(KATA, "backward", says="never set to 1.0")
def backward_without_the_seed(root):
    """Walks the graph in the right order but never sets root.grad = 1.0."""
    order, seen = [], set()

    def visit(node):
        if node not in seen:
            seen.add(node)
            for child in node.children:
                visit(child)
            order.append(node)

    visit(root)
    for node in reversed(order):
        node.propagate()


# --- zero_grad ---


def _all_nodes(root):
    found, todo = [], [root]
    while todo:
        node = todo.pop()
        if all(node is not seen for seen in found):
            found.append(node)
            todo.extend(node.children)
    return found


@mutant(KATA, "zero_grad", says="only the leaves were zeroed")
def zero_grad_only_the_leaves(root):
    """Zeroes the leaves only, as optimizer.zero_grad() zeroes parameters: inner nodes keep stale grads."""
    for node in _all_nodes(root):
        if not node.children:
            node.grad = 0.0


@mutant(KATA, "zero_grad", says="only the root was zeroed")
def zero_grad_only_the_root(root):
    """Zeroes the root's grad and nothing else."""
    root.grad = 0.0


# --- simplenet_grads ---


def _grads(params, x, y, scale=2.0, mask_negative=False, fc2_from_h=False, sum_bias=True):
    w1, b1, w2, b2 = params["fc1.weight"], params["fc1.bias"], params["fc2.weight"], params["fc2.bias"]
    h = x @ w1.T + b1
    a = torch.relu(h)
    d_out = scale * (a @ w2.T + b2 - y)
    d_h = (d_out @ w2) * ((h < 0) if mask_negative else (h > 0))
    reduce = (lambda t: t.sum(0)) if sum_bias else (lambda t: t)
    return {
        "fc1.weight": d_h.T @ x,
        "fc1.bias": reduce(d_h),
        "fc2.weight": d_out.T @ (h if fc2_from_h else a),
        "fc2.bias": reduce(d_out),
    }


@mutant(KATA, "simplenet_grads", says="the factor 2 is missing")
def simplenet_without_the_factor_2(params, x, y):
    """Differentiates the mean of (out - y)**2 as (out - y) / N."""
    return _grads(params, x, y, scale=1.0 / y.numel())


@mutant(KATA, "simplenet_grads", says="the mean's 1/N is missing")
def simplenet_sum_not_mean(params, x, y):
    """Differentiates the loss as a sum of squares: the mean's 1/N is missing."""
    return _grads(params, x, y, scale=2.0)


@mutant(KATA, "simplenet_grads", says="where its input h was negative")
def simplenet_relu_on_the_wrong_side(params, x, y):
    """Lets the gradient through the ReLU where h < 0 instead of h > 0."""
    return _grads(params, x, y, scale=2.0 / y.numel(), mask_negative=True)


@mutant(KATA, "simplenet_grads", says="fc2 sees relu(h)")
def simplenet_fc2_from_the_pre_activation(params, x, y):
    """Computes fc2.weight's gradient from h, the ReLU's input, instead of relu(h)."""
    return _grads(params, x, y, scale=2.0 / y.numel(), fc2_from_h=True)


@mutant(KATA, "simplenet_grads", says="sums over the batch")
def simplenet_bias_not_summed(params, x, y):
    """Returns the per-example bias gradients, shaped (N, 4) and (N, 1), without summing them."""
    return _grads(params, x, y, scale=2.0 / y.numel(), sum_bias=False)


@mutant(KATA, "simplenet_grads", says="Autograd recorded a graph", everywhere=True)
def simplenet_through_autograd(params, x, y):
    """Makes the parameters require grad and lets autograd compute the gradients."""
    p = {k: v.detach().clone().requires_grad_() for k, v in params.items()}
    out = torch.relu(x @ p["fc1.weight"].T + p["fc1.bias"]) @ p["fc2.weight"].T + p["fc2.bias"]
    ((out - y) ** 2).mean().backward()
    return {k: v.grad for k, v in p.items()}
