"""Kata 03: dynamic graphs. Read a test's name for the behaviour, its body for the call.

The reference for every value is plain PyTorch run by the tests themselves; random inputs
come from Hypothesis and decide which branch runs, how often a loop turns and how deep
a recursion goes, so no fixed answer can pass.
"""

import math
from collections import Counter

import dynamic_graphs as dg
import pytest
import torch
from hypothesis import assume, given
from hypothesis import strategies as st
from torch.autograd.gradcheck import GradcheckError

from katas._harness.i18n import N_, _
from katas._harness.strategies import points
from katas._harness.testing import Spy, expect_close, expect_tensor_close, fail, show

exercise = pytest.mark.exercise

# --- helpers -----------------------------------------------------------------


def expect_tracked(result, *, call: str) -> None:
    """The result must be a tensor that autograd connects to the inputs."""
    if not isinstance(result, torch.Tensor):
        fail(
            _("Called {call}.\nIt returned {result} ({type}); a tensor is asked for.").format(
                call=call, result=show(result), type=type(result).__name__
            )
        )
    if not result.requires_grad:
        fail(
            _(
                "Called {call}.\nIt returned {result}, which does not require grad: the result is cut "
                "off from the input's graph, so no gradient can reach the input.\nLikely cause: "
                ".detach(), .item(), .tolist() or torch.tensor(...) inside the forward pass copy numbers "
                "and drop the graph; compute with tensor operations on the input itself."
            ).format(call=call, result=show(result))
        )


def grads_of(output, inputs, upstream):
    """d(sum(upstream * output)) / d(inputs), with zeros for inputs the output does not use."""
    # A scalar rather than grad_outputs=upstream: the same gradients, without the import that
    # torch's first explicit grad_outputs triggers (sympy, about a second on a busy laptop).
    found = torch.autograd.grad((output * upstream).sum(), inputs, allow_unused=True)
    return [torch.zeros_like(t) if g is None else g for t, g in zip(inputs, found, strict=True)]


def graph_ops(output) -> Counter:
    """The operations in the graph behind `output`, each node once, leaves not counted.

    The same walk as kata 01's count_graph_ops, minus the AccumulateGrad nodes of leaves.
    """
    counts, seen, stack = Counter(), set(), [output.grad_fn]
    while stack:
        node = stack.pop()
        if node is None or node in seen:
            continue
        seen.add(node)
        if type(node).__name__ != "AccumulateGrad":
            counts[type(node).__name__] += 1
        stack.extend(parent for parent, _index in node.next_functions)
    return counts


def call_elementwise(fn, x: torch.Tensor, call: str) -> torch.Tensor:
    """fn(x), turning PyTorch's 'ambiguous' error into the lesson it stands for."""
    try:
        return fn(x)
    except RuntimeError as err:
        if "ambiguous" not in str(err):
            raise
        error = str(err)
    fail(  # outside the except block: the message is the lesson, without the chained error
        _(
            "Called {call}.\nIt raised: {error}\nLikely cause: a Python `if` on a tensor with several "
            "elements. `if` needs one True or False, a batch holds one per element. Use "
            "torch.where(condition, a, b), which chooses element by element (and records both branches "
            "in the graph)."
        ).format(call=call, error=error)
    )


def batches(min_value: float = -3.0, max_value: float = 3.0, max_side: int = 4):
    """Float32 tensors of shape (), (n,) or (n, m), with values from Hypothesis."""
    shapes = st.lists(st.integers(1, max_side), min_size=0, max_size=2).map(tuple)
    values = st.floats(min_value, max_value, allow_nan=False, width=32)
    return shapes.flatmap(
        lambda shape: st.lists(values, min_size=math.prod(shape), max_size=math.prod(shape)).map(
            lambda vs: torch.tensor(vs, dtype=torch.float32).reshape(shape)
        )
    )


def upstream_like(t: torch.Tensor, seed: int) -> torch.Tensor:
    """A random upstream gradient: catches a backward that ignores what flows into it."""
    return torch.randn(t.shape, generator=torch.Generator().manual_seed(seed), dtype=t.dtype)


# --- dynamic_computation --------------------------------------------------------


def first_draw(seed: int) -> float:
    return torch.rand(1, generator=torch.Generator().manual_seed(seed)).item()


# Each branch of the article's function: (value, derivative).
BRANCHES = {"x**2": (lambda x: x**2, lambda x: 2 * x), "sin(x)": (torch.sin, torch.cos)}


