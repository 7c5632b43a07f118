"""The submission policy: what a kata file may contain, checked on its source before anything imports it.

A kata file is learner code that the grader imports into the process that runs the checks, so a
few lines could skip a test, fake a value or patch the harness. This module reads the source with
`ast` (nothing of the file runs) and lists each construct a kata never needs and an attack does:
imports outside an allow-list, dynamic code, reflection on frames, modules and dunder attributes,
value-type subclasses, patched libraries, pickled payloads and the exceptions that end a test run.
The grader scores a kata with a violation zero; a learner's own run warns with the same words.

Why an AST policy and not RestrictedPython (tried: RestrictedPython 9.0 on the ten reference
solutions). It refused 7 of 10 at compile time for honest code: `super().__init__()`, a Dataset's
`__len__`, `type(node).__name__`, private helpers such as `_reduce`, an annotated assignment,
`counts[k] += 1`. The 3 it compiled ran only once the host supplied `__metaclass__`, `_getattr_`,
`_getitem_`, `_getiter_`, `_write_` and builtins such as `max` and `tuple`, and then ran slower
(20 000 calls of broadcast_shape: 1.12 s against 0.21 s). Its default guards refuse underscore
names only: a file using `os.sys.modules`, `torch.serialization.pickle`, `torch.load(p,
weights_only=False)` and `class F(float)` compiled and ran. It sandboxes a namespace and knows
nothing of a kata's threats; this policy leaves the learner's code as written, names each finding
with its line and rule, and is tested against every solution, stub and mutant of the project.
"""

from __future__ import annotations

import ast
import builtins
import importlib
import importlib.util
import os
import re
import stat
import string
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

from . import language

# Top-level modules a kata file may import; their private submodules and FORBIDDEN_MODULES never.
ALLOWED_MODULES = frozenset(
    {
        "__future__", "abc", "argparse", "bisect", "cmath", "collections", "contextlib", "copy", "csv",
        "dataclasses", "datetime", "decimal", "enum", "fractions", "functools", "glob", "heapq",
        "io", "itertools", "json", "math", "numbers", "numpy", "operator", "os", "pathlib",
        "random", "re", "shutil", "statistics", "string", "tempfile", "textwrap", "time", "torch",
        "typing", "warnings",
    }
)  # fmt: skip
FORBIDDEN_MODULES = (
    "torch.utils.cpp_extension", "torch.package", "torch.hub", "torch.utils.model_zoo",
    "torch.overrides", "torch.library", "torch.multiprocessing", "torch.fx",
    "torch.distributed.rpc", "torch.distributed.run", "torch.distributed.launch",
    "torch.distributed.elastic", "numpy.ctypeslib", "numpy.f2py", "numpy.distutils",
    "numpy.lib.stride_tricks.as_strided",  # no bounds check: it reads any memory of the process
)  # fmt: skip

# Special methods a class in a kata may define: containers, context managers, a scalar autograd
# engine's arithmetic. Never comparisons, conversions, hashing, attribute hooks or
# __torch_function__: those make a value that lies to the checks.
ALLOWED_DUNDER_METHODS = frozenset(
    {
        "__init__", "__post_init__", "__len__", "__getitem__", "__setitem__", "__iter__",
        "__next__", "__contains__", "__call__", "__repr__", "__str__", "__enter__", "__exit__",
        "__add__", "__radd__", "__sub__", "__rsub__", "__mul__", "__rmul__", "__truediv__",
        "__rtruediv__", "__pow__", "__neg__",
    }
)  # fmt: skip
ALLOWED_DUNDER_ATTRIBUTES = ALLOWED_DUNDER_METHODS | {"__name__", "__qualname__", "__doc__", "__version__"}
ALLOWED_DUNDER_NAMES = ALLOWED_DUNDER_METHODS | {"__name__", "__file__", "__doc__"}
ASSIGNABLE_DUNDER_NAMES = ALLOWED_DUNDER_METHODS | {"__all__", "__slots__"}  # `__radd__ = __add__`
ALLOWED_DUNDER_STRINGS = ALLOWED_DUNDER_ATTRIBUTES | ASSIGNABLE_DUNDER_NAMES | {"__main__"}
# Underscore attributes that are public API (namedtuple's), and the receivers whose private
# attributes are the learner's own.
PUBLIC_UNDERSCORE_ATTRIBUTES = frozenset(
    {"_fields", "_asdict", "_replace", "_make", "_field_defaults", "_version"}  # _version: kata 00's lesson
)
OWN_OBJECTS = frozenset({"self", "cls"})
# Private functions with no public equivalent, by their full dotted name: a kata file may read
# exactly these; the rest of their private module stays refused.
ALLOWED_PRIVATE_NAMES = frozenset({"torch._dynamo.explain"})  # kata 12 counts graph breaks with it

