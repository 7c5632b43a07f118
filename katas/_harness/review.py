"""`python -m katas review [KATA]`: advice on code that passes but is not how PyTorch is written.

The learner's kata files are read with `ast` (nothing is imported or run). Only
exercises that are no longer the pristine stub and not recorded as failing are
read. Each finding names a line, says why in one sentence and links the lesson
section that teaches the idiom. Advice, never a grade.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from . import language, pristine, record
from .manifest import Kata, Manifest

# rule -> (kata, lesson section number), or a PyTorch docs page where no lesson teaches it.
LINKS: dict[str, tuple[str, int] | str] = {
    "data": ("01_autograd", 10),
    "batch-loop": ("00_tensors", 5),
    "tensor-of-tensor": ("00_tensors", 1),
    "sync-in-training-loop": ("06_training_loop", 3),
    "eval-with-grad": ("06_training_loop", 5),
    "eval-no-way-back": ("13_capstone", 6),
    "hard-coded-cuda": ("10_devices", 3),
}

MESSAGES = {
    "en": {
        "data": "`.data` bypasses autograd's checks, so a wrong in-place change goes unnoticed: "
        "use `.detach()`, or update under `torch.no_grad()`.",
        "batch-loop": "this Python loop visits the batch one element at a time: one tensor "
        "operation over the whole batch (broadcasting, indexing) does it at once.",
        "tensor-of-tensor": "`torch.tensor()` on a tensor copies it with a warning and drops its graph "
        "silently: use `t.clone().detach()` for a copy, or `torch.as_tensor(t)`.",
        "sync-in-training-loop": "`.item()`/`.cpu()` on every batch makes the CPU wait for the GPU at "
        "each step (free on a CPU): sum `loss.detach()` in a tensor and call `.item()` once after the loop.",
        "eval-with-grad": "the model runs with autograd on, so it records a graph nobody will use: "
        "wrap evaluation in `with torch.no_grad():` (or `torch.inference_mode()`).",
        "eval-no-way-back": "`.eval()` is never undone, so the caller's model stays in eval mode: "
        "remember `model.training` and call `model.train(was_training)` in a `finally`.",
        "hard-coded-cuda": "a hard-coded CUDA device fails on a machine without one and ignores where "
        "the data lives: use the input's `x.device` or a `device` argument.",
        "link": "    see {link}",
        "finding": "{path}:{line}: [{exercise}] {why}",
        "summary": "{count} suggestion(s) on code that passes: advice only, nothing is graded.",
        "none": "no suggestions: the exercises read look idiomatic.",
        "unreadable": "{path}: does not parse, so it was not reviewed (run its tests to see the error).",
        "unknown_kata": "no kata named {name}; choose from {names}",
        "progress": "review: {count} suggestion(s) on code that passes: python -m katas review {kata}",
    },
    "zh": {
        "data": "`.data` 绕过了 autograd 的检查，错误的原地修改不会被发现：请改用 `.detach()`，"
        "或在 `torch.no_grad()` 下更新。",
        "batch-loop": "这个 Python 循环逐个处理批次中的元素：对整个批次做一次张量运算"
        "（广播、索引）就能一次完成。",
        "tensor-of-tensor": "对张量调用 `torch.tensor()` 会带着警告复制它，并悄悄丢掉计算图："
        "复制请用 `t.clone().detach()`，或用 `torch.as_tensor(t)`。",
        "sync-in-training-loop": "每个批次都调用 `.item()`/`.cpu()`，CPU 每一步都要等 GPU 算完"
        "（在 CPU 上没有代价）：把 `loss.detach()` 累加到一个张量里，循环结束后再调用一次 `.item()`。",
        "eval-with-grad": "模型在 autograd 开启时运行，会记录一张没人使用的计算图："
        "请把评估放进 `with torch.no_grad():`（或 `torch.inference_mode()`）。",
        "eval-no-way-back": "`.eval()` 之后没有切回去，调用者的模型会一直停在评估模式："
        "先记下 `model.training`，再在 `finally` 里调用 `model.train(was_training)`。",
        "hard-coded-cuda": "写死的 CUDA 设备在没有 GPU 的机器上会出错，也不管数据在哪里："
        "请使用输入的 `x.device`，或一个 `device` 参数。",
        "link": "    参见 {link}",
        "finding": "{path}:{line}: [{exercise}] {why}",  # file:line stays as editors read it
        "summary": "对已通过的代码有 {count} 条建议：仅供参考，不计分。",
        "none": "没有建议：读过的练习写法都很地道。",
        "unreadable": "{path}：无法解析，因此没有审阅（运行它的测试可以看到错误）。",
        "unknown_kata": "没有名为 {name} 的 kata；可选：{names}",
        "progress": "review：对已通过的代码有 {count} 条建议：python -m katas review {kata}",
    },
}

RULES = tuple(LINKS)
DOCS_PAGE = "https://pytorch.org/docs/stable/"
_HEADING = re.compile(r"^###\s+(\d+)\.\s")
_TORCH_GRAD_OFF = {"no_grad", "inference_mode", "enable_grad"}
_SYNC_CALLS = {"item", "cpu"}
_MODEL_NAMES = {"model", "net", "network"}
_EVAL_NAMES = ("evaluate", "predict", "accuracy")
_TENSOR_METHODS = {"clone", "detach", "to", "float", "double", "long", "int", "contiguous", "view", "reshape"}


def text(key: str) -> str:
    return MESSAGES[language.current()][key]


@dataclass(frozen=True)
class Finding:
    path: str  # as shown to the learner
    line: int
    rule: str
    exercise: str  # the top-level definition that holds it

    def render(self, root: Path) -> list[str]:
        why = text(self.rule)
        return [
            text("finding").format(path=self.path, line=self.line, exercise=self.exercise, why=why),
            text("link").format(link=link(root, self.rule)),
        ]


# ---- the links ------------------------------------------------------------------------------


def _slug(heading: str) -> str:
    """GitHub's anchor for a Markdown heading."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def link(root: Path, rule: str) -> str:
    """The lesson section teaching `rule`, in the learner's language (its README's anchor)."""
    target = LINKS[rule]
    if isinstance(target, str):
        return target
    kata, number = target
    name = "README.zh-CN.md" if language.current() == "zh" else "README.md"
    path = f"katas/{kata}/{name}"
    try:
        lines = (root / path).read_text(encoding="utf-8").splitlines()
    except OSError:
        return path
    for line in lines:
        found = _HEADING.match(line)
        if found and int(found.group(1)) == number:
            return f"{path}#{_slug(line.lstrip('#'))}"
    return path


