"""Kata 06: the training loop. Read a test's name for the behaviour, its body for the call.

Most tests watch your loop through a `Probe`: a hook on every parameter sees each backward
pass (and whether old gradients were still sitting in `.grad`), a step pre-hook on the
optimizer records the gradients each `step()` used, and a forward pre-hook records the
batch size, the training mode and whether autograd was recording. So the tests check the
order of zero_grad, backward and step, not only the numbers at the end.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from functools import partial

import pytest
import torch
import training_loop as tl
from hypothesis import given
from hypothesis import strategies as st
from torch import nn
from torch.utils.data import DataLoader, Dataset, TensorDataset

from katas._harness.i18n import N_, _
from katas._harness.testing import expect_close, expect_float, expect_floats, expect_tensor_close, fail, show

exercise = pytest.mark.exercise

seeds = st.integers(0, 2**16)
mse = nn.MSELoss()


# --- models, data and references ---------------------------------------------------------------


def seeded(model: nn.Module, seed: int) -> nn.Module:
    """Redraw the parameters from `seed` (a torch.Generator: faster than torch.manual_seed in tests)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            bound = 1 / math.sqrt(p.shape[-1]) if p.dim() > 1 else 0.5
            p.uniform_(-bound, bound, generator=gen)
    return model


def simple_net(seed: int) -> nn.Module:
    """The article's SimpleNet, Linear 2 -> 4, ReLU, Linear 4 -> 1, with weights drawn from `seed`."""
    return seeded(nn.Sequential(nn.Linear(2, 4), nn.ReLU(), nn.Linear(4, 1)), seed)


def dropout_net(seed: int) -> nn.Module:
    return seeded(nn.Sequential(nn.Linear(2, 8), nn.ReLU(), nn.Dropout(0.5), nn.Linear(8, 1)), seed)