# Library settings a learner may assign (everything else of a library is never assigned).
SETTABLE_FLAGS = frozenset(
    {
        "torch.backends.cudnn.deterministic", "torch.backends.cudnn.benchmark",
        "torch.backends.cudnn.allow_tf32", "torch.backends.cuda.matmul.allow_tf32",
    }
)  # fmt: skip
# Attribute names that reach frames, code, the interpreter, processes or class factories, on
# any object (a name is denied whatever it is looked up on: `os.sys`, `torch.serialization.pickle`).
ESCAPE_ATTRIBUTES = frozenset(
    {
        "f_back", "f_globals", "f_locals", "f_builtins", "f_code", "f_trace", "tb_frame",
        "tb_next", "gi_frame", "gi_code", "gi_yieldfrom", "cr_frame", "cr_code", "cr_await",
        "ag_frame", "ag_code", "co_code", "co_consts", "co_names", "cell_contents",
        "sys", "builtins", "pickle", "marshal", "importlib", "gc", "inspect", "ctypes", "ctypeslib",
        "subprocess", "socket", "threading", "multiprocessing", "copyreg", "shelve", "pytest",
        "pdb", "pty", "mmap", "cpp_extension", "load_inline", "load_library", "hub", "package",
        "overrides", "library", "system", "popen", "fork", "forkpty", "kill", "killpg", "abort",
        "execl", "execle", "execlp", "execlpe", "execv", "execve", "execvp", "execvpe",
        "spawnl", "spawnle", "spawnlp", "spawnlpe", "spawnv", "spawnve", "spawnvp", "spawnvpe",
        "posix_spawn", "posix_spawnp", "chdir", "fchdir", "chroot", "dup2", "environ", "environb",
        "putenv", "unsetenv", "settrace", "setprofile", "alarm", "setitimer", "pthread_kill",
        "attrgetter", "methodcaller", "Formatter", "get_type_hints", "ForwardRef",
        "make_dataclass", "new_class", "ABCMeta", "EnumMeta", "EnumType", "CodeType",
        "FunctionType", "LambdaType", "FrameType", "TracebackType",
    }
)  # fmt: skip
ESCAPE_ATTRIBUTE_PREFIXES = ("register_module_",)  # global nn.Module hooks reach the tests' models
DYNAMIC_CODE = frozenset({"eval", "exec", "compile", "breakpoint"})
REFLECTION = frozenset({"globals", "locals", "vars"})
ATTRIBUTE_BUILTINS = frozenset({"getattr", "setattr", "delattr", "hasattr"})
# How a test run is skipped or ended from inside a function; denied as names and attributes.
RUN_ENDERS = frozenset(
    {
        "Skipped", "SkipTest", "Failed", "XFailed", "OutcomeException", "BaseException",
        "KeyboardInterrupt", "SystemExit", "GeneratorExit", "exit", "quit",
    }
)  # fmt: skip
RUN_ENDERS_OF_MODULES = frozenset({"skip", "xfail", "fail", "exit"})  # np.testing.skip, os.exit...
CATCH_ALL = frozenset({"BaseException", "KeyboardInterrupt", "SystemExit", "GeneratorExit"})
VALUE_TYPES = frozenset(
    {"float", "int", "bool", "str", "bytes", "bytearray", "complex", "list", "tuple", "dict", "set",
     "frozenset", "type"}
)  # fmt: skip
TORCH_VALUE_TYPES = frozenset(
    {"Tensor", "Parameter", "UninitializedParameter", "UninitializedBuffer", "Buffer", "Size"}
)
NUMPY_VALUE_TYPES = frozenset(
    {"ndarray", "generic", "number", "floating", "integer", "float64", "float32", "float16",
     "int64", "int32", "bool_", "matrix"}
)  # fmt: skip
# torch.load(f, map_location, pickle_module) and numpy.load(file, mmap_mode, allow_pickle): at
# most two positional arguments for any `load` of torch or numpy (np.lib.npyio.load too).
UNPICKLING_ROOTS, UNPICKLING_POSITIONAL = ("torch", "numpy"), 2
SYSTEM_PATH = re.compile(r"^/(proc|sys|dev)(/|$)|(^|/)solutions(/|$)")
DUNDER = re.compile(r"^__\w+__$")
MAX_FILE_BYTES = 1 << 20

