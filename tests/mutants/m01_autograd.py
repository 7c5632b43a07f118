"""Mistakes learners make in kata 01_autograd."""

from collections import Counter

import torch

from tests.mutants import mutant

KATA = "01_autograd"


# --- grad_at ---


@mutant(KATA, "grad_at", says="returned a tensor")
def grad_at_returns_tensor(f, x):
    """Returns x.grad, a tensor, where a float is asked for."""
    t = torch.tensor(x, requires_grad=True)
    f(t).backward()
    return t.grad


@mutant(KATA, "grad_at", says="finite differences")
def grad_at_finite_differences(f, x):
    """Approximates the derivative with central finite differences instead of autograd."""
    h = 1e-6
    plus = f(torch.tensor(x + h, dtype=torch.float64))
    minus = f(torch.tensor(x - h, dtype=torch.float64))
    return ((plus - minus) / (2 * h)).item()


@mutant(KATA, "grad_at", says="whatever f is")
def grad_at_hard_codes_the_article(f, x):
    """Hard-codes the derivative of the article's x**2 + 3x + 2."""
    return 2 * x + 3


@mutant(KATA, "grad_at", says="value, not the gradient")
def grad_at_returns_value(f, x):
    """Returns f(x) instead of its derivative."""
    return f(torch.tensor(x)).item()


# --- partial_derivatives ---


@mutant(KATA, "partial_derivatives", says="added to the first")
def partial_derivatives_backward_per_input(f, point):
    """Runs one backward() per input without zeroing, so later partials include earlier ones."""
    inputs = [torch.tensor(v, requires_grad=True) for v in point]
    grads = []
    for t in inputs:
        f(*inputs).backward()
        grads.append(t.grad.item())
    return grads


@mutant(KATA, "partial_derivatives", says="only the first input")
def partial_derivatives_first_only(f, point):
    """Differentiates with respect to the first input only and repeats it."""
    inputs = [torch.tensor(v, requires_grad=(i == 0)) for i, v in enumerate(point)]
    f(*inputs).backward()
    return [inputs[0].grad.item()] * len(point)


# --- vector_jacobian_product ---


@mutant(KATA, "vector_jacobian_product", says="ignored v")
def vjp_ignores_v(f, x, v):
    """Calls backward() on y.sum(), dropping the vector v."""
    x = x.detach().requires_grad_()
    f(x).sum().backward()
    return x.grad


@mutant(KATA, "vector_jacobian_product", says="changed the caller's tensor")
def vjp_mutates_callers_tensor(f, x, v):
    """Calls x.requires_grad_() on the caller's tensor."""
    x.requires_grad_()
    f(x).backward(gradient=v)
    return x.grad


@mutant(KATA, "vector_jacobian_product", says="J @ v")
def vjp_jacobian_times_v(f, x, v):
    """Computes J @ v (a Jacobian-vector product) instead of v^T J."""
    jacobian = torch.autograd.functional.jacobian(f, x)
    return jacobian @ v


# --- first_and_second_derivative ---


@mutant(KATA, "first_and_second_derivative", says="accumulat")
def second_derivative_by_two_backwards(f, x):
    """Calls backward(create_graph=True) and then backward() on x.grad: f'' lands on top of f'."""
    t = torch.tensor(x, requires_grad=True)
    f(t).backward(create_graph=True)
    first = t.grad.clone()
    t.grad.backward()
    return first.item(), t.grad.item()


@mutant(KATA, "first_and_second_derivative", says="first derivative twice")
def second_derivative_repeats_first(f, x):
    """Returns the first derivative twice."""
    t = torch.tensor(x, requires_grad=True)
    (first,) = torch.autograd.grad(f(t), t)
    return first.item(), first.item()


@mutant(KATA, "first_and_second_derivative", says="create_graph")
def second_derivative_without_create_graph(f, x):
    """Forgets create_graph=True, so the first derivative cannot be differentiated."""
    t = torch.tensor(x, requires_grad=True)
    (first,) = torch.autograd.grad(f(t), t)
    (second,) = torch.autograd.grad(first, t)
    return first.item(), second.item()


