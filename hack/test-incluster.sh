#!/usr/bin/env bash
# The in-cluster suite: the operator image built here (hack/build-image.sh), a real node
# (kubelet, containerd, runc, CNI, kube-proxy, scheduler, controller-manager) started by the
# harness, and the Helm chart installed on it (tests/incluster.rs). Needs root.
#
# Not yet part of hack/test.sh: it has not yet passed end to end on a clean clone (issue 19).
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

step "control plane, helm, node binaries (Go modules, cached); containerd, runc, CNI, buildah (Debian)"
bash hack/build-control-plane.sh >/dev/null
bash hack/build-helm.sh >/dev/null
bash hack/build-node.sh >/dev/null
bash hack/node-packages.sh >/dev/null

step "release binary for the image"
cargo build --release --locked -p agentcore-operator

step "in cluster: the image on a real node, the chart installed with helm (tests/incluster.rs)"
AGENTCORE_OPERATOR_BINARY=target/release/agentcore-operator \
  cargo test -p agentcore-operator --locked --test incluster -- --nocapture
