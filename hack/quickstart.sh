#!/usr/bin/env bash
# The README quick start: builds what is needed (the control-plane binaries from Go modules on the
# very first run, then the Rust binaries) and runs `agentcore-dev up`, which keeps a local
# kube-apiserver + etcd + kube-controller-manager, the AgentCore emulator and the operator
# running until Ctrl-C.
# State, kubeconfig and logs go to ./.dev/ (wiped at each start). Extra arguments go to `up`.
set -euo pipefail
cd "$(dirname "$0")/.."

# A no-op once cached; the first run compiles kube-apiserver, etcd, kubectl and
# kube-controller-manager (minutes).
bash hack/build-control-plane.sh kube-controller-manager >/dev/null
cargo build -p agentcore-testenv --bin agentcore-dev
exec cargo run -q -p agentcore-testenv --bin agentcore-dev -- up "$@"
