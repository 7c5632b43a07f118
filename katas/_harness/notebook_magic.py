"""`%load_ext katas` and `%%kata EXERCISE`: the notebook path (Jupyter, Colab).

A `%%kata` cell holds the learner's definition of one exercise's function or class
(and any imports it needs). The magic writes that definition into the kata file in
place of the current one, as `reset` rewrites one definition (what it replaces is
copied to .katas/backups/ first, unless it is the untouched stub), then runs the
kata's tests in a fresh interpreter and prints the exercise's teaching messages and
the kata's progress. A fresh interpreter per run: the kernel never imports stale
kata code, and a learner's infinite loop or crash costs that process, not the kernel.

`%kata EXERCISE` (one %) runs the tests without writing anything, for a file edited
in an editor. Every problem is one readable paragraph, never a traceback.
"""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from . import language, pristine, reset
from .manifest import Exercise, Manifest, ManifestError, UnknownExercise, find_tree, load

MESSAGES = {
    "en": {
        "usage": (
            "Start the cell with `%%kata EXERCISE` (for example `%%kata 01_autograd/grad_at`) and put "
            "your definition of that function below it."
        ),
        "no_checkout": (
            "No torch-katas checkout at or above {cwd}: run the notebook's first cell (it finds or "
            "clones the project and moves there), or `%cd` into your clone of torch-katas."
        ),
        "bad_manifest": "The project's manifest cannot be read: {error}",
        "unknown": "There is no exercise named {name}.{close} Exercises are named KATA/FUNCTION.",
        "close": " Did you mean {names}?",
        "syntax": "The cell does not parse (cell line {line}: {error}); nothing was written.",
        "not_a_definition": (
            "Cell line {line}: `{code}` is neither an import nor the definition of {name}. A %%kata cell "
            "holds imports and one definition; put other code inside the function or in another cell. "
            "Nothing was written."
        ),
        "wrong_name": (
            "The cell defines {found}, but this exercise is {name}: name the definition {name}. "
            "Nothing was written."
        ),
        "no_definition": "The cell holds no definition of {name}; nothing was written.",
        "twice": "The cell defines {name} twice; keep one. Nothing was written.",
        "file_syntax": (
            "{path} does not parse (line {line}), so the cell cannot be put into it. Fix that line in "
            "an editor, or restore the stub with `!python -m katas reset {kata}` (it keeps a backup). "
            "Nothing was written."
        ),
        "unreadable": "{path} cannot be read or written: {error}. Nothing was written.",
        "written": "Wrote {name} into {path}.",
        "unchanged": "{path} already holds this {name}.",
        "backup": "Your previous version is kept in {backup}.",
        "running": "Running the tests of {kata} ...",
        "done": "{exercise}: done ({passed} of {total} tests passed)",
        "done_skipped": "{exercise}: done ({passed} of {total} tests passed, {skipped} skipped: {reason})",
        "failing": "{exercise}: {failed} of {total} tests failing",
        "todo": "{exercise}: still the stub",
        "not_run": "{exercise}: no test of this exercise ran (see the errors above)",
        "crashed": "The test run ended without a result (exit status {code}); its output is above.",
        "stopped": "Stopped: the tests did not finish.",
    },
    "zh": {
        "usage": (
            "单元格第一行写 `%%kata 练习名`（例如 `%%kata 01_autograd/grad_at`），下面写你对该函数的定义。"
        ),
        "no_checkout": (
            "{cwd} 及其上级目录中找不到 torch-katas 项目：先运行 notebook 的第一个单元格"
            "（它会找到或克隆项目并切换到那里），或者用 `%cd` 进入你克隆的 torch-katas。"
        ),
        "bad_manifest": "无法读取项目的清单：{error}",
        "unknown": "没有名为 {name} 的练习。{close}练习的名字形如 KATA/FUNCTION。",
        "close": "你是不是想写 {names}？",
        "syntax": "单元格无法解析（单元格第 {line} 行：{error}），没有写入任何内容。",
        "not_a_definition": (
            "单元格第 {line} 行：`{code}` 既不是 import，也不是 {name} 的定义。"
            "%%kata 单元格只放 import 和一个定义；其他代码请放进函数里或另一个单元格。没有写入任何内容。"
        ),
        "wrong_name": (
            "单元格定义的是 {found}，但这个练习是 {name}：请把定义命名为 {name}。没有写入任何内容。"
        ),
        "no_definition": "单元格中没有 {name} 的定义，没有写入任何内容。",
        "twice": "单元格定义了两次 {name}，请只保留一个。没有写入任何内容。",
        "file_syntax": (
            "{path} 无法解析（第 {line} 行），单元格无法写入其中。请在编辑器中修正这一行，或者用 "
            "`!python -m katas reset {kata}` 恢复原始存根（会保留备份）。没有写入任何内容。"
        ),
        "unreadable": "无法读写 {path}：{error}。没有写入任何内容。",
        "written": "已将 {name} 写入 {path}。",
        "unchanged": "{path} 中的 {name} 已经是这个版本。",
        "backup": "你之前的版本保存在 {backup}。",
        "running": "正在运行 {kata} 的测试……",
        "done": "{exercise}：完成（{total} 个测试通过了 {passed} 个）",
        "done_skipped": "{exercise}：完成（{total} 个测试通过了 {passed} 个，跳过 {skipped} 个：{reason}）",
        "failing": "{exercise}：{total} 个测试中有 {failed} 个失败",
        "todo": "{exercise}：仍是原始存根",
        "not_run": "{exercise}：这个练习的测试一个也没有运行（错误见上方）",
        "crashed": "测试运行没有给出结果就结束了（退出状态 {code}），输出见上方。",
        "stopped": "已停止：测试没有运行完。",
    },
}