def regression_data(seed: int, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """y = x @ w + noise for a random w: inputs of shape (n, 2), targets of shape (n, 1)."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 2, generator=gen)
    y = x @ torch.randn(2, 1, generator=gen) + 0.1 * torch.randn(n, 1, generator=gen)
    return x, y


OPTIMIZERS: dict[str, Callable] = {
    "SGD(lr=0.1)": partial(torch.optim.SGD, lr=0.1),
    "SGD(lr=0.05, momentum=0.9)": partial(torch.optim.SGD, lr=0.05, momentum=0.9),
    "Adam(lr=0.01)": partial(torch.optim.Adam, lr=0.01),
}


def leave_old_gradients(model: nn.Module, seed: int) -> None:
    """What an earlier batch leaves behind in .grad when nobody zeroes it."""
    model(regression_data(seed + 1, 3)[0]).pow(2).sum().backward()


def reference_step(model: nn.Module, make_optimizer: Callable, x: torch.Tensor, y: torch.Tensor):
    """One correct step on `model` (a fresh copy made by the test): loss, gradients, parameters after."""
    optimizer = make_optimizer(model.parameters())
    loss = mse(model(x), y)
    grads = torch.autograd.grad(loss, list(model.parameters()))
    for p, g in zip(model.parameters(), grads, strict=True):
        p.grad = g
    optimizer.step()
    return loss.item(), list(grads), [p.detach().clone() for p in model.parameters()]


def batch_losses(model: nn.Module, loader, make_optimizer=None) -> tuple[list[float], list[int]]:
    """Each batch's loss and size; with `make_optimizer`, a correct training step after each batch."""
    optimizer = make_optimizer(model.parameters()) if make_optimizer else None
    losses, sizes = [], []
    for x, y in loader:
        loss = mse(model(x), y)
        if optimizer is not None:
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        losses.append(loss.item())
        sizes.append(len(x))
    return losses, sizes


def per_sample_mean(losses: list[float], sizes: list[int]) -> float:
    return sum(loss * size for loss, size in zip(losses, sizes, strict=True)) / sum(sizes)


def mean_mistakes(losses: list[float], sizes: list[int]) -> list[tuple[str, float]]:
    return [
        (
            _(
                "you averaged the batch losses, so a short last batch counts as much as a full one; "
                "weight each batch's loss by its size: sum(loss * len(batch)) / number of samples"
            ),
            sum(losses) / len(losses),
        ),
        (
            _(
                "you summed the batch losses where the mean is asked for; "
                "weight each by its batch size and divide by the number of samples"
            ),
            sum(losses),
        ),
        (
            _("you summed loss * batch size without dividing by the number of samples"),
            sum(loss * size for loss, size in zip(losses, sizes, strict=True)),
        ),
        (_("you returned the last batch's loss only"), losses[-1]),
    ]


class Probe:
    """Watches a model and its optimizer while the code under test trains it."""

    def __init__(self, model: nn.Module, optimizer: torch.optim.Optimizer | None = None):
        self.params = list(model.parameters())
        self.log: list[str] = []  # "backward" and "step", in the order they happened
        self.backwards: list[bool] = []  # per backward pass: did it add onto leftover gradients?
        self.steps: list[list[torch.Tensor | None]] = []  # per step(): the gradients it used
        self.forwards: list[tuple[int, bool, bool]] = []  # (batch size, model.training, grad enabled)
        self._grads_this_pass = 0
        for p in self.params:
            p.register_hook(partial(self._on_grad, p))  # runs before the gradient is added to p.grad
        if optimizer is not None:
            optimizer.register_step_pre_hook(self._on_step)
        model.register_forward_pre_hook(self._on_forward)

    def _on_grad(self, p: torch.Tensor, grad: torch.Tensor) -> None:
        if self._grads_this_pass == 0:
            self.log.append("backward")
            self.backwards.append(False)
        if p.grad is not None and bool(p.grad.any()):
            self.backwards[-1] = True
        self._grads_this_pass = (self._grads_this_pass + 1) % len(self.params)

    def _on_step(self, optimizer, args, kwargs) -> None:
        self.log.append("step")
        self.steps.append([None if p.grad is None else p.grad.detach().clone() for p in self.params])

    def _on_forward(self, module: nn.Module, args: tuple) -> None:
        self.forwards.append((len(args[0]), module.training, torch.is_grad_enabled()))

    def expect_steps(self, count: int, *, call: str, why: str) -> None:
        if len(self.steps) != count:
            fail(
                _("Called {call}.\noptimizer.step() ran {ran} time(s); expected {count}.\n{why}").format(
                    call=call, ran=len(self.steps), count=count, why=why
                )
            )

    def expect_clean_step(self, index: int, *, call: str) -> list[torch.Tensor | None]:
        """The index-th step() followed a backward() that started from zeroed gradients; its grads."""
        steps_seen = 0
        backwards_before = []
        for event, stale in zip(self.log, self._stale_flags(), strict=True):
            if event == "step":
                if steps_seen == index:
                    break
                steps_seen += 1
                backwards_before = []
            else:
                backwards_before.append(stale)
        if not backwards_before:
            fail(
                _(
                    "Called {call}.\noptimizer.step() ran before backward(), so it used whatever the "
                    "gradients were before (or none), not this batch's.\nLikely cause: step() ran before "
                    "backward(). The order is: zero_grad(), forward, loss, backward(), step()."
                ).format(call=call)
            )
        used = self.steps[index]
        if all(g is None or not g.any() for g in used):
            fail(
                _(
                    "Called {call}.\noptimizer.step() saw no gradients: every .grad was None or zero, "
                    "so nothing was learned.\nLikely cause: zero_grad() ran between backward() and step() "
                    "and wiped the fresh gradients. Zero them first, before the forward pass."
                ).format(call=call)
            )
        if backwards_before[0]:
            fail(
                _(
                    "Called {call}.\nGradients piled up: backward() added this batch's gradient onto "
                    "gradients left over from an earlier batch, and step() used their sum.\n"
                    "Likely cause: did you forget optimizer.zero_grad()? Call it at the start of every step."
                ).format(call=call)
            )
        return used

    def _stale_flags(self) -> list[bool]:
        flags, passes = [], iter(self.backwards)
        for event in self.log:
            flags.append(next(passes) if event == "backward" else False)
        return flags


GRAD_USED = [  # SimpleNet's parameters alternate: a weight, then its bias
    N_("{call}; the gradient step() used for parameter {i} (a weight)"),
    N_("{call}; the gradient step() used for parameter {i} (a bias)"),
]


def expect_grads(used, expected, *, call: str, mistakes=(), note: str = "") -> None:
    for i, (got, want) in enumerate(zip(used, expected, strict=True)):
        grad_call = _(GRAD_USED[i % 2]).format(call=call, i=i)
        if got is None:
            fail(
                _("Called {call}.\nParameter {index} had no gradient when step() ran.").format(
                    call=call, index=i
                )
            )
        expect_tensor_close(
            got, want, call=grad_call, mistakes=[(c, wrong[i]) for c, wrong in mistakes], note=note
        )


def expect_params(model: nn.Module, expected: list[torch.Tensor], *, call: str, note: str = "") -> None:
    for i, (p, want) in enumerate(zip(model.parameters(), expected, strict=True)):
        expect_tensor_close(
            p.detach(), want, call=_("{call}; parameter {i} afterwards").format(call=call, i=i), note=note
        )


# --- train_step ----------------------------------------------------------------------------------


def check_train_step(seed: int, n: int, optimizer_name: str) -> None:
    make_optimizer = OPTIMIZERS[optimizer_name]
    x, y = regression_data(seed, n)
    model = simple_net(seed)
    optimizer = make_optimizer(model.parameters())
    leave_old_gradients(model, seed)
    probe = Probe(model, optimizer)
    call = _(
        "train_step(SimpleNet, nn.MSELoss(), {optimizer}, a batch of {n}) after an earlier batch"
    ).format(optimizer=optimizer_name, n=n)
    loss = expect_float(tl.train_step(model, mse, optimizer, x, y), call=call)
    expected_loss, expected_grads, expected_params = reference_step(simple_net(seed), make_optimizer, x, y)
    probe.expect_steps(1, call=call, why=_("One training step calls optimizer.step() once."))
    used = probe.expect_clean_step(0, call=call)
    expect_grads(used, expected_grads, call=call)
    expect_close(loss, expected_loss, call=call, note=_("Return the loss of this batch before the update."))
    expect_params(model, expected_params, call=call)


@exercise("train_step")
def test_train_step_on_the_article_simplenet():
    check_train_step(seed=0, n=4, optimizer_name="SGD(lr=0.1)")


@exercise("train_step")
@given(seed=seeds, n=st.integers(1, 8), optimizer_name=st.sampled_from(sorted(OPTIMIZERS)))
def test_train_step_matches_a_correct_step_for_random_batches(seed, n, optimizer_name):
    check_train_step(seed, n, optimizer_name)


@exercise("train_step")
def test_train_step_twice_in_a_row_uses_each_batchs_own_gradient():
    model = simple_net(1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    probe = Probe(model, optimizer)
    batches = [regression_data(seed, 5) for seed in (10, 11)]
    reference = simple_net(1)
    reference_optimizer = torch.optim.SGD(reference.parameters(), lr=0.1)
    for i, (x, y) in enumerate(batches):
        call = _("train_step(...) for batch {k} of 2 on the same model and optimizer").format(k=i + 1)
        tl.train_step(model, mse, optimizer, x, y)
        expected_grads = reference_step(reference, lambda params: reference_optimizer, x, y)[1]
        used = probe.expect_clean_step(i, call=call)
        expect_grads(used, expected_grads, call=call)


@exercise("train_step")
def test_train_step_runs_the_articles_loop_with_data_defined():
    # The article's loop uses `input` and `target` without defining them; here they exist.
    gen = torch.Generator().manual_seed(100)
    inputs = torch.randn(16, 2, generator=gen)
    targets = inputs @ torch.tensor([[2.0], [-1.0]]) + 0.5
    model = simple_net(0)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    criterion = nn.MSELoss()
    call = _("train_step(SimpleNet, nn.MSELoss(), SGD(lr=0.01), inputs, targets) 100 times")
    losses = [
        expect_float(tl.train_step(model, criterion, optimizer, inputs, targets), call=call)
        for _step in range(100)
    ]
    if (
        not all(later < earlier for earlier, later in zip(losses, losses[1:], strict=False))
        or losses[-1] > losses[0] / 2
    ):
        fail(
            _(
                "Called {call}.\nThe losses went {first} ... {last}; with a small "
                "learning rate on one fixed batch, each step should lower the loss, to less than half in "
                "100 steps."
            ).format(call=call, first=show(losses[:3]), last=show(losses[-3:]))
        )


# --- train_epoch ----------------------------------------------------------------------------------


def check_train_epoch(seed: int, n: int, batch_size: int, x=None, y=None) -> None:
    if x is None:
        x, y = regression_data(seed, n)
    loader = DataLoader(TensorDataset(x, y), batch_size=batch_size)
    model = simple_net(seed)
    call = _(
        "train_epoch(SimpleNet, nn.MSELoss(), SGD(lr=0.1), DataLoader of {n} samples, "
        "batch_size={batch_size})"
    ).format(n=n, batch_size=batch_size)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    probe = Probe(model, optimizer)
    got = expect_float(tl.train_epoch(model, mse, optimizer, loader), call=call)
    batches = len(loader)
    probe.expect_steps(
        batches,
        call=call,
        why=_("One step per batch, and the loader gives {batches} batches.").format(batches=batches),
    )
    for i in range(batches):
        probe.expect_clean_step(i, call=_("{call}; batch {k}").format(call=call, k=i + 1))
    reference = simple_net(seed)
    losses, sizes = batch_losses(reference, loader, OPTIMIZERS["SGD(lr=0.1)"])
    expect_close(
        got,
        per_sample_mean(losses, sizes),
        call=call,
        rtol=1e-5,
        mistakes=mean_mistakes(losses, sizes),
        note=_("The batches had sizes {sizes} and losses {losses}.").format(sizes=sizes, losses=show(losses)),
    )
    expect_params(
        model,
        [p.detach() for p in reference.parameters()],
        call=call,
        note=_("A correct epoch takes one step per batch, in the loader's order."),
    )


@exercise("train_epoch")
def test_train_epoch_counts_a_short_last_batch_by_its_size():
    x, y = regression_data(3, 10)
    y[8:] += 5.0  # the short last batch (2 of 10 samples) is far off: its loss is much larger
    check_train_epoch(3, 10, 4, x, y)


@exercise("train_epoch")
@given(seed=seeds, n=st.integers(1, 13), batch_size=st.integers(1, 5))
def test_train_epoch_returns_the_mean_loss_per_sample(seed, n, batch_size):
    check_train_epoch(seed, n, batch_size)


@exercise("train_epoch")
def test_train_epoch_trains_in_training_mode_with_one_clean_step_per_batch():
    model = dropout_net(4).eval()  # as an evaluation would leave it
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    leave_old_gradients(model, 4)
    probe = Probe(model, optimizer)
    loader = DataLoader(TensorDataset(*regression_data(4, 9)), batch_size=4)
    call = _("train_epoch(model with Dropout, in eval mode, ..., DataLoader of 9 samples, batch_size=4)")
    tl.train_epoch(model, mse, optimizer, loader)
    modes = [training for _size, training, _grad in probe.forwards]
    if not probe.forwards or not all(modes):
        fail(
            _(
                "Called {call}.\nThe forward passes ran with model.training = "
                "{modes}: dropout was switched off while training.\n"
                "Likely cause: call model.train() at the start of the epoch; an earlier evaluation may "
                "have left the model in eval mode."
            ).format(call=call, modes=modes)
        )
    probe.expect_steps(3, call=call, why=_("One step per batch: 9 samples in batches of 4 make 3 batches."))
    for i in range(3):
        probe.expect_clean_step(i, call=_("{call}; batch {k}").format(call=call, k=i + 1))


# --- fit ----------------------------------------------------------------------------------------------

XOR_INPUTS = torch.tensor([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
XOR_TARGETS = torch.tensor([[0.0], [1.0], [1.0], [0.0]])


def reference_history(seed: int, x, y, steps: int) -> list[float]:
    """The losses of `steps` correct SGD(lr=0.1) steps, written out by hand (no optimizer to import)."""
    model, losses = linear_model(seed), []
    for _step in range(steps):
        loss = mse(model(x), y)
        grads = torch.autograd.grad(loss, list(model.parameters()))
        with torch.no_grad():
            for p, g in zip(model.parameters(), grads, strict=True):
                p.add_(g, alpha=-0.1)
        losses.append(loss.item())
    return losses


def linear_model(seed: int) -> nn.Module:
    return seeded(nn.Linear(2, 1), seed)


def float_list(values, *, call: str) -> list[float]:
    if not isinstance(values, list):
        fail(
            _("Called {call}.\nIt returned {got}; return the list of losses, one float per step.").format(
                call=call, got=show(values)
            )
        )
    return [expect_float(v, call=call) for v in values]


@exercise("fit")
def test_fit_solves_xor_within_the_step_budget():
    model = seeded(nn.Sequential(nn.Linear(2, 8), nn.Tanh(), nn.Linear(8, 1)), 0)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.1)
    probe = Probe(model, optimizer)
    call = _(
        "fit(2-8-1 Tanh net, nn.MSELoss(), Adam(lr=0.1), XOR inputs, XOR targets, "
        "threshold=0.01, max_steps=200)"
    )
    losses = float_list(tl.fit(model, mse, optimizer, XOR_INPUTS, XOR_TARGETS, 0.01, 200), call=call)
    if len(probe.steps) == len(losses) + 1:
        fail(
            _(
                "Called {call}.\noptimizer.step() ran {steps} times, but {count} losses came "
                "back.\nLikely cause: the loss that went below the threshold is missing: append it "
                "before you stop."
            ).format(call=call, steps=len(probe.steps), count=len(losses))
        )
    probe.expect_steps(len(losses), call=call, why=_("Record one loss per training step."))
    below = [i for i, loss in enumerate(losses) if loss < 0.01]
    if not below:
        fail(
            _(
                "Called {call}.\nAfter {count} steps the losses ended with {last}, never "
                "below 0.01; a correct loop gets there in about 40 steps. Is every step a full training step?"
            ).format(call=call, count=len(losses), last=show(losses[-3:]))
        )
    if below[0] != len(losses) - 1:
        fail(
            _(
                "Called {call}.\nThe loss was below 0.01 after step {step}, yet {count} steps ran.\n"
                "Likely cause: you kept training after the first loss below the threshold; stop right there."
            ).format(call=call, step=below[0] + 1, count=len(losses))
        )
    predictions = (model(XOR_INPUTS) > 0.5).float()
    if not torch.equal(predictions, XOR_TARGETS):
        fail(
            _("Called {call}.\nThe trained model predicts {predictions} for XOR, not [0, 1, 1, 0].").format(
                call=call, predictions=predictions.flatten().tolist()
            )
        )


@exercise("fit")
@given(seed=seeds, n=st.integers(4, 10), first_below=st.integers(1, 12))
def test_fit_stops_at_the_first_loss_below_the_threshold(seed, n, first_below):
    x, y = regression_data(seed, n)
    full = reference_history(seed, x, y, 15)
    # A threshold halfway between two consecutive losses of a correct run: a clear margin either side.
    threshold = (full[first_below] + full[first_below - 1]) / 2
    below = [i for i, loss in enumerate(full) if loss < threshold]
    expected = full[: below[0] + 1] if below else full
    call = _(
        "fit(nn.Linear(2, 1), nn.MSELoss(), SGD(lr=0.1), {n} samples, threshold={threshold}, max_steps=15)"
    ).format(n=n, threshold=f"{threshold:.6g}")
    model = linear_model(seed)
    got = tl.fit(model, mse, torch.optim.SGD(model.parameters(), lr=0.1), x, y, threshold, 15)
    got = float_list(got, call=call)
    expect_close(
        got,
        expected,
        call=call,
        rtol=1e-5,
        mistakes=[
            (_("you kept training after the first loss below the threshold; stop right there"), full),
            (
                _("the loss that went below the threshold is missing: append it before you stop"),
                expected[:-1],
            ),
            (
                _("you took one step too many after the first loss below the threshold"),
                full[: len(expected) + 1],
            ),
        ],
        note=_("A correct run's losses: {losses}.").format(losses=show(full)),
    )


@exercise("fit")
@given(seed=seeds, max_steps=st.integers(0, 8))
def test_fit_spends_at_most_max_steps(seed, max_steps):
    x, y = regression_data(seed, 6)
    model = linear_model(seed)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    probe = Probe(model, optimizer)
    call = _(
        "fit(nn.Linear(2, 1), nn.MSELoss(), SGD, 6 samples, threshold=0.0, max_steps={max_steps})"
    ).format(max_steps=max_steps)
    got = tl.fit(model, mse, optimizer, x, y, 0.0, max_steps)  # an MSE of noisy data is never below 0
    probe.expect_steps(
        max_steps,
        call=call,
        why=_(
            "The threshold is never reached, so fit() spends exactly its budget: "
            "max_steps steps, counting from 1 (for _ in range(max_steps))."
        ),
    )
    expect_floats(got, max_steps, call=call)


# --- accumulated_step ---------------------------------------------------------------------------------


def part_gradients(seed: int, x, y, micro_batches: int) -> list[list[torch.Tensor]]:
    """Each micro-batch's own mean-loss gradient."""
    model = simple_net(seed)
    return [
        list(torch.autograd.grad(mse(model(xs), ys), list(model.parameters())))
        for xs, ys in zip(
            torch.tensor_split(x, micro_batches), torch.tensor_split(y, micro_batches), strict=True
        )
    ]


def check_accumulated_step(seed: int, n: int, micro_batches: int) -> None:
    x, y = regression_data(seed, n)
    model = simple_net(seed)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    leave_old_gradients(model, seed)
    probe = Probe(model, optimizer)
    call = _(
        "accumulated_step(SimpleNet, nn.MSELoss(), SGD(lr=0.1), a batch of {n}, "
        "micro_batches={micro_batches})"
    ).format(n=n, micro_batches=micro_batches)
    loss = expect_float(tl.accumulated_step(model, mse, optimizer, x, y, micro_batches), call=call)
    expected_loss, expected_grads, expected_params = reference_step(
        simple_net(seed), OPTIMIZERS["SGD(lr=0.1)"], x, y
    )
    parts = part_gradients(seed, x, y, micro_batches)
    shares = [len(xs) / n for xs in torch.tensor_split(x, micro_batches)]
    probe.expect_steps(
        1,
        call=call,
        why=_(
            "Likely cause: you called step() once per micro-batch. Accumulate the gradients of all "
            "micro-batches (backward() adds into .grad), then step once for the whole batch."
        )
        if len(probe.steps) > 1
        else _("One training step calls optimizer.step() once."),
    )
    used = probe.expect_clean_step(0, call=call)
    sizes = [size for size, _training, _grad in probe.forwards]
    expected_sizes = [len(xs) for xs in torch.tensor_split(x, micro_batches)]
    if sizes != expected_sizes:
        fail(
            _(
                "Called {call}.\nThe model ran on batches of sizes {sizes}; expected {expected}, "
                "the parts torch.tensor_split(inputs, micro_batches) makes.\n"
            ).format(call=call, sizes=sizes, expected=expected_sizes)
            + (
                _(
                    "Likely cause: you ran the whole batch at once. Accumulation runs one forward and "
                    "backward per micro-batch, so memory holds one micro-batch's activations at a time."
                )
                if sizes == [n]
                else ""
            )
        )

    def combine(weights):
        return [
            sum(w * part[i] for w, part in zip(weights, parts, strict=True)) for i in range(len(parts[0]))
        ]

    expect_grads(
        used,
        expected_grads,
        call=call,
        mistakes=[
            (
                _(
                    "you summed the micro-batch losses without scaling them; multiply each "
                    "micro-batch's mean loss by its share of the batch, len(part) / len(inputs)"
                ),
                combine([1.0] * micro_batches),
            ),
            (
                _(
                    "you divided each loss by the number of micro-batches; the parts differ in size, so "
                    "scale each by its share of the batch, len(part) / len(inputs)"
                ),
                combine([1.0 / micro_batches] * micro_batches),
            ),
            (
                _(
                    "only the last micro-batch's gradient reached step(): zero_grad() inside the loop "
                    "wipes what earlier micro-batches accumulated; zero once, before the loop"
                ),
                combine([0.0] * (micro_batches - 1) + [shares[-1]]),
            ),
        ],
    )
    expect_params(model, expected_params, call=call)
    expect_close(loss, expected_loss, call=call, rtol=1e-5, note=_("Return the loss of the whole batch."))


@exercise("accumulated_step")
def test_accumulated_step_over_uneven_parts_equals_one_big_batch():
    check_accumulated_step(seed=9, n=7, micro_batches=3)  # parts of 3, 2 and 2 samples


@exercise("accumulated_step")
@given(seed=seeds, data=st.data())
def test_accumulated_step_equals_one_big_batch_for_random_splits(seed, data):
    n = data.draw(st.integers(1, 12), label="n")
    check_accumulated_step(seed, n, data.draw(st.integers(1, n), label="micro_batches"))


@exercise("accumulated_step")
def test_accumulated_step_runs_one_backward_per_micro_batch():
    model = simple_net(10)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    probe = Probe(model, optimizer)
    call = _("accumulated_step(SimpleNet, nn.MSELoss(), SGD, a batch of 8, micro_batches=4)")
    tl.accumulated_step(model, mse, optimizer, *regression_data(10, 8), 4)
    if probe.log != ["backward"] * 4 + ["step"]:
        backwards, steps = probe.log.count("backward"), probe.log.count("step")
        if steps > 1:
            cause = _(
                "you called step() once per micro-batch. Accumulate the gradients of all micro-batches "
                "first (each: forward, loss / micro_batches, backward), then call step() once."
            )
        elif backwards == 1:
            cause = _(
                "you ran the whole batch at once: one backward(). Split it into micro_batches chunks "
                "(x.chunk(micro_batches)) and run forward and backward on each."
            )
        else:
            cause = _("accumulate first (each micro-batch: forward, scaled loss, backward), step last.")
        fail(
            _(
                "Called {call}.\nThe backward passes and steps came in the order {order}; expected "
                "4 backward() calls, one per micro-batch, then one step()."
            ).format(call=call, order=", ".join(f"{event}()" for event in probe.log))
            + "\n"
            + _("Likely cause: {cause}").format(cause=cause)
        )


# --- clipped_step -----------------------------------------------------------------------------------


def check_clipped_step(seed: int, n: int, max_norm: float, scale: float) -> None:
    x, y = regression_data(seed, n)
    y = y * scale  # large targets, large gradients
    model = simple_net(seed)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    leave_old_gradients(model, seed)
    probe = Probe(model, optimizer)
    call = _("clipped_step(SimpleNet, nn.MSELoss(), SGD, a batch of {n}, max_norm={max_norm})").format(
        n=n, max_norm=f"{max_norm:g}"
    )
    got = expect_float(tl.clipped_step(model, mse, optimizer, x, y, max_norm), call=call)
    reference = simple_net(seed)
    grads = list(torch.autograd.grad(mse(reference(x), y), list(reference.parameters())))
    norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads])).item()
    factor = min(1.0, max_norm / (norm + 1e-6))  # clip_grad_norm_'s own rule
    probe.expect_steps(1, call=call, why=_("One training step calls optimizer.step() once."))
    used = probe.expect_clean_step(0, call=call)
    used_norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in used])).item()
    expect_grads(
        used,
        [g * factor for g in grads],
        call=call,
        mistakes=[
            (
                _(
                    "step() used the unclipped gradient: did you clip after step()? Call "
                    "clip_grad_norm_(model.parameters(), max_norm) between backward() and step()"
                ),
                grads,
            ),
            (
                _(
                    "clip_grad_value_ clamps each entry and changes the gradient's direction; "
                    "clip_grad_norm_ rescales the whole gradient"
                ),
                [g.clamp(-max_norm, max_norm) for g in grads],
            ),
            (
                _(
                    "you clipped each parameter's gradient on its own; clip_grad_norm_ takes all the "
                    "parameters at once and limits their total norm"
                ),
                [g * min(1.0, max_norm / (torch.linalg.vector_norm(g).item() + 1e-6)) for g in grads],
            ),
            (
                _(
                    "you rescaled the gradient to max_norm even though it was smaller; clipping only "
                    "shrinks gradients that are too large"
                ),
                [g * max_norm / norm for g in grads],
            ),
        ],
        note=_(
            "The gradient's total norm was {norm} and step() saw {used}; "
            "with max_norm={max_norm} it should see {expected}."
        ).format(
            norm=f"{norm:.6g}",
            used=f"{used_norm:.6g}",
            max_norm=f"{max_norm:g}",
            expected=f"{norm * factor:.6g}",
        ),
    )
    expect_close(
        got,
        norm,
        call=call,
        rtol=1e-5,
        mistakes=[
            (
                _(
                    "you returned the norm after clipping; return what clip_grad_norm_ returns, "
                    "the norm before"
                ),
                norm * factor,
            ),
        ],
        note=_("Return the gradient's total norm before clipping, as clip_grad_norm_ returns it."),
    )


