"""Kata 04: nn.Module. Read a test's name for the behaviour, its body for the call.

Most tests build your module, then check what PyTorch itself sees: named_parameters(),
state_dict(), buffers, the training flag, an optimizer's updates. Weights and inputs are
random (seeded), so only the real mechanism passes.
"""

import copy
import math
from itertools import pairwise

import nn_modules as nm
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

from katas._harness.i18n import N_, _
from katas._harness.testing import expect_tensor_close, fail, show

exercise = pytest.mark.exercise

seeds = st.integers(0, 2**16)
batch_sizes = st.integers(1, 8)


class ArticleNet(nn.Module):
    """The tests' own copy of the article's SimpleNet, so exercises after the first stand alone."""

    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(2, 4)
        self.relu = nn.ReLU()
        self.fc2 = nn.Linear(4, 1)

    def forward(self, x):
        return self.fc2(self.relu(self.fc1(x)))


def article_net(seed: int) -> ArticleNet:
    torch.manual_seed(seed)
    return ArticleNet()


def param_shapes(module: nn.Module) -> list[tuple[str, tuple[int, ...]]]:
    return [(name, tuple(p.shape)) for name, p in module.named_parameters()]


def randomize_(module: nn.Module, gen: torch.Generator) -> None:
    """Overwrite every parameter with N(0, 1) values from `gen`."""
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=gen))


def sgd_step(params: list[nn.Parameter], lr: float = 0.1, weight_decay: float = 0.0) -> None:
    """One update of torch.optim.SGD: p -= lr * (p.grad + weight_decay * p), skipping p.grad None.

    Written out because torch.optim's first use imports torch._dynamo, which would double the
    run time of this kata. Like an optimizer, it only sees the parameters it was handed.
    """
    with torch.no_grad():
        for p in params:
            if p.grad is not None:
                p.sub_(lr * (p.grad + weight_decay * p))


def construct(cls, *args, call: str, **kwargs):
    """cls(*args, **kwargs), naming the forgotten super().__init__() when that is what failed."""
    # fail() outside the except block: pytest would show the chained traceback too.
    try:
        return cls(*args, **kwargs)
    except AttributeError as err:
        if "Module.__init__()" not in str(err):  # "cannot assign ... before Module.__init__() call"
            raise
        error = err
    fail(
        _(
            "Called {call}.\nIt raised AttributeError: {error}.\n"
            "Likely cause: __init__ must call super().__init__() before it assigns any layer or "
            "parameter; nn.Module's own __init__ creates the registries that record them."
        ).format(call=call, error=error)
    )


def plain_attributes(module: nn.Module, types: tuple[type, ...]) -> list[str]:
    """Names of instance attributes nn.Module does not track (a list of layers, a plain tensor)."""
    return [
        name for name, value in vars(module).items() if not name.startswith("_") and isinstance(value, types)
    ]


def builds_layers_in_forward(module: nn.Module, in_features: int) -> bool:
    """True when two calls on the same input differ: forward creates a layer with new random weights."""
    x = torch.randn(3, in_features, generator=torch.Generator().manual_seed(0))
    try:
        with torch.no_grad():
            first, second = module(x), module(x)
        return isinstance(first, torch.Tensor) and not torch.equal(first, second)
    except Exception:  # noqa: BLE001 - a forward that fails says nothing about where layers are made
        return False


LAYER_IN_FORWARD = N_(
    "a layer created in forward() is never registered: it gets new random weights on every call "
    "(two calls on the same x gave different outputs), and parameters(), state_dict() and every "
    "optimizer miss it. Create each layer once in __init__ and only use it in forward."
)


# --- SimpleNet ---------------------------------------------------------------------------

SIMPLENET_PARAMS = [("fc1.weight", (4, 2)), ("fc1.bias", (4,)), ("fc2.weight", (1, 4)), ("fc2.bias", (1,))]


def build_simplenet() -> nn.Module:
    net = construct(nm.SimpleNet, call="SimpleNet()")
    got = param_shapes(net)
    if sorted(got) != sorted(SIMPLENET_PARAMS):
        cause = (
            _(
                "no parameter is registered. Assign each layer to an attribute of self in __init__ "
                "(self.fc1 = nn.Linear(2, 4)); nn.Module does not see layers kept in a plain list or "
                "created inside forward."
            )
            if not got
            else _(
                "the layers are not the article's: self.fc1 = nn.Linear(2, 4), self.relu = nn.ReLU(), "
                "self.fc2 = nn.Linear(4, 1)."
            )
        )
        if builds_layers_in_forward(net, 2):
            cause = (
                _("no parameter is registered: {cause}").format(cause=_(LAYER_IN_FORWARD))
                if not got
                else _(LAYER_IN_FORWARD)
            )
        fail(
            _(
                "Called {call}.\nIt listed {got},\nbut the tests expected {expected}.\nLikely cause: {cause}"
            ).format(call="SimpleNet().named_parameters()", got=got, expected=SIMPLENET_PARAMS, cause=cause)
        )
    return net


@exercise("SimpleNet")
def test_simplenet_registers_the_articles_layers():
    net = build_simplenet()
    children = [(name, type(m).__name__) for name, m in net.named_children()]
    expected = [("fc1", "Linear"), ("relu", "ReLU"), ("fc2", "Linear")]
    if sorted(children) != sorted(expected):
        fail(
            _(
                "Called {call}.\nIt listed {got},\nbut the tests expected {expected}.\n"
                "Register the ReLU too (self.relu = nn.ReLU()): it has no parameters, but as a child "
                "module it shows in print(net) and in the structure."
            ).format(call="SimpleNet().named_children()", got=children, expected=expected)
        )


@exercise("SimpleNet")
@given(seed=seeds, batch=batch_sizes)
def test_simplenet_forward_is_fc1_relu_fc2(seed, batch):
    net = build_simplenet()
    gen = torch.Generator().manual_seed(seed)
    randomize_(net, gen)
    x = torch.randn(batch, 2, generator=gen)
    w1, b1, w2, b2 = (net.get_parameter(name).detach() for name, _shape in SIMPLENET_PARAMS)
    hidden = x @ w1.T + b1
    call = _("net(x) for x of shape ({batch}, 2), weights from N(0, 1) (seed {seed})").format(
        batch=batch, seed=seed
    )
    expect_tensor_close(
        net(x),
        torch.relu(hidden) @ w2.T + b2,
        call=call,
        mistakes=[
            (_("forward skips the ReLU between fc1 and fc2"), hidden @ w2.T + b2),
            (
                _("the ReLU comes after fc2; the article applies it between fc1 and fc2"),
                torch.relu(hidden @ w2.T + b2),
            ),
        ],
    )


