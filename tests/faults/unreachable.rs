//! An operator whose AWS endpoint does not answer (a closed loopback port): it must say so in a
//! condition and an event, back off, and still let the object go (with the escape hatch,
//! because it cannot know whether an unanswered Start created a job).

use std::time::{Duration, Instant};

use agentcore_testenv::{ControlPlane, OperatorProcess};
use anyhow::{Context as _, ensure};

use crate::{
    Ctx, LONG,
    lifecycle::{delete, force_release, wait_gone},
    secrets::{SecretScan, operator_env},
    support::{
        free_port, manifest,
        metrics::{aws_operations, scrape},
        object::{cond_message, cond_reason, cond_status, has_finalizer, status_str},
        report::Row,
        start_operator_with, wait,
    },
};

const NS: &str = "no-endpoint";
const NAME: &str = "unreachable";

/// The row, the second operator's log, and what its /metrics scrapes found.
pub struct Unreachable {
    pub row: Row,
    pub logs: Vec<(String, String)>,
    pub scan: SecretScan,
}

/// The main operator watches every namespace: it steps aside (is stopped) for this scenario.
pub async fn endpoint(
    ctx: &Ctx<'_>,
    plane: &ControlPlane,
    main: &mut OperatorProcess,
) -> Unreachable {
    let mut out = Unreachable {
        row: Row::new("an AWS endpoint that does not answer (127.0.0.1:1)", &[NS]),
        logs: Vec::new(),
        scan: SecretScan::default(),
    };
    out.row.lifecycles = 1;
    out.row.faults = "every AWS call refused".to_owned();
    out.row.peak_unmeasurable =
        Some("no emulator behind 127.0.0.1:1; the backoff bound counts its operations instead");
    main.terminate().await;
    let second = free_port().and_then(|port| {
        let args = [
            "--namespace".to_owned(),
            NS.to_owned(),
            "--metrics-addr".to_owned(),
            format!("127.0.0.1:{port}"),
        ];
        // Trace: the most the AWS SDK ever logs, with few calls to log.
        let env = operator_env("trace");
        let op = start_operator_with(
            plane,
            "http://127.0.0.1:1",
            "operator-no-endpoint",
            &args,
            &env,
        )?;
        Ok((op, port))
    });
    let (mut second, port) = match second {
        Ok(s) => s,
        Err(e) => {
            out.row.fail(format!("second operator: {e:#}"));
            return out;
        }
    };
    let result = scenario(ctx, port, &mut out).await;
    out.row.check("scenario", result);
    second.terminate().await;
    out.logs.push((
        "operator log".to_owned(),
        second.log_contents().unwrap_or_default(),
    ));
    out
}

async fn scenario(ctx: &Ctx<'_>, port: u16, out: &mut Unreachable) -> anyhow::Result<()> {
    wait::serving(port, LONG).await?;
    ctx.cluster.create_namespace(NS).await?;
    let created = Instant::now();
    ctx.cluster.apply(&manifest(NS, NAME, "", &[])).await?;
    let obj = ctx
        .monitor
        .wait_object(NS, NAME, "a connection failure condition", LONG, |o| {
            o.is_some_and(|o| matches!(cond_reason(o, "Ready"), "ConnectionError" | "Timeout"))
        })
        .await?
        .context("object")?;
    let reason = cond_reason(&obj, "Ready").to_owned();
    out.row.note(format!(
        "condition Ready=False {reason} after {:.1} s: {:?}",
        created.elapsed().as_secs_f64(),
        cond_message(&obj, "Ready")
    ));
    let events = ctx.cluster.events_for(NS, NAME).await?;
    ensure!(
        events
            .iter()
            .any(|(t, r, _)| t == "Warning" && *r == reason),
        "a Warning event {reason}: {events:?}"
    );
    backoff(ctx, port, out).await?;
    release(ctx, &mut out.row).await
}

/// Most operations a backoff lets through in `window`: consecutive failures wait at least
/// 0.5 × min(2^(n-1), 60) s.
fn backoff_bound(window: Duration) -> u64 {
    let mut bound = 1_u64;
    let mut elapsed = 0.0;
    let mut attempt = 1_i32;
    while elapsed <= window.as_secs_f64() {
        elapsed += 0.5 * 2_f64.powi(attempt - 1).min(60.0);
        attempt += 1;
        bound += 1;
    }
    bound
}

/// Backoff: counts the operator's AWS operations over a window.
async fn backoff(ctx: &Ctx<'_>, port: u16, out: &mut Unreachable) -> anyhow::Result<()> {
    let metrics = scrape(port).await?;
    out.scan.scan("operator /metrics", &metrics);
    let ops_before = aws_operations(&metrics);
    let window = ctx.scale.storm * 2;
    tokio::time::sleep(window).await;
    let metrics = scrape(port).await?;
    out.scan.scan("operator /metrics", &metrics);
    let ops = aws_operations(&metrics) - ops_before;
    let bound = backoff_bound(window);
    out.row.note(format!(
        "{ops} AWS operations in {} s while the endpoint refused connections (backoff bound {bound}); the SDK makes up to 3 attempts each",
        window.as_secs()
    ));
    ensure!(ops >= 1, "the operator keeps retrying (none in the window)");
    ensure!(
        ops <= bound,
        "{ops} operations in {window:?}: no backoff (bound {bound})"
    );
    Ok(())
}

/// Deletion: the operator cannot tell whether an unanswered Start created a job, so it must keep
/// the finalizer until it can ask, or until a person uses the escape hatch.
async fn release(ctx: &Ctx<'_>, row: &mut Row) -> anyhow::Result<()> {
    delete(ctx, NS, NAME).await?;
    let deleting_since = Instant::now();
    tokio::time::sleep(ctx.scale.storm).await;
    let held = ctx
        .monitor
        .fresh()
        .await?
        .get(NS, NAME)
        .cloned()
        .context("the finalizer keeps the object while AWS cannot be asked")?;
    ensure!(has_finalizer(&held), "finalizer kept");
    row.note(format!(
        "after `kubectl delete`: still held {} s later with cleanupStep {:?}, Ready={} {}: the operator cannot tell whether an unanswered Start created a job, so it keeps the finalizer",
        deleting_since.elapsed().as_secs(),
        status_str(&held, "cleanupStep"),
        cond_status(&held, "Ready"),
        cond_reason(&held, "Ready")
    ));
    force_release(ctx, NS, NAME).await?;
    let annotated = Instant::now();
    wait_gone(ctx, NS, NAME, "gone after force-release", LONG).await?;
    row.converged(annotated.elapsed());
    let events = ctx.cluster.events_for(NS, NAME).await?;
    ensure!(
        events
            .iter()
            .any(|(t, r, _)| t == "Warning" && r == "ForceReleased"),
        "a Warning event ForceReleased: {events:?}"
    );
    row.note("released with evals.agentcore.dev/force-release (Warning event ForceReleased)");
    Ok(())
}
