"""Kata 07: training dynamics (reference solution)."""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Iterable

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader

LossFn = Callable[[Tensor, Tensor], Tensor]


def overfit_one_batch(
    model: nn.Module,
    loss_fn: LossFn,
    optimizer: torch.optim.Optimizer,
    loader: DataLoader,
    threshold: float,
    max_steps: int,
) -> tuple[int | None, list[float]]:
    """Train on the loader's first batch only; (index of the first loss below threshold or None, losses)."""
    inputs, targets = next(iter(loader))
    losses = []
    for step in range(max_steps):
        optimizer.zero_grad()
        loss = loss_fn(model(inputs), targets)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
        if losses[-1] < threshold:
            return step, losses
    return None, losses


def lr_range_test(
    model: nn.Module,
    loss_fn: LossFn,
    optimizer: torch.optim.Optimizer,
    loader: DataLoader,
    lr_min: float,
    lr_max: float,
    diverge_factor: float = 4.0,
) -> tuple[list[float], list[float], float | None]:
    """One pass with the learning rate swept exponentially; the model and optimizer restored after."""
    saved = copy.deepcopy((model.state_dict(), optimizer.state_dict()))  # copies, not live references
    last = len(loader) - 1
    lrs, losses, diverged_at, best = [], [], None, math.inf
    for i, (inputs, targets) in enumerate(loader):
        lr = lr_min * (lr_max / lr_min) ** (i / last)
        for group in optimizer.param_groups:
            group["lr"] = lr
        optimizer.zero_grad()
        loss = loss_fn(model(inputs), targets)
        lrs.append(lr)
        losses.append(loss.item())
        if not math.isfinite(losses[-1]) or losses[-1] > diverge_factor * best:
            diverged_at = lr
            break
        best = min(best, losses[-1])
        loss.backward()
        optimizer.step()
    model.load_state_dict(saved[0])
    optimizer.load_state_dict(saved[1])
    return lrs, losses, diverged_at


def train_with_divergence_guard(
    model: nn.Module,
    loss_fn: LossFn,
    optimizer: torch.optim.Optimizer,
    batches: Iterable[tuple[Tensor, Tensor]],
    max_loss: float,
) -> tuple[list[float], int | None]:
    """Train batch by batch; stop before the update on the first loss that is not finite or too large."""
    losses = []
    for i, (inputs, targets) in enumerate(batches):
        optimizer.zero_grad()
        loss = loss_fn(model(inputs), targets)
        losses.append(loss.item())
        if not math.isfinite(losses[-1]) or losses[-1] > max_loss:  # nan > max_loss is False
            return losses, i
        loss.backward()
        optimizer.step()
    return losses, None


def activation_stds(model: nn.Sequential, inputs: Tensor) -> list[float]:
    """The standard deviation of every nn.Linear layer's output as `inputs` flow through `model`."""
    stds = []
    with torch.no_grad():
        x = inputs
        for layer in model:
            x = layer(x)
            if isinstance(layer, nn.Linear):
                stds.append(x.std().item())
    return stds


def kaiming_init(model: nn.Module) -> None:
    """He initialisation of every nn.Linear in `model`, in place: weights N(0, 2 / fan_in), biases 0."""
    for module in model.modules():
        if isinstance(module, nn.Linear):
            nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
            if module.bias is not None:
                nn.init.zeros_(module.bias)


def fit_keep_best(
    model: nn.Module,
    train_epoch: Callable[[], float],
    validate: Callable[[], float],
    max_epochs: int,
    patience: int,
) -> tuple[list[float], list[float], int]:
    """Early stopping that ends with the weights of the best validation epoch restored."""
    train_losses, val_losses = [], []
    best_loss, best_epoch, best_state = math.inf, -1, None
    for epoch in range(max_epochs):
        train_losses.append(train_epoch())
        val_losses.append(validate())
        if val_losses[-1] < best_loss:
            best_loss, best_epoch = val_losses[-1], epoch
            best_state = copy.deepcopy(model.state_dict())  # state_dict() shares the live tensors
        elif epoch - best_epoch >= patience:
            break
    if best_state is not None:
        model.load_state_dict(best_state)
    return train_losses, val_losses, best_epoch


def gradient_norms(
    model: nn.Module,
    loss_fn: LossFn,
    optimizer: torch.optim.Optimizer,
    batches: Iterable[tuple[Tensor, Tensor]],
) -> dict[str, list[float]]:
    """Train one step per batch; each trainable parameter's gradient norm per step, seen by hooks."""
    norms: dict[str, list[float]] = {}
    handles = []
    for name, p in model.named_parameters():
        if p.requires_grad:
            norms[name] = []
            handles.append(p.register_hook(lambda grad, name=name: norms[name].append(grad.norm().item())))
    try:
        for inputs, targets in batches:
            optimizer.zero_grad()
            loss_fn(model(inputs), targets).backward()
            optimizer.step()
    finally:
        for handle in handles:
            handle.remove()
    return norms
