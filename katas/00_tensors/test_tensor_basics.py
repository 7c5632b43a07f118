"""Kata 00: tensors. Read a test's name for the behaviour, its body for the call.

Most tests draw random shapes, dtypes, memory layouts and values with Hypothesis; a
failure prints the example it used, so you can rerun the same call yourself.
"""

import math

import pytest
import tensor_basics as tb
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import Tensor

from katas._harness.forbid import Library, forbidden
from katas._harness.i18n import N_, _
from katas._harness.testing import expect_tensor_close, fail, show

exercise = pytest.mark.exercise

seeds = st.integers(0, 2**16)

expect_tensor = expect_tensor_close


def attempt(fn, *args, call: str, cause: str, errors=(RuntimeError, IndexError)):
    """Call fn(*args); a PyTorch error (shapes, devices, indices) fails with its likely cause."""
    try:
        return fn(*args)
    except NotImplementedError:
        raise  # an untouched stub: the harness turns it into the one-line TODO
    except errors as err:
        error = err
    # failing outside the except block keeps the original traceback out of the message
    first = (str(error).strip().splitlines() or [""])[0]
    fail(
        _("Called {call}.\nIt raised {type}: {first}\nLikely cause: {cause}").format(
            call=call, type=type(error).__name__, first=first, cause=cause
        )
    )


def expect_a_tensor(got, call: str) -> Tensor:
    if not isinstance(got, Tensor):
        fail(
            _("Called {call}.\nIt returned {got} ({type}); a tensor is asked for.").format(
                call=call, got=show(got), type=type(got).__name__
            )
        )
    return got


def shares_memory(a: Tensor, b: Tensor) -> bool:
    return a.untyped_storage().data_ptr() == b.untyped_storage().data_ptr()


# --- add_bias_column -------------------------------------------------------------------

BIAS_ERROR = N_(
    "torch.cat joins tensors of one device whose sizes agree except along `dim`: build the column "
    "where x lives, x.new_ones(n, 1) (or torch.ones(n, 1, dtype=x.dtype, device=x.device)), and "
    "join along dim=1"
)


def expect_dtype_of_x(got: Tensor, x: Tensor, call: str) -> None:
    if got.dtype == x.dtype:
        return
    if got.dtype == torch.get_default_dtype():
        cause = _(
            "torch.ones(...) without dtype= makes {dtype} (the default dtype), and torch.cat promoted "
            "the result to it. Take the dtype from x: x.new_ones(n, 1)"
        ).format(dtype=got.dtype)
    elif got.dtype == torch.float64:
        cause = _(
            "NumPy computes in float64 (np.ones, np.hstack), and torch.from_numpy and torch.tensor "
            "keep that dtype. Stay in torch: x.new_ones(n, 1) has x's dtype and device"
        )
    else:
        cause = _("build the column with x's dtype: x.new_ones(n, 1)")
    fail(
        _(
            "Called {call}.\nIt returned dtype {dtype}, but x is {dtype2} and the result must keep "
            "it.\nLikely cause: {cause}."
        ).format(call=call, dtype=got.dtype, dtype2=x.dtype, cause=cause)
    )


@exercise("add_bias_column")
def test_add_bias_column_appends_a_column_of_ones():
    x = torch.tensor([[2.0, 3.0], [4.0, 5.0], [6.0, 7.0]])
    call = _("add_bias_column(x) with x = [[2., 3.], [4., 5.], [6., 7.]]")
    got = expect_a_tensor(attempt(tb.add_bias_column, x, call=call, cause=_(BIAS_ERROR)), call)
    expect_dtype_of_x(got, x, call)
    expect_tensor(
        got,
        torch.tensor([[2.0, 3.0, 1.0], [4.0, 5.0, 1.0], [6.0, 7.0, 1.0]]),
        call=call,
        mistakes=[
            (
                _("the ones came first: append the column after x, torch.cat([x, ones], dim=1)"),
                [[1.0, 2.0, 3.0], [1.0, 4.0, 5.0], [1.0, 6.0, 7.0]],
            )
        ],
    )