def check_dynamic_computation(seed: int, x: float) -> None:
    t = torch.tensor(x, requires_grad=True)
    call = (
        f"dynamic_computation(torch.tensor({x}, requires_grad=True), torch.Generator().manual_seed({seed}))"
    )
    y = dg.dynamic_computation(t, torch.Generator().manual_seed(seed))
    expect_tracked(y, call=call)
    if y.shape != t.shape:
        fail(
            _(
                "Called {call}.\nIt returned {y} of shape {shape}; x has shape {shape2}.\nLikely cause: "
                "the draw torch.rand(1, ...) has shape (1,) and went into the result (torch.where, or "
                "arithmetic with it). Use the draw only to decide, in a Python `if`, and return x**2 or "
                "torch.sin(x) themselves."
            ).format(call=call, y=show(y), shape=tuple(y.shape), shape2=tuple(t.shape))
        )
    plain = torch.tensor(x)
    name, other_name = ("x**2", "sin(x)") if first_draw(seed) > 0.5 else ("sin(x)", "x**2")
    (value, grad), (other_value, other_grad) = (
        [f(plain) for f in BRANCHES[branch]] for branch in (name, other_name)
    )
    other = _(
        "the other branch ran. The seed's first draw is {first_draw:.4f}, so {name} is the branch to "
        "take: draw torch.rand(1, generator=generator) (not the global random state) and return x**2 "
        "when the draw is > 0.5, sin(x) otherwise"
    ).format(first_draw=first_draw(seed), name=name)
    expect_close(y.detach(), value, call=call, mistakes=[(other, other_value)])
    y.backward()
    expect_close(
        t.grad,
        grad,
        call=_("{call}, then backward() on the result; x.grad").format(call=call),
        mistakes=[(other, other_grad)],
        note=_("The branch taken is {name}: its derivative is {value}.").format(
            name=name, value="2x" if name == "x**2" else "cos(x)"
        ),
    )


@exercise("dynamic_computation")
@pytest.mark.parametrize("seed", [0, 1], ids=["seed0_sin_branch", "seed1_square_branch"])
def test_dynamic_computation_reproduces_the_article_example_on_both_branches(seed):
    # The article's x = 2: the gradient is 2x = 4 on the x**2 branch, cos(2) = -0.416 on sin's.
    check_dynamic_computation(seed, 2.0)


@exercise("dynamic_computation")
@given(seed=st.integers(0, 2**16), x=points)
def test_dynamic_computation_gradient_is_the_branch_taken(seed, x):
    check_dynamic_computation(seed, x)


@exercise("dynamic_computation")
def test_dynamic_computation_draws_once_from_the_given_generator():
    torch.manual_seed(1234)
    global_before = torch.get_rng_state()
    generator = torch.Generator().manual_seed(7)
    before = generator.get_state()
    call = "dynamic_computation(torch.tensor(0.5, requires_grad=True), torch.Generator().manual_seed(7))"
    dg.dynamic_computation(torch.tensor(0.5, requires_grad=True), generator)
    expected = torch.Generator().manual_seed(7)
    torch.rand(1, generator=expected)
    if not torch.equal(torch.get_rng_state(), global_before):
        fail(
            _(
                "Called {call}.\nIt drew from the global random state (torch.rand(1) without "
                "generator=...), so the seed of the given generator does not decide the branch and no "
                "run can be repeated.\nDraw with torch.rand(1, generator=generator)."
            ).format(call=call)
        )
    if torch.equal(generator.get_state(), before):
        fail(
            _(
                "Called {call}.\nThe generator was not used at all: draw with torch.rand(1, "
                "generator=generator)."
            ).format(call=call)
        )
    if not torch.equal(generator.get_state(), expected.get_state()):
        fail(
            _(
                "Called {call}.\nThe generator moved on by more (or other) draws than one torch.rand(1, "
                "generator=generator): draw one number, once, and use it for the decision."
            ).format(call=call)
        )


# --- double_until -----------------------------------------------------------------


def call_double_until(x: torch.Tensor, bound: float, call: str) -> torch.Tensor:
    try:
        y = dg.double_until(x, bound)
    except RuntimeError as err:
        if "leaf Variable that requires grad" not in str(err):
            raise
    else:
        expect_tracked(y, call=call)
        return y
    fail(
        _(
            "Called {call}.\nIt raised a RuntimeError: autograd refused an in-place change of x, a leaf "
            "tensor that requires grad.\nLikely cause: `y *= 2` (or `x *= 2`) where y is still x. Write "
            "y = y * 2: a new tensor each iteration, and one new node in the graph."
        ).format(call=call)
    )


def doublings_needed(x: torch.Tensor, bound: float) -> int:
    n, y = 0, x.detach()
    while y.norm() < bound:
        y, n = y * 2, n + 1
    return n


def doubling_mistakes(x: torch.Tensor, n: int):
    yield (
        _(
            "x was doubled once more than needed: stop as soon as the norm reaches the bound "
            "(loop while the norm is < bound, not <= bound)"
        ),
        x * 2 ** (n + 1),
    )
    if n > 0:
        yield (
            _("x was doubled once too few: keep doubling while the norm is below the bound"),
            x * 2 ** (n - 1),
        )
    for m in range(0, 25):
        if abs(m - n) > 1:
            yield (
                _(
                    "x was doubled {m} times, but this x needs {n}: the loop must run until the norm "
                    "reaches the bound, a count that depends on x, not a fixed number of iterations"
                ).format(m=m, n=n),
                x * 2**m,
            )


