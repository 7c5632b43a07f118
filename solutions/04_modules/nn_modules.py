"""Kata 04: nn.Module, building networks (reference solution)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from itertools import pairwise

import torch
from torch import Tensor, nn


class SimpleNet(nn.Module):
    """The article's network: Linear(2, 4), ReLU, Linear(4, 1)."""

    def __init__(self) -> None:
        super().__init__()
        self.fc1 = nn.Linear(2, 4)
        self.relu = nn.ReLU()
        self.fc2 = nn.Linear(4, 1)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(self.relu(self.fc1(x)))


def to_sequential(net: nn.Module) -> nn.Sequential:
    """An nn.Sequential twin of a SimpleNet, holding copies of its weights."""
    twin = nn.Sequential(nn.Linear(2, 4), nn.ReLU(), nn.Linear(4, 1))
    twin[0].load_state_dict(net.fc1.state_dict())  # load_state_dict copies the values
    twin[2].load_state_dict(net.fc2.state_dict())
    return twin


class LinearFromScratch(nn.Module):
    """y = x W^T + b with W and b as nn.Parameter, like nn.Linear."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True) -> None:
        super().__init__()
        bound = 1 / math.sqrt(in_features)
        self.weight = nn.Parameter(torch.empty(out_features, in_features).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.empty(out_features).uniform_(-bound, bound)) if bias else None

    def forward(self, x: Tensor) -> Tensor:
        y = x @ self.weight.T
        return y if self.bias is None else y + self.bias


def count_parameters(model: nn.Module) -> tuple[int, int]:
    """(total, trainable) numbers of parameter values in `model`."""
    params = list(model.parameters())
    return sum(p.numel() for p in params), sum(p.numel() for p in params if p.requires_grad)


def freeze_(module: nn.Module) -> None:
    """Stop every parameter of `module` from training, in place."""
    module.requires_grad_(False)


class RunningMean(nn.Module):
    """Centres inputs with a running mean of the training batches, kept in buffers."""

    def __init__(self, num_features: int, momentum: float = 0.1) -> None:
        super().__init__()
        self.momentum = momentum
        self.register_buffer("running_mean", torch.zeros(num_features))
        self.register_buffer("num_batches", torch.tensor(0))

    def forward(self, x: Tensor) -> Tensor:
        if self.training:
            with torch.no_grad():
                self.running_mean.lerp_(x.mean(dim=0), self.momentum)
                self.num_batches += 1
        return x - self.running_mean


class MLP(nn.Module):
    """Linear layers between consecutive `sizes`, with a ReLU between layers."""

    def __init__(self, sizes: Sequence[int]) -> None:
        super().__init__()
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in pairwise(sizes))

    def forward(self, x: Tensor) -> Tensor:
        *hidden, last = self.layers
        for layer in hidden:
            x = torch.relu(layer(x))
        return last(x)


def predict(model: nn.Module, x: Tensor) -> Tensor:
    """model(x) in eval mode without a graph; every submodule's mode restored afterwards."""
    modes = {m: m.training for m in model.modules()}
    model.eval()
    try:
        with torch.no_grad():
            return model(x)
    finally:
        # model.train(was_training) would flatten a mix, e.g. a frozen batch norm kept in eval.
        for m, training in modes.items():
            m.training = training


def init_weights_(model: nn.Module) -> None:
    """He-initialise every nn.Linear weight in `model` (nested ones too) and zero its bias."""

    def init(m: nn.Module) -> None:
        if isinstance(m, nn.Linear):
            nn.init.kaiming_uniform_(m.weight, nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)

    model.apply(init)
