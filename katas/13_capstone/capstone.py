"""Kata 13: capstone, two spirals end to end.

Replace each `raise NotImplementedError` with your code, then run
`pytest katas/13_capstone`. The lesson is in README.md beside this file.
SpiralDataset is a class: implement every method that raises. Later exercises
use earlier ones, so work in order. The functions whose docstring starts with
"Given:" are finished code from habits practised in earlier katas: read them and
call them, there is nothing to write there.
"""

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
    """Return two interleaved spirals: (points, labels), every random number drawn from `generator`.

    For each class k in (0, 1), draw `n_per_class` radii r uniformly in [0.2, 1). The point
    is r * (cos a, sin a) with the angle a = 2 * pi * turns * r + pi * k: the angle grows
    with the radius, and class 1 is class 0 turned by half a turn. Then add
    `noise * N(0, 1)` to every coordinate.

    points: float32 of shape (2 * n_per_class, 2), the rows of class 0 first;
    labels: int64 of shape (2 * n_per_class,), n_per_class zeros then n_per_class ones.
    Pass `generator=` to every random call: the global RNG stays untouched.

    >>> points, labels = make_spirals(3, 0.0, torch.Generator().manual_seed(0))
    >>> points.shape, labels
    (torch.Size([6, 2]), tensor([0, 0, 0, 1, 1, 1]))

    Docs: https://docs.pytorch.org/docs/stable/generated/torch.rand.html
    """
    raise NotImplementedError("make_spirals")


class SpiralDataset(Dataset):
    """A map-style Dataset over `make_spirals(n_per_class, noise, generator)`.

    `__init__` makes the points once, with a `torch.Generator` seeded with `seed` (the
    same seed gives the same dataset, whatever the global RNG does); `__len__` is the
    number of points (both classes); `__getitem__(i)` returns (point i, label i): a
    float32 tensor of shape (2,) and an int64 scalar tensor.

    >>> ds = SpiralDataset(n_per_class=100, noise=0.05, seed=0)
    >>> len(ds), ds[0][0].shape, ds[0][1]
    (200, torch.Size([2]), tensor(0))

    Docs: https://docs.pytorch.org/docs/stable/data.html#map-style-datasets
    """

    def __init__(self, n_per_class: int, noise: float, seed: int) -> None:
        raise NotImplementedError("SpiralDataset.__init__")

    def __len__(self) -> int:
        raise NotImplementedError("SpiralDataset.__len__")

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        raise NotImplementedError("SpiralDataset.__getitem__")


def split_loaders(
    dataset: Dataset, test_fraction: float, batch_size: int, seed: int
) -> tuple[DataLoader, DataLoader]:
    """Given: finished code, nothing to write. Seeded train and test loaders over a random split.

    You practised its parts in kata 11 (`split_dataset`, `make_loader`) and seeding in kata 06
    (`seeded_losses`). The test part holds `int(test_fraction * len(dataset))` samples and
    the train part the rest, disjoint. The split and the train loader's reshuffling every
    epoch depend on `seed` alone, through generators of their own (the global RNG is left
    alone); the test loader does not shuffle.

    >>> train_loader, test_loader = split_loaders(SpiralDataset(100, 0.05, 0), 0.25, 32, seed=0)
    >>> len(train_loader.dataset), len(test_loader.dataset)
    (150, 50)

    Docs: https://docs.pytorch.org/docs/stable/data.html#torch.utils.data.random_split
    """
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
    """Return an MLP for the spirals: Linear(2, hidden), Linear(hidden, hidden), Linear(hidden, 2).

    Put a nonlinearity (nn.Tanh or nn.ReLU) after each of the first two layers and
    nothing after the last: the model returns two logits per point, and
    `F.cross_entropy` applies the softmax itself. Draw the initial weights from the
    global RNG as every layer does (do not seed here: the caller seeds).

    >>> build_model(64)(torch.zeros(5, 2)).shape
    torch.Size([5, 2])

    Docs: https://docs.pytorch.org/docs/stable/generated/torch.nn.Sequential.html
    """
    raise NotImplementedError("build_model")


