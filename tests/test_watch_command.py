"""`python -m katas watch`: a real watcher process, real saves, the new result read back."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
import time

import pytest

from tests.load import scaled
from tests.project_copy import MANIFEST, ROOT, katas_command, make_copy, solve, stub_file
from tests.prose import english_prose

WAIT = scaled(60)  # seconds, longer on a loaded machine (tests/load.py)


class Watching:
    """A `katas watch` process whose output is read as it comes."""

    def __init__(self, copy, *args: str, language: str | None = None, sigint_ignored: bool = False):
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        if language:
            env["KATAS_LANG"] = language
        self.process = subprocess.Popen(
            [sys.executable, "-m", "katas", "watch", *args, "--no-clear"],
            cwd=copy,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            preexec_fn=(lambda: signal.signal(signal.SIGINT, signal.SIG_IGN)) if sigint_ignored else None,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.process.stdout:
            self.lines.put(line)

    def expect(self, text: str) -> str:
        """Wait for a line containing `text`; return everything read up to it."""
        deadline = time.monotonic() + WAIT
        read: list[str] = []
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=0.2)
            except queue.Empty:
                continue
            read.append(line)
            self.seen.append(line)
            if text in line:
                return "".join(read)
        raise AssertionError(f"watch never printed {text!r}; it printed:\n{''.join(self.seen)}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()


@pytest.fixture
def copy(tmp_path):
    return make_copy(tmp_path / "project")


@pytest.fixture
def watching(copy):
    started = []

    def start(*args: str, language: str | None = None, sigint_ignored: bool = False) -> Watching:
        started.append(Watching(copy, *args, language=language, sigint_ignored=sigint_ignored))
        return started[-1]

    yield start
    for watcher in started:
        watcher.stop()


def save(path, text: str) -> None:
    path.write_text(text, encoding="utf-8")


def test_a_save_shows_the_current_exercise_result(copy, watching):
    watcher = watching("01_autograd")
    first = watcher.expect("Watching katas/01_autograd/")
    assert "· 01_autograd/grad_at: todo" in first
    assert "TODO: implement grad_at() in katas/01_autograd/autograd_basics.py" in first
    assert first.count("python -m katas hint 01_autograd/grad_at") == 1, first

    solve(copy, "grad_at")
    result = watcher.expect("· 01_autograd/partial_derivatives: todo")
    assert "1/10 done" in result + watcher.expect("Watching")


def test_a_wrong_answer_shows_its_failure_message_and_the_hint_command(copy, watching):
    watcher = watching("01_autograd")
    watcher.expect("Watching")
    solve(copy, "grad_at")
    stub = stub_file(copy)
    save(stub, stub.read_text(encoding="utf-8").replace("return t.grad.item()", "return f(t).item()"))
    shown = watcher.expect("Stuck? python -m katas hint 01_autograd/grad_at")
    assert "✗ 01_autograd/grad_at: failing" in shown
    assert "Likely cause: you returned f(1.0) = 6, the value, not the gradient" in shown
    assert shown.split("------")[-1].count("python -m katas hint") == 1, shown


def test_in_chinese_every_screen_is_chinese_apart_from_code(copy, watching):
    """KATAS_LANG=zh: the header, a TODO, a wrong answer's message and cause, the footer."""
    watcher = watching("01_autograd", language="zh")
    screens = watcher.expect("正在监视 katas/01_autograd/")
    assert "待完成：在 katas/01_autograd/autograd_basics.py 中实现 grad_at()" in screens
    solve(copy, "grad_at")
    stub = stub_file(copy)
    save(stub, stub.read_text(encoding="utf-8").replace("return t.grad.item()", "return f(t).item()"))
    screens += watcher.expect("可能的原因")
    screens += watcher.expect("正在监视")
    assert "它返回了 6，但测试期望的是 5。" in screens
    english = [f"{line!r}: {english_prose(line)}" for line in screens.splitlines() if english_prose(line)]
    assert not english, "English prose in a Chinese watch:\n" + "\n".join(english)


