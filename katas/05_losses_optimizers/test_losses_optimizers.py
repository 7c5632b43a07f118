"""Kata 05: losses and optimizers. Read a test's name for the behaviour, its body for the call.

Every expected value comes from PyTorch itself (nn.MSELoss, F.cross_entropy, torch.optim.SGD,
torch.optim.Adam, torch.optim.lr_scheduler), computed on copies of the same inputs before your
code runs. While your function runs, the library function it replaces is switched off: calling
it fails the test with a message that says so, whatever name reached it (katas/_harness/forbid.py
also watches its code and the aten operators it runs).
"""

import importlib
import math
import warnings
from dataclasses import replace

import losses_optimizers as lo
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st
from torch import nn
from torch.optim import lr_scheduler

from katas._harness.forbid import Library, forbidden
from katas._harness.i18n import N_, _
from katas._harness.testing import expect_close, expect_floats, expect_tensor_close, fail, is_close, show

exercise = pytest.mark.exercise

FLOAT32_EPS = torch.finfo(torch.float32).eps
seeds = st.integers(0, 2**16)
reductions = st.sampled_from(["mean", "sum", "none"])


def flat(params) -> torch.Tensor:
    return torch.cat([p.detach().flatten() for p in params])


def translated(libraries: list[Library]) -> list[Library]:
    """`libraries` with each name read in the learner's language (N_ marks the ones with prose)."""
    return [replace(library, shown=_(library.shown)) for library in libraries]


def seeded(module: nn.Module, gen: torch.Generator) -> nn.Module:
    """`module` with every parameter redrawn from `gen`: the same weights on every run."""
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(0.5 * torch.randn(p.shape, generator=gen))
    return module


# --- mse_loss ------------------------------------------------------------------------------

MSE_LIBRARY = [
    Library(F, "mse_loss", N_("torch.nn.functional.mse_loss (nn.MSELoss calls it too)"), aten=("mse_loss",))
]
MSE_HOW = N_("Build it from tensor operations: (pred - target) ** 2, then the reduction.")
MSE_SUMMED = N_(
    "you summed where the mean is meant: reduction='mean' divides the sum of squares by the "
    "number of elements (.mean())"
)
MSE_AVERAGED = N_("reduction='sum' adds the squared errors up; you averaged them")
MSE_NOT_SQUARED = N_("the differences are not squared: MSE is the mean of (pred - target) ** 2")
MSE_ABSOLUTE = N_("that is the mean absolute error (L1): square the differences instead of abs()")
MSE_ONE_DIM = N_(
    "you averaged over one dimension only: reduction='mean' averages over every element, so call "
    ".mean() without a dim and return a scalar"
)
MSE_REDUCED_NONE = N_("reduction='none' keeps one squared error per element: return them without reducing")


def _reduce(losses: torch.Tensor, reduction: str) -> torch.Tensor:
    return {"mean": losses.mean(), "sum": losses.sum(), "none": losses}[reduction]


def mse_mistakes(pred, target, reduction):
    diff = (pred - target).detach()
    wrong = {
        "mean": [(MSE_SUMMED, (diff**2).sum()), (MSE_ONE_DIM, (diff**2).mean(dim=-1))],
        "sum": [(MSE_AVERAGED, (diff**2).mean())],
        "none": [(MSE_REDUCED_NONE, (diff**2).mean()), (MSE_REDUCED_NONE, (diff**2).sum())],
    }[reduction]
    wrong += [
        (MSE_NOT_SQUARED, _reduce(diff, reduction)),
        (MSE_ABSOLUTE, _reduce(diff.abs(), reduction)),
    ]
    return [(_(cause), value) for cause, value in wrong]


@exercise("mse_loss")
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_mse_loss_of_a_small_example(reduction):
    pred = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    target = torch.tensor([[1.0, 0.0], [0.0, 0.0]])
    expected = nn.MSELoss(reduction=reduction)(pred, target)  # squares 0, 4, 9, 16
    call = f"mse_loss(pred=[[1, 2], [3, 4]], target=[[1, 0], [0, 0]], reduction={reduction!r})"
    with forbidden(call, _(MSE_HOW), *translated(MSE_LIBRARY)):
        got = lo.mse_loss(pred, target, reduction)
    expect_tensor_close(got, expected, call=call, mistakes=mse_mistakes(pred, target, reduction))


@exercise("mse_loss")
@given(
    shape=st.lists(st.integers(1, 4), min_size=1, max_size=3).map(tuple),
    scale=st.sampled_from([0.1, 1.0, 10.0]),
    seed=seeds,
    reduction=reductions,
)
def test_mse_loss_matches_nn_mse_loss_for_every_reduction(shape, scale, seed, reduction):
    gen = torch.Generator().manual_seed(seed)
    pred = scale * torch.randn(shape, generator=gen)
    target = scale * torch.randn(shape, generator=gen)
    expected = nn.MSELoss(reduction=reduction)(pred, target)
    call = _("mse_loss(pred, target, reduction={reduction}) with random tensors of shape {shape}").format(
        reduction=repr(reduction), shape=shape
    )
    with forbidden(call, _(MSE_HOW), *translated(MSE_LIBRARY)):
        got = lo.mse_loss(pred, target, reduction)
    # rtol 1e-5: float32 sums of up to 64 squares, added in another order than PyTorch's kernel.
    expect_tensor_close(
        got, expected, call=call, rtol=1e-5, atol=1e-5, mistakes=mse_mistakes(pred, target, reduction)
    )


@exercise("mse_loss")
@given(shape=st.lists(st.integers(1, 4), min_size=1, max_size=2).map(tuple), seed=seeds, reduction=reductions)
def test_mse_loss_backpropagates_to_the_prediction(shape, seed, reduction):
    gen = torch.Generator().manual_seed(seed)
    pred = torch.randn(shape, generator=gen)
    target = torch.randn(shape, generator=gen)
    mine, theirs = pred.clone().requires_grad_(), pred.clone().requires_grad_()
    expected = nn.MSELoss(reduction=reduction)(theirs, target)
    weights = torch.randn(expected.shape, generator=gen)  # backward through every output element
    (expected * weights).sum().backward()
    call = _(
        "mse_loss(pred, target, reduction={reduction}) on a pred that requires grad, then backward()"
    ).format(reduction=repr(reduction))
    with forbidden(call, _(MSE_HOW), *translated(MSE_LIBRARY)):
        got = lo.mse_loss(mine, target, reduction)
    if not isinstance(got, torch.Tensor) or not got.requires_grad:
        fail(
            _(
                "Called {call}.\nIt returned {got}, which is cut off from the graph, so training could "
                "not backpropagate through it.\nLikely cause: .item(), .detach(), torch.tensor(...) or "
                "NumPy along the way; stay with tensor operations."
            ).format(call=call, got=show(got))
        )
    (got * weights).sum().backward()
    expect_tensor_close(
        mine.grad,
        theirs.grad,
        call=_("{call}, reading {what}").format(call=call, what="pred.grad"),
        rtol=1e-5,
        atol=1e-6,
    )