# ---- the analysis ---------------------------------------------------------------------------


def _call_name(node: ast.AST) -> str | None:
    """`f` for f(...), `attr` for x.attr(...)."""
    if isinstance(node, ast.Call):
        func = node.func
        if isinstance(func, ast.Name):
            return func.id
        if isinstance(func, ast.Attribute):
            return func.attr
    return None


def _dotted(node: ast.AST) -> str:
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
    return ".".join(reversed(parts))


def _is_tensor_annotation(node: ast.AST | None) -> bool:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value in ("Tensor", "torch.Tensor")
    return node is not None and _dotted(node) in ("Tensor", "torch.Tensor")


def _is_module_annotation(node: ast.AST | None) -> bool:
    return node is not None and _dotted(node).split(".")[-1] == "Module"


def _grad_off(node: ast.AST) -> bool:
    """torch.no_grad(), torch.inference_mode(), torch.set_grad_enabled(False), as context or decorator."""
    if isinstance(node, ast.Call):
        name = _dotted(node.func).split(".")[-1]
        if name == "set_grad_enabled":
            return bool(node.args) and isinstance(node.args[0], ast.Constant) and node.args[0].value is False
        return name in _TORCH_GRAD_OFF - {"enable_grad"}
    return _dotted(node).split(".")[-1] in ("no_grad", "inference_mode")


def _walk_body(node: ast.AST) -> Iterator[ast.AST]:
    """Every node below `node`, not entering nested functions, classes or lambdas."""
    for child in ast.iter_child_nodes(node):
        yield child
        if not isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)):
            yield from _walk_body(child)


def _functions(node: ast.AST) -> Iterator[ast.FunctionDef | ast.AsyncFunctionDef]:
    for child in ast.walk(node):
        if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
            yield child


