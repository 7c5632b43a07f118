"""Kata 01: autograd. Read a test's name for the behaviour, its body for the call.

Random functions come from Hypothesis: they print as maths, e.g.
`f(x) = sin((1.5*x + 0.3))`, so a failure shows exactly what was differentiated.
"""

import autograd_basics as ab
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from katas._harness.i18n import N_, _
from katas._harness.strategies import points, smooth_functions
from katas._harness.testing import (
    Spy,
    expect_close,
    expect_float,
    expect_floats,
    fail,
    is_close,
    reference,
    show,
)

exercise = pytest.mark.exercise


def article_quadratic(x):
    return x**2 + 3 * x + 2


def article_cubic(a):
    return a**3 + 4 * a**2 - 5 * a + 2


# The tests' reference is autograd itself (the real library), in float64; `reference` also runs
# it in float32 to size the tolerance, since learners compute in PyTorch's default float32.


def reference_grad(f, x: float, dtype: torch.dtype = torch.float64) -> float:
    t = torch.tensor(x, dtype=dtype, requires_grad=True)
    (grad,) = torch.autograd.grad(f(t), t)
    return grad.item()


def reference_value(f, x: float, dtype: torch.dtype = torch.float64) -> float:
    return f(torch.tensor(x, dtype=dtype)).item()


# --- grad_at -----------------------------------------------------------------

ARTICLE_FORMULA = N_(
    "you returned 2x + 3, the derivative of the article's x**2 + 3x + 2, whatever f is: "
    "differentiate the f you are given with autograd"
)


@exercise("grad_at")
def test_grad_at_reproduces_the_article_example():
    call = "grad_at(lambda x: x**2 + 3*x + 2, 1.0)"
    got = expect_float(ab.grad_at(article_quadratic, 1.0), call=call)
    expect_close(
        got, 5.0, call=call, mistakes=[(_("you returned f(1.0) = 6, the value, not the gradient"), 6.0)]
    )


@exercise("grad_at")
def test_grad_at_gives_23_for_the_article_cubic_at_2():
    call = "grad_at(lambda a: a**3 + 4*a**2 - 5*a + 2, 2.0)"
    got = expect_float(ab.grad_at(article_cubic, 2.0), call=call)
    expect_close(
        got,
        23.0,
        call=call,
        mistakes=[(_("you returned the value b = 16, not db/da"), 16.0), (_(ARTICLE_FORMULA), 2 * 2.0 + 3)],
    )


@exercise("grad_at")
@given(f=smooth_functions(), x=points)
def test_grad_at_matches_autograd_for_random_functions(f, x):
    call = _("grad_at(f, {x}) with {f}").format(x=x, f=repr(f))
    got = expect_float(ab.grad_at(f, x), call=call)
    (expected,), atol = reference(lambda dtype: [reference_grad(f, x, dtype)])
    expect_close(
        got,
        expected,
        call=call,
        rtol=1e-4,
        atol=atol,
        mistakes=[
            (_("you returned f(x), the value, not its derivative"), reference_value(f, x)),
            (_(ARTICLE_FORMULA), 2 * x + 3),
        ],
    )


@exercise("grad_at")
def test_grad_at_runs_f_once_on_a_tensor_that_requires_grad():
    spy = Spy(article_quadratic)
    call = "grad_at(spy, 1.0)"
    ab.grad_at(spy, 1.0)
    spy.expect_calls(
        1,
        call=call,
        why=_(
            "Autograd needs one forward pass, then backward(). Calling f several times "
            "suggests finite differences, which are approximate and cost one call per input."
        ),
    )
    spy.expect_tracked_inputs(call=call)


# --- partial_derivatives -------------------------------------------------------


@exercise("partial_derivatives")
def test_partial_derivatives_of_a_product():
    call = "partial_derivatives(lambda x, y: x * y + y**2, [3.0, 2.0])"
    got = expect_floats(ab.partial_derivatives(lambda x, y: x * y + y**2, [3.0, 2.0]), 2, call=call)
    expect_close(
        got,
        [2.0, 7.0],
        call=call,
        mistakes=[
            (
                _(
                    "the second backward() added to the first's gradients: zero .grad between passes, "
                    "or do a single backward() for all inputs"
                ),
                [2.0, 14.0],
            ),
            (_("only the first input's derivative was computed"), [2.0, 2.0]),
        ],
    )


