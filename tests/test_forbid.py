""" "Write it yourself" checks see a forbidden library call whatever name reached it."""

from __future__ import annotations

import importlib.util
import sys
import threading

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

from katas._harness import forbid
from katas._harness.forbid import Library, forbidden
from katas._harness.importer import KataModuleFinder
from katas._harness.manifest import load
from tests.project_copy import ROOT

Failed = pytest.fail.Exception
MSE = [Library(F, "mse_loss", "torch.nn.functional.mse_loss", aten=("mse_loss",))]
MSE_TAKEN_AT_IMPORT = F.mse_loss
PRED, TARGET = torch.randn(3, 2), torch.randn(3, 2)


def refusal(fn, *calls: Library) -> str:
    with pytest.raises(Failed) as info, forbidden("f(x)", "Write it yourself.", *calls):
        fn()
    return str(info.value)


def test_honest_code_runs_untouched():
    with forbidden("f(x)", "Write it yourself.", *MSE):
        got = ((PRED - TARGET) ** 2).mean()
    assert torch.equal(got, F.mse_loss(PRED, TARGET))  # and the library is back afterwards


def test_a_call_by_name_fails_with_the_plain_message():
    assert refusal(lambda: F.mse_loss(PRED, TARGET), *MSE) == (
        "Called f(x).\nIt called torch.nn.functional.mse_loss, which this exercise asks you to write "
        "yourself.\nWrite it yourself."
    )


@pytest.mark.parametrize(
    "attack",
    [
        lambda: MSE_TAKEN_AT_IMPORT(PRED, TARGET),
        lambda taken=F.mse_loss: taken(PRED, TARGET),
        (lambda taken: lambda: taken(PRED, TARGET))(F.mse_loss),
    ],
    ids=["module global", "default argument", "closure"],
)
def test_a_reference_taken_before_the_switch_is_seen_by_its_code(attack):
    assert "mse_loss (its code ran, reached through another name)" in refusal(attack, *MSE)


@pytest.mark.parametrize(
    "attack",
    [lambda: torch._C._nn.mse_loss(PRED, TARGET, 1), lambda: torch.ops.aten.mse_loss(PRED, TARGET)],
    ids=["C binding", "torch.ops.aten"],
)
def test_a_path_below_python_is_seen_as_its_aten_op(attack):
    assert "mse_loss (seen as aten.mse_loss)" in refusal(attack, *MSE)


def test_without_a_dispatch_mode_the_name_and_code_checks_remain(monkeypatch):
    monkeypatch.setattr(forbid, "_DispatchMode", None)  # a torch without TorchDispatchMode
    assert "its code ran" in refusal(lambda: MSE_TAKEN_AT_IMPORT(PRED, TARGET), *MSE)
    with forbidden("f(x)", "", *MSE):
        torch.ops.aten.mse_loss(PRED, TARGET)  # no longer seen


def test_catching_the_failure_gains_nothing():
    def swallow():
        try:
            MSE_TAKEN_AT_IMPORT(PRED, TARGET)
        except BaseException:  # noqa: B036 - the attack
            pass
        try:
            torch.ops.aten.mse_loss(PRED, TARGET)
        except BaseException:  # noqa: B036
            pass

    assert "its code ran" in refusal(swallow, *MSE)


def test_raising_something_else_instead_gains_nothing():
    def replace_the_failure():
        try:
            MSE_TAKEN_AT_IMPORT(PRED, TARGET)
        except BaseException:  # noqa: B036 - the attack
            raise ValueError("nothing to see") from None

    message = refusal(replace_the_failure, *MSE)
    assert "its code ran" in message and "nothing to see" not in message


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_a_thread_started_by_the_code_is_watched_too():
    def in_a_thread():
        worker = threading.Thread(target=lambda: MSE_TAKEN_AT_IMPORT(PRED, TARGET))
        worker.start()
        worker.join()

    assert "its code ran" in refusal(in_a_thread, *MSE)


def test_switching_the_watch_off_fails_the_test():
    assert "was switched off while it ran" in refusal(lambda: sys.setprofile(None), *MSE)


def test_the_watch_leaves_no_hook_behind():
    before = sys.getprofile(), threading.getprofile()
    refusal(lambda: F.mse_loss(PRED, TARGET), *MSE)
    with forbidden("f(x)", "", *MSE):
        pass
    assert (sys.getprofile(), threading.getprofile()) == before
    assert F.mse_loss(PRED, TARGET).shape == ()


# --- the ops each library call of kata 05 runs (torch 2.13, CPU) ------------------------------


