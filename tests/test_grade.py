"""`python -m katas grade`: exact scores for honest submissions, nothing gained by dishonest ones."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET

import pytest

from katas._harness import pristine
from katas._harness.cli import main
from katas._harness.grading import report
from katas._harness.grading.run import Grader, Limits, grade
from katas._harness.manifest import load, parse, read
from tests.load import scaled
from tests.project_copy import MANIFEST, ROOT, katas_command, make_copy

FIRST, SECOND = MANIFEST.katas[0], MANIFEST.katas[1]
QUICK = Limits(kata_timeout=scaled(120), test_timeout=int(scaled(60)), memory_mb=3072)


@pytest.fixture(scope="module")
def two_katas(tmp_path_factory):
    """A grader that knows only the first two katas: each attack costs seconds, not a minute."""
    copy = make_copy(tmp_path_factory.mktemp("grader") / "project")
    text = (copy / "katas" / "manifest.toml").read_text(encoding="utf-8")
    keep = parse(text, copy)
    blocks = text.split("[[kata]]")
    (copy / "katas" / "manifest.toml").write_text("[[kata]]".join(blocks[:3]), encoding="utf-8")
    assert [k.name for k in read(copy).katas] == [k.name for k in keep.katas[:2]]
    for kata in keep.katas[2:]:
        shutil.rmtree(copy / "katas" / kata.name)
        shutil.rmtree(copy / "solutions" / kata.name)
    pristine.write(read(copy))
    load.cache_clear()  # make_copy cached the full manifest of this root
    return read(copy)


@pytest.fixture(scope="module")
def warm(two_katas):
    """One grader set up once (its zygote and collection) for every submission of a test module."""
    with Grader(two_katas, QUICK) as grader:
        yield grader


@pytest.fixture(scope="module")
def strict(two_katas):
    """A grader with short limits, for submissions that hang or crash."""
    with Grader(
        two_katas, Limits(kata_timeout=scaled(30), test_timeout=int(scaled(20)), memory_mb=3072)
    ) as grader:
        yield grader


def submission(tmp_path, grader, solved=(), edits=None):
    """A learner's project: stubs, with `solved` katas replaced by their solutions and `edits` applied."""
    sub = tmp_path / "submission"
    shutil.copytree(grader.root / "katas", sub / "katas")
    for kata in grader.katas:
        if kata.name in solved:
            shutil.copy2(kata.stub_path(grader.root / "solutions"), kata.stub_path(sub / "katas"))
    for path, text in (edits or {}).items():
        (sub / path).parent.mkdir(parents=True, exist_ok=True)
        (sub / path).write_text(text, encoding="utf-8")
    return sub


def points(grade_result) -> dict[str, int]:
    return {k.kata: k.points for k in grade_result.katas}


def stub_with(grader, kata, prefix: str = "", suffix: str = "") -> str:
    """The kata's reference solution with code added at its top (after any __future__ import) and end."""
    solution = kata.stub_path(grader.root / "solutions").read_text(encoding="utf-8")
    future = "from __future__ import annotations\n"
    head, _, body = solution.rpartition(future)
    return f"{head}{future if head or body != solution else ''}{prefix}\n{body}\n{suffix}\n"


def test_the_solutions_score_full_marks_and_the_stubs_zero(tmp_path):
    with Grader(MANIFEST) as grader:
        honest = grader.grade(submission(tmp_path / "a", MANIFEST, solved={k.name for k in MANIFEST.katas}))
        untouched = grader.grade(submission(tmp_path / "b", MANIFEST))
    assert honest.points == honest.max_points == sum(ex.points for ex in MANIFEST.exercises)
    assert untouched.points == 0
    assert {e.status for k in untouched.katas for e in k.exercises} == {"todo"}


def test_one_kata_solved_scores_exactly_its_points(tmp_path, two_katas, warm):
    result = warm.grade(submission(tmp_path, two_katas, solved={SECOND.name}))
    assert points(result) == {FIRST.name: 0, SECOND.name: sum(ex.points for ex in SECOND.exercises)}


