#!/usr/bin/env bash
# The whole test suite, as the README states and CI runs it. Builds what it needs first:
# kube-apiserver, etcd and kubectl from their Go modules, helm from its Go module, the node's
# kubelet, kube-proxy, kube-scheduler and kube-controller-manager from the same Go modules, the
# benchmark's controller-runtime peer (all cached under ~/.cache/agentcore-operator/tools), the
# node's Debian packages (containerd, runc, CNI plugins, iptables, buildah: apt-get, only those
# missing), and a Python virtualenv for boto3 and the AWS CLI. The in-cluster suite
# (tests/incluster.rs: the image on a real node) needs root.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

step "control plane binaries (built from Go modules once, then cached)"
bash hack/build-control-plane.sh
step "helm (built from its Go module once, then cached)"
bash hack/build-helm.sh
step "promtool (built from its Go module once, then cached; the chart's alert tests need it)"
bash hack/build-promtool.sh

step "node binaries (built from Go modules once, then cached) and the node's Debian packages"
bash hack/build-node.sh >/dev/null
bash hack/node-packages.sh >/dev/null

step "gitops-check: kstatus (cli-utils) and Argo CD's Lua runtime (gopher-lua), from the Go module proxy"
bash hack/build-gitops-check.sh >/dev/null

step "format and lints"
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
# The benchmark's Go peer: gofmt (go vet needs its whole build; run it by hand when changing it).
unformatted="$(gofmt -l bench/peer)"
[ -z "$unformatted" ] || { echo "gofmt: $unformatted"; exit 1; }

step "release build: the image's binary and the benchmark"
# One build for both packages: built apart, the shared dependencies' features differ and
# everything compiles twice.
cargo build --release --locked -p agentcore-operator -p agentcore-bench

step "Rust tests: unit, CRD drift, emulator conformance (Rust SDK), harness, end-to-end, operations, GitOps, examples, docs, in cluster (the image on a real node)"
# The in-cluster suite builds its image (hack/build-image.sh) from the release binary above.
AGENTCORE_OPERATOR_BINARY="$PWD/target/release/agentcore-operator" \
  cargo test --workspace --locked -- --skip fault_suite

# The suites above run on the harness's default Kubernetes version; the cluster suites run again
# on the oldest and the newest supported one (hack/k8s-versions.txt; all of them:
# hack/test-k8s-matrix.sh without arguments).
step "cluster suites on the oldest and newest supported Kubernetes versions"
mapfile -t k8s_versions < <(grep -E '^v1\.[0-9]+\.[0-9]+$' hack/k8s-versions.txt)
bash hack/test-k8s-matrix.sh "${k8s_versions[0]}" "${k8s_versions[-1]}"

step "fault suite, reduced size (AGENTCORE_FAULTS_SCALE=full for docs/reliability.md)"
cargo test -p agentcore-operator --locked --test faults -- --nocapture

step "emulator conformance with boto3 and the AWS CLI"
bash emulator/conformance/run.sh

step "Helm chart: lint, templates, contract checks"
bash hack/test-chart.sh

step "benchmark, quick mode: 1,000 objects, operator and its controller-runtime peer against a plain-client baseline (figures, not assertions; docs/benchmarks.md)"
# The peer (bench/peer, Go) from the Go module proxy, cached by a hash of its sources; the
# release binaries were built before the tests.
bash hack/build-peer.sh
target/release/agentcore-bench --quick

echo
echo "all tests passed"