@exercise("partial_derivatives")
@given(data=st.data(), arity=st.integers(2, 4))
def test_partial_derivatives_match_autograd_for_random_functions(data, arity):
    f = data.draw(smooth_functions(arity=arity), label="f")
    point = data.draw(st.lists(points, min_size=arity, max_size=arity), label="point")
    call = _("partial_derivatives(f, {point}) with {f}").format(point=point, f=repr(f))
    got = expect_floats(ab.partial_derivatives(f, point), arity, call=call)

    def partials(dtype):
        inputs = [torch.tensor(v, dtype=dtype, requires_grad=True) for v in point]
        return [g.item() for g in torch.autograd.grad(f(*inputs), inputs)]

    expected, atol = reference(partials)
    expect_close(got, expected, call=call, rtol=1e-4, atol=atol)


@exercise("partial_derivatives")
def test_partial_derivatives_runs_f_once():
    spy = Spy(lambda x, y, z: x * y * z)
    call = "partial_derivatives(lambda x, y, z: x * y * z, [1.0, 2.0, 3.0])"
    ab.partial_derivatives(spy, [1.0, 2.0, 3.0])
    spy.expect_calls(
        1, call=call, why=_("One forward pass and one backward() fill .grad of every input at once.")
    )
    spy.expect_tracked_inputs(call=call)


# --- vector_jacobian_product --------------------------------------------------


@st.composite
def vector_functions(draw):
    """f(x) = tanh(A x) * (B x) with random A, B: a non-square, non-symmetric Jacobian."""
    n, m = draw(st.integers(1, 5)), draw(st.integers(1, 5))
    seed = draw(st.integers(0, 2**16))
    gen = torch.Generator().manual_seed(seed)
    a, b = torch.randn(m, n, generator=gen), torch.randn(m, n, generator=gen)
    x, v = torch.randn(n, generator=gen), torch.randn(m, generator=gen)

    def f(t):
        return torch.tanh(a.to(t.dtype) @ t) * (b.to(t.dtype) @ t)

    return f, x, v, _("tanh(A x) * (B x), A and B {m}x{n}, seed {seed}").format(m=m, n=n, seed=seed)


def is_a_shape_error(err: RuntimeError) -> bool:
    """A matrix product of mismatched shapes raises one of these (PyTorch's own words)."""
    text = str(err)
    return "size mismatch" in text or "cannot be multiplied" in text or "must match the size" in text


@exercise("vector_jacobian_product")
def test_vector_jacobian_product_of_elementwise_square():
    x = torch.tensor([1.0, 2.0, 3.0])
    v = torch.tensor([1.0, 0.5, -1.0])
    call = "vector_jacobian_product(lambda t: t**2, x=[1, 2, 3], v=[1, 0.5, -1])"
    got = ab.vector_jacobian_product(lambda t: t**2, x, v)
    expect_close(
        got,
        torch.tensor([2.0, 2.0, -6.0]),
        call=call,
        mistakes=[
            (
                _("you ignored v: backward() on y.sum() is the product with a vector of ones"),
                torch.tensor([2.0, 4.0, 6.0]),
            )
        ],
    )


@exercise("vector_jacobian_product")
@given(case=vector_functions())
def test_vector_jacobian_product_matches_torch_for_random_jacobians(case):
    f, x, v, text = case
    call = _("vector_jacobian_product(f, x, v) with f(x) = {f}").format(f=text)
    try:
        got = ab.vector_jacobian_product(f, x, v)
    except NotImplementedError:
        raise
    except RuntimeError as err:
        if x.numel() == v.numel() or not is_a_shape_error(err):
            raise
        error = err
    else:
        error = None
    if error is not None:  # failing outside the except clause keeps the chained traceback out
        fail(
            _(
                "Called {call}.\nIt raised RuntimeError: {err}\nHere f maps {n} inputs to {m} outputs, so "
                "J is {m}x{n}: v has one entry per output, and the result one per input.\nLikely cause: "
                "J and v were multiplied the wrong way round, as in J @ v (a Jacobian-vector product, "
                "which needs one entry of v per input); y.backward(gradient=v) with y = f(x) gives v^T J, "
                "shaped like x."
            ).format(call=call, err=error, n=x.numel(), m=v.numel())
        )
    if not isinstance(got, torch.Tensor):
        fail(
            _("Called {call}.\nIt returned {type}; return a tensor shaped like x.").format(
                call=call, type=type(got).__name__
            )
        )
    expected, atol = reference(
        lambda dtype: torch.autograd.functional.vjp(f, x.to(dtype), v.to(dtype))[1].tolist()
    )
    expected = torch.tensor(expected).reshape(x.shape)
    jacobian = torch.autograd.functional.jacobian(f, x)
    mistakes = [
        (_("you ignored v: backward() on y.sum() is the product with a vector of ones"), jacobian.sum(dim=0))
    ]
    if jacobian.shape[0] == jacobian.shape[1]:
        mistakes.append((_("you computed J @ v; backward(gradient=v) gives v^T J"), jacobian @ v))
    expect_close(got, expected, call=call, rtol=1e-4, atol=atol, mistakes=mistakes)


