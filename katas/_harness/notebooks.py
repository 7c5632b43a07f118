"""`python -m katas notebooks`: one Jupyter notebook per kata, generated from its lesson and stubs.

katas/NN_name/NN_name.ipynb sits beside the lesson it is made from, so a Colab badge can open
it straight from the repository. It holds a set-up cell (find the checkout, or on Colab clone
and install it), the lesson with its Python snippets as code cells, and one `%%kata` cell per
exercise holding the pristine stub. The command also keeps the "Open in Colab" line of each
kata's README.md and README.zh-CN.md pointing at the notebook. Katas listed in the manifest but
not written yet (no README or stub) are left out until they exist.

The repository the badges and the clone point at is pyproject.toml's [project.urls] Source
(or Repository, Homepage), when it is a GitHub address; until the project has one, a
placeholder that says so.
"""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

from . import pristine
from .manifest import Kata, Manifest

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

PLACEHOLDER = "https://github.com/OWNER/torch-katas"  # until pyproject.toml names the repository
BRANCH = "main"
BADGE_IMAGE = "https://colab.research.google.com/assets/colab-badge.svg"
BADGE_TEXT = {"README.md": "Open in Colab", "README.zh-CN.md": "在 Colab 中打开"}
BADGE_LINE = re.compile(r"^\[!\[[^\]]*\]\(" + re.escape(BADGE_IMAGE) + r"\)\]\([^)]*\)\n", re.M)
LANGUAGE_LINK = re.compile(r"^\[[^\]]+\]\(README(?:\.zh-CN)?\.md\)\n", re.M)  # the lesson's first link
PYTHON_BLOCK = re.compile(r"^```python\n(.*?)^```\n?", re.S | re.M)
RELATIVE_LINK = re.compile(r"\]\((?![a-z]+:|#)([^)\s]+)\)")
EXERCISES_HEADING = "## The exercises"
SHOWS_AN_ERROR = re.compile(r"#\s*\w*Error\b")  # a lesson snippet that demonstrates an exception


def repository(root: Path) -> str:
    """The project's GitHub address, from pyproject.toml's [project.urls]; else PLACEHOLDER."""
    try:
        with (root / "pyproject.toml").open("rb") as file:
            urls = tomllib.load(file).get("project", {}).get("urls", {})
    except (OSError, tomllib.TOMLDecodeError):
        urls = {}
    for key in ("Source", "Repository", "Homepage"):
        url = str(urls.get(key, "")).rstrip("/").removesuffix(".git")
        if re.fullmatch(r"https://github\.com/[\w.-]+/[\w.-]+", url):
            return url
    return PLACEHOLDER


def notebook_path(kata: Kata) -> str:
    """Where the kata's notebook lives, relative to the project root."""
    return f"katas/{kata.name}/{kata.name}.ipynb"


def colab_url(repo: str, kata: Kata) -> str:
    return f"https://colab.research.google.com/github/{repo.removeprefix('https://github.com/')}/blob/{BRANCH}/{notebook_path(kata)}"


def badge_line(repo: str, kata: Kata, readme: str) -> str:
    return f"[![{BADGE_TEXT[readme]}]({BADGE_IMAGE})]({colab_url(repo, kata)})\n"


def ready(manifest: Manifest) -> list[Kata]:
    """The katas with a lesson and a stub file: the ones a notebook can be made of."""
    katas = manifest.root / "katas"
    return [
        k for k in manifest.katas if (katas / k.name / "README.md").is_file() and k.stub_path(katas).is_file()
    ]


# --- the notebook -----------------------------------------------------------------------------------

SETUP = """\
# Set-up: run this cell first.
# On Colab it clones torch-katas and installs it. Colab's own torch is kept (pip keeps a torch
# that fits), so on a GPU runtime the tests marked gpu run on CUDA. Elsewhere, start Jupyter in
# your torch-katas checkout (installed as its README says) and this cell only finds it; outside
# a checkout it clones one beside the notebook and installs it, torch from PyTorch's CPU index.
import os
import subprocess
import sys
from pathlib import Path

REPOSITORY = "{repo}"
here = Path.cwd()
root = next((p for p in (here, *here.parents) if (p / "katas" / "manifest.toml").is_file()), None)
if root is None:
    root = here / "torch-katas"
    if not root.is_dir():
        subprocess.run(["git", "clone", "--depth=1", REPOSITORY, str(root)], check=True)
    pip = [sys.executable, "-m", "pip", "install", "--quiet", "-e", str(root)]
    subprocess.run([*pip, "--extra-index-url", "https://download.pytorch.org/whl/cpu"], check=True)
os.chdir(root)  # %%kata works on the checkout it finds from here
sys.path.insert(0, str(root))
%load_ext katas
print(f"torch-katas at {{root}}: run a %%kata cell to check an exercise")"""


