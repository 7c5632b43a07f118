"""Kata 07: training dynamics, the tools for a run that does not learn.

Replace each `raise NotImplementedError` with your code, then run
`pytest katas/07_training_dynamics`. The lesson is in README.md beside this file.
`python -m katas plot 07_training_dynamics` draws your own runs to PNG.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Iterable

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader

LossFn = Callable[[Tensor, Tensor], Tensor]


def overfit_one_batch(
    model: nn.Module,
    loss_fn: LossFn,
    optimizer: torch.optim.Optimizer,
    loader: DataLoader,
    threshold: float,
    max_steps: int,
) -> tuple[int | None, list[float]]:
    """Train on the loader's first batch only, again and again: can the model fit it at all?

    Take one batch, `next(iter(loader))`, and train on that same batch for up to
    `max_steps` steps. Each step is kata 06's training step (zero_grad, forward, loss,
    backward, step); record the loss it computed, as a float. Stop right after the
    first loss below `threshold`. Return `(step, losses)`: the index in `losses` of that
    loss, or None when no loss fell below the threshold within `max_steps` steps.

    >>> from torch.utils.data import TensorDataset
    >>> _ = torch.manual_seed(0)
    >>> loader = DataLoader(TensorDataset(torch.randn(64, 4), torch.randn(64, 1)), batch_size=8)
    >>> model = nn.Sequential(nn.Linear(4, 32), nn.ReLU(), nn.Linear(32, 1))
    >>> optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    >>> step, losses = overfit_one_batch(model, nn.MSELoss(), optimizer, loader, 1e-3, max_steps=500)
    >>> step, len(losses), round(losses[0], 3), losses[step] < 1e-3
    (78, 79, 0.576, True)

    Docs: https://docs.pytorch.org/tutorials/beginner/basics/optimization_tutorial.html
    """
    raise NotImplementedError("overfit_one_batch")


def lr_range_test(
    model: nn.Module,
    loss_fn: LossFn,
    optimizer: torch.optim.Optimizer,
    loader: DataLoader,
    lr_min: float,
    lr_max: float,
    diverge_factor: float = 4.0,
) -> tuple[list[float], list[float], float | None]:
    """Sweep the learning rate from lr_min to lr_max over one pass; find where the loss blows up.

    Batch i of the n = len(loader) batches (n >= 2) uses the learning rate
    lr_min * (lr_max / lr_min) ** (i / (n - 1)): exponential steps, from lr_min at the
    first batch to lr_max at the last. Set it in every `optimizer.param_groups` entry
    ("lr"), then compute the batch's loss and record both. If the loss is not finite
    (nan or inf) or above `diverge_factor` times the lowest loss so far, the run has
    diverged: stop there, before backward() (that lr is the result). Otherwise take the
    step. The test is a probe, not training: afterwards put the model and the optimizer
    back as they were (copies of their state_dict()s, taken before the sweep). Return
    `(lrs, losses, diverged_at)`, diverged_at None if the loss never diverged.

    >>> from torch.utils.data import TensorDataset
    >>> g = torch.Generator().manual_seed(0)
    >>> x = torch.randn(1600, 4, generator=g)
    >>> y = x @ torch.tensor([[1.0], [-1.0], [0.5], [0.5]]) + 0.1 * torch.randn(1600, 1, generator=g)
    >>> _ = torch.manual_seed(0)
    >>> model = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 1))
    >>> optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    >>> loader = DataLoader(TensorDataset(x, y), batch_size=32)  # 50 batches
    >>> lrs, losses, diverged_at = lr_range_test(model, nn.MSELoss(), optimizer, loader, 1e-3, 10.0)
    >>> len(lrs), round(diverged_at, 3), optimizer.param_groups[0]["lr"]
    (32, 0.339, 0.1)

    Docs: https://docs.pytorch.org/docs/stable/optim.html#how-to-adjust-learning-rate
    """
    raise NotImplementedError("lr_range_test")


def train_with_divergence_guard(
    model: nn.Module,
    loss_fn: LossFn,
    optimizer: torch.optim.Optimizer,
    batches: Iterable[tuple[Tensor, Tensor]],
    max_loss: float,
) -> tuple[list[float], int | None]:
    """Train one step per batch, but stop cleanly at the first loss that is nan, inf or too large.

    For each (inputs, targets) in `batches`: zero the gradients, compute the loss and
    record it as a float. If it is not finite or above `max_loss`, stop before
    backward() and step(), so the weights stay those of the last good step. Otherwise
    backward() and step(). Return `(losses, diverged_at)`: every loss computed (the bad
    one included, last) and the index of the batch that stopped the run, or None.
    Careful: every comparison with nan is False, so `loss > max_loss` never catches it.

    >>> _ = torch.manual_seed(0)
    >>> model = nn.Linear(2, 1)
    >>> optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    >>> batches = [(torch.randn(4, 2), torch.randn(4, 1)) for _ in range(5)]
    >>> batches[3][0][0, 0] = float("nan")  # a corrupt sample in the fourth batch
    >>> losses, diverged_at = train_with_divergence_guard(model, nn.MSELoss(), optimizer, batches, 100.0)
    >>> len(losses), losses[-1], diverged_at, bool(model.weight.isfinite().all())
    (4, nan, 3, True)

    Docs: https://docs.pytorch.org/docs/stable/generated/torch.isfinite.html
    """
    raise NotImplementedError("train_with_divergence_guard")


def activation_stds(model: nn.Sequential, inputs: Tensor) -> list[float]:
    """Pass `inputs` through the layers of `model` and measure how the signal's scale changes.

    Feed the batch through the layers of the nn.Sequential one by one, without
    autograd. After every nn.Linear layer, record the standard deviation of its output
    (over all its entries: `.std()`) as a float. Return those values, first layer first.

    >>> _ = torch.manual_seed(0)
    >>> model = nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 64))
    >>> [round(s, 2) for s in activation_stds(model, torch.randn(256, 64))]  # the default init: it shrinks
    [0.58, 0.25, 0.13]

    Docs: https://docs.pytorch.org/docs/stable/generated/torch.std.html
    """
    raise NotImplementedError("activation_stds")


def kaiming_init(model: nn.Module) -> None:
    """Re-initialise every nn.Linear in `model` (at any depth) for ReLU networks, in place.

    Weights: `nn.init.kaiming_normal_` with the ReLU gain, fan_in mode (its defaults
    with nonlinearity="relu"): N(0, 2 / fan_in). Biases: zero. Leave other modules
    alone. The random numbers come from the global generator, in the order of
    `model.modules()`. Return None.

    >>> _ = torch.manual_seed(0)
    >>> model = nn.Sequential(nn.Linear(512, 256), nn.ReLU(), nn.Linear(256, 10))
    >>> kaiming_init(model)
    >>> round(model[0].weight.std().item() ** 2 * 512, 1), model[2].bias.abs().sum().item()
    (2.0, 0.0)

    Docs: https://docs.pytorch.org/docs/stable/nn.init.html#torch.nn.init.kaiming_normal_
    """
    raise NotImplementedError("kaiming_init")


def fit_keep_best(
    model: nn.Module,
    train_epoch: Callable[[], float],
    validate: Callable[[], float],
    max_epochs: int,
    patience: int,
) -> tuple[list[float], list[float], int]:
    """Early stopping that hands back the model of its best epoch, not of its last.

    For epoch = 0, 1, 2, ...: `train_epoch()` trains `model` one epoch and returns the
    training loss; `validate()` returns the validation loss. A validation loss strictly
    below the best so far is an improvement: remember the epoch and a copy of the
    model's weights. Stop after `patience` epochs in a row without improvement, or after
    `max_epochs`. Then load the best weights back into the model. Return
    `(train_losses, val_losses, best_epoch)`.

    Kata 06 wrote the stopping rule; here is its core, to reuse:

        if loss < best: best, best_epoch, waited = loss, epoch, 0
        else: waited += 1
        if waited >= patience: break

    >>> model = nn.Linear(1, 1)
    >>> def train_epoch():  # stands for a real epoch: it changes the weights in place
    ...     with torch.no_grad():
    ...         model.weight.add_(1.0)
    ...     return 0.0
    >>> val = iter([0.9, 0.5, 0.7, 0.8, 0.6])
    >>> with torch.no_grad():
    ...     _ = model.weight.fill_(0.0)
    >>> fit_keep_best(model, train_epoch, lambda: next(val), max_epochs=5, patience=3)
    ([0.0, 0.0, 0.0, 0.0, 0.0], [0.9, 0.5, 0.7, 0.8, 0.6], 1)
    >>> model.weight.item()  # the weight after epoch 1, not after epoch 4
    2.0

    Docs: https://docs.pytorch.org/tutorials/beginner/saving_loading_models.html
    """
    raise NotImplementedError("fit_keep_best")


def gradient_norms(
    model: nn.Module,
    loss_fn: LossFn,
    optimizer: torch.optim.Optimizer,
    batches: Iterable[tuple[Tensor, Tensor]],
) -> dict[str, list[float]]:
    """Train one step per batch and log each parameter's gradient norm at every step, with hooks.

    Before training, register a hook on every parameter that requires grad
    (`p.register_hook(fn)`: autograd calls fn(grad) with that parameter's gradient during
    each backward()); the hook appends `grad.norm().item()` to the list of that
    parameter's name (from `model.named_parameters()`). Then take kata 06's training
    step on each batch. Remove every hook afterwards (`handle.remove()`), even if
    training raised: a hook left behind keeps logging into your lists forever. Return
    {name: [norm at step 0, norm at step 1, ...]} for the parameters that require grad.

    >>> _ = torch.manual_seed(0)
    >>> model = nn.Sequential(nn.Linear(2, 4), nn.Sigmoid(), nn.Linear(4, 1))
    >>> optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    >>> batches = [(torch.randn(8, 2), torch.randn(8, 1)) for _ in range(3)]
    >>> norms = gradient_norms(model, nn.MSELoss(), optimizer, batches)
    >>> sorted(norms)
    ['0.bias', '0.weight', '2.bias', '2.weight']
    >>> [round(n, 2) for n in norms["0.weight"]], [round(n, 2) for n in norms["2.weight"]]
    ([0.21, 0.21, 0.25], [0.75, 0.74, 0.93])

    Docs: https://docs.pytorch.org/docs/stable/generated/torch.Tensor.register_hook.html
    """
    raise NotImplementedError("gradient_norms")
