"""Kata 10: devices and parallelism. Read a test's name for the behaviour, its body for the call.

No GPU needed. The `meta` device stands in for "another device": a tensor moved there
keeps its shape and dtype but has no data, so a test sees exactly what moved. The
distributed tests start two CPU processes joined by the gloo backend; a failure in
either one is reported here with that process's message. Tests marked `gpu` or
`multi_gpu` run the same exercises on CUDA and are skipped without it.
"""

import math
from collections import namedtuple

import devices as dv
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import nn
from torch.utils.data import Dataset, DistributedSampler

from katas._harness.i18n import N_, _
from katas._harness.processes import run_ranks
from katas._harness.testing import expect_tensor_close, fail, show

exercise = pytest.mark.exercise


def expect_device(got, expected: torch.device, *, call: str, mistakes=()) -> None:
    if isinstance(got, str):
        fail(
            _(
                "Called {call}.\nIt returned the string {got}, but a torch.device is asked for.\n"
                "Likely cause: wrap the name: torch.device({got}). A string works in .to(), but "
                "code that reads device.type or compares devices needs the object."
            ).format(call=call, got=repr(got))
        )
    if not isinstance(got, torch.device):
        fail(
            _("Called {call}.\nIt returned {got} ({type}); a torch.device is asked for.").format(
                call=call, got=repr(got), type=type(got).__name__
            )
        )
    same = got == expected or (
        expected.index is None and got.type == expected.type and got.index in (None, 0)
    )
    if not same:
        lines = [
            _("Called {call}.").format(call=call),
            _("It returned {actual}, but the tests expected {expected}.").format(
                actual=repr(got), expected=repr(expected)
            ),
        ]
        lines += [
            _("Likely cause: {cause}").format(cause=cause) for cause, wrong in mistakes if got == wrong
        ][:1]
        fail("\n".join(lines))


# --- choose_device ---------------------------------------------------------------------------


@exercise("choose_device")
@pytest.mark.parametrize("available", [True, False], ids=["cuda-available", "no-cuda"])
def test_choose_device_picks_cuda_when_available_else_cpu(monkeypatch, available):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: available)
    call = _("choose_device() while torch.cuda.is_available() returns {available}").format(
        available=available
    )
    other = torch.device("cpu" if available else "cuda")
    expect_device(
        dv.choose_device(),
        torch.device("cuda" if available else "cpu"),
        call=call,
        mistakes=[
            (
                _(
                    "the answer ignores torch.cuda.is_available() (here {available}); ask it on every "
                    "call, not once at import time, and do not hard-code a device"
                ).format(available=available),
                other,
            )
        ],
    )


OVERRIDES = ["cpu", "meta", "cuda", "cuda:1", torch.device("cpu"), torch.device("meta")]


@exercise("choose_device")
@pytest.mark.parametrize(
    "override", OVERRIDES, ids=lambda o: f"torch.device({str(o)!r})" if isinstance(o, torch.device) else o
)
def test_choose_device_an_explicit_override_wins(monkeypatch, override):
    for available in (True, False):
        monkeypatch.setattr(torch.cuda, "is_available", lambda available=available: available)
        call = _("choose_device({override}) while torch.cuda.is_available() returns {available}").format(
            override=repr(override), available=available
        )
        automatic = torch.device("cuda" if available else "cpu")
        expect_device(
            dv.choose_device(override),
            torch.device(override),
            call=call,
            mistakes=[
                (
                    _(
                        "the override was ignored: return torch.device(override) whenever it is not None, "
                        "before looking at CUDA. (Beware `override or 'cuda' if ... else 'cpu'`: the "
                        "conditional expression takes the whole `override or 'cuda'` as its first branch.)"
                    ),
                    automatic,
                )
            ],
        )


@exercise("choose_device")
@pytest.mark.gpu
def test_choose_device_finds_the_real_gpu():
    device = dv.choose_device()
    expect_device(device, torch.device("cuda"), call=_("choose_device() on a machine with CUDA"))
    result = torch.ones(3, device=device) * 2
    if result.device.type != "cuda":
        fail(
            _("A tensor created on choose_device() = {device} lives on {where}.").format(
                device=repr(device), where=result.device
            )
        )


# --- move_to ---------------------------------------------------------------------------------

Pair = namedtuple("Pair", ["first", "second"])
Batch = namedtuple("Batch", ["inputs", "targets", "lengths"])


def expect_moved(moved, original, device: str, *, call: str, path: str = "batch") -> None:
    """Walk `original` and `moved` side by side: same containers, tensors on `device`, the rest as is."""
    if isinstance(original, torch.Tensor):
        if not isinstance(moved, torch.Tensor):
            fail(
                _("Called {call}.\n{path} was a tensor and came back as {moved}.").format(
                    call=call, path=path, moved=show(moved)
                )
            )
        if moved.device.type != torch.device(device).type:
            fail(
                _(
                    "Called {call}.\n{path} is still on {where}, but everything should be on {device}.\n"
                    "Likely cause: only some tensors were moved; recurse into every dict, list and tuple, "
                    "however deep (and remember Tensor.to returns a new tensor: use what it returns)."
                ).format(call=call, path=path, where=moved.device, device=device)
            )
        if moved.shape != original.shape or moved.dtype != original.dtype:
            fail(
                _(
                    "Called {call}.\n{path} changed from {old_shape} {old_dtype} to "
                    "{new_shape} {new_dtype}; moving must keep shape and dtype."
                ).format(
                    call=call,
                    path=path,
                    old_shape=tuple(original.shape),
                    old_dtype=original.dtype,
                    new_shape=tuple(moved.shape),
                    new_dtype=moved.dtype,
                )
            )
        if moved.device.type != "meta":
            expect_tensor_close(
                moved.cpu(), original.cpu(), call=_("{call}, at {path}").format(call=call, path=path)
            )
        return
    if type(moved) is not type(original):
        if isinstance(original, tuple) and hasattr(original, "_fields"):
            cause = _(
                "Likely cause: {name} is a namedtuple and must stay one "
                "(code reads batch.inputs); rebuild it with type(batch)(*moved_fields)."
            ).format(name=type(original).__name__)
        elif isinstance(original, tuple) and isinstance(moved, list):
            cause = _(
                "Likely cause: a tuple was turned into a list; rebuild each container with its own type."
            )
        elif isinstance(original, (dict, list, tuple)):
            cause = _("Likely cause: rebuild each container as the type it was.")
        else:
            cause = _("Likely cause: only tensors move; return anything else untouched.")
        fail(
            _("Called {call}.\n{path} was a {old_type}, {old}, and came back as a {new_type}, {new}.").format(
                call=call,
                path=path,
                old_type=type(original).__name__,
                old=show(original),
                new_type=type(moved).__name__,
                new=show(moved),
            )
            + "\n"
            + cause
        )
    if isinstance(original, dict):
        if list(moved) != list(original):
            fail(
                _("Called {call}.\nThe keys of {path} changed from {old} to {new}.").format(
                    call=call, path=path, old=list(original), new=list(moved)
                )
            )
        for key in original:
            expect_moved(moved[key], original[key], device, call=call, path=f"{path}[{key!r}]")
    elif isinstance(original, (list, tuple)):
        if len(moved) != len(original):
            fail(
                _("Called {call}.\n{path} had {old} items and came back with {new}.").format(
                    call=call, path=path, old=len(original), new=len(moved)
                )
            )
        for i, (m, o) in enumerate(zip(moved, original, strict=True)):
            expect_moved(m, o, device, call=call, path=f"{path}[{i}]")
    elif moved is not original and moved != original:
        cause = (
            "\n" + _("Likely cause: a str is a Sequence too; treat only dict, list and tuple as containers.")
            if isinstance(original, str)
            else ""
        )
        fail(
            _("Called {call}.\n{path} was {old} and came back as {new}; leave non-tensors alone.").format(
                call=call, path=path, old=repr(original), new=repr(moved)
            )
            + cause
        )


