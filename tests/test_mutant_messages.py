"""A mistake that several tests catch is named the same way by each of them.

A mutant registered with `everywhere=True` runs against every test of its exercise (no -x),
and each failing test's message must contain its `says`: a message that blames a mistake the
learner did not make is worse than none.
"""

from __future__ import annotations

import pytest

from katas._harness.manifest import load
from tests.kata_runs import ROOT, run_katas, run_mutant
from tests.mutants import all_mutants

MANIFEST = load(ROOT)
EVERYWHERE = [m for m in all_mutants() if m.everywhere]


def test_every_mutant_says_which_words_name_its_mistake():
    """test_kata_set checks each mutant's `says` in its failure: a mistake with no cause in words
    (a bare diff, a raw error) has none to check."""
    silent = [m.id for m in all_mutants() if not m.says]
    assert not silent, "these mutants have no says=: give each failure a cause, then say= it:\n" + "\n".join(
        silent
    )


@pytest.mark.parametrize("mutant", EVERYWHERE, ids=lambda m: m.id)
def test_every_failing_test_names_the_mutants_mistake(mutant, tmp_path):
    _, outcomes = run_mutant(mutant, tmp_path)
    caught = [o for o in outcomes.values() if o.outcome == "failed"]
    assert caught, f"mutant {mutant.function} passes every test of {mutant.qualname}"
    silent = [f"{o.nodeid}:\n{o.message}" for o in caught if mutant.says not in o.message]
    assert not silent, (
        f"mutant {mutant.function} ({mutant.description}) is rejected, but these messages do not "
        f"name its mistake ('{mutant.says}' missing):\n" + "\n".join(silent)
    )


# Correct solutions written differently from the reference: each must pass every test of its exercise.
ALTERNATIVES = {
    "09_checkpointing/load_matching": '''
def load_matching(model, state):
    """Missing and unexpected keys from the two key sets; BatchNorm's num_batches_tracked, which
    load_state_dict fills itself and leaves out of its report, is listed as missing here."""
    own = model.state_dict().keys()
    if not own & state.keys():
        raise ValueError("no key of the checkpoint matches the model")
    model.load_state_dict(state, strict=False)
    return [k for k in own if k not in state], [k for k in state if k not in own]
''',
}


@pytest.mark.parametrize("qualname", sorted(ALTERNATIVES))
def test_a_correct_alternative_solution_passes(qualname, tmp_path):
    kata = MANIFEST.kata(qualname.split("/")[0])
    solution = kata.stub_path(ROOT / "solutions").read_text(encoding="utf-8")
    source = kata.stub_path(tmp_path)
    source.parent.mkdir(parents=True)
    source.write_text(f"{solution}\n{ALTERNATIVES[qualname]}", encoding="utf-8")
    _, outcomes = run_katas(
        str(ROOT / "katas" / kata.name), f"--katas-source={tmp_path}", f"--exercise={qualname}"
    )
    assert outcomes, f"no test of {qualname} ran"
    bad = [f"{o.nodeid}: {o.outcome}\n{o.message}" for o in outcomes.values() if o.outcome != "passed"]
    assert not bad, "a correct solution is rejected:\n" + "\n".join(bad)
