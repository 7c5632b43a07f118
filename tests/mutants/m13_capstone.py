"""Mistakes learners make in kata 13_capstone.

Later exercises call earlier ones. A mutant that needs them imports `capstone` when it
runs: the module under test, whose other functions are the reference solution's.
"""

import importlib
import math
import os
import tempfile
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import Dataset

from tests.mutants import mutant

KATA = "13_capstone"


def _capstone():
    return importlib.import_module("capstone")


# --- make_spirals ---


def _spirals(n, noise, generator, turns, phase=math.pi, gen_for_random=True):
    g = {"generator": generator} if gen_for_random else {}
    radius = 0.2 + 0.8 * torch.rand(2, n, **g)
    angle = 2 * math.pi * turns * radius + phase * torch.tensor([[0.0], [1.0]])
    points = torch.stack([radius * torch.cos(angle), radius * torch.sin(angle)], dim=-1).reshape(-1, 2)
    return points + noise * torch.randn(points.shape, **g)


@mutant(KATA, "make_spirals", says="same phase")
def spirals_same_phase(n_per_class, noise, generator, turns=1.25):
    """Forgets the pi * label term: both classes share one arm instead of interleaving."""
    points = _spirals(n_per_class, noise, generator, turns, phase=0.0)
    return points, torch.arange(2).repeat_interleave(n_per_class)


@mutant(KATA, "make_spirals", says="not balanced")
def spirals_random_labels(n_per_class, noise, generator, turns=1.25):
    """Draws each label at random instead of n zeros then n ones."""
    points = _spirals(n_per_class, noise, generator, turns)
    return points, torch.randint(0, 2, (2 * n_per_class,), generator=generator)


@mutant(KATA, "make_spirals", says="global RNG")
def spirals_from_the_global_rng(n_per_class, noise, generator, turns=1.25):
    """Calls torch.rand and torch.randn without generator=: the points follow the global RNG."""
    points = _spirals(n_per_class, noise, generator, turns, gen_for_random=False)
    return points, torch.arange(2).repeat_interleave(n_per_class)


@mutant(KATA, "make_spirals", says="the noise is missing")
def spirals_without_noise(n_per_class, noise, generator, turns=1.25):
    """Ignores the noise argument."""
    points = _spirals(n_per_class, 0.0, generator, turns)
    return points, torch.arange(2).repeat_interleave(n_per_class)


@mutant(KATA, "make_spirals", says="int64 class indices")
def spirals_float_labels(n_per_class, noise, generator, turns=1.25):
    """Builds the labels as floats (torch.zeros/ones), which F.cross_entropy reads as probabilities."""
    points = _spirals(n_per_class, noise, generator, turns)
    return points, torch.cat([torch.zeros(n_per_class), torch.ones(n_per_class)])


# --- SpiralDataset ---


class _Spirals(Dataset):
    def __init__(self, n_per_class, noise, seed):
        self.points, self.labels = _capstone().make_spirals(
            n_per_class, noise, torch.Generator().manual_seed(seed)
        )

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, index):
        return self.points[index], self.labels[index]


@mutant(KATA, "SpiralDataset", says="counts one class only")
class SpiralDatasetLenOfOneClass(_Spirals):
    """__len__ returns n_per_class: the loader never reaches class 1."""

    def __init__(self, n_per_class, noise, seed):
        super().__init__(n_per_class, noise, seed)
        self.n_per_class = n_per_class

    def __len__(self):
        return self.n_per_class


@mutant(KATA, "SpiralDataset", says="global RNG was in another state")
class SpiralDatasetSeedsGlobally(_Spirals):
    """Seeds with torch.manual_seed(seed) and passes the default generator: every later draw changes."""

    def __init__(self, n_per_class, noise, seed):
        self.points, self.labels = _capstone().make_spirals(n_per_class, noise, torch.manual_seed(seed))


@mutant(KATA, "SpiralDataset", says="the seed is ignored")
class SpiralDatasetIgnoresSeed(_Spirals):
    """Passes a fresh torch.Generator() without seeding it: every seed gives the same points."""

    def __init__(self, n_per_class, noise, seed):
        self.points, self.labels = _capstone().make_spirals(n_per_class, noise, torch.Generator())