@exercise("double_until")
def test_double_until_doubles_3_4_three_times_to_reach_40():
    x = torch.tensor([3.0, 4.0], requires_grad=True)
    call = "double_until(torch.tensor([3.0, 4.0], requires_grad=True), 40.0)"
    y = call_double_until(x, 40.0, call)
    plain = x.detach()
    expect_close(y.detach(), plain * 8, call=call, mistakes=list(doubling_mistakes(plain, 3)))
    v = torch.tensor([1.0, -2.0])
    (grad,) = grads_of(y, [x], v)
    expect_close(
        grad,
        8 * v,
        call=_("{call}, then y.backward(gradient=[1, -2]); x.grad").format(call=call),
        note=_("y = 2*2*2*x, so each entry of the gradient is 8 times v."),
    )


@exercise("double_until")
def test_double_until_returns_x_when_its_norm_already_reaches_the_bound():
    x = torch.tensor([3.0, 4.0], requires_grad=True)
    call = "double_until(torch.tensor([3.0, 4.0], requires_grad=True), 5.0)"
    y = call_double_until(x, 5.0, call)
    expect_close(
        y.detach(),
        x.detach(),
        call=call,
        mistakes=[
            (
                _(
                    "x was doubled before the norm was checked (like `y = x * 2` ahead of the loop in "
                    "PyTorch's tutorial); test the condition first, so a long enough x loops zero times"
                ),
                2 * x.detach(),
            )
        ],
    )


@exercise("double_until")
@given(
    values=st.lists(st.floats(-3.0, 3.0, allow_nan=False, width=32), min_size=1, max_size=4).filter(
        lambda vs: math.hypot(*vs) >= 0.05
    ),
    bound=st.floats(0.1, 200.0),
    seed=st.integers(0, 2**16),
)
def test_double_until_loops_as_often_as_the_data_requires(values, bound, seed):
    x = torch.tensor(values, requires_grad=True)
    call = f"double_until(torch.tensor({values}, requires_grad=True), {bound!r})"
    n = doublings_needed(x, bound)
    # a bound within float32 round-off of a doubled norm: a float64 count is as right as ours
    assume(doublings_needed(x.double(), bound) == n)
    y = call_double_until(x, bound, call)
    plain = x.detach()
    expect_close(y.detach(), plain * 2**n, call=call, mistakes=list(doubling_mistakes(plain, n)))
    v = upstream_like(plain, seed)
    (grad,) = grads_of(y, [x], v)
    expect_close(
        grad,
        v * 2**n,
        call=_("{call}, then backward with a random v; x.grad").format(call=call),
        note=_("The loop ran {n} times, so dy/dx = 2**{n} in every entry.").format(n=n),
    )


@exercise("double_until")
def test_double_until_records_one_step_per_iteration_so_each_call_has_its_own_graph():
    unit = torch.tensor([0.5, -0.5, 0.5, 0.5])  # norm exactly 1: 2**-k * unit needs k doublings
    sizes = {}
    for k in range(5):
        x = (unit * 2.0**-k).requires_grad_()
        y = call_double_until(x, 1.0, f"double_until({show(x.detach())}, 1.0)")
        sizes[k] = sum(graph_ops(y).values())
    step = sizes[1] - sizes[0]
    if step < 1 or any(sizes[k] - sizes[0] != k * step for k in sizes):
        table = ", ".join(
            _("{k} doubling(s): {size} op(s)").format(k=k, size=size) for k, size in sizes.items()
        )
        fail(
            _(
                "Called double_until(2**-k * [0.5, -0.5, 0.5, 0.5], 1.0) for k = 0..4, which needs k "
                "doublings, and counted the operations in each result's graph (walking "
                "grad_fn.next_functions, as count_graph_ops does in kata 01).\nGraph sizes: "
                "{table}.\nExpected each doubling to add the same number of nodes (1 for y = y * 2).\n"
            ).format(table=table)
            + graph_cause(sizes)
        )


def graph_cause(sizes: dict[int, int]) -> str:
    """The likely cause, read from the graph sizes of k = 0..4 doublings."""
    grows = [sizes[k + 1] - sizes[k] for k in range(1, len(sizes) - 1)]
    if len(set(sizes.values())) == 1:
        return _(
            "Likely cause: the doubling was not done step by step in the loop (for example, counting "
            "in Python and multiplying once by 2**n). The lesson is that the loop itself is recorded: "
            "each call builds a graph as long as its own loop."
        )
    if sizes[0] == sizes[1] and len(set(grows)) == 1 and grows[0] >= 1:
        return _(
            "Likely cause: x was doubled before the norm was checked: the call that needs no doubling "
            "still recorded one. Test the condition first, so a long enough x loops zero times."
        )
    return _(
        "The lesson is that the loop itself is recorded: each call builds a graph as long as its own loop."
    )


# --- fold_tree ------------------------------------------------------------------------


def trees(max_leaves: int = 6):
    """Tree shapes: None is a leaf, a pair is an inner node."""
    return st.recursive(st.none(), lambda kids: st.tuples(kids, kids), max_leaves=max_leaves)


def leaf_count(shape) -> int:
    return 1 if shape is None else leaf_count(shape[0]) + leaf_count(shape[1])