class _Function:
    """What the rules need to know about one function."""

    def __init__(self, node: ast.FunctionDef | ast.AsyncFunctionDef):
        self.node = node
        self.own_data = False
        params = [*node.args.posonlyargs, *node.args.args, *node.args.kwonlyargs]
        self.tensors = {a.arg for a in params if _is_tensor_annotation(a.annotation)}
        self.models = {a.arg for a in params if _is_module_annotation(a.annotation)} | _MODEL_NAMES
        self.nodes = list(_walk_body(node))
        self.calls = [n for n in self.nodes if isinstance(n, ast.Call)]
        self._infer_tensors()

    def _infer_tensors(self) -> None:
        for stmt in self.nodes:  # in source order: y = x.clone() after x: Tensor makes y a tensor
            if isinstance(stmt, ast.Assign) and self.is_tensor(stmt.value):
                self.tensors |= {t.id for t in stmt.targets if isinstance(t, ast.Name)}

    def is_tensor(self, node: ast.AST) -> bool:
        if isinstance(node, ast.Name):
            return node.id in self.tensors
        if isinstance(node, ast.Attribute):
            return node.attr in ("grad", "T") or (node.attr == "data" and self.is_tensor(node.value))
        if isinstance(node, ast.BinOp):
            return self.is_tensor(node.left) or self.is_tensor(node.right)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            owner = node.func.value
            if _dotted(owner) == "torch":
                return node.func.attr in ("randn", "rand", "zeros", "ones", "arange", "tensor", "as_tensor")
            return node.func.attr in _TENSOR_METHODS and self.is_tensor(owner)
        return False

    def calls_method(self, *names: str) -> list[ast.Call]:
        return [c for c in self.calls if isinstance(c.func, ast.Attribute) and c.func.attr in names]

    def is_model_call(self, call: ast.Call) -> bool:
        return isinstance(call.func, ast.Name) and call.func.id in self.models


def _rule_data(fn: _Function) -> Iterator[ast.AST]:
    for node in fn.nodes:
        if isinstance(node, ast.Attribute) and node.attr == "data":
            base = node.value
            if isinstance(base, ast.Name) and (base.id in ("self", "cls") or "dataset" in base.id.lower()):
                continue  # a Dataset keeping its samples in self.data
            if _dotted(node).startswith("torch."):
                continue  # torch.utils.data
            if fn.own_data and not fn.is_tensor(base):
                continue  # the module's own class has a .data (kata 02's Value): only a tensor's counts
            yield node


def _loop_index(loop: ast.For, fn: _Function) -> str | None:
    """The tensor a `for` walks by position: `for i in range(x.shape[0] | x.size(0) | len(x))`."""
    it = loop.iter
    if not (_call_name(it) == "range" and isinstance(it.func, ast.Name) and len(it.args) == 1):
        return None
    bound = it.args[0]
    if isinstance(bound, ast.Subscript) and isinstance(bound.value, ast.Attribute):
        if bound.value.attr == "shape" and isinstance(bound.value.value, ast.Name):
            return bound.value.value.id
    if isinstance(bound, ast.Call) and bound.args and isinstance(bound.func, ast.Attribute):
        if bound.func.attr == "size" and isinstance(bound.func.value, ast.Name):
            return bound.func.value.id
    if _call_name(bound) == "len" and bound.args and isinstance(bound.args[0], ast.Name):
        return bound.args[0].id
    return None


def _rule_batch_loop(fn: _Function) -> Iterator[ast.AST]:
    for node in fn.nodes:
        if (
            isinstance(node, ast.comprehension)
            and isinstance(node.iter, ast.Name)
            and node.iter.id in fn.tensors
        ):
            yield node.iter  # [row.sum() for row in x]
    for loop in fn.nodes:
        if not isinstance(loop, ast.For):
            continue
        if isinstance(loop.iter, ast.Name) and loop.iter.id in fn.tensors:
            yield loop  # for row in x
            continue
        walked = _loop_index(loop, fn)
        if walked not in fn.tensors or not isinstance(loop.target, ast.Name):
            continue
        index = loop.target.id
        for node in ast.walk(loop):
            if isinstance(node, ast.Subscript) and any(
                isinstance(n, ast.Name) and n.id == index for n in ast.walk(node.slice)
            ):
                yield loop
                break