@mutant(KATA, "SpiralDataset", says="int64 scalar tensor")
class SpiralDatasetFloatLabels(_Spirals):
    """Returns the label as a float tensor, which F.cross_entropy does not accept as a class index."""

    def __getitem__(self, index):
        return self.points[index], self.labels[index].float()


# --- build_model ---


@mutant(KATA, "build_model", says="no nonlinearity")
def model_without_activations(hidden=64):
    """Stacks three Linear layers with nothing in between: one linear map in disguise."""
    return nn.Sequential(nn.Linear(2, hidden), nn.Linear(hidden, hidden), nn.Linear(hidden, 2))


@mutant(KATA, "build_model", says="ends with a softmax")
def model_with_softmax(hidden=64):
    """Ends with nn.Softmax, so F.cross_entropy gets probabilities instead of logits."""
    return nn.Sequential(
        nn.Linear(2, hidden),
        nn.Tanh(),
        nn.Linear(hidden, hidden),
        nn.Tanh(),
        nn.Linear(hidden, 2),
        nn.Softmax(dim=1),
    )


@mutant(KATA, "build_model", says="one output unit")
def model_with_one_output(hidden=64):
    """Ends with one unit, as for a sigmoid, instead of one logit per class."""
    return nn.Sequential(
        nn.Linear(2, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, 1)
    )


@mutant(KATA, "build_model", says="seeds the RNG itself")
def model_seeded_inside(hidden=64):
    """Calls torch.manual_seed(0) first: every model starts from the same weights."""
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Linear(2, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, 2)
    )


# --- evaluate_accuracy ---


def _count(model, loader, device=None):
    correct, count = 0, 0
    for points, labels in loader:
        if device is not None:
            points, labels = points.to(device), labels.to(device)
        correct += (model(points).argmax(dim=1) == labels).sum().item()
        count += len(labels)
    return correct / count


@mutant(KATA, "evaluate_accuracy", says="Call model.eval()")
def accuracy_with_dropout_on(model, loader):
    """Uses no_grad but never calls model.eval(): dropout stays on while predicting."""
    with torch.no_grad():
        return _count(model, loader, next(model.parameters()).device)


@mutant(KATA, "evaluate_accuracy", says="still in eval mode")
def accuracy_leaves_eval_mode(model, loader):
    """Calls model.eval() and never switches back: the next epoch trains without dropout."""
    model.eval()
    with torch.no_grad():
        return _count(model, loader, next(model.parameters()).device)


@mutant(KATA, "evaluate_accuracy", says="not always train()")
def accuracy_always_back_to_train(model, loader):
    """Calls model.train() at the end, whatever mode the model was in before."""
    model.eval()
    with torch.no_grad():
        result = _count(model, loader, next(model.parameters()).device)
    model.train()
    return result


@mutant(KATA, "evaluate_accuracy", says="torch.no_grad()")
def accuracy_with_autograd(model, loader):
    """Switches to eval mode but lets autograd record every forward pass."""
    was_training = model.training
    model.eval()
    result = _count(model, loader, next(model.parameters()).device)
    model.train(was_training)
    return result