def call_move_to(batch, device, **kwargs):
    try:
        return dv.move_to(batch, device, **kwargs)
    except TypeError as err:
        if "__new__() missing" not in str(err):  # a namedtuple built from a single argument
            raise
        error = err
    fail(
        _(
            "Called {call} on a batch holding a namedtuple.\n"
            "It raised TypeError: {error}\n"
            "Likely cause: type(batch)(generator) hands a namedtuple one argument; it takes its fields "
            "one by one: type(batch)(*values)."
        ).format(call=f"move_to(batch, {device!r})", error=error)
    )


@exercise("move_to")
def test_move_to_moves_every_tensor_of_a_nested_batch():
    torch.manual_seed(0)
    batch = {
        "image": torch.randn(2, 3, 4, 4),
        "label": torch.tensor([1, 0]),
        "extra": {
            "mask": torch.ones(2, 4, dtype=torch.bool),
            "ids": [torch.arange(2), torch.arange(3)],
            "names": ["cat", "dog"],
        },
        "pair": (torch.zeros(2, dtype=torch.float64), 7),
        "step": 3,
        "note": None,
    }
    expect_moved(
        call_move_to(batch, "meta"), batch, "meta", call=_("move_to(batch, 'meta') on a nested dict")
    )


@exercise("move_to")
def test_move_to_keeps_namedtuples_tuples_and_lists():
    torch.manual_seed(0)
    batch = [
        Batch(inputs=torch.randn(2, 5), targets=torch.randn(2), lengths=[5, 3]),
        (torch.ones(1), "id-7"),
        Pair(first=(torch.zeros(3),), second=torch.tensor(1.5)),
    ]
    moved = call_move_to(batch, "meta")
    expect_moved(moved, batch, "meta", call=_("move_to(batch, 'meta') on a list of namedtuples and a tuple"))


def plain_tensors():
    shapes = st.lists(st.integers(0, 3), max_size=3)
    dtypes = st.sampled_from([torch.float32, torch.float64, torch.bfloat16, torch.int64, torch.bool])
    return st.builds(lambda shape, dtype: torch.zeros(shape, dtype=dtype), shapes, dtypes)


def batches():
    leaves = st.one_of(plain_tensors(), st.integers(), st.text(max_size=3), st.none(), st.floats(-5, 5))

    def containers(children):
        return st.one_of(
            st.lists(children, max_size=3),
            st.lists(children, max_size=3).map(tuple),
            st.dictionaries(st.text("abcxyz", max_size=3), children, max_size=3),
            st.builds(Pair, children, children),
        )

    return st.recursive(leaves, containers, max_leaves=10)


@exercise("move_to")
@given(batch=batches())
def test_move_to_rebuilds_random_nested_batches(batch):
    expect_moved(call_move_to(batch, "meta"), batch, "meta", call=f"move_to({show(batch)}, 'meta')")


class RecordingTensor(torch.Tensor):
    """A tensor that notes the non_blocking flag of every .to() call made on it."""

    flags: list = []

    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if getattr(func, "__name__", "") == "to":
            positional = args[3] if len(args) > 3 and isinstance(args[3], bool) else False
            cls.flags.append(kwargs.get("non_blocking", positional))
        return super().__torch_function__(func, types, args, kwargs)


@exercise("move_to")
def test_move_to_passes_non_blocking_on_to_every_copy():
    tensors = [torch.zeros(2).as_subclass(RecordingTensor) for i in range(3)]
    batch = {"x": tensors[0], "more": [tensors[1], (tensors[2], "id")]}
    for flag in (True, False):
        RecordingTensor.flags = []
        call_move_to(batch, "meta", non_blocking=flag)
        call = _("move_to(batch of 3 tensors, 'meta', non_blocking={flag})").format(flag=flag)
        if len(RecordingTensor.flags) != 3:
            fail(
                _(
                    "Called {call}.\nIt called Tensor.to {count} time(s); expected once per tensor (3). "
                    "Move each tensor with tensor.to(device, non_blocking=non_blocking)."
                ).format(call=call, count=len(RecordingTensor.flags))
            )
        if RecordingTensor.flags != [flag] * 3:
            fail(
                _(
                    "Called {call}.\nThe .to() calls got non_blocking={flags}.\n"
                    "Likely cause: non_blocking was not passed on; call tensor.to(device, "
                    "non_blocking=non_blocking). From pinned CPU memory to a GPU, that lets the copy "
                    "overlap with computation."
                ).format(call=call, flags=RecordingTensor.flags)
            )


@exercise("move_to")
@pytest.mark.gpu
def test_move_to_cuda_and_back_round_trips_every_value():
    torch.manual_seed(0)
    batch = {"x": torch.randn(4, 3), "ys": [torch.arange(4), (torch.rand(2, 2), "id")], "n": 4}
    on_gpu = call_move_to(batch, "cuda")
    expect_moved(on_gpu, batch, "cuda", call="move_to(batch, 'cuda')")
    expect_moved(call_move_to(on_gpu, "cpu"), batch, "cpu", call="move_to(move_to(batch, 'cuda'), 'cpu')")


@exercise("move_to")
@pytest.mark.gpu
def test_move_to_copies_pinned_memory_without_blocking():
    torch.manual_seed(0)
    batch = {"x": torch.randn(256, 256).pin_memory(), "y": [torch.arange(256).pin_memory()]}
    moved = call_move_to(batch, "cuda", non_blocking=True)
    torch.cuda.synchronize()  # a non_blocking copy may still be in flight: wait before reading it
    expect_moved(moved, batch, "cuda", call=_("move_to(pinned batch, 'cuda', non_blocking=True)"))
    if not batch["x"].is_pinned():
        fail(_("move_to must leave the caller's pinned tensors as they are (still pinned)."))


# --- causal_mask ------------------------------------------------------------------------------


def reference_mask(size: int, dtype: torch.dtype) -> torch.Tensor:
    upper = torch.ones(size, size, dtype=torch.bool).triu(diagonal=1)
    return torch.zeros(size, size, dtype=dtype).masked_fill(upper, float("-inf"))


def mask_mistakes(size: int):
    inf = float("-inf")
    lower = torch.ones(size, size, dtype=torch.bool).tril(diagonal=-1)
    return [
        (
            _("the past is masked instead of the future: -inf belongs above the diagonal (key j > query i)"),
            torch.zeros(size, size).masked_fill(lower, inf),
        ),
        (
            _(
                "the diagonal is masked too, so the first query sees nothing; each position may attend "
                "to itself: use triu(diagonal=1)"
            ),
            torch.zeros(size, size).masked_fill(torch.ones(size, size, dtype=torch.bool).triu(), inf),
        ),
    ]


