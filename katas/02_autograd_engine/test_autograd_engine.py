"""Kata 02: autograd from scratch. Read a test's name for the behaviour, its body for the call.

The reference is torch autograd in float64: a Value holds a Python float (a double), so the
two agree to round-off. Random graphs come from Hypothesis and print as the program that
built them, shared sub-expressions included. Until `backward` is written, the tests run
their own backward pass over your `propagate` functions; when a graph's gradients are
wrong, they probe each operation alone to name the one at fault.
"""

import math

import autograd_engine as ae
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st

from katas._harness.i18n import N_, _
from katas._harness.testing import expect_close, fail, is_close, show

exercise = pytest.mark.exercise

RTOL, ATOL = 1e-6, 1e-6  # a Value is a double, like the float64 reference


def their_backward(root):
    """The tests' own backward pass: reverse topological order over your propagate functions."""
    order, seen, stack = [], set(), [(root, False)]
    while stack:
        node, expanded = stack.pop()
        if expanded:
            order.append(node)
        elif node not in seen:
            seen.add(node)
            stack.append((node, True))
            stack.extend((child, False) for child in node.children)
    root.grad = 1.0
    for node in reversed(order):
        node.propagate()


def expect_value(got, *, call):
    if not isinstance(got, ae.Value):
        fail(
            _(
                "Called {call}.\nIt returned {got} ({kind}), not a Value.\n"
                "An operation returns a new Value that records its inputs in children and its "
                "backward step in propagate."
            ).format(call=call, got=show(got), kind=type(got).__name__)
        )
    return got


# --- probes: one operation alone ------------------------------------------------------

OLD, UPSTREAM = 0.25, 2.0  # the inputs' grads before the step, and the output's own grad


def probe(symbol, apply, data, local, known=()):
    """Run one operation's propagate alone and return what is wrong with it, or None.

    The inputs' grads already hold OLD (as when a value is used twice) and the output's grad
    is UPSTREAM, so the chain rule adds UPSTREAM * local derivative to each input's grad.
    `known` lists (cause, local derivatives that mistake computes).
    """
    nodes = [ae.Value(d) for d in data]
    out = apply(*nodes)
    if not isinstance(out, ae.Value):
        return _("{symbol} returned {kind}, not a Value").format(symbol=symbol, kind=type(out).__name__)
    for node in nodes:
        node.grad = OLD
    out.grad = UPSTREAM
    out.propagate()
    got = [node.grad for node in nodes]
    expected = [OLD + UPSTREAM * d for d in local]
    if is_close(got, expected, RTOL, ATOL):
        return None
    where = _("{symbol} on {data}").format(symbol=symbol, data=show(list(data)))
    if is_close(got, [OLD] * len(got), RTOL, ATOL):
        return _(
            "{where}: its propagate left the inputs' grads unchanged; set out.propagate to a "
            "function that adds out.grad times the local derivative to each input's grad"
        ).format(where=where)
    if is_close(got, [UPSTREAM * d for d in local], RTOL, ATOL):
        return _(
            "{where}: its propagate assigns the inputs' grads (=) instead of adding to them (+=), "
            "so a value used twice keeps only its last contribution"
        ).format(where=where)
    if is_close(got, [OLD + d for d in local], RTOL, ATOL):
        return _(
            "{where}: its propagate adds the local derivative alone; the chain rule multiplies it "
            "by out.grad, the gradient arriving from above"
        ).format(where=where)
    for cause, wrong in known:
        if is_close(got, [OLD + UPSTREAM * d for d in wrong], RTOL, ATOL):
            return f"{where}: {cause}"
    added = [(g - OLD) / UPSTREAM for g in got]
    return _("{where}: the local derivatives it applied are {added}, where they are {local}").format(
        where=where, added=show(added), local=show(list(local))
    )


def probe_add():
    return [probe("a + b", lambda a, b: a + b, (1.5, -2.0), (1.0, 1.0))]


def probe_mul():
    return [
        probe(
            "a * b",
            lambda a, b: a * b,
            (1.5, -2.0),
            (-2.0, 1.5),
            known=[
                (_("d(a * b)/da is b: each input's derivative is the other input's value"), (1.5, -2.0)),
                (_("d(a * b)/da is b: the other factor is missing from the derivative"), (1.0, 1.0)),
            ],
        )
    ]


def probe_power():
    found = []
    for base, k in ((1.5, 3), (0.8, -1), (2.0, 0.5)):
        found.append(
            probe(
                f"x ** {k}",
                lambda a, k=k: a**k,
                (base,),
                (k * base ** (k - 1),),
                known=[
                    (_("the factor k is missing: d(x**k)/dx is k * x**(k - 1)"), (base ** (k - 1),)),
                    (_("the exponent was not lowered: d(x**k)/dx is k * x**(k - 1)"), (k * base**k,)),
                ],
            )
        )
    return found


