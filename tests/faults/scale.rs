//! Many objects created at once, left Ready through a quiet window, then deleted at once.

use std::time::Instant;

use agentcore_emulator::JobInfo;
use anyhow::ensure;

use crate::{
    Ctx, LONG, PATIENCE,
    budget::{call_budget, calls_between, per},
    quiet,
    support::{faults::runs, manifest, object::ready, report::Row},
};

const NS: &str = "mass";

/// The load row and the quiet-window row of the same objects.
pub async fn mass(ctx: &Ctx<'_>) -> Vec<Row> {
    let n = ctx.scale.mass;
    let mut row = Row::new(format!("{n} objects created and deleted at once"), &[NS]);
    row.lifecycles = n;
    row.faults = "load".to_owned();
    let mut quiet = Row::new(
        format!("quiet: {n} terminal objects and their events"),
        &["quiet-mass"],
    );
    quiet.faults = "none".to_owned();
    if let Err(e) = scenario(ctx, &mut row, &mut quiet).await {
        row.stuck = ctx
            .monitor
            .fresh()
            .await
            .map(|s| s.in_namespace(NS).count())
            .unwrap_or(0);
        row.fail(format!("{e:#}"));
    }
    vec![row, quiet]
}

async fn scenario(ctx: &Ctx<'_>, row: &mut Row, quiet_row: &mut Row) -> anyhow::Result<()> {
    let n = ctx.scale.mass;
    ctx.cluster.create_namespace(NS).await?;
    let yaml: Vec<String> = (0..n)
        .map(|i| manifest(NS, &format!("m-{i}"), "", &[runs("3s")]))
        .collect();
    let before = ctx.emulator.stats();
    let created = Instant::now();
    ctx.cluster
        .apply_retry(&yaml.join("---\n"), PATIENCE)
        .await?;
    ctx.monitor
        .wait(&format!("{n} objects Ready"), LONG * 2, |s| {
            s.in_namespace(NS).filter(|o| ready(o)).count() == n
        })
        .await?;
    let to_ready = created.elapsed();
    let mid = ctx.emulator.stats();
    *quiet_row = quiet::labelled(
        ctx,
        &format!("{n} terminal objects and their events"),
        "mass",
        None,
    )
    .await;
    let deleting = Instant::now();
    let mid2 = ctx.emulator.stats();
    ctx.cluster
        .kubectl_retry(
            &["delete", "bevals", "--all", "-n", NS, "--wait=false"],
            None,
            PATIENCE,
        )
        .await?;
    ctx.monitor
        .wait(&format!("{n} objects gone"), LONG * 2, |s| {
            s.in_namespace(NS).next().is_none()
        })
        .await?;
    let to_gone = deleting.elapsed();
    let after = ctx.emulator.stats();
    row.converged(to_ready.max(to_gone));
    row.note(format!(
        "all {n} Ready {:.1} s after one `kubectl apply`; all gone {:.1} s after one `kubectl delete --all`",
        to_ready.as_secs_f64(),
        to_gone.as_secs_f64()
    ));
    let calls = calls_between(&before, &mid) + calls_between(&mid2, &after);
    row.calls = Some((per(calls, n), call_budget(to_ready + to_gone)));
    let jobs: Vec<_> = ctx
        .emulator
        .jobs()
        .into_iter()
        .filter(|j| j.name.starts_with("mass_m_"))
        .collect();
    ensure!(
        jobs.len() == n && jobs.iter().all(JobInfo::is_gone),
        "{n} jobs, all gone: {} jobs, {} live",
        jobs.len(),
        jobs.iter().filter(|j| !j.is_gone()).count()
    );
    Ok(())
}
