//! Production operation on a real kube-apiserver: the Helm chart installs and its rendered
//! objects pass server-side validation, the chart's RBAC is enough for a whole lifecycle and no
//! more, leader election fails over without starting anything twice, SIGTERM releases the lease,
//! and the health and metrics endpoints answer.

mod support;

use std::time::{Duration, Instant};

use agentcore_testenv::{
    ControlPlane, ControlPlaneOptions, Identity, OPERATOR_NAMESPACE, OPERATOR_USER,
    OperatorProcess, wait_until, wait_until_ok,
};
use anyhow::{Context as _, bail, ensure};
use support::{
    Env, EnvOptions, RELEASE,
    faults::runs,
    free_port, helm_template, manifest,
    metrics::{aws_operations, scrape, scrape_until},
    object::status_str,
    repo_path, start_operator,
};

const LONG: Duration = Duration::from_secs(90);

/// Kinds whose CRDs (Prometheus Operator) are not installed on the test plane; everything else
/// the chart renders is validated by the apiserver.
const UNAVAILABLE_KINDS: [&str; 2] = ["ServiceMonitor", "PrometheusRule"];

fn without_unavailable_kinds(rendered: &str) -> String {
    rendered
        .split("\n---")
        .filter(|doc| {
            !UNAVAILABLE_KINDS
                .iter()
                .any(|k| doc.contains(&format!("\nkind: {k}\n")))
        })
        .collect::<Vec<_>>()
        .join("\n---")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn chart_installs_and_its_rbac_is_enough_and_no_more() -> anyhow::Result<()> {
    let plane = ControlPlane::start(ControlPlaneOptions::default()).await?;
    plane
        .kubectl_ok(["create", "namespace", OPERATOR_NAMESPACE])
        .await?;
    plane.kubectl_ok(["create", "namespace", "team-a"]).await?;
    plane
        .install_crd(repo_path("crds/evals.agentcore.dev_batchevaluations.yaml"))
        .await?;

    // helm template for default and non-default values, each validated by the apiserver.
    for values in [
        None,
        Some("ci/namespaced-values.yaml"),
        Some("ci/irsa-values.yaml"),
    ] {
        let mut extra = Vec::new();
        let path;
        if let Some(v) = values {
            path = repo_path("charts/agentcore-operator")
                .join(v)
                .display()
                .to_string();
            extra.extend(["-f", path.as_str()]);
        }
        let rendered = helm_template(&extra).await?;
        let checked = without_unavailable_kinds(&rendered);
        ensure!(
            checked.contains("kind: Deployment"),
            "{values:?}: nothing rendered"
        );
        let out = plane
            .apply_yaml_with(&["--dry-run=server"], &checked)
            .await
            .with_context(|| format!("server-side dry run of the chart with {values:?}"))?;
        ensure!(out.contains("(server dry run)"), "{values:?}: {out}");
    }

    // helm install for real (default values) into the plane.
    let helm = agentcore_testenv::ensure_helm().await?;
    let out = tokio::process::Command::new(&helm)
        .args(["install", RELEASE])
        .arg(repo_path("charts/agentcore-operator"))
        .args(["--namespace", OPERATOR_NAMESPACE, "--kubeconfig"])
        .arg(plane.admin_kubeconfig())
        .args(["--set", "aws.region=us-west-2"])
        .output()
        .await?;
    ensure!(
        out.status.success(),
        "helm install: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let deployment = plane
        .kubectl_ok([
            "get",
            "deployment",
            RELEASE,
            "-n",
            OPERATOR_NAMESPACE,
            "-o",
            "jsonpath={.spec.replicas}",
        ])
        .await?;
    ensure!(
        deployment == "2",
        "two replicas by default, got {deployment:?}"
    );
    plane
        .kubectl_ok([
            "get",
            "poddisruptionbudget",
            RELEASE,
            "-n",
            OPERATOR_NAMESPACE,
        ])
        .await?;

    // What the identity may and may not do, asked of the apiserver's own authorizer.
    let can = |verb: &'static str, resource: &'static str, ns: Option<&'static str>| {
        let plane = &plane;
        async move {
            let mut args = vec!["auth", "can-i", verb, resource];
            match ns {
                Some(ns) => args.extend(["-n", ns]),
                None => args.push("--all-namespaces"),
            }
            let out = plane
                .kubectl_as(Identity::Operator)
                .args(&args)
                .output()
                .await?;
            Ok::<_, anyhow::Error>(String::from_utf8_lossy(&out.stdout).trim() == "yes")
        }
    };
    for (verb, resource, ns) in [
        ("watch", "batchevaluations.evals.agentcore.dev", None),
        ("patch", "batchevaluations.evals.agentcore.dev/status", None),
        (
            "update",
            "batchevaluations.evals.agentcore.dev/finalizers",
            None,
        ),
        ("create", "events.events.k8s.io", Some("default")),
        (
            "create",
            "leases.coordination.k8s.io",
            Some(OPERATOR_NAMESPACE),
        ),
        // The runs of BatchEvaluationSchedules, and their history limits.
        (
            "create",
            "batchevaluations.evals.agentcore.dev",
            Some("default"),
        ),
        (
            "delete",
            "batchevaluations.evals.agentcore.dev",
            Some("default"),
        ),
        (
            "watch",
            "batchevaluationschedules.evals.agentcore.dev",
            None,
        ),
        (
            "patch",
            "batchevaluationschedules.evals.agentcore.dev/status",
            None,
        ),
    ] {
        ensure!(
            can(verb, resource, ns).await?,
            "{OPERATOR_USER} must be allowed to {verb} {resource}"
        );
    }
    for (verb, resource, ns) in [
        ("get", "secrets", Some(OPERATOR_NAMESPACE)),
        ("list", "secrets", None),
        ("get", "configmaps", Some("default")),
        ("create", "pods", Some("default")),
        (
            "create",
            "batchevaluationschedules.evals.agentcore.dev",
            Some("default"),
        ),
        (
            "delete",
            "batchevaluationschedules.evals.agentcore.dev",
            Some("default"),
        ),
        ("create", "leases.coordination.k8s.io", Some("default")),
        (
            "delete",
            "customresourcedefinitions.apiextensions.k8s.io",
            None,
        ),
        ("create", "events", Some("default")),
    ] {
        ensure!(
            !can(verb, resource, ns).await?,
            "{OPERATOR_USER} must NOT be allowed to {verb} {resource}"
        );
    }
    // A real request, not only the authorizer's opinion.
    let denied = plane
        .kubectl_ok_as(
            Identity::Operator,
            ["get", "secrets", "-n", OPERATOR_NAMESPACE],
        )
        .await;
    ensure!(
        format!("{denied:?}").contains("Forbidden"),
        "reading Secrets is forbidden: {denied:?}"
    );

    // The operator, with exactly the installed chart's identity, completes create → delete.
    let emulator = agentcore_emulator::start(EnvOptions::default().emulator).await?;
    let operator = start_operator(
        &plane,
        &emulator,
        "operator",
        &[
            "--leader-election",
            "--lease-name",
            RELEASE,
            "--lease-namespace",
            OPERATOR_NAMESPACE,
        ]
        .map(ToOwned::to_owned),
    )?;
    plane
        .apply_yaml(&manifest("default", "rbac-proof", "", &[]))
        .await?;
    plane
        .kubectl_ok([
            "wait",
            "--for=condition=Ready",
            "beval/rbac-proof",
            "--timeout=90s",
        ])
        .await
        .with_context(|| {
            format!(
                "lifecycle under the chart's RBAC; log {}",
                operator.log_path().display()
            )
        })?;
    plane
        .kubectl_ok(["delete", "beval", "rbac-proof", "--timeout=90s"])
        .await?;
    let log = operator.log_contents()?;
    ensure!(
        !log.contains("Forbidden") && !log.contains("forbidden"),
        "no permission errors:\n{log}"
    );
    ensure!(
        emulator
            .jobs()
            .iter()
            .all(agentcore_emulator::JobInfo::is_gone),
        "the job was cleaned up"
    );
    Ok(())
}

/// The lease's holder; `""` while nobody holds it, or while the API server does not answer.
async fn lease_holder(env: &Env) -> anyhow::Result<String> {
    Ok(read_lease_holder(env).await.unwrap_or_default())
}

async fn read_lease_holder(env: &Env) -> anyhow::Result<String> {
    env.kubectl(&[
        "get",
        "lease",
        RELEASE,
        "-n",
        OPERATOR_NAMESPACE,
        "-o",
        "jsonpath={.spec.holderIdentity}",
    ])
    .await
}

/// Applies `ha/{prefix}-0` to `ha/{prefix}-3`.
async fn apply_four(env: &Env, prefix: &str, tags: &[(&str, &str)]) -> anyhow::Result<()> {
    for i in 0..4 {
        env.apply(&manifest("ha", &format!("{prefix}-{i}"), "", tags))
            .await?;
    }
    Ok(())
}

/// Waits until each of `ha/{prefix}-0` to `ha/{prefix}-3` satisfies `check`.
async fn wait_four(
    env: &Env,
    prefix: &str,
    what: &str,
    check: impl Fn(&serde_json::Value) -> bool,
) -> anyhow::Result<()> {
    for i in 0..4 {
        env.wait_for("ha", &format!("{prefix}-{i}"), what, LONG, &check)
            .await?;
    }
    Ok(())
}

fn identity_of(op: &OperatorProcess) -> anyhow::Result<String> {
    Ok(format!(
        "agentcore-operator-{}",
        op.pid().context("operator running")?
    ))
}

async fn wait_for_holder(env: &Env, expected: &str) -> anyhow::Result<()> {
    wait_until_ok(
        "the lease to move",
        LONG,
        Duration::from_millis(200),
        || async {
            let holder = lease_holder(env).await?;
            if holder == expected {
                Ok(())
            } else {
                bail!("holder is {holder:?}, waiting for {expected}")
            }
        },
    )
    .await?;
    Ok(())
}

/// The two replicas: the fixture's operator and a second one.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Replica {
    Fixture,
    Second,
}