def expect_no_nan(mask, call: str) -> None:
    if isinstance(mask, torch.Tensor) and mask.is_floating_point() and mask.device.type != "meta":
        if torch.isnan(mask).any():
            fail(
                _(
                    "Called {call}.\nIt returned {mask}, which holds NaN.\n"
                    "Likely cause: 0 * -inf is NaN, so multiplying a 0/1 matrix by -inf fails; fill with "
                    "-inf and keep the upper triangle (new_full(...).triu(1)), or use masked_fill."
                ).format(call=call, mask=show(mask))
            )


@exercise("causal_mask")
def test_causal_mask_hides_the_future_for_four_positions():
    scores = torch.zeros(4, 4)
    call = "causal_mask(torch.zeros(4, 4))"
    mask = dv.causal_mask(scores)
    expect_no_nan(mask, call)
    expect_tensor_close(mask, reference_mask(4, torch.float32), call=call, mistakes=mask_mistakes(4))


@exercise("causal_mask")
def test_causal_mask_is_created_on_the_device_of_the_scores():
    scores = torch.empty(2, 8, 5, 5, device="meta")
    call = _("causal_mask(scores) with scores on the meta device, shape (2, 8, 5, 5)")
    mask = dv.causal_mask(scores)
    if not isinstance(mask, torch.Tensor):
        fail(
            _("Called {call}.\nIt returned {mask}; a tensor is asked for.").format(call=call, mask=show(mask))
        )
    if mask.device.type != "meta":
        fail(
            _(
                "Called {call}.\nThe mask is on {where}, the scores on meta: `scores + mask` fails "
                "(on a GPU: 'Expected all tensors to be on the same device').\n"
                "Likely cause: it was created on the default device. torch.full/ones/zeros need "
                "device=scores.device, or use scores.new_full(...), which takes device and dtype from scores."
            ).format(call=call, where=mask.device)
        )
    if tuple(mask.shape) != (5, 5):
        fail(
            _("Called {call}.\nThe mask has shape {shape}; expected (5, 5), one row per query.").format(
                call=call, shape=tuple(mask.shape)
            )
        )


@exercise("causal_mask")
@given(
    size=st.integers(1, 6),
    lead=st.lists(st.integers(1, 3), max_size=2),
    dtype=st.sampled_from([torch.float16, torch.bfloat16, torch.float32, torch.float64]),
    seed=st.integers(0, 2**16),
)
def test_causal_mask_matches_the_dtype_and_ignores_the_future(size, lead, dtype, seed):
    scores = torch.randn(*lead, size, size, generator=torch.Generator().manual_seed(seed)).to(dtype)
    call = _("causal_mask(scores) with scores of shape {shape} and dtype {dtype}").format(
        shape=tuple(scores.shape), dtype=dtype
    )
    mask = dv.causal_mask(scores)
    expect_no_nan(mask, call)
    if isinstance(mask, torch.Tensor) and mask.dtype != dtype:
        fail(
            _(
                "Called {call}.\nThe mask is {mask_dtype}, so `scores + mask` becomes {promoted}, "
                "not {dtype}.\n"
                "Likely cause: it was created with the default dtype; pass dtype=scores.dtype, or use "
                "scores.new_full(...)."
            ).format(
                call=call, mask_dtype=mask.dtype, promoted=torch.promote_types(dtype, mask.dtype), dtype=dtype
            )
        )
    expect_tensor_close(mask, reference_mask(size, dtype), call=call, mistakes=mask_mistakes(size))
    weights = torch.softmax((scores + mask).float(), dim=-1)
    future = weights.masked_select(torch.ones(size, size, dtype=torch.bool).triu(diagonal=1))
    if future.numel() and future.abs().max() > 0:
        fail(
            _(
                "Called {call}.\nsoftmax(scores + mask) still gives weight to future positions: {future}."
            ).format(call=call, future=show(future))
        )


@exercise("causal_mask")
@pytest.mark.gpu
def test_causal_mask_follows_scores_onto_the_gpu():
    scores = torch.randn(2, 4, 4, device="cuda", dtype=torch.float16)
    mask = dv.causal_mask(scores)
    expect_tensor_close(
        mask, reference_mask(4, torch.float16).cuda(), call=_("causal_mask(float16 scores on cuda)")
    )


# --- Standardize -----------------------------------------------------------------------------


def expect_buffers(layer: nn.Module, call: str) -> None:
    buffers = dict(layer.named_buffers())
    if set(buffers) == {"mean", "std"}:
        return
    params = dict(layer.named_parameters())
    if {"mean", "std"} <= set(params):
        cause = _(
            "mean and std are nn.Parameters: optimizer.step() would train them. Statistics are "
            "state, not weights: self.register_buffer('mean', mean)."
        )
    else:
        cause = _(
            "self.mean = mean stores a plain attribute: model.to(), .double() and state_dict() never see "
            "it, so it stays behind on the old device. Use self.register_buffer('mean', mean)."
        )
    fail(
        _("Called {call}.\nIts buffers are {buffers}, expected ['mean', 'std'].").format(
            call=call, buffers=sorted(buffers)
        )
        + "\n"
        + _("Likely cause: {cause}").format(cause=cause)
    )


@exercise("Standardize")
def test_standardize_buffers_move_with_the_model_to_another_device():
    call = "Standardize(mean, std).to('meta')"
    layer = dv.Standardize(torch.tensor([1.0, 2.0, 3.0]), torch.tensor([1.0, 2.0, 4.0]))
    expect_buffers(layer, call)
    layer.to("meta")
    stayed = {name: str(b.device) for name, b in layer.named_buffers() if b.device.type != "meta"}
    if stayed:
        fail(_("Called {call}.\nThese buffers stayed behind: {stayed}.").format(call=call, stayed=stayed))
    out = layer(torch.empty(5, 3, device="meta"))
    if not isinstance(out, torch.Tensor) or out.device.type != "meta" or tuple(out.shape) != (5, 3):
        fail(
            _(
                "Called {call}, then layer(x) with x of shape (5, 3) on meta.\n"
                "It returned {out}; expected a tensor of shape (5, 3) on meta."
            ).format(call=call, out=show(out))
        )


@exercise("Standardize")
def test_standardize_buffers_follow_a_dtype_conversion():
    gen = torch.Generator().manual_seed(7)
    mean, std = torch.randn(4, generator=gen), torch.rand(4, generator=gen) + 0.5
    x = torch.randn(3, 4, generator=gen, dtype=torch.float64)
    call = _("Standardize(mean, std).double()(x) with a float64 x")
    layer = dv.Standardize(mean, std)
    expect_buffers(layer, call)
    layer.double()
    kept = {name: b.dtype for name, b in layer.named_buffers() if b.dtype != torch.float64}
    if kept:
        fail(
            _("Called {call}.\nAfter .double(), these buffers are not float64: {kept}.").format(
                call=call, kept=kept
            )
        )
    # The float64 result of float64 inputs: float32 round-off (~1e-7) would show.
    expected = (x - mean.double()) / std.double()
    expect_tensor_close(layer(x), expected, call=call, rtol=1e-12, atol=1e-12)


