"""Kata 12: modern PyTorch: torch.func, hooks, inference mode, graph breaks, anomaly detection.

Replace each `raise NotImplementedError` with your code, then run
`pytest katas/12_modern_pytorch`. The lesson is in README.md beside this file.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn
from torch.func import functional_call, grad, jacrev, vmap


def derivative(f: Callable[[Tensor], Tensor]) -> Callable[[Tensor], Tensor]:
    """Return the function x -> f'(x) for a scalar function `f` of a scalar tensor.

    Return a function, not a number: `torch.func.grad(f)` is one, and it is an
    ordinary function again, so vmap, jacrev and grad itself can transform it
    (`derivative(derivative(f))` is f'').

    >>> derivative(lambda x: x**2 + 3*x + 2)(torch.tensor(1.0))
    tensor(5.)
    >>> derivative(derivative(lambda a: a**3 + 4*a**2 - 5*a + 2))(torch.tensor(2.0))
    tensor(20.)

    Docs: https://docs.pytorch.org/docs/stable/generated/torch.func.grad.html
    """
    raise NotImplementedError("derivative")


def map_rows(f: Callable[[Tensor], Tensor], batch: Tensor) -> Tensor:
    """Apply `f`, written for one row, to every row of the 2-D `batch`; stack the results.

    No Python loop: `torch.func.vmap(f)` runs `f` once on a batched tensor that
    looks like a single row from inside `f`.

    >>> map_rows(lambda v: v / v.norm(), torch.tensor([[3., 4.], [0., 2.]]))
    tensor([[0.6000, 0.8000],
            [0.0000, 1.0000]])

    Docs: https://docs.pytorch.org/docs/stable/generated/torch.func.vmap.html
    """
    raise NotImplementedError("map_rows")


def per_sample_grads(
    model: nn.Module, loss_fn: Callable[[Tensor, Tensor], Tensor], x: Tensor, y: Tensor
) -> dict[str, Tensor]:
    """Return, for every parameter name, the gradient of each sample's own loss, stacked.

    Sample i's loss is `loss_fn(model(x[i:i+1]), y[i:i+1])`; the entry for a parameter
    of shape S has shape (len(x), *S). Compute them all at once: write the loss of one
    sample as a function of a dict of parameters (`torch.func.functional_call`),
    differentiate it with `torch.func.grad` and map that over the batch with
    `torch.func.vmap` (in_dims=(None, 0, 0): the same parameters for every sample).
    Leave the parameters' `.grad` untouched.

    >>> model = nn.Linear(2, 1)
    >>> grads = per_sample_grads(model, nn.functional.mse_loss, torch.randn(5, 2), torch.randn(5, 1))
    >>> {name: tuple(g.shape) for name, g in grads.items()}
    {'weight': (5, 1, 2), 'bias': (5, 1)}

    Docs: https://docs.pytorch.org/tutorials/intermediate/per_sample_grads.html
    """
    raise NotImplementedError("per_sample_grads")


def jacobian(f: Callable[[Tensor], Tensor], x: Tensor) -> Tensor:
    """Return the Jacobian of the vector function `f` at the 1-D `x`: shape (f(x).numel(), x.numel()).

    Row i is the gradient of output i: the vector-Jacobian product of kata 01 with the
    unit vector e_i. `torch.func.jacrev` computes every row in one vectorised pass.

    >>> jacobian(lambda t: t**2, torch.tensor([1., 2., 3.]))
    tensor([[2., 0., 0.],
            [0., 4., 0.],
            [0., 0., 6.]])

    Docs: https://docs.pytorch.org/docs/stable/generated/torch.func.jacrev.html
    """
    raise NotImplementedError("jacobian")


def capture_activations(model: nn.Module, x: Tensor, names: Sequence[str]) -> dict[str, Tensor]:
    """Run `model(x)` once and return {name: output of the submodule `name`} for each name.

    Register a forward hook on each submodule (`model.get_submodule(name)`) that
    stores a detached clone of its output: a later in-place layer could overwrite the
    tensor itself. Remove every hook before returning, also when the forward pass
    raises: `register_forward_hook` returns a handle with `.remove()`.

    >>> net = nn.Sequential(nn.Linear(2, 3), nn.ReLU())
    >>> acts = capture_activations(net, torch.randn(4, 2), ["0", "1"])
    >>> {name: tuple(a.shape) for name, a in acts.items()}
    {'0': (4, 3), '1': (4, 3)}

    Docs: https://docs.pytorch.org/docs/stable/generated/torch.nn.Module.html#torch.nn.Module.register_forward_hook
    """
    raise NotImplementedError("capture_activations")


def clip_grads_during_backward(model: nn.Module, loss: Tensor, limit: float) -> dict[str, float]:
    """Backpropagate `loss`, clamping every parameter's incoming gradient into [-limit, limit].

    Before `loss.backward()`, register a hook on each parameter (`p.register_hook`):
    it records the largest absolute value of the gradient it receives and returns the
    clamped gradient, which autograd then adds to `p.grad`. Return
    {parameter name: that largest value, before clipping}. Remove every hook afterwards.

    >>> layer = nn.Linear(1, 1)
    >>> with torch.no_grad():
    ...     _ = layer.weight.fill_(1.0), layer.bias.fill_(0.0)
    >>> clip_grads_during_backward(layer, layer(torch.tensor([[3.0]])).sum(), limit=1.0)
    {'bias': 1.0, 'weight': 3.0}
    >>> layer.weight.grad
    tensor([[1.]])

    Docs: https://docs.pytorch.org/docs/stable/generated/torch.Tensor.register_hook.html
    """
    raise NotImplementedError("clip_grads_during_backward")


def predict(model: nn.Module, x: Tensor) -> Tensor:
    """Return `model(x)` computed for serving: under `torch.inference_mode()`.

    Inference mode records no graph and skips the bookkeeping that autograd would
    need later, so the result is an *inference tensor*: fast, but never usable in
    a backward pass.

    >>> predict(nn.Linear(2, 1), torch.randn(3, 2)).is_inference()
    True

    Docs: https://docs.pytorch.org/docs/stable/generated/torch.autograd.grad_mode.inference_mode.html
    """
    raise NotImplementedError("predict")


def frozen_features(backbone: nn.Module, x: Tensor) -> Tensor:
    """Return `backbone(x)` as features for training a new head, with the backbone frozen.

    No graph through the backbone, yet the result must stay an ordinary tensor that
    a trainable layer can save for its backward pass: `torch.no_grad()`, not
    `torch.inference_mode()`.

    >>> features = frozen_features(nn.Linear(2, 3), torch.randn(4, 2))
    >>> features.requires_grad, features.is_inference()
    (False, False)

    Docs: https://docs.pytorch.org/docs/stable/generated/torch.no_grad.html
    """
    raise NotImplementedError("frozen_features")


def count_graph_breaks(fn: Callable[..., Tensor], *args: Tensor) -> int:
    """Return how many graph breaks torch.compile's tracer (Dynamo) makes when it runs fn(*args).

    `torch._dynamo.explain(fn)(*args)` traces `fn` without compiling it (no C++
    compiler needed) and reports, among other things, `graph_break_count`.
    torch._dynamo is a private module, but explain has no public equivalent: it is the
    one private name a kata file may use.

    >>> count_graph_breaks(lambda x: torch.sin(x) + 1, torch.tensor(2.0))
    0

    Docs: https://docs.pytorch.org/docs/stable/torch.compiler_troubleshooting.html
    """
    raise NotImplementedError("count_graph_breaks")


def coin_flip_computation(x: Tensor) -> Tensor:
    """Return x**2 if a fresh random number is above 0.5, else sin(x), without a graph break.

    The article's `if torch.rand(1) > 0.5:` makes Python read a tensor's value, which
    breaks the graph. Draw the same single random number (`torch.rand(())`) and select
    with `torch.where` instead; the result has the shape of `x`.

    >>> _ = torch.manual_seed(0)  # torch.rand(()) is then 0.4963: tails
    >>> coin_flip_computation(torch.tensor(2.0))
    tensor(0.9093)

    Docs: https://docs.pytorch.org/docs/stable/generated/torch.where.html
    """
    raise NotImplementedError("coin_flip_computation")


def nan_gradient_source(f: Callable[[Tensor], Tensor], x: Tensor) -> str | None:
    """Return the name of the backward node that produced a NaN gradient in f(x).backward(), or None.

    Backpropagate inside `torch.autograd.detect_anomaly()`: it raises a RuntimeError
    saying "Function 'SqrtBackward0' returned nan values in its 0th output."; return
    that name. Work on `x.detach().requires_grad_()`, not on the caller's tensor.

    >>> nan_gradient_source(lambda x: torch.where(x > 0, x.sqrt(), 0).sum(), torch.tensor([-1.0, 4.0]))
    'SqrtBackward0'

    Docs: https://docs.pytorch.org/docs/stable/autograd.html#anomaly-detection
    """
    raise NotImplementedError("nan_gradient_source")