def test_the_same_submission_gets_the_same_score(tmp_path, two_katas, warm):
    sub = submission(tmp_path, two_katas, solved={FIRST.name})
    first, second = grade(two_katas, sub, QUICK), warm.grade(sub)
    assert (
        report.as_json(first).replace(" ", "").split('"seconds"')[0]
        == (report.as_json(second).replace(" ", "").split('"seconds"')[0])
    )
    assert [(e.qualname, e.status) for k in first.katas for e in k.exercises] == [
        (e.qualname, e.status) for k in second.katas for e in k.exercises
    ]


@pytest.mark.parametrize(
    "path",
    [
        f"katas/{FIRST.name}/test_{FIRST.module}.py",
        f"katas/{FIRST.name}/conftest.py",
        "conftest.py",
        "pytest.ini",
        "pyproject.toml",
        f"katas/{FIRST.name}/test_extra.py",
        ".github/workflows/grade.yml",
    ],
)
def test_edited_or_added_test_files_and_config_gain_nothing(tmp_path, two_katas, warm, path):
    cheat = {
        "conftest.py": (
            "import pytest\n@pytest.hookimpl(wrapper=True)\n"
            "def pytest_runtest_makereport(item, call):\n"
            "    r = yield\n    r.outcome = 'passed'\n    return r\n"
        ),
        "pytest.ini": "[pytest]\naddopts = -p no:katas\n",
        "pyproject.toml": "[tool.pytest.ini_options]\naddopts = ['--co']\n",
    }
    text = cheat.get(path.rsplit("/", 1)[-1], "def test_nothing():\n    pass\n")
    result = warm.grade(submission(tmp_path, two_katas, edits={path: text}))
    assert result.points == 0


@pytest.mark.parametrize(
    ("name", "prefix"),
    [
        ("os._exit at import", "import os\nos._exit(0)"),
        ("sys.exit at import", "import sys\nsys.exit(0)"),
        ("an infinite loop at import", "while True:\n    pass"),
        ("a memory bomb", "hog = []\nwhile True:\n    hog.append(bytearray(100_000_000))"),
        ("a syntax error", "def broken(:"),
        ("a segfault", "import ctypes\nctypes.string_at(0)"),
    ],
)
def test_a_broken_kata_file_loses_only_that_kata(tmp_path, two_katas, strict, name, prefix):
    edits = {
        str(FIRST.stub_path(two_katas.root / "katas").relative_to(two_katas.root)): stub_with(
            two_katas, FIRST, prefix
        )
    }
    result = strict.grade(submission(tmp_path, two_katas, solved={SECOND.name}, edits=edits))
    assert points(result) == {FIRST.name: 0, SECOND.name: sum(ex.points for ex in SECOND.exercises)}, name
    (broken,) = [k for k in result.katas if k.kata == FIRST.name]
    assert broken.problem, f"{name}: the zero needs a stated reason"


@pytest.mark.parametrize(
    "patch",
    [
        "import torch\ntorch.testing.assert_close = lambda *a, **k: None",
        "import torch\ntorch.allclose = lambda *a, **k: True",
        "import torch\ntorch.isclose = lambda a, b, **k: torch.as_tensor(a) == torch.as_tensor(a)",
        "import torch\ntorch.equal = lambda *a: True",
        "import katas._harness.testing as t\nt.expect_close = t.fail = lambda *a, **k: None",
        "import pytest\npytest.fail = lambda *a, **k: None",
    ],
)
def test_replacing_the_checks_at_import_gains_nothing(tmp_path, two_katas, warm, patch):
    """Answers that are all wrong, and checks that would let anything through."""
    stub = FIRST.stub_path(two_katas.root / "katas").read_text(encoding="utf-8")
    wrong = re.sub(r"raise NotImplementedError\(.*\)", "return None", stub)
    edits = {f"katas/{FIRST.name}/{FIRST.module}.py": f"{patch}\n{wrong}"}
    result = warm.grade(submission(tmp_path, two_katas, edits=edits))
    assert result.points == 0


def test_the_reference_solutions_are_nowhere_to_be_found(tmp_path, two_katas, warm):
    probe = (
        "from pathlib import Path\n"
        "import katas._harness.manifest as m\n"
        "roots = [m.PROJECT_ROOT, Path.cwd(), Path(__file__).resolve().parents[2]]\n"
        "found = [p for r in roots for p in r.glob('solutions/**/*.py')]\n"
        "if found:\n"
        "    exec(found[0].read_text())\n"
    )
    stub = FIRST.stub_path(two_katas.root / "katas").read_text(encoding="utf-8")
    edits = {f"katas/{FIRST.name}/{FIRST.module}.py": f"{stub}\n{probe}"}
    result = warm.grade(submission(tmp_path, two_katas, edits=edits))
    assert result.points == 0


