"""English and Chinese stay in step: lessons, hints, harness messages, likely causes."""

from __future__ import annotations

import os
import string
import subprocess
import sys

import pytest

from katas._harness import known_errors, messages_zh
from tests.project_copy import MANIFEST, ROOT


def english_messages() -> dict[str, object]:
    """messages.py as English, whatever language this process chose."""
    import ast

    tree = ast.parse((ROOT / "katas/_harness/messages.py").read_text(encoding="utf-8"))
    found = {}
    for node in tree.body:
        if (
            isinstance(node, ast.Assign)
            and isinstance(node.targets[0], ast.Name)
            and node.targets[0].id.isupper()
        ):
            found[node.targets[0].id] = ast.literal_eval(node.value)
    return found


def fields(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name is not None}


def test_every_harness_message_has_a_chinese_twin_with_the_same_fields():
    english = english_messages()
    chinese = {k: v for k, v in vars(messages_zh).items() if k.isupper()}
    assert sorted(set(english) - set(chinese)) == [], "translate these in katas/_harness/messages_zh.py"
    assert sorted(set(chinese) - set(english)) == [], "messages_zh.py has names messages.py lacks"
    for name, text in english.items():
        if isinstance(text, str):
            assert fields(chinese[name]) == fields(text), f"{name}: the Chinese text uses other {{fields}}"
        elif name == "STATUS_MARKS":
            assert chinese[name] == text, "the status marks are shared, not translated"
        else:
            assert chinese[name].keys() == text.keys(), f"{name}: translate every entry"


def test_every_known_error_has_a_chinese_cause():
    fragments = [fragment for fragment, _ in known_errors.KNOWN_ERRORS]
    assert sorted(set(fragments) - set(known_errors.KNOWN_ERRORS_ZH)) == []
    assert sorted(set(known_errors.KNOWN_ERRORS_ZH) - set(fragments)) == []


@pytest.mark.parametrize("exercise", MANIFEST.exercises, ids=lambda ex: ex.qualname)
def test_every_hint_is_in_both_languages(exercise):
    assert len(exercise.hints_zh) == len(exercise.hints), (
        f"{exercise.qualname}: add hints_zh to katas/manifest.toml, one Chinese hint per English hint"
    )
    for text in exercise.hints_zh:
        assert any("\u4e00" <= ch <= "\u9fff" for ch in text), f"{exercise.qualname}: {text!r} is not Chinese"


@pytest.mark.parametrize("folder", ["", *(f"katas/{k.name}/" for k in MANIFEST.katas)])
def test_every_readme_has_a_chinese_twin_and_they_link_each_other(folder):
    english, chinese = ROOT / folder / "README.md", ROOT / folder / "README.zh-CN.md"
    assert chinese.is_file(), f"{folder}README.zh-CN.md is missing"
    assert "README.zh-CN.md" in english.read_text(encoding="utf-8"), (
        f"{folder}README.md must link to the Chinese one"
    )
    text = chinese.read_text(encoding="utf-8")
    assert "README.md" in text.replace("README.zh-CN.md", ""), (
        f"{folder}README.zh-CN.md must link to README.md"
    )
    assert sum("\u4e00" <= ch <= "\u9fff" for ch in text) > 200, f"{folder}README.zh-CN.md is hardly Chinese"


def run(args: list[str], language: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "KATAS_LANG": language}
    return subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True)


def test_a_kata_run_speaks_chinese_with_katas_lang_zh():
    kata = MANIFEST.katas[0]
    result = run(["-m", "pytest", f"katas/{kata.name}", "-p", "no:cacheprovider", "-q", "-x"], "zh")
    first = kata.exercises[0].name
    assert f"待完成：在 katas/{kata.name}/{kata.module}.py 中实现 {first}()" in result.stdout
    assert "torch-katas 进度" in result.stdout and "个练习" in result.stdout


def test_hint_speaks_chinese_and_falls_back_to_english_without_it():
    exercise = MANIFEST.exercises[0]
    zh = run(["-m", "katas", "hint", exercise.qualname, "--all"], "zh")
    assert f"{exercise.qualname} 提示 1/{len(exercise.hints)}" in zh.stdout
    en = run(["-m", "katas", "hint", exercise.qualname, "--all"], "en")
    assert f"{exercise.qualname} hint 1/{len(exercise.hints)}: {exercise.hints[0]}" in en.stdout


def test_bad_input_errors_speak_chinese():
    result = run(["-m", "katas", "hint", "no_such_exercise_at_all"], "zh")
    assert result.returncode == 2 and result.stderr.startswith("错误：")


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"KATAS_LANG": "zh"}, "zh"),
        ({"KATAS_LANG": "en", "LANG": "zh_CN.UTF-8"}, "en"),
        ({"LANG": "zh_CN.UTF-8"}, "zh"),
        ({"LC_ALL": "zh_TW.UTF-8"}, "zh"),
        ({"LANG": "de_DE.UTF-8"}, "en"),
        ({}, "en"),
    ],
)
def test_the_language_comes_from_katas_lang_then_the_locale(monkeypatch, env, expected):
    from katas._harness import language

    for name in ("KATAS_LANG", "LC_ALL", "LC_MESSAGES", "LANG", "LANGUAGE"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(language.locale, "getlocale", lambda: (None, None))
    assert language.current() == expected