def probe_tanh():
    found = []
    for x in (-1.2, 0.5):
        t = math.tanh(x)
        found.append(
            probe(
                "x.tanh()",
                lambda a: a.tanh(),
                (x,),
                (1 - t * t,),
                known=[
                    (_("the derivative used the input: it is 1 - tanh(x)**2, from the output"), (1 - x * x,)),
                    (_("the derivative is 1 - tanh(x)**2: the square is missing"), (1 - t,)),
                ],
            )
        )
    return found


def probe_relu():
    found = []
    for x in (-1.5, 2.0):
        found.append(
            probe(
                "x.relu()",
                lambda a: a.relu(),
                (x,),
                (float(x > 0),),
                known=[
                    (
                        _("the gradient passed where the input was negative: ReLU passes it where x > 0"),
                        (float(x < 0),),
                    ),
                    (_("the gradient passed everywhere: ReLU's is 0 where x <= 0"), (1.0,)),
                ],
            )
        )
    return found


PROBES = {"+": probe_add, "*": probe_mul, "**": probe_power, "tanh": probe_tanh, "relu": probe_relu}


def faulty_operations(symbols):
    """Probe each operation of `symbols`; the causes found, each on a 'Likely cause' line."""
    causes = []
    for symbol in symbols:
        try:
            causes.extend(c for c in PROBES[symbol]() if c)
        except NotImplementedError:
            raise
        except Exception as err:  # a broken operation: the probe names it rather than crash
            causes.append(
                _("{symbol} raised {error} when run alone").format(
                    symbol=symbol, error=f"{type(err).__name__}: {err}"
                )
            )
    return "".join(_("Likely cause: {cause}").format(cause=c) + "\n" for c in causes)


# --- random graphs ----------------------------------------------------------------------

BINARY = {
    "+": lambda a, b: a + b,
    "*": lambda a, b: a * b,
    "-": lambda a, b: a - b,
    "/": lambda a, b: a / b,
}
UNARY = {
    "exp": lambda a: a.exp(),
    "tanh": lambda a: a.tanh(),
    "relu": lambda a: a.relu(),
    "neg": lambda a: -a,
}
# The operations each exercise may use, and the ones a learner wrote (to probe on failure).
VALUE_OPS = ["+", "*", "-", "neg", "c+", "c*", "c-"]
POWER_OPS = [*VALUE_OPS, "**", "/", "c/"]
TANH_OPS = [*VALUE_OPS, "tanh", "exp"]
RELU_OPS = [*VALUE_OPS, "relu"]
ALL_OPS = [*POWER_OPS, "tanh", "exp", "relu"]
WRITTEN = {"-": ["+", "*"], "neg": ["*"], "/": ["*", "**"], "c/": ["*", "**"], "c-": ["+", "*"]}


class Graph:
    """A program of scalar operations over a few inputs: run it on Values or on float64 tensors."""

    def __init__(self, inputs, steps):
        self.inputs, self.steps = inputs, steps  # steps: (text, fn, argument indices, symbols)

    def names(self):
        return [f"x{i}" for i in range(len(self.inputs))] + [f"v{i + 1}" for i in range(len(self.steps))]

    def run(self, leaves):
        nodes = list(leaves)
        for text, fn, args, _symbols in self.steps:
            nodes.append(fn(*(nodes[i] for i in args)))
            if isinstance(leaves[0], ae.Value) and not isinstance(nodes[-1], ae.Value):
                line = text.format(*(self.names()[i] for i in args))
                fail(
                    _(
                        "{line} returned {got} ({kind}), not a Value.\nAn operation returns a new "
                        "Value that records its inputs in children and its backward step in propagate."
                    ).format(line=line, got=show(nodes[-1]), kind=type(nodes[-1]).__name__)
                )
        return nodes

    def values(self):
        return self.run([ae.Value(v) for v in self.inputs])

    def torch_grads(self):
        leaves = [torch.tensor(v, dtype=torch.float64, requires_grad=True) for v in self.inputs]
        out = self.run(leaves)[-1]
        return [g.item() for g in torch.autograd.grad(out, leaves, allow_unused=True, materialize_grads=True)]

    def symbols(self):
        found = []
        for *_rest, symbols in self.steps:
            found += [s for s in symbols if s not in found]
        return found

    def __repr__(self):
        names = self.names()
        lines = [f"{names[i]} = Value({v!r})" for i, v in enumerate(self.inputs)]
        for n, (text, _fn, args, _symbols) in enumerate(self.steps, len(self.inputs)):
            lines.append(f"{names[n]} = " + text.format(*(names[i] for i in args)))
        return "\n    " + "\n    ".join(lines)


ON_FLOATS = {"exp": math.exp, "tanh": math.tanh, "relu": lambda a: max(a, 0.0), "neg": lambda a: -a}


