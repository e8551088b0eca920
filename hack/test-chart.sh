#!/usr/bin/env bash
# Lints and renders charts/agentcore-operator with its default values and with every
# ci/*-values.yaml, then checks the rendered objects against the operator's contract
# (flags, least-privilege RBAC, leader election, probes, restricted securityContext) and checks that
# values.schema.json rejects what it must. Exits non-zero on the first failure.
#
# Builds what it needs (cached under ~/.cache/agentcore-operator/tools): helm (hack/build-helm.sh,
# unless HELM is set) and promtool (hack/build-promtool.sh, unless PROMTOOL is set), which checks
# the PrometheusRule and unit-tests its alerts on every run; PyYAML goes into a virtualenv under
# target/ if python3 lacks it. A tool that cannot be built fails the run: nothing is skipped.
# The contract checks themselves are in hack/chart_contract.py, the alert tests in
# hack/chart-alerts.test.yaml.
#
# No cluster is contacted. `helm template` runs without --api-versions on purpose: the
# ServiceMonitor and PrometheusRule are gated on values, not on the cluster's APIs.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CHART="$ROOT/charts/agentcore-operator"
# The supported Kubernetes versions (hack/k8s-versions.txt), oldest first.
mapfile -t K8S_VERSIONS < <(grep -E '^v1\.[0-9]+\.[0-9]+$' "$ROOT/hack/k8s-versions.txt")
# Helm built with `go install` has no version ldflags and assumes Kubernetes v1.20, which the
# chart's kubeVersion refuses; render for the oldest supported version unless told otherwise
# (every supported version is checked against kubeVersion below).
KUBE_VERSION="${KUBE_VERSION:-${K8S_VERSIONS[0]}}"
RELEASE="${RELEASE:-agentcore-operator}"
NAMESPACE="${NAMESPACE:-agentcore-system}"

log() { echo "test-chart: $*" >&2; }
fail() { log "FAIL: $*"; exit 1; }

if [ -n "${HELM:-}" ]; then
  [ -x "$HELM" ] || fail "HELM=$HELM is not an executable file"
else
  HELM="$(bash "$ROOT/hack/build-helm.sh")/helm" || fail "hack/build-helm.sh could not build helm"
fi
log "helm: $HELM ($("$HELM" version --short))"
if [ -n "${PROMTOOL:-}" ]; then
  [ -x "$PROMTOOL" ] || fail "PROMTOOL=$PROMTOOL is not an executable file"
else
  PROMTOOL="$(bash "$ROOT/hack/build-promtool.sh")/promtool" || fail "hack/build-promtool.sh could not build promtool"
fi
log "promtool: $PROMTOOL ($("$PROMTOOL" --version 2>&1 | head -n 1))"
if ! python3 -c 'import yaml' 2>/dev/null; then
  venv="$ROOT/target/chart-venv"
  log "python3 has no PyYAML: installing it into $venv"
  { [ -x "$venv/bin/python3" ] || python3 -m venv "$venv"; } || fail "python3 -m venv failed (Debian: apt-get install python3-venv)"
  "$venv/bin/python3" -m pip install --quiet 'PyYAML>=6,<7' || fail "pip install PyYAML"
  PATH="$venv/bin:$PATH"
  python3 -c 'import yaml' || fail "PyYAML still not importable from $venv"
fi
[ "${#K8S_VERSIONS[@]}" -ge 2 ] || fail "hack/k8s-versions.txt lists fewer than two versions"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# --- CRD copy -------------------------------------------------------------------------------------
# The chart ships the generated CRD byte for byte; it is never hand-written.
for crd_name in evals.agentcore.dev_batchevaluations.yaml evals.agentcore.dev_batchevaluationschedules.yaml; do
  canonical="$ROOT/crds/$crd_name"
  chart_crd="$CHART/crds/$crd_name"
  [ -f "$canonical" ] || fail "crds/$crd_name does not exist: run cargo run -q -- crd > crds/$crd_name"
  [ -f "$chart_crd" ] || fail "chart CRD missing; run: cp crds/$crd_name charts/agentcore-operator/crds/"
  cmp -s "$canonical" "$chart_crd" ||
    fail "charts/agentcore-operator/crds/$crd_name differs from crds/$crd_name; run: cp crds/$crd_name charts/agentcore-operator/crds/"
  log "ok: chart CRD is byte-identical to crds/$crd_name"
done

# --- supported Kubernetes versions ----------------------------------------------------------------
# The chart's kubeVersion admits exactly the tested minors (a patch release of a tested minor, or a
# provider build such as v1.33.2-eks-1234, included), and the README's table lists exactly
# hack/k8s-versions.txt.
oldest="${K8S_VERSIONS[0]}" newest="${K8S_VERSIONS[-1]}"
oldest_minor="${oldest%.*}" newest_minor="${newest%.*}"                # v1.33, v1.37
below="v1.$(( ${oldest_minor#v1.} - 1 )).99"                           # v1.32.99
above="v1.$(( ${newest_minor#v1.} + 1 )).0"                            # v1.38.0
want_kube_version="\">=${oldest_minor#v}.0-0 <${above#v}-0\""
grep -qxF "kubeVersion: $want_kube_version" "$CHART/Chart.yaml" ||
  fail "Chart.yaml must say kubeVersion: $want_kube_version (hack/k8s-versions.txt)"
for v in "${K8S_VERSIONS[@]}"; do
  "$HELM" template "$RELEASE" "$CHART" --kube-version "$v" >/dev/null 2>"$work/kv.err" ||
    { cat "$work/kv.err" >&2; fail "the chart refuses supported Kubernetes $v"; }
  grep -qE "^\| ${v//./\\.} \|" "$ROOT/README.md" || fail "README.md's support table has no row for $v"
