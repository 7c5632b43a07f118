"""Mistakes learners make in kata 06_training_loop."""

import math

import torch
from torch import nn
from torch.utils.data import DataLoader

from tests.mutants import mutant

KATA = "06_training_loop"


def _step(model, loss_fn, optimizer, inputs, targets):
    optimizer.zero_grad()
    loss = loss_fn(model(inputs), targets)
    loss.backward()
    optimizer.step()
    return loss.item()


# --- train_step ---


@mutant(KATA, "train_step", says="did you forget optimizer.zero_grad()?")
def step_without_zero_grad(model, loss_fn, optimizer, inputs, targets):
    """Never clears the gradients: each backward() adds onto the previous batch's."""
    loss = loss_fn(model(inputs), targets)
    loss.backward()
    optimizer.step()
    return loss.item()


@mutant(KATA, "train_step", says="step() ran before backward()")
def step_before_backward(model, loss_fn, optimizer, inputs, targets):
    """Calls optimizer.step() before loss.backward(), so the update uses stale (or no) gradients."""
    optimizer.zero_grad()
    loss = loss_fn(model(inputs), targets)
    optimizer.step()
    loss.backward()
    return loss.item()


@mutant(KATA, "train_step", says="zero_grad() ran between backward() and step()")
def zero_grad_after_backward(model, loss_fn, optimizer, inputs, targets):
    """Zeroes the gradients after backward() and before step(): the step sees nothing."""
    loss = loss_fn(model(inputs), targets)
    loss.backward()
    optimizer.zero_grad()
    optimizer.step()
    return loss.item()


@mutant(KATA, "train_step", says="returned a tensor")
def step_returns_loss_tensor(model, loss_fn, optimizer, inputs, targets):
    """Returns the loss tensor, graph and all, instead of loss.item()."""
    optimizer.zero_grad()
    loss = loss_fn(model(inputs), targets)
    loss.backward()
    optimizer.step()
    return loss


@mutant(KATA, "train_step", says="Return the loss of this batch before the update")
def step_returns_loss_after_update(model, loss_fn, optimizer, inputs, targets):
    """Recomputes the loss after step() and returns that one."""
    _step(model, loss_fn, optimizer, inputs, targets)
    with torch.no_grad():
        return loss_fn(model(inputs), targets).item()


# --- train_epoch ---


@mutant(KATA, "train_epoch", says="weight each batch's loss by its size")
def epoch_unweighted_mean(model, loss_fn, optimizer, loader):
    """Averages the batch losses, so a short last batch counts as much as a full one."""
    model.train()
    losses = [_step(model, loss_fn, optimizer, x, y) for x, y in loader]
    return sum(losses) / len(losses)


@mutant(KATA, "train_epoch", says="summed the batch losses")
def epoch_sums_losses(model, loss_fn, optimizer, loader):
    """Returns the sum of the batch losses where the mean per sample is asked for."""
    model.train()
    return sum(_step(model, loss_fn, optimizer, x, y) for x, y in loader)


@mutant(KATA, "train_epoch", says="model.train()")
def epoch_without_train_mode(model, loss_fn, optimizer, loader):
    """Never calls model.train(): after an evaluation, training runs in eval mode (no dropout)."""
    total, count = 0.0, 0
    for x, y in loader:
        total += _step(model, loss_fn, optimizer, x, y) * len(x)
        count += len(x)
    return total / count


@mutant(KATA, "train_epoch", says="did you forget optimizer.zero_grad()?")
def epoch_without_zero_grad(model, loss_fn, optimizer, loader):
    """Writes its own loop and forgets zero_grad(): gradients pile up across batches."""
    model.train()
    total, count = 0.0, 0
    for x, y in loader:
        loss = loss_fn(model(x), y)
        loss.backward()
        optimizer.step()
        total += loss.item() * len(x)
        count += len(x)
    return total / count


# --- fit ---


@mutant(KATA, "fit", says="kept training after the first loss below the threshold")
def fit_never_stops_early(model, loss_fn, optimizer, inputs, targets, threshold, max_steps):
    """Ignores the threshold and always spends the whole budget."""
    return [_step(model, loss_fn, optimizer, inputs, targets) for _ in range(max_steps)]


@mutant(KATA, "fit", says="the loss that went below the threshold is missing")
def fit_drops_the_last_loss(model, loss_fn, optimizer, inputs, targets, threshold, max_steps):
    """Breaks before appending the loss that crossed the threshold."""
    losses = []
    for _ in range(max_steps):
        loss = _step(model, loss_fn, optimizer, inputs, targets)
        if loss < threshold:
            break
        losses.append(loss)
    return losses


@mutant(KATA, "fit", says="max_steps steps")
def fit_one_step_too_many(model, loss_fn, optimizer, inputs, targets, threshold, max_steps):
    """Counts steps from 0 to max_steps inclusive: one step over the budget."""
    losses = []
    step = 0
    while step <= max_steps:
        losses.append(_step(model, loss_fn, optimizer, inputs, targets))
        if losses[-1] < threshold:
            break
        step += 1
    return losses