@st.composite
def graphs(draw, ops):
    """A random DAG: each step picks earlier values (so values are shared) and one operation."""
    inputs = draw(st.lists(st.floats(-2, 2).map(lambda v: round(v, 3)), min_size=1, max_size=3))
    values = list(inputs)  # each node's value, to keep every step well defined and moderate
    steps = []
    for _step in range(draw(st.integers(1, 8))):
        op = draw(st.sampled_from(ops))
        i = draw(st.integers(0, len(values) - 1))
        a = values[i]
        sum_instead = ("{} + {}", BINARY["+"], (i, i), ["+"])
        if op in BINARY:
            j = draw(st.integers(0, len(values) - 1))
            ok = op != "/" or abs(values[j]) > 0.25
            step = ("{} " + op + " {}", BINARY[op], (i, j), WRITTEN.get(op, [op])) if ok else sum_instead
            value = BINARY[op](a, values[j]) if ok else a + a
        elif op.startswith("c"):
            c, symbol = draw(st.sampled_from([-1.5, 0.5, 2.0, 3.0])), op[1]
            ok = symbol != "/" or abs(a) > 0.25
            fn = lambda t, c=c, s=symbol: BINARY[s](c, t)  # noqa: E731
            step = (f"{c} {symbol} " + "{}", fn, (i,), WRITTEN.get(op, [symbol])) if ok else sum_instead
            value = fn(a) if ok else a + a
        elif op == "**":
            k = draw(st.sampled_from([2, 3, -1, 0.5]))
            ok = (k > 0 or abs(a) > 0.25) and (k != 0.5 or a > 0.1)
            step = ("{} ** " + str(k), lambda t, k=k: t**k, (i,), ["**"]) if ok else sum_instead
            value = a**k if ok else a + a
        else:
            ok = op != "exp" or a < 3
            text = "-{}" if op == "neg" else "{}." + op + "()"
            step = (text, UNARY[op], (i,), WRITTEN.get(op, [op])) if ok else sum_instead
            value = ON_FLOATS[op](a) if ok else a + a
        if abs(value) > 1e4:
            step, value = sum_instead, a + a
        steps.append(step)
        values.append(value)
    return Graph(inputs, steps)


def expect_graph_grads(graph, nodes, *, call, causes=""):
    """Compare every input's grad with torch autograd's; on a mismatch, list them all."""
    names = graph.names()
    got = [node.grad for node in nodes[: len(graph.inputs)]]
    expected = graph.torch_grads()
    if is_close(got, expected, RTOL, ATOL):
        return
    rows = "\n".join(
        f"  {names[i]}.grad = {show(g)}, torch: {show(e)}"
        for i, (g, e) in enumerate(zip(got, expected, strict=True))
    )
    fail(
        _(
            "Called {call}\nThe inputs' gradients, against torch autograd in float64:\n{rows}\n{causes}"
        ).format(call=call, rows=rows, causes=causes)
    )


def check_operations_on(graph, ops_written):
    """The tests' backward over your operations, compared with torch; probes name the faulty one."""
    nodes = graph.values()
    their_backward(nodes[-1])
    call = _("the tests' own backward pass over your propagate functions, on:{graph}").format(graph=graph)
    names = [s for s in graph.symbols() if s in ops_written]
    got = [node.grad for node in nodes[: len(graph.inputs)]]
    if is_close(got, graph.torch_grads(), RTOL, ATOL):
        return
    expect_graph_grads(graph, nodes, call=call, causes=faulty_operations(names))


# --- Value ------------------------------------------------------------------------------


@exercise("Value")
def test_value_add_and_mul_compute_data_and_record_their_inputs():
    a, b = ae.Value(2.0), ae.Value(-3.0)
    call = _("c = a * b + a with a = Value(2.0), b = Value(-3.0)")
    c = expect_value(a * b + a, call=call)
    expect_close(c.data, -4.0, call=call + "; c.data")
    if not isinstance(c.children, tuple):
        fail(
            _(
                "Called {call}.\nc.children is {children}; keep the inputs in a tuple, in order: "
                "(self, other)."
            ).format(call=call, children=show(c.children))
        )
    product = c.children[0] if c.children else None
    if c.op != "+" or len(c.children) != 2 or c.children[1] is not a or not isinstance(product, ae.Value):
        fail(
            _(
                "Called {call}.\nc.op is {op} and c.children is {children}, where they are '+' and "
                "(the Value of a * b, a).\nRecord the operation's symbol in op and its inputs, the Value "
                "objects themselves, in order, in children."
            ).format(call=call, op=repr(c.op), children=show(c.children))
        )
    if product.op != "*" or len(product.children) != 2 or product.children[0] is not a:
        fail(
            _(
                "Called {call}.\nThe product node has op {op} and children {children}, where they are "
                "'*' and (a, b)."
            ).format(call=call, op=repr(product.op), children=show(product.children))
        )
    if product.children[1] is not b:
        fail(
            _(
                "Called {call}.\nThe product's second child is not b itself: keep the Value, not a copy."
            ).format(call=call)
        )


