"""Kata 13: capstone, two spirals end to end. Read a test's name for the behaviour, its body for the call.

The training tests use tiny models and a few dozen points, so they run in a blink; only the
run_experiment tests train the real model, once, shared through a fixture. Files live in
pytest's tmp_path. A resumed run is compared with torch.equal: it must repeat the
uninterrupted run bit for bit.
"""

import io
import math
import os
from types import SimpleNamespace

import capstone as cap
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st
from torch import nn
from torch.utils.data import DataLoader, Dataset, TensorDataset

from katas._harness.i18n import N_, _
from katas._harness.testing import expect_close, expect_float, expect_tensor_close, fail, show

exercise = pytest.mark.exercise

seeds = st.integers(0, 2**16)


def first_line(err: BaseException) -> str:
    return (str(err).strip().splitlines() or [""])[0]


HARD_CODED_CUDA = N_(
    "a hard-coded device ('cuda'): this machine has no GPU. Take the device from the model, "
    "device = next(model.parameters()).device, and move each batch there with .to(device)"
)


def asks_for_a_gpu(err: BaseException) -> bool:
    """torch's error for a GPU the machine lacks: "not compiled with CUDA" on a CPU build,
    "Found no NVIDIA driver" on a CUDA build without a GPU (PyPI's Linux wheel)."""
    text = str(err).lower()
    return "cuda" in text or "nvidia driver" in text


def on_any_machine(fn, *args, call: str):
    """Call fn(*args); an error from asking for a GPU this machine lacks names the hard-coded device."""
    try:
        return fn(*args)
    except NotImplementedError:
        raise
    except (AssertionError, RuntimeError) as err:
        if not asks_for_a_gpu(err):
            raise
        error = err
    fail(
        _("Called {call}.\nIt raised {type}: {first}\nLikely cause: {cause}.").format(
            call=call, type=type(error).__name__, first=first_line(error), cause=_(HARD_CODED_CUDA)
        )
    )


# --- make_spirals ---------------------------------------------------------------------------------


def arm_residual(points: torch.Tensor, phase: torch.Tensor, turns: float) -> torch.Tensor:
    """How far (in radians, wrapped to (-pi, pi]) each point's angle is from its arm's angle."""
    p = points.detach().double()
    radius = p.norm(dim=1)
    residual = torch.atan2(p[:, 1], p[:, 0]) - 2 * math.pi * turns * radius - phase.double()
    return torch.remainder(residual + math.pi, 2 * math.pi) - math.pi


def expect_spiral_shapes(points, labels, n: int, *, call: str) -> None:
    if not (isinstance(points, torch.Tensor) and isinstance(labels, torch.Tensor)):
        fail(
            _("Called {call}.\nIt gave {points} and {labels}; two tensors are asked for.").format(
                call=call, points=show(points), labels=show(labels)
            )
        )
    if tuple(points.shape) != (2 * n, 2) or points.dtype != torch.float32:
        fail(
            _(
                "Called {call}.\nThe points are {shape} {dtype}; the tests expected ({rows}, 2) "
                "torch.float32: one row (x, y) per point, both classes stacked."
            ).format(call=call, shape=tuple(points.shape), dtype=points.dtype, rows=2 * n)
        )
    expected = torch.arange(2).repeat_interleave(n)
    if labels.dtype != torch.int64:
        fail(
            _(
                "Called {call}.\nThe labels are {dtype}; F.cross_entropy wants int64 class indices "
                "(torch.long), 0 and 1."
            ).format(call=call, dtype=labels.dtype)
        )
    if tuple(labels.shape) != (2 * n,) or not torch.equal(labels, expected):
        counts = [int((labels == k).sum()) for k in (0, 1)]
        cause = (
            _(
                "the labels are not balanced ({zeros} zeros, {ones} ones): each class has exactly "
                "n_per_class points, so label them with torch.arange(2).repeat_interleave(n_per_class)"
            ).format(zeros=counts[0], ones=counts[1])
            if counts != [n, n]
            else _("the rows are out of order: all of class 0 first, then all of class 1")
        )
        fail(
            _(
                "Called {call}.\nThe labels are {labels}; the tests expected {n} zeros then {n} ones.\n"
                "Likely cause: {cause}."
            ).format(call=call, labels=show(labels), n=n, cause=cause)
        )


def expect_on_the_arms(points, labels, turns: float, *, call: str) -> None:
    """Noise-free points: radius in [0.2, 1), angle 2*pi*turns*r + pi*label."""
    radius = points.detach().double().norm(dim=1)
    if radius.min() < 0.2 - 1e-5 or radius.max() > 1 + 1e-5:
        fail(
            _(
                "Called {call}.\nThe radii run from {low} to {high}; with noise=0 they should lie in "
                "[0.2, 1).\nLikely cause: draw r = 0.2 + 0.8 * torch.rand(..., generator=generator) and "
                "place the point at r * (cos a, sin a)."
            ).format(call=call, low=f"{radius.min():.4f}", high=f"{radius.max():.4f}")
        )
    if len(radius) >= 20 and radius.max() - radius.min() < 0.4:
        fail(
            _(
                "Called {call}.\nEvery radius is between {low} and {high}: the points sit on a ring, "
                "not along a spiral. Draw each radius uniformly in [0.2, 1)."
            ).format(call=call, low=f"{radius.min():.4f}", high=f"{radius.max():.4f}")
        )
    # float32 coordinates: the recovered angle is good to ~1e-5 rad; a wrong arm is off by ~pi.
    tolerance = 1e-3
    own = arm_residual(points, math.pi * labels, turns).abs()
    if own.max() <= tolerance:
        return
    ones = labels == 1
    same_phase = arm_residual(points[ones], torch.zeros(int(ones.sum())), turns).abs()
    class0_fine = own[~ones].max() <= tolerance if (~ones).any() else True
    if class0_fine and len(same_phase) and same_phase.max() <= tolerance:
        fail(
            _(
                "Called {call}.\nThe points of class 1 lie on class 0's arm: both spirals have the same "
                "phase, so they coincide instead of interleaving.\nLikely cause: add pi * label to the "
                "angle: class 1 is class 0 turned by half a turn."
            ).format(call=call)
        )
    i = int(own.argmax())
    r = float(radius[i])
    expected_angle = 2 * math.pi * turns * r + math.pi * int(labels[i])
    fail(
        _(
            "Called {call}.\nPoint {i}, {point} with label {label}, is not on its arm: at radius "
            "r = {r} the angle should be 2*pi*turns*r + pi*label = {angle} (modulo 2*pi).\nLikely "
            "cause: the angle must grow with the radius; check the formula (and use radians)."
        ).format(
            call=call,
            i=i,
            point=show(points[i]),
            label=int(labels[i]),
            r=f"{r:.4f}",
            angle=f"{expected_angle:.4f}",
        )
    )


@exercise("make_spirals")
def test_make_spirals_labels_n_points_of_each_class():
    call = "make_spirals(3, noise=0.0, generator=torch.Generator().manual_seed(0))"
    points, labels = cap.make_spirals(3, 0.0, torch.Generator().manual_seed(0))
    expect_spiral_shapes(points, labels, 3, call=call)
    call = "make_spirals(50, noise=0.1, generator=torch.Generator().manual_seed(1))"
    points, labels = cap.make_spirals(50, 0.1, torch.Generator().manual_seed(1))
    expect_spiral_shapes(points, labels, 50, call=call)


