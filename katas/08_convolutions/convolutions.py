"""Kata 08: convolutions, layouts and a tiny CNN.

Replace each `raise NotImplementedError` with your code, then run
`pytest katas/08_convolutions`. The lesson is in README.md beside this file.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def conv_output_size(
    size: int, kernel_size: int, stride: int = 1, padding: int = 0, dilation: int = 1, ceil_mode: bool = False
) -> int:
    """Return the output length along one spatial axis of nn.Conv2d or nn.MaxPool2d, by hand.

    `padding` zeros go on both sides of the axis; a dilated kernel spans
    dilation * (kernel_size - 1) + 1 pixels; the window moves `stride` pixels at a
    time and a window that does not fit is dropped (the division rounds down).
    `ceil_mode=True` (MaxPool2d only) rounds up instead, but never lets the last
    window start in the right-hand padding.

    >>> conv_output_size(32, kernel_size=3, stride=2, padding=1)
    16
    >>> conv_output_size(7, kernel_size=2, stride=2)
    3
    >>> conv_output_size(7, kernel_size=2, stride=2, ceil_mode=True)
    4

    Docs: https://docs.pytorch.org/docs/stable/generated/torch.nn.Conv2d.html
    """
    raise NotImplementedError("conv_output_size")


def channels_last_strides(shape: Sequence[int]) -> tuple[int, int, int, int]:
    """Return the strides of an (N, C, H, W) tensor stored in `torch.channels_last` memory format.

    The shape stays (N, C, H, W); only the order of the elements in memory
    changes: the C values of one pixel sit side by side (N, H, W, C order).
    `stride()` still lists one step per dimension in the order N, C, H, W.

    >>> channels_last_strides((2, 3, 4, 5))
    (60, 1, 15, 3)

    Docs: https://docs.pytorch.org/tutorials/intermediate/memory_format_tutorial.html
    """
    raise NotImplementedError("channels_last_strides")


def to_channels_last(images: Tensor) -> Tensor:
    """Return the NHWC batch `images` as an (N, C, H, W) tensor in channels_last format, no copy.

    `result[n, c, h, w] == images[n, h, w, c]`, and the result shares the memory of
    `images`: an NHWC buffer already is the channels_last layout of the NCHW shape,
    so nothing needs to move. (Kata 00's channels_first copied it into the default
    contiguous layout instead.)

    >>> x = to_channels_last(torch.zeros(8, 32, 32, 3))
    >>> x.shape, x.is_contiguous(memory_format=torch.channels_last)
    (torch.Size([8, 3, 32, 32]), True)

    Docs: https://docs.pytorch.org/docs/stable/tensor_attributes.html#torch-memory-format
    """
    raise NotImplementedError("to_channels_last")


def to_nhwc(x: Tensor) -> Tensor:
    """Return the (N, C, H, W) batch `x` as a contiguous (N, H, W, C) tensor: the way back.

    `result[n, h, w, c] == x[n, c, h, w]` for `x` in either memory format. When `x`
    is already channels_last its memory is NHWC, so the result must share it (no
    copy); from the default contiguous layout a copy is unavoidable.

    >>> to_nhwc(torch.zeros(8, 3, 32, 32)).shape
    torch.Size([8, 32, 32, 3])

    Docs: https://docs.pytorch.org/docs/stable/generated/torch.Tensor.contiguous.html
    """
    raise NotImplementedError("to_nhwc")


def conv2d_unfold(
    x: Tensor, weight: Tensor, bias: Tensor | None = None, stride: int = 1, padding: int = 0, groups: int = 1
) -> Tensor:
    """Return F.conv2d(x, weight, bias, stride, padding, groups=groups) without calling conv2d.

    `F.unfold` cuts every kernel-sized patch out of the (N, C, H, W) input into a
    column, (N, C*kh*kw, L) for L output positions; a convolution is then a
    matrix product of the (O, C*kh*kw) weight with those columns. With groups,
    the C input channels and O output channels split into `groups` equal blocks
    and block g of the output sees only block g of the input. `weight` is
    (O, C // groups, kh, kw), `bias` is (O,) or None.

    >>> x, w = torch.randn(2, 4, 6, 6), torch.randn(6, 2, 3, 3)
    >>> y = conv2d_unfold(x, w, padding=1, groups=2)
    >>> torch.allclose(y, F.conv2d(x, w, padding=1, groups=2), atol=1e-5)
    True

    Docs: https://docs.pytorch.org/docs/stable/generated/torch.nn.functional.unfold.html
    """
    raise NotImplementedError("conv2d_unfold")


def receptive_field(layers: Sequence[tuple[int, int, int]]) -> int:
    """Return how many input pixels (along one axis) one output pixel of a stack of layers sees.

    `layers` lists (kernel_size, stride, dilation) of each convolution or pooling
    layer, input first. A layer with kernel k and dilation d widens the field by
    (k - 1) * d steps of its input, and one step of its input is the product of
    the strides of every layer before it, in input pixels.

    >>> receptive_field([(3, 1, 1), (3, 1, 1)])  # two 3x3 convolutions see 5x5
    5
    >>> receptive_field([(3, 2, 1), (3, 1, 1)])  # after a stride 2, a step is 2 pixels
    7

    Docs: https://docs.pytorch.org/docs/stable/generated/torch.nn.Conv2d.html
    """
    raise NotImplementedError("receptive_field")


def conv_parameters(
    in_channels: int,
    out_channels: int,
    kernel_size: int | tuple[int, int],
    groups: int = 1,
    bias: bool = True,
) -> int:
    """Return how many parameter values nn.Conv2d(in_channels, out_channels, kernel_size, ...) has.

    Use the formula, not a layer: each output channel has one kh x kw kernel per
    input channel of its group, plus one bias value. An int `kernel_size` means a
    square kernel.

    >>> conv_parameters(3, 16, 3)  # 16 * 3 * 3 * 3 + 16
    448
    >>> conv_parameters(16, 16, 3, groups=16, bias=False)  # depthwise: one 3x3 kernel per channel
    144

    Docs: https://docs.pytorch.org/docs/stable/generated/torch.nn.Conv2d.html
    """
    raise NotImplementedError("conv_parameters")


def tiny_cnn(image_size: int, num_classes: int) -> nn.Sequential:
    """Return a small CNN for (N, 1, image_size, image_size) images, any image_size >= 4.

    In order: Conv2d(1, 8, 3, padding=1), ReLU, MaxPool2d(2),
    Conv2d(8, 16, 3, padding=1), ReLU, MaxPool2d(2), Flatten, and a Linear layer
    from the flattened features to `num_classes` logits. Work out the Linear
    layer's in_features from `image_size` (each MaxPool2d(2) halves the side,
    rounding down), so the same code serves every image size.

    >>> tiny_cnn(8, num_classes=2)(torch.randn(5, 1, 8, 8)).shape
    torch.Size([5, 2])
    >>> tiny_cnn(13, num_classes=3)(torch.randn(5, 1, 13, 13)).shape
    torch.Size([5, 3])

    Docs: https://docs.pytorch.org/docs/stable/generated/torch.nn.Flatten.html
    """
    raise NotImplementedError("tiny_cnn")