@exercise("add_bias_column")
@given(
    dtype=st.sampled_from(
        [torch.float16, torch.bfloat16, torch.float32, torch.float64, torch.int32, torch.int64, torch.uint8]
    ),
    n=st.integers(1, 5),
    d=st.integers(1, 4),
    seed=seeds,
)
def test_add_bias_column_keeps_the_dtype_of_x(dtype, n, d, seed):
    x = torch.randint(0, 10, (n, d), generator=torch.Generator().manual_seed(seed)).to(dtype)
    call = _("add_bias_column(x) with x of shape {shape} and dtype {dtype}").format(shape=(n, d), dtype=dtype)
    got = expect_a_tensor(attempt(tb.add_bias_column, x, call=call, cause=_(BIAS_ERROR)), call)
    expect_dtype_of_x(got, x, call)
    expect_tensor(got, torch.cat([x, torch.ones(n, 1, dtype=dtype)], dim=1), call=call)


@exercise("add_bias_column")
def test_add_bias_column_stays_on_the_device_of_x():
    # A tensor made without device= lands on the default device. On a GPU machine that is the
    # CPU while x sits on the GPU; here the roles are swapped so the test runs anywhere: x is on
    # the CPU and the default device is `meta` (shapes and dtypes, no data).
    x = torch.tensor([[2.0, 3.0], [4.0, 5.0]], dtype=torch.float64)
    call = _("add_bias_column(x) with x on the CPU, inside `with torch.device('meta'):`")
    with torch.device("meta"):
        got = attempt(
            tb.add_bias_column,
            x,
            call=call,
            cause=_(
                "the column of ones was made on the default device (here meta), not where x is. "
                "Create it on x's device: x.new_ones(n, 1) or torch.ones(n, 1, dtype=x.dtype, "
                "device=x.device)"
            ),
        )
    got = expect_a_tensor(got, call)
    if got.device != x.device:
        fail(
            _(
                "Called {call}.\nIt returned a tensor on {device}, but x is on {device2}.\nLikely cause: "
                "the result was built from scratch on the default device; build only the column, on x's "
                "device (x.new_ones(n, 1)), and torch.cat it to x."
            ).format(call=call, device=got.device, device2=x.device)
        )
    expect_dtype_of_x(got, x, call)
    expect_tensor(got, torch.tensor([[2.0, 3.0, 1.0], [4.0, 5.0, 1.0]], dtype=torch.float64), call=call)


# --- flatten_batch ----------------------------------------------------------------------

VIEW_ERROR = N_(
    "view() never copies, so it fails when x's memory is not laid out row by row (a transpose "
    "does that). x.reshape(len(x), -1) or x.flatten(1) returns a view when the strides allow "
    "one and copies only when they do not"
)


def check_flattened(got, x: Tensor, call: str) -> Tensor:
    got = expect_a_tensor(got, call)
    if got.shape == (x.numel(),) and x.shape[0] != x.numel():
        fail(
            _(
                "Called {call}.\nIt returned shape {shape}: the batch dimension was flattened "
                "too.\nLikely cause: x.flatten() or x.view(-1); keep dim 0 with x.flatten(1) or "
                "x.reshape(len(x), -1)."
            ).format(call=call, shape=tuple(got.shape))
        )
    expect_tensor(got, x.contiguous().view(x.shape[0], -1), call=call)
    return got


def expect_a_view(got: Tensor, x: Tensor, call: str) -> None:
    if not shares_memory(got, x):
        fail(
            _(
                "Called {call}.\nIt returned a copy, but x's strides {stride} allow a view "
                "(x.reshape(len(x), -1) shares x's memory).\nLikely cause: .contiguous(), .clone() or "
                "torch.tensor(...) copied the data; x.reshape(len(x), -1) or x.flatten(1) returns a view "
                "whenever one is possible, and copies only when it must."
            ).format(call=call, stride=x.stride())
        )


@exercise("flatten_batch")
def test_flatten_batch_returns_a_view_of_a_contiguous_tensor():
    x = torch.arange(24).reshape(2, 3, 4)
    call = _("flatten_batch(x) with x = torch.arange(24).reshape(2, 3, 4)")
    got = check_flattened(attempt(tb.flatten_batch, x, call=call, cause=_(VIEW_ERROR)), x, call)
    expect_a_view(got, x, call)


@exercise("flatten_batch")
def test_flatten_batch_copies_a_transposed_tensor():
    x = torch.arange(24).reshape(2, 4, 3).transpose(1, 2)  # shape (2, 3, 4), not contiguous
    call = _("flatten_batch(x) with x = torch.arange(24).reshape(2, 4, 3).transpose(1, 2)")
    check_flattened(attempt(tb.flatten_batch, x, call=call, cause=_(VIEW_ERROR)), x, call)


