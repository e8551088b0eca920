#!/usr/bin/env bash
# Runs the boto3 / AWS CLI conformance suite against the agentcore-emulator binary.
# Needs only python3 and cargo: creates (or reuses) a virtualenv, installs the pinned clients,
# builds the binary, runs pytest. Extra arguments go to pytest (e.g. -k paginator).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
VENV="${AGENTCORE_VENV:-$REPO/target/venv}"
PYTHON="${PYTHON:-python3}"
TARGET_DIR="${CARGO_TARGET_DIR:-$REPO/target}"

if [ ! -x "$VENV/bin/python" ]; then
  echo "creating virtualenv $VENV" >&2
  if ! "$PYTHON" -m venv "$VENV"; then
    echo "error: '$PYTHON -m venv' failed; on Debian/Ubuntu install python3-venv" >&2
    exit 1
  fi
fi
"$VENV/bin/python" -m pip install -q --disable-pip-version-check \
  -r "$REPO/emulator/conformance/requirements.txt"

(cd "$REPO" && cargo build -q -p agentcore-emulator --bin agentcore-emulator)
export AGENTCORE_EMULATOR_BIN="${AGENTCORE_EMULATOR_BIN:-$TARGET_DIR/debug/agentcore-emulator}"

cd "$REPO"
# The venv's bin goes first so the suite finds the pinned `aws`, not one elsewhere on PATH.
PATH="$VENV/bin:$PATH" exec "$VENV/bin/python" -m pytest -q -p no:cacheprovider \
  "$REPO/emulator/conformance" "$@"
