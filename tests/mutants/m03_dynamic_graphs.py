"""Mistakes learners make in kata 03_dynamic_graphs."""

import math

import torch

from tests.mutants import mutant

KATA = "03_dynamic_graphs"


# --- dynamic_computation ---


@mutant(KATA, "dynamic_computation", says="global random state")
def dynamic_computation_global_rng(x, generator):
    """Copies the article literally: torch.rand(1) draws from the global RNG, ignoring the generator."""
    if torch.rand(1) > 0.5:
        return x**2
    return torch.sin(x)


@mutant(KATA, "dynamic_computation", says="the other branch ran")
def dynamic_computation_swapped_branches(x, generator):
    """Takes sin(x) when the draw is > 0.5 and x**2 otherwise."""
    if torch.rand(1, generator=generator) > 0.5:
        return torch.sin(x)
    return x**2


@mutant(KATA, "dynamic_computation", says="cut off")
def dynamic_computation_through_item(x, generator):
    """Computes with Python floats (x.item()) and wraps the result in a new tensor: no graph."""
    value = x.item()
    if torch.rand(1, generator=generator) > 0.5:
        return torch.tensor(value**2)
    return torch.tensor(math.sin(value))


# --- double_until ---


@mutant(KATA, "double_until", says="not a fixed number")
def double_until_fixed_count(x, bound):
    """Loops a fixed number of times instead of until the norm reaches the bound."""
    y = x
    for _ in range(5):
        y = y * 2
    return y


@mutant(KATA, "double_until", says="cut off")
def double_until_detaches_in_loop(x, bound):
    """Detaches inside the loop (to 'save memory'), so no gradient reaches x."""
    y = x
    while y.norm() < bound:
        y = (y * 2).detach()
    return y


@mutant(KATA, "double_until", says="not <= bound")
def double_until_less_or_equal(x, bound):
    """Loops while norm <= bound: one doubling too many when the norm lands exactly on the bound."""
    y = x
    while y.norm() <= bound:
        y = y * 2
    return y


@mutant(KATA, "double_until", says="before the norm was checked")
def double_until_doubles_first(x, bound):
    """Follows the tutorial's `y = x * 2` before the loop: always doubles at least once."""
    y = x * 2
    while y.norm() < bound:
        y = y * 2
    return y


@mutant(KATA, "double_until", says="y = y * 2")
def double_until_in_place(x, bound):
    """Doubles with `x *= 2`, an in-place change of a leaf that requires grad."""
    while x.norm() < bound:
        x *= 2
    return x


@mutant(KATA, "double_until", says="multiplying once by 2**n")
def double_until_closed_form(x, bound):
    """Counts the doublings in Python and multiplies once: right numbers, one node for any input."""
    n = 0
    norm = x.norm().item()
    while norm * 2**n < bound:
        n += 1
    return x * 2**n


# --- fold_tree ---


@mutant(KATA, "fold_tree", says="combined left to right")
def fold_tree_flattens(tree, combine):
    """Collects the leaves and folds them left to right, ignoring the tree's shape."""

    def leaves(t):
        return [t] if isinstance(t, torch.Tensor) else leaves(t[0]) + leaves(t[1])

    flat = leaves(tree)
    result = flat[0]
    for leaf in flat[1:]:
        result = combine(result, leaf)
    return result


@mutant(KATA, "fold_tree", says="arguments are swapped")
def fold_tree_swapped(tree, combine):
    """Calls combine(right, left)."""
    if isinstance(tree, torch.Tensor):
        return tree
    left, right = tree
    return combine(fold_tree_swapped(right, combine), fold_tree_swapped(left, combine))


@mutant(KATA, "fold_tree", says="only one child was folded")
def fold_tree_recurses_left_only(tree, combine):
    """Recurses into the left child only, as if every right child were a leaf."""
    if isinstance(tree, torch.Tensor):
        return tree
    left, right = tree
    return combine(fold_tree_recurses_left_only(left, combine), right)


# --- branch_where ---


@mutant(KATA, "branch_where", says="one branch was applied to the whole batch")
def branch_where_if_on_sum(x):
    """Decides once for the batch with `if x.sum() > 0`."""
    if x.sum() > 0:
        return x**2
    return torch.sin(x)


@mutant(KATA, "branch_where", says="one branch was applied to the whole batch")
def branch_where_if_on_first(x):
    """Decides by the first element with `if x.flatten()[0] > 0`."""
    if x.flatten()[0] > 0:
        return x**2
    return torch.sin(x)


@mutant(KATA, "branch_where", says="ambiguous")
def branch_where_python_if(x):
    """Writes a plain Python if, which works on one number and raises on a batch."""
    if x > 0:
        return x**2
    return torch.sin(x)


@mutant(KATA, "branch_where", says="cut off")
def branch_where_list_comprehension(x):
    """Loops over Python floats and rebuilds a tensor with torch.tensor: values right, graph lost."""
    values = [v**2 if v > 0 else math.sin(v) for v in x.flatten().tolist()]
    return torch.tensor(values).reshape(x.shape)