@exercise("Standardize")
@given(features=st.integers(1, 6), rows=st.integers(1, 5), seed=st.integers(0, 2**16))
def test_standardize_is_saved_but_never_trained(features, rows, seed):
    gen = torch.Generator().manual_seed(seed)
    mean, std = torch.randn(features, generator=gen), torch.rand(features, generator=gen) + 0.5
    x = torch.randn(rows, features, generator=gen)
    call = _("Standardize(mean, std)(x) with {features} features and {rows} rows").format(
        features=features, rows=rows
    )
    layer = dv.Standardize(mean, std)
    expect_buffers(layer, call)
    expect_tensor_close(layer(x), (x - mean) / std, call=call)
    state = layer.state_dict()
    if sorted(state) != ["mean", "std"]:
        fail(
            _(
                "Called {call}.\nstate_dict() has keys {keys}, expected ['mean', 'std'].\n"
                "Likely cause: register_buffer(..., persistent=False) keeps a buffer out of state_dict(), "
                "so a saved checkpoint would lose the statistics; keep the default persistent=True."
            ).format(call=call, keys=sorted(state))
        )
    expect_tensor_close(state["mean"], mean, call=_("{call}, then state_dict()['mean']").format(call=call))
    trained = [name for name, p in layer.named_parameters()]
    if trained:
        fail(
            _("Called {call}.\nThe layer has parameters {trained}: an optimizer would change them.").format(
                call=call, trained=trained
            )
        )


@exercise("Standardize")
@pytest.mark.gpu
def test_standardize_runs_on_the_gpu_after_to_cuda():
    layer = dv.Standardize(torch.tensor([1.0, -1.0]), torch.tensor([2.0, 0.5])).to("cuda")
    x = torch.tensor([[3.0, 0.0]], device="cuda")
    expect_tensor_close(
        layer(x), torch.tensor([[1.0, 2.0]], device="cuda"), call="Standardize(...).cuda()(x)"
    )


# --- model_size --------------------------------------------------------------------------------


class UniformEmbedding(nn.Embedding):
    # nn.Embedding's normal_() initialisation costs seconds the first time it runs on meta
    # (it imports torch._dynamo); uniform_ costs nothing.
    def reset_parameters(self) -> None:
        nn.init.uniform_(self.weight, -0.1, 0.1)