@st.composite
def batch_layouts(draw):
    """A tensor of a random shape, contiguous or one of the layouts slicing and transposing make."""
    shape = draw(st.lists(st.integers(1, 4), min_size=2, max_size=4))
    numel = math.prod(shape)
    kind = draw(st.sampled_from(["contiguous", _("every other row"), _("last two dims swapped"), "cropped"]))
    if kind == "contiguous":
        return torch.arange(numel).reshape(shape), f"torch.arange({numel}).reshape({shape})"
    if kind == _("every other row"):
        base = [2 * shape[0], *shape[1:]]
        return torch.arange(2 * numel).reshape(base)[::2], f"torch.arange({2 * numel}).reshape({base})[::2]"
    if kind == _("last two dims swapped"):
        base = [*shape[:-2], shape[-1], shape[-2]]
        return torch.arange(numel).reshape(base).transpose(-1, -2), (
            f"torch.arange({numel}).reshape({base}).transpose(-1, -2)"
        )
    base = [*shape[:-1], shape[-1] + 1]
    size = math.prod(base)
    return torch.arange(size).reshape(base)[..., : shape[-1]], (
        f"torch.arange({size}).reshape({base})[..., :{shape[-1]}]"
    )


@exercise("flatten_batch")
@given(layout=batch_layouts())
def test_flatten_batch_views_whenever_the_strides_allow(layout):
    x, text = layout
    call = _("flatten_batch(x) with x = {x}, shape {shape}, strides {strides}").format(
        x=text, shape=tuple(x.shape), strides=x.stride()
    )
    got = check_flattened(attempt(tb.flatten_batch, x, call=call, cause=_(VIEW_ERROR)), x, call)
    # torch's own reshape decides whether a view is possible for this layout
    if shares_memory(x.reshape(x.shape[0], -1), x):
        expect_a_view(got, x, call)


# --- channels_first ---------------------------------------------------------------------


def check_channels_first(got, images: Tensor, call: str) -> Tensor:
    got = expect_a_tensor(got, call)
    b, h, w, c = images.shape
    if h != w and got.shape == (b, c, w, h):
        fail(
            _(
                "Called {call}.\nIt returned shape {shape}, but (B, C, H, W) is {value}: H and W traded "
                "places.\nLikely cause: transpose(1, 3) swaps dims 1 and 3, moving W before H; "
                "permute(0, 3, 1, 2) puts C second and keeps H before W."
            ).format(call=call, shape=tuple(got.shape), value=(b, c, h, w))
        )
    mistakes = [
        (
            _(
                "reshape (and view) only relabel the shape: the elements keep their memory order, so "
                "channels and pixels get mixed up. Moving an axis is permute(0, 3, 1, 2)"
            ),
            images.reshape(b, c, h, w),
        )
    ]
    if h == w:
        swapped = images.transpose(1, 3)
        mistakes.append((_("transpose(1, 3) swaps H and W too: use permute(0, 3, 1, 2)"), swapped))
    # The expected value is built channel by channel, without permute: plane c holds images[..., c].
    expected = torch.stack([images[..., channel] for channel in range(c)], dim=1)
    expect_tensor(got, expected, call=call, mistakes=mistakes)
    return got


@exercise("channels_first")
def test_channels_first_moves_the_channel_axis():
    # One 2x3 image with 3 channels that are easy to tell apart: channel c of pixel p holds 100*c + p.
    pixels = torch.arange(6.0).reshape(2, 3)
    images = torch.stack([pixels, 100 + pixels, 200 + pixels], dim=-1)[None]
    call = _(
        "channels_first(images) with images of shape (1, 2, 3, 3), channel c of pixel p holding 100*c + p"
    )
    check_channels_first(tb.channels_first(images), images, call)


@exercise("channels_first")
@given(shape=st.tuples(*[st.integers(1, 4)] * 4), seed=seeds)
def test_channels_first_keeps_every_pixel_value(shape, seed):
    images = torch.randn(shape, generator=torch.Generator().manual_seed(seed))
    call = _("channels_first(images) with images of shape (B, H, W, C) = {shape}").format(shape=shape)
    check_channels_first(tb.channels_first(images), images, call)


@exercise("channels_first")
def test_channels_first_returns_a_contiguous_tensor():
    images = torch.randn(2, 4, 5, 3, generator=torch.Generator().manual_seed(0))
    call = _("channels_first(images) with images of shape (2, 4, 5, 3)")
    got = check_channels_first(tb.channels_first(images), images, call)
    if not got.is_contiguous():
        fail(
            _(
                "Called {call}.\nIt returned the right values with strides {stride}, which are not "
                "contiguous (a contiguous (2, 3, 4, 5) tensor has strides (60, 20, 5, 1)).\nLikely "
                "cause: permute() returns a view with reordered strides and moves no data; call "
                ".contiguous() to lay the elements out in the new order (after that, .view(...) works)."
            ).format(call=call, stride=got.stride())
        )