@exercise("make_spirals")
@given(n=st.integers(1, 40), turns=st.floats(0.5, 2.0), seed=seeds)
def test_make_spirals_puts_each_class_on_its_own_arm(n, turns, seed):
    call = f"make_spirals({n}, noise=0.0, generator=torch.Generator().manual_seed({seed}), turns={turns})"
    points, labels = cap.make_spirals(n, 0.0, torch.Generator().manual_seed(seed), turns=turns)
    expect_spiral_shapes(points, labels, n, call=call)
    expect_on_the_arms(points, labels, turns, call=call)


def distance_to_arms(points, labels, turns: float) -> torch.Tensor:
    """Each point's distance to the nearest point of its own noise-free arm."""
    radius = torch.linspace(0.2, 1.0, 4001, dtype=torch.float64)
    distances = torch.empty(len(points), dtype=torch.float64)
    for k in (0, 1):
        angle = 2 * math.pi * turns * radius + math.pi * k
        arm = torch.stack([radius * torch.cos(angle), radius * torch.sin(angle)], dim=1)
        mine = labels == k
        distances[mine] = torch.cdist(points[mine].double(), arm).min(dim=1).values
    return distances


@exercise("make_spirals")
@pytest.mark.parametrize("noise", [0.02, 0.1])
def test_make_spirals_scatters_the_points_by_the_noise(noise):
    n = 300
    call = f"make_spirals({n}, noise={noise}, generator=torch.Generator().manual_seed(0))"
    points, labels = cap.make_spirals(n, noise, torch.Generator().manual_seed(0))
    expect_spiral_shapes(points, labels, n, call=call)
    # Gaussian noise of std `noise` per coordinate moves a point off its arm by about `noise`.
    rms = distance_to_arms(points, labels, 1.25).square().mean().sqrt().item()
    if not 0.5 * noise <= rms <= 1.5 * noise:
        nearest = torch.minimum(
            distance_to_arms(points, torch.zeros_like(labels), 1.25),
            distance_to_arms(points, torch.ones_like(labels), 1.25),
        )
        if rms < 0.1 * noise:
            cause = _("the noise is missing: add noise * torch.randn(points.shape, generator=generator)")
        elif 0.5 * noise <= nearest.square().mean().sqrt().item() <= 1.5 * noise:
            cause = _(
                "the points lie on a spiral arm, but not all on their own class's: class c's arm is "
                "turned by pi * c (both classes on one arm, or labels that do not match the rows)"
            )
        else:
            cause = _(
                "scale a standard normal draw, noise * torch.randn(..., generator=generator): "
                "noise is the standard deviation of each coordinate's offset"
            )
        fail(
            _(
                "Called {call}.\nThe points are on average {rms} away from their arm; with "
                "noise={noise} the tests expected about {noise}.\nLikely cause: {cause}."
            ).format(call=call, rms=f"{rms:.4f}", noise=noise, cause=cause)
        )


@exercise("make_spirals")
def test_make_spirals_draws_only_from_the_given_generator():
    call = "make_spirals(50, 0.05, torch.Generator().manual_seed(7))"
    before = torch.get_rng_state()
    torch.manual_seed(1)
    first = cap.make_spirals(50, 0.05, torch.Generator().manual_seed(7))
    torch.manual_seed(2)
    second = cap.make_spirals(50, 0.05, torch.Generator().manual_seed(7))
    other = cap.make_spirals(50, 0.05, torch.Generator().manual_seed(8))
    torch.set_rng_state(before)
    expect_spiral_shapes(*first, 50, call=call)
    if not torch.equal(first[0], second[0]):
        fail(
            _(
                "Called {call} twice, after torch.manual_seed(1) and after torch.manual_seed(2).\n"
                "The points differ, so they depend on the global RNG.\nLikely cause: a random call "
                "without generator=generator; pass it to torch.rand and to torch.randn."
            ).format(call=call)
        )
    if torch.equal(first[0], other[0]):
        fail(
            _(
                "Called {call} and {other_call}.\nBoth gave the same points: the generator's seed "
                "changes nothing.\nLikely cause: draw from the generator passed in, not from a new one."
            ).format(call=call, other_call="make_spirals(50, 0.05, torch.Generator().manual_seed(8))")
        )


# --- SpiralDataset --------------------------------------------------------------------------------


def all_items(dataset, call: str):
    try:
        length = len(dataset)
    except TypeError as err:
        fail(
            _("Called len({call}).\nIt raised TypeError: {first}\nImplement __len__.").format(
                call=call, first=first_line(err)
            )
        )
    items = [dataset[i] for i in range(length)]
    for i, item in enumerate(items):
        if not (isinstance(item, tuple) and len(item) == 2):
            fail(
                _(
                    "Called {call}[{i}].\nIt returned {item}; the tests expected a (point, label) tuple."
                ).format(call=call, i=i, item=show(item))
            )
        point, label = item
        if not isinstance(point, torch.Tensor) or tuple(point.shape) != (2,) or point.dtype != torch.float32:
            fail(
                _(
                    "Called {call}[{i}].\nThe point is {point}; a float32 tensor of shape (2,) is asked for."
                ).format(call=call, i=i, point=show(point))
            )
        if not isinstance(label, torch.Tensor) or label.shape != () or label.dtype != torch.int64:
            fail(
                _(
                    "Called {call}[{i}].\nThe label is {label}; an int64 scalar tensor is asked for "
                    "(index the int64 labels tensor: labels[i]), so that batches feed F.cross_entropy."
                ).format(call=call, i=i, label=show(label))
            )
    return items


@exercise("SpiralDataset")
@given(n=st.integers(1, 30), seed=seeds)
def test_spiral_dataset_serves_every_point_of_both_classes(n, seed):
    call = f"SpiralDataset(n_per_class={n}, noise=0.0, seed={seed})"
    dataset = cap.SpiralDataset(n, 0.0, seed)
    items = all_items(dataset, call)
    if len(items) != 2 * n:
        cause = (
            "\n"
            + _("Likely cause: __len__ counts one class only; both classes together hold 2 * n_per_class.")
            if len(items) == n
            else ""
        )
        fail(
            _("Called len({call}).\nIt returned {length}; the tests expected {expected}.").format(
                call=call, length=len(items), expected=2 * n
            )
            + cause
        )
    points = torch.stack([point for point, _label in items])
    labels = torch.stack([label for _point, label in items])
    expect_spiral_shapes(points, labels, n, call=call)
    expect_on_the_arms(points, labels, 1.25, call=call)