class TiedLanguageModel(nn.Module):
    """A decoder-style stack whose output layer shares its weight with the embedding."""

    def __init__(self, vocab: int, dim: int, layers: int, heads: int, context: int):
        super().__init__()
        self.embed = UniformEmbedding(vocab, dim)
        self.blocks = nn.ModuleList(
            nn.TransformerEncoderLayer(dim, heads, 4 * dim, batch_first=True) for i in range(layers)
        )
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, vocab, bias=False)
        self.head.weight = self.embed.weight  # tied: one tensor, two uses
        self.register_buffer("positions", torch.arange(context))  # int64: 8 bytes each
        self.register_buffer("rotary", torch.zeros(context, dim // heads, dtype=torch.float16))


class Builder:
    """A model factory that notes the default device of each build and refuses big CPU builds."""

    def __init__(self, make, gigabytes: float = 0.0):
        self.make, self.gigabytes, self.devices, self.models = make, gigabytes, [], []

    def __call__(self) -> nn.Module:
        device = torch.empty(
            ()
        ).device  # the default device in effect (meta inside `with torch.device("meta")`)
        self.devices.append(device)
        if self.gigabytes > 1 and device.type != "meta":
            fail(
                _(
                    "model_size called build() with the default device {device}: this model would allocate "
                    "{gigabytes} GB there, so the tests stopped it.\n"
                    "Likely cause: the model is materialised instead of sized. Call build() inside "
                    '`with torch.device("meta"):` and count the meta tensors: shapes and dtypes, no memory.'
                ).format(device=device, gigabytes=f"{self.gigabytes:.1f}")
            )
        self.models.append(self.make())
        return self.models[-1]

    def expect_meta(self, call: str) -> None:
        if not self.devices:
            fail(_("Called {call}.\nIt never called build(); build the model to size it.").format(call=call))
        if any(d.type != "meta" for d in self.devices):
            fail(
                _(
                    "Called {call}.\nbuild() ran with the default device(s) {devices}, "
                    "so real memory was allocated.\nLikely cause: call build() inside "
                    '`with torch.device("meta"):`.'
                ).format(call=call, devices=[str(d) for d in self.devices])
            )
        real = [name for model in self.models for name, t in model.state_dict().items() if not t.is_meta]
        if real:
            fail(
                _(
                    "Called {call}.\nThe model was built on meta, then materialised: {real} now hold real "
                    "memory.\nLikely cause: to_empty()/to('cpu') after building; sizing needs only the "
                    "meta tensors' numel() and element_size()."
                ).format(call=call, real=real[:3])
            )


def true_size(model: nn.Module) -> tuple[int, int]:
    tensors = [*model.parameters(), *model.buffers()]  # parameters() yields a tied weight once
    return sum(p.numel() for p in model.parameters()), sum(t.numel() * t.element_size() for t in tensors)


def size_mistakes(model: nn.Module) -> list[tuple[str, tuple[int, int]]]:
    params, nbytes = true_size(model)
    state = model.state_dict()
    params_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
    all_elements = sum(t.numel() for t in [*model.parameters(), *model.buffers()])
    return [
        (
            _(
                "state_dict() lists a tied weight under each of its names (and holds buffers too); count "
                "model.parameters(), which yields each parameter once"
            ),
            (
                sum(t.numel() for t in state.values()),
                sum(t.numel() * t.element_size() for t in state.values()),
            ),
        ),
        (
            _("the buffers' bytes are missing: buffers are moved and saved too (model.buffers())"),
            (params, params_bytes),
        ),
        (
            _("every element was counted as 4 bytes; use tensor.element_size() (2 for float16, 8 for int64)"),
            (params, 4 * all_elements),
        ),
        (
            _("you counted tensors, not their elements: use p.numel()"),
            (len(list(model.parameters())), nbytes),
        ),
    ]


def expect_size(got, build: Builder, expected_model: nn.Module, call: str) -> None:
    if (
        not isinstance(got, tuple)
        or len(got) != 2
        or not all(isinstance(v, int) and not isinstance(v, bool) for v in got)
    ):
        fail(
            _(
                "Called {call}.\nIt returned {got}; a tuple of two ints (parameters, bytes) is asked for "
                "(use int(...) around a tensor sum)."
            ).format(call=call, got=show(got))
        )
    build.expect_meta(call)
    expected = true_size(expected_model)
    if got != expected:
        lines = [
            _("Called {call}.").format(call=call),
            _("It returned {actual}, but the tests expected {expected}.").format(
                actual=got, expected=expected
            ),
        ]
        causes = size_mistakes(expected_model)
        lines += [_("Likely cause: {cause}").format(cause=cause) for cause, wrong in causes if got == wrong][
            :1
        ]
        fail("\n".join(lines))


@exercise("model_size")
def test_model_size_sizes_a_billion_parameter_model_without_allocating_it():
    def make():
        return TiedLanguageModel(vocab=32000, dim=4096, layers=16, heads=32, context=4096)

    with torch.device("meta"):
        reference = make()
    build = Builder(make, gigabytes=true_size(reference)[1] / 1e9)
    call = _("model_size(build) for a 3.4-billion-parameter language model with tied embeddings")
    expect_size(dv.model_size(build), build, reference, call)


@exercise("model_size")
def test_model_size_counts_a_tied_weight_once():
    def make():
        model = nn.Sequential(nn.Embedding(1000, 64), nn.Linear(64, 1000, bias=False))
        model[1].weight = model[0].weight
        return model

    build = Builder(make)
    call = _(
        "model_size(build) for Embedding(1000, 64) whose weight the Linear(64, 1000) output layer shares"
    )
    expect_size(dv.model_size(build), build, make(), call)


LAYERS = {
    "linear": lambda width, dtype: nn.Linear(width, width + 1, dtype=dtype),
    "linear-no-bias": lambda width, dtype: nn.Linear(width, width + 1, bias=False, dtype=dtype),
    "batchnorm": lambda width, dtype: nn.BatchNorm1d(width, dtype=dtype),
    "layernorm": lambda width, dtype: nn.LayerNorm(width, dtype=dtype),
    "conv": lambda width, dtype: nn.Conv1d(width, 2, kernel_size=3, dtype=dtype),
}


@exercise("model_size")
@given(
    spec=st.lists(
        st.tuples(
            st.sampled_from(sorted(LAYERS)),
            st.integers(1, 6),
            st.sampled_from([torch.float32, torch.float64, torch.float16, torch.bfloat16]),
        ),
        min_size=1,
        max_size=4,
    )
)
def test_model_size_matches_the_real_model_for_random_layers(spec):
    def make():
        return nn.Sequential(*(LAYERS[kind](width, dtype) for kind, width, dtype in spec))

    build = Builder(make)
    text = ", ".join(f"{kind}({width}, {str(dtype).removeprefix('torch.')})" for kind, width, dtype in spec)
    expect_size(
        dv.model_size(build),
        build,
        make(),
        _("model_size(build) for Sequential({layers})").format(layers=text),
    )


# --- autocast_forward ----------------------------------------------------------------------------


def autocast_bound(layer: nn.Linear, x: torch.Tensor, unit_roundoff: float) -> float:
    """Largest error autocast may add to layer(x), from rounding x, W and b and the result.

    With unit roundoff u (2^-8 for bfloat16's 8 significant bits, 2^-11 for float16), rounding
    x and W gives x_i w_i (1 + d), |d| <= 2u + u^2; the sum is accumulated in float32 (error
    negligible); the bias and the output are rounded once more (u each). So
    |y_autocast - y| <= 3u (|x| @ |W|^T + |b|) elementwise; 4u leaves room for the accumulation.
    """
    magnitude = x.abs() @ layer.weight.detach().abs().T
    if layer.bias is not None:
        magnitude = magnitude + layer.bias.detach().abs()
    return 4 * unit_roundoff * magnitude.max().item()


def expect_low_precision(out, wanted: torch.dtype, call: str) -> None:
    if not isinstance(out, torch.Tensor):
        fail(
            _("Called {call}.\nIt returned {out}; the model's output tensor is asked for.").format(
                call=call, out=show(out)
            )
        )
    if out.dtype == wanted:
        return
    causes = {
        torch.float32: N_(
            "no autocast took effect, or its output was cast back with .float(). Run the "
            "model inside `with torch.autocast(device_type=x.device.type, dtype=...)` and return its output "
            "as it is (a device_type that is not x's device, like 'cuda' for CPU tensors, does nothing)."
        ),
        torch.float16: N_(
            "float16 is CUDA's autocast dtype; on the CPU use bfloat16 (same range as float32)."
        ),
        torch.bfloat16: N_("bfloat16 is the CPU's autocast dtype; on CUDA use float16."),
    }
    cause = _(causes[out.dtype]) if out.dtype in causes else _("pick the dtype from x.device.type")
    fail(
        _("Called {call}.\nThe output is {got}; expected {wanted}.").format(
            call=call, got=out.dtype, wanted=wanted
        )
        + "\n"
        + _("Likely cause: {cause}").format(cause=cause)
    )


@exercise("autocast_forward")
def test_autocast_forward_computes_in_bfloat16_on_the_cpu():
    torch.manual_seed(0)
    model, x = nn.Linear(8, 4), torch.randn(3, 8)
    call = _("autocast_forward(nn.Linear(8, 4), x) with a float32 x on the CPU")
    out = dv.autocast_forward(model, x)
    expect_low_precision(out, torch.bfloat16, call)


@exercise("autocast_forward")
@given(
    features=st.integers(1, 32),
    outputs=st.integers(1, 8),
    rows=st.integers(1, 4),
    seed=st.integers(0, 2**16),
)
def test_autocast_forward_stays_close_to_float32(features, outputs, rows, seed):
    torch.manual_seed(seed)
    model, x = nn.Linear(features, outputs), 3 * torch.randn(rows, features)
    call = _("autocast_forward(nn.Linear({features}, {outputs}), x of shape {shape})").format(
        features=features, outputs=outputs, shape=tuple(x.shape)
    )
    with torch.no_grad():
        expected = model(x)
    tolerance = autocast_bound(model, x, unit_roundoff=2**-8)
    out = dv.autocast_forward(model, x)
    expect_low_precision(out, torch.bfloat16, call)
    expect_tensor_close(out.float(), expected, call=call, rtol=0, atol=tolerance)


@exercise("autocast_forward")
def test_autocast_forward_leaves_the_weights_in_float32():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 2))
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    call = _("autocast_forward(model, x) on the CPU, then out.float().sum().backward()")
    out = dv.autocast_forward(model, torch.randn(4, 6))
    changed = {name: p.dtype for name, p in model.named_parameters() if p.dtype != torch.float32}
    if changed:
        fail(
            _(
                "Called {call}.\nAfterwards the model's parameters are {changed}.\n"
                "Likely cause: the model was converted to bfloat16 permanently (model.to(torch.bfloat16) or "
                ".bfloat16()). Autocast casts per operation and keeps float32 master weights, so small "
                "updates are not rounded away."
            ).format(call=call, changed=changed)
        )
    for name, p in model.named_parameters():
        expect_tensor_close(
            p.detach(),
            before[name],
            call=_("{call}: parameter {name}").format(call=call, name=name),
            rtol=0,
            atol=0,
        )
    out.float().sum().backward()
    for name, p in model.named_parameters():
        if p.grad is None or p.grad.dtype != torch.float32:
            fail(
                _(
                    "Called {call}.\n{name}.grad is {grad}; gradients reach float32 weights as float32."
                ).format(call=call, name=name, grad=show(p.grad))
            )


