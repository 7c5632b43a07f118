"""Kata 13: capstone, two spirals end to end (reference solution)."""

from __future__ import annotations

import math
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset, random_split


def make_spirals(
    n_per_class: int, noise: float, generator: torch.Generator, turns: float = 1.25
) -> tuple[Tensor, Tensor]:
    radius = 0.2 + 0.8 * torch.rand(2, n_per_class, generator=generator)
    # Class 1 is class 0 turned by half a turn: the two arms interleave.
    angle = 2 * math.pi * turns * radius + math.pi * torch.tensor([[0.0], [1.0]])
    points = torch.stack([radius * torch.cos(angle), radius * torch.sin(angle)], dim=-1).reshape(-1, 2)
    points = points + noise * torch.randn(points.shape, generator=generator)
    labels = torch.arange(2).repeat_interleave(n_per_class)
    return points, labels


class SpiralDataset(Dataset):
    def __init__(self, n_per_class: int, noise: float, seed: int) -> None:
        generator = torch.Generator().manual_seed(seed)
        self.points, self.labels = make_spirals(n_per_class, noise, generator)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        return self.points[index], self.labels[index]


def split_loaders(
    dataset: Dataset, test_fraction: float, batch_size: int, seed: int
) -> tuple[DataLoader, DataLoader]:
    """Seeded train and test loaders over a random split of `dataset` (given code)."""
    n_test = int(test_fraction * len(dataset))
    train, test = random_split(
        dataset, [len(dataset) - n_test, n_test], generator=torch.Generator().manual_seed(seed)
    )
    # The loader's own generator: the shuffling order depends on the seed, not on the global RNG.
    train_loader = DataLoader(
        train, batch_size=batch_size, shuffle=True, generator=torch.Generator().manual_seed(seed)
    )
    return train_loader, DataLoader(test, batch_size=batch_size)


def build_model(hidden: int = 64) -> nn.Module:
    return nn.Sequential(
        nn.Linear(2, hidden),
        nn.Tanh(),
        nn.Linear(hidden, hidden),
        nn.Tanh(),
        nn.Linear(hidden, 2),
    )


def predict(model: nn.Module, x: Tensor) -> Tensor:
    """model(x) in eval mode without a graph; every submodule's mode restored (given code)."""
    modes = {m: m.training for m in model.modules()}
    model.eval()
    try:
        with torch.no_grad():
            return model(x)
    finally:
        # model.train(was_training) would flatten a mix, e.g. a frozen batch norm kept in eval.
        for m, training in modes.items():
            m.training = training


def evaluate_accuracy(model: nn.Module, loader: DataLoader) -> float:
    device = next(model.parameters()).device
    correct, count = 0, 0
    for points, labels in loader:
        labels = labels.to(device)
        correct += (predict(model, points.to(device)).argmax(dim=1) == labels).sum().item()
        count += len(labels)
    return correct / count


def train_one_epoch(model: nn.Module, optimizer: torch.optim.Optimizer, loader: DataLoader) -> float:
    """One epoch on the model's device; the mean loss per sample (given code)."""
    device = next(model.parameters()).device
    model.train()
    # Summed on the device in float64 (what .item() per batch would give), read once at the end:
    # a .item() per batch waits for the GPU every step.
    total, count = torch.zeros((), dtype=torch.float64, device=device), 0
    for points, labels in loader:
        points, labels = points.to(device), labels.to(device)
        optimizer.zero_grad()
        loss = F.cross_entropy(model(points), labels)
        loss.backward()
        optimizer.step()
        total += loss.detach().double() * len(labels)
        count += len(labels)
    return (total / count).item()


def save_atomically(obj: Any, path: str | os.PathLike) -> None:
    """torch.save(obj, path), but a crash midway leaves the previous file intact (given code)."""
    path = Path(path)
    # Same directory: os.replace is atomic only within one file system.
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def save_training_state(
    path: str | os.PathLike,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    loader: DataLoader,
    epoch: int,
    losses: list[float],
) -> None:
    state = {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "epoch": epoch,
        "losses": list(losses),
        "rng": {
            "torch": torch.get_rng_state(),
            "loader": None if loader.generator is None else loader.generator.get_state(),
        },
    }
    save_atomically(state, path)


def resume_training(
    path: str | os.PathLike, model: nn.Module, optimizer: torch.optim.Optimizer, loader: DataLoader
) -> tuple[int, list[float]]:
    # RNG states must be CPU tensors; load_state_dict copies the weights onto the model's device.
    state = torch.load(path, map_location="cpu", weights_only=True)
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    torch.set_rng_state(state["rng"]["torch"])
    if loader.generator is not None:
        loader.generator.set_state(state["rng"]["loader"])
    return state["epoch"], state["losses"]


def fit(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    loader: DataLoader,
    epochs: int,
    path: str | os.PathLike,
    on_epoch_end: Callable[[int, float], None] | None = None,
) -> list[float]:
    start, losses = resume_training(path, model, optimizer, loader) if os.path.exists(path) else (0, [])
    for epoch in range(start + 1, epochs + 1):
        losses.append(train_one_epoch(model, optimizer, loader))
        save_training_state(path, model, optimizer, loader, epoch, losses)
        if on_epoch_end is not None:
            on_epoch_end(epoch, losses[-1])
    return losses


def run_experiment(workdir: str | os.PathLike, seed: int, epochs: int) -> float:
    dataset = SpiralDataset(n_per_class=200, noise=0.05, seed=seed)
    train_loader, test_loader = split_loaders(dataset, test_fraction=0.25, batch_size=32, seed=seed)
    torch.manual_seed(seed)
    model = build_model(64)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    fit(model, optimizer, train_loader, epochs, Path(workdir) / "checkpoint.pt")
    return evaluate_accuracy(model, test_loader)
