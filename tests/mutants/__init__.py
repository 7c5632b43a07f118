"""Plausible wrong solutions (mutants) that the kata tests must reject.

Each module here holds one kata's mutants. A mutant is a function registered with
`@mutant(KATA, EXERCISE)`; its docstring says which learner mistake it plays.
`says` is a fragment the failure message must contain: proof that the tests not
only reject the mistake but name it. With `everywhere=True` every test the mutant
fails must say it (tests/test_mutant_messages.py runs them all): for a mistake that
several tests catch, no test may blame a different one.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Mutant:
    kata: str
    exercise: str
    function: str
    module: str
    description: str
    says: str | None
    everywhere: bool = False

    @property
    def qualname(self) -> str:
        return f"{self.kata}/{self.exercise}"

    @property
    def id(self) -> str:
        return f"{self.qualname}:{self.function}"


_REGISTRY: list[Mutant] = []


def mutant(kata: str, exercise: str, says: str | None = None, everywhere: bool = False) -> Callable:
    def register(fn: Callable) -> Callable:
        description = " ".join((fn.__doc__ or "").split())
        if not description:
            raise ValueError(f"mutant {fn.__name__} needs a docstring naming the mistake it plays")
        _REGISTRY.append(Mutant(kata, exercise, fn.__name__, fn.__module__, description, says, everywhere))
        return fn

    return register


def all_mutants() -> list[Mutant]:
    for info in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{info.name}")
    return list(_REGISTRY)
