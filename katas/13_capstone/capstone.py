"""Kata 13: capstone, two spirals end to end.

Replace each `raise NotImplementedError` with your code, then run
`pytest katas/13_capstone`. The lesson is in README.md beside this file.
SpiralDataset is a class: implement every method that raises. Later exercises
use earlier ones, so work in order.
"""

from __future__ import annotations

import math
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

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
    """Split `dataset` at random into a train and a held-out test part; return a loader for each.

    The test part holds `int(test_fraction * len(dataset))` samples, the train part the
    rest, and no sample is in both. Everything depends on `seed` alone (never on the
    global RNG): the split, through a generator seeded with `seed`, and the order of the
    train loader, which reshuffles every epoch with its own generator seeded with `seed`.
    The test loader does not shuffle. Both use `batch_size`.

    >>> train_loader, test_loader = split_loaders(SpiralDataset(100, 0.05, 0), 0.25, 32, seed=0)
    >>> len(train_loader.dataset), len(test_loader.dataset)
    (150, 50)

    Docs: https://docs.pytorch.org/docs/stable/data.html#torch.utils.data.random_split
    """
    raise NotImplementedError("split_loaders")


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


def evaluate_accuracy(model: nn.Module, loader: DataLoader) -> float:
    """Return the fraction of the loader's samples whose largest logit is the true label.

    Predict in eval mode (dropout off) and without autograd (`torch.no_grad()`), then
    put the model back in the mode it was in. Count correct predictions over all
    samples, not per batch. The model may live on any device: take it from
    `next(model.parameters()).device` and move every batch there.

    >>> train_loader, test_loader = split_loaders(SpiralDataset(100, 0.05, seed=0), 0.25, 32, seed=0)
    >>> _ = torch.manual_seed(0)
    >>> model = build_model(64)
    >>> evaluate_accuracy(model, test_loader), model.training  # untrained: about chance
    (0.46, True)

    Docs: https://docs.pytorch.org/docs/stable/generated/torch.nn.Module.html#torch.nn.Module.eval
    """
    raise NotImplementedError("evaluate_accuracy")


def train_one_epoch(model: nn.Module, optimizer: torch.optim.Optimizer, loader: DataLoader) -> float:
    """Train `model` for one pass over `loader`; return the mean cross-entropy per sample.

    Put the model in training mode. For each batch (on the model's device, as in
    evaluate_accuracy): clear the old gradients, compute `F.cross_entropy(model(x), y)`,
    backpropagate, step. The result weights each batch's loss by its size, so a short
    last batch counts less: sum(loss_b * len_b) / number of samples, a Python float.

    >>> train_loader, test_loader = split_loaders(SpiralDataset(100, 0.05, seed=0), 0.25, 32, seed=0)
    >>> _ = torch.manual_seed(0)
    >>> model = build_model(64)
    >>> train_one_epoch(model, torch.optim.Adam(model.parameters(), lr=0.01), train_loader)
    0.73663...

    Docs: https://docs.pytorch.org/tutorials/beginner/basics/optimization_tutorial.html
    """
    raise NotImplementedError("train_one_epoch")


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
    Atomically: `torch.save` into a temporary file in the same directory, then
    `os.replace` it onto `path`; if the save fails, remove the temporary file and let
    the error propagate. A crash midway must leave the previous checkpoint intact.

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