def _intro(kata: Kata, title: str, repo: str, gpu: bool) -> str:
    stub = f"katas/{kata.name}/{kata.module}.py"
    first = kata.exercises[0].qualname
    lines = [
        f"# {title}",
        "",
        "This notebook is the kata's lesson with its exercises. How it works:",
        "",
        "1. Run the set-up cell below first.",
        "2. Read the lesson. Its code cells run as they are: change them and try things.",
        "3. Each exercise is a cell that starts with `%%kata`. Replace `raise NotImplementedError` "
        f"with your code and run the cell: it writes your definition into `{stub}` (the version it "
        "replaces goes to `.katas/backups/`), runs the kata's tests, and prints what your code got "
        "wrong, the likely cause, and the kata's progress.",
        f"4. Stuck? `!python -m katas hint {first}` shows the next hint of an exercise. "
        "Messages in Chinese: run `%env KATAS_LANG=zh` "
        f"([中文课文]({_blob(repo, f'katas/{kata.name}/README.zh-CN.md')})).",
        "",
        "On Colab your code lives in this notebook's cells, not in the clone's files: save a copy "
        "to Drive, and in a new session run the set-up cell and your `%%kata` cells again.",
    ]
    if gpu:
        lines += [
            "",
            "Some tests of this kata need CUDA. On Colab choose *Runtime → Change runtime type → GPU* "
            "before the set-up cell to run them; without a GPU they are skipped with their reason.",
        ]
    return "\n".join(lines)


def _blob(repo: str, path: str) -> str:
    return f"{repo}/blob/{BRANCH}/{path}"


def _imports(stub: str) -> str:
    """The stub file's imports, so the lesson's snippets run as they do beside the kata file."""
    lines = stub.splitlines(keepends=True)
    found = [
        "".join(lines[node.lineno - 1 : node.end_lineno])
        for node in ast.parse(stub).body
        if isinstance(node, ast.Import) or (isinstance(node, ast.ImportFrom) and node.module != "__future__")
    ]
    return "".join(found).rstrip("\n")


def _lesson(readme: str, kata: Kata, repo: str) -> tuple[str, list[tuple[str, str]]]:
    """The lesson's title and its body as (kind, source) cells, the language link and badge left out."""
    title, _, body = readme.partition("\n")
    body = BADGE_LINE.sub("", LANGUAGE_LINK.sub("", body, count=1))
    body = RELATIVE_LINK.sub(lambda m: f"]({_blob(repo, f'katas/{kata.name}/{m.group(1)}')})", body)
    cells: list[tuple[str, str]] = []
    position = 0
    for block in PYTHON_BLOCK.finditer(body):
        cells += [("markdown", part) for part in _sections(body[position : block.start()])]
        cells.append(("code", block.group(1)))
        position = block.end()
    cells += [("markdown", part) for part in _sections(body[position:])]
    return title.removeprefix("#").strip(), [(k, s.strip("\n")) for k, s in cells if s.strip()]


def _sections(markdown: str) -> list[str]:
    """Markdown cut before each heading (outside fenced blocks): one cell per section."""
    parts, current, fenced = [], [], False
    for line in markdown.splitlines(keepends=True):
        if line.startswith("```"):
            fenced = not fenced
        if line.startswith("#") and not fenced and current:
            parts.append("".join(current))
            current = []
        current.append(line)
    return [*parts, "".join(current)]


def _split_at_exercises(cells: list[tuple[str, str]]) -> int:
    """Where the exercise cells go: after the lesson's exercises section, before the next section."""
    inside = False
    for index, (kind, source) in enumerate(cells):
        if kind != "markdown":
            continue
        for line_number, line in enumerate(source.splitlines()):
            if line.strip() == EXERCISES_HEADING:
                inside = True
            elif inside and line.startswith("## "):
                if line_number == 0:
                    return index
                head = "\n".join(source.splitlines()[:line_number]).strip("\n")
                tail = "\n".join(source.splitlines()[line_number:])
                cells[index : index + 1] = [("markdown", head), ("markdown", tail)]
                return index + 1
    return len(cells)