def predict(model: nn.Module, x: Tensor) -> Tensor:
    """Given: finished code, nothing to write. `model(x)` in eval mode, without autograd.

    You wrote this in kata 04 (`predict`): it switches the model to eval mode (dropout off),
    runs under `torch.no_grad()`, and puts every submodule back in the mode it was in, in a
    `finally` block. Use it wherever you predict.

    >>> model = nn.Sequential(nn.Linear(2, 2), nn.Dropout(0.5))
    >>> predict(model, torch.zeros(3, 2)).shape, model.training
    (torch.Size([3, 2]), True)

    Docs: https://docs.pytorch.org/docs/stable/generated/torch.nn.Module.html#torch.nn.Module.eval
    """
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
    """Return the fraction of the loader's samples whose largest logit is the true label.

    The predicted class of a point is the index of its largest logit, `argmax(dim=1)`.
    Predict with the given `predict(model, x)`: eval mode, no graph, the model's mode
    restored. Count correct predictions and samples over the whole loader and divide
    once, not per batch. The model may live on any device: take it from
    `next(model.parameters()).device` and move every batch there.

    >>> train_loader, test_loader = split_loaders(SpiralDataset(100, 0.05, seed=0), 0.25, 32, seed=0)
    >>> _ = torch.manual_seed(0)
    >>> model = build_model(64)
    >>> evaluate_accuracy(model, test_loader), model.training  # untrained: about chance
    (0.46, True)

    Docs: https://docs.pytorch.org/docs/stable/generated/torch.argmax.html
    """
    raise NotImplementedError("evaluate_accuracy")


def train_one_epoch(model: nn.Module, optimizer: torch.optim.Optimizer, loader: DataLoader) -> float:
    """Given: finished code, nothing to write. One epoch of training; the mean loss per sample.

    The loop of kata 06 (`train_step`, `train_epoch`) on the model's device (kata 10): training
    mode, then per batch zero_grad, `F.cross_entropy`, backward, step. Each batch's loss is
    weighed by its size; the sum stays on the device and is read once at the end, since an
    `.item()` per batch would make the GPU wait at every step.

    >>> train_loader, test_loader = split_loaders(SpiralDataset(100, 0.05, seed=0), 0.25, 32, seed=0)
    >>> _ = torch.manual_seed(0)
    >>> model = build_model(64)
    >>> train_one_epoch(model, torch.optim.Adam(model.parameters(), lr=0.01), train_loader)
    0.73663...

    Docs: https://docs.pytorch.org/tutorials/beginner/basics/optimization_tutorial.html
    """
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
    """Given: finished code, nothing to write. `torch.save(obj, path)`, crash-safe.

    You wrote this in kata 09 (`save_atomically`): it saves into a temporary file in the
    same directory as `path`, then `os.replace`s it onto `path`, so a crash midway leaves
    the previous file intact; on failure it removes the temporary file and re-raises.

    >>> tmp = Path(tempfile.mkdtemp())
    >>> save_atomically({"epoch": 3}, tmp / "ckpt.pt")
    >>> os.listdir(tmp), torch.load(tmp / "ckpt.pt", weights_only=True)
    (['ckpt.pt'], {'epoch': 3})

    Docs: https://docs.pytorch.org/docs/stable/generated/torch.save.html
    """
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
    """Write a checkpoint to `path` atomically: everything a resumed run needs to continue exactly.

    The checkpoint is the dict
        {"model": model.state_dict(), "optimizer": optimizer.state_dict(),
         "epoch": epoch (the number of completed epochs), "losses": list(losses),
         "rng": {"torch": torch.get_rng_state(),
                 "loader": loader.generator.get_state() (None if loader.generator is None)}}
    Write it with the given `save_atomically(state, path)`: a crash midway must leave the
    previous checkpoint intact.

    >>> train_loader, test_loader = split_loaders(SpiralDataset(100, 0.05, seed=0), 0.25, 32, seed=0)
    >>> _ = torch.manual_seed(0)
    >>> model = build_model(64)
    >>> optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    >>> tmp = Path(tempfile.mkdtemp())  # a new empty folder
    >>> save_training_state(tmp / "ckpt.pt", model, optimizer, train_loader, epoch=3, losses=[0.7, 0.5, 0.4])
    >>> sorted(torch.load(tmp / "ckpt.pt", weights_only=True)), os.listdir(tmp)
    (['epoch', 'losses', 'model', 'optimizer', 'rng'], ['ckpt.pt'])

    Docs: https://docs.pytorch.org/docs/stable/generated/torch.save.html
    """
    raise NotImplementedError("save_training_state")


