# Sourced by the build scripts of this repository's own Go programs (hack/build-gitops-check.sh,
# hack/build-peer.sh).
#
# go_build_cached NAME DIR [go build flags...]
#   Builds the Go module in DIR (modules from the Go module proxy; go.sum is committed and a build
#   never edits it) into the tool cache, keyed by a hash of its go.mod, go.sum and sources, and
#   prints the path of the binary. A cached binary is printed without building.
go_build_cached() {
  local name="$1" src="$2"
  shift 2
  local cache_root="${AGENTCORE_TOOLS_DIR:-$HOME/.cache/agentcore-operator/tools}"
  local hash
  hash="$(cd "$src" && cat go.mod go.sum $(ls ./*.go | sort) | sha256sum | cut -c1-16)"
  local out="$cache_root/$name-$hash"
  local bin="$out/$name"
  if [ -x "$bin" ]; then
    echo "$bin"
    return 0
  fi
  mkdir -p "$out"
  # Concurrent callers (parallel test binaries) wait for one build instead of racing it.
  exec 9>"$out/.lock"
  flock 9
  if [ ! -x "$bin" ]; then
    echo "go_build_cached: building $src into $out" >&2
    # -mod=readonly: every module must already be in go.sum. Build next to the target and
    # rename, so an interrupted build never leaves a binary that the check above would accept.
    (cd "$src" && go build -mod=readonly -trimpath "$@" -o "$out/.$name.partial" .) >&2
    mv -f "$out/.$name.partial" "$bin"
  fi
  exec 9>&-
  echo "$bin"
}