def fill(shape, leaves):
    """The tree of tensors with the given shape, taking leaves in order."""
    it = iter(leaves)

    def build(s):
        return next(it) if s is None else (build(s[0]), build(s[1]))

    return build(shape)


def spell(shape, names=None) -> str:
    names = iter(names or [f"x{i}" for i in range(leaf_count(shape))])

    def text(s):
        return next(names) if s is None else f"({text(s[0])}, {text(s[1])})"

    return text(shape)


def reference_fold(tree, combine):
    if isinstance(tree, torch.Tensor):
        return tree
    return combine(reference_fold(tree[0], combine), reference_fold(tree[1], combine))


def reference_fold_swapped(tree, combine):
    if isinstance(tree, torch.Tensor):
        return tree
    return combine(reference_fold_swapped(tree[1], combine), reference_fold_swapped(tree[0], combine))


def reference_fold_flat(leaves, combine):
    result = leaves[0]
    for leaf in leaves[1:]:
        result = combine(result, leaf)
    return result


FLAT = N_(
    "the tree's shape was ignored: the leaves were combined left to right. Recurse: a pair "
    "(left, right) folds to combine(fold_tree(left, combine), fold_tree(right, combine))"
)
SWAPPED = N_("combine's arguments are swapped: call combine(folded left, folded right), in that order")


def folded_children_only(combine, call: str):
    """combine, refusing a child that reached it unfolded (a pair rather than a tensor)."""

    def checked(left, right):
        if not (isinstance(left, torch.Tensor) and isinstance(right, torch.Tensor)):
            fail(
                _(
                    "Called {call}.\ncombine was called with ({left}, {right}): a pair of the tree reached "
                    "combine unfolded.\nLikely cause: only one child was folded; fold both before "
                    "combining: combine(fold_tree(left, combine), fold_tree(right, combine))."
                ).format(call=call, left=type(left).__name__, right=type(right).__name__)
            )
        return combine(left, right)

    return checked


@exercise("fold_tree")
@pytest.mark.parametrize("shape", [(None, (None, None)), ((None, None), None)], ids=["a-(b-c)", "(a-b)-c"])
def test_fold_tree_follows_the_tree_shape_with_a_non_commutative_combine(shape):
    leaves = [torch.tensor(v, requires_grad=True) for v in (1.0, 2.0, 3.0)]
    call = _("fold_tree({tree}, torch.sub) with a, b, c = 1.0, 2.0, 3.0").format(tree=spell(shape, "abc"))
    result = dg.fold_tree(fill(shape, leaves), folded_children_only(torch.sub, call))
    expect_tracked(result, call=call)
    got = [result.item(), *(g.item() for g in grads_of(result, leaves, torch.tensor(1.0)))]

    def summary(fold_result):
        return [fold_result.item(), *(g.item() for g in grads_of(fold_result, leaves, torch.tensor(1.0)))]

    expected = summary(reference_fold(fill(shape, leaves), torch.sub))
    expect_close(
        got,
        expected,
        call=_("{call}; [value, d/da, d/db, d/dc]").format(call=call),
        mistakes=[
            (_(SWAPPED), summary(reference_fold_swapped(fill(shape, leaves), torch.sub))),
            (_(FLAT), summary(reference_fold_flat(leaves, torch.sub))),
        ],
    )


class TreeCell:
    """A tree-RNN cell, tanh(left @ A + right @ B): order-sensitive and nonlinear."""

    def __init__(self, seed: int, dim: int):
        gen = torch.Generator().manual_seed(seed)
        self.a = (torch.randn(dim, dim, generator=gen) / dim**0.5).requires_grad_()
        self.b = (torch.randn(dim, dim, generator=gen) / dim**0.5).requires_grad_()

    def __call__(self, left, right):
        return torch.tanh(left @ self.a + right @ self.b)

    def __repr__(self) -> str:
        return "combine(l, r) = tanh(l @ A + r @ B)"


def tree_case(shape, seed: int, dim: int = 3):
    gen = torch.Generator().manual_seed(seed + 1)
    leaves = [torch.randn(dim, generator=gen).requires_grad_() for _leaf in range(leaf_count(shape))]
    return leaves, TreeCell(seed, dim)


@exercise("fold_tree")
@given(shape=trees(), seed=st.integers(0, 2**16))
def test_fold_tree_runs_a_tree_rnn_on_random_trees(shape, seed):
    leaves, cell = tree_case(shape, seed)
    call = _("fold_tree({tree}, combine) with {cell}, random 3-vectors x_i, seed {seed}").format(
        tree=spell(shape), cell=repr(cell), seed=seed
    )
    result = dg.fold_tree(fill(shape, leaves), folded_children_only(cell, call))
    expect_tracked(result, call=call)
    expected = reference_fold(fill(shape, leaves), cell)
    expect_tensor_close(
        result,
        expected.detach(),
        call=call,
        mistakes=[
            (_(SWAPPED), reference_fold_swapped(fill(shape, leaves), cell)),
            (_(FLAT), reference_fold_flat(leaves, cell)),
        ],
    )
    inputs = [*leaves, cell.a, cell.b]
    v = upstream_like(expected, seed)
    for name, got, want in zip(
        [*(f"x{i}" for i in range(len(leaves))), "A", "B"],
        grads_of(result, inputs, v),
        grads_of(expected, inputs, v),
        strict=True,
    ):
        expect_tensor_close(
            got, want, call=_("{call}; the gradient with respect to {name}").format(call=call, name=name)
        )