@exercise("clipped_step")
def test_clipped_step_limits_a_large_gradient_before_the_step():
    check_clipped_step(seed=11, n=6, max_norm=1.0, scale=50.0)


@exercise("clipped_step")
def test_clipped_step_leaves_a_small_gradient_unchanged():
    check_clipped_step(seed=12, n=6, max_norm=1000.0, scale=1.0)


@exercise("clipped_step")
@given(seed=seeds, n=st.integers(1, 8), max_norm=st.floats(0.01, 5.0), scale=st.sampled_from([1.0, 10.0]))
def test_clipped_step_for_random_batches_and_limits(seed, n, max_norm, scale):
    check_clipped_step(seed, n, max_norm, scale)


# --- train_with_early_stopping ---------------------------------------------------------------------


def stopping_run(
    losses, max_epochs, patience, *, late=0, reset=True, ties=False, against_previous=False, use_patience=None
):
    """(epochs run, best epoch, best loss) of early stopping, or of a known wrong variant of it."""
    patience = patience if use_patience is None else use_patience
    best_epoch, best, waited, previous = -1, math.inf, 0, math.inf
    for epoch in range(max_epochs):
        loss = losses[epoch]
        new_best = loss <= best if ties else loss < best
        if new_best:
            best_epoch, best = epoch, loss
        improved = loss < previous if against_previous else new_best
        if not improved:
            waited += 1
        elif reset:
            waited = 0
        previous = loss
        if waited >= patience + late:
            return epoch + 1, best_epoch, best
    return max_epochs, best_epoch, best


