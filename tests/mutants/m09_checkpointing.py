"""Mistakes learners make in kata 09_checkpointing."""

import os
import random
import tempfile
from pathlib import Path

import torch

from tests.mutants import mutant

KATA = "09_checkpointing"


# --- parameter_shapes ---


@mutant(KATA, "parameter_shapes", says="torch.Size")
def parameter_shapes_as_lists(model):
    """Turns each shape into a list, which prints as [4, 2] instead of torch.Size([4, 2])."""
    return [(name, list(param.shape)) for name, param in model.named_parameters()]


@mutant(KATA, "parameter_shapes", says="bias")
def parameter_shapes_weights_only(model):
    """Keeps the weights and drops the biases."""
    return [(name, param.shape) for name, param in model.named_parameters() if name.endswith("weight")]


@mutant(KATA, "parameter_shapes", says="buffer")
def parameter_shapes_from_state_dict(model):
    """Reads state_dict(), which holds the buffers too."""
    return [(name, tensor.shape) for name, tensor in model.state_dict().items()]


@mutant(KATA, "parameter_shapes", says="frozen")
def parameter_shapes_trainable_only(model):
    """Skips the frozen parameters (requires_grad=False)."""
    return [(name, param.shape) for name, param in model.named_parameters() if param.requires_grad]


# --- save_weights ---


@mutant(KATA, "save_weights", says="whole model")
def save_weights_whole_model(model, path):
    """Pickles the whole model object instead of its state_dict."""
    torch.save(model, path)


@mutant(KATA, "save_weights", says="buffers")
def save_weights_parameters_only(model, path):
    """Saves named_parameters() only, losing the BatchNorm running statistics."""
    torch.save(dict(model.named_parameters()), path)


# --- load_to_device ---


@mutant(KATA, "load_to_device", says="map_location")
def load_to_device_moves_after_loading(path, device):
    """Loads without map_location and moves the tensors afterwards: the load itself needs the GPU."""
    state = torch.load(path, weights_only=True)
    return {name: tensor.to(device) for name, tensor in state.items()}


@mutant(KATA, "load_to_device", says="ignored the device")
def load_to_device_always_cpu(path, device):
    """Hard-codes map_location='cpu', ignoring the device asked for."""
    return torch.load(path, map_location="cpu", weights_only=True)


@mutant(KATA, "load_to_device", says="weights_only=False")
def load_to_device_unsafe(path, device):
    """Loads with weights_only=False, which runs whatever the pickle asks."""
    return torch.load(path, map_location=device, weights_only=False)


# --- safe_load ---


@mutant(KATA, "safe_load", says="weights_only=False")
def safe_load_weights_only_false(path, trusted=()):
    """Uses weights_only=False, so a pickled object runs its code while loading."""
    return torch.load(path, weights_only=False)


@mutant(KATA, "safe_load", says="instead of raising")
def safe_load_swallows_the_refusal(path, trusted=()):
    """Catches the UnpicklingError and returns None, hiding a tampered checkpoint."""
    try:
        with torch.serialization.safe_globals(list(trusted)):
            return torch.load(path, weights_only=True)
    except Exception:
        return None


@mutant(KATA, "safe_load", says="add_safe_globals")
def safe_load_trusts_for_the_whole_process(path, trusted=()):
    """Calls add_safe_globals, which trusts the classes in every later torch.load."""
    torch.serialization.add_safe_globals(list(trusted))
    return torch.load(path, weights_only=True)


@mutant(KATA, "safe_load", says="trusted classes were ignored")
def safe_load_ignores_trusted(path, trusted=()):
    """Never passes the trusted classes to torch.load."""
    return torch.load(path, weights_only=True)


# --- save_atomically ---


@mutant(KATA, "save_atomically", says="straight onto the target")
def save_atomically_straight_onto_the_path(obj, path):
    """Calls torch.save on the target path: a crash midway truncates the previous checkpoint."""
    torch.save(obj, path)


@mutant(KATA, "save_atomically", says="stray temporary file")
def save_atomically_leaves_the_temp_file(obj, path):
    """Writes a temporary file and renames it, but leaves it behind when the save fails."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


@mutant(KATA, "save_atomically", says="same directory")
def save_atomically_temp_in_tmp(obj, path):
    """Puts the temporary file in tempfile's default directory, maybe another file system."""
    fd, tmp = tempfile.mkstemp(suffix=".pt")
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


