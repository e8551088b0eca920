//! End-to-end: the operator binary against a real kube-apiserver + etcd and the AgentCore
//! emulator, driven with the real kubectl. Each scenario runs in its own namespace.

mod support;

use std::time::Duration;

use agentcore_emulator::{ErrorCode, Operation, Target};
use anyhow::{Context as _, ensure};
use support::{
    Env, EnvOptions,
    faults::{error_rate, reject_every_start, runs, stops_in},
    manifest,
    metrics::{scrape_until, scrape_until_gone},
    object::{cond_message, condition_is, deleting, status_str, uid},
};

const LONG: Duration = Duration::from_secs(60);

/// Apply → exactly one job, started with the object's client token → status → Ready → printer
/// columns → delete of a completed job removes the job, then the object.
async fn create_complete_delete(env: &Env) -> anyhow::Result<()> {
    let ns = "e2e-complete";
    env.create_namespace(ns).await?;
    env.apply(&manifest(ns, "nightly", "", &[])).await?;
    env.kubectl(&[
        "wait",
        "--for=condition=Ready",
        "beval/nightly",
        "-n",
        ns,
        "--timeout=60s",
    ])
    .await
    .context("kubectl wait --for=condition=Ready")?;
    let obj = env.get(ns, "nightly").await?.context("object exists")?;
    let name = status_str(&obj, "batchEvaluationName")
        .context("name recorded")?
        .to_owned();
    let jobs = env.jobs_named(&name);
    ensure!(jobs.len() == 1, "exactly one job expected, got {jobs:?}");
    ensure!(
        jobs[0].client_token.as_deref()
            == Some(format!("agentcore-operator-{}", uid(&obj)).as_str()),
        "the job was started with the object's client token: {:?}",
        jobs[0].client_token
    );
    ensure!(status_str(&obj, "batchEvaluationId") == Some(jobs[0].id.as_str()));
    ensure!(status_str(&obj, "batchEvaluationArn") == Some(jobs[0].arn.as_str()));
    ensure!(status_str(&obj, "remoteStatus") == Some("COMPLETED"));
    ensure!(
        obj.pointer("/status/results/evaluators/0/averageScore")
            .is_some(),
        "results copied: {obj}"
    );
    ensure!(obj.pointer("/status/observedGeneration") == obj.pointer("/metadata/generation"));
    ensure!(condition_is(&obj, "Stalled", "False", "NotStalled"));

    let table = env.kubectl(&["get", "bevals", "-n", ns]).await?;
    for column in [
        "STATUS",
        "SESSIONS",
        "SCORE",
        "ID",
        "AGE",
        "COMPLETED",
        &jobs[0].id,
    ] {
        ensure!(
            table.contains(column),
            "kubectl get shows {column}:\n{table}"
        );
    }

    env.kubectl(&["delete", "beval", "nightly", "-n", ns, "--timeout=60s"])
        .await?;
    let jobs = env.jobs_named(&name);
    ensure!(
        jobs[0].is_gone(),
        "the job is gone once kubectl delete returns: {jobs:?}"
    );
    ensure!(jobs[0].stop_calls == 0, "a completed job is not stopped");
    ensure!(jobs[0].delete_calls == 1, "one delete call: {jobs:?}");
    Ok(())
}

/// `kubectl delete` of a running job blocks until Stop, STOPPED, Delete and removal happened;
/// the cleanup is visible in status and `kubectl describe` on the way.
async fn delete_running_job(env: &Env) -> anyhow::Result<()> {
    let ns = "e2e-running";
    env.create_namespace(ns).await?;
    let name = env
        .start_running(ns, "long", &[runs("120s"), stops_in("4s")])
        .await?;

    let mut delete = env.plane.kubectl();
    delete.args(["delete", "beval", "long", "-n", ns, "--timeout=90s"]);
    let delete = delete.output();
    let observe = async {
        let stopping = env
            .wait_for(ns, "long", "the cleanup to wait for STOPPED", LONG, |o| {
                status_str(o, "remoteStatus") == Some("STOPPING") && deleting(o)
            })
            .await?;
        ensure!(
            matches!(
                status_str(&stopping, "cleanupStep"),
                Some("Stopping" | "AwaitingTerminal")
            ),
            "cleanup step shown: {stopping}"
        );
        ensure!(env.jobs_named(&name)[0].stop_calls == 1, "Stop was called");
        ensure!(
            !env.jobs_named(&name)[0].is_gone(),
            "the job is not gone while stopping"
        );
        let describe = env
            .kubectl(&["describe", "beval", "long", "-n", ns])
            .await?;
        ensure!(
            describe.contains("StopRequested"),
            "events in describe:\n{describe}"
        );
        Ok(())
    };
    let (deleted, observed) = tokio::join!(delete, observe);
    observed?;
    let deleted = deleted?;
    ensure!(
        deleted.status.success(),
        "kubectl delete: {}",
        String::from_utf8_lossy(&deleted.stderr)
    );
    ensure!(
        env.get(ns, "long").await?.is_none(),
        "the object is gone when kubectl delete returns"
    );
    let job = &env.jobs_named(&name)[0];
    ensure!(job.is_gone(), "the job is gone before the object: {job:?}");
    ensure!(
        job.stop_calls == 1 && job.delete_calls == 1,
        "one Stop, one Delete: {job:?}"
    );
    Ok(())
}

