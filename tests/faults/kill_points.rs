//! SIGKILL at every lifecycle step: one row of data per kill point (how to reach it, what the
//! kill must leave behind, what the restarted operator must end with), and one scenario that
//! runs any row.

use std::time::{Duration, Instant};

use agentcore_emulator::{
    FaultConfig, JobInfo, Operation, TAG_DELETE_DURATION, TAG_JOB_DURATION, TAG_STOP_DURATION,
};
use agentcore_testenv::OperatorProcess;
use anyhow::{Context as _, ensure};
use serde_json::Value;

use crate::{
    Ctx, LONG,
    lifecycle::{delete, named_jobs, token_jobs, wait_gone, wait_in_progress, wait_ready},
    support::{
        faults::{hold_after, latency},
        manifest,
        object::{client_token, deleting, has_finalizer, status_str, str_at},
        report::Row,
        wait::poll,
    },
};

/// How long the emulator holds a call around the kill.
const HELD: Duration = Duration::from_secs(15);

/// How the scenario gets to the moment of the kill.
#[derive(Clone, Copy, Debug)]
enum Reach {
    /// The finalizer is stored (Start is held before it is performed).
    Finalizer,
    /// The finalizer is stored and the emulator holds a Start for the object.
    StartInFlight,
    /// The job exists (its Start's answer is held).
    JobCreated,
    /// Deleted while running: the job is STOPPING.
    Stopping,
    /// Ready, then deleted with Delete's answer held (the faults are set then): the job has
    /// this status.
    DeleteAnswered(&'static str),
}

/// What the kill must leave behind, checked while the operator is down.
#[derive(Clone, Copy, Debug)]
enum Left {
    /// No job, and the finalizer stored.
    NoJob,
    /// No job id recorded in the status.
    NoIdRecorded,
    /// The object deleted but held by the finalizer.
    HeldByFinalizer,
}

/// What the restarted operator must end with.
#[derive(Clone, Copy, Debug)]
enum End {
    /// Ready with exactly one job, recorded in the status (and, with a name, one job of it).
    Ready { name: Option<&'static str> },
    /// The object gone and its one job gone.
    Gone,
}

pub struct KillPoint {
    slug: &'static str,
    title: &'static str,
    extra_spec: &'static str,
    tags: &'static [(&'static str, &'static str)],
    /// The call the emulator holds, before (latency) or after (hold) performing it.
    hold: Option<(Operation, Hold)>,
    faults_text: &'static str,
    reach: Reach,
    left: Left,
    end: End,
}

#[derive(Clone, Copy, Debug)]
enum Hold {
    Before,
    After,
}

const START: Operation = Operation::StartBatchEvaluation;
const DELETE: Operation = Operation::DeleteBatchEvaluation;

pub const KILL_POINTS: [KillPoint; 7] = [
    KillPoint {
        slug: "finalizer",
        title: "right after the finalizer is added",
        extra_spec: "",
        tags: &[],
        hold: Some((START, Hold::Before)),
        faults_text: "1 SIGKILL; Start held 15 s before the action",
        reach: Reach::Finalizer,
        left: Left::NoJob,
        end: End::Ready { name: None },
    },
    KillPoint {
        slug: "start-in-flight",
        title: "while Start is in flight",
        extra_spec: "",
        tags: &[],
        hold: Some((START, Hold::Before)),
        faults_text: "1 SIGKILL; Start held 15 s before the action",
        reach: Reach::StartInFlight,
        left: Left::NoJob,
        end: End::Ready { name: None },
    },
    KillPoint {
        slug: "start-returned",
        title: "after Start returned, before status is written",
        extra_spec: "",
        tags: &[],
        hold: Some((START, Hold::After)),
        faults_text: "1 SIGKILL; Start performed, answer held 15 s",
        reach: Reach::JobCreated,
        left: Left::NoIdRecorded,
        end: End::Ready { name: None },
    },
    KillPoint {
        slug: "start-returned-named",
        title: "after Start returned, before status is written (user-chosen name)",
        extra_spec: "  batchEvaluationName: kill_named_victim\n",
        tags: &[],
        hold: Some((START, Hold::After)),
        faults_text: "1 SIGKILL; Start performed, answer held 15 s",
        reach: Reach::JobCreated,
        left: Left::NoIdRecorded,
        end: End::Ready {
            name: Some("kill_named_victim"),
        },
    },
    KillPoint {
        slug: "stopping",
        title: "during STOPPING",
        extra_spec: "",
        tags: &[(TAG_JOB_DURATION, "120s"), (TAG_STOP_DURATION, "8s")],
        hold: None,
        faults_text: "1 SIGKILL while STOPPING (8 s)",
        reach: Reach::Stopping,
        left: Left::HeldByFinalizer,
        end: End::Gone,
    },
    KillPoint {
        slug: "deleting",
        title: "after Delete returned (DELETING), before the finalizer is removed",
        extra_spec: "",
        tags: &[(TAG_DELETE_DURATION, "20s")],
        hold: Some((DELETE, Hold::After)),
        faults_text: "1 SIGKILL; Delete performed, answer held 15 s",
        reach: Reach::DeleteAnswered("DELETING"),
        left: Left::HeldByFinalizer,
        end: End::Gone,
    },
    KillPoint {
        slug: "deleted",
        title: "after the job is gone, before the finalizer is removed",
        extra_spec: "",
        tags: &[(TAG_DELETE_DURATION, "200ms")],
        hold: Some((DELETE, Hold::After)),
        faults_text: "1 SIGKILL; Delete performed, answer held 15 s",
        reach: Reach::DeleteAnswered(JobInfo::GONE),
        left: Left::HeldByFinalizer,
        end: End::Gone,
    },
];

impl KillPoint {
    fn faults(&self) -> FaultConfig {
        match self.hold {
            None => FaultConfig::default(),
            Some((op, Hold::Before)) => latency(op, HELD),
            Some((op, Hold::After)) => hold_after(op, HELD),
        }
    }

