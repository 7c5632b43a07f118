"""Kata 10: devices and parallelism.

Replace each `raise NotImplementedError` with your code, then run
`pytest katas/10_devices`. The lesson is in README.md beside this file.
No GPU needed: the tests use the `meta` device, CPU autocast and two CPU
processes on the gloo backend; the GPU-only tests are skipped without CUDA.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Dataset, DistributedSampler


def choose_device(override: str | torch.device | None = None) -> torch.device:
    """Return the device to run on: `override` when one is given, else CUDA when available, else CPU.

    Always return a `torch.device`, never a string. Ask `torch.cuda.is_available()`
    at call time (the tests pretend CUDA is there, or not, by replacing it).

    >>> choose_device()  # without a GPU; device(type='cuda') with one, so not checked  # doctest: +SKIP
    device(type='cpu')
    >>> choose_device("meta")  # an explicit choice wins, GPU or not
    device(type='meta')

    Docs: https://docs.pytorch.org/docs/stable/tensor_attributes.html#torch.device
    """
    raise NotImplementedError("choose_device")


def move_to(batch: Any, device: str | torch.device, non_blocking: bool = False) -> Any:
    """Return `batch` with every tensor in it moved to `device`, however deeply nested.

    Rebuild dicts, lists, tuples and namedtuples as the same type with the same
    keys and order; leave anything that is not a tensor (ints, strings, None)
    as it is. Pass `non_blocking` on to every `Tensor.to` call.

    >>> batch = {"x": torch.ones(2), "pair": (torch.zeros(1), "id-7")}
    >>> move_to(batch, "meta")
    {'x': tensor(..., device='meta', size=(2,)), 'pair': (tensor(..., device='meta', size=(1,)), 'id-7')}

    Docs: https://docs.pytorch.org/docs/stable/generated/torch.Tensor.to.html
    """
    raise NotImplementedError("move_to")


def causal_mask(scores: Tensor) -> Tensor:
    """Return the additive causal mask for attention `scores` of shape (..., T, T).

    The mask has shape (T, T): 0 where key j <= query i (on and below the
    diagonal), -inf above it, so that `softmax(scores + mask)` ignores the future.
    Create it on `scores`' device with `scores`' dtype: the same code must run on
    the CPU, a GPU or the meta device, in float32, float64 or bfloat16.

    >>> causal_mask(torch.zeros(2, 3, 3))
    tensor([[0., -inf, -inf],
            [0., 0., -inf],
            [0., 0., 0.]])

    Docs: https://docs.pytorch.org/docs/stable/generated/torch.Tensor.new_full.html
    """
    raise NotImplementedError("causal_mask")


class Standardize(nn.Module):
    """(x - mean) / std, with `mean` and `std` stored as buffers.

    Buffers are saved in `state_dict()` and moved by `.to()` (device and dtype)
    like parameters, but they are not parameters: an optimizer never trains them.

    >>> layer = Standardize(torch.tensor([1.0, 2.0]), torch.tensor([2.0, 4.0]))
    >>> layer(torch.tensor([[3.0, 6.0]]))
    tensor([[1., 1.]])
    >>> sorted(layer.state_dict()), list(layer.parameters())
    (['mean', 'std'], [])

    Docs: https://docs.pytorch.org/docs/stable/generated/torch.nn.Module.html#torch.nn.Module.register_buffer
    """

    def __init__(self, mean: Tensor, std: Tensor) -> None:
        raise NotImplementedError("Standardize.__init__")

    def forward(self, x: Tensor) -> Tensor:
        raise NotImplementedError("Standardize.forward")


def model_size(build: Callable[[], nn.Module]) -> tuple[int, int]:
    """Return (number of parameters, bytes of parameters and buffers) of the model `build()` makes.

    Call `build()` inside `with torch.device("meta"):` so that no memory is
    allocated: meta tensors have shapes and dtypes but no data, which is enough
    to size a model with billions of parameters. Count a shared (tied)
    parameter once; bytes are numel times element size, per tensor's dtype.

    >>> model_size(lambda: torch.nn.Linear(4096, 4096))
    (16781312, 67125248)

    Docs: https://docs.pytorch.org/docs/stable/meta.html
    """
    raise NotImplementedError("model_size")


def autocast_forward(model: nn.Module, x: Tensor) -> Tensor:
    """Return model(x) computed under autocast for x's device type.

    Use bfloat16 on the CPU and float16 on CUDA, which every CUDA card runs (on
    Ampere and newer cards, training code usually picks bfloat16 and needs no
    GradScaler; float16 needs one). Autocast runs matmuls in the lower
    precision while the model's weights stay float32: do not convert the model.

    >>> autocast_forward(torch.nn.Linear(3, 2), torch.ones(1, 3)).dtype
    torch.bfloat16

    Docs: https://docs.pytorch.org/docs/stable/amp.html
    """
    raise NotImplementedError("autocast_forward")


def strip_module_prefix(state_dict: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Return the checkpoint with the leading "module." removed from every key that has one.

    `nn.DataParallel` and `DistributedDataParallel` keep your model as their
    `.module`, so their state_dict keys read "module.fc.weight". A plain model
    expects "fc.weight". Only a leading "module." goes; "encoder.module.weight"
    stays as it is. Keep the order and the tensors.

    >>> w, b = torch.ones(2, 3), torch.zeros(2)
    >>> plain = strip_module_prefix({"module.fc.weight": w, "module.fc.bias": b})
    >>> list(plain), plain["fc.weight"] is w
    (['fc.weight', 'fc.bias'], True)

    Docs: https://docs.pytorch.org/docs/stable/generated/torch.nn.DataParallel.html
    """
    raise NotImplementedError("strip_module_prefix")


def ddp_gradients(model: nn.Module, inputs: Tensor, targets: Tensor) -> dict[str, Tensor]:
    """Return this rank's gradients of the MSE loss, averaged across ranks by DistributedDataParallel.

    Each of the processes calls this with its own shard of the batch; the
    process group (gloo backend, CPU) is already set up. Wrap `model` in
    DistributedDataParallel, compute `mse_loss(wrapped(inputs), targets)`,
    backpropagate, and return {name: grad} under the plain model's parameter
    names (no "module." prefix).

    Not run as a doctest: it needs the process group the tests start. On each
    of two ranks, with the same `model = nn.Linear(2, 1)` and its own shard:

    >>> grads = ddp_gradients(model, x_shard, y_shard)  # doctest: +SKIP
    >>> sorted(grads), grads["weight"].shape  # every rank: the full batch's gradient  # doctest: +SKIP
    (['bias', 'weight'], torch.Size([1, 2]))

    Docs: https://docs.pytorch.org/docs/stable/notes/ddp.html
    """
    raise NotImplementedError("ddp_gradients")


def shard_loader(
    dataset: Dataset,
    batch_size: int,
    epoch: int,
    seed: int = 0,
    num_replicas: int | None = None,
    rank: int | None = None,
) -> DataLoader:
    """Return a DataLoader over this rank's share of `dataset` for `epoch`.

    Use a DistributedSampler (shuffled with `seed`, the same on every rank) and
    tell it the epoch, so that each epoch has a new order. `num_replicas` and
    `rank` default, as in DistributedSampler, to the process group's.

    >>> from torch.utils.data import TensorDataset
    >>> [b.tolist() for (b,) in shard_loader(TensorDataset(torch.arange(6)), 2, 0, num_replicas=2, rank=0)]
    [[2, 3], [1]]

    Docs: https://docs.pytorch.org/docs/stable/data.html#torch.utils.data.distributed.DistributedSampler
    """
    raise NotImplementedError("shard_loader")
