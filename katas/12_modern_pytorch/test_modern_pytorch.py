"""Kata 12: modern PyTorch. Read a test's name for the behaviour, its body for the call.

The references are the plain autograd of kata 01 (backward() and its vector-Jacobian
products), run sample by sample, so a failure compares your answer with the slow but
obvious way of computing it.
"""

import logging
from collections import OrderedDict
from contextlib import contextmanager

import modern_pytorch as mp
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn
from torch.nn import functional as F

from katas._harness.i18n import _
from katas._harness.strategies import points, smooth_functions
from katas._harness.testing import expect_close, expect_float, expect_tensor_close, fail, reference, show

exercise = pytest.mark.exercise


def article_quadratic(x):
    return x**2 + 3 * x + 2


def article_cubic(a):
    return a**3 + 4 * a**2 - 5 * a + 2


def reference_grad(f, x: float, dtype: torch.dtype = torch.float64) -> float:
    t = torch.tensor(x, dtype=dtype, requires_grad=True)
    (g,) = torch.autograd.grad(f(t), t)
    return g.item()


def transformed(compute, call: str, advice: str):
    """compute(), or a failure naming `advice` when a torch.func transform refuses the code inside."""
    try:
        return compute()
    except NotImplementedError:
        raise
    except RuntimeError as err:  # NotImplementedError is one too
        error = str(err).strip().splitlines()[0]
    fail(
        _("Called {call}.\nIt raised RuntimeError: {error}\n{advice}").format(
            call=call, error=error, advice=advice
        )
    )


# --- derivative --------------------------------------------------------------------------------

NOT_COMPOSABLE = _(
    "Likely cause: your derivative calls requires_grad_() or torch.autograd.grad inside, which "
    "torch.func transforms cannot see through. Return torch.func.grad(f): a plain function that "
    "vmap, grad and jacrev can transform again."
)


def derivative_at(f, x: torch.Tensor, call: str):
    d = mp.derivative(f)
    if not callable(d):
        fail(
            _(
                "Called {call}.\nmp.derivative(f) returned {got}, not a function: return the function "
                "x -> f'(x) itself (torch.func.grad(f)), not a value."
            ).format(call=call, got=show(d))
        )
    return d(x)


@exercise("derivative")
def test_derivative_of_the_article_examples():
    for f, text, x, expected, value in (
        (article_quadratic, "lambda x: x**2 + 3*x + 2", 1.0, 5.0, 6.0),
        (article_cubic, "lambda a: a**3 + 4*a**2 - 5*a + 2", 2.0, 23.0, 16.0),
    ):
        call = f"derivative({text})(torch.tensor({x}))"
        got = derivative_at(f, torch.tensor(x), call)
        expect_tensor_close(
            got,
            torch.tensor(expected),
            call=call,
            mistakes=[(_("you returned f(x), the value, not the derivative"), value)],
        )


@exercise("derivative")
def test_derivative_of_a_derivative_is_the_second_derivative():
    call = "derivative(derivative(lambda a: a**3 + 4*a**2 - 5*a + 2))(torch.tensor(2.0))"
    got = transformed(
        lambda: derivative_at(mp.derivative(article_cubic), torch.tensor(2.0), call), call, NOT_COMPOSABLE
    )
    expect_tensor_close(
        got,
        torch.tensor(20.0),
        call=call,
        mistakes=[(_("the outer derivative returned the first derivative, 23, again"), 23.0)],
    )


@exercise("derivative")
@settings(max_examples=15)
@given(f=smooth_functions(), x=points)
def test_derivative_matches_autograd_for_random_functions(f, x):
    call = _("derivative(f)(torch.tensor({x})) with {f}").format(x=x, f=repr(f))
    got = derivative_at(f, torch.tensor(x), call)
    (expected,), atol = reference(lambda dtype: [reference_grad(f, x, dtype)])
    expect_close(got, expected, call=call, rtol=1e-4, atol=atol)


@exercise("derivative")
@settings(max_examples=10)
@given(f=smooth_functions(), xs=st.lists(points, min_size=1, max_size=5))
def test_derivative_works_under_vmap(f, xs):
    call = _("torch.func.vmap(derivative(f))(torch.tensor({xs})) with {f}").format(xs=xs, f=repr(f))
    got = transformed(lambda: torch.func.vmap(mp.derivative(f))(torch.tensor(xs)), call, NOT_COMPOSABLE)
    expected, atol = reference(lambda dtype: [reference_grad(f, x, dtype) for x in xs])
    expect_close(got, expected, call=call, rtol=1e-4, atol=atol)


# --- map_rows ------------------------------------------------------------------------------------


def unit_row(v):
    return v / v.norm()


def centred_row(v):
    return v - v.mean()


def row_dot_max(v):
    return torch.dot(v, torch.arange(v.shape[0], dtype=v.dtype)) * v.max()


ROW_FUNCTIONS = {
    "unit_row(v) = v / v.norm()": unit_row,
    "centred_row(v) = v - v.mean()": centred_row,
    "row_dot_max(v) = torch.dot(v, arange) * v.max()": row_dot_max,
}


