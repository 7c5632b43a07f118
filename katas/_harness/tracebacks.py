"""Tracebacks that end at the learner's line, not deep inside torch."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from _pytest._code import Traceback

TORCH_DIR = str(Path(torch.__file__).resolve().parent)


def hide_torch_frames(item: pytest.Item) -> None:
    """Drop torch's own frames from this test's tracebacks (the error message stays)."""
    original = getattr(item, "_traceback_filter", None)
    if original is None:
        return

    def traceback_filter(excinfo: pytest.ExceptionInfo) -> Traceback:
        traceback = original(excinfo)
        kept = [entry for entry in traceback if not str(entry.path).startswith(TORCH_DIR)]
        return Traceback(kept) if kept else traceback

    item._traceback_filter = traceback_filter


def short_repr(item: pytest.Item, excinfo: pytest.ExceptionInfo):
    """An unexpected error in one line per frame, from the test down to the learner's line.

    pytest's long style prints each frame's whole function, so the learner would read the
    stub's docstring again above their own line; the short style prints the failing line only.
    """

    def frames(info: pytest.ExceptionInfo) -> Traceback:
        traceback = info.traceback.cut(path=item.path).filter(info)
        kept = [entry for entry in traceback if not str(entry.path).startswith(TORCH_DIR)]
        return Traceback(kept) if kept else traceback

    return excinfo.getrepr(style="short", tbfilter=frames)
