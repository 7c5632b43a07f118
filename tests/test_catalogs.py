"""The message catalogs: complete, in step with the source, compiled, and Chinese where they say so.

The kata tests' teaching messages are gettext messages (katas/_harness/i18n.py); the
catalogs live in katas/_harness/locale and `python -m katas catalog` maintains them
(katas/_harness/catalogs.py). For every converted kata (catalogs.CONVERTED) and the harness:
the .po holds exactly the messages the source marks, every one translated with the same
{fields}, the committed .mo is the compiled .po, no English prose is left outside `_()`,
and every mutant's message read with KATAS_LANG=zh is Chinese apart from code, the
description of the call included.
"""

from __future__ import annotations

import ast
import gettext
import string
import tempfile
from collections import defaultdict
from pathlib import Path

import pytest
from hypothesis import settings

from katas._harness import catalogs, i18n, messages, messages_zh
from katas._harness import plugin as _plugin  # noqa: F401  (registers the katas-check profile)
from katas._harness.runner import run_pytest
from tests.kata_runs import ROOT
from tests.mutants import all_mutants
from tests.project_copy import MANIFEST
from tests.prose import english_prose

DOMAINS = catalogs.domains()
LANGUAGES = catalogs.languages()


def fields(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name is not None}


def po_messages(domain: str, language: str) -> dict[str, object]:
    return {m.id: m for m in catalogs.read(catalogs.po_path(domain, language)) if m.id}


def untranslated_lines(message: str) -> list[str]:
    return [f"{line!r}  <- {english_prose(line)}" for line in message.splitlines() if english_prose(line)]


@pytest.mark.parametrize(
    ("line", "prose"),
    [
        ("调用了 grad_at(f, 1.0)，其中 f(x) = sin(x)。", False),
        ("调用了 grad_at(f, 1.0) with f(x) = sin(x)。", True),
        ("调用了 save_checkpoint(path, model, optimizer, epoch=1)。", False),
        ("调用了 fold_tree((a, (b, c)), combine) then more words。", True),
        ("它返回了 tensor([1., 2.], requires_grad=True)，但测试期望的是 tensor([2., 3.])。", False),
        ("可能的原因：用 `with torch.no_grad(): p.clamp_(...)` 就地修改 p。", False),
        ("RuntimeError: a leaf Variable that requires grad is being used in an in-place operation.", False),
        ("请检查 model.parameters() 和 AccumulateGrad 节点；x 是 None。", False),
        ("It returned 6, but the tests expected 5.", True),
        ("可能的原因：you returned the value", True),
        ("可能的原因：你的 loss is 错误", True),
        ("Likely cause: 返回值", True),
        ("调用了 f(x)。 Called twice", True),
        ("可能的原因：x.grad accumulated f' + f''; use torch.autograd.grad", True),
    ],
)
def test_the_prose_check_tells_english_from_code(line, prose):
    assert bool(untranslated_lines(line)) is prose, untranslated_lines(line)


# --- the catalogs ---------------------------------------------------------------------------


def test_the_converted_katas_are_katas_and_every_kata_is_converted():
    names = [kata.name for kata in MANIFEST.katas]
    assert [k for k in catalogs.CONVERTED if k not in names] == []
    missing = [k for k in names if k not in catalogs.CONVERTED]
    assert missing == [], f"{missing}: mark its messages with _() and translate them (README, Adding a kata)"
    assert LANGUAGES == ["zh"], "a new language needs its place in katas/_harness/language.py too"


@pytest.mark.parametrize("domain", DOMAINS)
def test_the_catalogs_hold_exactly_the_messages_of_the_source(domain):
    source = [m.id for m in catalogs.extract(domain, ROOT) if m.id]
    assert source, f"no message of {domain} is marked with _(): is it converted?"
    template = [m.id for m in catalogs.read(catalogs.pot_path(domain)) if m.id]
    for language in LANGUAGES:
        po = list(po_messages(domain, language))
        missing, stale = set(source) - set(po), set(po) - set(source)
        assert not missing and not stale, (
            f"{catalogs.po_path(domain, language).relative_to(ROOT)} is out of step with the source: "
            f"run `python -m katas catalog {domain}` and translate the new entries.\n"
            f"missing: {sorted(missing)}\nstale: {sorted(stale)}"
        )
    assert template == source, f"run `python -m katas catalog {domain}` to extract {domain}.pot again"