@exercise("autocast_forward")
@pytest.mark.gpu
def test_autocast_forward_uses_float16_on_cuda():
    torch.manual_seed(0)
    model, x = nn.Linear(64, 16).cuda(), torch.randn(8, 64, device="cuda")
    call = _("autocast_forward(nn.Linear(64, 16).cuda(), x on cuda)")
    with torch.no_grad():
        expected = model(x)
    tolerance = autocast_bound(model, x, unit_roundoff=2**-11)
    out = dv.autocast_forward(model, x)
    expect_low_precision(out, torch.float16, call)
    # Four times the bound: float16 GEMMs may also add partial sums in float16
    # (torch.backends.cuda.matmul.allow_fp16_reduced_precision_reduction, on by default).
    expect_tensor_close(out.float(), expected, call=call, rtol=0, atol=4 * tolerance)
    if model.weight.dtype != torch.float32:
        fail(
            _("Called {call}.\nThe weights became {dtype}; autocast must leave them float32.").format(
                call=call, dtype=model.weight.dtype
            )
        )


# --- strip_module_prefix -----------------------------------------------------------------------


class Wrapper(nn.Module):
    """Holds a layer under the attribute name `module`: its keys contain 'module.' mid-way."""

    def __init__(self, layer: nn.Module):
        super().__init__()
        self.module = layer

    def forward(self, x):
        return self.module(x)


class EncoderDecoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = nn.Linear(4, 6)
        self.encoder = nn.Sequential(nn.Linear(6, 6), nn.BatchNorm1d(6))
        self.decoder = Wrapper(nn.Linear(6, 3))

    def forward(self, x):
        return self.decoder(torch.relu(self.encoder(self.embed(x))))


def prefix_mistakes(keys: list[str]) -> list[tuple[str, list[str]]]:
    prefixed = ["module." + k for k in keys]
    return [
        (
            _(
                "'module.' was removed from the middle of keys too (str.replace); only a leading "
                "prefix goes: key.removeprefix('module.') or key[len('module.'):] after startswith"
            ),
            [k.replace("module.", "") for k in prefixed],
        ),
        (
            _(
                "str.lstrip('module.') strips any run of the characters m, o, d, u, l, e and '.', "
                "not the word: 'module.decoder.weight' loses 'de' too. Use key.removeprefix('module.')"
            ),
            [k.lstrip("module.") for k in prefixed],
        ),
    ]


FIRST_DOT = N_(
    "everything up to the first dot was dropped from every key, prefixed or not: remove only a "
    "leading 'module.' (key.removeprefix('module.'))"
)


def expect_keys(got, expected_keys: list[str], call: str, mistakes=()) -> None:
    if not hasattr(got, "keys"):
        fail(_("Called {call}.\nIt returned {got}; a dict is asked for.").format(call=call, got=show(got)))
    keys = list(got.keys())
    if keys != expected_keys:
        lines = [
            _("Called {call}.").format(call=call),
            _("It returned the keys {keys},\nbut the tests expected {expected}.").format(
                keys=keys, expected=expected_keys
            ),
        ]
        lines += [
            _("Likely cause: {cause}").format(cause=cause) for cause, wrong in mistakes if keys == wrong
        ][:1]
        fail("\n".join(lines))


@exercise("strip_module_prefix")
def test_strip_module_prefix_loads_a_data_parallel_checkpoint_into_a_plain_model():
    torch.manual_seed(0)
    trained = EncoderDecoder().eval()
    x = torch.randn(5, 4)
    with torch.no_grad():
        expected = trained(x)
    parallel = nn.DataParallel(trained)  # without GPUs it only wraps: its state_dict keys gain "module."
    checkpoint = {k: v.cpu() for k, v in parallel.state_dict().items()}  # (with 1 GPU it moved there)
    plain_keys = list(EncoderDecoder().state_dict())
    call = "strip_module_prefix(nn.DataParallel(model).state_dict())"
    got = dv.strip_module_prefix(checkpoint)
    expect_keys(got, plain_keys, call, mistakes=prefix_mistakes(plain_keys))
    fresh = EncoderDecoder().eval()
    fresh.load_state_dict(got)
    with torch.no_grad():
        expect_tensor_close(
            fresh(x), expected, call=_("a plain model loaded from {call}, on the same x").format(call=call)
        )


@exercise("strip_module_prefix")
def test_strip_module_prefix_leaves_a_plain_checkpoint_alone():
    model = EncoderDecoder()
    checkpoint = model.state_dict()
    call = _("strip_module_prefix(model.state_dict()) for a model never wrapped in DataParallel")
    got = dv.strip_module_prefix(checkpoint)
    expect_keys(
        got,
        list(checkpoint),
        call,
        mistakes=[
            (
                _(
                    "the first 7 characters were cut from every key, prefix or not; strip only keys that "
                    "start with 'module.'"
                ),
                [k[len("module.") :] for k in checkpoint],
            ),
            (_(FIRST_DOT), [k.split(".", 1)[-1] for k in checkpoint]),
        ],
    )
    copied = [k for k in checkpoint if got[k] is not checkpoint[k]]
    if copied:
        fail(
            _(
                "Called {call}.\nThe tensors of {copied} were replaced or copied; keep the same tensors."
            ).format(call=call, copied=copied)
        )


NAMES = ["module", "modules", "model", "decoder", "embed", "mod", "ule", "0", "1", "weight", "bias", "e"]


@exercise("strip_module_prefix")
@given(paths=st.lists(st.lists(st.sampled_from(NAMES), min_size=1, max_size=4), min_size=1, max_size=6))
def test_strip_module_prefix_undoes_the_prefix_for_any_key(paths):
    plain = {".".join(path): torch.tensor(float(i)) for i, path in enumerate(paths)}
    keys = list(plain)
    wrapped = {"module." + k: v for k, v in plain.items()}
    expect_keys(
        dv.strip_module_prefix(wrapped),
        keys,
        f"strip_module_prefix({{{', '.join(repr(k) for k in wrapped)}}})",
        mistakes=prefix_mistakes(keys),
    )
    # A plain model may itself have a submodule named "module": its keys are indistinguishable, so
    # only keys without the prefix must come back unchanged.
    unprefixed = {k: v for k, v in plain.items() if not k.startswith("module.")}
    expect_keys(
        dv.strip_module_prefix(unprefixed),
        list(unprefixed),
        f"strip_module_prefix({{{', '.join(map(repr, unprefixed))}}})",
        mistakes=[(_(FIRST_DOT), [k.split(".", 1)[-1] for k in unprefixed])],
    )


@exercise("strip_module_prefix")
@pytest.mark.multi_gpu
def test_strip_module_prefix_after_data_parallel_on_two_gpus():
    torch.manual_seed(0)
    model = EncoderDecoder().cuda().eval()
    parallel = nn.DataParallel(model, device_ids=[0, 1])
    x = torch.randn(8, 4, device="cuda")
    with torch.no_grad():
        expect_tensor_close(
            parallel(x), model(x), call=_("nn.DataParallel(model) over 2 GPUs"), atol=1e-5, rtol=1e-4
        )
    plain = EncoderDecoder().eval()
    plain.load_state_dict({k: v.cpu() for k, v in dv.strip_module_prefix(parallel.state_dict()).items()})
    with torch.no_grad():
        expect_tensor_close(
            plain(x.cpu()), model(x).cpu(), call=_("a CPU model loaded from the stripped checkpoint")
        )


# --- ddp_gradients (two CPU processes, gloo) ----------------------------------------------------

