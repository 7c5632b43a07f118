"""Kata 09: parameters and checkpoints. Read a test's name for the behaviour, its body for the call.

Every file lives in pytest's tmp_path. Where the lesson is an exact copy (a round trip, a
resumed run), tensors are compared with torch.equal: a checkpoint restores bits, not
approximations.
"""

import copy
import io
import os
import pickle
import random
from argparse import Namespace
from collections import OrderedDict

import checkpointing as cp
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from katas._harness.i18n import N_, _
from katas._harness.testing import fail, show

exercise = pytest.mark.exercise


# --- models and files the tests build ------------------------------------------------------


class SimpleNet(nn.Module):
    """The article's network: Linear 2 -> 4, ReLU, Linear 4 -> 1."""

    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(2, 4)
        self.relu = nn.ReLU()
        self.fc2 = nn.Linear(4, 1)

    def forward(self, x):
        return self.fc2(self.relu(self.fc1(x)))


def normed_net(seed: int) -> nn.Sequential:
    """A small net with a BatchNorm layer, whose running statistics are buffers, not parameters."""
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.ReLU(), nn.Linear(4, 2))


def trained_normed_net(seed: int) -> nn.Sequential:
    """normed_net as if it had been trained: weights and BatchNorm statistics off their init."""
    model = normed_net(seed)
    pretend_trained(model)
    return model.eval()


def pretend_trained(model: nn.Module) -> None:
    """Move every parameter and BatchNorm buffer away from its initial value, as training would.

    LayerNorm and BatchNorm start at the same ones and zeros in every model: without this, a
    weight that was never loaded could still look "equal to the checkpoint's".
    """
    with torch.no_grad():
        for param in model.parameters():
            param.add_(0.1 * torch.randn_like(param))
        for module in model.modules():
            if isinstance(module, nn.BatchNorm1d):
                module.running_mean.normal_()
                module.running_var.uniform_(0.5, 2.0)
                module.num_batches_tracked += 3


class Classifier(nn.Module):
    """A backbone, a LayerNorm called head_norm that belongs to it, and a Linear head."""

    def __init__(self, classes: int, width: int = 6, depth: int = 2):
        super().__init__()
        layers = []
        for i in range(depth):
            layers += [nn.Linear(3 if i == 0 else width, width), nn.BatchNorm1d(width), nn.ReLU()]
        self.backbone = nn.Sequential(*layers)
        self.head_norm = nn.LayerNorm(width)
        self.head = nn.Linear(width, classes)

    def forward(self, x):
        return self.head(self.head_norm(self.backbone(x)))