@pytest.mark.parametrize("domain", DOMAINS)
@pytest.mark.parametrize("language", LANGUAGES)
def test_every_message_is_translated_with_the_same_fields(domain, language):
    for msgid, message in po_messages(domain, language).items():
        assert message.string and not message.fuzzy, f"{domain}.po ({language}): translate {msgid!r}"
        assert fields(message.string) == fields(msgid), (
            f"{domain}.po ({language}): {msgid!r} and {message.string!r} use different {{fields}}"
        )
        assert msgid.endswith("\n") == message.string.endswith("\n")
        if language == "zh":
            assert not untranslated_lines(message.string), (
                f"{domain}.po: English left in {message.string!r}: {untranslated_lines(message.string)}"
            )


@pytest.mark.parametrize("domain", DOMAINS)
@pytest.mark.parametrize("language", LANGUAGES)
def test_the_committed_mo_is_the_compiled_po(domain, language):
    po = catalogs.po_path(domain, language)
    with po.with_suffix(".mo").open("rb") as handle:
        committed = dict(gettext.GNUTranslations(handle)._catalog)
    expected = {m.id: m.string for m in catalogs.read(po) if m.id and m.string and not m.fuzzy}
    committed.pop("", None)
    assert committed == expected, (
        f"run `python -m katas catalog {domain}` (or pybabel compile) and commit the .mo"
    )


def test_a_message_in_several_catalogs_has_one_translation():
    """i18n.py looks a message up in every catalog at once: two translations would clash."""
    for language in LANGUAGES:
        seen: dict[str, set[str]] = defaultdict(set)
        for domain in DOMAINS:
            for msgid, message in po_messages(domain, language).items():
                seen[msgid].add(message.string)
        assert {k: v for k, v in seen.items() if len(v) > 1} == {}


