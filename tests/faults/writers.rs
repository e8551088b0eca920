//! Another client editing labels and annotations of every object while the operator works: no
//! write of either side may be lost, and edits of terminal objects must cost nothing.

use std::{
    collections::{BTreeMap, BTreeSet},
    sync::{Mutex, MutexGuard, PoisonError},
    time::{Duration, Instant},
};

use agentcore_emulator::JobInfo;
use anyhow::{Context as _, ensure};
use futures::future::join_all;
use kube::api::{Patch, PatchParams, PostParams};
use serde_json::{Value, json};
use tokio::sync::watch;

use crate::{
    Ctx, LONG,
    budget::{ATTEMPTS_PER_OP, OPS_PER_RECONCILE, call_budget, calls_between, per},
    peaks::PEAK_OPS_BOUND,
    support::{
        cluster::Cluster,
        faults::runs,
        invariants::{Invariant, Snapshot, Violation},
        manifest,
        object::{client_token, cond_reason, has_finalizer, ready, status_str, str_at},
        report::Row,
    },
};

const WRITER_PREFIX: &str = "writer.faults.agentcore.dev";
/// Most edits per object and second.
const WRITER_EDITS_PER_SEC: f64 = 2.0;
/// How long the writer holds what it read before writing it back.
const WRITER_THINK: Duration = Duration::from_millis(300);

#[derive(Default)]
struct WriterLog {
    /// Per object: the annotation rounds written, and the last label value written.
    annotations: BTreeMap<String, BTreeSet<u32>>,
    label: BTreeMap<String, u32>,
    writes: u64,
    conflicts: u64,
}

/// The writer's log, shared by its loops and the checks.
#[derive(Default)]
struct Shared(Mutex<WriterLog>);

impl Shared {
    fn lock(&self) -> MutexGuard<'_, WriterLog> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn record(&self, name: &str, round: u32) {
        let mut log = self.lock();
        log.writes += 1;
        log.annotations
            .entry(name.to_owned())
            .or_default()
            .insert(round);
        log.label.insert(name.to_owned(), round);
    }
}

/// Each object edited in its own loop: even rounds as a slow read-modify-write with the
/// resourceVersion read (so it meets 409s when the operator wrote in between, and retries on a
/// fresh read), odd rounds by merge patch.
async fn writer(
    cluster: &Cluster,
    ns: &str,
    names: &[String],
    stop: watch::Receiver<bool>,
    log: &Shared,
) {
    join_all(
        names
            .iter()
            .map(|name| edit_loop(cluster, ns, name, stop.clone(), log)),
    )
    .await;
}

async fn edit_loop(
    cluster: &Cluster,
    ns: &str,
    name: &str,
    mut stop: watch::Receiver<bool>,
    log: &Shared,
) {
    let mut round = 0_u32;
    while !*stop.borrow() {
        round += 1;
        if round.is_multiple_of(2) {
            replace_round(cluster, ns, name, round, log).await;
        } else {
            patch_round(cluster, ns, name, round, log).await;
        }
        tokio::select! {
            () = tokio::time::sleep(Duration::from_secs_f64(1.0 / WRITER_EDITS_PER_SEC)) => {}
            _ = stop.changed() => {}
        }
    }
}

/// A read-modify-write with the resourceVersion read, retried on 409 from a fresh read.
async fn replace_round(cluster: &Cluster, ns: &str, name: &str, round: u32, log: &Shared) {
    let api = cluster.bevals(ns);
    for _ in 0..10 {
        let Ok(Some(mut obj)) = api.get_opt(name).await else {
            break;
        };
        tokio::time::sleep(WRITER_THINK).await;
        obj.metadata
            .labels
            .get_or_insert_default()
            .insert(format!("{WRITER_PREFIX}/round"), round.to_string());
        obj.metadata
            .annotations
            .get_or_insert_default()
            .insert(format!("{WRITER_PREFIX}/r{round}"), "written".to_owned());
        match api.replace(name, &PostParams::default(), &obj).await {
            Ok(_) => {
                log.record(name, round);
                break;
            }
            Err(kube::Error::Api(e)) if e.code == 409 => log.lock().conflicts += 1,
            Err(_) => break,
        }
    }
}