@exercise("Value")
def test_value_add_and_mul_propagate_by_the_chain_rule():
    for cause in probe_add() + probe_mul():
        if cause:
            fail(
                _(
                    "Ran one operation's propagate alone: its inputs' grads held {old}, its own grad "
                    "was {upstream}.\n{cause}"
                ).format(old=OLD, upstream=UPSTREAM, cause=cause)
            )


@exercise("Value")
def test_value_accumulates_into_a_value_used_twice():
    a = ae.Value(3.0)
    call = _("the tests' backward pass on y = a * a + a with a = Value(3.0)")
    y = expect_value(a * a + a, call=call)
    their_backward(y)
    expect_close(
        a.grad,
        7.0,
        call=call + "; a.grad",
        mistakes=[
            (_("propagate assigns (=) instead of adding (+=): a keeps only its last contribution"), 3.0)
        ],
        note=_("d(a*a + a)/da = 2a + 1; every path from y to a adds its share to a.grad."),
    )


@exercise("Value")
def test_value_works_with_plain_numbers_on_either_side():
    cases = [
        ("v + 1", lambda v: v + 1, 1.0),
        ("1 + v", lambda v: 1 + v, 1.0),
        ("v * 2", lambda v: v * 2, 2.0),
        ("2 * v", lambda v: 2 * v, 2.0),
        ("v - 3", lambda v: v - 3, 1.0),
        ("1 - v", lambda v: 1 - v, -1.0),
        ("-v", lambda v: -v, -1.0),
    ]
    for text, fn, slope in cases:
        v = ae.Value(0.5)
        call = _("{expression} with v = Value(0.5)").format(expression=text)
        try:
            out, error = fn(v), None
        except (TypeError, AttributeError) as err:
            out, error = None, f"{type(err).__name__}: {err}"
        if error is not None:
            fail(
                _(
                    "Called {call}.\nIt raised {error}.\nLikely cause: a plain number reached the "
                    "operation; turn it into a Value first:\n"
                    "other = other if isinstance(other, Value) else Value(other)"
                ).format(call=call, error=error)
            )
        out = expect_value(out, call=call)
        expect_close(out.data, fn(0.5), call=call + "; .data")
        their_backward(out)
        expect_close(v.grad, slope, call=call + _("; then the tests' backward pass, v.grad"))


@exercise("Value")
@given(graph=graphs(VALUE_OPS))
def test_value_gradients_match_torch_on_random_graphs(graph):
    check_operations_on(graph, ["+", "*"])


# --- power ------------------------------------------------------------------------------


@exercise("power")
def test_power_raises_to_a_number_and_applies_k_x_to_the_k_minus_1():
    x = ae.Value(1.5)
    call = "power(Value(1.5), 3)"
    y = expect_value(ae.power(x, 3), call=call)
    expect_close(y.data, 3.375, call=call + "; .data", mistakes=[(_("x * 3 is not x ** 3"), 4.5)])
    if len(y.children) != 1 or y.children[0] is not x:
        fail(
            _("Called {call}.\nIts children are {children}; the only child is x itself.").format(
                call=call, children=show(y.children)
            )
        )
    for cause in probe_power():
        if cause:
            fail(
                _(
                    "Ran one operation's propagate alone: its input's grad held {old}, its own grad "
                    "was {upstream}.\n{cause}"
                ).format(old=OLD, upstream=UPSTREAM, cause=cause)
            )


@exercise("power")
def test_power_gives_23_for_the_article_cubic_at_2():
    a = ae.Value(2.0)
    call = _("the tests' backward pass on b = a**3 + 4*a**2 - 5*a + 2 with a = Value(2.0)")
    b = expect_value(a**3 + 4 * a**2 - 5 * a + 2, call=call)
    expect_close(b.data, 16.0, call=call + "; b.data")
    their_backward(b)
    expect_close(a.grad, 23.0, call=call + "; a.grad", note=faulty_operations(["**"]))


@exercise("power")
@given(graph=graphs(POWER_OPS))
def test_power_and_division_match_torch_on_random_graphs(graph):
    check_operations_on(graph, ["+", "*", "**"])


# --- tanh -------------------------------------------------------------------------------


@exercise("tanh")
def test_tanh_computes_tanh_and_its_derivative_from_the_output():
    for x in (-1.2, 0.0, 0.5, 2.0):
        call = f"tanh(Value({x}))"
        y = expect_value(ae.tanh(ae.Value(x)), call=call)
        expect_close(y.data, math.tanh(x), call=call + "; .data")
    for cause in probe_tanh():
        if cause:
            fail(
                _(
                    "Ran one operation's propagate alone: its input's grad held {old}, its own grad "
                    "was {upstream}.\n{cause}"
                ).format(old=OLD, upstream=UPSTREAM, cause=cause)
            )


