"""Kata 08: convolutions. Read a test's name for the behaviour, its body for the call.

The reference is always the real thing: nn.Conv2d and nn.MaxPool2d run on a blank image,
F.conv2d, tensors built with torch.channels_last, gradients flowing back through a stack.
"""

import convolutions as cv
import pytest
import torch
import torch.nn.functional as F
from hypothesis import assume, given
from hypothesis import strategies as st
from torch import nn

from katas._harness.i18n import N_, _
from katas._harness.testing import expect_tensor_close, fail, show

exercise = pytest.mark.exercise
seeds = st.integers(0, 2**16)


def expect_int(got, expected: int, *, call: str, mistakes=()) -> None:
    """Fail unless `got` is the int `expected`; name every mistake whose value `got` is."""
    if isinstance(got, float) and not got.is_integer():
        fail(
            _(
                "Called {call}.\nIt returned {got}, a fraction, but the tests expected the int {expected}.\n"
                "Likely cause: the division was not rounded down: a window that does not fit is dropped, "
                "so use floor division (//)."
            ).format(call=call, got=show(got), expected=expected)
        )
    if isinstance(got, float) and got == expected:
        fail(
            _(
                "Called {call}.\nIt returned {got}, a float, but the tests expected the int {expected}.\n"
                "Likely cause: / always gives a float; floor division (//) keeps ints and drops a window "
                "that does not fit."
            ).format(call=call, got=show(got), expected=expected)
        )
    if isinstance(got, bool) or not isinstance(got, int):
        fail(
            _("Called {call}.\nIt returned {got} ({kind}); an int is asked for.").format(
                call=call, got=show(got), kind=type(got).__name__
            )
        )
    if got == expected:
        return
    causes = [cause for cause, wrong in mistakes if wrong == got and wrong != expected]
    lines = [
        _("Called {call}.\nIt returned {got}, but the tests expected {expected}.").format(
            call=call, got=got, expected=expected
        )
    ]
    if causes:
        lines.append(_("Likely cause: {cause}").format(cause=_("\nOr: ").join(causes)))
    fail("\n".join(lines))


# --- conv_output_size ------------------------------------------------------------------------


