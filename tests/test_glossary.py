"""One Chinese term per concept, in every Chinese text a learner reads."""

from __future__ import annotations

import ast

import pytest

from tests.project_copy import MANIFEST, ROOT

# concept: (the one Chinese term, variants that must not appear anywhere)
GLOSSARY = {
    "stop-gradient (torch.no_grad, detach)": ("阻断梯度", ["截断梯度", "切断梯度", "停止梯度"]),
    "clip, clipping (gradients or values)": ("裁剪", ["剪裁", "梯度截断", "截断到 ["]),
    "register (a parameter, buffer or submodule)": ("注册", ["登记"]),
}


def is_chinese(text: str) -> bool:
    return any("\u4e00" <= ch <= "\u9fff" for ch in text)


def chinese_texts() -> list[tuple[str, str]]:
    """(where, text) for every Chinese lesson, hint, message and likely cause."""
    found = []
    files = [ROOT / "README.zh-CN.md", *(ROOT / f"katas/{k.name}/README.zh-CN.md" for k in MANIFEST.katas)]
    files.append(ROOT / "katas/manifest.toml")  # hints_zh
    for path in files:
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if is_chinese(line):
                found.append((f"{path.relative_to(ROOT)}:{number}", line))
    for path in sorted((ROOT / "katas/_harness").rglob("*.py")):  # messages_zh.py, known_errors.py, ...
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and is_chinese(node.value):
                found.append((f"{path.relative_to(ROOT)}:{node.lineno}", node.value))
    return found


TEXTS = chinese_texts()


def test_the_chinese_texts_are_found():
    places = {where.split(":")[0] for where, _ in TEXTS}
    assert "katas/manifest.toml" in places and "katas/_harness/messages_zh.py" in places
    assert sum(place.endswith("README.zh-CN.md") for place in places) == len(MANIFEST.katas) + 1


@pytest.mark.parametrize("concept", GLOSSARY)
def test_each_concept_has_one_chinese_term(concept):
    term, variants = GLOSSARY[concept]
    assert any(term in text for _, text in TEXTS), f"nothing uses {term!r} for {concept}: drop the entry?"
    wrong = [
        f"{where}: {variant!r} in {text.strip()[:60]!r}"
        for where, text in TEXTS
        for variant in variants
        if variant in text
    ]
    assert not wrong, f"{concept} is {term!r} everywhere (tests/test_glossary.py):\n" + "\n".join(wrong)
