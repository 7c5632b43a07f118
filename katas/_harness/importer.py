"""Resolve `import <kata module>` to the learner's stub or to the reference solution.

Kata tests say `import autograd_basics`. A finder placed first on sys.meta_path
maps each manifest module name to `<source_root>/<kata>/<module>.py`, so the same
test code runs against katas/ or solutions/ and no kata ever imports another
kata's module by accident (module names are unique, the manifest enforces it).
"""

from __future__ import annotations

import importlib.abc
import importlib.util
import sys
from pathlib import Path

from .manifest import Manifest


class KataModuleFinder(importlib.abc.MetaPathFinder):
    def __init__(self, modules: dict[str, Path]):
        self.modules = modules

    @classmethod
    def for_manifest(cls, manifest: Manifest, source_root: Path) -> KataModuleFinder:
        return cls({kata.module: kata.stub_path(source_root) for kata in manifest.katas})

    def find_spec(self, fullname, path=None, target=None):
        location = self.modules.get(fullname)
        if location is None:
            return None
        return importlib.util.spec_from_file_location(fullname, location)

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
