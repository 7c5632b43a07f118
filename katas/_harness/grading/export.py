"""`python -m katas export DEST`: a learner's copy of the project.

No solutions/, no project tests, no CI of the project: the pristine stubs, the
lessons, the harness, and a GitHub Actions workflow that grades every push and
shows the table in the job summary. README sections between the markers
below are for instructors and maintainers and are left out.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from .. import pristine
from ..manifest import Manifest

PRIVATE_START, PRIVATE_END = "<!-- instructors:start -->", "<!-- instructors:end -->"
TOP_LEVEL = ("README.md", "README.zh-CN.md", "conftest.py", "pyproject.toml", ".gitignore")
WORKFLOW = Path(__file__).with_name("grade.yml")


class ExportError(Exception):
    pass


def export(manifest: Manifest, dest: Path) -> list[str]:
    root = manifest.root
    if dest.exists() and any(dest.iterdir()):
        raise ExportError(f"{dest} is not empty; export into a new folder")
    if dest.resolve().is_relative_to(root.resolve()):
        raise ExportError(f"{dest} is inside the project; export outside it")
    dest.mkdir(parents=True, exist_ok=True)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", ".hypothesis")
    shutil.copytree(root / "katas", dest / "katas", ignore=ignore)
    clean = pristine.read(root)
    for kata in manifest.katas:
        text = clean.get(pristine.relative_path(kata))
        if text is None:
            raise ExportError(f"no pristine stub for {kata.name}; run `python -m katas snapshot` first")
        kata.stub_path(dest / "katas").write_text(text, encoding="utf-8")
    for name in TOP_LEVEL:
        source = root / name
        if source.is_file():
            text = source.read_text(encoding="utf-8")
            if name.startswith("README"):
                text = strip_private(text)
            if name == "pyproject.toml":
                text = text.replace('testpaths = ["tests"]', 'testpaths = ["katas"]')
            (dest / name).write_text(text, encoding="utf-8")
    workflows = dest / ".github" / "workflows"
    workflows.mkdir(parents=True)
    shutil.copy2(WORKFLOW, workflows / "grade.yml")
    return sorted(str(p.relative_to(dest)) for p in dest.rglob("*") if p.is_file())


def strip_private(text: str) -> str:
    pattern = re.compile(re.escape(PRIVATE_START) + r".*?" + re.escape(PRIVATE_END) + r"\n?", re.DOTALL)
    return pattern.sub("", text)