@exercise("mse_loss")
def test_mse_loss_rejects_an_unknown_reduction():
    call = "mse_loss(pred, target, reduction='average')"
    with pytest.raises(ValueError):
        lo.mse_loss(torch.zeros(3), torch.ones(3), "average")
        fail(
            _(
                "Called {call}.\nIt returned without an error, but an unknown reduction is a ValueError, "
                "as in nn.MSELoss: a typo must not silently pick a reduction."
            ).format(call=call)
        )


# --- cross_entropy -------------------------------------------------------------------------

# On CPU, F.cross_entropy runs aten._log_softmax then aten.nll_loss_forward (nll_loss2d_forward for
# images); every log_softmax spelling runs aten._log_softmax. torch.logsumexp runs aten.logsumexp.
NLL_OPS = ("nll_loss_forward", "nll_loss2d_forward")
CE_LIBRARY = [
    Library(
        F,
        "cross_entropy",
        N_("torch.nn.functional.cross_entropy (nn.CrossEntropyLoss calls it too)"),
        aten=("_log_softmax", *NLL_OPS),
    ),
    Library(F, "nll_loss", "torch.nn.functional.nll_loss", aten=NLL_OPS),
    Library(F, "log_softmax", "torch.nn.functional.log_softmax", aten=("_log_softmax",)),
    Library(torch, "log_softmax", "torch.log_softmax"),
    Library(torch.Tensor, "log_softmax", "Tensor.log_softmax"),
    Library(torch.special, "log_softmax", "torch.special.log_softmax"),
]
CE_HOW = N_(
    "Compute log-softmax yourself with the log-sum-exp trick (torch.logsumexp is allowed), pick "
    "each sample's target entry, negate, reduce."
)
CE_OVERFLOW = N_(
    "exp() overflowed to inf (or underflowed to 0) for large logits: the naive softmax-then-log "
    "overflows. Use log softmax = x - logsumexp(x), computing logsumexp with each row's own max "
    "subtracted before exp() (keepdim=True), or torch.logsumexp(logits, dim=1, keepdim=True)"
)
CE_SIGN = N_("the sign is flipped: the loss is MINUS the log-probability of the target class")
CE_SUMMED = N_("wrong reduction: reduction='mean' averages the per-sample losses; you summed them")
CE_AVERAGED = N_("wrong reduction: reduction='sum' adds the per-sample losses; you averaged them")
CE_REDUCED_NONE = N_("wrong reduction: reduction='none' returns one loss per sample, shape (N,)")
CE_ALL_CLASSES = N_(
    "you averaged -log_softmax over every class; pick only the target's entry, e.g. "
    "log_probs.gather(1, target.unsqueeze(1)) or log_probs[torch.arange(N), target]"
)
CE_WRONG_DIM = N_("the softmax ran over dim=0 (the batch); the classes are dim=1")


def ce_mistakes(logits, target, reduction):
    logits = logits.detach().double()
    per_sample = F.cross_entropy(logits, target, reduction="none")
    wrong = {
        "mean": [(CE_SUMMED, per_sample.sum())],
        "sum": [(CE_AVERAGED, per_sample.mean())],
        "none": [(CE_REDUCED_NONE, per_sample.mean()), (CE_REDUCED_NONE, per_sample.sum())],
    }[reduction]
    wrong.append((CE_SIGN, -_reduce(per_sample, reduction)))
    wrong.append((CE_ALL_CLASSES, _reduce(-F.log_softmax(logits, dim=1).mean(dim=1), reduction)))
    if logits.shape[0] > 1:
        by_batch = -F.log_softmax(logits, dim=0).gather(1, target.unsqueeze(1)).squeeze(1)
        wrong.append((CE_WRONG_DIM, _reduce(by_batch, reduction)))
    return [(_(cause), value) for cause, value in wrong]


def ce_atol(logits, reduction) -> float:
    # Each loss is logsumexp(x) - x[target], a difference of numbers as large as the logits:
    # float32 rounds it to a few ulps of max|x| (2.4e-4 for logits near 1000). A sum adds the rows' errors.
    rows = logits.shape[0] if reduction == "sum" else 1
    return 8 * FLOAT32_EPS * (1 + logits.abs().max().item()) * rows


def expect_finite(got, *, call: str, what: str | None = None) -> None:
    if isinstance(got, torch.Tensor) and not torch.isfinite(got).all():
        fail(
            _("Called {call}.\n{what} {got}, which is not finite.\nLikely cause: {cause}.").format(
                call=call,
                what=_("It returned") if what is None else what,
                got=show(got),
                cause=_(CE_OVERFLOW),
            )
        )


@st.composite
def classification_batches(draw, scales=(1.0, 30.0, 1000.0)):
    n, c = draw(st.integers(1, 4)), draw(st.integers(2, 5))
    scale = draw(st.sampled_from(scales))
    seed = draw(seeds)
    gen = torch.Generator().manual_seed(seed)
    logits = scale * torch.randn(n, c, generator=gen)
    target = torch.randint(c, (n,), generator=gen)
    return logits, target, f"logits = {scale:g} * randn({n}, {c}), target={target.tolist()}"


@exercise("cross_entropy")
@given(batch=classification_batches(), reduction=reductions)
def test_cross_entropy_matches_f_cross_entropy(batch, reduction):
    logits, target, text = batch
    expected = F.cross_entropy(logits, target, reduction=reduction)
    call = _("cross_entropy(logits, target, reduction={reduction}) with {text}").format(
        reduction=repr(reduction), text=text
    )
    with forbidden(call, _(CE_HOW), *translated(CE_LIBRARY)):
        got = lo.cross_entropy(logits, target, reduction)
    expect_finite(got, call=call)
    expect_tensor_close(
        got,
        expected,
        call=call,
        rtol=1.3e-6,
        atol=ce_atol(logits, reduction),
        mistakes=ce_mistakes(logits, target, reduction),
    )


@exercise("cross_entropy")
def test_cross_entropy_stays_finite_for_logits_near_1000():
    # exp(1000) is inf in float32 (and in float64): only the stable formula survives these rows.
    logits = torch.tensor([[1000.0, 0.0, -1000.0], [0.0, 1000.0, 999.0], [-1000.0, -1001.0, -999.0]])
    target = torch.tensor([1, 2, 0])
    expected = F.cross_entropy(logits, target, reduction="none")  # [2000, 1.3133, 1.4076]
    call = f"cross_entropy(logits={logits.tolist()}, target=[1, 2, 0], reduction='none')"
    with forbidden(call, _(CE_HOW), *translated(CE_LIBRARY)):
        got = lo.cross_entropy(logits, target, "none")
    expect_finite(got, call=call)
    expect_tensor_close(
        got,
        expected,
        call=call,
        rtol=1.3e-6,
        atol=ce_atol(logits, "none"),
        mistakes=ce_mistakes(logits, target, "none"),
    )