@mutant(KATA, "evaluate_accuracy", says="per-batch accuracies")
def accuracy_mean_of_batches(model, loader):
    """Averages the accuracy of each batch, so a short last batch weighs as much as a full one."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    with torch.no_grad():
        accuracies = [
            (model(x.to(device)).argmax(dim=1) == y.to(device)).float().mean().item() for x, y in loader
        ]
    model.train(was_training)
    return sum(accuracies) / len(accuracies)


@mutant(KATA, "evaluate_accuracy", says="hard-coded device")
def accuracy_on_the_cpu(model, loader):
    """Moves every batch to a hard-coded 'cpu', wherever the model lives."""
    was_training = model.training
    model.eval()
    with torch.no_grad():
        result = _count(model, loader, "cpu")
    model.train(was_training)
    return result


@mutant(KATA, "evaluate_accuracy", says="hard-coded device")
def accuracy_on_cuda(model, loader):
    """Moves every batch to a hard-coded 'cuda', which a CPU-only machine does not have."""
    was_training = model.training
    model.eval()
    with torch.no_grad():
        result = _count(model, loader, "cuda")
    model.train(was_training)
    return result


# --- save_training_state ---


def _save_atomically(state, path):
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(state, f)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def _state(model, optimizer, loader, epoch, losses):
    return {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "epoch": epoch,
        "losses": list(losses),
        "rng": {
            "torch": torch.get_rng_state(),
            "loader": None if loader.generator is None else loader.generator.get_state(),
        },
    }


@mutant(KATA, "save_training_state", says="Save optimizer.state_dict()")
def save_without_optimizer(path, model, optimizer, loader, epoch, losses):
    """Saves the model, the epoch and the RNG states, but not the optimizer state."""
    state = _state(model, optimizer, loader, epoch, losses)
    del state["optimizer"]
    _save_atomically(state, path)


@mutant(KATA, "save_training_state", says="Save torch's global RNG")
def save_without_rng(path, model, optimizer, loader, epoch, losses):
    """Saves the loader's generator but not torch's global RNG state, which draws the dropout masks."""
    state = _state(model, optimizer, loader, epoch, losses)
    del state["rng"]["torch"]
    _save_atomically(state, path)


@mutant(KATA, "save_training_state", says="straight onto the target path")
def save_straight_onto_the_path(path, model, optimizer, loader, epoch, losses):
    """Calls torch.save on the path itself: a crash midway truncates the previous checkpoint."""
    torch.save(_state(model, optimizer, loader, epoch, losses), path)


@mutant(KATA, "save_training_state", says="store None for it")
def save_assumes_a_generator(path, model, optimizer, loader, epoch, losses):
    """Calls loader.generator.get_state() unconditionally, which fails for a loader without one."""
    state = _state(model, optimizer, loader, epoch, losses)
    state["rng"]["loader"] = loader.generator.get_state()
    _save_atomically(state, path)


@mutant(KATA, "save_training_state", says="stray temporary file")
def save_leaves_the_temp_file(path, model, optimizer, loader, epoch, losses):
    """Saves to path + '.tmp' and renames it, but leaves the temporary file behind when the save fails."""
    tmp = Path(str(path) + ".tmp")
    torch.save(_state(model, optimizer, loader, epoch, losses), tmp)
    os.replace(tmp, path)


# --- resume_training ---


def _resume(path, model, optimizer, loader, *, skip=(), epoch_shift=0, map_location="cpu"):
    state = torch.load(path, map_location=map_location, weights_only=True)
    model.load_state_dict(state["model"])
    if "optimizer" not in skip:
        optimizer.load_state_dict(state["optimizer"])
    if "torch" not in skip:
        torch.set_rng_state(state["rng"]["torch"])
    if "loader" not in skip and loader.generator is not None:
        loader.generator.set_state(state["rng"]["loader"])
    return state["epoch"] + epoch_shift, state["losses"]


@mutant(KATA, "resume_training", says="optimizer state was not restored")
def resume_without_optimizer(path, model, optimizer, loader):
    """Loads the weights and RNG states but not the optimizer: Adam restarts from zero moments."""
    return _resume(path, model, optimizer, loader, skip=("optimizer",))


@mutant(KATA, "resume_training", says="torch's global RNG")
def resume_without_torch_rng(path, model, optimizer, loader):
    """Restores the loader's generator but not torch's global RNG (the dropout masks)."""
    return _resume(path, model, optimizer, loader, skip=("torch",))


@mutant(KATA, "resume_training", says="loader's generator was not restored")
def resume_without_loader_generator(path, model, optimizer, loader):
    """Restores torch's RNG but not the loader's generator: the next epochs shuffle differently."""
    return _resume(path, model, optimizer, loader, skip=("loader",))


@mutant(KATA, "resume_training", says="off by one")
def resume_returns_next_epoch(path, model, optimizer, loader):
    """Returns epoch + 1, mixing up 'epochs completed' with 'the next epoch to train'."""
    return _resume(path, model, optimizer, loader, epoch_shift=1)


@mutant(KATA, "resume_training", says="map_location")
def resume_without_map_location(path, model, optimizer, loader):
    """Loads without map_location: a GPU checkpoint wants its GPU back, and RNG states must be on the CPU."""
    return _resume(path, model, optimizer, loader, map_location=None)


# --- fit ---


def _fit(model, optimizer, loader, epochs, path, on_epoch_end, *, resume=True, repeat=False, save_each=True):
    cap = _capstone()
    first, losses = 1, []
    if resume and os.path.exists(path):
        start, losses = cap.resume_training(path, model, optimizer, loader)
        first = start if repeat else start + 1
    for epoch in range(first, epochs + 1):
        losses.append(cap.train_one_epoch(model, optimizer, loader))
        if save_each == "after_callback" and on_epoch_end is not None:
            on_epoch_end(epoch, losses[-1])
        if save_each:
            cap.save_training_state(path, model, optimizer, loader, epoch, losses)
        if save_each != "after_callback" and on_epoch_end is not None:
            on_epoch_end(epoch, losses[-1])
    if not save_each:
        cap.save_training_state(path, model, optimizer, loader, epochs, losses)
    return losses


@mutant(KATA, "fit", says="ignoring the checkpoint")
def fit_ignores_the_checkpoint(model, optimizer, loader, epochs, path, on_epoch_end=None):
    """Always starts at epoch 1: the checkpoint is written but never read back."""
    return _fit(model, optimizer, loader, epochs, path, on_epoch_end, resume=False)


@mutant(KATA, "fit", says="repeated epoch 2")
def fit_repeats_an_epoch(model, optimizer, loader, epochs, path, on_epoch_end=None):
    """Resumes at the checkpoint's epoch rather than the one after it, training it twice."""
    return _fit(model, optimizer, loader, epochs, path, on_epoch_end, repeat=True)


