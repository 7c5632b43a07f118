"""Kata 12: modern PyTorch (reference solution)."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn
from torch.func import functional_call, grad, jacrev, vmap


def derivative(f: Callable[[Tensor], Tensor]) -> Callable[[Tensor], Tensor]:
    """The function x -> f'(x), composable with vmap and with itself."""
    return grad(f)


def map_rows(f: Callable[[Tensor], Tensor], batch: Tensor) -> Tensor:
    """f applied to every row of `batch`, written for one row and vectorised by vmap."""
    return vmap(f)(batch)


def per_sample_grads(
    model: nn.Module, loss_fn: Callable[[Tensor, Tensor], Tensor], x: Tensor, y: Tensor
) -> dict[str, Tensor]:
    """The gradient of each sample's own loss for every parameter, stacked along a new first dimension."""
    params = {name: p.detach() for name, p in model.named_parameters()}

    def sample_loss(params: dict[str, Tensor], xi: Tensor, yi: Tensor) -> Tensor:
        prediction = functional_call(model, params, (xi.unsqueeze(0),))  # a batch of one
        return loss_fn(prediction, yi.unsqueeze(0))

    return vmap(grad(sample_loss), in_dims=(None, 0, 0))(params, x, y)


def jacobian(f: Callable[[Tensor], Tensor], x: Tensor) -> Tensor:
    """The Jacobian of the vector function `f` at `x`, one row per output."""
    return jacrev(f)(x)


def capture_activations(model: nn.Module, x: Tensor, names: Sequence[str]) -> dict[str, Tensor]:
    """The outputs of the named submodules during one forward pass of `model` on `x`."""
    captured: dict[str, Tensor] = {}

    def keep(name: str):
        def hook(module: nn.Module, inputs: tuple[Tensor, ...], output: Tensor) -> None:
            captured[name] = output.detach().clone()  # a later in-place layer may overwrite it

        return hook

    handles = []
    try:
        for name in names:
            handles.append(model.get_submodule(name).register_forward_hook(keep(name)))
        with torch.no_grad():
            model(x)
    finally:
        for handle in handles:
            handle.remove()
    return captured


def clip_grads_during_backward(model: nn.Module, loss: Tensor, limit: float) -> dict[str, float]:
    """Backpropagate `loss`, clamping each parameter's incoming gradient into [-limit, limit]."""
    largest: dict[str, float] = {}

    def clip(name: str):
        def hook(gradient: Tensor) -> Tensor:
            largest[name] = gradient.abs().max().item()
            return gradient.clamp(-limit, limit)

        return hook

    handles = []
    try:
        for name, p in model.named_parameters():
            if p.requires_grad:
                handles.append(p.register_hook(clip(name)))
        loss.backward()
    finally:
        for handle in handles:
            handle.remove()
    return largest


def predict(model: nn.Module, x: Tensor) -> Tensor:
    """model(x) for serving: no graph, no version counters."""
    with torch.inference_mode():
        return model(x)


def frozen_features(backbone: nn.Module, x: Tensor) -> Tensor:
    """backbone(x) without a graph, as a plain tensor that a trainable head can still use."""
    with torch.no_grad():
        return backbone(x)


def count_graph_breaks(fn: Callable[..., Tensor], *args: Tensor) -> int:
    """How many times torch.compile's tracer (Dynamo) has to break the graph of fn(*args)."""
    # torch._dynamo is private, but explain has no public equivalent: torch.compile itself only
    # reports graph breaks in its logs.
    return torch._dynamo.explain(fn)(*args).graph_break_count


def coin_flip_computation(x: Tensor) -> Tensor:
    """The article's random control flow without a Python `if`: one graph for torch.compile."""
    heads = torch.rand(()) > 0.5
    return torch.where(heads, x**2, torch.sin(x))


def nan_gradient_source(f: Callable[[Tensor], Tensor], x: Tensor) -> str | None:
    """The backward node whose output first holds a NaN when f(x) is backpropagated, or None."""
    x = x.detach().requires_grad_()
    try:
        with torch.autograd.detect_anomaly():
            f(x).backward()
    except RuntimeError as err:
        found = re.search(r"Function '(\w+)' returned nan values", str(err))
        if found is None:
            raise
        return found.group(1)
    return None
