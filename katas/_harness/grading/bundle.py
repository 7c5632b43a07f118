"""`python -m katas gradescope DEST.zip`: a Gradescope autograder bundle.

The zip holds setup.sh and run_autograder at its top and a learner's export of
the project (no solutions) in torch-katas/. Gradescope unpacks it into
/autograder/source.
"""

from __future__ import annotations

import stat
import tempfile
import zipfile
from pathlib import Path

from ..manifest import Manifest
from .export import ExportError, export

HERE = Path(__file__).parent
SCRIPTS = ("setup.sh", "run_autograder")


def build(manifest: Manifest, dest: Path, torch_version: str) -> list[str]:
    if dest.suffix != ".zip":
        raise ExportError(f"{dest} should end in .zip (Gradescope takes a zip file)")
    with tempfile.TemporaryDirectory(prefix="katas-gradescope-") as workdir:
        source = Path(workdir) / "torch-katas"
        files = export(manifest, source)
        dest.parent.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(dest, "w", zipfile.ZIP_DEFLATED) as bundle:
            for name in SCRIPTS:
                text = (HERE / name).read_text(encoding="utf-8").replace("@TORCH_VERSION@", torch_version)
                info = zipfile.ZipInfo(name)
                info.external_attr = (stat.S_IFREG | 0o755) << 16
                bundle.writestr(info, text)
            for name in files:
                bundle.write(source / name, f"torch-katas/{name}")
    return [*SCRIPTS, *(f"torch-katas/{name}" for name in files)]