class RunsCodeWhenLoaded:
    """Unpickling this object calls os.mkdir(marker): a stand-in for whatever an attacker wants."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


class SimulatedCrash(Exception):
    """Stands in for a crash in the middle of a save: a full disk, a killed job."""


class CrashesWhenPickled:
    """An object whose pickling fails, after the tensors before it were written."""

    def __reduce__(self):
        raise SimulatedCrash(_("simulated crash while pickling"))


def save_as_if_on_cuda(obj, path) -> None:
    """torch.save, but every storage is tagged 'cuda:0', as when the tensors lived on a GPU.

    torch.save records each storage's device in the file; torch.load rebuilds it there unless
    map_location says otherwise. The tag is all that makes a checkpoint "a GPU checkpoint".
    """
    real = torch.serialization.location_tag
    torch.serialization.location_tag = lambda storage: "cuda:0"
    try:
        torch.save(obj, path)
    finally:
        torch.serialization.location_tag = real


def tampered_file(path, marker) -> None:
    torch.save({"fc.weight": torch.ones(2, 2), "note": RunsCodeWhenLoaded(marker)}, path)


def expect_code_did_not_run(marker, *, call: str) -> None:
    if marker.exists():
        fail(
            _(
                "Called {call} on a file holding a pickled object whose unpickling calls "
                "os.mkdir({marker}).\nThe directory now exists: loading ran the attacker's code.\n"
                "Likely cause: torch.load(..., weights_only=False) unpickles anything, and unpickling can "
                "call any function. Pass weights_only=True: it accepts only tensors, containers and "
                "numbers, and raises on anything else."
            ).format(call=call, marker=repr(marker.name))
        )


def call_refusing(fn, *args, call: str):
    """Call fn(*args), which must refuse the tampered file with pickle.UnpicklingError."""
    try:
        result = fn(*args)
    except pickle.UnpicklingError:
        return
    except NotImplementedError:
        raise
    except Exception as err:
        other = err
    else:
        other = None
    if other is not None:
        fail(
            _(
                "Called {call} on a file that hides code in a pickle.\nIt raised {error_type}: "
                "{error}\nbut the tests expected pickle.UnpicklingError, the error torch.load(..., "
                "weights_only=True) raises for such a file: let it through unchanged, callers catch "
                "that type."
            ).format(call=call, error_type=type(other).__name__, error=other)
        )
    fail(
        _(
            "Called {call} on a file that hides code in a pickle.\nIt returned {result} instead of "
            "raising.\nLikely cause: weights_only=True raises pickle.UnpicklingError on such a file; let "
            "that error reach the caller (do not catch it and return None), and never fall back to "
            "weights_only=False."
        ).format(call=call, result=show(result))
    )


def differing_keys(got, expected) -> list[str]:
    return [k for k in expected if k in got and not torch.equal(got[k], expected[k])]


def expect_same_state(got, expected, *, call: str, what: str) -> None:
    if not isinstance(got, dict):
        fail(
            _("Called {call}.\nIt gave {type}; {what} should be a dict of tensors.").format(
                call=call, type=type(got).__name__, what=what
            )
        )
    missing = [k for k in expected if k not in got]
    extra = [k for k in got if k not in expected]
    if missing or extra:
        buffers = [k for k in missing if "running" in k or "num_batches" in k]
        cause = ""
        if buffers:
            cause = "\n" + _(
                "Likely cause: the buffers (BatchNorm's running_mean, running_var, num_batches_tracked) "
                "are missing: you saved the parameters only. model.state_dict() holds parameters "
                "and buffers; save that."
            )
        fail(
            _("Called {call}.\n{what} lacks keys {missing} and has extra keys {extra}.").format(
                call=call, what=what, missing=missing, extra=extra
            )
            + cause
        )
    changed = differing_keys(got, expected)
    if changed:
        fail(
            _(
                "Called {call}.\n{what}: the values of {changed} differ from the model's; a copy is exact."
            ).format(call=call, what=what, changed=changed)
        )


# --- parameter_shapes --------------------------------------------------------------------------


def explain_shapes(got, model) -> str:
    """The likely cause when parameter_shapes(model) returned `got` instead of named_parameters."""
    expected = [(name, p.shape) for name, p in model.named_parameters()]
    names = [item[0] for item in got] if all(isinstance(i, tuple) and len(i) == 2 for i in got) else []
    buffers = [name for name, _buffer in model.named_buffers()]
    frozen = [name for name, p in model.named_parameters() if not p.requires_grad]
    if got and not names:
        return _(
            "return a list of (name, shape) pairs; a dict, or a list of names or shapes alone, is not "
            "one (iterating a dict gives only its keys)"
        )
    if names and names == [n for n, _shape in expected]:
        kinds = {type(shape).__name__ for _name, shape in got}
        if kinds != {"Size"}:
            return _(
                "the shapes are {kinds}, not torch.Size: return param.shape (or param.size()) "
                "as it is; it prints as torch.Size([4, 2]), like the article's output"
            ).format(kinds=sorted(kinds))
        return _("the shapes differ from the parameters' shapes")
    if any(n in names for n in buffers):
        return _(
            "buffers such as BatchNorm's running_mean are in your list: they live in state_dict(), "
            "but they are not parameters; iterate over model.named_parameters()"
        )
    if any(n.endswith("bias") for n, _shape in expected) and not any(n.endswith("bias") for n in names):
        return _("every bias is missing: named_parameters() yields weights and biases, keep them all")
    if frozen and not any(n in names for n in frozen):
        return _(
            "the frozen parameters (requires_grad=False) are missing: they are still parameters, "
            "saved and loaded like the others"
        )
    return _("return [(name, param.shape) for name, param in model.named_parameters()], in that order")


def expect_shapes(got, model, *, call: str) -> None:
    expected = [(name, p.shape) for name, p in model.named_parameters()]
    if got is None:
        fail(_("Called {call}.\nIt returned None. Did you forget the `return` statement?").format(call=call))
    returned, got = got, list(got)
    same = len(got) == len(expected) and all(
        isinstance(item, tuple) and item[0] == name and type(item[1]) is torch.Size and item[1] == shape
        for item, (name, shape) in zip(got, expected, strict=True)
    )
    if not same:
        fail(
            _(
                "Called {call}.\nIt returned {got},\nbut the tests expected {expected}.\n"
                "Likely cause: {cause}."
            ).format(call=call, got=repr(returned), expected=repr(expected), cause=explain_shapes(got, model))
        )


@exercise("parameter_shapes")
def test_parameter_shapes_of_the_article_simplenet_print_like_the_article():
    model = SimpleNet()
    call = "parameter_shapes(SimpleNet())"
    got = cp.parameter_shapes(model)
    expect_shapes(got, model, call=call)
    printed = [f"{name} {shape}" for name, shape in got]
    article = [
        "fc1.weight torch.Size([4, 2])",
        "fc1.bias torch.Size([4])",
        "fc2.weight torch.Size([1, 4])",
        "fc2.bias torch.Size([1])",
    ]
    if printed != article:
        fail(
            _("Called {call}.\nPrinting each pair gave {printed},\nbut the article prints {article}.").format(
                call=call, printed=printed, article=article
            )
        )


@exercise("parameter_shapes")
def test_parameter_shapes_lists_parameters_not_buffers_and_keeps_frozen_ones():
    model = normed_net(0)
    model[0].requires_grad_(False)  # a frozen first layer is still a parameter
    call = _(
        "parameter_shapes(nn.Sequential(Linear(3, 4), BatchNorm1d(4), ReLU(), Linear(4, 2))) "
        "with the first Linear frozen"
    )
    expect_shapes(cp.parameter_shapes(model), model, call=call)


@st.composite
def mlps(draw):
    """A random MLP: widths, bias on or off per layer, some layers frozen, maybe a BatchNorm."""
    widths = draw(st.lists(st.integers(1, 6), min_size=2, max_size=5))
    layers: list[nn.Module] = []
    text = []
    for i, (fan_in, fan_out) in enumerate(zip(widths, widths[1:], strict=False)):
        bias, frozen = draw(st.booleans()), draw(st.booleans())
        layer = nn.Linear(fan_in, fan_out, bias=bias).requires_grad_(not frozen)
        layers.append(layer)
        linear = f"Linear({fan_in}, {fan_out}, bias={bias})"
        text.append(_("{layer} frozen").format(layer=linear) if frozen else linear)
        if i == 0 and draw(st.booleans()):
            layers.append(nn.BatchNorm1d(fan_out))
            text.append(f"BatchNorm1d({fan_out})")
    return nn.Sequential(*layers), f"nn.Sequential({', '.join(text)})"


@exercise("parameter_shapes")
@given(case=mlps())
def test_parameter_shapes_match_named_parameters_for_random_models(case):
    model, text = case
    expect_shapes(cp.parameter_shapes(model), model, call=f"parameter_shapes({text})")


# --- save_weights ------------------------------------------------------------------------------


def load_plain(path, *, call: str):
    """torch.load with weights_only=True, failing with a lesson if the file holds pickled objects."""
    try:
        return torch.load(path, weights_only=True)
    except pickle.UnpicklingError as err:
        refusal = err  # fail below, outside the handler: no chained traceback
    fail(
        _(
            "Called {call}.\ntorch.load(path, weights_only=True) refused the file:\n"
            "  UnpicklingError: {refusal}\n"
            "Likely cause: you pickled the whole model (or optimizer) object. That file can only be "
            "loaded with weights_only=False, which may run arbitrary code, and it breaks when the "
            "class's code moves or changes. Save model.state_dict() instead: plain names and tensors."
        ).format(call=call, refusal=refused_global(refusal))
    )


def refused_global(err: Exception) -> str:
    """The line of a weights_only refusal that names the offending class or function."""
    return next((line for line in str(err).splitlines() if "GLOBAL" in line), str(err)).strip()


@exercise("save_weights")
def test_save_weights_round_trips_through_a_fresh_model(tmp_path):
    model = trained_normed_net(seed=0)
    path = tmp_path / "weights.pt"
    call = _("save_weights(model, path), then model2.load_state_dict(torch.load(path, weights_only=True))")
    cp.save_weights(model, path)
    state = load_plain(path, call=call)
    expect_same_state(state, model.state_dict(), call=call, what=_("the saved state_dict"))
    fresh = normed_net(seed=1).eval()
    fresh.load_state_dict(state)
    x = torch.randn(5, 3)
    if not torch.equal(fresh(x), model(x)):
        fail(
            _("Called {call}.\nThe reloaded model computes different outputs from the saved one.").format(
                call=call
            )
        )


@exercise("save_weights")
def test_save_weights_writes_the_state_dict_with_its_buffers(tmp_path):
    model = trained_normed_net(seed=2)
    path = tmp_path / "weights.pt"
    call = "save_weights(nn.Sequential(Linear, BatchNorm1d, ReLU, Linear), path)"
    cp.save_weights(model, str(path))  # a str path works like a Path
    state = load_plain(path, call=call)
    expect_same_state(state, model.state_dict(), call=call, what=_("the saved file"))
    if list(state) != list(model.state_dict()):
        fail(
            _("Called {call}.\nThe keys are out of order: {keys}; save model.state_dict() as it is.").format(
                call=call, keys=list(state)
            )
        )


# --- load_to_device ----------------------------------------------------------------------------


def call_load_to_device(path, device, *, call: str):
    try:
        return cp.load_to_device(path, device)
    except NotImplementedError:
        raise
    except RuntimeError as err:
        if "CUDA" not in str(err):
            raise
        error = err
    fail(
        _(
            "Called {call} on a checkpoint whose tensors were saved on a GPU.\n"
            "It raised:\n  RuntimeError: {error}\n"
            "Likely cause: torch.load rebuilds every tensor on the device it was saved from, before "
            "your code sees it, so .to(device) afterwards comes too late. Pass map_location=device "
            "to torch.load: it places each storage while loading."
        ).format(call=call, error=error)
    )


@exercise("load_to_device")
@pytest.mark.parametrize("device", ["cpu", torch.device("cpu")], ids=["str", "torch.device"])
def test_load_to_device_maps_a_gpu_checkpoint_to_the_cpu(tmp_path, device):
    model = trained_normed_net(seed=3)
    path = tmp_path / "gpu.pt"
    save_as_if_on_cuda(model.state_dict(), path)
    call = f"load_to_device(path, {device!r})"
    state = call_load_to_device(path, device, call=call)
    expect_same_state(state, model.state_dict(), call=call, what=_("the loaded state_dict"))
    wrong = {k: v.device for k, v in state.items() if v.device != torch.device(device)}
    if wrong:
        fail(
            _("Called {call}.\nSome tensors are not on {device}: {wrong}.").format(
                call=call, device=repr(device), wrong=wrong
            )
        )


@exercise("load_to_device")
def test_load_to_device_meta_gives_shapes_without_data(tmp_path):
    model = normed_net(seed=4)
    path = tmp_path / "gpu.pt"
    save_as_if_on_cuda(model.state_dict(), path)
    call = _("load_to_device(path, 'meta') on a checkpoint saved on a GPU")
    # call_load_to_device's own message says where the checkpoint was saved
    state = call_load_to_device(path, "meta", call="load_to_device(path, 'meta')")
    got = {k: (v.device.type, tuple(v.shape)) for k, v in state.items()}
    expected = {k: ("meta", tuple(v.shape)) for k, v in model.state_dict().items()}
    if got != expected:
        cause = ""
        if got.keys() == expected.keys() and all(device == "cpu" for device, _shape in got.values()):
            cause = "\n" + _(
                "Likely cause: you ignored the device argument; pass map_location=device, not 'cpu'."
            )
        fail(
            _("Called {call}.\nIt gave {got},\nbut the tests expected {expected}.").format(
                call=call, got=got, expected=expected
            )
            + cause
        )


@exercise("load_to_device")
def test_load_to_device_refuses_a_tampered_file(tmp_path):
    path, marker = tmp_path / "weights.pt", tmp_path / "created_by_the_pickle"
    tampered_file(path, marker)
    call = "load_to_device(path, 'cpu')"
    call_refusing(cp.load_to_device, path, "cpu", call=call)
    expect_code_did_not_run(marker, call=call)


# --- safe_load ---------------------------------------------------------------------------------


@exercise("safe_load")
def test_safe_load_returns_a_plain_checkpoint_unchanged(tmp_path):
    checkpoint = {
        "model": OrderedDict(w=torch.arange(6.0).reshape(2, 3), b=torch.zeros(2)),
        "epoch": 7,
        "history": [0.5, 0.25],
        "shape": (2, 3),
        "name": "run-7",
    }
    path = tmp_path / "ckpt.pt"
    torch.save(checkpoint, path)
    call = _("safe_load(path) on {{'model': OrderedDict(...), 'epoch': 7, 'history': [...], ...}}").format()
    got = cp.safe_load(path)
    if not isinstance(got, dict) or got.keys() != checkpoint.keys():
        fail(
            _("Called {call}.\nIt returned {got}; the tests expected the saved dict back.").format(
                call=call, got=show(got)
            )
        )
    same_model = got["model"].keys() == checkpoint["model"].keys() and not differing_keys(
        got["model"], checkpoint["model"]
    )
    rest = {k: got[k] for k in checkpoint if k != "model"}
    if not same_model or rest != {k: v for k, v in checkpoint.items() if k != "model"}:
        fail(
            _("Called {call}.\nIt returned {got},\nwhich differs from what was saved: {saved}.").format(
                call=call, got=repr(got), saved=repr(checkpoint)
            )
        )


@exercise("safe_load")
def test_safe_load_refuses_code_hidden_in_a_pickle(tmp_path):
    path, marker = tmp_path / "ckpt.pt", tmp_path / "created_by_the_pickle"
    tampered_file(path, marker)
    call = "safe_load(path)"
    call_refusing(cp.safe_load, path, call=call)
    expect_code_did_not_run(marker, call=call)


requires_safe_globals = pytest.mark.skipif(
    not hasattr(torch.serialization, "safe_globals"),
    reason=_("torch.serialization.safe_globals needs torch 2.5+"),
)


@pytest.fixture
def restore_safe_globals():
    """Undo any change to torch's process-wide allowlist, so that a leak cannot reach other tests."""
    before = list(torch.serialization.get_safe_globals())
    yield before
    torch.serialization.clear_safe_globals()
    torch.serialization.add_safe_globals(before)


