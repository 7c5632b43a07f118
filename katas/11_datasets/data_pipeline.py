"""Kata 11: datasets and DataLoaders, the data pipeline.

Replace each `raise NotImplementedError` with your code, then run
`pytest katas/11_datasets`. The lesson is in README.md beside this file.
Some exercises are classes: implement every method that raises.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import torch
from torch import Tensor
from torch.nn.utils.rnn import pad_sequence
from torch.utils.data import (
    DataLoader,
    Dataset,
    IterableDataset,
    Subset,
    TensorDataset,
    WeightedRandomSampler,
    get_worker_info,
    random_split,
)


class TensorPairDataset(Dataset):
    """The article's dataset: sample i is the pair (data[i], labels[i]).

    `__init__` keeps both tensors (no copies, no processing) and raises ValueError
    when they hold different numbers of samples; `__len__` is the number of
    samples; `__getitem__` returns the pair as a tuple.

    >>> ds = TensorPairDataset(torch.tensor([[1.0, 2.0], [3.0, 4.0]]), torch.tensor([0, 1]))
    >>> len(ds), ds[1]
    (2, (tensor([3., 4.]), tensor(1)))

    Docs: https://docs.pytorch.org/docs/stable/data.html#map-style-datasets
    """

    def __init__(self, data: Tensor, labels: Tensor) -> None:
        raise NotImplementedError("TensorPairDataset.__init__")

    def __len__(self) -> int:
        raise NotImplementedError("TensorPairDataset.__len__")

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        raise NotImplementedError("TensorPairDataset.__getitem__")


def make_loader(
    dataset: Dataset, batch_size: int, *, shuffle: bool, drop_last: bool = False, seed: int = 0
) -> DataLoader:
    """Return a DataLoader over `dataset` whose shuffled order depends on `seed` alone.

    Pass `batch_size`, `shuffle` and `drop_last` through, and give the loader its
    own `torch.Generator` seeded with `seed`: two loaders built with the same seed
    then visit the samples in the same order, whatever the global RNG holds, and
    the global RNG is left alone.

    >>> from torch.utils.data import TensorDataset
    >>> loader = make_loader(TensorDataset(torch.arange(10)), 4, shuffle=False)
    >>> len(loader), [len(x) for (x,) in loader]
    (3, [4, 4, 2])

    Docs: https://docs.pytorch.org/docs/stable/data.html#torch.utils.data.DataLoader
    """
    raise NotImplementedError("make_loader")


def feature_mean(loader: Iterable[tuple[Tensor, Tensor]]) -> Tensor:
    """Given: finished code, nothing to write. The per-feature mean of x over every sample.

    The article's loop over a DataLoader's batches, with the habit you practised in kata 06
    (`train_epoch`): sum over samples and divide by the number of samples, so a short last
    batch weighs by its size, not as much as a full batch.

    >>> first = (torch.tensor([[1.0], [2.0], [3.0]]), torch.zeros(3))
    >>> last = (torch.tensor([[10.0]]), torch.zeros(1))  # a smaller last batch
    >>> feature_mean([first, last])
    tensor([4.])

    Docs: https://docs.pytorch.org/docs/stable/data.html#torch.utils.data.DataLoader
    """
    total, count = 0.0, 0
    for x, _ in loader:
        total = total + x.sum(dim=0)
        count += len(x)
    return total / count


def pad_collate(
    batch: Sequence[tuple[Tensor, int]], padding_value: float = 0.0
) -> tuple[Tensor, Tensor, Tensor]:
    """A collate_fn for variable-length sequences: return (padded, lengths, labels).

    `batch` is a list of `(sequence, label)` samples; sequence i has shape (L_i, ...)
    with L_i >= 1. Keep the samples in the order given:
    - padded: shape (batch, longest L_i in this batch, ...); row i starts with
      sequence i and is filled up with `padding_value`;
    - lengths: an int64 tensor of the L_i;
    - labels: a tensor of the labels.

    >>> padded, lengths, labels = pad_collate([(torch.tensor([1.0, 2.0]), 0), (torch.tensor([3.0]), 1)])
    >>> padded, lengths, labels
    (tensor([[1., 2.],
            [3., 0.]]), tensor([2, 1]), tensor([0, 1]))

    Docs: https://docs.pytorch.org/docs/stable/generated/torch.nn.utils.rnn.pad_sequence.html
    """
    raise NotImplementedError("pad_collate")


def compose(transforms: Sequence[Callable[[Any], Any]]) -> Callable[[Any], Any]:
    """Return one callable that applies `transforms` in order: the first one first.

    Like torchvision's `Compose`: `compose([f, g])(x)` is `g(f(x))`. Composing calls
    nothing yet; an empty list gives the identity.

    >>> compose([lambda x: x + 1, lambda x: x * 10])(torch.tensor(2.0))
    tensor(30.)

    Docs: https://docs.pytorch.org/vision/stable/generated/torchvision.transforms.Compose.html
    """
    raise NotImplementedError("compose")


class TransformedDataset(Dataset):
    """Pairs (transform(data[i]), labels[i]), the transform applied afresh on every access.

    `__init__` stores the tensors and the transform (None means no transform) and
    calls nothing; `__getitem__` applies the transform to the one sample it returns.
    The stored data is never changed, so a random transform (data augmentation)
    gives a new variant of the sample each time it is read.

    >>> ds = TransformedDataset(torch.tensor([[1.0], [2.0]]), torch.tensor([0, 1]), lambda x: x * 10)
    >>> len(ds), ds[1]
    (2, (tensor([20.]), tensor(1)))

    Docs: https://docs.pytorch.org/tutorials/beginner/data_loading_tutorial.html#transforms
    """

    def __init__(
        self, data: Tensor, labels: Tensor, transform: Callable[[Tensor], Tensor] | None = None
    ) -> None:
        raise NotImplementedError("TransformedDataset.__init__")

    def __len__(self) -> int:
        raise NotImplementedError("TransformedDataset.__len__")

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        raise NotImplementedError("TransformedDataset.__getitem__")


def split_dataset(dataset: Dataset, fractions: Sequence[float], seed: int) -> list[Subset]:
    """Split `dataset` at random into disjoint subsets sized by `fractions` (which sum to 1).

    Every sample lands in exactly one subset; subset sizes add up to len(dataset)
    and each is within 1 of fraction * len(dataset). Fractions whose float sum is
    not exactly 1, such as [2/13, 5/13, 3/13, 3/13], must work too. The same seed
    gives the same split, whatever the global RNG holds.

    >>> from torch.utils.data import TensorDataset
    >>> train, val = split_dataset(TensorDataset(torch.arange(10)), [0.8, 0.2], seed=0)
    >>> len(train), len(val)
    (8, 2)

    Docs: https://docs.pytorch.org/docs/stable/data.html#torch.utils.data.random_split
    """
    raise NotImplementedError("split_dataset")


class ShardedRange(IterableDataset):
    """A stream of the integers start, start + 1, ..., end - 1, shared out among DataLoader workers.

    In the main process (num_workers=0, `get_worker_info()` is None) `__iter__`
    yields the whole range in order. In a worker process, each of the
    `num_workers` workers yields its own share, so that all workers together
    yield every integer exactly once: no duplicates, nothing dropped.

    >>> sorted(DataLoader(ShardedRange(3, 8), batch_size=None, num_workers=2))
    [3, 4, 5, 6, 7]

    Docs: https://docs.pytorch.org/docs/stable/data.html#torch.utils.data.IterableDataset
    """

    def __init__(self, start: int, end: int) -> None:
        raise NotImplementedError("ShardedRange.__init__")

    def __iter__(self) -> Iterator[int]:
        raise NotImplementedError("ShardedRange.__iter__")


class LazyFileDataset(Dataset):
    """A dataset over files: file i holds sample i, saved with `torch.save((x, label), path)`.

    `__init__` only keeps the list of paths: it opens nothing (the files may not
    even exist yet), and the length is the number of paths. `__getitem__` loads
    its one file with `torch.load(path, weights_only=True)` on every access and
    returns the pair as a tuple; nothing is cached, so a changed file is read anew.

    >>> ds = LazyFileDataset(["a.pt", "b.pt"])  # nothing is read here
    >>> len(ds)
    2

    Docs: https://docs.pytorch.org/docs/stable/generated/torch.load.html
    """

    def __init__(self, paths: Sequence[str | os.PathLike]) -> None:
        raise NotImplementedError("LazyFileDataset.__init__")

    def __len__(self) -> int:
        raise NotImplementedError("LazyFileDataset.__len__")

    def __getitem__(self, index: int) -> tuple[Tensor, Any]:
        raise NotImplementedError("LazyFileDataset.__getitem__")


def balanced_sampler(labels: Tensor, num_samples: int, seed: int) -> WeightedRandomSampler:
    """Return a sampler that draws `num_samples` indices with every class equally likely.

    Give sample i the weight 1 / (number of samples of its class), draw with
    replacement, and use a `torch.Generator` seeded with `seed` so that the draw is
    reproducible. Use it as `DataLoader(dataset, batch_size, sampler=...)`.

    >>> sampler = balanced_sampler(torch.tensor([0, 0, 0, 1]), num_samples=8, seed=0)
    >>> sampler.weights
    tensor([0.3333, 0.3333, 0.3333, 1.0000], dtype=torch.float64)

    Docs: https://docs.pytorch.org/docs/stable/data.html#torch.utils.data.WeightedRandomSampler
    """
    raise NotImplementedError("balanced_sampler")