MESSAGES = {
    "en": {
        "line": "{file}:{line}: `{found}` is not allowed in a kata file (rule {rule}); {advice}",
        "title": "torch-katas submission policy",
        "kata": "The grader will score {kata} zero: {path} breaks the submission policy on these lines.",
        "import-not-allowed": (
            "the katas need only torch, numpy and the standard modules listed in the lesson"
        ),
        "private-name": "use the public API; underscore names are only for your own `self._x` attributes",
        "dunder-attribute": "double-underscore attributes reach the interpreter; use the object's public API",
        "dunder-name": "double-underscore names belong to the interpreter; pick an ordinary name",
        "escape-attribute": "this reaches the interpreter, processes or the test machinery; no kata needs it",
        "dynamic-code": "write the code itself instead of running code built at run time",
        "reflection": "pass the values you need as arguments instead of looking them up by name",
        "computed-attribute": "name the attribute in the code (`obj.weight`, getattr with a constant), "
        "or keep the items in a list, dict or nn.ModuleList",
        "class-construction": "define classes with a plain `class` statement whose bases are classes",
        "subclass-of-value-type": "return real floats, lists and tensors; a subclass of them is refused",
        "dunder-method": "a kata class may define containers, arithmetic and __repr__, not comparisons, "
        "conversions or attribute hooks",
        "patches-a-library": "do not change torch, numpy or other modules; keep changes to your own objects",
        "module-as-value": "use a module through its attributes (`torch.zeros`), not as a value",
        "unsafe-unpickling": "load with weights_only=True (torch) or allow_pickle=False (numpy)",
        "system-path": "a kata reads only files it is given or writes itself",
        "ends-the-test-run": "raise an ordinary exception such as ValueError; skipping or exiting is refused",
        "swallows-harness-errors": "catch Exception instead, end the handler with `raise`, "
        "and never `return` from a `finally` block",
        "too-deeply-nested": "split the expression into named steps",
        "unreadable-file": "submit the kata file as a regular file of at most 1 MiB",
    },
    "zh": {
        "line": "{file}:{line}：kata 文件中不允许 `{found}`（规则 {rule}）；{advice}",
        "title": "torch-katas 提交规则",
        "kata": "评分程序会给 {kata} 记零分：{path} 的以下几行违反了提交规则。",
        "import-not-allowed": "kata 只需要 torch、numpy 和课程中列出的标准模块",
        "private-name": "请使用公开 API；下划线开头的名字只用于你自己的 `self._x` 属性",
        "dunder-attribute": "双下划线属性会触及解释器内部；请使用对象的公开 API",
        "dunder-name": "双下划线名字属于解释器；请换一个普通的名字",
        "escape-attribute": "这会触及解释器、进程或测试机制；没有哪个 kata 需要它",
        "dynamic-code": "直接写出代码，不要运行在运行时拼出来的代码",
        "reflection": "把需要的值作为参数传入，不要按名字去查找",
        "computed-attribute": "在代码里写明属性名（`obj.weight`，或者给 getattr 一个字符串常量），"
        "或者把这些对象放进 list、dict 或 nn.ModuleList",
        "class-construction": "用普通的 `class` 语句定义类，基类写成类名",
        "subclass-of-value-type": "请返回真正的 float、list 和张量；它们的子类会被拒绝",
        "dunder-method": "kata 中的类可以定义容器、算术运算和 __repr__，但不能定义比较、类型转换或属性钩子",
        "patches-a-library": "不要修改 torch、numpy 或其他模块；只改动你自己的对象",
        "module-as-value": "通过模块的属性使用它（`torch.zeros`），不要把模块当作值",
        "unsafe-unpickling": "加载时使用 weights_only=True（torch）或 allow_pickle=False（numpy）",
        "system-path": "kata 只读取传给它的文件或它自己写的文件",
        "ends-the-test-run": "请抛出 ValueError 之类的普通异常；跳过或退出测试会被拒绝",
        "swallows-harness-errors": "改为捕获 Exception，或在处理块末尾写 `raise`，"
        "也不要在 `finally` 块中 `return`",
        "too-deeply-nested": "把这个表达式拆成几个有名字的步骤",
        "unreadable-file": "请以普通文件提交 kata 文件，大小不超过 1 MiB",
    },
}