# --- accumulated_step ---


def _parts(inputs, targets, micro_batches):
    return zip(
        torch.tensor_split(inputs, micro_batches), torch.tensor_split(targets, micro_batches), strict=True
    )


@mutant(KATA, "accumulated_step", says="once per micro-batch")
def accumulate_steps_every_micro_batch(model, loss_fn, optimizer, inputs, targets, micro_batches):
    """Calls step() after every micro-batch: several small updates, not one large-batch update."""
    optimizer.zero_grad()
    total = 0.0
    for x, y in _parts(inputs, targets, micro_batches):
        loss = loss_fn(model(x), y) * (len(x) / len(inputs))
        loss.backward()
        optimizer.step()
        total += loss.item()
    return total


@mutant(KATA, "accumulated_step", says="without scaling")
def accumulate_without_scaling(model, loss_fn, optimizer, inputs, targets, micro_batches):
    """Sums the micro-batch mean losses unscaled: the gradient is about micro_batches times too large."""
    optimizer.zero_grad()
    total = 0.0
    for x, y in _parts(inputs, targets, micro_batches):
        loss = loss_fn(model(x), y)
        loss.backward()
        total += loss.item() * len(x) / len(inputs)
    optimizer.step()
    return total


@mutant(KATA, "accumulated_step", says="divided each loss by the number of micro-batches")
def accumulate_divides_by_count(model, loss_fn, optimizer, inputs, targets, micro_batches):
    """Scales each loss by 1 / micro_batches, wrong when the parts differ in size."""
    optimizer.zero_grad()
    total = 0.0
    for x, y in _parts(inputs, targets, micro_batches):
        loss = loss_fn(model(x), y) / micro_batches
        loss.backward()
        total += loss.item()
    optimizer.step()
    return total


@mutant(KATA, "accumulated_step", says="only the last micro-batch")
def accumulate_zeroes_inside_loop(model, loss_fn, optimizer, inputs, targets, micro_batches):
    """Calls zero_grad() inside the loop, wiping what earlier micro-batches accumulated."""
    total = 0.0
    for x, y in _parts(inputs, targets, micro_batches):
        optimizer.zero_grad()
        loss = loss_fn(model(x), y) * (len(x) / len(inputs))
        loss.backward()
        total += loss.item()
    optimizer.step()
    return total


@mutant(KATA, "accumulated_step", says="whole batch at once")
def accumulate_full_batch(model, loss_fn, optimizer, inputs, targets, micro_batches):
    """Ignores micro_batches and runs the whole batch: right numbers, none of the memory saving."""
    return _step(model, loss_fn, optimizer, inputs, targets)


# --- clipped_step ---


def _total_norm(model):
    return torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in model.parameters()]))


@mutant(KATA, "clipped_step", says="did you clip after step()?")
def clip_after_step(model, loss_fn, optimizer, inputs, targets, max_norm):
    """Clips after optimizer.step(): the update already used the unclipped gradient."""
    optimizer.zero_grad()
    loss_fn(model(inputs), targets).backward()
    optimizer.step()
    return nn.utils.clip_grad_norm_(model.parameters(), max_norm).item()


@mutant(KATA, "clipped_step", says="clip_grad_value_")
def clip_by_value(model, loss_fn, optimizer, inputs, targets, max_norm):
    """Uses clip_grad_value_, which clamps entries and changes the gradient's direction."""
    optimizer.zero_grad()
    loss_fn(model(inputs), targets).backward()
    norm = _total_norm(model)
    nn.utils.clip_grad_value_(model.parameters(), max_norm)
    optimizer.step()
    return norm.item()


@mutant(KATA, "clipped_step", says="each parameter's gradient on its own")
def clip_per_parameter(model, loss_fn, optimizer, inputs, targets, max_norm):
    """Clips every parameter separately, so the total norm can still exceed max_norm."""
    optimizer.zero_grad()
    loss_fn(model(inputs), targets).backward()
    norm = _total_norm(model)
    for p in model.parameters():
        nn.utils.clip_grad_norm_(p, max_norm)
    optimizer.step()
    return norm.item()


@mutant(KATA, "clipped_step", says="norm after clipping")
def clip_returns_clipped_norm(model, loss_fn, optimizer, inputs, targets, max_norm):
    """Returns the norm after clipping instead of the one clip_grad_norm_ reports."""
    optimizer.zero_grad()
    loss_fn(model(inputs), targets).backward()
    nn.utils.clip_grad_norm_(model.parameters(), max_norm)
    optimizer.step()
    return _total_norm(model).item()


# --- train_with_early_stopping ---


@mutant(KATA, "train_with_early_stopping", says="stopped one epoch late")
def early_stopping_one_late(run_epoch, max_epochs, patience):
    """Stops when the counter exceeds patience (> instead of >=): one epoch too many."""
    best_epoch, best, waited = -1, math.inf, 0
    for epoch in range(max_epochs):
        loss = run_epoch(epoch)
        if loss < best:
            best_epoch, best, waited = epoch, loss, 0
        else:
            waited += 1
            if waited > patience:
                break
    return best_epoch, best


