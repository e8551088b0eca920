#!/usr/bin/env bash
# Runs the suites that talk to a cluster on each supported Kubernetes version, with kube-apiserver,
# etcd and kubectl of that version (built from their Go modules by hack/build-control-plane.sh,
# each version cached side by side under ~/.cache/agentcore-operator/tools/kubernetes-<version>).
#
#   hack/test-k8s-matrix.sh                    # every version in hack/k8s-versions.txt
#   hack/test-k8s-matrix.sh v1.33.13 v1.37.2   # only these
#
# Per version, the same test binaries run with AGENTCORE_K8S_VERSION set (testenv picks the
# binaries by it, and each suite checks that the server reports it):
#   harness     testenv/tests/{tools,control_plane}.rs: the version stamped in the binaries, an
#               RBAC-enforcing API server, the CRD installs and its kind becomes usable
#   e2e         tests/e2e.rs: the lifecycle suite driven by kubectl of that version, including the
#               invalid objects the CRD's schema and CEL rules must reject (and the valid ones and
#               the mutable fields they must accept), the immutability rules, kill -9 mid-deletion
#   gitops      tests/gitops.rs: kstatus and the Argo CD health check on objects captured live at
#               every lifecycle stage must give the same verdicts as on every other version
#   operations  tests/operations.rs: helm install against the server (its kubeVersion check),
#               RBAC allowed and denied, leader election on Leases, health and metrics
#   examples    tests/examples.rs: every example manifest dry-run against the server
# MATRIX_CARGO_PACKAGES (default --workspace) selects the cargo packages, e.g.
# "-p agentcore-testenv -p agentcore-operator" to reuse a build made with that selection.
# Prints a table, one row per version, and exits non-zero if any suite failed on any version.
# Logs: target/k8s-matrix/<version>/<suite>.log; the table also goes to target/k8s-matrix/summary.txt.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
OUT="$ROOT/target/k8s-matrix"

if [ "$#" -gt 0 ]; then
  versions=("$@")
else
  mapfile -t versions < <(grep -E '^v1\.[0-9]+\.[0-9]+$' hack/k8s-versions.txt)
fi
[ "${#versions[@]}" -gt 0 ] || { echo "test-k8s-matrix: no versions" >&2; exit 1; }

suites=(harness e2e gitops operations examples)
# One package selection for every cargo call: cargo unifies dependency features over the selected
# packages, so a different selection (say, -p agentcore-testenv alone) compiles the dependencies
# again. --workspace matches hack/test.sh's `cargo test --workspace`, whose build this reuses.
read -r -a packages <<<"${MATRIX_CARGO_PACKAGES:---workspace}"
suite_command() {
  local cargo=(cargo test --locked "${packages[@]}")
  case "$1" in
    harness) echo "${cargo[*]} --test tools --test control_plane" ;;
    e2e) echo "${cargo[*]} --test e2e" ;;
    gitops) echo "${cargo[*]} --test gitops" ;;
    operations) echo "${cargo[*]} --test operations" ;;
    examples) echo "${cargo[*]} --test examples" ;;
  esac
}

log() { printf '\n==> test-k8s-matrix: %s\n' "$*" >&2; }

# Compile the test binaries once, before any timing: the version is chosen at run time, so every
# version runs the very same binaries.
log "building the test binaries"
cargo test --locked "${packages[@]}" --no-run \
  --test tools --test control_plane --test e2e --test gitops --test operations --test examples >&2
bash hack/build-helm.sh >/dev/null
bash hack/build-gitops-check.sh >/dev/null

mkdir -p "$OUT"
rows=()
failed=0
matrix_start=$(date +%s)
for v in "${versions[@]}"; do
  dir="$OUT/$v"
  rm -rf "$dir"
  mkdir -p "$dir"
  [[ "$v" =~ ^v1\.[0-9]+\.[0-9]+$ ]] || { echo "test-k8s-matrix: $v is not a Kubernetes release" >&2; exit 1; }

  log "$v: control plane binaries"
  cached=cold
  [ -x "${AGENTCORE_TOOLS_DIR:-$HOME/.cache/agentcore-operator/tools}/kubernetes-$v/kube-apiserver" ] && cached=cached
  start=$(date +%s)
  if bins="$(K8S_VERSION="$v" bash hack/build-control-plane.sh 2>"$dir/build.log")"; then
    build="$(( $(date +%s) - start ))s $cached"
    server="$("$bins/kube-apiserver" --version | awk '{print $2}')"
    client="$("$bins/kubectl" version --client -o json | sed -n 's/.*"gitVersion": "\(.*\)",/\1/p' | head -n 1)"
    etcd="$("$bins/etcd" --version | sed -n 's/^etcd Version: //p')"
    [ "$server" = "$v" ] && [ "$client" = "$v" ] || {
      echo "test-k8s-matrix: $bins holds kube-apiserver $server, kubectl $client, not $v" >&2
      exit 1
    }
  else
    tail -n 40 "$dir/build.log" >&2
    rows+=("$(printf '| %-9s | %-14s | %s |' "$v" "build FAILED" "see $dir/build.log")")
    failed=1
    continue
  fi

  cells=()
  version_start=$(date +%s)
  for suite in "${suites[@]}"; do
    log "$v: $suite ($(suite_command "$suite"))"
    start=$(date +%s)
    # shellcheck disable=SC2046 # the command is a fixed word list
    if AGENTCORE_K8S_VERSION="$v" $(suite_command "$suite") >"$dir/$suite.log" 2>&1; then
      passed="$(grep -Eo 'test result: ok\. [0-9]+ passed' "$dir/$suite.log" | awk '{s+=$4} END {print s+0}')"
      cells+=("$(printf 'ok %2d (%3ds)' "$passed" "$(( $(date +%s) - start ))")")
    else
      grep -E '^test .* FAILED$|^failures:|panicked|Error:' "$dir/$suite.log" | head -n 20 >&2 || true
      echo "test-k8s-matrix: $v $suite FAILED; log: $dir/$suite.log" >&2
      cells+=("$(printf 'FAILED (%3ds)' "$(( $(date +%s) - start ))")")
      failed=1
    fi
  done
  row="$(printf '| %-9s | %-14s | %-7s | %-9s |' "$v" "$build" "$etcd" "$(( $(date +%s) - version_start ))s")"
  for c in "${cells[@]}"; do row+="$(printf ' %-12s |' "$c")"; done
  rows+=("$row")
done

{
  echo
  echo "Kubernetes matrix ($(date -u +%Y-%m-%dT%H:%MZ), commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet 2>/dev/null || echo '+changes'), $(nproc) cores)"
  echo "cells: tests passed (seconds); build: control-plane binaries, cold = built now, cached = from the cache"
  echo
  header="$(printf '| %-9s | %-14s | %-7s | %-9s |' version build etcd suites)"
  for s in "${suites[@]}"; do header+="$(printf ' %-12s |' "$s")"; done
  echo "$header"
  echo "$header" | sed 's/[^|]/-/g'
  printf '%s\n' "${rows[@]}"
  echo
  echo "matrix: $(( $(date +%s) - matrix_start ))s for ${#versions[@]} version(s); $([ "$failed" = 0 ] && echo 'all suites passed' || echo 'FAILURES above')"
} | tee "$OUT/summary.txt"
exit "$failed"