@exercise("cross_entropy")
@given(batch=classification_batches(scales=(1.0, 1000.0)), reduction=reductions, seed=seeds)
def test_cross_entropy_gradient_matches_f_cross_entropy(batch, reduction, seed):
    logits, target, text = batch
    mine, theirs = logits.clone().requires_grad_(), logits.clone().requires_grad_()
    expected = F.cross_entropy(theirs, target, reduction=reduction)
    weights = torch.randn(expected.shape, generator=torch.Generator().manual_seed(seed))
    (expected * weights).sum().backward()
    call = _("cross_entropy(logits, target, reduction={reduction}) with {text}, then backward()").format(
        reduction=repr(reduction), text=text
    )
    with forbidden(call, _(CE_HOW), *translated(CE_LIBRARY)):
        got = lo.cross_entropy(mine, target, reduction)
    if not isinstance(got, torch.Tensor) or not got.requires_grad:
        fail(
            _(
                "Called {call}.\nIt returned {got}, cut off from the graph: keep to tensor operations (no "
                ".item(), .detach() or torch.tensor(...)) so backward() reaches the logits."
            ).format(call=call, got=show(got))
        )
    (got * weights).sum().backward()
    expect_finite(mine.grad, call=call, what=_("The gradient d loss / d logits is"))
    # The gradient is softmax - one_hot, computed from the same rounded logsumexp: same scale of error.
    expect_tensor_close(
        mine.grad,
        theirs.grad,
        call=_("{call}, reading {what}").format(call=call, what="logits.grad"),
        atol=ce_atol(logits, "mean"),
        rtol=1e-5,
    )


# --- zero_grad -----------------------------------------------------------------------------

# Optimizer.zero_grad opens a record_function region named "Optimizer.zero_grad#SGD.zero_grad".
ZERO_GRAD_LIBRARY = [
    Library(torch.optim.Optimizer, "zero_grad", "Optimizer.zero_grad", regions=("Optimizer.zero_grad#",))
]
ZERO_GRAD_HOW = N_("Loop over the parameters and reset each p.grad yourself.")
SHAPES = [(1,), (2,), (3,), (2, 2), (2, 3)]


@st.composite
def parameters_with_grads(draw):
    shapes = draw(st.lists(st.sampled_from(SHAPES), min_size=1, max_size=3))
    has_grad = draw(st.lists(st.booleans(), min_size=len(shapes), max_size=len(shapes)))
    gen = torch.Generator().manual_seed(draw(seeds))
    params = [nn.Parameter(torch.randn(shape, generator=gen)) for shape in shapes]
    for p, has in zip(params, has_grad, strict=True):
        if has:
            p.grad = torch.randn(p.shape, generator=gen)
    call_text = _("parameters of shapes {shapes}, with a gradient: {has_grad}").format(
        shapes=shapes, has_grad=has_grad
    )
    return params, call_text


@exercise("zero_grad")
@given(case=parameters_with_grads(), default=st.booleans())
def test_zero_grad_sets_every_gradient_to_none_by_default(case, default):
    params, text = case
    args = "params" if default else "params, set_to_none=True"
    call = _("zero_grad({args}) with {params}").format(args=args, params=text)
    with forbidden(call, _(ZERO_GRAD_HOW), *ZERO_GRAD_LIBRARY):
        result = lo.zero_grad(params) if default else lo.zero_grad(params, set_to_none=True)
    if result is not None:
        fail(
            _(
                "Called {call}.\nIt returned {result}; zero_grad changes the parameters and returns None."
            ).format(call=call, result=show(result))
        )
    left = [p.grad for p in params if p.grad is not None]
    if left:
        zeros = all(bool((g == 0).all()) for g in left)
        cause = (
            _(
                "set_to_none=True (the default) asks for p.grad = None, not a tensor of zeros: None frees "
                "the memory, and the next backward() writes a fresh gradient"
            )
            if zeros
            else _(
                "the gradients were not reset: assign p.grad itself (not a local name) for every parameter"
            )
        )
        fail(
            _(
                "Called {call}.\nAfterwards some .grad are {left}, but all should be None.\n"
                "Likely cause: {cause}"
            ).format(call=call, left=show(left), cause=cause)
        )


@exercise("zero_grad")
@given(case=parameters_with_grads())
def test_zero_grad_without_set_to_none_zeroes_each_gradient_in_place(case):
    params, text = case
    before = [p.grad for p in params]
    call = _("zero_grad({args}) with {params}").format(args="params, set_to_none=False", params=text)
    with forbidden(call, _(ZERO_GRAD_HOW), *ZERO_GRAD_LIBRARY):
        lo.zero_grad(params, set_to_none=False)
    for i, (p, old) in enumerate(zip(params, before, strict=True)):
        seen = {"call": call, "i": i, "grad": show(p.grad)}
        if old is None and p.grad is not None:
            fail(
                _(
                    "Called {call}.\nAfterwards parameter {i} has .grad {grad}, but it had no gradient "
                    "before.\nLikely cause: a parameter that had no gradient now has one: skip parameters "
                    "whose .grad is None, as Optimizer.zero_grad does."
                ).format(**seen)
            )
        if old is None:
            continue
        if p.grad is None:
            fail(
                _(
                    "Called {call}.\nAfterwards parameter {i} has .grad {grad}.\nLikely cause: "
                    "set_to_none=False asks for zeros, not None: call p.grad.zero_()."
                ).format(**seen)
            )
        if not bool((p.grad == 0).all()):
            fail(
                _(
                    "Called {call}.\nAfterwards parameter {i} has .grad {grad}, not zeros.\nLikely cause: "
                    "the gradient was not reset; call p.grad.zero_()."
                ).format(**seen)
            )
        if p.grad is not old:
            fail(
                _(
                    "Called {call}.\nAfterwards parameter {i} has .grad {grad}: zeros, but in a new "
                    "tensor.\nLikely cause: zero the existing gradient in place with p.grad.zero_(), as "
                    "Optimizer.zero_grad does: the next backward() then adds into the same memory."
                ).format(**seen)
            )