def glossary() -> dict[str, tuple[str, list[str]]]:
    """tests/test_glossary.py's GLOSSARY, read without importing that module (it reads every lesson)."""
    tree = ast.parse((ROOT / "tests/test_glossary.py").read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "GLOSSARY":
            return ast.literal_eval(node.value)
    raise AssertionError("tests/test_glossary.py has no GLOSSARY")


def test_the_catalogs_use_the_glossary_terms():
    texts = [(d, m.string) for d in DOMAINS for m in po_messages(d, "zh").values()]
    variants = [v for _, vs in glossary().values() for v in vs]
    wrong = [f"{d}: {v!r} in {t!r}" for v in variants for d, t in texts if v in t]
    assert not wrong, "use the terms of tests/test_glossary.py:\n" + "\n".join(wrong)


def test_the_lookup_is_cheap_and_falls_back_to_english(monkeypatch):
    monkeypatch.setenv("KATAS_LANG", "zh")
    assert i18n._("Called {call}.") == "调用了 {call}。"
    assert i18n._("a sentence no catalog knows") == "a sentence no catalog knows"
    monkeypatch.setenv("KATAS_LANG", "en")
    assert i18n._("Called {call}.") == "Called {call}."


# --- the converted test files: every message marked, nothing left in English ----------------

MESSAGE_KEYWORDS = {"why", "note", "observed", "mistakes"}


def kata_test_file(kata: str) -> Path:
    return ROOT / "katas" / kata / f"test_{MANIFEST.kata(kata).module}.py"


def parents(tree: ast.AST) -> dict[ast.AST, ast.AST]:
    return {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}


def called_name(node: ast.AST) -> str | None:
    if isinstance(node, ast.Call):
        return node.func.id if isinstance(node.func, ast.Name) else getattr(node.func, "attr", None)
    return None


def in_code_context(node: ast.AST, up: dict[ast.AST, ast.AST]) -> bool:
    """Inside `_()`/`N_()`, a docstring or a decorator: not a message to check. A `call`
    description is read like any message: its code stays, its words are translated."""
    child = node
    while child in up:
        parent = up[child]
        if called_name(parent) in ("_", "N_"):
            return True
        if isinstance(parent, ast.Expr) and isinstance(child, ast.Constant):  # a docstring
            return True
        if isinstance(parent, ast.Compare):  # a library's error text matched with `in`
            return True
        if isinstance(parent, (ast.FunctionDef, ast.ClassDef)) and child in parent.decorator_list:
            return True
        child = parent
    return False


@pytest.mark.parametrize("kata", catalogs.CONVERTED)
def test_a_converted_test_file_marks_its_messages_properly(kata):
    tree = ast.parse(kata_test_file(kata).read_text(encoding="utf-8"))
    problems = []
    for node in ast.walk(tree):
        name = called_name(node)
        if name == "N_" and not (len(node.args) == 1 and isinstance(node.args[0], ast.Constant)):
            problems.append(f"line {node.lineno}: N_() takes one literal string")
        if name == "_" and (len(node.args) != 1 or isinstance(node.args[0], (ast.JoinedStr, ast.BinOp))):
            problems.append(
                f"line {node.lineno}: _() takes one literal (or an N_() constant), never an f-string"
            )
        if isinstance(node, ast.Name) and node.id == "_" and isinstance(node.ctx, ast.Store):
            problems.append(
                f"line {node.lineno}: `_` is the translation function; name this variable otherwise"
            )
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("kata", catalogs.CONVERTED)
def test_a_converted_test_file_has_no_english_prose_outside_the_catalog(kata):
    tree = ast.parse(kata_test_file(kata).read_text(encoding="utf-8"))
    up = parents(tree)
    left = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and not in_code_context(node, up):
            text = node.value
            if isinstance(up.get(node), ast.JoinedStr):
                text = text.strip()
            if english_prose(text) and len(text.split()) >= 2:
                left.append(f"line {node.lineno}: {text!r}")
    assert not left, (
        f"katas/{kata}: mark these messages with _() and translate them "
        "(README.md, Messages and translations):\n" + "\n".join(left)
    )


# --- every mutant's message, read in Chinese ------------------------------------------------


class FailureMessages:
    """The text of each failure a learner reads: a test's own message, or the harness's causes."""

    def __init__(self) -> None:
        self.messages: dict[str, tuple[str, str]] = {}  # nodeid: (exercise, text)

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if not report.failed or report.nodeid in self.messages:
            return
        longrepr = report.longrepr
        style = getattr(getattr(longrepr, "reprtraceback", None), "style", None)
        if style == "value":  # pytest.fail(message, pytrace=False): the lesson itself
            text = report.longreprtext
        else:  # an error raised by PyTorch or Python: its traceback is code; the causes are ours
            text = "\n".join(content for _, content, _ in getattr(longrepr, "sections", []))
        exercise = dict(report.user_properties).get("katas_exercise", "")
        self.messages[report.nodeid] = (exercise, text)


# Fewer random cases than a learner's run: a mutant is caught in the first few, and this test
# reads the messages of the tests that fail, not whether each mutant fails.
settings.register_profile("katas-i18n", parent=settings.get_profile("katas-check"), max_examples=8)


def mutant_batches(kata: str) -> list[list]:
    """The kata's mutants in rounds: the k-th mutant of every exercise together."""
    per_exercise = defaultdict(list)
    for mutant in all_mutants():
        if mutant.kata == kata:
            per_exercise[mutant.exercise].append(mutant)
    rounds = max(map(len, per_exercise.values()), default=0)
    return [[ms[k] for ms in per_exercise.values() if k < len(ms)] for k in range(rounds)]


@pytest.mark.parametrize("kata", catalogs.CONVERTED)
def test_every_mutant_message_is_chinese_apart_from_code(kata, monkeypatch):
    monkeypatch.setenv("KATAS_LANG", "zh")
    # messages.py chose its language when this process imported it (English, tests/conftest.py):
    # a learner's run with KATAS_LANG=zh reads messages_zh.py's text.
    for name, text in vars(messages_zh).items():
        if name.isupper():
            monkeypatch.setattr(messages, name, text)
    info = MANIFEST.kata(kata)
    solution = info.stub_path(ROOT / "solutions").read_text(encoding="utf-8")
    english = []
    checked = 0
    for batch in mutant_batches(kata):
        with tempfile.TemporaryDirectory() as folder:
            source = info.stub_path(Path(folder))
            source.parent.mkdir(parents=True)
            imports = [f"from {m.module} import {m.function} as {m.exercise}  # noqa" for m in batch]
            source.write_text("\n".join([solution, *imports, ""]), encoding="utf-8")
            failures = FailureMessages()
            only = " or ".join(m.exercise for m in batch)  # test names hold their exercise's name
            run_pytest(
                [str(ROOT / "katas" / kata), f"--katas-source={folder}", f"--rootdir={ROOT}", "-k", only],
                profile="katas-i18n",
                plugins=[failures],
            )
        names = {m.exercise: m.function for m in batch}
        for nodeid, (_, text) in failures.messages.items():
            checked += 1
            bad = untranslated_lines(text)
            if bad:
                mutant = next((f for ex, f in names.items() if f"test_{ex}" in nodeid), "?")
                english.append(f"{nodeid} (mutant {mutant}):\n  " + "\n  ".join(bad))
    assert checked, f"no mutant of {kata} failed a test"
    assert not english, "English prose in these messages (KATAS_LANG=zh):\n" + "\n".join(english)
