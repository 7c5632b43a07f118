"""The submission policy refuses each class of attack on the grader and passes every honest file."""

from __future__ import annotations

import ast
import os
import re
import string
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from katas._harness import policy
from tests.project_copy import MANIFEST, ROOT, make_copy, stub_file

# Each attack marks the line that must be flagged with `# <-`.
ATTACKS = {
    "import-not-allowed": [
        "import sys  # <-",
        "import importlib  # <-",
        "from gc import get_objects  # <-",
        "import ctypes.util  # <-",
        "from _pytest.outcomes import Skipped  # <-",
        "from unittest import SkipTest  # <-",
        "import torch._dynamo  # <-",
        "from torch._dynamo import explain  # <-",
        "from torch.utils.cpp_extension import load_inline  # <-",
        "from torch import hub  # <-",
        "import numpy.ctypeslib  # <-",
        "from numpy.lib.stride_tricks import as_strided  # <-",
        "import numpy as np\nnp.lib.stride_tricks.as_strided(np.zeros(1), (1 << 30,), (1,))  # <-",
        "from torch import *  # <-",
        "from . import capstone  # <-",
        "import katas._harness.plugin  # <-",
        "import torch\ng = torch.fx.symbolic_trace  # <-",
    ],
    "private-name": [
        "import torch\nt = torch._C  # <-",
        "from torch import _C  # <-",
        "def f(x):\n    return x._base  # <-",
        "import torch\nfrom torch.utils.data import DataLoader\nDataLoader._get_iterator  # <-",
        "import torch\ntorch._dynamo.reset()  # <-",  # only torch._dynamo.explain is let through
        "import torch\nc = torch._dynamo.explain._torchdynamo_orig_callable  # <-",
    ],
    "dunder-attribute": [
        "def f(g, h):\n    g.__code__ = h.__code__  # <-",
        "def f(e):\n    return e.__traceback__  # <-",
        "def f(x):\n    return x.__class__.__mro__  # <-",
        "def f():\n    return ().__class__  # <-",
        "def f(m):\n    return m.__dict__  # <-",
        "def f(g):\n    return g.__globals__  # <-",
        "class V:\n    pass\n\n\nV.__eq__ = lambda a, b: True  # <-",
        "def f(o):\n    return getattr(o, '__closure__')  # <-",
        "def f(o):\n    return '{0.__globals__}'.format(o)  # <-",
        "def f(o):\n    return {'__eq__': o}  # <-",
        "def f(o):\n    match o:\n        case object(__class__=c):  # <-\n            return c",
    ],
    "dunder-name": [
        "b = __builtins__  # <-",
        "m = __import__('os')  # <-",
        "def f():\n    return __loader__  # <-",
        "class V:\n    __eq__ = lambda a, b: True  # <-",
        "def f(**kw):\n    return dict(__eq__=kw)  # <-",
    ],
    "escape-attribute": [
        "def f(frame):\n    return frame.f_back  # <-",
        "def f(tb):\n    return tb.tb_frame  # <-",
        "def f(gen):\n    return gen.gi_frame.f_locals  # <-",
        "import os\nos.sys.modules  # <-",
        "import torch\nm = torch.serialization.pickle  # <-",
        "import numpy as np\nnp.sys  # <-",
        "import os\nos.system('id')  # <-",
        "import os\nos.execv('/bin/sh', [])  # <-",
        "import os\nos.environ['KATAS_REQUIRE_GPU'] = '0'  # <-",
        "from operator import attrgetter  # <-",
        "import operator\nget = operator.attrgetter('__class__')  # <-",
        "import typing\ntyping.get_type_hints  # <-",
        "import dataclasses\nC = dataclasses.make_dataclass('C', [])  # <-",
        "import torch\ntorch.nn.modules.module.register_module_forward_hook(print)  # <-",
        "import torch\ntorch.ops.load_library('evil.so')  # <-",
        "import string\nstring.Formatter().format('{0.x}', 1)  # <-",
        "def f(cell):\n    return cell.cell_contents  # <-",
        "from abc import ABCMeta  # <-",
    ],
    "dynamic-code": [
        "eval('1')  # <-",
        "exec('x = 1')  # <-",
        "c = compile('1', 'f', 'eval')  # <-",
        "def f():\n    breakpoint()  # <-",
        "run = exec  # <-",
    ],
    "reflection": [
        "def f():\n    return globals()  # <-",
        "def f():\n    return locals()  # <-",
        "import torch\nvars(torch)  # <-",
    ],
    "computed-attribute": [
        "def f(o, name):\n    return getattr(o, name)  # <-",
        "def f(o):\n    return getattr(o, 'a' + 'b')  # <-",
        "def f(o, v):\n    setattr(o, 'x' + '', v)  # <-",
        "g = getattr  # <-",
        "def f(o, template):\n    return template.format(o)  # <-",
        "def f(o):\n    return str.format('{}', o)  # <-",
    ],
    "class-construction": [
        "X = type('X', (float,), {})  # <-",
        "def f():\n    t = type(1.0)\n    return t('X', (float,), {})  # <-",
        "X = type(float)('X', (float,), {})  # <-",
        "class M:\n    pass\n\n\nclass X(metaclass=M):  # <-\n    pass",
        "def f(base):\n    class X(base):  # <-\n        pass\n    return X",
        "def make():\n    return object\n\n\nclass X(make()):  # <-\n    pass",
        "t = type  # <-",
    ],
    "subclass-of-value-type": [
        "class F(float):  # <-\n    pass",
        "class L(list):  # <-\n    pass",
        "class D(dict):  # <-\n    pass",
        "import torch\n\n\nclass T(torch.Tensor):  # <-\n    pass",
        "from torch import Tensor\n\n\nclass T(Tensor):  # <-\n    pass",
        "from torch import nn\n\n\nclass P(nn.Parameter):  # <-\n    pass",
        "import torch.nn as nn\n\n\nclass P(nn.parameter.Parameter):  # <-\n    pass",
        "import numpy as np\n\n\nclass A(np.ndarray):  # <-\n    pass",
        "class S(str):  # <-\n    pass",
    ],
    "dunder-method": [
        "class V:\n    def __eq__(self, other):  # <-\n        return True",
        "class V:\n    def __float__(self):  # <-\n        return 1.0",
        "class V:\n    def __bool__(self):  # <-\n        return True",
        "class V:\n    def __hash__(self):  # <-\n        return 0",
        "class V:\n    @classmethod\n    def __torch_function__(cls, func, types, args=(), kw=None):  # <-\n"
        "        return True",
        "class V:\n    def __getattr__(self, name):  # <-\n        return 1",
        "class V:\n    def __reduce__(self):  # <-\n        return (print, ())",
        "class V:\n    def __init_subclass__(cls):  # <-\n        pass",
        "class V:\n    def __new__(cls):  # <-\n        return 1.0",
        "def __getattr__(name):  # <-\n    return 1",
    ],
    "patches-a-library": [
        "import torch\ntorch.allclose = lambda *a, **k: True  # <-",
        "from torch import nn\nnn.Module.train = print  # <-",
        "import torch\ntorch.nn.functional.mse_loss = print  # <-",
        "import numpy as np\nnp.random.seed = print  # <-",
        "import torch\ntorch._dynamo.explain = print  # <-",
        "import torch\nsetattr(torch, 'allclose', print)  # <-",
        "import torch\ndelattr(torch, 'allclose')  # <-",
        "from torch import Tensor\nTensor.add = print  # <-",
        "import torch\ndel torch.testing.assert_close  # <-",
        "import math\nmath.pi += 1  # <-",
        "import torch\nsetattr(torch.nn.functional, 'mse_loss', print)  # <-",
    ],
    "module-as-value": [
        "import torch\nt = torch  # <-",
        "import torch\nprint(torch)  # <-",
        "from torch import nn\n\n\ndef f():\n    return nn  # <-",
        "import torch\nF = torch.nn.functional  # <-",
        "import os\nfrom os import path\np = path  # <-",
    ],
    "unsafe-unpickling": [
        "import torch\n\n\ndef f(p):\n    return torch.load(p, weights_only=False)  # <-",
        "import torch\n\n\ndef f(p, w):\n    return torch.load(p, weights_only=w)  # <-",
        "import torch\n\n\ndef f(p, m):\n    return torch.load(p, None, m)  # <-",
        "import torch\n\n\ndef f(p, m):\n    return torch.load(p, pickle_module=m)  # <-",
        "import torch\n\n\ndef f(p, **kw):\n    return torch.load(p, **kw)  # <-",
        "from torch import load\n\n\ndef f(p):\n    return load(p, weights_only=False)  # <-",
        "import numpy as np\n\n\ndef f(p):\n    return np.load(p, allow_pickle=True)  # <-",
        "import numpy as np\n\n\ndef f(p):\n    return np.load(p, None, True)  # <-",
        "import numpy as np\n\n\ndef f(p):\n    return np.lib.npyio.load(p, None, True)  # <-",
        "import torch\nload = torch.load\n\n\ndef f(p):\n    return load(p, weights_only=False)  # <-",
    ],
    "system-path": [
        "def f():\n    return open('/proc/self/environ').read()  # <-",
        "from pathlib import Path\nP = Path('/proc/1/cwd')  # <-",
        "def f(pid):\n    return open(f'/proc/{pid}/environ')  # <-",
        "def f():\n    return open('/sys/kernel/notes', 'rb')  # <-",
        "def f():\n    return open('../../solutions/04_modules/nn_modules.py').read()  # <-",
    ],
    "ends-the-test-run": [
        "def f():\n    raise SystemExit(0)  # <-",
        "def f():\n    raise KeyboardInterrupt  # <-",
        "def f():\n    exit()  # <-",
        "def f():\n    quit()  # <-",
        "import numpy as np\n\n\ndef f():\n    raise np.testing.SkipTest('later')  # <-",
        "from numpy.testing import SkipTest  # <-",
        "class Skip(BaseException):  # <-\n    pass",
        "def f():\n    raise GeneratorExit  # <-",
    ],
    "swallows-harness-errors": [
        "def f(g):\n    try:\n        return g()\n    except:  # <-\n        return 0.0",
        "def f(g):\n    try:\n        return g()\n    except BaseException:  # <-\n        return 0.0",
        "def f(g):\n    try:\n        g()\n    except (ValueError, SystemExit):  # <-\n        pass",
        "def f(g):\n    try:\n        return g()\n    finally:\n        return 0.0  # <-",
    ],
}