# --- gradient_history ---


@mutant(KATA, "gradient_history", says="zero x.grad")
def history_never_zeroes(f, x, steps, zero_between):
    """Ignores zero_between: gradients always accumulate (the forgotten zero_grad)."""
    t = torch.tensor(x, requires_grad=True)
    history = []
    for _ in range(steps):
        f(t).backward()
        history.append(t.grad.item())
    return history


@mutant(KATA, "gradient_history", says="reset between passes")
def history_fresh_leaf_each_step(f, x, steps, zero_between):
    """Creates a new leaf every step, so nothing ever accumulates."""
    history = []
    for _ in range(steps):
        t = torch.tensor(x, requires_grad=True)
        f(t).backward()
        history.append(t.grad.item())
    return history


@mutant(KATA, "gradient_history", says="stored the .grad tensor")
def history_stores_grad_tensor(f, x, steps, zero_between):
    """Stores the .grad tensor itself and converts at the end: in-place accumulation rewrites it."""
    t = torch.tensor(x, requires_grad=True)
    history = []
    for _ in range(steps):
        if zero_between and t.grad is not None:
            t.grad.zero_()
        f(t).backward()
        history.append(t.grad)
    return [g.item() for g in history]


@mutant(KATA, "gradient_history", says="None until the first backward()")
def history_zeroes_before_first_backward(f, x, steps, zero_between):
    """Calls t.grad.zero_() before every pass, including the first, when .grad is still None."""
    t = torch.tensor(x, requires_grad=True)
    history = []
    for _ in range(steps):
        if zero_between:
            t.grad.zero_()
        f(t).backward()
        history.append(t.grad.item())
    return history


@mutant(KATA, "gradient_history", says="same tensor object")
def history_returns_grad_tensors(f, x, steps, zero_between):
    """Appends t.grad itself and returns the list of tensors, never converting to floats."""
    t = torch.tensor(x, requires_grad=True)
    history = []
    for _ in range(steps):
        if zero_between and t.grad is not None:
            t.grad.zero_()
        f(t).backward()
        history.append(t.grad)
    return history


@mutant(KATA, "gradient_history", says="list of tensors")
def history_returns_cloned_tensors(f, x, steps, zero_between):
    """Appends a clone of t.grad at each step: right values, but tensors where floats are asked for."""
    t = torch.tensor(x, requires_grad=True)
    history = []
    for _ in range(steps):
        if zero_between:
            t.grad = None
        f(t).backward()
        history.append(t.grad.clone())
    return history


# --- clamp_weights_ ---


@mutant(KATA, "clamp_weights_", says=".data")
def clamp_through_data(params, limit):
    """Clamps p.data in place: right values, but autograd no longer sees the change."""
    for p in params:
        p.data.clamp_(-limit, limit)


@mutant(KATA, "clamp_weights_", says="rebinds a local name", everywhere=True)
def clamp_rebinds_local(params, limit):
    """Writes p = p.clamp(...), which changes a local name and not the parameter."""
    with torch.no_grad():
        for p in params:
            p = p.clamp(-limit, limit)  # noqa: PLW2901 - the mistake on purpose


@mutant(KATA, "clamp_weights_", says="torch.no_grad")
def clamp_without_no_grad(params, limit):
    """Clamps in place with autograd still recording."""
    for p in params:
        p.clamp_(-limit, limit)


@mutant(KATA, "clamp_weights_", says="generator")
def clamp_checks_params_first(params, limit):
    """Checks the parameters with all() before the loop, which exhausts a model.parameters() generator."""
    if not all(isinstance(p, torch.Tensor) for p in params):
        raise TypeError("clamp_weights_ takes tensors")
    with torch.no_grad():
        for p in params:
            p.clamp_(-limit, limit)


# --- detached_product_grad ---


@mutant(KATA, "detached_product_grad", says="flowed through g")
def product_grad_without_detach(f, g, x):
    """Forgets detach(): the gradient also flows through g."""
    t = torch.tensor(x, requires_grad=True)
    (f(t) * g(t)).backward()
    return t.grad.item()


