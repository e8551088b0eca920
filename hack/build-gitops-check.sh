#!/usr/bin/env bash
# Builds hack/gitops-check (kstatus from sigs.k8s.io/cli-utils and Argo CD's Lua runtime,
# gopher-lua, both from the Go module proxy) and caches the binary outside git, keyed by a hash of
# its go.mod, go.sum and sources. Prints the path of the binary.
#
#   "$(bash hack/build-gitops-check.sh)" kstatus < objects.json
#   "$(bash hack/build-gitops-check.sh)" argocd-health --script charts/agentcore-operator/argocd/health.lua < objects.json
set -euo pipefail

SRC="$(cd "$(dirname "${BASH_SOURCE[0]}")/gitops-check" && pwd)"
CACHE_ROOT="${AGENTCORE_TOOLS_DIR:-$HOME/.cache/agentcore-operator/tools}"
hash="$(cd "$SRC" && cat go.mod go.sum $(ls ./*.go | sort) | sha256sum | cut -c1-16)"
OUT="$CACHE_ROOT/gitops-check-$hash"
BIN="$OUT/gitops-check"

if [ -x "$BIN" ]; then
  echo "$BIN"
  exit 0
fi

mkdir -p "$OUT"
# Concurrent callers (parallel test binaries) wait for one build instead of racing it.
exec 9>"$OUT/.lock"
flock 9
if [ -x "$BIN" ]; then
  echo "$BIN"
  exit 0
fi
echo "build-gitops-check: building $SRC into $OUT" >&2
# -mod=readonly: go.sum is committed and must already cover every module; a build never edits it.
(cd "$SRC" && go build -mod=readonly -trimpath -o "$OUT/.gitops-check.partial" .) >&2
mv -f "$OUT/.gitops-check.partial" "$BIN"
echo "$BIN"