done
for v in "$below" "$above"; do
  if "$HELM" template "$RELEASE" "$CHART" --kube-version "$v" >/dev/null 2>"$work/kv.err"; then
    fail "the chart installs on untested Kubernetes $v"
  fi
  grep -q "kubeVersion" "$work/kv.err" || { cat "$work/kv.err" >&2; fail "$v refused, but not by kubeVersion"; }
done
rows="$(grep -cE '^\| v1\.[0-9]+\.[0-9]+ \|' "$ROOT/README.md")"
[ "$rows" -eq "${#K8S_VERSIONS[@]}" ] ||
  fail "README.md's support table has $rows version rows, hack/k8s-versions.txt lists ${#K8S_VERSIONS[@]}"
log "ok: kubeVersion $want_kube_version admits ${K8S_VERSIONS[*]}, refuses $below and $above; README table agrees"

# --- lint + render each values set ----------------------------------------------------------------
value_sets=("")
for f in "$CHART"/ci/*-values.yaml; do
  [ -e "$f" ] && value_sets+=("$f")
done
[ "${#value_sets[@]}" -ge 2 ] || fail "no $CHART/ci/*-values.yaml found"

for values in "${value_sets[@]}"; do
  label="${values:+$(basename "$values")}"
  label="${label:-default values}"
  args=()
  [ -n "$values" ] && args+=(-f "$values")

  "$HELM" lint --strict --kube-version "$KUBE_VERSION" "$CHART" "${args[@]}" >"$work/lint.out" 2>&1 ||
    { cat "$work/lint.out" >&2; fail "helm lint --strict ($label)"; }
  log "ok: helm lint --strict ($label)"

  out="$work/$(echo "$label" | tr -c 'a-zA-Z0-9\n' '_').yaml"
  "$HELM" template "$RELEASE" "$CHART" --namespace "$NAMESPACE" --kube-version "$KUBE_VERSION" \
    "${args[@]}" >"$out" 2>"$work/template.err" ||
    { cat "$work/template.err" >&2; fail "helm template ($label)"; }
  [ ! -s "$work/template.err" ] || { cat "$work/template.err" >&2; fail "helm template wrote to stderr ($label)"; }

  python3 "$ROOT/hack/chart_contract.py" check "$CHART/values.yaml" "${values:-}" "$out" "$NAMESPACE" \
    "$work/rules-$RANDOM.yaml" ||
    fail "rendered objects violate the contract ($label)"
  log "ok: helm template + contract checks ($label)"
done

# --- PromQL ---------------------------------------------------------------------------------------
# `check rules` validates every rendered PrometheusRule; `test rules` evaluates the default alerts
# against synthetic series (annotations are stripped there: promtool would compare their full text).
shopt -s nullglob
rule_files=("$work"/rules-*.yaml)
shopt -u nullglob
[ "${#rule_files[@]}" -gt 0 ] ||
  fail "no values set renders a PrometheusRule (a ci/*-values.yaml must enable metrics.prometheusRule)"
"$PROMTOOL" check rules "${rule_files[@]}" >"$work/promtool.out" 2>&1 ||
  { cat "$work/promtool.out" >&2; fail "promtool check rules"; }
log "ok: promtool check rules (${#rule_files[@]} rendered PrometheusRule(s))"

mkdir -p "$work/promtest"
"$HELM" template agentcore-operator "$CHART" --namespace "$NAMESPACE" --kube-version "$KUBE_VERSION" \
  --set metrics.prometheusRule.enabled=true --show-only templates/prometheusrule.yaml |
  python3 "$ROOT/hack/chart_contract.py" strip-annotations >"$work/promtest/rules.yaml" ||
  fail "rendering the default alerts for promtool test rules"
# The tests name `rules.yaml`, which promtool resolves next to the test file.
cp "$ROOT/hack/chart-alerts.test.yaml" "$work/promtest/test.yaml"
(cd "$work/promtest" && "$PROMTOOL" test rules test.yaml) >"$work/promtest.out" 2>&1 ||
  { cat "$work/promtest.out" >&2; fail "promtool test rules"; }
log "ok: promtool test rules: $(grep -c 'alertname:' "$ROOT/hack/chart-alerts.test.yaml") alert checks against synthetic series"

# --- schema rejects -------------------------------------------------------------------------------
# Each of these must make `helm template` fail: typos, static credentials, malformed durations.
rejects=(
  "--set=watchnamespace=typo"
  "--set=aws.accessKeyId=AKIAEXAMPLE"
  "--set=aws.secretAccessKey=example"
  "--set=extraEnv[0].name=AWS_SECRET_ACCESS_KEY,extraEnv[0].value=example"
  "--set=logFormat=xml"
  "--set=pollInterval=15"
  "--set=leaseDuration=15 s"
  "--set=metrics.serviceMonitor.enabeld=true"
  "--set=image.digest=sha256:short"
  "--set=replicaCount=two"
)
for arg in "${rejects[@]}"; do
  if "$HELM" template "$RELEASE" "$CHART" --namespace "$NAMESPACE" --kube-version "$KUBE_VERSION" "$arg" \
    >/dev/null 2>"$work/reject.err"; then
    fail "schema accepted $arg"
  fi
  grep -q "schema" "$work/reject.err" || { cat "$work/reject.err" >&2; fail "$arg failed, but not by the schema"; }
done
log "ok: schema rejects ${#rejects[@]} invalid values"

log "all chart checks passed"
