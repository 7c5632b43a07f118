"""`python -m katas gradescope DEST.zip`: a Gradescope autograder bundle.

The zip holds setup.sh and run_autograder at its top and a learner's export of
the project (no solutions) in torch-katas/. Gradescope unpacks it into
/autograder/source.
"""

from __future__ import annotations

import stat
import sys
import tempfile
import zipfile
from pathlib import Path

from ..manifest import Manifest
from .export import ExportError, export

HERE = Path(__file__).parent
SCRIPTS = ("setup.sh", "run_autograder")
TIMEOUT_MINUTES = 10  # Gradescope's default autograder timeout (it allows up to 40)
# Taken off the assignment's timeout for the grade's deadline: starting Python, writing
# results.json, and run_autograder's own timeout of the deadline plus 30 s (then 10 s to a kill).
MARGIN_SECONDS = 90
THIS_PYTHON = f"{sys.version_info.major}.{sys.version_info.minor}"


def script_text(name: str, torch_version: str, python_version: str, timeout_minutes: float) -> str:
    """setup.sh or run_autograder with this bundle's versions and grading deadline filled in."""
    deadline = int(timeout_minutes * 60 - MARGIN_SECONDS)
    if deadline < 60:
        raise ExportError(
            f"a {timeout_minutes:g}-minute timeout leaves no time to grade; "
            "give --timeout-minutes the assignment's autograder timeout (Gradescope's default is 10)"
        )
    text = (HERE / name).read_text(encoding="utf-8")
    for key, value in (
        ("@TORCH_VERSION@", torch_version),
        ("@PYTHON_VERSION@", python_version),
        ("@DEADLINE_SECONDS@", str(deadline)),
    ):
        text = text.replace(key, value)
    return text


def build(
    manifest: Manifest,
    dest: Path,
    torch_version: str,
    python_version: str = THIS_PYTHON,
    timeout_minutes: float = TIMEOUT_MINUTES,
) -> list[str]:
    """The bundle: torch `torch_version` on Python `python_version` (a pair that has a wheel: by
    default this interpreter's, which runs that torch), grading stopped before the timeout."""
    if dest.suffix != ".zip":
        raise ExportError(f"{dest} should end in .zip (Gradescope takes a zip file)")
    scripts = {name: script_text(name, torch_version, python_version, timeout_minutes) for name in SCRIPTS}
    with tempfile.TemporaryDirectory(prefix="katas-gradescope-") as workdir:
        source = Path(workdir) / "torch-katas"
        files = export(manifest, source)
        dest.parent.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(dest, "w", zipfile.ZIP_DEFLATED) as bundle:
            for name, text in scripts.items():
                info = zipfile.ZipInfo(name)
                info.external_attr = (stat.S_IFREG | 0o755) << 16
                bundle.writestr(info, text)
            for name in files:
                bundle.write(source / name, f"torch-katas/{name}")
    return [*SCRIPTS, *(f"torch-katas/{name}" for name in files)]