def whole_batch(f, batch):
    try:
        return f(batch)
    except RuntimeError:
        return None


@exercise("map_rows")
@settings(max_examples=15)
@given(
    name=st.sampled_from(sorted(ROW_FUNCTIONS)),
    rows=st.integers(1, 5),
    width=st.integers(2, 4),
    seed=st.integers(0, 2**16),
)
def test_map_rows_matches_a_loop_over_rows(name, rows, width, seed):
    f = ROW_FUNCTIONS[name]
    batch = torch.randn(rows, width, generator=torch.Generator().manual_seed(seed))
    call = _("map_rows({function}, batch of shape {shape}) with {name}").format(
        function=name.split("(")[0], shape=tuple(batch.shape), name=name
    )
    got = mp.map_rows(f, batch)
    expected = torch.stack([f(row) for row in batch])
    mistakes = []
    wrong = whole_batch(f, batch)
    if wrong is not None and wrong.shape == expected.shape:
        mistakes.append(
            (
                _(
                    "you called f on the whole batch: f is written for one row (a norm, a mean or a max "
                    "then covers every row at once); torch.func.vmap(f)(batch) maps it over the rows"
                ),
                wrong,
            )
        )
    expect_tensor_close(got, expected, call=call, rtol=1e-5, atol=1e-6, mistakes=mistakes)


@exercise("map_rows")
def test_map_rows_calls_f_once_for_the_whole_batch():
    calls = []

    def spy(v):
        calls.append(tuple(v.shape))
        return unit_row(v)

    batch = torch.randn(4, 3)
    call = _("map_rows(unit_row, batch of shape (4, 3))")
    got = mp.map_rows(spy, batch)
    if len(calls) != 1:
        fail(
            _(
                "Called {call}.\nIt called f {count} time(s); vmap calls it exactly once, with a "
                "batched tensor that looks like one row to f.\nLikely cause: a Python loop over the "
                "rows. torch.func.vmap(f)(batch) runs f once and stays fast for large batches."
            ).format(call=call, count=len(calls))
        )
    expect_tensor_close(got, torch.stack([unit_row(row) for row in batch]), call=call)


# --- per_sample_grads ----------------------------------------------------------------------------


def small_model(seed: int, classes: int) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, classes))


def loop_of_backward_calls(model, loss_fn, x, y) -> dict[str, torch.Tensor]:
    """Kata 01's way: one backward() per sample, reading .grad after each."""
    grads = {name: [] for name in dict(model.named_parameters())}
    for xi, yi in zip(x, y, strict=True):
        model.zero_grad(set_to_none=True)
        loss_fn(model(xi.unsqueeze(0)), yi.unsqueeze(0)).backward()
        for name, p in model.named_parameters():
            grads[name].append(p.grad.clone())
    model.zero_grad(set_to_none=True)
    return {name: torch.stack(g) for name, g in grads.items()}


def batch_gradient(model, loss_fn, x, y) -> dict[str, torch.Tensor]:
    names = list(dict(model.named_parameters()))
    grads = torch.autograd.grad(loss_fn(model(x), y), list(model.parameters()))
    return dict(zip(names, grads, strict=True))


def expect_parameter_dict(got, model, call: str) -> None:
    names = list(dict(model.named_parameters()))
    if not isinstance(got, dict) or sorted(got) != sorted(names):
        shown = sorted(got) if isinstance(got, dict) else show(got)
        fail(
            _(
                "Called {call}.\nIt returned {got}; a dict keyed by the names of "
                "model.named_parameters(), {names}, is asked for."
            ).format(call=call, got=shown, names=names)
        )


@exercise("per_sample_grads")
@settings(max_examples=8)
@given(
    batch=st.integers(2, 5),
    seed=st.integers(0, 2**16),
    loss=st.sampled_from(["mse_loss", "cross_entropy"]),
)
def test_per_sample_grads_match_a_loop_of_backward_calls(batch, seed, loss):
    classes = 3
    model = small_model(seed, classes)
    x = torch.randn(batch, 3)
    if loss == "mse_loss":
        loss_fn, y = F.mse_loss, torch.randn(batch, classes)
    else:
        loss_fn, y = F.cross_entropy, torch.randint(0, classes, (batch,))
    call = _(
        "per_sample_grads(model, F.{loss}, x, y) with a 3 -> 4 -> {classes} MLP and a batch of {batch}"
    ).format(loss=loss, classes=classes, batch=batch)
    got = mp.per_sample_grads(model, loss_fn, x, y)
    expect_parameter_dict(got, model, call)
    expected = loop_of_backward_calls(model, loss_fn, x, y)
    mean = batch_gradient(model, loss_fn, x, y)
    for name, value in expected.items():
        shared = mean[name].expand_as(value)
        expect_tensor_close(
            got[name],
            value,
            call=_("{call}, entry {name}").format(call=call, name=repr(name)),
            atol=1e-5,
            rtol=1e-4,
            mistakes=[
                (
                    _(
                        "every sample got the gradient of the batch's mean loss: the loss must be "
                        "computed and differentiated per sample (torch.func.grad inside torch.func.vmap)"
                    ),
                    shared,
                ),
                (
                    _(
                        "every sample got the batch's gradient scaled by the batch size: differentiate "
                        "each sample's own loss, not the batch's"
                    ),
                    shared * batch,
                ),
            ],
        )