def call_trusting(path, *, call: str):
    try:
        return cp.safe_load(path, [Namespace])
    except pickle.UnpicklingError as err:
        refusal = err
    fail(
        _(
            "Called {call}.\nIt raised UnpicklingError: {refusal}\nLikely cause: the trusted "
            "classes were ignored. Load inside `with torch.serialization.safe_globals(list(trusted)):`, "
            "which lets weights_only=True rebuild exactly those classes."
        ).format(call=call, refusal=refused_global(refusal))
    )


@exercise("safe_load")
@requires_safe_globals
def test_safe_load_accepts_only_the_classes_the_caller_trusts(tmp_path, restore_safe_globals):
    path = tmp_path / "ckpt.pt"
    torch.save({"args": Namespace(lr=0.1, layers=[2, 4, 1]), "w": torch.ones(2)}, path)
    untrusted_call = _(
        "safe_load(path) on a checkpoint holding an argparse.Namespace, with no trusted classes"
    )
    try:
        result = cp.safe_load(path)
    except pickle.UnpicklingError:
        pass
    else:
        fail(
            _("Called {call}.\nIt returned {result}; a class nobody trusted must be refused.").format(
                call=untrusted_call, result=show(result)
            )
        )
    call = _("safe_load(path, trusted=[argparse.Namespace]) on a checkpoint holding an argparse.Namespace")
    got = call_trusting(path, call=call)
    if not isinstance(got, dict) or got.get("args") != Namespace(lr=0.1, layers=[2, 4, 1]):
        fail(
            _(
                "Called {call}.\nIt returned {got}; the saved Namespace(lr=0.1, layers=[2, 4, 1]) "
                "should come back."
            ).format(call=call, got=show(got))
        )


