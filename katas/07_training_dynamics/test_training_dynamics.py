"""Kata 07: training dynamics. Read a test's name for the behaviour, its body for the call.

Every exercise is checked against a reference run that the test computes itself, from the
same seeds: your numbers must be the numbers a correct run produces. Where a known mistake
gives other numbers, the test runs that mistake too and names it when your numbers match.
"""

from __future__ import annotations

import copy
import math

import pytest
import torch
import training_dynamics as td
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from katas._harness.i18n import N_, _
from katas._harness.testing import expect_close, expect_float, expect_floats, fail, is_close, show

exercise = pytest.mark.exercise

seeds = st.integers(0, 2**16)
mse = nn.MSELoss()


# --- models, data and helpers ----------------------------------------------------------------------


def seeded(model: nn.Module, seed: int) -> nn.Module:
    """Redraw every Linear layer from `seed` with nn.Linear's default scale (a generator: no global RNG)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for layer in model.modules():
            if isinstance(layer, nn.Linear):
                bound = 1 / math.sqrt(layer.in_features)
                for p in (layer.weight, layer.bias):
                    if p is not None:
                        p.uniform_(-bound, bound, generator=gen)
    return model


def mlp(seed: int, sizes: list[int], activation=nn.ReLU) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i, (n_in, n_out) in enumerate(zip(sizes, sizes[1:], strict=False)):
        layers.append(nn.Linear(n_in, n_out))
        if i < len(sizes) - 2:
            layers.append(activation())
    return seeded(nn.Sequential(*layers), seed)


def regression(seed: int, n: int, d: int = 4, noise: float = 0.1) -> tuple[torch.Tensor, torch.Tensor]:
    """y = x @ w + noise for a fixed w of norm about 1.6: inputs (n, d), targets (n, 1)."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=gen)
    w = torch.tensor([[1.0], [-1.0], [0.5], [0.5]] * (d // 4 + 1))[:d]
    return x, x @ w + noise * torch.randn(n, 1, generator=gen)


def params_of(model: nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in model.parameters()]


def same_tensors(a: list[torch.Tensor], b: list[torch.Tensor], atol: float = 1e-6) -> bool:
    return len(a) == len(b) and all(
        x.shape == y.shape and bool(torch.isclose(x, y, rtol=1e-5, atol=atol, equal_nan=True).all())
        for x, y in zip(a, b, strict=True)
    )


def expect_pair(value, *, call: str) -> tuple:
    if not isinstance(value, tuple) or len(value) != 2:
        fail(
            _("Called {call}.\nIt returned {got}; a tuple of two values is asked for.").format(
                call=call, got=show(value)
            )
        )
    return value


def expect_losses(got, expected: list[float], *, call: str, what: str, mistakes=()) -> list[float]:
    """A list of floats equal to `expected` (nan where expected is nan).

    `mistakes` is a list of (cause, wrong losses), or a function returning one: the wrong runs
    are computed only when the losses do not match.
    """
    losses = expect_floats(got, len(got) if isinstance(got, (list, tuple)) else len(expected), call=call)
    if len(losses) == len(expected) and is_close(losses, expected, rtol=1e-4, atol=1e-6):
        return losses
    mistakes = mistakes() if callable(mistakes) else mistakes
    if len(losses) != len(expected):
        for cause, wrong in mistakes:
            if len(wrong) == len(losses) and is_close(losses, wrong, rtol=1e-4, atol=1e-6):
                fail(
                    _(
                        "Called {call}.\n{what}: yours has {got} values, a correct run has {n}.\n"
                        "Likely cause: {cause}"
                    ).format(call=call, what=what, got=len(losses), n=len(expected), cause=cause)
                )
        fail(
            _(
                "Called {call}.\n{what}: yours has {got} values, {shown}; a correct run has {n}, {expected}."
            ).format(
                call=call,
                what=what,
                got=len(losses),
                shown=show(losses[:6]),
                n=len(expected),
                expected=show(expected[:6]),
            )
        )
    expect_close(losses, expected, call=f"{call}; {what}", rtol=1e-4, atol=1e-6, mistakes=mistakes)
    return losses


class CountingLoader:
    """A loader that counts how often it is iterated over and how many batches it hands out."""

    def __init__(self, loader):
        self.loader = loader
        self.iterations = 0
        self.batches = 0

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self):
        self.iterations += 1
        for batch in self.loader:
            self.batches += 1
            yield batch


def shuffled_loader(x, y, batch_size: int, seed: int) -> DataLoader:
    return DataLoader(
        TensorDataset(x, y),
        batch_size=batch_size,
        shuffle=True,
        generator=torch.Generator().manual_seed(seed),
    )


def train_steps(model, optimizer, batches, loss_fn=mse) -> list[float]:
    losses = []
    for x, y in batches:
        optimizer.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses


# --- overfit_one_batch ----------------------------------------------------------------------------


def reference_overfit(model, optimizer, batch, threshold: float, max_steps: int):
    losses = []
    for step in range(max_steps):
        losses += train_steps(model, optimizer, [batch])
        if losses[-1] < threshold:
            return step, losses
    return None, losses


def check_overfit(seed: int, n: int, batch_size: int, threshold: float, max_steps: int, sizes=None):
    sizes = sizes or [4, 32, 1]
    x, y = torch.randn(n, 4, generator=torch.Generator().manual_seed(seed)), None
    y = torch.randn(n, 1, generator=torch.Generator().manual_seed(seed + 1))
    loader = CountingLoader(shuffled_loader(x, y, batch_size, seed))
    model = mlp(seed, sizes)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    call = _(
        "overfit_one_batch(MLP {sizes}, nn.MSELoss(), Adam(lr=0.01), a shuffling loader of {n} random "
        "samples in batches of {batch_size}, threshold={threshold}, max_steps={max_steps})"
    ).format(sizes=sizes, n=n, batch_size=batch_size, threshold=threshold, max_steps=max_steps)
    got_step, got_losses = expect_pair(
        td.overfit_one_batch(model, mse, optimizer, loader, threshold, max_steps), call=call
    )
    if loader.batches != 1:
        fail(
            _(
                "Called {call}.\nIt took {batches} batches from the loader ({iterations} pass(es) over it); "
                "the recipe trains on one batch, the same one every step.\nLikely cause: draw the batch "
                "once, before the loop: inputs, targets = next(iter(loader)). A shuffling loader gives "
                "another batch on every pass."
            ).format(call=call, batches=loader.batches, iterations=loader.iterations)
        )
    reference = mlp(seed, sizes)
    first = next(iter(shuffled_loader(x, y, batch_size, seed)))
    step, losses = reference_overfit(
        reference, torch.optim.Adam(reference.parameters(), lr=0.01), first, threshold, max_steps
    )

    def unstopped():
        again = mlp(seed, sizes)
        optimizer = torch.optim.Adam(again.parameters(), lr=0.01)
        return [
            (
                _("the loop did not stop right after the first loss below the threshold"),
                reference_overfit(again, optimizer, first, -math.inf, max_steps)[1],
            )
        ]

    expect_losses(got_losses, losses, call=call, what=_("The losses"), mistakes=unstopped)
    if got_step != step:
        if step is None:
            fail(
                _(
                    "Called {call}.\nNo loss fell below {threshold} in {max_steps} steps, so the step "
                    "asked for is None; it returned {got}.\nLikely cause: return None when the threshold "
                    "is never reached, so the caller can tell 'fitted' from 'never fitted'."
                ).format(call=call, threshold=threshold, max_steps=max_steps, got=show(got_step))
            )
        hint = (
            _(
                "Likely cause: you returned the number of steps taken; the index of that loss in the "
                "list is one less."
            )
            if got_step == step + 1
            else ""
        )
        fail(
            _(
                "Called {call}.\nIt returned step {got}; the first loss below {threshold} is losses[{step}] "
                "= {loss}.\n{hint}"
            ).format(
                call=call,
                got=show(got_step),
                threshold=threshold,
                step=step,
                loss=show(losses[step]),
                hint=hint,
            )
        )


@exercise("overfit_one_batch")
def test_overfit_one_batch_drives_the_loss_of_one_batch_to_zero():
    check_overfit(seed=0, n=64, batch_size=8, threshold=1e-3, max_steps=300)


@exercise("overfit_one_batch")
def test_overfit_one_batch_returns_none_when_the_model_cannot_fit():
    # A linear model has 5 parameters and cannot fit 16 random targets: the recipe's alarm.
    check_overfit(seed=1, n=32, batch_size=16, threshold=1e-3, max_steps=40, sizes=[4, 1])


@exercise("overfit_one_batch")
@settings(max_examples=4)
@given(seed=seeds, batch_size=st.integers(2, 8), threshold=st.sampled_from([0.05, 0.01]))
def test_overfit_one_batch_matches_a_reference_run(seed, batch_size, threshold):
    check_overfit(seed, n=4 * batch_size, batch_size=batch_size, threshold=threshold, max_steps=100)


# --- lr_range_test --------------------------------------------------------------------------------


def sweep(lr_min: float, lr_max: float, n: int) -> list[float]:
    return [lr_min * (lr_max / lr_min) ** (i / (n - 1)) for i in range(n)]


def reference_range_test(model, optimizer, loader, lr_min, lr_max, factor=4.0, stop=True):
    lrs, losses, diverged_at, best = [], [], None, math.inf
    for lr, (x, y) in zip(sweep(lr_min, lr_max, len(loader)), loader, strict=True):
        for group in optimizer.param_groups:
            group["lr"] = lr
        optimizer.zero_grad()
        loss = mse(model(x), y)
        lrs.append(lr)
        losses.append(loss.item())
        if diverged_at is None and (not math.isfinite(losses[-1]) or losses[-1] > factor * best):
            diverged_at = lr
            if stop:
                break
        best = min(best, losses[-1])
        loss.backward()
        optimizer.step()
    return lrs, losses, diverged_at


def range_setup(seed: int, n_batches: int, corrupt: int | None = None):
    x, y = regression(seed, 32 * n_batches)
    if corrupt is not None:
        x[32 * corrupt, 0] = float("nan")
    model = mlp(seed, [4, 16, 1])
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    train_steps(model, optimizer, [(x[:32], y[:32])])  # the momentum buffers hold something now
    return model, optimizer, list(zip(x.split(32), y.split(32), strict=True))


RANGE_CALL = N_(
    "lr_range_test(MLP [4, 16, 1], nn.MSELoss(), SGD(momentum=0.9), {n_batches} batches of 32, "
    "lr_min={lr_min}, lr_max={lr_max})"
)
RANGE_CALL_NAN = N_(
    "lr_range_test(MLP [4, 16, 1], nn.MSELoss(), SGD(momentum=0.9), {n_batches} batches of 32, "
    "batch {corrupt} holding a nan, lr_min={lr_min}, lr_max={lr_max})"
)


def check_range_test(seed: int, n_batches: int, lr_min: float, lr_max: float, corrupt: int | None = None):
    model, optimizer, loader = range_setup(seed, n_batches, corrupt)
    call = _(RANGE_CALL if corrupt is None else RANGE_CALL_NAN).format(
        n_batches=n_batches, corrupt=corrupt, lr_min=lr_min, lr_max=lr_max
    )
    got = td.lr_range_test(model, mse, optimizer, loader, lr_min, lr_max)
    if not isinstance(got, tuple) or len(got) != 3:
        fail(
            _("Called {call}.\nIt returned {got}; the tuple (lrs, losses, diverged_at) is asked for.").format(
                call=call, got=show(got)
            )
        )
    got_lrs, got_losses, got_diverged = got
    ref_model, ref_optimizer = range_setup(seed, n_batches, corrupt)[:2]
    lrs, losses, diverged_at = reference_range_test(ref_model, ref_optimizer, loader, lr_min, lr_max)
    n = len(loader)
    got_lrs = expect_floats(got_lrs, len(got_lrs) if isinstance(got_lrs, (list, tuple)) else 0, call=call)
    checked = min(len(got_lrs), len(lrs))
    expect_close(
        got_lrs[:checked],
        lrs[:checked],
        call=_("{call}; the learning rates").format(call=call),
        rtol=1e-5,
        mistakes=[
            (
                _(
                    "linear steps: torch.linspace(lr_min, lr_max, n) spends almost every batch near lr_max; "
                    "the sweep multiplies the lr by the same factor at every batch"
                ),
                [lr_min + (lr_max - lr_min) * i / (n - 1) for i in range(checked)],
            ),
            (
                _("the last batch must use lr_max: divide i by n - 1, not by n"),
                [lr_min * (lr_max / lr_min) ** (i / n) for i in range(checked)],
            ),
        ],
    )

    def sweep_mistakes():
        fresh = range_setup(seed, n_batches, corrupt)[:2]
        go_on = reference_range_test(*fresh, loader, lr_min, lr_max, stop=False)[1]
        nan_missed = reference_nan_missed(*range_setup(seed, n_batches, corrupt)[:2], loader, lr_min, lr_max)
        return [
            (
                _(
                    "a nan loss went through the check: every comparison with nan is False, so nan > "
                    "diverge_factor * best never fires; test math.isfinite(loss) first"
                ),
                nan_missed,
            ),
            (
                _(
                    "the sweep did not stop at the first diverging loss: break there, the rest of the "
                    "curve is noise from a ruined model"
                ),
                go_on,
            ),
        ]

    expect_losses(got_losses, losses, call=call, what=_("The losses"), mistakes=sweep_mistakes)
    if got_diverged != diverged_at:
        fail(
            _(
                "Called {call}.\nIt returned diverged_at={got}; a correct run diverges at {expected} (the "
                "lr of the batch whose loss was {loss})."
            ).format(call=call, got=show(got_diverged), expected=show(diverged_at), loss=show(losses[-1]))
        )
    return model, optimizer, call


def reference_nan_missed(model, optimizer, loader, lr_min, lr_max) -> list[float]:
    """The losses of a sweep whose only check is `loss > factor * best` (nan slips through)."""
    losses, best = [], math.inf
    for lr, (x, y) in zip(sweep(lr_min, lr_max, len(loader)), loader, strict=True):
        for group in optimizer.param_groups:
            group["lr"] = lr
        optimizer.zero_grad()
        loss = mse(model(x), y)
        losses.append(loss.item())
        if losses[-1] > 4.0 * best:
            break
        best = min(best, losses[-1])
        loss.backward()
        optimizer.step()
    return losses


@exercise("lr_range_test")
def test_lr_range_test_sweeps_exponentially_and_stops_where_the_loss_blows_up():
    check_range_test(seed=0, n_batches=25, lr_min=1e-3, lr_max=10.0)


@exercise("lr_range_test")
def test_lr_range_test_stops_at_a_nan_loss():
    check_range_test(seed=1, n_batches=12, lr_min=1e-4, lr_max=1e-3, corrupt=6)


@exercise("lr_range_test")
def test_lr_range_test_puts_the_model_and_the_optimizer_back():
    model, optimizer, loader = range_setup(2, 20)
    before, state_before = params_of(model), copy.deepcopy(optimizer.state_dict())
    loads = []
    original_load = model.load_state_dict
    model.load_state_dict = lambda *args, **kwargs: loads.append(1) or original_load(*args, **kwargs)
    call = _(
        "lr_range_test(MLP [4, 16, 1], nn.MSELoss(), SGD(lr=0.1, momentum=0.9) after one step, 20 batches, "
        "1e-3, 10.0)"
    )
    td.lr_range_test(model, mse, optimizer, loader, 1e-3, 10.0)
    if not same_tensors(params_of(model), before):
        cause = (
            _(
                "you loaded model.state_dict() as it was taken, but its tensors are the live parameters, "
                "which the sweep changed: save copy.deepcopy(model.state_dict()) before the sweep"
            )
            if loads
            else _(
                "the weights were never restored: save copy.deepcopy(model.state_dict()) before the sweep "
                "and load it back with model.load_state_dict() at the end"
            )
        )
        fail(
            _(
                "Called {call}.\nAfterwards the model's weights are not those it had before the call: the "
                "range test is a probe, and the real training must start from the original weights.\n"
                "Likely cause: {cause}"
            ).format(call=call, cause=cause)
        )
    lr = optimizer.param_groups[0]["lr"]
    if lr != 0.1:
        fail(
            _(
                "Called {call}.\nAfterwards optimizer.param_groups[0]['lr'] is {lr}, not the 0.1 it was.\n"
                "Likely cause: restore the optimizer too: copy.deepcopy(optimizer.state_dict()) before, "
                "optimizer.load_state_dict(...) after."
            ).format(call=call, lr=show(lr))
        )
    state_after = optimizer.state_dict()["state"]
    for i, old in state_before["state"].items():
        if not torch.allclose(state_after[i]["momentum_buffer"], old["momentum_buffer"]):
            fail(
                _(
                    "Called {call}.\nAfterwards the optimizer's momentum buffers differ from before the "
                    "call, so the next real step would carry the sweep's momentum.\nLikely cause: "
                    "optimizer.state_dict() shares its state tensors with the optimizer, which updates them "
                    "in place; save copy.deepcopy(optimizer.state_dict())."
                ).format(call=call)
            )


@exercise("lr_range_test")
@settings(max_examples=4)
@given(seed=seeds, n_batches=st.integers(2, 12), high=st.sampled_from([1e-2, 3.0, 30.0]))
def test_lr_range_test_matches_a_reference_sweep(seed, n_batches, high):
    check_range_test(seed, n_batches, 1e-3, high)


# --- train_with_divergence_guard ----------------------------------------------------------------


def guard_batches(
    seed: int, count: int, bad: int | None, kind: str
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    x, y = regression(seed, 8 * count, d=3)
    batches = list(zip(x.split(8), y.split(8), strict=True))
    if bad is not None:
        x, y = batches[bad][0].clone(), batches[bad][1].clone()
        if kind == "nan":
            x[0, 0] = float("nan")
        elif kind == "inf":
            x[0, 0] = float("inf")
        else:  # a finite but absurd target: the loss is huge
            y[0, 0] = 1e4
        batches[bad] = (x, y)
    return batches


def reference_guard(model, optimizer, batches, max_loss, check_after_step=False, nan_blind=False):
    losses = []
    for i, (x, y) in enumerate(batches):
        optimizer.zero_grad()
        loss = mse(model(x), y)
        losses.append(loss.item())
        bad = losses[-1] > max_loss if nan_blind else not math.isfinite(losses[-1]) or losses[-1] > max_loss
        if bad and not check_after_step:
            return losses, i
        loss.backward()
        optimizer.step()
        if bad:
            return losses, i
    return losses, None


GUARD_CALL = N_(
    "train_with_divergence_guard(MLP [3, 8, 1], nn.MSELoss(), SGD(lr=0.05), {count} batches, {max_loss})"
)
GUARD_CALL_BAD = N_(
    "train_with_divergence_guard(MLP [3, 8, 1], nn.MSELoss(), SGD(lr=0.05), {count} batches, batch {bad} "
    "holding {what}, {max_loss})"
)
GUARD_BAD = {"nan": N_("a nan input"), "inf": N_("an inf input"), "huge": N_("a target of 1e4")}


def check_guard(seed: int, count: int, bad: int | None, kind: str, max_loss: float = 100.0):
    batches = guard_batches(seed, count, bad, kind)
    model = mlp(seed, [3, 8, 1])
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    call = _(GUARD_CALL if bad is None else GUARD_CALL_BAD).format(
        count=count, bad=bad, what=_(GUARD_BAD[kind]), max_loss=max_loss
    )
    got_losses, got_index = expect_pair(
        td.train_with_divergence_guard(model, mse, optimizer, batches, max_loss), call=call
    )

    def run(**mistake):
        reference = mlp(seed, [3, 8, 1])
        result = reference_guard(
            reference, torch.optim.SGD(reference.parameters(), lr=0.05), batches, max_loss, **mistake
        )
        return result, params_of(reference)

    (losses, index), weights = run()
    (blind_losses, blind_index), blind_weights = run(nan_blind=True)
    late_result, late_weights = run(check_after_step=True)
    nan_cause = _(
        "every comparison with nan is False, so nan > max_loss is False and the nan went through; "
        "test not math.isfinite(loss) as well"
    )
    expect_losses(got_losses, losses, call=call, what=_("The losses"), mistakes=[(nan_cause, blind_losses)])
    if got_index != index:
        fail(
            _(
                "Called {call}.\nIt returned diverged_at={got}; the batch that should stop the run is "
                "{index}."
            ).format(call=call, got=show(got_index), index=show(index))
        )
    got_weights = params_of(model)
    if not same_tensors(got_weights, weights):
        if same_tensors(got_weights, late_weights):
            cause = _(
                "the check came after step(): the bad batch's gradient had already changed the "
                "weights. Check the loss before backward() and step()"
            )
        elif not all(bool(w.isfinite().all()) for w in got_weights):
            cause = nan_cause
        else:
            cause = _("the steps before the bad batch differ from kata 06's train_step")
        fail(
            _(
                "Called {call}.\nAfterwards the weights are not those of the last good step.\nLikely cause: "
                "{cause}"
            ).format(call=call, cause=cause)
        )


@exercise("train_with_divergence_guard")
def test_divergence_guard_stops_at_a_nan_loss_before_the_weights_are_ruined():
    check_guard(seed=0, count=6, bad=3, kind="nan")


@exercise("train_with_divergence_guard")
def test_divergence_guard_stops_at_a_huge_loss_without_taking_its_step():
    check_guard(seed=1, count=5, bad=2, kind="huge")


@exercise("train_with_divergence_guard")
@settings(max_examples=8)
@given(data=st.data(), seed=seeds, count=st.integers(1, 6), kind=st.sampled_from(["nan", "inf", "huge"]))
def test_divergence_guard_matches_a_reference_run(data, seed, count, kind):
    bad = data.draw(st.none() | st.integers(0, count - 1), label="bad")
    check_guard(seed, count, bad, kind)


# --- activation_stds ------------------------------------------------------------------------------


def reference_stds(model: nn.Sequential, inputs: torch.Tensor, where: str = "output") -> list[float]:
    stds = []
    with torch.no_grad():
        x = inputs
        for layer in model:
            before, x = x, layer(x)
            if isinstance(layer, nn.Linear):
                if where == "output":
                    stds.append(x.std().item())
                elif where == "input":
                    stds.append(before.std().item())
                elif where == "weight":
                    stds.append(layer.weight.std().item())
                elif where == "unit":
                    stds.append(x.std(dim=0).mean().item())
    return stds


def std_mistakes(model, inputs):
    return [
        (
            _(
                "you measured the weights' standard deviation; the question is what happens to the signal: "
                "the std of each Linear layer's output activations"
            ),
            reference_stds(model, inputs, "weight"),
        ),
        (
            _("you measured each Linear layer's input, one layer too early; record the std of its output"),
            reference_stds(model, inputs, "input"),
        ),
        (
            _("you averaged the per-unit standard deviations (std(dim=0)); take .std() over all entries"),
            reference_stds(model, inputs, "unit"),
        ),
    ]


def deep_stack(depth: int, width: int, init: str, seed: int) -> nn.Sequential:
    model = mlp(seed, [width] * (depth + 1))
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for layer in model:
            if isinstance(layer, nn.Linear) and init != "default":
                std = {"small": 0.01, "large": 1.0, "kaiming": math.sqrt(2 / width)}[init]
                layer.weight.normal_(0.0, std, generator=gen)
                layer.bias.zero_()
    return model


def check_stds(model: nn.Sequential, inputs: torch.Tensor, call: str, note: str = "") -> list[float]:
    got = expect_floats(
        td.activation_stds(model, inputs), sum(isinstance(m, nn.Linear) for m in model), call=call
    )
    expected = reference_stds(model, inputs)
    expect_close(
        got, expected, call=call, rtol=1e-4, atol=1e-30, mistakes=std_mistakes(model, inputs), note=note
    )
    return got


INIT_NAMES = {
    "default": N_("the default init"),
    "small": N_("the small init"),
    "large": N_("the large init"),
    "kaiming": N_("the kaiming init"),
}


@exercise("activation_stds")
@pytest.mark.parametrize(
    ("init", "what"),
    [
        (
            "default",
            N_(
                "With nn.Linear's default init the signal shrinks from 0.6 to about 0.08, where the "
                "biases hold it."
            ),
        ),
        (
            "small",
            N_(
                "With N(0, 0.01) weights the signal collapses, about 17 times smaller at every layer, "
                "to about 4e-13."
            ),
        ),
        (
            "large",
            N_(
                "With N(0, 1) weights the signal explodes, about 5.7 times larger at every layer, to "
                "about 4e7."
            ),
        ),
        (
            "kaiming",
            N_("With He (Kaiming) init the signal keeps its scale, between 1.1 and 1.7 at every depth."),
        ),
    ],
    ids=["default", "small", "large", "kaiming"],
)
def test_activation_stds_measure_collapse_and_explosion_through_ten_layers(init, what):
    inputs = torch.randn(256, 64, generator=torch.Generator().manual_seed(0))
    call = _("activation_stds(10 x (Linear(64, 64), ReLU) with {init}, a batch of 256)").format(
        init=_(INIT_NAMES[init])
    )
    check_stds(deep_stack(10, 64, init, 0), inputs, call, note=_(what))


@exercise("activation_stds")
@settings(max_examples=6)
@given(
    seed=seeds,
    widths=st.lists(st.integers(2, 24), min_size=2, max_size=6),
    activation=st.sampled_from([nn.ReLU, nn.Tanh]),
)
def test_activation_stds_match_a_reference_for_random_stacks(seed, widths, activation):
    inputs = torch.randn(32, widths[0], generator=torch.Generator().manual_seed(seed))
    model = mlp(seed, widths, activation)
    call = _("activation_stds(MLP {widths} with {activation}, a batch of 32)").format(
        widths=widths, activation=activation.__name__
    )
    check_stds(model, inputs, call)


# --- kaiming_init --------------------------------------------------------------------------------


def reference_kaiming(model: nn.Module, seed: int) -> list[torch.Tensor]:
    torch.manual_seed(seed)
    for module in model.modules():
        if isinstance(module, nn.Linear):
            nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
            if module.bias is not None:
                nn.init.zeros_(module.bias)
    return params_of(model)


def kaiming_model(seed: int, sizes: list[int]) -> nn.Module:
    """A Linear stack with a LayerNorm and a nested block, its first layer without a bias."""
    head = [nn.Linear(sizes[0], sizes[1], bias=False), nn.ReLU(), nn.LayerNorm(sizes[1])]
    body = [nn.Sequential(nn.Linear(a, b), nn.ReLU()) for a, b in zip(sizes[1:], sizes[2:], strict=False)]
    return seeded(nn.Sequential(*head, *body), seed)


def check_kaiming(seed: int, sizes: list[int]) -> None:
    model = kaiming_model(seed, sizes)
    call = _(
        "kaiming_init(a ReLU MLP of sizes {sizes} with a LayerNorm and nested blocks) after "
        "torch.manual_seed({seed})"
    ).format(sizes=sizes, seed=seed)
    norm_before = params_of(model[2])
    torch.manual_seed(seed)
    td.kaiming_init(model)
    expected = reference_kaiming(kaiming_model(seed, sizes), seed)
    if not same_tensors(params_of(model[2]), norm_before):
        fail(
            _(
                "Called {call}.\nThe LayerNorm's parameters changed; only the nn.Linear layers are "
                "re-initialised."
            ).format(call=call)
        )
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    for i, layer in enumerate(linears):
        if layer.bias is not None and bool(layer.bias.any()):
            fail(
                _(
                    "Called {call}.\nLinear layer {i}'s bias is {bias}; it should be all zeros.\nLikely "
                    "cause: the bias kept its default init; set it with nn.init.zeros_(layer.bias)."
                ).format(call=call, i=i, bias=show(layer.bias.detach()))
            )
    if same_tensors(params_of(model), expected, atol=1e-7):
        return
    cause = kaiming_cause(linears)
    if cause:
        fail(
            _(
                "Called {call}.\nThe weights' standard deviations are {stds}; He init for ReLU gives "
                "sqrt(2 / fan_in) = {want}.\nLikely cause: {cause}"
            ).format(
                call=call,
                stds=show([m.weight.std().item() for m in linears]),
                want=show([math.sqrt(2 / m.in_features) for m in linears]),
                cause=cause,
            )
        )
    fail(
        _(
            "Called {call}.\nThe weights are not those nn.init.kaiming_normal_(w, nonlinearity='relu') draws "
            "from the global generator, layer by layer in the order of model.modules().\nLikely cause: "
            "another "
            "distribution (kaiming_uniform_ has the same std but other values), other random calls in "
            "between, or another layer order."
        ).format(call=call)
    )


def kaiming_cause(linears: list[nn.Linear]) -> str:
    """The known mistake whose scale every layer with enough weights to tell shows, if any."""
    layers = [m for m in linears if m.weight.numel() >= 200]
    causes = {
        _(
            "mode='fan_out' scales by the outputs, 2 / fan_out; the forward pass needs fan_in"
        ): lambda fan_in, fan_out: 2 / fan_out,
        _(
            "that is Xavier/Glorot's scale, 2 / (fan_in + fan_out), made for tanh; ReLU needs 2 / fan_in "
            "(kaiming_normal_)"
        ): lambda fan_in, fan_out: 2 / (fan_in + fan_out),
        _("the gain is 1 instead of sqrt(2): pass nonlinearity='relu'"): lambda fan_in, fan_out: 1 / fan_in,
        _("the weights kept nn.Linear's default init, std 1 / sqrt(3 * fan_in)"): lambda fan_in, fan_out: (
            1 / (3 * fan_in)
        ),
    }

    def near(layer: nn.Linear, variance: float) -> bool:
        return abs(layer.weight.std().item() / math.sqrt(variance) - 1) < 0.12

    if not layers or all(near(m, 2 / m.in_features) for m in layers):
        return ""
    for cause, variance in causes.items():
        if all(near(m, variance(m.in_features, m.out_features)) for m in layers):
            return cause
    return ""


@exercise("kaiming_init")
def test_kaiming_init_draws_he_normal_weights_and_zero_biases():
    check_kaiming(0, [20, 50, 30, 10])


@exercise("kaiming_init")
@settings(max_examples=5)
@given(seed=seeds, sizes=st.lists(st.integers(2, 40), min_size=3, max_size=5))
def test_kaiming_init_matches_a_reference_for_random_shapes(seed, sizes):
    check_kaiming(seed, sizes)


@exercise("kaiming_init")
def test_kaiming_init_keeps_the_signal_alive_through_twenty_relu_layers():
    model = mlp(0, [64] * 21)
    torch.manual_seed(0)
    call = _(
        "kaiming_init(20 x (Linear(64, 64), ReLU)); then the std of every layer's output on a batch of 256"
    )
    td.kaiming_init(model)
    stds = reference_stds(model, torch.randn(256, 64, generator=torch.Generator().manual_seed(1)))
    if not 0.5 < stds[-1] / stds[0] < 2:
        fail(
            _(
                "Called {call}.\nThe activations' std went from {first} at layer 1 to {last} at layer 20; He "
                "init keeps it within a factor of 2.\nLikely cause: weights of variance 2 / fan_in "
                "(nn.init.kaiming_normal_(w, nonlinearity='relu')) and zero biases."
            ).format(call=call, first=show(stds[0]), last=show(stds[-1]))
        )


# --- fit_keep_best --------------------------------------------------------------------------------


def counting_loads(model: nn.Module) -> list[int]:
    """Counts the calls of model.load_state_dict (one entry per call) while keeping what it does."""
    loads: list[int] = []
    original_load = model.load_state_dict

    def load(*args, **kwargs):
        loads.append(1)
        return original_load(*args, **kwargs)

    model.load_state_dict = load
    return loads


def last_weights_cause(loads: list[int]) -> str:
    if loads:
        return _(
            "model.state_dict() returns references to the live parameters, not a copy: the later epochs "
            "changed the 'saved' weights in place, so loading them restored the last epoch's. Save "
            "copy.deepcopy(model.state_dict())"
        )
    return _("the best weights were never loaded back: model.load_state_dict(best_state) after the loop")


class Scripted:
    """A model whose 'training' adds 1 to its weight each epoch, and a scripted validation curve."""

    def __init__(self, val_losses: list[float]):
        self.model = nn.Linear(1, 1)
        with torch.no_grad():
            self.model.weight.fill_(0.0)
        self.val_losses = val_losses
        self.epochs = 0
        self.loads = counting_loads(self.model)

    def train_epoch(self) -> float:
        with torch.no_grad():
            self.model.weight.add_(1.0)  # in place, as optimizer.step() updates the parameters
        self.epochs += 1
        return float(10 - self.epochs)

    def validate(self) -> float:
        return self.val_losses[self.epochs - 1]


def reference_keep_best(val_losses: list[float], max_epochs: int, patience: int) -> tuple[int, int]:
    """(epochs run, best epoch) for kata 06's rule."""
    best, best_epoch, epoch = math.inf, -1, 0
    for epoch in range(max_epochs):
        if val_losses[epoch] < best:
            best, best_epoch = val_losses[epoch], epoch
        elif epoch - best_epoch >= patience:
            break
    return epoch + 1, best_epoch


def check_keep_best(val_losses: list[float], max_epochs: int, patience: int) -> None:
    run = Scripted(val_losses)
    call = _(
        "fit_keep_best(model, train_epoch, validate, max_epochs={max_epochs}, patience={patience}) with the "
        "validation losses {losses}"
    ).format(max_epochs=max_epochs, patience=patience, losses=val_losses[:max_epochs])
    got = td.fit_keep_best(run.model, run.train_epoch, run.validate, max_epochs, patience)
    if not isinstance(got, tuple) or len(got) != 3:
        fail(
            _(
                "Called {call}.\nIt returned {got}; the tuple (train_losses, val_losses, best_epoch) is "
                "asked for."
            ).format(call=call, got=show(got))
        )
    epochs, best_epoch = reference_keep_best(val_losses, max_epochs, patience)
    expect_losses(
        got[0], [float(10 - e) for e in range(1, epochs + 1)], call=call, what=_("The training losses")
    )
    expect_losses(got[1], val_losses[:epochs], call=call, what=_("The validation losses"))
    if got[2] != best_epoch:
        fail(
            _(
                "Called {call}.\nIt returned best_epoch={got}; the lowest validation loss came at epoch "
                "{best}."
            ).format(call=call, got=show(got[2]), best=best_epoch)
        )
    weight = run.model.weight.item()
    if weight != best_epoch + 1:
        if weight == epochs:
            cause = last_weights_cause(run.loads)
        else:
            cause = _("the weights saved are not those of the best epoch: save them when the loss improves")
        fail(
            _(
                "Called {call}.\nAfterwards the model holds the weights of epoch {epoch}, but the best "
                "validation "
                "loss came at epoch {best}: early stopping hands back the best model, not the last.\n"
                "Likely cause: {cause}"
            ).format(call=call, epoch=int(weight) - 1, best=best_epoch, cause=cause)
        )


@exercise("fit_keep_best")
def test_fit_keep_best_restores_the_weights_of_the_best_epoch():
    check_keep_best([0.9, 0.5, 0.7, 0.8, 0.6, 0.4], max_epochs=6, patience=3)


@exercise("fit_keep_best")
@settings(max_examples=10)
@given(
    val_losses=st.lists(st.sampled_from([0.2, 0.4, 0.5, 0.6, 0.8]), min_size=1, max_size=10),
    patience=st.integers(1, 3),
)
def test_fit_keep_best_follows_the_early_stopping_rule(val_losses, patience):
    check_keep_best(val_losses, len(val_losses), patience)


def memorising_run(seed: int = 0):
    """A 1 -> 32 -> 32 -> 1 MLP, 16 noisy samples of sin(x), Adam: it memorises the noise."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.rand(16, 1, generator=gen) * 6 - 3
    y = torch.sin(x) + 0.3 * torch.randn(16, 1, generator=gen)
    x_val = torch.rand(64, 1, generator=gen) * 6 - 3
    y_val = torch.sin(x_val) + 0.3 * torch.randn(64, 1, generator=gen)
    model = mlp(seed, [1, 32, 32, 1], nn.Tanh)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.02)

    def train_epoch() -> float:
        return train_steps(model, optimizer, [(x, y)])[0]

    def validate() -> float:
        with torch.no_grad():
            return mse(model(x_val), y_val).item()

    return model, train_epoch, validate


@exercise("fit_keep_best")
def test_fit_keep_best_stops_a_model_that_memorises_its_noisy_training_set():
    model, train_epoch, validate = memorising_run()
    loads = counting_loads(model)
    call = _(
        "fit_keep_best(MLP [1, 32, 32, 1], one Adam step on 16 noisy points, validate on 64, 300, "
        "patience=10)"
    )
    got = td.fit_keep_best(model, train_epoch, validate, 300, 10)
    reference, ref_train, ref_validate = memorising_run()
    train_losses, val_losses, best = [], [], -1
    for epoch in range(300):
        train_losses.append(ref_train())
        val_losses.append(ref_validate())
        if val_losses[-1] < min(val_losses[:-1], default=math.inf):
            best = epoch
        elif epoch - best >= 10:
            break
    if not isinstance(got, tuple) or len(got) != 3:
        fail(
            _(
                "Called {call}.\nIt returned {got}; the tuple (train_losses, val_losses, best_epoch) is "
                "asked for."
            ).format(call=call, got=show(got))
        )
    expect_losses(got[0], train_losses, call=call, what=_("The training losses"))
    expect_losses(got[1], val_losses, call=call, what=_("The validation losses"))
    expect_close(got[2], best, call=f"{call}; best_epoch")
    # The gap: after the best epoch the training loss kept falling while the validation loss rose.
    final = expect_float(validate(), call=_("validate() after the call"))
    expect_close(
        final,
        val_losses[best],
        call=_("{call}; then validate()").format(call=call),
        rtol=1e-5,
        mistakes=[
            (
                _("the model came back with the weights of the last epoch: {cause}").format(
                    cause=last_weights_cause(loads)
                ),
                val_losses[-1],
            )
        ],
        note=_(
            "The validation loss was lowest at epoch {best}; the model must come back with those weights."
        ).format(best=best),
    )


# --- gradient_norms -------------------------------------------------------------------------------


def reference_norms(model, optimizer, batches, what: str = "grad") -> dict[str, list[float]]:
    norms: dict[str, list[float]] = {name: [] for name, p in model.named_parameters() if p.requires_grad}
    for x, y in batches:
        optimizer.zero_grad()
        mse(model(x), y).backward()
        for name, p in model.named_parameters():
            if p.requires_grad:
                norms[name].append((p.grad if what == "grad" else p.detach()).norm().item())
        optimizer.step()
    return norms


def norm_setup(seed: int, sizes: list[int], n_batches: int, freeze_first: bool = False):
    model = mlp(seed, sizes, nn.Sigmoid)
    if freeze_first:
        model[0].requires_grad_(False)
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    x, y = regression(seed, 8 * n_batches, d=sizes[0])
    return model, optimizer, list(zip(x.split(8), y.split(8), strict=True))


NORMS_CALL = N_("gradient_norms(sigmoid MLP {sizes}, nn.MSELoss(), SGD(lr=0.1), {n_batches} batches of 8)")
NORMS_CALL_FROZEN = N_(
    "gradient_norms(sigmoid MLP {sizes}, its first layer frozen, nn.MSELoss(), SGD(lr=0.1), {n_batches} "
    "batches of 8)"
)


def check_norms(seed: int, sizes: list[int], n_batches: int, freeze_first: bool = False):
    model, optimizer, batches = norm_setup(seed, sizes, n_batches, freeze_first)
    call = _(NORMS_CALL_FROZEN if freeze_first else NORMS_CALL).format(sizes=sizes, n_batches=n_batches)
    got = td.gradient_norms(model, mse, optimizer, batches)
    expected = reference_norms(*norm_setup(seed, sizes, n_batches, freeze_first))
    if not isinstance(got, dict):
        fail(
            _(
                "Called {call}.\nIt returned {got}; a dict {{parameter name: [norm per step]}} is asked for."
            ).format(call=call, got=show(got))
        )
    if sorted(got) != sorted(expected):
        fail(
            _(
                "Called {call}.\nIts keys are {got}; expected the names of the parameters that require grad, "
                "{expected}."
            ).format(call=call, got=sorted(got), expected=sorted(expected))
        )
    names = list(expected)
    lengths = {name: len(got[name]) if isinstance(got[name], (list, tuple)) else None for name in names}
    if lengths[names[-1]] == n_batches * len(names) and all(lengths[n] == 0 for n in names[:-1]):
        fail(
            _(
                "Called {call}.\nEvery norm landed in the list of '{last}', the others are empty.\nLikely "
                "cause: a "
                "lambda defined in a loop reads the loop variable when it runs, by then the last name. "
                "Bind it when you define it: lambda grad, name=name: ..."
            ).format(call=call, last=names[-1])
        )
    weights = reference_norms(*norm_setup(seed, sizes, n_batches, freeze_first), what="weight")
    for name in names:
        expect_close(
            expect_floats(got[name], n_batches, call=f"{call}; norms['{name}']"),
            expected[name],
            call=f"{call}; norms['{name}']",
            rtol=1e-4,
            atol=1e-7,
            mistakes=[
                (
                    _(
                        "you logged the parameter's own norm, p.norm(); the hook receives its gradient: "
                        "grad.norm()"
                    ),
                    weights[name],
                )
            ],
        )


@exercise("gradient_norms")
def test_gradient_norms_of_a_deep_sigmoid_network_match_a_reference_run():
    # Sigmoid's slope is at most 1/4: the gradient shrinks layer by layer on its way back to the input.
    check_norms(0, [4, 16, 16, 16, 1], 4)


@exercise("gradient_norms")
def test_gradient_norms_skip_frozen_parameters():
    check_norms(1, [3, 8, 1], 3, freeze_first=True)


@exercise("gradient_norms")
@settings(max_examples=4)
@given(seed=seeds, sizes=st.lists(st.integers(1, 6), min_size=2, max_size=4), n_batches=st.integers(1, 4))
def test_gradient_norms_match_a_reference_run(seed, sizes, n_batches):
    check_norms(seed, [4, *sizes, 1], n_batches)


@exercise("gradient_norms")
def test_gradient_norms_removes_its_hooks_even_when_training_fails():
    model, optimizer, batches = norm_setup(2, [4, 8, 1], 3)
    call = _(NORMS_CALL).format(sizes=[4, 8, 1], n_batches=3)
    got = td.gradient_norms(model, mse, optimizer, batches)
    counts = {name: len(v) for name, v in got.items()} if isinstance(got, dict) else {}
    mse(model(batches[0][0]), batches[0][1]).backward()  # a backward pass after the call
    left = [name for name, p in model.named_parameters() if p._backward_hooks]
    grew = [name for name, v in (got.items() if isinstance(got, dict) else ()) if len(v) != counts[name]]
    if left or grew:
        fail(
            _(
                "Called {call}, then one more backward() on the model.\nThe hooks are still registered on "
                "{left}: "
                "they keep logging into your lists after the call.\nLikely cause: keep the handle that "
                "register_hook returns and call handle.remove() on each one after training (in a finally: "
                "block)."
            ).format(call=call, left=left or grew)
        )
    model, optimizer, batches = norm_setup(2, [4, 8, 1], 3)
    batches[1] = (batches[1][0][:, :3], batches[1][1])  # a batch whose inputs have the wrong shape
    call = _("gradient_norms(..., 3 batches of 8, the second one with inputs of shape (8, 3))")
    with pytest.raises(RuntimeError):
        td.gradient_norms(model, mse, optimizer, batches)
    left = [name for name, p in model.named_parameters() if p._backward_hooks]
    if left:
        fail(
            _(
                "Called {call}: training raised, as it should.\nBut the hooks are still registered on "
                "{left}.\n"
                "Likely cause: remove them in a finally: block, so they go even when training raises."
            ).format(call=call, left=left)
        )
