#!/usr/bin/env bash
# Builds kube-apiserver, etcd and kubectl from their Go modules (Go module proxy only) and caches
# the binaries outside git, keyed by Kubernetes version. Prints the directory that holds them.
#
#   hack/build-control-plane.sh                          # kube-apiserver, etcd, kubectl
#   hack/build-control-plane.sh kube-controller-manager  # the same, plus kube-controller-manager
#
# kube-controller-manager (ownerReference garbage collection, namespace deletion) is built only
# when asked for: only a plane started with `controller_manager: true` and the node need it, so
# the version matrix does not pay for it. It comes from the same wrapper module, into the same
# directory; a binary already cached is never built again.
#
# Why a wrapper module: k8s.io/kubernetes points its ~30 staging modules at ./staging with
# `replace` directives, so `go install k8s.io/kubernetes/cmd/...@vX` is refused. A small module
# that requires k8s.io/kubernetes and replaces every staging module by its published v0.X.Y
# builds the same code. The staging list is read from upstream's own go.mod, never hard-coded
# (hack/lib/k8s-wrapper-module.sh).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=lib/k8s-wrapper-module.sh
. "$here/lib/k8s-wrapper-module.sh"

K8S_VERSION="${K8S_VERSION:-v1.34.4}"
CACHE_ROOT="${AGENTCORE_TOOLS_DIR:-$HOME/.cache/agentcore-operator/tools}"
OUT="$CACHE_ROOT/kubernetes-$K8S_VERSION"
BINARIES=(kube-apiserver etcd kubectl)
for extra in "$@"; do
  case "$extra" in
    kube-controller-manager) BINARIES+=("$extra") ;;
    *) echo "build-control-plane: cannot build $extra (only kube-controller-manager is optional)" >&2; exit 2 ;;
  esac
done

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
missing=()
for b in "${BINARIES[@]}"; do [ -x "$OUT/$b" ] || missing+=("$b"); done
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

log "resolving k8s.io/kubernetes@$K8S_VERSION"
k8s_wrapper_go_mod "$K8S_VERSION" agentcore.dev/controlplane-build > "$work/go.mod"
package_of() {
  case "$1" in
    etcd) echo go.etcd.io/etcd/server/v3 ;; # its main is the module root
    *) echo "k8s.io/kubernetes/cmd/$1" ;;
  esac
}
{
  echo "//go:build tools"
  echo
  echo "package tools"
  echo
  echo "import ("
  for b in "${missing[@]}"; do echo "	_ \"$(package_of "$b")\""; done
  echo ")"
} > "$work/tools.go"

cd "$work"
export GOFLAGS="-mod=mod"
log "resolving the build closure (go mod tidy)"
go mod tidy >&2
ldflags="$(k8s_version_ldflags "$K8S_VERSION")"

log "building ${missing[*]} into $OUT (first build: about 4 minutes on 2 cores for the three control-plane binaries, 2 more for kube-controller-manager; cached afterwards)"
for b in "${missing[@]}"; do
  flags="-s -w"
  [ "$b" = etcd ] || flags+=" $ldflags"
  # Build into the scratch dir and move into place, so an interrupted build never leaves a
  # truncated binary that the cache check above would accept.
  go build -trimpath -ldflags "$flags" -o "$work/bin/$b" "$(package_of "$b")" >&2
  # $work may be on another filesystem: copy next to the target, then rename (atomic).
  cp "$work/bin/$b" "$OUT/.$b.partial" && mv -f "$OUT/.$b.partial" "$OUT/$b"
done
have_all
echo "$OUT"