def _rule_tensor_of_tensor(fn: _Function) -> Iterator[ast.AST]:
    for call in fn.calls:
        if _dotted(call.func) == "torch.tensor" and call.args and fn.is_tensor(call.args[0]):
            yield call


def _batch_source(node: ast.AST) -> bool:
    if isinstance(node, ast.Call):
        if _call_name(node) in ("enumerate", "zip", "tqdm", "iter"):
            return any(_batch_source(a) for a in node.args)
        return _call_name(node) == "DataLoader"
    name = _dotted(node).split(".")[-1].lower()
    return "loader" in name or "batches" in name


def _rule_sync_in_training_loop(fn: _Function) -> Iterator[ast.AST]:
    trains = fn.calls_method("backward") or [
        c for c in fn.calls_method("step") if "opt" in _dotted(c.func.value).lower()
    ]
    if not trains:
        return
    for loop in fn.nodes:
        if isinstance(loop, ast.For) and _batch_source(loop.iter):
            for node in _walk_body(loop):
                if _call_name(node) in _SYNC_CALLS and isinstance(node.func, ast.Attribute):
                    if not _decides_to_stop(loop, node):
                        yield node


def _decides_to_stop(loop: ast.For, sync: ast.Call) -> bool:
    """The synced value decides, on this very batch, whether the loop stops (a divergence check):
    then reading it each step is the point, not a habit to drop."""
    names: set[str] = set()  # loss_value = loss.item()
    lists: set[str] = set()  # losses.append(loss.item()), then read as losses[-1]
    for node in ast.walk(loop):
        if isinstance(node, ast.Assign) and any(n is sync for n in ast.walk(node.value)):
            names |= {t.id for t in node.targets if isinstance(t, ast.Name)}
        if isinstance(node, ast.Call) and _call_name(node) == "append" and any(a is sync for a in node.args):
            lists.add(_dotted(node.func.value))
    for node in ast.walk(loop):
        if isinstance(node, ast.If) and any(
            isinstance(inner, (ast.Break, ast.Return)) for stmt in node.body for inner in ast.walk(stmt)
        ):
            for read in ast.walk(node.test):
                if read is sync or (isinstance(read, ast.Name) and read.id in names):
                    return True
                if isinstance(read, ast.Subscript) and _dotted(read.value) in lists:
                    return True
    return False


def _grad_off_lines(fn: _Function) -> set[int]:
    lines: set[int] = set()
    for node in fn.nodes:
        if isinstance(node, (ast.With, ast.AsyncWith)) and any(_grad_off(i.context_expr) for i in node.items):
            lines |= set(range(node.lineno, (node.end_lineno or node.lineno) + 1))
    return lines


def _rule_eval_with_grad(fn: _Function) -> Iterator[ast.AST]:
    evaluates = fn.calls_method("eval") or any(w in fn.node.name.lower() for w in _EVAL_NAMES)
    if not evaluates or any(_grad_off(d) for d in fn.node.decorator_list):
        return
    guarded = _grad_off_lines(fn)
    for call in fn.calls:
        if fn.is_model_call(call) and call.lineno not in guarded:
            yield call
            return  # one finding per function is enough


def _returns_model(fn: _Function, owner: str) -> bool:
    return any(
        isinstance(n, ast.Return) and n.value is not None and _dotted(n.value) == owner for n in fn.nodes
    )


def _rule_eval_no_way_back(fn: _Function) -> Iterator[ast.AST]:
    for call in fn.calls_method("eval"):
        if call.args or call.keywords:
            continue
        owner = _dotted(call.func.value)
        if _returns_model(fn, owner):
            continue  # putting a model into eval mode is this function's job
        restored = any(c.lineno >= call.lineno for c in fn.calls_method("train")) or any(
            isinstance(n, ast.Assign)
            and n.lineno >= call.lineno
            and any(isinstance(t, ast.Attribute) and t.attr == "training" for t in n.targets)
            for n in fn.nodes
        )
        if not restored:
            yield call


def _is_cuda(node: ast.AST) -> bool:
    return (
        isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value.split(":")[0] == "cuda"
    )


