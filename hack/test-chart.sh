#!/usr/bin/env bash
# Lints and renders charts/agentcore-operator with its default values and with every
# ci/*-values.yaml, then checks the rendered objects against the operator's contract
# (flags, least-privilege RBAC, leader election, probes, restricted securityContext) and checks that
# values.schema.json rejects what it must. Exits non-zero on the first failure.
#
# Needs: helm v3 (env HELM, else the newest $AGENTCORE_TOOLS_DIR/helm-*/helm), python3 with PyYAML.
# Optional: promtool (env PROMTOOL or PATH) to check the PrometheusRule and unit-test its alerts.
#
# No cluster is contacted. `helm template` runs without --api-versions on purpose: the
# ServiceMonitor and PrometheusRule are gated on values, not on the cluster's APIs.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CHART="$ROOT/charts/agentcore-operator"
TOOLS_DIR="${AGENTCORE_TOOLS_DIR:-$HOME/.cache/agentcore-operator/tools}"
# Helm built with `go install` has no version ldflags and assumes Kubernetes v1.20, which the
# chart's kubeVersion (>=1.30) refuses; pin the version the test control plane runs.
KUBE_VERSION="${KUBE_VERSION:-v1.34.4}"
RELEASE="${RELEASE:-agentcore-operator}"
NAMESPACE="${NAMESPACE:-agentcore-system}"

log() { echo "test-chart: $*" >&2; }
fail() { log "FAIL: $*"; exit 1; }

find_helm() {
  if [ -n "${HELM:-}" ]; then
    [ -x "$HELM" ] || fail "HELM=$HELM is not an executable file"
    echo "$HELM"
    return
  fi
  local found
  found="$(compgen -G "$TOOLS_DIR/helm-*/helm" | sort -V | tail -n 1 || true)"
  [ -n "$found" ] || fail "no helm: set HELM=/path/to/helm or build one into $TOOLS_DIR/helm-<version>/helm"
  echo "$found"
}

HELM="$(find_helm)"
log "helm: $HELM ($("$HELM" version --short 2>/dev/null || echo unknown version))"
python3 -c 'import yaml' 2>/dev/null || fail "python3 with PyYAML is required for the rendered-object checks"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# --- CRD copy -------------------------------------------------------------------------------------
# The chart ships the generated CRD byte for byte; it is never hand-written.
crd_name="evals.agentcore.dev_batchevaluations.yaml"
canonical="$ROOT/crds/$crd_name"
chart_crd="$CHART/crds/$crd_name"
if [ -f "$canonical" ]; then
  [ -f "$chart_crd" ] || fail "chart CRD missing; run: cp crds/$crd_name charts/agentcore-operator/crds/"
  cmp -s "$canonical" "$chart_crd" ||
    fail "charts/agentcore-operator/crds/$crd_name differs from crds/$crd_name; run: cp crds/$crd_name charts/agentcore-operator/crds/"
  log "ok: chart CRD is byte-identical to crds/$crd_name"
else
  [ ! -f "$chart_crd" ] || fail "chart has a CRD but crds/$crd_name does not exist: the chart copy must come from it"
  log "SKIP: crds/$crd_name does not exist yet, CRD equality not checked"
fi

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

  python3 - "$CHART/values.yaml" "${values:-}" "$out" "$RELEASE" "$NAMESPACE" "$work/rules-$RANDOM.yaml" <<'PY' ||
import sys
import yaml

defaults_path, override_path, rendered_path, release, namespace, rules_out = sys.argv[1:7]


def merge(base, override):
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            merge(base[key], value)
        else:
            base[key] = value
    return base


with open(defaults_path) as f:
    values = yaml.safe_load(f)
if override_path:
    with open(override_path) as f:
        merge(values, yaml.safe_load(f) or {})
with open(rendered_path) as f:
    docs = [d for d in yaml.safe_load_all(f) if d]
# Hook objects (the uninstall cleanup) exist only while `helm uninstall` runs; the operator's
# contract below is about the release's own objects, the hooks have theirs at the end.
hooks = [d for d in docs if "helm.sh/hook" in (d["metadata"].get("annotations") or {})]
docs = [d for d in docs if d not in hooks]

