"""The notebook path: `%load_ext katas`, `%%kata EXERCISE`, and the generated notebooks.

The headless test runs a generated notebook in a real kernel (nbclient + ipykernel's own
`python3` kernel spec, so no registered kernel is needed): a wrong answer shows its teaching
message, a right one shows done.
"""

from __future__ import annotations

import io
import re

import nbformat
import pytest

from katas._harness import notebook_magic, notebooks, pristine, reset
from katas._harness.cli import main
from katas._harness.manifest import load
from tests.project_copy import MANIFEST, ROOT, make_copy, stub_file

KATA = MANIFEST.kata("01_autograd")

WRONG = """\
%%kata 01_autograd/grad_at
def grad_at(f, x):
    x = torch.tensor(x, requires_grad=True)
    y = f(x)
    y.backward()
    return float(y)  # the value, not the gradient
"""

RIGHT = """\
%%kata 01_autograd/grad_at
import math


def grad_at(f: Callable[[Tensor], Tensor], x: float) -> float:
    x = torch.tensor(x, requires_grad=True)
    f(x).backward()
    return x.grad.item()
"""

NOT_A_DEFINITION = "%%kata 01_autograd/grad_at\nx = 1\ndef grad_at(f, x):\n    return 0.0\n"


@pytest.fixture(scope="module")
def copy(tmp_path_factory):
    return make_copy(tmp_path_factory.mktemp("notebooks") / "project")


def text_of(cell) -> str:
    return "".join(output.get("text", "") for output in cell.outputs if output.output_type == "stream")


# --- the notebook in a kernel ------------------------------------------------------------------------


def test_a_generated_notebook_runs_headless_a_wrong_answer_teaches_and_a_right_one_is_done(
    tmp_path, monkeypatch
):
    from nbclient import NotebookClient

    copy = make_copy(tmp_path / "project")
    folder = copy / "katas" / KATA.name
    path = copy / notebooks.notebook_path(KATA)
    path.write_text(notebooks.render(load(copy), KATA), encoding="utf-8")
    generated = nbformat.read(path, as_version=4)
    code = [cell for cell in generated.cells if cell.cell_type == "code"]
    setup, imports = code[0], code[1]
    assert "%load_ext katas" in setup.source
    first = next(cell.source for cell in code if cell.source.startswith("%%kata"))
    assert first.startswith("%%kata 01_autograd/grad_at\n")

    notebook = nbformat.v4.new_notebook(metadata=generated.metadata)
    notebook.cells = [setup, imports] + [
        nbformat.v4.new_code_cell(source) for source in (NOT_A_DEFINITION, WRONG, RIGHT)
    ]
    # The kernel's own files stay in tmp_path; its cwd is the kata folder, as when Jupyter opens it.
    # No user-level kernel spec or config is read: ipykernel's python3, run by this interpreter.
    for name in ("JUPYTER_RUNTIME_DIR", "JUPYTER_DATA_DIR", "JUPYTER_CONFIG_DIR"):
        monkeypatch.setenv(name, str(tmp_path / name.lower()))
    monkeypatch.delenv("JUPYTER_PATH", raising=False)
    monkeypatch.setenv("IPYTHONDIR", str(tmp_path / "ipython"))
    client = NotebookClient(
        notebook, kernel_name="python3", timeout=240, resources={"metadata": {"path": str(folder)}}
    )
    client.execute()

    errors = [o for cell in notebook.cells for o in cell.outputs if o.output_type == "error"]
    assert errors == []  # every problem is a message, never a traceback
    refused, wrong, right = (text_of(cell) for cell in notebook.cells[2:])
    assert "Cell line 1: `x = 1` is neither an import nor the definition of grad_at" in refused
    assert "Called grad_at(lambda x: x**2 + 3*x + 2, 1.0)." in wrong
    assert "Likely cause: you returned f(1.0) = 6, the value, not the gradient" in wrong
    assert re.search(r"01_autograd/grad_at: \d of \d tests failing", wrong)
    assert "01_autograd/grad_at: done (4 of 4 tests passed)" in right
    assert re.search(r"✓ grad_at +done", right)
    assert "Next: 01_autograd/partial_derivatives" in right

    written = stub_file(copy).read_text(encoding="utf-8")
    assert "return x.grad.item()" in written and "import math\n" in written
    (backup,) = (copy / reset.BACKUP_DIR).iterdir()  # the wrong answer, replaced by the right one
    assert "return float(y)  # the value, not the gradient" in backup.read_text(encoding="utf-8")


