"""Mistakes learners make in kata 12_modern_pytorch."""

import re

import torch
from torch.func import functional_call, grad, jacrev, vmap

from tests.mutants import mutant

KATA = "12_modern_pytorch"


# --- derivative ---


@mutant(KATA, "derivative", says="torch.func.grad")
def derivative_through_autograd_grad(f):
    """Wraps torch.autograd.grad in a closure: right once, but vmap and nesting cannot see through it."""

    def d(x):
        x = x.detach().requires_grad_()
        (g,) = torch.autograd.grad(f(x), x)
        return g

    return d


@mutant(KATA, "derivative", says="the value, not the derivative")
def derivative_returns_f(f):
    """Returns f itself, so the 'derivative' gives the function's value."""
    return f


@mutant(KATA, "derivative", says="not a function")
def derivative_evaluated_at_zero(f):
    """Returns the derivative's value at 0 instead of the derivative function."""
    return grad(f)(torch.tensor(0.0))


# --- map_rows ---


@mutant(KATA, "map_rows", says="once")
def map_rows_python_loop(f, batch):
    """Loops over the rows in Python and stacks: right values, one call of f per row."""
    return torch.stack([f(row) for row in batch])


@mutant(KATA, "map_rows", says="whole batch")
def map_rows_on_the_whole_batch(f, batch):
    """Calls f on the whole batch, as if it were written for batches."""
    return f(batch)


# --- per_sample_grads ---


@mutant(KATA, "per_sample_grads", says="mean loss")
def per_sample_grads_of_the_batch_mean(model, loss_fn, x, y):
    """Differentiates the batch's mean loss once and repeats it for every sample."""
    names = list(dict(model.named_parameters()))
    grads = torch.autograd.grad(loss_fn(model(x), y), list(model.parameters()))
    return {name: g.expand(len(x), *g.shape).clone() for name, g in zip(names, grads, strict=True)}


@mutant(KATA, "per_sample_grads", says="scaled by the batch size")
def per_sample_grads_of_the_batch_sum(model, loss_fn, x, y):
    """Uses vmap but feeds the whole batch to every call: each sample gets the batch gradient times B."""
    params = {name: p.detach() for name, p in model.named_parameters()}

    def batch_loss(params, xi, yi):
        return loss_fn(functional_call(model, params, (x,)), y) * len(x)

    return vmap(grad(batch_loss), in_dims=(None, 0, 0))(params, x, y)


@mutant(KATA, "per_sample_grads", says="once")
def per_sample_grads_by_a_loop(model, loss_fn, x, y):
    """Loops over the samples with backward(): right values, but B forward passes and .grad filled."""
    grads = {name: [] for name in dict(model.named_parameters())}
    for xi, yi in zip(x, y, strict=True):
        model.zero_grad()
        loss_fn(model(xi.unsqueeze(0)), yi.unsqueeze(0)).backward()
        for name, p in model.named_parameters():
            grads[name].append(p.grad.clone())
    return {name: torch.stack(g) for name, g in grads.items()}


# --- jacobian ---


@mutant(KATA, "jacobian", says="transpose")
def jacobian_transposed(f, x):
    """Returns the transpose: one row per input instead of one per output."""
    return jacrev(f)(x).T


@mutant(KATA, "jacobian", says="torch.func")
def jacobian_row_by_row_with_autograd(f, x):
    """Builds the rows with torch.autograd.grad: right alone, but vmap cannot see through it."""
    x = x.detach().requires_grad_()
    y = f(x)
    rows = [torch.autograd.grad(y[i], x, retain_graph=True)[0] for i in range(y.numel())]
    return torch.stack(rows)


@mutant(KATA, "jacobian", says="gradient of y.sum()")
def jacobian_of_the_sum(f, x):
    """Differentiates f(x).sum(), which gives one number per input, not the whole Jacobian."""
    return grad(lambda t: f(t).sum())(x)


# --- capture_activations ---


def _capture(model, x, names, keep, remove_on_error=True, remove=True):
    """Registers keep(captured, name) as each named submodule's forward hook and runs the model."""
    captured = {}
    handles = [model.get_submodule(name).register_forward_hook(keep(captured, name)) for name in names]
    try:
        with torch.no_grad():
            model(x)
    except Exception:
        if remove_on_error:
            for handle in handles:
                handle.remove()
        raise
    if remove:
        for handle in handles:
            handle.remove()
    return captured


def _keep_output_clone(captured, name):
    def hook(module, inputs, output):
        captured[name] = output.detach().clone()

    return hook


@mutant(KATA, "capture_activations", says="remain on the model")
def capture_activations_leaks_hooks(model, x, names):
    """Registers the hooks and never removes them."""
    return _capture(model, x, names, _keep_output_clone, remove_on_error=False, remove=False)


@mutant(KATA, "capture_activations", says="finally")
def capture_activations_removes_only_on_success(model, x, names):
    """Removes the handles after the forward pass, but not when it raises."""
    return _capture(model, x, names, _keep_output_clone, remove_on_error=False)


@mutant(KATA, "capture_activations", says="inputs")
def capture_activations_keeps_inputs(model, x, names):
    """Stores what goes into each layer (the hook's inputs) instead of its output."""

    def keep_input(captured, name):
        def hook(module, inputs, output):
            captured[name] = inputs[0].detach().clone()

        return hook

    return _capture(model, x, names, keep_input)


@mutant(KATA, "capture_activations", says="clone")
def capture_activations_without_clone(model, x, names):
    """Keeps the output tensor itself, which a later in-place layer overwrites."""

    def keep_output(captured, name):
        def hook(module, inputs, output):
            captured[name] = output.detach()

        return hook

    return _capture(model, x, names, keep_output)