@exercise("vector_jacobian_product")
def test_vector_jacobian_product_leaves_the_callers_tensor_alone():
    x = torch.tensor([1.0, -2.0])
    call = _("vector_jacobian_product(torch.sin, x, v) with a plain x (requires_grad=False)")
    ab.vector_jacobian_product(torch.sin, x, torch.ones(2))
    if x.requires_grad or x.grad is not None:
        fail(
            _(
                "Called {call}.\nAfterwards the caller's x has requires_grad={requires_grad} and "
                "grad={grad}.\nLikely cause: x.requires_grad_() changed the caller's tensor; "
                "work on x.detach().requires_grad_() (a new leaf that shares the data) instead."
            ).format(call=call, requires_grad=x.requires_grad, grad=x.grad)
        )


# --- first_and_second_derivative ------------------------------------------------


def reference_derivatives(f, x: float, dtype: torch.dtype = torch.float64) -> tuple[float, float]:
    t = torch.tensor(x, dtype=dtype, requires_grad=True)
    (first,) = torch.autograd.grad(f(t), t, create_graph=True)
    (second,) = torch.autograd.grad(first, t)
    return first.item(), second.item()


@exercise("first_and_second_derivative")
def test_first_and_second_derivative_of_the_article_cubic():
    call = "first_and_second_derivative(lambda a: a**3 + 4*a**2 - 5*a + 2, 2.0)"
    got = expect_floats(ab.first_and_second_derivative(article_cubic, 2.0), 2, call=call)
    expect_close(
        got,
        [23.0, 20.0],
        call=call,
        mistakes=[
            (
                _(
                    "a second backward() added f'' onto x.grad, which still held f'; use "
                    "torch.autograd.grad, which returns gradients instead of accumulating them"
                ),
                [23.0, 43.0],
            ),
            (_("you returned the first derivative twice"), [23.0, 23.0]),
        ],
    )


@exercise("first_and_second_derivative")
@given(f=smooth_functions(), x=points)
def test_first_and_second_derivative_match_autograd_for_random_functions(f, x):
    call = _("first_and_second_derivative(f, {x}) with {f}").format(x=x, f=repr(f))
    got = expect_floats(ab.first_and_second_derivative(f, x), 2, call=call)
    (first, second), atol = reference(lambda dtype: reference_derivatives(f, x, dtype))
    expect_close(
        got,
        [first, second],
        call=call,
        rtol=1e-4,
        atol=atol,
        mistakes=[
            (_("x.grad accumulated f' + f''; use torch.autograd.grad"), [first, first + second]),
            (_("you returned the first derivative twice"), [first, first]),
        ],
    )


# --- gradient_history -----------------------------------------------------------


@exercise("gradient_history")
def test_gradient_history_accumulates_without_zeroing():
    call = "gradient_history(lambda x: x**2 + 3*x + 2, 1.0, steps=3, zero_between=False)"
    got = expect_floats(ab.gradient_history(article_quadratic, 1.0, 3, False), 3, call=call)
    expect_close(
        got,
        [5.0, 10.0, 15.0],
        call=call,
        mistakes=[
            (
                _(
                    "the gradient was reset between passes: without zeroing, backward() adds "
                    "into .grad, it does not overwrite it (use one leaf tensor for all steps)"
                ),
                [5.0, 5.0, 5.0],
            ),
            (
                _(
                    "every entry is the final .grad: you stored the .grad tensor itself, which later "
                    "passes changed in place; store .item() at each step"
                ),
                [15.0, 15.0, 15.0],
            ),
        ],
    )


