"""Mistakes learners make in kata 05_losses_optimizers."""

import math

import torch
import torch.nn.functional as F
from torch.nn.functional import mse_loss as _mse_taken_at_import
from torch.optim.adam import adam as _adam_taken_at_import
from torch.optim.sgd import sgd as _sgd_taken_at_import

from tests.mutants import mutant

KATA = "05_losses_optimizers"


def _reduce(losses, reduction):
    if reduction == "mean":
        return losses.mean()
    if reduction == "sum":
        return losses.sum()
    if reduction == "none":
        return losses
    raise ValueError(reduction)


# --- mse_loss ---


@mutant(KATA, "mse_loss", says="summed where the mean is meant")
def mse_sums_for_mean(pred, target, reduction="mean"):
    """Uses .sum() for reduction='mean'."""
    squared = (pred - target) ** 2
    if reduction == "none":
        return squared
    if reduction in ("mean", "sum"):
        return squared.sum()
    raise ValueError(reduction)


@mutant(KATA, "mse_loss", says="not squared")
def mse_without_square(pred, target, reduction="mean"):
    """Forgets to square the differences."""
    return _reduce(pred - target, reduction)


@mutant(KATA, "mse_loss", says="keeps one squared error per element")
def mse_none_reduces(pred, target, reduction="mean"):
    """Treats reduction='none' like the default and averages anyway."""
    squared = (pred - target) ** 2
    return squared.sum() if reduction == "sum" else squared.mean()


@mutant(KATA, "mse_loss", says="torch.nn.functional.mse_loss")
def mse_calls_the_library(pred, target, reduction="mean"):
    """Calls F.mse_loss instead of writing the loss."""
    return F.mse_loss(pred, target, reduction=reduction)


@mutant(KATA, "mse_loss", says="cut off from the graph")
def mse_through_python_floats(pred, target, reduction="mean"):
    """Computes the right numbers through .tolist(), so nothing can backpropagate to pred."""
    pairs = zip(pred.flatten().tolist(), target.flatten().tolist(), strict=True)
    squared = torch.tensor([(a - b) ** 2 for a, b in pairs])
    return _reduce(squared.reshape(pred.shape), reduction)


# --- cross_entropy ---


@mutant(KATA, "cross_entropy", says="overflow")
def cross_entropy_naive(logits, target, reduction="mean"):
    """Takes exp, normalises, then log: exp(1000) is inf and the loss becomes nan."""
    probs = logits.exp() / logits.exp().sum(dim=1, keepdim=True)
    return _reduce(-probs.log().gather(1, target.unsqueeze(1)).squeeze(1), reduction)


@mutant(KATA, "cross_entropy", says="overflow")
def cross_entropy_global_max(logits, target, reduction="mean"):
    """Subtracts the batch's global max instead of each row's: a row far below it underflows to log(0)."""
    shifted = logits - logits.max()
    log_probs = shifted - shifted.exp().sum(dim=1, keepdim=True).log()
    return _reduce(-log_probs.gather(1, target.unsqueeze(1)).squeeze(1), reduction)


@mutant(KATA, "cross_entropy", says="wrong reduction")
def cross_entropy_always_sums(logits, target, reduction="mean"):
    """Sums the per-sample losses for 'mean' as well."""
    losses = -(logits - torch.logsumexp(logits, 1, keepdim=True)).gather(1, target.unsqueeze(1)).squeeze(1)
    return losses if reduction == "none" else losses.sum()


@mutant(KATA, "cross_entropy", says="every class")
def cross_entropy_averages_all_classes(logits, target, reduction="mean"):
    """Averages -log_softmax over all classes instead of picking the target's."""
    log_probs = logits - torch.logsumexp(logits, 1, keepdim=True)
    return _reduce(-log_probs.mean(dim=1), reduction)


@mutant(KATA, "cross_entropy", says="functional.log_softmax")
def cross_entropy_with_log_softmax(logits, target, reduction="mean"):
    """Lets F.log_softmax do the stable part."""
    return _reduce(-F.log_softmax(logits, dim=1).gather(1, target.unsqueeze(1)).squeeze(1), reduction)


@mutant(KATA, "mse_loss", says="reached through another name")
def mse_with_the_library_taken_at_import(pred, target, reduction="mean"):
    """Calls F.mse_loss through a name bound at import, before the test switches F.mse_loss off."""
    return _mse_taken_at_import(pred, target, reduction=reduction)


