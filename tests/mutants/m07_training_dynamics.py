"""Mistakes learners make in kata 07_training_dynamics."""

import copy
import math

import torch
from torch import nn

from tests.mutants import mutant

KATA = "07_training_dynamics"


def _step(model, loss_fn, optimizer, inputs, targets):
    optimizer.zero_grad()
    loss = loss_fn(model(inputs), targets)
    loss.backward()
    optimizer.step()
    return loss.item()


# --- overfit_one_batch ---


@mutant(KATA, "overfit_one_batch", says="took")
def overfit_iterates_the_loader(model, loss_fn, optimizer, loader, threshold, max_steps):
    """Takes a fresh batch from the loader at every step instead of training on one batch."""
    losses = []
    for step in range(max_steps):
        inputs, targets = next(iter(loader))
        losses.append(_step(model, loss_fn, optimizer, inputs, targets))
        if losses[-1] < threshold:
            return step, losses
    return None, losses


@mutant(KATA, "overfit_one_batch", says="return None when the threshold is never reached")
def overfit_returns_max_steps(model, loss_fn, optimizer, loader, threshold, max_steps):
    """Returns max_steps instead of None when the loss never fell below the threshold."""
    inputs, targets = next(iter(loader))
    losses = []
    for step in range(max_steps):
        losses.append(_step(model, loss_fn, optimizer, inputs, targets))
        if losses[-1] < threshold:
            return step, losses
    return max_steps, losses


@mutant(KATA, "overfit_one_batch", says="the number of steps taken")
def overfit_returns_a_count(model, loss_fn, optimizer, loader, threshold, max_steps):
    """Returns how many steps were taken (index + 1) instead of the index of the loss."""
    inputs, targets = next(iter(loader))
    losses = []
    for step in range(max_steps):
        losses.append(_step(model, loss_fn, optimizer, inputs, targets))
        if losses[-1] < threshold:
            return step + 1, losses
    return None, losses


@mutant(KATA, "overfit_one_batch", says="did not stop right after")
def overfit_never_stops(model, loss_fn, optimizer, loader, threshold, max_steps):
    """Notes the first step below the threshold but trains on until max_steps."""
    inputs, targets = next(iter(loader))
    losses, first = [], None
    for step in range(max_steps):
        losses.append(_step(model, loss_fn, optimizer, inputs, targets))
        if first is None and losses[-1] < threshold:
            first = step
    return first, losses


# --- lr_range_test ---


def _sweep(model, loss_fn, optimizer, loader, lrs, diverged, stop=True):
    lrs_seen, losses, diverged_at, best = [], [], None, math.inf
    for lr, (inputs, targets) in zip(lrs, loader, strict=False):
        for group in optimizer.param_groups:
            group["lr"] = lr
        optimizer.zero_grad()
        loss = loss_fn(model(inputs), targets)
        lrs_seen.append(lr)
        losses.append(loss.item())
        if diverged_at is None and diverged(losses[-1], best):
            diverged_at = lr
            if stop:
                break
        best = min(best, losses[-1])
        loss.backward()
        optimizer.step()
    return lrs_seen, losses, diverged_at


def _exponential(lr_min, lr_max, n):
    return [lr_min * (lr_max / lr_min) ** (i / (n - 1)) for i in range(n)]


def _probe(model, optimizer, sweep, save_model=copy.deepcopy, save_optimizer=copy.deepcopy):
    """Runs `sweep()` between saving and restoring the states, each saved with its own function."""
    saved = (save_model(model.state_dict()), save_optimizer(optimizer.state_dict()))
    result = sweep()
    model.load_state_dict(saved[0])
    optimizer.load_state_dict(saved[1])
    return result


def _keep(state):
    return state


def _finite_check(factor):
    return lambda loss, best: not math.isfinite(loss) or loss > factor * best