@exercise("SimpleNet")
def test_simplenet_backward_reaches_every_parameter():
    net = build_simplenet()
    torch.manual_seed(0)
    net(torch.randn(16, 2)).pow(2).mean().backward()
    missing = [name for name, p in net.named_parameters() if p.grad is None]
    if missing:
        fail(
            _(
                "Called {call} on a fresh SimpleNet().\n"
                "These parameters got no gradient: {missing}.\n"
                "Likely cause: forward does not use the registered layers (self.fc1, self.fc2), or "
                "cuts the graph (.detach(), .data, torch.no_grad())."
            ).format(call="net(x).pow(2).mean().backward()", missing=missing)
        )


# --- to_sequential ------------------------------------------------------------------------


def renamed(state: dict) -> dict:
    return {k.replace("fc1.", "0.").replace("fc2.", "2."): v for k, v in state.items()}


@exercise("to_sequential")
def test_to_sequential_is_linear_relu_linear():
    twin = nm.to_sequential(article_net(0))
    call = "to_sequential(net)"
    if not isinstance(twin, nn.Sequential):
        fail(
            _("Called {call}.\nIt returned {type}; an nn.Sequential is asked for.").format(
                call=call, type=type(twin).__name__
            )
        )
    layers = [repr(m) for m in twin]
    expected = [
        "Linear(in_features=2, out_features=4, bias=True)",
        "ReLU()",
        "Linear(in_features=4, out_features=1, bias=True)",
    ]
    if layers != expected:
        cause = ""
        if sorted(layers) == sorted(expected):
            cause = "\n" + _(
                "Likely cause: the layers are in the wrong order; the twin must compute what "
                "SimpleNet.forward computes: fc1, then ReLU, then fc2."
            )
        elif layers == [*expected, "ReLU()"]:
            cause = "\n" + _(
                "Likely cause: a ReLU after the last layer. SimpleNet's output comes straight from fc2; "
                "a final ReLU turns every negative output into 0. End the Sequential with the Linear."
            )
        fail(
            _("Called {call}.\nIts layers are {got},\nbut the tests expected {expected}.").format(
                call=call, got=layers, expected=expected
            )
            + cause
        )
    keys = list(twin.state_dict())
    if keys != ["0.weight", "0.bias", "2.weight", "2.bias"]:
        fail(
            _(
                "Called {call}.\nIts state_dict keys are {keys}; expected 0.weight, 0.bias, 2.weight, 2.bias."
            ).format(call=call, keys=keys)
        )


