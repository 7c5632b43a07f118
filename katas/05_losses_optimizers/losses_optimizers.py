"""Kata 05: losses and optimizers.

Replace each `raise NotImplementedError` with your code, then run
`pytest katas/05_losses_optimizers`. The lesson is in README.md beside this file.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence

import torch
from torch import Tensor, nn


def mse_loss(pred: Tensor, target: Tensor, reduction: str = "mean") -> Tensor:
    """Return the mean squared error between `pred` and `target`, like nn.MSELoss(reduction=reduction).

    Square the elementwise differences, then reduce: 'mean' averages over every element,
    'sum' adds them up, 'none' returns the squared errors unreduced (the input's shape).
    Any other `reduction` raises ValueError. Write it with tensor operations, so that
    the result stays in the graph; F.mse_loss is switched off in the tests.

    >>> mse_loss(torch.tensor([1.0, 2.0, 4.0]), torch.tensor([1.0, 0.0, 1.0]))
    tensor(4.3333)
    >>> mse_loss(torch.tensor([1.0, 2.0, 4.0]), torch.tensor([1.0, 0.0, 1.0]), "none")
    tensor([0., 4., 9.])

    Docs: https://docs.pytorch.org/docs/stable/generated/torch.nn.MSELoss.html
    """
    raise NotImplementedError("mse_loss")


def cross_entropy(logits: Tensor, target: Tensor, reduction: str = "mean") -> Tensor:
    """Return the cross-entropy of class indices `target` (N,) under `logits` (N, C), like F.cross_entropy.

    Each sample's loss is -log softmax(logits)[target] = logsumexp(row) - row[target].
    It must stay finite for logits like 1000, where exp() overflows: compute logsumexp
    with the row's max subtracted first, or with torch.logsumexp. Reduce as in mse_loss
    ('none' gives shape (N,)). F.cross_entropy, F.nll_loss and log_softmax are switched
    off in the tests.

    >>> cross_entropy(torch.tensor([[2.0, 0.0], [1000.0, 998.0]]), torch.tensor([0, 1]), "none")
    tensor([0.1269, 2.1270])

    Docs: https://docs.pytorch.org/docs/stable/generated/torch.nn.CrossEntropyLoss.html
    """
    raise NotImplementedError("cross_entropy")


def zero_grad(params: Iterable[Tensor], set_to_none: bool = True) -> None:
    """Reset the gradient of every tensor in `params`, as Optimizer.zero_grad(set_to_none) does.

    With set_to_none=True (the default) each `.grad` becomes None. With False, each
    existing gradient is filled with zeros in place (the same tensor). A parameter whose
    `.grad` is None stays None either way. `params` may be a generator.

    >>> w = torch.nn.Parameter(torch.ones(2)); w.grad = torch.ones(2)
    >>> zero_grad([w], set_to_none=False); w.grad
    tensor([0., 0.])
    >>> zero_grad([w]); print(w.grad)
    None

    Docs: https://docs.pytorch.org/docs/stable/generated/torch.optim.Optimizer.zero_grad.html
    """
    raise NotImplementedError("zero_grad")


def sgd_step(
    params: Sequence[Tensor],
    state: dict,
    lr: float,
    momentum: float = 0.0,
    dampening: float = 0.0,
    weight_decay: float = 0.0,
) -> None:
    """Apply one step of torch.optim.SGD to `params` in place, reading each `p.grad`.

    For each parameter with a gradient, in PyTorch's order:
        g = p.grad + weight_decay * p
        buf = g (a copy) on the first step; afterwards buf = momentum * buf + (1 - dampening) * g
        p -= lr * buf              (p -= lr * g when momentum is 0)
    The caller passes the same `state` dict (empty at first) on every step: keep each
    parameter's momentum buffer in it. Skip parameters whose `.grad` is None, leave `.grad`
    unchanged, and update under torch.no_grad(). torch.optim.SGD is switched off in the tests.

    >>> p = torch.nn.Parameter(torch.tensor([1.0])); state = {}
    >>> p.grad = torch.tensor([1.0]); sgd_step([p], state, lr=0.1, momentum=0.9)
    >>> p.grad = torch.tensor([1.0]); sgd_step([p], state, lr=0.1, momentum=0.9); p
    Parameter containing:
    tensor([0.7100], requires_grad=True)

    Docs: https://docs.pytorch.org/docs/stable/generated/torch.optim.SGD.html
    """
    raise NotImplementedError("sgd_step")


def adam_step(
    params: Sequence[Tensor],
    state: dict,
    lr: float = 1e-3,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
    weight_decay: float = 0.0,
) -> None:
    """Apply one step of torch.optim.Adam to `params` in place, reading each `p.grad`.

    For each parameter with a gradient, t being its step count (1 on the first call):
        g = p.grad + weight_decay * p
        m = beta1 * m + (1 - beta1) * g;  v = beta2 * v + (1 - beta2) * g * g   (m, v start at 0)
        m_hat = m / (1 - beta1**t);  v_hat = v / (1 - beta2**t)                 (bias correction)
        p -= lr * m_hat / (sqrt(v_hat) + eps)                                    (eps outside the sqrt)
    Keep t, m and v for each parameter in the `state` dict the caller passes on every step.
    Skip parameters without a gradient. torch.optim.Adam is switched off in the tests.

    >>> p = torch.nn.Parameter(torch.tensor([1.0, 1.0])); p.grad = torch.tensor([5.0, -0.01])
    >>> adam_step([p], {}, lr=0.1); p  # the first step is about lr * sign(g)
    Parameter containing:
    tensor([0.9000, 1.1000], requires_grad=True)

    Docs: https://docs.pytorch.org/docs/stable/generated/torch.optim.Adam.html
    """
    raise NotImplementedError("adam_step")


def warmup_cosine_lrs(
    base_lr: float, total_epochs: int, warmup_epochs: int = 0, start_factor: float = 0.1, min_lr: float = 0.0
) -> list[float]:
    """Return the learning rate of each of `total_epochs` epochs: linear warmup, then cosine annealing.

    Epochs 0 .. warmup_epochs - 1 rise linearly from base_lr * start_factor, as
    lr_scheduler.LinearLR(start_factor, total_iters=warmup_epochs) does: at epoch e the
    factor is start_factor + (1 - start_factor) * e / warmup_epochs. From epoch
    warmup_epochs on, the rate follows CosineAnnealingLR(T_max=total_epochs - warmup_epochs,
    eta_min=min_lr), counting t from the end of the warmup:
        min_lr + (base_lr - min_lr) * (1 + cos(pi * t / T_max)) / 2
    Compute it by hand (math.cos); the tests compare with SequentialLR and switch the
    schedulers off while your code runs.

    >>> [round(lr, 3) for lr in warmup_cosine_lrs(1.0, total_epochs=6, warmup_epochs=2, min_lr=0.0)]
    [0.1, 0.55, 1.0, 0.854, 0.5, 0.146]

    Docs: https://docs.pytorch.org/docs/stable/generated/torch.optim.lr_scheduler.CosineAnnealingLR.html
    """
    raise NotImplementedError("warmup_cosine_lrs")


def train_with_schedule(
    model: nn.Module,
    loss_fn: Callable[[Tensor, Tensor], Tensor],
    batches: Sequence[tuple[Tensor, Tensor]],
    epochs: int,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
) -> list[float]:
    """Train `model` for `epochs` epochs over `batches`, stepping the scheduler once per epoch.

    Each batch is (inputs, targets): zero the gradients, compute
    loss_fn(model(inputs), targets), backward(), optimizer.step(). After the epoch's last
    batch, call scheduler.step() once. Return the learning rate each epoch used,
    optimizer.param_groups[0]["lr"] read at the start of the epoch.

    >>> model = torch.nn.Linear(2, 1)
    >>> opt = torch.optim.SGD(model.parameters(), lr=0.1)
    >>> halve = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)
    >>> batches = [(torch.randn(4, 2), torch.randn(4, 1))] * 2
    >>> train_with_schedule(model, torch.nn.MSELoss(), batches, 3, opt, halve)
    [0.1, 0.05, 0.025]

    Docs: https://docs.pytorch.org/docs/stable/optim.html#how-to-adjust-learning-rate
    """
    raise NotImplementedError("train_with_schedule")