STOPPING_MISTAKES = {
    N_(
        "stopped one epoch late: stop as soon as `patience` epochs in a row brought no improvement "
        "(waited >= patience)"
    ): {"late": 1},
    N_("the patience counter was not reset when the loss improved; set it back to 0 on every new best"): {
        "reset": False
    },
    N_(
        "a loss equal to the best is not an improvement: compare with <, so the best epoch is the "
        "first one to reach the lowest loss"
    ): {"ties": True},
    N_("you compared each loss with the previous epoch's; compare with the best loss so far"): {
        "against_previous": True
    },
    N_(
        "patience was ignored: the run stopped at the first epoch without improvement. Count the epochs "
        "without improvement and stop only when that count reaches `patience`"
    ): {"use_patience": 1},
    N_(
        "the run never stopped early: nothing ended the loop when `patience` epochs in a row brought no "
        "improvement. Count them, and break once the count reaches patience"
    ): {"use_patience": math.inf},
}


class EpochSpy:
    """Plays the validation losses of a run, one per epoch, and records which epochs ran."""

    def __init__(self, losses):
        self.losses, self.epochs = list(losses), []

    def __call__(self, epoch):
        self.epochs.append(epoch)
        if len(self.epochs) > len(self.losses):
            fail(
                _(
                    "run_epoch was called {count} times, more than max_epochs = {max_epochs}.\n"
                    "Likely cause: loop over range(max_epochs), so the budget ends the run."
                ).format(count=len(self.epochs), max_epochs=len(self.losses))
            )
        return self.losses[len(self.epochs) - 1]


