//! The outcome of a reconcile, from a snapshot and what driving did: what is written, told,
//! exported, and when the object comes back.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::Resource;

use super::*;
use crate::{
    api::{BatchEvaluation, BatchEvaluationSpec, FINALIZER},
    batch_evaluation::drive::Failure,
    remote::{Call, RemoteJob},
};

const ID: &str = "demo-0123456789";
const POLL: Duration = Duration::from_secs(30);

fn now() -> Timestamp {
    "2026-11-30T12:00:00Z".parse().expect("timestamp")
}

fn object(status: Option<BatchEvaluationStatus>) -> BatchEvaluation {
    let mut obj = BatchEvaluation::new("demo", BatchEvaluationSpec::default());
    let meta = obj.meta_mut();
    meta.namespace = Some("team-a".into());
    meta.uid = Some("0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0".into());
    meta.generation = Some(1);
    meta.finalizers = Some(vec![FINALIZER.into()]);
    obj.status = status;
    obj
}

fn snapshot(obj: &BatchEvaluation) -> Snapshot {
    Snapshot::of(
        obj,
        "us-west-2",
        &crate::tenancy::Tenancy::default(),
        POLL,
        now(),
    )
    .expect("snapshot")
}

fn job(status: RemoteStatus) -> RemoteJob {
    RemoteJob {
        id: ID.into(),
        arn: format!("arn:aws:bedrock-agentcore:us-west-2:123456789012:batch-evaluation/{ID}"),
        name: "demo".into(),
        status,
        created_at: Some("2026-11-30T11:00:00Z".into()),
        updated_at: Some("2026-11-30T11:30:00Z".into()),
        results: None,
        error_details: None,
    }
}

fn driven(step: Step, job: Option<RemoteJob>, acted: Vec<Acted>) -> Driven {
    Driven {
        step,
        job,
        failure: None,
        acted,
    }
}

fn reasons(outcome: &Outcome) -> Vec<(&str, bool)> {
    outcome
        .events
        .iter()
        .map(|e| (e.reason.as_str(), e.type_ == EventType::Warning))
        .collect()
}

/// The status a first observation of a running job writes.
fn running_status() -> BatchEvaluationStatus {
    let obj = object(None);
    let first = outcome(
        &snapshot(&obj),
        &driven(
            Step::Wait(Wait::JobRunning),
            Some(job(RemoteStatus::InProgress)),
            Vec::new(),
        ),
        None,
        POLL,
        now(),
    );
    first.status.expect("a first observation is written")
}

#[test]
fn a_start_is_told_once_and_recorded() {
    let obj = object(None);
    let started = Acted::Started {
        name: "demo".into(),
        id: ID.into(),
    };
    let out = outcome(
        &snapshot(&obj),
        &driven(
            Step::Wait(Wait::JobRunning),
            Some(job(RemoteStatus::Pending)),
            vec![started],
        ),
        None,
        POLL,
        now(),
    );
    let status = out.status.clone().expect("the id is written at once");
    assert_eq!(status.batch_evaluation_id.as_deref(), Some(ID));
    assert_eq!(status.last_synced_at, Some(now().to_string()));
    // The Start event tells it; no second "Pending" event for the status it caused.
    assert_eq!(reasons(&out), [("Started", false)]);
    assert_eq!(out.requeue, Requeue::Poll(POLL));
    assert_eq!(out.label, "Waiting");
    assert!(matches!(out.metrics, MetricsUpdate::Set(_)));
}

#[test]
fn an_unchanged_job_costs_no_write_and_no_event() {
    let obj = object(Some(running_status()));
    let out = outcome(
        &snapshot(&obj),
        &driven(
            Step::Wait(Wait::JobRunning),
            Some(job(RemoteStatus::InProgress)),
            Vec::new(),
        ),
        None,
        POLL,
        now(),
    );
    assert_eq!(out.status, None);
    assert!(out.events.is_empty());
}

#[test]
fn a_recent_observation_writes_and_exports_nothing() {
    let mut status = running_status();
    status.last_synced_at = Some((now() - jiff::SignedDuration::from_secs(10)).to_string());
    let obj = object(Some(status));
    let snap = snapshot(&obj);
    assert!(snap.view.recently_observed);
    let out = outcome(
        &snap,
        &driven(Step::Wait(Wait::RecentlyObserved), None, Vec::new()),
        None,
        POLL,
        now(),
    );
    assert_eq!(out.status, None);
    assert_eq!(out.metrics, MetricsUpdate::Keep);
    assert_eq!(out.requeue, Requeue::After(Duration::from_secs(20)));
}

#[test]
fn an_accepted_delete_is_told_by_its_event_alone() {
    let mut obj = object(Some(running_status()));
    obj.meta_mut().deletion_timestamp = Some(Time(now()));
    let out = outcome(
        &snapshot(&obj),
        &driven(
            Step::Wait(Wait::Cleanup(CleanupStep::AwaitingRemoval)),
            Some(job(RemoteStatus::Deleting)),
            vec![Acted::DeleteRequested { id: ID.into() }],
        ),
        None,
        POLL,
        now(),
    );
    assert_eq!(out.status, None, "the next cleanup poll records the step");
    assert_eq!(reasons(&out), [("DeleteRequested", false)]);
    assert_eq!(out.requeue, Requeue::Poll(CLEANUP_POLL_INTERVAL));
    assert_eq!(out.label, "Cleaning");
}

