"""Kata 08: convolutions (reference solutions)."""

from __future__ import annotations

from collections.abc import Sequence

import torch.nn.functional as F
from torch import Tensor, nn


def conv_output_size(
    size: int, kernel_size: int, stride: int = 1, padding: int = 0, dilation: int = 1, ceil_mode: bool = False
) -> int:
    span = size + 2 * padding - dilation * (kernel_size - 1) - 1
    if not ceil_mode:
        return span // stride + 1
    out = -(-span // stride) + 1
    # A pooling window may not start in the right padding.
    return out - 1 if (out - 1) * stride >= size + padding else out


def channels_last_strides(shape: Sequence[int]) -> tuple[int, int, int, int]:
    _, c, h, w = shape
    return (h * w * c, 1, w * c, c)


def to_channels_last(images: Tensor) -> Tensor:
    return images.permute(0, 3, 1, 2)


def to_nhwc(x: Tensor) -> Tensor:
    return x.permute(0, 2, 3, 1).contiguous()


def conv2d_unfold(
    x: Tensor, weight: Tensor, bias: Tensor | None = None, stride: int = 1, padding: int = 0, groups: int = 1
) -> Tensor:
    n, _, h, w = x.shape
    out_channels, _, kh, kw = weight.shape
    cols = F.unfold(x, (kh, kw), padding=padding, stride=stride)  # (N, C*kh*kw, L)
    cols = cols.view(n, groups, -1, cols.shape[-1])  # unfold's rows go channel by channel
    out = weight.view(groups, out_channels // groups, -1) @ cols  # (N, G, O/G, L)
    out = out.view(
        n, out_channels, conv_output_size(h, kh, stride, padding), conv_output_size(w, kw, stride, padding)
    )
    return out if bias is None else out + bias.view(-1, 1, 1)


def receptive_field(layers: Sequence[tuple[int, int, int]]) -> int:
    field, jump = 1, 1
    for kernel_size, stride, dilation in layers:
        field += (kernel_size - 1) * dilation * jump
        jump *= stride
    return field


def conv_parameters(
    in_channels: int,
    out_channels: int,
    kernel_size: int | tuple[int, int],
    groups: int = 1,
    bias: bool = True,
) -> int:
    kh, kw = (kernel_size, kernel_size) if isinstance(kernel_size, int) else kernel_size
    return out_channels * (in_channels // groups) * kh * kw + (out_channels if bias else 0)


def tiny_cnn(image_size: int, num_classes: int) -> nn.Sequential:
    side = image_size // 2 // 2  # each MaxPool2d(2) floors
    return nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(8, 16, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(16 * side * side, num_classes),
    )
