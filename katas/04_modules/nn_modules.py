"""Kata 04: nn.Module, building networks.

Replace each `raise NotImplementedError` with your code, then run
`pytest katas/04_modules`. The lesson is in README.md beside this file.
Some exercises are classes: write their `__init__` and `forward` methods.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn


class SimpleNet(nn.Module):
    """The companion article's network: Linear(2, 4) -> ReLU -> Linear(4, 1).

    Register the layers in `__init__` as `self.fc1`, `self.relu` and `self.fc2`,
    so that `state_dict()` has the keys fc1.weight, fc1.bias, fc2.weight, fc2.bias.
    `forward` applies them in that order.

    >>> net = SimpleNet()
    >>> net(torch.randn(5, 2)).shape
    torch.Size([5, 1])
    >>> sum(p.numel() for p in net.parameters())  # 4*2 + 4 + 1*4 + 1
    17

    Docs: https://docs.pytorch.org/docs/stable/generated/torch.nn.Module.html
    """

    def __init__(self) -> None:
        raise NotImplementedError("SimpleNet.__init__")

    def forward(self, x: Tensor) -> Tensor:
        raise NotImplementedError("SimpleNet.forward")


def to_sequential(net: nn.Module) -> nn.Sequential:
    """Return an nn.Sequential twin of the SimpleNet `net`, holding copies of its weights.

    The twin is Linear(2, 4), ReLU, Linear(4, 1), so its state_dict keys are
    0.weight, 0.bias, 2.weight, 2.bias (ReLU, at index 1, has no parameters).
    For any input it returns what `net` returns. Copy the values: training the
    twin afterwards must leave `net` unchanged.

    >>> net = SimpleNet()
    >>> twin = to_sequential(net)
    >>> x = torch.randn(3, 2)
    >>> torch.equal(twin(x), net(x))
    True

    Docs: https://docs.pytorch.org/docs/stable/generated/torch.nn.Sequential.html
    """
    raise NotImplementedError("to_sequential")


class LinearFromScratch(nn.Module):
    """A fully connected layer built from nn.Parameter: y = x W^T + b, like nn.Linear.

    `self.weight` has shape (out_features, in_features) and `self.bias` shape
    (out_features,), both nn.Parameter, so that `named_parameters()` lists them.
    With `bias=False`, set `self.bias = None` and leave the bias out of forward.
    `forward` takes x of shape (..., in_features), any number of leading dimensions.
    Start from small random values (nn.Linear uses uniform(-k, k), k = 1/sqrt(in_features)).

    >>> layer = LinearFromScratch(3, 2)
    >>> [(name, tuple(p.shape)) for name, p in layer.named_parameters()]
    [('weight', (2, 3)), ('bias', (2,))]
    >>> layer(torch.randn(5, 3)).shape
    torch.Size([5, 2])

    Docs: https://docs.pytorch.org/docs/stable/generated/torch.nn.parameter.Parameter.html
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True) -> None:
        raise NotImplementedError("LinearFromScratch.__init__")

    def forward(self, x: Tensor) -> Tensor:
        raise NotImplementedError("LinearFromScratch.forward")


def count_parameters(model: nn.Module) -> tuple[int, int]:
    """Return (total, trainable): how many parameter values `model` has, all and trainable only.

    Count numbers, not tensors (a 4x2 weight is 8). A parameter is trainable when
    it requires grad. Buffers (such as batch norm's running_mean) are not parameters.

    >>> net = SimpleNet()
    >>> count_parameters(net)
    (17, 17)
    >>> _ = net.fc1.requires_grad_(False)
    >>> count_parameters(net)  # fc1's 8 + 4 values are frozen
    (17, 5)

    Docs: https://docs.pytorch.org/docs/stable/generated/torch.nn.Module.html#torch.nn.Module.parameters
    """
    raise NotImplementedError("count_parameters")


def freeze_(module: nn.Module) -> None:
    """Freeze every parameter of `module` (nested ones too), in place; return None.

    A frozen parameter no longer requires grad, so backward() leaves its .grad
    None and optimizer steps skip it. It stays a parameter: it is still in
    `parameters()` and `state_dict()`.

    >>> net = SimpleNet()
    >>> freeze_(net.fc1)
    >>> [name for name, p in net.named_parameters() if p.requires_grad]
    ['fc2.weight', 'fc2.bias']

    Docs: https://docs.pytorch.org/docs/stable/generated/torch.nn.Module.html#torch.nn.Module.requires_grad_
    """
    raise NotImplementedError("freeze_")