@exercise("gradient_history")
def test_gradient_history_is_constant_when_zeroed():
    call = "gradient_history(lambda x: x**2 + 3*x + 2, 1.0, steps=3, zero_between=True)"
    got = expect_floats(ab.gradient_history(article_quadratic, 1.0, 3, True), 3, call=call)
    expect_close(
        got,
        [5.0, 5.0, 5.0],
        call=call,
        mistakes=[
            (
                _("gradients doubled and tripled: did you forget to zero x.grad between passes?"),
                [5.0, 10.0, 15.0],
            )
        ],
    )


@exercise("gradient_history")
@given(f=smooth_functions(max_leaves=3), x=points, steps=st.integers(1, 4), zero_between=st.booleans())
def test_gradient_history_for_random_functions(f, x, steps, zero_between):
    call = _("gradient_history(f, {x}, steps={steps}, zero_between={zero_between}) with {f}").format(
        x=x, steps=steps, zero_between=zero_between, f=repr(f)
    )
    got = expect_floats(ab.gradient_history(f, x, steps, zero_between), steps, call=call)
    (g,), atol = reference(lambda dtype: [reference_grad(f, x, dtype)])
    expected = [g] * steps if zero_between else [g * (i + 1) for i in range(steps)]
    expect_close(got, expected, call=call, rtol=1e-4, atol=atol * steps)


# --- clamp_weights_ ------------------------------------------------------------------

NOTHING_CHANGED = N_(
    "Likely cause: nothing changed: `p = p.clamp(...)` rebinds a local name, it does not "
    "modify the parameter; use p.clamp_(...) under torch.no_grad()."
)


@exercise("clamp_weights_")
@given(
    limit=st.floats(0.05, 2.0),
    seed=st.integers(0, 2**16),
    shapes=st.lists(st.lists(st.integers(1, 4), min_size=1, max_size=2).map(tuple), min_size=1, max_size=3),
)
def test_clamp_weights_clamps_in_place_and_keeps_parameters_trainable(limit, seed, shapes):
    gen = torch.Generator().manual_seed(seed)
    params = [torch.nn.Parameter(3 * torch.randn(shape, generator=gen)) for shape in shapes]
    before = [p.detach().clone() for p in params]
    storage = [p.data_ptr() for p in params]
    call = _("clamp_weights_(params of shapes {shapes}, limit={limit})").format(
        shapes=shapes, limit=f"{limit:g}"
    )
    result = ab.clamp_weights_(params, limit)
    if result is not None:
        fail(
            _(
                "Called {call}.\nIt returned {type}; a trailing _ means in place: "
                "change the given tensors and return None."
            ).format(call=call, type=type(result).__name__)
        )
    for p, old, ptr in zip(params, before, storage, strict=True):
        if p.data_ptr() != ptr:
            fail(
                _(
                    "Called {call}.\nA parameter now points at new memory: update it in place (clamp_)."
                ).format(call=call)
            )
        expected = old.clamp(-limit, limit)
        if not is_close(p.detach(), expected):
            cause = _(NOTHING_CHANGED) if torch.equal(p.detach(), old) else ""
            fail(
                _(
                    "Called {call}.\nIt returned None, as it should, but afterwards a parameter holds "
                    "{got}, where the tests expected {expected}."
                ).format(call=call, got=show(p.detach()), expected=show(expected))
                + f"\n{cause}"
            )
        if not (p.requires_grad and p.is_leaf and p.grad_fn is None):
            fail(
                _(
                    "Called {call}.\nA parameter is no longer a trainable leaf: {parameter}.\n"
                    "Likely cause: the clamp was recorded in the graph; do it under torch.no_grad()."
                ).format(call=call, parameter=repr(p))
            )


@exercise("clamp_weights_")
def test_clamp_weights_accepts_model_parameters():
    model = torch.nn.Linear(3, 2)
    with torch.no_grad():
        model.weight.mul_(10)
    before = [p.detach().clone() for p in model.parameters()]
    ab.clamp_weights_(model.parameters(), 0.5)
    if model.weight.abs().max() > 0.5 or model.bias.abs().max() > 0.5:
        unchanged = all(
            torch.equal(p.detach(), old) for p, old in zip(model.parameters(), before, strict=True)
        )
        with torch.no_grad():
            model.weight.copy_(before[0])
            model.bias.copy_(before[1])
        ab.clamp_weights_(list(model.parameters()), 0.5)
        list_works = model.weight.abs().max() <= 0.5 and model.bias.abs().max() <= 0.5
        if list_works:
            cause = _(
                "Likely cause: the same parameters passed as a list are clamped, but "
                "model.parameters() is a generator: it can be iterated only once, so a first pass "
                "over it (a check, a count, list(params)) leaves nothing for the loop that clamps. "
                "Iterate over it once, or turn it into a list first and use that list."
            )
        else:
            cause = _(NOTHING_CHANGED) if unchanged else ""
        still = (
            _("Some values are still outside [-0.5, 0.5] (unchanged): weight={weight}, bias={bias}.")
            if unchanged
            else _("Some values are still outside [-0.5, 0.5]: weight={weight}, bias={bias}.")
        )
        weight, bias = (before[0], before[1]) if unchanged else (model.weight.detach(), model.bias.detach())
        fail(
            _("Called {call}.").format(call="clamp_weights_(model.parameters(), 0.5)")
            + "\n"
            + still.format(weight=show(weight), bias=show(bias))
            + "\n"
            + cause
        )