#[test]
fn a_release_removes_the_finalizer_and_the_series_and_names_the_results() {
    let mut obj = object(Some(running_status()));
    obj.meta_mut().deletion_timestamp = Some(Time(now()));
    obj.spec.output = Some(crate::api::OutputConfig {
        cloud_watch: crate::api::CloudWatchOutput {
            log_group_name: Some("/agentcore/results".into()),
            ..Default::default()
        },
    });
    let out = outcome(
        &snapshot(&obj),
        &driven(Step::Release(Release::RemoteGone), None, Vec::new()),
        None,
        POLL,
        now(),
    );
    assert_eq!(out.release, Some(Release::RemoteGone));
    assert_eq!(out.metrics, MetricsUpdate::Remove);
    assert_eq!(out.status, None);
    assert_eq!(out.requeue, Requeue::AwaitChange);
    assert_eq!(out.label, "RemoteDeleted");
    assert_eq!(reasons(&out), [("RemoteDeleted", false)]);
    let note = out.events[0].note.as_deref().unwrap_or_default();
    assert!(note.contains("/agentcore/results"), "{note}");
}

#[test]
fn a_force_release_is_a_warning() {
    let mut obj = object(None);
    obj.meta_mut().deletion_timestamp = Some(Time(now()));
    let out = outcome(
        &snapshot(&obj),
        &driven(Step::Release(Release::ForceReleased), None, Vec::new()),
        None,
        POLL,
        now(),
    );
    assert_eq!(reasons(&out), [("ForceReleased", true)]);
}

#[test]
fn a_failing_call_is_written_warned_once_and_backed_off() {
    let obj = object(Some(running_status()));
    let mut throttled = driven(
        Step::Retry {
            call: Call::Get,
            kind: FailureKind::Throttled,
        },
        None,
        Vec::new(),
    );
    throttled.failure = Some(Failure {
        kind: FailureKind::Throttled,
        message: "slow down".into(),
    });
    let out = outcome(&snapshot(&obj), &throttled, None, POLL, now());
    assert_eq!(out.requeue, Requeue::Backoff(FailureKind::Throttled));
    assert_eq!(out.label, "Throttled");
    assert_eq!(reasons(&out), [("Throttled", true)]);
    // The same failure again: the condition is unchanged, nothing more is told or written.
    let again = object(out.status.clone());
    let out = outcome(&snapshot(&again), &throttled, None, POLL, now());
    assert_eq!(out.status, None);
    assert!(out.events.is_empty());
}

#[test]
fn a_failed_job_is_a_warning_and_a_stall() {
    let obj = object(Some(running_status()));
    let mut failed = job(RemoteStatus::Failed);
    failed.error_details = Some("no sessions found".into());
    let out = outcome(
        &snapshot(&obj),
        &driven(Step::Idle, Some(failed), Vec::new()),
        None,
        POLL,
        now(),
    );
    assert_eq!(reasons(&out), [("Failed", true), ("JobFailed", true)]);
    assert_eq!(out.requeue, Requeue::AwaitChange);
    assert_eq!(out.label, "Idle");
}

#[test]
fn a_completion_is_told_as_a_normal_event() {
    let obj = object(Some(running_status()));
    let out = outcome(
        &snapshot(&obj),
        &driven(Step::Idle, Some(job(RemoteStatus::Completed)), Vec::new()),
        None,
        POLL,
        now(),
    );
    assert_eq!(reasons(&out), [("Completed", false)]);
    let status = out.status.clone().expect("written");
    assert_eq!(status.completed_at.as_deref(), Some("2026-11-30T11:30:00Z"));
}

#[test]
fn the_step_limit_comes_back_soon() {
    let obj = object(Some(running_status()));
    let out = outcome(
        &snapshot(&obj),
        &driven(Step::Get { id: ID.into() }, None, Vec::new()),
        None,
        POLL,
        now(),
    );
    assert_eq!(out.requeue, Requeue::After(Duration::from_secs(1)));
    assert_eq!(out.label, "StepLimit");
}

fn place(position: usize) -> crate::batch_evaluation::queue::Place {
    crate::batch_evaluation::queue::Place {
        position,
        length: 3,
        region: "us-west-2".into(),
        blocker: crate::batch_evaluation::queue::Blocker::Limit {
            limit: 2,
            active: 2,
        },
    }
}