@dataclass(frozen=True)
class Violation:
    file: str
    line: int
    column: int
    rule: str
    found: str  # the offending code, shortened

    def describe(self, lang: str | None = None) -> str:
        """One line naming the file, line, code and rule, and what to do instead."""
        return text("line", lang).format(
            file=self.file, line=self.line, found=self.found, rule=self.rule, advice=text(self.rule, lang)
        )

    @property
    def message(self) -> str:
        return self.describe()


def check(source: str | bytes, filename: str) -> list[Violation]:
    """Every policy violation in one kata file's source; none for a file that does not parse."""
    try:
        tree = ast.parse(source, filename)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return []  # the harness reports a file that does not compile
    checker = _Checker(filename, tree)
    try:
        checker.visit(tree)
    except RecursionError:
        checker.violations.append(Violation(filename, 1, 0, "too-deeply-nested", "..."))
    first: dict[tuple[int, str], Violation] = {}  # one finding per line and rule
    for violation in sorted(checker.violations, key=lambda v: (v.line, v.column, v.rule)):
        first.setdefault((violation.line, violation.rule), violation)
    return sorted(first.values(), key=lambda v: (v.line, v.column, v.rule))


def check_file(path: str | os.PathLike, shown_as: str | None = None) -> list[Violation]:
    """check() on a file read without following a symlink: a regular file of at most 1 MiB.

    `shown_as` is the file name the violations carry (default: `path`).
    """
    name = shown_as or str(path)
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))
    except OSError:
        return [Violation(name, 1, 0, "unreadable-file", Path(path).name)]
    with os.fdopen(fd, "rb") as file:
        if not stat.S_ISREG(os.fstat(file.fileno()).st_mode):
            return [Violation(name, 1, 0, "unreadable-file", Path(path).name)]
        data = file.read(MAX_FILE_BYTES + 1)
    if len(data) > MAX_FILE_BYTES:
        return [Violation(name, 1, 0, "unreadable-file", Path(path).name)]
    return check(data, name)


def text(key: str, lang: str | None = None) -> str:
    return MESSAGES.get(lang or language.current(), MESSAGES["en"])[key]


def learner_warning(kata: str, path: Path, shown_as: str, lang: str | None = None) -> list[str]:
    """The lines a learner's run prints for a kata file the grader would score zero, or []."""
    found = check_file(path, shown_as)
    if not found:
        return []
    return [text("kata", lang).format(kata=kata, path=shown_as), *(v.describe(lang) for v in found)]