errors = []


def check(cond, msg):
    if not cond:
        errors.append(msg)


def of_kind(kind):
    return [d for d in docs if d["kind"] == kind]


def name_of(d):
    return d["metadata"]["name"]


watch_ns = values["watchNamespace"]
replicas = values["replicaCount"]

# Exactly what OPERATOR-INTERFACE.md grants the reconciler; nothing more, nothing less.
RECONCILER = {
    ("evals.agentcore.dev", "batchevaluations"): {"get", "list", "watch", "patch", "update"},
    ("evals.agentcore.dev", "batchevaluations/status"): {"get", "patch", "update"},
    ("evals.agentcore.dev", "batchevaluations/finalizers"): {"update"},
    ("events.k8s.io", "events"): {"create", "patch"},
}
LEASE_VERBS = {"get", "create", "update", "patch"}


def flatten(rules):
    grants = {}
    for r in rules:
        for g in r.get("apiGroups", []):
            for res in r.get("resources", []):
                grants.setdefault((g, res), set()).update(r.get("verbs", []))
    return grants


kinds = {d["kind"] for d in docs}
check(not kinds & {"Secret", "ConfigMap", "BatchEvaluation", "CustomResourceDefinition"},
      f"unexpected kinds rendered: {sorted(kinds & {'Secret', 'ConfigMap', 'BatchEvaluation', 'CustomResourceDefinition'})}")

cluster_scoped = {"ClusterRole", "ClusterRoleBinding"}
for d in docs:
    if d["kind"] in cluster_scoped:
        check("namespace" not in d["metadata"], f"{d['kind']}/{name_of(d)} is cluster-scoped but has a namespace")
    else:
        ns = d["metadata"].get("namespace")
        allowed = {namespace} | ({watch_ns} if watch_ns and d["kind"] in {"Role", "RoleBinding"} else set())
        check(ns in allowed, f"{d['kind']}/{name_of(d)} has namespace {ns!r}, expected one of {sorted(allowed)}")
    for r in d.get("rules", []) if d["kind"] in {"Role", "ClusterRole"} else []:
        for field in ("apiGroups", "resources", "verbs"):
            check("*" not in r.get(field, []), f"{d['kind']}/{name_of(d)} has a wildcard in {field}")

deployments = of_kind("Deployment")
check(len(deployments) == 1, f"expected 1 Deployment, got {len(deployments)}")
dep = deployments[0]
pod = dep["spec"]["template"]["spec"]
sa_name = pod["serviceAccountName"]
containers = pod["containers"]
check(len(containers) == 1, "expected one container")
c = containers[0]
cargs = c["args"]
flags = dict(a.split("=", 1) for a in cargs[1:] if a.startswith("--") and "=" in a)
check(cargs[0] == "run", f"first arg must be the run subcommand, got {cargs[0]!r}")
check("--leader-election" in cargs, "--leader-election missing")
check(flags.get("--lease-namespace") == namespace, f"--lease-namespace={flags.get('--lease-namespace')!r}")
lease_name = flags.get("--lease-name")
check(bool(lease_name), "--lease-name missing")
check(flags.get("--namespace") == (watch_ns or None), f"--namespace={flags.get('--namespace')!r}, watchNamespace={watch_ns!r}")
check(flags.get("--metrics-addr") == f"0.0.0.0:{values['metrics']['port']}", "--metrics-addr does not match metrics.port")
for flag, key in (("--poll-interval", "pollInterval"), ("--lease-duration", "leaseDuration"),
                  ("--log-format", "logFormat"), ("--max-concurrent-reconciles", "maxConcurrentReconciles")):
    check(flags.get(flag) == str(values[key]), f"{flag}={flags.get(flag)!r}, values.{key}={values[key]!r}")
check(flags.get("--aws-region") == (values["aws"]["region"] or None), "--aws-region does not follow aws.region")
check(flags.get("--aws-endpoint-url") == (values["aws"]["endpointUrl"] or None), "--aws-endpoint-url does not follow aws.endpointUrl")
check(len(set(a.split("=", 1)[0] for a in cargs)) == len(cargs), f"a flag is repeated: {cargs}")

