"""Kata 11: datasets and DataLoaders. Read a test's name for the behaviour, its body for the call.

Hypothesis picks dataset sizes, batch sizes, sequence lengths and seeds; a failure
prints the example it used. Each example draws its random numbers from its own seeded
generator, so a failing example replays exactly.
"""

import copy
import multiprocessing
from collections import Counter
from contextlib import contextmanager
from functools import partial

import data_pipeline as dp
import pytest
import torch
from hypothesis import example, given
from hypothesis import strategies as st
from torch.utils.data import DataLoader, TensorDataset

from katas._harness.i18n import N_, _
from katas._harness.testing import carried_stub_errors, expect_close, expect_tensor_close, fail, show

exercise = pytest.mark.exercise

seeds = st.integers(0, 2**16)


def randn(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def sample_ids(batches):
    """The integers a loader over TensorDataset(torch.arange(n)) yields, in order."""
    return [int(i) for (batch,) in batches for i in batch]


@contextmanager
def global_rng_seeded(seed):
    """Seed the global RNG for the block, then restore it, so no test leaks its state."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


# --- TensorPairDataset ------------------------------------------------------------

SWAPPED_PAIR = N_(
    "the pair is in the wrong order; return (self.data[index], self.labels[index]), the input first, "
    "as `for x, y in loader` expects"
)


def same_tensor(a: torch.Tensor, b: torch.Tensor) -> bool:
    return a.dtype == b.dtype and a.shape == b.shape and bool(torch.equal(a, b))


@exercise("TensorPairDataset")
@given(n=st.integers(1, 12), feature_shape=st.sampled_from([(), (3,), (2, 2)]), seed=seeds)
def test_tensor_pair_dataset_has_one_pair_per_sample(n, feature_shape, seed):
    data = randn(n, *feature_shape, seed=seed)
    labels = torch.randint(0, 5, (n,), generator=torch.Generator().manual_seed(seed))
    call = _("TensorPairDataset(data of shape {shape}, labels of shape ({n},))").format(
        shape=tuple(data.shape), n=n
    )
    ds = dp.TensorPairDataset(data, labels)
    expect_close(
        len(ds),
        n,
        call=f"len({call})",
        mistakes=[
            (_("__len__ is off by one: return len(self.data), the number of samples"), n - 1),
            (_("__len__ is off by one: return len(self.data), the number of samples"), n + 1),
        ],
    )
    for i in range(n):
        item = ds[i]
        if not (isinstance(item, (tuple, list)) and len(item) == 2):
            cause = (
                _("__getitem__ returned only the data; return self.data[index], self.labels[index]")
                if isinstance(item, torch.Tensor)
                else _("__getitem__ returns one sample: the tuple (self.data[index], self.labels[index])")
            )
            fail(
                _(
                    "Called {call}[{i}].\nIt returned {got}, but the tests expected the pair "
                    "(data[{i}], labels[{i}]).\nLikely cause: {cause}."
                ).format(call=call, i=i, got=show(item), cause=cause)
            )
        if (
            all(isinstance(v, torch.Tensor) for v in item)
            and same_tensor(item[0], labels[i])
            and (same_tensor(item[1], data[i]))
        ):
            fail(
                _(
                    "Called {call}[{i}].\nIt returned ({first}, {second}): the label first, "
                    "then the input.\nLikely cause: {cause}."
                ).format(call=call, i=i, first=show(item[0]), second=show(item[1]), cause=_(SWAPPED_PAIR))
            )
        expect_tensor_close(item[0], data[i], call=_("{call}[{i}][0], the input").format(call=call, i=i))
        expect_tensor_close(
            item[1],
            labels[i],
            call=_("{call}[{i}][1], the label").format(call=call, i=i),
            mistakes=[
                (_("the label does not belong to sample i: index both tensors with `index`"), labels[0])
            ]
            if n > 1 and labels[0] != labels[i]
            else [],
        )


@exercise("TensorPairDataset")
def test_tensor_pair_dataset_feeds_a_dataloader():
    data, labels = randn(10, 3), torch.arange(10) % 3
    call = _("for x, y in DataLoader(TensorPairDataset(data, labels), batch_size=4)")
    batches = list(DataLoader(dp.TensorPairDataset(data, labels), batch_size=4))
    for batch in batches:
        if not (isinstance(batch, (list, tuple)) and len(batch) == 2):
            fail(
                _(
                    "Called {call}.\nA batch was {batch}, but the tests expected [inputs, labels]: "
                    "the DataLoader stacks each part of the samples' pairs.\n"
                    "Likely cause: __getitem__ returned only the data, not (data[index], labels[index])."
                ).format(call=call, batch=show(batch))
            )
    seen = torch.cat([x for x, _y in batches]) if batches else torch.empty(0, 3)
    expect_tensor_close(
        seen,
        data,
        call=_("{call}, all x concatenated").format(call=call),
        mistakes=[(_(SWAPPED_PAIR), labels)],
        note=_("The loader asks the dataset for indices 0 .. len(ds) - 1: __len__ decides what it reads."),
    )
    expect_tensor_close(
        torch.cat([y for _x, y in batches]), labels, call=_("{call}, all y concatenated").format(call=call)
    )


@exercise("TensorPairDataset")
def test_tensor_pair_dataset_rejects_data_and_labels_of_different_lengths():
    call = _("TensorPairDataset(data with 5 samples, labels with 4)")
    try:
        dp.TensorPairDataset(torch.zeros(5, 2), torch.zeros(4))
    except ValueError:
        return
    fail(
        _(
            "Called {call}.\nIt raised nothing, so the mismatch would surface much later as a puzzling "
            "IndexError in the middle of an epoch (or never, with sample 4 silently unused).\n"
            "Check len(data) == len(labels) in __init__ and raise ValueError otherwise."
        ).format(call=call)
    )


# --- make_loader --------------------------------------------------------------------


@exercise("make_loader")
@given(
    n=st.integers(1, 40),
    batch_size=st.integers(1, 12),
    drop_last=st.booleans(),
    shuffle=st.booleans(),
    seed=seeds,
)
def test_make_loader_counts_full_and_partial_batches(n, batch_size, drop_last, shuffle, seed):
    call = _(
        "make_loader(<{n} samples>, {batch_size}, shuffle={shuffle}, drop_last={drop_last}, seed={seed})"
    ).format(n=n, batch_size=batch_size, shuffle=shuffle, drop_last=drop_last, seed=seed)
    loader = dp.make_loader(
        TensorDataset(torch.arange(n)), batch_size, shuffle=shuffle, drop_last=drop_last, seed=seed
    )
    if not isinstance(loader, DataLoader):
        fail(
            _("Called {call}.\nIt returned {type}; return a torch.utils.data.DataLoader.").format(
                call=call, type=type(loader).__name__
            )
        )
    full, rest = divmod(n, batch_size)
    expected_sizes = [batch_size] * full + ([rest] if rest and not drop_last else [])
    ignored_drop_last = [batch_size] * full + ([rest] if rest else [])
    expect_close(
        len(loader),
        len(expected_sizes),
        call=f"len({call})",
        mistakes=[
            (_("drop_last was ignored: pass drop_last=drop_last to the DataLoader"), len(ignored_drop_last))
        ],
        note=(
            _("{n} samples in batches of {batch_size}: floor({n}/{batch_size}) full batches")
            if drop_last
            else _("{n} samples in batches of {batch_size}: ceil({n}/{batch_size}) batches")
        ).format(n=n, batch_size=batch_size),
    )
    sizes = [len(batch) for (batch,) in loader]
    if sizes != expected_sizes:
        fail(
            _(
                "Called {call}, then iterated it.\nThe batch sizes were {sizes}, "
                "but the tests expected {expected}."
            ).format(call=call, sizes=sizes, expected=expected_sizes)
            + "\n"
            + (
                _("Likely cause: drop_last was ignored: the last, partial batch should be dropped.") + "\n"
                if sizes == ignored_drop_last
                else ""
            )
            + _("Every batch is full except the last, which holds the remainder unless drop_last=True.")
        )


@exercise("make_loader")
@given(n=st.integers(1, 30), batch_size=st.integers(1, 8), seed=seeds)
def test_make_loader_yields_every_sample_once_per_epoch(n, batch_size, seed):
    ds = TensorDataset(torch.arange(n))
    call = _("make_loader(<samples 0..{last}>, {batch_size}, shuffle=True, seed={seed})").format(
        last=n - 1, batch_size=batch_size, seed=seed
    )
    loader = dp.make_loader(ds, batch_size, shuffle=True, seed=seed)
    for epoch in (1, 2):
        order = sample_ids(loader)
        if sorted(order) != list(range(n)):
            fail(
                _(
                    "Called {call}; epoch {epoch} yielded {order},\nbut every sample must come exactly "
                    "once per epoch (a permutation of 0..n-1).\nLikely cause: a sampler that draws with "
                    "replacement; shuffle=True draws without."
                ).format(call=call, epoch=epoch, order=order)
            )
    call = call.replace("shuffle=True", "shuffle=False")
    order = sample_ids(dp.make_loader(ds, batch_size, shuffle=False, seed=seed))
    if order != list(range(n)):
        fail(
            _(
                "Called {call}.\nIt yielded {order}; without shuffling the samples come in order 0..n-1.\n"
                "Likely cause: shuffle was ignored; pass shuffle=shuffle to the DataLoader."
            ).format(call=call, order=order)
        )


@exercise("make_loader")
def test_make_loader_same_seed_same_order_whatever_the_global_rng():
    ds = TensorDataset(torch.arange(24))
    call = _("make_loader(<samples 0..23>, 5, shuffle=True, seed=7)")
    orders = []
    for global_seed in (1, 2):
        with global_rng_seeded(global_seed):
            orders.append(sample_ids(dp.make_loader(ds, 5, shuffle=True, seed=7)))
    if orders[0] != orders[1]:
        fail(
            _(
                "Called {call} twice, after torch.manual_seed(1) and after torch.manual_seed(2).\n"
                "The orders were\n  {first}\n  {second}\nbut the same seed must give the same order.\n"
                "Likely cause: the shuffle drew from the global RNG; give the DataLoader its own "
                "generator: DataLoader(..., generator=torch.Generator().manual_seed(seed))."
            ).format(call=call, first=orders[0], second=orders[1])
        )
    before = torch.get_rng_state()
    sample_ids(dp.make_loader(ds, 5, shuffle=True, seed=7))
    if not torch.equal(before, torch.get_rng_state()):
        fail(
            _(
                "Called {call} and iterated it.\nAfterwards the global RNG was in a different state: the "
                "loader used the global RNG (torch.manual_seed(seed) inside a helper reseeds every "
                "random number of the program).\nGive the DataLoader its own torch.Generator instead "
                "(generator=torch.manual_seed(seed) is the same mistake: it returns the global generator)."
            ).format(call=call)
        )


@exercise("make_loader")
def test_make_loader_orders_differ_between_seeds_and_between_epochs():
    ds = TensorDataset(torch.arange(32))
    by_seed = [sample_ids(dp.make_loader(ds, 8, shuffle=True, seed=seed)) for seed in (0, 1)]
    call = _("make_loader(<samples 0..31>, 8, shuffle=True, seed=0)")
    if by_seed[0] == by_seed[1]:
        fail(
            _(
                "Called {call} and the same with seed=1.\n"
                "Both yielded {order}.\nLikely cause: the seed was not used; seed the loader's "
                "generator with it: torch.Generator().manual_seed(seed)."
            ).format(call=call, order=by_seed[0])
        )
    loader = dp.make_loader(ds, 8, shuffle=True, seed=0)
    epochs = [sample_ids(loader) for _epoch in range(2)]
    if epochs[0] == epochs[1]:
        fail(
            _(
                "Called {call} and iterated it twice.\n"
                "Both epochs yielded {order}.\nLikely cause: the samples were shuffled once, when the "
                "loader was built; shuffle=True with a generator reshuffles on every epoch, "
                "and the seed still makes the whole sequence of epochs reproducible."
            ).format(call=call, order=epochs[0])
        )


# --- pad_collate ----------------------------------------------------------------------


def padded_by_hand(sequences, padding_value):
    longest = max(len(s) for s in sequences)
    out = torch.full((len(sequences), longest, *sequences[0].shape[1:]), float(padding_value))
    for i, s in enumerate(sequences):
        out[i, : len(s)] = s
    return out


def expect_collated(got, sequences, labels, padding_value, call):
    if not (isinstance(got, (tuple, list)) and len(got) == 3):
        fail(
            _("Called {call}.\nIt returned {got}; return the tuple (padded, lengths, labels).").format(
                call=call, got=show(got)
            )
        )
    padded, lengths, got_labels = got
    expected_lengths = torch.tensor([len(s) for s in sequences])
    if not isinstance(lengths, torch.Tensor):
        fail(
            _(
                "Called {call}.\nlengths came back as {lengths} ({type}), but the tests expected the int64 "
                "tensor {expected}.\nReturn the lengths as a tensor: "
                "pack_padded_sequence and masks take them as one."
            ).format(
                call=call, lengths=show(lengths), type=type(lengths).__name__, expected=show(expected_lengths)
            )
        )
    expected = padded_by_hand(sequences, padding_value)
    if not isinstance(padded, torch.Tensor) or padded.shape != expected.shape:
        shape = tuple(padded.shape) if isinstance(padded, torch.Tensor) else type(padded).__name__
        fail(
            _(
                "Called {call} on sequences of lengths {lengths}.\nThe padded batch has "
                "shape {shape}, but the tests expected {expected}.\nPad to the longest "
                "sequence in this batch, not a fixed length: batches of short sequences stay small."
            ).format(
                call=call, lengths=expected_lengths.tolist(), shape=shape, expected=tuple(expected.shape)
            )
        )
    order = sorted(range(len(sequences)), key=lambda i: -len(sequences[i]))
    expect_tensor_close(
        padded,
        expected,
        call=_("{call}, padded").format(call=call),
        mistakes=[
            (
                _(
                    "the rows are sorted by length, so row i is no longer sample i and the labels no "
                    "longer match: keep the batch's order (pack_padded_sequence(..., enforce_sorted=False) "
                    "accepts it)"
                ),
                padded_by_hand([sequences[i] for i in order], padding_value),
            ),
            (
                _("padding_value={padding_value} was ignored: pass it to pad_sequence").format(
                    padding_value=padding_value
                ),
                padded_by_hand(sequences, 0.0),
            ),
        ],
    )
    expect_tensor_close(lengths, expected_lengths, call=_("{call}, lengths").format(call=call))
    expect_tensor_close(got_labels, torch.tensor(labels), call=_("{call}, labels").format(call=call))


@exercise("pad_collate")
def test_pad_collate_pads_three_sequences():
    sequences = [torch.tensor([1.0, 2.0, 3.0]), torch.tensor([4.0]), torch.tensor([5.0, 6.0])]
    batch = list(zip(sequences, [0, 1, 2], strict=True))
    call = "pad_collate([([1, 2, 3], 0), ([4], 1), ([5, 6], 2)])"
    expect_collated(dp.pad_collate(batch), sequences, [0, 1, 2], 0.0, call)


@exercise("pad_collate")
@given(
    lengths=st.lists(st.integers(1, 7), min_size=1, max_size=5),
    feature_shape=st.sampled_from([(), (2,)]),
    padding_value=st.sampled_from([0.0, -1.0, 7.5]),
    seed=seeds,
)
def test_pad_collate_for_random_lengths(lengths, feature_shape, padding_value, seed):
    gen = torch.Generator().manual_seed(seed)
    sequences = [torch.randn(length, *feature_shape, generator=gen) for length in lengths]
    labels = torch.randint(0, 10, (len(lengths),), generator=gen).tolist()
    call = _(
        "pad_collate(<{count} samples, sequence lengths {lengths}, "
        "features {features}>, padding_value={padding_value})"
    ).format(count=len(lengths), lengths=lengths, features=feature_shape, padding_value=padding_value)
    got = dp.pad_collate(list(zip(sequences, labels, strict=True)), padding_value=padding_value)
    expect_collated(got, sequences, labels, padding_value, call)


@exercise("pad_collate")
def test_pad_collate_as_a_dataloader_collate_fn_pads_each_batch_to_its_own_longest():
    lengths = [2, 5, 1, 1, 2, 1]
    sequences = [randn(length, seed=i) for i, length in enumerate(lengths)]
    samples = list(zip(sequences, range(6), strict=True))  # a list of pairs is a map-style dataset
    collate = partial(dp.pad_collate, padding_value=-1.0)
    call = _(
        "DataLoader(<6 sequences of lengths 2, 5, 1 | 1, 2, 1>, batch_size=3, "
        "collate_fn=partial(pad_collate, padding_value=-1.0))"
    )
    for start, batch in zip((0, 3), DataLoader(samples, batch_size=3, collate_fn=collate), strict=True):
        labels = list(range(start, start + 3))
        batch_call = _("{call}, batch {index}").format(call=call, index=start // 3)
        expect_collated(tuple(batch), sequences[start : start + 3], labels, -1.0, call=batch_call)


# --- compose --------------------------------------------------------------------------


class Affine:
    """x -> scale * x + shift, printed as such in Hypothesis examples."""

    def __init__(self, scale, shift, log=None):
        self.scale, self.shift, self.log = scale, shift, log

    def __call__(self, x):
        if self.log is not None:
            self.log.append(self)
        return self.scale * x + self.shift

    def __repr__(self):
        return f"(x -> {self.scale}*x + {self.shift})"


def apply_in_order(transforms, x):
    for t in transforms:
        x = t(x)
    return x


@exercise("compose")
def test_compose_applies_the_first_transform_first():
    call = "compose([lambda x: x + 1, lambda x: x * 10])(torch.tensor(2.0))"
    composed = dp.compose([lambda x: x + 1, lambda x: x * 10])
    if not callable(composed):
        fail(
            _("Called {call}.\nIt returned {got}; return a callable (a function).").format(
                call="compose([...])", got=show(composed)
            )
        )
    expect_tensor_close(
        composed(torch.tensor(2.0)),
        torch.tensor(30.0),
        call=call,
        mistakes=[
            (_(REVERSED), 21.0),
            (_(LAST_ONLY), 20.0),
        ],
    )


REVERSED = N_("the transforms ran in reverse order: the first in the list must run first")
LAST_ONLY = N_("only the last transform was applied: feed each one's output to the next")


affines = st.builds(Affine, st.integers(-3, 3).filter(bool), st.integers(-4, 4))


@exercise("compose")
@given(transforms=st.lists(affines, min_size=0, max_size=4), seed=seeds)
def test_compose_matches_applying_each_transform_in_turn(transforms, seed):
    x = randn(3, seed=seed)
    call = _("compose({transforms})(x) with x = {x}").format(transforms=transforms, x=show(x))
    got = dp.compose(transforms)(x)
    mistakes = [(_(REVERSED), apply_in_order(transforms[::-1], x))]
    if transforms:
        mistakes.append((_(LAST_ONLY), transforms[-1](x)))
    expect_tensor_close(got, apply_in_order(transforms, x), call=call, mistakes=mistakes)


@exercise("compose")
def test_compose_calls_nothing_until_used_then_each_transform_once_in_order():
    log = []
    first, second, third = Affine(2, 0, log), Affine(1, 3, log), Affine(-1, 1, log)
    composed = dp.compose([first, second, third])
    if log:
        fail(
            _(
                "Called {call}.\nIt already called {log}; composing only builds the callable, "
                "the transforms run when it is called on a sample."
            ).format(call="compose([f, g, h])", log=log)
        )
    for attempt in (1, 2):
        log.clear()
        composed(torch.tensor([1.0]))
        if log != [first, second, third]:
            fail(
                _(
                    "Called {call} (call {attempt}).\nThe transforms ran as {log}, but the tests "
                    "expected each once, in order: {expected}."
                ).format(
                    call="compose([f, g, h])(x)", attempt=attempt, log=log, expected=[first, second, third]
                )
                + (
                    "\n" + _("Likely cause: the composed callable works only once (an exhausted iterator?).")
                    if attempt == 2
                    else ""
                )
            )


# --- TransformedDataset ---------------------------------------------------------------


class CountingTransform:
    """x -> 3x - 1, counting its calls."""

    def __init__(self):
        self.calls = 0

    def __call__(self, x):
        self.calls += 1
        return 3 * x - 1


def expect_data_untouched(data, original, call):
    if not torch.equal(data, original):
        fail(
            _(
                "Called {call}.\nAfterwards the caller's data had changed:\n"
                "  before {before}\n  after  {after}\n"
                "Likely cause: the transformed samples were written into the stored data (data[i] = ...), "
                "mutating stored data. Keep the data as given and return the transformed sample "
                "without storing it."
            ).format(call=call, before=show(original), after=show(data))
        )


@exercise("TransformedDataset")
@given(n=st.integers(1, 10), seed=seeds)
def test_transformed_dataset_transforms_each_sample_when_it_is_read(n, seed):
    data, labels = randn(n, 2, seed=seed), torch.arange(n)
    original = data.clone()
    transform = CountingTransform()
    call = _("TransformedDataset(<{n} samples>, labels, transform=lambda x: 3 * x - 1)").format(n=n)
    ds = dp.TransformedDataset(data, labels, transform)
    if transform.calls:
        expect_data_untouched(data, original, call)
        fail(
            _(
                "Called {call}.\n__init__ called the transform {count} time(s); it should call "
                "nothing. Transforms run in __getitem__, on the one sample asked for: a random "
                "augmentation then differs on every read, and no time is spent on samples never read."
            ).format(call=call, count=transform.calls)
        )
    expect_close(len(ds), n, call=f"len({call})")
    for i in range(n):
        before = transform.calls
        item = ds[i]
        if not (isinstance(item, (tuple, list)) and len(item) == 2):
            fail(
                _(
                    "Called {call}[{i}].\nIt returned {got}; return the pair (transform(data[i]), labels[i])."
                ).format(call=call, i=i, got=show(item))
            )
        if transform.calls - before != 1:
            fail(
                _(
                    "Called {call}[{i}].\nIt called the transform {count} time(s); "
                    "the tests expected once, on sample i."
                ).format(call=call, i=i, count=transform.calls - before)
            )
        expect_tensor_close(
            item[0],
            3 * original[i] - 1,
            call=f"{call}[{i}][0]",
            mistakes=[(_("the transform was not applied: return transform(data[index])"), original[i])],
        )
        expect_tensor_close(
            item[1], labels[i], call=_("{call}[{i}][1], the label (never transformed)").format(call=call, i=i)
        )
    expect_data_untouched(data, original, call=_("{call} and read every sample").format(call=call))
    plain = dp.TransformedDataset(data, labels)
    expect_tensor_close(
        plain[0][0], data[0], call=_("TransformedDataset(data, labels)[0][0], with no transform")
    )


@exercise("TransformedDataset")
def test_transformed_dataset_never_changes_the_stored_data():
    data, labels = randn(4, 3), torch.arange(4)
    original = data.clone()
    call = "TransformedDataset(data, labels, transform=lambda x: x * 2 + 1)"
    ds = dp.TransformedDataset(data, labels, lambda x: x * 2 + 1)
    reads = [ds[1][0].clone() for _read in range(2)]
    expect_data_untouched(data, original, call=_("{call} and read ds[1] twice").format(call=call))
    expect_tensor_close(
        reads[1],
        reads[0],
        call=_("{call}[1], read a second time").format(call=call),
        note=_("A deterministic transform must give the same result on every read."),
    )
    expect_tensor_close(reads[0], original[1] * 2 + 1, call=f"{call}[1][0]")


@exercise("TransformedDataset")
def test_transformed_dataset_gives_a_fresh_augmentation_on_every_read():
    gen = torch.Generator().manual_seed(0)

    def add_noise(x):
        return x + torch.randn(x.shape, generator=gen)

    data = torch.zeros(3, 4)
    ds = dp.TransformedDataset(data, torch.zeros(3), add_noise)
    first, second = ds[0][0], ds[0][0]
    if torch.equal(first, second):
        fail(
            _(
                "Called {call} and read ds[0] twice.\n"
                "Both reads returned {got}.\nLikely cause: the transform was applied once, in "
                "__init__; data augmentation must run in __getitem__ so that every epoch sees new variants."
            ).format(
                call=_("TransformedDataset(data, labels, transform=<adds random noise>)"), got=show(first)
            )
        )


# --- split_dataset ----------------------------------------------------------------------


def split_or_explain(n, fractions, seed, call):
    try:
        return dp.split_dataset(TensorDataset(torch.arange(n)), fractions, seed)
    except ValueError as err:
        if "Sum of input lengths" not in str(err):
            raise
        error = str(err)
    total = sum(fractions)
    if total > 1:
        cause = _(
            "the fractions' float sum is {total}, and random_split reads fractions as fractions only "
            "when their float sum is at most 1; otherwise it takes them for sizes"
        ).format(total=repr(total))
    else:
        cause = _(
            "the sizes you computed do not add up to {n}: rounding each fraction * n gains or loses samples"
        ).format(n=n)
    fail(
        _(
            "Called {call}.\nIt raised ValueError: {error}\nLikely cause: {cause}. Compute integer sizes: "
            "floor(fraction * n) each, then hand out the remainder one sample per subset."
        ).format(call=call, error=error, cause=cause)
    )


def split_ids(subsets):
    return [[int(s[i][0]) for i in range(len(s))] for s in subsets]


@exercise("split_dataset")
@given(n=st.integers(2, 60), weights=st.lists(st.integers(1, 5), min_size=2, max_size=4), seed=seeds)
@example(n=10, weights=[1, 1, 1, 1], seed=0)
@example(n=26, weights=[2, 5, 3, 3], seed=0)  # these fractions' float sum is 1.0000000000000002
def test_split_dataset_sizes_add_up_and_round_fairly(n, weights, seed):
    fractions = [w / sum(weights) for w in weights]
    call = _("split_dataset(<{n} samples>, fractions={fractions}, seed={seed})").format(
        n=n, fractions=[round(f, 3) for f in fractions], seed=seed
    )
    subsets = split_or_explain(n, fractions, seed, call)
    sizes = [len(s) for s in subsets]
    ideal = [f * n for f in fractions]
    if (
        len(sizes) != len(fractions)
        or sum(sizes) != n
        or any(abs(s - i) > 1 + 1e-9 for s, i in zip(sizes, ideal, strict=True))
    ):
        truncated = [int(i) for i in ideal[:-1]]
        cause = ""
        if sizes == [*truncated, n - sum(truncated)]:
            cause = (
                _(
                    "Likely cause: rounding: the last subset absorbed every remainder. Round each size down, "
                    "then hand out the remainder one sample per subset in turn."
                )
                + "\n"
            )
        fail(
            _(
                "Called {call}.\nThe subset sizes were {sizes}, but the tests expected {count} sizes "
                "that add up to {n}, each within 1 of fraction * {n} = {ideal}."
            ).format(call=call, sizes=sizes, count=len(fractions), n=n, ideal=[round(i, 2) for i in ideal])
            + "\n"
            + cause
        )


@exercise("split_dataset")
@given(n=st.integers(2, 40), weights=st.lists(st.integers(1, 5), min_size=2, max_size=4), seed=seeds)
def test_split_dataset_puts_every_sample_in_exactly_one_subset(n, weights, seed):
    fractions = [w / sum(weights) for w in weights]
    call = _("split_dataset(<samples 0..{last}>, fractions={fractions}, seed={seed})").format(
        last=n - 1, fractions=[round(f, 3) for f in fractions], seed=seed
    )
    parts = split_ids(split_or_explain(n, fractions, seed, call))
    counts = Counter(i for part in parts for i in part)
    repeated = sorted(i for i, c in counts.items() if c > 1)
    missing = sorted(set(range(n)) - set(counts))
    if repeated or missing:
        found = (
            [_("Samples in more than one subset: {repeated}.").format(repeated=repeated)] if repeated else []
        )
        if missing:
            found.append(_("Samples in none: {missing}.").format(missing=missing))
        fail(
            _("Called {call}.\nThe subsets were {parts}.").format(call=call, parts=parts)
            + "\n"
            + " ".join(found)
            + "\n"
            + _(
                "Likely cause: the subsets overlap when each is drawn on its own; shuffle the indices once "
                "and cut that one permutation into pieces (random_split does this)."
            )
        )


@exercise("split_dataset")
def test_split_dataset_same_seed_same_split_whatever_the_global_rng():
    ds = TensorDataset(torch.arange(30))
    call = _("split_dataset(<samples 0..29>, [0.5, 0.3, 0.2], seed=3)")
    splits = []
    for global_seed in (1, 2):
        with global_rng_seeded(global_seed):
            splits.append(split_ids(dp.split_dataset(ds, [0.5, 0.3, 0.2], seed=3)))
    if splits[0] != splits[1]:
        fail(
            _(
                "Called {call} after torch.manual_seed(1), then after torch.manual_seed(2).\n"
                "The splits were\n  {first}\n  {second}\nbut the same seed must give the same split.\n"
                "Likely cause: random_split without a generator draws from the global RNG; pass "
                "generator=torch.Generator().manual_seed(seed)."
            ).format(call=call, first=splits[0], second=splits[1])
        )
    other = split_ids(dp.split_dataset(ds, [0.5, 0.3, 0.2], seed=4))
    if other == splits[0]:
        fail(
            _(
                "Called {call} and the same with seed=4.\nBoth gave {split}.\nLikely cause: the split is not "
                "random (contiguous slices) or ignores the seed. A sorted dataset cut into slices gives a "
                "validation set unlike the training set; shuffle with the seeded generator."
            ).format(call=call, split=other)
        )
    if other[0] == list(range(15)):
        fail(
            _("Called {call}.\nThe first subset was {subset}: contiguous slices, not a random split.").format(
                call=call.replace("seed=3", "seed=4"), subset=other[0]
            )
        )


# --- ShardedRange -------------------------------------------------------------------------


@contextmanager
def pretend_worker(worker_id, num_workers, dataset):
    """Make get_worker_info() describe worker `worker_id` of `num_workers`, as inside a DataLoader worker.

    get_worker_info() returns this private module global however it was imported; setting it
    simulates workers without starting processes (0.1 s each), so Hypothesis can try many cases.
    """
    module = torch.utils.data._utils.worker
    saved = module._worker_info
    module._worker_info = module.WorkerInfo(
        id=worker_id, num_workers=num_workers, seed=worker_id, dataset=dataset
    )
    try:
        yield
    finally:
        module._worker_info = saved


def expect_each_once(got, start, end, call, num_workers):
    counts = Counter(int(v) for v in got)
    expected = list(range(start, end))
    if sorted(counts.elements()) == expected:
        return
    repeated = sorted(v for v, c in counts.items() if c > 1)
    missing = sorted(set(expected) - set(counts))
    causes = []
    if expected and all(counts[v] == num_workers for v in expected) and num_workers > 1:
        causes.append(
            _(
                "every worker yields the whole range: each worker process runs __iter__ on its own copy "
                "of the dataset; call get_worker_info() in __iter__ (__init__ runs in the main process, "
                "where it is None) and use its .id and .num_workers to yield only this worker's share"
            )
        )
    elif missing and not repeated:
        causes.append(
            _(
                "the shares drop the remainder: when the length is not a multiple of num_workers, "
                "(end - start) // num_workers items per worker misses the rest; give the last worker "
                "the tail, or stride: range(start + id, end, num_workers)"
            )
        )
    lines = [
        _(
            "Called {call}.\nAll workers together yielded {got},\nbut the tests expected "
            "each of {expected} exactly once."
        ).format(call=call, got=sorted(counts.elements()), expected=expected)
    ]
    if repeated:
        lines.append(_("Repeated: {repeated}.").format(repeated=repeated))
    if missing:
        lines.append(_("Missing: {missing}.").format(missing=missing))
    lines += [_("Likely cause: {cause}").format(cause=c) for c in causes]
    fail("\n".join(lines))


@exercise("ShardedRange")
@given(start=st.integers(-5, 5), length=st.integers(0, 20))
def test_sharded_range_yields_the_whole_range_in_the_main_process(start, length):
    end = start + length
    call = f"list(ShardedRange({start}, {end}))"
    error = None  # failed outside the except block: the message alone, not the chained traceback
    try:
        got = list(dp.ShardedRange(start, end))
        via_loader = list(DataLoader(dp.ShardedRange(start, end), batch_size=None))
    except AttributeError as err:
        if "NoneType" not in str(err):
            raise
        error = err
    if error is not None:
        fail(
            _(
                "Called {call} in the main process.\nIt raised AttributeError: {error}.\nLikely cause: "
                "get_worker_info() returns None outside DataLoader workers (num_workers=0); "
                "then yield the whole range."
            ).format(call=call, error=error)
        )
    if [int(v) for v in got] != list(range(start, end)):
        fail(
            _("Called {call}.\nIt yielded {got}, but the tests expected {expected}, in order.").format(
                call=call, got=got, expected=list(range(start, end))
            )
        )
    loader_call = f"DataLoader(ShardedRange({start}, {end}), batch_size=None)"
    expect_each_once(via_loader, start, end, loader_call, 1)


@exercise("ShardedRange")
@given(start=st.integers(-5, 5), length=st.integers(0, 25), num_workers=st.integers(1, 4))
def test_sharded_range_workers_share_out_the_range(start, length, num_workers):
    end = start + length
    ds = dp.ShardedRange(start, end)
    got = []
    for worker_id in range(num_workers):
        worker_copy = copy.deepcopy(ds)  # each DataLoader worker iterates its own copy
        with pretend_worker(worker_id, num_workers, worker_copy):
            got.extend(worker_copy)
    call = _("ShardedRange({start}, {end}) in each of {num_workers} DataLoader workers").format(
        start=start, end=end, num_workers=num_workers
    )
    expect_each_once(got, start, end, call, num_workers)


@contextmanager
def worker_stub_errors(owner):
    """carried_stub_errors, with the method named as `owner.method`: a traceback names only the method."""
    try:
        with carried_stub_errors():
            yield
    except NotImplementedError as err:
        origin = getattr(err, "stub_origin", None)
        if origin is not None and "." not in origin[1]:
            err.stub_origin = (origin[0], f"{owner}.{origin[1]}")
        raise


@exercise("ShardedRange")
@pytest.mark.skipif(
    "fork" not in multiprocessing.get_all_start_methods(), reason="needs the fork start method"
)
@pytest.mark.filterwarnings("ignore:.*use of fork\\(\\) may lead to deadlocks:DeprecationWarning")
def test_sharded_range_with_two_dataloader_workers_yields_each_item_once():
    # fork: workers inherit the kata module as imported here (spawn would have to re-import it).
    loader = DataLoader(
        dp.ShardedRange(0, 11),
        batch_size=None,
        num_workers=2,
        persistent_workers=False,
        multiprocessing_context="fork",
    )
    with worker_stub_errors("ShardedRange"):
        got = list(loader)
    expect_each_once(got, 0, 11, "DataLoader(ShardedRange(0, 11), batch_size=None, num_workers=2)", 2)


# --- LazyFileDataset -------------------------------------------------------------------------


def write_samples(paths, seed=0):
    samples = []
    for i, path in enumerate(paths):
        sample = (randn(3, seed=seed + i), i % 3)
        torch.save(sample, path)
        samples.append(sample)
    return samples


AFTER_WRITING = N_("{call}, read after the files were written")
AFTER_REWRITING = N_("{call}, read after the file was rewritten")


def expect_sample(got, sample, call, when=None):
    """`call` is the read, ds[i]; `when` (an N_ message with {call}) says when it was read."""

    def described(read):
        return _(when).format(call=read) if when else read

    if not (isinstance(got, (tuple, list)) and len(got) == 2):
        fail(
            _("Called {call}.\nIt returned {got}; return the pair (x, label) loaded from the file.").format(
                call=described(call), got=show(got)
            )
        )
    expect_tensor_close(got[0], sample[0], call=described(f"{call}[0]"))
    expect_close(got[1], sample[1], call=described(_("{call}[1], the label").format(call=call)))


@exercise("LazyFileDataset")
def test_lazy_file_dataset_opens_nothing_in_init(tmp_path):
    paths = [tmp_path / f"sample_{i}.pt" for i in range(5)]
    call = _("LazyFileDataset(<5 paths whose files do not exist yet>)")
    error = None
    try:
        ds = dp.LazyFileDataset(paths)
    except OSError as err:
        error = err
    if error is not None:
        fail(
            _(
                "Called {call}.\nIt raised {type}: {error}.\n"
                "Likely cause: __init__ loads everything "
                "up front; keep only the paths (a dataset of a million images must not read them all "
                "before the first batch) and load in __getitem__."
            ).format(call=call, type=type(error).__name__, error=error)
        )
    expect_close(
        len(ds),
        5,
        call=f"len({call})",
        mistakes=[
            (_("len counted the files that exist; the length comes from the file list: len(self.paths)"), 0)
        ],
    )
    samples = write_samples(paths)
    for i in (3, 0):
        expect_sample(ds[i], samples[i], call=f"{call}[{i}]", when=AFTER_WRITING)


@exercise("LazyFileDataset")
def test_lazy_file_dataset_reads_the_file_anew_on_every_access(tmp_path):
    paths = [tmp_path / f"sample_{i}.pt" for i in range(4)]
    samples = write_samples(paths)
    call = _("LazyFileDataset(<4 files>)")
    ds = dp.LazyFileDataset(paths)
    expect_sample(ds[1], samples[1], call=f"{call}[1]")
    (new,) = write_samples([paths[1]], seed=100)
    paths[0].unlink()
    expect_close(len(ds), 4, call=_("len({call}) after one file was deleted").format(call=call))
    error = None
    try:
        got = ds[1]
    except FileNotFoundError as err:
        error = err
    if error is not None:
        fail(
            _(
                "Called {call}[1] after the file of sample 0 was deleted.\n"
                "It raised FileNotFoundError: {error}\n"
                "Likely cause: every file was loaded to return one sample; load only self.paths[index]."
            ).format(call=call, error=error)
        )
    if isinstance(got, (tuple, list)) and len(got) == 2 and isinstance(got[0], torch.Tensor):
        if torch.equal(got[0], samples[1][0]):
            fail(
                _(
                    "Called {call}[1], rewrote the file, then read {call}[1] again.\nIt returned the old "
                    "contents {got}.\nLikely cause: the samples were loaded once (in __init__) or "
                    "cached; load the file in __getitem__ on every access."
                ).format(call=call, got=show(got[0]))
            )
    expect_sample(got, new, call=f"{call}[1]", when=AFTER_REWRITING)


@exercise("LazyFileDataset")
def test_lazy_file_dataset_loads_only_the_requested_file(tmp_path, monkeypatch):
    paths = [tmp_path / f"sample_{i}.pt" for i in range(6)]
    samples = write_samples(paths)
    loaded = []
    real_load = torch.load

    def spy_load(f, *args, **kwargs):
        loaded.append(f)
        return real_load(f, *args, **kwargs)

    monkeypatch.setattr(torch, "load", spy_load)
    call = _("LazyFileDataset(<6 files>)")
    ds = dp.LazyFileDataset(paths)
    if loaded:
        fail(
            _("Called {call}.\n__init__ called torch.load {count} time(s); it must load nothing.").format(
                call=call, count=len(loaded)
            )
        )
    got = ds[2]
    if len(loaded) != 1:
        fail(
            _(
                "Called {call}[2].\nIt called torch.load {count} time(s), but the tests expected once, on "
                "the file of sample 2."
            ).format(call=call, count=len(loaded))
            + "\n"
            + (
                _("Likely cause: every file was loaded to return one; load only self.paths[index].")
                if len(loaded) > 1
                else _("Load the sample with torch.load(path, weights_only=True).")
            )
        )
    expect_sample(got, samples[2], call=f"{call}[2]")


# --- balanced_sampler --------------------------------------------------------------------------


def class_frequencies(indices, labels, num_classes):
    counts = torch.bincount(labels[torch.as_tensor(indices, dtype=torch.int64)], minlength=num_classes)
    return (counts / counts.sum()).tolist()


WITHOUT_REPLACEMENT = N_(
    "Called {call} and drew from it.\nIt raised RuntimeError: {error}\nLikely cause: replacement=False; "
    "balancing draws rare samples many times, so draw with replacement=True."
)


def draw(labels, num_samples, seed, call):
    """The sampler and its draw; a draw without replacement that runs out of samples is named."""
    error = None
    try:
        sampler = dp.balanced_sampler(labels, num_samples, seed)
        indices = list(sampler)
    except RuntimeError as err:
        if "replacement" not in str(err):
            raise
        error = err
    if error is not None:  # failing outside the except clause keeps the chained traceback out
        fail(_(WITHOUT_REPLACEMENT).format(call=call, error=error))
    return sampler, indices


def weight_cause(sampler, labels, got, by_count) -> str | None:
    """What the sampler's weights show, when the draw came out unbalanced."""
    weights = getattr(sampler, "weights", None)
    if isinstance(weights, torch.Tensor) and len(weights) != len(labels):
        return _(
            "Likely cause: the sampler holds {count} weights, one per class; it draws indices "
            "0 .. len(weights) - 1, so give it one weight per sample: 1 / (count of its class)."
        ).format(count=len(weights))
    if by_count is not None and all(abs(f - w) < 0.05 for f, w in zip(got, by_count, strict=True)):
        return _(
            "Likely cause: weights by class count instead of inverse; rare classes get rarer. "
            "Weight sample i by 1 / (count of its class)."
        )
    return None


@exercise("balanced_sampler")
def test_balanced_sampler_weights_each_sample_by_its_inverse_class_count():
    labels = torch.tensor([0, 2, 0, 1, 0, 2])  # counts: 3, 1, 2
    call = "balanced_sampler(labels=[0, 2, 0, 1, 0, 2], num_samples=12, seed=0)"
    sampler = dp.balanced_sampler(labels, 12, 0)
    if not isinstance(sampler, torch.utils.data.WeightedRandomSampler):
        fail(
            _("Called {call}.\nIt returned {type}; return a WeightedRandomSampler.").format(
                call=call, type=type(sampler).__name__
            )
        )
    weights = sampler.weights
    if weights.shape != labels.shape:
        fail(
            _(
                "Called {call}.\nsampler.weights is {weights}, shape {shape}: the sampler "
                "draws indices 0 .. len(weights) - 1, so it needs one weight per sample (6), not per class."
            ).format(call=call, weights=show(weights), shape=tuple(weights.shape))
        )
    expected = torch.tensor([1 / 3, 1 / 2, 1 / 3, 1, 1 / 3, 1 / 2], dtype=torch.float64)
    by_count = torch.tensor([3.0, 2, 3, 1, 3, 2], dtype=torch.float64)
    # Only ratios matter to the sampler: compare the weights scaled to sum to 1.
    expect_tensor_close(
        weights / weights.sum(),
        expected / expected.sum(),
        call=_("{call}, then sampler.weights / sampler.weights.sum()").format(call=call),
        check_dtype=False,
        mistakes=[
            (
                _("the weights follow the class count instead of its inverse: use 1 / count"),
                by_count / by_count.sum(),
            ),
            (
                _("all samples weigh the same: weight sample i by 1 / count of its class"),
                torch.full((6,), 1 / 6),
            ),
        ],
    )
    if not sampler.replacement:
        fail(
            _(
                "Called {call}.\nThe sampler draws without replacement, so it can never pick the rare class "
                "more often than it occurs; pass replacement=True."
            ).format(call=call)
        )


@exercise("balanced_sampler")
@given(counts=st.lists(st.integers(1, 40), min_size=2, max_size=4), seed=seeds)
def test_balanced_sampler_draws_every_class_about_equally(counts, seed):
    gen = torch.Generator().manual_seed(seed)
    labels = torch.repeat_interleave(torch.arange(len(counts)), torch.tensor(counts))
    labels = labels[torch.randperm(len(labels), generator=gen)]
    num_samples = 3000
    call = _(
        "balanced_sampler(<labels with class counts {counts}>, num_samples={num_samples}, seed={seed})"
    ).format(counts=counts, num_samples=num_samples, seed=seed)
    sampler, indices = draw(labels, num_samples, seed, call)
    if len(indices) != num_samples or not all(0 <= i < len(labels) for i in indices):
        fail(
            _(
                "Called {call} and drew from it.\nIt gave {count} indices in "
                "[{low}, {high}]; the tests expected {num_samples} sample indices in [0, {last}]."
            ).format(
                call=call,
                count=len(indices),
                low=min(indices, default=None),
                high=max(indices, default=None),
                num_samples=num_samples,
                last=len(labels) - 1,
            )
        )
    got = class_frequencies(indices, labels, len(counts))
    share = 1 / len(counts)
    # 3000 draws: a class's frequency has a standard deviation under 0.01; 0.05 is over 5 of them.
    if any(abs(f - share) > 0.05 for f in got):
        total = sum(counts)
        by_count = [c * c / sum(k * k for k in counts) for c in counts]  # frequencies if weighted by count
        fail(
            _(
                "Called {call} and drew from it.\n"
                "The classes came with frequencies {got}, but the tests expected each near {share}."
            ).format(call=call, got=[round(f, 3) for f in got], share=f"{share:.3f}")
            + "\n"
            + (
                weight_cause(sampler, labels, got, by_count)
                or _("(The data itself has frequencies {frequencies}.)").format(
                    frequencies=[round(c / total, 3) for c in counts]
                )
            )
            + "\n"
        )


# Class frequencies of a sampler weighted by count on 18 + 2 samples: 18 * 18 : 2 * 2.
BY_COUNT_18_2 = [324 / 328, 4 / 328]


@exercise("balanced_sampler")
def test_balanced_sampler_is_reproducible_and_feeds_a_dataloader():
    labels = torch.tensor([0] * 18 + [1] * 2)
    call = _("balanced_sampler(<18 samples of class 0, 2 of class 1>, num_samples=40, seed=5)")
    draws = []
    for global_seed in (1, 2):
        with global_rng_seeded(global_seed):
            draws.append(draw(labels, 40, 5, call)[1])
    if draws[0] != draws[1]:
        fail(
            _(
                "Called {call} after torch.manual_seed(1), then after torch.manual_seed(2).\nThe draws were\n"
                "  {first}\n  {second}\nbut the same seed must give the same draw.\n"
                "Likely cause: the sampler "
                "uses the global RNG; pass generator=torch.Generator().manual_seed(seed)."
            ).format(call=call, first=draws[0], second=draws[1])
        )
    x = torch.arange(20.0).unsqueeze(1)
    loader = DataLoader(TensorDataset(x, labels), batch_size=8, sampler=dp.balanced_sampler(labels, 40, 5))
    batches = list(loader)
    seen = torch.cat([y for _x, y in batches])
    loader_call = f"DataLoader(dataset, batch_size=8, sampler={call})"
    if len(seen) != 40 or len(batches) != 5:
        fail(
            _(
                "Called {call}.\nIt yielded {count} samples in "
                "{batches} batches; the tests expected num_samples = 40 samples in 5 batches."
            ).format(call=loader_call, count=len(seen), batches=len(batches))
        )
    minority = int((seen == 1).sum())
    if not 8 <= minority <= 32:
        cause = weight_cause(loader.sampler, labels, [1 - minority / 40, minority / 40], BY_COUNT_18_2)
        fail(
            _(
                "Called {call}.\nClass 1 (2 samples of 20) came "
                "{count} times in 40 draws; a balanced sampler draws it about 20 times."
            ).format(call=loader_call, count=minority)
            + (f"\n{cause}" if cause else "")
        )