async fn patch_round(cluster: &Cluster, ns: &str, name: &str, round: u32, log: &Shared) {
    let patch = json!({"metadata": {
        "labels": {format!("{WRITER_PREFIX}/round"): round.to_string()},
        "annotations": {format!("{WRITER_PREFIX}/r{round}"): "written"},
    }});
    if cluster
        .bevals(ns)
        .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .is_ok()
    {
        log.record(name, round);
    }
}

pub async fn run(ctx: &Ctx<'_>) -> Row {
    let ns = "writers";
    let mut row = Row::new("concurrent writer editing labels and annotations", &[ns]);
    let result = scenario(ctx, ns, &mut row).await;
    row.check("scenario", result);
    row
}

async fn scenario(ctx: &Ctx<'_>, ns: &str, row: &mut Row) -> anyhow::Result<()> {
    ctx.cluster.create_namespace(ns).await?;
    let n = ctx.scale.writers;
    let names: Vec<String> = (0..n).map(|i| format!("w-{i}")).collect();
    let yaml: Vec<String> = names
        .iter()
        .map(|name| manifest(ns, name, "", &[runs("8s")]))
        .collect();
    let log = Shared::default();
    let (stop_tx, stop_rx) = watch::channel(false);
    let before = ctx.emulator.stats();
    let created = Instant::now();
    ctx.cluster.apply(&yaml.join("---\n")).await?;
    let scenario = async {
        // Creation, finalizer, Start and every status write race with the writer.
        let snap = ctx
            .monitor
            .wait("every object Ready", LONG, |s| {
                s.in_namespace(ns).filter(|o| ready(o)).count() == n
            })
            .await?;
        row.converged(created.elapsed());
        edits_cost_nothing(ctx, ns, &snap, &log, row).await?;
        nothing_lost(ctx, ns, &names, &log).await?;
        // Deletion while the writer keeps editing: the finalizer must still come off.
        let deleting = Instant::now();
        ctx.cluster
            .kubectl_ok(&["delete", "bevals", "--all", "-n", ns, "--wait=false"])
            .await?;
        ctx.monitor
            .wait("every writer object gone", LONG, |s| {
                s.in_namespace(ns).next().is_none()
            })
            .await?;
        row.converged(deleting.elapsed());
        anyhow::Ok(())
    };
    let (result, ()) = tokio::join!(
        async {
            let r = scenario.await;
            stop_tx.send_replace(true);
            r
        },
        writer(ctx.cluster, ns, &names, stop_rx, &log)
    );
    let calls = calls_between(&before, &ctx.emulator.stats());
    let (writes, conflicts) = {
        let log = log.lock();
        (log.writes, log.conflicts)
    };
    record(row, n, created.elapsed(), calls, writes, conflicts);
    result
}

/// The row's figures: writes, conflicts, calls per object against a budget that grants one
/// reconcile per edit, and a peak bound with the writer's edits added.
fn record(row: &mut Row, n: usize, alive: Duration, calls: u64, writes: u64, conflicts: u64) {
    row.faults = format!(
        "{writes} label/annotation writes by another client ({conflicts} × 409 met and retried)"
    );
    row.note(format!(
        "the writer met {conflicts} conflicts (409) on resourceVersion-checked updates; the operator's own writes are patches without a resourceVersion, so they never conflict"
    ));
    row.lifecycles = n;
    // Each edit is a watch event. The operator ignores other tools' annotations and labels,
    // but the bound does not rely on that filter: it grants one reconcile per edit.
    let edits_per_object = per(writes, n);
    let budget = call_budget(alive) + ATTEMPTS_PER_OP * OPS_PER_RECONCILE * edits_per_object;
    row.calls = Some((per(calls, n), budget));
    // At most WRITER_EDITS_PER_SEC edits per object and second, plus one straddling.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let extra = (OPS_PER_RECONCILE * (WRITER_EDITS_PER_SEC + 1.0)) as u32;
    row.peak_bound = Some(PEAK_OPS_BOUND + extra);
}