env = {e["name"]: e for e in c.get("env", [])}
for var, path in (("POD_NAME", "metadata.name"), ("POD_NAMESPACE", "metadata.namespace")):
    check(env.get(var, {}).get("valueFrom", {}).get("fieldRef", {}).get("fieldPath") == path,
          f"{var} must come from the downward API ({path})")
check(not set(env) & {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"}, "static AWS keys in env")

ports = {p["name"]: p["containerPort"] for p in c["ports"]}
check(ports.get("metrics") == values["metrics"]["port"], "container port 'metrics' missing or wrong")
check(c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}, "liveness probe must be /healthz on metrics")
check(c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}, "readiness probe must be /readyz on metrics")

# Restricted Pod Security Standard.
psc, csc = pod.get("securityContext", {}), c.get("securityContext", {})
check(psc.get("runAsNonRoot") is True or csc.get("runAsNonRoot") is True, "runAsNonRoot not set")
check(csc.get("allowPrivilegeEscalation") is False, "allowPrivilegeEscalation must be false")
check(csc.get("readOnlyRootFilesystem") is True, "readOnlyRootFilesystem must be true")
check(csc.get("capabilities", {}).get("drop") == ["ALL"], "capabilities must drop ALL")
check((csc.get("seccompProfile") or psc.get("seccompProfile") or {}).get("type") == "RuntimeDefault", "seccompProfile must be RuntimeDefault")
check(pod.get("automountServiceAccountToken") is True, "the operator needs its ServiceAccount token")
check(dep["spec"]["replicas"] == replicas, "replicas does not follow replicaCount")

# ServiceAccount and every binding point at the same identity.
if values["serviceAccount"]["create"]:
    sas = of_kind("ServiceAccount")
    check([name_of(s) for s in sas] == [sa_name], f"ServiceAccount {sa_name} not rendered exactly once")
bindings = of_kind("ClusterRoleBinding") + of_kind("RoleBinding")
for b in bindings:
    check(b["subjects"] == [{"kind": "ServiceAccount", "name": sa_name, "namespace": namespace}],
          f"{b['kind']}/{name_of(b)} does not bind exactly the operator ServiceAccount")

if values["rbac"]["create"]:
    roles = {(d["kind"], d["metadata"].get("namespace"), name_of(d)): d for d in of_kind("ClusterRole") + of_kind("Role")}
    for b in bindings:
        ref = b["roleRef"]
        key = (ref["kind"], None if ref["kind"] == "ClusterRole" else b["metadata"]["namespace"], ref["name"])
        check(key in roles, f"{b['kind']}/{name_of(b)} refers to missing {key}")

    lease_roles = [r for r in of_kind("Role") if any("coordination.k8s.io" in x.get("apiGroups", []) for x in r["rules"])]
    reconciler_roles = [r for r in of_kind("ClusterRole") + of_kind("Role") if r not in lease_roles]
    check(len(lease_roles) == 1, f"expected one lease Role, got {len(lease_roles)}")
    if lease_roles:
        lr = lease_roles[0]
        check(lr["metadata"]["namespace"] == namespace, "lease Role must live in the release namespace")
        grants = flatten(lr["rules"])
        check(set(grants) == {("coordination.k8s.io", "leases")} and grants[("coordination.k8s.io", "leases")] == LEASE_VERBS,
              f"lease Role grants {grants}, expected leases {sorted(LEASE_VERBS)}")
        for r in lr["rules"]:
            if set(r["verbs"]) - {"create"}:
                check(r.get("resourceNames") == [lease_name], f"lease get/update/patch must be limited to {lease_name!r}")
    check(len(reconciler_roles) == 1, f"expected one reconciler role, got {[(r['kind'], name_of(r)) for r in reconciler_roles]}")
    if reconciler_roles:
        rr = reconciler_roles[0]
        if watch_ns:
            check(rr["kind"] == "Role" and rr["metadata"]["namespace"] == watch_ns, "watchNamespace set: reconciler must be a Role there")
        else:
            check(rr["kind"] == "ClusterRole", "all namespaces: reconciler must be a ClusterRole")
        check(flatten(rr["rules"]) == RECONCILER, f"reconciler grants {flatten(rr['rules'])} != contract {RECONCILER}")