NOT_DONE = 10  # the child's exit status when the exercise is not done; 0 when it is; else it crashed


def text(key: str) -> str:
    return MESSAGES[language.current()][key]


class CellError(Exception):
    """Why the cell was not written; the message is for the learner."""


# --- putting a cell into the kata file --------------------------------------------------------------


@dataclass(frozen=True)
class Written:
    path: Path  # the kata file
    changed: bool
    backup: Path | None  # where the replaced version went, if it was the learner's


def find_project(cwd: Path | None = None) -> Manifest:
    root = find_tree(cwd or Path.cwd())
    if root is None:
        raise CellError(text("no_checkout").format(cwd=cwd or Path.cwd()))
    try:
        return load(root)
    except ManifestError as err:
        raise CellError(text("bad_manifest").format(error=err)) from None


def resolve(manifest: Manifest, name: str) -> Exercise:
    name = name.strip()
    if not name:
        raise CellError(text("usage"))
    try:
        return manifest.exercise(name)
    except UnknownExercise as err:
        close = text("close").format(names=", ".join(err.suggestions)) if err.suggestions else ""
        raise CellError(text("unknown").format(name=name, close=close)) from None


def defined_name(cell: str) -> str | None:
    """The one top-level definition of a cell, for `%%kata` without a name."""
    try:
        names = [n.name for n in ast.parse(cell).body if isinstance(n, _DEFINITIONS)]
    except SyntaxError:
        return None
    return names[0] if len(names) == 1 else None


_DEFINITIONS = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)


