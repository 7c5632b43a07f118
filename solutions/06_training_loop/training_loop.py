"""Kata 06: the training loop (reference solution)."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset

LossFn = Callable[[Tensor, Tensor], Tensor]


def train_step(
    model: nn.Module, loss_fn: LossFn, optimizer: torch.optim.Optimizer, inputs: Tensor, targets: Tensor
) -> float:
    """One optimisation step on one batch; the batch's loss before the update."""
    optimizer.zero_grad()
    loss = loss_fn(model(inputs), targets)
    loss.backward()
    optimizer.step()
    return loss.item()


def train_epoch(
    model: nn.Module, loss_fn: LossFn, optimizer: torch.optim.Optimizer, loader: DataLoader
) -> float:
    """One pass over `loader` in training mode; the mean loss per sample."""
    model.train()
    total, count = 0.0, 0
    for inputs, targets in loader:
        # loss_fn averages within a batch: weight by the batch size so a short last batch counts less.
        total += train_step(model, loss_fn, optimizer, inputs, targets) * len(inputs)
        count += len(inputs)
    return total / count


def evaluate(model: nn.Module, loss_fn: LossFn, loader: DataLoader) -> float:
    """The mean loss per sample over `loader`, in eval mode and without autograd (given code)."""
    modes = {m: m.training for m in model.modules()}
    model.eval()
    total, count = 0.0, 0
    try:
        with torch.no_grad():
            for inputs, targets in loader:
                total += loss_fn(model(inputs), targets).item() * len(inputs)
                count += len(inputs)
    finally:
        for m, training in modes.items():
            m.training = training
    return total / count


def fit(
    model: nn.Module,
    loss_fn: LossFn,
    optimizer: torch.optim.Optimizer,
    inputs: Tensor,
    targets: Tensor,
    threshold: float,
    max_steps: int,
) -> list[float]:
    """Full-batch steps until a loss falls below `threshold` or `max_steps` are spent."""
    losses = []
    for _ in range(max_steps):
        losses.append(train_step(model, loss_fn, optimizer, inputs, targets))
        if losses[-1] < threshold:
            break
    return losses


def accumulated_step(
    model: nn.Module,
    loss_fn: LossFn,
    optimizer: torch.optim.Optimizer,
    inputs: Tensor,
    targets: Tensor,
    micro_batches: int,
) -> float:
    """One step for the whole batch, its gradient accumulated over `micro_batches` parts."""
    optimizer.zero_grad()
    total = 0.0
    for x, y in zip(
        torch.tensor_split(inputs, micro_batches), torch.tensor_split(targets, micro_batches), strict=True
    ):
        # A mean over the part, scaled by the part's share, sums to the mean over the batch.
        loss = loss_fn(model(x), y) * (len(x) / len(inputs))
        loss.backward()
        total += loss.item()
    optimizer.step()
    return total


def clipped_step(
    model: nn.Module,
    loss_fn: LossFn,
    optimizer: torch.optim.Optimizer,
    inputs: Tensor,
    targets: Tensor,
    max_norm: float,
) -> float:
    """A training step whose gradient norm is clipped to `max_norm`; the norm before clipping."""
    optimizer.zero_grad()
    loss_fn(model(inputs), targets).backward()
    norm = nn.utils.clip_grad_norm_(model.parameters(), max_norm)
    optimizer.step()
    return norm.item()


def train_with_early_stopping(
    run_epoch: Callable[[int], float], max_epochs: int, patience: int
) -> tuple[int, float]:
    """Run epochs until the validation loss has not improved for `patience` epochs."""
    best_epoch, best_loss, waited = -1, math.inf, 0
    for epoch in range(max_epochs):
        loss = run_epoch(epoch)
        if loss < best_loss:
            best_epoch, best_loss, waited = epoch, loss, 0
        else:
            waited += 1
            if waited >= patience:
                break
    return best_epoch, best_loss


def seeded_losses(
    seed: int,
    make_model: Callable[[], nn.Module],
    dataset: Dataset,
    epochs: int,
    batch_size: int,
    lr: float,
) -> list[float]:
    """Train a fresh model and return every batch's loss; the same seed gives the same list."""
    torch.manual_seed(seed)  # initial weights and dropout masks come from the global RNG
    model = make_model()
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    loader = DataLoader(
        dataset, batch_size=batch_size, shuffle=True, generator=torch.Generator().manual_seed(seed)
    )
    model.train()
    loss_fn = nn.MSELoss()
    return [
        train_step(model, loss_fn, optimizer, inputs, targets)
        for _ in range(epochs)
        for inputs, targets in loader
    ]