# (model seed, full batch size): each rank gets half the batch. Local batches of 4, 3 and 5 keep
# the known wrong answers (x2 for summing ranks, x local batch for a summed loss) apart.
DDP_CASES = [(0, 8), (1, 6), (2, 10)]
ddp_call = N_("ddp_gradients(model, inputs_shard, targets_shard) on each of 2 ranks")
# The full-batch mean and DDP's mean of two half-batch means add the same float32 numbers in a
# different order: they agree to a few ulps, not bit for bit.
DDP_RTOL, DDP_ATOL = 1e-4, 1e-6


def mlp(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 1))


def regression_data(seed: int, rows: int) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(1000 + seed)
    return torch.randn(rows, 3, generator=gen), torch.randn(rows, 1, generator=gen)


def mse_grads(model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor, reduction: str = "mean"):
    loss = nn.functional.mse_loss(model(inputs), targets, reduction=reduction)
    names, params = zip(*model.named_parameters(), strict=True)
    return dict(zip(names, torch.autograd.grad(loss, params), strict=True))


def ddp_rank(rank: int, world_size: int, cases, own_start: bool):
    """On each rank: its own shard of every case, and, if own_start, its own initial weights."""
    results = []
    for seed, rows in cases:
        model = mlp(seed + 100 * rank if own_start else seed)
        inputs, targets = regression_data(seed, rows)
        grads = dv.ddp_gradients(model, inputs.chunk(world_size)[rank], targets.chunk(world_size)[rank])
        if hasattr(grads, "items"):
            grads = {k: v.detach().clone() if isinstance(v, torch.Tensor) else v for k, v in grads.items()}
        else:
            grads = repr(grads)
        results.append((grads, {name: p.detach().clone() for name, p in model.named_parameters()}))
    return results


def expect_grads(got, expected: dict, mistakes: dict, call: str) -> None:
    if not isinstance(got, dict):
        fail(
            _("Called {call}.\nIt returned {got}; a dict {{parameter name: gradient}} is asked for.").format(
                call=call, got=got
            )
        )
    if sorted(got) != sorted(expected):
        prefix = all(k.startswith("module.") for k in got)
        fail(
            _("Called {call}.\nIt returned the keys {keys}, expected {expected}.").format(
                call=call, keys=list(got), expected=list(expected)
            )
            + "\n"
            + (
                _(
                    "Likely cause: these are the DDP wrapper's names, which start with 'module.'; iterate "
                    "over the model you were given (model.named_parameters())."
                )
                if prefix
                else _("Return `{{name: p.grad for name, p in model.named_parameters()}}`.").format()
            )
        )
    for name in expected:
        expect_tensor_close(
            got[name],
            expected[name],
            call=_("{call}; the gradient of {name}").format(call=call, name=name),
            rtol=DDP_RTOL,
            atol=DDP_ATOL,
            mistakes=[(cause, wrong[name]) for cause, wrong in mistakes],
        )


def run_ddp(tmp_path, cases, own_start: bool):
    # DistributedDataParallel's first use imports torch._dynamo (a second): once here, not per rank.
    return run_ranks(
        ddp_rank, cases, own_start, tmp_path=tmp_path, call=_(ddp_call), preload=["torch._dynamo"]
    )


