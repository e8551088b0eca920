//! GetBatchEvaluation answers malformed bodies for a while: the operator must stay up, say so in
//! a condition and an event, keep retrying at its pace, and recover when the answers heal.

use std::time::{Duration, Instant};

use agentcore_emulator::{FaultConfig, MalformedKind, OUTCOME_MALFORMED, Operation, Target};
use agentcore_testenv::OperatorProcess;
use anyhow::{Context as _, ensure};
use serde_json::Value;

use crate::{
    Ctx, LONG,
    budget::{ATTEMPTS_PER_OP, MIN_REQUEUE_SECS, delta},
    lifecycle::{delete, delete_args, force_release, wait_gone, wait_in_progress},
    support::{
        faults::{runs, stops_in},
        manifest,
        object::{cond_message, cond_reason, status_str},
        report::Row,
    },
};

pub const KINDS: [MalformedKind; 4] = [
    MalformedKind::InvalidJson,
    MalformedKind::UnknownStatus,
    MalformedKind::MissingRequired,
    MalformedKind::EpochTimestamps,
];

const NAME: &str = "garbled";

fn slug(kind: MalformedKind) -> &'static str {
    match kind {
        MalformedKind::InvalidJson => "invalid-json",
        MalformedKind::UnknownStatus => "unknown-status",
        MalformedKind::MissingRequired => "missing-required",
        MalformedKind::EpochTimestamps => "epoch-timestamps",
    }
}

/// The Ready reason the operator must show; `None`: any reason (a missing field may read as
/// several things).
fn expected_reason(kind: MalformedKind) -> Option<&'static str> {
    match kind {
        MalformedKind::InvalidJson | MalformedKind::EpochTimestamps => Some("MalformedResponse"),
        MalformedKind::UnknownStatus => Some("UnknownRemoteStatus"),
        MalformedKind::MissingRequired => None,
    }
}

pub async fn run(ctx: &Ctx<'_>, operator: &OperatorProcess, kind: MalformedKind) -> Row {
    let slug = slug(kind);
    let ns = format!("malformed-{slug}");
    let mut row = Row::new(format!("malformed Get responses: {slug}"), &[&ns]);
    row.lifecycles = 1;
    let result = scenario(ctx, operator, kind, &ns, &mut row).await;
    ctx.emulator.clear_faults();
    if row.check("scenario", result).is_none() {
        // Leave nothing running into the next scenario's faults.
        delete_or_force(ctx, &ns, NAME, &mut row).await;
    }
    row
}

/// Deletes an object; one that cannot go within 30 s is stuck, and released by force.
async fn delete_or_force(ctx: &Ctx<'_>, ns: &str, name: &str, row: &mut Row) {
    let _ = ctx.cluster.kubectl_ok(&delete_args(ns, name, true)).await;
    if wait_gone(ctx, ns, name, "gone", Duration::from_secs(30))
        .await
        .is_ok()
    {
        return;
    }
    row.stuck += 1;
    row.fail(format!(
        "{ns}/{name} was not gone 30 s after deletion; released with the force-release annotation"
    ));
    let _ = force_release(ctx, ns, name).await;
    let _ = wait_gone(ctx, ns, name, "gone", LONG).await;
}

/// What the malformed period showed.
struct Reaction {
    reason: String,
    reacted: Value,
    during: Value,
    window: Duration,
    malformed_gets: u64,
}