def size_mistakes(size, kernel_size, stride=1, padding=0, dilation=1, ceil_mode=False):
    """The value each known mistake gives for these arguments."""
    span = size + 2 * padding - dilation * (kernel_size - 1) - 1
    mistakes = [
        (
            _("padding was added on one side only: `padding` zeros go on both sides, size + 2 * padding"),
            (size + padding - dilation * (kernel_size - 1) - 1) // stride + 1,
        ),
        (
            _("dilation was ignored: a kernel of size k with dilation d spans d * (k - 1) + 1 pixels"),
            (size + 2 * padding - kernel_size) // stride + 1,
        ),
        (
            _("the kernel's span is d * (k - 1) + 1 pixels: the '- 1' after it is missing"),
            (size + 2 * padding - dilation * (kernel_size - 1)) // stride + 1,
        ),
    ]
    if ceil_mode:
        rounded_up = -(-span // stride) + 1
        mistakes += [
            (_("ceil_mode=True was ignored: it rounds the division up"), span // stride + 1),
            (
                _(
                    "with ceil_mode=True the last window may not start in the right-hand padding: "
                    "when (out - 1) * stride >= size + padding, drop that window"
                ),
                rounded_up,
            ),
        ]
    else:
        mistakes.append(
            (_("the division was rounded up; without ceil_mode it rounds down"), -(-span // stride) + 1)
        )
    return mistakes


def conv_call(size, kernel_size, stride, padding, dilation, ceil_mode=False) -> str:
    extra = ", ceil_mode=True" if ceil_mode else ""
    return (
        f"conv_output_size({size}, kernel_size={kernel_size}, stride={stride}, padding={padding}, "
        f"dilation={dilation}{extra})"
    )


def conv_layer_size(size, kernel_size, stride, padding, dilation) -> int:
    layer = nn.Conv2d(1, 1, kernel_size, stride, padding, dilation)
    return layer(torch.empty(1, 1, size, size)).shape[-1]


def pool_layer_size(size, kernel_size, stride, padding, dilation, ceil_mode) -> int:
    layer = nn.MaxPool2d(kernel_size, stride, padding, dilation, ceil_mode=ceil_mode)
    return layer(torch.empty(1, 1, size, size)).shape[-1]


COMMON_LAYERS = [
    # (size, kernel_size, stride, padding, dilation, ceil_mode), what it is
    ((32, 3, 1, 1, 1, False), N_("a 3x3 convolution with padding 1 keeps the size")),
    ((32, 3, 2, 1, 1, False), N_("stride 2 halves it")),
    ((28, 5, 1, 0, 1, False), N_("no padding: a 5x5 kernel loses 4 pixels")),
    ((7, 2, 2, 0, 1, False), N_("MaxPool2d(2) on an odd size drops the last column")),
    ((10, 3, 1, 2, 2, False), N_("dilation 2 makes a 3x3 kernel span 5 pixels")),
    ((7, 2, 2, 0, 1, True), N_("ceil_mode keeps the last, partial window")),
    ((5, 2, 2, 1, 1, True), N_("but never one that starts in the padding")),
]


@exercise("conv_output_size")
def test_conv_output_size_of_common_layers():
    for args, what in COMMON_LAYERS:
        size, kernel_size, stride, padding, dilation, ceil_mode = args
        call = f"{conv_call(*args)}  # {_(what)}"
        expected = pool_layer_size(*args) if ceil_mode else conv_layer_size(*args[:5])
        got = cv.conv_output_size(size, kernel_size, stride, padding, dilation, ceil_mode)
        expect_int(got, expected, call=call, mistakes=size_mistakes(*args))


@st.composite
def conv_arguments(draw):
    kernel_size, dilation = draw(st.integers(1, 7)), draw(st.integers(1, 3))
    padding, stride = draw(st.integers(0, 3)), draw(st.integers(1, 4))
    smallest = max(1, dilation * (kernel_size - 1) + 1 - 2 * padding)  # the kernel must fit
    return draw(st.integers(smallest, smallest + 30)), kernel_size, stride, padding, dilation


@exercise("conv_output_size")
@given(args=conv_arguments())
def test_conv_output_size_matches_conv2d(args):
    call = conv_call(*args)
    got = cv.conv_output_size(*args)
    expect_int(
        got,
        conv_layer_size(*args),
        call=call + _("  # checked against nn.Conv2d"),
        mistakes=size_mistakes(*args),
    )


@st.composite
def pool_arguments(draw):
    kernel_size, dilation = draw(st.integers(1, 5)), draw(st.integers(1, 2))
    padding, stride = draw(st.integers(0, kernel_size // 2)), draw(st.integers(1, 4))
    smallest = max(1, dilation * (kernel_size - 1) + 1 - 2 * padding)
    size = draw(st.integers(smallest, smallest + 20))
    return size, kernel_size, stride, padding, dilation, draw(st.booleans())


@exercise("conv_output_size")
@given(args=pool_arguments())
def test_conv_output_size_matches_maxpool2d(args):
    call = conv_call(*args)
    got = cv.conv_output_size(*args)
    expect_int(
        got,
        pool_layer_size(*args),
        call=call + _("  # checked against nn.MaxPool2d"),
        mistakes=size_mistakes(*args),
    )


# --- channels_last_strides -------------------------------------------------------------------


def strides_mistakes(shape):
    _n, c, h, w = shape
    return [
        (
            _(
                "these are the strides of the default contiguous layout, where each channel is a "
                "whole H x W plane; channels_last keeps the C values of one pixel side by side"
            ),
            (c * h * w, h * w, w, 1),
        ),
        (
            _(
                "these are the strides in memory order (N, H, W, C); stride() lists one per dimension "
                "of the shape, in the order N, C, H, W, so C's stride, 1, comes second"
            ),
            (h * w * c, w * c, c, 1),
        ),
    ]


def expect_strides(got, shape, call):
    expected = torch.empty(shape, memory_format=torch.channels_last).stride()
    if not isinstance(got, (tuple, list)) or not all(
        isinstance(s, int) and not isinstance(s, bool) for s in got
    ):
        fail(
            _("Called {call}.\nIt returned {got} ({kind}); a tuple of 4 ints is asked for.").format(
                call=call, got=show(got), kind=type(got).__name__
            )
        )
    if tuple(got) == expected:
        return
    lines = [
        _(
            "Called {call}.\nIt returned {got}, but a channels_last tensor of that shape has "
            "strides {expected}."
        ).format(call=call, got=tuple(got), expected=expected)
    ]
    causes = [cause for cause, wrong in strides_mistakes(shape) if wrong == tuple(got) and wrong != expected]
    if causes:
        lines.append(_("Likely cause: {cause}").format(cause=causes[0]))
    fail("\n".join(lines))


@exercise("channels_last_strides")
def test_channels_last_strides_of_a_small_batch():
    expect_strides(
        cv.channels_last_strides((2, 3, 4, 5)), (2, 3, 4, 5), "channels_last_strides((2, 3, 4, 5))"
    )


@exercise("channels_last_strides")
@given(shape=st.tuples(*[st.integers(1, 6)] * 4))
def test_channels_last_strides_match_torch(shape):
    call = _(
        "channels_last_strides({shape})  # checked against "
        "torch.empty(shape, memory_format=torch.channels_last)"
    )
    expect_strides(cv.channels_last_strides(shape), shape, call.format(shape=shape))


# --- to_channels_last and to_nhwc ------------------------------------------------------------

VIEW_NOT_PERMUTE = _(
    "view (or reshape) only relabels the shape: the elements keep their memory order, so channels "
    "and pixels get mixed up. Moving an axis is permute"
)


def distinct_images(shape, seed) -> torch.Tensor:
    """Every element different, so a value in the wrong place shows."""
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed))


def expect_tensor(got, call) -> torch.Tensor:
    if not isinstance(got, torch.Tensor):
        fail(
            _("Called {call}.\nIt returned {got} ({kind}); a tensor is asked for.").format(
                call=call, got=show(got), kind=type(got).__name__
            )
        )
    return got


def check_nchw(got, images, call) -> torch.Tensor:
    """`got` must be the NHWC batch `images` as (N, C, H, W) values."""
    got = expect_tensor(got, call)
    n, h, w, c = images.shape
    if h != w and tuple(got.shape) == (n, c, w, h):
        fail(
            _(
                "Called {call}.\nIt returned shape {got}, but (N, C, H, W) is {expected}: H and W traded "
                "places.\nLikely cause: transpose(1, 3) swaps dims 1 and 3, moving W before H; "
                "permute(0, 3, 1, 2) puts C second and keeps H before W."
            ).format(call=call, got=tuple(got.shape), expected=(n, c, h, w))
        )
    expected = torch.stack([images[..., channel] for channel in range(c)], dim=1)  # built without permute
    mistakes = [(VIEW_NOT_PERMUTE + " (0, 3, 1, 2)", images.reshape(n, c, h, w))]
    if h == w:
        mistakes.append(
            (
                _(
                    "transpose(1, 3) swaps H and W too (the shape is right, the pixels are not): "
                    "use permute(0, 3, 1, 2)"
                ),
                images.transpose(1, 3),
            )
        )
    expect_tensor_close(got, expected, call=call, mistakes=mistakes)
    return got


def shares_memory(a: torch.Tensor, b: torch.Tensor) -> bool:
    return a.untyped_storage().data_ptr() == b.untyped_storage().data_ptr()


@exercise("to_channels_last")
@given(shape=st.tuples(*[st.integers(1, 4)] * 4), seed=seeds)
def test_to_channels_last_keeps_every_pixel_value(shape, seed):
    images = distinct_images(shape, seed)
    call = _("to_channels_last(images) with NHWC images of shape {shape}").format(shape=shape)
    check_nchw(cv.to_channels_last(images), images, call)


@exercise("to_channels_last")
def test_to_channels_last_is_a_channels_last_view_of_the_same_memory():
    images = distinct_images((2, 4, 4, 3), 0)
    call = _("to_channels_last(images) with NHWC images of shape (2, 4, 4, 3)")
    got = check_nchw(cv.to_channels_last(images), images, call)
    if not shares_memory(got, images):
        fail(
            _(
                "Called {call}.\nIt returned the right values in a copy, with strides {strides}.\n"
                "Likely cause: .contiguous() (or .clone()) copied the data into the default NCHW layout. "
                "The NHWC memory already is the channels_last layout of the (N, C, H, W) shape: "
                "images.permute(0, 3, 1, 2) alone gives it, without moving a byte."
            ).format(call=call, strides=got.stride())
        )
    if not got.is_contiguous(memory_format=torch.channels_last):
        fail(
            _(
                "Called {call}.\nIt returned a view with strides {strides}, which is not "
                "channels_last {expected}."
            ).format(call=call, strides=got.stride(), expected=(48, 1, 12, 3))
        )


def check_nhwc(got, x, call) -> torch.Tensor:
    """`got` must be the NCHW batch `x` as (N, H, W, C) values."""
    got = expect_tensor(got, call)
    n, c, h, w = x.shape
    if h != w and tuple(got.shape) == (n, w, h, c):
        fail(
            _(
                "Called {call}.\nIt returned shape {got}, but (N, H, W, C) is {expected}: H and W traded "
                "places.\nLikely cause: transpose(1, 3) swaps dims 1 and 3, moving W before H; "
                "permute(0, 2, 3, 1) puts C last and keeps H before W."
            ).format(call=call, got=tuple(got.shape), expected=(n, h, w, c))
        )
    expected = torch.stack([x[:, channel] for channel in range(c)], dim=-1)  # built without permute
    mistakes = [(VIEW_NOT_PERMUTE + " (0, 2, 3, 1)", x.reshape(n, h, w, c))]
    if h == w:
        mistakes.append(
            (
                _(
                    "transpose(1, 3) swaps H and W too (the shape is right, the pixels are not): "
                    "use permute(0, 2, 3, 1)"
                ),
                x.transpose(1, 3),
            )
        )
    expect_tensor_close(got, expected, call=call, mistakes=mistakes)
    return got


@exercise("to_nhwc")
@given(shape=st.tuples(*[st.integers(1, 4)] * 4), channels_last=st.booleans(), seed=seeds)
def test_to_nhwc_keeps_every_pixel_value(shape, channels_last, seed):
    x = distinct_images(shape, seed)
    layout = "channels_last" if channels_last else "contiguous"
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    call = _("to_nhwc(x) with x of shape {shape}, {layout}").format(shape=shape, layout=layout)
    check_nhwc(cv.to_nhwc(x), x, call)


@exercise("to_nhwc")
def test_to_nhwc_returns_a_contiguous_tensor():
    x = distinct_images((2, 3, 4, 5), 1)
    call = _("to_nhwc(x) with a contiguous x of shape (2, 3, 4, 5)")
    got = check_nhwc(cv.to_nhwc(x), x, call)
    if not got.is_contiguous():
        fail(
            _(
                "Called {call}.\nIt returned the right values with strides {strides}, which are not "
                "contiguous (a contiguous (2, 4, 5, 3) tensor has strides (60, 15, 3, 1)).\n"
                "Likely cause: permute() only reorders the strides and moves no data; finish with "
                ".contiguous() to lay the elements out in NHWC order."
            ).format(call=call, strides=got.stride())
        )


@exercise("to_nhwc")
def test_to_nhwc_undoes_channels_last_without_a_copy():
    images = distinct_images((2, 4, 5, 3), 2)
    x = images.permute(0, 3, 1, 2)  # NCHW shape, channels_last memory: the NHWC buffer itself
    call = _("to_nhwc(x) with x = images.permute(0, 3, 1, 2), NHWC images of shape (2, 4, 5, 3)")
    got = check_nhwc(cv.to_nhwc(x), x, call)
    if not shares_memory(got, images):
        fail(
            _(
                "Called {call}.\nIt returned the right values, but in a copy.\n"
                "Likely cause: x.contiguous() (or .clone()) before permute copied the channels_last data "
                "into the default NCHW layout first. A channels_last x already holds NHWC memory: "
                "x.permute(0, 2, 3, 1) is contiguous, and .contiguous() then returns it as it is."
            ).format(call=call)
        )


# --- conv2d_unfold ---------------------------------------------------------------------------


def grouped_the_wrong_way(x, weight, bias, stride, padding, groups):
    """unfold's rows taken as (C*kh*kw / groups, groups) instead of (groups, C*kh*kw / groups)."""
    n, out_channels, kh, kw = x.shape[0], weight.shape[0], weight.shape[2], weight.shape[3]
    cols = F.unfold(x, (kh, kw), padding=padding, stride=stride)
    cols = cols.view(n, -1, groups, cols.shape[-1]).transpose(1, 2)
    out = weight.reshape(groups, out_channels // groups, -1) @ cols
    side = [(s + 2 * padding - k) // stride + 1 for s, k in zip(x.shape[2:], (kh, kw), strict=True)]
    out = out.reshape(n, out_channels, *side)
    return out if bias is None else out + bias.view(-1, 1, 1)


def check_conv(x, weight, bias, stride, padding, groups, call, got=None):
    """`got` (by default the learner's conv2d_unfold on these arguments) must equal F.conv2d."""
    if got is None:
        got = cv.conv2d_unfold(x, weight, bias, stride, padding, groups)
    expected = F.conv2d(x, weight, bias, stride, padding, groups=groups)
    mistakes = []
    if weight.shape[-1] > 1 or weight.shape[-2] > 1:
        mistakes.append(
            (
                _(
                    "the kernel was flipped: PyTorch's conv2d is a cross-correlation, each weight "
                    "multiplies the pixel at the same place in the patch (no flip)"
                ),
                F.conv2d(x, weight.flip(-1, -2), bias, stride, padding, groups=groups),
            )
        )
    if bias is not None:
        mistakes.append(
            (_("the bias was not added"), F.conv2d(x, weight, None, stride, padding, groups=groups))
        )
    if groups > 1:
        mistakes.append(
            (
                _(
                    "the unfolded rows were split into groups the wrong way: unfold lists them channel "
                    "by channel (C, kh, kw), so group g is the block of rows g*K to (g+1)*K, "
                    "cols.view(N, groups, K, L) with K = C // groups * kh * kw"
                ),
                grouped_the_wrong_way(x, weight, bias, stride, padding, groups),
            )
        )
    expect_tensor_close(got, expected, call=call, rtol=1e-4, atol=1e-5, mistakes=mistakes)


@exercise("conv2d_unfold")
def test_conv2d_unfold_of_a_small_image():
    x = torch.arange(16.0).reshape(1, 1, 4, 4)
    weight = torch.tensor([[[[1.0, 0.0], [0.0, -1.0]]]])
    call = _("conv2d_unfold(x, weight) with x = arange(16).reshape(1, 1, 4, 4), weight [[1, 0], [0, -1]]")
    check_conv(x, weight, None, 1, 0, 1, call)


@st.composite
def conv_cases(draw):
    groups = draw(st.integers(1, 3))
    in_channels, out_channels = groups * draw(st.integers(1, 2)), groups * draw(st.integers(1, 2))
    kh, kw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    stride, padding = draw(st.integers(1, 3)), draw(st.integers(0, 2))
    h = draw(st.integers(max(1, kh - 2 * padding), 7))
    w = draw(st.integers(max(1, kw - 2 * padding), 7))
    batch, with_bias, seed = draw(st.integers(1, 2)), draw(st.booleans()), draw(seeds)
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, in_channels, h, w, generator=gen)
    weight = torch.randn(out_channels, in_channels // groups, kh, kw, generator=gen)
    bias = torch.randn(out_channels, generator=gen) if with_bias else None
    call = _(
        "conv2d_unfold(x, weight, {bias}, stride={stride}, padding={padding}, groups={groups}) "
        "with x {x_shape}, weight {w_shape}"
    ).format(
        bias="bias" if with_bias else "None",
        stride=stride,
        padding=padding,
        groups=groups,
        x_shape=tuple(x.shape),
        w_shape=tuple(weight.shape),
    )
    return x, weight, bias, stride, padding, groups, call


@exercise("conv2d_unfold")
@given(case=conv_cases())
def test_conv2d_unfold_matches_f_conv2d(case):
    check_conv(*case)


@exercise("conv2d_unfold")
def test_conv2d_unfold_does_not_call_conv2d(monkeypatch):
    calls = []

    def recording(original):
        def conv(*args, **kwargs):
            calls.append(original.__name__)
            return original(*args, **kwargs)

        return conv

    for owner in (F, torch):
        monkeypatch.setattr(owner, "conv2d", recording(owner.conv2d))
    gen = torch.Generator().manual_seed(3)
    x, weight = torch.randn(2, 4, 5, 5, generator=gen), torch.randn(6, 2, 3, 3, generator=gen)
    call = _(
        "conv2d_unfold(x, weight, stride=2, padding=1, groups=2) with x (2, 4, 5, 5), weight (6, 2, 3, 3)"
    )
    got = cv.conv2d_unfold(x, weight, None, 2, 1, 2)
    monkeypatch.undo()
    if calls:
        fail(
            _(
                "Called {call}.\nIt called conv2d (directly or through nn.Conv2d): the exercise is to "
                "build the convolution from F.unfold and a matrix product."
            ).format(call=call)
        )
    check_conv(x, weight, None, 2, 1, 2, call, got=got)


# --- receptive_field -------------------------------------------------------------------------


def field_mistakes(layers):
    plain = 1 + sum((k - 1) * d for k, _s, d in layers)
    own_stride, jump = 1, 1
    for k, s, d in layers:
        jump *= s
        own_stride += (k - 1) * d * jump
    no_dilation, jump = 1, 1
    for k, s, _d in layers:
        no_dilation += (k - 1) * jump
        jump *= s
    return [
        (
            _(
                "the strides were ignored: after a stride-s layer one step of the next layer's input "
                "is s input pixels, so later kernels widen the field by "
                "(k - 1) * d * (product of earlier strides)"
            ),
            plain,
        ),
        (
            _(
                "each layer's own stride was counted in its own step: a layer's stride spaces the "
                "outputs of that layer, so multiply the step by it after adding the layer's (k - 1) * d"
            ),
            own_stride,
        ),
        (_("dilation was ignored: a dilated kernel covers (k - 1) * d + 1 pixels of its input"), no_dilation),
    ]


def measured_field(layers) -> int:
    """Backpropagate from the first output pixel of a 1-D stack with all-one weights: the last
    input pixel that receives a gradient marks the edge of the receptive field."""
    x = torch.ones(1, 1, 256, dtype=torch.float64, requires_grad=True)
    out = x
    for k, s, d in layers:
        out = F.conv1d(out, torch.ones(1, 1, k, dtype=torch.float64), stride=s, dilation=d)
    out[0, 0, 0].backward()
    return int(x.grad[0, 0].nonzero().max()) + 1


STACKS = [
    ([], N_("no layer: a pixel sees itself")),
    ([(3, 1, 1)], N_("one 3x3 convolution")),
    ([(3, 1, 1), (3, 1, 1), (3, 1, 1)], N_("three 3x3 convolutions see as far as one 7x7")),
    ([(3, 1, 2)], N_("a 3x3 convolution with dilation 2")),
    ([(3, 2, 1), (3, 1, 1)], N_("a stride-2 convolution, then a 3x3 one")),
    (
        [(3, 1, 1), (3, 1, 1), (2, 2, 1), (3, 1, 1), (3, 1, 1), (2, 2, 1)],
        N_("two VGG blocks: conv, conv, max pool 2"),
    ),
]


@exercise("receptive_field")
def test_receptive_field_of_familiar_stacks():
    for layers, what in STACKS:
        call = f"receptive_field({layers})  # {_(what)}"
        expect_int(
            cv.receptive_field(layers), measured_field(layers), call=call, mistakes=field_mistakes(layers)
        )


@exercise("receptive_field")
@given(
    layers=st.lists(
        st.tuples(st.integers(1, 4), st.integers(1, 3), st.integers(1, 2)), min_size=1, max_size=4
    )
)
def test_receptive_field_matches_the_gradient_of_one_output_pixel(layers):
    call = _("receptive_field({layers})  # measured by backpropagating from one output pixel").format(
        layers=layers
    )
    expect_int(cv.receptive_field(layers), measured_field(layers), call=call, mistakes=field_mistakes(layers))


# --- conv_parameters -------------------------------------------------------------------------


def parameter_mistakes(in_channels, out_channels, kernel_size, groups=1, bias=True):
    kh, kw = (kernel_size, kernel_size) if isinstance(kernel_size, int) else kernel_size
    bias_values = out_channels if bias else 0
    return [
        (
            _(
                "in_channels was not divided by groups: each output channel sees only "
                "in_channels // groups inputs"
            ),
            out_channels * in_channels * kh * kw + bias_values,
        ),
        (
            _("the bias was left out: with bias=True each output channel has one bias value"),
            out_channels * (in_channels // groups) * kh * kw,
        ),
        (
            _("a bias was counted with bias=False"),
            out_channels * (in_channels // groups) * kh * kw + out_channels,
        ),
        (
            _("an int kernel_size k means a k x k kernel: k * k weights per input channel, not k"),
            out_channels * (in_channels // groups) * kh + bias_values,
        ),
    ]


def parameters_call(in_channels, out_channels, kernel_size, groups, bias) -> str:
    return f"conv_parameters({in_channels}, {out_channels}, {kernel_size!r}, groups={groups}, bias={bias})"


def layer_parameters(in_channels, out_channels, kernel_size, groups, bias) -> int:
    layer = nn.Conv2d(in_channels, out_channels, kernel_size, groups=groups, bias=bias)
    return sum(p.numel() for p in layer.parameters())


@exercise("conv_parameters")
def test_conv_parameters_of_familiar_layers():
    for args in [
        (3, 16, 3, 1, True),
        (16, 16, 3, 16, False),
        (64, 128, (3, 1), 1, True),
        (8, 4, 5, 2, False),
    ]:
        call = parameters_call(*args)
        expect_int(
            cv.conv_parameters(*args), layer_parameters(*args), call=call, mistakes=parameter_mistakes(*args)
        )


@exercise("conv_parameters")
@given(
    groups=st.integers(1, 4),
    per_group=st.tuples(st.integers(1, 4), st.integers(1, 4)),
    kernel_size=st.one_of(st.integers(1, 5), st.tuples(st.integers(1, 5), st.integers(1, 5))),
    bias=st.booleans(),
)
def test_conv_parameters_match_the_numel_sum_of_nn_conv2d(groups, per_group, kernel_size, bias):
    args = (groups * per_group[0], groups * per_group[1], kernel_size, groups, bias)
    call = parameters_call(*args) + _(
        "  # checked against sum(p.numel() for p in nn.Conv2d(...).parameters())"
    )
    expect_int(
        cv.conv_parameters(*args), layer_parameters(*args), call=call, mistakes=parameter_mistakes(*args)
    )


@exercise("conv_parameters")
def test_conv_parameters_add_up_to_a_whole_cnn():
    convs = [(3, 32, 3, 1, True), (32, 32, 3, 32, False), (32, 64, 1, 1, False), (64, 64, (1, 3), 4, True)]
    model = nn.Sequential(*(nn.Conv2d(i, o, k, groups=g, bias=b) for i, o, k, g, b in convs))
    for number, (args, layer) in enumerate(zip(convs, model, strict=True), 1):
        call = parameters_call(*args) + _("  # layer {number} of the CNN").format(number=number)
        expected = sum(p.numel() for p in layer.parameters())
        expect_int(cv.conv_parameters(*args), expected, call=call, mistakes=parameter_mistakes(*args))
    expected = sum(p.numel() for p in model.parameters())
    got = sum(cv.conv_parameters(*args) for args in convs)
    if got != expected:
        fail(
            _(
                "Summed conv_parameters over the layers {convs} (in, out, kernel, groups, bias).\n"
                "The total is {got}, but the model has {expected} parameter values."
            ).format(convs=convs, got=show(got), expected=expected)
        )


# --- tiny_cnn --------------------------------------------------------------------------------


def describe(module: nn.Module) -> str:
    """A layer as the docstring writes it, whatever spelling built it (2 or (2, 2), inplace or not)."""

    def one(v):
        return v[0] if isinstance(v, tuple) and len(set(v)) == 1 else v

    if isinstance(module, nn.Conv2d):
        extra = "" if one(module.stride) == 1 else f", stride={one(module.stride)}"
        return (
            f"Conv2d({module.in_channels}, {module.out_channels}, {one(module.kernel_size)}, "
            f"padding={one(module.padding)}{extra})"
        )
    if isinstance(module, nn.MaxPool2d):
        stride = one(module.stride)
        extra = "" if stride in (None, one(module.kernel_size)) else f", stride={stride}"
        return f"MaxPool2d({one(module.kernel_size)}{extra})"
    if isinstance(module, nn.Linear):
        return f"Linear({module.in_features}, {module.out_features})"
    return f"{type(module).__name__}()"


def expected_layers(image_size: int, num_classes: int) -> list[str]:
    side = image_size // 4
    return [
        "Conv2d(1, 8, 3, padding=1)", "ReLU()", "MaxPool2d(2)",
        "Conv2d(8, 16, 3, padding=1)", "ReLU()", "MaxPool2d(2)",
        "Flatten()", f"Linear({16 * side * side}, {num_classes})",
    ]  # fmt: skip


def flatten_causes(in_features: int, image_size: int) -> list[str]:
    """Why the Linear layer's in_features is wrong, from its value."""
    half_up = -(-image_size // 2)
    rounded_up = -(-half_up // 2)
    causes = []
    if in_features == 16 * 2 * 2 and image_size // 4 != 2:
        causes.append(
            _(
                "the flatten size was hard-coded for 8x8 images (16 * 2 * 2 = 64); compute it from "
                "image_size: 16 * (image_size // 4) ** 2"
            )
        )
    if in_features == 16 * rounded_up**2:
        causes.append(
            _("the side was rounded up: each MaxPool2d(2) rounds down, {size} -> {half} -> {quarter}").format(
                size=image_size, half=image_size // 2, quarter=image_size // 4
            )
        )
    if in_features in (16 * image_size**2, 16 * (image_size // 2) ** 2):
        causes.append(_("a MaxPool2d(2) was not counted: each one halves the side"))
    return causes


def build_cnn(image_size: int, num_classes: int) -> nn.Module:
    call = f"tiny_cnn({image_size}, num_classes={num_classes})"
    model = cv.tiny_cnn(image_size, num_classes)
    if not isinstance(model, nn.Module):
        fail(
            _("Called {call}.\nIt returned {got}; an nn.Sequential is asked for.").format(
                call=call, got=show(model)
            )
        )
    got = [describe(m) for m in model.modules() if not isinstance(m, nn.Sequential)]
    expected = expected_layers(image_size, num_classes)
    if got == expected:
        return model
    lines = [
        _("Called {call}.\nIts layers are\n  {got}\nbut the tests expected\n  {expected}").format(
            call=call, got=", ".join(got), expected=", ".join(expected)
        )
    ]
    causes = []
    if any(text.startswith("Conv2d") and "padding=0" in text for text in got):
        causes.append(_("a convolution has no padding: padding=1 keeps the side of a 3x3 convolution"))
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    if got[:-1] == expected[:-1] and len(linears) == 1:
        causes += flatten_causes(linears[0].in_features, image_size)
    if causes:
        lines.append(_("Likely cause: {cause}").format(cause=causes[0]))
    fail("\n".join(lines))


@exercise("tiny_cnn")
def test_tiny_cnn_has_the_docstrings_layers():
    build_cnn(13, 3)


@exercise("tiny_cnn")
@given(image_size=st.integers(4, 20), num_classes=st.integers(1, 5))
def test_tiny_cnn_fits_every_image_size(image_size, num_classes):
    model = build_cnn(image_size, num_classes)
    x = torch.randn(2, 1, image_size, image_size, generator=torch.Generator().manual_seed(image_size))
    call = _("tiny_cnn({size}, num_classes={classes})(x) with x of shape (2, 1, {size}, {size})").format(
        size=image_size, classes=num_classes
    )
    with torch.no_grad():
        out = model(x)
    if not isinstance(out, torch.Tensor) or tuple(out.shape) != (2, num_classes):
        fail(
            _("Called {call}.\nIt returned {got}; logits of shape {expected} are asked for.").format(
                call=call, got=show(out), expected=(2, num_classes)
            )
        )


def bars(n: int, size: int, seed: int, noise: float = 0.3) -> tuple[torch.Tensor, torch.Tensor]:
    """Noisy images with one bright line: label 0 a horizontal one, label 1 a vertical one."""
    gen = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, 2, (n,), generator=gen)
    where = torch.randint(0, size, (n,), generator=gen)
    images = noise * torch.randn(n, 1, size, size, generator=gen)
    rows, horizontal = torch.arange(n), labels == 0
    images[rows[horizontal], 0, where[horizontal], :] += 1.0
    images[rows[~horizontal], 0, :, where[~horizontal]] += 1.0
    return images, labels


def train(model: nn.Module, images, labels, epochs: int, seed: int, lr: float = 0.01) -> None:
    """Adam written out (torch.optim's first step costs seconds of imports), batches of 32."""
    params = [p for p in model.parameters() if p.requires_grad]
    first = [torch.zeros_like(p) for p in params]
    second = [torch.zeros_like(p) for p in params]
    gen, step = torch.Generator().manual_seed(seed), 0
    for _epoch in range(epochs):
        for batch in torch.randperm(len(images), generator=gen).split(32):
            loss = F.cross_entropy(model(images[batch]), labels[batch])
            grads = torch.autograd.grad(loss, params)
            step += 1
            with torch.no_grad():
                for p, g, m, v in zip(params, grads, first, second, strict=True):
                    m.lerp_(g, 0.1)
                    v.lerp_(g.square(), 0.001)
                    p -= lr * (m / (1 - 0.9**step)) / ((v / (1 - 0.999**step)).sqrt() + 1e-8)


@exercise("tiny_cnn")
def test_tiny_cnn_learns_horizontal_versus_vertical_bars():
    torch.manual_seed(0)
    model = build_cnn(8, 2)
    images, labels = bars(256, 8, seed=1)
    held_out, held_out_labels = bars(200, 8, seed=2)
    train(model, images, labels, epochs=6, seed=3)
    with torch.no_grad():
        accuracy = (model(held_out).argmax(dim=1) == held_out_labels).float().mean().item()
    if accuracy < 0.95:
        fail(
            _(
                "Trained tiny_cnn(8, num_classes=2) for 6 epochs (Adam, lr 0.01, batches of 32) on 256 "
                "noisy 8x8 images of horizontal (label 0) or vertical (label 1) bars.\n"
                "It classified {accuracy:.1%} of 200 held-out images correctly; the tests expected at "
                "least 95%.\nCheck the order of the layers: a ReLU after each convolution, then the pooling."
            ).format(accuracy=accuracy)
        )
