"""torch-katas's pytest11 entry point: switches the kata plugin on inside a torch-katas tree only.

pytest loads this module in every run of an environment where torch-katas is installed. It
imports nothing heavy: where no `katas/manifest.toml` is found (an unrelated project), pytest
runs as if torch-katas were not installed. Where one is found, above a path given to pytest or
one folder below it (a course repository with the handout in a subfolder, run from its top),
the plugin is registered under its module name before any conftest loads, so a conftest that
names it too adds nothing.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import pytest

PLUGIN = "katas._harness.plugin"
MANIFEST = Path("katas") / "manifest.toml"
# The root this module found; the plugin falls back to it when --katas-root is not given.
FOUND_ROOT = pytest.StashKey[Path]()
SEVERAL_ROOTS = (
    "pytest found {count} torch-katas folders under {where} ({names}); "
    "run pytest on one of them, e.g. pytest {first}/katas"
)


def find_root(starts: Iterable[Path]) -> Path | None:
    """The folder holding katas/manifest.toml: at or above a start, else just below it."""
    starts = [start.resolve() for start in starts]
    for start in starts:
        for folder in (start, *start.parents):
            if (folder / MANIFEST).is_file():
                return folder
    for start in starts:
        if not start.is_dir():
            continue
        below = sorted(child for child in start.iterdir() if (child / MANIFEST).is_file())
        if len(below) > 1:
            names = ", ".join(child.name for child in below)
            raise pytest.UsageError(
                SEVERAL_ROOTS.format(count=len(below), where=start, names=names, first=below[0].name)
            )
        if below:
            return below[0]
    return None


def _starts(config: pytest.Config) -> list[Path]:
    """Where this run looks: the paths given to pytest, else testpaths, else the current folder."""
    invoked = config.invocation_params.dir
    given = [arg.split("::")[0] for arg in config.known_args_namespace.file_or_dir or []]
    if given:
        return [invoked / arg for arg in given if arg]
    testpaths = [config.rootpath / path for path in config.getini("testpaths")]
    return [*testpaths, invoked]


@pytest.hookimpl(tryfirst=True)
def pytest_load_initial_conftests(early_config: pytest.Config) -> None:
    root = find_root(_starts(early_config))
    if root is None:
        return
    early_config.stash[FOUND_ROOT] = root
    # By module name: a conftest's `pytest_plugins = [PLUGIN]` or `-p PLUGIN` then adds nothing.
    early_config.pluginmanager.import_plugin(PLUGIN)
