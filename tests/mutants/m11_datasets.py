"""Mistakes learners make in kata 11_datasets."""

import math

import torch
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

from tests.mutants import mutant

KATA = "11_datasets"


# --- TensorPairDataset ---


@mutant(KATA, "TensorPairDataset", says="off by one")
class PairDatasetLenOffByOne(Dataset):
    """__len__ returns len(data) - 1, mixing up the last index with the length."""

    def __init__(self, data, labels):
        if len(data) != len(labels):
            raise ValueError("length mismatch")
        self.data, self.labels = data, labels

    def __len__(self):
        return len(self.data) - 1

    def __getitem__(self, index):
        return self.data[index], self.labels[index]


@mutant(KATA, "TensorPairDataset", says="returned only the data")
class PairDatasetDataOnly(Dataset):
    """__getitem__ returns only data[index], dropping the label."""

    def __init__(self, data, labels):
        if len(data) != len(labels):
            raise ValueError("length mismatch")
        self.data, self.labels = data, labels

    def __len__(self):
        return len(self.data)

    def __getitem__(self, index):
        return self.data[index]


@mutant(KATA, "TensorPairDataset", says="the pair is in the wrong order", everywhere=True)
class PairDatasetLabelFirst(Dataset):
    """__getitem__ returns (label, input), the pair in the wrong order."""

    def __init__(self, data, labels):
        if len(data) != len(labels):
            raise ValueError("length mismatch")
        self.data, self.labels = data, labels

    def __len__(self):
        return len(self.data)

    def __getitem__(self, index):
        return self.labels[index], self.data[index]


@mutant(KATA, "TensorPairDataset", says="raise ValueError")
class PairDatasetNoCheck(Dataset):
    """The article's class as written: no check that data and labels have the same length."""

    def __init__(self, data, labels):
        self.data, self.labels = data, labels

    def __len__(self):
        return len(self.data)

    def __getitem__(self, index):
        return self.data[index], self.labels[index]


# --- make_loader ---


@mutant(KATA, "make_loader", says="drop_last was ignored")
def loader_ignores_drop_last(dataset, batch_size, *, shuffle, drop_last=False, seed=0):
    """Never passes drop_last, so the partial last batch is always kept."""
    return DataLoader(dataset, batch_size, shuffle=shuffle, generator=torch.Generator().manual_seed(seed))


@mutant(KATA, "make_loader", says="global RNG")
def loader_without_generator(dataset, batch_size, *, shuffle, drop_last=False, seed=0):
    """Shuffles without a generator: the order comes from the unseeded global RNG."""
    return DataLoader(dataset, batch_size, shuffle=shuffle, drop_last=drop_last)


@mutant(KATA, "make_loader", says="global RNG")
def loader_seeds_global_rng(dataset, batch_size, *, shuffle, drop_last=False, seed=0):
    """Calls torch.manual_seed(seed) instead of giving the loader its own generator."""
    torch.manual_seed(seed)
    return DataLoader(dataset, batch_size, shuffle=shuffle, drop_last=drop_last)


@mutant(KATA, "make_loader", says="shuffled once")
def loader_shuffles_once(dataset, batch_size, *, shuffle, drop_last=False, seed=0):
    """Permutes the dataset once with the seed and never again: every epoch has the same order."""
    generator = torch.Generator().manual_seed(seed)
    if shuffle:
        dataset = Subset(dataset, torch.randperm(len(dataset), generator=generator).tolist())
    return DataLoader(dataset, batch_size, shuffle=False, drop_last=drop_last, generator=generator)


@mutant(KATA, "make_loader", says="shuffle was ignored")
def loader_always_shuffles(dataset, batch_size, *, shuffle, drop_last=False, seed=0):
    """Always shuffles, whatever `shuffle` says."""
    generator = torch.Generator().manual_seed(seed)
    return DataLoader(dataset, batch_size, shuffle=True, drop_last=drop_last, generator=generator)


# --- pad_collate ---


@mutant(KATA, "pad_collate", says="not a fixed length")
def collate_fixed_length(batch, padding_value=0.0):
    """Pads every batch to a fixed length of 8."""
    sequences, labels = zip(*batch, strict=True)
    padded = torch.full((len(sequences), 8, *sequences[0].shape[1:]), float(padding_value))
    for i, s in enumerate(sequences):
        padded[i, : len(s)] = s
    return padded, torch.tensor([len(s) for s in sequences]), torch.tensor(labels)


@mutant(KATA, "pad_collate", says="lengths as a tensor")
def collate_lengths_as_list(batch, padding_value=0.0):
    """Returns the lengths as a Python list."""
    sequences, labels = zip(*batch, strict=True)
    padded = pad_sequence(sequences, batch_first=True, padding_value=padding_value)
    return padded, [len(s) for s in sequences], torch.tensor(labels)