# Curves on which every two of STOPPING_MISTAKES' variants stop differently: one curve can fit
# several mistakes, so a cause is named only when the function behaves like it on all of these.
PROBE_CURVES = (
    ([1.0, 2.0, 2.0, 2.0, 2.0, 2.0, 2.0, 2.0], 2),
    ([1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0], 2),
    ([1.0, 3.0, 2.0, 3.0, 2.0, 3.0, 2.0, 3.0], 2),
    ([5.0, 4.0, 4.0, 3.0, 3.0, 2.0, 2.0, 2.0], 2),
    ([5.0, 4.0, 6.0, 3.0, 6.0, 2.0, 7.0, 1.0], 2),
    ([4.0, 5.0, 3.0, 5.0, 5.0, 2.0, 6.0, 6.0], 3),
)


class OverBudget(Exception):
    pass


def behaves_like(train_with_early_stopping, variant) -> bool:
    """Whether the learner's function stops like `variant` on every probe curve."""
    for losses, patience in PROBE_CURVES:
        epochs = []

        def run_epoch(epoch, losses=losses, epochs=epochs):
            if len(epochs) == len(losses):
                raise OverBudget
            epochs.append(epoch)
            return losses[len(epochs) - 1]

        try:
            returned = tuple(train_with_early_stopping(run_epoch, len(losses), patience))
        except Exception:  # noqa: BLE001 - a probe that fails tells nothing about this variant
            return False
        if (len(epochs), *returned) != stopping_run(losses, len(losses), patience, **variant):
            return False
    return True


