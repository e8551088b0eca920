#!/usr/bin/env bash
# The whole test suite, as the README states and CI runs it. Builds what it needs first:
# kube-apiserver, etcd and kubectl from their Go modules, helm from its Go module, the
# benchmark's controller-runtime peer (all cached under ~/.cache/agentcore-operator/tools), and a Python virtualenv for boto3 and the AWS CLI.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

step "control plane binaries (built from Go modules once, then cached)"
bash hack/build-control-plane.sh
step "helm (built from its Go module once, then cached)"
bash hack/build-helm.sh
step "promtool (built from its Go module once, then cached; the chart's alert tests need it)"
bash hack/build-promtool.sh

step "gitops-check: kstatus (cli-utils) and Argo CD's Lua runtime (gopher-lua), from the Go module proxy"
bash hack/build-gitops-check.sh >/dev/null

step "format and lints"
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
# The benchmark's Go peer: gofmt (go vet needs its whole build; run it by hand when changing it).
unformatted="$(gofmt -l bench/peer)"
[ -z "$unformatted" ] || { echo "gofmt: $unformatted"; exit 1; }

step "Rust tests: unit, CRD drift, emulator conformance (Rust SDK), harness, end-to-end, operations, GitOps, examples, docs"
# The in-cluster suite (a real node) runs on its own: hack/test-incluster.sh.
cargo test --workspace --locked -- --skip fault_suite --skip incluster

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
# The peer (bench/peer, Go) from the Go module proxy, cached by a hash of its sources.
bash hack/build-peer.sh
# One build for both packages: built apart, the shared dependencies' features differ and
# everything compiles twice.
cargo build --release --locked -p agentcore-operator -p agentcore-bench
target/release/agentcore-bench --quick

echo
echo "all tests passed"