/// `deletionPolicy: Retain` releases the object and leaves the job.
async fn retain_policy(env: &Env) -> anyhow::Result<()> {
    let ns = "e2e-retain";
    env.create_namespace(ns).await?;
    env.apply(&manifest(
        ns,
        "keep",
        "  deletionPolicy: Retain\n",
        &[runs("120s")],
    ))
    .await?;
    let obj = env
        .wait_for(ns, "keep", "the job to start", LONG, |o| {
            status_str(o, "batchEvaluationId").is_some()
        })
        .await?;
    let name = status_str(&obj, "batchEvaluationName")
        .context("name")?
        .to_owned();
    env.kubectl(&["delete", "beval", "keep", "-n", ns, "--timeout=60s"])
        .await?;
    let job = &env.jobs_named(&name)[0];
    ensure!(
        !job.is_gone() && job.stop_calls == 0 && job.delete_calls == 0,
        "job untouched: {job:?}"
    );
    Ok(())
}

/// A job that stays STOPPING for a while: the finalizer waits it out.
async fn long_stopping(env: &Env) -> anyhow::Result<()> {
    let ns = "e2e-stopping";
    env.create_namespace(ns).await?;
    env.apply(&manifest(
        ns,
        "slow-stop",
        "",
        &[runs("120s"), stops_in("8s")],
    ))
    .await?;
    env.wait_remote(ns, "slow-stop", "IN_PROGRESS", LONG)
        .await?;
    env.kubectl(&["delete", "beval", "slow-stop", "-n", ns, "--wait=false"])
        .await?;
    env.wait_for(
        ns,
        "slow-stop",
        "AwaitingTerminal while STOPPING",
        LONG,
        |o| {
            status_str(o, "cleanupStep") == Some("AwaitingTerminal")
                && status_str(o, "remoteStatus") == Some("STOPPING")
        },
    )
    .await?;
    env.wait_gone(ns, "slow-stop", LONG).await?;
    let obj_jobs: Vec<_> = env
        .emulator
        .jobs()
        .into_iter()
        .filter(|j| j.name.starts_with("e2e_stopping_slow_stop"))
        .collect();
    ensure!(obj_jobs.len() == 1 && obj_jobs[0].is_gone(), "{obj_jobs:?}");
    Ok(())
}

/// Adoption of a job started outside the operator: no new Start, the status follows it.
async fn adoption(env: &Env) -> anyhow::Result<()> {
    let ns = "e2e-adopt";
    env.create_namespace(ns).await?;
    let sdk = support::sdk_client(&env.emulator.endpoint_url(), "AKIDTEST");
    let started = sdk
        .start_batch_evaluation()
        .batch_evaluation_name("started_by_cli")
        .data_source_config(
            aws_sdk_bedrockagentcore::types::DataSourceConfig::CloudWatchLogs(
                aws_sdk_bedrockagentcore::types::CloudWatchLogsSource::builder()
                    .service_names("checkout-agent")
                    .build()?,
            ),
        )
        .send()
        .await?;
    let id = started.batch_evaluation_id().to_owned();
    env.apply(&manifest(
        ns,
        "adopted",
        &format!("  adoptBatchEvaluationId: {id}\n"),
        &[],
    ))
    .await?;
    let obj = env.wait_remote(ns, "adopted", "COMPLETED", LONG).await?;
    ensure!(status_str(&obj, "batchEvaluationId") == Some(id.as_str()));
    let own_starts: Vec<_> = env
        .emulator
        .jobs()
        .into_iter()
        .filter(|j| j.name.starts_with("e2e_adopt_adopted"))
        .collect();
    ensure!(
        own_starts.is_empty(),
        "adoption must not start a job: {own_starts:?}"
    );
    env.kubectl(&["delete", "beval", "adopted", "-n", ns, "--timeout=60s"])
        .await?;
    ensure!(
        env.jobs_named("started_by_cli")[0].is_gone(),
        "the adopted job is cleaned up on delete"
    );
    Ok(())
}

