"""The lessons hold what they show: every docstring example runs, no string is silently dropped."""

from __future__ import annotations

import ast
import doctest
import importlib
import importlib.util
import random
import sys
import tempfile

import pytest
import torch

from katas._harness.importer import KataModuleFinder
from tests.project_copy import MANIFEST, ROOT

# --- dead strings ---------------------------------------------------------------------------------

PYTHON_FILES = sorted(
    path
    for folder in ("katas", "solutions", "tests")
    for path in (ROOT / folder).rglob("*.py")
    if ".katas" not in path.parts
) + [ROOT / "conftest.py"]

DOCSTRING_OWNERS = (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)


def dead_strings(tree: ast.AST) -> list[ast.Expr]:
    """Bare string or f-string statements that are not a docstring: code that does nothing.

    The usual cause is a message split over two lines without parentheses:
    `call = f"first half "` then `f"second half"` on the next line, which drops the
    second half. A docstring is the first statement of a module, class or function.
    """
    found = []
    for node in ast.walk(tree):
        for field in ("body", "orelse", "finalbody"):
            statements = getattr(node, field, None)
            if not isinstance(statements, list):
                continue
            for position, statement in enumerate(statements):
                is_docstring = position == 0 and field == "body" and isinstance(node, DOCSTRING_OWNERS)
                if isinstance(statement, ast.Expr) and not is_docstring and is_string(statement.value):
                    found.append(statement)
    return found


def is_string(node: ast.expr) -> bool:
    return isinstance(node, ast.JoinedStr) or (isinstance(node, ast.Constant) and isinstance(node.value, str))


def test_no_python_file_has_a_dead_string_statement():
    found = []
    for path in PYTHON_FILES:
        for statement in dead_strings(ast.parse(path.read_text(encoding="utf-8"))):
            found.append(f"{path.relative_to(ROOT)}:{statement.lineno}: {ast.unparse(statement)[:80]}")
    assert not found, (
        "these string statements do nothing (a string split over two lines without "
        "parentheses?):\n" + "\n".join(found)
    )


def test_the_dead_string_check_finds_a_split_f_string():
    code = 'def call(x):\n    """Doc."""\n    text = f"{x} and "\n    f"{x}"\n    return text\n'
    assert [s.lineno for s in dead_strings(ast.parse(code))] == [4]
    code = 'def graph(x):\n    return x, f"{x} and "\n    f"more"\n'
    assert [s.lineno for s in dead_strings(ast.parse(code))] == [3]
    assert dead_strings(ast.parse('"""Module."""\nclass A:\n    """Class."""\n')) == []


# --- docstring examples -----------------------------------------------------------------------------
# The examples live in the stubs' docstrings, the learner's spec. They run against the reference
# solution, in the stub module's namespace: an example may use only what the learner's file imports.

FLAGS = doctest.ELLIPSIS  # `...` stands for digits that vary or tensors on the meta device


def examples():
    for kata in MANIFEST.katas:
        tree = ast.parse(kata.stub_path(ROOT / "katas").read_text(encoding="utf-8"))
        for node in tree.body:
            for name, doc, line in docstrings_of(node):
                yield pytest.param(kata, name, doc, line, id=f"{kata.name}/{name}")


def docstrings_of(node: ast.stmt, prefix: str = ""):
    if not isinstance(node, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
        return
    name = prefix + node.name
    doc = ast.get_docstring(node)
    if doc and ">>>" in doc:
        yield name, doc, node.body[0].lineno
    for child in node.body:
        yield from docstrings_of(child, prefix=name + ".")


@pytest.fixture(scope="module")
def namespaces():
    """Per kata: the stub module's globals, with every name the stub defines taken from the solution."""
    finder = KataModuleFinder.for_manifest(MANIFEST, ROOT / "solutions")
    finder.install()
    registered = []
    try:
        found = {}
        for kata in MANIFEST.katas:
            solution = importlib.import_module(kata.module)
            spec = importlib.util.spec_from_file_location(
                f"_stub_{kata.module}", kata.stub_path(ROOT / "katas")
            )
            stub = importlib.util.module_from_spec(spec)
            # Importable by its name, as any module is: torch 2.5's dynamo imports the module of
            # each global it traces (a doctest's lambda has the stub's __name__ as its module).
            sys.modules[spec.name] = stub
            registered.append(spec.name)
            spec.loader.exec_module(stub)
            names = dict(vars(stub))
            for name, value in vars(stub).items():
                if getattr(value, "__module__", None) == stub.__name__:
                    names[name] = getattr(solution, name)
            found[kata.name] = names
        yield found
    finally:
        for name in registered:
            sys.modules.pop(name, None)
        finder.uninstall()


@pytest.mark.parametrize(("kata", "name", "doc", "line"), list(examples()))
def test_docstring_example_runs_against_the_solution(
    kata, name, doc, line, namespaces, monkeypatch, tmp_path
):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # the examples' tempfile.mkdtemp() land here
    # DataLoader workers started by spawn or forkserver (Python 3.14's default) import the
    # solution module by name, without the parent's finder.
    monkeypatch.syspath_prepend(str(kata.stub_path(ROOT / "solutions").parent))
    path = kata.stub_path(ROOT / "katas")
    test = doctest.DocTestParser().get_doctest(
        doc, dict(namespaces[kata.name]), f"{kata.name}/{name}", str(path), line - 1
    )
    report: list[str] = []
    runner = doctest.DocTestRunner(optionflags=FLAGS)
    python_state = random.getstate()
    with torch.random.fork_rng(devices=[]):
        result = runner.run(test, out=report.append)
    random.setstate(python_state)
    assert result.failed == 0, (
        f"the example in {name}'s docstring ({path.relative_to(ROOT)}) does not hold for the "
        "reference solution; fix the example or mark an illustrative value as such:\n" + "".join(report)
    )
