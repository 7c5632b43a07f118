"""Kata 06: the training loop.

Replace each `raise NotImplementedError` with your code, then run
`pytest katas/06_training_loop`. The lesson is in README.md beside this file.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset

LossFn = Callable[[Tensor, Tensor], Tensor]


def train_step(
    model: nn.Module, loss_fn: LossFn, optimizer: torch.optim.Optimizer, inputs: Tensor, targets: Tensor
) -> float:
    """Take one optimisation step on one batch and return the batch's loss as a Python float.

    The four stages, in this order: clear the old gradients (`optimizer.zero_grad()`),
    forward pass and loss, `backward()`, `optimizer.step()`. The loss returned is the
    one computed in this step, before the update.

    >>> _ = torch.manual_seed(0)
    >>> model = nn.Linear(2, 1)
    >>> optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    >>> train_step(model, nn.MSELoss(), optimizer, torch.randn(4, 2), torch.randn(4, 1))
    0.94097...

    Docs: https://docs.pytorch.org/tutorials/beginner/basics/optimization_tutorial.html
    """
    raise NotImplementedError("train_step")


def train_epoch(
    model: nn.Module, loss_fn: LossFn, optimizer: torch.optim.Optimizer, loader: DataLoader
) -> float:
    """Train for one pass over `loader` and return the mean loss per sample.

    Put the model in training mode first (an evaluation may have left it in eval
    mode), then take one step per batch. `loss_fn` averages over a batch, so weight
    each batch's loss by the batch's size: a short last batch must count less.

    >>> from torch.utils.data import TensorDataset
    >>> _ = torch.manual_seed(0)
    >>> model = nn.Linear(2, 1)
    >>> optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    >>> x, y = torch.randn(10, 2), torch.randn(10, 1)
    >>> loader = DataLoader(TensorDataset(x, y), batch_size=4)  # batches of 4, 4 and 2 samples
    >>> train_epoch(model, nn.MSELoss(), optimizer, loader)  # (4*loss1 + 4*loss2 + 2*loss3) / 10
    2.13881...

    Docs: https://docs.pytorch.org/docs/stable/data.html#torch.utils.data.DataLoader
    """
    raise NotImplementedError("train_epoch")


def evaluate(model: nn.Module, loss_fn: LossFn, loader: DataLoader) -> float:
    """Given: finished code, nothing to write. Returns the mean loss per sample over `loader`.

    It joins two habits you have practised: predicting in eval mode under `torch.no_grad()`
    with every submodule's mode restored in `finally` (kata 04, `predict`), and weighing
    each batch's loss by its size (`train_epoch` above). Read it, then use it in your loops.

    >>> from torch.utils.data import TensorDataset
    >>> _ = torch.manual_seed(0)
    >>> model = nn.Linear(2, 1)
    >>> loader = DataLoader(TensorDataset(torch.randn(10, 2), torch.randn(10, 1)), batch_size=4)
    >>> evaluate(model, nn.MSELoss(), loader), model.training
    (2.13909..., True)

    Docs: https://docs.pytorch.org/docs/stable/generated/torch.nn.Module.html#torch.nn.Module.eval
    """
    modes = {m: m.training for m in model.modules()}
    model.eval()
    total, count = 0.0, 0
    try:
        with torch.no_grad():
            for inputs, targets in loader:
                total += loss_fn(model(inputs), targets).item() * len(inputs)
                count += len(inputs)
    finally:
        for m, training in modes.items():
            m.training = training
    return total / count


def fit(
    model: nn.Module,
    loss_fn: LossFn,
    optimizer: torch.optim.Optimizer,
    inputs: Tensor,
    targets: Tensor,
    threshold: float,
    max_steps: int,
) -> list[float]:
    """Train on the whole batch until the loss falls below `threshold`, within `max_steps` steps.

    Each step is a training step on (inputs, targets); record the loss it returns.
    Stop right after the first loss below `threshold` (keep it in the list), or
    after `max_steps` steps when the threshold is never reached. Return the losses.

    >>> _ = torch.manual_seed(0)
    >>> model = nn.Sequential(nn.Linear(2, 8), nn.Tanh(), nn.Linear(8, 1))
    >>> optimizer = torch.optim.Adam(model.parameters(), lr=0.1)
    >>> xor_inputs = torch.tensor([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
    >>> xor_targets = torch.tensor([[0.0], [1.0], [1.0], [0.0]])
    >>> losses = fit(model, nn.MSELoss(), optimizer, xor_inputs, xor_targets, 0.01, 200)
    >>> len(losses), round(losses[0], 4), round(losses[-1], 4)  # stopped after 35 of 200 steps
    (35, 0.9027, 0.0039)

    Docs: https://docs.pytorch.org/tutorials/beginner/basics/optimization_tutorial.html
    """
    raise NotImplementedError("fit")


def accumulated_step(
    model: nn.Module,
    loss_fn: LossFn,
    optimizer: torch.optim.Optimizer,
    inputs: Tensor,
    targets: Tensor,
    micro_batches: int,
) -> float:
    """Take one step for the whole batch, accumulating its gradient over `micro_batches` parts.

    Split the batch with `torch.tensor_split(inputs, micro_batches)` (and the same
    for targets; 1 <= micro_batches <= len(inputs)). Zero the gradients once, then
    for each part: forward, loss scaled by the part's share of the batch
    (len(part) / len(inputs)), backward. Step once at the end. The update then
    equals one step on the whole batch. Return the whole batch's loss as a float.

    >>> _ = torch.manual_seed(0)
    >>> model = nn.Linear(2, 1)
    >>> optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    >>> x, y = torch.randn(7, 2), torch.randn(7, 1)
    >>> accumulated_step(model, nn.MSELoss(), optimizer, x, y, 3)  # parts of 3, 2 and 2 samples
    1.3155199140310287
    >>> # train_step on the whole batch would return 1.3155200481414795: equal up to round-off

    Docs: https://docs.pytorch.org/docs/stable/generated/torch.tensor_split.html
    """
    raise NotImplementedError("accumulated_step")


def clipped_step(
    model: nn.Module,
    loss_fn: LossFn,
    optimizer: torch.optim.Optimizer,
    inputs: Tensor,
    targets: Tensor,
    max_norm: float,
) -> float:
    """Take one training step with the gradient's total norm clipped to `max_norm`.

    Clip with `torch.nn.utils.clip_grad_norm_` after `backward()` and before
    `step()`. Return the total gradient norm before clipping (what
    `clip_grad_norm_` returns) as a Python float.

    >>> _ = torch.manual_seed(0)
    >>> model = nn.Linear(2, 1)
    >>> optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    >>> x, y = torch.randn(4, 2), 50 * torch.randn(4, 1)
    >>> clipped_step(model, nn.MSELoss(), optimizer, x, y, 1.0)  # step() used a gradient of norm 1.0
    55.98977...

    Docs: https://docs.pytorch.org/docs/stable/generated/torch.nn.utils.clip_grad_norm_.html
    """
    raise NotImplementedError("clipped_step")


def train_with_early_stopping(
    run_epoch: Callable[[int], float], max_epochs: int, patience: int
) -> tuple[int, float]:
    """Run epochs until the validation loss stops improving; return (best_epoch, best_loss).

    Call `run_epoch(epoch)` for epoch = 0, 1, 2, ...: it trains one epoch and
    returns the validation loss. A loss strictly below the best so far is an
    improvement. Stop after `patience` epochs in a row without improvement, or
    after `max_epochs` epochs.

    >>> losses = [1.0, 0.8, 0.9, 0.7, 0.75, 0.72, 0.6]
    >>> train_with_early_stopping(lambda epoch: losses[epoch], max_epochs=7, patience=2)
    (3, 0.7)

    Docs: https://docs.pytorch.org/tutorials/beginner/introyt/trainingyt.html
    """
    raise NotImplementedError("train_with_early_stopping")


def seeded_losses(
    seed: int,
    make_model: Callable[[], nn.Module],
    dataset: Dataset,
    epochs: int,
    batch_size: int,
    lr: float,
) -> list[float]:
    """Train a fresh model for `epochs` epochs and return every batch's loss, reproducibly.

    Seed the global random generator first, `torch.manual_seed(seed)`: it draws the
    initial weights and the dropout masks. Then build `make_model()`, an SGD
    optimizer with `lr`, `nn.MSELoss()`, and a shuffling DataLoader with its own
    generator, `torch.Generator().manual_seed(seed)`. Train in training mode, one
    step per batch. The same seed must give the same list, bit for bit.

    >>> from torch.utils.data import TensorDataset
    >>> dataset = TensorDataset(torch.randn(10, 2), torch.randn(10, 1))
    >>> def make_model():
    ...     return nn.Sequential(nn.Linear(2, 6), nn.Dropout(0.3), nn.Linear(6, 1))
    >>> first = seeded_losses(0, make_model, dataset, epochs=2, batch_size=4, lr=0.1)
    >>> len(first), first == seeded_losses(0, make_model, dataset, epochs=2, batch_size=4, lr=0.1)
    (6, True)

    Docs: https://docs.pytorch.org/docs/stable/notes/randomness.html
    """
    raise NotImplementedError("seeded_losses")