/// With everything terminal, the writer's edits must cost no AWS call and no status write (the
/// watch predicate lets only the operator's own annotations through; an operator that
/// reconciled on them would still have to call nothing).
async fn edits_cost_nothing(
    ctx: &Ctx<'_>,
    ns: &str,
    snap: &Snapshot,
    log: &Shared,
    row: &mut Row,
) -> anyhow::Result<()> {
    let statuses = |snap: &Snapshot| {
        snap.in_namespace(ns)
            .map(|o| (str_at(o, "/metadata/name").to_owned(), o["status"].clone()))
            .collect::<BTreeMap<_, _>>()
    };
    let first = statuses(snap);
    let stats0 = ctx.emulator.stats();
    let writes0 = log.lock().writes;
    tokio::time::sleep(ctx.scale.storm).await;
    let stats1 = ctx.emulator.stats();
    let later = ctx.monitor.fresh().await?;
    let second = statuses(&later);
    let churn = log.lock().writes - writes0;
    let calls = calls_between(&stats0, &stats1);
    let rewritten: Vec<_> = first
        .iter()
        .filter(|(k, v)| second.get(*k) != Some(v))
        .map(|(k, _)| k.clone())
        .collect();
    row.note(format!(
        "{churn} edits of terminal objects over {} s: {calls} AWS calls, {} status rewrites",
        ctx.scale.storm.as_secs(),
        rewritten.len()
    ));
    let mut ledger = ctx.monitor.ledger();
    if calls > 0 {
        ledger.add(Violation {
            invariant: Invariant::I5,
            namespace: ns.to_owned(),
            detail: format!("{calls} AWS calls while only annotations changed"),
        });
    }
    for k in rewritten {
        ledger.add(Violation {
            invariant: Invariant::I6,
            namespace: ns.to_owned(),
            detail: format!("status of {ns}/{k} rewritten while only annotations changed"),
        });
    }
    Ok(())
}

/// Nothing written by either side was lost. Every write the log holds was acknowledged before
/// the next list begins, so the list must show it (the writer goes on meanwhile: labels can
/// only be newer).
async fn nothing_lost(
    ctx: &Ctx<'_>,
    ns: &str,
    names: &[String],
    log: &Shared,
) -> anyhow::Result<()> {
    let (annotations, labels) = {
        let log = log.lock();
        (log.annotations.clone(), log.label.clone())
    };
    let snap = ctx.monitor.fresh().await?;
    let jobs = ctx.emulator.jobs();
    for name in names {
        let obj = snap.get(ns, name).context("object")?;
        let missing: Vec<u32> = annotations
            .get(name)
            .into_iter()
            .flatten()
            .copied()
            .filter(|r| {
                obj.pointer("/metadata/annotations")
                    .and_then(|a| a.get(format!("{WRITER_PREFIX}/r{r}")))
                    .is_none()
            })
            .collect();
        ensure!(
            missing.is_empty(),
            "{name}: annotations of rounds {missing:?} lost"
        );
        let label: Option<u32> = obj
            .pointer("/metadata/labels")
            .and_then(|l| l.get(format!("{WRITER_PREFIX}/round")))
            .and_then(Value::as_str)
            .and_then(|v| v.parse().ok());
        ensure!(
            label.is_some() && label >= labels.get(name).copied(),
            "{name}: label {label:?}, last written {:?}",
            labels.get(name)
        );
        status_intact(obj, name, &jobs)?;
    }
    Ok(())
}

/// The operator's status and finalizer survived the writer.
fn status_intact(obj: &Value, name: &str, jobs: &[JobInfo]) -> anyhow::Result<()> {
    let token = client_token(str_at(obj, "/metadata/uid"));
    let job = jobs
        .iter()
        .find(|j| j.client_token.as_deref() == Some(token.as_str()))
        .context("the object's job")?;
    ensure!(
        ready(obj)
            && cond_reason(obj, "Ready") == "Completed"
            && status_str(obj, "remoteStatus") == Some("COMPLETED")
            && status_str(obj, "batchEvaluationId") == Some(job.id.as_str())
            && obj.pointer("/status/observedGeneration") == obj.pointer("/metadata/generation"),
        "{name}: status intact: {}",
        obj["status"]
    );
    ensure!(has_finalizer(obj), "{name}: finalizer intact");
    Ok(())
}
