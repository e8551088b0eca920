//! Lifecycles: an object applied, brought to a state, and (mostly) deleted, as the AWS-fault and
//! API-server-restart scenarios run them by the dozen; and the object helpers scenarios share.

use std::time::{Duration, Instant};

use agentcore_emulator::JobInfo;
use futures::future::join_all;
use serde_json::Value;

use crate::{
    Ctx, LONG, PATIENCE,
    budget::{call_budget, per},
    support::{
        faults::{runs, stops_in},
        manifest,
        object::{client_token, ready, remote_is},
        report::Row,
    },
};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Plan {
    /// Runs to COMPLETED, Ready, then deleted: Delete of a terminal job.
    Complete,
    /// Deleted while IN_PROGRESS: Stop, STOPPING, STOPPED, Delete.
    StopRunning,
    /// Runs to Ready and stays for the quiet windows.
    Keep,
}

impl Plan {
    fn cycle(i: usize) -> Self {
        [Plan::Complete, Plan::StopRunning, Plan::Keep][i % 3]
    }

    fn tags(self) -> Vec<(&'static str, &'static str)> {
        match self {
            Plan::Complete | Plan::Keep => vec![runs("3s")],
            Plan::StopRunning => vec![runs("60s"), stops_in("1s")],
        }
    }
}

pub struct Outcome {
    name: String,
    /// Creation to the final state (Ready for `Keep`, gone otherwise).
    took: Duration,
    error: Option<String>,
}

pub async fn lifecycle(ctx: &Ctx<'_>, ns: &str, name: &str, plan: Plan) -> Outcome {
    let started = Instant::now();
    let result: anyhow::Result<()> = async {
        ctx.cluster
            .apply_retry(&manifest(ns, name, "", &plan.tags()), PATIENCE)
            .await?;
        if plan == Plan::StopRunning {
            wait_in_progress(ctx, ns, name).await?;
        } else {
            wait_ready(ctx, ns, name, "Ready").await?;
        }
        if plan == Plan::Keep {
            return Ok(());
        }
        ctx.cluster
            .kubectl_retry(&delete_args(ns, name, true), None, PATIENCE)
            .await?;
        wait_gone(ctx, ns, name, "gone", LONG).await
    }
    .await;
    Outcome {
        name: name.to_owned(),
        took: started.elapsed(),
        error: result.err().map(|e| format!("{e:#}")),
    }
}

/// Runs `n` lifecycles at once (plans cycling Complete, StopRunning, Keep).
pub async fn lifecycles(ctx: &Ctx<'_>, ns: &str, prefix: &str, n: usize) -> Vec<Outcome> {
    join_all((0..n).map(|i| {
        let name = format!("{prefix}-{i}");
        async move { lifecycle(ctx, ns, &name, Plan::cycle(i)).await }
    }))
    .await
}

/// Folds lifecycle outcomes into a row: convergence, stuck objects, calls per lifecycle.
pub fn record_lifecycles(row: &mut Row, outcomes: &[Outcome], calls: Option<u64>) {
    row.lifecycles += outcomes.len();
    let mut budget = 0.0;
    for o in outcomes {
        budget += call_budget(o.took);
        match &o.error {
            None => row.converged(o.took),
            Some(e) => {
                row.stuck += 1;
                row.fail(format!("{}: {e}", o.name));
            }
        }
    }
    if let Some(calls) = calls.filter(|_| !outcomes.is_empty()) {
        #[allow(clippy::cast_precision_loss)]
        let n = outcomes.len() as f64;
        row.calls = Some((per(calls, outcomes.len()), budget / n));
    }
}

/// `kubectl delete beval NAME -n NS --wait=false` (`--ignore-not-found` if `lenient`).
pub fn delete_args<'a>(ns: &'a str, name: &'a str, lenient: bool) -> Vec<&'a str> {
    let mut args = vec!["delete", "beval", name, "-n", ns, "--wait=false"];
    if lenient {
        args.push("--ignore-not-found");
    }
    args
}

/// Deletes one object without waiting for it to go.
pub async fn delete(ctx: &Ctx<'_>, ns: &str, name: &str) -> anyhow::Result<()> {
    ctx.cluster
        .kubectl_ok(&delete_args(ns, name, false))
        .await?;
    Ok(())
}

/// `kubectl annotate` with the force-release escape hatch.
pub async fn force_release(ctx: &Ctx<'_>, ns: &str, name: &str) -> anyhow::Result<()> {
    ctx.cluster
        .kubectl_ok(&[
            "annotate",
            "--overwrite",
            "beval",
            name,
            "-n",
            ns,
            "evals.agentcore.dev/force-release=true",
        ])
        .await?;
    Ok(())
}

/// Waits (on the monitor) until the object is Ready; returns it.
pub async fn wait_ready(ctx: &Ctx<'_>, ns: &str, name: &str, what: &str) -> anyhow::Result<Value> {
    let obj = ctx
        .monitor
        .wait_object(ns, name, what, LONG, |o| o.is_some_and(ready))
        .await?;
    obj.ok_or_else(|| anyhow::anyhow!("{ns}/{name} vanished"))
}

/// Waits (on the monitor) until the object's job runs; returns the object.
pub async fn wait_in_progress(ctx: &Ctx<'_>, ns: &str, name: &str) -> anyhow::Result<Value> {
    let obj = ctx
        .monitor
        .wait_object(ns, name, "IN_PROGRESS", LONG, |o| {
            remote_is(o, "IN_PROGRESS")
        })
        .await?;
    obj.ok_or_else(|| anyhow::anyhow!("{ns}/{name} vanished"))
}

/// Waits (on the monitor) until the object is gone.
pub async fn wait_gone(
    ctx: &Ctx<'_>,
    ns: &str,
    name: &str,
    what: &str,
    timeout: Duration,
) -> anyhow::Result<()> {
    ctx.monitor
        .wait_object(ns, name, what, timeout, |o| o.is_none())
        .await?;
    Ok(())
}

/// The jobs started for the object with `uid` (by its client token).
pub fn token_jobs(ctx: &Ctx<'_>, uid: &str) -> Vec<JobInfo> {
    let token = client_token(uid);
    ctx.emulator
        .jobs()
        .into_iter()
        .filter(|j| j.client_token.as_deref() == Some(token.as_str()))
        .collect()
}

/// The jobs under one remote name.
pub fn named_jobs(ctx: &Ctx<'_>, name: &str) -> Vec<JobInfo> {
    ctx.emulator
        .jobs()
        .into_iter()
        .filter(|j| j.name == name)
        .collect()
}