def code(text: str) -> str:
    return textwrap.dedent(text).strip() + "\n"


HONEST = {
    "torch._dynamo.explain, kata 12's one private name": code("""
        import torch as t

        def count_graph_breaks(fn, *args):
            return t._dynamo.explain(fn)(*args).graph_break_count
        """),
    "own private attribute": code("""
        class C:
            def __init__(self):
                self._cache = {}
                self._n = len(self._cache)
        """),
    "super().__init__ and the old spelling": code("""
        from torch import nn

        class M(nn.Module):
            def __init__(self):
                super().__init__()
                nn.Module.__init__(self)
                self.fc = nn.Linear(2, 1)
        """),
    "getattr and hasattr with constants": code("""
        def f(module, batch):
            weight, bias = getattr(module, "weight"), getattr(module, "bias", None)
            return hasattr(batch, "_fields") and batch._asdict()
        """),
    "a scalar autograd Value": code("""
        class Value:
            def __init__(self, data):
                self.data = data

            def __add__(self, other):
                return Value(self.data + other.data)

            __radd__ = __add__

            def __mul__(self, other):
                return Value(self.data * other.data)

            def __rmul__(self, other):
                return self * other

            def __neg__(self):
                return self * Value(-1)

            def __pow__(self, k):
                return Value(self.data**k)

            def __repr__(self):
                return f"Value({self.data})"
        """),
    "a Dataset from torch.utils.data": code("""
        from torch.utils.data import DataLoader, Dataset

        class D(Dataset):
            def __len__(self):
                return 3

            def __getitem__(self, i):
                return i

        loader = DataLoader(D(), batch_size=2)
        """),
    "safe loads": code("""
        import numpy as np
        import torch

        def f(p):
            return torch.load(p, map_location="cpu", weights_only=True), torch.load(p)

        def g(p):
            return np.load(p, allow_pickle=False), np.load(p)
        """),
    "an atomic save": code("""
        import os
        import tempfile

        def f(data, path):
            with tempfile.NamedTemporaryFile(dir=".", delete=False) as tmp:
                tmp.write(data)
            os.replace(tmp.name, path)
        """),
    "a main guard": code("""
        def main():
            pass

        if __name__ == "__main__":
            main()
        """),
    "a dataclass": code("""
        from dataclasses import dataclass, field

        @dataclass
        class Config:
            lr: float = 0.1
            tags: list = field(default_factory=list)

            def __post_init__(self):
                self.lr = float(self.lr)
        """),
    "a namedtuple": code("""
        import collections

        Point = collections.namedtuple("Point", "x y")

        def f(p):
            return p._replace(x=1)
        """),
    "type of a value": code("""
        def f(x, items: list[type]) -> type:
            assert isinstance(x, type) or type(x).__name__
            return type(items)(i for i in items)
        """),
    "except Exception, and BaseException re-raised": code("""
        import os

        def f(g, tmp):
            try:
                return g()
            except Exception:
                return None
            except BaseException:
                os.unlink(tmp)
                raise
        """),
    "modules through their attributes": code("""
        import os
        import torch
        import torch.nn.functional as F
        from os import path
        from torch import nn

        def f(x, p):
            y = F.relu(nn.functional.gelu(torch.nn.functional.silu(x)))
            return y, torch.trace(x), os.path.exists(p), path.join(p, "a")
        """),
    "model.modules() and training flags": code("""
        def f(model):
            for m in model.modules():
                m.training = False
            model.layer.weight = None
        """),
    "format strings": code("""
        def f(x):
            return "{} of {:.2f} {0.shape}".format(x, 1.0) + f"{x!r}"
        """),
    "a docstring naming /proc and __eq__": code('''
        def f():
            """Not /proc/self, not __eq__."""
        '''),
    "generic and exception bases": code("""
        from typing import Generic, TypeVar

        from torch.utils.data import Dataset

        T = TypeVar("T")

        class D(Dataset[int], Generic[T]):
            pass

        class ShapeError(ValueError):
            pass

        class Deeper(ShapeError):
            pass
        """),
    "an autograd Function": code("""
        import torch

        class Square(torch.autograd.Function):
            @staticmethod
            def forward(ctx, x):
                ctx.save_for_backward(x)
                return x * x
        """),
    "__all__, __slots__ and private helpers": code("""
        __all__ = ["P"]
        _EPS = 1e-8

        class P:
            __slots__ = ("x",)

        def _reduce(x):
            return x + _EPS
        """),
}


