#!/usr/bin/env bash
# The in-cluster suite: the operator image built here (hack/build-image.sh), a real node
# (kubelet, containerd, runc, CNI, kube-proxy, scheduler, controller-manager) started by the
# harness, and the Helm chart installed on it (tests/incluster.rs). Needs root.
#
# hack/test.sh runs this suite with all the others; this script runs it alone (about 3 minutes
# once the tools are cached), e.g. to see the cluster's figures and `kubectl get pods` output.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

step "control plane, helm, node binaries (Go modules, cached); containerd, runc, CNI, buildah (Debian)"
bash hack/build-control-plane.sh >/dev/null
bash hack/build-helm.sh >/dev/null
bash hack/build-node.sh >/dev/null
bash hack/node-packages.sh >/dev/null

step "release binary for the image"
# The same package selection as hack/test.sh, so the two share one release build.
cargo build --release --locked -p agentcore-operator -p agentcore-bench

step "in cluster: the image on a real node, the chart installed with helm (tests/incluster.rs)"
AGENTCORE_OPERATOR_BINARY="$PWD/target/release/agentcore-operator" \
  cargo test -p agentcore-operator --locked --test incluster -- --nocapture