class Recorder(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.ops: set[str] = set()
        self.regions: list[str] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.ops.add(str(func.overloadpacket))
        if func.overloadpacket is torch.ops.profiler._record_function_enter_new:
            self.regions.append(args[0])
        return func(*args, **(kwargs or {}))


def recorded(fn) -> Recorder:
    recorder = Recorder()
    with recorder:
        fn()
    return recorder


def parameters():
    params = [nn.Parameter(torch.randn(2, 3)), nn.Parameter(torch.randn(3))]
    for p in params:
        p.grad = torch.randn_like(p)
    return params


LOGITS, CLASSES = torch.randn(4, 5, requires_grad=True), torch.tensor([0, 2, 4, 1])


@pytest.mark.parametrize(
    ("call", "ops"),
    [
        (lambda: F.mse_loss(PRED, TARGET), {"aten.mse_loss"}),
        (lambda: nn.MSELoss(reduction="sum")(PRED, TARGET), {"aten.mse_loss"}),
        (lambda: F.cross_entropy(LOGITS, CLASSES), {"aten._log_softmax", "aten.nll_loss_forward"}),
        (lambda: F.nll_loss(LOGITS, CLASSES), {"aten.nll_loss_forward"}),
        (lambda: F.log_softmax(LOGITS, dim=1), {"aten._log_softmax"}),
        (lambda: torch.log_softmax(LOGITS, 1), {"aten._log_softmax"}),
        (lambda: LOGITS.log_softmax(1), {"aten._log_softmax"}),
        (lambda: torch.special.log_softmax(LOGITS, 1), {"aten._log_softmax"}),
    ],
    ids=[
        "F.mse_loss",
        "nn.MSELoss",
        "F.cross_entropy",
        "F.nll_loss",
        "F.log_softmax",
        "torch",
        "Tensor",
        "special",
    ],
)
def test_each_forbidden_loss_runs_the_aten_ops_the_kata_watches(call, ops):
    assert ops <= recorded(call).ops


@pytest.mark.parametrize(
    ("make", "region"),
    [
        (lambda ps: torch.optim.SGD(ps, lr=0.1, momentum=0.9), "Optimizer.step#SGD.step"),
        (lambda ps: torch.optim.Adam(ps, lr=0.1), "Optimizer.step#Adam.step"),
        (lambda ps: torch.optim.AdamW(ps, lr=0.1), "Optimizer.step#AdamW.step"),
    ],
    ids=["SGD", "Adam", "AdamW"],
)
def test_an_optimizer_step_opens_a_region_named_after_it(make, region):
    optimizer = make(parameters())
    seen = recorded(optimizer.step)
    assert seen.regions == [region]
    assert not any("fused" in op or "foreach" in op for op in seen.ops)  # on CPU: plain add_, mul_
    assert recorded(optimizer.zero_grad).regions[0].startswith("Optimizer.zero_grad#")


# --- kata 05's lists: honest variants pass, every way around them fails ------------------------


@pytest.fixture(scope="module")
def kata04():
    finder = KataModuleFinder.for_manifest(load(ROOT), ROOT / "solutions")
    finder.install()
    path = ROOT / "katas/05_losses_optimizers/test_losses_optimizers.py"
    spec = importlib.util.spec_from_file_location("kata04_tests_for_forbid", path)
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        finder.uninstall()


def ce_by_logsumexp(logits, target):
    return -(logits - torch.logsumexp(logits, dim=1, keepdim=True)).gather(1, target.unsqueeze(1)).mean()


def ce_by_hand(logits, target):
    shifted = logits - logits.max(dim=1, keepdim=True).values
    log_probs = shifted - shifted.exp().sum(dim=1, keepdim=True).log()
    return -log_probs[torch.arange(len(target)), target].mean()


def ce_by_softmax(logits, target):
    return -torch.softmax(logits, dim=1).log().gather(1, target.unsqueeze(1)).mean()


@pytest.mark.parametrize("honest", [ce_by_logsumexp, ce_by_hand, ce_by_softmax])
def test_honest_cross_entropies_pass_the_watch(kata04, honest):
    with forbidden("cross_entropy(...)", kata04.CE_HOW, *kata04.CE_LIBRARY):
        got = honest(LOGITS, CLASSES)
    torch.testing.assert_close(got, F.cross_entropy(LOGITS, CLASSES))


@pytest.mark.parametrize(
    ("attack", "says"),
    [
        (lambda taken=F.cross_entropy: taken(LOGITS, CLASSES), "calls it too) (its code ran"),
        (lambda taken=torch.log_softmax: taken(LOGITS, 1), "torch.log_softmax (its code ran"),
        (lambda: torch._C._nn.cross_entropy_loss(LOGITS, CLASSES), "seen as aten._log_softmax"),
        (lambda: torch._C._nn.nll_loss(LOGITS, CLASSES), "seen as aten.nll_loss_forward"),
        (lambda: torch.ops.aten._log_softmax(LOGITS, 1, False), "seen as aten._log_softmax"),
    ],
    ids=["F.cross_entropy as a default", "torch.log_softmax as a default", "C binding", "nll C", "aten"],
)
def test_every_way_to_the_library_cross_entropy_fails(kata04, attack, says):
    assert says in refusal(attack, *kata04.CE_LIBRARY)


def test_an_optimizer_made_before_the_switch_is_seen_by_its_step(kata04):
    params = parameters()
    optimizer = torch.optim.SGD(params, lr=0.1)
    assert "torch.optim.SGD (seen as Optimizer.step#SGD.step)" in refusal(optimizer.step, *kata04.SGD_LIBRARY)
    adam = torch.optim.Adam(params, lr=0.1)
    assert "torch.optim.Adam (seen as Optimizer.step#Adam.step)" in refusal(adam.step, *kata04.ADAM_LIBRARY)
    zero = optimizer.zero_grad
    assert "Optimizer.zero_grad (its code ran" in refusal(zero, *kata04.ZERO_GRAD_LIBRARY)


def test_the_reference_solutions_pass_the_watch(kata04):
    lo = sys.modules["losses_optimizers"]
    params, state = parameters(), {}
    with forbidden("sgd_step(...)", kata04.SGD_HOW, *kata04.SGD_LIBRARY):
        lo.sgd_step(params, state, lr=0.1, momentum=0.9, weight_decay=0.1)
    with forbidden("adam_step(...)", kata04.ADAM_HOW, *kata04.ADAM_LIBRARY):
        lo.adam_step(params, {}, lr=0.1, weight_decay=0.1)
    with forbidden("zero_grad(...)", kata04.ZERO_GRAD_HOW, *kata04.ZERO_GRAD_LIBRARY):
        lo.zero_grad(params, set_to_none=False)
    with forbidden("warmup_cosine_lrs(...)", kata04.SCHEDULE_HOW, *kata04.SCHEDULER_LIBRARY):
        lo.warmup_cosine_lrs(1.0, 8, 3)
