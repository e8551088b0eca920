//! The Kubernetes requests of the benchmark: the client's creates and deletes (identical in both
//! runs), and the baseline's stand-in for the operator: exactly the writes the operator must do
//! at minimum, shaped like the operator's own requests (JSON Patch with a `test`, the whole status
//! in one `add`).

use std::time::Duration;

use agentcore_operator::api::{BatchEvaluation, FINALIZER};
use anyhow::Context as _;
use futures::{Stream, StreamExt as _, stream};
use jiff::Timestamp;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use serde_json::{Value, json};
use tokio::sync::mpsc;

/// Attempts per request before the run is abandoned; transient failures (a connection reset
/// under load) are retried, the count is reported.
const ATTEMPTS: u32 = 8;

pub fn object_name(i: usize) -> String {
    format!("bench-{i:05}")
}

/// The object both runs create: a CloudWatch source and two evaluators, like the examples.
pub fn object(namespace: &str, name: &str) -> anyhow::Result<BatchEvaluation> {
    Ok(serde_json::from_value(json!({
        "apiVersion": "evals.agentcore.dev/v1alpha1",
        "kind": "BatchEvaluation",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "description": "agentcore-bench lifecycle",
            "evaluators": [
                {"evaluatorId": "Builtin.Helpfulness"},
                {"evaluatorId": "Builtin.Correctness"}
            ],
            "dataSource": {"cloudWatchLogs": {
                "serviceNames": ["checkout-agent"],
                "logGroupNames": ["/aws/agentcore/checkout"]
            }}
        }
    }))?)
}

/// Runs `request` until it succeeds, at most [`ATTEMPTS`] times; returns the retries it took.
async fn with_retries<F, Fut, T>(what: &str, mut request: F) -> anyhow::Result<(T, u32)>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, kube::Error>>,
{
    let mut attempt = 1;
    loop {
        match request().await {
            Ok(value) => return Ok((value, attempt - 1)),
            Err(error) if attempt < ATTEMPTS => {
                tracing::debug!(%error, attempt, "{what}: retrying");
                tokio::time::sleep(Duration::from_millis(100) * attempt).await;
                attempt += 1;
            }
            Err(error) => {
                return Err(error).with_context(|| format!("{what}: {ATTEMPTS} attempts"));
            }
        }
    }
}

/// Creates every object with `concurrency` requests in flight; each created name is sent to
/// `created` (the baseline's workers) if given. Returns the retries.
pub async fn create_all(
    api: &Api<BatchEvaluation>,
    names: &[String],
    concurrency: usize,
    created: Option<mpsc::UnboundedSender<String>>,
) -> anyhow::Result<u32> {
    let names = stream::iter(names.iter().cloned());
    run_all(names, concurrency, |name| {
        let created = created.clone();
        async move {
            let obj = object(crate::NAMESPACE, &name)?;
            let (_, retries) = with_retries("create", || async {
                match api.create(&PostParams::default(), &obj).await {
                    // A retried create whose first attempt got through.
                    Err(kube::Error::Api(e)) if e.code == 409 => Ok(()),
                    other => other.map(|_| ()),
                }
            })
            .await?;
            if let Some(tx) = created {
                let _ = tx.send(name);
            }
            Ok(retries)
        }
    })
    .await
}

/// Deletes every object with `concurrency` requests in flight (foreground of nothing: plain
/// `kubectl delete` semantics); each name is sent to `deleted` if given.
pub async fn delete_all(
    api: &Api<BatchEvaluation>,
    names: &[String],
    concurrency: usize,
    deleted: Option<mpsc::UnboundedSender<String>>,
) -> anyhow::Result<u32> {
    let names = stream::iter(names.iter().cloned());
    run_all(names, concurrency, |name| {
        let deleted = deleted.clone();
        async move {
            let (_, retries) = with_retries("delete", || async {
                match api.delete(&name, &DeleteParams::default()).await {
                    Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
                    other => other.map(|_| ()),
                }
            })
            .await?;
            if let Some(tx) = deleted {
                let _ = tx.send(name);
            }
            Ok(retries)
        }
    })
    .await
}

/// Takes names from `rx` and runs `work` on each, `concurrency` at a time, like the operator's
/// reconcile slots. Returns the retries.
pub async fn workers<F, Fut>(
    rx: mpsc::UnboundedReceiver<String>,
    concurrency: usize,
    work: F,
) -> anyhow::Result<u32>
where
    F: Fn(String) -> Fut,
    Fut: Future<Output = anyhow::Result<u32>>,
{
    let names = stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|n| (n, rx)) });
    run_all(names, concurrency, work).await
}

