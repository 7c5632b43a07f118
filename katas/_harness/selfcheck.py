"""Structural checks of the kata set: the manifest against the files (`python -m katas check`).

Works on source text (ast) only, so it runs in a blink and never imports torch.
"""

from __future__ import annotations

import ast
from pathlib import Path

from .manifest import Kata, ManifestError, read

LEARNER_FILES = {"README.md", "README.zh-CN.md"}
DOC_LINK = "https://docs.pytorch.org/"


def problems(root: Path) -> list[str]:
    try:
        manifest = read(root)
    except ManifestError as err:
        return [str(err)]
    found = []
    katas_dir, solutions_dir = root / "katas", root / "solutions"
    listed = {k.name for k in manifest.katas}
    for folder in _kata_dirs(katas_dir):
        if folder.name not in listed:
            found.append(
                f"katas/{folder.name}: not in katas/manifest.toml; add a [[kata]] entry or remove it"
            )
    for folder in _kata_dirs(solutions_dir):
        if folder.name not in listed:
            found.append(f"solutions/{folder.name}: mirrors no kata in the manifest; remove it")
    for kata in manifest.katas:
        found.extend(_kata_problems(root, kata))
    return found


def _kata_dirs(parent: Path) -> list[Path]:
    if not parent.is_dir():
        return []
    return sorted(p for p in parent.iterdir() if p.is_dir() and p.name[:2].isdigit())


def _kata_problems(root: Path, kata: Kata) -> list[str]:
    folder = root / "katas" / kata.name
    stub, solution = kata.stub_path(root / "katas"), kata.stub_path(root / "solutions")
    found = []
    if not folder.is_dir():
        return [f"katas/{kata.name}: listed in the manifest but the folder is missing"]
    if not (folder / "README.md").is_file():
        found.append(f"katas/{kata.name}/README.md: missing; every kata needs its lesson")
    if not stub.is_file():
        return found + [f"katas/{kata.name}/{stub.name}: missing; the manifest names module '{kata.module}'"]
    if not solution.is_file():
        return found + [f"solutions/{kata.name}/{stub.name}: missing; every stub needs a reference solution"]
    expected = {stub.name, f"test_{kata.module}.py"} | LEARNER_FILES
    for path in sorted(folder.iterdir()):
        if path.name not in expected and path.name != "__pycache__":
            found.append(f"katas/{kata.name}/{path.name}: a kata folder holds only {sorted(expected)}")
    if not (folder / f"test_{kata.module}.py").is_file():
        found.append(f"katas/{kata.name}/test_{kata.module}.py: missing; tests are named after the module")
    for path in sorted((root / "solutions" / kata.name).iterdir()):
        if path.name not in (stub.name, "__pycache__"):
            found.append(f"solutions/{kata.name}/{path.name}: solutions mirror only {stub.name}")
    stub_funcs, solution_funcs = _public_functions(stub), _public_functions(solution)
    names = [ex.name for ex in kata.exercises]
    if list(stub_funcs) != names:
        found.append(
            f"katas/{kata.name}/{stub.name}: public functions {list(stub_funcs)} must be the manifest's "
            f"exercises in order, {names}"
        )
    extra = sorted(set(solution_funcs) - set(stub_funcs))
    if extra:
        found.append(
            f"solutions/{kata.name}/{stub.name}: public names {extra} are not in the stub; "
            "prefix helpers with _ or add them to the stub"
        )
    for name, func in stub_funcs.items():
        where = f"katas/{kata.name}/{stub.name}:{func.lineno} {name}"
        found.extend(f"{where}: {p}" for p in _stub_problems(func))
        other = solution_funcs.get(name)
        if other is None:
            found.append(f"{where}: no function of that name in solutions/{kata.name}/{stub.name}")
        elif _signature(func) != _signature(other):
            found.append(
                f"{where}: signature differs from the solution's: {_signature(func)} vs {_signature(other)}"
            )
    return found


def _public_functions(path: Path) -> dict[str, ast.FunctionDef]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    return {
        node.name: node
        for node in tree.body
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)) and not node.name.startswith("_")
    }


def _signature(func: ast.FunctionDef) -> str:
    if isinstance(func, ast.ClassDef):
        return f"class {func.name}"
    returns = f" -> {ast.unparse(func.returns)}" if func.returns else ""
    return f"({ast.unparse(func.args)}){returns}"


def _stub_problems(func: ast.FunctionDef) -> list[str]:
    if isinstance(func, ast.ClassDef):
        return []  # a class stub is checked by its methods' tests
    found = []
    doc = ast.get_docstring(func) or ""
    if ">>>" not in doc:
        found.append("docstring needs a small example (a >>> line)")
    if DOC_LINK not in doc:
        found.append(f"docstring needs a link to the PyTorch docs ({DOC_LINK}...)")
    args = [*func.args.posonlyargs, *func.args.args, *func.args.kwonlyargs]
    if any(a.annotation is None for a in args) or func.returns is None:
        found.append("every parameter and the return value need type hints")
    body = func.body[1:] if doc else func.body
    raises = (
        len(body) == 1 and isinstance(body[0], ast.Raise) and "NotImplementedError" in ast.unparse(body[0])
    )
    if not raises:
        found.append("an untouched stub's body is only `raise NotImplementedError(...)`")
    return found