def check_early_stopping(losses, patience, max_epochs=None) -> None:
    max_epochs = len(losses) if max_epochs is None else max_epochs
    losses = losses[:max_epochs]
    call = _(
        "train_with_early_stopping(run_epoch, max_epochs={max_epochs}, patience={patience}) "
        "with validation losses {losses}"
    ).format(max_epochs=max_epochs, patience=patience, losses=losses)
    spy = EpochSpy(losses)
    got = tl.train_with_early_stopping(spy, max_epochs, patience)
    ran, best_epoch, best_loss = stopping_run(losses, max_epochs, patience)
    if spy.epochs != list(range(len(spy.epochs))):
        fail(
            _(
                "Called {call}.\nrun_epoch was called with epochs {epochs}; expected 0, 1, 2, ... in order."
            ).format(call=call, epochs=spy.epochs)
        )
    got_ran = len(spy.epochs)
    if not isinstance(got, tuple) or len(got) != 2 or not isinstance(got[0], int):
        fail(
            _(
                "Called {call}.\nIt returned {got}; return the pair (best_epoch, best_loss), "
                "an int and a float."
            ).format(call=call, got=show(got))
        )
    got = (got[0], expect_float(got[1], call=call))
    if (got_ran, *got) == (ran, best_epoch, best_loss):
        return
    causes = [
        _(cause)
        for cause, variant in STOPPING_MISTAKES.items()
        if (got_ran, *got) == stopping_run(losses, max_epochs, patience, **variant)
        and behaves_like(tl.train_with_early_stopping, variant)
    ]
    fail(
        _(
            "Called {call}.\nIt ran {ran} epoch(s) and returned {got}; expected it to run {expected_ran} "
            "epoch(s) and return ({best_epoch}, {best_loss}).\n"
        ).format(
            call=call,
            ran=got_ran,
            got=repr(got),
            expected_ran=ran,
            best_epoch=best_epoch,
            best_loss=repr(best_loss),
        )
        + "".join(_("Likely cause: {cause}").format(cause=cause) + "\n" for cause in causes)
    )