@exercise("zero_grad")
@given(set_to_none=st.booleans(), seed=seeds)
def test_gradients_accumulate_unless_zero_grad_runs_between_backward_calls(set_to_none, seed):
    gen = torch.Generator().manual_seed(seed)
    model = seeded(nn.Linear(3, 2), gen)
    x1, x2 = torch.randn(4, 3, generator=gen), torch.randn(4, 3, generator=gen)
    reference = nn.Linear(3, 2)
    reference.load_state_dict(model.state_dict())
    reference(x2).pow(2).sum().backward()
    only_second = flat(p.grad for p in reference.parameters())
    model(x1).pow(2).sum().backward()
    first = flat(p.grad for p in model.parameters())
    call = _(
        "zero_grad(model.parameters(), set_to_none={set_to_none}) between the backward() of two batches"
    ).format(set_to_none=set_to_none)
    with forbidden(call, _(ZERO_GRAD_HOW), *ZERO_GRAD_LIBRARY):
        lo.zero_grad(model.parameters(), set_to_none=set_to_none)
    model(x2).pow(2).sum().backward()
    expect_tensor_close(
        flat(p.grad for p in model.parameters()),
        only_second,
        call=_("{call}, reading the gradients after the second backward()").format(call=call),
        mistakes=[
            (
                _(
                    "the two batches' gradients were added: backward() accumulates into .grad, and "
                    "zero_grad did not reset it"
                ),
                first + only_second,
            )
        ],
    )


# --- sgd_step ------------------------------------------------------------------------------

# On CPU torch.optim.SGD steps with the same add_/mul_ as a loop by hand; what tells it apart is the
# record_function region its step() opens ("Optimizer.step#SGD.step"), or a fused kernel.
SGD_LIBRARY = [
    Library(
        torch.optim.SGD,
        "__init__",
        "torch.optim.SGD",
        aten=("_fused_sgd_",),
        regions=("Optimizer.step#SGD.",),
    ),
    Library(importlib.import_module("torch.optim.sgd"), "sgd", "torch.optim.sgd.sgd"),
]
SGD_HOW = N_("Update each parameter with tensor operations under torch.no_grad().")
SGD_ASCENT = N_("the parameters moved uphill: SGD subtracts lr * gradient")
SGD_NO_DECAY = N_("weight decay is missing: the gradient SGD uses is p.grad + weight_decay * p")
SGD_DECAY_AFTER = N_(
    "momentum applied before weight decay: PyTorch adds weight_decay * p to the gradient first, "
    "then updates the momentum buffer with that sum"
)
SGD_NOT_CARRIED = N_(
    "the momentum buffer was not carried between steps: keep it in `state` (state[p] = buf) and "
    "reuse it on the next call"
)
SGD_ZERO_INIT = N_(
    "the momentum buffer started at zeros: on the first step PyTorch sets buf = g itself (a clone), "
    "without dampening; only later steps do buf = momentum * buf + (1 - dampening) * g"
)
SGD_NO_DAMPENING = N_("dampening is missing: later steps add (1 - dampening) * g to momentum * buf")
LR_CACHED = N_(
    "the learning rate of the first call was used on every step: a scheduler changes lr between "
    "steps (optimizer.param_groups[0]['lr']), so use the lr argument of each call and never keep it in "
    "`state`"
)
SGD_ALIASED = N_(
    "the momentum buffer is p.grad itself, so the next backward() overwrites it: store a copy on "
    "the first step, state[p] = g.clone()"
)


def step_lr(lr, k):
    """The learning rate of step k: one number for every step, or one per step as a scheduler sets it."""
    return lr[k] if isinstance(lr, list) else lr


def sgd_reference(initial, grads, **hyper):
    """The parameters after each step of the real torch.optim.SGD, flattened."""
    params = [p.clone().requires_grad_() for p in initial]
    lr = hyper.pop("lr")
    optimizer = torch.optim.SGD(params, lr=step_lr(lr, 0), **hyper)
    trajectory = []
    for k, step_grads in enumerate(grads):
        optimizer.param_groups[0]["lr"] = step_lr(lr, k)  # what a scheduler does between steps
        for p, g in zip(params, step_grads, strict=True):
            p.grad = g.clone()
        optimizer.step()
        trajectory.append(flat(params))
    return trajectory


def sgd_by_hand(initial, grads, lr, momentum=0.0, dampening=0.0, weight_decay=0.0, mistake=None):
    """A plain simulation of SGD that can make one named mistake, for naming a learner's."""
    params = [p.clone() for p in initial]
    buffers = [None] * len(params)
    trajectory = []
    for k, step_grads in enumerate(grads):
        lr_k = step_lr(lr, 0 if mistake == "cached_lr" else k)
        for i, (p, grad) in enumerate(zip(params, step_grads, strict=True)):
            g = grad if mistake in ("no_decay", "decay_after") else grad + weight_decay * p
            if momentum:
                if buffers[i] is None or mistake == "not_carried":
                    buffers[i] = (1 - dampening) * g if mistake == "zero_init" else g.clone()
                elif mistake == "aliased":  # buf is p.grad, refilled with g; buf.mul_(m).add_(g) scales both
                    buffers[i] = momentum * (2 - dampening) * g
                else:
                    keep = 1 if mistake == "no_dampening" else 1 - dampening
                    buffers[i] = momentum * buffers[i] + keep * g
                g = buffers[i]
            if mistake == "decay_after":
                g = g + weight_decay * p
            p.add_(g, alpha=lr_k if mistake == "ascent" else -lr_k)
        trajectory.append(flat(params))
    return trajectory


SGD_MISTAKES = [
    ("ascent", SGD_ASCENT),
    ("no_decay", SGD_NO_DECAY),
    ("decay_after", SGD_DECAY_AFTER),
    ("not_carried", SGD_NOT_CARRIED),
    ("zero_init", SGD_ZERO_INIT),
    ("no_dampening", SGD_NO_DAMPENING),
    ("aliased", SGD_ALIASED),
    ("cached_lr", LR_CACHED),
]


def random_grads(shapes, steps, gen, scale=1.0):
    return [[scale * torch.randn(shape, generator=gen) for shape in shapes] for _step in range(steps)]


NOT_UPDATED = N_(
    "the parameters never changed: `p = p - ...` only rebinds a local name; update the tensor in "
    "place under torch.no_grad() (p.sub_(...), p.add_(..., alpha=-lr) or p -= ...)"
)


STEPS = N_(
    "{name}(params, state, {args}) with the same state dict at every step; the parameters (flattened) "
    "after step {k} of {n}"
)
STEPS_CHANGING_LR = N_(
    "{name}(params, state, {args}) with the same state dict at every step (lr changes at every step, as "
    "a scheduler sets it: {lrs}); the parameters (flattened) after step {k} of {n}"
)


