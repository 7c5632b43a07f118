"""`gpu` and `multi_gpu` markers: skip without CUDA, or fail when KATAS_REQUIRE_GPU=1."""

from __future__ import annotations

import os

import pytest

from . import messages as msg

REQUIRE_GPU_ENV = "KATAS_REQUIRE_GPU"
MISSING_GPU = pytest.StashKey[str]()


def needs_gpu(item: pytest.Item) -> bool:
    return item.get_closest_marker("gpu") is not None or item.get_closest_marker("multi_gpu") is not None


def mark_gpu_skips(items: list[pytest.Item]) -> None:
    import torch  # only when a GPU test was collected: keeps other runs' start-up fast

    devices = torch.cuda.device_count() if torch.cuda.is_available() else 0
    require = os.environ.get(REQUIRE_GPU_ENV, "") == "1"
    for item in items:
        if item.get_closest_marker("multi_gpu") is not None and devices < 2:
            reason = msg.NEEDS_MULTI_GPU
        elif item.get_closest_marker("gpu") is not None and devices < 1:
            reason = msg.NEEDS_CUDA
        else:
            continue
        if require:
            item.stash[MISSING_GPU] = reason
        else:
            item.add_marker(pytest.mark.skip(reason=reason))


def fail_if_required_gpu_missing(item: pytest.Item) -> None:
    reason = item.stash.get(MISSING_GPU, None)
    if reason is not None:
        pytest.fail(msg.REQUIRED_GPU_MISSING.format(reason=reason), pytrace=False)
