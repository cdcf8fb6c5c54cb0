#!/usr/bin/env bash
# Everything the test suite needs on a fresh Debian machine: Debian's chromium (browser tests),
# a virtualenv at .venv with the pinned runtime + dev packages, the transformer/ONNX extras
# (torch CPU build), and the package itself (editable).
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive

if ! command -v chromium >/dev/null 2>&1; then
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq chromium >/dev/null
fi

if ! command -v soffice >/dev/null 2>&1; then
  # LibreOffice Calc without a GUI (soffice --headless --convert-to): tests/test_formula.py opens the
  # CSV files we write in a real spreadsheet engine and checks that no cell becomes a formula
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends libreoffice-calc-nogui >/dev/null
fi

HEADERS=$(python3 -c 'import os, sysconfig; print(os.path.isfile(os.path.join(sysconfig.get_paths()["include"], "Python.h")))')
if ! command -v cc >/dev/null 2>&1 || [ "$HEADERS" != True ]; then
  # a C compiler and Python's headers, for the compiled inner loops (sentimentkit/text/_speedups.c)
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq gcc libc6-dev python3-dev >/dev/null
fi

python3 -m venv .venv
PY=.venv/bin/python
$PY -m pip install -q --upgrade pip
$PY -m pip install -q -r requirements-dev.txt
if [ -f requirements-transformer.txt ]; then
  # torch first, pinned: on these machines 2.13.0 is a CPU build that lies on disk.
  $PY -m pip install -q torch==2.13.0
  $PY -m pip install -q -r requirements-transformer.txt
fi
if [ -f requirements-mlops.txt ]; then
  # MLflow registry + Azure Blob storage, and the Azurite blob emulator its tests start (Node 20).
  $PY -m pip install -q -r requirements-mlops.txt
  if command -v npm >/dev/null 2>&1 && [ ! -x .tools/node/node_modules/.bin/azurite-blob ]; then
    npm install -s --prefix .tools/node --no-audit --no-fund azurite@3.35.0
  fi
  # The MLflow tracking server + UI (full mlflow, same version as the mlflow-skinny pin) in its own
  # virtualenv .tools/mlflow-venv, for scripts/mlflow-server.sh and its test; about 850 MB, 1 CPU-minute
  # (5.5 min wall on a loaded 2-core machine). Not fatal: without it that test skips and says why.
  bash scripts/mlflow-server.sh --install-only \
    || echo "setup-dev: .tools/mlflow-venv was not built; tests/mlops/test_mlflow_server.py will skip" >&2
fi
if [ -f requirements-spark.txt ]; then
  # pyspark for the Spark tests (local[2], needs Java 17+ on the machine); ~450 MB, about 40 s.
  $PY -m pip install -q -r requirements-spark.txt
fi
$PY -m pip install -q --no-deps -e .
# the build of the compiled loops is optional for users (the package falls back to NumPy); here it
# must have worked, or every speed figure would be wrong
$PY -c "import sentimentkit.text._speedups" || { echo "setup-dev: the compiled loops did not build" >&2; exit 1; }
echo "setup-dev: ready ($($PY --version))"