# --- sqrt_or_zero ---


@mutant(KATA, "sqrt_or_zero", says="0 * nan")
def sqrt_or_zero_naive_where(x):
    """Uses torch.where(x > 0, torch.sqrt(x), 0): right values, nan gradients at x <= 0."""
    return torch.where(x > 0, torch.sqrt(x), torch.zeros_like(x))


@mutant(KATA, "sqrt_or_zero", says="inf")
def sqrt_or_zero_clamp(x):
    """Takes sqrt(x.clamp(min=0)): right values, an infinite gradient at x = 0."""
    return torch.sqrt(x.clamp(min=0))


@mutant(KATA, "sqrt_or_zero", says="nan")
def sqrt_or_zero_mask_multiply(x):
    """Multiplies sqrt(|x|) by the mask x > 0: at x = 0 the gradient is inf * 0 = nan."""
    return torch.sqrt(x.abs()) * (x > 0)


# --- LeakyClamp ---


class _LeakyClamp(torch.autograd.Function):
    """The correct Function; each mutant below overrides one method with a mistake."""

    @staticmethod
    def forward(ctx, x, slope):
        ctx.save_for_backward(x)
        ctx.slope = slope
        inner = x.clamp(-1, 1)
        return inner + slope * (x - inner)

    @staticmethod
    def backward(ctx, grad_output):
        (x,) = ctx.saved_tensors
        return torch.where(x.abs() <= 1, grad_output, ctx.slope * grad_output), None


@mutant(KATA, "LeakyClamp", says="grad_output was not used", everywhere=True)
class LeakyClampForgetsGradOutput(_LeakyClamp):
    """backward returns the local derivative without multiplying by grad_output (chain rule)."""

    @staticmethod
    def backward(ctx, grad_output):
        (x,) = ctx.saved_tensors
        return torch.where(x.abs() <= 1, 1.0, ctx.slope).to(x.dtype), None


@mutant(KATA, "LeakyClamp", says="one gradient per input")
class LeakyClampOneGradient(_LeakyClamp):
    """backward returns only grad_x, but forward took two inputs (x, slope): needs (grad_x, None)."""

    @staticmethod
    def backward(ctx, grad_output):
        (x,) = ctx.saved_tensors
        return torch.where(x.abs() <= 1, grad_output, ctx.slope * grad_output)


@mutant(KATA, "LeakyClamp", says="save_for_backward")
class LeakyClampCtxAttribute(_LeakyClamp):
    """Keeps x as ctx.x instead of ctx.save_for_backward(x): in-place changes go unnoticed."""

    @staticmethod
    def forward(ctx, x, slope):
        ctx.x = x
        ctx.slope = slope
        inner = x.clamp(-1, 1)
        return inner + slope * (x - inner)

    @staticmethod
    def backward(ctx, grad_output):
        return torch.where(ctx.x.abs() <= 1, grad_output, ctx.slope * grad_output), None


@mutant(KATA, "LeakyClamp", says="plain clamp's derivative", everywhere=True)
class LeakyClampPlainClampBackward(_LeakyClamp):
    """backward uses clamp's derivative (0 outside [-1, 1]) and forgets the slope."""

    @staticmethod
    def backward(ctx, grad_output):
        (x,) = ctx.saved_tensors
        return grad_output * (x.abs() <= 1), None


@mutant(KATA, "LeakyClamp", says="slope was ignored")
class LeakyClampIgnoresSlope(_LeakyClamp):
    """forward is a plain clamp to [-1, 1]: slope is ignored there."""

    @staticmethod
    def forward(ctx, x, slope):
        ctx.save_for_backward(x)
        ctx.slope = slope
        return x.clamp(-1, 1)


# --- StraightThroughSign ---


class _StraightThroughSign(torch.autograd.Function):
    """The correct forward; each mutant below gets backward wrong."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return torch.sign(x)


@mutant(KATA, "StraightThroughSign", says="true derivative of sign")
class SignTrueDerivative(_StraightThroughSign):
    """backward returns sign's true derivative, 0, instead of the straight-through estimate."""

    @staticmethod
    def backward(ctx, grad_output):
        return torch.zeros_like(grad_output)


@mutant(KATA, "StraightThroughSign", says="must be 0")
class SignNoClip(_StraightThroughSign):
    """backward passes grad_output through everywhere, forgetting the |x| <= 1 clip."""

    @staticmethod
    def backward(ctx, grad_output):
        return grad_output


@mutant(KATA, "StraightThroughSign", says="grad_output was not used")
class SignForgetsGradOutput(_StraightThroughSign):
    """backward returns the mask |x| <= 1 without multiplying by grad_output."""

    @staticmethod
    def backward(ctx, grad_output):
        (x,) = ctx.saved_tensors
        return (x.abs() <= 1).to(grad_output.dtype)