@mutant(KATA, "lr_range_test", says="the weights were never restored")
def range_test_never_resets(model, loss_fn, optimizer, loader, lr_min, lr_max, diverge_factor=4.0):
    """Sweeps correctly but leaves the model and optimizer as the sweep left them."""
    lrs = _exponential(lr_min, lr_max, len(loader))
    return _sweep(model, loss_fn, optimizer, loader, lrs, _finite_check(diverge_factor))


@mutant(KATA, "lr_range_test", says="its tensors are the live parameters")
def range_test_saves_a_reference(model, loss_fn, optimizer, loader, lr_min, lr_max, diverge_factor=4.0):
    """Saves model.state_dict() itself (live tensors) instead of a copy, so 'restoring' changes nothing."""
    lrs = _exponential(lr_min, lr_max, len(loader))
    return _probe(
        model,
        optimizer,
        lambda: _sweep(model, loss_fn, optimizer, loader, lrs, _finite_check(diverge_factor)),
        save_model=_keep,
    )


@mutant(KATA, "lr_range_test", says="momentum buffers")
def range_test_shares_the_optimizer_state(
    model, loss_fn, optimizer, loader, lr_min, lr_max, diverge_factor=4.0
):
    """Copies the model's state but keeps optimizer.state_dict() itself, whose buffers the sweep updates."""
    lrs = _exponential(lr_min, lr_max, len(loader))
    return _probe(
        model,
        optimizer,
        lambda: _sweep(model, loss_fn, optimizer, loader, lrs, _finite_check(diverge_factor)),
        save_optimizer=_keep,
    )


@mutant(KATA, "lr_range_test", says="did not stop at the first diverging loss")
def range_test_never_stops(model, loss_fn, optimizer, loader, lr_min, lr_max, diverge_factor=4.0):
    """Notes where the loss diverged but sweeps on to lr_max."""
    lrs = _exponential(lr_min, lr_max, len(loader))
    check = _finite_check(diverge_factor)
    return _probe(model, optimizer, lambda: _sweep(model, loss_fn, optimizer, loader, lrs, check, stop=False))


@mutant(KATA, "lr_range_test", says="every comparison with nan is False")
def range_test_misses_nan(model, loss_fn, optimizer, loader, lr_min, lr_max, diverge_factor=4.0):
    """Checks only loss > diverge_factor * best, which is False for a nan loss."""
    lrs = _exponential(lr_min, lr_max, len(loader))
    check = lambda loss, best: loss > diverge_factor * best  # noqa: E731
    return _probe(model, optimizer, lambda: _sweep(model, loss_fn, optimizer, loader, lrs, check))


@mutant(KATA, "lr_range_test", says="linear steps")
def range_test_linear_sweep(model, loss_fn, optimizer, loader, lr_min, lr_max, diverge_factor=4.0):
    """Spaces the learning rates linearly (torch.linspace) instead of exponentially."""
    lrs = torch.linspace(lr_min, lr_max, len(loader)).tolist()
    check = _finite_check(diverge_factor)
    return _probe(model, optimizer, lambda: _sweep(model, loss_fn, optimizer, loader, lrs, check))


# --- train_with_divergence_guard ---


@mutant(KATA, "train_with_divergence_guard", says="nan > max_loss is False")
def guard_misses_nan(model, loss_fn, optimizer, batches, max_loss):
    """Checks loss > max_loss only: a nan loss is never caught and ruins the weights."""
    losses = []
    for i, (inputs, targets) in enumerate(batches):
        optimizer.zero_grad()
        loss = loss_fn(model(inputs), targets)
        losses.append(loss.item())
        if losses[-1] > max_loss:
            return losses, i
        loss.backward()
        optimizer.step()
    return losses, None


