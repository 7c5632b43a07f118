"""Mistakes learners make in kata 00_tensors."""

import numpy as np
import torch

from tests.mutants import mutant

KATA = "00_tensors"


# --- add_bias_column ---


@mutant(KATA, "add_bias_column", says="without dtype=")
def bias_column_default_dtype(x):
    """Builds the column with torch.ones(n, 1): float32 whatever x's dtype, so cat changes it."""
    return torch.cat([x, torch.ones(x.shape[0], 1, device=x.device)], dim=1)


@mutant(KATA, "add_bias_column", says="NumPy")
def bias_column_through_numpy(x):
    """Goes through NumPy (np.hstack with np.ones): the result comes back float64."""
    return torch.from_numpy(np.hstack([x.cpu().numpy(), np.ones((x.shape[0], 1))]))


@mutant(KATA, "add_bias_column", says="default device")
def bias_column_on_the_default_device(x):
    """Passes dtype= but not device=: the column lands on the default device, not on x's."""
    return torch.cat([x, torch.ones(x.shape[0], 1, dtype=x.dtype)], dim=1)


@mutant(KATA, "add_bias_column", says="the ones came first")
def bias_column_prepended(x):
    """Puts the column of ones before x instead of after it."""
    return torch.cat([x.new_ones(x.shape[0], 1), x], dim=1)


# --- flatten_batch ---


@mutant(KATA, "flatten_batch", says="reshape")
def flatten_with_view(x):
    """Uses view(), which fails on a transposed (non-contiguous) tensor."""
    return x.view(x.shape[0], -1)


@mutant(KATA, "flatten_batch", says="returned a copy")
def flatten_always_contiguous(x):
    """Calls .contiguous() before view(): copies every non-contiguous input, even where a view works."""
    return x.contiguous().view(x.shape[0], -1)


@mutant(KATA, "flatten_batch", says="returned a copy")
def flatten_clone(x):
    """Clones before reshaping, so the result never shares x's memory."""
    return x.clone().reshape(x.shape[0], -1)


@mutant(KATA, "flatten_batch", says="batch dimension was flattened too")
def flatten_everything(x):
    """Calls flatten() without start_dim, merging the batch dimension too."""
    return x.flatten()


# --- channels_first ---


@mutant(KATA, "channels_first", says="memory order")
def channels_first_reshape(images):
    """Reshapes to (B, C, H, W) instead of moving the channel axis: pixels and channels get mixed."""
    b, h, w, c = images.shape
    return images.reshape(b, c, h, w)


@mutant(KATA, "channels_first", says="contiguous")
def channels_first_not_contiguous(images):
    """Permutes correctly but returns the non-contiguous view."""
    return images.permute(0, 3, 1, 2)


@mutant(KATA, "channels_first", says="transpose(1, 3)")
def channels_first_transpose(images):
    """Uses transpose(1, 3), which also swaps H and W."""
    return images.transpose(1, 3).contiguous()


# --- broadcast_shape ---


@mutant(KATA, "broadcast_shape", says="larger size")
def broadcast_takes_max(a, b):
    """Takes the larger size in each dimension: 1 and 0 give 1 instead of 0."""
    ndim = max(len(a), len(b))
    a, b = (1,) * (ndim - len(a)) + tuple(a), (1,) * (ndim - len(b)) + tuple(b)
    for m, n in zip(a, b, strict=True):
        if m != n and 1 not in (m, n):
            raise ValueError(f"cannot broadcast {a} and {b}")
    return tuple(max(m, n) for m, n in zip(a, b, strict=True))


@mutant(KATA, "broadcast_shape", says="from the right")
def broadcast_aligned_left(a, b):
    """Pads the shorter shape on the right, aligning the shapes at their first dimension."""
    ndim = max(len(a), len(b))
    a, b = tuple(a) + (1,) * (ndim - len(a)), tuple(b) + (1,) * (ndim - len(b))
    shape = []
    for m, n in zip(a, b, strict=True):
        if m != n and 1 not in (m, n):
            raise ValueError(f"cannot broadcast {a} and {b}")
        shape.append(n if m == 1 else m)
    return tuple(shape)