# --- putting a cell into the kata file ---------------------------------------------------------------


def cell_body(source: str) -> str:
    return source.split("\n", 1)[1]


@pytest.fixture
def manifest(copy):
    stub_file(copy).write_text(pristine.read(copy)[pristine.relative_path(KATA)], encoding="utf-8")
    backups = copy / reset.BACKUP_DIR
    for path in backups.iterdir() if backups.is_dir() else ():
        path.unlink()
    return load(copy)


def test_the_cell_replaces_one_definition_and_adds_only_the_imports_the_file_lacks(manifest):
    exercise = manifest.exercise("01_autograd/grad_at")
    before = stub_file(manifest.root).read_text(encoding="utf-8")
    cell = "import torch\nfrom torch import Tensor\nimport math\n\n\n" + cell_body(RIGHT).split("\n\n\n")[1]

    written = notebook_magic.write_cell(manifest, exercise, cell)

    after = stub_file(manifest.root).read_text(encoding="utf-8")
    assert written.changed and written.backup is None  # it replaced the untouched stub: nothing lost
    assert after.count("import torch\n") == 1 and after.count("import math\n") == 1
    assert after.index("import math") < after.index("def grad_at")
    assert pristine.segment(after, "grad_at").endswith("return x.grad.item()\n")
    for other in KATA.exercises[1:]:
        assert pristine.segment(after, other.name) == pristine.segment(before, other.name)
    again = notebook_magic.write_cell(manifest, exercise, cell)
    assert not again.changed


def test_the_learners_version_is_backed_up_before_it_is_replaced(manifest):
    exercise = manifest.exercise("01_autograd/grad_at")
    notebook_magic.write_cell(manifest, exercise, cell_body(WRONG))
    mine = stub_file(manifest.root).read_text(encoding="utf-8")
    written = notebook_magic.write_cell(manifest, exercise, cell_body(RIGHT))
    assert written.backup is not None and written.backup.read_text(encoding="utf-8") == mine


def test_a_deleted_definition_goes_at_the_end_of_the_file(manifest):
    path = stub_file(manifest.root)
    text = path.read_text(encoding="utf-8")
    first, last = pristine.definitions(text)["per_loss_grads"]
    lines = text.splitlines(keepends=True)
    path.write_text("".join(lines[: first - 1] + lines[last:]), encoding="utf-8")
    cell = "def per_loss_grads(trunk, heads, x):\n    return []\n"
    notebook_magic.write_cell(manifest, manifest.exercise("per_loss_grads"), cell)
    assert path.read_text(encoding="utf-8").endswith("\n\n\n" + cell)


@pytest.mark.parametrize(
    ("cell", "says"),
    [
        ("def grad(f, x):\n    return 0.0\n", "The cell defines grad, but this exercise is grad_at"),
        ("def grad_at(f, x:\n    return 0.0\n", "The cell does not parse (cell line 1"),
        ("print(1)\ndef grad_at(f, x):\n    return 0.0\n", "Cell line 1: `print(1)` is neither"),
        ("import math\n", "The cell holds no definition of grad_at"),
        ("def grad_at(f, x):\n    return 0\ndef grad_at(f, x):\n    return 1\n", "defines grad_at twice"),
    ],
)
def test_a_cell_that_is_not_one_definition_of_the_exercise_writes_nothing(manifest, cell, says):
    before = stub_file(manifest.root).read_text(encoding="utf-8")
    with pytest.raises(notebook_magic.CellError, match=re.escape(says)) as caught:
        notebook_magic.write_cell(manifest, manifest.exercise("grad_at"), cell)
    assert "Nothing was written" in str(caught.value) or "nothing was written" in str(caught.value)
    assert stub_file(manifest.root).read_text(encoding="utf-8") == before


def test_a_kata_file_that_does_not_parse_is_left_alone_with_a_way_out(manifest):
    path = stub_file(manifest.root)
    path.write_text(path.read_text(encoding="utf-8") + "\ndef broken(:\n", encoding="utf-8")
    with pytest.raises(notebook_magic.CellError, match=r"does not parse .*python -m katas reset 01_autograd"):
        notebook_magic.write_cell(manifest, manifest.exercise("grad_at"), cell_body(RIGHT))