impl Replica {
    fn other(self) -> Self {
        match self {
            Self::Fixture => Self::Second,
            Self::Second => Self::Fixture,
        }
    }
    fn of<'a>(self, env: &'a mut Env, second: &'a mut OperatorProcess) -> &'a mut OperatorProcess {
        match self {
            Self::Fixture => &mut env.operator,
            Self::Second => second,
        }
    }
    /// The replica's metrics port.
    fn port(self, env: &Env, second: u16) -> u16 {
        match self {
            Self::Fixture => env.metrics_port,
            Self::Second => second,
        }
    }
}

/// Waits until the operator on `port` serves its metrics and says it is not the leader.
async fn wait_standing_by(port: u16) -> anyhow::Result<()> {
    let standing_by = || async {
        let text = scrape(port).await.ok()?;
        text.lines()
            .any(|l| l == "agentcore_operator_leader 0")
            .then_some(())
    };
    wait_until(
        "the replica to stand by",
        LONG,
        Duration::from_millis(250),
        standing_by,
    )
    .await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn leader_failover_and_graceful_release() -> anyhow::Result<()> {
    const LEASE: Duration = Duration::from_secs(6);
    let lease_args: Vec<String> = [
        "--leader-election",
        "--lease-name",
        RELEASE,
        "--lease-namespace",
        OPERATOR_NAMESPACE,
        "--lease-duration",
        "6s",
    ]
    .map(ToOwned::to_owned)
    .to_vec();
    let mut env = Env::start(EnvOptions {
        operator_args: lease_args.clone(),
        ..EnvOptions::default()
    })
    .await?;
    let second_port = free_port()?;
    let mut second_args = lease_args.clone();
    second_args.extend([
        "--metrics-addr".to_owned(),
        format!("127.0.0.1:{second_port}"),
    ]);
    let mut second = start_operator(&env.plane, &env.emulator, "operator-b", &second_args)?;

    let holder = wait_until_ok("a leader", LONG, Duration::from_millis(250), || async {
        let h = lease_holder(&env).await?;
        if h.is_empty() {
            bail!("no holder yet")
        } else {
            Ok(h)
        }
    })
    .await?;
    let leader = if holder == identity_of(&env.operator)? {
        Replica::Fixture
    } else {
        Replica::Second
    };
    ensure!(
        holder == identity_of(leader.of(&mut env, &mut second))?,
        "the holder is one of the replicas: {holder}"
    );
    let standby = leader.other();

    env.create_namespace("ha").await?;
    apply_four(&env, "before", &[]).await?;
    wait_four(&env, "before", "Ready under the first leader", |o| {
        status_str(o, "remoteStatus") == Some("COMPLETED")
    })
    .await?;
    let standby_ops = aws_operations(&scrape(standby.port(&env, second_port)).await?);
    ensure!(
        standby_ops == 0,
        "the standby must not reconcile: it made {standby_ops} AWS operations"
    );

    // Crash the leader: the standby takes over once the lease expires.
    let new_holder = identity_of(standby.of(&mut env, &mut second))?;
    leader.of(&mut env, &mut second).kill_hard();
    let killed = Instant::now();
    wait_for_holder(&env, &new_holder).await?;
    let takeover = killed.elapsed();
    println!(
        "leader election: takeover after kill -9 took {takeover:.1?} (lease duration {LEASE:?})"
    );
    ensure!(
        takeover <= LEASE * 2,
        "takeover within about one lease duration, took {takeover:?}"
    );

    apply_four(&env, "after", &[runs("60s")]).await?;
    wait_four(&env, "after", "started under the new leader", |o| {
        status_str(o, "batchEvaluationId").is_some()
    })
    .await?;
    let jobs = env.emulator.jobs();
    ensure!(
        jobs.len() == 8,
        "8 objects, 8 jobs, nothing started twice across the failover: {jobs:?}"
    );

    // Graceful: SIGTERM releases the lease, so the restarted replica takes over at once
    // instead of waiting for expiry.
    leader.of(&mut env, &mut second).restart().await?;
    let comeback = identity_of(leader.of(&mut env, &mut second))?;
    wait_standing_by(leader.port(&env, second_port)).await?;
    let releasing = identity_of(standby.of(&mut env, &mut second))?;
    let stopping = Instant::now();
    let status = standby
        .of(&mut env, &mut second)
        .terminate()
        .await
        .context("leader exit status")?;
    ensure!(
        status.success(),
        "SIGTERM ends the operator cleanly: {status:?}"
    );
    // Released, not left to expire: the exited holder's name is gone from the lease at once.
    let holder = read_lease_holder(&env).await?;
    ensure!(
        holder != releasing,
        "the lease was released on SIGTERM: still held by {holder}"
    );
    wait_for_holder(&env, &comeback).await?;
    println!(
        "leader election: handover after SIGTERM took {:.1?}",
        stopping.elapsed()
    );

    // The new leader finishes the work: deletions complete, nothing is orphaned.
    for prefix in ["before", "after"] {
        for i in 0..4 {
            env.kubectl(&[
                "delete",
                "beval",
                &format!("{prefix}-{i}"),
                "-n",
                "ha",
                "--wait=false",
            ])
            .await?;
        }
    }
    for prefix in ["before", "after"] {
        for i in 0..4 {
            env.wait_gone("ha", &format!("{prefix}-{i}"), LONG).await?;
        }
    }
    let jobs = env.emulator.jobs();
    ensure!(
        jobs.len() == 8 && jobs.iter().all(agentcore_emulator::JobInfo::is_gone),
        "{jobs:?}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn health_and_metrics_endpoints() -> anyhow::Result<()> {
    let port = free_port()?;
    let env = Env::start(EnvOptions {
        operator_args: vec!["--metrics-addr".into(), format!("127.0.0.1:{port}")],
        ..EnvOptions::default()
    })
    .await?;
    env.create_namespace("obs").await?;
    // Scores 0.3: the criterion (0.9) is missed, so the verdict gauge reads 0.
    env.apply(&manifest(
        "obs",
        "scored",
        "  passCriteria:\n    evaluators:\n      - evaluatorId: Builtin.Helpfulness\n        minAverageScore: 0.9\n",
        &[("emulator:score", "0.3")],
    ))
    .await?;
    env.kubectl(&[
        "wait",
        "--for=condition=Ready",
        "beval/scored",
        "-n",
        "obs",
        "--timeout=90s",
    ])
    .await?;
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    for path in ["/healthz", "/readyz"] {
        let response = client.get(format!("{base}{path}")).send().await?;
        let status = response.status();
        let body = response.text().await?;
        ensure!(status.is_success(), "{path}: {status}: {body}");
    }
    let metrics = scrape_until(
        port,
        "score metrics",
        LONG,
        &[
            r#"agentcore_operator_objects{remote_status="COMPLETED"} 1"#,
            "agentcore_operator_evaluation_passed{",
        ],
    )
    .await?;
    for needle in [
        "agentcore_operator_reconciles_total{",
        "agentcore_operator_reconcile_duration_seconds_bucket",
        r#"agentcore_operator_aws_requests_total{operation="StartBatchEvaluation",outcome="success"} 1"#,
        "agentcore_operator_aws_request_duration_seconds_bucket{",
        r#"agentcore_operator_objects{remote_status="COMPLETED"} 1"#,
        r#"agentcore_operator_evaluation_average_score{namespace="obs",name="scored",evaluator="Builtin.Helpfulness"}"#,
        r#"agentcore_operator_evaluation_passed{namespace="obs",name="scored"} 0"#,
        "agentcore_operator_leader 1",
        "# EOF",
    ] {
        ensure!(
            metrics.contains(needle),
            "/metrics lacks {needle}:\n{metrics}"
        );
    }
    // While a deletion is held up, its age is exported; afterwards the per-object series go away.
    env.kubectl(&["delete", "beval", "scored", "-n", "obs", "--timeout=90s"])
        .await?;
    let text = scrape(port).await?;
    ensure!(
        !text.contains(r#"name="scored""#),
        "per-object series removed with the object:\n{text}"
    );
    Ok(())
}
