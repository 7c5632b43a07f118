"""Kata 00: tensors, shapes, broadcasting and indexing (reference solution)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor


def add_bias_column(x: Tensor) -> Tensor:
    """x of shape (n, d) with a column of ones appended, in x's dtype and on x's device."""
    return torch.cat([x, x.new_ones(x.shape[0], 1)], dim=1)


def flatten_batch(x: Tensor) -> Tensor:
    """(B, d1, d2, ...) -> (B, d1 * d2 * ...), a view whenever the strides allow one."""
    return x.flatten(start_dim=1)


def channels_first(images: Tensor) -> Tensor:
    """(B, H, W, C) -> (B, C, H, W), contiguous."""
    return images.permute(0, 3, 1, 2).contiguous()


def broadcast_shape(a: Sequence[int], b: Sequence[int]) -> tuple[int, ...]:
    """The shape broadcasting gives for shapes `a` and `b`; ValueError if they are incompatible."""
    ndim = max(len(a), len(b))
    a = (1,) * (ndim - len(a)) + tuple(a)
    b = (1,) * (ndim - len(b)) + tuple(b)
    shape = []
    for dim, (m, n) in enumerate(zip(a, b, strict=True)):
        if m != n and 1 not in (m, n):
            raise ValueError(f"cannot broadcast {a} with {b}: sizes {m} and {n} at dim {dim - ndim}")
        shape.append(n if m == 1 else m)
    return tuple(shape)


def pairwise_distances(a: Tensor, b: Tensor) -> Tensor:
    """(n, m) Euclidean distances between the rows of a (n, d) and the rows of b (m, d)."""
    return (a[:, None, :] - b[None, :, :]).square().sum(dim=-1).sqrt()


def pick_per_row(x: Tensor, index: Tensor) -> Tensor:
    """out[i] = x[i, index[i]]."""
    return x.gather(1, index.unsqueeze(1)).squeeze(1)


def replace_negatives(x: Tensor, value: float) -> Tensor:
    """A new tensor: x with its negative entries replaced by `value`; x is left untouched."""
    return x.masked_fill(x < 0, value)


def replace_negatives_(x: Tensor, value: float) -> Tensor:
    """Replace x's negative entries by `value` in place; return x itself."""
    return x.masked_fill_(x < 0, value)