@mutant(KATA, "fit", says="after every epoch")
def fit_saves_only_at_the_end(model, optimizer, loader, epochs, path, on_epoch_end=None):
    """Writes one checkpoint when training ends: an interruption loses the whole run."""
    return _fit(model, optimizer, loader, epochs, path, on_epoch_end, save_each=False)


@mutant(KATA, "fit", says="call on_epoch_end after the save")
def fit_callback_before_save(model, optimizer, loader, epochs, path, on_epoch_end=None):
    """Calls on_epoch_end before saving: an interruption there loses the epoch just finished."""
    return _fit(model, optimizer, loader, epochs, path, on_epoch_end, save_each="after_callback")


@mutant(KATA, "fit", says="the losses of epochs 3 and 4 only")
def fit_forgets_the_old_losses(model, optimizer, loader, epochs, path, on_epoch_end=None):
    """Resumes the state but starts a new, empty loss history."""
    cap = _capstone()
    start, losses = 0, []
    if os.path.exists(path):
        start, _ = cap.resume_training(path, model, optimizer, loader)
    for epoch in range(start + 1, epochs + 1):
        losses.append(cap.train_one_epoch(model, optimizer, loader))
        cap.save_training_state(path, model, optimizer, loader, epoch, losses)
        if on_epoch_end is not None:
            on_epoch_end(epoch, losses[-1])
    return losses


# --- run_experiment ---


def _experiment(workdir, seed, epochs, *, lr=0.01, evaluate_on="test"):
    cap = _capstone()
    dataset = cap.SpiralDataset(n_per_class=200, noise=0.05, seed=seed)
    train_loader, test_loader = cap.split_loaders(dataset, 0.25, 32, seed)
    torch.manual_seed(seed)
    model = cap.build_model(64)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    cap.fit(model, optimizer, train_loader, epochs, Path(workdir) / "checkpoint.pt")
    return cap.evaluate_accuracy(model, train_loader if evaluate_on == "train" else test_loader)


@mutant(KATA, "run_experiment", says="measured on the training set")
def experiment_on_the_training_set(workdir, seed, epochs):
    """Reports the accuracy on the training loader: points the model has already seen."""
    return _experiment(workdir, seed, epochs, evaluate_on="train")


@mutant(KATA, "run_experiment", says="at least 0.95")
def experiment_with_a_tiny_learning_rate(workdir, seed, epochs):
    """Uses Adam with lr=1e-4: the budget runs out long before the spirals are learned."""
    return _experiment(workdir, seed, epochs, lr=1e-4)


@mutant(KATA, "run_experiment", says="There is no file")
def experiment_without_checkpoints(workdir, seed, epochs):
    """Trains with train_one_epoch in a plain loop: no checkpoint, nothing to resume."""
    cap = _capstone()
    dataset = cap.SpiralDataset(n_per_class=200, noise=0.05, seed=seed)
    train_loader, test_loader = cap.split_loaders(dataset, 0.25, 32, seed)
    torch.manual_seed(seed)
    model = cap.build_model(64)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    for _ in range(epochs):
        cap.train_one_epoch(model, optimizer, train_loader)
    return cap.evaluate_accuracy(model, test_loader)