@exercise("SpiralDataset")
def test_spiral_dataset_depends_on_its_seed_alone():
    call = "SpiralDataset(n_per_class=20, noise=0.1, seed=3)"
    before = torch.get_rng_state()
    torch.manual_seed(1)
    first = torch.stack([p for p, _y in all_items(cap.SpiralDataset(20, 0.1, 3), call)])
    after = torch.get_rng_state()
    torch.manual_seed(2)
    second = torch.stack([p for p, _y in all_items(cap.SpiralDataset(20, 0.1, 3), call)])
    other = torch.stack([p for p, _y in all_items(cap.SpiralDataset(20, 0.1, 4), call)])
    torch.manual_seed(1)
    untouched = torch.equal(after, torch.get_rng_state())
    torch.set_rng_state(before)
    if not torch.equal(first, second):
        fail(
            _(
                "Called {call} twice, after torch.manual_seed(1) and after torch.manual_seed(2).\nThe "
                "points differ: the dataset depends on the global RNG.\nLikely cause: pass "
                "torch.Generator().manual_seed(seed) to make_spirals."
            ).format(call=call)
        )
    if torch.equal(first, other):
        fail(
            _(
                "Called {call} and SpiralDataset(20, 0.1, seed=4).\nBoth hold the same points: the seed "
                "is ignored.\nLikely cause: seed the generator you pass to make_spirals with `seed`."
            ).format(call=call)
        )
    if not untouched:
        fail(
            _(
                "Called {call}.\nAfterwards the global RNG was in another state: the dataset reseeded or "
                "drew from it, which changes every later random draw of the program (weight init, "
                "dropout).\nLikely cause: torch.manual_seed(seed) inside __init__; seed a torch.Generator "
                "of your own."
            ).format(call=call)
        )


@exercise("SpiralDataset")
def test_spiral_dataset_feeds_a_dataloader():
    call = "DataLoader(SpiralDataset(n_per_class=10, noise=0.05, seed=0), batch_size=8)"
    loader = DataLoader(cap.SpiralDataset(10, 0.05, 0), batch_size=8)
    batches = list(loader)
    sizes = [len(labels) for _points, labels in batches]
    if sizes != [8, 8, 4]:
        fail(
            _("Iterated {call}.\nThe batches hold {sizes} samples; the tests expected [8, 8, 4].").format(
                call=call, sizes=sizes
            )
        )
    points, labels = batches[0]
    if tuple(points.shape) != (8, 2) or points.dtype != torch.float32 or labels.dtype != torch.int64:
        fail(
            _(
                "Iterated {call}.\nThe first batch is {shape} {dtype} points and {label_dtype} labels; "
                "the tests expected (8, 2) torch.float32 and torch.int64."
            ).format(call=call, shape=tuple(points.shape), dtype=points.dtype, label_dtype=labels.dtype)
        )


# --- build_model ----------------------------------------------------------------------------------


def shapes_of(model) -> list[tuple[int, ...]]:
    return [tuple(p.shape) for p in model.parameters()]


@exercise("build_model")
@given(hidden=st.integers(1, 24), batch=st.integers(1, 6), seed=seeds)
def test_build_model_maps_points_to_two_logits_through_three_linear_layers(hidden, batch, seed):
    call = f"build_model({hidden})"
    torch.manual_seed(seed)
    model = cap.build_model(hidden)
    if not isinstance(model, nn.Module):
        fail(
            _("Called {call}.\nIt returned {model}; an nn.Module is asked for.").format(
                call=call, model=show(model)
            )
        )
    expected = [(hidden, 2), (hidden,), (hidden, hidden), (hidden,), (2, hidden), (2,)]
    got = shapes_of(model)
    if got != expected:
        cause = ""
        if got[-2:] == [(1, hidden), (1,)]:
            cause = "\n" + _(
                "Likely cause: one output unit. Two classes need two logits, one per class, for "
                "F.cross_entropy."
            )
        fail(
            _(
                "Called {call}.\nIts parameters have the shapes {got}; the tests expected {expected}: "
                "Linear(2, {hidden}), Linear({hidden}, {hidden}), Linear({hidden}, 2)."
            ).format(call=call, got=got, expected=expected, hidden=hidden)
            + cause
        )
    out = model(torch.randn(batch, 2))
    if not isinstance(out, torch.Tensor) or tuple(out.shape) != (batch, 2):
        fail(
            _(
                "Called {call}(x) with x of shape ({batch}, 2).\nIt returned {out}; shape ({batch}, 2)."
            ).format(call=call, batch=batch, out=show(out))
        )


@exercise("build_model")
def test_build_model_is_nonlinear_and_returns_raw_logits():
    torch.manual_seed(0)
    model = cap.build_model(16)
    a, b = 3 * torch.randn(64, 2), 3 * torch.randn(64, 2)
    with torch.no_grad():
        middle, ends = model((a + b) / 2), (model(a) + model(b)) / 2
        out = model(torch.cat([a, b]))
    # An affine map sends the midpoint to the mean of the images, up to float32 round-off.
    if torch.allclose(middle, ends, atol=1e-5):
        fail(
            _(
                "Called model = build_model(16), then compared model((a + b) / 2) with "
                "(model(a) + model(b)) / 2.\n"
                "They are equal: the model is an affine map. Likely cause: no nonlinearity between the "
                "Linear layers; stacked Linear layers collapse to one, and a straight line cannot "
                "separate two spirals. Add nn.Tanh() (or nn.ReLU()) after the first two layers."
            )
        )
    if torch.allclose(out.sum(dim=1), torch.ones(len(out)), atol=1e-5) and (out >= 0).all():
        fail(
            _(
                "Called build_model(16)(x).\nEvery row of the output sums to 1: the model ends with a "
                "softmax.\nLikely cause: return raw logits; F.cross_entropy applies log_softmax itself, "
                "and a softmax before it squashes the gradients."
            )
        )


@exercise("build_model")
def test_build_model_draws_its_initial_weights_from_the_global_rng():
    before = torch.get_rng_state()
    torch.manual_seed(1)
    first = cap.build_model(8)
    torch.manual_seed(1)
    again = cap.build_model(8)
    torch.manual_seed(2)
    other = cap.build_model(8)
    torch.set_rng_state(before)
    same = [torch.equal(p, q) for p, q in zip(first.parameters(), again.parameters(), strict=True)]
    if not all(same):
        fail(
            _(
                "Called torch.manual_seed(1); build_model(8) twice.\nThe weights differ: the model does "
                "not draw from the global RNG the caller seeded."
            )
        )
    if all(torch.equal(p, q) for p, q in zip(first.parameters(), other.parameters(), strict=True)):
        fail(
            _(
                "Called build_model(8) after torch.manual_seed(1) and after torch.manual_seed(2).\nBoth "
                "models have the same weights. Likely cause: build_model seeds the RNG itself; leave "
                "seeding to the caller (run_experiment seeds once, before building)."
            )
        )


# --- evaluate_accuracy: a model on another device ---------------------------------------------------


class ProbeReached(Exception):
    """Raised by DeviceProbe once it has seen a batch: the test needs nothing more."""


class DeviceProbe(nn.Module):
    """A model whose parameters live on the meta device: it records where its input arrives."""

    def __init__(self):
        super().__init__()
        self.layer = nn.Linear(2, 2, device="meta")
        self.seen: list[torch.device] = []

    def forward(self, x):
        self.seen.append(x.device)
        raise ProbeReached