@exercise("per_sample_grads")
def test_per_sample_grads_run_the_model_once_and_leave_grad_alone():
    model = small_model(0, 2)
    forwards = []
    model.register_forward_pre_hook(lambda module, args: forwards.append(args[0].shape))
    x, y = torch.randn(4, 3), torch.randn(4, 2)
    call = _("per_sample_grads(model, F.mse_loss, x, y) with a batch of 4")
    got = mp.per_sample_grads(model, F.mse_loss, x, y)
    if len(forwards) != 1:
        fail(
            _(
                "Called {call}.\nIt ran the model {count} time(s); expected once.\nLikely cause: a "
                "loop over the samples. torch.func.vmap(torch.func.grad(loss_of_one_sample)) with "
                "torch.func.functional_call runs the model once for the whole batch."
            ).format(call=call, count=len(forwards))
        )
    filled = [name for name, p in model.named_parameters() if p.grad is not None]
    if filled:
        fail(
            _(
                "Called {call}.\nAfterwards .grad is set on {names}; torch.func.grad returns gradients "
                "and never writes .grad.\nLikely cause: backward() calls; compute the gradients "
                "functionally instead."
            ).format(call=call, names=filled)
        )
    expect_parameter_dict(got, model, call)
    for name, value in loop_of_backward_calls(model, F.mse_loss, x, y).items():
        expect_tensor_close(
            got[name],
            value,
            call=_("{call}, entry {name}").format(call=call, name=repr(name)),
            atol=1e-5,
            rtol=1e-4,
        )


# --- jacobian ------------------------------------------------------------------------------------


@st.composite
def vector_functions(draw):
    """f(x) = tanh(A x) * (B x) with random A, B: a non-square, non-symmetric Jacobian."""
    n, m = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    seed = draw(st.integers(0, 2**16))
    gen = torch.Generator().manual_seed(seed)
    a, b = torch.randn(m, n, generator=gen), torch.randn(m, n, generator=gen)
    x = torch.randn(n, generator=gen)

    def f(t):
        return torch.tanh(a.to(t.dtype) @ t) * (b.to(t.dtype) @ t)

    return f, x, _("tanh(A x) * (B x), A and B {m}x{n}, seed {seed}").format(m=m, n=n, seed=seed)


def jacobian_by_vjps(f, x: torch.Tensor) -> torch.Tensor:
    """Kata 01's vector-Jacobian product with each unit vector e_i gives row i of J."""
    rows = []
    x = x.detach().requires_grad_()
    y = f(x)
    for i in range(y.numel()):
        (row,) = torch.autograd.grad(y, x, grad_outputs=torch.eye(y.numel())[i], retain_graph=True)
        rows.append(row)
    return torch.stack(rows)


@exercise("jacobian")
def test_jacobian_of_elementwise_square_is_diagonal():
    x = torch.tensor([1.0, 2.0, 3.0])
    call = "jacobian(lambda t: t**2, torch.tensor([1., 2., 3.]))"
    got = mp.jacobian(lambda t: t**2, x)
    expect_tensor_close(
        got,
        torch.diag(torch.tensor([2.0, 4.0, 6.0])),
        call=call,
        mistakes=[
            (
                _("you returned the gradient of y.sum(), one number per input, not the whole Jacobian"),
                torch.tensor([2.0, 4.0, 6.0]),
            )
        ],
    )


@exercise("jacobian")
@given(case=vector_functions())
def test_jacobian_rows_are_vector_jacobian_products(case):
    f, x, text = case
    call = _("jacobian(f, x) with f(x) = {f}").format(f=text)
    got = mp.jacobian(f, x)
    expected = jacobian_by_vjps(f, x)
    mistakes = []
    if expected.shape[0] == expected.shape[1]:
        mistakes.append(
            (_("you returned the transpose: row i of the Jacobian is the gradient of output i"), expected.T)
        )
    if isinstance(got, torch.Tensor) and got.shape != expected.shape:
        fail(
            _(
                "Called {call}.\nIt returned shape {got}; the Jacobian of f: R^{n} -> R^{m} has shape "
                "{expected}, one row per output (torch.func.jacrev(f)(x)).\nLikely cause: {cause}"
            ).format(
                call=call,
                got=tuple(got.shape),
                n=x.numel(),
                m=expected.shape[0],
                expected=tuple(expected.shape),
                cause=_("rows and columns swapped, the transpose")
                if got.shape == expected.T.shape
                else _("only part of the Jacobian was computed"),
            )
        )
    expect_tensor_close(got, expected, call=call, rtol=1e-4, atol=1e-5, mistakes=mistakes)