    /// The faults go in before the object is created, unless reaching the point sets them.
    fn faults_at_creation(&self) -> bool {
        self.hold.is_some() && !matches!(self.reach, Reach::DeleteAnswered(_))
    }
}

/// One object, one kill at `kp`, one restart; the row says what happened.
pub async fn run(ctx: &Ctx<'_>, operator: &mut OperatorProcess, kp: &KillPoint) -> Row {
    let ns = format!("kill-{}", kp.slug);
    let mut row = Row::new(format!("SIGKILL {}", kp.title), &[&ns]);
    row.lifecycles = 1;
    row.faults = kp.faults_text.to_owned();
    let result = scenario(ctx, operator, kp, &ns, &mut row).await;
    row.check("scenario", result);
    ctx.emulator.clear_faults();
    if !operator.is_running() {
        let restarted = operator.restart().await;
        row.check(
            "restarting the operator",
            restarted.map_err(anyhow::Error::from),
        );
    }
    row
}

const NAME: &str = "victim";

async fn scenario(
    ctx: &Ctx<'_>,
    operator: &mut OperatorProcess,
    kp: &KillPoint,
    ns: &str,
    row: &mut Row,
) -> anyhow::Result<()> {
    ctx.cluster.create_namespace(ns).await?;
    if kp.faults_at_creation() {
        ctx.emulator.set_faults(&kp.faults())?;
    }
    ctx.cluster
        .apply(&manifest(ns, NAME, kp.extra_spec, kp.tags))
        .await?;
    let obj = read_object(ctx, ns, "created", |_| true).await?;
    let uid = str_at(&obj, "/metadata/uid").to_owned();
    reach(ctx, kp, ns, &uid).await?;
    operator.kill_hard();
    let at_kill = read_object(ctx, ns, "readable", |_| true).await?;
    ctx.emulator.clear_faults();
    check_left(ctx, kp.left, ns, &uid, &at_kill).await?;
    operator.restart().await?;
    let restarted = Instant::now();
    let job = check_end(ctx, kp.end, ns, &uid).await?;
    row.converged(restarted.elapsed());
    row.note(format!(
        "after the restart: job {} {}, {} Stop and {} Delete call(s)",
        job.id, job.status, job.stop_calls, job.delete_calls
    ));
    Ok(())
}

/// Reads the victim straight from the API server, polling fast, until `check` holds.
async fn read_object(
    ctx: &Ctx<'_>,
    ns: &str,
    what: &str,
    check: impl Fn(&Value) -> bool,
) -> anyhow::Result<Value> {
    let api = ctx.cluster.bevals(ns);
    let check = &check;
    let what = format!("{ns}/{NAME}: {what}");
    Ok(
        agentcore_testenv::wait_until(what, LONG, Duration::from_millis(50), || {
            let api = api.clone();
            async move {
                let obj = serde_json::to_value(api.get_opt(NAME).await.ok()??).ok()?;
                check(&obj).then_some(obj)
            }
        })
        .await?,
    )
}

/// The status of the object's job, once it has one.
fn job_status(ctx: &Ctx<'_>, uid: &str) -> Option<String> {
    token_jobs(ctx, uid).first().map(|j| j.status.clone())
}

/// Waits until the object's job has `status`.
async fn job_reaches(ctx: &Ctx<'_>, uid: &str, status: &str) -> anyhow::Result<()> {
    poll(&format!("the job to be {status}"), LONG, || {
        job_status(ctx, uid).filter(|s| s == status)
    })
    .await?;
    Ok(())
}

async fn reach(ctx: &Ctx<'_>, kp: &KillPoint, ns: &str, uid: &str) -> anyhow::Result<()> {
    match kp.reach {
        Reach::Finalizer => {
            read_object(ctx, ns, "the finalizer", has_finalizer).await?;
        }
        Reach::StartInFlight => {
            read_object(ctx, ns, "the finalizer", has_finalizer).await?;
            let token = client_token(uid);
            poll("the emulator to receive the object's Start", LONG, || {
                let ops = ctx.emulator.object_ops();
                (ops.get(&token)?.count(START) > 0).then_some(())
            })
            .await?;
            // The request is on the wire and the emulator sits on it.
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        Reach::JobCreated => {
            poll("the job to exist", LONG, || job_status(ctx, uid)).await?;
        }
        Reach::Stopping => {
            wait_in_progress(ctx, ns, NAME).await?;
            delete(ctx, ns, NAME).await?;
            job_reaches(ctx, uid, "STOPPING").await?;
        }
        Reach::DeleteAnswered(status) => {
            wait_ready(ctx, ns, NAME, "Ready").await?;
            ctx.emulator.set_faults(&kp.faults())?;
            delete(ctx, ns, NAME).await?;
            job_reaches(ctx, uid, status).await?;
        }
    }
    Ok(())
}

/// What the kill left behind, and that the finalizer holds while the operator is down.
async fn check_left(
    ctx: &Ctx<'_>,
    left: Left,
    ns: &str,
    uid: &str,
    at_kill: &Value,
) -> anyhow::Result<()> {
    match left {
        Left::NoJob => {
            let jobs = token_jobs(ctx, uid);
            ensure!(
                jobs.is_empty(),
                "precondition: the Start must not have been performed at the kill: {jobs:?}"
            );
            ensure!(has_finalizer(at_kill), "the finalizer is stored");
        }
        Left::NoIdRecorded => {
            ensure!(
                status_str(at_kill, "batchEvaluationId").is_none(),
                "precondition: the id must not be recorded at the kill: {}",
                at_kill["status"]
            );
        }
        Left::HeldByFinalizer => {
            tokio::time::sleep(Duration::from_secs(1)).await;
            let held = read_object(ctx, ns, "readable", |_| true).await?;
            ensure!(
                has_finalizer(&held) && deleting(&held),
                "the finalizer holds the object while the operator is down"
            );
        }
    }
    Ok(())
}

/// What the restarted operator ended with; returns the object's one job.
async fn check_end(ctx: &Ctx<'_>, end: End, ns: &str, uid: &str) -> anyhow::Result<JobInfo> {
    match end {
        End::Ready { name } => {
            let obj = wait_ready(ctx, ns, NAME, "Ready after the restart")
                .await
                .context("the object is there")?;
            let jobs = token_jobs(ctx, uid);
            ensure!(jobs.len() == 1, "exactly one job for the object: {jobs:?}");
            ensure!(
                status_str(&obj, "batchEvaluationId") == Some(jobs[0].id.as_str()),
                "the status records the one job: {}",
                obj["status"]
            );
            if let Some(name) = name {
                let named = named_jobs(ctx, name);
                ensure!(named.len() == 1, "one job under the chosen name: {named:?}");
            }
            Ok(jobs[0].clone())
        }
        End::Gone => {
            wait_gone(ctx, ns, NAME, "gone after the restart", LONG).await?;
            let jobs = token_jobs(ctx, uid);
            ensure!(
                jobs.len() == 1 && jobs[0].is_gone(),
                "the one job is gone: {jobs:?}"
            );
            Ok(jobs[0].clone())
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    #[test]
    fn every_kill_point_is_one_row_with_consistent_faults() {
        let slugs: BTreeSet<_> = KILL_POINTS.iter().map(|k| k.slug).collect();
        assert_eq!(slugs.len(), KILL_POINTS.len(), "slugs name namespaces");
        for kp in &KILL_POINTS {
            // A held Start must be in force before the object exists, and such an object ends
            // Ready; a held Delete goes in once the object is Ready, and such an object ends gone.
            let holds_start = matches!(kp.hold, Some((START, _)));
            assert_eq!(kp.faults_at_creation(), holds_start, "{}", kp.slug);
            assert_eq!(
                matches!(kp.end, End::Ready { .. }),
                holds_start,
                "{}",
                kp.slug
            );
            let sets_own = matches!(kp.reach, Reach::DeleteAnswered(_));
            assert_eq!(
                sets_own,
                matches!(kp.hold, Some((DELETE, _))),
                "{}",
                kp.slug
            );
            assert_eq!(kp.faults().0.is_empty(), kp.hold.is_none(), "{}", kp.slug);
        }
    }
}