# --- broadcast_shape --------------------------------------------------------------------


def broadcast_by_the_wrong_rules(a, b, right_aligned: bool, larger_wins: bool) -> tuple:
    """What a learner's rule gives: padding on the wrong side, or max() instead of 'a 1 stretches'."""
    ndim = max(len(a), len(b))
    if right_aligned:
        a, b = (1,) * (ndim - len(a)) + tuple(a), (1,) * (ndim - len(b)) + tuple(b)
    else:
        a, b = tuple(a) + (1,) * (ndim - len(a)), tuple(b) + (1,) * (ndim - len(b))
    return tuple(max(m, n) if larger_wins else (n if m == 1 else m) for m, n in zip(a, b, strict=True))


def check_shape(got, a, b, expected: tuple, call: str) -> None:
    if not isinstance(got, tuple) or not all(isinstance(s, int) for s in got):
        fail(
            _("Called {call}.\nIt returned {got} ({type}); return a tuple of ints.").format(
                call=call, got=repr(got), type=type(got).__name__
            )
        )
    if tuple(got) == expected:
        return
    cause = ""
    if got == broadcast_by_the_wrong_rules(a, b, right_aligned=True, larger_wins=True):
        cause = _(
            "\nLikely cause: you took the larger size. Only a size of 1 stretches: 1 and 0 give 0 "
            "(an empty dimension stays empty)."
        )
    elif got == broadcast_by_the_wrong_rules(a, b, right_aligned=False, larger_wins=False):
        cause = _(
            "\nLikely cause: shapes align at their last dimension, from the right; pad the shorter "
            "shape with 1s on the left."
        )
    fail(
        _(
            "Called {call}.\nIt returned {got}, but the tests expected {expected} (what broadcasting "
            "tensors of these shapes gives).{cause}"
        ).format(call=call, got=got, expected=expected, cause=cause)
    )


BROADCAST_ERROR = N_(
    "these shapes do broadcast. Shapes align from the right, at their last dimension: pad the "
    "shorter one with 1s on the left; then a size of 1 stretches to the other size"
)


@exercise("broadcast_shape")
def test_broadcast_shape_of_classic_examples():
    examples = [
        ((3, 1), (1, 4), (3, 4)),
        ((5, 3, 4), (4,), (5, 3, 4)),
        ((8, 1, 6, 1), (7, 1, 5), (8, 7, 6, 5)),
        ((), (2, 3), (2, 3)),
        ((2, 0), (1,), (2, 0)),
    ]
    for a, b, expected in examples:
        call = f"broadcast_shape({a}, {b})"
        got = attempt(tb.broadcast_shape, a, b, call=call, cause=_(BROADCAST_ERROR), errors=(ValueError,))
        check_shape(got, a, b, expected, call)


@st.composite
def broadcastable_pairs(draw):
    """Two shapes that broadcast: suffixes of one shape, some sizes replaced by 1."""
    full = draw(st.lists(st.integers(0, 5), max_size=4))

    def operand():
        ndim = draw(st.integers(0, len(full)))
        return tuple(1 if draw(st.booleans()) else size for size in full[len(full) - ndim :])

    return operand(), operand()


@exercise("broadcast_shape")
@given(pair=broadcastable_pairs())
def test_broadcast_shape_matches_torch(pair):
    a, b = pair
    # The real library as reference: broadcast two tiny tensors. (torch.broadcast_shapes would do,
    # but its first call imports sympy: 1.4 s.)
    expected = tuple(torch.broadcast_tensors(torch.empty(a), torch.empty(b))[0].shape)
    call = f"broadcast_shape({a}, {b})"
    got = attempt(tb.broadcast_shape, a, b, call=call, cause=_(BROADCAST_ERROR), errors=(ValueError,))
    check_shape(got, a, b, expected, call)


@st.composite
def incompatible_pairs(draw):
    """Two shapes with one dimension, `dim` from the right, whose sizes differ and neither is 1."""
    a, b = (list(s) for s in draw(broadcastable_pairs()))
    dim = draw(st.integers(1, 3))
    a, b = [1] * (dim - len(a)) + a, [1] * (dim - len(b)) + b
    a[-dim], b[-dim] = draw(st.sampled_from([(2, 3), (3, 2), (4, 5), (0, 2), (3, 0)]))
    return tuple(a), tuple(b), -dim