@exercise("safe_load")
@requires_safe_globals
def test_safe_load_trusts_a_class_only_for_that_call(tmp_path, restore_safe_globals):
    path = tmp_path / "ckpt.pt"
    torch.save({"args": Namespace(lr=0.1)}, path)
    call = "safe_load(path, trusted=[argparse.Namespace])"
    call_trusting(path, call=call)
    leaked = [g for g in torch.serialization.get_safe_globals() if g not in restore_safe_globals]
    if leaked:
        fail(
            _(
                "Called {call}.\nAfterwards every torch.load in this process trusts {leaked}.\n"
                "Likely cause: torch.serialization.add_safe_globals changes a process-wide list. Use the "
                "context manager `with torch.serialization.safe_globals(list(trusted)):` around this one "
                "torch.load."
            ).format(call=call, leaked=leaked)
        )


# --- save_atomically ---------------------------------------------------------------------------


def previous_checkpoint(tmp_path):
    path = tmp_path / "ckpt.pt"
    torch.save({"epoch": 1, "w": torch.arange(4.0)}, path)
    return path, path.read_bytes()


def expect_previous_intact(path, old_bytes, *, call: str, fix: str = "") -> None:
    leftovers = sorted(p.name for p in path.parent.iterdir() if p != path)
    if not path.exists() or path.read_bytes() != old_bytes:
        lost = (
            _("The previous checkpoint is gone, so the run has nothing to resume from.")
            if not path.exists()
            else _(
                "The previous checkpoint was overwritten by a broken, half-written file, so the run has "
                "nothing to resume from."
            )
        )
        fail(
            _("Called {call}, which crashed midway.").format(call=call)
            + "\n"
            + lost
            + "\n"
            + _(
                "Likely cause: torch.save wrote straight onto the target path, "
                "which is not atomic: it truncates the old file first. Write to a temporary file in the "
                "same directory, then os.replace(temp, path): the rename swaps the whole file at once."
            )
            + fix
        )
    if leftovers:
        fail(
            _(
                "Called {call}, which crashed midway.\nThe previous checkpoint is intact, but the "
                "directory now also holds {leftovers}: a stray temporary file.\nLikely cause: remove the "
                "temporary file when the save fails (try/except, unlink it, then re-raise)."
            ).format(call=call, leftovers=leftovers)
        )


def save_half_then_crash(real_save):
    """A torch.save that writes the first half of the file, then dies like a full disk."""

    def save(obj, f, *args, **kwargs):
        buffer = io.BytesIO()
        real_save(obj, buffer, *args, **kwargs)
        half = buffer.getvalue()[: buffer.tell() // 2]
        if isinstance(f, (str, os.PathLike)):
            with open(f, "wb") as out:
                out.write(half)
        else:
            f.write(half)
        raise SimulatedCrash(_("No space left on device (simulated, after half the file)"))

    return save


def expect_crash_reported(fn, *args, call: str) -> None:
    try:
        fn(*args)
    except SimulatedCrash:
        return
    fail(
        _(
            "Called {call}, which crashed midway.\nIt returned normally: the error was swallowed, so the "
            "caller believes the checkpoint was saved. Clean up, then re-raise the error."
        ).format(call=call)
    )


@exercise("save_atomically")
def test_save_atomically_writes_and_replaces_a_checkpoint(tmp_path):
    path = tmp_path / "ckpt.pt"
    call = _("save_atomically({{'epoch': ..., 'w': ...}}, path) twice").format()
    cp.save_atomically({"epoch": 1, "w": torch.zeros(3)}, path)
    cp.save_atomically({"epoch": 2, "w": torch.arange(3.0)}, str(path))
    got = load_plain(path, call=call)
    if got.get("epoch") != 2 or not torch.equal(got.get("w", torch.empty(0)), torch.arange(3.0)):
        fail(
            _("Called {call}.\nThe file holds {got}; the second save should have replaced the first.").format(
                call=call, got=show(got)
            )
        )
    names = sorted(p.name for p in tmp_path.iterdir())
    if names != ["ckpt.pt"]:
        fail(
            _(
                "Called {call}.\nThe directory holds {names}; the temporary file must be renamed "
                "onto the path."
            ).format(call=call, names=names)
        )


@exercise("save_atomically")
def test_save_atomically_keeps_the_previous_checkpoint_when_pickling_fails(tmp_path):
    path, old = previous_checkpoint(tmp_path)
    call = _(
        "save_atomically({{'epoch': 2, 'w': ..., 'bad': an object whose pickling raises}}, path)"
    ).format()
    obj = {"epoch": 2, "w": torch.zeros(1000), "bad": CrashesWhenPickled()}
    expect_crash_reported(cp.save_atomically, obj, path, call=call)
    expect_previous_intact(path, old, call=call)


@exercise("save_atomically")
def test_save_atomically_keeps_the_previous_checkpoint_when_the_disk_fills_up(tmp_path, monkeypatch):
    path, old = previous_checkpoint(tmp_path)
    monkeypatch.setattr(torch, "save", save_half_then_crash(torch.save))
    call = _("save_atomically({{'epoch': 2, 'w': ...}}, path) while torch.save dies halfway through").format()
    expect_crash_reported(cp.save_atomically, {"epoch": 2, "w": torch.zeros(1000)}, path, call=call)
    expect_previous_intact(path, old, call=call)


@exercise("save_atomically")
def test_save_atomically_renames_a_temporary_file_from_the_same_directory(tmp_path, monkeypatch):
    renames = []
    for name in ("replace", "rename"):
        real = getattr(os, name)

        def record(src, dst, *args, _real=real, **kwargs):
            renames.append((os.fspath(src), os.fspath(dst)))
            return _real(src, dst, *args, **kwargs)

        monkeypatch.setattr(os, name, record)
    path = tmp_path / "ckpt.pt"
    call = "save_atomically({'w': ...}, path)"
    cp.save_atomically({"w": torch.ones(2)}, path)
    onto_path = [(src, dst) for src, dst in renames if os.path.abspath(dst) == str(path)]
    if not onto_path:
        fail(
            _(
                "Called {call}.\nNothing was renamed onto the path.\nLikely cause: save to a temporary "
                "file first, then os.replace(temp, path); writing the path directly is not atomic."
            ).format(call=call)
        )
    src = onto_path[-1][0]
    if os.path.dirname(os.path.abspath(src)) != str(tmp_path):
        fail(
            _(
                "Called {call}.\nThe temporary file {src} is not in the same directory as {path}.\n"
                "Likely cause: tempfile puts files in /tmp by default. A rename is atomic only within one "
                "file system, and /tmp is often another one (then os.replace fails, or shutil.move copies "
                "byte by byte). Pass dir=path.parent to tempfile.mkstemp / NamedTemporaryFile."
            ).format(call=call, src=src, path=path)
        )


# --- save_checkpoint and load_checkpoint: a small training run -----------------------------------


def training_setup(seed: int):
    """Model (with dropout), Adam, and a shuffling DataLoader driven by its own generator."""
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(3, 8), nn.ReLU(), nn.Dropout(0.3), nn.Linear(8, 1))
    optimizer = torch.optim.Adam(model.parameters(), lr=0.05)
    data = torch.Generator().manual_seed(123)  # the same data in every run
    x = torch.randn(24, 3, generator=data)
    y = torch.sin(x.sum(dim=1, keepdim=True))
    generator = torch.Generator().manual_seed(seed)
    loader = DataLoader(TensorDataset(x, y), batch_size=6, shuffle=True, generator=generator)
    return model, optimizer, loader, generator


