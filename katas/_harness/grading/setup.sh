#!/usr/bin/env bash
# Gradescope runs this once, as root, while it builds the autograder image.
#
# torch @TORCH_VERSION@ may have no wheel for the image's own Python (Ubuntu 22.04 ships 3.10),
# so the grader gets Python @PYTHON_VERSION@, the version the bundle was built with, which has
# one: uv (from PyPI) installs it under /opt/katas-python, readable by every account.
set -euo pipefail
apt-get update
apt-get install -y --no-install-recommends python3 python3-venv python3-pip ca-certificates
python3 -m venv /opt/katas-uv
/opt/katas-uv/bin/python -m pip install --upgrade uv
uv=/opt/katas-uv/bin/uv
export UV_PYTHON_INSTALL_DIR=/opt/katas-python
"$uv" python install "@PYTHON_VERSION@"
"$uv" venv --python "@PYTHON_VERSION@" /autograder/venv
# The CPU build of torch: a plain `pip install torch` pulls a multi-GB CUDA build.
venv_python=/autograder/venv/bin/python
"$uv" pip install --python "$venv_python" "torch==@TORCH_VERSION@" --index-url https://download.pytorch.org/whl/cpu
"$uv" pip install --python "$venv_python" -e /autograder/source/torch-katas
chmod -R a+rX /opt/katas-python /autograder/venv
# No account to create: grading as root, each kata runs under a dedicated uid of its own.
"$venv_python" -c "import torch, katas._harness.grading.run"  # the grader imports
