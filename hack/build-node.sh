#!/usr/bin/env bash
# Builds the Kubernetes node parts (kubelet, kube-proxy, kube-scheduler) from the same wrapper Go
# module as hack/build-control-plane.sh (Go module proxy only) and caches them beside the control
# plane, keyed by Kubernetes version. Prints the directory that holds them, which also holds the
# node's kube-controller-manager: hack/build-control-plane.sh builds that one (the test plane runs
# it too), so it is never built twice.
# Separate from the control plane build because only the in-cluster tests need them (about 7
# minutes cold on 2 cores, peak ~1.9 GB RSS).
#
# The container runtime parts (containerd, runc, CNI plugins, iptables, conntrack) are Debian
# packages: hack/node-packages.sh installs them.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=lib/k8s-wrapper-module.sh
. "$here/lib/k8s-wrapper-module.sh"

K8S_VERSION="${K8S_VERSION:-v1.34.4}"
CACHE_ROOT="${AGENTCORE_TOOLS_DIR:-$HOME/.cache/agentcore-operator/tools}"
OUT="$CACHE_ROOT/kubernetes-$K8S_VERSION"
BINARIES=(kubelet kube-proxy kube-scheduler)

# kube-controller-manager (and the control plane's own binaries) first, from the control plane's
# script and cache: it prints the same directory.
cp_out="$(bash "$here/build-control-plane.sh" kube-controller-manager)"
[ "$cp_out" = "$OUT" ] || { echo "build-node: control plane binaries in $cp_out, expected $OUT" >&2; exit 1; }

have_all() {
  for b in "${BINARIES[@]}" kube-controller-manager; do [ -x "$OUT/$b" ] || return 1; done
}
if have_all; then
  echo "$OUT"
  exit 0
fi

log() { echo "build-node: $*" >&2; }
mkdir -p "$OUT"
exec 9>"$CACHE_ROOT/.kubernetes-node-$K8S_VERSION.lock"
flock 9
if have_all; then
  echo "$OUT"
  exit 0
fi
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

log "resolving k8s.io/kubernetes@$K8S_VERSION"
k8s_wrapper_go_mod "$K8S_VERSION" agentcore.dev/node-build > "$work/go.mod"
{
  echo "//go:build tools"
  echo
  echo "package tools"
  echo
  echo "import ("
  for b in "${BINARIES[@]}"; do echo "	_ \"k8s.io/kubernetes/cmd/$b\""; done
  echo ")"
} > "$work/tools.go"

cd "$work"
export GOFLAGS="-mod=mod"
log "resolving the build closure (go mod tidy)"
go mod tidy >&2
ldflags="$(k8s_version_ldflags "$K8S_VERSION")"
log "building ${BINARIES[*]} into $OUT (first build: about 7 minutes on 2 cores, cached afterwards)"
for b in "${BINARIES[@]}"; do
  [ -x "$OUT/$b" ] && continue
  # Static (no cgo): the binaries only need the kernel, never the host's libc version.
  CGO_ENABLED=0 go build -trimpath -ldflags "-s -w $ldflags" -o "$work/bin/$b" "k8s.io/kubernetes/cmd/$b" >&2
  # Copy next to the target, then rename: an interrupted build never leaves a truncated binary.
  cp "$work/bin/$b" "$OUT/.$b.partial" && mv -f "$OUT/.$b.partial" "$OUT/$b"
done
have_all
echo "$OUT"
