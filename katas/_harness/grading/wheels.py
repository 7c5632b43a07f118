"""Does a torch release have a wheel for a Python? Asked of the package index with pip's resolver.

Gradescope's setup.sh installs torch TORCH on Python PYTHON from PyTorch's CPU index; a pair
without a wheel fails there, after the upload. `pip install --dry-run --python-version` reads
only the index (and the wheel's metadata), installs nothing, and answers for any Python.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile

CPU_INDEX = "https://download.pytorch.org/whl/cpu"
# Linux x86-64 as Gradescope's image (glibc 2.35) accepts it: older torch wheels carry older tags.
LINUX = ("manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64", "manylinux1_x86_64")
# pip's words when the index did not answer (then "no matching distribution" proves nothing)
UNREACHABLE = ("Retrying (", "Could not fetch URL", "NameResolutionError", "Max retries exceeded")


def has_wheel(torch: str, python: str, index_url: str = CPU_INDEX) -> bool | None:
    """True or False as the index answers; None when it could not be asked (no network)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    env["PIP_CONFIG_FILE"] = os.devnull  # this machine's pip configuration is not Gradescope's
    with tempfile.TemporaryDirectory(prefix="katas-wheel-") as target:
        result = subprocess.run(
            [
                sys.executable, "-m", "pip", "install", "--dry-run", "--no-deps", "--ignore-installed",
                "--only-binary=:all:", "--python-version", python, *(f"--platform={tag}" for tag in LINUX),
                "--target", target, "--index-url", index_url, "--disable-pip-version-check",
                "--retries", "1", "--timeout", "15", f"torch=={torch}",
            ],
            capture_output=True, text=True, env=env, check=False,
        )  # fmt: skip
    if result.returncode == 0:
        return True
    if any(sign in result.stderr for sign in UNREACHABLE):
        return None
    if "No matching distribution" in result.stderr:
        return False
    return None