@exercise("jacobian")
def test_jacobian_works_under_vmap():
    torch.manual_seed(0)
    a = torch.randn(2, 3)

    def f(t):
        return torch.tanh(a @ t)

    xs = torch.randn(4, 3)
    call = _("torch.func.vmap(lambda x: jacobian(f, x))(xs) with f(x) = tanh(A x), A 2x3, xs of shape (4, 3)")
    got = transformed(
        lambda: torch.func.vmap(lambda x: mp.jacobian(f, x))(xs),
        call,
        _(
            "Likely cause: your jacobian calls backward(), torch.autograd.grad or "
            "torch.autograd.functional.jacobian, which torch.func transforms cannot see through. "
            "Return torch.func.jacrev(f)(x)."
        ),
    )
    expect_tensor_close(
        got, torch.stack([jacobian_by_vjps(f, x) for x in xs]), call=call, rtol=1e-4, atol=1e-5
    )


# --- capture_activations --------------------------------------------------------------------------


class SimpleNet(nn.Module):
    """The article's network: Linear 2 -> 4, ReLU, Linear 4 -> 1."""

    def __init__(self, inplace: bool = False):
        super().__init__()
        self.fc1 = nn.Linear(2, 4)
        self.relu = nn.ReLU(inplace=inplace)
        self.fc2 = nn.Linear(4, 1)

    def forward(self, x):
        return self.fc2(self.relu(self.fc1(x)))


class Exploding(nn.Module):
    def forward(self, x):
        raise ValueError("boom")


def remaining_hooks(model: nn.Module) -> int:
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())


def expect_no_hooks_left(model: nn.Module, call: str, advice: str) -> None:
    left = remaining_hooks(model)
    if left:
        fail(
            _("Called {call}.\nAfterwards {count} forward hook(s) remain on the model.\n{advice}").format(
                call=call, count=left, advice=advice
            )
        )


REMOVE_HANDLES = _(
    "Likely cause: the hooks were never removed. register_forward_hook returns a handle; call "
    "handle.remove() for each one, or every later forward pass keeps running your hook."
)


@exercise("capture_activations")
@settings(max_examples=10)
@given(batch=st.integers(1, 4), seed=st.integers(0, 2**16))
def test_capture_activations_returns_each_named_output(batch, seed):
    torch.manual_seed(seed)
    model, x = SimpleNet(), torch.randn(batch, 2)
    call = _("capture_activations(SimpleNet(), x of shape {shape}, ['fc1', 'fc2'])").format(
        shape=tuple(x.shape)
    )
    got = mp.capture_activations(model, x, ["fc1", "fc2"])
    if not isinstance(got, dict) or sorted(got) != ["fc1", "fc2"]:
        fail(
            _("Called {call}.\nIt returned {got}; a dict with the keys 'fc1' and 'fc2' is asked for.").format(
                call=call, got=show(got)
            )
        )
    with torch.no_grad():
        hidden = model.fc1(x)
        expected = {"fc1": hidden, "fc2": model.fc2(torch.relu(hidden))}
        inputs = {"fc1": x, "fc2": torch.relu(hidden)}
    for name in ("fc1", "fc2"):
        expect_tensor_close(
            got[name],
            expected[name],
            call=_("{call}, entry {name}").format(call=call, name=repr(name)),
            mistakes=[
                (
                    _("you kept the hook's inputs, what goes into the layer, not its output"),
                    inputs[name],
                )
            ],
        )
    expect_no_hooks_left(model, call, REMOVE_HANDLES)


@exercise("capture_activations")
def test_capture_activations_removes_every_hook():
    model = SimpleNet()
    call = "capture_activations(SimpleNet(), x, ['fc1', 'relu', 'fc2'])"
    mp.capture_activations(model, torch.randn(3, 2), ["fc1", "relu", "fc2"])
    expect_no_hooks_left(model, call, REMOVE_HANDLES)


@exercise("capture_activations")
def test_capture_activations_removes_the_hooks_when_the_forward_pass_raises():
    model = nn.Sequential(OrderedDict(fc1=nn.Linear(2, 4), boom=Exploding()))
    call = _("capture_activations(Sequential(fc1=Linear(2, 4), boom=<a layer that raises>), x, ['fc1'])")
    try:
        mp.capture_activations(model, torch.randn(3, 2), ["fc1"])
    except ValueError:
        pass
    else:
        fail(
            _(
                "Called {call}.\nThe model raises ValueError in its forward pass, but your function "
                "returned normally: let the error through."
            ).format(call=call)
        )
    expect_no_hooks_left(
        model,
        call,
        _(
            "Likely cause: the handles are removed only after a successful forward pass. Remove them "
            "in a `finally` block, so that an error cannot leave hooks behind."
        ),
    )