@exercise("fold_tree")
@given(shape=trees(max_leaves=8))
def test_fold_tree_calls_combine_once_per_pair(shape):
    leaves, cell = tree_case(shape, 0, dim=2)
    spy = Spy(cell, "combine")
    call = f"fold_tree({spell(shape)}, combine)"
    dg.fold_tree(fill(shape, leaves), spy)
    spy.expect_calls(
        leaf_count(shape) - 1,
        call=call,
        why=_(
            "A tree with n leaves has n - 1 pairs: combine runs once for each, and a lone leaf folds "
            "to itself. The graph of each call has exactly the shape of its tree."
        ),
    )


# --- branch_where --------------------------------------------------------------------------


def reference_branch(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(value, local derivative) of x**2 where x > 0, else sin(x), elementwise."""
    return torch.where(x > 0, x**2, torch.sin(x)), torch.where(x > 0, 2 * x, torch.cos(x))


ONE_BRANCH = N_(
    "one branch was applied to the whole batch ({}): a Python `if` on x.sum(), x.any(), x[0] or "
    "similar decides once for all elements. Use torch.where(x > 0, x**2, torch.sin(x))"
)


def check_branch_where(x: torch.Tensor, seed: int, call: str) -> None:
    t = x.clone().requires_grad_()
    y = call_elementwise(dg.branch_where, t, call)
    expect_tracked(y, call=call)
    value, slope = reference_branch(x)
    expect_tensor_close(
        y,
        value,
        call=call,
        mistakes=[
            (_(ONE_BRANCH).format(_("all x**2")), x**2),
            (_(ONE_BRANCH).format(_("all sin(x)")), torch.sin(x)),
        ],
    )
    v = upstream_like(x, seed)
    (grad,) = grads_of(y, [t], v)
    expect_tensor_close(
        grad,
        v * slope,
        call=_("{call}, then backward with a random upstream gradient v; x.grad").format(call=call),
        mistakes=[
            (
                _(
                    "the gradient flowed through both branches: where x > 0 it must be 2x only, "
                    "elsewhere cos(x) only. torch.where routes it to the selected branch"
                ),
                v * (2 * x + torch.cos(x)),
            ),
            (
                _("at x = 0 the rule takes sin (x > 0 is strict), so the slope there is cos(0) = 1"),
                v * torch.where(x >= 0, 2 * x, torch.cos(x)),
            ),
        ],
    )


@exercise("branch_where")
def test_branch_where_picks_a_branch_per_element():
    # x.sum() < 0 but x[0] > 0: either shortcut applies one branch to every element.
    x = torch.tensor([2.0, -1.0, 0.5, -3.0])
    check_branch_where(x, 0, "branch_where(torch.tensor([2.0, -1.0, 0.5, -3.0], requires_grad=True))")


@exercise("branch_where")
@pytest.mark.parametrize("value", [-0.5, 0.0, 1.5])
def test_branch_where_accepts_a_zero_dim_tensor_and_uses_sin_at_zero(value):
    # At exactly 0, x > 0 is False: the value is sin(0) = 0 and the slope cos(0) = 1, not 2*0.
    x = torch.tensor(value)
    check_branch_where(x, 1, f"branch_where(torch.tensor({value}, requires_grad=True))")


@exercise("branch_where")
@given(x=batches(), seed=st.integers(0, 2**16))
def test_branch_where_matches_the_elementwise_rule_on_random_batches(x, seed):
    check_branch_where(x, seed, _("branch_where(x) with x = {x}, requires_grad=True").format(x=show(x)))


# --- sqrt_or_zero ----------------------------------------------------------------------------


def check_sqrt_or_zero(x: torch.Tensor, seed: int, call: str) -> None:
    t = x.clone().requires_grad_()
    y = call_elementwise(dg.sqrt_or_zero, t, call)
    expect_tracked(y, call=call)
    positive = x > 0
    # The reference in float64 from positive inputs only: nothing can be nan.
    root = torch.where(positive, x.double(), 1.0).sqrt()
    value = torch.where(positive, root, 0.0)
    slope = torch.where(positive, 0.5 / root, 0.0)
    expect_tensor_close(
        y,
        value.float(),
        call=call,
        mistakes=[(_("the square root was taken of |x|: below 0 the answer is 0"), x.abs().sqrt())],
    )
    v = upstream_like(x, seed)
    (grad,) = grads_of(y, [t], v)
    gcall = _("{call}, then backward with a random upstream gradient v; x.grad").format(call=call)
    if torch.isnan(grad).any():
        fail(
            _(
                "Called {gcall}.\nIt has nan where x = {x}: {grad}.\nLikely cause: sqrt also ran on the "
                "x <= 0. Whatever discards those results afterwards (torch.where(x > 0, torch.sqrt(x), "
                "0), or multiplying by the mask x > 0) sends them a gradient of 0, but sqrt's derivative "
                "there is nan (x < 0) or inf (x = 0), and 0 * nan = 0 * inf = nan. Give sqrt only "
                "positive numbers: sqrt(torch.where(x > 0, x, 1)) inside, then torch.where(x > 0, that, "
                "0) outside."
            ).format(gcall=gcall, x=show(x[torch.isnan(grad)]), grad=show(grad))
        )
    if torch.isinf(grad).any():
        fail(
            _(
                "Called {gcall}.\nIt has inf where x = {x}: {grad}.\nLikely cause: sqrt(x.clamp(min=0)): "
                "at x = 0, sqrt's derivative is inf, and clamp passes the gradient through at its "
                "boundary. Replace x by a safe positive value where x <= 0 before the sqrt "
                "(torch.where(x > 0, x, 1)), then select 0 there."
            ).format(gcall=gcall, x=show(x[torch.isinf(grad)]), grad=show(grad))
        )
    # float32 gradients near x = 0 are huge (1/(2 sqrt x)): a relative tolerance covers them.
    expect_tensor_close(grad, (v.double() * slope).float(), call=gcall, rtol=1e-5, atol=1e-6)


@exercise("sqrt_or_zero")
def test_sqrt_or_zero_has_finite_gradients_at_zero_and_below():
    x = torch.tensor([4.0, 0.25, 0.0, -0.0, -1.0, -9.0])
    check_sqrt_or_zero(x, 0, "sqrt_or_zero(torch.tensor([4.0, 0.25, 0.0, -0.0, -1.0, -9.0]))")


@exercise("sqrt_or_zero")
@given(x=batches(-4.0, 4.0), seed=st.integers(0, 2**16))
def test_sqrt_or_zero_matches_sqrt_above_zero_and_zero_elsewhere(x, seed):
    check_sqrt_or_zero(x, seed, _("sqrt_or_zero(x) with x = {x}, requires_grad=True").format(x=show(x)))


# --- LeakyClamp ------------------------------------------------------------------------------


def reference_leaky_clamp(x: torch.Tensor, slope: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(value, local derivative), written with where rather than the solution's clamp."""
    value = torch.where(x > 1, 1 + slope * (x - 1), torch.where(x < -1, -1 + slope * (x + 1), x))
    return value, torch.where(x.abs() <= 1, torch.ones_like(x), torch.full_like(x, slope))


WRONG_GRAD_COUNT = N_(
    "backward must return one gradient per input of forward, in order: forward takes (x, slope), "
    "so return (grad_x, None), None for the float slope, which needs no gradient"
)


def leaky_backward(x: torch.Tensor, slope: float, upstream: torch.Tensor, call: str) -> torch.Tensor:
    t = x.clone().requires_grad_()
    y = dg.LeakyClamp.apply(t, slope)
    try:
        (grad,) = torch.autograd.grad((y * upstream).sum(), [t])
    except RuntimeError as err:
        if "incorrect number of gradients" not in str(err):
            raise
        error = str(err)
    else:
        return grad
    fail(
        _("Called {call}.\nbackward() raised: {error}\nLikely cause: {value}.").format(
            call=call, error=error, value=_(WRONG_GRAD_COUNT)
        )
    )


slopes = st.floats(0.0, 1.0).map(lambda v: round(v, 3))


@exercise("LeakyClamp")
@given(x=batches(-4.0, 4.0), slope=slopes)
def test_leaky_clamp_forward_is_identity_inside_and_leaky_outside(x, slope):
    call = _("LeakyClamp.apply(x, slope={slope}) with x = {x}").format(slope=slope, x=show(x))
    y = dg.LeakyClamp.apply(x.clone().requires_grad_(), slope)
    expect_tracked(y, call=call)
    value, _grad = reference_leaky_clamp(x, slope)
    expect_tensor_close(
        y,
        value,
        call=call,
        mistakes=[
            (
                _("slope was ignored: outside [-1, 1] the output keeps rising with slope `slope`"),
                x.clamp(-1, 1),
            ),
            (
                _(
                    "outside [-1, 1] the output must continue from ±1: 1 + slope * (x - 1) above, "
                    "-1 + slope * (x + 1) below"
                ),
                torch.where(x.abs() <= 1, x, slope * x),
            ),
        ],
    )


@exercise("LeakyClamp")
def test_leaky_clamp_backward_multiplies_grad_output_by_the_local_slope():
    x = torch.tensor([-3.0, -0.5, 0.25, 2.0])
    upstream = torch.tensor([1.0, 2.0, -3.0, 4.0])
    call = _(
        "LeakyClamp.apply(x, 0.1) with x = [-3, -0.5, 0.25, 2], "
        "then backward with grad_output = [1, 2, -3, 4]"
    )
    grad = leaky_backward(x, 0.1, upstream, call)
    expect_tensor_close(
        grad,
        torch.tensor([0.1, 2.0, -3.0, 0.4]),
        call=call + "; x.grad",
        mistakes=[
            (
                _(
                    "grad_output was not used. Chain rule: backward returns grad_output * (the local "
                    "derivative), not the local derivative alone"
                ),
                torch.tensor([0.1, 1.0, 1.0, 0.1]),
            ),
            (
                _(
                    "grad_output was not used outside [-1, 1]: there, too, the gradient is grad_output * "
                    "slope"
                ),
                torch.tensor([0.1, 2.0, -3.0, 0.1]),
            ),
            (
                _("the slope went to the wrong region: the derivative is 1 inside [-1, 1] and slope outside"),
                torch.tensor([1.0, 0.2, -0.3, 4.0]),
            ),
            (
                _("outside [-1, 1] the gradient is 0, which is plain clamp's derivative: it must be slope"),
                torch.tensor([0.0, 2.0, -3.0, 0.0]),
            ),
        ],
    )


def gradcheck_cause(x: torch.Tensor, slope: float) -> str:
    """Which mistake the learner's backward makes, found by running it with a known grad_output."""
    upstream = torch.arange(2.0, 2.0 + x.numel(), dtype=x.dtype)  # distinct, none equal to 1
    t = x.clone().requires_grad_()
    try:
        (grad,) = torch.autograd.grad((dg.LeakyClamp.apply(t, slope) * upstream).sum(), [t])
    except RuntimeError:
        grad = None
    inside = x.abs() <= 1
    local = torch.where(inside, torch.ones_like(x), torch.full_like(x, slope))
    candidates = [
        (
            local * upstream,
            N_(
                "backward itself is right (grad_output times 1 inside [-1, 1], times slope outside), "
                "so forward is what disagrees: outside [-1, 1] it must continue from ±1 with slope "
                "`slope` (the forward test shows where)."
            ),
        ),
        (
            local,
            N_(
                "grad_output was not used: backward returned the local derivative alone "
                "(chain rule: return grad_output * local derivative)."
            ),
        ),
        (
            torch.where(inside, torch.full_like(x, slope), torch.ones_like(x)) * upstream,
            N_("the slope sits in the wrong region: the derivative is 1 inside [-1, 1] and slope outside."),
        ),
        (
            torch.where(inside, upstream, torch.zeros_like(x)),
            N_(
                "outside [-1, 1] the gradient is 0, plain clamp's derivative: it must be grad_output * slope."
            ),
        ),
    ]
    if grad is not None:
        for expected, cause in candidates:
            if grad.shape == expected.shape and torch.allclose(grad, expected, rtol=1e-6, atol=1e-9):
                return _(cause)
    return _(
        "your backward returns none of grad_output * (1 inside [-1, 1], slope outside), the local "
        "derivative alone, or the slopes swapped: print grad_output and your result for one x."
    )


@exercise("LeakyClamp")
@given(
    values=st.lists(
        st.floats(-3.0, 3.0, allow_nan=False).filter(lambda v: abs(abs(v) - 1) > 1e-3), min_size=1, max_size=5
    ),
    slope=slopes,
)
def test_leaky_clamp_passes_gradcheck_in_float64(values, slope):
    # gradcheck compares backward with finite differences of forward. Its defaults (eps 1e-6,
    # atol 1e-5, rtol 1e-3) assume float64; the values keep 1e-3 away from the kinks at ±1.
    x = torch.tensor(values, dtype=torch.float64, requires_grad=True)
    call = _(
        "torch.autograd.gradcheck(lambda t: LeakyClamp.apply(t, {slope}), x) with x = {values} (float64)"
    ).format(slope=slope, values=values)
    problem = None
    try:
        torch.autograd.gradcheck(lambda t: dg.LeakyClamp.apply(t, slope), (x,))
    except GradcheckError as err:
        problem = _(
            "It failed: your backward disagrees with the finite differences of your forward.\n{err}\nThe "
            "numerical Jacobian comes from forward, the analytical one from backward (a row per input "
            "element, a column per output element).\nLikely cause: {cause}"
        ).format(err=err, cause=gradcheck_cause(x.detach(), slope))
    except RuntimeError as err:
        if "incorrect number of gradients" not in str(err):
            raise
        problem = _("backward() raised: {err}\nLikely cause: {value}.").format(
            err=err, value=_(WRONG_GRAD_COUNT)
        )
    if problem is not None:
        fail(_("Called {call}.\n{problem}").format(call=call, problem=problem))


@exercise("LeakyClamp")
def test_leaky_clamp_saves_its_input_with_save_for_backward():
    # h changes in place between forward and backward, moving 0.5 and -0.5 outside [-1, 1].
    x = torch.tensor([0.5, -0.5], requires_grad=True)
    h = x.clone()
    y = dg.LeakyClamp.apply(h, 0.1)
    with torch.no_grad():
        h.mul_(10)
    call = _(
        "y = LeakyClamp.apply(h, 0.1) with h = [0.5, -0.5]; h.mul_(10) under no_grad; "
        "then y.sum() backward; the gradient"
    )
    try:
        (grad,) = torch.autograd.grad(y.sum(), [x])
    except RuntimeError as err:
        if "modified by an inplace operation" in str(err):
            return  # autograd noticed that a saved tensor changed: the safe outcome
        if "incorrect number of gradients" not in str(err):
            raise
        error = str(err)
    else:
        error = None
    if error is not None:
        fail(
            _("Called {call}.\nbackward() raised: {error}\nLikely cause: {value}.").format(
                call=call, error=error, value=_(WRONG_GRAD_COUNT)
            )
        )
    expect_close(
        grad,
        torch.ones(2),
        call=call,
        mistakes=[
            (
                _(
                    "backward read the input as it is now, [5, -5], not as forward saw it. A tensor kept "
                    "as a ctx attribute (ctx.x = x) is not checked for later in-place changes. Save input "
                    "tensors with ctx.save_for_backward(x) and read them back with ctx.saved_tensors: "
                    "autograd then raises instead of computing a wrong gradient"
                ),
                torch.full((2,), 0.1),
            )
        ],
    )


# --- StraightThroughSign ------------------------------------------------------------------------


def reference_ste(x: torch.Tensor, upstream: torch.Tensor) -> torch.Tensor:
    return torch.where(x.abs() <= 1, upstream, torch.zeros_like(upstream))


STE_NOT_USED = N_(
    "grad_output was not used: backward returned the mask (|x| <= 1) itself. Chain rule: "
    "multiply grad_output by it"
)
STE_CLIPPED = N_(
    "grad_output's values were clipped to [-1, 1]; the clip is on x, not on the gradient: "
    "return grad_output where |x| <= 1 and 0 elsewhere"
)


def ste_mistakes(x: torch.Tensor, upstream: torch.Tensor):
    mask, clipped = (x.abs() <= 1).to(upstream.dtype), upstream.clamp(-1, 1)
    if torch.equal(mask, clipped):  # every |x| <= 1 and every grad_output > 1: either mistake fits
        misuse = [(_("{first}. Or: {second}").format(first=_(STE_NOT_USED), second=_(STE_CLIPPED)), mask)]
    else:
        misuse = [(_(STE_NOT_USED), mask), (_(STE_CLIPPED), clipped)]
    return [
        (
            _(
                "the gradient is 0 everywhere, the true derivative of sign. A straight-through "
                "estimator does not use it: backward returns grad_output itself where |x| <= 1"
            ),
            torch.zeros_like(upstream),
        ),
        (
            _(
                "grad_output was passed through unchanged everywhere: where |x| > 1 the gradient must be 0 "
                "(the estimator treats sign as the identity clipped to [-1, 1]). A mask computed from the "
                "output sign(x) is always <= 1: build it from the saved input x"
            ),
            upstream,
        ),
        *misuse,
    ]


@exercise("StraightThroughSign")
@given(x=batches(-3.0, 3.0))
def test_straight_through_sign_forward_is_sign(x):
    call = _("StraightThroughSign.apply(x) with x = {x}").format(x=show(x))
    y = dg.StraightThroughSign.apply(x.clone().requires_grad_())
    expect_tracked(y, call=call)
    expect_tensor_close(y, torch.sign(x), call=call)


@exercise("StraightThroughSign")
@given(x=batches(-3.0, 3.0), seed=st.integers(0, 2**16))
def test_straight_through_sign_backward_passes_grad_output_where_abs_x_at_most_1(x, seed):
    upstream = upstream_like(x, seed)
    call = _("StraightThroughSign.apply(x) with x = {x}, then backward with grad_output = {upstream}").format(
        x=show(x), upstream=show(upstream)
    )
    t = x.clone().requires_grad_()
    (grad,) = grads_of(dg.StraightThroughSign.apply(t), [t], upstream)
    expected = reference_ste(x, upstream)
    mistakes = [(why, wrong) for why, wrong in ste_mistakes(x, upstream) if not torch.equal(wrong, expected)]
    expect_tensor_close(grad, expected, call=call + "; x.grad", mistakes=mistakes)


@exercise("StraightThroughSign")
def test_straight_through_sign_trains_binary_weights_inside_a_larger_graph():
    # BinaryConnect-style: the forward uses sign(w), the update reaches the real-valued w.
    w = torch.tensor([0.3, -0.7, 1.5, -0.2, -2.0], requires_grad=True)
    target = torch.tensor([-1.0, -1.0, 1.0, -1.0, 1.0])
    scale = torch.tensor([2.0, 3.0, -1.0, 0.5, 4.0])
    call = _("loss = ((StraightThroughSign.apply(w) * scale - target) ** 2).sum(); loss.backward(); w.grad")
    loss = ((dg.StraightThroughSign.apply(w) * scale - target) ** 2).sum()
    (grad,) = grads_of(loss, [w], torch.tensor(1.0))
    upstream = 2 * (torch.sign(w.detach()) * scale - target) * scale  # dloss / dsign(w)
    expected = reference_ste(w.detach(), upstream)
    expect_tensor_close(grad, expected, call=call, mistakes=ste_mistakes(w.detach(), upstream))
