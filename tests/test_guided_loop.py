"""`python -m katas` with no command: the guided loop, watching the first unfinished exercise."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

from tests.load import scaled
from tests.project_copy import MANIFEST, make_copy

WAIT = scaled(120)  # seconds, longer on a loaded machine (tests/load.py)


def test_no_command_says_how_to_leave_then_watches_the_first_unfinished_exercise(tmp_path):
    copy = make_copy(tmp_path / "project")
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("KATAS_LANG", None)
    process = subprocess.Popen(
        [sys.executable, "-m", "katas"],
        cwd=copy,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    first = MANIFEST.katas[0]
    try:
        read = []
        for line in process.stdout:  # stdout is a pipe: watch does not clear the screen
            read.append(line)
            if line.startswith("Watching "):
                break
        process.send_signal(signal.SIGINT)
        rest, _ = process.communicate(timeout=WAIT)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    shown = "".join(read)
    assert shown.startswith("torch-katas: the guided loop."), shown
    assert "Ctrl-C leaves it." in shown.splitlines()[0]
    for command in ("list", "hint EXERCISE", "solution EXERCISE", "reset KATA_OR_EXERCISE", "grade"):
        assert command in shown.splitlines()[1]
    assert f"torch-katas watch: {first.name}" in shown
    assert f"TODO: implement {first.exercises[0].name}()" in shown
    assert "Stopped watching." in rest
    assert process.returncode == 0
