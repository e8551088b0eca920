//! Input the schema cannot catch: a spec the service rejects, a name taken by someone else's
//! job, adoption of an id that does not exist.

use std::time::{Duration, Instant};

use anyhow::{Context as _, ensure};

use crate::{
    Ctx, LONG,
    budget::calls_between,
    lifecycle::{named_jobs, wait_gone},
    quiet,
    support::{
        faults::runs,
        invariants::{Invariant, Quiet},
        manifest,
        object::{cond_message, cond_reason, cond_status},
        report::Row,
    },
};

const NS: &str = "bad-input";
const FOREIGN_NAME: &str = "someone_elses_job";

/// Someone else's long job, under the name one of the objects will ask for.
async fn start_foreign_job(ctx: &Ctx<'_>) -> anyhow::Result<()> {
    use aws_sdk_bedrockagentcore::types::{CloudWatchLogsSource, DataSourceConfig};
    let (tag, duration) = runs("3600s");
    crate::support::sdk_client(&ctx.emulator.endpoint_url(), "AKIDSOMEONEELSE")
        .start_batch_evaluation()
        .batch_evaluation_name(FOREIGN_NAME)
        .tags(tag, duration)
        .data_source_config(DataSourceConfig::CloudWatchLogs(
            CloudWatchLogsSource::builder()
                .service_names("someone-else")
                .build()?,
        ))
        .send()
        .await?;
    Ok(())
}

/// The three objects: name, manifest, the Stalled reason they must end with.
fn cases() -> [(&'static str, String, &'static str); 3] {
    [
        (
            "rejected",
            manifest(NS, "rejected", "", &[runs("not-a-duration")]),
            "InvalidSpec",
        ),
        (
            "collision",
            manifest(
                NS,
                "collision",
                &format!("  batchEvaluationName: {FOREIGN_NAME}\n"),
                &[],
            ),
            "NameConflict",
        ),
        (
            "ghost",
            manifest(
                NS,
                "ghost",
                "  adoptBatchEvaluationId: ghost-job-0123456789\n",
                &[],
            ),
            "AdoptionTargetNotFound",
        ),
    ]
}

pub async fn run(ctx: &Ctx<'_>) -> Row {
    let mut row = Row::new(
        "bad input: rejected at Start, name collision, adoption of a missing id",
        &[NS],
    );
    row.lifecycles = 3;
    row.faults = "3 bad objects".to_owned();
    let result = scenario(ctx, &mut row).await;
    row.check("scenario", result);
    row
}

async fn scenario(ctx: &Ctx<'_>, row: &mut Row) -> anyhow::Result<()> {
    ctx.cluster.create_namespace(NS).await?;
    start_foreign_job(ctx).await?;
    let cases = cases();
    let created = Instant::now();
    for (_, yaml, _) in &cases {
        ctx.cluster.apply(yaml).await?;
    }
    for (name, _, reason) in &cases {
        let obj = ctx
            .monitor
            .wait_object(NS, name, &format!("Stalled {reason}"), LONG, |o| {
                o.is_some_and(|o| {
                    cond_status(o, "Stalled") == "True" && cond_reason(o, "Stalled") == *reason
                })
            })
            .await?
            .context("object")?;
        row.converged(created.elapsed());
        let events = ctx.cluster.events_for(NS, name).await?;
        ensure!(
            events.iter().any(|(t, r, _)| t == "Warning" && r == reason),
            "{name}: a Warning event {reason}: {events:?}"
        );
        row.note(format!(
            "{name}: Stalled=True {reason}: {:?}",
            cond_message(&obj, "Stalled")
        ));
    }
    no_storm(ctx, row).await?;
    // Deletion still possible, and the foreign job is left alone.
    let deleting = Instant::now();
    ctx.cluster
        .kubectl_ok(&[
            "delete",
            "beval",
            "rejected",
            "collision",
            "ghost",
            "-n",
            NS,
            "--wait=false",
        ])
        .await?;
    for (name, _, _) in &cases {
        wait_gone(ctx, NS, name, "gone", LONG).await?;
    }
    row.converged(deleting.elapsed());
    let foreign = named_jobs(ctx, FOREIGN_NAME);
    ensure!(
        foreign.len() == 1
            && !foreign[0].is_gone()
            && foreign[0].stop_calls == 0
            && foreign[0].delete_calls == 0,
        "the foreign job is untouched: {foreign:?}"
    );
    Ok(())
}

/// No retry storm: a stalled object costs no AWS call and no write.
async fn no_storm(ctx: &Ctx<'_>, row: &mut Row) -> anyhow::Result<()> {
    tokio::time::sleep(Duration::from_secs(2)).await;
    let before = Quiet::probe(ctx.cluster, ctx.emulator).await?;
    tokio::time::sleep(ctx.scale.storm).await;
    let after = Quiet::probe(ctx.cluster, ctx.emulator).await?;
    let moved = before.moved(&after, "the bad-input window");
    row.note(format!(
        "{} AWS calls and {} writes in the {} s after the three stalls",
        calls_between(&before.stats, &after.stats),
        moved
            .iter()
            .filter(|v| v.invariant == Invariant::I6)
            .count(),
        ctx.scale.storm.as_secs()
    ));
    quiet::charge(ctx, NS, moved);
    Ok(())
}
