"""The kata set proves itself: solutions pass, stubs fail test by test, mutants are caught."""

from __future__ import annotations

from collections import defaultdict

import pytest

from katas._harness import messages
from katas._harness.manifest import load
from tests.kata_runs import ROOT, run_katas, run_mutant
from tests.mutants import all_mutants

MANIFEST = load(ROOT)
EXERCISES = MANIFEST.exercises
MUTANTS = all_mutants()
MIN_TESTS = 2
MIN_MUTANTS = 2


def skipped_for_gpu(outcome) -> bool:
    """A gpu/multi_gpu test on a machine without CUDA: it proves nothing either way here."""
    return outcome.outcome == "skipped" and any(
        reason in outcome.message for reason in (messages.NEEDS_CUDA, messages.NEEDS_MULTI_GPU)
    )


def by_exercise(outcomes):
    grouped = defaultdict(list)
    for outcome in outcomes.values():
        grouped[outcome.exercise].append(outcome)
    return grouped


@pytest.fixture(scope="session")
def solution_run():
    code, outcomes = run_katas(str(ROOT / "katas"), "--solutions")
    assert outcomes, f"running the kata tests against solutions/ collected nothing (exit {code})"
    return by_exercise(outcomes)


@pytest.fixture(scope="session")
def stub_run():
    code, outcomes = run_katas(str(ROOT / "katas"))
    assert outcomes, f"running the kata tests against the stubs collected nothing (exit {code})"
    return by_exercise(outcomes)


@pytest.mark.parametrize("exercise", EXERCISES, ids=lambda ex: ex.qualname)
def test_solution_passes_every_test(exercise, solution_run):
    results = solution_run[exercise.qualname]
    runnable = [r for r in results if not skipped_for_gpu(r)]
    assert len(runnable) >= MIN_TESTS, (
        f"{exercise.qualname} has {len(runnable)} test(s) that run without a GPU; write at least {MIN_TESTS}"
    )
    bad = [f"{r.nodeid}: {r.outcome}\n{r.message}" for r in results if r.outcome not in ("passed", "skipped")]
    assert not bad, "the reference solution fails:\n" + "\n".join(bad)


@pytest.mark.parametrize("exercise", EXERCISES, ids=lambda ex: ex.qualname)
def test_untouched_stub_fails_every_test_with_one_todo_line(exercise, stub_run):
    kata = MANIFEST.kata(exercise.kata)
    results = [r for r in stub_run[exercise.qualname] if not skipped_for_gpu(r)]
    assert results, f"no test of {exercise.qualname} ran against the stubs"
    for r in results:
        assert r.outcome == "todo", (
            f"{r.nodeid} {r.outcome} on the untouched stub (a vacuous test?)\n{r.message}"
        )
        assert "\n" not in r.message.strip(), f"{r.nodeid}: the TODO is not one line:\n{r.message}"
        assert f"katas/{kata.name}/{kata.module}.py" in r.message
        assert "python -m katas hint" in r.message


@pytest.mark.parametrize("exercise", EXERCISES, ids=lambda ex: ex.qualname)
def test_exercise_has_enough_mutants(exercise):
    names = [m.function for m in MUTANTS if m.qualname == exercise.qualname]
    assert len(names) >= MIN_MUTANTS, (
        f"{exercise.qualname} has {len(names)} mutant(s) {names}; add plausible learner mistakes "
        f"to tests/mutants/ until there are {MIN_MUTANTS}"
    )


def test_every_mutant_targets_a_manifest_exercise():
    known = {ex.qualname for ex in EXERCISES}
    assert [m.id for m in MUTANTS if m.qualname not in known] == []


@pytest.mark.parametrize("mutant", MUTANTS, ids=lambda m: m.id)
def test_mutant_is_rejected(mutant, tmp_path):
    _, outcomes = run_mutant(mutant, tmp_path, "-x")
    assert outcomes, f"no test of {mutant.qualname} ran"
    caught = [o for o in outcomes.values() if o.outcome == "failed"]
    assert caught, (
        f"mutant {mutant.function} ({mutant.description}) passes every test of {mutant.qualname}: "
        "the tests miss this mistake"
    )
    if mutant.says:
        messages = "\n".join(o.message for o in caught)
        assert mutant.says in messages, (
            f"mutant {mutant.function} ({mutant.description}) is rejected, but the message does not "
            f"name the mistake ('{mutant.says}' missing):\n{messages}"
        )
