"""Kata 09: parameters and checkpoints.

Replace each `raise NotImplementedError` with your code, then run
`pytest katas/09_checkpointing`. The lesson is in README.md beside this file.
"""

from __future__ import annotations

import os
import random
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn


def parameter_shapes(model: nn.Module) -> list[tuple[str, torch.Size]]:
    """Return (name, shape) for every parameter of `model`, in `named_parameters()` order.

    Keep each shape a `torch.Size`, so that printing a pair shows what the article's
    `print(name, param.size())` shows. Buffers (BatchNorm's running statistics) are not
    parameters; frozen parameters (requires_grad=False) still are.

    >>> from collections import OrderedDict
    >>> simple_net = nn.Sequential(OrderedDict(fc1=nn.Linear(2, 4), relu=nn.ReLU(), fc2=nn.Linear(4, 1)))
    >>> for name, shape in parameter_shapes(simple_net):  # the article's SimpleNet: 2 -> 4 -> 1
    ...     print(name, shape)
    fc1.weight torch.Size([4, 2])
    fc1.bias torch.Size([4])
    fc2.weight torch.Size([1, 4])
    fc2.bias torch.Size([1])

    Docs: https://docs.pytorch.org/docs/stable/generated/torch.nn.Module.html#torch.nn.Module.named_parameters
    """
    raise NotImplementedError("parameter_shapes")


def save_weights(model: nn.Module, path: str | os.PathLike) -> None:
    """Save the model's weights to `path` so that a fresh model of the same class can load them.

    Save the `state_dict()` (parameters and buffers, by name), not the model object: only
    plain tensors load with `torch.load(path, weights_only=True)`.

    >>> tmp = Path(tempfile.mkdtemp())  # a new empty folder
    >>> model, fresh = nn.Linear(3, 2), nn.Linear(3, 2)
    >>> save_weights(model, tmp / "model.pth")
    >>> fresh.load_state_dict(torch.load(tmp / "model.pth", weights_only=True))
    <All keys matched successfully>
    >>> torch.equal(fresh.weight, model.weight)
    True

    Docs: https://docs.pytorch.org/tutorials/beginner/saving_loading_models.html
    """
    raise NotImplementedError("save_weights")


def load_to_device(path: str | os.PathLike, device: str | torch.device) -> dict[str, Tensor]:
    """Load the state dict saved at `path` with every tensor on `device`.

    The file may come from a machine with a GPU: its tensors then claim a CUDA device that
    this machine may not have. `map_location` places each tensor while loading. Load with
    `weights_only=True` (never run code hidden in a file).

    >>> tmp = Path(tempfile.mkdtemp())
    >>> torch.save(nn.Linear(3, 2).state_dict(), tmp / "weights.pt")  # here from the CPU
    >>> state = load_to_device(tmp / "weights.pt", "meta")  # the same call takes cuda:0 tensors to "cpu"
    >>> {t.device for t in state.values()}
    {device(type='meta')}

    Docs: https://docs.pytorch.org/docs/stable/generated/torch.load.html
    """
    raise NotImplementedError("load_to_device")


def safe_load(path: str | os.PathLike, trusted: Sequence[type] = ()) -> Any:
    """Load `path` with `weights_only=True`, also accepting the classes in `trusted`.

    An untrusted object in the file must make this raise `pickle.UnpicklingError` (let
    torch's error through). Trust the extra classes for this one call only:
    `torch.serialization.safe_globals(...)` is a context manager.

    >>> import argparse
    >>> tmp = Path(tempfile.mkdtemp())
    >>> torch.save({"args": argparse.Namespace(lr=0.1), "step": 7}, tmp / "ckpt.pt")
    >>> safe_load(tmp / "ckpt.pt", trusted=[argparse.Namespace])["args"]
    Namespace(lr=0.1)
    >>> safe_load(tmp / "ckpt.pt")
    Traceback (most recent call last):
    _pickle.UnpicklingError: Weights only load failed...

    Docs: https://docs.pytorch.org/docs/stable/notes/serialization.html#weights-only
    """
    raise NotImplementedError("safe_load")


def save_atomically(obj: Any, path: str | os.PathLike) -> None:
    """`torch.save(obj, path)`, but a crash midway leaves the previous file at `path` intact.

    Write to a temporary file in the same directory as `path`, then `os.replace` it onto
    `path`. If anything fails, remove the temporary file and re-raise the error.

    >>> tmp = Path(tempfile.mkdtemp())
    >>> save_atomically({"epoch": 3, "model": nn.Linear(3, 2).state_dict()}, tmp / "ckpt.pt")
    >>> sorted(os.listdir(tmp)), torch.load(tmp / "ckpt.pt", weights_only=True)["epoch"]
    (['ckpt.pt'], 3)

    Docs: https://docs.pytorch.org/docs/stable/generated/torch.save.html
    """
    raise NotImplementedError("save_atomically")


