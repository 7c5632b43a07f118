"""Resolve `import <kata module>` to the learner's stub or to the reference solution.

Kata tests say `import autograd_basics`. A finder placed first on sys.meta_path
maps each manifest module name to `<source_root>/<kata>/<module>.py`, so the same
test code runs against katas/ or solutions/ and no kata ever imports another
kata's module by accident (module names are unique, the manifest enforces it).

Once a kata module has run, its exercises are wrapped (values.guard) so that every value
they return is checked for exact types before a test compares it.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import sys
from pathlib import Path

from .manifest import Manifest, ManifestError, load


class KataModuleLoader(importlib.machinery.SourceFileLoader):
    """Loads a kata module like any source file, then guards its exercises."""

    def __init__(self, fullname: str, path: str, exercises: tuple[str, ...]):
        super().__init__(fullname, path)
        self.exercises = exercises

    def exec_module(self, module) -> None:
        super().exec_module(module)
        from . import values  # imports torch: only once a kata module is loaded

        values.guard(module, self.exercises)


class KataModuleFinder(importlib.abc.MetaPathFinder):
    """`modules` maps module names to files; `exercises` names each module's exercises
    (by default the project manifest's, for the modules it knows)."""

    def __init__(self, modules: dict[str, Path], exercises: dict[str, tuple[str, ...]] | None = None):
        self.modules = modules
        self.exercises = _manifest_exercises(modules) if exercises is None else exercises

    @classmethod
    def for_manifest(cls, manifest: Manifest, source_root: Path) -> KataModuleFinder:
        return cls(
            {kata.module: kata.stub_path(source_root) for kata in manifest.katas},
            {kata.module: tuple(ex.name for ex in kata.exercises) for kata in manifest.katas},
        )

    def find_spec(self, fullname, path=None, target=None):
        location = self.modules.get(fullname)
        if location is None:
            return None
        loader = KataModuleLoader(fullname, str(location), self.exercises.get(fullname, ()))
        return importlib.util.spec_from_file_location(fullname, location, loader=loader)

    def forget_loaded(self) -> None:
        """Drop cached kata modules so the next import reads the current files."""
        for name in self.modules:
            sys.modules.pop(name, None)

    def install(self) -> None:
        self.forget_loaded()
        sys.meta_path.insert(0, self)

    def uninstall(self) -> None:
        if self in sys.meta_path:
            sys.meta_path.remove(self)
        self.forget_loaded()


def _manifest_exercises(modules: dict[str, Path]) -> dict[str, tuple[str, ...]]:
    try:
        katas = load().katas
    except ManifestError:  # no manifest here: guard nothing
        return {}
    return {kata.module: tuple(ex.name for ex in kata.exercises) for kata in katas if kata.module in modules}