def test_a_save_by_rename_is_seen(copy, watching):
    """Editors like vim write a new file and rename it over the old one."""
    watcher = watching("01_autograd")
    watcher.expect("Watching")
    stub = stub_file(copy)
    solve(copy, "grad_at")
    text = stub.read_text(encoding="utf-8")
    solved_elsewhere = copy / "elsewhere.py"
    save(solved_elsewhere, text)
    save(stub, text.replace("return t.grad.item()", "raise NotImplementedError('grad_at')"))
    watcher.expect("· 01_autograd/grad_at: todo")
    time.sleep(0.3)
    os.replace(stub, stub.with_name(stub.name + "~"))
    os.replace(solved_elsewhere, stub)
    watcher.expect("· 01_autograd/partial_derivatives: todo")


def test_broken_files_are_shown_and_watching_goes_on(copy, watching):
    watcher = watching("01_autograd", "--timeout", "4")
    watcher.expect("Watching")
    stub = stub_file(copy)
    clean = stub.read_text(encoding="utf-8")

    save(stub, clean + "\ndef oops(:\n")
    assert "does not compile" in watcher.expect("Watching")

    save(stub, clean.replace('raise NotImplementedError("grad_at")', "while True:\n        pass"))
    assert "took longer than 4 s and was stopped" in watcher.expect("Watching")

    save(stub, clean + "\nimport os\nos._exit(0)\n")
    assert "ended without a result" in watcher.expect("Watching")

    save(stub, clean)
    assert "TODO: implement grad_at()" in watcher.expect("Watching")


def test_a_file_that_cannot_run_keeps_the_last_count_and_says_so(copy, watching):
    watcher = watching("01_autograd")
    watcher.expect("Watching")
    solve(copy, "grad_at")
    assert "1/10 done" in watcher.expect("· 01_autograd/partial_derivatives: todo")
    watcher.expect("Watching")
    stub = stub_file(copy)
    save(stub, stub.read_text(encoding="utf-8") + "\ndef oops(:\n")
    shown = watcher.expect("Watching")
    assert "does not compile" in shown
    assert "1/10 done" in shown and "0/10 done" not in shown
    assert "(the count of the last run that ran)" in shown


@pytest.mark.parametrize("sigint_ignored", [False, True], ids=["plain", "started-with-sigint-ignored"])
def test_ctrl_c_stops_cleanly(watching, sigint_ignored):
    """Also when the parent ignored SIGINT (a job started with `&` from a script; an xdist worker
    after some tests): Python installs no KeyboardInterrupt then, and watch sets it itself."""
    watcher = watching("01_autograd", sigint_ignored=sigint_ignored)
    watcher.expect("Watching")
    watcher.process.send_signal(signal.SIGINT)
    watcher.expect("Stopped watching.")
    assert watcher.process.wait(timeout=WAIT) == 0


def test_without_a_kata_it_starts_at_the_first_unfinished_one(copy):
    first = MANIFEST.katas[0]
    solved = first.stub_path(ROOT / "solutions").read_text(encoding="utf-8")
    save(first.stub_path(copy / "katas"), solved)
    result = katas_command(copy, "watch", "--once", "--no-clear", timeout=WAIT * 2)
    following = MANIFEST.katas[1].name
    assert f"torch-katas watch: {following}" in result.stdout, result.stdout + result.stderr
    assert result.returncode == 1  # that kata is not done


def test_an_unknown_kata_is_one_line_and_exit_2(copy):
    result = katas_command(copy, "watch", "01_autogard")
    assert result.returncode == 2
    assert result.stderr.startswith("error: no kata named '01_autogard'; did you mean: 01_autograd")
    assert result.stderr.count("\n") == 1


def test_without_a_kata_it_moves_on_when_the_kata_is_done(copy, watching):
    first, following = MANIFEST.katas[0], MANIFEST.katas[1]
    watcher = watching()
    assert f"torch-katas watch: {first.name}" in watcher.expect("Watching")
    save(first.stub_path(copy / "katas"), first.stub_path(ROOT / "solutions").read_text(encoding="utf-8"))
    shown = watcher.expect(f"torch-katas watch: {following.name}")
    assert f"Every exercise of {first.name} is done" in shown