def expect_batches_on_the_model_device(run, *, call: str) -> None:
    """`run(model, loader)` must hand the model its batches on the model's device (meta here)."""
    probe = DeviceProbe()
    loader = DataLoader(TensorDataset(torch.randn(8, 2), torch.zeros(8, dtype=torch.long)), batch_size=4)
    error = None
    try:
        run(probe, loader)
    except ProbeReached:
        pass
    except NotImplementedError:
        raise
    except (AssertionError, RuntimeError) as err:
        error = err
    else:
        if not probe.seen:
            fail(_("Called {call}.\nIt never called the model on a batch.").format(call=call))
    if error is not None:
        cuda = asks_for_a_gpu(error)
        cause = (
            _(HARD_CODED_CUDA)
            if cuda
            else _(
                "the batch and the model are on different devices: move each batch to "
                "next(model.parameters()).device"
            )
        )
        fail(
            _("Called {call}.\nIt raised {type}: {first}\nLikely cause: {cause}.").format(
                call=call, type=type(error).__name__, first=first_line(error), cause=cause
            )
        )
    if probe.seen and probe.seen[0].type != "meta":
        fail(
            _(
                "Called {call}.\nThe first batch reached the model on {device}, but the model lives on "
                "meta (another device; on a real machine, a GPU).\nLikely cause: a hard-coded device or "
                "no .to() at all. Take device = next(model.parameters()).device and move each batch "
                "there: the same code then runs on a CPU, a GPU or anything else."
            ).format(call=call, device=probe.seen[0])
        )


# --- evaluate_accuracy ----------------------------------------------------------------------------


def points_and_labels(n: int, seed: int):
    data = torch.Generator().manual_seed(seed)
    return torch.randn(n, 2, generator=data), torch.randint(0, 2, (n,), generator=data)


@exercise("evaluate_accuracy")
@given(n=st.integers(1, 40), batch_size=st.integers(1, 16), seed=seeds)
def test_evaluate_accuracy_counts_correct_predictions_over_all_samples(n, batch_size, seed):
    x, y = points_and_labels(n, seed)
    torch.manual_seed(seed)
    model = nn.Linear(2, 2)
    loader = DataLoader(TensorDataset(x, y), batch_size=batch_size)
    call = _("evaluate_accuracy(model, loader) on {n} samples in batches of {batch_size}").format(
        n=n, batch_size=batch_size
    )
    got = expect_float(on_any_machine(cap.evaluate_accuracy, model, loader, call=call), call=call)
    with torch.no_grad():
        hits = (model(x).argmax(dim=1) == y).float()
    per_batch = sum(chunk.mean().item() for chunk in hits.split(batch_size)) / len(hits.split(batch_size))
    expect_close(
        got,
        hits.sum().item() / n,
        call=call,
        mistakes=[
            (
                _(
                    "the mean of the per-batch accuracies: the short last batch then weighs as much as a "
                    "full one; count correct predictions and samples over the whole loader, divide once"
                ),
                per_batch,
            ),
            (
                _("you returned the number of correct predictions; divide by the number of samples"),
                hits.sum().item(),
            ),
            (
                _("you returned the error rate; the accuracy is the fraction predicted correctly"),
                1 - hits.mean().item(),
            ),
        ],
    )


def dropout_model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(2, 32), nn.ReLU(), nn.Dropout(0.5), nn.Linear(32, 2))


@exercise("evaluate_accuracy")
def test_evaluate_accuracy_turns_dropout_off_and_restores_the_mode():
    x = points_and_labels(200, 0)[0]
    model = dropout_model()
    with torch.no_grad():
        y = model.eval()(x).argmax(dim=1)
    y[:50] = 1 - y[:50]  # the model, without dropout, gets exactly these 50 wrong
    expected = 0.75
    loader = DataLoader(TensorDataset(x, y), batch_size=50)
    model.train()
    torch.manual_seed(1)  # the dropout masks, should a wrong answer draw them
    call = _("evaluate_accuracy(model, loader) on a model with nn.Dropout(0.5), in training mode")
    got = expect_float(on_any_machine(cap.evaluate_accuracy, model, loader, call=call), call=call)
    expect_close(
        got,
        expected,
        call=call,
        note=_(
            "Likely cause: dropout was on, so random units were dropped at prediction time. Call "
            "model.eval() before predicting: the given predict(model, x) does it for you."
        ),
    )
    if not model.training:
        fail(
            _(
                "Called {call}.\nAfterwards the model is still in eval mode, so the next training epoch "
                "would run without dropout.\nLikely cause: predict with the given predict(model, x), "
                "which puts every submodule back in its mode (in a finally block)."
            ).format(call=call)
        )
    model.eval()
    on_any_machine(cap.evaluate_accuracy, model, loader, call="evaluate_accuracy(model, loader)")
    if model.training:
        fail(
            _(
                "Called evaluate_accuracy(model, loader) on a model in eval mode.\nAfterwards it is in "
                "training mode. Restore the mode the model was in, not always train(): the given "
                "predict(model, x) does."
            )
        )


class GradProbe(nn.Module):
    """A linear model that records whether autograd was recording at each forward call."""

    def __init__(self):
        super().__init__()
        self.layer = nn.Linear(2, 2)
        self.grad_enabled: list[bool] = []

    def forward(self, x):
        self.grad_enabled.append(torch.is_grad_enabled())
        return self.layer(x)


@exercise("evaluate_accuracy")
def test_evaluate_accuracy_runs_without_autograd():
    x, y = points_and_labels(20, 0)
    model = GradProbe()
    call = _("evaluate_accuracy(model, loader) on 20 samples in batches of 8")
    on_any_machine(cap.evaluate_accuracy, model, DataLoader(TensorDataset(x, y), batch_size=8), call=call)
    if not model.grad_enabled:
        fail(_("Called {call}.\nIt never called the model.").format(call=call))
    if any(model.grad_enabled):
        fail(
            _(
                "Called {call}.\nAutograd was recording while the model predicted: every forward pass "
                "built a graph nobody will backpropagate through, wasting memory and time.\nLikely "
                "cause: predicting without torch.no_grad(); the given predict(model, x) runs under it."
            ).format(call=call)
        )


@exercise("evaluate_accuracy")
def test_evaluate_accuracy_moves_batches_to_the_model_device():
    expect_batches_on_the_model_device(
        cap.evaluate_accuracy, call=_("evaluate_accuracy(model, loader) with the model on the meta device")
    )


# --- a tiny training run (train_one_epoch is given code; the checkpoint tests use this) -------------

DATA_SEED = 1234


def tiny_setup(seed: int, n: int = 24, batch_size: int = 6, dropout: float = 0.0):
    """A small classifier, Adam, and a shuffling loader: rebuilt identically from `seed`.

    The data depend on DATA_SEED only, so every seed sees the same points.
    """
    data = torch.Generator().manual_seed(DATA_SEED)
    x = torch.randn(n, 2, generator=data)
    y = (x[:, 0] * x[:, 1] > 0).long()
    torch.manual_seed(seed)
    layers = [nn.Linear(2, 8), nn.Tanh()] + ([nn.Dropout(dropout)] if dropout else []) + [nn.Linear(8, 2)]
    model = nn.Sequential(*layers)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.05)
    generator = torch.Generator().manual_seed(seed)
    loader = DataLoader(TensorDataset(x, y), batch_size=batch_size, shuffle=True, generator=generator)
    return model, optimizer, loader


def reference_epoch(model, optimizer, loader, zero_grad: bool = True) -> list[tuple[float, int]]:
    """The loop train_one_epoch describes; the (loss, batch size) of every batch."""
    model.train()
    losses = []
    for x, y in loader:
        if zero_grad:
            optimizer.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        optimizer.step()
        losses.append((loss.item(), len(y)))
    return losses


# --- checkpoints ----------------------------------------------------------------------------------


class SimulatedCrash(Exception):
    """Stands in for a crash in the middle of a save: a full disk, a killed job."""