def expect_steps(name, step, params, initial, grads, hyper, reference, by_hand):
    """Run `step(params, state, **hyper)` once per gradient set; check the parameters after each step.

    `reference` runs the real optimizer from `initial`; `by_hand(..., mistake=key)` plays each known
    mistake, so that a wrong trajectory is named at the first step where it goes wrong.
    """
    how, library, mistakes = _(HOW[name]), LIBRARY[name], MISTAKES[name]
    lrs = hyper["lr"]
    expected = reference(initial, grads, **hyper)
    wrong = [(_(cause), by_hand(initial, grads, mistake=key, **hyper)) for key, cause in mistakes]
    wrong.append((_(NOT_UPDATED), [flat(initial)] * len(grads)))
    state = {}
    for k, step_grads in enumerate(grads):
        step_hyper = {**hyper, "lr": step_lr(lrs, k)}
        shown = ", ".join(f"{key}={v!r}" for key, v in step_hyper.items())
        call = _(STEPS_CHANGING_LR if isinstance(lrs, list) else STEPS).format(
            name=name, args=shown, lrs=lrs, k=k + 1, n=len(grads)
        )
        for p, g in zip(params, step_grads, strict=True):
            if p.grad is None:
                p.grad = g.clone()
            else:
                p.grad.copy_(g)  # like backward() after zero_grad(set_to_none=False): the same tensor
        storage = [p.data_ptr() for p in params]
        with forbidden(call, how, *library):
            step(params, state, **step_hyper)
        # 1e-5: a few float32 roundings per step, in another order than PyTorch's fused kernels.
        expect_tensor_close(
            flat(params),
            expected[k],
            call=call,
            rtol=1e-5,
            atol=1e-5,
            mistakes=[(c, w[k]) for c, w in wrong],
            observed=_("The parameters are"),
        )
        for p, g in zip(params, step_grads, strict=True):
            if not torch.equal(p.grad, g):
                fail(
                    _(
                        "Called {call}.\np.grad changed from {before} to {after}.\nLikely cause: weight "
                        "decay was added into p.grad in place (p.grad.add_), or the momentum buffer is "
                        "p.grad itself. Compute g = p.grad + weight_decay * p as a new tensor, store "
                        "g.clone() as the first buffer, and leave the gradient alone."
                    ).format(call=call, before=show(g), after=show(p.grad))
                )
        if [p.data_ptr() for p in params] != storage or not all(
            p.is_leaf and p.requires_grad for p in params
        ):
            fail(
                _(
                    "Called {call}.\nThe values are right, but the parameters are no longer the same "
                    "trainable tensors.\nLikely cause: update them in place under torch.no_grad() "
                    "(p.add_(...) or p -= ...), not by assigning p.data or building new tensors."
                ).format(call=call)
            )


def sgd_steps(params, initial, grads, hyper):
    expect_steps("sgd_step", lo.sgd_step, params, initial, grads, hyper, sgd_reference, sgd_by_hand)


@exercise("sgd_step")
def test_sgd_step_with_the_articles_lr_subtracts_lr_times_the_gradient():
    gen = torch.Generator().manual_seed(0)
    initial = [torch.randn(2, 2, generator=gen), torch.randn(2, generator=gen)]
    params = [nn.Parameter(p.clone()) for p in initial]
    sgd_steps(params, initial, random_grads([(2, 2), (2,)], 1, gen), {"lr": 0.01})


@exercise("sgd_step")
def test_sgd_step_starts_the_momentum_buffer_at_the_first_gradient_and_keeps_it_in_state():
    # A constant gradient of 1: the buffer is 1, then 0.9 * 1 + 0.5 = 1.4, then 0.9 * 1.4 + 0.5 = 1.76.
    initial = [torch.zeros(3)]
    params = [nn.Parameter(torch.zeros(3))]
    grads = [[torch.ones(3)] for _step in range(3)]
    sgd_steps(params, initial, grads, {"lr": 0.1, "momentum": 0.9, "dampening": 0.5})


@st.composite
def sgd_hyperparameters(draw):
    momentum = draw(st.sampled_from([0.0, 0.5, 0.9]))
    return {
        "lr": draw(st.floats(0.01, 1.0).map(lambda v: round(v, 2))),
        "momentum": momentum,
        "dampening": draw(st.sampled_from([0.0, 0.0, 0.3])) if momentum else 0.0,
        "weight_decay": draw(st.sampled_from([0.0, 0.01, 0.1])),
    }


@exercise("sgd_step")
@given(
    shapes=st.lists(st.sampled_from(SHAPES), min_size=1, max_size=2),
    hyper=sgd_hyperparameters(),
    steps=st.integers(1, 4),
    seed=seeds,
)
def test_sgd_step_matches_torch_optim_sgd_over_several_steps(shapes, hyper, steps, seed):
    gen = torch.Generator().manual_seed(seed)
    initial = [torch.randn(shape, generator=gen) for shape in shapes]
    params = [nn.Parameter(p.clone()) for p in initial]
    sgd_steps(params, initial, random_grads(shapes, steps, gen), hyper)


@exercise("sgd_step")
def test_sgd_step_uses_the_lr_of_each_call_as_a_scheduler_changes_it():
    gen = torch.Generator().manual_seed(2)
    initial = [torch.randn(3, generator=gen)]
    params = [nn.Parameter(initial[0].clone())]
    lrs = [0.1, 0.05, 0.025]  # StepLR(step_size=1, gamma=0.5)
    sgd_steps(params, initial, random_grads([(3,)], 3, gen), {"lr": lrs, "momentum": 0.9})


@exercise("sgd_step")
def test_sgd_step_skips_parameters_without_a_gradient():
    frozen = nn.Parameter(torch.tensor([1.0, -2.0]))
    trained = nn.Parameter(torch.tensor([0.5]))
    trained.grad = torch.tensor([2.0])
    call = _(
        "sgd_step([frozen, trained], state, lr=0.1, momentum=0.9, weight_decay=0.1) where frozen.grad is None"
    )
    with forbidden(call, _(SGD_HOW), *SGD_LIBRARY):
        lo.sgd_step([frozen, trained], {}, lr=0.1, momentum=0.9, weight_decay=0.1)
    expect_tensor_close(
        frozen.detach(),
        torch.tensor([1.0, -2.0]),
        call=_("{call}, reading {what}").format(call=call, what="frozen"),
        note=_(
            "A parameter without a gradient (frozen, or unused in the loss) is skipped: no update, not "
            "even weight decay. Check `if p.grad is None: continue`."
        ),
    )
    expect_tensor_close(
        trained.detach(),
        torch.tensor([0.5 - 0.1 * (2.0 + 0.1 * 0.5)]),
        call=_("{call}, reading {what}").format(call=call, what="trained"),
    )


# --- adam_step -----------------------------------------------------------------------------