def train_epoch(model, optimizer, loader) -> list[float]:
    """Uses all three sources of randomness: the loader's generator (shuffling), torch's global
    RNG (dropout) and Python's random (a jitter augmentation)."""
    model.train()
    losses = []
    for xb, yb in loader:
        jitter = random.uniform(-0.1, 0.1)
        optimizer.zero_grad()
        loss = F.mse_loss(model(xb + jitter), yb)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses


def start_fresh_process(seed: int = 999):
    """What a restarted job sees: new seeds, a freshly built model, optimizer and loader."""
    random.seed(seed)
    return training_setup(seed)


def reference_checkpoint(model, optimizer, epoch, generator) -> dict:
    """The checkpoint format save_checkpoint writes (see its docstring)."""
    return {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "epoch": epoch,
        "rng": {
            "torch": torch.get_rng_state(),
            "python": random.getstate(),
            "generator": generator.get_state(),
        },
    }


def same_optimizer_state(a: dict, b: dict) -> bool:
    if a.get("param_groups") != b.get("param_groups") or a.get("state", {}).keys() != b["state"].keys():
        return False
    for index, state in b["state"].items():
        other = a["state"][index]
        if other.keys() != state.keys() or not all(torch.equal(other[k], v) for k, v in state.items()):
            return False
    return True


def unrestored_parts(now: dict, at_save: dict) -> list[str]:
    """What of the training state a load did not bring back exactly, each with its fix."""
    parts = []
    changed = differing_keys(now["model"], at_save["model"])
    if changed:
        parts.append(
            _(
                "the model's weights {changed}: restore them with model.load_state_dict(checkpoint['model'])"
            ).format(changed=changed)
        )
    if not same_optimizer_state(now["optimizer"], at_save["optimizer"]):
        parts.append(_(OPTIMIZER_LOST))
    rng_now, rng_then = now["rng"], at_save["rng"]
    for name in ("torch", "generator"):
        if not torch.equal(rng_now[name], rng_then[name]):
            parts.append(rng_lost(name))
    if rng_now["python"] != rng_then["python"]:
        parts.append(rng_lost("python"))
    return parts


def trained_run(epochs: int = 1):
    random.seed(0)
    model, optimizer, loader, generator = training_setup(0)
    for _epoch in range(epochs):
        train_epoch(model, optimizer, loader)
    return model, optimizer, loader, generator


OPTIMIZER_LOST = N_(
    "the optimizer state is lost: Adam's step count and moment estimates (exp_avg, "
    "exp_avg_sq) start from zero again, so the first steps after resuming differ. Save "
    "optimizer.state_dict() and load it with optimizer.load_state_dict()."
)
RNG_SOURCES = {  # each source of randomness, and how its state is saved and restored
    "torch": (
        N_("torch's global RNG (it draws dropout masks and initial weights)"),
        "torch.get_rng_state()",
        "torch.set_rng_state()",
    ),
    "python": (
        N_("Python's random module (here: the jitter augmentation)"),
        "random.getstate()",
        "random.setstate()",
    ),
    "generator": (
        N_("the DataLoader's generator (it decides the shuffling order)"),
        "generator.get_state()",
        "generator.set_state()",
    ),
}


def rng_lost(key: str) -> str:
    """The RNG `key` names, with how to save and restore its state."""
    source, save, restore = RNG_SOURCES[key]
    return _("{source}: save {save}, restore it with {restore}").format(
        source=_(source), save=save, restore=restore
    )


def checkpoint_keys_cause(got) -> str:
    """What a checkpoint without the four keys most likely shows, from what it holds instead."""
    if not isinstance(got, dict):
        return _(
            "you saved a {type}, not a dict. Save one dict holding everything a resumed "
            "run needs: torch.save({{'model': model.state_dict(), 'optimizer': optimizer.state_dict(), "
            "'epoch': epoch, 'rng': {{...}}}}, path)."
        ).format(type=type(got).__name__)
    if "optimizer" not in got:
        return _(OPTIMIZER_LOST)
    if got and all(isinstance(v, torch.Tensor) for v in got.values()):
        return _(
            "the file holds the model's state_dict() alone; wrap it: {{'model': model.state_dict(), ...}}."
        ).format()
    lacking = [k for k in ("model", "optimizer", "epoch", "rng") if k not in got]
    why = {
        "model": "'model': model.state_dict()",
        "epoch": _("'epoch': the epoch just finished, so the run resumes at the next one"),
        "rng": _(
            "'rng': the states of torch's RNG, Python's random module and the DataLoader's generator, "
            "so the resumed run draws the same numbers"
        ),
    }
    return _("the checkpoint lacks {parts}.").format(parts="; ".join(why[k] for k in lacking if k in why))


@exercise("save_checkpoint")
def test_save_checkpoint_holds_model_optimizer_epoch_and_rng_states(tmp_path):
    model, optimizer, _loader, generator = trained_run()
    expected = reference_checkpoint(model, optimizer, 1, generator)
    path = tmp_path / "ckpt.pt"
    call = "save_checkpoint(path, model, optimizer, epoch=1, generator=loader_generator)"
    cp.save_checkpoint(path, model, optimizer, 1, generator)
    got = load_plain(path, call=call)
    if not isinstance(got, dict) or not {"model", "optimizer", "epoch", "rng"} <= got.keys():
        keys = list(got) if isinstance(got, dict) else type(got).__name__
        fail(
            _(
                "Called {call}.\nThe file holds {keys}; a checkpoint is a dict with the keys "
                "'model', 'optimizer', 'epoch' and 'rng'.\nLikely cause: {cause}"
            ).format(call=call, keys=keys, cause=checkpoint_keys_cause(got))
        )
    expect_same_state(got["model"], expected["model"], call=call, what="checkpoint['model']")
    if not isinstance(got["optimizer"], dict) or not same_optimizer_state(
        got["optimizer"], expected["optimizer"]
    ):
        fail(
            _(
                "Called {call}.\ncheckpoint['optimizer'] is not optimizer.state_dict().\n"
                "Likely cause: {cause}"
            ).format(call=call, cause=_(OPTIMIZER_LOST))
        )
    if got["epoch"] != 1:
        fail(
            _("Called {call}.\ncheckpoint['epoch'] is {epoch}; store the epoch you were given, 1.").format(
                call=call, epoch=repr(got["epoch"])
            )
        )
    rng = got["rng"] if isinstance(got["rng"], dict) else {}
    for key in RNG_SOURCES:
        value = rng.get(key)
        want = expected["rng"][key]
        if isinstance(value, torch.Tensor) or isinstance(want, torch.Tensor):
            same = isinstance(value, torch.Tensor) and torch.equal(value, want)
        else:
            same = value == want
        if not same:
            seed_note = ""
            if isinstance(value, int):
                seed_note = _(
                    " A seed is not a state: re-seeding restarts the random sequence from its beginning."
                )
            fail(
                _(
                    "Called {call}.\ncheckpoint['rng'][{key}] is {value}, not the state at save time.\n"
                    "Likely cause: the RNG state of {what}."
                ).format(call=call, key=repr(key), value=show(value), what=rng_lost(key))
                + seed_note
            )


