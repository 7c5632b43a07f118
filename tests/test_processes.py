"""The multi-process runner behind distributed kata tests: results, failures, stubs and hangs."""

from __future__ import annotations

import multiprocessing
import os
import time

import pytest
import torch
import torch.distributed as dist

from katas._harness.importer import KataModuleFinder
from katas._harness.processes import run_ranks
from tests.prose import english_prose

Failed = pytest.fail.Exception
FAKE_STUB_MODULE = "_katas_fake_stub_module"


# Targets are module-level functions so that a spawned child can load them from this file.


def sum_of_ranks(rank, world_size, scale):
    total = torch.tensor([float(rank)])
    dist.all_reduce(total)
    return rank, world_size, dist.get_rank(), torch.get_num_threads(), total.item() * scale


def fail_on_rank_1_while_rank_0_waits(rank, world_size):
    if rank == 1:
        raise ValueError("bad shard on rank 1")
    dist.all_reduce(torch.zeros(1))  # rank 1 never joins: blocks until rank 0 is stopped or gloo gives up


def all_reduce_on_rank_0_only(rank, world_size):
    if rank == 0:
        dist.all_reduce(torch.ones(1))  # rank 1 never calls it, and exits
    return rank


def call_fake_stub(rank, world_size):
    import _katas_fake_stub_module

    return _katas_fake_stub_module.todo(rank)


def raise_not_implemented_outside_a_stub(rank, world_size):
    raise NotImplementedError("Cannot copy out of meta tensor; no data!")


def fail_a_check(rank, world_size):
    pytest.fail(f"Called f() on rank {rank}. It returned 3, but the tests expected 4.", pytrace=False)


def exit_on_rank_0(rank, world_size):
    if rank == 0:
        os._exit(3)
    return "rank 1 finished"


def sleep_forever(rank, world_size):
    time.sleep(600)


def return_a_lambda(rank, world_size):
    return lambda: rank


def test_results_come_back_in_rank_order_from_one_process_group(tmp_path):
    results = run_ranks(sum_of_ranks, 10.0, tmp_path=tmp_path)
    assert results == [(0, 2, 0, 1, 10.0), (1, 2, 1, 1, 10.0)]


def test_a_childs_exception_fails_the_test_with_its_type_message_and_traceback(tmp_path):
    start = time.monotonic()
    with pytest.raises(Failed) as info:
        run_ranks(fail_on_rank_1_while_rank_0_waits, tmp_path=tmp_path, timeout=20, call="f()")
    message = str(info.value)
    assert message.startswith("Rank 1 of 2 raised ValueError: bad shard on rank 1 while running f():")
    assert "in fail_on_rank_1_while_rank_0_waits" in message  # the child's traceback
    assert 'raise ValueError("bad shard on rank 1")' in message
    assert time.monotonic() - start < 10, "rank 0, blocked in all_reduce, was left running to the deadline"
    assert multiprocessing.active_children() == []


# One spawned child is enough to prove the spawn path (finder installed, target loaded from its
# file); each one imports torch afresh, which takes seconds.
def test_a_collective_that_another_rank_never_called_is_named(tmp_path):
    with pytest.raises(Failed) as info:
        run_ranks(all_reduce_on_rank_0_only, tmp_path=tmp_path, timeout=20)
    message = str(info.value)
    assert message.startswith("Rank 0 of 2 raised RuntimeError")
    assert "rank(s) [1] finished while rank 0 still waited in a collective" in message


@pytest.mark.parametrize(("method", "world_size"), [("fork", 2), ("spawn", 1)])
def test_an_untouched_stub_in_a_child_raises_not_implemented_with_its_origin(tmp_path, method, world_size):
    if method not in multiprocessing.get_all_start_methods():
        pytest.skip(f"no {method} start method on this platform")
    stub = tmp_path / "fake_kata.py"
    stub.write_text("def todo(rank):\n    raise NotImplementedError('todo')\n", encoding="utf-8")
    finder = KataModuleFinder({FAKE_STUB_MODULE: stub})
    finder.install()
    try:
        with pytest.raises(NotImplementedError) as info:
            run_ranks(call_fake_stub, tmp_path=tmp_path, method=method, world_size=world_size)
    finally:
        finder.uninstall()
    assert info.value.stub_origin == (str(stub), "todo")


def test_not_implemented_from_outside_a_stub_is_an_ordinary_failure(tmp_path):
    with pytest.raises(Failed) as info:
        run_ranks(raise_not_implemented_outside_a_stub, tmp_path=tmp_path)
    assert "raised NotImplementedError: Cannot copy out of meta tensor" in str(info.value)


def test_a_failed_check_in_a_child_shows_its_message_alone(tmp_path):
    with pytest.raises(Failed) as info:
        run_ranks(fail_a_check, tmp_path=tmp_path)
    first = str(info.value).splitlines()[0]
    assert first in (f"Called f() on rank {r}. It returned 3, but the tests expected 4." for r in (0, 1))
    assert "Traceback" not in str(info.value)


def test_a_crashed_child_is_reported_with_its_exit_code(tmp_path):
    with pytest.raises(Failed) as info:
        run_ranks(exit_on_rank_0, tmp_path=tmp_path)
    assert "Rank 0 of 2 exited with code 3 without a result" in str(info.value)


def test_a_hung_child_is_stopped_at_the_deadline(tmp_path):
    start = time.monotonic()
    with pytest.raises(Failed) as info:
        run_ranks(sleep_forever, tmp_path=tmp_path, timeout=1, call="g()")
    assert str(info.value).startswith("Rank(s) [0, 1] of 2 did not finish within 1 s while running g()")
    assert time.monotonic() - start < 6
    assert multiprocessing.active_children() == []


def test_a_result_that_cannot_be_pickled_is_explained(tmp_path):
    with pytest.raises(Failed) as info:
        run_ranks(return_a_lambda, tmp_path=tmp_path)
    assert "cannot be pickled to travel back to the test process" in str(info.value)


def test_spawn_needs_a_module_level_function(tmp_path):
    def local(rank, world_size):
        return rank

    with pytest.raises(ValueError, match="defined at module level"):
        run_ranks(local, tmp_path=tmp_path, method="spawn")


def test_in_chinese_a_crash_and_a_hang_are_explained_in_chinese(tmp_path, monkeypatch):
    monkeypatch.setenv("KATAS_LANG", "zh")
    (tmp_path / "crash").mkdir()
    (tmp_path / "hang").mkdir()
    with pytest.raises(Failed) as crashed:
        run_ranks(exit_on_rank_0, tmp_path=tmp_path / "crash", call="g()")
    with pytest.raises(Failed) as hung:
        run_ranks(sleep_forever, tmp_path=tmp_path / "hang", timeout=1, call="g()")
    assert "共 2 个 rank，其中 rank 0 在运行 g() 时以退出码 3 结束" in str(crashed.value)
    assert str(hung.value).startswith("共 2 个 rank，其中 rank [0, 1] 在运行 g() 时没有在 1 秒内结束")
    for message in (str(crashed.value), str(hung.value)):
        assert not [line for line in message.splitlines() if english_prose(line)], message