def save_checkpoint(
    path: str | os.PathLike,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    epoch: int,
    generator: torch.Generator | None = None,
) -> None:
    """Save everything needed to resume training exactly, atomically (use `save_atomically`).

    `epoch` is the number of epochs completed. The checkpoint is a dict of plain data:
    {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "epoch": epoch,
     "rng": {"torch": torch's global RNG state, "python": random.getstate(),
             "generator": the state of `generator` (the DataLoader's), or None}}

    >>> tmp = Path(tempfile.mkdtemp())
    >>> model = nn.Linear(3, 2)
    >>> optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    >>> loader_generator = torch.Generator().manual_seed(0)
    >>> save_checkpoint(tmp / "ckpt.pt", model, optimizer, epoch=2, generator=loader_generator)
    >>> sorted(torch.load(tmp / "ckpt.pt", weights_only=True))
    ['epoch', 'model', 'optimizer', 'rng']

    Docs: https://docs.pytorch.org/tutorials/beginner/saving_loading_models.html
    """
    raise NotImplementedError("save_checkpoint")


def load_checkpoint(
    path: str | os.PathLike,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    generator: torch.Generator | None = None,
) -> int:
    """Restore what `save_checkpoint` saved; return the number of epochs completed.

    Restore the model, the optimizer and all three RNG states, so that
    `for epoch in range(start, total)` continues bit for bit like an uninterrupted run.
    Load with `map_location="cpu"` (the file may come from a GPU; RNG states are CPU
    tensors) and `weights_only=True`.

    >>> tmp = Path(tempfile.mkdtemp())
    >>> model = nn.Linear(3, 2)
    >>> save_checkpoint(tmp / "ckpt.pt", model, torch.optim.SGD(model.parameters(), lr=0.1), epoch=2)
    >>> next_draw = torch.rand(3)  # what the uninterrupted run draws next
    >>> fresh = nn.Linear(3, 2)
    >>> start = load_checkpoint(tmp / "ckpt.pt", fresh, torch.optim.SGD(fresh.parameters(), lr=0.1))
    >>> start, torch.equal(fresh.weight, model.weight), torch.equal(torch.rand(3), next_draw)
    (2, True, True)

    Docs: https://docs.pytorch.org/docs/stable/generated/torch.get_rng_state.html
    """
    raise NotImplementedError("load_checkpoint")


def load_matching(model: nn.Module, state: Mapping[str, Tensor]) -> tuple[list[str], list[str]]:
    """Load the entries of `state` that match the model; return (missing_keys, unexpected_keys).

    `load_state_dict(state, strict=False)` skips keys that do not match and reports them.
    If not one key matches, raise ValueError: loading nothing silently is a bug.

    >>> model = nn.Sequential(nn.Linear(2, 4), nn.ReLU(), nn.Linear(4, 1))
    >>> state = {"0.weight": torch.ones(4, 2), "0.bias": torch.zeros(4), "old.weight": torch.ones(3)}
    >>> load_matching(model, state)
    (['2.weight', '2.bias'], ['old.weight'])

    Docs: https://docs.pytorch.org/docs/stable/generated/torch.nn.Module.html#torch.nn.Module.load_state_dict
    """
    raise NotImplementedError("load_matching")


def load_backbone(model: nn.Module, state: Mapping[str, Tensor], head: str) -> list[str]:
    """Load every entry of `state` into `model` except the submodule named `head`.

    The model's head is new (maybe of another shape) and keeps its fresh initialisation.
    Return the keys left untouched (the head's). Raise ValueError if any other key is
    missing or unexpected: a backbone that does not match must not pass silently.

    >>> from collections import OrderedDict
    >>> def classifier(classes):
    ...     return nn.Sequential(OrderedDict(body=nn.Linear(2, 8), head=nn.Linear(8, classes)))
    >>> pretrained_3_classes = classifier(3)
    >>> load_backbone(classifier(5), pretrained_3_classes.state_dict(), head="head")
    ['head.weight', 'head.bias']

    Docs: https://docs.pytorch.org/tutorials/beginner/saving_loading_models.html
    """
    raise NotImplementedError("load_backbone")