@exercise("tanh")
@given(graph=graphs(TANH_OPS))
def test_tanh_matches_torch_on_random_graphs(graph):
    check_operations_on(graph, ["+", "*", "tanh"])


# --- relu -------------------------------------------------------------------------------


RELU_MISTAKES = {  # by the sign of the input
    -1: N_("the gradient passed where the input was negative: ReLU passes it where x > 0"),
    0: N_("at exactly 0 PyTorch's ReLU passes no gradient: test x > 0, not x >= 0"),
    1: N_("the gradient was blocked where the input was positive: ReLU passes it where x > 0"),
}


@exercise("relu")
def test_relu_passes_the_gradient_only_where_the_input_was_positive():
    for x, slope in ((-1.5, 0.0), (0.0, 0.0), (2.0, 1.0)):
        v = ae.Value(x)
        call = f"relu(Value({x}))"
        y = expect_value(ae.relu(v), call=call)
        expect_close(y.data, max(x, 0.0), call=call + "; .data")
        their_backward(y)
        expect_close(
            v.grad,
            slope,
            call=call + _("; then the tests' backward pass, the input's grad"),
            mistakes=[(_(RELU_MISTAKES[(x > 0) - (x < 0)]), 1.0 - slope)],
        )


@exercise("relu")
@given(graph=graphs(RELU_OPS))
def test_relu_matches_torch_on_random_graphs(graph):
    check_operations_on(graph, ["+", "*", "relu"])


# --- backward ---------------------------------------------------------------------------


def article_quadratic():
    x = ae.Value(1.0)
    return [x], x**2 + 3 * x + 2


def article_cubic():
    a = ae.Value(2.0)
    return [a], a**3 + 4 * a**2 - 5 * a + 2


@exercise("backward")
def test_backward_reproduces_the_article_examples():
    calls = [
        (article_quadratic, _("backward(y) with y = x**2 + 3*x + 2, x = Value(1.0)"), ["y", "x"], 5.0),
        (article_cubic, _("backward(b) with b = a**3 + 4*a**2 - 5*a + 2, a = Value(2.0)"), ["b", "a"], 23.0),
    ]
    for build, call, names, slope in calls:
        inputs, root = build()
        ae.backward(root)
        got, expected = [root.grad, inputs[0].grad], [1.0, slope]
        if not is_close(got, expected, RTOL, ATOL):
            fail(
                _(
                    "Called {call}.\nAfterwards {root}.grad = {got_root} and {leaf}.grad = {got_leaf}, where "
                    "they are {root_grad} (d {root} / d {root}) and {slope}.\n{cause}"
                ).format(
                    call=call,
                    root=names[0],
                    leaf=names[1],
                    got_root=show(got[0]),
                    got_leaf=show(got[1]),
                    root_grad=1.0,
                    slope=slope,
                    cause=wrong_walk_cause(build, got, expected),
                )
            )


@exercise("backward")
def test_backward_runs_each_propagate_once_after_every_user_of_the_node():
    x = ae.Value(0.8)
    h = x * x
    p = h * 3.0
    q = h.exp()
    out = p + q
    nodes = {"out": out, "p": p, "q": q, "h": h}
    setup = "x = Value(0.8); h = x * x; p = h * 3.0; q = h.exp(); out = p + q"
    calls = []
    for name, node in nodes.items():

        def spy(name=name, original=node.propagate):
            calls.append(name)
            original()

        node.propagate = spy
    ae.backward(out)
    call = _("backward(out) after {setup}").format(setup=setup)
    for name in nodes:
        count = calls.count(name)
        if count != 1:
            cause = (
                _(
                    "Likely cause: without a record of visited nodes, h is reached once per path "
                    "(out -> p -> h and out -> q -> h), and each visit passes its partial gradient on "
                    "again. Visit each node once, in reverse topological order."
                )
                if count > 1
                else _("backward must call propagate on every node that root was computed from.")
            )
            fail(
                _(
                    "Called {call}.\n{name}.propagate ran {count} time(s), in the order {calls}.\n{cause}"
                ).format(call=call, name=name, count=count, calls=calls, cause=cause)
            )
    for user, used in (("out", "p"), ("out", "q"), ("p", "h"), ("q", "h")):
        if calls.index(user) > calls.index(used):
            fail(
                _(
                    "Called {call}.\nThe propagate calls ran in the order {calls}: {used}.propagate ran "
                    "before {user}'s, yet {user} uses {used}, so {used}.grad was not complete yet.\n"
                    "Likely cause: backward is not in topological order: a node must wait for every "
                    "node that uses it. Sort the graph so that children come before parents, then "
                    "walk that order in reverse."
                ).format(call=call, calls=calls, used=used, user=user)
            )