def _rule_hard_coded_cuda(fn: _Function) -> Iterator[ast.AST]:
    for call in fn.calls:
        name = _call_name(call)
        if name == "cuda" and isinstance(call.func, ast.Attribute) and _dotted(call.func) != "torch.cuda":
            yield call
        elif name in ("device", "to") and call.args and _is_cuda(call.args[0]):
            yield call
        elif any(k.arg in ("device", "device_type") and _is_cuda(k.value) for k in call.keywords):
            yield call


_RULES = {
    "data": _rule_data,
    "batch-loop": _rule_batch_loop,
    "tensor-of-tensor": _rule_tensor_of_tensor,
    "sync-in-training-loop": _rule_sync_in_training_loop,
    "eval-with-grad": _rule_eval_with_grad,
    "eval-no-way-back": _rule_eval_no_way_back,
    "hard-coded-cuda": _rule_hard_coded_cuda,
}


def analyze(source: str, path: str, names: set[str] | None = None) -> list[Finding]:
    """Findings in the top-level definitions of `source` (those in `names`, or all of them).

    Raises SyntaxError for a file that does not parse.
    """
    found: set[Finding] = set()
    tree = ast.parse(source)
    own_data = any(  # a class of the module sets self.data: `.data` may be that, not Tensor.data
        isinstance(node, ast.Attribute) and node.attr == "data" and _dotted(node.value) == "self"
        and isinstance(node.ctx, ast.Store)
        for top in tree.body if isinstance(top, ast.ClassDef) for node in ast.walk(top)
    )  # fmt: skip
    for top in tree.body:
        if not isinstance(top, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            continue
        if names is not None and top.name not in names:
            continue
        for function in _functions(top):
            fn = _Function(function)
            fn.own_data = own_data
            for rule, check in _RULES.items():
                found.update(Finding(path, node.lineno, rule, top.name) for node in check(fn))
    return sorted(found, key=lambda f: (f.line, f.rule))


# ---- which exercises, and the command -------------------------------------------------------


def _passing_or_unknown(entry: object) -> bool:
    """No record, or a record with passes and nothing failing or todo."""
    if not isinstance(entry, dict):
        return True
    if entry.get(record.BROKEN):
        return False
    return not entry.get("failed") and not entry.get("todo")


def reviewed_names(root: Path, kata: Kata, source: str, only: set[str] | None = None) -> set[str]:
    """The kata's exercises to read: changed from the stub, and not recorded as failing."""
    original = pristine.read(root).get(pristine.relative_path(kata))
    known = record.known(root, kata, root / "katas")
    names = set()
    for ex in kata.exercises:
        if only is not None and ex.name not in only:
            continue
        if original is not None and pristine.untouched(source, original, ex.name):
            continue
        if _passing_or_unknown(known.get(ex.name)):
            names.add(ex.name)
    return names


def review_kata(root: Path, kata: Kata, only: set[str] | None = None) -> list[Finding]:
    path = kata.stub_path(root / "katas")
    source = path.read_text(encoding="utf-8")
    names = reviewed_names(root, kata, source, only)
    return analyze(source, pristine.relative_path(kata), names) if names else []


def run(manifest: Manifest, kata: Kata | None = None) -> list[str]:
    """The lines `python -m katas review [KATA]` prints."""
    lines: list[str] = []
    count = 0
    for each in [kata] if kata is not None else manifest.katas:
        try:
            findings = review_kata(manifest.root, each)
        except OSError:
            continue  # a kata file the learner removed: nothing to read
        except SyntaxError:
            lines.append(text("unreadable").format(path=pristine.relative_path(each)))
            continue
        count += len(findings)
        for finding in findings:
            lines.extend(finding.render(manifest.root))
    lines.append(text("summary").format(count=count) if count else text("none"))
    return lines


def progress_lines(
    manifest: Manifest, path_of: Callable[[Kata], Path], done: dict[str, set[str]]
) -> list[str]:
    """One line per kata whose passing exercises (`done`: kata -> names) draw a suggestion."""
    lines = []
    for kata in manifest.katas:
        names = done.get(kata.name)
        if not names:
            continue
        try:
            source = path_of(kata).read_text(encoding="utf-8")
            count = len(analyze(source, pristine.relative_path(kata), names))
        except (OSError, SyntaxError):
            continue
        if count:
            lines.append(text("progress").format(count=count, kata=kata.name))
    return lines