#[test]
fn a_queued_object_is_told_once_and_rechecks_without_aws() {
    let obj = object(None);
    let queued = driven(Step::Wait(Wait::Queued), None, Vec::new());
    let out = outcome(&snapshot(&obj), &queued, Some(&place(3)), POLL, now());
    let status = out.status.clone().expect("the place is written");
    let ready = status
        .conditions
        .iter()
        .find(|c| c.type_ == status::READY)
        .expect("Ready");
    assert_eq!(ready.reason, "Queued");
    assert!(
        ready.message.contains("position 3 of 3"),
        "{}",
        ready.message
    );
    assert_eq!(reasons(&out), [("Queued", false)]);
    assert_eq!(out.requeue, Requeue::After(QUEUE_RECHECK_INTERVAL));
    assert_eq!(out.label, "Queued");
    // It moved up: the position is rewritten, but the Queued event is not told again.
    let moved = outcome(
        &snapshot(&object(Some(status))),
        &queued,
        Some(&place(1)),
        POLL,
        now(),
    );
    assert!(moved.status.is_some());
    assert!(moved.events.is_empty());
}

#[test]
fn a_start_refused_for_quota_queues_and_probes_when_due_without_a_warning() {
    let obj = object(None);
    let mut refused = driven(Step::Wait(Wait::Queued), None, Vec::new());
    refused.failure = Some(Failure {
        kind: FailureKind::QuotaExceeded,
        message: "quota exceeded".into(),
    });
    let head = crate::batch_evaluation::queue::Place {
        position: 1,
        blocker: crate::batch_evaluation::queue::Blocker::Quota {
            since: now(),
            active: 2,
            retry_at: now() + jiff::SignedDuration::from_secs(10),
        },
        ..place(1)
    };
    let out = outcome(&snapshot(&obj), &refused, Some(&head), POLL, now());
    assert_eq!(out.requeue, Requeue::After(Duration::from_secs(10)));
    assert_eq!(reasons(&out), [("Queued", false)]);
    // Behind the head, nobody probes: they are woken when the queue moves.
    let behind = crate::batch_evaluation::queue::Place {
        position: 2,
        ..head
    };
    let out = outcome(&snapshot(&obj), &refused, Some(&behind), POLL, now());
    assert_eq!(out.requeue, Requeue::After(QUEUE_RECHECK_INTERVAL));
}

/// A job that completed with `score` for Builtin.Helpfulness.
fn scored_job(score: f64) -> RemoteJob {
    RemoteJob {
        results: Some(crate::api::EvaluationResults {
            total_sessions: Some(4),
            sessions_completed: Some(4),
            evaluators: vec![crate::api::EvaluatorResult {
                evaluator_id: Some("Builtin.Helpfulness".into()),
                average_score: Some(score),
                ..Default::default()
            }],
            ..Default::default()
        }),
        ..job(RemoteStatus::Completed)
    }
}

fn with_criteria(mut obj: BatchEvaluation, min: f64) -> BatchEvaluation {
    obj.spec.pass_criteria = Some(crate::api::PassCriteria {
        evaluators: vec![crate::api::EvaluatorCriterion {
            evaluator_id: "Builtin.Helpfulness".into(),
            min_average_score: min,
        }],
        ..Default::default()
    });
    obj
}

#[test]
fn the_verdict_is_told_once_exported_and_told_again_when_it_flips() {
    let obj = with_criteria(object(Some(running_status())), 0.7);
    let missed = outcome(
        &snapshot(&obj),
        &driven(Step::Idle, Some(scored_job(0.5)), Vec::new()),
        None,
        POLL,
        now(),
    );
    assert_eq!(
        reasons(&missed),
        [("Completed", false), ("CriteriaMissed", true)]
    );
    let MetricsUpdate::Set(metrics) = &missed.metrics else {
        panic!("metrics set");
    };
    assert_eq!(metrics.passed, Some(false));

    // The same verdict again (a later reconcile): nothing to tell.
    let recorded = missed.status.clone().expect("written");
    let again = outcome(
        &snapshot(&with_criteria(object(Some(recorded.clone())), 0.7)),
        &driven(Step::Idle, None, Vec::new()),
        None,
        POLL,
        now(),
    );
    assert!(again.status.is_none() && again.events.is_empty());

    // The criteria are relaxed: judged from status, told as a Normal event.
    let mut relaxed = with_criteria(object(Some(recorded)), 0.4);
    relaxed.meta_mut().generation = Some(2);
    let met = outcome(
        &snapshot(&relaxed),
        &driven(Step::Idle, None, Vec::new()),
        None,
        POLL,
        now(),
    );
    assert_eq!(reasons(&met), [("CriteriaMet", false)]);
    let MetricsUpdate::Set(metrics) = &met.metrics else {
        panic!("metrics set");
    };
    assert_eq!(metrics.passed, Some(true));
}

#[test]
fn a_running_job_with_criteria_exports_no_verdict() {
    let obj = with_criteria(object(None), 0.7);
    let out = outcome(
        &snapshot(&obj),
        &driven(
            Step::Wait(Wait::JobRunning),
            Some(job(RemoteStatus::InProgress)),
            Vec::new(),
        ),
        None,
        POLL,
        now(),
    );
    assert!(
        reasons(&out)
            .iter()
            .all(|(reason, _)| !reason.starts_with("Criteria"))
    );
    let MetricsUpdate::Set(metrics) = &out.metrics else {
        panic!("metrics set");
    };
    assert_eq!(metrics.passed, None);
}