@exercise("ddp_gradients")
def test_ddp_gradients_on_every_rank_equal_the_full_batch_gradient(tmp_path):
    results = run_ddp(tmp_path, DDP_CASES, own_start=False)
    for case, (seed, rows) in enumerate(DDP_CASES):
        inputs, targets = regression_data(seed, rows)
        full = mse_grads(mlp(seed), inputs, targets)
        for rank in range(2):
            shard = inputs.chunk(2)[rank], targets.chunk(2)[rank]
            local = mse_grads(mlp(seed), *shard)
            local_sum = mse_grads(mlp(seed), *shard, reduction="sum")
            summed_loss = {k: v * (rows // 2) for k, v in full.items()}
            mistakes = [
                (
                    _(
                        "the gradients are twice the full-batch gradient: they were summed over the 2 ranks, "
                        "not averaged. DistributedDataParallel averages for you; a hand-written all_reduce "
                        "must divide by dist.get_world_size()"
                    ),
                    {k: 2 * v for k, v in full.items()},
                ),
                (
                    _(
                        "each rank kept the gradient of its own shard: nothing was averaged across ranks. "
                        "Wrap the model, DistributedDataParallel(model), and run the forward pass through "
                        "the wrapper: its backward() all-reduces the gradients"
                    ),
                    local,
                ),
                (
                    _(
                        "the loss was summed over the shard (reduction='sum'); mse_loss's default mean "
                        "makes the average over ranks equal the full batch's mean gradient"
                    ),
                    summed_loss,
                ),
                (_("the rank's own summed loss, never averaged: use DDP and the mean loss"), local_sum),
            ]
            got = results[rank][case][0]
            call = _("{call}, batch of {rows} rows (case {case}), on rank {rank}").format(
                call=_(ddp_call), rows=rows, case=case, rank=rank
            )
            expect_grads(got, full, mistakes, call)


@exercise("ddp_gradients")
def test_ddp_gradients_start_every_replica_from_rank_0s_weights(tmp_path):
    seed, rows = DDP_CASES[0]
    results = run_ddp(tmp_path, [(seed, rows)], own_start=True)
    start = [mlp(seed + 100 * rank) for rank in range(2)]
    inputs, targets = regression_data(seed, rows)
    call = _("{call}, where rank 1 built its model from a different seed than rank 0").format(
        call=_(ddp_call)
    )
    for rank in range(2):  # first the weights on every rank: a gradient at the wrong weights follows
        params = results[rank][0][1]
        own = {name: p.detach() for name, p in start[rank].named_parameters()}
        for name, p in start[0].named_parameters():
            if not torch.equal(params[name], p.detach()):
                kept_own = torch.equal(params[name], own[name])
                message = (
                    _(
                        "Called {call}.\nAfterwards rank {rank}'s {name} differs from rank 0's initial "
                        "value: it kept its own initial weights.\nLikely cause: the model was never "
                        "wrapped in DistributedDataParallel (gradients averaged by hand, or not at all, "
                        "leave each replica at its own start). DistributedDataParallel(model) broadcasts "
                        "rank 0's parameters and buffers to every rank when it is built, so all replicas "
                        "start equal and, with averaged gradients, stay equal."
                    )
                    if kept_own
                    else _(
                        "Called {call}.\nAfterwards rank {rank}'s {name} differs from rank 0's initial value."
                    )
                )
                fail(message.format(call=call, rank=rank, name=name))
    expected = mse_grads(start[0], inputs, targets)
    for rank in range(2):
        expect_grads(
            results[rank][0][0], expected, [], call=_("{call}; on rank {rank}").format(call=call, rank=rank)
        )


# --- shard_loader -----------------------------------------------------------------------------


class Indices(Dataset):
    """Item i is the number i, so that a loader shows which items it read."""

    def __init__(self, size: int):
        self.size = size

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, index: int) -> int:
        return index


def call_shard_loader(*args, **kwargs):
    try:
        return dv.shard_loader(*args, **kwargs)
    except ValueError as err:
        if "init_process_group" not in str(err):  # asked the default process group, which is absent
            raise
        error = err
    call = f"shard_loader(..., num_replicas={kwargs.get('num_replicas')}, rank={kwargs.get('rank')})"
    fail(
        _(
            "Called {call} with no process group.\nIt raised ValueError: {error}\nLikely cause: "
            "DistributedSampler asks the process group only for what it is not given; pass "
            "num_replicas=num_replicas and rank=rank on."
        ).format(call=call, error=error)
    )


def read_all(loader) -> list[int]:
    seen = []
    for batch in loader:  # batches of numbers; a bare sampler yields the numbers themselves
        seen.extend(batch.tolist() if isinstance(batch, torch.Tensor) else [batch])
    return seen


def reference_shard(size: int, epoch: int, seed: int, world_size: int, rank: int) -> list[int]:
    sampler = DistributedSampler(Indices(size), num_replicas=world_size, rank=rank, shuffle=True, seed=seed)
    sampler.set_epoch(epoch)
    return list(sampler)


def expect_shards(shards: list[list[int]], size: int, epoch: int, seed: int, call: str) -> None:
    """One epoch over `size` items on len(shards) ranks: equal shares, every item, overlap only as padding."""
    world_size = len(shards)
    share = math.ceil(size / world_size)
    padding = share * world_size - size
    for rank, shard in enumerate(shards):
        if len(shard) == size != share:
            fail(
                _(
                    "Called {call}.\nRank {rank} read all {size} items; each rank should read {share}.\n"
                    "Likely cause: the DataLoader has no DistributedSampler (shuffle=True alone reads the "
                    "whole dataset on every rank); pass sampler=DistributedSampler(...)."
                ).format(call=call, rank=rank, size=size, share=share)
            )
        if len(shard) != share:
            fail(
                _(
                    "Called {call}.\nRank {rank} read {count} items, {shard}; expected {share} "
                    "(ceil({size} / {world_size}))."
                ).format(
                    call=call,
                    rank=rank,
                    count=len(shard),
                    shard=shard,
                    share=share,
                    size=size,
                    world_size=world_size,
                )
                + (
                    "\n"
                    + _(
                        "Likely cause: drop_last=True drops the tail so that the shares come out even; "
                        "keep the default drop_last=False, which pads instead and loses no item."
                    )
                    if len(shard) == size // world_size
                    else ""
                )
            )
    missing = sorted(set(range(size)) - {i for shard in shards for i in shard})
    # With at least one item per rank, the padded order never gives two ranks the same shard.
    if 1 < world_size <= size and all(shard == shards[0] for shard in shards):
        fail(
            _(
                "Called {call}.\nEvery rank read the same items, {shard}.\nLikely cause: no rank offset: "
                "each rank must take its own slice (DistributedSampler does, given rank) of one shuffled "
                "order that is the same on every rank (the same seed and epoch)."
            ).format(call=call, shard=shards[0])
        )
    if missing:
        fail(
            _(
                "Called {call}.\nThe ranks read {shards} together and never item(s) {missing}; with "
                "{padding} item(s) read twice to even out the shares, every item is read at least once.\n"
                "Likely cause: the ranks shuffled differently, so their slices overlap; every rank must use "
                "the same seed (and the same epoch). Only the rank picks the slice."
            ).format(call=call, shards=shards, missing=missing, padding=padding)
        )
    expected = [reference_shard(size, epoch, seed, world_size, rank) for rank in range(world_size)]
    if shards != expected:
        cause = (
            _("set_epoch(epoch) was not called, so every epoch repeats epoch 0's order.")
            if shards == [reference_shard(size, 0, seed, world_size, r) for r in range(world_size)]
            else _(
                "the order does not come from one DistributedSampler(dataset, num_replicas, rank, "
                "shuffle=True, seed=seed) shuffle after set_epoch(epoch): no DistributedSampler "
                "(DataLoader(shuffle=True) or a permutation of your own instead), or not the same seed "
                "on every rank."
            )
        )
        fail(
            _(
                "Called {call}.\nThe shards are {shards}; DistributedSampler(dataset, num_replicas, rank, "
                "shuffle=True, seed={seed}) after set_epoch({epoch}) gives {expected}."
            ).format(call=call, shards=shards, seed=seed, epoch=epoch, expected=expected)
            + "\n"
            + _("Likely cause: {cause}").format(cause=cause)
        )


@exercise("shard_loader")
@given(
    size=st.integers(1, 30),
    world_size=st.integers(1, 4),
    batch_size=st.integers(1, 4),
    epoch=st.integers(0, 3),
    seed=st.integers(0, 3),
)
def test_shard_loader_splits_an_epoch_across_ranks(size, world_size, batch_size, epoch, seed):
    call = _(
        "shard_loader(dataset of {size} items, batch_size={batch_size}, epoch={epoch}, seed={seed}, "
        "num_replicas={world_size}, rank=r) for r = 0..{last}"
    ).format(
        size=size, batch_size=batch_size, epoch=epoch, seed=seed, world_size=world_size, last=world_size - 1
    )
    shards = [
        read_all(call_shard_loader(Indices(size), batch_size, epoch, seed, num_replicas=world_size, rank=r))
        for r in range(world_size)
    ]
    expect_shards(shards, size, epoch, seed, call)


@exercise("shard_loader")
def test_shard_loader_reshuffles_every_epoch_the_same_way_on_every_call():
    def order(epoch):
        return read_all(call_shard_loader(Indices(16), 4, epoch, seed=0, num_replicas=2, rank=0))

    orders = [order(epoch) for epoch in range(3)]
    call = _("shard_loader(dataset of 16 items, 4, epoch, num_replicas=2, rank=0) for epochs 0, 1, 2")
    if orders[0] == orders[1] == orders[2]:
        fail(
            _(
                "Called {call}.\nEvery epoch gave the same order, {order}.\n"
                "Likely cause: sampler.set_epoch(epoch) was not called. DistributedSampler seeds its shuffle "
                "with seed + epoch; without set_epoch every epoch replays epoch 0."
            ).format(call=call, order=orders[0])
        )
    again = order(1)
    if again != orders[1]:
        fail(
            _(
                "Called {call}.\nEpoch 1 gave {first}, then {again} when asked again.\n"
                "Likely cause: the shuffle depends on something other than seed and epoch (the global RNG?); "
                "ranks must agree on it without talking to each other."
            ).format(call=call, first=orders[1], again=again)
        )


def shard_rank(rank: int, world_size: int, size: int, batch_size: int, epochs: list[int]):
    """On each rank: the items its loader reads in each epoch, rank and world size left to the group."""
    return [read_all(dv.shard_loader(Indices(size), batch_size, epoch)) for epoch in epochs]


@exercise("shard_loader")
def test_shard_loader_takes_rank_and_world_size_from_the_process_group(tmp_path):
    size, epochs = 11, [0, 1]
    call = _(
        "shard_loader(dataset of {size} items, batch_size=4, epoch) on each of 2 ranks, epochs {epochs}"
    ).format(size=size, epochs=epochs)
    results = run_ranks(shard_rank, size, 4, epochs, tmp_path=tmp_path, call=call)
    for i, epoch in enumerate(epochs):
        # 11 items on 2 ranks: 6 each, so one item is read twice (DistributedSampler pads by repeating).
        expect_shards(
            [results[rank][i] for rank in range(2)],
            size,
            epoch,
            0,
            _("{call}, epoch {epoch}").format(call=call, epoch=epoch),
        )
