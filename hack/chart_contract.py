#!/usr/bin/env python3
"""The chart's contract checks, run by hack/test-chart.sh on every rendered values set.

`check`: the objects `helm template` rendered must match the operator's interface: its flags and
environment, least-privilege RBAC (exactly the table in charts/agentcore-operator/README.md#rbac),
leader election, probes, the restricted Pod Security Standard, and the optional objects following
their values. Writes the rendered PrometheusRule's spec to RULES_OUT for promtool.

`strip-annotations`: reads a rendered PrometheusRule on stdin and writes its spec without the
alerts' annotations, for `promtool test rules` (which would otherwise compare their full text).

Exits non-zero with one line per violation.
"""
import argparse
import sys

import yaml


def merge(base, override):
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            merge(base[key], value)
        else:
            base[key] = value
    return base


# Exactly what charts/agentcore-operator/README.md#rbac grants the reconciler; nothing more, nothing less.
RECONCILER = {
    # create and delete: the runs of BatchEvaluationSchedules (and their history limits).
    ("evals.agentcore.dev", "batchevaluations"): {"get", "list", "watch", "patch", "update", "create", "delete"},
    ("evals.agentcore.dev", "batchevaluationschedules"): {"get", "list", "watch", "patch"},
    ("evals.agentcore.dev", "batchevaluationschedules/status"): {"get", "patch"},
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


def check_contract(defaults_path, override_path, rendered_path, namespace, rules_out):
    """Returns the violations of the contract, one message each."""
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
        aggregated = lambda r: any(k.startswith("rbac.authorization.k8s.io/aggregate-to-")
                                   for k in (r["metadata"].get("labels") or {}))
        user_roles = [r for r in of_kind("ClusterRole") if aggregated(r)]
        reconciler_roles = [r for r in of_kind("ClusterRole") + of_kind("Role") if r not in lease_roles and r not in user_roles]
        # Roles for namespace users: BatchEvaluations only, never their status (where the operator
        # records the job id and the IAM role cleanup acts with), and view is read-only.
        expected_user_roles = 2 if values["rbac"].get("aggregateToUserRoles", True) else 0
        check(len(user_roles) == expected_user_roles, f"expected {expected_user_roles} aggregated user roles, got {len(user_roles)}")
        for r in user_roles:
            grants = flatten(r["rules"])
            check(all(group == "evals.agentcore.dev" for group, _ in grants), f"{name_of(r)} grants outside evals.agentcore.dev: {grants}")
            labels = r["metadata"]["labels"]
            if labels.get("rbac.authorization.k8s.io/aggregate-to-edit") == "true":
                check(("evals.agentcore.dev", "batchevaluations/status") not in grants
                      and ("evals.agentcore.dev", "batchevaluationschedules/status") not in grants,
                      f"{name_of(r)} lets namespace editors write the status the operator's cleanup trusts")
            else:
                check(all(set(v) <= {"get", "list", "watch"} for v in grants.values()), f"{name_of(r)} must be read-only")
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
    # BatchEvaluations and BatchEvaluationSchedules and nothing else, the operator's image running
    # `cleanup`, restricted pod.
    want_hooks = values["uninstallCleanup"]["enabled"]
    check(bool(hooks) == want_hooks, f"uninstall hook rendered={bool(hooks)}, expected {want_hooks}")
    if hooks:
        check(all(h["metadata"]["annotations"]["helm.sh/hook"] == "pre-delete" for h in hooks), "hooks must be pre-delete only")
        hook_jobs = [h for h in hooks if h["kind"] == "Job"]
        check(len(hook_jobs) == 1, f"expected one hook Job, got {len(hook_jobs)}")
        hook_roles = [h for h in hooks if h["kind"] in {"Role", "ClusterRole"}]
        check(len(hook_roles) == 1 and flatten(hook_roles[0]["rules"]) == {("evals.agentcore.dev", "batchevaluations"): {"list", "delete"},
                                                                          ("evals.agentcore.dev", "batchevaluationschedules"): {"list", "delete"}},
              f"the hook role grants exactly list+delete on batchevaluations and batchevaluationschedules: {[flatten(r['rules']) for r in hook_roles]}")
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

    return errors


def strip_annotations():
    spec = yaml.safe_load(sys.stdin)["spec"]
    for group in spec["groups"]:
        for rule in group["rules"]:
            rule.pop("annotations", None)
    yaml.safe_dump(spec, sys.stdout)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    c = sub.add_parser("check", help="check rendered objects against the contract")
    c.add_argument("values", help="the chart's values.yaml")
    c.add_argument("override", help="a ci/*-values.yaml merged over it, or '' for the defaults")
    c.add_argument("rendered", help="the output of helm template")
    c.add_argument("namespace", help="the release namespace")
    c.add_argument("rules_out", help="where to write the rendered PrometheusRule's spec, if any")
    sub.add_parser("strip-annotations", help="PrometheusRule on stdin -> spec without annotations on stdout")
    args = parser.parse_args()
    if args.command == "strip-annotations":
        strip_annotations()
        return
    errors = check_contract(args.values, args.override, args.rendered, args.namespace, args.rules_out)
    for e in errors:
        print(f"  - {e}", file=sys.stderr)
    sys.exit(1 if errors else 0)


if __name__ == "__main__":
    main()