@mutant(KATA, "train_with_early_stopping", says="not reset when the loss improved")
def early_stopping_never_resets(run_epoch, max_epochs, patience):
    """Counts every epoch without improvement, and never resets the counter on a new best."""
    best_epoch, best, waited = -1, math.inf, 0
    for epoch in range(max_epochs):
        loss = run_epoch(epoch)
        if loss < best:
            best_epoch, best = epoch, loss
        else:
            waited += 1
            if waited >= patience:
                break
    return best_epoch, best


@mutant(KATA, "train_with_early_stopping", says="equal to the best is not an improvement")
def early_stopping_ties_improve(run_epoch, max_epochs, patience):
    """Uses <= so a loss equal to the best counts as an improvement."""
    best_epoch, best, waited = -1, math.inf, 0
    for epoch in range(max_epochs):
        loss = run_epoch(epoch)
        if loss <= best:
            best_epoch, best, waited = epoch, loss, 0
        else:
            waited += 1
            if waited >= patience:
                break
    return best_epoch, best


@mutant(KATA, "train_with_early_stopping", says="previous epoch")
def early_stopping_against_previous(run_epoch, max_epochs, patience):
    """Resets patience whenever the loss beats the previous epoch's, not the best so far."""
    best_epoch, best, waited, previous = -1, math.inf, 0, math.inf
    for epoch in range(max_epochs):
        loss = run_epoch(epoch)
        if loss < best:
            best_epoch, best = epoch, loss
        if loss < previous:
            waited = 0
        else:
            waited += 1
            if waited >= patience:
                break
        previous = loss
    return best_epoch, best


@mutant(KATA, "train_with_early_stopping", says="range(max_epochs)")
def early_stopping_ignores_budget(run_epoch, max_epochs, patience):
    """Loops until patience runs out and forgets the max_epochs budget."""
    best_epoch, best, waited, epoch = -1, math.inf, 0, 0
    while waited < patience:
        loss = run_epoch(epoch)
        if loss < best:
            best_epoch, best, waited = epoch, loss, 0
        else:
            waited += 1
        epoch += 1
    return best_epoch, best


# --- seeded_losses ---

_SEEDED_ONCE = []


def _train(model, loader, epochs, lr):
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    model.train()
    return [_step(model, nn.MSELoss(), optimizer, x, y) for _ in range(epochs) for x, y in loader]


@mutant(KATA, "seeded_losses", says="seeding once elsewhere is not enough")
def seeded_only_once(seed, make_model, dataset, epochs, batch_size, lr):
    """Seeds the global generator on the first call only, as if once at the top of a script."""
    if not _SEEDED_ONCE:
        torch.manual_seed(seed)
        _SEEDED_ONCE.append(seed)
    model = make_model()
    generator = torch.Generator().manual_seed(seed)
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=True, generator=generator)
    return _train(model, loader, epochs, lr)


@mutant(KATA, "seeded_losses", says="its own generator")
def seeded_without_loader_generator(seed, make_model, dataset, epochs, batch_size, lr):
    """Shuffles without a generator: the order comes from the global generator's state."""
    torch.manual_seed(seed)
    model = make_model()
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=True)
    return _train(model, loader, epochs, lr)


@mutant(KATA, "seeded_losses", says="before make_model()")
def seeded_after_building_the_model(seed, make_model, dataset, epochs, batch_size, lr):
    """Seeds after make_model(): the initial weights are not reproducible."""
    model = make_model()
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=True, generator=generator)
    return _train(model, loader, epochs, lr)


@mutant(KATA, "seeded_losses", says="pass shuffle=True")
def seeded_without_shuffle(seed, make_model, dataset, epochs, batch_size, lr):
    """Forgets shuffle=True: reproducible, but every epoch sees the data in the same order."""
    torch.manual_seed(seed)
    model = make_model()
    loader = DataLoader(dataset, batch_size=batch_size)
    return _train(model, loader, epochs, lr)


@mutant(KATA, "train_with_early_stopping", says="patience was ignored")
def early_stopping_ignores_patience(run_epoch, max_epochs, patience):
    """Stops at the first epoch that does not improve, whatever patience says."""
    best_epoch, best = -1, math.inf
    for epoch in range(max_epochs):
        loss = run_epoch(epoch)
        if loss >= best:
            break
        best_epoch, best = epoch, loss
    return best_epoch, best


@mutant(KATA, "train_with_early_stopping", says="never stopped early")
def early_stopping_never_stops(run_epoch, max_epochs, patience):
    """Tracks the best epoch but never breaks: patience is read and never used."""
    best_epoch, best = -1, math.inf
    for epoch in range(max_epochs):
        loss = run_epoch(epoch)
        if loss < best:
            best_epoch, best = epoch, loss
    return best_epoch, best