@exercise("clamp_weights_")
def test_clamp_weights_is_visible_to_autograd():
    w = torch.tensor([2.0, -3.0, 0.25], requires_grad=True)
    loss = (w * w).sum()  # autograd saves w to compute this gradient later
    ab.clamp_weights_([w], 1.0)
    if torch.equal(w.detach(), torch.tensor([2.0, -3.0, 0.25])):
        fail(
            _("Called {call}.").format(call=_("clamp_weights_([w], 1.0) with w = tensor([2.0, -3.0, 0.25])"))
            + "\n"
            + _("Afterwards w is still {w}: nothing was clamped.").format(w=show(w.detach()))
            + "\n"
            + _(NOTHING_CHANGED)
        )
    try:
        loss.backward()
    except RuntimeError:
        return  # autograd noticed that w changed after it was saved: the safe outcome
    fail(
        _(
            "Called {call} between the forward pass and backward() of (w * w).sum().\n"
            "backward() ran without complaint and produced grad {grad}, from the clamped values, "
            "not the ones the loss used.\n"
            "Likely cause: w.data.clamp_() hides the change from autograd's version counter, so wrong "
            "gradients go unnoticed. Use `with torch.no_grad(): w.clamp_(...)`: autograd then raises "
            "instead of silently computing garbage."
        ).format(call="clamp_weights_([w], 1.0)", grad=w.grad)
    )


# --- detached_product_grad ----------------------------------------------------------


@exercise("detached_product_grad")
def test_detached_product_grad_treats_g_as_a_constant():
    call = "detached_product_grad(f=lambda x: x**2, g=lambda x: x**3, x=2.0)"
    got = expect_float(ab.detached_product_grad(lambda x: x**2, lambda x: x**3, 2.0), call=call)
    expect_close(
        got,
        32.0,
        call=call,
        mistakes=[
            (_("the gradient also flowed through g: call .detach() on g(x)"), 80.0),
            (_("you detached f instead of g"), 48.0),
        ],
    )


@exercise("detached_product_grad")
@given(f=smooth_functions(max_leaves=3), g=smooth_functions(max_leaves=3), x=points)
def test_detached_product_grad_for_random_functions(f, g, x):
    call = _("detached_product_grad(f, g, {x}) with {f} and g: {g}").format(x=x, f=repr(f), g=repr(g))
    got = expect_float(ab.detached_product_grad(f, g, x), call=call)

    def parts(dtype):
        values = [reference_value(f, x, dtype), reference_value(g, x, dtype)]
        return values + [reference_grad(f, x, dtype), reference_grad(g, x, dtype)]

    (fx, gx, df, dg), atol = reference(parts)
    tolerance = atol * (1 + abs(gx) + abs(df))
    through_g, detached_f = df * gx + fx * dg, fx * dg
    mistakes = [
        (_("the gradient also flowed through g: call .detach() on g(x)"), through_g),
        (_("you detached f instead of g"), detached_f),
    ]
    if is_close(through_g, detached_f, 1e-4, tolerance):  # here f'(x) g(x) is about 0: both give one value
        mistakes = [
            (_("the gradient went through g: you detached f instead of g, or nothing at all"), through_g)
        ]
    expect_close(got, df * gx, call=call, rtol=1e-4, atol=tolerance, mistakes=mistakes)


# --- intermediate_grad ---------------------------------------------------------------