@mutant(KATA, "mse_loss", says="seen as aten.mse_loss")
def mse_through_the_c_binding(pred, target, reduction="mean"):
    """Calls the C function F.mse_loss wraps, which no Python name of the library reaches."""
    return torch._C._nn.mse_loss(pred, target, {"none": 0, "mean": 1, "sum": 2}[reduction])


@mutant(KATA, "cross_entropy", says="reached through another name")
def cross_entropy_with_log_softmax_taken_as_a_default(
    logits, target, reduction="mean", _ls=torch.log_softmax
):
    """Keeps torch.log_softmax in a default argument, bound when the function was defined."""
    return _reduce(-_ls(logits, 1).gather(1, target.unsqueeze(1)).squeeze(1), reduction)


@mutant(KATA, "cross_entropy", says="seen as aten._log_softmax")
def cross_entropy_through_the_aten_op(logits, target, reduction="mean"):
    """Runs the log-softmax operator directly through torch.ops.aten."""
    log_probs = torch.ops.aten._log_softmax(logits, 1, False)
    return _reduce(-log_probs.gather(1, target.unsqueeze(1)).squeeze(1), reduction)


# --- zero_grad ---


@mutant(KATA, "zero_grad", says="set_to_none=True")
def zero_grad_always_zeros(params, set_to_none=True):
    """Fills gradients with zeros even when set_to_none=True asked for None."""
    for p in params:
        if p.grad is not None:
            p.grad.zero_()


@mutant(KATA, "zero_grad", says="set_to_none=False")
def zero_grad_always_none(params, set_to_none=True):
    """Sets gradients to None even when set_to_none=False asked for zeros."""
    for p in params:
        p.grad = None


@mutant(KATA, "zero_grad", says="had no gradient")
def zero_grad_new_zeros_everywhere(params, set_to_none=True):
    """Assigns fresh zeros to every parameter, creating gradients that did not exist."""
    for p in params:
        p.grad = None if set_to_none else torch.zeros_like(p)


@mutant(KATA, "zero_grad", says="in place")
def zero_grad_replaces_the_tensor(params, set_to_none=True):
    """Replaces each gradient by a new zero tensor instead of zeroing it in place."""
    for p in params:
        if p.grad is not None:
            p.grad = None if set_to_none else torch.zeros_like(p.grad)


@mutant(KATA, "zero_grad", says="not reset")
def zero_grad_rebinds_a_local(params, set_to_none=True):
    """Assigns to a local name instead of p.grad, which leaves every gradient as it was."""
    for p in params:
        grad = p.grad
        grad = None if set_to_none else torch.zeros_like(p)  # noqa: F841 - the mistake on purpose


# --- sgd_step ---


@mutant(KATA, "sgd_step", says="weight decay is missing")
def sgd_without_weight_decay(params, state, lr, momentum=0.0, dampening=0.0, weight_decay=0.0):
    """Ignores weight_decay."""
    with torch.no_grad():
        for p in params:
            if p.grad is None:
                continue
            g = p.grad
            if momentum:
                if p not in state:
                    state[p] = g.clone()
                else:
                    state[p].mul_(momentum).add_(g, alpha=1 - dampening)
                g = state[p]
            p.add_(g, alpha=-lr)


@mutant(KATA, "sgd_step", says="momentum applied before weight decay")
def sgd_decay_after_momentum(params, state, lr, momentum=0.0, dampening=0.0, weight_decay=0.0):
    """Runs the momentum buffer on the raw gradient and adds weight decay afterwards."""
    with torch.no_grad():
        for p in params:
            if p.grad is None:
                continue
            g = p.grad
            if momentum:
                if p not in state:
                    state[p] = g.clone()
                else:
                    state[p].mul_(momentum).add_(g, alpha=1 - dampening)
                g = state[p]
            p.add_(g + weight_decay * p, alpha=-lr)


@mutant(KATA, "sgd_step", says="not carried between steps")
def sgd_forgets_the_buffer(params, state, lr, momentum=0.0, dampening=0.0, weight_decay=0.0):
    """Starts a fresh momentum buffer on every call, ignoring `state`."""
    with torch.no_grad():
        for p in params:
            if p.grad is None:
                continue
            g = p.grad + weight_decay * p
            buf = g.clone()  # a new buffer each call: momentum never builds up
            p.add_(buf, alpha=-lr)