@mutant(KATA, "pad_collate", says="sorted by length")
def collate_sorts_sequences(batch, padding_value=0.0):
    """Sorts the sequences by length (for pack_padded_sequence) but not the labels."""
    sequences, labels = zip(*batch, strict=True)
    ordered = sorted(sequences, key=len, reverse=True)
    padded = pad_sequence(ordered, batch_first=True, padding_value=padding_value)
    return padded, torch.tensor([len(s) for s in ordered]), torch.tensor(labels)


@mutant(KATA, "pad_collate", says="padding_value")
def collate_ignores_padding_value(batch, padding_value=0.0):
    """Always pads with zeros."""
    sequences, labels = zip(*batch, strict=True)
    padded = pad_sequence(sequences, batch_first=True)
    return padded, torch.tensor([len(s) for s in sequences]), torch.tensor(labels)


# --- compose ---


@mutant(KATA, "compose", says="reverse order")
def compose_reversed(transforms):
    """Composes like maths, g(f(x)) for [g, f]: the last transform runs first."""

    def composed(x):
        for transform in reversed(transforms):
            x = transform(x)
        return x

    return composed


@mutant(KATA, "compose", says="only the last transform")
def compose_applies_each_to_input(transforms):
    """Applies every transform to the original input and keeps the last result."""

    def composed(x):
        out = x
        for transform in transforms:
            out = transform(x)
        return out

    return composed


@mutant(KATA, "compose", says="works only once")
def compose_with_iterator(transforms):
    """Stores an iterator over the transforms, which the first call exhausts."""
    remaining = iter(transforms)

    def composed(x):
        for transform in remaining:
            x = transform(x)
        return x

    return composed


# --- TransformedDataset ---


@mutant(KATA, "TransformedDataset", says="in __getitem__")
class TransformedInInit(Dataset):
    """Applies the transform to every sample once, in __init__ (a new tensor, the caller's kept)."""

    def __init__(self, data, labels, transform=None):
        self.data = torch.stack([transform(x) for x in data]) if transform is not None else data
        self.labels = labels

    def __len__(self):
        return len(self.data)

    def __getitem__(self, index):
        return self.data[index], self.labels[index]


@mutant(KATA, "TransformedDataset", says="mutating stored data")
class TransformedInPlaceInInit(Dataset):
    """Transforms the stored samples in place in __init__, changing the caller's tensor."""

    def __init__(self, data, labels, transform=None):
        if transform is not None:
            for i in range(len(data)):
                data[i] = transform(data[i])
        self.data, self.labels = data, labels

    def __len__(self):
        return len(self.data)

    def __getitem__(self, index):
        return self.data[index], self.labels[index]


@mutant(KATA, "TransformedDataset", says="mutating stored data")
class TransformedWrittenBack(Dataset):
    """Writes each transformed sample back into the stored data: every read transforms it again."""

    def __init__(self, data, labels, transform=None):
        self.data, self.labels, self.transform = data, labels, transform

    def __len__(self):
        return len(self.data)

    def __getitem__(self, index):
        if self.transform is not None:
            self.data[index] = self.transform(self.data[index])
        return self.data[index], self.labels[index]


# --- split_dataset ---


def _sizes(n, fractions):
    sizes = [math.floor(f * n) for f in fractions]
    for i in range(n - sum(sizes)):
        sizes[i % len(sizes)] += 1
    return sizes


@mutant(KATA, "split_dataset", says="without a generator")
def split_without_generator(dataset, fractions, seed):
    """Calls random_split without a generator: the split comes from the global RNG."""
    return random_split(dataset, _sizes(len(dataset), fractions))


@mutant(KATA, "split_dataset", says="the last subset absorbed")
def split_truncates_sizes(dataset, fractions, seed):
    """Truncates each size with int() and gives the last subset whatever is left."""
    n = len(dataset)
    sizes = [int(f * n) for f in fractions[:-1]]
    sizes.append(n - sum(sizes))
    return random_split(dataset, sizes, generator=torch.Generator().manual_seed(seed))


@mutant(KATA, "split_dataset", says="float sum")
def split_passes_fractions(dataset, fractions, seed):
    """Passes the fractions to random_split, which rejects them when their float sum exceeds 1."""
    return random_split(dataset, fractions, generator=torch.Generator().manual_seed(seed))


@mutant(KATA, "split_dataset", says="contiguous slices")
def split_contiguous(dataset, fractions, seed):
    """Cuts the dataset into contiguous slices: no shuffling at all."""
    subsets, start = [], 0
    for size in _sizes(len(dataset), fractions):
        subsets.append(Subset(dataset, range(start, start + size)))
        start += size
    return subsets