@exercise("capture_activations")
def test_capture_activations_keeps_outputs_that_a_later_inplace_layer_overwrites():
    torch.manual_seed(1)
    model, x = SimpleNet(inplace=True), torch.randn(6, 2)
    call = _("capture_activations(SimpleNet with ReLU(inplace=True), x, ['fc1'])")
    got = mp.capture_activations(model, x, ["fc1"])
    with torch.no_grad():
        expected = model.fc1(x)
    expect_tensor_close(
        got.get("fc1") if isinstance(got, dict) else got,
        expected,
        call=call,
        mistakes=[
            (
                _(
                    "the ReLU(inplace=True) after fc1 overwrote the tensor you kept (its negative "
                    "values are now 0): store output.detach().clone()"
                ),
                expected.clamp(min=0),
            )
        ],
    )


# --- clip_grads_during_backward -------------------------------------------------------------------


def clipping_case(seed: int):
    """A Linear layer and a loss whose gradients reach several units, above a limit of 0.5."""
    torch.manual_seed(seed)
    model = nn.Linear(3, 2)
    x = 4 * torch.randn(5, 3)
    return model, x


def loss_of(model, x):
    return (model(x) ** 2).mean() + model(x).sum()


def true_grads(model, x) -> dict[str, torch.Tensor]:
    names = list(dict(model.named_parameters()))
    return dict(zip(names, torch.autograd.grad(loss_of(model, x), list(model.parameters())), strict=True))


LIMIT = 0.5
HOOK_RETURNS = _(
    "the gradients were not clipped: a tensor hook changes the gradient only through its return "
    "value, so return gradient.clamp(-limit, limit) (a hook that returns None keeps the original)"
)


@exercise("clip_grads_during_backward")
@settings(max_examples=10)
@given(seed=st.integers(0, 2**16))
def test_clip_grads_during_backward_clips_and_reports_the_unclipped_size(seed):
    model, x = clipping_case(seed)
    grads = true_grads(model, x)
    call = _("clip_grads_during_backward(nn.Linear(3, 2), loss, limit={limit}) (seed {seed})").format(
        limit=LIMIT, seed=seed
    )
    largest = mp.clip_grads_during_backward(model, loss_of(model, x), LIMIT)
    for name, p in model.named_parameters():
        expect_tensor_close(
            p.grad,
            grads[name].clamp(-LIMIT, LIMIT),
            call=call,
            observed=_("Afterwards {name}.grad is").format(name=name),
            mistakes=[(HOOK_RETURNS, grads[name])],
        )
    if not isinstance(largest, dict) or sorted(largest) != sorted(grads):
        fail(
            _("Called {call}.\nIt returned {got}; a dict keyed by {names} is asked for.").format(
                call=call, got=show(largest), names=sorted(grads)
            )
        )
    for name, g in grads.items():
        seen = expect_float(largest[name], call=call)
        biggest = g.abs().max().item()
        expect_close(
            seen,
            biggest,
            call=_("{call}, entry {name}").format(call=call, name=repr(name)),
            rtol=1e-4,
            mistakes=[
                (
                    _(
                        "you recorded the size after clipping; the hook sees the incoming gradient "
                        "first: record it, then return the clipped one"
                    ),
                    min(biggest, LIMIT),
                )
            ],
        )


@exercise("clip_grads_during_backward")
def test_clip_grads_during_backward_clips_only_the_new_gradient():
    model, x = clipping_case(3)
    grads = true_grads(model, x)
    old = {name: torch.full_like(p, 0.4) for name, p in model.named_parameters()}
    for name, p in model.named_parameters():
        p.grad = old[name].clone()
    call = _("clip_grads_during_backward(model, loss, limit={limit}) with every .grad already 0.4").format(
        limit=LIMIT
    )
    mp.clip_grads_during_backward(model, loss_of(model, x), LIMIT)
    for name, p in model.named_parameters():
        expect_tensor_close(
            p.grad,
            old[name] + grads[name].clamp(-LIMIT, LIMIT),
            call=call,
            observed=_("Afterwards {name}.grad is").format(name=name),
            mistakes=[
                (
                    _(
                        "you clipped .grad after backward(), which clips what it had accumulated too; "
                        "a hook on the parameter clips only the incoming gradient, before it is added"
                    ),
                    (old[name] + grads[name]).clamp(-LIMIT, LIMIT),
                ),
                (HOOK_RETURNS, old[name] + grads[name]),
            ],
        )


@exercise("clip_grads_during_backward")
def test_clip_grads_during_backward_removes_its_hooks():
    model, x = clipping_case(5)
    grads = true_grads(model, x)  # before: a leaked hook would clip torch.autograd.grad's answer too
    call = _(
        "clip_grads_during_backward(model, loss, limit={limit}), then a second, ordinary backward()"
    ).format(limit=LIMIT)
    mp.clip_grads_during_backward(model, loss_of(model, x), LIMIT)
    model.zero_grad(set_to_none=True)
    loss_of(model, x).backward()
    for name, p in model.named_parameters():
        if torch.allclose(p.grad, grads[name].clamp(-LIMIT, LIMIT)) and not torch.allclose(
            p.grad, grads[name]
        ):
            fail(
                _(
                    "Called {call}.\nThe second backward() was clipped as well: a hook is still "
                    "registered on {name}.\nLikely cause: register_hook returns a handle; call "
                    "handle.remove() for each one (in a finally block) before returning."
                ).format(call=call, name=name)
            )