def module_allowed(dotted: str) -> bool:
    parts = dotted.split(".")
    if parts[0] not in ALLOWED_MODULES or any(p.startswith("_") for p in parts[1:]):
        return False
    return not any(dotted == bad or dotted.startswith(bad + ".") for bad in FORBIDDEN_MODULES)


_MODULE_CACHE: dict[str, bool] = {}


def is_module(dotted: str) -> bool:
    """Whether an allowed dotted name is a module; imports only allowed parents to find out."""
    if dotted not in _MODULE_CACHE:
        parent, _, last = dotted.rpartition(".")
        found = not parent and module_allowed(dotted)
        if parent and module_allowed(dotted) and is_module(parent):
            try:
                owner = importlib.import_module(parent)
                if hasattr(owner, last):  # an attribute wins over a submodule: torch.autograd.gradcheck
                    found = isinstance(getattr(owner, last), ModuleType)
                else:
                    found = hasattr(owner, "__path__") and importlib.util.find_spec(dotted) is not None
            except Exception:  # a broken or absent optional module is not a module to the policy
                found = False
        _MODULE_CACHE[dotted] = found
    return _MODULE_CACHE[dotted]


def _walk_in_function(node: ast.AST):
    """ast.walk that stays out of nested functions and classes."""
    yield node
    for child in ast.iter_child_nodes(node):
        if not isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)):
            yield from _walk_in_function(child)


def _shown(node: ast.AST) -> str:
    text = " ".join(ast.unparse(node).split())
    return text if len(text) <= 60 else text[:57] + "..."