def splice(current: str, cell: str, name: str, kata: str, shown: str) -> str:
    """`current` with the definition `name` taken from `cell`, and the cell's imports it lacks."""
    try:
        tree = ast.parse(cell)
    except SyntaxError as err:
        raise CellError(text("syntax").format(line=err.lineno, error=err.msg)) from None
    lines = cell.splitlines(keepends=True)
    imports: list[str] = []
    definition: str | None = None
    for node in tree.body:
        if isinstance(node, (ast.Import, ast.ImportFrom)) and getattr(node, "module", None) != "__future__":
            imports.append(ast.unparse(node))
        elif isinstance(node, _DEFINITIONS):
            if node.name != name:
                raise CellError(text("wrong_name").format(found=node.name, name=name))
            if definition is not None:
                raise CellError(text("twice").format(name=name))
            first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
            definition = "".join(lines[first - 1 : node.end_lineno]).rstrip() + "\n"
        elif not (isinstance(node, ast.ImportFrom) and node.module == "__future__"):
            code = lines[node.lineno - 1].strip()
            raise CellError(text("not_a_definition").format(line=node.lineno, code=code, name=name))
    if definition is None:
        raise CellError(text("no_definition").format(name=name))
    try:
        spans = pristine.definitions(current)
    except SyntaxError as err:
        raise CellError(text("file_syntax").format(path=shown, line=err.lineno, kata=kata)) from None
    file_lines = current.splitlines(keepends=True)
    if file_lines and not file_lines[-1].endswith("\n"):
        file_lines[-1] += "\n"
    span = spans.get(name)
    if span is None:  # the learner deleted it: it goes at the end
        file_lines += ["\n", "\n", definition]
    else:
        file_lines[span[0] - 1 : span[1]] = [definition]
    return _add_imports("".join(file_lines), imports)


def _add_imports(source: str, imports: list[str]) -> str:
    """Each import the module lacks, after its last top-level import (or its docstring)."""
    body = ast.parse(source).body
    have = {ast.unparse(n) for n in body if isinstance(n, (ast.Import, ast.ImportFrom))}
    missing = list(dict.fromkeys(i for i in imports if i not in have))
    if not missing:
        return source
    after = 0
    for node in body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            after = node.end_lineno or node.lineno
        elif after == 0 and isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):
            after = node.end_lineno or node.lineno  # the module docstring
    lines = source.splitlines(keepends=True)
    return "".join([*lines[:after], *(line + "\n" for line in missing), *lines[after:]])


def write_cell(manifest: Manifest, exercise: Exercise, cell: str) -> Written:
    """Put the cell's definition into the kata file, keeping a backup of the learner's version."""
    kata = manifest.kata(exercise.kata)
    path = kata.stub_path(manifest.root / "katas")
    shown = pristine.relative_path(kata)
    try:
        current = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        current = pristine.read(manifest.root).get(shown, "")
    except OSError as err:
        raise CellError(text("unreadable").format(path=shown, error=err.strerror or err)) from None
    new = splice(current, cell, exercise.name, kata.name, shown)
    if new == current:
        return Written(path, changed=False, backup=None)
    saved = None
    original = pristine.read(manifest.root).get(shown)
    if current and not (original is not None and pristine.untouched(current, original, exercise.name)):
        saved = reset.backup(manifest.root, reset.Plan(kata, exercise, path, current, new))
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(new, encoding="utf-8")
        os.replace(tmp, path)
    except OSError as err:
        tmp.unlink(missing_ok=True)
        raise CellError(text("unreadable").format(path=shown, error=err.strerror or err)) from None
    return Written(path, changed=True, backup=saved)


# --- running the tests ------------------------------------------------------------------------------


def run_tests(manifest: Manifest, exercise: Exercise, out=None) -> int:
    """Run the exercise's kata in a fresh interpreter and copy its report to `out` as it comes.

    Returns the child's exit status: 0 when the exercise is done.
    """
    out = out or sys.stdout
    kata = manifest.kata(exercise.kata)
    print(text("running").format(kata=kata.name), file=out, flush=True)
    command = [sys.executable, "-m", "katas._harness.notebook_magic", str(manifest.root), exercise.qualname]
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONIOENCODING": "utf-8"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(manifest.root), env.get("PYTHONPATH")]))
    with subprocess.Popen(
        command,
        cwd=manifest.root,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        encoding="utf-8",
        errors="replace",
    ) as child:
        try:  # each test stops itself after 60 s (pytest-timeout), so the run ends
            for line in child.stdout:
                print(line, end="", file=out, flush=True)
            code = child.wait()
        except KeyboardInterrupt:  # the notebook's stop button: a line, not a traceback
            child.kill()
            print(text("stopped"), file=out)
            return 130
    if code not in (0, NOT_DONE):
        print(text("crashed").format(code=code), file=out)
    return code