@mutant(KATA, "save_atomically", says="swallowed")
def save_atomically_swallows_the_error(obj, path):
    """Cleans up after a failed save but does not re-raise: the caller thinks it was saved."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
        os.replace(tmp, path)
    except Exception:
        os.unlink(tmp)


# --- save_checkpoint ---


def _save_atomically(obj, path):
    """The reference save_atomically: these mutants differ only in what they save."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def _rng(generator):
    return {
        "torch": torch.get_rng_state(),
        "python": random.getstate(),
        "generator": None if generator is None else generator.get_state(),
    }


@mutant(KATA, "save_checkpoint", says="optimizer state is lost")
def save_checkpoint_without_optimizer(path, model, optimizer, epoch, generator=None):
    """Saves the model, epoch and RNG states but not the optimizer state."""
    _save_atomically({"model": model.state_dict(), "epoch": epoch, "rng": _rng(generator)}, path)


@mutant(KATA, "save_checkpoint", says="the checkpoint lacks 'rng'")
def save_checkpoint_without_rng(path, model, optimizer, epoch, generator=None):
    """Saves model, optimizer and epoch, but no RNG state at all: the resumed run draws other numbers."""
    checkpoint = {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "epoch": epoch}
    _save_atomically(checkpoint, path)


@mutant(KATA, "save_checkpoint", says="Python's random")
def save_checkpoint_without_python_rng(path, model, optimizer, epoch, generator=None):
    """Saves torch's RNG state and the generator's, but forgets Python's random module."""
    rng = _rng(generator)
    del rng["python"]
    checkpoint = {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "epoch": epoch,
        "rng": rng,
    }
    _save_atomically(checkpoint, path)


@mutant(KATA, "save_checkpoint", says="A seed is not a state")
def save_checkpoint_stores_the_seed(path, model, optimizer, epoch, generator=None):
    """Stores the initial seed instead of the RNG's current state."""
    rng = _rng(generator) | {"torch": torch.initial_seed()}
    checkpoint = {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "epoch": epoch,
        "rng": rng,
    }
    _save_atomically(checkpoint, path)


@mutant(KATA, "save_checkpoint", says="straight onto the target")
def save_checkpoint_not_atomic(path, model, optimizer, epoch, generator=None):
    """Right contents, but torch.save straight onto the path instead of save_atomically."""
    checkpoint = {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "epoch": epoch,
        "rng": _rng(generator),
    }
    torch.save(checkpoint, path)


@mutant(KATA, "save_checkpoint", says="whole model")
def save_checkpoint_pickles_objects(path, model, optimizer, epoch, generator=None):
    """Pickles the model and optimizer objects instead of their state_dicts."""
    checkpoint = {"model": model, "optimizer": optimizer, "epoch": epoch, "rng": _rng(generator)}
    _save_atomically(checkpoint, path)


# --- load_checkpoint ---


@mutant(KATA, "load_checkpoint", says="optimizer state is lost", everywhere=True)
def load_checkpoint_skips_optimizer(path, model, optimizer, generator=None):
    """Restores the model and RNG states but leaves the optimizer fresh."""
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    model.load_state_dict(checkpoint["model"])
    torch.set_rng_state(checkpoint["rng"]["torch"])
    random.setstate(checkpoint["rng"]["python"])
    if generator is not None:
        generator.set_state(checkpoint["rng"]["generator"])
    return checkpoint["epoch"]


@mutant(KATA, "load_checkpoint", says="RNG state was not restored")
def load_checkpoint_skips_rng(path, model, optimizer, generator=None):
    """Restores model, optimizer and epoch, but none of the RNG states."""
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    model.load_state_dict(checkpoint["model"])
    optimizer.load_state_dict(checkpoint["optimizer"])
    return checkpoint["epoch"]


@mutant(KATA, "load_checkpoint", says="DataLoader's generator", everywhere=True)
def load_checkpoint_skips_generator(path, model, optimizer, generator=None):
    """Restores the global RNGs but not the DataLoader's generator: the shuffling order changes."""
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    model.load_state_dict(checkpoint["model"])
    optimizer.load_state_dict(checkpoint["optimizer"])
    torch.set_rng_state(checkpoint["rng"]["torch"])
    random.setstate(checkpoint["rng"]["python"])
    return checkpoint["epoch"]