@mutant(KATA, "sgd_step", says="started at zeros")
def sgd_buffer_starts_at_zeros(params, state, lr, momentum=0.0, dampening=0.0, weight_decay=0.0):
    """Initialises the momentum buffer to zeros, so the first step is dampened too."""
    with torch.no_grad():
        for p in params:
            if p.grad is None:
                continue
            g = p.grad + weight_decay * p
            if momentum:
                buf = state.setdefault(p, torch.zeros_like(p))
                buf.mul_(momentum).add_(g, alpha=1 - dampening)
                g = buf
            p.add_(g, alpha=-lr)


@mutant(KATA, "sgd_step", says="clone")
def sgd_buffer_aliases_the_gradient(params, state, lr, momentum=0.0, dampening=0.0, weight_decay=0.0):
    """Stores p.grad itself as the buffer (no clone) and adds weight decay into it in place."""
    with torch.no_grad():
        for p in params:
            if p.grad is None:
                continue
            g = p.grad.add_(p, alpha=weight_decay)
            if momentum:
                if p not in state:
                    state[p] = g
                else:
                    state[p].mul_(momentum).add_(g, alpha=1 - dampening)
                g = state[p]
            p.add_(g, alpha=-lr)


@mutant(KATA, "sgd_step", says="torch.optim.SGD")
def sgd_calls_the_library(params, state, lr, momentum=0.0, dampening=0.0, weight_decay=0.0):
    """Wraps torch.optim.SGD instead of writing the update."""
    if "optimizer" not in state:
        state["optimizer"] = torch.optim.SGD(
            params, lr=lr, momentum=momentum, dampening=dampening, weight_decay=weight_decay
        )
    state["optimizer"].step()


@mutant(KATA, "sgd_step", says="torch.optim.sgd.sgd (its code ran")
def sgd_with_the_functional_taken_at_import(params, state, lr, momentum=0.0, dampening=0.0, weight_decay=0.0):
    """Calls torch.optim.sgd.sgd through a name bound at import; it keeps the buffers in state."""
    with_grad = [p for p in params if p.grad is not None]
    buffers = [state.get(p) for p in with_grad]
    with torch.no_grad():
        _sgd_taken_at_import(
            with_grad,
            [p.grad for p in with_grad],
            buffers,
            weight_decay=weight_decay,
            momentum=momentum,
            lr=lr,
            dampening=dampening,
            nesterov=False,
            maximize=False,
        )
    for p, buf in zip(with_grad, buffers, strict=True):
        if buf is not None:
            state[p] = buf


# An optimizer made when the module is imported, long before any test switches torch.optim.SGD off.
_SGD_MADE_AT_IMPORT = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.0)


@mutant(KATA, "sgd_step", says="seen as Optimizer.step#SGD.step")
def sgd_with_an_optimizer_made_at_import(params, state, lr, momentum=0.0, dampening=0.0, weight_decay=0.0):
    """Points an SGD optimizer made at import at the parameters, and steps it."""
    group = _SGD_MADE_AT_IMPORT.param_groups[0]
    group.update(
        params=list(params), lr=lr, momentum=momentum, dampening=dampening, weight_decay=weight_decay
    )
    _SGD_MADE_AT_IMPORT.state = state.setdefault("optimizer state", _SGD_MADE_AT_IMPORT.state)
    _SGD_MADE_AT_IMPORT.step()


# --- adam_step ---


def _adam(params, state, lr, betas, eps, weight_decay, *, correct=True, eps_inside=False, decay=True):
    beta1, beta2 = betas
    with torch.no_grad():
        for p in params:
            if p.grad is None:
                continue
            g = p.grad + weight_decay * p if decay else p.grad
            s = state.setdefault(p, {"step": 0, "m": torch.zeros_like(p), "v": torch.zeros_like(p)})
            s["step"] += 1
            s["m"].mul_(beta1).add_(g, alpha=1 - beta1)
            s["v"].mul_(beta2).addcmul_(g, g, value=1 - beta2)
            m, v = s["m"], s["v"]
            if correct:
                m, v = m / (1 - beta1 ** s["step"]), v / (1 - beta2 ** s["step"])
            p.sub_(lr * m / ((v + eps).sqrt() if eps_inside else v.sqrt() + eps))