@exercise("save_checkpoint")
def test_save_checkpoint_keeps_the_previous_checkpoint_when_the_save_crashes(tmp_path, monkeypatch):
    path, old = previous_checkpoint(tmp_path)
    model, optimizer, _loader, generator = trained_run()
    monkeypatch.setattr(torch, "save", save_half_then_crash(torch.save))
    call = _("save_checkpoint(path, model, optimizer, 2, generator) while torch.save dies halfway through")
    expect_crash_reported(cp.save_checkpoint, path, model, optimizer, 2, generator, call=call)
    expect_previous_intact(path, old, call=call, fix=_(" Your save_atomically does exactly that: use it."))


@exercise("load_checkpoint")
def test_load_checkpoint_restores_model_optimizer_and_epoch(tmp_path):
    model, optimizer, _loader, generator = trained_run()
    path = tmp_path / "ckpt.pt"
    torch.save(reference_checkpoint(model, optimizer, 3, generator), path)
    fresh_model, fresh_optimizer, _loader, fresh_generator = start_fresh_process()
    call = _(
        "load_checkpoint(path, fresh_model, fresh_optimizer, generator) on a checkpoint saved with epoch=3"
    )
    epoch = cp.load_checkpoint(path, fresh_model, fresh_optimizer, fresh_generator)
    expect_same_state(
        fresh_model.state_dict(), model.state_dict(), call=call, what=_("the model's state_dict")
    )
    if not same_optimizer_state(fresh_optimizer.state_dict(), optimizer.state_dict()):
        fail(
            _("Called {call}.\nThe optimizer differs from the saved one.\nLikely cause: {cause}").format(
                call=call, cause=_(OPTIMIZER_LOST)
            )
        )
    if epoch != 3 or type(epoch) is not int:
        cause = ""
        if epoch in (2, 4):
            cause = "\n" + _(
                "Likely cause: off by one. The checkpoint stores the number of completed epochs; return it "
                "unchanged, and the caller resumes with `for epoch in range(start, total)`."
            )
        fail(
            _("Called {call}.\nIt returned {epoch}; the tests expected 3 (an int).").format(
                call=call, epoch=show(epoch)
            )
            + cause
        )


@exercise("load_checkpoint")
def test_load_checkpoint_restores_every_rng_state(tmp_path):
    model, optimizer, _loader, generator = trained_run()
    path = tmp_path / "ckpt.pt"
    torch.save(reference_checkpoint(model, optimizer, 1, generator), path)
    expected = {  # what each RNG draws next, at the moment of the save
        "torch": torch.rand(4),
        "python": torch.tensor([random.random() for _draw in range(4)]),
        "generator": torch.rand(4, generator=generator),
    }
    fresh_model, fresh_optimizer, _loader, fresh_generator = start_fresh_process()
    call = _("load_checkpoint(path, fresh_model, fresh_optimizer, generator) in a freshly seeded process")
    cp.load_checkpoint(path, fresh_model, fresh_optimizer, fresh_generator)
    got = {
        "torch": torch.rand(4),
        "python": torch.tensor([random.random() for _draw in range(4)]),
        "generator": torch.rand(4, generator=fresh_generator),
    }
    for key, (source, _save, _restore) in RNG_SOURCES.items():
        if not torch.equal(got[key], expected[key]):
            fail(
                _(
                    "Called {call}.\nAfterwards {source} draws {got}, but at the "
                    "save it was about to draw {expected}.\nLikely cause: an RNG state was not "
                    "restored, the one of {what}."
                ).format(
                    call=call,
                    source=_(source),
                    got=show(got[key]),
                    expected=show(expected[key]),
                    what=rng_lost(key),
                )
            )


@exercise("load_checkpoint")
def test_load_checkpoint_maps_a_gpu_checkpoint_to_the_cpu(tmp_path):
    model, optimizer, _loader, generator = trained_run()
    path = tmp_path / "ckpt.pt"
    save_as_if_on_cuda(reference_checkpoint(model, optimizer, 1, generator), path)
    fresh_model, fresh_optimizer, _loader, fresh_generator = start_fresh_process()
    call = _("load_checkpoint(path, model, optimizer, generator) on a checkpoint saved on a GPU")
    error = None
    try:
        cp.load_checkpoint(path, fresh_model, fresh_optimizer, fresh_generator)
    except NotImplementedError:
        raise
    except (RuntimeError, TypeError) as err:
        error = err
    if error is not None:
        fail(
            _(
                "Called {call}.\nIt raised {error_type}: {error}\nLikely cause: load with "
                "map_location='cpu'. Without it torch.load rebuilds the tensors on the GPU they came from "
                "(and fails where there is none); RNG states must be CPU tensors anyway, and "
                "load_state_dict copies the weights onto the model's own device."
            ).format(call=call, error_type=type(error).__name__, error=error)
        )
    expect_same_state(
        fresh_model.state_dict(), model.state_dict(), call=call, what=_("the model's state_dict")
    )


@exercise("load_checkpoint")
def test_load_checkpoint_refuses_a_tampered_checkpoint(tmp_path):
    model, optimizer, _loader, generator = trained_run()
    path, marker = tmp_path / "ckpt.pt", tmp_path / "created_by_the_pickle"
    checkpoint = reference_checkpoint(model, optimizer, 1, generator)
    checkpoint["note"] = RunsCodeWhenLoaded(marker)
    torch.save(checkpoint, path)
    call = "load_checkpoint(path, model, optimizer, generator)"
    call_refusing(cp.load_checkpoint, path, model, optimizer, generator, call=call)
    expect_code_did_not_run(marker, call=call)


