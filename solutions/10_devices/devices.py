"""Kata 10: devices and parallelism (reference solution)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Dataset, DistributedSampler


def choose_device(override: str | torch.device | None = None) -> torch.device:
    """The device to run on: `override` when given, else CUDA when available, else the CPU."""
    if override is not None:
        return torch.device(override)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def move_to(batch: Any, device: str | torch.device, non_blocking: bool = False) -> Any:
    """`batch` with every tensor inside it moved to `device`, its containers rebuilt as they were."""
    if isinstance(batch, Tensor):
        return batch.to(device, non_blocking=non_blocking)
    if isinstance(batch, dict):
        return {key: move_to(value, device, non_blocking) for key, value in batch.items()}
    if isinstance(batch, tuple) and hasattr(batch, "_fields"):  # a namedtuple takes its fields one by one
        return type(batch)(*(move_to(value, device, non_blocking) for value in batch))
    if isinstance(batch, (list, tuple)):
        return type(batch)(move_to(value, device, non_blocking) for value in batch)
    return batch


def causal_mask(scores: Tensor) -> Tensor:
    """The additive causal mask for attention `scores` of shape (..., T, T), on their device and dtype."""
    size = scores.shape[-1]
    return scores.new_full((size, size), float("-inf")).triu(diagonal=1)


class Standardize(nn.Module):
    """(x - mean) / std, with mean and std kept as buffers."""

    def __init__(self, mean: Tensor, std: Tensor) -> None:
        super().__init__()
        self.register_buffer("mean", mean.detach().clone())
        self.register_buffer("std", std.detach().clone())

    def forward(self, x: Tensor) -> Tensor:
        return (x - self.mean) / self.std


def model_size(build: Callable[[], nn.Module]) -> tuple[int, int]:
    """(parameter count, bytes of parameters and buffers) of `build()`, built on the meta device."""
    with torch.device("meta"):
        model = build()
    params = sum(p.numel() for p in model.parameters())
    tensors = [*model.parameters(), *model.buffers()]
    return params, sum(t.numel() * t.element_size() for t in tensors)


def autocast_forward(model: nn.Module, x: Tensor) -> Tensor:
    """model(x) under autocast: bfloat16 on the CPU, float16 on CUDA; the weights stay float32."""
    device_type = x.device.type
    dtype = torch.float16 if device_type == "cuda" else torch.bfloat16
    with torch.autocast(device_type=device_type, dtype=dtype):
        return model(x)


def strip_module_prefix(state_dict: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """A DataParallel/DDP checkpoint's state_dict with each key's leading "module." removed."""
    return {key.removeprefix("module."): value for key, value in state_dict.items()}


def ddp_gradients(model: nn.Module, inputs: Tensor, targets: Tensor) -> dict[str, Tensor]:
    """This rank's gradients of the MSE loss after DistributedDataParallel has averaged them."""
    ddp = DistributedDataParallel(model)
    nn.functional.mse_loss(ddp(inputs), targets).backward()
    return {name: p.grad for name, p in model.named_parameters()}


def shard_loader(
    dataset: Dataset,
    batch_size: int,
    epoch: int,
    seed: int = 0,
    num_replicas: int | None = None,
    rank: int | None = None,
) -> DataLoader:
    """A DataLoader over this rank's shard of `dataset` for `epoch`, shuffled the same way on every rank."""
    sampler = DistributedSampler(dataset, num_replicas=num_replicas, rank=rank, shuffle=True, seed=seed)
    sampler.set_epoch(epoch)
    return DataLoader(dataset, batch_size=batch_size, sampler=sampler)
