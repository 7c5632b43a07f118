"""Untouched stubs: a one-line TODO instead of a traceback, reached as fast as possible."""

from __future__ import annotations

import functools
from pathlib import Path

import pytest

from . import messages as msg
from .session import TODO_PROPERTY, KataSession


class StubNotImplemented(BaseException):
    """An untouched stub, raised past Hypothesis so that it stops at the first example.

    Hypothesis catches Exception subclasses and shrinks them, which for a stub that
    fails on every input costs seconds per test; a BaseException ends the test at once.
    """


class TodoFailed(pytest.fail.Exception):
    """A test failed because it reached an untouched stub: report the one TODO line."""

    def __init__(self, todo: str):
        super().__init__(todo, pytrace=False)


def stop_hypothesis_at_stubs(item: pytest.Item, session: KataSession) -> None:
    handle = getattr(getattr(item, "obj", None), "hypothesis", None)
    inner = getattr(handle, "inner_test", None)
    if inner is None or getattr(inner, "_katas_wrapped", False):
        return

    @functools.wraps(inner)
    def inner_test(*args, **kwargs):
        __tracebackhide__ = True
        try:
            return inner(*args, **kwargs)
        except NotImplementedError as err:
            todo = session.todo_line(pytest.ExceptionInfo.from_exception(err))
            if todo is None:
                raise
            raise StubNotImplemented(todo) from None

    inner_test._katas_wrapped = True
    handle.inner_test = inner_test


def as_todo_failure(error: BaseException, session: KataSession) -> TodoFailed | None:
    if isinstance(error, StubNotImplemented):
        return TodoFailed(str(error))
    if isinstance(error, NotImplementedError):
        todo = session.todo_line(pytest.ExceptionInfo.from_exception(error))
        return TodoFailed(todo) if todo is not None else None
    return None


def todo_report(item: pytest.Item, call: pytest.CallInfo, session: KataSession) -> pytest.TestReport | None:
    """The report of a test stopped by an untouched stub: its TODO line, no traceback to render."""
    excinfo = call.excinfo
    if excinfo is None:
        return None
    if excinfo.errisinstance(TodoFailed):
        todo = str(excinfo.value)
    else:
        todo = session.todo_line(excinfo)  # a stub reached from a fixture
    if todo is None:
        return None
    return pytest.TestReport(
        item.nodeid,
        item.location,
        dict.fromkeys(item.keywords, 1),
        "failed",
        todo,
        call.when,
        [(f"Captured {key} {when}", content) for when, key, content in item._report_sections],
        call.duration,
        call.start,
        call.stop,
        user_properties=[*item.user_properties, (TODO_PROPERTY, True)],
    )


def explain_import_failure(report: pytest.CollectReport, stub: Path, session: KataSession) -> None:
    """Replace pytest's import traceback with what a learner needs when their file is broken."""
    shown = session.shown_path(stub)
    try:
        compile(stub.read_text(encoding="utf-8"), str(stub), "exec")
    except SyntaxError as err:
        prefix = f"line {err.lineno}: "
        pointer = " " * (len(prefix) + max((err.offset or 1) - 1, 0)) + "^"
        text = (err.text or "").rstrip("\n")
        report.longrepr = msg.STUB_SYNTAX_ERROR.format(
            path=shown, prefix=prefix, text=text, pointer=pointer, error=err.msg
        )
        return
    if str(stub) in report.longreprtext or str(shown) in report.longreprtext:
        report.longrepr = msg.STUB_IMPORT_ERROR.format(path=shown) + "\n" + report.longreprtext
