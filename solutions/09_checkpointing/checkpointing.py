"""Kata 09: parameters and checkpoints (reference solution)."""

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
    return [(name, param.shape) for name, param in model.named_parameters()]


def save_weights(model: nn.Module, path: str | os.PathLike) -> None:
    torch.save(model.state_dict(), path)


def load_to_device(path: str | os.PathLike, device: str | torch.device) -> dict[str, Tensor]:
    # map_location moves each storage while unpickling: a tensor saved on a GPU never has to
    # be rebuilt there, so this works on a machine without one.
    return torch.load(path, map_location=device, weights_only=True)


def safe_load(path: str | os.PathLike, trusted: Sequence[type] = ()) -> Any:
    # The context manager trusts these classes for this call only, unlike add_safe_globals.
    with torch.serialization.safe_globals(list(trusted)):
        return torch.load(path, weights_only=True)


def save_atomically(obj: Any, path: str | os.PathLike) -> None:
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


def save_checkpoint(
    path: str | os.PathLike,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    epoch: int,
    generator: torch.Generator | None = None,
) -> None:
    rng = {
        "torch": torch.get_rng_state(),
        "python": random.getstate(),
        "generator": None if generator is None else generator.get_state(),
    }
    checkpoint = {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "epoch": epoch,
        "rng": rng,
    }
    save_atomically(checkpoint, path)


def load_checkpoint(
    path: str | os.PathLike,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    generator: torch.Generator | None = None,
) -> int:
    # RNG states must be CPU tensors; load_state_dict copies weights onto the model's device.
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    model.load_state_dict(checkpoint["model"])
    optimizer.load_state_dict(checkpoint["optimizer"])
    rng = checkpoint["rng"]
    torch.set_rng_state(rng["torch"])
    random.setstate(rng["python"])
    if generator is not None:
        generator.set_state(rng["generator"])
    return checkpoint["epoch"]


def load_matching(model: nn.Module, state: Mapping[str, Tensor]) -> tuple[list[str], list[str]]:
    own = model.state_dict().keys()
    if not own & state.keys():
        raise ValueError(
            f"no key of the checkpoint matches the model (checkpoint: {sorted(state)[:3]}, "
            f"model: {sorted(own)[:3]}); strict=False would load nothing"
        )
    missing, unexpected = model.load_state_dict(state, strict=False)
    return missing, unexpected


def load_backbone(model: nn.Module, state: Mapping[str, Tensor], head: str) -> list[str]:
    prefix = head + "."
    backbone = {key: value for key, value in state.items() if not key.startswith(prefix)}
    missing, unexpected = model.load_state_dict(backbone, strict=False)
    stray = unexpected + [key for key in missing if not key.startswith(prefix)]
    if stray:
        raise ValueError(f"the checkpoint's backbone does not match the model's: {stray}")
    return missing