# --- predict ----------------------------------------------------------------------------------


@exercise("predict")
@settings(max_examples=10)
@given(batch=st.integers(1, 5), seed=st.integers(0, 2**16))
def test_predict_returns_model_output_as_an_inference_tensor(batch, seed):
    torch.manual_seed(seed)
    model, x = SimpleNet(), torch.randn(batch, 2)
    call = _("predict(SimpleNet(), x of shape {shape})").format(shape=tuple(x.shape))
    got = mp.predict(model, x)
    with torch.no_grad():
        expected = model(x)
    expect_tensor_close(got, expected, call=call)
    if got.requires_grad:
        fail(
            _(
                "Called {call}.\nIt returned {got}: autograd recorded a graph that nobody will use.\n"
                "Likely cause: the model ran without any context manager; serving code runs it "
                "under torch.inference_mode()."
            ).format(call=call, got=show(got))
        )
    if not got.is_inference():
        fail(
            _(
                "Called {call}.\nThe output is not an inference tensor (got.is_inference() is False).\n"
                "Likely cause: torch.no_grad(). It skips the graph too, but torch.inference_mode() "
                "also skips version counting and view tracking: it is the faster choice when the "
                "result never goes back into autograd, as in serving."
            ).format(call=call)
        )


@exercise("predict")
def test_predict_leaves_inference_mode_afterwards():
    model = SimpleNet()
    call = _("predict(SimpleNet(), x), then a forward pass outside it")
    mp.predict(model, torch.randn(2, 2))
    if torch.is_inference_mode_enabled() or not torch.is_grad_enabled():
        torch.set_grad_enabled(True)  # so that the later tests run as they should
        fail(
            _(
                "Called {call}.\nAfterwards autograd is still switched off for everyone.\nLikely "
                "cause: inference mode was entered without leaving it; use `with "
                "torch.inference_mode():` so it ends with the block."
            ).format(call=call)
        )
    if not model(torch.randn(2, 2)).requires_grad:
        fail(_("Called {call}.\nA later forward pass records no graph.").format(call=call))


# --- frozen_features ---------------------------------------------------------------------------------


def train_head_on(features: torch.Tensor, call: str) -> nn.Linear:
    head = nn.Linear(features.shape[-1], 1)
    try:
        head(features).pow(2).mean().backward()
        return head
    except RuntimeError as err:
        if not features.is_inference():
            raise
        error = str(err).strip().splitlines()[0]
    fail(
        _(
            "Called {call}, then trained a linear head on the features.\nautograd refused with RuntimeError: "
            "{error}\nLikely cause: the features are inference tensors (made under "
            "torch.inference_mode()), which autograd can never save for a backward pass. "
            "Features that feed training go through torch.no_grad()."
        ).format(call=call, error=error)
    )


FROZEN_NEEDS_NO_GRAD = _(
    "Likely cause: the backbone ran with autograd on, so its graph came along with the features. "
    "Compute them under torch.no_grad(): the backbone stays frozen and no graph is kept."
)


@exercise("frozen_features")
@settings(max_examples=10)
@given(batch=st.integers(1, 5), seed=st.integers(0, 2**16))
def test_frozen_features_train_a_head_and_not_the_backbone(batch, seed):
    torch.manual_seed(seed)
    backbone, x = nn.Sequential(nn.Linear(2, 4), nn.ReLU()), torch.randn(batch, 2)
    call = _("frozen_features(backbone, x of shape {shape})").format(shape=tuple(x.shape))
    features = mp.frozen_features(backbone, x)
    with torch.no_grad():
        expected = backbone(x)
    expect_tensor_close(features, expected, call=call)
    head = train_head_on(features, call)
    if head.weight.grad is None:
        fail(_("Called {call}, then trained a head: the head received no gradient.").format(call=call))
    reached = [name for name, p in backbone.named_parameters() if p.grad is not None]
    if reached:
        fail(
            _(
                "Called {call}, then trained a linear head on the features.\nThe backbone's {names} "
                "received gradients too: it was meant to stay frozen.\n{advice}"
            ).format(call=call, names=reached, advice=FROZEN_NEEDS_NO_GRAD)
        )


@exercise("frozen_features")
def test_frozen_features_are_plain_tensors_without_a_graph():
    backbone, x = nn.Sequential(nn.Linear(2, 3), nn.Tanh()), torch.randn(4, 2)
    call = _("frozen_features(backbone, x of shape (4, 2))")
    features = mp.frozen_features(backbone, x)
    if not isinstance(features, torch.Tensor):
        fail(
            _("Called {call}.\nIt returned {got}; a tensor is asked for.").format(
                call=call, got=show(features)
            )
        )
    if features.is_inference():
        fail(
            _(
                "Called {call}.\nThe features are inference tensors (made under torch.inference_mode()); "
                "autograd can never save them for a backward pass, so no head can be trained on them. "
                "Use torch.no_grad() for results that feed training."
            ).format(call=call)
        )
    if features.requires_grad:
        fail(
            _("Called {call}.\nIt returned {got}.\n{advice}").format(
                call=call, got=show(features), advice=FROZEN_NEEDS_NO_GRAD
            )
        )