/// `spec.stop`: stop a running job, keep the object, refuse un-stop, delete with no second Stop.
async fn declarative_stop(env: &Env) -> anyhow::Result<()> {
    let ns = "e2e-stop";
    env.create_namespace(ns).await?;
    let name = env.start_running(ns, "halt", &[runs("120s")]).await?;
    env.patch(ns, "halt", r#"{"spec":{"stop":true}}"#).await?;
    let stopped = env
        .wait_for(ns, "halt", "STOPPED on request", LONG, |o| {
            status_str(o, "remoteStatus") == Some("STOPPED")
                && condition_is(o, "Ready", "True", "StoppedOnRequest")
        })
        .await?;
    ensure!(
        condition_is(&stopped, "Stalled", "False", "NotStalled"),
        "a requested stop is not a failure"
    );
    let unstop = env.patch(ns, "halt", r#"{"spec":{"stop":false}}"#).await;
    let message = format!("{unstop:?}");
    ensure!(
        unstop.is_err() && message.contains("cannot be set back to false"),
        "un-stop rejected: {message}"
    );
    env.kubectl(&["delete", "beval", "halt", "-n", ns, "--timeout=60s"])
        .await?;
    let job = &env.jobs_named(&name)[0];
    ensure!(
        job.is_gone() && job.stop_calls == 1 && job.delete_calls == 1,
        "exactly one Stop and one Delete: {job:?}"
    );
    Ok(())
}

/// At least 10 invalid objects rejected at admission, each error naming the field.
async fn invalid_objects_rejected(env: &Env) -> anyhow::Result<()> {
    let ns = "e2e-invalid";
    env.create_namespace(ns).await?;
    let eleven: String = (0..11)
        .map(|i| format!("    - evaluatorId: Builtin.E{i}\n"))
        .collect();
    let cases: Vec<(&str, String, &str)> = vec![
        ("bad name", manifest(ns, "a", "  batchEvaluationName: 9starts-with-digit\n", &[]), "spec.batchEvaluationName"),
        ("11 evaluators", manifest(ns, "b", "", &[]).replace(
            "  evaluators:\n    - evaluatorId: Builtin.Helpfulness\n    - evaluatorId: Builtin.Correctness\n",
            &format!("  evaluators:\n{eleven}"),
        ), "spec.evaluators"),
        ("both data sources", manifest(ns, "c", "", &[]).replace(
            "      logGroupNames: [/aws/agentcore/checkout]\n",
            "      logGroupNames: [/aws/agentcore/checkout]\n    onlineEvaluationConfig:\n      arn: arn:aws:bedrock-agentcore:us-west-2:123456789012:online-evaluation-config/cfg-0123456789\n",
        ), "exactly one of dataSource.cloudWatchLogs or dataSource.onlineEvaluationConfig"),
        ("no data source", manifest(ns, "d", "", &[]).replace(
            "  dataSource:\n    cloudWatchLogs:\n      serviceNames: [checkout-agent]\n      logGroupNames: [/aws/agentcore/checkout]\n",
            "  dataSource: {}\n",
        ), "exactly one of dataSource.cloudWatchLogs or dataSource.onlineEvaluationConfig"),
        ("bad online evaluation ARN", manifest(ns, "e", "", &[]).replace(
            "    cloudWatchLogs:\n      serviceNames: [checkout-agent]\n      logGroupNames: [/aws/agentcore/checkout]\n",
            "    onlineEvaluationConfig:\n      arn: arn:aws:s3:::not-it\n",
        ), "spec.dataSource.onlineEvaluationConfig.arn"),
        ("bad KMS ARN", manifest(ns, "f", "  kmsKeyArn: not-an-arn\n", &[]), "spec.kmsKeyArn"),
        ("too-long description", manifest(ns, "g", "", &[]).replace("  description: end-to-end test\n", &format!("  description: {}\n", "x".repeat(201))), "spec.description"),
        ("unknown field", manifest(ns, "h", "  evaluatorz: []\n", &[]), "evaluatorz"),
        ("bad evaluator id", manifest(ns, "i", "", &[]).replace("Builtin.Helpfulness", "helpful!"), "spec.evaluators[0].evaluatorId"),
        ("two service names", manifest(ns, "j", "", &[]).replace("[checkout-agent]", "[a, b]"), "spec.dataSource.cloudWatchLogs.serviceNames"),
        ("bad deletion policy", manifest(ns, "k", "  deletionPolicy: Forget\n", &[]), "spec.deletionPolicy"),
        ("51 tags", manifest(ns, "l", "", &(0..51).map(|i| (Box::leak(format!("t{i}").into_boxed_str()) as &str, "v")).collect::<Vec<_>>()), "spec.tags"),
        ("bad time range", manifest(ns, "m", "", &[]).replace(
            "      logGroupNames: [/aws/agentcore/checkout]\n",
            "      logGroupNames: [/aws/agentcore/checkout]\n      filter:\n        timeRange: {startTime: \"2026-02-01T00:00:00Z\", endTime: \"2026-01-01T00:00:00Z\"}\n",
        ), "startTime must not be after endTime"),
    ];
    for (what, yaml, expected) in &cases {
        let mut apply = env.plane.kubectl();
        apply.args(["apply", "-f", "-"]);
        apply
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let mut child = apply.spawn()?;
        if let Some(mut stdin) = child.stdin.take() {
            use tokio::io::AsyncWriteExt as _;
            stdin.write_all(yaml.as_bytes()).await?;
        }
        let out = child.wait_with_output().await?;
        let stderr = String::from_utf8_lossy(&out.stderr);
        ensure!(
            !out.status.success(),
            "{what}: accepted but must be rejected"
        );
        ensure!(
            stderr.contains(expected),
            "{what}: the error must name {expected:?}, got: {stderr}"
        );
    }

    // Immutable fields: change of the data source, the name, the evaluators.
    env.apply(&manifest(ns, "immutable", "", &[runs("120s")]))
        .await?;
    for (what, patch, expected) in [
        (
            "data source",
            r#"{"spec":{"dataSource":{"cloudWatchLogs":{"serviceNames":["other"]}}}}"#,
            "dataSource is immutable",
        ),
        (
            "name",
            r#"{"spec":{"batchEvaluationName":"renamed"}}"#,
            "batchEvaluationName is immutable",
        ),
        (
            "evaluators",
            r#"{"spec":{"evaluators":[{"evaluatorId":"Builtin.Other"}]}}"#,
            "evaluators is immutable",
        ),
    ] {
        let result = env.patch(ns, "immutable", patch).await;
        let message = format!("{result:?}");
        ensure!(
            result.is_err() && message.contains(expected),
            "change of {what} rejected: {message}"
        );
    }
    // deletionPolicy stays mutable.
    env.patch(ns, "immutable", r#"{"spec":{"deletionPolicy":"Retain"}}"#)
        .await?;
    env.patch(ns, "immutable", r#"{"spec":{"deletionPolicy":"Delete"}}"#)
        .await?;
    env.kubectl(&["delete", "beval", "immutable", "-n", ns, "--timeout=60s"])
        .await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn lifecycle_on_a_real_api_server() -> anyhow::Result<()> {
    let env = Env::start(EnvOptions::default()).await?;
    let (a, b, c, d, e, f, g) = tokio::join!(
        create_complete_delete(&env),
        delete_running_job(&env),
        retain_policy(&env),
        long_stopping(&env),
        adoption(&env),
        declarative_stop(&env),
        invalid_objects_rejected(&env),
    );
    for (name, result) in [
        ("create/complete/delete", a),
        ("delete of a running job", b),
        ("Retain", c),
        ("long STOPPING", d),
        ("adoption", e),
        ("spec.stop", f),
        ("invalid objects", g),
    ] {
        result.with_context(|| {
            format!(
                "scenario {name}; operator log {}",
                env.operator.log_path().display()
            )
        })?;
    }
    // Every job the operator started was started once: one job per remote name.
    let jobs = env.emulator.jobs();
    let mut names: Vec<_> = jobs.iter().map(|j| j.name.clone()).collect();
    names.sort();
    names.dedup();
    ensure!(
        names.len() == jobs.len(),
        "a name was started twice: {jobs:?}"
    );
    Ok(())
}

/// A remote ValidationException stalls with the service's message and no retry storm; an
/// access problem during deletion keeps the finalizer until the escape hatch is used.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn remote_rejections_and_the_escape_hatch() -> anyhow::Result<()> {
    let env = Env::start(EnvOptions::default()).await?;
    let ns = "e2e-rejected";
    env.create_namespace(ns).await?;

    env.emulator.set_faults(&reject_every_start())?;
    env.apply(&manifest(ns, "rejected", "", &[])).await?;
    let obj = env
        .wait_for(ns, "rejected", "Stalled=True InvalidSpec", LONG, |o| {
            condition_is(o, "Stalled", "True", "InvalidSpec")
        })
        .await?;
    let message = cond_message(&obj, "Stalled");
    ensure!(
        message.contains("ValidationException"),
        "the service's message is shown: {message}"
    );
    let starts = env.calls(Operation::StartBatchEvaluation);
    tokio::time::sleep(Duration::from_secs(5)).await; // ten poll intervals
    ensure!(
        env.calls(Operation::StartBatchEvaluation) == starts,
        "no retry storm after a rejected spec"
    );
    env.kubectl(&["delete", "beval", "rejected", "-n", ns, "--timeout=60s"])
        .await
        .context("deletion of a rejected object")?;

    // Deletion while AWS denies access: finalizer kept, condition + warning, then force-release.
    env.emulator.clear_faults();
    let name = env.start_running(ns, "denied", &[runs("120s")]).await?;
    env.start_running(ns, "stripped", &[runs("120s")]).await?;
    env.emulator.set_faults(&error_rate(
        Target::All,
        1.0,
        ErrorCode::AccessDeniedException,
    ))?;
    for held in ["denied", "stripped"] {
        env.kubectl(&["delete", "beval", held, "-n", ns, "--wait=false"])
            .await?;
        env.wait_for(ns, held, "AccessDenied during deletion", LONG, |o| {
            condition_is(o, "Stalled", "True", "AccessDenied")
        })
        .await?;
    }

    // A finalizer removed by hand (what the escape hatch spares users) releases an object
    // without the operator: its series go with it all the same.
    let stripped = format!(r#"namespace="{ns}",name="stripped""#);
    scrape_until(
        env.metrics_port,
        "the held deletion's age",
        LONG,
        &[&format!(
            "agentcore_operator_deleting_object_age_seconds{{{stripped}}}"
        )],
    )
    .await?;
    env.kubectl(&[
        "patch",
        "beval",
        "stripped",
        "-n",
        ns,
        "--type=merge",
        "-p",
        r#"{"metadata":{"finalizers":null}}"#,
    ])
    .await?;
    env.wait_gone(ns, "stripped", LONG).await?;
    scrape_until_gone(
        env.metrics_port,
        "the stripped object's series to go",
        LONG,
        &stripped,
    )
    .await?;
    let describe = env
        .kubectl(&["describe", "beval", "denied", "-n", ns])
        .await?;
    ensure!(
        describe.contains("Warning") && describe.contains("AccessDenied"),
        "warning event:\n{describe}"
    );
    env.kubectl(&[
        "annotate",
        "beval",
        "denied",
        "-n",
        ns,
        "evals.agentcore.dev/force-release=true",
    ])
    .await?;
    env.wait_gone(ns, "denied", LONG).await?;
    ensure!(
        !env.jobs_named(&name)[0].is_gone(),
        "force-release leaves the job behind, as documented"
    );
    Ok(())
}

/// The operator SIGKILLed in the middle of a deletion converges after a restart: nothing
/// orphaned, nothing started twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn operator_killed_mid_deletion_converges() -> anyhow::Result<()> {
    let mut env = Env::start(EnvOptions::default()).await?;
    let ns = "e2e-kill";
    env.create_namespace(ns).await?;
    let name = env
        .start_running(ns, "victim", &[runs("120s"), stops_in("6s")])
        .await?;
    env.kubectl(&["delete", "beval", "victim", "-n", ns, "--wait=false"])
        .await?;
    env.wait_remote(ns, "victim", "STOPPING", LONG).await?;
    env.operator.kill_hard();
    tokio::time::sleep(Duration::from_secs(1)).await;
    ensure!(
        env.get(ns, "victim").await?.is_some(),
        "the finalizer holds the object while the operator is down"
    );
    env.operator.restart().await?;
    env.wait_gone(ns, "victim", LONG).await?;
    let jobs = env.jobs_named(&name);
    ensure!(jobs.len() == 1, "started once: {jobs:?}");
    ensure!(jobs[0].is_gone(), "nothing orphaned: {jobs:?}");
    ensure!(jobs[0].stop_calls == 1, "stopped once: {jobs:?}");
    Ok(())
}