@exercise("to_sequential")
@given(seed=seeds, batch=batch_sizes)
def test_to_sequential_gives_the_same_outputs(seed, batch):
    net = article_net(seed)
    twin = nm.to_sequential(net)
    call = _("to_sequential(net) for a SimpleNet with random weights (seed {seed})").format(seed=seed)
    for key, value in renamed(net.state_dict()).items():
        got = twin.state_dict().get(key)
        if got is None or got.shape != value.shape:
            fail(
                _(
                    "Called {call}.\nThe twin has {got} under {key}, where net has a tensor of shape "
                    "{shape}: its layers must be Linear(2, 4), ReLU(), Linear(4, 1)."
                ).format(call=call, got=show(got), key=key, shape=tuple(value.shape))
            )
        if not torch.equal(got, value):
            fail(
                _(
                    "Called {call}.\nThe twin's {key} is {got}, but net's is {expected}.\n"
                    "Likely cause: the weights were not copied: a new nn.Linear starts from its own random "
                    "values. Copy net's into it, e.g. twin[0].load_state_dict(net.fc1.state_dict())."
                ).format(call=call, key=key, got=show(got), expected=show(value))
            )
    x = torch.randn(batch, 2, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        expect_tensor_close(
            twin(x),
            net(x),
            call=_("twin(x) with twin = {call}, x of shape ({batch}, 2)").format(call=call, batch=batch),
        )


@exercise("to_sequential")
def test_to_sequential_copies_instead_of_sharing():
    net = article_net(1)
    before = copy.deepcopy(net.state_dict())
    twin = nm.to_sequential(net)
    with torch.no_grad():
        for p in twin.parameters():
            p.add_(1.0)
    changed = [k for k, v in net.state_dict().items() if not torch.equal(v, before[k])]
    if changed:
        fail(
            _(
                "Called {call}, then added 1 to every parameter of the twin.\n"
                "net changed too: {changed}.\nLikely cause: the twin shares net's layers or tensors "
                "(nn.Sequential(net.fc1, ...) reuses the same objects); build new layers and copy "
                "the values with load_state_dict()."
            ).format(call="to_sequential(net)", changed=changed)
        )


# --- LinearFromScratch -------------------------------------------------------------------


def build_linear(in_features: int, out_features: int, bias: bool = True) -> nn.Module:
    call = f"LinearFromScratch({in_features}, {out_features}, bias={bias})"
    layer = construct(nm.LinearFromScratch, in_features, out_features, bias=bias, call=call)
    expected = [("weight", (out_features, in_features))] + ([("bias", (out_features,))] if bias else [])
    got = param_shapes(layer)
    if sorted(got) == sorted(expected):
        return layer
    cause = ""
    plain = plain_attributes(layer, (torch.Tensor,))
    if plain:
        cause = _(
            "self.{name} is a plain tensor, so the module does not register it; wrap it in "
            "nn.Parameter(...) (requires_grad=True alone is not enough)."
        ).format(name=plain[0])
    elif ("weight", (in_features, out_features)) in got and in_features != out_features:
        cause = _("the weight is (in_features, out_features); nn.Linear stores (out_features, in_features).")
    elif not bias and any(name == "bias" for name, _shape in got):
        cause = _("with bias=False there is no bias parameter: set self.bias = None.")
    fail(
        _("Called {call}.\nIt listed {got}, but the tests expected {expected}.").format(
            call=f"{call}.named_parameters()", got=got, expected=expected
        )
        + ("\n" + _("Likely cause: {cause}").format(cause=cause) if cause else "")
    )


def run_linear(layer: nn.Module, x: torch.Tensor, call: str) -> torch.Tensor:
    try:
        return layer(x)
    except NotImplementedError:  # a subclass of RuntimeError: the untouched stub's TODO
        raise
    except RuntimeError as err:
        error = err
    fail(
        _(
            "Called {call}.\nIt raised RuntimeError: {error}\n"
            "Likely cause: the weight is (out_features, in_features): compute x @ self.weight.T. "
            "Use @ (matmul), not torch.mm: nn.Linear accepts any number of leading dimensions."
        ).format(call=call, error=error)
    )


@exercise("LinearFromScratch")
def test_linear_from_scratch_registers_weight_and_bias():
    build_linear(3, 5)
    layer = build_linear(4, 2, bias=False)
    if getattr(layer, "bias", "missing") is not None:
        fail(
            _("Called {call}.\nIts .bias should be None, like nn.Linear's.").format(
                call="LinearFromScratch(4, 2, bias=False)"
            )
        )


@exercise("LinearFromScratch")
@given(
    seed=seeds,
    in_features=st.integers(1, 5),
    out_features=st.integers(1, 5),
    leading=st.lists(st.integers(1, 4), min_size=1, max_size=2).map(tuple),
    bias=st.booleans(),
)
def test_linear_from_scratch_matches_nn_linear(seed, in_features, out_features, leading, bias):
    torch.manual_seed(seed)
    reference = nn.Linear(in_features, out_features, bias=bias)
    layer = build_linear(in_features, out_features, bias)
    with torch.no_grad():
        for name, q in reference.named_parameters():
            layer.get_parameter(name).copy_(q)
    x = torch.randn(*leading, in_features)
    ours, theirs = x.clone().requires_grad_(), x.clone().requires_grad_()
    call = _(
        "LinearFromScratch({in_features}, {out_features}, bias={bias}) on x of shape "
        "{shape}, with nn.Linear's weights copied in"
    ).format(in_features=in_features, out_features=out_features, bias=bias, shape=tuple(x.shape))
    y, expected = run_linear(layer, ours, call), reference(theirs)
    weight = reference.weight.detach()
    mistakes = []
    if in_features == out_features:  # otherwise x @ W fails to run, and run_linear names the cause
        mistakes.append((_("the weight is not transposed: compute x @ self.weight.T"), x @ weight))
    if bias:
        mistakes.append((_("forward leaves out the bias"), x @ weight.T))
    expect_tensor_close(y, expected, call=call, mistakes=mistakes)
    if not y.requires_grad:
        fail(
            _(
                "Called {call}.\nThe output does not require grad: "
                "forward must use the Parameters themselves."
            ).format(call=call)
        )
    upstream = torch.randn(expected.shape)
    y.backward(upstream)
    expected.backward(upstream)
    for name, q in reference.named_parameters():
        got = layer.get_parameter(name).grad
        expect_tensor_close(
            got,
            q.grad,
            call=_("{call}, then backward(): the gradient of {name}").format(call=call, name=name),
        )
    expect_tensor_close(
        ours.grad,
        theirs.grad,
        call=_("{call}, then backward(): the gradient of {name}").format(call=call, name="x"),
    )


@exercise("LinearFromScratch")
def test_linear_from_scratch_starts_from_random_values():
    torch.manual_seed(0)
    first, second = build_linear(16, 8), build_linear(16, 8)
    w = first.weight.detach()
    if not torch.isfinite(w).all() or torch.equal(w, second.weight.detach()) or w.std() == 0:
        same = (
            _("The first weight has std {std:.3g}; the two weights are equal.")
            if torch.equal(w, second.weight.detach())
            else _("The first weight has std {std:.3g}; the two weights are different.")
        )
        fail(
            _("Called {call} twice.").format(call="LinearFromScratch(16, 8)")
            + "\n"
            + same.format(std=w.std().item())
            + "\n"
            + _(
                "Likely cause: the weight starts constant (zeros or ones) or uninitialised (torch.empty): "
                "every output unit would then compute, and learn, the same thing. Start from random "
                "values, e.g. torch.empty(out, in).uniform_(-k, k) with k = 1 / sqrt(in_features)."
            )
        )


# --- count_parameters --------------------------------------------------------------------


def expect_counts(got, expected: tuple[int, int], *, call: str, mistakes=()) -> None:
    if not (isinstance(got, (tuple, list)) and len(got) == 2 and all(type(v) is int for v in got)):
        fail(
            _(
                "Called {call}.\nIt returned {got}; a pair of Python ints (total, trainable) is asked for."
            ).format(call=call, got=show(got))
        )
    if tuple(got) == expected:
        return
    lines = [
        _("Called {call}.").format(call=call),
        _("It returned {actual}, but the tests expected {expected}.").format(
            actual=tuple(got), expected=expected
        ),
    ]
    for cause, wrong in mistakes:  # None in a wrong pair matches any value
        if all(w is None or g == w for g, w in zip(got, wrong, strict=True)):
            lines.append(_("Likely cause: {cause}").format(cause=cause))
            break
    fail("\n".join(lines))


def counts_mistakes(model: nn.Module) -> list[tuple[str, tuple[int, int]]]:
    params = list(model.parameters())
    total = sum(p.numel() for p in params)
    trainable = sum(p.numel() for p in params if p.requires_grad)
    return [
        (
            _(
                "the total counts only the trainable parameters: frozen ones are parameters too; "
                "filter on p.requires_grad for the second number only"
            ),
            (trainable, trainable),
        ),
        (
            _("the trainable count includes frozen parameters: count only those with p.requires_grad"),
            (total, total),
        ),
        (
            _("you counted tensors, not values: sum p.numel() over the parameters"),
            (len(params), sum(p.requires_grad for p in params)),
        ),
        (
            _(
                "nothing counts as trainable: state_dict() returns detached tensors, whose "
                "requires_grad is False; count model.parameters()"
            ),
            (None, 0),
        ),
    ]


@exercise("count_parameters")
def test_count_parameters_of_the_article_net():
    net = article_net(0)
    expect_counts(
        nm.count_parameters(net),
        (17, 17),
        call="count_parameters(SimpleNet())",
        mistakes=counts_mistakes(net),
    )
    net.fc1.requires_grad_(False)
    expect_counts(
        nm.count_parameters(net),
        (17, 5),
        call=_("count_parameters(net) after net.fc1.requires_grad_(False)"),
        mistakes=counts_mistakes(net),
    )


@exercise("count_parameters")
@given(
    sizes=st.lists(st.integers(1, 6), min_size=2, max_size=5),
    frozen=st.lists(st.booleans(), min_size=4, max_size=4),
)
def test_count_parameters_of_random_models(sizes, frozen):
    layers = [nn.Linear(a, b) for a, b in pairwise(sizes)]
    for layer, freeze in zip(layers, frozen, strict=False):
        layer.requires_grad_(not freeze)
    model = nn.Sequential(*layers)
    total = sum((a + 1) * b for a, b in pairwise(sizes))
    trainable = sum((a + 1) * b for (a, b), f in zip(pairwise(sizes), frozen, strict=False) if not f)
    call = _("count_parameters(model) for Linear layers of sizes {sizes}, frozen: {frozen}").format(
        sizes=sizes, frozen=frozen[: len(layers)]
    )
    expect_counts(nm.count_parameters(model), (total, trainable), call=call, mistakes=counts_mistakes(model))


@exercise("count_parameters")
def test_count_parameters_skips_buffers_and_counts_tied_weights_once():
    embed, norm, head = nn.Embedding(10, 4), nn.BatchNorm1d(4), nn.Linear(4, 10)
    head.weight = embed.weight  # weight tying: one Parameter used by two layers
    model = nn.Sequential(embed, norm, head)
    state_values = sum(v.numel() for v in model.state_dict(keep_vars=True).values())
    per_module = sum(p.numel() for m in model.modules() for p in m.parameters(recurse=False))
    expect_counts(
        nm.count_parameters(model),
        (58, 58),
        call=_(
            "count_parameters(nn.Sequential(Embedding(10, 4), BatchNorm1d(4), Linear(4, 10))) "
            "with the Linear's weight tied to the Embedding's"
        ),
        mistakes=[
            (
                _(
                    "state_dict() also holds buffers (batch norm's running_mean, running_var, "
                    "num_batches_tracked) and lists a tied weight under both names; count model.parameters()"
                ),
                (state_values, None),
            ),
            (
                _("the tied weight was counted twice: model.parameters() yields each Parameter once"),
                (per_module, None),
            ),
        ],
    )


# --- freeze_ -----------------------------------------------------------------------------


def why_not_frozen(module: nn.Module, grads_cleared: bool = False) -> str:
    """The likely cause, from what freeze_ left behind."""
    flags = [p.requires_grad for p in module.parameters()]
    if vars(module).get("requires_grad") is False:
        return _(
            "module.requires_grad = False only sets a Python attribute on the module object; "
            "call module.requires_grad_(False), with the underscore, which sets it on every parameter."
        )
    if not module.training:
        return _(
            "eval() does not freeze anything: it only switches dropout and batch norm to their "
            "inference behaviour. Call requires_grad_(False) on the parameters."
        )
    if any(flags) and not all(flags):
        return _(
            "only some parameters were frozen. module.children() skips a module's own weight and "
            "bias (and a child's children unless you recurse); module.requires_grad_(False) reaches "
            "every parameter."
        )
    if grads_cleared:
        return _(
            "setting p.grad = None only clears the last gradient; the next backward() fills it "
            "again. Freezing means requires_grad=False on every parameter: module.requires_grad_(False)."
        )
    leaf = (
        " "
        + _(
            "A {type} has no child modules, so a loop over module.children() reaches "
            "none of its own weight and bias."
        ).format(type=type(module).__name__)
        if not list(module.children())
        else ""
    )
    return (
        _(
            "no parameter of the module you were given was frozen. Freezing means requires_grad=False "
            "on every parameter of that very module, in place: module.requires_grad_(False)."
        )
        + leaf
    )


def froze_a_copy(module: nn.Module, result: object) -> bool:
    return (
        isinstance(result, nn.Module)
        and result is not module
        and not any(p.requires_grad for p in result.parameters())
        and all(p.requires_grad for p in module.parameters())
    )


def apply_freeze(module: nn.Module, call: str) -> None:
    result = nm.freeze_(module)
    if froze_a_copy(module, result):
        fail(
            _(
                "Called {call}.\nIt returned a frozen {type}, a different object; every "
                "parameter of the module it was given still requires grad.\n"
                "Likely cause: you froze a copy (copy.deepcopy or a new module); the caller's model, "
                "the one its optimizer holds, trains on. Freeze the given module in place with "
                "module.requires_grad_(False), and return None."
            ).format(call=call, type=type(result).__name__)
        )
    if result is not None:
        fail(
            _("Called {call}.\nIt returned {type}; a trailing _ means in place: return None.").format(
                call=call, type=type(result).__name__
            )
        )


@exercise("freeze_")
def test_freeze_stops_gradients_but_keeps_the_parameters():
    net = article_net(0)
    net(torch.randn(4, 2)).sum().backward()  # gradients from earlier training are still there
    call = _("freeze_(net.fc1) on a SimpleNet")
    apply_freeze(net.fc1, call)
    cleared = all(p.grad is None for p in net.fc1.parameters())
    net.zero_grad(set_to_none=True)
    flags = {name: p.requires_grad for name, p in net.named_parameters()}
    expected = {"fc1.weight": False, "fc1.bias": False, "fc2.weight": True, "fc2.bias": True}
    if flags != expected:
        cause = ""
        if flags.get("fc1.weight") or flags.get("fc1.bias"):
            cause = why_not_frozen(net.fc1, grads_cleared=cleared)
        elif False in (flags.get("fc2.weight"), flags.get("fc2.bias")):
            cause = _(
                "more than the module you were given was frozen: fc2 must keep training; "
                "freeze only the parameters of the given module."
            )
        fail(
            _("Called {call}.\nrequires_grad is now {got},\nbut the tests expected {expected}.").format(
                call=call, got=flags, expected=expected
            )
            + ("\n" + _("Likely cause: {cause}").format(cause=cause) if cause else "")
        )
    if list(net.state_dict()) != [name for name, _shape in SIMPLENET_PARAMS]:
        fail(
            _("Called {call}.\nThe state_dict keys became {keys}: frozen parameters stay.").format(
                call=call, keys=list(net.state_dict())
            )
        )
    net(torch.randn(4, 2)).sum().backward()
    grads = {name: p.grad is not None for name, p in net.named_parameters()}
    if grads != expected:
        fail(
            _(
                "Called {call}, then backward().\nWhich parameters got a .grad: {grads}; fc2's only expected."
            ).format(call=call, grads=grads)
        )


@exercise("freeze_")
@given(seed=seeds)
def test_freeze_keeps_weights_fixed_through_optimizer_steps(seed):
    net = article_net(seed)
    x, target = torch.randn(8, 2), torch.randn(8, 1)
    net(x).sum().backward()  # gradients from earlier training are still there
    call = _("freeze_(net.fc1), then two SGD steps with weight decay over net.parameters()")
    apply_freeze(net.fc1, call)
    cleared = all(p.grad is None for p in net.fc1.parameters())
    before = copy.deepcopy(net.state_dict())
    params = list(net.parameters())  # what torch.optim.SGD(net.parameters(), ...) would hold
    for _step in range(2):
        for p in params:
            p.grad = None  # optimizer.zero_grad()
        nn.functional.mse_loss(net(x), target).backward()
        sgd_step(params, weight_decay=0.01)
    moved = [k for k in ("fc1.weight", "fc1.bias") if not torch.equal(net.state_dict()[k], before[k])]
    if moved:
        fail(
            _("Called {call}.\nThe frozen parameters {moved} changed.\nLikely cause: {cause}").format(
                call=call, moved=moved, cause=why_not_frozen(net.fc1, cleared)
            )
        )
    if torch.equal(net.fc2.weight, before["fc2.weight"]):
        fail(
            _("Called {call}.\nfc2 did not train either: freeze only the module you are given.").format(
                call=call
            )
        )


@exercise("freeze_")
@given(sizes=st.lists(st.integers(1, 5), min_size=2, max_size=5), seed=seeds)
def test_freeze_reaches_nested_modules(sizes, seed):
    torch.manual_seed(seed)
    blocks = [nn.Sequential(nn.Linear(a, b), nn.ReLU()) for a, b in pairwise(sizes)]
    model = nn.Sequential(nn.Sequential(*blocks), nn.Linear(sizes[-1], 1))
    count = len(list(model.parameters()))
    call = _("freeze_(model) for nested Linear blocks of sizes {sizes}").format(sizes=sizes)
    apply_freeze(model, call)
    trainable = [name for name, p in model.named_parameters() if p.requires_grad]
    if trainable or len(list(model.parameters())) != count:
        fail(
            _(
                "Called {call}.\nStill trainable: {trainable} ({left} of {count} "
                "parameters left).\nLikely cause: {cause}"
            ).format(
                call=call,
                trainable=trainable,
                left=len(list(model.parameters())),
                count=count,
                cause=why_not_frozen(model),
            )
        )
    if model(torch.randn(3, sizes[0])).requires_grad:
        fail(_("Called {call}.\nThe output of the frozen model still requires grad.").format(call=call))


# --- RunningMean -------------------------------------------------------------------------

BUFFERS = ["num_batches", "running_mean"]


def build_running_mean(num_features: int, momentum: float = 0.1) -> nn.Module:
    call = f"RunningMean({num_features}, momentum={momentum})"
    norm = construct(nm.RunningMean, num_features, momentum=momentum, call=call)
    params = [name for name, _param in norm.named_parameters()]
    if params:
        fail(
            _(
                "Called {call}.\nIt listed {params}; a running statistic is not a weight.\n"
                "Likely cause: register it with self.register_buffer(name, tensor). An nn.Parameter "
                "with requires_grad=False is still a parameter: it shows in parameters(), and every "
                "optimizer built from them holds it."
            ).format(call=f"{call}.named_parameters()", params=params)
        )
    keys = sorted(norm.state_dict())
    if keys != BUFFERS:
        cause = _("register both with self.register_buffer(name, tensor).")
        if isinstance(vars(norm).get("num_batches"), int):
            cause = _(
                "the step counter is a Python int, which state_dict() and .to() ignore; make it a "
                "buffer: self.register_buffer('num_batches', torch.tensor(0))."
            )
        elif plain := plain_attributes(norm, (torch.Tensor,)):
            cause = _(
                "self.{name} is a plain attribute: state_dict() does not save it and .to() does "
                "not move it; use self.register_buffer('{name}', tensor)."
            ).format(name=plain[0])
        fail(
            _(
                "Called {call}.\nIts keys are {keys}, but the tests expected {expected}.\n"
                "Likely cause: {cause}"
            ).format(call=f"{call}.state_dict()", keys=keys, expected=BUFFERS, cause=cause)
        )
    mean, steps = norm.running_mean, norm.num_batches
    if mean.shape != (num_features,) or mean.dtype != torch.float32 or mean.any():
        fail(
            _("Called {call}.\nrunning_mean is {mean}; zeros of shape ({n},) expected.").format(
                call=call, mean=show(mean), n=num_features
            )
        )
    if steps.is_floating_point() or steps.numel() != 1 or steps.item() != 0:
        fail(
            _(
                "Called {call}.\nnum_batches is {steps}; "
                "an integer tensor holding 0 expected: torch.tensor(0)."
            ).format(call=call, steps=show(steps))
        )
    return norm


@exercise("RunningMean")
def test_running_mean_keeps_its_state_in_buffers():
    norm = build_running_mean(3)
    names = sorted(name for name, _buffer in norm.named_buffers())
    if names != BUFFERS:
        fail(
            _("Called {call}.\nIt listed {names}; expected {expected}.").format(
                call="RunningMean(3).named_buffers()", names=names, expected=BUFFERS
            )
        )


@exercise("RunningMean")
def test_running_mean_buffers_are_saved_and_moved():
    torch.manual_seed(0)
    norm = build_running_mean(3)
    norm(torch.randn(5, 3))
    restored = build_running_mean(3)
    restored.load_state_dict(norm.state_dict())
    if not torch.equal(restored.running_mean, norm.running_mean) or restored.num_batches.item() != 1:
        fail(
            _(
                "Called {call} on one batch, then load_state_dict() into a fresh RunningMean(3).\n"
                "The copy holds running_mean {mean} and num_batches {steps}; expected {expected} and 1."
            ).format(
                call="RunningMean(3)",
                mean=show(restored.running_mean),
                steps=show(restored.num_batches),
                expected=show(norm.running_mean),
            )
        )
    norm.to(torch.float64)
    if norm.running_mean.dtype != torch.float64 or norm.num_batches.is_floating_point():
        fail(
            _(
                "Called {call}.\nrunning_mean is {mean_dtype}, num_batches {steps_dtype}; "
                ".to(dtype) converts floating-point buffers and leaves integer ones alone."
            ).format(
                call="RunningMean(3).to(torch.float64)",
                mean_dtype=norm.running_mean.dtype,
                steps_dtype=norm.num_batches.dtype,
            )
        )
    norm.to("meta")  # a device that needs no hardware: buffers move like parameters
    devices = {name: str(b.device) for name, b in norm.named_buffers()}
    if devices != {"running_mean": "meta", "num_batches": "meta"}:
        fail(
            _("Called {call}.\nThe buffers are on {devices}; both should move to meta.").format(
                call="RunningMean(3).to('meta')", devices=devices
            )
        )


@exercise("RunningMean")
@given(
    num_features=st.integers(1, 4),
    batches=st.lists(st.integers(1, 5), min_size=1, max_size=4),
    momentum=st.sampled_from([0.1, 0.25, 0.5, 0.9]),
    seed=seeds,
)
def test_running_mean_tracks_the_training_batches(num_features, batches, momentum, seed):
    norm = build_running_mean(num_features, momentum)
    gen = torch.Generator().manual_seed(seed)
    running = torch.zeros(num_features)
    reversed_running = torch.zeros(num_features)
    for step, size in enumerate(batches, start=1):
        x = torch.randn(size, num_features, generator=gen) + 2
        previous = running
        running = (1 - momentum) * running + momentum * x.mean(dim=0)
        reversed_running = momentum * reversed_running + (1 - momentum) * x.mean(dim=0)
        call = _(
            "RunningMean({num_features}, momentum={momentum}) on training batch {step} of sizes {batches}"
        ).format(num_features=num_features, momentum=momentum, step=step, batches=batches)
        expect_tensor_close(
            norm(x),
            x - running,
            call=call,
            mistakes=[
                (
                    _("forward subtracted the mean from before this batch's update; update first"),
                    x - previous,
                ),
                (
                    _("momentum weights the new batch: (1 - momentum) * running + momentum * batch_mean"),
                    x - reversed_running,
                ),
            ],
        )
        expect_tensor_close(norm.running_mean, running, call=f"{call}: running_mean")
        if norm.num_batches.item() != step:
            fail(
                _("Called {call}.\nnum_batches is {got}, expected {step}.").format(
                    call=call, got=norm.num_batches.item(), step=step
                )
            )


@exercise("RunningMean")
def test_running_mean_changes_nothing_in_eval_mode():
    torch.manual_seed(0)
    norm = build_running_mean(2, momentum=0.5)
    norm(torch.randn(4, 2))
    norm.eval()
    frozen = norm.running_mean.clone()
    x = torch.randn(3, 2) + 5
    call = _("RunningMean(2, momentum=0.5) after one training batch, then .eval() and norm(x)")
    out = norm(x)
    if not torch.equal(norm.running_mean, frozen) or norm.num_batches.item() != 1:
        fail(
            _(
                "Called {call}.\nThe buffers changed: running_mean {before} -> {after}, "
                "num_batches {steps}.\n"
                "Likely cause: eval mode must not update the statistics: update only `if self.training:`."
            ).format(
                call=call, before=show(frozen), after=show(norm.running_mean), steps=norm.num_batches.item()
            )
        )
    expect_tensor_close(out, x - frozen, call=call)


@exercise("RunningMean")
def test_running_mean_keeps_buffers_out_of_the_graph():
    torch.manual_seed(0)
    norm = build_running_mean(3, momentum=0.5)
    x = torch.randn(4, 3, requires_grad=True)
    call = _("RunningMean(3, momentum=0.5)(x) with x.requires_grad=True")
    out = norm(x)
    if norm.running_mean.requires_grad or norm.running_mean.grad_fn is not None:
        fail(
            _(
                "Called {call}.\nrunning_mean is now {mean}: it joined the autograd graph, "
                "which then grows with every batch.\nLikely cause: update the buffer under torch.no_grad() "
                "(or from x.mean(dim=0).detach())."
            ).format(call=call, mean=show(norm.running_mean))
        )
    out.sum().backward()
    expect_tensor_close(
        x.grad, torch.ones(4, 3), call=_("{call}, then out.sum().backward(): x.grad").format(call=call)
    )


# --- MLP ----------------------------------------------------------------------------------

layer_sizes = st.lists(st.integers(1, 6), min_size=2, max_size=5)


def build_mlp(sizes: list[int]) -> nn.Module:
    call = f"MLP({sizes})"
    model = construct(nm.MLP, sizes, call=call)
    expected = []
    for i, (a, b) in enumerate(pairwise(sizes)):
        expected += [(f"layers.{i}.weight", (b, a)), (f"layers.{i}.bias", (b,))]
    got = param_shapes(model)
    if got != expected or sorted(model.state_dict()) != sorted(name for name, _shape in expected):
        cause = _(
            "keep the layers in self.layers = nn.ModuleList(...), one nn.Linear(a, b) per consecutive pair."
        )
        if builds_layers_in_forward(model, sizes[0]):
            cause = _(LAYER_IN_FORWARD)
        if any(
            isinstance(item, nn.Module)
            for name in plain_attributes(model, (list, tuple, dict))
            for item in (
                getattr(model, name).values()
                if isinstance(getattr(model, name), dict)
                else getattr(model, name)
            )
        ):
            cause = _(
                "the layers are in a plain Python list: nn.Module does not look inside it, so "
                "parameters(), state_dict(), .to() and every optimizer miss them. Wrap the list: "
                "self.layers = nn.ModuleList(layers)."
            )
        fail(
            _(
                "Called {call}.\nIt listed {got},\nbut the tests expected {expected}.\nLikely cause: {cause}"
            ).format(call=f"{call}.named_parameters()", got=got, expected=expected, cause=cause)
        )
    return model


def mlp_reference(weights, x, relu_between=True, relu_last=False):
    for i, (w, b) in enumerate(weights):
        x = x @ w.T + b
        if (relu_between and i < len(weights) - 1) or (relu_last and i == len(weights) - 1):
            x = torch.relu(x)
    return x


@exercise("MLP")
@given(sizes=layer_sizes)
def test_mlp_registers_one_linear_per_pair_of_sizes(sizes):
    model = build_mlp(sizes)
    expected = sum((a + 1) * b for a, b in pairwise(sizes))
    total = sum(p.numel() for p in model.parameters())
    if total != expected:
        fail(
            _("Called {call}.\nIt has {total} parameter values; expected {expected}.").format(
                call=f"MLP({sizes})", total=total, expected=expected
            )
        )


@exercise("MLP")
@given(sizes=layer_sizes, batch=batch_sizes, seed=seeds)
def test_mlp_forward_puts_a_relu_between_layers(sizes, batch, seed):
    model = build_mlp(sizes)
    gen = torch.Generator().manual_seed(seed)
    randomize_(model, gen)
    weights = [
        (model.get_parameter(f"layers.{i}.weight").detach(), model.get_parameter(f"layers.{i}.bias").detach())
        for i in range(len(sizes) - 1)
    ]
    x = torch.randn(batch, sizes[0], generator=gen)
    mistakes = [
        (
            _("a ReLU after the last layer: the output must be able to go negative"),
            mlp_reference(weights, x, relu_last=True),
        )
    ]
    if len(weights) > 1:
        mistakes.append((_("no ReLU between the layers"), mlp_reference(weights, x, relu_between=False)))
    expect_tensor_close(
        model(x),
        mlp_reference(weights, x),
        call=_(
            "MLP({sizes})(x), x of shape ({batch}, {features}), weights from N(0, 1) (seed {seed})"
        ).format(sizes=sizes, batch=batch, features=sizes[0], seed=seed),
        rtol=1e-5,  # products of N(0, 1) weights grow with depth; float32 round-off grows with them
        atol=1e-4,
        mistakes=mistakes,
    )


@exercise("MLP")
def test_mlp_optimizer_trains_every_layer():
    torch.manual_seed(0)
    sizes = [3, 8, 8, 8, 2]
    model = build_mlp(sizes)
    params = list(model.parameters())  # what an optimizer built from model.parameters() holds
    before = copy.deepcopy(model.state_dict())
    out = model(torch.randn(16, 3))
    nn.functional.mse_loss(out, torch.randn(16, 2)).backward()
    sgd_step(params)
    still = [k for k, v in model.state_dict().items() if k.endswith("weight") and torch.equal(v, before[k])]
    if still:
        cause = _("forward skips those layers.")
        if type(out.grad_fn).__name__ == "ReluBackward0" and bool((out == 0).all()):
            cause = _(
                "a ReLU after the last layer: every output is 0, so no gradient flows back through it. "
                "Apply the ReLU between layers only."
            )
        fail(
            _(
                "Called one SGD step over {params}.\nThese weights did not change: {still}.\n"
                "Likely cause: {cause}"
            ).format(params=f"MLP({sizes}).parameters()", still=still, cause=cause)
        )


# --- predict ------------------------------------------------------------------------------


def dropout_model() -> nn.Module:
    return nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Dropout(0.5), nn.Linear(16, 2))


