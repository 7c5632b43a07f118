"""Structural checks of the kata set: the manifest against the files (`python -m katas check`).

Works on source text (ast) only, so it runs in a blink and never imports torch.
"""

from __future__ import annotations

import ast
from pathlib import Path

from .manifest import Kata, ManifestError, read

LEARNER_FILES = {"README.md", "README.zh-CN.md"}
DOC_LINK = "https://docs.pytorch.org/"
GIVEN = "Given:"  # the first word of a finished helper's docstring (see _is_given)


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
    notebook = f"{kata.name}.ipynb"  # python -m katas notebooks (katas/_harness/notebooks.py)
    expected = {stub.name, f"test_{kata.module}.py", notebook} | LEARNER_FILES
    lesson = (folder / "README.md").read_text(encoding="utf-8") if (folder / "README.md").is_file() else ""
    for path in sorted(folder.iterdir()):
        figure = path.suffix == ".png" and f"]({path.name})" in lesson  # a figure the lesson shows
        if path.name not in expected and path.name != "__pycache__" and not figure:
            found.append(f"katas/{kata.name}/{path.name}: a kata folder holds only {sorted(expected)}")
    if not (folder / f"test_{kata.module}.py").is_file():
        found.append(f"katas/{kata.name}/test_{kata.module}.py: missing; tests are named after the module")
    for path in sorted((root / "solutions" / kata.name).iterdir()):
        if path.name not in (stub.name, "__pycache__"):
            found.append(f"solutions/{kata.name}/{path.name}: solutions mirror only {stub.name}")
    stub_funcs, solution_funcs = _public_functions(stub), _public_functions(solution)
    names = [ex.name for ex in kata.exercises]
    given = [name for name, node in stub_funcs.items() if _is_given(node)]
    for name in given:
        found.extend(_given_problems(kata, stub.name, stub_funcs.pop(name), solution_funcs.get(name), names))
    if list(stub_funcs) != names:
        found.append(
            f"katas/{kata.name}/{stub.name}: public functions {list(stub_funcs)} must be the manifest's "
            f"exercises in order, {names}"
        )
    extra = sorted(set(solution_funcs) - set(stub_funcs) - set(given))
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


def _is_given(node: ast.FunctionDef | ast.ClassDef) -> bool:
    """Finished code handed to the learner (a habit practised in an earlier kata), not an exercise."""
    return isinstance(node, ast.FunctionDef) and (ast.get_docstring(node) or "").startswith(GIVEN)


def _given_problems(
    kata: Kata, file: str, func: ast.FunctionDef, other: ast.FunctionDef | None, exercises: list[str]
) -> list[str]:
    where = f"katas/{kata.name}/{file}:{func.lineno} {func.name}"
    if func.name in exercises:
        return [
            f"{where}: its docstring starts with {GIVEN!r} (finished code), but the manifest lists it "
            "as an exercise; remove one of the two"
        ]
    if other is None:
        return [f"{where}: given code needs the same function in solutions/{kata.name}/{file}"]
    if _code(func) != _code(other):
        return [
            f"{where}: given code must read as the solution's (docstrings aside); copy it from "
            f"solutions/{kata.name}/{file}"
        ]
    return []


def _code(func: ast.FunctionDef) -> str:
    body = func.body[1:] if ast.get_docstring(func) is not None else func.body
    parts = [*func.decorator_list, func.args, func.returns, *body]
    return "\n".join(ast.dump(part) for part in parts if part is not None)


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