@exercise("broadcast_shape")
@given(case=incompatible_pairs())
def test_broadcast_shape_rejects_incompatible_shapes(case):
    a, b, dim = case
    call = f"broadcast_shape({a}, {b})"
    try:
        got = tb.broadcast_shape(a, b)
    except ValueError:
        return
    except NotImplementedError:
        raise
    except RuntimeError as err:
        error = err
    else:
        fail(
            _(
                "Called {call}.\nIt returned {got}, but these shapes cannot broadcast: at dim {dim} the "
                "sizes {a} and {b} differ and neither is 1. Raise ValueError.\nLikely cause: the larger "
                "size was taken without checking that the sizes are equal or one of them is 1."
            ).format(call=call, got=repr(got), dim=dim, a=a[dim], b=b[dim])
        )
    fail(
        _(
            "Called {call}.\nIt raised RuntimeError ({error}); raise ValueError for shapes that do not "
            "broadcast.\nLikely cause: torch.broadcast_shapes did the work; apply the rules yourself."
        ).format(call=call, error=error)
    )


def broadcast_helpers() -> list[Library]:
    """torch's broadcasting helpers, named in the learner's language."""
    shown = _("{name} (a torch broadcasting helper)")
    names = ("broadcast_shapes", "broadcast_tensors", "broadcast_to")
    return [Library(torch, name, shown.format(name=f"torch.{name}")) for name in names]


BROADCAST_HOW = N_(
    "This exercise is the rule itself: align the shapes at the right, pad the shorter one with 1s, and "
    "compare the sizes one dimension at a time."
)


@exercise("broadcast_shape")
def test_broadcast_shape_applies_the_rules_itself():
    call = "broadcast_shape((2, 1, 3), (4, 1))"
    with forbidden(call, _(BROADCAST_HOW), *broadcast_helpers()):
        got = tb.broadcast_shape((2, 1, 3), (4, 1))
    check_shape(got, (2, 1, 3), (4, 1), (2, 4, 3), call)


# --- pairwise_distances ---------------------------------------------------------------

DISTANCE_ERROR = N_(
    "a - b pairs row i of a with row i of b, and needs as many rows in both. Give the inputs "
    "different axes so that every row of a meets every row of b: a[:, None, :] - b[None, :, :] "
    "has shape (n, m, d)"
)


def check_distances(got, a: Tensor, b: Tensor, expected: Tensor, call: str, rtol=None, atol=None) -> None:
    got = expect_a_tensor(got, call)
    if got.dtype != a.dtype:
        fail(
            _(
                "Called {call}.\nIt returned dtype {dtype}, but a and b are {dtype2}.\nLikely cause: a "
                "tensor made without dtype= (torch.zeros(n, m), torch.tensor(list)) gets the default "
                "{get_default_dtype}; an expression of a and b keeps their dtype."
            ).format(call=call, dtype=got.dtype, dtype2=a.dtype, get_default_dtype=torch.get_default_dtype())
        )
    n, m = len(a), len(b)
    if n != m and got.shape == (m, n):
        fail(
            _(
                "Called {call}.\nIt returned shape {shape}, but a has {n} rows and b has {m}: the result "
                "is ({n}, {m}), row i holding the distances from a[i].\nLikely cause: the roles of a and "
                "b are swapped; a[:, None, :] - b[None, :, :]."
            ).format(call=call, shape=tuple(got.shape), n=n, m=m)
        )
    diff = a.double()[:, None, :] - b.double()[None, :, :]
    mistakes = [
        (_("these are squared distances: take .sqrt() of the summed squares"), diff.square().sum(-1)),
        (
            _(
                "this is the Manhattan (L1) distance, the sum of |differences|; the Euclidean distance is "
                "the square root of the sum of squared differences"
            ),
            diff.abs().sum(-1),
        ),
    ]
    if n == m:
        swapped = diff.square().sum(-1).sqrt().T
        mistakes.append((_("row i holds the distances from a[i]: you swapped a and b"), swapped))
    expect_tensor(got, expected, call=call, rtol=rtol, atol=atol, mistakes=mistakes)


