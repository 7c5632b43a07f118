"""Mistakes learners make in kata 08_convolutions."""

import math

import torch.nn.functional as F
from torch import nn

from tests.mutants import mutant

KATA = "08_convolutions"


# --- conv_output_size ---


@mutant(KATA, "conv_output_size", says="floor division", everywhere=True)
def conv_output_size_true_division(size, kernel_size, stride=1, padding=0, dilation=1, ceil_mode=False):
    """Divides with / : the formula without the floor, a float that counts part of a window."""
    return (size + 2 * padding - dilation * (kernel_size - 1) - 1) / stride + 1


@mutant(KATA, "conv_output_size", says="one side only", everywhere=True)
def conv_output_size_padding_once(size, kernel_size, stride=1, padding=0, dilation=1, ceil_mode=False):
    """Adds the padding once instead of on both sides."""
    return (size + padding - dilation * (kernel_size - 1) - 1) // stride + 1


@mutant(KATA, "conv_output_size", says="dilation was ignored")
def conv_output_size_without_dilation(size, kernel_size, stride=1, padding=0, dilation=1, ceil_mode=False):
    """The textbook formula (size + 2p - k) // s + 1, which forgets dilation."""
    span = size + 2 * padding - kernel_size
    return (-(-span // stride) if ceil_mode else span // stride) + 1


@mutant(KATA, "conv_output_size", says="right-hand padding")
def conv_output_size_ceil_without_the_padding_rule(
    size, kernel_size, stride=1, padding=0, dilation=1, ceil_mode=False
):
    """Rounds up for ceil_mode but keeps a last window that starts in the right padding."""
    span = size + 2 * padding - dilation * (kernel_size - 1) - 1
    return (-(-span // stride) if ceil_mode else span // stride) + 1


# --- channels_last_strides ---


@mutant(KATA, "channels_last_strides", says="default contiguous layout")
def channels_last_strides_contiguous(shape):
    """Returns the strides of the default NCHW layout: the shape alone decides nothing."""
    _, c, h, w = shape
    return (c * h * w, h * w, w, 1)


@mutant(KATA, "channels_last_strides", says="memory order")
def channels_last_strides_in_memory_order(shape):
    """Lists the strides of the NHWC buffer in the order N, H, W, C instead of N, C, H, W."""
    _, c, h, w = shape
    return (h * w * c, w * c, c, 1)


# --- to_channels_last ---


@mutant(KATA, "to_channels_last", says="only relabels the shape", everywhere=True)
def to_channels_last_view(images):
    """Uses view where a permute is needed: the shape is right, the pixels are scrambled."""
    n, h, w, c = images.shape
    return images.view(n, c, h, w)


@mutant(KATA, "to_channels_last", says="transpose(1, 3)")
def to_channels_last_transpose(images):
    """Uses transpose(1, 3), which also swaps H and W (on square images the shape looks right)."""
    return images.transpose(1, 3)


@mutant(KATA, "to_channels_last", says="copied the data")
def to_channels_last_copies(images):
    """Adds .contiguous() out of habit: a copy in the default layout, not a channels_last view."""
    return images.permute(0, 3, 1, 2).contiguous()


# --- to_nhwc ---


@mutant(KATA, "to_nhwc", says="moves no data")
def to_nhwc_without_contiguous(x):
    """Returns the permuted view, which is not contiguous for a default-layout x."""
    return x.permute(0, 2, 3, 1)


@mutant(KATA, "to_nhwc", says="only relabels the shape")
def to_nhwc_reshape(x):
    """Uses reshape where a permute is needed."""
    n, c, h, w = x.shape
    return x.reshape(n, h, w, c)


@mutant(KATA, "to_nhwc", says="transpose(1, 3)", everywhere=True)
def to_nhwc_transpose(x):
    """Uses transpose(1, 3): H and W swap places."""
    return x.transpose(1, 3).contiguous()


@mutant(KATA, "to_nhwc", says="before permute copied")
def to_nhwc_contiguous_first(x):
    """Makes x contiguous before permuting: a channels_last x is copied for nothing."""
    return x.contiguous().permute(0, 2, 3, 1).contiguous()


# --- conv2d_unfold ---


def _unfolded(x, weight, stride, padding, groups, split):
    n, out_channels, kh, kw = x.shape[0], weight.shape[0], weight.shape[2], weight.shape[3]
    cols = split(F.unfold(x, (kh, kw), padding=padding, stride=stride), n, groups)
    out = weight.view(groups, out_channels // groups, -1) @ cols
    side = [(s + 2 * padding - k) // stride + 1 for s, k in zip(x.shape[2:], (kh, kw), strict=True)]
    return out.reshape(n, out_channels, *side)


def _split_right(cols, n, groups):
    return cols.view(n, groups, -1, cols.shape[-1])


@mutant(KATA, "conv2d_unfold", says="flipped", everywhere=True)
def conv2d_unfold_flips_the_kernel(x, weight, bias=None, stride=1, padding=0, groups=1):
    """Flips the kernel as a textbook convolution does; conv2d is a cross-correlation."""
    out = _unfolded(x, weight.flip(-1, -2), stride, padding, groups, _split_right)
    return out if bias is None else out + bias.view(-1, 1, 1)


@mutant(KATA, "conv2d_unfold", says="split into groups the wrong way")
def conv2d_unfold_splits_groups_wrongly(x, weight, bias=None, stride=1, padding=0, groups=1):
    """Splits unfold's rows as (K, groups) instead of (groups, K): channels of other groups mix in."""

    def split(cols, n, groups):
        return cols.view(n, -1, groups, cols.shape[-1]).transpose(1, 2)

    out = _unfolded(x, weight, stride, padding, groups, split)
    return out if bias is None else out + bias.view(-1, 1, 1)


@mutant(KATA, "conv2d_unfold", says="bias was not added")
def conv2d_unfold_drops_the_bias(x, weight, bias=None, stride=1, padding=0, groups=1):
    """Forgets to add the bias."""
    return _unfolded(x, weight, stride, padding, groups, _split_right)


@mutant(KATA, "conv2d_unfold", says="It called conv2d")
def conv2d_unfold_calls_conv2d(x, weight, bias=None, stride=1, padding=0, groups=1):
    """Skips the exercise and calls F.conv2d."""
    return F.conv2d(x, weight, bias, stride, padding, groups=groups)


# --- receptive_field ---


@mutant(KATA, "receptive_field", says="strides were ignored")
def receptive_field_without_strides(layers):
    """Adds (k - 1) * d per layer, as if every stride were 1."""
    return 1 + sum((k - 1) * d for k, _, d in layers)


@mutant(KATA, "receptive_field", says="own stride")
def receptive_field_own_stride_first(layers):
    """Multiplies the step by a layer's stride before adding that layer's widening."""
    field, jump = 1, 1
    for k, s, d in layers:
        jump *= s
        field += (k - 1) * d * jump
    return field


@mutant(KATA, "receptive_field", says="dilation was ignored")
def receptive_field_without_dilation(layers):
    """Forgets that dilation spreads the kernel."""
    field, jump = 1, 1
    for k, s, _ in layers:
        field += (k - 1) * jump
        jump *= s
    return field


# --- conv_parameters ---


def _kernel(kernel_size):
    return (kernel_size, kernel_size) if isinstance(kernel_size, int) else kernel_size


@mutant(KATA, "conv_parameters", says="not divided by groups")
def conv_parameters_ignores_groups(in_channels, out_channels, kernel_size, groups=1, bias=True):
    """Counts every input channel for every output channel, whatever the groups."""
    kh, kw = _kernel(kernel_size)
    return out_channels * in_channels * kh * kw + (out_channels if bias else 0)


@mutant(KATA, "conv_parameters", says="bias was left out")
def conv_parameters_without_bias(in_channels, out_channels, kernel_size, groups=1, bias=True):
    """Counts the weights only."""
    kh, kw = _kernel(kernel_size)
    return out_channels * (in_channels // groups) * kh * kw


@mutant(KATA, "conv_parameters", says="k x k kernel")
def conv_parameters_int_kernel_once(in_channels, out_channels, kernel_size, groups=1, bias=True):
    """Takes an int kernel_size k as k weights instead of k * k."""
    kh, kw = (kernel_size, 1) if isinstance(kernel_size, int) else kernel_size
    return out_channels * (in_channels // groups) * kh * kw + (out_channels if bias else 0)


# --- tiny_cnn ---


def _cnn(padding, in_features, num_classes):
    return nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=padding),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(8, 16, 3, padding=padding),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(in_features, num_classes),
    )


@mutant(KATA, "tiny_cnn", says="hard-coded for 8x8", everywhere=True)
def tiny_cnn_hard_coded_flatten(image_size, num_classes):
    """Hard-codes the flatten size worked out for 8x8 images: 16 * 2 * 2."""
    return _cnn(1, 16 * 2 * 2, num_classes)


@mutant(KATA, "tiny_cnn", says="rounded up")
def tiny_cnn_rounds_the_side_up(image_size, num_classes):
    """Works out the pooled side with ceil, as if MaxPool2d kept a partial window."""
    side = math.ceil(math.ceil(image_size / 2) / 2)
    return _cnn(1, 16 * side * side, num_classes)


@mutant(KATA, "tiny_cnn", says="no padding")
def tiny_cnn_without_padding(image_size, num_classes):
    """Leaves out padding=1, so each convolution shrinks the side by 2."""
    side = ((image_size - 2) // 2 - 2) // 2
    return _cnn(0, 16 * max(side, 1) ** 2, num_classes)
