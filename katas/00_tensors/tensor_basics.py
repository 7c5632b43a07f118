"""Kata 00: tensors, shapes, broadcasting and indexing.

Replace each `raise NotImplementedError` with your code, then run
`pytest katas/00_tensors`. The lesson is in README.md beside this file.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor


def add_bias_column(x: Tensor) -> Tensor:
    """Return `x` (shape (n, d)) with a column of ones appended: shape (n, d + 1).

    The result must have x's dtype and live on x's device, whatever they are:
    an int64 input gives an int64 result, a float16 one a float16 result, and a
    tensor on another device (a GPU, or the data-less `meta` device) stays there.

    >>> add_bias_column(torch.tensor([[2, 3], [4, 5]]))
    tensor([[2, 3, 1],
            [4, 5, 1]])

    Docs: https://docs.pytorch.org/docs/stable/generated/torch.Tensor.new_ones.html
    """
    raise NotImplementedError("add_bias_column")


def flatten_batch(x: Tensor) -> Tensor:
    """Flatten every dimension after the first: (B, d1, d2, ...) -> (B, d1 * d2 * ...).

    Return a view of `x` (sharing its memory) whenever x's strides allow one, and
    a copy only when they do not, e.g. for a transposed tensor. Any `x` must work.

    >>> x = torch.arange(24).reshape(2, 3, 4)
    >>> flatten_batch(x).shape
    torch.Size([2, 12])
    >>> flatten_batch(x.transpose(1, 2))[0]
    tensor([ 0,  4,  8,  1,  5,  9,  2,  6, 10,  3,  7, 11])

    Docs: https://docs.pytorch.org/docs/stable/generated/torch.reshape.html
    """
    raise NotImplementedError("flatten_batch")


def channels_first(images: Tensor) -> Tensor:
    """Turn channels-last images (B, H, W, C) into channels-first (B, C, H, W), contiguous.

    Pixel (h, w) of channel c of image b must keep its value:
    `result[b, c, h, w] == images[b, h, w, c]`. The result must be contiguous
    (row-major in memory), the layout most kernels expect and `view` requires.

    >>> channels_first(torch.zeros(8, 32, 32, 3)).shape
    torch.Size([8, 3, 32, 32])

    Docs: https://docs.pytorch.org/docs/stable/generated/torch.permute.html
    """
    raise NotImplementedError("channels_first")


def broadcast_shape(a: Sequence[int], b: Sequence[int]) -> tuple[int, ...]:
    """Return the shape that broadcasting a tensor of shape `a` with one of shape `b` gives.

    Apply the rules yourself, without torch's broadcasting helpers: align the
    shapes at their last dimension, treat missing leading dimensions as size 1,
    and in each dimension the sizes must be equal or one of them 1 (which
    stretches to the other size, even to 0). Raise ValueError otherwise.

    >>> broadcast_shape((8, 1, 6, 1), (7, 1, 5))
    (8, 7, 6, 5)
    >>> broadcast_shape((3,), (4,))
    Traceback (most recent call last):
    ValueError: ...

    Docs: https://docs.pytorch.org/docs/stable/notes/broadcasting.html
    """
    raise NotImplementedError("broadcast_shape")


def pairwise_distances(a: Tensor, b: Tensor) -> Tensor:
    """Return the (n, m) Euclidean distances between the rows of `a` (n, d) and of `b` (m, d).

    `result[i, j]` is the distance from a[i] to b[j]. Use broadcasting, not
    Python loops: line up every row of a with every row of b by inserting
    size-1 dimensions. The result has the inputs' dtype.

    >>> pairwise_distances(torch.tensor([[0.0, 0.0], [3.0, 4.0]]), torch.tensor([[0.0, 0.0], [6.0, 8.0]]))
    tensor([[ 0., 10.],
            [ 5.,  5.]])

    Docs: https://docs.pytorch.org/docs/stable/notes/broadcasting.html
    """
    raise NotImplementedError("pairwise_distances")


def pick_per_row(x: Tensor, index: Tensor) -> Tensor:
    """Return one element per row of `x` (n, k): `result[i] = x[i, index[i]]`, shape (n,).

    `index` is an int64 tensor of shape (n,). This is how a classifier's score
    for each sample's target class is read out, e.g. inside a cross-entropy loss.

    >>> pick_per_row(torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]), torch.tensor([2, 0]))
    tensor([3., 4.])

    Docs: https://docs.pytorch.org/docs/stable/generated/torch.gather.html
    """
    raise NotImplementedError("pick_per_row")


def replace_negatives(x: Tensor, value: float) -> Tensor:
    """Return a new tensor equal to `x`, except that every negative entry becomes `value`.

    Out of place: the caller's `x` must not change at all, and the result must
    not share memory with it. Zeros are not negative and stay as they are.

    >>> x = torch.tensor([-1.5, 0.0, 2.0])
    >>> replace_negatives(x, -1.0), x
    (tensor([-1.,  0.,  2.]), tensor([-1.5000,  0.0000,  2.0000]))

    Docs: https://docs.pytorch.org/docs/stable/generated/torch.where.html
    """
    raise NotImplementedError("replace_negatives")


def replace_negatives_(x: Tensor, value: float) -> Tensor:
    """Replace every negative entry of `x` by `value` in place, and return `x` itself.

    The trailing underscore is PyTorch's mark of an in-place method (`add_`,
    `clamp_`, `masked_fill_`): it changes the tensor it is given, writing into
    the same memory (so a view's base tensor sees the change), and returns it.

    >>> x = torch.tensor([-1.5, 0.0, 2.0])
    >>> replace_negatives_(x, -1.0) is x, x
    (True, tensor([-1.,  0.,  2.]))

    Docs: https://docs.pytorch.org/docs/stable/generated/torch.Tensor.masked_fill_.html
    """
    raise NotImplementedError("replace_negatives_")