async fn scenario(
    ctx: &Ctx<'_>,
    operator: &OperatorProcess,
    kind: MalformedKind,
    ns: &str,
    row: &mut Row,
) -> anyhow::Result<()> {
    ctx.cluster.create_namespace(ns).await?;
    ctx.cluster
        .apply(&manifest(ns, NAME, "", &[runs("120s"), stops_in("1s")]))
        .await?;
    let running = wait_in_progress(ctx, ns, NAME).await?;
    let id = status_str(&running, "batchEvaluationId")
        .context("id recorded")?
        .to_owned();
    let pid = operator.pid().context("the operator runs")?;
    let r = malformed_period(ctx, kind, ns).await?;
    row.faults = format!("{} malformed GetBatchEvaluation answers", r.malformed_gets);
    ensure!(
        operator.pid() == Some(pid),
        "the operator process survived (pid {pid} → {:?})",
        operator.pid()
    );
    check_reaction(ctx, kind, ns, &r, row).await?;
    ensure!(
        status_str(&r.during, "batchEvaluationId") == Some(id.as_str()),
        "the recorded id survives the malformed answers: {}",
        r.during["status"]
    );
    // Recovery.
    let healed = Instant::now();
    ctx.monitor
        .wait_object(ns, NAME, "InProgress again", LONG, |o| {
            o.is_some_and(|o| {
                cond_reason(o, "Ready") == "InProgress"
                    && status_str(o, "remoteStatus") == Some("IN_PROGRESS")
            })
        })
        .await?;
    row.converged(healed.elapsed());
    delete(ctx, ns, NAME).await?;
    wait_gone(ctx, ns, NAME, "gone", LONG).await?;
    row.converged(healed.elapsed());
    Ok(())
}

/// Malformed Get answers for the storm window; what the operator made of them.
async fn malformed_period(
    ctx: &Ctx<'_>,
    kind: MalformedKind,
    ns: &str,
) -> anyhow::Result<Reaction> {
    let mut f = FaultConfig::default();
    f.entry(Target::Operation(Operation::GetBatchEvaluation))
        .malformed = Some(kind);
    let before = ctx.emulator.stats();
    ctx.emulator.set_faults(&f)?;
    let began = Instant::now();
    // The operator's reaction: whatever it turns the Ready condition into.
    let reacted = ctx
        .monitor
        .wait_object(ns, NAME, "a reaction to the malformed answers", LONG, |o| {
            o.is_some_and(|o| cond_reason(o, "Ready") != "InProgress")
        })
        .await?
        .context("object")?;
    tokio::time::sleep(ctx.scale.storm.saturating_sub(began.elapsed())).await;
    let during = ctx
        .monitor
        .fresh()
        .await?
        .get(ns, NAME)
        .cloned()
        .context("object")?;
    let after = ctx.emulator.stats();
    let window = began.elapsed();
    ctx.emulator.clear_faults();
    Ok(Reaction {
        reason: cond_reason(&reacted, "Ready").to_owned(),
        reacted,
        during,
        window,
        malformed_gets: delta(
            &before,
            &after,
            Operation::GetBatchEvaluation,
            OUTCOME_MALFORMED,
        ),
    })
}

/// The condition and events name the problem; the operator kept polling, at its pace.
async fn check_reaction(
    ctx: &Ctx<'_>,
    kind: MalformedKind,
    ns: &str,
    r: &Reaction,
    row: &mut Row,
) -> anyhow::Result<()> {
    let reason = &r.reason;
    let events = ctx.cluster.events_for(ns, NAME).await?;
    let status = &r.during["status"];
    row.note(format!(
        "Ready=False {reason} ({:?}); remoteStatus {:?}, batchEvaluationId {:?}; events: {:?}",
        cond_message(&r.reacted, "Ready"),
        status.get("remoteStatus"),
        status.get("batchEvaluationId"),
        events
            .iter()
            .map(|(t, r, _)| format!("{t} {r}"))
            .collect::<Vec<_>>()
    ));
    if let Some(expected) = expected_reason(kind) {
        ensure!(
            reason == expected,
            "Ready reason {reason}, expected {expected}"
        );
    }
    ensure!(
        events.iter().any(|(_, r, _)| r == reason
            || (kind == MalformedKind::UnknownStatus && r == "Archived")
            || r == "MalformedResponse"),
        "an event about the malformed answers: {events:?}"
    );
    // Still retrying, at its pace: not wedged, no storm.
    let (gets, window) = (r.malformed_gets, r.window);
    ensure!(
        gets >= 2,
        "the operator kept polling ({gets} Gets in {window:?})"
    );
    let bound = (ATTEMPTS_PER_OP * (window.as_secs_f64() / MIN_REQUEUE_SECS + 2.0)).ceil();
    #[allow(clippy::cast_precision_loss)]
    let n = gets as f64;
    ensure!(n <= bound, "{gets} Gets in {window:?} (bound {bound})");
    Ok(())
}