@mutant(KATA, "train_with_divergence_guard", says="the check came after step()", everywhere=True)
def guard_checks_after_the_step(model, loss_fn, optimizer, batches, max_loss):
    """Takes the step first and checks the loss afterwards: the bad update is already applied."""
    losses = []
    for i, (inputs, targets) in enumerate(batches):
        losses.append(_step(model, loss_fn, optimizer, inputs, targets))
        if not math.isfinite(losses[-1]) or losses[-1] > max_loss:
            return losses, i
    return losses, None


@mutant(KATA, "train_with_divergence_guard", says="diverged_at")
def guard_drops_the_bad_loss(model, loss_fn, optimizer, batches, max_loss):
    """Stops at the right batch but reports the index of the last good one."""
    losses = []
    for i, (inputs, targets) in enumerate(batches):
        optimizer.zero_grad()
        loss = loss_fn(model(inputs), targets)
        losses.append(loss.item())
        if not math.isfinite(losses[-1]) or losses[-1] > max_loss:
            return losses, i - 1
        loss.backward()
        optimizer.step()
    return losses, None


# --- activation_stds ---


@mutant(KATA, "activation_stds", says="weights' standard deviation", everywhere=True)
def stds_of_the_weights(model, inputs):
    """Measures the std of each Linear layer's weights instead of its output activations."""
    return [layer.weight.std().item() for layer in model if isinstance(layer, nn.Linear)]


@mutant(KATA, "activation_stds", says="one layer too early", everywhere=True)
def stds_of_the_inputs(model, inputs):
    """Records the std of each Linear layer's input instead of its output."""
    stds, x = [], inputs
    with torch.no_grad():
        for layer in model:
            if isinstance(layer, nn.Linear):
                stds.append(x.std().item())
            x = layer(x)
    return stds


@mutant(KATA, "activation_stds", says="per-unit standard deviations", everywhere=True)
def stds_per_unit(model, inputs):
    """Averages the per-unit stds over the batch (std(dim=0).mean()) instead of one std of all entries."""
    stds, x = [], inputs
    with torch.no_grad():
        for layer in model:
            x = layer(x)
            if isinstance(layer, nn.Linear):
                stds.append(x.std(dim=0).mean().item())
    return stds


# --- kaiming_init ---


def _init_linears(model, init_weight, zero_bias=True):
    for module in model.modules():
        if isinstance(module, nn.Linear):
            init_weight(module.weight)
            if zero_bias and module.bias is not None:
                nn.init.zeros_(module.bias)


@mutant(KATA, "kaiming_init", says="mode='fan_out'")
def kaiming_fan_out(model):
    """Uses mode='fan_out', which scales by the number of outputs."""
    _init_linears(model, lambda w: nn.init.kaiming_normal_(w, mode="fan_out", nonlinearity="relu"))


@mutant(KATA, "kaiming_init", says="Xavier/Glorot")
def kaiming_is_xavier(model):
    """Uses Xavier (Glorot) normal init, made for tanh, in a ReLU network."""
    _init_linears(model, nn.init.xavier_normal_)


@mutant(KATA, "kaiming_init", says="the bias kept its default init")
def kaiming_leaves_the_bias(model):
    """Re-initialises the weights but leaves the biases at their default values."""
    _init_linears(model, lambda w: nn.init.kaiming_normal_(w, nonlinearity="relu"), zero_bias=False)


@mutant(KATA, "kaiming_init", says="the gain is 1")
def kaiming_linear_gain(model):
    """Passes nonlinearity='linear': gain 1, variance 1 / fan_in, half of what ReLU needs."""
    _init_linears(model, lambda w: nn.init.kaiming_normal_(w, nonlinearity="linear"))


@mutant(KATA, "kaiming_init", says="kaiming_uniform_ has the same std")
def kaiming_uniform(model):
    """Uses kaiming_uniform_: the right scale but another distribution than the one asked for."""
    _init_linears(model, lambda w: nn.init.kaiming_uniform_(w, nonlinearity="relu"))


# --- fit_keep_best ---