class RunningMean(nn.Module):
    """Centres its input with a running mean of the batches it saw while training.

    State, registered as buffers (saved in state_dict, moved by `.to()`, never trained):
      - `running_mean`: float, shape (num_features,), starts at zeros;
      - `num_batches`: an integer tensor counting training batches, starts at 0.
    `forward(x)` with x of shape (batch, num_features): in training mode, first update
    running_mean = (1 - momentum) * running_mean + momentum * x.mean(dim=0) and add 1 to
    num_batches; in eval mode change nothing. Then return x - running_mean. The buffers
    must never join the autograd graph.

    >>> norm = RunningMean(2, momentum=0.5)
    >>> norm(torch.tensor([[2.0, 4.0], [4.0, 8.0]]))  # batch mean [3, 6]: running [1.5, 3]
    tensor([[0.5000, 1.0000],
            [2.5000, 5.0000]])
    >>> sorted(norm.state_dict()), list(norm.parameters())
    (['num_batches', 'running_mean'], [])

    Docs: https://docs.pytorch.org/docs/stable/generated/torch.nn.Module.html#torch.nn.Module.register_buffer
    """

    def __init__(self, num_features: int, momentum: float = 0.1) -> None:
        raise NotImplementedError("RunningMean.__init__")

    def forward(self, x: Tensor) -> Tensor:
        raise NotImplementedError("RunningMean.forward")


class MLP(nn.Module):
    """A stack of Linear layers whose depth is chosen when the model is built.

    `sizes` = [in, hidden..., out] gives one nn.Linear per consecutive pair, kept in
    an nn.ModuleList named `self.layers` (state_dict keys layers.0.weight, layers.0.bias,
    layers.1.weight, ...). `forward` applies them in order with a ReLU between two
    layers, none after the last. A plain Python list would hide the layers from
    `parameters()`, `state_dict()` and every optimizer.

    >>> model = MLP([3, 8, 8, 2])
    >>> len(model.layers), model(torch.randn(4, 3)).shape
    (3, torch.Size([4, 2]))

    Docs: https://docs.pytorch.org/docs/stable/generated/torch.nn.ModuleList.html
    """

    def __init__(self, sizes: Sequence[int]) -> None:
        raise NotImplementedError("MLP.__init__")

    def forward(self, x: Tensor) -> Tensor:
        raise NotImplementedError("MLP.forward")


def predict(model: nn.Module, x: Tensor) -> Tensor:
    """Return model(x) computed in eval mode without building a graph, then restore the modes.

    Eval mode turns dropout off and makes batch norm use its running statistics, so
    the answer is deterministic. Afterwards every submodule must be back in the mode
    it had before (a model may mix them, e.g. a frozen batch norm kept in eval inside
    a training model), even when the forward pass raises.

    >>> model = nn.Sequential(nn.Linear(4, 4), nn.Dropout(0.5))
    >>> x = torch.randn(2, 4)
    >>> torch.equal(predict(model, x), predict(model, x)), model.training
    (True, True)

    Docs: https://docs.pytorch.org/docs/stable/generated/torch.nn.Module.html#torch.nn.Module.eval
    """
    raise NotImplementedError("predict")


def init_weights_(model: nn.Module) -> None:
    """He-initialise every nn.Linear in `model`, nested ones included, in place; return None.

    Each Linear weight gets Kaiming (He) values for ReLU networks, mean 0 and
    std sqrt(2 / fan_in) (`nn.init.kaiming_uniform_` or `kaiming_normal_` with
    nonlinearity="relu"); each bias becomes exactly 0 (a Linear may have no bias).
    Other modules keep their parameters. `model.apply(fn)` calls fn on every submodule.

    >>> model = nn.Sequential(nn.Linear(512, 256), nn.ReLU(), nn.Sequential(nn.Linear(256, 1)))
    >>> init_weights_(model)
    >>> round(model[0].weight.std().item() * math.sqrt(512 / 2), 1), model[2][0].bias.abs().max().item()
    (1.0, 0.0)

    Docs: https://docs.pytorch.org/docs/stable/nn.init.html
    """
    raise NotImplementedError("init_weights_")