# --- count_graph_breaks --------------------------------------------------------------------------


@contextmanager
def quiet_tracer():
    """Dynamo logs every trace event at DEBUG level; pytest would print them all under a failure."""
    log = logging.getLogger("torch.__trace")
    before, log.propagate = log.propagate, False
    try:
        yield
    finally:
        log.propagate = before


def dynamic_computation(x):
    """The article's random control flow, word for word."""
    if torch.rand(1) > 0.5:
        return x**2
    else:
        return torch.sin(x)


def two_decisions(x):
    if x.sum() > 0:
        x = x * 2
    if x.mean() < 1:
        x = x + 1
    return x.tanh()


def straight_line(x):
    return torch.sin(x) * x + 1


def expect_count(got, expected: int, call: str, *, same_for_both: bool = False) -> None:
    if isinstance(got, bool) or not isinstance(got, int):
        fail(
            _("Called {call}.\nIt returned {got}; a Python int is asked for.").format(
                call=call, got=show(got)
            )
        )
    if got == expected:
        return
    cause = ""
    if same_for_both:
        cause = _(
            "\nLikely cause: it returned {got} for a function with two breaks and for one with none, "
            "so the number does not come from fn: trace it, "
            "torch._dynamo.explain(fn)(*args).graph_break_count."
        ).format(got=got)
    elif got == expected + 1:
        cause = _(
            "\nLikely cause: you counted graphs (graph_count). Each break ends one graph and "
            "starts the next, so there is one graph more than breaks: read graph_break_count."
        )
    fail(
        _(
            "Called {call}.\nIt returned {got}, but Dynamo breaks this graph {expected} time(s).{cause}"
        ).format(call=call, got=got, expected=expected, cause=cause)
    )


@exercise("count_graph_breaks")
def test_count_graph_breaks_finds_the_article_break():
    call = "count_graph_breaks(dynamic_computation, torch.tensor(2.0)) (if torch.rand(1) > 0.5: ...)"
    with quiet_tracer():
        got = mp.count_graph_breaks(dynamic_computation, torch.tensor(2.0))
    expect_count(got, 1, call)


@exercise("count_graph_breaks")
def test_count_graph_breaks_of_two_decisions_and_of_none():
    x = torch.tensor([0.5, -1.0, 2.0])
    call = _("count_graph_breaks(two_decisions, x) (two `if` statements on tensors)")
    with quiet_tracer():
        got = mp.count_graph_breaks(two_decisions, x)
        none = mp.count_graph_breaks(straight_line, x)
    same = type(got) is int and type(none) is int and got == none
    expect_count(got, 2, call, same_for_both=same)
    call = "count_graph_breaks(straight_line, x) (torch.sin(x) * x + 1)"
    expect_count(none, 0, call, same_for_both=same)


# --- coin_flip_computation ----------------------------------------------------------------------------


@exercise("coin_flip_computation")
@settings(max_examples=10)
@given(seed=st.integers(0, 2**16), shape=st.sampled_from([(), (3,), (2, 2)]))
def test_coin_flip_computation_equals_the_article_function(seed, shape):
    x = torch.randn(shape, generator=torch.Generator().manual_seed(seed)) if shape else torch.tensor(2.0)
    call = _("coin_flip_computation(x of shape {shape}) after torch.manual_seed({seed})").format(
        shape=shape, seed=seed
    )
    torch.manual_seed(seed)
    expected = dynamic_computation(x)
    torch.manual_seed(seed)
    got = mp.coin_flip_computation(x)
    if isinstance(got, torch.Tensor) and got.shape != x.shape:
        fail(
            _(
                "Called {call}.\nIt returned shape {got}, but x has shape {shape}.\nLikely cause: a coin "
                "of shape (1,), such as torch.rand(1) > 0.5, inside torch.where broadcasts the result to "
                "at least one dimension; draw a 0-dimensional coin with torch.rand(())."
            ).format(call=call, got=tuple(got.shape), shape=tuple(x.shape))
        )
    other = torch.sin(x) if torch.equal(expected, x**2) else x**2
    expect_tensor_close(
        got,
        expected,
        call=call,
        mistakes=[(_("heads and tails are swapped: x**2 belongs to torch.rand(()) > 0.5"), other)],
        note=_("Draw exactly one random number per call, as the article's version does."),
    )