@exercise("train_with_early_stopping")
def test_early_stopping_with_patience_2():
    check_early_stopping([1.0, 0.8, 0.9, 0.7, 0.75, 0.72, 0.74, 0.6, 0.5], patience=2)


@exercise("train_with_early_stopping")
def test_early_stopping_runs_every_epoch_while_the_loss_improves():
    check_early_stopping([5.0, 4.0, 3.0, 2.5, 2.4], patience=1)


@exercise("train_with_early_stopping")
def test_early_stopping_does_not_count_a_tie_as_an_improvement():
    check_early_stopping([3.0, 2.0, 2.0, 2.5, 2.0], patience=2)


@exercise("train_with_early_stopping")
@given(
    losses=st.lists(st.sampled_from([1.0, 2.0, 3.0, 4.0, 5.0]), min_size=1, max_size=14),
    patience=st.integers(1, 4),
    cut=st.integers(0, 3),
)
def test_early_stopping_for_random_validation_curves(losses, patience, cut):
    # Values from a small set make plateaus and ties; `cut` sometimes ends the budget early.
    check_early_stopping(losses, patience, max_epochs=max(1, len(losses) - cut))


# --- seeded_losses ----------------------------------------------------------------------------------


class RecordingDataset(Dataset):
    """Ten samples of a small regression problem; remembers the order it was read in."""

    def __init__(self):
        self.x, self.y = regression_data(13, 10)
        self.reads: list[int] = []

    def __len__(self):
        return len(self.x)

    def __getitem__(self, index):
        self.reads.append(int(index))
        return self.x[index], self.y[index]