@exercise("load_checkpoint")
def test_resumed_training_matches_an_uninterrupted_run_exactly(tmp_path):
    total, stop = 4, 2
    model, optimizer, loader, _generator = trained_run(epochs=0)
    straight = [train_epoch(model, optimizer, loader) for _epoch in range(total)]
    straight_state = model.state_dict()

    model, optimizer, loader, generator = trained_run(epochs=0)
    resumed = [train_epoch(model, optimizer, loader) for _epoch in range(stop)]
    path = tmp_path / "ckpt.pt"
    at_save = copy.deepcopy(reference_checkpoint(model, optimizer, stop, generator))
    cp.save_checkpoint(path, model, optimizer, stop, generator)
    model, optimizer, loader, generator = start_fresh_process()
    start = cp.load_checkpoint(path, model, optimizer, generator)
    not_restored = unrestored_parts(reference_checkpoint(model, optimizer, stop, generator), at_save)
    call = _(
        "save_checkpoint(path, model, optimizer, {stop}, generator) after {stop} of {total} epochs, "
        "then start = load_checkpoint(path, ...) in a fresh process and `for epoch in range(start, {total})`"
    ).format(stop=stop, total=total)
    if start != stop:
        fail(
            _("Called {call}.\nstart is {start}, not {stop}: resuming there is off by one.").format(
                call=call, start=show(start), stop=stop
            )
        )
    resumed += [train_epoch(model, optimizer, loader) for _epoch in range(start, total)]
    for epoch, (a, b) in enumerate(zip(resumed, straight, strict=True)):
        if a != b:
            step = next((i for i, (x, y) in enumerate(zip(a, b, strict=True)) if x != y), 0)
            cause = (
                _("Right after load_checkpoint these differ from the moment of saving: {parts}.").format(
                    parts="; ".join(not_restored)
                )
                if not_restored
                else _(
                    "Everything was restored right after load_checkpoint, so something changed it "
                    "afterwards: load_checkpoint must return without training, drawing random numbers "
                    "or iterating the loader."
                )
            )
            fail(
                _(
                    "Called {call}.\nThe resumed run diverged from the uninterrupted one at epoch {epoch}, "
                    "step {step}: loss {got}, not {expected}.\nA resumed run must repeat "
                    "the uninterrupted one bit for bit.\nLikely cause: {cause}"
                ).format(
                    call=call, epoch=epoch, step=step, got=show(a[step]), expected=show(b[step]), cause=cause
                )
            )
    changed = differing_keys(model.state_dict(), straight_state)
    if changed:
        fail(
            _(
                "Called {call}.\nThe losses agree, but the final weights {changed} differ from "
                "the uninterrupted run's."
            ).format(call=call, changed=changed)
        )


# --- load_matching -------------------------------------------------------------------------------


def call_loader(fn, *args, call: str):
    try:
        return fn(*args)
    except NotImplementedError:
        raise
    except RuntimeError as err:
        if "Error(s) in loading state_dict" not in str(err):
            raise
        error = err
    text = str(error)
    if "size mismatch" in text:
        fail(
            _(
                "Called {call}.\nIt raised RuntimeError: {error}\nLikely cause: "
                "strict=False skips missing and unexpected keys, but a key present on both sides with "
                "a different shape still raises a size mismatch. Drop the head's entries from the "
                "state dict before loading; do not filter by shape."
            ).format(call=call, error=text.strip().splitlines()[-1].strip())
        )
    fail(
        _(
            "Called {call}.\nIt raised RuntimeError: {error}\nLikely cause: "
            "load_state_dict is strict by default; pass strict=False and return the report it gives back."
        ).format(call=call, error=" ".join(text.split()[:40]))
    )


def expect_report(got, missing, unexpected, *, call: str, filled=()) -> None:
    """`filled`: keys the model fills itself when the checkpoint lacks them (BatchNorm's
    num_batches_tracked). load_state_dict leaves them out of missing_keys; a report computed from
    the two key sets lists them. Both are right."""
    if not isinstance(got, tuple) or len(got) != 2:
        fail(
            _("Called {call}.\nIt returned {got}; return a pair (missing_keys, unexpected_keys).").format(
                call=call, got=show(got)
            )
        )
    got_missing, got_unexpected = (list(keys) for keys in got)
    if sorted(got_unexpected) == sorted(unexpected) and sorted(got_missing) in (
        sorted(missing),
        sorted([*missing, *filled]),
    ):
        return
    cause = ""
    if sorted(got_missing) == sorted(unexpected) and sorted(got_unexpected) == sorted(missing):
        cause = "\n" + _(
            "Likely cause: the two lists are swapped: (missing_keys, unexpected_keys), in that order."
        )
    elif not got_missing and not got_unexpected:
        cause = "\n" + _(
            "Likely cause: you ignored the report. load_state_dict(state, strict=False) returns "
            "(missing_keys, unexpected_keys); return those lists."
        )
    if filled:
        cause += "\n" + _(
            "(Both missing={missing} and missing={with_filled} are accepted: BatchNorm "
            "fills {filled} itself when a checkpoint lacks it, so load_state_dict does not report it, "
            "while a report computed from the two key sets does.)"
        ).format(missing=missing, with_filled=sorted([*missing, *filled]), filled=filled)
    fail(
        _(
            "Called {call}.\nIt returned missing={got_missing}, unexpected={got_unexpected},\n"
            "but the tests expected missing={missing}, unexpected={unexpected}."
        ).format(
            call=call,
            got_missing=got_missing,
            got_unexpected=got_unexpected,
            missing=missing,
            unexpected=unexpected,
        )
        + cause
    )


def expect_loaded(model, state, before, *, call: str) -> None:
    now = model.state_dict()
    wrong = [k for k in now if k in state and not torch.equal(now[k], state[k])]
    touched = [k for k in now if k not in state and not torch.equal(now[k], before[k])]
    if wrong:
        fail(
            _(
                "Called {call}.\nThe model's {wrong} do not hold the checkpoint's values: "
                "load every matching key."
            ).format(call=call, wrong=wrong)
        )
    if touched:
        fail(
            _(
                "Called {call}.\nThe model's {touched} changed, though the checkpoint has no such keys."
            ).format(call=call, touched=touched)
        )


@exercise("load_matching")
def test_load_matching_loads_what_fits_and_reports_the_rest():
    old = trained_normed_net(seed=5)
    state = dict(old.state_dict())
    del state["3.bias"]  # the new model's last layer gained a bias
    state["4.weight"] = torch.ones(2, 2)  # a layer the new model no longer has
    model = normed_net(seed=6)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    call = _("load_matching(model, state) where state lacks '3.bias' and has an extra '4.weight'")
    got = call_loader(cp.load_matching, model, state, call=call)
    expect_report(got, ["3.bias"], ["4.weight"], call=call)
    expect_loaded(model, state, before, call=call)