@exercise("pairwise_distances")
def test_pairwise_distances_of_a_small_example():
    a = torch.tensor([[0.0, 0.0], [3.0, 4.0]])
    b = torch.tensor([[0.0, 0.0], [6.0, 8.0], [3.0, 0.0]])
    call = _("pairwise_distances(a, b) with a = [[0., 0.], [3., 4.]], b = [[0., 0.], [6., 8.], [3., 0.]]")
    got = attempt(tb.pairwise_distances, a, b, call=call, cause=_(DISTANCE_ERROR))
    check_distances(got, a, b, torch.tensor([[0.0, 10.0, 3.0], [5.0, 5.0, 4.0]]), call)


@exercise("pairwise_distances")
@given(
    n=st.integers(1, 5),
    m=st.integers(1, 5),
    d=st.integers(1, 4),
    dtype=st.sampled_from([torch.float32, torch.float64]),
    seed=seeds,
)
def test_pairwise_distances_match_the_definition(n, m, d, dtype, seed):
    gen = torch.Generator().manual_seed(seed)
    a, b = torch.randn(n, d, generator=gen, dtype=dtype), torch.randn(m, d, generator=gen, dtype=dtype)
    call = _("pairwise_distances(a, b) with a of shape {shape}, b of shape {shape2}, dtype {dtype}").format(
        shape=(n, d), shape2=(m, d), dtype=dtype
    )
    got = attempt(tb.pairwise_distances, a, b, call=call, cause=_(DISTANCE_ERROR))
    expected = torch.tensor([[math.dist(p, q) for q in b.tolist()] for p in a.tolist()], dtype=dtype)
    # Correct formulas (sqrt of summed squares, norm, cdist) round differently: a few ulps apart.
    rtol, atol = (1e-5, 1e-5) if dtype == torch.float32 else (1e-10, 1e-10)
    check_distances(got, a, b, expected, call, rtol=rtol, atol=atol)


class CountingTensor(Tensor):
    """A tensor that records every torch operation run on it or on tensors computed from it."""

    operations: list[str] = []

    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        cls.operations.append(getattr(func, "__name__", repr(func)))
        return super().__torch_function__(func, types, args, kwargs or {})


def count_operations(n: int, m: int) -> tuple[object, int]:
    gen = torch.Generator().manual_seed(n)
    a = torch.randn(n, 3, generator=gen).as_subclass(CountingTensor)
    b = torch.randn(m, 3, generator=gen).as_subclass(CountingTensor)
    CountingTensor.operations = []
    got = tb.pairwise_distances(a, b)
    return got, len(CountingTensor.operations)


@exercise("pairwise_distances")
def test_pairwise_distances_use_broadcasting_not_loops():
    _small, few = count_operations(3, 2)
    got, many = count_operations(30, 20)
    call = _("pairwise_distances(a, b) with 3 and 2 rows, then with 30 and 20 rows")
    if many > few:
        fail(
            _(
                "Called {call}.\nIt ran {few} tensor operations, then {many}: the work grows with the "
                "number of rows, so Python loops do it.\nLikely cause: a loop over rows or pairs. "
                "Broadcasting computes every pair in one expression: a[:, None, :] - b[None, :, :] has "
                "shape (n, m, d)."
            ).format(call=call, few=few, many=many)
        )
    if expect_a_tensor(got, call).shape != (30, 20):
        fail(
            _("Called {call}.\nIt returned shape {shape}; expected (30, 20).").format(
                call=call, shape=tuple(got.shape)
            )
        )


# --- pick_per_row -----------------------------------------------------------------------

PICK_ERROR = N_(
    "gather needs an index with as many dimensions as x, index.unsqueeze(1) of shape (n, 1); "
    "with plain indexing, pair the rows with the columns: x[torch.arange(len(x)), index]"
)


def check_picked(got, x: Tensor, index: Tensor, expected: Tensor, call: str) -> None:
    got = expect_a_tensor(got, call)
    n = len(x)
    if got.shape == (n, n) and n > 1:  # the tests use n > 1, so this shape tells x[:, index] from gather
        fail(
            _(
                "Called {call}.\nIt returned shape {shape}, but one value per row is ({n},).\nLikely "
                "cause: x[:, index] takes the same columns from every row, an (n, n) table; pair each "
                "row with its own column: x[torch.arange(len(x)), index], or x.gather(1, "
                "index.unsqueeze(1)).squeeze(1)."
            ).format(call=call, shape=tuple(got.shape), n=n)
        )
    if got.shape == (n, 1):
        fail(
            _(
                "Called {call}.\nIt returned shape {shape}, but one value per row is ({n},).\nLikely "
                "cause: gather's result has the shape of its index, (n, 1); squeeze(1) it."
            ).format(call=call, shape=tuple(got.shape), n=n)
        )
    mistakes = [
        (
            _(
                "torch.take(x, index) indexes the flattened x, so every pick came from the first row; "
                "pair each row with its own column"
            ),
            x.flatten()[index],
        )
    ]
    expect_tensor(got, expected, call=call, mistakes=mistakes)