def _keep_best(model, train_epoch, validate, max_epochs, patience, save, restore=True):
    train_losses, val_losses = [], []
    best_loss, best_epoch, best_state = math.inf, -1, None
    for epoch in range(max_epochs):
        train_losses.append(train_epoch())
        val_losses.append(validate())
        if val_losses[-1] < best_loss:
            best_loss, best_epoch = val_losses[-1], epoch
            best_state = save(model)
        elif epoch - best_epoch >= patience:
            break
    if restore and best_state is not None:
        model.load_state_dict(best_state)
    return train_losses, val_losses, best_epoch


@mutant(KATA, "fit_keep_best", says="returns references to the live parameters", everywhere=True)
def keep_best_saves_a_reference(model, train_epoch, validate, max_epochs, patience):
    """Keeps model.state_dict() itself, whose tensors later steps change in place: 'restores' the last."""
    return _keep_best(model, train_epoch, validate, max_epochs, patience, lambda m: m.state_dict())


@mutant(KATA, "fit_keep_best", says="never loaded back")
def keep_best_never_restores(model, train_epoch, validate, max_epochs, patience):
    """Tracks the best epoch but leaves the model with the weights of the last one."""
    return _keep_best(model, train_epoch, validate, max_epochs, patience, lambda m: None, restore=False)


@mutant(KATA, "fit_keep_best", says="returns references to the live parameters")
def keep_best_shallow_copy(model, train_epoch, validate, max_epochs, patience):
    """Copies the dict (dict(model.state_dict())) but not the tensors in it: the same aliasing bug."""
    return _keep_best(model, train_epoch, validate, max_epochs, patience, lambda m: dict(m.state_dict()))


# --- gradient_norms ---


def _train(model, loss_fn, optimizer, batches):
    for inputs, targets in batches:
        _step(model, loss_fn, optimizer, inputs, targets)


@mutant(KATA, "gradient_norms", says="handle.remove()")
def norms_hooks_never_removed(model, loss_fn, optimizer, batches):
    """Registers the hooks and never removes them: they log every later backward pass too."""
    norms = {}
    for name, p in model.named_parameters():
        if p.requires_grad:
            norms[name] = []
            p.register_hook(lambda grad, name=name: norms[name].append(grad.norm().item()))
    _train(model, loss_fn, optimizer, batches)
    return norms


@mutant(KATA, "gradient_norms", says="in a finally: block")
def norms_hooks_removed_without_finally(model, loss_fn, optimizer, batches):
    """Removes the hooks after training, but not when training raises."""
    norms, handles = {}, []
    for name, p in model.named_parameters():
        if p.requires_grad:
            norms[name] = []
            handles.append(p.register_hook(lambda grad, name=name: norms[name].append(grad.norm().item())))
    _train(model, loss_fn, optimizer, batches)
    for handle in handles:
        handle.remove()
    return norms


@mutant(KATA, "gradient_norms", says="a lambda defined in a loop")
def norms_late_binding(model, loss_fn, optimizer, batches):
    """A lambda that reads the loop variable `name` when it runs: every norm lands in the last list."""
    norms, handles = {}, []
    for name, p in model.named_parameters():
        if p.requires_grad:
            norms[name] = []
            handles.append(p.register_hook(lambda grad: norms[name].append(grad.norm().item())))  # noqa: B023
    try:
        _train(model, loss_fn, optimizer, batches)
    finally:
        for handle in handles:
            handle.remove()
    return norms


@mutant(KATA, "gradient_norms", says="the parameter's own norm")
def norms_of_the_weights(model, loss_fn, optimizer, batches):
    """Logs each parameter's norm after backward() instead of its gradient's."""
    norms = {name: [] for name, p in model.named_parameters() if p.requires_grad}
    for inputs, targets in batches:
        optimizer.zero_grad()
        loss_fn(model(inputs), targets).backward()
        for name, p in model.named_parameters():
            if p.requires_grad:
                norms[name].append(p.detach().norm().item())
        optimizer.step()
    return norms