@mutant(KATA, "detached_product_grad", says="detached f instead of g")
def product_grad_detaches_f(f, g, x):
    """Detaches the wrong factor."""
    t = torch.tensor(x, requires_grad=True)
    (f(t).detach() * g(t)).backward()
    return t.grad.item()


# --- intermediate_grad ---


@mutant(KATA, "intermediate_grad", says="graph was cut at h")
def intermediate_grad_detached_h(inner, outer, x):
    """Makes h a fresh leaf with detach().requires_grad_(), cutting x out of the graph."""
    t = torch.tensor(x, requires_grad=True)
    h = inner(t).detach().requires_grad_()
    outer(h).backward()
    return h.grad.item(), (t.grad.item() if t.grad is not None else 0.0)


@mutant(KATA, "intermediate_grad", says="swapped")
def intermediate_grad_swapped(inner, outer, x):
    """Returns (dL/dx, dL/dh) in the wrong order."""
    t = torch.tensor(x, requires_grad=True)
    h = inner(t)
    h.retain_grad()
    outer(h).backward()
    return t.grad.item(), h.grad.item()


@mutant(KATA, "intermediate_grad", says="retain_grad")
def intermediate_grad_without_retain_grad(inner, outer, x):
    """Forgets h.retain_grad(): h.grad is None after backward()."""
    t = torch.tensor(x, requires_grad=True)
    h = inner(t)
    outer(h).backward()
    return h.grad.item(), t.grad.item()


# --- count_graph_ops ---


@mutant(KATA, "count_graph_ops", says="visited nodes")
def count_ops_without_visited_set(output):
    """Walks every path, so a node reached twice is counted twice."""
    counts = Counter()
    stack = [output.grad_fn]
    while stack:
        node = stack.pop()
        if node is None:
            continue
        counts[type(node).__name__] += 1
        stack.extend(parent for parent, _ in node.next_functions)
    return dict(counts)


@mutant(KATA, "count_graph_ops", says="skip them")
def count_ops_counts_none(output):
    """Forgets that constants appear as None in next_functions."""
    counts = Counter()
    seen = set()
    stack = [output.grad_fn]
    while stack:
        node = stack.pop()
        if node in seen:
            continue
        seen.add(node)
        counts[type(node).__name__] += 1
        if node is not None:
            stack.extend(parent for parent, _ in node.next_functions)
    return dict(counts)


@mutant(KATA, "count_graph_ops", says="AccumulateGrad")
def count_ops_skips_leaves(output):
    """Counts only the *Backward* operations and forgets the leaf's AccumulateGrad node."""
    counts = Counter()
    seen = set()
    stack = [output.grad_fn]
    while stack:
        node = stack.pop()
        if node is None or node in seen:
            continue
        seen.add(node)
        if "Backward" in type(node).__name__:
            counts[type(node).__name__] += 1
        stack.extend(parent for parent, _ in node.next_functions)
    return dict(counts)


# --- per_loss_grads ---


@mutant(KATA, "per_loss_grads", says="retain_graph")
def per_loss_without_retain_graph(trunk, heads, x):
    """Calls backward() per head without retain_graph=True."""
    t = torch.tensor(x, requires_grad=True)
    shared = trunk(t)
    grads = []
    for head in heads:
        t.grad = None
        head(shared).backward()
        grads.append(t.grad.item())
    return grads


@mutant(KATA, "per_loss_grads", says="includes the first")
def per_loss_accumulates(trunk, heads, x):
    """Keeps the graph but never zeroes x.grad, so each gradient includes the ones before."""
    t = torch.tensor(x, requires_grad=True)
    shared = trunk(t)
    grads = []
    for head in heads:
        head(shared).backward(retain_graph=True)
        grads.append(t.grad.item())
    return grads


@mutant(KATA, "per_loss_grads", says="trunk once")
def per_loss_reruns_trunk(trunk, heads, x):
    """Recomputes the trunk for every head instead of sharing one graph."""
    grads = []
    for head in heads:
        t = torch.tensor(x, requires_grad=True)
        head(trunk(t)).backward()
        grads.append(t.grad.item())
    return grads