@exercise("load_matching")
@given(data=st.data())
def test_load_matching_reports_exactly_the_keys_that_do_not_match(data):
    model = normed_net(seed=0)
    own = list(model.state_dict())
    kept = data.draw(st.lists(st.sampled_from(own), min_size=1, unique=True), label=_("kept keys"))
    extra = data.draw(
        st.lists(st.sampled_from(["old.weight", "aux.bias", "5.weight", "proj.scale"]), unique=True),
        label=_("extra keys"),
    )
    donor = trained_normed_net(seed=1).state_dict()
    state = {k: donor[k] for k in kept} | {k: torch.zeros(3) for k in extra}
    before = {k: v.clone() for k, v in model.state_dict().items()}
    reference = copy.deepcopy(model)
    call = _("load_matching(model, state) with state keys {keys}").format(keys=list(state))
    got = call_loader(cp.load_matching, model, state, call=call)
    # The library is the reference; BatchNorm, for one, never reports num_batches_tracked as missing
    # (it fills the key itself), so a report from the key sets, which lists it, is right too.
    missing, unexpected = reference.load_state_dict(state, strict=False)
    filled = [k for k in own if k.endswith("num_batches_tracked") and k not in state and k not in missing]
    expect_report(got, missing, unexpected, call=call, filled=filled)
    expect_loaded(model, state, before, call=call)


@exercise("load_matching")
def test_load_matching_refuses_a_checkpoint_that_matches_nothing():
    state = {f"module.{k}": v for k, v in normed_net(seed=7).state_dict().items()}
    model = normed_net(seed=8)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    call = _(
        "load_matching(model, state) where every key carries a 'module.' prefix (saved from DataParallel)"
    )
    try:
        got = call_loader(cp.load_matching, model, state, call=call)
    except ValueError:
        got = ValueError
    if got is ValueError:
        expect_loaded(model, {}, before, call=call)
        return
    fail(
        _(
            "Called {call}.\nIt returned {got} without complaint, yet not one weight was loaded: the "
            "model is still randomly initialised.\nLikely cause: strict=False never raises for unknown "
            "keys. When no key of the checkpoint matches one of the model's (a 'module.' prefix from "
            "DataParallel, another architecture), raise ValueError instead of training from scratch."
        ).format(call=call, got=show(got))
    )


# --- load_backbone -------------------------------------------------------------------------------


def expect_backbone_loaded(model, pretrained, head_before, *, call: str) -> None:
    now, source = model.state_dict(), pretrained.state_dict()
    not_loaded = [k for k in now if not k.startswith("head.") and not torch.equal(now[k], source[k])]
    if not_loaded:
        cause = ""
        if any(k.startswith("head_norm.") for k in not_loaded):
            cause = "\n" + _(
                "Likely cause: 'head_norm.*' belongs to the backbone, but your filter matches it too "
                "('head' in key, or key.startswith('head')); skip only the head's own keys, those that "
                "start with head + '.'"
            )
        fail(
            _("Called {call}.\nThe backbone's {not_loaded} were not loaded from the checkpoint.").format(
                call=call, not_loaded=not_loaded
            )
            + cause
        )
    for name, value in head_before.items():
        if now[name].shape != value.shape or not torch.equal(now[name], value):
            fail(
                _(
                    "Called {call}.\nThe new head's {name} was overwritten by the checkpoint's head.\n"
                    "Likely cause: the head's keys were loaded because their shapes happen to fit (a filter "
                    "by shape, or the whole state dict with strict=False); the old head was trained for "
                    "another task. Filter by name: skip the keys that start with head + '.'."
                ).format(call=call, name=repr(name))
            )


def expect_head_keys(got, *, call: str) -> None:
    if got is None or sorted(got) != ["head.bias", "head.weight"]:
        fail(
            _(
                "Called {call}.\nIt returned {got}; return the keys left at their fresh "
                "initialisation (the missing keys of load_state_dict): ['head.weight', 'head.bias']."
            ).format(call=call, got=show(got))
        )


@exercise("load_backbone")
def test_load_backbone_keeps_a_fresh_head_of_a_new_shape():
    torch.manual_seed(10)
    pretrained, model = Classifier(classes=3), Classifier(classes=5)
    pretend_trained(pretrained)
    head_before = {f"head.{k}": v.clone() for k, v in model.head.state_dict().items()}
    call = "load_backbone(Classifier(classes=5), Classifier(classes=3).state_dict(), head='head')"
    got = call_loader(cp.load_backbone, model, pretrained.state_dict(), "head", call=call)
    expect_backbone_loaded(model, pretrained, head_before, call=call)
    expect_head_keys(got, call=call)


@exercise("load_backbone")
@given(
    width=st.integers(2, 6),
    depth=st.integers(1, 3),
    old_classes=st.integers(1, 5),
    new_classes=st.integers(1, 5),
    seed=st.integers(0, 2**16),
)
def test_load_backbone_keeps_the_fresh_head_of_any_shape(width, depth, old_classes, new_classes, seed):
    torch.manual_seed(seed)
    pretrained = Classifier(old_classes, width, depth)
    pretend_trained(pretrained)
    model = Classifier(new_classes, width, depth)
    head_before = {f"head.{k}": v.clone() for k, v in model.head.state_dict().items()}
    call = _(
        "load_backbone(Classifier(classes={new_classes}), Classifier(classes={old_classes}).state_dict(), "
        "head='head') with width={width}, depth={depth}"
    ).format(new_classes=new_classes, old_classes=old_classes, width=width, depth=depth)
    got = call_loader(cp.load_backbone, model, pretrained.state_dict(), "head", call=call)
    expect_backbone_loaded(model, pretrained, head_before, call=call)
    if model.head.weight.shape != (new_classes, width):
        fail(
            _("Called {call}.\nThe head's weight has shape {shape}, not {expected}.").format(
                call=call, shape=tuple(model.head.weight.shape), expected=(new_classes, width)
            )
        )
    expect_head_keys(got, call=call)


@exercise("load_backbone")
def test_load_backbone_keeps_a_fresh_head_even_of_the_old_shape():
    torch.manual_seed(9)
    pretrained, model = Classifier(classes=3), Classifier(classes=3)
    head_before = {f"head.{k}": v.clone() for k, v in model.head.state_dict().items()}
    call = "load_backbone(Classifier(classes=3), Classifier(classes=3).state_dict(), head='head')"
    call_loader(cp.load_backbone, model, pretrained.state_dict(), "head", call=call)
    expect_backbone_loaded(model, pretrained, head_before, call=call)


@exercise("load_backbone")
def test_load_backbone_refuses_a_backbone_that_does_not_match():
    pretrained = Classifier(classes=3, width=6, depth=2)
    state = {k.replace("backbone.", "features."): v for k, v in pretrained.state_dict().items()}
    model = Classifier(classes=5, width=6, depth=2)
    call = _("load_backbone(model, state, 'head') where the checkpoint names its backbone 'features'")
    try:
        got = call_loader(cp.load_backbone, model, state, "head", call=call)
    except ValueError:
        return
    fail(
        _(
            "Called {call}.\nIt returned {got}, though no backbone weight was loaded: the model would "
            "be fine-tuned from random weights.\nLikely cause: strict=False reports but never raises. Only "
            "the head's keys may be missing; raise ValueError when others are missing or unexpected."
        ).format(call=call, got=show(got))
    )