@exercise("coin_flip_computation")
def test_coin_flip_computation_has_no_graph_break():
    call = "torch._dynamo.explain(coin_flip_computation)(torch.tensor(2.0))"
    mp.coin_flip_computation(torch.tensor(2.0))  # an error shows here, outside the tracer
    with quiet_tracer():
        explanation = torch._dynamo.explain(mp.coin_flip_computation)(torch.tensor(2.0))
    if explanation.graph_break_count:
        reasons = "; ".join(str(r.reason).strip().splitlines()[0] for r in explanation.break_reasons)
        fail(
            _(
                "Called {call}.\nDynamo breaks the graph {count} time(s): {reasons}.\nLikely cause: a "
                "Python `if` (or .item()) on a tensor: Python must see the tensor's value, so the "
                "graph break stops the trace there. Select with torch.where(coin, x**2, torch.sin(x)) "
                "instead."
            ).format(call=call, count=explanation.graph_break_count, reasons=reasons)
        )


# --- nan_gradient_source ----------------------------------------------------------------------------

# Ops whose derivative is infinite or undefined at 0: masked out by torch.where, they still get a
# zero gradient, and 0 * inf (or 0 / 0) is NaN.
UNSAFE = {
    "torch.sqrt": (torch.sqrt, "SqrtBackward0"),
    "torch.log": (torch.log, "LogBackward0"),
    "torch.rsqrt": (torch.rsqrt, "RsqrtBackward0"),
    "torch.reciprocal": (torch.reciprocal, "ReciprocalBackward0"),
    "t ** 0.5": (lambda t: t**0.5, "PowBackward0"),
}


def guarded(op, outer=None):
    def f(x):
        safe = torch.where(x > 0, op(x), torch.zeros_like(x))
        return (outer(safe) if outer is not None else safe).sum()

    return f


FROM_THE_FORWARD = _(
    "you named the output's grad_fn, the last operation of the forward pass; the anomaly report names "
    "the backward node that produced the NaN: parse it from the RuntimeError's message"
)


def expect_node_name(got, expected, forward_name: str, call: str) -> None:
    if got == expected:
        return
    cause = ""
    if got == forward_name:
        cause = "\n" + _("Likely cause: {cause}").format(cause=FROM_THE_FORWARD)
    fail(
        _("Called {call}.\nIt returned {got}, but the tests expected {expected}.{cause}").format(
            call=call, got=show(got), expected=show(expected), cause=cause
        )
    )


def expect_anomaly_mode_off(call: str) -> None:
    if torch.is_anomaly_enabled():
        torch.autograd.set_detect_anomaly(False)
        fail(
            _(
                "Called {call}.\nAfterwards anomaly mode is still on, slowing every later backward pass.\n"
                "Likely cause: set_detect_anomaly(True) without switching it back; use `with "
                "torch.autograd.detect_anomaly():` so it ends with the block."
            ).format(call=call)
        )


@exercise("nan_gradient_source")
@pytest.mark.filterwarnings("ignore::UserWarning")
def test_nan_gradient_source_finds_the_masked_square_root():
    x = torch.tensor([-1.0, 4.0])
    call = "nan_gradient_source(lambda x: torch.where(x > 0, torch.sqrt(x), 0).sum(), tensor([-1., 4.]))"
    f = guarded(torch.sqrt)
    got = mp.nan_gradient_source(f, x)
    expect_node_name(got, "SqrtBackward0", type(f(x.clone().requires_grad_()).grad_fn).__name__, call)
    expect_anomaly_mode_off(call)


@exercise("nan_gradient_source")
@pytest.mark.filterwarnings("ignore::UserWarning")
def test_nan_gradient_source_is_none_for_a_healthy_function_and_leaves_x_alone():
    x = torch.tensor([1.0, 4.0])
    call = "nan_gradient_source(lambda x: torch.sqrt(x).sum(), tensor([1., 4.]))"
    got = mp.nan_gradient_source(lambda t: torch.sqrt(t).sum(), x)
    if got is not None:
        fail(
            _(
                "Called {call}.\nIt returned {got}; every gradient is finite here, so None is expected."
            ).format(call=call, got=show(got))
        )
    if x.requires_grad or x.grad is not None:
        fail(
            _(
                "Called {call}.\nAfterwards the caller's x has requires_grad={flag}.\nLikely cause: "
                "x.requires_grad_() changed the caller's tensor; work on x.detach().requires_grad_()."
            ).format(call=call, flag=x.requires_grad)
        )
    expect_anomaly_mode_off(call)


@exercise("nan_gradient_source")
@pytest.mark.filterwarnings("ignore::UserWarning")
@settings(max_examples=10)
@given(
    op=st.sampled_from(sorted(UNSAFE)),
    outer=smooth_functions(),
    positive=st.lists(st.floats(0.25, 3.0), min_size=1, max_size=3),
)
def test_nan_gradient_source_names_the_unsafe_op_of_random_functions(op, outer, positive):
    fn, expected = UNSAFE[op]
    x = torch.tensor([0.0, *positive])
    f = guarded(fn, outer)
    call = _(
        "nan_gradient_source(lambda x: g(torch.where(x > 0, {op}(x), 0)).sum(), {x}) with g(x) = {g}"
    ).format(op=op, x=show(x), g=outer.text)
    got = mp.nan_gradient_source(f, x)
    expect_node_name(got, expected, type(f(x.clone().requires_grad_()).grad_fn).__name__, call)
    expect_anomaly_mode_off(call)
