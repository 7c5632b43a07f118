"""Run kata tests in this process with the project's deterministic Hypothesis profile."""

from __future__ import annotations

from pathlib import Path

from katas._harness.runner import Outcome, run_pytest

ROOT = Path(__file__).resolve().parents[1]

__all__ = ["ROOT", "Outcome", "run_katas", "run_mutant"]


def run_katas(*args: str) -> tuple[int, dict[str, Outcome]]:
    result = run_pytest([*args, f"--rootdir={ROOT}"], profile="katas-check")
    return result.code, result.outcomes


def run_mutant(mutant, tmp_path: Path, *args: str) -> tuple[int, dict[str, Outcome]]:
    """The mutant's exercise run against the reference solution with that one function replaced."""
    from katas._harness.manifest import load

    kata = load(ROOT).kata(mutant.kata)
    solution = kata.stub_path(ROOT / "solutions").read_text(encoding="utf-8")
    source = kata.stub_path(tmp_path)
    source.parent.mkdir(parents=True)
    source.write_text(
        f"{solution}\n\nfrom {mutant.module} import {mutant.function} as {mutant.exercise}  # noqa\n",
        encoding="utf-8",
    )
    return run_katas(
        str(ROOT / "katas" / kata.name), f"--katas-source={tmp_path}", f"--exercise={mutant.qualname}", *args
    )