@exercise("intermediate_grad")
def test_intermediate_grad_of_sin_of_square():
    call = "intermediate_grad(inner=lambda x: x**2, outer=torch.sin, x=1.5)"
    got = expect_floats(ab.intermediate_grad(lambda x: x**2, torch.sin, 1.5), 2, call=call)
    h = 1.5**2
    dl_dh = torch.cos(torch.tensor(h, dtype=torch.float64)).item()
    expect_close(
        got,
        [dl_dh, dl_dh * 3.0],
        call=call,
        mistakes=[
            (_("the pair is swapped: return (dL/dh, dL/dx)"), [dl_dh * 3.0, dl_dh]),
            (
                _(
                    "dL/dx is 0: the graph was cut at h; keep h = inner(x) attached and call "
                    "h.retain_grad() instead of detaching it"
                ),
                [dl_dh, 0.0],
            ),
        ],
    )


@exercise("intermediate_grad")
@given(inner=smooth_functions(max_leaves=3), outer=smooth_functions(max_leaves=3), x=points)
def test_intermediate_grad_for_random_functions(inner, outer, x):
    call = _("intermediate_grad(inner, outer, {x}) with inner: {inner} and outer: {outer}").format(
        x=x, inner=repr(inner), outer=repr(outer)
    )
    got = expect_floats(ab.intermediate_grad(inner, outer, x), 2, call=call)

    def grads(dtype):
        dl_dh = reference_grad(outer, reference_value(inner, x, dtype), dtype)
        return [dl_dh, dl_dh * reference_grad(inner, x, dtype)]

    (dl_dh, dl_dx), atol = reference(grads)
    expect_close(
        got,
        [dl_dh, dl_dx],
        call=call,
        rtol=1e-4,
        atol=atol,
        mistakes=[
            (_("the pair is swapped: return (dL/dh, dL/dx)"), [dl_dx, dl_dh]),
            (
                _(
                    "dL/dx is 0: the graph was cut at h; keep h = inner(x) attached and call "
                    "h.retain_grad() instead of detaching it"
                ),
                [dl_dh, 0.0],
            ),
        ],
    )


@exercise("intermediate_grad")
def test_intermediate_grad_runs_one_forward_pass():
    inner, outer = Spy(torch.tanh, "inner"), Spy(torch.exp, "outer")
    call = "intermediate_grad(torch.tanh, torch.exp, 0.3)"
    ab.intermediate_grad(inner, outer, 0.3)
    why = _("One forward pass and one backward() give both gradients when h.retain_grad() is called.")
    inner.expect_calls(1, call=call, why=why)
    outer.expect_calls(1, call=call, why=why)


# --- count_graph_ops --------------------------------------------------------------------


@exercise("count_graph_ops")
def test_count_graph_ops_of_the_article_cubic():
    a = torch.tensor(2.0, requires_grad=True)
    call = "count_graph_ops(a**3 + 4*a**2 - 5*a + 2)"
    got = ab.count_graph_ops(article_cubic(a))
    expected = {
        "PowBackward0": 2,
        "MulBackward0": 2,
        "SubBackward0": 1,
        "AddBackward0": 2,
        "AccumulateGrad": 1,
    }
    if got != expected:
        causes = []
        if isinstance(got, dict) and got.get("AccumulateGrad", 0) > 1:
            causes.append(
                _(
                    "a is one leaf, reached by three paths: keep a set of visited nodes so each node "
                    "counts once"
                )
            )
        if isinstance(got, dict) and "NoneType" in got:
            causes.append(_("constants like 4 and 5 show up as None in next_functions: skip them"))
        if isinstance(got, dict) and "AccumulateGrad" not in got:
            causes.append(_("the leaf a is an AccumulateGrad node: count it too"))
        fail(
            _("Called {call}.\nIt returned {got},\nbut the graph is {expected}.").format(
                call=call, got=repr(got), expected=repr(expected)
            )
            + "\n"
            + "".join(_("Likely cause: {cause}").format(cause=cause) + "\n" for cause in causes)
            + _("(The article's drawing of this graph is wrong; walking grad_fn shows the true one.)")
        )


@exercise("count_graph_ops")
def test_count_graph_ops_counts_a_shared_node_once():
    x = torch.tensor(0.5, requires_grad=True)
    h = torch.sin(x)
    call = _("count_graph_ops(h * h) with h = torch.sin(x)")
    got = ab.count_graph_ops(h * h)
    expected = {"MulBackward0": 1, "SinBackward0": 1, "AccumulateGrad": 1}
    if got != expected:
        fail(
            _(
                "Called {call}.\nIt returned {got}, expected {expected}.\n"
                "h feeds both inputs of the product, yet it is one node: count visited nodes once."
            ).format(call=call, got=repr(got), expected=repr(expected))
        )