class _Checker(ast.NodeVisitor):
    def __init__(self, filename: str, tree: ast.Module):
        self.filename = filename
        self.violations: list[Violation] = []
        self.imports: dict[str, str] = {}  # local name -> dotted name it was imported as
        self.modules: set[str] = set()  # local names bound to modules
        self.classes: set[str] = set()
        self.type_aliases: set[str] = set()  # names bound to `type` or to `type(x)`
        self.parents: dict[ast.AST, ast.AST] = {}
        self.exempt: set[ast.AST] = set()  # nodes already judged (docstrings, re-raised catch-alls)
        for node in ast.walk(tree):
            for child in ast.iter_child_nodes(node):
                self.parents[child] = node
            self._collect(node)

    def _collect(self, node: ast.AST) -> None:
        if isinstance(node, ast.Import):
            for alias in node.names:
                local = alias.asname or alias.name.split(".")[0]
                self.imports[local] = alias.name if alias.asname else local
                self.modules.add(local)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            for alias in node.names:
                dotted = f"{node.module}.{alias.name}"
                self.imports[alias.asname or alias.name] = dotted
                if module_allowed(dotted) and is_module(dotted):
                    self.modules.add(alias.asname or alias.name)
        elif isinstance(node, ast.ClassDef):
            self.classes.add(node.name)
        elif isinstance(node, (ast.Assign, ast.NamedExpr)) and self._is_type_call(node.value):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            self.type_aliases.update(t.id for t in targets if isinstance(t, ast.Name))
        elif isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):
            self.exempt.add(node.value)  # a docstring or bare string does nothing

    def flag(self, node: ast.AST, rule: str, found: str | None = None) -> None:
        line, column = getattr(node, "lineno", 1), getattr(node, "col_offset", 0)
        self.violations.append(Violation(self.filename, line, column, rule, found or _shown(node)))

    # --- names resolved through the imports ---

    def resolve(self, node: ast.AST) -> str | None:
        """The dotted name an import-rooted Name/Attribute chain stands for, else None."""
        if isinstance(node, ast.Name):
            return self.imports.get(node.id)
        if isinstance(node, ast.Attribute):
            owner = self.resolve(node.value)
            return owner and f"{owner}.{node.attr}"
        return None

    def imported_root(self, node: ast.AST) -> str | None:
        """The imported name an attribute/subscript chain (through getattr) starts from."""
        while True:
            if isinstance(node, (ast.Attribute, ast.Subscript)):
                node = node.value
            elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "getattr":
                if not node.args:
                    return None
                node = node.args[0]
            else:
                return node.id if isinstance(node, ast.Name) and node.id in self.imports else None

    def _is_type_call(self, node: ast.AST) -> bool:
        return (
            isinstance(node, ast.Name)
            and node.id == "type"
            or (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "type")
        )

    # --- imports ---

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            if not module_allowed(alias.name):
                self.flag(node, "import-not-allowed", f"import {alias.name}")

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        module = "." * node.level + (node.module or "")
        if node.level or not module_allowed(module):
            self.flag(node, "import-not-allowed", f"from {module} import ...")
            return
        for alias in node.names:
            found = f"from {module} import {alias.name}"
            if alias.name == "*":
                self.flag(node, "import-not-allowed", found)
            elif alias.name.startswith("_") and module != "__future__":
                self.flag(node, "private-name", found)
            elif f"{module}.{alias.name}" in FORBIDDEN_MODULES:
                self.flag(node, "import-not-allowed", found)
            else:
                self._check_attribute_name(node, alias.name, None, found, imported=True)

    # --- names and attributes ---

    def visit_Name(self, node: ast.Name) -> None:
        name, parent = node.id, self.parents.get(node)
        if isinstance(node.ctx, ast.Load):
            if DUNDER.match(name) and name not in ALLOWED_DUNDER_NAMES:
                self.flag(node, "dunder-name")
            elif name in DYNAMIC_CODE:
                self.flag(node, "dynamic-code")
            elif name in REFLECTION:
                self.flag(node, "reflection")
            elif name in ATTRIBUTE_BUILTINS:
                self.flag(node, "computed-attribute")  # called ones are judged in visit_Call
            elif name in RUN_ENDERS and node not in self.exempt:
                self.flag(node, "ends-the-test-run")
            elif name == "type" and not self._type_name_allowed(node):
                self.flag(node, "class-construction")
            elif name in self.modules and node not in self.exempt and not isinstance(parent, ast.Attribute):
                self.flag(node, "module-as-value")
        elif DUNDER.match(name) and name not in ASSIGNABLE_DUNDER_NAMES:
            self.flag(node, "dunder-name")

    def _type_name_allowed(self, node: ast.Name) -> bool:
        """`type` in an annotation or as isinstance's class: a value no one can call."""
        child, parent = node, self.parents.get(node)
        while isinstance(parent, (ast.Subscript, ast.Tuple, ast.BinOp, ast.Attribute)):
            child, parent = parent, self.parents.get(parent)
        if isinstance(parent, ast.Call):
            return isinstance(parent.func, ast.Name) and parent.func.id in ("isinstance", "issubclass")
        if isinstance(parent, ast.arg) or isinstance(parent, ast.AnnAssign) and parent.annotation is child:
            return True
        return isinstance(parent, (ast.FunctionDef, ast.AsyncFunctionDef)) and parent.returns is child

    def visit_Attribute(self, node: ast.Attribute) -> None:
        if isinstance(node.ctx, ast.Load) and self.resolve(node) in ALLOWED_PRIVATE_NAMES:
            return  # its private module is not looked at on the way
        before = len(self.violations)
        self._check_attribute_name(node, node.attr, node.value, _shown(node))
        dotted = self.resolve(node)
        if isinstance(node.ctx, (ast.Store, ast.Del)) and self.imported_root(node.value):
            if not (isinstance(node.ctx, ast.Store) and dotted in SETTABLE_FLAGS):
                self.flag(node, "patches-a-library")
        if dotted in FORBIDDEN_MODULES and len(self.violations) == before:
            self.flag(node, "import-not-allowed")
        parent = self.parents.get(node)
        used_as_value = not (isinstance(parent, ast.Attribute) and parent.value is node)
        if dotted and used_as_value and isinstance(node.ctx, ast.Load) and module_allowed(dotted):
            if is_module(dotted):
                self.flag(node, "module-as-value")
        if isinstance(node.value, ast.Constant) and node.attr in ("format", "format_map"):
            self._check_format_string(node.value)
        if not (isinstance(node.value, ast.Name) and node.value.id in self.modules):
            self.visit(node.value)

    def _check_attribute_name(
        self, node: ast.AST, attr: str, receiver: ast.AST | None, found: str, imported: bool = False
    ) -> None:
        rooted = imported or (receiver is not None and self.imported_root(receiver) is not None)
        if DUNDER.match(attr):
            if attr not in ALLOWED_DUNDER_ATTRIBUTES:
                self.flag(node, "dunder-attribute", found)
        elif attr.startswith("_"):
            own = isinstance(receiver, ast.Name) and receiver.id in OWN_OBJECTS
            own = own or isinstance(receiver, ast.Call) and getattr(receiver.func, "id", None) == "super"
            if not own and attr not in PUBLIC_UNDERSCORE_ATTRIBUTES:
                self.flag(node, "private-name", found)
        elif attr in ESCAPE_ATTRIBUTES or attr.startswith(ESCAPE_ATTRIBUTE_PREFIXES):
            self.flag(node, "escape-attribute", found)
        elif attr in RUN_ENDERS or rooted and attr in RUN_ENDERS_OF_MODULES:
            self.flag(node, "ends-the-test-run", found)
        elif attr in ("format", "format_map") and not isinstance(receiver, ast.Constant):
            self.flag(node, "computed-attribute", found)

    def _check_format_string(self, template: ast.Constant) -> None:
        """`"{0.attr}".format(x)` looks attributes up: each must pass as `x.attr` would."""
        try:
            fields = [f for _, f, _, _ in string.Formatter().parse(str(template.value)) if f]
        except ValueError:
            return
        for field in fields:
            for attr in re.findall(r"\.([^.\[]+)", field):
                self._check_attribute_name(template, attr, None, f"{{{field}}}")

    def visit_Subscript(self, node: ast.Subscript) -> None:
        if isinstance(node.ctx, (ast.Store, ast.Del)) and self.imported_root(node.value):
            self.flag(node, "patches-a-library")
        self.generic_visit(node)

    def visit_Constant(self, node: ast.Constant) -> None:
        if not isinstance(node.value, str) or node in self.exempt:
            return
        if SYSTEM_PATH.search(node.value):
            self.flag(node, "system-path")
        elif DUNDER.match(node.value) and node.value not in ALLOWED_DUNDER_STRINGS:
            self.flag(node, "dunder-attribute")

    def visit_MatchClass(self, node: ast.MatchClass) -> None:
        for attr in node.kwd_attrs:  # `case C(attr=x)` reads x.attr
            self._check_attribute_name(node, attr, None, attr)
        self.generic_visit(node)

    # --- calls ---

    def visit_Call(self, node: ast.Call) -> None:
        func = node.func
        name = func.id if isinstance(func, ast.Name) else None
        if name in ATTRIBUTE_BUILTINS:
            self._check_attribute_builtin(node, name)
        elif name == "type":
            if len(node.args) != 1 or node.keywords:  # type(name, bases, namespace) makes a class
                self.flag(node, "class-construction")
        else:
            self.visit(func)
            if len(node.args) == 3 and (name in self.type_aliases or self._is_type_call(func)):
                self.flag(node, "class-construction")  # t = type(float); t(name, bases, namespace)
        self._check_unpickling(node)
        for keyword in node.keywords:
            if keyword.arg and DUNDER.match(keyword.arg):
                self.flag(keyword.value, "dunder-name", f"{keyword.arg}=...")
        for child in [*node.args, *node.keywords]:
            self.visit(child)

    def _check_attribute_builtin(self, node: ast.Call, name: str) -> None:
        attr = node.args[1] if len(node.args) > 1 else None
        if not (isinstance(attr, ast.Constant) and isinstance(attr.value, str)) or node.keywords:
            self.flag(node, "computed-attribute")
            return
        self.exempt.add(attr)
        self._check_attribute_name(node, attr.value, node.args[0], _shown(node))
        if name in ("setattr", "delattr") and self.imported_root(node.args[0]):
            self.flag(node, "patches-a-library")

    def _check_unpickling(self, node: ast.Call) -> None:
        dotted = (self.resolve(node.func) or "").split(".")
        loads = dotted[0] in UNPICKLING_ROOTS and dotted[-1] == "load"
        unsafe = loads and (
            len(node.args) > UNPICKLING_POSITIONAL or any(isinstance(a, ast.Starred) for a in node.args)
        )
        for keyword in node.keywords:
            value = keyword.value.value if isinstance(keyword.value, ast.Constant) else None
            if keyword.arg == "weights_only" and value is not True:
                unsafe = True
            elif keyword.arg == "allow_pickle" and value is not False:
                unsafe = True
            elif keyword.arg == "pickle_module" or (keyword.arg is None and loads):
                unsafe = True
        if unsafe:
            self.flag(node, "unsafe-unpickling")

    # --- definitions ---

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        for base in node.bases:
            self._check_base(base)
        for keyword in node.keywords:
            if keyword.arg == "metaclass" or keyword.arg is None:
                self.flag(keyword.value, "class-construction", f"class {node.name}(..., metaclass=...)")
        self.generic_visit(node)

    def _check_base(self, base: ast.expr) -> None:
        shown = _shown(base)
        if isinstance(base, ast.Subscript):  # Generic[T], Dataset[int]
            base = base.value
        dotted = self.resolve(base)
        if dotted:
            root, last = dotted.split(".")[0], dotted.rsplit(".", 1)[-1]
            if (root == "torch" and last in TORCH_VALUE_TYPES) or (
                root == "numpy" and last in NUMPY_VALUE_TYPES
            ):
                self.flag(base, "subclass-of-value-type", shown)
        elif isinstance(base, ast.Name) and base.id in VALUE_TYPES:
            self.flag(base, "subclass-of-value-type", shown)
        elif not self._is_class_name(base):
            self.flag(base, "class-construction", shown)  # a base computed at run time

    def _is_class_name(self, node: ast.expr) -> bool:
        """A builtin class, or a class of this file (or an attribute of one)."""
        while isinstance(node, ast.Attribute):
            node = node.value
        return isinstance(node, ast.Name) and (node.id in self.classes or hasattr(builtins, node.id))

    def visit_FunctionDef(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        in_class = isinstance(self.parents.get(node), ast.ClassDef)
        if DUNDER.match(node.name) and not (in_class and node.name in ALLOWED_DUNDER_METHODS):
            self.flag(node, "dunder-method", f"def {node.name}")
        self.generic_visit(node)

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_Try(self, node: ast.Try) -> None:
        for statement in node.finalbody:  # `return` in `finally` discards any exception, Failed too
            for inner in _walk_in_function(statement):
                if isinstance(inner, ast.Return):
                    self.flag(inner, "swallows-harness-errors", "finally: return")
        self.generic_visit(node)

    visit_TryStar = visit_Try

    def visit_ExceptHandler(self, node: ast.ExceptHandler) -> None:
        caught = node.type.elts if isinstance(node.type, ast.Tuple) else [node.type]
        catch_all = [c for c in caught if c is None or isinstance(c, ast.Name) and c.id in CATCH_ALL]
        if catch_all and not isinstance(node.body[-1], ast.Raise):  # catches the harness's Failed
            self.flag(node, "swallows-harness-errors", f"except {_shown(node.type) if node.type else ''}:")
        self.exempt.update(c for c in catch_all if c is not None)
        self.generic_visit(node)