class ModelFactory:
    """make_model for seeded_losses: a small net with dropout; checks the global RNG when called."""

    def __init__(self, seed: int):
        self.seed = seed
        self.freshly_seeded: list[bool] = []

    def __call__(self) -> nn.Module:
        fresh = torch.Generator().manual_seed(self.seed).get_state()
        self.freshly_seeded.append(torch.equal(torch.get_rng_state(), fresh))
        return nn.Sequential(nn.Linear(2, 6), nn.ReLU(), nn.Dropout(0.3), nn.Linear(6, 1))

    def expect_seeded(self, *, call: str) -> None:
        if self.freshly_seeded != [True]:
            fail(
                _(
                    "Called {call}.\nWhen make_model() ran, the global random generator was not freshly "
                    "seeded with {seed}, so the initial weights (and the dropout masks after them) "
                    "depend on whatever ran before.\nLikely cause: call torch.manual_seed(seed) at the start "
                    "of every run, before make_model(); seeding once elsewhere is not enough."
                ).format(call=call, seed=self.seed)
            )


SEEDED_CALL = N_(
    "seeded_losses(seed={seed}, make_model, dataset of 10, epochs={epochs}, batch_size={batch_size}, lr=0.1)"
)


def run_seeded(seed: int, epochs: int = 2, batch_size: int = 4) -> tuple[list[float], list[int]]:
    dataset, factory = RecordingDataset(), ModelFactory(seed)
    call = _(SEEDED_CALL).format(seed=seed, epochs=epochs, batch_size=batch_size)
    losses = tl.seeded_losses(seed, factory, dataset, epochs, batch_size, 0.1)
    expect_floats(losses, epochs * math.ceil(10 / batch_size), call=call)
    factory.expect_seeded(call=call)
    return losses, dataset.reads


@exercise("seeded_losses")
def test_seeded_losses_repeat_bit_for_bit_with_the_same_seed():
    torch.rand(3)  # whatever ran before must not matter
    first = run_seeded(21)[0]
    torch.rand(5)
    second = run_seeded(21)[0]
    if first != second:
        fail(
            _(
                "Called {call} twice.\nThe losses differ:\n"
                "  first:  {first}\n  second: {second}\nThe same seed must give the same losses, bit for bit."
            ).format(call="seeded_losses(seed=21, ...)", first=first, second=second)
        )


@exercise("seeded_losses")
def test_seeded_losses_differ_between_seeds():
    runs = {seed: run_seeded(seed, epochs=1)[0] for seed in (0, 1, 7)}
    if len({tuple(losses) for losses in runs.values()}) < len(runs):
        fail(
            _(
                "Called {call} with seeds 0, 1 and 7 (one epoch each).\nThe losses were {runs}: "
                "different seeds gave the same run.\nLikely cause: the function ignores the seed; use it "
                "for torch.manual_seed and for the DataLoader's generator."
            ).format(call="seeded_losses", runs=runs)
        )


@exercise("seeded_losses")
def test_seeded_losses_shuffle_with_their_own_seeded_generator():
    reads = run_seeded(22)[1]
    order = DataLoader(range(10), batch_size=4, shuffle=True, generator=torch.Generator().manual_seed(22))
    expected = [int(i) for _epoch in range(2) for batch in order for i in batch]
    if reads != expected:
        fail(
            _("Called {call}.").format(call=_(SEEDED_CALL).format(seed=22, epochs=2, batch_size=4))
            + "\n"
            + _(
                "The dataset was read in the order {reads};\nexpected {expected}, the order of "
                "DataLoader(dataset, batch_size=4, shuffle=True, "
                "generator=torch.Generator().manual_seed(22)).\n"
            ).format(reads=reads, expected=expected)
            + (
                _("Likely cause: the data was not shuffled: pass shuffle=True.")
                if reads == list(range(10)) * 2
                else _(
                    "Likely cause: give the DataLoader its own generator seeded with the seed, so the "
                    "order depends on the seed alone and not on the global random state."
                )
            )
        )


@exercise("seeded_losses")
def test_seeded_losses_match_a_reference_run():
    got = run_seeded(23)[0]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(23)
        model = ModelFactory(23)().train()
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        generator = torch.Generator().manual_seed(23)
        loader = DataLoader(RecordingDataset(), batch_size=4, shuffle=True, generator=generator)
        expected = [
            loss for _epoch in range(2) for loss in batch_losses(model, loader, lambda params: optimizer)[0]
        ]
    expect_close(
        got,
        expected,
        call=_(SEEDED_CALL).format(seed=23, epochs=2, batch_size=4),
        rtol=1e-5,
        note=_(
            "The reference: torch.manual_seed(seed); model = make_model(); SGD(lr); nn.MSELoss(); "
            "a shuffling DataLoader with generator=torch.Generator().manual_seed(seed); model.train(); "
            "one training step per batch."
        ),
    )