def save_half_then_crash(real_save):
    """A torch.save that writes the first half of the file, then dies like a full disk."""

    def save(obj, f, *args, **kwargs):
        buffer = io.BytesIO()
        real_save(obj, buffer, *args, **kwargs)
        half = buffer.getvalue()[: len(buffer.getvalue()) // 2]
        if isinstance(f, (str, os.PathLike)):
            with open(f, "wb") as out:
                out.write(half)
        else:
            f.write(half)
        raise SimulatedCrash(_("No space left on device (simulated, after half the file)"))

    return save


def load_checkpoint_file(path, *, call: str) -> dict:
    if not os.path.exists(path):
        fail(_("Called {call}.\nThere is no file at {path}.").format(call=call, path=path))
    try:
        checkpoint = torch.load(path, weights_only=True)
    except Exception as err:
        error = err
    else:
        if not isinstance(checkpoint, dict):
            fail(
                _("Called {call}.\nThe file holds {type}; a dict is asked for.").format(
                    call=call, type=type(checkpoint).__name__
                )
            )
        return checkpoint
    fail(
        _(
            "Called {call}.\ntorch.load(path, weights_only=True) failed: {type}: {first}\nSave "
            "state_dicts, numbers and lists only, never whole objects."
        ).format(call=call, type=type(error).__name__, first=first_line(error))
    )


def same_optimizer_state(a, b: dict) -> bool:
    if not isinstance(a, dict) or a.get("param_groups") != b["param_groups"]:
        return False
    if a.get("state", {}).keys() != b["state"].keys():
        return False
    for index, state in b["state"].items():
        other = a["state"][index]
        if other.keys() != state.keys() or not all(torch.equal(other[k], v) for k, v in state.items()):
            return False
    return True


def same_tensors(a, b: dict) -> bool:
    return isinstance(a, dict) and a.keys() == b.keys() and all(torch.equal(a[k], v) for k, v in b.items())


OPTIMIZER_LOST = N_(
    "the optimizer state is missing or stale: Adam's step count and moment estimates (exp_avg, exp_avg_sq) "
    "would start from zero after resuming, so the run takes other steps. Save optimizer.state_dict()."
)
RNG_LOST = {
    "torch": N_("torch's global RNG (it draws the dropout masks): save torch.get_rng_state()"),
    "loader": N_(
        "the loader's generator (it decides the shuffling order of the next epochs): save "
        "loader.generator.get_state(), or None when loader.generator is None"
    ),
}


def trained_state(seed: int = 0):
    """A tiny run after one epoch: Adam has state, both RNGs have moved on."""
    model, optimizer, loader = tiny_setup(seed, dropout=0.2)
    reference_epoch(model, optimizer, loader)
    return model, optimizer, loader


def expected_checkpoint(model, optimizer, loader, epoch, losses) -> dict:
    return {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "epoch": epoch,
        "losses": list(losses),
        "rng": {
            "torch": torch.get_rng_state(),
            "loader": None if loader.generator is None else loader.generator.get_state(),
        },
    }


def expect_checkpoint(got: dict, expected: dict, *, call: str) -> None:
    keys = {"model", "optimizer", "epoch", "losses", "rng"}
    if got.keys() != keys:
        missing = sorted(keys - got.keys())
        cause = (
            "\n" + _("Likely cause: {cause}").format(cause=_(OPTIMIZER_LOST))
            if "optimizer" in missing
            else ""
        )
        fail(
            _(
                "Called {call}.\nThe checkpoint has the keys {got}; the tests expected {expected} "
                "(missing: {missing})."
            ).format(call=call, got=sorted(got), expected=sorted(keys), missing=missing)
            + cause
        )
    if not same_tensors(got["model"], expected["model"]):
        fail(
            _(
                "Called {call}.\ncheckpoint['model'] is not model.state_dict() at the time of the save."
            ).format(call=call)
        )
    if not same_optimizer_state(got["optimizer"], expected["optimizer"]):
        fail(
            _(
                "Called {call}.\ncheckpoint['optimizer'] is not optimizer.state_dict().\n"
                "Likely cause: {cause}"
            ).format(call=call, cause=_(OPTIMIZER_LOST))
        )
    if got["epoch"] != expected["epoch"] or got["losses"] != expected["losses"]:
        fail(
            _(
                "Called {call}.\nThe checkpoint holds epoch={epoch}, losses={losses}; the tests expected "
                "epoch={expected_epoch}, losses={expected_losses}."
            ).format(
                call=call,
                epoch=show(got["epoch"]),
                losses=show(got["losses"]),
                expected_epoch=expected["epoch"],
                expected_losses=show(expected["losses"]),
            )
        )
    rng = got["rng"] if isinstance(got["rng"], dict) else {}
    for key, what in RNG_LOST.items():
        value, want = rng.get(key), expected["rng"][key]
        same = value is None if want is None else isinstance(value, torch.Tensor) and torch.equal(value, want)
        if not same:
            fail(
                _(
                    "Called {call}.\ncheckpoint['rng'][{key}] is {value}, not the state at the save.\n"
                    "Likely cause: without the RNG states a resumed run draws other random numbers than "
                    "the uninterrupted one. Save {what}."
                ).format(call=call, key=repr(key), value=show(value), what=_(what))
            )


# --- save_training_state --------------------------------------------------------------------------


@exercise("save_training_state")
def test_save_training_state_writes_everything_a_resumed_run_needs(tmp_path):
    model, optimizer, loader = trained_state()
    path = tmp_path / "ckpt.pt"
    call = _("save_training_state(path, model, optimizer, loader, epoch=1, losses=[0.69])")
    expected = expected_checkpoint(model, optimizer, loader, 1, [0.69])
    cap.save_training_state(path, model, optimizer, loader, 1, [0.69])
    expect_checkpoint(load_checkpoint_file(path, call=call), expected, call=call)
    torch.rand(3)  # both RNGs move on before the next save
    loader.generator.manual_seed(11)
    expected = expected_checkpoint(model, optimizer, loader, 2, [0.69, 0.5])
    call = _("save_training_state(path, ..., epoch=2, losses=[0.69, 0.5]) onto the previous checkpoint")
    cap.save_training_state(str(path), model, optimizer, loader, 2, [0.69, 0.5])
    expect_checkpoint(load_checkpoint_file(path, call=call), expected, call=call)
    names = sorted(p.name for p in tmp_path.iterdir())
    if names != ["ckpt.pt"]:
        fail(
            _("Called {call}.\nThe directory holds {names}; rename the temporary file onto the path.").format(
                call=call, names=names
            )
        )


@exercise("save_training_state")
def test_save_training_state_accepts_a_loader_without_a_generator(tmp_path):
    model, optimizer, _loader = trained_state()
    loader = DataLoader(TensorDataset(torch.randn(4, 2), torch.zeros(4, dtype=torch.long)), batch_size=2)
    path = tmp_path / "ckpt.pt"
    call = _("save_training_state(path, model, optimizer, DataLoader(dataset, batch_size=2), 1, [0.7])")
    try:
        cap.save_training_state(path, model, optimizer, loader, 1, [0.7])
    except AttributeError as err:
        error = err
    else:
        error = None
    if error is not None:
        fail(
            _(
                "Called {call}.\nIt raised AttributeError: {first}\nLikely cause: this loader has no "
                "generator (loader.generator is None: it shuffles with the global RNG, or not at all); "
                "store None for it."
            ).format(call=call, first=first_line(error))
        )
    expect_checkpoint(
        load_checkpoint_file(path, call=call),
        expected_checkpoint(model, optimizer, loader, 1, [0.7]),
        call=call,
    )


@exercise("save_training_state")
def test_save_training_state_keeps_the_previous_checkpoint_when_the_save_crashes(tmp_path, monkeypatch):
    path = tmp_path / "ckpt.pt"
    torch.save({"epoch": 1, "w": torch.arange(4.0)}, path)
    old = path.read_bytes()
    model, optimizer, loader = trained_state()
    monkeypatch.setattr(torch, "save", save_half_then_crash(torch.save))
    call = _(
        "save_training_state(path, model, optimizer, loader, 2, [0.7, 0.6]) while torch.save dies halfway"
    )
    try:
        cap.save_training_state(path, model, optimizer, loader, 2, [0.7, 0.6])
    except SimulatedCrash:
        pass
    else:
        fail(
            _(
                "Called {call}.\nIt returned normally: the error was swallowed, so the training loop "
                "believes the checkpoint was saved. Clean up, then re-raise."
            ).format(call=call)
        )
    if not path.exists() or path.read_bytes() != old:
        state = _("is gone") if not path.exists() else _("was overwritten by a half-written file")
        fail(
            _(
                "Called {call}.\nThe previous checkpoint {state}: the run has nothing left to resume "
                "from.\nLikely cause: torch.save wrote straight onto the target path, which truncates the "
                "old file first. Hand the dict to the given save_atomically(state, path): it saves into a "
                "temporary file in the same directory, then os.replace swaps the whole file at once."
            ).format(call=call, state=state)
        )
    leftovers = sorted(p.name for p in tmp_path.iterdir() if p != path)
    if leftovers:
        fail(
            _(
                "Called {call}.\nThe previous checkpoint is intact, but the directory also holds "
                "{leftovers}: a stray temporary file. Save with the given save_atomically(state, path), "
                "which removes it when the save fails."
            ).format(call=call, leftovers=leftovers)
        )


# --- resume_training ------------------------------------------------------------------------------


def fresh_process(seed: int = 999):
    """What a restarted job has: other seeds, a freshly built model, optimizer and loader."""
    torch.manual_seed(seed)
    return tiny_setup(seed, dropout=0.2)


def resume_result(result, *, call: str) -> tuple[int, list[float]]:
    if not (isinstance(result, tuple) and len(result) == 2):
        fail(
            _("Called {call}.\nIt returned {result}; a tuple (epoch, losses) is asked for.").format(
                call=call, result=show(result)
            )
        )
    return result


@exercise("resume_training")
def test_resume_training_restores_model_and_optimizer_and_returns_epoch_and_losses(tmp_path):
    model, optimizer, loader = trained_state()
    path = tmp_path / "ckpt.pt"
    torch.save(expected_checkpoint(model, optimizer, loader, 3, [0.7, 0.5, 0.4]), path)
    fresh_model, fresh_optimizer, fresh_loader = fresh_process()
    call = _("resume_training(path, fresh_model, fresh_optimizer, loader) on a checkpoint of epoch 3")
    epoch, losses = resume_result(
        cap.resume_training(path, fresh_model, fresh_optimizer, fresh_loader), call=call
    )
    if epoch != 3 or type(epoch) is not int:
        cause = ""
        if epoch in (2, 4):
            cause = "\n" + _(
                "Likely cause: off by one. The checkpoint counts completed epochs: return it unchanged, "
                "and the next epoch to train is epoch + 1; anything else repeats or skips an epoch."
            )
        fail(
            _("Called {call}.\nThe epoch is {epoch}; the tests expected 3 (an int).").format(
                call=call, epoch=show(epoch)
            )
            + cause
        )
    if list(losses) != [0.7, 0.5, 0.4]:
        fail(
            _(
                "Called {call}.\nThe losses are {losses}; the tests expected the saved [0.7, 0.5, 0.4]."
            ).format(call=call, losses=show(losses))
        )
    if not same_tensors(fresh_model.state_dict(), model.state_dict()):
        fail(
            _(
                "Called {call}.\nThe model's weights differ from the saved ones: "
                "model.load_state_dict(checkpoint['model'])."
            ).format(call=call)
        )
    if not same_optimizer_state(fresh_optimizer.state_dict(), optimizer.state_dict()):
        fail(
            _(
                "Called {call}.\nThe optimizer differs from the saved one.\nLikely cause: the optimizer "
                "state was not restored: optimizer.load_state_dict(checkpoint['optimizer']); without it "
                "Adam's moments start from zero and the resumed run takes other steps."
            ).format(call=call)
        )


@exercise("resume_training")
def test_resume_training_restores_both_random_number_generators(tmp_path):
    model, optimizer, loader = trained_state()
    path = tmp_path / "ckpt.pt"
    torch.save(expected_checkpoint(model, optimizer, loader, 1, [0.7]), path)
    expected = {"torch": torch.rand(4), "loader": ids_of_tiny(loader)}  # what comes next, at the save
    fresh_model, fresh_optimizer, fresh_loader = fresh_process()
    call = _("resume_training(path, model, optimizer, loader) in a freshly seeded process")
    cap.resume_training(path, fresh_model, fresh_optimizer, fresh_loader)
    got = {"torch": torch.rand(4), "loader": ids_of_tiny(fresh_loader)}
    if not torch.equal(got["torch"], expected["torch"]):
        fail(
            _(
                "Called {call}.\nAfterwards torch.rand(4) gives {got}, but at the save it was about to "
                "give {expected}.\nLikely cause: torch's global RNG (dropout masks) was not restored: "
                "torch.set_rng_state(checkpoint['rng']['torch'])."
            ).format(call=call, got=show(got["torch"]), expected=show(expected["torch"]))
        )
    if got["loader"] != expected["loader"]:
        fail(
            _(
                "Called {call}.\nThe next epoch visits the samples in the order {got}, but the run that "
                "was saved would have used {expected}.\nLikely cause: the loader's generator was not "
                "restored: loader.generator.set_state(checkpoint['rng']['loader'])."
            ).format(call=call, got=got["loader"], expected=expected["loader"])
        )


def ids_of_tiny(loader) -> list[int]:
    """The order of one epoch, as indices into the loader's dataset."""
    return [int(i) for i in loader.sampler]


def save_as_if_on_cuda(obj, path) -> None:
    """torch.save, but every storage is tagged 'cuda:0', as when the tensors lived on a GPU."""
    real = torch.serialization.location_tag
    torch.serialization.location_tag = lambda storage: "cuda:0"
    try:
        torch.save(obj, path)
    finally:
        torch.serialization.location_tag = real


@exercise("resume_training")
def test_resume_training_loads_a_gpu_checkpoint_onto_a_cpu_model(tmp_path):
    model, optimizer, loader = trained_state()
    path = tmp_path / "ckpt.pt"
    save_as_if_on_cuda(expected_checkpoint(model, optimizer, loader, 2, [0.7, 0.6]), path)
    fresh_model, fresh_optimizer, fresh_loader = fresh_process()
    call = _(
        "resume_training(path, model, optimizer, loader) on a checkpoint saved on a GPU, into a CPU model"
    )
    try:
        cap.resume_training(path, fresh_model, fresh_optimizer, fresh_loader)
    except NotImplementedError:
        raise
    except (RuntimeError, TypeError) as err:
        error = err
    else:
        error = None
    if error is not None:
        fail(
            _(
                "Called {call}.\nIt raised {type}: {first}\nLikely cause: load with "
                "torch.load(path, map_location='cpu', weights_only=True). Without map_location the tensors "
                "go back to the GPU they came from; the RNG states must be CPU tensors anyway, and "
                "load_state_dict copies the weights onto the model's own device."
            ).format(call=call, type=type(error).__name__, first=first_line(error))
        )
    if not same_tensors(fresh_model.state_dict(), model.state_dict()):
        fail(_("Called {call}.\nThe model's weights differ from the saved ones.").format(call=call))


# --- fit ------------------------------------------------------------------------------------------


class Interrupted(Exception):
    """Stands in for a killed job: raised by on_epoch_end after a chosen epoch."""


def losses_of(result, epochs: int, *, call: str) -> list[float]:
    if not isinstance(result, list) or not all(isinstance(v, float) for v in result):
        fail(
            _("Called {call}.\nIt returned {result}; a list of floats, one per epoch, is asked for.").format(
                call=call, result=show(result)
            )
        )
    if len(result) != epochs:
        fail(
            _("Called {call}.\nIt returned {count} losses, {result}; the tests expected {epochs}.").format(
                call=call, count=len(result), result=show(result), epochs=epochs
            )
        )
    return result


@exercise("fit")
def test_fit_writes_a_checkpoint_after_every_epoch(tmp_path):
    model, optimizer, loader = tiny_setup(0, dropout=0.2)
    path = tmp_path / "ckpt.pt"
    call = _("fit(model, optimizer, loader, epochs=3, path, on_epoch_end)")
    seen = []

    def on_epoch_end(epoch, loss):
        checkpoint = None
        if path.exists():
            then_read = _("{call}, then read the checkpoint in on_epoch_end").format(call=call)
            checkpoint = load_checkpoint_file(path, call=then_read)
        seen.append((epoch, loss, checkpoint))

    history = losses_of(cap.fit(model, optimizer, loader, 3, path, on_epoch_end), 3, call=call)
    epochs = [epoch for epoch, _loss, _checkpoint in seen]
    if epochs != [1, 2, 3]:
        fail(
            _(
                "Called {call}.\non_epoch_end was called for the epochs {epochs}; the tests expected "
                "[1, 2, 3]."
            ).format(call=call, epochs=epochs)
        )
    for epoch, loss, checkpoint in seen:
        held = (checkpoint or {}).get("epoch"), (checkpoint or {}).get("losses")
        if held != (epoch, history[:epoch]):
            found = (
                _("there was no checkpoint at path yet")
                if checkpoint is None
                else _("the checkpoint held epoch={epoch} and losses={losses}").format(
                    epoch=show(held[0]), losses=show(held[1])
                )
            )
            cause = _(
                "save a checkpoint after every epoch (not only at the end), and call on_epoch_end after "
                "the save, so that an interruption never loses a finished epoch."
            )
            if held[0] == epoch - 1 and held[1] == history[:epoch]:
                cause = _(
                    "off by one: the checkpoint's epoch counts completed epochs, so after epoch {epoch} "
                    "(numbered from 1) store {epoch}; a resumed run continues with the next one."
                ).format(epoch=epoch)
            fail(
                _(
                    "Called {call}.\nWhen on_epoch_end({epoch}, ...) ran, {found}; the tests expected "
                    "epoch={epoch} and losses={losses}.\nLikely cause: {cause}"
                ).format(call=call, epoch=epoch, found=found, losses=show(history[:epoch]), cause=cause)
            )
        if loss != history[epoch - 1]:
            fail(
                _(
                    "Called {call}.\non_epoch_end({epoch}, {loss}) got another loss than the returned "
                    "history's {expected}."
                ).format(call=call, epoch=epoch, loss=loss, expected=history[epoch - 1])
            )
    if not same_tensors(seen[-1][2].get("model"), model.state_dict()):
        fail(
            _("Called {call}.\nThe last checkpoint's weights are not the final weights of the model.").format(
                call=call
            )
        )


def run_interrupted(path, epochs: int, stop: int) -> list[int]:
    """fit until on_epoch_end(stop) raises, as a killed job would; the epochs it finished."""
    model, optimizer, loader = tiny_setup(0, dropout=0.2)
    finished = []

    def on_epoch_end(epoch, loss):
        finished.append(epoch)
        if epoch == stop:
            raise Interrupted(_("job killed after epoch {epoch}").format(epoch=epoch))

    try:
        cap.fit(model, optimizer, loader, epochs, path, on_epoch_end)
    except Interrupted:
        return finished
    fail(
        _(
            "Called {call}, whose on_epoch_end raises after epoch {stop}.\nIt returned normally: let the "
            "exception out (a killed job does not come back)."
        ).format(call=f"fit(..., epochs={epochs}, path, on_epoch_end)", stop=stop)
    )


@exercise("fit")
def test_fit_resumed_after_an_interruption_matches_an_uninterrupted_run_exactly(tmp_path):
    epochs, stop = 4, 2
    model, optimizer, loader = tiny_setup(0, dropout=0.2)
    straight = losses_of(
        cap.fit(model, optimizer, loader, epochs, tmp_path / "straight.pt"),
        epochs,
        call=_("fit(model, optimizer, loader, epochs={epochs}, path)").format(epochs=epochs),
    )
    straight_state = model.state_dict()
    path = tmp_path / "ckpt.pt"
    run_interrupted(path, epochs, stop)
    model, optimizer, loader = fresh_process()
    resumed_epochs = []
    call = _(
        "fit(..., epochs={epochs}, path) interrupted after epoch {stop}, then fit(fresh_model, "
        "fresh_optimizer, fresh_loader, {epochs}, path, on_epoch_end) in a fresh process"
    ).format(epochs=epochs, stop=stop)
    resumed = cap.fit(
        model, optimizer, loader, epochs, path, lambda epoch, loss: resumed_epochs.append(epoch)
    )
    if resumed_epochs != [3, 4]:
        cause = _("it should continue after the last completed epoch")
        if resumed_epochs[:1] == [1]:
            cause = _(
                "it started again at epoch 1, ignoring the checkpoint: if path exists, resume_training "
                "from it first"
            )
        elif resumed_epochs[:1] == [stop]:
            cause = _(
                "it repeated epoch {stop}, which the checkpoint had already finished: the checkpoint's "
                "epoch counts completed epochs, so continue with epoch + 1"
            ).format(stop=stop)
        fail(
            _("Called {call}.\nThe resumed run trained the epochs {epochs}, not [3, 4]: {cause}.").format(
                call=call, epochs=resumed_epochs, cause=cause
            )
        )
    if isinstance(resumed, list) and len(resumed) == epochs - stop:
        fail(
            _(
                "Called {call}.\nIt returned {resumed}, the losses of epochs 3 and 4 only.\nLikely cause: "
                "start from the losses resume_training returns, so that the history covers every epoch."
            ).format(call=call, resumed=show(resumed))
        )
    resumed = losses_of(resumed, epochs, call=call)
    changed = [k for k, v in straight_state.items() if not torch.equal(model.state_dict()[k], v)]
    if resumed != straight or changed:
        fail(
            _(
                "Called {call}.\nThe resumed run ended with the losses {resumed} and the uninterrupted "
                "one with {straight}; the weights {changed} differ.\nA resumed run must repeat the "
                "uninterrupted one bit for bit. Something was not saved or restored exactly: the model, "
                "the optimizer state, torch's RNG (dropout) or the loader's generator (shuffling); the "
                "save_training_state and resume_training tests name which."
            ).format(call=call, resumed=show(resumed), straight=show(straight), changed=changed)
        )


@exercise("fit")
def test_fit_on_a_finished_run_trains_no_further(tmp_path):
    path = tmp_path / "ckpt.pt"
    model, optimizer, loader = tiny_setup(0, dropout=0.2)
    history = cap.fit(model, optimizer, loader, 2, path)
    model, optimizer, loader = fresh_process()
    calls = []
    call = _(
        "fit(model, optimizer, loader, epochs=2, path, on_epoch_end) after a finished 2-epoch run wrote path"
    )
    again = cap.fit(model, optimizer, loader, 2, path, lambda epoch, loss: calls.append(epoch))
    if calls:
        fail(
            _(
                "Called {call}.\nIt trained the epochs {epochs} again.\nLikely cause: resume from the "
                "checkpoint when path exists; its epoch says 2 epochs are done already."
            ).format(call=call, epochs=calls)
        )
    if again != history:
        fail(
            _("Called {call}.\nIt returned {again}; the saved history is {history}.").format(
                call=call, again=show(again), history=show(history)
            )
        )


# --- run_experiment -------------------------------------------------------------------------------

SEED, EPOCHS = 0, 30


class Recorder:
    """Wraps build_model: keeps every model built, and the inputs of their eval-mode forward passes."""

    def __init__(self, build):
        self.build = build
        self.models = []
        self.eval_inputs = []
        self.train_calls = 0

    def __call__(self, *args, **kwargs):
        model = self.build(*args, **kwargs)
        model.register_forward_pre_hook(self.record)
        self.models.append(model)
        return model

    def record(self, module, inputs):
        if module.training:
            self.train_calls += 1
        else:
            self.eval_inputs.append(inputs[0].detach().clone())


def run_recorded(workdir):
    recorder = Recorder(cap.build_model)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(cap, "build_model", recorder)
        accuracy = cap.run_experiment(workdir, SEED, EPOCHS)
    return accuracy, recorder


@pytest.fixture(scope="module")
def experiment(tmp_path_factory):
    """One real training run, shared by the run_experiment tests."""
    workdir = tmp_path_factory.mktemp("experiment")
    accuracy, recorder = run_recorded(workdir)
    return SimpleNamespace(workdir=workdir, accuracy=accuracy, recorder=recorder)


CALL = f"run_experiment(workdir, seed={SEED}, epochs={EPOCHS})"


def only_model(recorder, call: str) -> nn.Module:
    if len(recorder.models) != 1:
        fail(
            _(
                "Called {call}.\nIt built {count} models with build_model; the tests expected exactly "
                "one: build the model with build_model(64), once."
            ).format(call=call, count=len(recorder.models))
        )
    return recorder.models[0]


@exercise("run_experiment")
def test_run_experiment_reaches_95_percent_held_out_accuracy(experiment):
    accuracy = expect_float(experiment.accuracy, call=CALL)
    if accuracy < 0.95:
        fail(
            _(
                "Called {call}.\nThe held-out accuracy is {accuracy}; the tests expected at least 0.95 "
                "within {epochs} epochs (about {steps} Adam steps, under a second on a laptop CPU).\n"
                "Likely causes: settings other than the docstring's (Adam lr=0.01, batch_size=32, "
                "build_model(64)), a model without nonlinearities, or a fit that does not train (it should "
                "call the given train_one_epoch once per epoch; the fit tests say more)."
            ).format(call=CALL, accuracy=f"{accuracy:.3f}", epochs=EPOCHS, steps=EPOCHS * 10)
        )
    checkpoint = load_checkpoint_file(experiment.workdir / "checkpoint.pt", call=CALL)
    if checkpoint.get("epoch") != EPOCHS:
        fail(
            _(
                "Called {call}.\nworkdir / 'checkpoint.pt' holds epoch={epoch}; after the run it should "
                "say {epochs}."
            ).format(call=CALL, epoch=show(checkpoint.get("epoch")), epochs=EPOCHS)
        )


def sorted_rows(points: torch.Tensor) -> torch.Tensor:
    order = torch.argsort(points[:, 1], stable=True)
    points = points[order]
    return points[torch.argsort(points[:, 0], stable=True)]


@exercise("run_experiment")
def test_run_experiment_measures_accuracy_on_the_held_out_points(experiment):
    model = only_model(experiment.recorder, CALL)
    dataset = cap.SpiralDataset(n_per_class=200, noise=0.05, seed=SEED)
    train_loader, test_loader = cap.split_loaders(dataset, 0.25, 32, SEED)
    test_points = torch.cat([x for x, _y in test_loader])
    test_labels = torch.cat([y for _x, y in test_loader])
    train_points = torch.cat([x for x, _y in train_loader])
    if not experiment.recorder.eval_inputs:
        fail(
            _(
                "Called {call}.\nThe model never predicted in eval mode: evaluate it with evaluate_accuracy."
            ).format(call=CALL)
        )
    seen = sorted_rows(torch.cat(experiment.recorder.eval_inputs))
    if seen.shape == train_points.shape and torch.equal(seen, sorted_rows(train_points)):
        fail(
            _(
                "Called {call}.\nThe accuracy was measured on the training set: those are the points the "
                "model learned, so the number says nothing about new data. Evaluate on the test loader."
            ).format(call=CALL)
        )
    if seen.shape != test_points.shape or not torch.equal(seen, sorted_rows(test_points)):
        fail(
            _(
                "Called {call}.\nThe model was evaluated on {seen} points, not on the {held_out} held out "
                "by split_loaders(dataset, 0.25, 32, seed). Use the docstring's settings and evaluate once, "
                "on the test loader."
            ).format(call=CALL, seen=len(seen), held_out=len(test_points))
        )
    with torch.no_grad():
        expected = (model.eval()(test_points).argmax(dim=1) == test_labels).float().mean().item()
    expect_close(expect_float(experiment.accuracy, call=CALL), expected, call=CALL)


@exercise("run_experiment")
def test_run_experiment_called_again_resumes_and_trains_no_further(experiment):
    first = only_model(experiment.recorder, CALL)
    call = _("{call} a second time, on the workdir of a finished run").format(call=CALL)
    accuracy, recorder = run_recorded(experiment.workdir)
    model = only_model(recorder, call)
    if recorder.train_calls:
        fail(
            _(
                "Called {call}.\nThe model ran {count} forward passes in training mode: it trained "
                "again.\nLikely cause: fit must resume from workdir / 'checkpoint.pt', whose epoch says the "
                "run is done."
            ).format(call=call, count=recorder.train_calls)
        )
    if not same_tensors(model.state_dict(), first.state_dict()):
        fail(
            _(
                "Called {call}.\nThe model's weights differ from the finished run's: load them from the "
                "checkpoint."
            ).format(call=call)
        )
    expect_close(expect_float(accuracy, call=call), experiment.accuracy, call=call)