@exercise("pick_per_row")
def test_pick_per_row_of_a_small_example():
    x = torch.arange(1.0, 13.0).reshape(4, 3)  # rows [1, 2, 3], [4, 5, 6], [7, 8, 9], [10, 11, 12]
    index = torch.tensor([2, 0, 1, 2])
    call = _("pick_per_row(x, index=[2, 0, 1, 2]) with x = torch.arange(1., 13.).reshape(4, 3)")
    got = attempt(tb.pick_per_row, x, index, call=call, cause=_(PICK_ERROR))
    check_picked(got, x, index, torch.tensor([3.0, 4.0, 8.0, 12.0]), call)


@exercise("pick_per_row")
@given(
    n=st.integers(2, 6),
    k=st.integers(1, 6),
    dtype=st.sampled_from([torch.float32, torch.float64, torch.int64]),
    seed=seeds,
)
def test_pick_per_row_for_random_indices(n, k, dtype, seed):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randint(-100, 100, (n, k), generator=gen).to(dtype)
    index = torch.randint(0, k, (n,), generator=gen)
    call = _("pick_per_row(x, index={index}) with x of shape {shape} and dtype {dtype}").format(
        index=index.tolist(), shape=(n, k), dtype=dtype
    )
    got = attempt(tb.pick_per_row, x, index, call=call, cause=_(PICK_ERROR))
    expected = torch.tensor([x[i, index[i]].item() for i in range(n)], dtype=dtype)
    check_picked(got, x, index, expected, call)


@exercise("pick_per_row")
@given(n=st.integers(2, 6), k=st.integers(1, 6), seed=seeds)
def test_pick_per_row_at_the_argmax_gives_the_row_maximum(n, k, seed):
    x = torch.randn(n, k, generator=torch.Generator().manual_seed(seed))
    index = x.argmax(dim=1)  # the column of each row's largest score: the predicted class
    call = _("pick_per_row(x, x.argmax(dim=1)) with x of shape {shape}").format(shape=(n, k))
    got = attempt(tb.pick_per_row, x, index, call=call, cause=_(PICK_ERROR))
    check_picked(got, x, index, x.amax(dim=1), call)


# --- replace_negatives --------------------------------------------------------------------


def replace_mistakes(x: Tensor, value: float) -> list:
    filler = torch.tensor(value, dtype=x.dtype)
    return [
        (
            _(
                "x.clamp(min=value) raises every entry below value, not just the negatives, and keeps "
                "negatives above value; select the negatives with the mask x < 0"
            ),
            x.clamp(min=value),
        ),
        (_("zeros are not negative: the mask is x < 0, not x <= 0"), torch.where(x <= 0, filler, x)),
        (_("relu() writes 0 into the negatives, whatever value is; use the mask x < 0"), x.relu()),
    ]


def check_out_of_place(got, x: Tensor, before: Tensor, version: int, value: float, call: str) -> None:
    if x._version != version or not torch.equal(x, before):
        fail(
            _(
                "Called {call}.\nIt changed the caller's x in place: x is now {x}, it was {before} "
                "(x._version went from {version} to {version2}; every in-place write bumps it).\nLikely "
                "cause: `x[x < 0] = value` and masked_fill_ write into x itself. Build a new tensor: "
                "torch.where(x < 0, value, x) or x.masked_fill(x < 0, value)."
            ).format(call=call, x=show(x), before=show(before), version=version, version2=x._version)
        )
    got = expect_a_tensor(got, call)
    if x.numel() and shares_memory(got, x):
        fail(
            _(
                "Called {call}.\nIt returned x itself or a view of x: the result shares x's memory, so a "
                "later in-place change to it would change the caller's x too. Return a new tensor."
            ).format(call=call)
        )
    expected = torch.where(x < 0, torch.tensor(value, dtype=x.dtype), x)
    expect_tensor(got, expected, call=call, mistakes=replace_mistakes(x, value))


