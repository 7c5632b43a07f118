"""Values that come back from learner code are checked for exact types before any comparison."""

from __future__ import annotations

import collections
import inspect
import pickle
import subprocess
import sys
import textwrap
from typing import NamedTuple
from unittest import mock

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from katas._harness.importer import KataModuleFinder
from katas._harness.values import check_returned
from tests.project_copy import make_copy, replace_definition, solve

Failed = pytest.fail.Exception


def refusal(value) -> str:
    with pytest.raises(Failed) as info:
        check_returned(value, call="f(x)")
    return str(info.value)


class FakeFloat(float):
    def __eq__(self, other):
        return True

    __hash__ = float.__hash__


class FakeTensor(torch.Tensor):
    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        return torch.tensor(True)


class EqualToAnything:
    def __eq__(self, other):
        return True


class Point(NamedTuple):
    x: float
    y: float


class LyingPoint(NamedTuple):
    x: float

    def __eq__(self, other):
        return True


class Pairs(Dataset):
    def __len__(self):
        return 4

    def __getitem__(self, i):
        return torch.tensor([float(i)])


HONEST = [
    None,
    True,
    3,
    2.5,
    "text",
    b"bytes",
    torch.zeros(2),
    nn.Parameter(torch.zeros(2)),
    [1.0, [2.0, (3, {"a": torch.ones(1)})]],
    {1, 2},
    torch.Size([2, 3]),
    torch.zeros(2, 2).max(dim=1),  # torch.return_types.max
    nn.Linear(2, 2).state_dict(),  # an OrderedDict
    collections.defaultdict(list),
    collections.namedtuple("Pair", "a b")(1.0, 2.0),
    Point(1.0, 2.0),
    np.float64(1.5),
    np.float32(1.5),
    nn.Linear(2, 2),
    Pairs(),
    DataLoader(Pairs(), batch_size=2),
    torch.optim.SGD(nn.Linear(1, 1).parameters(), lr=0.1),
    torch.float32,
    torch.device("cpu"),
    (i for i in range(3)),
    print,
]


@pytest.mark.parametrize("value", HONEST, ids=lambda v: type(v).__name__)
def test_honest_values_pass(value):
    check_returned(value, call="f(x)")


def test_a_float_subclass_is_refused_by_name():
    assert refusal(FakeFloat(1.0)) == (
        "Called f(x).\nIt returned a FakeFloat, a subclass of float; return a plain float (the tests "
        "compare exact types)"
    )


def test_a_tensor_subclass_is_refused_even_without_methods_of_its_own():
    assert "a FakeTensor, a subclass of torch.Tensor; return a plain torch.Tensor" in refusal(
        torch.zeros(2).as_subclass(FakeTensor)
    )
    assert "a subclass of torch.Tensor" in refusal(torch.zeros(2).as_subclass(type("T", (torch.Tensor,), {})))


def test_a_lie_deep_in_a_container_is_found_and_located():
    assert "a FakeFloat (at result[1]['lr'][0])" in refusal([1.0, {"lr": [FakeFloat(0.1)]}])
    assert "(at result.keys()[0])" in refusal({FakeFloat(0.1): 1})
    assert "a FakeFloat (at result[1])" in refusal(Point(1.0, FakeFloat(2.0)))


def test_classes_that_override_comparisons_are_refused():
    assert "an EqualToAnything, whose class defines __eq__" in refusal(EqualToAnything())
    assert "a LyingPoint, a subclass of tuple" in refusal(LyingPoint(1.0))
    assert "whose class defines __eq__" in refusal(mock.ANY)  # the standard library's test tools too
    assert "whose class defines" in refusal(pytest.approx(1.0))


def test_a_class_that_claims_a_trusted_module_is_judged_by_its_code():
    claims_torch = type("Claims", (), {"__module__": "torch.nn", "__eq__": lambda self, other: True})
    assert "whose class defines __eq__" in refusal(claims_torch())


def test_cycles_and_deep_nesting_end():
    looped: list = [1.0]
    looped.append(looped)
    check_returned(looped, call="f(x)")
    deep: list = [FakeFloat(1.0)]
    for _ in range(500):
        deep = [deep]
    check_returned(deep, call="f(x)")  # beyond MAX_DEPTH nothing is compared anyway


# --- the importer guards each exercise -------------------------------------------------------