def batchnorm_model(gen: torch.Generator) -> nn.Module:
    model = nn.Sequential(nn.Linear(3, 5), nn.BatchNorm1d(5), nn.ReLU(), nn.Linear(5, 2))
    model[1].running_mean.copy_(torch.randn(5, generator=gen))
    model[1].running_var.copy_(torch.rand(5, generator=gen) + 0.5)
    return model


def modes(model: nn.Module) -> dict[str, bool]:
    return {name or "model": m.training for name, m in model.named_modules()}


def eval_reference(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    twin = copy.deepcopy(model).eval()
    with torch.no_grad():
        return twin(x)


@exercise("predict")
@given(seed=seeds, batch=batch_sizes)
def test_predict_turns_dropout_off(seed, batch):
    torch.manual_seed(seed)
    model = dropout_model()
    x = torch.randn(batch, 4)
    call = _(
        "predict(model, x) for a training-mode model with nn.Dropout(0.5), x of shape ({batch}, 4)"
    ).format(batch=batch)
    first, second = nm.predict(model, x), nm.predict(model, x)
    if (
        isinstance(first, torch.Tensor)
        and isinstance(second, torch.Tensor)
        and not torch.equal(first, second)
    ):
        fail(
            _(
                "Called {call} twice.\nThe answers differ: dropout was active.\n"
                "Likely cause: call model.eval() before the forward pass."
            ).format(call=call)
        )
    expect_tensor_close(first, eval_reference(model, x), call=call)


@exercise("predict")
@given(seed=seeds, batch=batch_sizes)
def test_predict_uses_batch_norm_running_statistics(seed, batch):
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    model = batchnorm_model(gen)
    x = torch.randn(batch, 3, generator=gen)
    stats = copy.deepcopy(model[1].state_dict())
    call = _(
        "predict(model, x) for a training-mode model with nn.BatchNorm1d(5), x of shape ({batch}, 3)"
    ).format(batch=batch)
    try:
        got = nm.predict(model, x)
    except ValueError as err:
        got = err
    if isinstance(got, ValueError):
        fail(
            _(
                "Called {call}.\nIt raised ValueError: {error}\n"
                "Likely cause: batch norm is still in training mode; call model.eval()."
            ).format(call=call, error=got)
        )
    changed = [k for k, v in model[1].state_dict().items() if not torch.equal(v, stats[k])]
    if changed:
        fail(
            _(
                "Called {call}.\nThe batch norm's {changed} changed: a training-mode forward pass updates "
                "them.\nLikely cause: predict must run the model in eval mode: call model.eval()."
            ).format(call=call, changed=changed)
        )
    expect_tensor_close(got, eval_reference(model, x), call=call)


@exercise("predict")
def test_predict_restores_the_previous_mode():
    torch.manual_seed(0)
    model, x = dropout_model(), torch.randn(2, 4)
    nm.predict(model, x)
    if not all(modes(model).values()):
        fail(
            _(
                "Called {call} on a model in training mode.\n"
                "Afterwards the modes are {modes}.\n"
                "Likely cause: eval() was never undone; remember model.training before and restore it, "
                "or the next training step silently runs without dropout."
            ).format(call="predict(model, x)", modes=modes(model))
        )
    model.eval()
    nm.predict(model, x)
    if any(modes(model).values()):
        fail(
            _(
                "Called {call} on a model in eval mode.\n"
                "Afterwards the modes are {modes}.\n"
                "Likely cause: predict switched it to training mode; "
                "restore the previous mode, whatever it was."
            ).format(call="predict(model, x)", modes=modes(model))
        )


@exercise("predict")
def test_predict_restores_each_submodules_own_mode():
    gen = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    model = batchnorm_model(gen)
    model[1].eval()  # a frozen batch norm inside a model being fine-tuned
    before = modes(model)
    nm.predict(model, torch.randn(3, 3))
    after = modes(model)
    if after != before:
        cause = (
            _(
                "eval() was never undone: every module is still in eval mode. Record the modes before "
                "and restore them afterwards."
            )
            if not any(after.values())
            else _(
                "model.train(was_training) sets one mode for the whole model. Record "
                "{record} and restore each submodule's own mode."
            ).format(record="`{m: m.training for m in model.modules()}`")
        )
        fail(
            _(
                "Called {call} on a training model whose batch norm (model[1]) was kept in eval.\n"
                "Before: {before}\nAfter:  {after}\nLikely cause: {cause}"
            ).format(call="predict(model, x)", before=before, after=after, cause=cause)
        )


@exercise("predict")
def test_predict_builds_no_graph():
    torch.manual_seed(0)
    model = dropout_model()
    x = torch.randn(2, 4, requires_grad=True)
    got = nm.predict(model, x)
    if isinstance(got, torch.Tensor) and got.requires_grad:
        fail(
            _(
                "Called {call}.\nIt returned {got}.\n"
                "Likely cause: eval() does not stop autograd; run the forward pass under torch.no_grad() "
                "(or torch.inference_mode()): no graph, less memory."
            ).format(call=_("predict(model, x) with x.requires_grad=True"), got=show(got))
        )
    expect_tensor_close(
        got, eval_reference(model, x.detach()), call=_("predict(model, x) with x.requires_grad=True")
    )


class Boom(Exception):
    """Raised by a test model on purpose."""


class FailingModel(nn.Module):
    def __init__(self):
        super().__init__()
        self.drop = nn.Dropout(0.5)

    def forward(self, x):
        raise Boom(_("forward failed"))


@exercise("predict")
def test_predict_restores_the_mode_when_forward_raises():
    model = FailingModel()
    try:
        nm.predict(model, torch.randn(2, 4))
    except Boom:
        pass
    else:
        fail(
            _("Called {call} on a model whose forward raises.\nThe error vanished; let it propagate.").format(
                call="predict(model, x)"
            )
        )
    if not all(modes(model).values()):
        working = dropout_model()
        nm.predict(working, torch.randn(2, 4))
        cause = (
            _("restore the modes in a `finally:` block, so they come back on errors too.")
            if all(modes(working).values())
            else _(
                "eval() was never undone, not even when forward succeeds: record the modes before "
                "and restore them afterwards, in a `finally:` block."
            )
        )
        fail(
            _(
                "Called {call} on a training-mode model whose forward raises.\n"
                "Afterwards the modes are {modes}.\nLikely cause: {cause}"
            ).format(call="predict(model, x)", modes=modes(model), cause=cause)
        )


# --- init_weights_ ------------------------------------------------------------------------


class Block(nn.Module):
    """A custom container: its parts are plain attributes, so only recursion finds them."""

    def __init__(self, *parts: nn.Module):
        super().__init__()
        for i, part in enumerate(parts):
            setattr(self, f"part{i}", part)


def apply_init(model: nn.Module, call: str) -> None:
    try:
        result = nm.init_weights_(model)
    except (AttributeError, TypeError) as err:
        if "NoneType" not in str(err):
            raise
        result = err
    if isinstance(result, (AttributeError, TypeError)):
        # "None", not "'NoneType' object": the harness would add its hint about a None .grad
        error = str(result).replace("'NoneType' object", "None")
        fail(
            _(
                "Called {call}.\nIt raised {type}: {error}\n"
                "Likely cause: a Linear built with bias=False has bias None; check `if m.bias is not None`."
            ).format(call=call, type=type(result).__name__, error=error)
        )
    if result is not None:
        fail(
            _("Called {call}.\nIt returned {type}; a trailing _ means in place: return None.").format(
                call=call, type=type(result).__name__
            )
        )


def he_model() -> nn.Module:
    return Block(nn.Linear(64, 128), nn.ReLU(), nn.Sequential(nn.Linear(128, 32), nn.ReLU()))


@exercise("init_weights_")
def test_init_weights_gives_he_statistics_and_zero_biases():
    torch.manual_seed(0)
    model = he_model()
    call = _("init_weights_(model) for Block(Linear(64, 128), ReLU(), Sequential(Linear(128, 32), ReLU()))")
    apply_init(model, call)
    for name, m in model.named_modules():
        if not isinstance(m, nn.Linear):
            continue
        fan_in, fan_out = m.in_features, m.out_features
        target = math.sqrt(2 / fan_in)
        w = m.weight.detach()
        ratio = w.std().item() / target
        # 4096+ values: a correct std lands within 2% of the target; 10% leaves room.
        if abs(ratio - 1) > 0.1 or abs(w.mean().item()) > 0.05 * target:
            # the std / target ratio each mistake produces
            untouched = N_("the weight was not initialised (it still has nn.Linear's default std)")
            causes = {
                untouched: 1 / math.sqrt(6),
                N_(
                    "Xavier initialisation: its std sqrt(2 / (fan_in + fan_out)) suits tanh, He's suits ReLU"
                ): math.sqrt(fan_in / (fan_in + fan_out)),
                N_("mode='fan_out': He's std for the forward pass uses fan_in (the default mode)"): math.sqrt(
                    fan_in / fan_out
                ),
            }
            cause = min(causes, key=lambda c: abs(causes[c] - ratio))
            if cause == untouched and "." in name:
                cause = N_(
                    "this Linear sits inside a nested module and was not initialised: model.apply(fn) "
                    "visits every submodule, model.children() only the direct ones"
                )
            fail(
                _(
                    "Called {call}.\nmodel.{name} (fan_in {fan_in}, fan_out {fan_out}) has weight mean "
                    "{mean:.4f} and std {std:.4f}; He initialisation gives mean 0 and std "
                    "sqrt(2 / fan_in) = {target:.4f}.\nLikely cause: {cause}."
                ).format(
                    call=call,
                    name=name,
                    fan_in=fan_in,
                    fan_out=fan_out,
                    mean=w.mean().item(),
                    std=w.std().item(),
                    target=target,
                    cause=_(cause),
                )
            )
        if m.bias.count_nonzero() != 0:
            fail(
                _(
                    "Called {call}.\nmodel.{name}.bias is not all zero (max |b| = {max:.3g}).\n"
                    "Likely cause: the bias was left out: nn.init.zeros_(m.bias)."
                ).format(call=call, name=name, max=m.bias.abs().max().item())
            )


SENTINEL = 5.0
sizes_1_6 = st.integers(1, 6)
leaf_modules = st.one_of(
    st.builds(lambda i, o, b: nn.Linear(i, o, bias=b), sizes_1_6, sizes_1_6, st.booleans()),
    st.builds(nn.BatchNorm1d, sizes_1_6),
    st.builds(nn.Embedding, st.integers(2, 6), sizes_1_6),
    st.builds(nn.ReLU),
)


def wrap(kind: str, parts: list[nn.Module]) -> nn.Module:
    if kind == "Sequential":
        return nn.Sequential(*parts)
    if kind == "ModuleList":
        return nn.ModuleList(parts)
    if kind == "ModuleDict":
        return nn.ModuleDict({f"m{i}": p for i, p in enumerate(parts)})
    return Block(*parts)


def containers(children):
    return st.builds(
        wrap,
        st.sampled_from(["Sequential", "ModuleList", "ModuleDict", "Block"]),
        st.lists(children, min_size=1, max_size=3),
    )


module_trees = containers(st.recursive(leaf_modules, containers, max_leaves=6))


@exercise("init_weights_")
@given(tree=module_trees, head_bias=st.booleans())
def test_init_weights_reaches_every_linear_and_nothing_else(tree, head_bias):
    model = Block(tree, nn.Linear(3, 2, bias=head_bias))
    with torch.no_grad():
        for p in model.parameters():
            p.fill_(SENTINEL)
    torch.manual_seed(0)
    call = _(
        "init_weights_(model) for a nested model (see 'Falsifying example') whose parameters all held 5.0"
    )
    apply_init(model, call)
    for name, m in model.named_modules():
        where = f"model.{name}" if name else "model"
        if isinstance(m, nn.Linear):
            if (m.weight == SENTINEL).any():
                fail(
                    _(
                        "Called {call}.\n{where}, a {module}, still holds 5.0 in its weight.\n"
                        "Likely cause: a Linear inside a nested module was missed: model.apply(fn) visits "
                        "every submodule, model.children() only the direct ones."
                    ).format(call=call, where=where, module=m)
                )
            if m.bias is not None and m.bias.count_nonzero() != 0:
                fail(
                    _(
                        "Called {call}.\n{where}.bias is {bias}.\n"
                        "Likely cause: the bias was left out: nn.init.zeros_(m.bias)."
                    ).format(call=call, where=where, bias=show(m.bias))
                )
            continue
        for pname, p in m.named_parameters(recurse=False):
            if not (p == SENTINEL).all():
                fail(
                    _(
                        "Called {call}.\n{where}.{name} ({type}) changed.\n"
                        "Likely cause: only nn.Linear layers are asked for; test isinstance(m, nn.Linear) "
                        "rather than initialising every parameter with 2 dimensions."
                    ).format(call=call, where=where, name=pname, type=type(m).__name__)
                )


@exercise("init_weights_")
def test_init_weights_changes_the_parameters_in_place():
    torch.manual_seed(0)
    model = he_model()
    params = list(model.parameters())
    values = [p.detach().clone() for p in params]
    # An optimizer built before init holds these very objects.
    call = _("init_weights_(model) after an optimizer was built from model.parameters()")
    apply_init(model, call)
    replaced = [name for (name, p), old in zip(model.named_parameters(), params, strict=True) if p is not old]
    if replaced:
        fail(
            _(
                "Called {call}.\nThese are new Parameter objects: {replaced};\n"
                "the optimizer still updates the old ones.\nLikely cause: initialise in place "
                "(nn.init.kaiming_uniform_(m.weight, ...), with the trailing _) instead of assigning "
                "m.weight = nn.Parameter(...)."
            ).format(call=call, replaced=replaced)
        )
    if all(torch.equal(p, v) for p, v in zip(params, values, strict=True)):
        fail(_("Called {call}.\nNo parameter changed.").format(call=call))
