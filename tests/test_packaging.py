"""Packaging: pyproject.toml, the `katas` console script, the installed package outside a
checkout, and the pytest11 entry point that switches the kata plugin on."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import textwrap
from importlib import metadata
from pathlib import Path

import pytest

from katas._harness import pytest_entry, version
from katas._harness.manifest import MANIFEST_NAME
from tests.project_copy import ROOT
from tests.test_plugin import MANIFEST, SOLUTION, STUB, TESTS

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
NOT_INSTALLED = "torch-katas is not installed in this environment: pip install -e . (or uv sync)"


def installed_entry_points(group: str) -> dict[str, str]:
    """What pytest and the console-script installer see: every distribution, as pluggy reads them."""
    return {
        ep.name: ep.value
        for dist in metadata.distributions()
        if dist.metadata["Name"] == "torch-katas"
        for ep in dist.entry_points
        if ep.group == group
    }


# pyproject.toml


def test_the_build_backend_is_one_that_accepts_the_licence_as_written():
    assert PYPROJECT["build-system"]["requires"] == ["setuptools>=77.0.1"]
    project = PYPROJECT["project"]
    assert project["license"] == "MIT"
    assert all((ROOT / name).is_file() for name in project["license-files"])
    assert "MIT License" in (ROOT / "LICENSE").read_text(encoding="utf-8")
    # PEP 639: a licence classifier beside a licence expression is an error in setuptools >= 77.
    assert not [c for c in project["classifiers"] if c.startswith("License ::")]


def test_pip_and_uv_install_the_same_dev_tools():
    assert PYPROJECT["project"]["optional-dependencies"]["dev"] == PYPROJECT["dependency-groups"]["dev"]


def test_uv_takes_torch_from_the_cpu_index_on_linux_and_windows_only():
    (index,) = PYPROJECT["tool"]["uv"]["index"]
    assert index == {"name": "pytorch-cpu", "url": "https://download.pytorch.org/whl/cpu", "explicit": True}
    (source,) = PYPROJECT["tool"]["uv"]["sources"]["torch"]
    assert source == {"index": "pytorch-cpu", "marker": "sys_platform == 'linux' or sys_platform == 'win32'"}


def test_the_console_script_and_the_pytest_plugin_are_declared():
    assert PYPROJECT["project"]["scripts"] == {"katas": "katas._harness.cli:main"}
    assert PYPROJECT["project"]["entry-points"]["pytest11"] == {"torch-katas": "katas._harness.pytest_entry"}


def test_the_package_data_holds_every_file_the_commands_read():
    data = PYPROJECT["tool"]["setuptools"]["package-data"]
    for package, patterns in data.items():
        folder = ROOT.joinpath(*package.split("."))
        for pattern in patterns:
            assert list(folder.glob(pattern)), f"{package}: {pattern} matches no file"
    assert "manifest.toml" in data["katas"]
    assert "pristine_stubs.json" in data["katas._harness"]


# The console script and --version


def test_the_katas_console_script_prints_the_version():
    script = shutil.which("katas", path=str(Path(sys.executable).parent))
    assert script is not None, NOT_INSTALLED
    result = subprocess.run([script, "--version"], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"torch-katas {PYPROJECT['project']['version']}"


def test_the_version_falls_back_to_pyproject_when_not_installed(monkeypatch):
    def missing(name):
        raise metadata.PackageNotFoundError(name)

    monkeypatch.setattr(version.metadata, "version", missing)
    assert version.version() == PYPROJECT["project"]["version"]


# Installed apart from a checkout

COMMANDS = [
    ["list"],
    ["hint", "grad_at"],
    ["watch", "--once"],
    ["reset", "01_autograd", "--yes"],
    ["check"],
    ["grade"],
    ["export", "handout"],
    ["gradescope", "bundle.zip"],
    ["snapshot"],
    ["bench"],
]


@pytest.fixture(scope="module")
def site_packages(tmp_path_factory) -> Path:
    """The package as a wheel installs it: katas/ with the manifest and the harness, no kata folder."""
    site = tmp_path_factory.mktemp("site-packages")
    (site / "katas").mkdir()
    for name in ("__init__.py", "__main__.py", MANIFEST_NAME):
        shutil.copy2(ROOT / "katas" / name, site / "katas" / name)
    shutil.copytree(
        ROOT / "katas" / "_harness", site / "katas" / "_harness", ignore=shutil.ignore_patterns("__pycache__")
    )
    return site


def files_under(folder: Path) -> set[Path]:
    return {path for path in folder.rglob("*") if "__pycache__" not in path.parts}


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: c[0])
def test_outside_a_checkout_every_command_says_so_in_one_line_and_writes_nothing(
    command, site_packages, tmp_path
):
    before = files_under(site_packages)
    env = {**os.environ, "PYTHONPATH": str(site_packages), "PYTHONDONTWRITEBYTECODE": "1", "KATAS_LANG": "en"}
    result = subprocess.run(
        [sys.executable, "-m", "katas", *command], capture_output=True, text=True, cwd=tmp_path, env=env
    )
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        f"error: {tmp_path} is not inside a torch-katas folder: cd into your clone of the torch-katas "
        "repository (or the copy your course handed out) and run the command there"
    ]
    assert list(tmp_path.iterdir()) == []
    assert files_under(site_packages) == before


def test_installed_apart_from_a_checkout_the_commands_work_inside_one(site_packages, tmp_path):
    """`pip install .` (not -e), then `katas check` inside a clone works on that clone."""
    env = {**os.environ, "PYTHONPATH": str(site_packages), "PYTHONDONTWRITEBYTECODE": "1"}
    code = "import sys, katas; sys.exit(0 if katas.__file__.startswith(sys.argv[1]) else 3)"
    imported = subprocess.run([sys.executable, "-c", code, str(site_packages)], cwd=tmp_path, env=env)
    assert imported.returncode == 0, "the test's stand-in for site-packages is not what Python imports"
    result = subprocess.run(
        [sys.executable, "-m", "katas", "check"],
        capture_output=True,
        text=True,
        cwd=ROOT / "katas" / "01_autograd",  # -m puts this folder, not the checkout, first on sys.path
        env=env,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("OK: ")


# The pytest11 entry point


def test_the_entry_point_is_installed():
    assert installed_entry_points("pytest11") == {"torch-katas": "katas._harness.pytest_entry"}, NOT_INSTALLED
    assert installed_entry_points("console_scripts") == {"katas": "katas._harness.cli:main"}, NOT_INSTALLED


def test_in_the_checkout_the_plugin_is_registered_once_by_the_entry_point(request):
    manager = request.config.pluginmanager
    assert manager.has_plugin("torch-katas")
    assert manager.get_plugin("katas._harness.plugin") is sys.modules["katas._harness.plugin"]
    root_conftest = [
        p for p in manager.get_plugins() if getattr(p, "__file__", None) == str(ROOT / "conftest.py")
    ]
    assert len(root_conftest) == 1
    assert not hasattr(root_conftest[0], "pytest_plugins")  # pytest refuses it below the rootdir


def test_find_root_looks_at_and_above_each_start_then_one_folder_below(tmp_path):
    tree = tmp_path / "course" / "handout"
    (tree / "katas" / "01_demo").mkdir(parents=True)
    (tree / "katas" / MANIFEST_NAME).write_text(MANIFEST, encoding="utf-8")
    assert pytest_entry.find_root([tree / "katas" / "01_demo" / "test_demo_ops.py"]) == tree
    assert pytest_entry.find_root([tree]) == tree
    assert pytest_entry.find_root([tmp_path / "course"]) == tree
    assert pytest_entry.find_root([tmp_path]) is None  # two folders below: not looked at


def test_two_handouts_below_the_start_ask_for_one_of_them(tmp_path):
    for name in ("a", "b"):
        (tmp_path / name / "katas").mkdir(parents=True)
        (tmp_path / name / "katas" / MANIFEST_NAME).write_text(MANIFEST, encoding="utf-8")
    with pytest.raises(pytest.UsageError, match=r"found 2 torch-katas folders .* \(a, b\); .*pytest a/katas"):
        pytest_entry.find_root([tmp_path])


@pytest.fixture
def course(pytester: pytest.Pytester) -> pytest.Pytester:
    """A course repository: its own README and tests at the top, the handout in handout/."""
    handout = {
        "pyproject.toml": (ROOT / "pyproject.toml").read_text(encoding="utf-8"),
        "conftest.py": (ROOT / "conftest.py").read_text(encoding="utf-8"),
        "katas/manifest.toml": MANIFEST,
        "katas/01_demo/demo_ops.py": STUB,
        "katas/01_demo/test_demo_ops.py": TESTS,
        "solutions/01_demo/demo_ops.py": SOLUTION,
    }
    for name, text in handout.items():
        path = pytester.path / "handout" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text), encoding="utf-8")
    pytester.makefile(".md", README="# Our course\n")
    pytester.makepyfile(test_course="def test_the_course_has_a_readme():\n    pass\n")
    return pytester


def test_a_handout_in_a_subfolder_runs_from_the_course_repository_top(course):
    result = course.runpytest_subprocess("handout/katas/01_demo")
    result.assert_outcomes(failed=3, skipped=2)
    result.stdout.fnmatch_lines(["TODO: implement add() in *demo_ops.py*", "01_demo  0/2 exercises done"])


def test_plain_pytest_at_the_course_top_runs_the_handout_with_the_plugin(course):
    result = course.runpytest_subprocess("--solutions")
    result.assert_outcomes(passed=4, skipped=2)  # the course's own test and the kata's three
    result.stdout.fnmatch_lines(["(tests run against solutions/)", "01_demo  2/2 exercises done"])
    assert "pytest_plugins" not in result.stderr.str()


def test_an_unrelated_project_is_not_affected(pytester: pytest.Pytester):
    pytester.makepyfile(
        test_unrelated="""
        import sys

        def test_only_the_switch_is_loaded(request):
            manager = request.config.pluginmanager
            assert manager.has_plugin("torch-katas")
            assert not manager.has_plugin("katas._harness.plugin")
            assert "torch" not in sys.modules and "katas._harness.plugin" not in sys.modules
        """
    )
    result = pytester.runpytest_subprocess()
    result.assert_outcomes(passed=1)
    assert "kata modules come from" not in result.stdout.str()  # the plugin's header
    refused = pytester.runpytest_subprocess("--solutions")
    assert refused.ret == pytest.ExitCode.USAGE_ERROR
    refused.stderr.fnmatch_lines(["*unrecognized arguments: --solutions*"])


# Workflows

WORKFLOWS = [
    *sorted((ROOT / ".github" / "workflows").glob("*.yml")),
    ROOT / "katas/_harness/grading/grade.yml",
]
USES = re.compile(r"^\s*(?:- )?uses: (?P<action>[\w.-]+/[\w.-]+)@(?P<ref>\S+)(?: # (?P<version>v\S+))?$")


def pinned_actions(path: Path) -> list[re.Match]:
    return [m for line in path.read_text(encoding="utf-8").splitlines() if (m := USES.match(line))]


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=lambda p: p.name)
def test_every_action_is_pinned_by_commit_sha_with_its_release_in_a_comment(workflow):
    uses = pinned_actions(workflow)
    assert uses
    for use in uses:
        assert re.fullmatch(r"[0-9a-f]{40}", use["ref"]), (
            f"{workflow.name}: pin {use['action']} by commit SHA"
        )
        assert use["version"], f"{workflow.name}: name {use['action']}'s release in a comment"
    text = workflow.read_text(encoding="utf-8")
    assert "timeout-minutes:" in text and "cancel-in-progress: true" in text
    assert "permissions:\n  contents: read\n" in text


def test_the_handout_workflow_uses_the_releases_dependabot_keeps_current_in_ci():
    """Dependabot updates .github/workflows only; grade.yml must follow ci.yml by hand."""
    ci = {m["action"]: m["ref"] for m in pinned_actions(ROOT / ".github/workflows/ci.yml")}
    for use in pinned_actions(ROOT / "katas/_harness/grading/grade.yml"):
        if use["action"] in ci:
            assert use["ref"] == ci[use["action"]], f"grade.yml: pin {use['action']} as ci.yml does"