else:
    check(not kinds & {"Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding"}, "rbac.create=false still renders RBAC")

services = of_kind("Service")
check(len(services) == 1 and services[0]["spec"]["type"] == "ClusterIP", "expected one ClusterIP metrics Service")
if services:
    sp = services[0]["spec"]["ports"]
    check(sp == [{"name": "metrics", "port": values["metrics"]["port"], "targetPort": "metrics", "protocol": "TCP"}],
          f"metrics Service ports {sp}")

want_pdb = values["podDisruptionBudget"]["enabled"] and replicas > 1
check(bool(of_kind("PodDisruptionBudget")) == want_pdb, f"PodDisruptionBudget rendered={not want_pdb}, expected {want_pdb}")
check(bool(of_kind("ServiceMonitor")) == values["metrics"]["serviceMonitor"]["enabled"], "ServiceMonitor does not follow its value")
rules = of_kind("PrometheusRule")
check(bool(rules) == values["metrics"]["prometheusRule"]["enabled"], "PrometheusRule does not follow its value")
if rules:
    with open(rules_out, "w") as f:
        yaml.safe_dump(rules[0]["spec"], f)

# The uninstall cleanup hook: pre-delete only, its own identity that may list and delete
# BatchEvaluations and nothing else, the operator's image running `cleanup`, restricted pod.
want_hooks = values["uninstallCleanup"]["enabled"]
check(bool(hooks) == want_hooks, f"uninstall hook rendered={bool(hooks)}, expected {want_hooks}")
if hooks:
    check(all(h["metadata"]["annotations"]["helm.sh/hook"] == "pre-delete" for h in hooks), "hooks must be pre-delete only")
    hook_jobs = [h for h in hooks if h["kind"] == "Job"]
    check(len(hook_jobs) == 1, f"expected one hook Job, got {len(hook_jobs)}")
    hook_roles = [h for h in hooks if h["kind"] in {"Role", "ClusterRole"}]
    check(len(hook_roles) == 1 and flatten(hook_roles[0]["rules"]) == {("evals.agentcore.dev", "batchevaluations"): {"list", "delete"}},
          f"the hook role grants exactly list+delete on batchevaluations: {[flatten(r['rules']) for r in hook_roles]}")
    if hook_jobs:
        jp = hook_jobs[0]["spec"]["template"]["spec"]
        jc = jp["containers"][0]
        check(jc["image"] == c["image"], "the hook runs the operator's image")
        check(jc["args"][0] == "cleanup", f"the hook runs `cleanup`: {jc['args']}")
        check(jp["restartPolicy"] == "Never" and hook_jobs[0]["spec"]["backoffLimit"] == 0, "the hook runs once")
        hsc = jc.get("securityContext", {})
        check(hsc.get("allowPrivilegeEscalation") is False and hsc.get("capabilities", {}).get("drop") == ["ALL"]
              and hsc.get("readOnlyRootFilesystem") is True, "the hook container is restricted")
        hook_bindings = [h for h in hooks if h["kind"] in {"RoleBinding", "ClusterRoleBinding"}]
        check(len(hook_bindings) == 1 and hook_bindings[0]["subjects"][0]["name"] == jp["serviceAccountName"] != sa_name,
              "the hook binds its own ServiceAccount, never the operator's")
        if watch_ns:
            check(jc["args"].count(f"--namespace={watch_ns}") == 1, "a namespaced install cleans only its namespace")

if errors:
    for e in errors:
        print(f"  - {e}", file=sys.stderr)
    sys.exit(1)
PY
    fail "rendered objects violate the contract ($label)"
  log "ok: helm template + contract checks ($label)"
done

