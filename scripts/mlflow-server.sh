#!/usr/bin/env bash
# A registry you can see: the MLflow tracking server and UI over sentimentkit's embedded store.
#
#   scripts/mlflow-server.sh [--port P] [--store DIR]     serve on http://127.0.0.1:P (default 5000)
#   scripts/mlflow-server.sh --install-only               only build the virtualenv, then exit
#
# The store is DIR/mlflow.db (runs, registered models, aliases) and DIR/artifacts (model files), by
# default the embedded one the CLI uses with nothing configured: mlruns/ in the repository. Point the
# product at the server with MLFLOW_TRACKING_URI=http://127.0.0.1:P (and, for a store other than
# mlruns/, SENTIMENTKIT_MLFLOW_ARTIFACTS=DIR/artifacts before the first --register).
#
# The server is in the full `mlflow` package, which pins libraries other than the app's, so it gets
# its own virtualenv (.tools/mlflow-venv, git-ignored), built on first use with the same MLflow
# version as the mlflow-skinny pin in requirements-mlops.txt (about 40 s with a warm pip cache). It
# listens on 127.0.0.1 only: the tracking API has no authentication.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
VENV="${SENTIMENTKIT_MLFLOW_VENV:-$ROOT/.tools/mlflow-venv}"
PORT=5000
STORE="$ROOT/mlruns"
INSTALL_ONLY=0

usage() { sed -n '4,5p' "$0" | sed 's/^# *//' >&2; }
fail() { echo "mlflow-server: $*" >&2; exit 2; }

while [ $# -gt 0 ]; do
  case "$1" in
    --port) [ $# -ge 2 ] || fail "--port needs a number, e.g. --port 5000"; PORT="$2"; shift 2 ;;
    --port=*) PORT="${1#--port=}"; shift ;;
    --store) [ $# -ge 2 ] || fail "--store needs a folder, e.g. --store mlruns"; STORE="$2"; shift 2 ;;
    --store=*) STORE="${1#--store=}"; shift ;;
    --install-only) INSTALL_ONLY=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) usage; fail "unknown argument '$1'" ;;
  esac
done
case "$PORT" in
  ''|*[!0-9]*) fail "--port must be a number from 1 to 65535, got '$PORT'" ;;
esac
[ "$PORT" -ge 1 ] && [ "$PORT" -le 65535 ] || fail "--port must be a number from 1 to 65535, got '$PORT'"

# The version: the mlflow-skinny pin (client and server then speak the same REST API and schema).
VERSION=$(sed -n 's/^mlflow-skinny==\([0-9][0-9.]*\).*/\1/p' "$ROOT/requirements-mlops.txt")
[ -n "$VERSION" ] || fail "no 'mlflow-skinny==X.Y.Z' pin found in requirements-mlops.txt"

installed() { "$VENV/bin/python" -c "import importlib.metadata as m, sys; sys.exit(m.version('mlflow') != '$VERSION')" 2>/dev/null; }
if ! installed; then
  echo "mlflow-server: installing mlflow==$VERSION into $VENV (once)..." >&2
  python3 -m venv "$VENV" || fail "could not create a virtualenv at $VENV (Debian: apt-get install python3-venv)"
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check "mlflow==$VERSION" \
    || fail "pip could not install mlflow==$VERSION into $VENV (see pip's message above)"
  installed || fail "mlflow==$VERSION is not importable in $VENV after installing it"
fi
[ "$INSTALL_ONLY" = 1 ] && { echo "mlflow-server: $VENV has mlflow $VERSION" >&2; exit 0; }

mkdir -p "$STORE/artifacts" || fail "cannot create the store folder $STORE"
STORE="$(cd "$STORE" && pwd)"
echo "mlflow-server: store $STORE (mlflow.db + artifacts/); UI and API on http://127.0.0.1:$PORT" >&2
echo "mlflow-server: use it with MLFLOW_TRACKING_URI=http://127.0.0.1:$PORT" >&2
# No background job runner (GenAI evaluation jobs; seven extra worker processes that outlive a stopped
# server). exec: the server is this process, and it passes Ctrl-C / SIGTERM on to its web server.
export MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false
exec "$VENV/bin/mlflow" server \
  --host 127.0.0.1 --port "$PORT" --workers 1 \
  --backend-store-uri "sqlite:///$STORE/mlflow.db" \
  --default-artifact-root "$STORE/artifacts"
