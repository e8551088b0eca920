#!/usr/bin/env bash
# Builds helm from its Go module (Go module proxy only) and caches the binary outside git, keyed
# by Helm version. Prints the directory that holds it.
#
# Helm's go.mod has no replace directives, so a plain `go install` works (unlike kube-apiserver,
# see build-control-plane.sh). The version is stamped with -ldflags so that `helm version` reports
# it; a Helm v3 built this way assumes Kubernetes v1.20 for `helm template` unless given
# `--kube-version`.
set -euo pipefail

HELM_VERSION="${HELM_VERSION:-v3.19.5}"
CACHE_ROOT="${AGENTCORE_TOOLS_DIR:-$HOME/.cache/agentcore-operator/tools}"
OUT="$CACHE_ROOT/helm-$HELM_VERSION"

if [ -x "$OUT/helm" ]; then
  echo "$OUT"
  exit 0
fi

log() { echo "build-helm: $*" >&2; }
mkdir -p "$OUT"
# Concurrent callers wait for one build instead of racing it.
exec 9>"$CACHE_ROOT/.helm-$HELM_VERSION.lock"
flock 9
if [ -x "$OUT/helm" ]; then
  echo "$OUT"
  exit 0
fi
major="${HELM_VERSION%%.*}" # v3
log "building helm $HELM_VERSION into $OUT (first build takes a minute or two)"
# Build into a scratch GOBIN and move into place so that an interrupted build never leaves a
# half-written binary that the cache check above would accept.
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
GOBIN="$scratch" go install -trimpath \
  -ldflags "-s -w -X helm.sh/helm/$major/internal/version.version=$HELM_VERSION" \
  "helm.sh/helm/$major/cmd/helm@$HELM_VERSION" >&2
# $scratch may be on another filesystem: copy next to the target, then rename (atomic).
cp "$scratch/helm" "$OUT/.helm.partial" && mv -f "$OUT/.helm.partial" "$OUT/helm"
"$OUT/helm" version --short >&2
echo "$OUT"