OPS = {
    "add": ("AddBackward0", torch.add),
    "mul": ("MulBackward0", torch.mul),
    "sin": ("SinBackward0", torch.sin),
    "exp": ("ExpBackward0", torch.exp),
    "tanh": ("TanhBackward0", torch.tanh),
}


@st.composite
def random_graphs(draw):
    """A random DAG of torch ops over one leaf x: (output, its true node counts, the call)."""
    x = torch.tensor(0.7, requires_grad=True)
    names = ["x"]
    tensors = [x]
    ancestry = [{"x": "AccumulateGrad"}]  # per value: the nodes it depends on, by value name
    program = []
    for step in range(1, draw(st.integers(1, 7)) + 1):
        op = draw(st.sampled_from(sorted(OPS)))
        node_name, fn = OPS[op]
        arity = 2 if op in ("add", "mul") else 1
        args = [draw(st.integers(0, len(tensors) - 1)) for _arg in range(arity)]
        name = f"v{step}"
        tensors.append(fn(*(tensors[i] for i in args)))
        ancestry.append({k: v for i in args for k, v in ancestry[i].items()} | {name: node_name})
        names.append(name)
        program.append(f"{name} = torch.{op}({', '.join(names[i] for i in args)})")
    counts: dict[str, int] = {}
    for node_name in ancestry[-1].values():
        counts[node_name] = counts.get(node_name, 0) + 1
    setup = "; ".join(["x = torch.tensor(0.7, requires_grad=True)", *program])
    call = _("count_graph_ops({value}) after {setup}").format(value=names[-1], setup=setup)
    return tensors[-1], counts, call


@exercise("count_graph_ops")
@given(graph=random_graphs())
def test_count_graph_ops_for_random_graphs(graph):
    output, expected, call = graph
    got = ab.count_graph_ops(output)
    if got != expected:
        fail(
            _(
                "Called {call}.\nIt returned {got}, expected {expected}.\n"
                "Walk output.grad_fn and node.next_functions, skip None, count each node once."
            ).format(call=call, got=repr(got), expected=repr(expected))
        )


# --- per_loss_grads -----------------------------------------------------------------------


@exercise("per_loss_grads")
def test_per_loss_grads_for_two_heads_on_a_square():
    call = "per_loss_grads(trunk=lambda x: x**2, heads=[lambda h: h, lambda h: h**2], x=3.0)"
    got = expect_floats(ab.per_loss_grads(lambda x: x**2, [lambda h: h, lambda h: h**2], 3.0), 2, call=call)
    expect_close(
        got,
        [6.0, 108.0],
        call=call,
        mistakes=[
            (
                _(
                    "the second gradient includes the first: zero x.grad between the "
                    "backward() calls, or use torch.autograd.grad"
                ),
                [6.0, 114.0],
            )
        ],
    )


@exercise("per_loss_grads")
@given(
    trunk=smooth_functions(max_leaves=3),
    heads=st.lists(smooth_functions(max_leaves=2), min_size=1, max_size=3),
    x=points,
)
def test_per_loss_grads_for_random_heads(trunk, heads, x):
    spy = Spy(trunk, "trunk")
    call = _("per_loss_grads(trunk, heads, {x}) with trunk: {trunk} and heads {heads}").format(
        x=x, trunk=repr(trunk), heads=repr(heads)
    )
    got = expect_floats(ab.per_loss_grads(spy, heads, x), len(heads), call=call)
    spy.expect_calls(
        1,
        call=call,
        why=_(
            "Run the shared trunk once and backpropagate each head "
            "through it, keeping its graph alive with retain_graph=True."
        ),
    )

    def grads(dtype):
        h, dtrunk = reference_value(trunk, x, dtype), reference_grad(trunk, x, dtype)
        return [reference_grad(head, h, dtype) * dtrunk for head in heads]

    expected, atol = reference(grads)
    running = [sum(expected[: i + 1]) for i in range(len(expected))]
    expect_close(
        got,
        expected,
        call=call,
        rtol=1e-4,
        atol=atol,
        mistakes=[
            (
                _(
                    "each gradient includes the ones before it: x.grad accumulates across "
                    "backward() calls; zero it in between or use torch.autograd.grad"
                ),
                running,
            )
        ],
    )