# Wrong ways to walk the graph, run on a second copy to recognise a learner's result.


def recursive_without_order(root):
    root.grad = 1.0

    def go(node):
        node.propagate()
        for child in node.children:
            go(child)

    go(root)


def first_visit_order(root):
    root.grad = 1.0
    seen = set()

    def go(node):
        if node not in seen:
            seen.add(node)
            node.propagate()
            for child in node.children:
                go(child)

    go(root)


def without_seed(root):
    order, seen = [], set()

    def go(node):
        if node not in seen:
            seen.add(node)
            for child in node.children:
                go(child)
            order.append(node)

    go(root)
    for node in reversed(order):
        node.propagate()


def leaves_first(root):
    order, seen = [], set()

    def go(node):
        if node not in seen:
            seen.add(node)
            for child in node.children:
                go(child)
            order.append(node)

    go(root)
    root.grad = 1.0
    for node in order:
        node.propagate()


WRONG_WALKS = [
    (
        recursive_without_order,
        N_(
            "backward is not in topological order: a shared node passed its gradient on once per path, "
            "before it was complete. Visit each node once, after every node that uses it."
        ),
    ),
    (
        first_visit_order,
        N_(
            "backward is not in topological order: a shared node passed its gradient on at its first "
            "visit, before every node that uses it had added its share. Sort the graph topologically "
            "and walk it in reverse."
        ),
    ),
    (leaves_first, N_("the topological order was walked leaves first: reverse it, so the root goes first.")),
    (without_seed, N_("root.grad was never set to 1.0 (d root / d root), so every grad stays 0.")),
]


def wrong_walk_cause(build, got, expected):
    """Name the walk when `got` ([root.grad, *inputs' grads]) is what a known wrong one gives.

    `build()` returns (inputs, root): a fresh copy of the graph made of the learner's Values.
    """
    for walk, cause in WRONG_WALKS:
        inputs, root = build()
        walk(root)
        wrong = [root.grad] + [v.grad for v in inputs]
        if not is_close(wrong, expected, RTOL, ATOL) and is_close(got, wrong, RTOL, ATOL):
            return _("Likely cause: {cause}").format(cause=_(cause)) + "\n"
    return ""


@exercise("backward")
@given(graph=graphs(ALL_OPS))
def test_backward_matches_torch_on_random_graphs(graph):
    nodes = graph.values()
    ae.backward(nodes[-1])
    got = [node.grad for node in nodes[: len(graph.inputs)]]
    expected = graph.torch_grads()
    if is_close(got, expected, RTOL, ATOL):
        return
    causes = faulty_operations(s for s in graph.symbols() if s in PROBES)
    if not causes:

        def build():
            copy = graph.values()
            return copy[: len(graph.inputs)], copy[-1]

        causes = wrong_walk_cause(build, [nodes[-1].grad, *got], [1.0, *expected])
    call = _("backward(v{last}) after:{graph}").format(last=len(graph.steps), graph=graph)
    expect_graph_grads(graph, nodes, call=call, causes=causes)


# --- zero_grad --------------------------------------------------------------------------


LEAF, INNER, ROOT = N_("a leaf"), N_("inner"), N_("the root")


@exercise("zero_grad")
def test_zero_grad_clears_every_node_and_leaves_the_data_alone():
    x, y = ae.Value(1.5), ae.Value(-0.5)
    h = x * y
    s = h * h
    out = s + x
    nodes = {"x": x, "y": y, "h": h, "s": s, "out": out}
    kinds = {"x": LEAF, "y": LEAF, "h": INNER, "s": INNER, "out": ROOT}
    data = {name: node.data for name, node in nodes.items()}
    ae.backward(out)
    ae.zero_grad(out)
    call = _("zero_grad(out) after backward(out), with h = x * y; s = h * h; out = s + x")
    kept = [
        f"{name}.grad = {show(node.grad)} ({_(kinds[name])})"
        for name, node in nodes.items()
        if node.grad != 0.0
    ]
    if kept:
        inner = x.grad == 0.0 and y.grad == 0.0
        cause = (
            _("set grad to 0.0, not None: backward adds to it with +=.")
            if any(node.grad is None for node in nodes.values())
            else _(
                "only the leaves were zeroed. PyTorch's optimizer.zero_grad() zeroes the parameters, "
                "its leaves, because inner tensors keep no .grad there; here every node keeps one, and "
                "the inner nodes' stale grads would flow into a second backward pass."
            )
            if inner
            else _("only the root was zeroed: visit every node reachable through children.")
            if out.grad == 0.0
            else _("visit every node of the graph: the root, the inner nodes and the leaves.")
        )
        fail(
            _("Called {call}.\nThese nodes still hold a gradient: {kept}.\nLikely cause: {cause}").format(
                call=call, kept="; ".join(kept), cause=cause
            )
        )
    changed = [name for name, node in nodes.items() if node.data != data[name]]
    if changed:
        fail(
            _("Called {call}.\nThe data of {changed} changed: zero_grad touches grad only.").format(
                call=call, changed=", ".join(changed)
            )
        )


