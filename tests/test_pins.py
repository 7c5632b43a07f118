"""One source for the tested versions (katas/_harness/pins.toml), and the bundle's wheel check."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from katas._harness import pins
from katas._harness.grading.wheels import has_wheel
from tests.project_copy import ROOT

try:
    import tomllib
except ModuleNotFoundError:
    import tomli as tomllib

PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def requirement(name: str) -> str:
    (spec,) = [d for d in PYPROJECT["project"]["dependencies"] if re.match(rf"{name}\b", d)]
    return spec


def test_the_declared_floor_is_the_floor_of_pins():
    assert requirement("torch") == f"torch>={pins.get('floor.torch')}"
    assert requirement("numpy") == f"numpy>={pins.get('floor.numpy')}"
    assert PYPROJECT["project"]["requires-python"] == f">={pins.get('floor.python')}"


def script(*args: str) -> subprocess.CompletedProcess:
    """pins.py as a workflow runs it: a plain script, nothing of the harness imported."""
    command = [sys.executable, str(ROOT / "katas" / "_harness" / "pins.py"), *args]
    return subprocess.run(command, capture_output=True, text=True)


def test_the_script_prints_one_pin_and_the_github_outputs():
    run = script("pinned.torch")
    assert run.returncode == 0 and run.stdout.strip() == pins.get("pinned.torch")
    values = dict(line.split("=", 1) for line in script("--github-output").stdout.splitlines())
    assert values["torch"] == pins.get("pinned.torch") and values["python"] == pins.get("pinned.python")
    legs = json.loads(values["matrix"])["include"]
    floor = {"name": "floor", "python": pins.get("floor.python"), "torch": pins.get("floor.torch")}
    assert {**floor, "numpy": pins.get("floor.numpy")} in legs
    newest = [leg["python"] for leg in legs if leg["name"] == "newest"]
    assert newest == json.loads(pins.get("newest.pythons"))


def test_an_unknown_pin_is_one_line_and_exit_2():
    run = script("pinned.nothing")
    assert run.returncode == 2 and run.stderr.strip() == "pins.toml has no 'pinned.nothing'"


@pytest.mark.parametrize(
    "path", [".ci/run", ".github/workflows/ci.yml", "katas/_harness/grading/grade.yml"], ids=str
)
def test_every_installer_reads_the_pins_and_writes_no_version_of_its_own(path):
    text = (ROOT / path).read_text(encoding="utf-8")
    assert "pins.py" in text
    assert not re.search(r"torch==\d", text), f"{path} pins a torch of its own"
    if path.endswith(".yml"):  # the Python of every torch-installing job is a pin too
        assert "python-version: ${{ matrix.python }}" in text or "python-version: ${{ steps.pins" in text


def stand_in_wheel(index: Path, version: str, tag: str) -> None:
    folder = index / "torch"
    folder.mkdir(parents=True, exist_ok=True)
    name = f"torch-{version}-{tag}.whl"
    info = f"torch-{version}.dist-info"
    files = {
        "torch/__init__.py": "",
        f"{info}/METADATA": f"Metadata-Version: 2.1\nName: torch\nVersion: {version}\n",
        f"{info}/WHEEL": f"Wheel-Version: 1.0\nGenerator: stand-in\nRoot-Is-Purelib: true\nTag: {tag}\n",
    }
    files[f"{info}/RECORD"] = "".join(f"{path},,\n" for path in [*files, f"{info}/RECORD"])
    with zipfile.ZipFile(folder / name, "w") as wheel:
        for path, text in files.items():
            wheel.writestr(path, text)
    with (folder / "index.html").open("a", encoding="utf-8") as page:
        page.write(f'<a href="{name}">{name}</a>\n')


def test_the_wheel_check_answers_yes_no_and_cannot_tell(tmp_path):
    index = tmp_path / "simple"
    stand_in_wheel(index, "9.1.0", "cp310-cp310-manylinux_2_28_x86_64")
    url = index.as_uri()
    assert has_wheel("9.1.0", "3.10", url) is True
    assert has_wheel("9.1.0", "3.12", url) is False  # a wheel, but not for this Python
    assert has_wheel("9.2.0", "3.10", url) is False
    assert has_wheel("9.1.0", "3.10", "http://127.0.0.1:9/simple") is None  # nothing listens there


def test_the_windows_and_macos_legs_run_test_files_that_exist():
    text = (ROOT / ".github" / "workflows" / "ci.yml").read_text(encoding="utf-8")
    named = re.findall(r"tests/test_\w+\.py", text)
    assert named, "ci.yml's learner legs name no test file"
    assert [path for path in named if not (ROOT / path).is_file()] == []