KATA_MODULE = """
import torch
from torch.utils.data import Dataset


class Lie(float):
    def __eq__(self, other):
        return True


def honest(x: float, *, scale: float = 2.0) -> float:
    \"\"\"Doubles x.\"\"\"
    return x * scale


def lying(x):
    return Lie(x)


def counted(n):
    for i in range(n):
        yield float(i) if i < 2 else Lie(i)


def stub(x):
    raise NotImplementedError("TODO")


class Squares(Dataset):
    def __len__(self):
        return 6

    def __getitem__(self, i):
        return torch.tensor([float(i * i)])

    @staticmethod
    def describe():
        return Lie(0)


def not_an_exercise():
    return Lie(0)
"""
EXERCISES = ("honest", "lying", "counted", "stub", "Squares", "missing")


@pytest.fixture
def kata_module(tmp_path):
    (tmp_path / "values_kata.py").write_text(textwrap.dedent(KATA_MODULE), encoding="utf-8")
    finder = KataModuleFinder({"values_kata": tmp_path / "values_kata.py"}, {"values_kata": EXERCISES})
    finder.install()
    try:
        import values_kata

        yield values_kata
    finally:
        finder.uninstall()


def test_guarded_exercises_keep_their_name_signature_and_docstring(kata_module):
    assert kata_module.honest(2.0) == 4.0
    assert kata_module.honest.__name__ == "honest" and kata_module.honest.__doc__ == "Doubles x."
    assert str(inspect.signature(kata_module.honest)) == "(x: float, *, scale: float = 2.0) -> float"
    assert kata_module.honest.__wrapped__.__code__.co_filename.endswith("values_kata.py")


def test_a_guarded_exercise_refuses_a_lying_return_value(kata_module):
    with pytest.raises(Failed, match="Called lying\\(...\\).\nIt returned a Lie, a subclass of float"):
        kata_module.lying(1.0)
    assert isinstance(kata_module.not_an_exercise(), float)  # only manifest exercises are guarded


def test_each_item_a_generator_yields_is_checked(kata_module):
    items = kata_module.counted(5)
    assert inspect.isgenerator(items)
    assert [next(items), next(items)] == [0.0, 1.0]
    with pytest.raises(Failed, match="counted\\(...\\), item 2 it yielded"):
        next(items)


def test_class_exercises_are_guarded_method_by_method(kata_module):
    with pytest.raises(Failed, match="Called describe"):
        kata_module.Squares.describe()
    assert kata_module.Squares()[3].item() == 9.0


def test_an_untouched_stub_still_raises_from_its_own_line(kata_module):
    with pytest.raises(NotImplementedError) as info:
        kata_module.stub(1)
    assert info.traceback[-1].name == "stub"  # the harness's TODO line reads the last frame


def test_guarded_functions_pickle_by_reference(kata_module):
    assert pickle.loads(pickle.dumps(kata_module.honest)) is kata_module.honest
    assert pickle.loads(pickle.dumps(kata_module.Squares.describe)) is kata_module.Squares.describe
    assert pickle.loads(pickle.dumps(kata_module.Squares())).__class__ is kata_module.Squares


def test_a_guarded_dataset_feeds_dataloader_workers(kata_module):
    loader = DataLoader(kata_module.Squares(), batch_size=2, num_workers=2)
    assert torch.cat(list(loader)).flatten().tolist() == [0.0, 1.0, 4.0, 9.0, 16.0, 25.0]


# --- end to end: a kata run -------------------------------------------------------------------


def test_a_kata_test_fails_an_exercise_that_returns_a_lying_float(tmp_path):
    copy = make_copy(tmp_path / "project")
    solve(copy, "grad_at")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "katas/01_autograd",
            "-q",
            "-p",
            "no:cacheprovider",
            "-k",
            "grad_at",
        ],
        cwd=copy,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout[-3000:]
    replace_definition(
        copy,
        "grad_at",
        textwrap.dedent(
            """
            class AlwaysEqual(float):
                def __eq__(self, other):
                    return True

                __hash__ = float.__hash__


            def grad_at(f, x):
                return AlwaysEqual(0.0)
            """
        ).lstrip(),
    )
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "katas/01_autograd",
            "-q",
            "-p",
            "no:cacheprovider",
            "-k",
            "grad_at",
        ],
        cwd=copy,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 1, result.stdout[-3000:]
    assert "It returned an AlwaysEqual, a subclass of float; return a plain float" in result.stdout
    assert " passed" not in result.stdout.splitlines()[-1]
