"""Kata 05: losses and optimizers (reference solution)."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence

import torch
from torch import Tensor, nn


def _reduce(losses: Tensor, reduction: str) -> Tensor:
    if reduction == "mean":
        return losses.mean()
    if reduction == "sum":
        return losses.sum()
    if reduction == "none":
        return losses
    raise ValueError(f"{reduction!r} is not a valid value for reduction: use 'mean', 'sum' or 'none'")


def mse_loss(pred: Tensor, target: Tensor, reduction: str = "mean") -> Tensor:
    """Mean squared error, like nn.MSELoss(reduction=reduction)."""
    return _reduce((pred - target) ** 2, reduction)


def cross_entropy(logits: Tensor, target: Tensor, reduction: str = "mean") -> Tensor:
    """Cross-entropy of class indices `target` under `logits`, like F.cross_entropy."""
    # log softmax = x - logsumexp(x); logsumexp subtracts the row's max first, so exp() never overflows.
    log_probs = logits - torch.logsumexp(logits, dim=1, keepdim=True)
    losses = -log_probs.gather(1, target.unsqueeze(1)).squeeze(1)
    return _reduce(losses, reduction)


def zero_grad(params: Iterable[Tensor], set_to_none: bool = True) -> None:
    """Reset the gradients of `params` the way Optimizer.zero_grad does."""
    for p in params:
        if p.grad is None:
            continue
        if set_to_none:
            p.grad = None
        else:
            p.grad.zero_()


def sgd_step(
    params: Sequence[Tensor],
    state: dict,
    lr: float,
    momentum: float = 0.0,
    dampening: float = 0.0,
    weight_decay: float = 0.0,
) -> None:
    """One step of torch.optim.SGD; `state` keeps the momentum buffers between calls."""
    with torch.no_grad():
        for p in params:
            if p.grad is None:
                continue
            g = p.grad
            if weight_decay:
                g = g + weight_decay * p  # out of place: p.grad must stay the gradient
            if momentum:
                buf = state.get(p)
                if buf is None:
                    buf = state[p] = g.clone()
                else:
                    buf.mul_(momentum).add_(g, alpha=1 - dampening)
                g = buf
            p.add_(g, alpha=-lr)


def adam_step(
    params: Sequence[Tensor],
    state: dict,
    lr: float = 1e-3,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
    weight_decay: float = 0.0,
) -> None:
    """One step of torch.optim.Adam; `state` keeps each parameter's step count and moments."""
    beta1, beta2 = betas
    with torch.no_grad():
        for p in params:
            if p.grad is None:
                continue
            g = p.grad
            if weight_decay:
                g = g + weight_decay * p
            s = state.get(p)
            if s is None:
                s = state[p] = {"step": 0, "exp_avg": torch.zeros_like(p), "exp_avg_sq": torch.zeros_like(p)}
            s["step"] += 1
            s["exp_avg"].mul_(beta1).add_(g, alpha=1 - beta1)
            s["exp_avg_sq"].mul_(beta2).addcmul_(g, g, value=1 - beta2)
            m_hat = s["exp_avg"] / (1 - beta1 ** s["step"])
            v_hat = s["exp_avg_sq"] / (1 - beta2 ** s["step"])
            p.sub_(lr * m_hat / (v_hat.sqrt() + eps))


def warmup_cosine_lrs(
    base_lr: float, total_epochs: int, warmup_epochs: int = 0, start_factor: float = 0.1, min_lr: float = 0.0
) -> list[float]:
    """The learning rate of each epoch: linear warmup, then cosine annealing down towards min_lr."""
    lrs = []
    for epoch in range(total_epochs):
        if epoch < warmup_epochs:
            lrs.append(base_lr * (start_factor + (1 - start_factor) * epoch / warmup_epochs))
        else:
            progress = (epoch - warmup_epochs) / (total_epochs - warmup_epochs)
            lrs.append(min_lr + (base_lr - min_lr) * (1 + math.cos(math.pi * progress)) / 2)
    return lrs


def train_with_schedule(
    model: nn.Module,
    loss_fn: Callable[[Tensor, Tensor], Tensor],
    batches: Sequence[tuple[Tensor, Tensor]],
    epochs: int,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
) -> list[float]:
    """Train for `epochs` epochs over `batches`; return the learning rate each epoch used."""
    lrs = []
    for _ in range(epochs):
        lrs.append(optimizer.param_groups[0]["lr"])
        for inputs, targets in batches:
            optimizer.zero_grad()
            loss_fn(model(inputs), targets).backward()
            optimizer.step()
        scheduler.step()  # once per epoch, after that epoch's optimizer steps
    return lrs