ADAM_LIBRARY = [
    Library(
        torch.optim.Adam,
        "__init__",
        "torch.optim.Adam",
        aten=("_fused_adam_",),
        regions=("Optimizer.step#Adam.",),
    ),
    Library(
        torch.optim.AdamW,
        "__init__",
        "torch.optim.AdamW",
        aten=("_fused_adamw_",),
        regions=("Optimizer.step#AdamW.",),
    ),
    Library(importlib.import_module("torch.optim.adam"), "adam", "torch.optim.adam.adam"),
]
ADAM_HOW = N_(
    "Update each parameter and its two moment estimates with tensor operations under torch.no_grad()."
)
ADAM_NO_CORRECTION = N_(
    "no bias correction: the moments start at zero, so divide them by (1 - beta1**t) and "
    "(1 - beta2**t), t being the step count (1 on the first step)"
)
ADAM_EPS_INSIDE = N_(
    "eps is inside the square root: the denominator is sqrt(v_hat) + eps, not sqrt(v_hat + eps)"
)
ADAM_NO_DECAY = N_("weight decay is missing: Adam's gradient is p.grad + weight_decay * p")
ADAM_DECOUPLED = N_(
    "that is AdamW's decoupled decay (p -= lr * weight_decay * p); torch.optim.Adam adds "
    "weight_decay * p to the gradient before the moments"
)
ADAM_STEP_RESET = N_(
    "the step count was not carried between calls, so bias correction always used t = 1: keep t "
    "in `state` next to the moments"
)
ADAM_SHARED_STEP = N_(
    "one step count was shared by all parameters and grew once per parameter: keep a count per "
    "parameter (in state[p]), increased once per call"
)
ADAM_NOT_CARRIED = N_("the moments were not carried between steps: keep exp_avg and exp_avg_sq in `state`")


def adam_reference(initial, grads, **hyper):
    params = [p.clone().requires_grad_() for p in initial]
    lr = hyper.pop("lr")
    optimizer = torch.optim.Adam(params, lr=step_lr(lr, 0), **hyper)
    trajectory = []
    for k, step_grads in enumerate(grads):
        optimizer.param_groups[0]["lr"] = step_lr(lr, k)
        for p, g in zip(params, step_grads, strict=True):
            p.grad = g.clone()
        optimizer.step()
        trajectory.append(flat(params))
    return trajectory


def adam_by_hand(initial, grads, lr, betas, eps, weight_decay, mistake=None):
    params = [p.clone() for p in initial]
    beta1, beta2 = betas
    m = [torch.zeros_like(p) for p in params]
    v = [torch.zeros_like(p) for p in params]
    trajectory = []
    shared_t = 0
    for t, step_grads in enumerate(grads, start=1):
        lr_t = step_lr(lr, 0 if mistake == "cached_lr" else t - 1)
        for i, (p, grad) in enumerate(zip(params, step_grads, strict=True)):
            shared_t += 1
            g = grad if mistake in ("no_decay", "decoupled") else grad + weight_decay * p
            if mistake == "not_carried":
                m[i], v[i] = torch.zeros_like(p), torch.zeros_like(p)
            m[i] = beta1 * m[i] + (1 - beta1) * g
            v[i] = beta2 * v[i] + (1 - beta2) * g * g
            tc = (
                1 if mistake in ("step_reset", "not_carried") else shared_t if mistake == "shared_step" else t
            )
            m_hat = m[i] if mistake == "no_correction" else m[i] / (1 - beta1**tc)
            v_hat = v[i] if mistake == "no_correction" else v[i] / (1 - beta2**tc)
            denom = (v_hat + eps).sqrt() if mistake == "eps_inside" else v_hat.sqrt() + eps
            if mistake == "decoupled":
                p.mul_(1 - lr_t * weight_decay)
            p.sub_(lr_t * m_hat / denom)
        trajectory.append(flat(params))
    return trajectory


ADAM_MISTAKES = [
    ("no_correction", ADAM_NO_CORRECTION),
    ("eps_inside", ADAM_EPS_INSIDE),
    ("no_decay", ADAM_NO_DECAY),
    ("decoupled", ADAM_DECOUPLED),
    ("step_reset", ADAM_STEP_RESET),
    ("shared_step", ADAM_SHARED_STEP),
    ("not_carried", ADAM_NOT_CARRIED),
    ("cached_lr", LR_CACHED),
]
HOW = {"sgd_step": SGD_HOW, "adam_step": ADAM_HOW}
LIBRARY = {"sgd_step": SGD_LIBRARY, "adam_step": ADAM_LIBRARY}
MISTAKES = {"sgd_step": SGD_MISTAKES, "adam_step": ADAM_MISTAKES}
ADAM_DEFAULTS = {"lr": 1e-3, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.0}


def adam_steps(params, initial, grads, hyper):
    expect_steps("adam_step", lo.adam_step, params, initial, grads, hyper, adam_reference, adam_by_hand)


@exercise("adam_step")
def test_adam_first_step_moves_each_parameter_by_about_lr():
    # With bias correction, m_hat = g and v_hat = g**2 on step 1: the update is lr * g / (|g| + eps),
    # about lr * sign(g) whatever the gradient's size. Without it, the step is about 3.16 * lr.
    gen = torch.Generator().manual_seed(4)
    initial = [torch.randn(2, 3, generator=gen)]
    grads = [[torch.tensor([[3.0, -0.2, 0.05], [-40.0, 1.0, 0.5]])]]
    adam_steps([nn.Parameter(initial[0].clone())], initial, grads, {**ADAM_DEFAULTS, "lr": 0.01})


@exercise("adam_step")
def test_adam_step_uses_the_lr_of_each_call_as_a_scheduler_changes_it():
    gen = torch.Generator().manual_seed(3)
    initial = [torch.randn(3, generator=gen)]
    lrs = [0.01, 0.005, 0.0025]
    grads = random_grads([(3,)], 3, gen)
    adam_steps([nn.Parameter(initial[0].clone())], initial, grads, {**ADAM_DEFAULTS, "lr": lrs})


@exercise("adam_step")
def test_adam_adds_eps_outside_the_square_root():
    # Gradients of 1e-4 with eps = 1e-4: sqrt(v_hat) + eps = 2e-4, while sqrt(v_hat + eps) is about 1e-2.
    initial = [torch.tensor([1.0, -1.0, 0.5])]
    grads = [[torch.tensor([1e-4, -1e-4, 2e-4])] for _step in range(2)]
    adam_steps([nn.Parameter(initial[0].clone())], initial, grads, {**ADAM_DEFAULTS, "lr": 0.1, "eps": 1e-4})


@st.composite
def adam_hyperparameters(draw):
    return {
        "lr": draw(st.floats(1e-3, 0.1).map(lambda v: round(v, 3))),
        "betas": (draw(st.sampled_from([0.0, 0.5, 0.9])), draw(st.sampled_from([0.9, 0.99, 0.999]))),
        "eps": draw(st.sampled_from([1e-8, 1e-3, 0.1])),
        "weight_decay": draw(st.sampled_from([0.0, 0.01, 0.1])),
    }


@exercise("adam_step")
@given(
    shapes=st.lists(st.sampled_from(SHAPES), min_size=1, max_size=2),
    hyper=adam_hyperparameters(),
    steps=st.integers(1, 4),
    grad_scale=st.sampled_from([1e-3, 1.0, 10.0]),
    seed=seeds,
)
def test_adam_step_matches_torch_optim_adam_over_several_steps(shapes, hyper, steps, grad_scale, seed):
    gen = torch.Generator().manual_seed(seed)
    initial = [torch.randn(shape, generator=gen) for shape in shapes]
    params = [nn.Parameter(p.clone()) for p in initial]
    adam_steps(params, initial, random_grads(shapes, steps, gen, grad_scale), hyper)