# --- PromQL ---------------------------------------------------------------------------------------
# `check rules` validates every rendered PrometheusRule; `test rules` evaluates the default alerts
# against synthetic series (annotations are stripped there: promtool would compare their full text).
PROMTOOL="${PROMTOOL:-$(command -v promtool || true)}"
shopt -s nullglob
rule_files=("$work"/rules-*.yaml)
if [ -n "$PROMTOOL" ] && [ "${#rule_files[@]}" -gt 0 ]; then
  "$PROMTOOL" check rules "${rule_files[@]}" >"$work/promtool.out" 2>&1 ||
    { cat "$work/promtool.out" >&2; fail "promtool check rules"; }
  log "ok: promtool check rules (${#rule_files[@]} rendered PrometheusRule(s))"

  mkdir -p "$work/promtest"
  "$HELM" template agentcore-operator "$CHART" --namespace "$NAMESPACE" --kube-version "$KUBE_VERSION" \
    --set metrics.prometheusRule.enabled=true --show-only templates/prometheusrule.yaml |
    python3 -c '
import sys, yaml
spec = yaml.safe_load(sys.stdin)["spec"]
for group in spec["groups"]:
    for rule in group["rules"]:
        rule.pop("annotations", None)
yaml.safe_dump(spec, open(sys.argv[1], "w"))
' "$work/promtest/rules.yaml"
  cat >"$work/promtest/test.yaml" <<'TESTS'