def resume_training(
    path: str | os.PathLike, model: nn.Module, optimizer: torch.optim.Optimizer, loader: DataLoader
) -> tuple[int, list[float]]:
    """Restore a checkpoint written by save_training_state; return (epoch, losses) from it.

    Load it safely (`weights_only=True`) with `map_location="cpu"`: RNG states must be
    CPU tensors, and `load_state_dict` copies the weights onto the model's own device.
    Restore the model, the optimizer, torch's global RNG and the loader's generator
    (when it has one). Return the epoch unchanged: it counts the completed epochs, so
    training continues with epoch + 1.

    >>> train_loader, test_loader = split_loaders(SpiralDataset(100, 0.05, seed=0), 0.25, 32, seed=0)
    >>> _ = torch.manual_seed(0)
    >>> model = build_model(64)
    >>> tmp = Path(tempfile.mkdtemp())
    >>> optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    >>> save_training_state(tmp / "ckpt.pt", model, optimizer, train_loader, epoch=3, losses=[0.7, 0.5, 0.4])
    >>> fresh_model = build_model(64)
    >>> fresh_optimizer = torch.optim.Adam(fresh_model.parameters(), lr=0.01)
    >>> resume_training(tmp / "ckpt.pt", fresh_model, fresh_optimizer, train_loader)
    (3, [0.7, 0.5, 0.4])
    >>> torch.equal(fresh_model[0].weight, model[0].weight)
    True

    Docs: https://docs.pytorch.org/tutorials/beginner/saving_loading_models.html
    """
    raise NotImplementedError("resume_training")


def fit(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    loader: DataLoader,
    epochs: int,
    path: str | os.PathLike,
    on_epoch_end: Callable[[int, float], None] | None = None,
) -> list[float]:
    """Train until `epochs` epochs are done, with a checkpoint at `path` after every epoch.

    If `path` exists, a previous run was interrupted: resume from it (resume_training)
    and continue after its last completed epoch, else start at epoch 1. After each epoch
    e (numbered from 1): train_one_epoch, append its loss, save_training_state(..., e, losses),
    then call `on_epoch_end(e, loss)` if given. Return the loss of every epoch from 1 to
    `epochs`, those of the interrupted run included. A resumed run must end with exactly
    the weights and losses of a run that was never interrupted.

    >>> train_loader, test_loader = split_loaders(SpiralDataset(100, 0.05, seed=0), 0.25, 32, seed=0)
    >>> _ = torch.manual_seed(0)
    >>> model = build_model(64)
    >>> optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    >>> tmp = Path(tempfile.mkdtemp())
    >>> losses = fit(model, optimizer, train_loader, epochs=3, path=tmp / "ckpt.pt")
    >>> len(losses), torch.load(tmp / "ckpt.pt", weights_only=True)["epoch"]
    (3, 3)
    >>> fit(model, optimizer, train_loader, epochs=3, path=tmp / "ckpt.pt") == losses  # nothing left to train
    True

    Docs: https://docs.pytorch.org/tutorials/recipes/recipes/saving_and_loading_a_general_checkpoint.html
    """
    raise NotImplementedError("fit")


def run_experiment(workdir: str | os.PathLike, seed: int, epochs: int) -> float:
    """The whole pipeline: return the held-out accuracy after `epochs` epochs of training.

    Use your functions with these settings: SpiralDataset(n_per_class=200, noise=0.05,
    seed=seed); split_loaders(dataset, test_fraction=0.25, batch_size=32, seed=seed);
    torch.manual_seed(seed) then build_model(64); torch.optim.Adam with lr=0.01; fit with
    the checkpoint at workdir / "checkpoint.pt"; evaluate_accuracy on the test loader.
    A second call with the same arguments resumes from the checkpoint, trains no more,
    and returns the same accuracy.

    >>> tmp = Path(tempfile.mkdtemp())
    >>> run_experiment(tmp, seed=0, epochs=30) >= 0.95
    True

    Docs: https://docs.pytorch.org/tutorials/beginner/basics/quickstart_tutorial.html
    """
    raise NotImplementedError("run_experiment")