def test_every_format_is_written_and_consistent(tmp_path, two_katas):
    sub = submission(tmp_path, two_katas, solved={SECOND.name})
    outs = {fmt: tmp_path / f"out.{fmt}" for fmt in report.FORMATS}
    summary = tmp_path / "summary.md"
    args = ["--root", str(two_katas.root), "grade", str(sub)]
    for fmt, out in outs.items():
        args += ["--format", fmt, "--out", str(out)]
    env_summary = {"GITHUB_STEP_SUMMARY": str(summary)}
    os.environ.update(env_summary)
    try:
        assert main(args) == 0
    finally:
        os.environ.pop("GITHUB_STEP_SUMMARY")
    full = sum(ex.points for ex in SECOND.exercises)
    total = sum(ex.points for ex in two_katas.exercises)
    data = json.loads(outs["json"].read_text(encoding="utf-8"))
    assert (data["score"], data["max_score"]) == (full, total)
    gradescope = json.loads(outs["gradescope"].read_text(encoding="utf-8"))
    assert gradescope["score"] == full
    assert len(gradescope["tests"]) == len(two_katas.exercises)
    assert {"name", "score", "max_score", "output", "visibility"} <= gradescope["tests"][0].keys()
    suites = ET.parse(outs["junit"]).getroot()  # <testsuites>: one <testsuite> per kata
    assert int(suites.get("tests")) == len(two_katas.exercises)
    assert int(suites.get("failures")) == len(FIRST.exercises)
    markdown = outs["markdown"].read_text(encoding="utf-8")
    assert f"| {SECOND.name} | {full}/{full} |" in markdown
    assert summary.read_text(encoding="utf-8") == markdown


def test_bad_input_is_one_line_and_exit_2(tmp_path):
    result = katas_command(ROOT, "grade", str(tmp_path / "nowhere"))
    assert result.returncode == 2 and result.stderr.startswith("error: ") and "Traceback" not in result.stderr
    result = katas_command(ROOT, "grade", "--format", "pdf")
    assert result.returncode == 2 and "unknown format pdf" in result.stderr


def test_a_folder_above_python_that_other_accounts_cannot_enter_is_covered_too(tmp_path):
    """A checkout made with `mktemp -d` is 0700: a kata's account reaches its .venv only if the
    grader covers that folder and binds the installation back inside it."""
    from katas._harness.grading import sandbox

    closed = tmp_path / "checkout"
    venv = closed / ".venv" / "lib"
    venv.mkdir(parents=True)
    closed.chmod(0o700)
    (closed / ".venv").chmod(0o755)
    assert str(closed) in sandbox.closed_ancestors((str(venv),))
    closed.chmod(0o755)
    assert str(closed) not in sandbox.closed_ancestors((str(venv),))


def test_the_address_space_limit_counts_from_what_was_mapped_before_the_cage(tmp_path):
    """A CUDA build of torch maps over 3 GB at import (2.5.1+cu124: 3.2 GB): a flat 3 GB limit
    left a kata no memory at all, and every grade on such a build crashed while collecting."""
    script = tmp_path / "caged.py"
    script.write_text(
        "import mmap, sys\n"
        "from katas._harness.grading.sandbox import Cage\n"
        "libraries = mmap.mmap(-1, 3 << 30)  # reserved, never touched, like a CUDA build's libraries\n"
        "Cage(memory_mb=512).enter()\n"
        "kept = bytearray(256 << 20)  # within the kata's 512 MB\n"
        "try:\n"
        "    bytearray(1 << 30)\n"
        "except MemoryError:\n"
        "    sys.exit(0)\n"
        "sys.exit(3)  # 1 GB more than its limit was granted\n",
        encoding="utf-8",
    )
    done = subprocess.run([sys.executable, str(script)], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, f"exit {done.returncode}:\n{done.stderr[-2000:]}"