rule_files: [rules.yaml]
evaluation_interval: 1m
tests:
  # Age grows 60 s per minute: above 900 s from 16m, firing 5m later. e2 is young; e3 belongs to
  # another job and must not match the default selector.
  - interval: 1m
    input_series:
      - series: 'agentcore_operator_deleting_object_age_seconds{job="agentcore-operator-metrics",namespace="team-a",name="e1",pod="p1"}'
        values: '0+60x40'
      - series: 'agentcore_operator_deleting_object_age_seconds{job="agentcore-operator-metrics",namespace="team-a",name="e2",pod="p1"}'
        values: '0+10x40'
      - series: 'agentcore_operator_deleting_object_age_seconds{job="someone-else",namespace="team-a",name="e3",pod="p9"}'
        values: '0+60x40'
    alert_rule_test:
      - eval_time: 18m
        alertname: BatchEvaluationDeletionStuck
        exp_alerts: []
      - eval_time: 25m
        alertname: BatchEvaluationDeletionStuck
        exp_alerts:
          - exp_labels: {severity: warning, namespace: team-a, name: e1}
  # Only the evaluator below its object's threshold fires; two replicas exposing the same series
  # must not break the one-to-one match; objects without a threshold never fire.
  - interval: 1m
    input_series:
      - series: 'agentcore_operator_evaluation_average_score{job="agentcore-operator-metrics",namespace="team-a",name="e1",evaluator="Builtin.Helpfulness",pod="p1"}'
        values: '0.5x20'
      - series: 'agentcore_operator_evaluation_average_score{job="agentcore-operator-metrics",namespace="team-a",name="e1",evaluator="Builtin.Helpfulness",pod="p2"}'
        values: '0.5x20'
      - series: 'agentcore_operator_evaluation_average_score{job="agentcore-operator-metrics",namespace="team-a",name="e1",evaluator="Builtin.GoalSuccessRate",pod="p1"}'
        values: '0.9x20'
      - series: 'agentcore_operator_evaluation_score_threshold{job="agentcore-operator-metrics",namespace="team-a",name="e1",pod="p1"}'
        values: '0.7x20'
      - series: 'agentcore_operator_evaluation_score_threshold{job="agentcore-operator-metrics",namespace="team-a",name="e1",pod="p2"}'
        values: '0.7x20'
      - series: 'agentcore_operator_evaluation_average_score{job="agentcore-operator-metrics",namespace="team-b",name="no-threshold",evaluator="Builtin.Helpfulness",pod="p1"}'
        values: '0.1x20'
    alert_rule_test:
      - eval_time: 3m
        alertname: BatchEvaluationScoreBelowThreshold
        exp_alerts: []
      - eval_time: 10m
        alertname: BatchEvaluationScoreBelowThreshold
        exp_alerts:
          - exp_labels: {severity: warning, namespace: team-a, name: e1, evaluator: Builtin.Helpfulness}
  # Leader lost at 2m by both replicas.
  - interval: 1m
    input_series:
      - series: 'agentcore_operator_leader{job="agentcore-operator-metrics",pod="p1"}'
        values: '1 1 0x20'
      - series: 'agentcore_operator_leader{job="agentcore-operator-metrics",pod="p2"}'
        values: '0x22'
    alert_rule_test:
      - eval_time: 4m
        alertname: AgentCoreOperatorNoLeader
        exp_alerts: []
      - eval_time: 10m
        alertname: AgentCoreOperatorNoLeader
        exp_alerts:
          - exp_labels: {severity: critical}
  # One replica leads.
  - interval: 1m
    input_series:
      - series: 'agentcore_operator_leader{job="agentcore-operator-metrics",pod="p1"}'
        values: '1x20'
      - series: 'agentcore_operator_leader{job="agentcore-operator-metrics",pod="p2"}'
        values: '0x20'
    alert_rule_test:
      - eval_time: 15m
        alertname: AgentCoreOperatorNoLeader
        exp_alerts: []
  # No replica scraped at all.
  - interval: 1m
    input_series:
      - series: 'up{job="agentcore-operator-metrics"}'
        values: '0x20'
    alert_rule_test:
      - eval_time: 10m
        alertname: AgentCoreOperatorNoLeader
        exp_alerts:
          - exp_labels: {severity: critical, job: agentcore-operator-metrics}
  # A third of GetBatchEvaluation calls throttled (Start is fine); one AccessDenied on Stop at 5m.
  - interval: 1m
    input_series:
      - series: 'agentcore_operator_aws_requests_total{job="agentcore-operator-metrics",operation="GetBatchEvaluation",outcome="ThrottlingException"}'
        values: '0+5x60'
      - series: 'agentcore_operator_aws_requests_total{job="agentcore-operator-metrics",operation="GetBatchEvaluation",outcome="success"}'
        values: '0+10x60'
      - series: 'agentcore_operator_aws_requests_total{job="agentcore-operator-metrics",operation="StartBatchEvaluation",outcome="success"}'
        values: '0+10x60'
      - series: 'agentcore_operator_aws_requests_total{job="agentcore-operator-metrics",operation="StopBatchEvaluation",outcome="AccessDeniedException"}'
        values: '0x4 1x25'
    alert_rule_test:
      - eval_time: 10m
        alertname: AgentCoreAWSThrottling
        exp_alerts: []
      - eval_time: 30m
        alertname: AgentCoreAWSThrottling
        exp_alerts:
          - exp_labels: {severity: warning, operation: GetBatchEvaluation}
      - eval_time: 12m
        alertname: AgentCoreAWSAccessDenied
        exp_alerts:
          - exp_labels: {severity: critical, operation: StopBatchEvaluation, outcome: AccessDeniedException}
      - eval_time: 25m
        alertname: AgentCoreAWSAccessDenied
        exp_alerts: []
  # 20 % of reconciles fail.
  - interval: 1m
    input_series:
      - series: 'agentcore_operator_reconciles_total{job="agentcore-operator-metrics",result="error",reason="Throttled"}'
        values: '0+2x60'
      - series: 'agentcore_operator_reconciles_total{job="agentcore-operator-metrics",result="success",reason="Poll"}'
        values: '0+8x60'
    alert_rule_test:
      - eval_time: 10m
        alertname: AgentCoreOperatorReconcileErrorsHigh
        exp_alerts: []
      - eval_time: 30m
        alertname: AgentCoreOperatorReconcileErrorsHigh
        exp_alerts:
          - exp_labels: {severity: warning}
TESTS
  (cd "$work/promtest" && "$PROMTOOL" test rules test.yaml) >"$work/promtest.out" 2>&1 ||
    { cat "$work/promtest.out" >&2; fail "promtool test rules"; }
  log "ok: promtool test rules (default alerts against synthetic series)"
else
  log "SKIP: promtool not found (set PROMTOOL); PromQL not checked"
fi

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