@mutant(KATA, "load_checkpoint", says="off by one")
def load_checkpoint_epoch_off_by_one(path, model, optimizer, generator=None):
    """Returns the saved epoch + 1 ("the next epoch"), so the resumed loop skips an epoch."""
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    model.load_state_dict(checkpoint["model"])
    optimizer.load_state_dict(checkpoint["optimizer"])
    torch.set_rng_state(checkpoint["rng"]["torch"])
    random.setstate(checkpoint["rng"]["python"])
    if generator is not None:
        generator.set_state(checkpoint["rng"]["generator"])
    return checkpoint["epoch"] + 1


@mutant(KATA, "load_checkpoint", says="map_location")
def load_checkpoint_without_map_location(path, model, optimizer, generator=None):
    """Loads without map_location: a checkpoint from a GPU fails on a CPU-only machine."""
    checkpoint = torch.load(path, weights_only=True)
    model.load_state_dict(checkpoint["model"])
    optimizer.load_state_dict(checkpoint["optimizer"])
    torch.set_rng_state(checkpoint["rng"]["torch"])
    random.setstate(checkpoint["rng"]["python"])
    if generator is not None:
        generator.set_state(checkpoint["rng"]["generator"])
    return checkpoint["epoch"]


@mutant(KATA, "load_checkpoint", says="weights_only=False")
def load_checkpoint_unsafe(path, model, optimizer, generator=None):
    """Loads with weights_only=False, running any code hidden in the file."""
    checkpoint = torch.load(path, map_location="cpu", weights_only=False)
    model.load_state_dict(checkpoint["model"])
    optimizer.load_state_dict(checkpoint["optimizer"])
    torch.set_rng_state(checkpoint["rng"]["torch"])
    random.setstate(checkpoint["rng"]["python"])
    if generator is not None:
        generator.set_state(checkpoint["rng"]["generator"])
    return checkpoint["epoch"]


# --- load_matching ---


@mutant(KATA, "load_matching", says="strict=False")
def load_matching_strict(model, state):
    """Calls load_state_dict with its default strict=True, which raises on any mismatch."""
    model.load_state_dict(state)
    return [], []


@mutant(KATA, "load_matching", says="ignored the report")
def load_matching_ignores_the_report(model, state):
    """Loads with strict=False and returns empty lists instead of the report."""
    model.load_state_dict(state, strict=False)
    return [], []


@mutant(KATA, "load_matching", says="swapped")
def load_matching_swapped(model, state):
    """Returns (unexpected, missing), the wrong way round."""
    missing, unexpected = model.load_state_dict(state, strict=False)
    return unexpected, missing


@mutant(KATA, "load_matching", says="module.")
def load_matching_without_the_guard(model, state):
    """Returns the report even when nothing matched: a 'module.' prefix silently loads nothing."""
    missing, unexpected = model.load_state_dict(state, strict=False)
    return missing, unexpected


# --- load_backbone ---


@mutant(KATA, "load_backbone", says="size mismatch")
def load_backbone_whole_state(model, state, head):
    """Loads the whole state dict with strict=False: the old head's shape raises a size mismatch."""
    missing, _ = model.load_state_dict(state, strict=False)
    return missing


@mutant(KATA, "load_backbone", says="shapes happen to fit")
def load_backbone_filters_by_shape(model, state, head):
    """Keeps the entries whose shapes fit the model, so a same-shaped old head overwrites the new one."""
    own = model.state_dict()
    fitting = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    missing, _ = model.load_state_dict(fitting, strict=False)
    return missing


@mutant(KATA, "load_backbone", says="head + '.'")
def load_backbone_prefix_without_dot(model, state, head):
    """Filters with key.startswith(head), which also drops 'head_norm.*', part of the backbone."""
    backbone = {k: v for k, v in state.items() if not k.startswith(head)}
    missing, _ = model.load_state_dict(backbone, strict=False)
    return missing


@mutant(KATA, "load_backbone", says="never raises")
def load_backbone_without_the_check(model, state, head):
    """Filters the head out correctly but never checks that the backbone matched."""
    backbone = {k: v for k, v in state.items() if not k.startswith(head + ".")}
    missing, _ = model.load_state_dict(backbone, strict=False)
    return missing