def cases():
    for rule, sources in ATTACKS.items():
        for number, source in enumerate(sources):
            line = next(i for i, text in enumerate(source.splitlines(), 1) if "# <-" in text)
            yield pytest.param(source, rule, line, id=f"{rule}-{number}")


@pytest.mark.parametrize(("source", "rule", "line"), list(cases()))
def test_each_attack_is_refused_with_its_rule_and_line(source, rule, line):
    found = policy.check(source, "kata.py")
    assert (rule, line) in {(v.rule, v.line) for v in found}, [v.describe("en") for v in found]


@pytest.mark.parametrize("source", HONEST.values(), ids=HONEST.keys())
def test_honest_code_passes(source):
    assert [v.describe("en") for v in policy.check(source, "kata.py")] == []


def kata_files() -> list[Path]:
    solutions = [kata.stub_path(ROOT / "solutions") for kata in MANIFEST.katas]
    stubs = [kata.stub_path(ROOT / "katas") for kata in MANIFEST.katas]
    return solutions + stubs


@pytest.mark.parametrize("path", kata_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_solution_and_stub_passes(path):
    assert [v.describe("en") for v in policy.check_file(path)] == []


# Mutants play learner mistakes, and a few play attacks the policy exists to refuse: each of
# those is listed here with the rules that refuse it. A new mutant that the policy refuses
# belongs here only if it is an attack, never an honest mistake.
REFUSED_MUTANTS = {
    "load_to_device_unsafe": {"unsafe-unpickling"},
    "safe_load_weights_only_false": {"unsafe-unpickling"},
    "load_checkpoint_unsafe": {"unsafe-unpickling"},
    "mse_through_the_c_binding": {"private-name"},
    "cross_entropy_through_the_aten_op": {"private-name"},
    "warmup_cosine_lrs_equal_to_anything": {
        "subclass-of-value-type",
        "dunder-method",
        "dunder-name",
        "dunder-attribute",
    },
}
HARNESS_HELPERS = {"mutant", "_capstone"}  # registration, and m09's import of the module under test


def mutants_as_learner_files(path: Path) -> dict[str, str]:
    """Each mutant of a module as the learner file it stands for: the module's imports (not the
    harness's), the module-level helpers the mutant uses, and the mutant; lines keep their numbers."""
    source = path.read_text(encoding="utf-8")
    lines = source.splitlines()
    body = ast.parse(source).body
    defines = {}  # top-level name -> the statement defining it
    for node in body:
        targets = node.targets if isinstance(node, ast.Assign) else [node]
        for target in targets:
            name = getattr(target, "name", None) or getattr(target, "id", None)
            if name:
                defines[name] = node
    imports = [
        node
        for node in body
        if isinstance(node, (ast.Import, ast.ImportFrom))
        and not {alias.asname or alias.name for alias in node.names} & (HARNESS_HELPERS | {"importlib"})
    ]
    files = {}
    for node in body:
        if not (isinstance(node, ast.FunctionDef) and node.decorator_list):
            continue
        kept, todo = {node}, [node]
        while todo:  # the helpers it uses, and theirs
            for inner in ast.walk(todo.pop()):
                helper = defines.get(getattr(inner, "id", None))
                if helper is not None and helper not in kept and inner.id not in HARNESS_HELPERS:
                    kept.add(helper)
                    todo.append(helper)
        keep = set()
        for statement in [*imports, *kept]:
            keep.update(range(statement.lineno, statement.end_lineno + 1))
            keep.update(d.lineno for d in getattr(statement, "decorator_list", []))
        files[node.name] = "\n".join(text if i in keep else "" for i, text in enumerate(lines, 1)) + "\n"
    return files


@pytest.mark.parametrize("path", sorted((ROOT / "tests/mutants").glob("m*.py")), ids=lambda p: p.name)
def test_every_mutant_passes_unless_it_plays_an_attack(path):
    shown = str(path.relative_to(ROOT))
    files = mutants_as_learner_files(path)
    assert len(files) >= 5, "mutants are functions decorated with @mutant(...)"
    for name, source in files.items():
        found = policy.check(source, shown)
        assert {v.rule for v in found} == REFUSED_MUTANTS.get(name, set()), (
            name,
            [v.describe("en") for v in found],
        )


# Lesson code is honest code, bar two demonstrations that must not be copied into a kata file.
LESSON_DEMOS = {
    ("09_checkpointing", "dunder-method", "def __reduce__"),  # the pickle attack the lesson shows
    ("10_devices", "import-not-allowed", "import torch.multiprocessing"),  # a standalone DDP script
}


def lesson_snippets():
    for kata in MANIFEST.katas:
        solution = kata.stub_path(ROOT / "solutions").read_text(encoding="utf-8")
        imports = "".join(
            ast.unparse(node) + "\n"
            for node in ast.parse(solution).body
            if isinstance(node, ast.Import)
            or isinstance(node, ast.ImportFrom)
            and node.module != "__future__"
        )
        for readme in ("README.md", "README.zh-CN.md"):
            text = (ROOT / "katas" / kata.name / readme).read_text(encoding="utf-8")
            for number, block in enumerate(re.findall(r"```python\n(.*?)```", text, re.S)):
                yield pytest.param(kata.name, imports + block, id=f"{kata.name}/{readme}#{number}")


@pytest.mark.parametrize(("kata", "source"), list(lesson_snippets()))
def test_the_code_of_every_lesson_passes_the_policy(kata, source):
    found = [v for v in policy.check(source, "lesson") if (kata, v.rule, v.found) not in LESSON_DEMOS]
    assert [v.describe("en") for v in found] == []


def test_a_violation_names_file_line_code_and_rule_in_both_languages():
    (violation,) = policy.check("import math\nimport sys\n", "katas/00_tensors/tensor_basics.py")
    assert violation.describe("en") == (
        "katas/00_tensors/tensor_basics.py:2: `import sys` is not allowed in a kata file "
        "(rule import-not-allowed); the katas need only torch, numpy and the standard modules "
        "listed in the lesson"
    )
    assert violation.describe("zh").startswith(
        "katas/00_tensors/tensor_basics.py:2：kata 文件中不允许 `import sys`（规则 import-not-allowed）"
    )


def fields(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name is not None}


def test_both_languages_have_every_message_with_the_same_fields():
    english, chinese = policy.MESSAGES["en"], policy.MESSAGES["zh"]
    assert english.keys() == chinese.keys()
    for key, text in english.items():
        assert fields(chinese[key]) == fields(text), key
        assert key in ("line", "title", "kata") or any("\u4e00" <= ch <= "\u9fff" for ch in chinese[key])
    rules = {rule for rule in ATTACKS} | {"too-deeply-nested", "unreadable-file"}
    assert rules == english.keys() - {"line", "title", "kata"}


@pytest.mark.parametrize(
    "source",
    [
        "def f(:\n",
        "x = 1 +\n",
        "\0",
        "(" * 300 + ")" * 300,
        "def f(x):\n" + "    return " + "-" * 5000 + "x\n",
    ],
    ids=["syntax", "incomplete", "null byte", "deep parentheses", "deep unary chain"],
)
def test_a_file_that_does_not_parse_or_nests_too_deep_never_crashes_the_check(source):
    assert {v.rule for v in policy.check(source, "kata.py")} <= {"too-deeply-nested"}


def test_check_file_refuses_links_and_special_files(tmp_path):
    target = tmp_path / "real.py"
    target.write_text("import math\n", encoding="utf-8")
    link = tmp_path / "link.py"
    link.symlink_to(target)
    fifo = tmp_path / "fifo.py"
    os.mkfifo(fifo)
    big = tmp_path / "big.py"
    big.write_bytes(b"#" * (policy.MAX_FILE_BYTES + 1))
    assert policy.check_file(target) == []
    for path in (link, fifo, big, tmp_path / "missing.py"):
        assert [v.rule for v in policy.check_file(path)] == ["unreadable-file"], path
    assert policy.check_file(link, shown_as="katas/x.py")[0].file == "katas/x.py"


def test_a_learner_run_warns_about_a_violating_stub_with_file_line_and_rule(tmp_path):
    copy = make_copy(tmp_path / "project")
    stub = stub_file(copy, "00_tensors")
    lines = stub.read_text(encoding="utf-8").splitlines(keepends=True)
    line = lines.index("from __future__ import annotations\n") + 2
    stub.write_text("".join([*lines[: line - 1], "import sys\n", *lines[line - 1 :]]), encoding="utf-8")
    env = {**os.environ, "KATAS_LANG": "en"}
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "katas/00_tensors", "-p", "no:cacheprovider", "-q"],
        cwd=copy,
        env=env,
        capture_output=True,
        text=True,
    )
    shown = "katas/00_tensors/tensor_basics.py"
    assert policy.MESSAGES["en"]["kata"].format(kata="00_tensors", path=shown) in result.stdout
    expected = policy.Violation(shown, line, 0, "import-not-allowed", "import sys").describe("en")
    assert expected in result.stdout, result.stdout[-3000:]
    assert result.returncode == 1  # the stubs' own failures, not the warning, decide the outcome