@mutant(KATA, "adam_step", says="no bias correction")
def adam_without_bias_correction(params, state, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
    """Uses the raw moments m and v, which start near zero."""
    _adam(params, state, lr, betas, eps, weight_decay, correct=False)


@mutant(KATA, "adam_step", says="inside the square root")
def adam_eps_inside_sqrt(params, state, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
    """Divides by sqrt(v_hat + eps) instead of sqrt(v_hat) + eps."""
    _adam(params, state, lr, betas, eps, weight_decay, eps_inside=True)


@mutant(KATA, "adam_step", says="weight decay is missing")
def adam_without_weight_decay(params, state, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
    """Ignores weight_decay."""
    _adam(params, state, lr, betas, eps, weight_decay, decay=False)


@mutant(KATA, "adam_step", says="AdamW")
def adam_decoupled_decay(params, state, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
    """Applies AdamW's decoupled weight decay instead of Adam's L2 term."""
    with torch.no_grad():
        for p in params:
            if p.grad is not None:
                p.mul_(1 - lr * weight_decay)
    _adam(params, state, lr, betas, eps, weight_decay, decay=False)


@mutant(KATA, "adam_step", says="step count was not carried")
def adam_step_count_not_kept(params, state, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
    """Keeps the moments in state but uses t = 1 in the bias correction on every call."""
    beta1, beta2 = betas
    with torch.no_grad():
        for p in params:
            if p.grad is None:
                continue
            g = p.grad + weight_decay * p
            m, v = state.setdefault(p, (torch.zeros_like(p), torch.zeros_like(p)))
            m.mul_(beta1).add_(g, alpha=1 - beta1)
            v.mul_(beta2).addcmul_(g, g, value=1 - beta2)
            p.sub_(lr * (m / (1 - beta1)) / ((v / (1 - beta2)).sqrt() + eps))


@mutant(KATA, "adam_step", says="torch.optim.Adam")
def adam_calls_the_library(params, state, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
    """Wraps torch.optim.Adam instead of writing the update."""
    if "optimizer" not in state:
        state["optimizer"] = torch.optim.Adam(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)
    state["optimizer"].step()


@mutant(KATA, "adam_step", says="torch.optim.adam.adam (its code ran")
def adam_with_the_functional_taken_at_import(
    params, state, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0
):
    """Calls torch.optim.adam.adam through a name bound at import, with its state kept in `state`."""
    with_grad = [p for p in params if p.grad is not None]
    for p in with_grad:
        state.setdefault(p, (torch.zeros_like(p), torch.zeros_like(p), torch.tensor(0.0)))
    with torch.no_grad():
        _adam_taken_at_import(
            with_grad,
            [p.grad for p in with_grad],
            [state[p][0] for p in with_grad],
            [state[p][1] for p in with_grad],
            [],
            [state[p][2] for p in with_grad],
            foreach=False,
            amsgrad=False,
            beta1=betas[0],
            beta2=betas[1],
            lr=lr,
            weight_decay=weight_decay,
            eps=eps,
            maximize=False,
        )


# --- warmup_cosine_lrs ---


def _schedule(base_lr, total_epochs, warmup_epochs, start_factor, min_lr, *, shift=0, t_max=None, low=None):
    low = min_lr if low is None else low
    t_max = total_epochs - warmup_epochs if t_max is None else t_max
    lrs = []
    for epoch in range(total_epochs):
        if epoch < warmup_epochs:
            lrs.append(base_lr * (start_factor + (1 - start_factor) * (epoch + shift) / warmup_epochs))
        else:
            t = epoch - warmup_epochs
            lrs.append(low + (base_lr - low) * (1 + math.cos(math.pi * t / t_max)) / 2)
    return lrs


@mutant(KATA, "warmup_cosine_lrs", says="off by one")
def warmup_off_by_one(base_lr, total_epochs, warmup_epochs=0, start_factor=0.1, min_lr=0.0):
    """Uses (epoch + 1) / warmup_epochs, reaching base_lr one epoch early."""
    return _schedule(base_lr, total_epochs, warmup_epochs, start_factor, min_lr, shift=1)


@mutant(KATA, "warmup_cosine_lrs", says="T_max")
def cosine_over_all_epochs(base_lr, total_epochs, warmup_epochs=0, start_factor=0.1, min_lr=0.0):
    """Spreads the cosine over total_epochs instead of the epochs left after the warmup."""
    return _schedule(base_lr, total_epochs, warmup_epochs, start_factor, min_lr, t_max=total_epochs)


@mutant(KATA, "warmup_cosine_lrs", says="min_lr is ignored")
def cosine_ignores_min_lr(base_lr, total_epochs, warmup_epochs=0, start_factor=0.1, min_lr=0.0):
    """Anneals towards 0 whatever min_lr says."""
    return _schedule(base_lr, total_epochs, warmup_epochs, start_factor, min_lr, low=0.0)


@mutant(KATA, "warmup_cosine_lrs", says="torch.optim.lr_scheduler")
def schedule_with_the_library(base_lr, total_epochs, warmup_epochs=0, start_factor=0.1, min_lr=0.0):
    """Runs LinearLR and CosineAnnealingLR instead of computing the rates."""
    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=base_lr)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, total_epochs - warmup_epochs, min_lr)
    lrs = []
    for _ in range(total_epochs):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return lrs


class _EqualToAnything(float):
    def __eq__(self, other):
        return True

    __hash__ = float.__hash__


@mutant(KATA, "warmup_cosine_lrs", says="a subclass of float")
def warmup_cosine_lrs_equal_to_anything(base_lr, total_epochs, warmup_epochs=0, start_factor=0.1, min_lr=0.0):
    """Returns floats whose == always says True, in place of the schedule."""
    return [_EqualToAnything(0.0) for _ in range(total_epochs)]


# --- train_with_schedule ---


@mutant(KATA, "train_with_schedule", says="after every batch")
def train_steps_scheduler_per_batch(model, loss_fn, batches, epochs, optimizer, scheduler):
    """Calls scheduler.step() after every batch."""
    lrs = []
    for _ in range(epochs):
        lrs.append(optimizer.param_groups[0]["lr"])
        for inputs, targets in batches:
            optimizer.zero_grad()
            loss_fn(model(inputs), targets).backward()
            optimizer.step()
            scheduler.step()
    return lrs


@mutant(KATA, "train_with_schedule", says="before optimizer.step()")
def train_steps_scheduler_first(model, loss_fn, batches, epochs, optimizer, scheduler):
    """Calls scheduler.step() at the start of each epoch, before the optimizer has stepped."""
    lrs = []
    for _ in range(epochs):
        scheduler.step()
        lrs.append(optimizer.param_groups[0]["lr"])
        for inputs, targets in batches:
            optimizer.zero_grad()
            loss_fn(model(inputs), targets).backward()
            optimizer.step()
    return lrs


@mutant(KATA, "train_with_schedule", says="zero_grad")
def train_without_zero_grad(model, loss_fn, batches, epochs, optimizer, scheduler):
    """Never zeroes the gradients, so every step uses the sum of all gradients so far."""
    lrs = []
    for _ in range(epochs):
        lrs.append(optimizer.param_groups[0]["lr"])
        for inputs, targets in batches:
            loss_fn(model(inputs), targets).backward()
            optimizer.step()
        scheduler.step()
    return lrs


@mutant(KATA, "train_with_schedule", says="one epoch late")
def train_reads_the_rate_late(model, loss_fn, batches, epochs, optimizer, scheduler):
    """Records the learning rate after scheduler.step() instead of the one the epoch used."""
    lrs = []
    for _ in range(epochs):
        for inputs, targets in batches:
            optimizer.zero_grad()
            loss_fn(model(inputs), targets).backward()
            optimizer.step()
        scheduler.step()
        lrs.append(optimizer.param_groups[0]["lr"])
    return lrs


# --- a learning rate that a scheduler changes between steps ---


@mutant(KATA, "sgd_step", says="learning rate of the first call")
def sgd_caches_lr(params, state, lr, momentum=0.0, dampening=0.0, weight_decay=0.0):
    """Stores the hyperparameters in state on the first call and reuses them, missing a scheduler's new lr."""
    lr = state.setdefault("lr", lr)
    with torch.no_grad():
        for p in params:
            if p.grad is None:
                continue
            g = p.grad + weight_decay * p
            if momentum:
                if p not in state:
                    state[p] = g.clone()
                else:
                    state[p].mul_(momentum).add_(g, alpha=1 - dampening)
                g = state[p]
            p.sub_(lr * g)


@mutant(KATA, "adam_step", says="learning rate of the first call")
def adam_caches_lr(params, state, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
    """Keeps the first call's lr in state, so a scheduler's later lr is ignored."""
    _adam(params, state, state.setdefault("lr", lr), betas, eps, weight_decay)
