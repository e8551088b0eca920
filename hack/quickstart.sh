#!/usr/bin/env bash
# The README quick start: builds what is needed (the control-plane binaries from Go modules on the
# very first run, then the Rust binaries) and runs `agentcore-dev up`, which keeps a local
# kube-apiserver + etcd + kube-controller-manager, the AgentCore emulator and the operator
# running until Ctrl-C.
# State, kubeconfig and logs go to ./.dev/ (wiped at each start). Extra arguments go to `up`.
#
# `hack/quickstart.sh --in-cluster` (as root) runs the in-cluster variant instead: the image built
# here, a real node and the Helm chart on it (hack/quickstart-incluster.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${1:-}" = "--in-cluster" ]; then
  shift
  exec bash hack/quickstart-incluster.sh "$@"
fi

# A no-op once cached; the first run compiles kube-apiserver, etcd, kubectl and
# kube-controller-manager (minutes).
bash hack/build-control-plane.sh kube-controller-manager >/dev/null
cargo build -p agentcore-testenv --bin agentcore-dev
exec cargo run -q -p agentcore-testenv --bin agentcore-dev -- up "$@"