# --- clip_grads_during_backward ---


def _hooked_backward(model, loss, hook_for):
    handles = [p.register_hook(hook_for(name)) for name, p in model.named_parameters()]
    try:
        loss.backward()
    finally:
        for handle in handles:
            handle.remove()


@mutant(KATA, "clip_grads_during_backward", says="not clipped")
def clip_hook_returns_nothing(model, loss, limit):
    """Clamps inside the hook but returns nothing, so autograd keeps the original gradient."""
    largest = {}

    def hook_for(name):
        def hook(gradient):
            largest[name] = gradient.abs().max().item()
            gradient.clamp(-limit, limit)

        return hook

    _hooked_backward(model, loss, hook_for)
    return largest


@mutant(KATA, "clip_grads_during_backward", says="after clipping")
def clip_hook_records_after_clipping(model, loss, limit):
    """Records the size of the clipped gradient instead of the incoming one."""
    largest = {}

    def hook_for(name):
        def hook(gradient):
            clipped = gradient.clamp(-limit, limit)
            largest[name] = clipped.abs().max().item()
            return clipped

        return hook

    _hooked_backward(model, loss, hook_for)
    return largest


@mutant(KATA, "clip_grads_during_backward", says="after backward()")
def clip_grad_after_backward(model, loss, limit):
    """No hooks: clamps .grad after backward(), which also clips what .grad had accumulated."""
    loss.backward()
    largest = {}
    for name, p in model.named_parameters():
        largest[name] = p.grad.abs().max().item()
        p.grad.clamp_(-limit, limit)
    return largest


@mutant(KATA, "clip_grads_during_backward", says="still registered")
def clip_hooks_leaked(model, loss, limit):
    """Registers the clipping hooks and never removes them."""
    largest = {}
    for name, p in model.named_parameters():

        def hook(gradient, name=name):
            largest[name] = gradient.abs().max().item()
            return gradient.clamp(-limit, limit)

        p.register_hook(hook)
    loss.backward()
    return largest


# --- predict ---


@mutant(KATA, "predict", says="inference_mode")
def predict_under_no_grad(model, x):
    """Uses torch.no_grad() where inference mode is asked for."""
    with torch.no_grad():
        return model(x)


@mutant(KATA, "predict", says="recorded a graph")
def predict_with_autograd_on(model, x):
    """Runs the model with autograd on."""
    return model(x)


# --- frozen_features ---


@mutant(KATA, "frozen_features", says="inference tensor")
def frozen_features_under_inference_mode(backbone, x):
    """Uses torch.inference_mode() where the features must feed training."""
    with torch.inference_mode():
        return backbone(x)


@mutant(KATA, "frozen_features", says="torch.no_grad()")
def frozen_features_with_autograd_on(backbone, x):
    """Runs the backbone with autograd on, so its graph comes along with the features."""
    return backbone(x)


# --- count_graph_breaks ---


@mutant(KATA, "count_graph_breaks", says="graph_count")
def count_graphs_instead_of_breaks(fn, *args):
    """Returns the number of graphs, one more than the number of breaks."""
    return torch._dynamo.explain(fn)(*args).graph_count


@mutant(KATA, "count_graph_breaks", says="does not come from fn")
def count_graph_breaks_hard_coded(fn, *args):
    """Assumes the article's single break for every function."""
    return 1


# --- coin_flip_computation ---


@mutant(KATA, "coin_flip_computation", says="graph break")
def coin_flip_keeps_the_if(x):
    """Keeps the article's Python `if` on a tensor: the values match, the graph breaks."""
    if torch.rand(()) > 0.5:
        return x**2
    return torch.sin(x)


@mutant(KATA, "coin_flip_computation", says="torch.rand(())")
def coin_flip_with_a_coin_of_shape_one(x):
    """Draws the coin with torch.rand(1), which broadcasts a 0-dimensional x to shape (1,)."""
    return torch.where(torch.rand(1) > 0.5, x**2, torch.sin(x))


@mutant(KATA, "coin_flip_computation", says="swapped")
def coin_flip_swapped(x):
    """Swaps the branches of torch.where."""
    return torch.where(torch.rand(()) > 0.5, torch.sin(x), x**2)


@mutant(KATA, "coin_flip_computation", says="one random number per call")
def coin_flip_per_element(x):
    """Draws one coin per element instead of one per call."""
    return torch.where(torch.rand(x.shape) > 0.5, x**2, torch.sin(x))


# --- nan_gradient_source ---


@mutant(KATA, "nan_gradient_source", says="grad_fn")
def nan_source_from_the_forward(f, x):
    """Names the output's grad_fn, the last forward operation, whenever the gradient holds a NaN."""
    x = x.detach().requires_grad_()
    out = f(x)
    out.backward()
    return type(out.grad_fn).__name__ if torch.isnan(x.grad).any() else None


@mutant(KATA, "nan_gradient_source", says="still on")
def nan_source_leaves_anomaly_mode_on(f, x):
    """Switches anomaly mode on with set_detect_anomaly(True) and never off."""
    torch.autograd.set_detect_anomaly(True)
    x = x.detach().requires_grad_()
    try:
        f(x).backward()
    except RuntimeError as err:
        return re.search(r"Function '(\w+)' returned nan values", str(err)).group(1)
    return None


@mutant(KATA, "nan_gradient_source", says="caller's tensor")
def nan_source_changes_callers_tensor(f, x):
    """Calls x.requires_grad_() on the caller's tensor."""
    x.requires_grad_()
    try:
        with torch.autograd.detect_anomaly():
            f(x).backward()
    except RuntimeError as err:
        return re.search(r"Function '(\w+)' returned nan values", str(err)).group(1)
    return None