@exercise("zero_grad")
@given(graph=graphs(ALL_OPS))
def test_zero_grad_then_backward_again_matches_torch(graph):
    nodes = graph.values()
    ae.backward(nodes[-1])
    ae.zero_grad(nodes[-1])
    names = graph.names()
    kept = [f"{names[i]} = {show(node.grad)}" for i, node in enumerate(nodes) if node.grad != 0.0]
    if kept:
        fail(
            _("Called zero_grad(v{last}) after backward(v{last}) on:{graph}\nStill not zero: {kept}.").format(
                last=len(graph.steps), graph=graph, kept=", ".join(kept)
            )
        )
    ae.backward(nodes[-1])
    expect_graph_grads(
        graph,
        nodes,
        call=_("backward, zero_grad, then backward again, on:{graph}").format(graph=graph),
        causes=_("A second pass after zero_grad must give what one pass gives."),
    )


# --- simplenet_grads --------------------------------------------------------------------

KEYS = ("fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias")


def simplenet_case(seed, n):
    gen = torch.Generator().manual_seed(seed)
    shapes = {"fc1.weight": (4, 2), "fc1.bias": (4,), "fc2.weight": (1, 4), "fc2.bias": (1,)}
    params = {key: torch.randn(shape, generator=gen) for key, shape in shapes.items()}
    return params, torch.randn(n, 2, generator=gen), torch.randn(n, 1, generator=gen)


def autograd_grads(params, x, y):
    """The reference: the same network and loss through torch autograd, in float64."""
    p = {k: v.detach().double().requires_grad_() for k, v in params.items()}
    hidden = F.relu(F.linear(x.double(), p["fc1.weight"], p["fc1.bias"]))
    loss = F.mse_loss(F.linear(hidden, p["fc2.weight"], p["fc2.bias"]), y.double())
    return dict(zip(KEYS, torch.autograd.grad(loss, [p[k] for k in KEYS]), strict=True))


def manual_variant(params, x, y, scale=1.0, mask="positive", fc2_input="relu"):
    """SimpleNet's gradients by hand in float64, with one known mistake switched on."""
    w1, b1, w2, b2 = (params[k].double() for k in KEYS)
    x, y = x.double(), y.double()
    h = x @ w1.T + b1
    a = h.relu()
    d_out = scale * 2 * (a @ w2.T + b2 - y) / y.numel()
    chosen = {"positive": h > 0, "negative": h < 0, "none": torch.ones_like(h, dtype=torch.bool)}[mask]
    d_h = (d_out @ w2) * chosen
    return {
        "fc1.weight": d_h.T @ x,
        "fc1.bias": d_h.sum(0),
        "fc2.weight": d_out.T @ (a if fc2_input == "relu" else h),
        "fc2.bias": d_out.sum(0),
    }


def simplenet_mistakes(params, x, y):
    n = y.numel()
    found = [
        (_("the factor 2 is missing: the derivative of (out - y)**2 is 2 (out - y)"), {"scale": 0.5}),
        (
            _("the sign is flipped: the derivative of (out - y)**2 is +2 (out - y), not 2 (y - out)"),
            {"scale": -1.0},
        ),
        (
            _("the ReLU passed the gradient where its input h was negative; it passes it where h > 0"),
            {"mask": "negative"},
        ),
        (
            _("the ReLU's derivative is missing: multiply by (h > 0) on the way back through it"),
            {"mask": "none"},
        ),
        (_("fc2.weight's gradient used h, the ReLU's input; fc2 sees relu(h)"), {"fc2_input": "h"}),
    ]
    if n > 1:
        found.insert(
            1,
            (
                _(
                    "the mean's 1/N is missing: MSELoss averages over the N outputs, "
                    "so d loss/d out is 2 (out - y) / N"
                ),
                {"scale": n},
            ),
        )
    return [(cause, manual_variant(params, x, y, **switch)) for cause, switch in found]


AUTOGRAD_USED = N_(
    "Called {call}.\nAutograd recorded a graph during the call ({detail}).\n"
    "Likely cause: the gradients came from autograd (requires_grad_(), backward(), torch.autograd.grad "
    "or torch.func). This exercise is the chain rule by hand: compute each layer's gradient from the "
    "forward pass's tensors with matrix products."
)