def test_the_magic_names_unknown_exercises_and_missing_checkouts_in_one_line(copy, tmp_path, monkeypatch):
    monkeypatch.chdir(copy)
    with pytest.raises(notebook_magic.CellError, match="no exercise named grad_att. Did you mean .*grad_at"):
        notebook_magic.resolve(load(copy), "grad_att")
    assert notebook_magic.defined_name("import math\n\ndef grad_at(f, x):\n    pass\n") == "grad_at"
    monkeypatch.setattr(notebook_magic, "find_tree", lambda cwd: None)
    err = io.StringIO()
    monkeypatch.setattr("sys.stderr", err)
    notebook_magic.kata("grad_at", "def grad_at(f, x):\n    pass\n")
    assert err.getvalue().startswith(f"No torch-katas checkout at or above {copy}")


def test_the_line_magic_runs_the_tests_without_writing(manifest, monkeypatch):
    monkeypatch.chdir(manifest.root)
    ran = []
    monkeypatch.setattr(notebook_magic, "run_tests", lambda found, exercise: ran.append(exercise.qualname))
    before = stub_file(manifest.root).read_text(encoding="utf-8")
    notebook_magic.kata("grad_at")
    assert ran == ["01_autograd/grad_at"]
    assert stub_file(manifest.root).read_text(encoding="utf-8") == before


# --- the generated notebooks -------------------------------------------------------------------------


@pytest.mark.parametrize("kata", notebooks.ready(MANIFEST), ids=lambda kata: kata.name)
def test_each_notebook_holds_the_set_up_the_lesson_and_one_kata_cell_per_exercise(kata):
    notebook = nbformat.reads(notebooks.render(MANIFEST, kata), as_version=4)
    nbformat.validate(notebook)
    code = [cell.source for cell in notebook.cells if cell.cell_type == "code"]
    assert "%load_ext katas" in code[0] and '"git", "clone"' in code[0]
    clean = pristine.read(ROOT).get(pristine.relative_path(kata))  # a kata not snapshotted yet: its file
    clean = clean or kata.stub_path(ROOT / "katas").read_text(encoding="utf-8")
    cells = [source for source in code if source.startswith("%%kata ")]
    assert [c.split("\n", 1)[0] for c in cells] == [f"%%kata {ex.qualname}" for ex in kata.exercises]
    for source, exercise in zip(cells, kata.exercises, strict=True):
        assert source.split("\n", 1)[1] + "\n" == pristine.segment(clean, exercise.name)
    readme = (ROOT / "katas" / kata.name / "README.md").read_text(encoding="utf-8")
    snippets = [s.strip("\n") for s in re.findall(r"^```python\n(.*?)^```", readme, re.S | re.M)]
    assert code[2:] == snippets[: len(code) - 2 - len(cells)] + cells + snippets[len(code) - 2 - len(cells) :]


def test_the_notebooks_and_colab_badges_in_the_repository_are_up_to_date():
    assert notebooks.stale(MANIFEST) == [], "run `python -m katas notebooks` and commit what it writes"


def test_each_readme_opens_its_notebook_in_colab():
    repo = notebooks.repository(ROOT)
    for kata in notebooks.ready(MANIFEST):
        for readme in notebooks.BADGE_TEXT:
            text = (ROOT / "katas" / kata.name / readme).read_text(encoding="utf-8")
            assert notebooks.badge_line(repo, kata, readme) in text, f"katas/{kata.name}/{readme}"
    url = notebooks.colab_url("https://github.com/someone/torch-katas", KATA)
    assert url == (
        "https://colab.research.google.com/github/someone/torch-katas/blob/main/katas/01_autograd/01_autograd.ipynb"
    )


def test_the_command_writes_into_out_only_and_check_sees_a_stale_file(copy, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["--root", str(copy), "notebooks", "--out", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == [f"{k.name}.ipynb" for k in notebooks.ready(load(copy))]
    assert main(["--root", str(copy), "notebooks"]) == 0
    assert main(["--root", str(copy), "notebooks", "--check"]) == 0
    path = copy / notebooks.notebook_path(KATA)
    path.write_text(path.read_text(encoding="utf-8").replace("grad_at", "grad"), encoding="utf-8")
    capsys.readouterr()
    assert main(["--root", str(copy), "notebooks", "--check"]) == 1
    assert f"{notebooks.notebook_path(KATA)}: out of date" in capsys.readouterr().out


def test_every_message_of_the_magic_has_a_chinese_twin_with_the_same_fields():
    english, chinese = notebook_magic.MESSAGES["en"], notebook_magic.MESSAGES["zh"]
    assert english.keys() == chinese.keys()
    for key, text in english.items():
        assert set(re.findall(r"\{(\w+)\}", chinese[key])) == set(re.findall(r"\{(\w+)\}", text)), key
        assert any("\u4e00" <= ch <= "\u9fff" for ch in chinese[key]), key