@exercise("replace_negatives")
def test_replace_negatives_returns_a_new_tensor_and_keeps_x():
    x = torch.tensor([-1.5, 0.0, 2.0, -0.1])
    before, version = x.clone(), x._version
    call = _("replace_negatives(x, -1.0) with x = [-1.5, 0., 2., -0.1]")
    got = tb.replace_negatives(x, -1.0)
    check_out_of_place(got, x, before, version, -1.0, call)


@st.composite
def signed_tensors(draw):
    """Small tensors of any rank whose entries include negatives, zeros and positives."""
    shape = draw(st.lists(st.integers(0, 4), max_size=3))
    dtype = draw(st.sampled_from([torch.float32, torch.float64]))
    gen = torch.Generator().manual_seed(draw(seeds))
    x = (torch.randint(-4, 5, shape, generator=gen) * 0.5).to(dtype)
    return x


values = st.floats(-3.0, 3.0, allow_nan=False).map(lambda v: round(v, 1))


@exercise("replace_negatives")
@given(x=signed_tensors(), value=values)
def test_replace_negatives_for_random_tensors(x, value):
    before, version = x.clone(), x._version
    call = _("replace_negatives(x, {value}) with x = {x}, dtype {dtype}").format(
        value=value, x=show(x), dtype=x.dtype
    )
    got = tb.replace_negatives(x, value)
    check_out_of_place(got, x, before, version, value, call)


# --- replace_negatives_ -------------------------------------------------------------------


def check_in_place(got, x: Tensor, before: Tensor, value: float, call: str) -> None:
    if got is None:
        fail(
            _(
                "Called {call}.\nIt returned None. An in-place method returns the tensor it changed, so "
                "that calls chain (x.clamp_(0, 1).mul_(2)): end with `return x`."
            ).format(call=call)
        )
    expected = torch.where(before < 0, torch.tensor(value, dtype=before.dtype), before)
    expect_tensor(
        x,
        expected,
        call=_("{call}, then read x").format(call=call),
        mistakes=[
            (
                _(
                    "x did not change: you built a new tensor (torch.where, masked_fill, clone) instead of "
                    "writing into x. Use x.masked_fill_(x < 0, value) or x[x < 0] = value"
                ),
                before,
            )
        ],
    )
    if got is not x:
        fail(
            _(
                "Called {call}.\nIt returned a different tensor object than x; an in-place method "
                "returns the very tensor it changed: `return x`."
            ).format(call=call)
        )


@exercise("replace_negatives_")
def test_replace_negatives_in_place_changes_x_and_returns_it():
    x = torch.tensor([-1.5, 0.0, 2.0, -0.1])
    before = x.clone()
    call = _("replace_negatives_(x, -1.0) with x = [-1.5, 0., 2., -0.1]")
    got = tb.replace_negatives_(x, -1.0)
    check_in_place(got, x, before, -1.0, call)


VIEWS = {
    "base": lambda t: t,
    "base[:, 1]": lambda t: t[:, 1],
    "base.T": lambda t: t.T,
    "base[::2]": lambda t: t[::2],
}


@exercise("replace_negatives_")
@given(
    rows=st.integers(1, 4),
    cols=st.integers(2, 5),
    view=st.sampled_from(sorted(VIEWS)),
    dtype=st.sampled_from([torch.float32, torch.float64]),
    value=values,
    seed=seeds,
)
def test_replace_negatives_in_place_writes_through_a_view(rows, cols, view, dtype, value, seed):
    base = (torch.randint(-4, 5, (rows, cols), generator=torch.Generator().manual_seed(seed)) * 0.5).to(dtype)
    original = base.clone()
    selected = torch.zeros_like(base, dtype=torch.bool)
    VIEWS[view](selected).fill_(True)  # which entries of base the view covers
    x = VIEWS[view](base)
    if view == "base":
        call = _("replace_negatives_(x, {value}) with x = base = {base}")
    else:
        call = _("replace_negatives_(x, {value}) with x = {view}, a view of base = {base}")
    call = call.format(value=value, view=view, base=show(original))
    got = tb.replace_negatives_(x, value)
    check_in_place(got, x, VIEWS[view](original), value, call)
    expected_base = torch.where(selected & (original < 0), torch.tensor(value, dtype=dtype), original)
    if not torch.equal(base, expected_base):
        fail(
            _(
                "Called {call}.\nx looks right, but base is {base}; it should be "
                "{expected_base}.\nLikely cause: x was given new memory (x.data = ..., x.set_(...)) "
                "instead of having its own memory written; masked_fill_ or x[x < 0] = value write "
                "through the view into base."
            ).format(call=call, base=show(base), expected_base=show(expected_base))
        )