# --- warmup_cosine_lrs ---------------------------------------------------------------------

SCHEDULER_LIBRARY = [
    Library(lr_scheduler.LRScheduler, "__init__", N_("a torch.optim.lr_scheduler scheduler"))
]
SCHEDULE_HOW = N_("Compute each epoch's rate with arithmetic and math.cos.")
WARMUP_OFF_BY_ONE = N_(
    "the warmup is off by one: epoch 0 uses base_lr * start_factor, and the rate reaches base_lr "
    "at epoch warmup_epochs, the first cosine epoch"
)
WARMUP_NO_START = N_("start_factor is ignored: the warmup rises from base_lr * start_factor, not from 0")
COSINE_T_MAX = N_(
    "the cosine runs over the wrong number of epochs (T_max): it starts when warmup ends and spans "
    "the remaining total_epochs - warmup_epochs epochs"
)
COSINE_FROM_ZERO = N_(
    "the cosine is counted from epoch 0; count it from the end of the warmup (epoch - warmup_epochs)"
)
COSINE_NO_MIN = N_("min_lr is ignored: the cosine goes from base_lr down towards min_lr, not towards 0")


def scheduler_reference(base_lr, total_epochs, warmup_epochs, start_factor, min_lr):
    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=base_lr)
    cosine_epochs = total_epochs - warmup_epochs
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # SequentialLR's internal step(0) warns about the epoch argument
        if warmup_epochs:
            warmup = lr_scheduler.LinearLR(optimizer, start_factor=start_factor, total_iters=warmup_epochs)
            cosine = lr_scheduler.CosineAnnealingLR(optimizer, T_max=cosine_epochs, eta_min=min_lr)
            scheduler = lr_scheduler.SequentialLR(optimizer, [warmup, cosine], milestones=[warmup_epochs])
        else:
            scheduler = lr_scheduler.CosineAnnealingLR(optimizer, T_max=cosine_epochs, eta_min=min_lr)
        lrs = []
        for _epoch in range(total_epochs):
            lrs.append(optimizer.param_groups[0]["lr"])
            optimizer.step()
            scheduler.step()
    return lrs


def schedule_variant(base_lr, total_epochs, warmup_epochs, start_factor, min_lr, mistake):
    lrs = []
    for epoch in range(total_epochs):
        if epoch < warmup_epochs:
            done = (epoch + 1 if mistake == "off_by_one" else epoch) / warmup_epochs
            start = 0.0 if mistake == "no_start" else start_factor
            lrs.append(base_lr * (start + (1 - start) * done))
            continue
        since = epoch if mistake == "from_zero" else epoch - warmup_epochs
        span = total_epochs if mistake == "t_max" else total_epochs - warmup_epochs
        low = 0.0 if mistake == "no_min" else min_lr
        lrs.append(low + (base_lr - low) * (1 + math.cos(math.pi * since / span)) / 2)
    return lrs


def expect_schedule(base_lr, total_epochs, warmup_epochs, start_factor, min_lr):
    args = (base_lr, total_epochs, warmup_epochs, start_factor, min_lr)
    expected = scheduler_reference(*args)
    call = (
        f"warmup_cosine_lrs(base_lr={base_lr:g}, total_epochs={total_epochs}, warmup_epochs={warmup_epochs}, "
        f"start_factor={start_factor:g}, min_lr={min_lr:g})"
    )
    with forbidden(call, _(SCHEDULE_HOW), *translated(SCHEDULER_LIBRARY)):
        got = expect_floats(lo.warmup_cosine_lrs(*args), total_epochs, call=call)
    causes = [
        ("off_by_one", WARMUP_OFF_BY_ONE),
        ("no_start", WARMUP_NO_START),
        ("t_max", COSINE_T_MAX),
        ("from_zero", COSINE_FROM_ZERO),
        ("no_min", COSINE_NO_MIN),
    ]
    # rtol 1e-6: the schedulers update the rate recursively, which drifts from the closed form by ~1e-15.
    expect_close(
        got,
        expected,
        call=call,
        rtol=1e-6,
        atol=1e-9,
        mistakes=[(_(cause), schedule_variant(*args, key)) for key, cause in causes],
    )


@exercise("warmup_cosine_lrs")
def test_warmup_cosine_lrs_warms_up_linearly_then_follows_a_cosine():
    expect_schedule(base_lr=1.0, total_epochs=8, warmup_epochs=3, start_factor=0.1, min_lr=0.01)


@exercise("warmup_cosine_lrs")
@given(
    base_lr=st.floats(1e-4, 1.0).map(lambda v: round(v, 4)),
    warmup_epochs=st.integers(0, 4),
    cosine_epochs=st.integers(1, 8),
    start_factor=st.floats(0.01, 0.9).map(lambda v: round(v, 2)),
    min_fraction=st.sampled_from([0.0, 0.01, 0.1]),
)
def test_warmup_cosine_lrs_matches_linear_lr_then_cosine_annealing_lr(
    base_lr, warmup_epochs, cosine_epochs, start_factor, min_fraction
):
    expect_schedule(
        base_lr, warmup_epochs + cosine_epochs, warmup_epochs, start_factor, base_lr * min_fraction
    )


# --- train_with_schedule -------------------------------------------------------------------

SCHEDULE_PER_BATCH = N_(
    "scheduler.step() ran after every batch: an epoch-based schedule steps once per epoch, after "
    "the batch loop"
)
SCHEDULE_BEFORE = N_(
    "scheduler.step() ran before optimizer.step(): the first epoch then never uses the initial "
    "rate (PyTorch warns about it). Step the optimizer first, the scheduler at the end of the epoch"
)
SCHEDULE_NO_ZERO = N_(
    "gradients accumulated across batches: call optimizer.zero_grad() before each backward()"
)
SCHEDULE_READ_LATE = N_(
    "the returned rates are one epoch late: read optimizer.param_groups[0]['lr'] at the start of "
    "the epoch, before scheduler.step() changes it"
)

SCHEDULERS = {
    "StepLR(step_size=1, gamma=0.5)": lambda opt: lr_scheduler.StepLR(opt, step_size=1, gamma=0.5),
    "StepLR(step_size=2, gamma=0.1)": lambda opt: lr_scheduler.StepLR(opt, step_size=2, gamma=0.1),
    "MultiStepLR(milestones=[1, 3], gamma=0.3)": lambda opt: lr_scheduler.MultiStepLR(opt, [1, 3], gamma=0.3),
    "ExponentialLR(gamma=0.8)": lambda opt: lr_scheduler.ExponentialLR(opt, gamma=0.8),
    "LinearLR(start_factor=0.25, total_iters=3)": lambda opt: lr_scheduler.LinearLR(opt, 0.25, total_iters=3),
    "CosineAnnealingLR(T_max=4)": lambda opt: lr_scheduler.CosineAnnealingLR(opt, T_max=4),
}