def call_simplenet_grads(params, x, y, call):
    """Run the learner's function with a hook that notices any graph autograd records."""
    recorded = []

    def pack(tensor):
        recorded.append(tuple(tensor.shape))
        return tensor

    try:
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
            grads = ae.simplenet_grads(params, x, y)
    except RuntimeError as err:
        if "torch.func" in str(err):  # torch.func refuses to run under saved tensor hooks
            fail(_(AUTOGRAD_USED).format(call=call, detail="torch.func"))
        raise
    if recorded:
        detail = _("it saved tensors of shapes {shapes} for a backward pass").format(shapes=recorded[:4])
        fail(_(AUTOGRAD_USED).format(call=call, detail=detail))
    return grads


def expect_simplenet_grads(grads, params, x, y, *, call):
    if not isinstance(grads, dict) or sorted(grads) != sorted(KEYS):
        fail(
            _("Called {call}.\nIt returned {got}; return a dict with the keys {keys}.").format(
                call=call, got=show(grads) if not isinstance(grads, dict) else sorted(grads), keys=list(KEYS)
            )
        )
    for key in KEYS:
        got, shape = grads[key], tuple(params[key].shape)
        if not isinstance(got, torch.Tensor):
            fail(
                _("Called {call}.\n{key} is {got} ({kind}); each gradient is a tensor.").format(
                    call=call, key=key, got=show(got), kind=type(got).__name__
                )
            )
        if tuple(got.shape) != shape:
            if key.endswith("bias") and tuple(got.shape) == (x.shape[0], *shape):
                cause = _(
                    "a bias is added to every row of the batch, so its gradient sums over the batch: .sum(0)"
                )
            elif tuple(got.shape) == shape[::-1]:
                cause = _("the product is transposed: d_h.T @ x is (4, 2), like fc1.weight")
            else:
                cause = _("a gradient has the shape of its parameter")
            fail(
                _(
                    "Called {call}.\n{key}'s gradient has shape {got}, but the parameter's is {shape}.\n"
                    "Likely cause: {cause}"
                ).format(call=call, key=key, got=tuple(got.shape), shape=shape, cause=cause)
            )
    expected = {k: v.float() for k, v in autograd_grads(params, x, y).items()}
    rows, wrong = [], False
    for key in KEYS:
        got = grads[key].detach().to(torch.float64)
        diff = (got - expected[key].double()).abs().max().item()
        if torch.equal(grads[key].to(expected[key].dtype), expected[key]):
            status = _("exact")
        elif is_close(got, expected[key], 1e-4, 1e-6):
            status = _("close (max difference {diff:.2g})").format(diff=diff)
        else:
            status, wrong = _("differs: max difference {diff:.4g}").format(diff=diff), True
        rows.append(f"  {key:<11} {status}")
    if not wrong:
        return
    cause = ""
    for text, variant in simplenet_mistakes(params, x, y):
        if all(is_close(grads[k].detach(), variant[k], 1e-4, 1e-6) for k in KEYS):
            cause = _("Likely cause: {cause}").format(cause=text)
            break
    fail(
        _("Called {call}.\nParameter by parameter, against torch autograd:\n{rows}\n{cause}").format(
            call=call, rows="\n".join(rows), cause=cause
        )
    )


@exercise("simplenet_grads")
def test_simplenet_grads_match_autograd_parameter_by_parameter():
    params, x, y = simplenet_case(seed=0, n=8)
    call = _("simplenet_grads(params, x, y) with random params, x of shape (8, 2), y of shape (8, 1)")
    grads = call_simplenet_grads(params, x, y, call)
    expect_simplenet_grads(grads, params, x, y, call=call)


@exercise("simplenet_grads")
@given(seed=st.integers(0, 2**16), n=st.integers(1, 16))
def test_simplenet_grads_match_autograd_for_random_batches(seed, n):
    params, x, y = simplenet_case(seed, n)
    call = _("simplenet_grads(params, x, y) with x of shape {shape}, params from seed {seed}").format(
        shape=(n, 2), seed=seed
    )
    grads = call_simplenet_grads(params, x, y, call)
    expect_simplenet_grads(grads, params, x, y, call=call)


@exercise("simplenet_grads")
def test_simplenet_grads_leave_the_inputs_alone_and_return_plain_tensors():
    params, x, y = simplenet_case(seed=1, n=5)
    before = {k: v.clone() for k, v in params.items()}
    call = _("simplenet_grads(params, x, y) with x of shape (5, 2)")
    grads = call_simplenet_grads(params, x, y, call)
    touched = [k for k in KEYS if params[k].requires_grad or not torch.equal(params[k], before[k])]
    if touched or x.requires_grad or y.requires_grad:
        fail(
            _(
                "Called {call}.\nAfterwards the caller's tensors changed: {names}. "
                "Read them, never modify them."
            ).format(call=call, names=touched + [n for n, t in (("x", x), ("y", y)) if t.requires_grad])
        )
    tracked = [k for k in KEYS if isinstance(grads.get(k), torch.Tensor) and grads[k].requires_grad]
    if tracked:
        fail(_(AUTOGRAD_USED).format(call=call, detail=_("{keys} require grad").format(keys=tracked)))