def _child(root: Path, qualname: str) -> int:
    """In the fresh interpreter: run the kata, print the exercise's messages, then the progress."""
    from . import messages as msg
    from . import policy
    from .progress import Progress, Tally
    from .runner import run_pytest

    manifest = load(root)
    exercise = manifest.exercise(qualname)
    kata = manifest.kata(exercise.kata)
    result = run_pytest([str(root / "katas" / kata.name), f"--rootdir={root}", f"--katas-root={root}"])
    for _, error in result.errors:
        print(error.rstrip(), end="\n\n")
    mine = [o for o in result.outcomes.values() if o.exercise == exercise.qualname]
    tally = Tally()
    for outcome in mine:
        setattr(tally, outcome.outcome, getattr(tally, outcome.outcome) + 1)
    failed = [o for o in mine if o.outcome in ("failed", "todo")]
    shown: dict[str, list[str]] = {}  # one message, the tests that gave it
    for outcome in failed:
        shown.setdefault(outcome.message.strip(), []).append(outcome.nodeid.rpartition("::")[2])
    for message, tests in shown.items():
        for test in tests:
            print(f"{msg.STATUS_MARKS['failing']} {test}")
        print(message, end="\n\n")
    status = tally.status
    if status == "done":
        skipped = [o for o in mine if o.outcome == "skipped"]
        if skipped:
            line = text("done_skipped").format(
                exercise=exercise.qualname,
                passed=tally.passed,
                total=tally.total,
                skipped=len(skipped),
                reason=_skip_reason(skipped[0].message),
            )
        else:
            line = text("done").format(exercise=exercise.qualname, passed=tally.passed, total=tally.total)
    elif status == "failing":
        line = text("failing").format(exercise=exercise.qualname, failed=tally.failed, total=tally.total)
    elif status == "todo":
        line = text("todo").format(exercise=exercise.qualname)
    else:
        line = text("not_run").format(exercise=exercise.qualname)
    print(line, end="\n\n")
    shown_path = pristine.relative_path(kata)
    warning = policy.learner_warning(kata.name, kata.stub_path(root / "katas"), shown_path)
    if warning:
        print(policy.text("title"))
        print("\n".join(warning), end="\n\n")
    progress = Progress()
    for outcome in result.outcomes.values():
        progress.record(outcome.nodeid, outcome.exercise, outcome.outcome)
    if result.errors:
        progress.broken.add(kata.name)
    print(msg.PROGRESS_TITLE)
    for text_line in progress.render(manifest, lambda k: Path(pristine.relative_path(k)), False):
        print(text_line)
    return 0 if status == "done" else NOT_DONE


def _skip_reason(message: str) -> str:
    """`needs CUDA` out of a skip's report text, `('path', 95, 'Skipped: needs CUDA')`."""
    found = re.search(r"Skipped: (.*?)['\"]?\)?$", message.strip())
    return found.group(1) if found else message.strip()


# --- the IPython side -------------------------------------------------------------------------------


def kata(line: str, cell: str | None = None) -> None:
    """`%%kata EXERCISE`: write the cell's definition into the kata file and run its tests.

    `%kata EXERCISE`: run the tests only. Without EXERCISE, the cell's one definition names it.
    """
    try:
        manifest = find_project()
        name = line.strip() or (defined_name(cell) if cell is not None else None) or ""
        exercise = resolve(manifest, name)
        if cell is not None:
            written = write_cell(manifest, exercise, cell)
            shown = pristine.relative_path(manifest.kata(exercise.kata))
            key = "written" if written.changed else "unchanged"
            print(text(key).format(name=exercise.name, path=shown))
            if written.backup is not None:
                print(text("backup").format(backup=written.backup.relative_to(manifest.root)))
    except CellError as err:
        print(err, file=sys.stderr)
        return
    run_tests(manifest, exercise)


def load_ipython_extension(ipython) -> None:
    ipython.register_magic_function(kata, magic_kind="line_cell", magic_name="kata")


if __name__ == "__main__":
    raise SystemExit(_child(Path(sys.argv[1]), sys.argv[2]))