@mutant(KATA, "split_dataset", says="overlap")
def split_draws_each_subset_alone(dataset, fractions, seed):
    """Draws each subset's indices with its own permutation, so subsets overlap."""
    generator = torch.Generator().manual_seed(seed)
    n = len(dataset)
    return [
        Subset(dataset, torch.randperm(n, generator=generator)[:size].tolist())
        for size in _sizes(n, fractions)
    ]


# --- ShardedRange ---


@mutant(KATA, "ShardedRange", says="every worker yields the whole range")
class RangeNotSharded(IterableDataset):
    """Ignores get_worker_info(): every worker yields the whole stream."""

    def __init__(self, start, end):
        self.start, self.end = start, end

    def __iter__(self):
        return iter(range(self.start, self.end))


@mutant(KATA, "ShardedRange", says="drop the remainder")
class RangeDropsRemainder(IterableDataset):
    """Gives each worker (end - start) // num_workers items: the remainder is lost."""

    def __init__(self, start, end):
        self.start, self.end = start, end

    def __iter__(self):
        info = get_worker_info()
        if info is None:
            return iter(range(self.start, self.end))
        per_worker = (self.end - self.start) // info.num_workers
        first = self.start + info.id * per_worker
        return iter(range(first, first + per_worker))


@mutant(KATA, "ShardedRange", says="returns None")
class RangeAssumesWorker(IterableDataset):
    """Uses get_worker_info().id without checking for None (the main process)."""

    def __init__(self, start, end):
        self.start, self.end = start, end

    def __iter__(self):
        info = get_worker_info()
        return iter(range(self.start + info.id, self.end, info.num_workers))


# --- LazyFileDataset ---


@mutant(KATA, "LazyFileDataset", says="loads everything")
class FilesLoadedInInit(Dataset):
    """Loads every file in __init__."""

    def __init__(self, paths):
        self.samples = [torch.load(p, weights_only=True) for p in paths]

    def __len__(self):
        return len(self.samples)

    def __getitem__(self, index):
        return tuple(self.samples[index])


@mutant(KATA, "LazyFileDataset", says="cached")
class FilesCached(Dataset):
    """Loads lazily but caches each sample, so a changed file is never read again."""

    def __init__(self, paths):
        self.paths, self.cache = list(paths), {}

    def __len__(self):
        return len(self.paths)

    def __getitem__(self, index):
        if index not in self.cache:
            self.cache[index] = tuple(torch.load(self.paths[index], weights_only=True))
        return self.cache[index]


@mutant(KATA, "LazyFileDataset", says="from the file list")
class FilesCountedOnDisk(Dataset):
    """Takes the length from the files that exist instead of from the list of paths."""

    def __init__(self, paths):
        self.paths = list(paths)

    def __len__(self):
        return sum(1 for p in self.paths if p.exists())

    def __getitem__(self, index):
        return tuple(torch.load(self.paths[index], weights_only=True))


@mutant(KATA, "LazyFileDataset", says="every file was loaded")
class FilesAllLoadedPerItem(Dataset):
    """Loads every file to return one sample."""

    def __init__(self, paths):
        self.paths = list(paths)

    def __len__(self):
        return len(self.paths)

    def __getitem__(self, index):
        return tuple([torch.load(p, weights_only=True) for p in self.paths][index])


# --- balanced_sampler ---


@mutant(KATA, "balanced_sampler", says="class count instead of")
def sampler_weights_by_count(labels, num_samples, seed):
    """Weights each sample by its class count instead of its inverse."""
    weights = torch.bincount(labels)[labels].double()
    return WeightedRandomSampler(weights, num_samples, generator=torch.Generator().manual_seed(seed))


@mutant(KATA, "balanced_sampler", says="global RNG")
def sampler_without_generator(labels, num_samples, seed):
    """Right weights, but no generator: the draw comes from the global RNG."""
    weights = 1.0 / torch.bincount(labels)[labels].double()
    return WeightedRandomSampler(weights, num_samples)


@mutant(KATA, "balanced_sampler", says="not per class")
def sampler_weights_per_class(labels, num_samples, seed):
    """Passes one weight per class: the sampler then draws class ids as sample indices."""
    weights = 1.0 / torch.bincount(labels).double()
    return WeightedRandomSampler(weights, num_samples, generator=torch.Generator().manual_seed(seed))


@mutant(KATA, "balanced_sampler", says="replacement=True")
def sampler_without_replacement(labels, num_samples, seed):
    """Draws without replacement, so no sample can come twice."""
    weights = 1.0 / torch.bincount(labels)[labels].double()
    return WeightedRandomSampler(
        weights, num_samples, replacement=False, generator=torch.Generator().manual_seed(seed)
    )
