#!/usr/bin/env bash
# Builds kube-apiserver, etcd and kubectl from their Go modules (Go module proxy only) and caches
# the binaries outside git, keyed by Kubernetes version. Prints the directory that holds them.
#
# Why a wrapper module: k8s.io/kubernetes points its ~30 staging modules at ./staging with
# `replace` directives, so `go install k8s.io/kubernetes/cmd/...@vX` is refused. A small module
# that requires k8s.io/kubernetes and replaces every staging module by its published v0.X.Y
# builds the same code. The staging list is read from upstream's own go.mod, never hard-coded.
set -euo pipefail

K8S_VERSION="${K8S_VERSION:-v1.34.4}"
CACHE_ROOT="${AGENTCORE_TOOLS_DIR:-$HOME/.cache/agentcore-operator/tools}"
OUT="$CACHE_ROOT/kubernetes-$K8S_VERSION"
BINARIES=(kube-apiserver etcd kubectl)

have_all() {
  for b in "${BINARIES[@]}"; do [ -x "$OUT/$b" ] || return 1; done
}
if have_all; then
  echo "$OUT"
  exit 0
fi

log() { echo "build-control-plane: $*" >&2; }
mkdir -p "$OUT"
# Concurrent callers (parallel tests, a second terminal) wait for one build instead of racing it.
exec 9>"$CACHE_ROOT/.kubernetes-$K8S_VERSION.lock"
flock 9
if have_all; then
  echo "$OUT"
  exit 0
fi
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

log "resolving k8s.io/kubernetes@$K8S_VERSION"
upstream_mod="$(go mod download -json "k8s.io/kubernetes@$K8S_VERSION" | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",$/\1/p')"
[ -f "$upstream_mod" ] || { log "no go.mod for k8s.io/kubernetes@$K8S_VERSION"; exit 1; }

minor="${K8S_VERSION#v1.}"           # 34.4
staging_version="v0.$minor"          # v0.34.4
major_minor="${minor%%.*}"           # 34

{
  echo "module agentcore.dev/controlplane-build"
  echo
  grep -E '^go [0-9]' "$upstream_mod"
  # upstream's godebug block (either a single line or a parenthesised block)
  awk '/^godebug \(/{p=1} p{print} p&&/^\)/{p=0} /^godebug [^(]/{print}' "$upstream_mod"
  echo
  echo "require k8s.io/kubernetes $K8S_VERSION"
  echo
  echo "replace ("
  # every `k8s.io/<m> => ./staging/src/k8s.io/<m>` becomes `k8s.io/<m> => k8s.io/<m> v0.X.Y`
  sed -n 's#^[[:space:]]*\(k8s\.io/[^ ]*\) => \./staging/src/.*#\1#p' "$upstream_mod" |
    while read -r m; do echo "	$m => $m $staging_version"; done
  echo ")"
} > "$work/go.mod"

cat > "$work/tools.go" <<'GO'
//go:build tools

package tools

import (
	_ "go.etcd.io/etcd/server/v3"
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kubectl"
)
GO

cd "$work"
export GOFLAGS="-mod=mod"
log "resolving the build closure (go mod tidy)"
go mod tidy >&2

ldflags=""
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  ldflags+=" -X $pkg.gitVersion=$K8S_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$major_minor"
  ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
done

log "building kube-apiserver, kubectl, etcd into $OUT (first build: about 4 minutes on 2 cores, cached afterwards)"
# Build into the scratch dir and move into place, so an interrupted build never leaves a
# truncated binary that the cache check above would accept.
go build -trimpath -ldflags "-s -w $ldflags" -o "$work/bin/kube-apiserver" k8s.io/kubernetes/cmd/kube-apiserver >&2
go build -trimpath -ldflags "-s -w $ldflags" -o "$work/bin/kubectl" k8s.io/kubernetes/cmd/kubectl >&2
go build -trimpath -ldflags "-s -w" -o "$work/bin/etcd" go.etcd.io/etcd/server/v3 >&2
for b in "${BINARIES[@]}"; do
  # $work may be on another filesystem: copy next to the target, then rename (atomic).
  cp "$work/bin/$b" "$OUT/.$b.partial" && mv -f "$OUT/.$b.partial" "$OUT/$b"
done
have_all
echo "$OUT"