def simple_net() -> nn.Module:
    """The article's SimpleNet: Linear(2, 4), ReLU, Linear(4, 1)."""
    return nn.Sequential(nn.Linear(2, 4), nn.ReLU(), nn.Linear(4, 1))


def training_setup(seed, n_batches, schedule, lr, momentum):
    """A fresh, identical (model, batches, optimizer, scheduler) for every call with the same arguments."""
    gen = torch.Generator().manual_seed(seed)
    model = seeded(simple_net(), gen)
    batches = []
    for _batch in range(n_batches):
        inputs = torch.randn(4, 2, generator=gen)
        batches.append((inputs, inputs[:, :1] - 2 * inputs[:, 1:]))
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum)
    return model, batches, optimizer, SCHEDULERS[schedule](optimizer)


def record_step_lrs(optimizer) -> list[float]:
    seen = []
    optimizer.register_step_pre_hook(lambda opt, args, kwargs: seen.append(opt.param_groups[0]["lr"]))
    return seen


def training_variant(setup, epochs, mistake):
    model, batches, optimizer, scheduler = setup()
    seen = record_step_lrs(optimizer)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # stepping the scheduler first warns
        for _epoch in range(epochs):
            if mistake == "before":
                scheduler.step()
            for inputs, targets in batches:
                if mistake != "no_zero_grad":
                    optimizer.zero_grad()
                F.mse_loss(model(inputs), targets).backward()
                optimizer.step()
                if mistake == "per_batch":
                    scheduler.step()
            if mistake in (None, "no_zero_grad"):
                scheduler.step()
    return seen, flat(model.parameters())


def expect_training(seed, n_batches, schedule, lr, momentum, epochs):
    def setup():
        return training_setup(seed, n_batches, schedule, lr, momentum)

    expected_seen, expected_params = training_variant(setup, epochs, None)
    expected_lrs = expected_seen[::n_batches]
    model, batches, optimizer, scheduler = setup()
    seen = record_step_lrs(optimizer)
    call = _(
        "train_with_schedule(SimpleNet, nn.MSELoss(), {n_batches} batches, epochs={epochs}, {optimizer}, "
        "{schedule})"
    ).format(
        n_batches=n_batches,
        epochs=epochs,
        optimizer=f"SGD(lr={lr:g}, momentum={momentum:g})",
        schedule=schedule,
    )
    returned = lo.train_with_schedule(model, nn.MSELoss(), batches, epochs, optimizer, scheduler)
    if not is_close(seen, expected_seen, rtol=1e-6, atol=1e-12):
        causes = {"per_batch": SCHEDULE_PER_BATCH, "before": SCHEDULE_BEFORE}
        wrong = {key: training_variant(setup, epochs, key)[0] for key in causes}
        cause = next(
            (causes[k] for k, lrs in wrong.items() if is_close(seen, lrs, rtol=1e-6, atol=1e-12)), None
        )
        message = _(
            "Called {call}.\noptimizer.step() ran {count} times with learning rates {seen},\nbut {epochs} "
            "epochs of {n_batches} batches should step with {expected}."
        ).format(
            call=call,
            count=len(seen),
            seen=show(seen),
            epochs=epochs,
            n_batches=n_batches,
            expected=show(expected_seen),
        )
        if cause:
            message += "\n" + _("Likely cause: {cause}.").format(cause=_(cause))
        fail(message)
    expect_floats(returned, epochs, call=call)
    expect_close(
        returned,
        expected_lrs,
        call=_("{call}, the learning rate of each epoch").format(call=call),
        rtol=1e-6,
        atol=1e-12,
        mistakes=[(_(SCHEDULE_READ_LATE), expected_lrs[1:] + [optimizer.param_groups[0]["lr"]])],
    )
    trained = flat(model.parameters())
    mistakes = []
    if not is_close(trained, expected_params, rtol=1e-5, atol=1e-6):  # play the mistake only when needed
        mistakes.append((_(SCHEDULE_NO_ZERO), training_variant(setup, epochs, "no_zero_grad")[1]))
    expect_tensor_close(
        trained,
        expected_params,
        call=_("{call}, reading the trained parameters").format(call=call),
        rtol=1e-5,
        atol=1e-6,
        mistakes=mistakes,
    )


@exercise("train_with_schedule")
def test_train_with_schedule_runs_the_articles_loop_with_a_decaying_rate():
    # The article's setup, with the input and target it never defines: SimpleNet, SGD(lr=0.01),
    # nn.MSELoss(); StepLR halves the rate every epoch.
    expect_training(
        seed=0, n_batches=2, schedule="StepLR(step_size=1, gamma=0.5)", lr=0.01, momentum=0.0, epochs=3
    )


@exercise("train_with_schedule")
def test_train_with_schedule_steps_the_scheduler_once_per_epoch_after_the_optimizer():
    model, batches, optimizer, scheduler = training_setup(1, 3, "ExponentialLR(gamma=0.8)", 0.1, 0.0)
    events = []
    optimizer.register_step_pre_hook(lambda *args: events.append("optimizer.step"))
    scheduler_step = scheduler.step

    def spy(*args, **kwargs):
        events.append("scheduler.step")
        return scheduler_step(*args, **kwargs)

    scheduler.step = spy
    lo.train_with_schedule(model, nn.MSELoss(), batches, 2, optimizer, scheduler)
    expected = (["optimizer.step"] * 3 + ["scheduler.step"]) * 2
    if events != expected:
        cause = ""
        if events.count("scheduler.step") == events.count("optimizer.step") > 0:
            cause = SCHEDULE_PER_BATCH
        elif events[:1] == ["scheduler.step"]:
            cause = SCHEDULE_BEFORE
        message = _(
            "Called {call}.\nThe calls ran in the order {events},\nbut the tests expected {expected}."
        ).format(
            call=_("train_with_schedule(model, loss_fn, 3 batches, epochs=2, optimizer, scheduler)"),
            events=events,
            expected=expected,
        )
        if cause:
            message += "\n" + _("Likely cause: {cause}.").format(cause=_(cause))
        fail(message)


@exercise("train_with_schedule")
@given(
    seed=seeds,
    n_batches=st.integers(1, 3),
    schedule=st.sampled_from(sorted(SCHEDULERS)),
    lr=st.sampled_from([0.01, 0.05, 0.1]),
    momentum=st.sampled_from([0.0, 0.9]),
    epochs=st.integers(1, 4),
)
def test_train_with_schedule_follows_any_epoch_scheduler(seed, n_batches, schedule, lr, momentum, epochs):
    expect_training(seed, n_batches, schedule, lr, momentum, epochs)