/// Runs `work` on every name, `concurrency` at a time; returns the retries summed, or the first
/// error.
async fn run_all<S, F, Fut>(names: S, concurrency: usize, work: F) -> anyhow::Result<u32>
where
    S: Stream<Item = String>,
    F: Fn(String) -> Fut,
    Fut: Future<Output = anyhow::Result<u32>>,
{
    let results: Vec<anyhow::Result<u32>> = names
        .map(work)
        .buffer_unordered(concurrency)
        .collect()
        .await;
    results.into_iter().sum()
}

/// The baseline's writes between create and Ready: finalizer, id recorded, terminal status.
pub async fn baseline_start(api: &Api<BatchEvaluation>, name: &str) -> anyhow::Result<u32> {
    let add = json!([
        {"op": "test", "path": "/metadata/finalizers", "value": null},
        {"op": "add", "path": "/metadata/finalizers", "value": [FINALIZER]},
    ]);
    let mut retries = json_patch(api, name, add, false).await?;
    let started = Timestamp::now().to_string();
    retries += json_patch(api, name, status_patch(name, &started, false), true).await?;
    retries += json_patch(api, name, status_patch(name, &started, true), true).await?;
    Ok(retries)
}

/// The baseline's write after delete: finalizer removal.
pub async fn baseline_release(api: &Api<BatchEvaluation>, name: &str) -> anyhow::Result<u32> {
    let remove = json!([
        {"op": "test", "path": "/metadata/finalizers/0", "value": FINALIZER},
        {"op": "remove", "path": "/metadata/finalizers/0"},
    ]);
    json_patch(api, name, remove, false).await
}

async fn json_patch(
    api: &Api<BatchEvaluation>,
    name: &str,
    patch: Value,
    status: bool,
) -> anyhow::Result<u32> {
    let patch: json_patch::Patch = serde_json::from_value(patch)?;
    let patch = Patch::<()>::Json(patch);
    let params = PatchParams::default();
    let (_, retries) = with_retries("baseline patch", || async {
        if status {
            api.patch_status(name, &params, &patch).await
        } else {
            api.patch(name, &params, &patch).await
        }
    })
    .await?;
    Ok(retries)
}

/// A status like the operator's at the same two moments (same fields, similar sizes), so the
/// API server stores and sends comparable objects.
fn status_patch(name: &str, started: &str, terminal: bool) -> Value {
    let now = Timestamp::now().to_string();
    let remote_name = format!("bench_{}_{}", name.replace('-', "_"), "0123456789");
    let id = format!("{remote_name}-ABCDEFGHIJ");
    let condition = |type_: &str, status: &str, reason: &str, message: &str| {
        json!({
            "type": type_, "status": status, "reason": reason, "message": message,
            "observedGeneration": 1, "lastTransitionTime": now,
        })
    };
    let mut status = json!({
        "observedGeneration": 1,
        "batchEvaluationId": id,
        "batchEvaluationArn": format!("arn:aws:bedrock-agentcore:us-west-2:123456789012:evaluation/{id}"),
        "batchEvaluationName": remote_name,
        "region": "us-west-2",
        "remoteStatus": "PENDING",
        "startedAt": started,
        "lastSyncedAt": now,
    });
    if terminal {
        status["remoteStatus"] = json!("COMPLETED");
        status["sessions"] = json!("10/10");
        status["averageScore"] = json!(0.612);
        status["completedAt"] = json!(now);
        status["results"] = json!({
            "totalSessions": 10, "sessionsCompleted": 10, "sessionsInProgress": 0,
            "sessionsFailed": 0,
            "evaluators": [
                {"evaluatorId": "Builtin.Helpfulness", "averageScore": 0.655,
                 "totalEvaluated": 10, "totalFailed": 0},
                {"evaluatorId": "Builtin.Correctness", "averageScore": 0.569,
                 "totalEvaluated": 10, "totalFailed": 0}
            ]
        });
        status["conditions"] = json!([
            condition("Ready", "True", "Completed", "the job finished: COMPLETED"),
            condition("Reconciling", "False", "Completed", ""),
            condition("Stalled", "False", "NotStalled", ""),
        ]);
    } else {
        status["conditions"] = json!([
            condition("Ready", "False", "Pending", "the job is queued"),
            condition("Reconciling", "True", "Pending", "the job is queued"),
            condition("Stalled", "False", "NotStalled", ""),
        ]);
    }
    json!([{"op": "add", "path": "/status", "value": status}])
}
