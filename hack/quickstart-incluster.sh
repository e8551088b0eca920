#!/usr/bin/env bash
# The in-cluster variant of the quick start (`hack/quickstart.sh --in-cluster`), as root: the
# operator image built here (hack/build-image.sh), a local control plane with a real node
# (testenv's node_up example: kubelet, containerd, runc, CNI), the AgentCore emulator on the
# machine's address (where pods reach it), and the Helm chart installed on the node the way
# tests/incluster.rs installs it. Applies examples/quickstart.yaml, then keeps everything running
# until Ctrl-C, which tears it all down. Logs and values go to ./.dev-incluster/.
#
# First run: the node's Kubernetes parts, helm and the release binary are built (tens of minutes
# on 2 cores; cached afterwards), and Debian packages (containerd, runc, CNI plugins, buildah) are
# installed with apt-get.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { echo "quickstart-incluster: $*" >&2; }
[ "$(id -u)" -eq 0 ] || { say "needs root: the node runs containerd and the kubelet"; exit 1; }

state="$PWD/.dev-incluster"
rm -rf "$state" && mkdir -p "$state"
release=agentcore-operator
namespace=agentcore-system

say "building the tools (cached after the first run)"
tools_dir="$(bash hack/build-control-plane.sh kube-controller-manager)"
helm="$(bash hack/build-helm.sh)/helm"
bash hack/build-node.sh >/dev/null
bash hack/node-packages.sh >/dev/null
# The same package selection as hack/test.sh, so the two share one release build.
cargo build --release --locked -p agentcore-operator -p agentcore-bench
cargo build --locked -p agentcore-emulator -p agentcore-testenv --example node_up
say "building the operator image"
archive="$(AGENTCORE_OPERATOR_BINARY="$PWD/target/release/agentcore-operator" bash hack/build-image.sh)"

pids=()
cleanup() {
  say "tearing down"
  # node_up tears the node and the plane down on SIGINT.
  for pid in "${pids[@]}"; do kill -INT "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT
trap 'exit 130' INT TERM

say "starting the control plane and the node"
target/debug/examples/node_up "$archive" >"$state/node_up.log" 2>&1 &
pids+=("$!")
ready=""
for _ in $(seq 1 240); do
  ready="$(grep -m1 ' Ready at ' "$state/node_up.log" || true)"
  [ -n "$ready" ] && break
  kill -0 "${pids[0]}" 2>/dev/null || { cat "$state/node_up.log" >&2; say "the node did not come up"; exit 1; }
  sleep 1
done
[ -n "$ready" ] || { cat "$state/node_up.log" >&2; say "the node was not Ready within 4 minutes"; exit 1; }
# "node NAME Ready at IP; export KUBECONFIG=PATH; Ctrl-C tears down"
node_ip="$(sed -n 's/.* Ready at \([^;]*\);.*/\1/p' <<<"$ready")"
export KUBECONFIG="$(sed -n 's/.*export KUBECONFIG=\([^;]*\);.*/\1/p' <<<"$ready")"
export PATH="$tools_dir:$PATH"
say "node Ready at $node_ip"

port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("'"$node_ip"'", 0)); print(s.getsockname()[1])')"
target/debug/agentcore-emulator --listen "$node_ip:$port" --job-duration 60s --stop-duration 5s \
  >"$state/emulator.log" 2>&1 &
pids+=("$!")

kubectl create namespace "$namespace"
kubectl label namespace "$namespace" pod-security.kubernetes.io/enforce=restricted
cat >"$state/values.yaml" <<YAML
image:
  pullPolicy: Never
aws:
  region: us-west-2
  endpointUrl: http://$node_ip:$port
YAML
say "helm install (the image imported into the node's containerd)"
"$helm" install "$release" charts/agentcore-operator -n "$namespace" --values "$state/values.yaml"
# The chart refuses static AWS keys in its values (IRSA or Pod Identity in real clusters); the
# emulator only needs some key to sign with: a Secret and a rolling update, as a user would.
kubectl create secret generic aws-emulator-credentials -n "$namespace" \
  --from-literal=AWS_ACCESS_KEY_ID=AKIDEXAMPLE \
  --from-literal=AWS_SECRET_ACCESS_KEY=emulator-does-not-check
kubectl set env "deployment/$release" -n "$namespace" --from=secret/aws-emulator-credentials
kubectl rollout status "deployment/$release" -n "$namespace" --timeout=180s
kubectl apply -f examples/quickstart.yaml
kubectl get pods -n "$namespace" -o wide

cat >&2 <<EOF

==> The in-cluster playground is up. In another terminal:

    export KUBECONFIG=$KUBECONFIG PATH=$tools_dir:\$PATH
    kubectl get pods -n $namespace -o wide        # two replicas; one holds the Lease
    kubectl get bevals -w
    kubectl delete beval checkout-agent-nightly    # the in-cluster operator stops and deletes the job

Logs: $state/{node_up,emulator}.log; the plane's and node's logs are in the directory node_up.log names.
Ctrl-C tears everything down.
EOF
while kill -0 "${pids[0]}" 2>/dev/null; do sleep 2; done
