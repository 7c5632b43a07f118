#!/usr/bin/env bash
# Gradescope runs this once, as root, while it builds the autograder image.
set -euo pipefail
apt-get update
apt-get install -y --no-install-recommends python3 python3-venv python3-pip
python3 -m venv /autograder/venv
/autograder/venv/bin/python -m pip install --upgrade pip
# The CPU build of torch: a plain `pip install torch` pulls a multi-GB CUDA build.
/autograder/venv/bin/python -m pip install "torch==@TORCH_VERSION@" --index-url https://download.pytorch.org/whl/cpu
/autograder/venv/bin/python -m pip install -e /autograder/source/torch-katas
# The submission's code runs as this account: it cannot read the grader's secrets or write its files.
id -u student >/dev/null 2>&1 || useradd --no-create-home --shell /usr/sbin/nologin student
