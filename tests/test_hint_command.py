"""`python -m katas hint`: progressive hints, exercise names, and clean errors."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import pytest

from katas._harness import hints
from katas._harness.cli import build_parser, main
from katas._harness.manifest import load

ROOT = Path(__file__).resolve().parents[1]


def run_hint(capsys, tmp_path: Path, *args: str) -> tuple[int, str, str]:
    (tmp_path / "katas").mkdir(exist_ok=True)
    (tmp_path / "katas" / "manifest.toml").write_text(
        (ROOT / "katas" / "manifest.toml").read_text(encoding="utf-8"), encoding="utf-8"
    )
    load.cache_clear()
    code = main(["--root", str(tmp_path), "hint", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_each_request_shows_one_more_hint_then_stays_on_the_last(capsys, tmp_path):
    exercise = load(ROOT).exercise("grad_at")
    shown = [run_hint(capsys, tmp_path, "grad_at")[1] for _ in range(len(exercise.hints) + 1)]
    for number, text in enumerate(exercise.hints, start=1):
        assert f"01_autograd/grad_at hint {number}/{len(exercise.hints)}: {text}" in shown[number - 1]
    assert "That was the last hint" in shown[-1]
    assert (tmp_path / hints.STATE_FILE).is_file()


def test_qualified_and_bare_names_share_progress(capsys, tmp_path):
    run_hint(capsys, tmp_path, "01_autograd/grad_at")
    assert "hint 2/" in run_hint(capsys, tmp_path, "grad_at")[1]


def test_all_shows_every_hint_without_advancing(capsys, tmp_path):
    code, out, _ = run_hint(capsys, tmp_path, "grad_at", "--all")
    assert code == 0 and out.count("01_autograd/grad_at hint") == len(load(ROOT).exercise("grad_at").hints)
    assert "hint 1/" in run_hint(capsys, tmp_path, "grad_at")[1]


def test_a_damaged_state_file_starts_over(capsys, tmp_path):
    (tmp_path / hints.STATE_FILE).parent.mkdir()
    (tmp_path / hints.STATE_FILE).write_text("{not json", encoding="utf-8")
    assert "hint 1/" in run_hint(capsys, tmp_path, "grad_at")[1]


def test_an_unknown_name_lists_close_matches_and_exits_2(capsys, tmp_path):
    code, out, err = run_hint(capsys, tmp_path, "grad_att")
    assert code == 2 and out == ""
    assert "did you mean: 01_autograd/grad_at" in err


def test_the_real_command_prints_no_traceback_for_a_bad_name():
    result = subprocess.run(
        [sys.executable, "-m", "katas", "hint", "nothing_like_it"], cwd=ROOT, capture_output=True, text=True
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("error: ")


def test_a_kata_or_its_file_means_its_current_exercise_as_in_reset(capsys, tmp_path):
    """hint and reset read KATA_OR_EXERCISE alike: a kata's file names the kata."""
    first = load(ROOT).kata("01_autograd").exercises[0]
    for target in ("01_autograd", "katas/01_autograd/", "katas/01_autograd/autograd_basics.py"):
        code, out, _ = run_hint(capsys, tmp_path, target)
        assert code == 0 and out.startswith(f"{first.qualname} hint "), (target, out)
    assert load(ROOT).target("katas/01_autograd/autograd_basics.py") == (load(ROOT).kata("01_autograd"), None)


def test_every_command_help_page_says_what_it_does_and_names_its_arguments():
    commands = build_parser().get_default("commands")
    for name, command in commands.choices.items():
        assert command.description, f"`{name} --help` has no description"
        for action in command._actions:  # argparse has no public list of a parser's arguments
            if action.dest != "help":
                assert action.help, f"`{name} --help`: {action.dest} has no help text"
            if action.default not in (None, False, argparse.SUPPRESS) and action.help:
                assert "default" in action.help, f"`{name} --help`: {action.dest} hides its default"


def test_a_stray_argument_shows_its_command_usage_not_the_top_level(capsys):
    with pytest.raises(SystemExit) as stopped:
        main(["list", "extra"])
    err = capsys.readouterr().err
    assert stopped.value.code == 2
    assert "usage: " in err and " list [-h]" in err and "unrecognized arguments: extra" in err