def build(manifest: Manifest, kata: Kata, repo: str | None = None):
    """The kata's notebook as an nbformat NotebookNode (cell ids are stable: regenerating is a no-op)."""
    import nbformat

    root = manifest.root
    repo = repo or repository(root)
    folder = root / "katas" / kata.name
    readme = (folder / "README.md").read_text(encoding="utf-8")
    stub = pristine.read(root).get(pristine.relative_path(kata))
    if stub is None:
        stub = kata.stub_path(root / "katas").read_text(encoding="utf-8")
    tests = folder / f"test_{kata.module}.py"
    gpu = tests.is_file() and bool(re.search(r"mark\.(multi_)?gpu\b", tests.read_text(encoding="utf-8")))

    title, lesson = _lesson(readme, kata, repo)
    where = _split_at_exercises(lesson)
    exercises: list[tuple[str, str]] = []
    stub_file = f"katas/{kata.name}/{kata.module}.py"
    for number, exercise in enumerate(kata.exercises, 1):
        segment = pristine.segment(stub, exercise.name) or ""
        exercises.append(
            (
                "markdown",
                f"### Exercise {number} of {len(kata.exercises)}: `{exercise.name}`\n\n"
                f"Write it below and run the cell; it goes into `{stub_file}`. "
                f"Hint: `!python -m katas hint {exercise.qualname}`.",
            )
        )
        exercises.append(("code", f"%%kata {exercise.qualname}\n{segment.rstrip()}"))
    following = _following(manifest, kata, repo)
    cells = [
        ("markdown", _intro(kata, title, repo, gpu)),
        ("code", SETUP.format(repo=repo)),
        ("markdown", "The kata file's imports, so that the lesson's code runs as it is:"),
        ("code", _imports(stub)),
        *lesson[:where],
        *exercises,
        *lesson[where:],
        *following,
    ]
    notebook = nbformat.v4.new_notebook()
    for index, (kind, source) in enumerate(cells):  # plain dicts: nbformat's new_*_cell validate each one
        cell = {"cell_type": kind, "id": f"{kata.name[:2]}-{index:03d}", "metadata": {}, "source": source}
        if kind == "code":
            cell.update(execution_count=None, outputs=[])
            if SHOWS_AN_ERROR.search(source):  # Jupyter's "run all" goes on past it
                cell["metadata"]["tags"] = ["raises-exception"]
        notebook.cells.append(nbformat.from_dict(cell))
    notebook.metadata = {
        "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
        "language_info": {"name": "python"},
        "colab": {"provenance": [], "toc_visible": True},
    }
    if gpu:  # Colab offers a GPU runtime when it opens the notebook
        notebook.metadata["accelerator"] = "GPU"
        notebook.metadata["colab"]["gpuType"] = "T4"
    nbformat.validate(notebook)
    return notebook


def _following(manifest: Manifest, kata: Kata, repo: str) -> list[tuple[str, str]]:
    katas = ready(manifest)
    later = katas[katas.index(kata) + 1 :] if kata in katas else []
    if not later:
        last = "## Next\n\nThis was the last kata. `!python -m katas list` shows every exercise's status."
        return [("markdown", last)]
    following = later[0]
    return [
        (
            "markdown",
            f"## Next\n\nWhen every exercise above shows done: [{following.name}: {following.title}]"
            f"({colab_url(repo, following)}) (Open in Colab).",
        )
    ]


def render(manifest: Manifest, kata: Kata, repo: str | None = None) -> str:
    import nbformat

    return nbformat.writes(build(manifest, kata, repo)) + "\n"


# --- the files --------------------------------------------------------------------------------------


def with_badge(text: str, line: str) -> str:
    """A README's text with its Colab line set to `line`: replaced, else put after the language link."""
    if BADGE_LINE.search(text):
        return BADGE_LINE.sub(lambda _: line, text, count=1)
    link = LANGUAGE_LINK.search(text)
    at = link.end() if link else text.find("\n") + 1
    return text[:at] + "\n" + line + text[at:]


def expected(manifest: Manifest, repo: str | None = None) -> dict[Path, str]:
    """Every generated file's path and text: the notebooks and the READMEs with their Colab line."""
    repo = repo or repository(manifest.root)
    files: dict[Path, str] = {}
    for kata in ready(manifest):
        files[manifest.root / notebook_path(kata)] = render(manifest, kata, repo)
        for readme in BADGE_TEXT:
            path = manifest.root / "katas" / kata.name / readme
            if path.is_file():
                files[path] = with_badge(path.read_text(encoding="utf-8"), badge_line(repo, kata, readme))
    return files


def stale(manifest: Manifest, repo: str | None = None) -> list[str]:
    """The generated files that differ from what `python -m katas notebooks` would write."""
    found = []
    for path, text in expected(manifest, repo).items():
        try:
            current = path.read_text(encoding="utf-8")
        except OSError:
            current = None
        if current != text:
            found.append(str(path.relative_to(manifest.root)))
    return found


def write(manifest: Manifest, out: Path | None = None, repo: str | None = None) -> list[Path]:
    """Write the notebooks (into `out` alone when given, READMEs untouched); returns what changed."""
    written = []
    for path, text in expected(manifest, repo).items():
        if out is not None:
            if path.suffix != ".ipynb":
                continue
            path = out / path.name
            out.mkdir(parents=True, exist_ok=True)
        try:
            if path.read_text(encoding="utf-8") == text:
                continue
        except OSError:
            pass
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written
