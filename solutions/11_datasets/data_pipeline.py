"""Kata 11: datasets and DataLoaders, the data pipeline (reference solution)."""

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
    WeightedRandomSampler,
    get_worker_info,
    random_split,
)


class TensorPairDataset(Dataset):
    """The article's dataset: sample i is the pair (data[i], labels[i])."""

    def __init__(self, data: Tensor, labels: Tensor) -> None:
        if len(data) != len(labels):
            raise ValueError(f"data has {len(data)} samples but labels has {len(labels)}")
        self.data = data
        self.labels = labels

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        return self.data[index], self.labels[index]


def make_loader(
    dataset: Dataset, batch_size: int, *, shuffle: bool, drop_last: bool = False, seed: int = 0
) -> DataLoader:
    """A DataLoader whose shuffled order depends on `seed` alone."""
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=shuffle,
        drop_last=drop_last,
        generator=torch.Generator().manual_seed(seed),
    )


def feature_mean(loader: Iterable[tuple[Tensor, Tensor]]) -> Tensor:
    """The per-feature mean of x over every sample the loader yields (given code)."""
    total, count = 0.0, 0
    for x, _ in loader:
        total = total + x.sum(dim=0)
        count += len(x)
    return total / count


def pad_collate(
    batch: Sequence[tuple[Tensor, int]], padding_value: float = 0.0
) -> tuple[Tensor, Tensor, Tensor]:
    """(padded sequences, their lengths, labels), in the batch's order."""
    sequences, labels = zip(*batch, strict=True)
    lengths = torch.tensor([len(s) for s in sequences], dtype=torch.int64)
    padded = pad_sequence(sequences, batch_first=True, padding_value=padding_value)
    return padded, lengths, torch.as_tensor(labels)


def compose(transforms: Sequence[Callable[[Any], Any]]) -> Callable[[Any], Any]:
    """One callable applying `transforms` first to last."""
    transforms = list(transforms)

    def composed(x: Any) -> Any:
        for transform in transforms:
            x = transform(x)
        return x

    return composed


class TransformedDataset(Dataset):
    """Pairs (transform(data[i]), labels[i]), transformed on every access."""

    def __init__(
        self, data: Tensor, labels: Tensor, transform: Callable[[Tensor], Tensor] | None = None
    ) -> None:
        if len(data) != len(labels):
            raise ValueError(f"data has {len(data)} samples but labels has {len(labels)}")
        self.data = data
        self.labels = labels
        self.transform = transform

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        x = self.data[index]
        if self.transform is not None:
            x = self.transform(x)
        return x, self.labels[index]


def split_dataset(dataset: Dataset, fractions: Sequence[float], seed: int) -> list[Subset]:
    """Disjoint random subsets sized by `fractions`, reproducible from `seed`."""
    # Integer sizes: random_split reads fractions as fractions only if their float sum is <= 1,
    # and e.g. [2/13, 5/13, 3/13, 3/13] sums to 1.0000000000000002.
    n = len(dataset)
    sizes = [math.floor(f * n) for f in fractions]
    for i in range(n - sum(sizes)):  # the rounding remainder, one sample per subset in turn
        sizes[i % len(sizes)] += 1
    return random_split(dataset, sizes, generator=torch.Generator().manual_seed(seed))


class ShardedRange(IterableDataset):
    """start, ..., end - 1, each yielded once across all DataLoader workers."""

    def __init__(self, start: int, end: int) -> None:
        self.start = start
        self.end = end

    def __iter__(self) -> Iterator[int]:
        info = get_worker_info()
        if info is None:
            return iter(range(self.start, self.end))
        # Every num_workers-th item: the shares differ in size by at most one, and none is lost.
        return iter(range(self.start + info.id, self.end, info.num_workers))


class LazyFileDataset(Dataset):
    """Sample i is loaded from paths[i] when, and every time, it is asked for."""

    def __init__(self, paths: Sequence[str | os.PathLike]) -> None:
        self.paths = list(paths)

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> tuple[Tensor, Any]:
        x, label = torch.load(self.paths[index], weights_only=True)
        return x, label


def balanced_sampler(labels: Tensor, num_samples: int, seed: int) -> WeightedRandomSampler:
    """Draws indices so that every class is equally likely, reproducibly."""
    _, inverse, counts = torch.unique(labels, return_inverse=True, return_counts=True)
    weights = 1.0 / counts[inverse].double()
    return WeightedRandomSampler(
        weights, num_samples, replacement=True, generator=torch.Generator().manual_seed(seed)
    )