@mutant(KATA, "broadcast_shape", says="cannot broadcast")
def broadcast_never_raises(a, b):
    """Never checks compatibility: returns a shape for shapes that do not broadcast."""
    ndim = max(len(a), len(b))
    a, b = (1,) * (ndim - len(a)) + tuple(a), (1,) * (ndim - len(b)) + tuple(b)
    return tuple(n if m == 1 else m for m, n in zip(a, b, strict=True))


@mutant(KATA, "broadcast_shape", says="torch broadcasting helper")
def broadcast_with_torch(a, b):
    """Lets torch.broadcast_shapes do the work, turning its RuntimeError into a ValueError."""
    try:
        return tuple(torch.broadcast_shapes(a, b))
    except RuntimeError as err:
        raise ValueError(str(err)) from None


# --- pairwise_distances ---


@mutant(KATA, "pairwise_distances", says="squared distances")
def distances_squared(a, b):
    """Forgets the square root."""
    return (a[:, None, :] - b[None, :, :]).square().sum(dim=-1)


@mutant(KATA, "pairwise_distances", says="Python loops")
def distances_loop(a, b):
    """Loops over the rows of a, broadcasting each against b."""
    return torch.stack([(row - b).square().sum(dim=-1).sqrt() for row in a])


@mutant(KATA, "pairwise_distances", says="needs as many rows")
def distances_rowwise(a, b):
    """Subtracts b from a directly: row i meets row i only, and unequal row counts fail."""
    return (a - b).square().sum(dim=-1).sqrt()


@mutant(KATA, "pairwise_distances", says="roles of a and b are swapped")
def distances_transposed(a, b):
    """Broadcasts b against a, returning (m, n) instead of (n, m)."""
    return (b[:, None, :] - a[None, :, :]).square().sum(dim=-1).sqrt()


# --- pick_per_row ---


@mutant(KATA, "pick_per_row", says="same columns from every row")
def pick_columns(x, index):
    """Indexes x[:, index], taking every index from every row: an (n, n) table."""
    return x[:, index]


@mutant(KATA, "pick_per_row", says="squeeze(1)")
def pick_gather_unsqueezed(x, index):
    """Gathers correctly but returns gather's (n, 1) shape."""
    return x.gather(1, index.unsqueeze(1))


@mutant(KATA, "pick_per_row", says="torch.take")
def pick_take(x, index):
    """Uses torch.take, which indexes the flattened tensor."""
    return torch.take(x, index)


@mutant(KATA, "pick_per_row", says="unsqueeze(1)")
def pick_gather_flat_index(x, index):
    """Passes the 1-D index straight to gather, which needs one of x's rank."""
    return x.gather(1, index)


# --- replace_negatives ---


@mutant(KATA, "replace_negatives", says="changed the caller's x")
def replace_by_mask_assignment(x, value):
    """Writes `x[x < 0] = value` into the caller's tensor and returns it."""
    x[x < 0] = value
    return x


@mutant(KATA, "replace_negatives", says="changed the caller's x")
def replace_through_detach(x, value):
    """Fills a detached alias of x in place: detach() shares memory, so x changes too."""
    return x.detach().masked_fill_(x < 0, value)


@mutant(KATA, "replace_negatives", says="clamp(min=value)")
def replace_with_clamp(x, value):
    """Uses clamp(min=value), which raises everything below value and keeps negatives above it."""
    return x.clamp(min=value)


@mutant(KATA, "replace_negatives", says="zeros are not negative")
def replace_non_positive(x, value):
    """Uses the mask x <= 0, replacing zeros too."""
    return torch.where(x <= 0, torch.tensor(value, dtype=x.dtype), x)


# --- replace_negatives_ ---


@mutant(KATA, "replace_negatives_", says="instead of writing into x")
def replace_in_place_returns_new(x, value):
    """Builds a new tensor with torch.where and returns it; x is unchanged."""
    return torch.where(x < 0, torch.tensor(value, dtype=x.dtype), x)


@mutant(KATA, "replace_negatives_", says="return x")
def replace_in_place_returns_none(x, value):
    """Changes x in place but forgets to return it."""
    x.masked_fill_(x < 0, value)


@mutant(KATA, "replace_negatives_", says="new memory")
def replace_in_place_by_data(x, value):
    """Assigns x.data = a new tensor: x looks right, but a view's base never sees the change."""
    x.data = torch.where(x < 0, torch.tensor(value, dtype=x.dtype), x)
    return x
