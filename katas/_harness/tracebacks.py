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
