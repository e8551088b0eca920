//! The third stage of a reconcile: from the snapshot and what driving the lifecycle did, the
//! whole result, computed purely: the status to write (if any), the events, the object's
//! metrics, whether the finalizer goes, and when to come back. The reconciler applies it once.

use std::{sync::Arc, time::Duration};

use jiff::Timestamp;
use kube::runtime::events::{Event, EventType};

use crate::{
    api::{BatchEvaluationStatus, CleanupStep, FORCE_RELEASE_ANNOTATION},
    batch_evaluation::{
        drive::{Acted, Driven},
        gate::Gate,
        lifecycle::{Release, Step, Wait},
        queue::Place,
        reason::Reason,
        snapshot::Snapshot,
        status::{self, StatusInputs, Verdict},
    },
    metrics::ObjectMetrics,
    remote::{FailureKind, RemoteStatus},
};

/// Longest wait between polls during deletion (STOPPING, DELETING): someone usually waits on
/// `kubectl delete`. Jobs themselves are polled at the configured interval.
pub const CLEANUP_POLL_INTERVAL: Duration = Duration::from_secs(5);

/// How often a queued object re-counts its place without being woken: a safety net, since the
/// queue wakes its head whenever it moves.
pub const QUEUE_RECHECK_INTERVAL: Duration = Duration::from_secs(60);

/// When to reconcile the object again.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Requeue {
    /// Only when the object changes.
    AwaitChange,
    /// After this long, jittered ±10% so that objects created together spread out.
    Poll(Duration),
    /// After exactly this long.
    After(Duration),
    /// After a backoff that grows with consecutive failures of this kind.
    Backoff(FailureKind),
}

/// What the object's per-object metric series become.
#[derive(Clone, Debug, PartialEq)]
pub enum MetricsUpdate {
    /// Left as they are: nothing was observed.
    Keep,
    Set(ObjectMetrics),
    /// The object is released: its series go.
    Remove,
}

/// Everything one reconcile writes, decided before anything is written.
pub struct Outcome {
    /// The status to write through the status subresource; `None` when nothing worth a write
    /// changed.
    pub status: Option<BatchEvaluationStatus>,
    pub events: Vec<Event>,
    pub metrics: MetricsUpdate,
    /// Remove the finalizer, for this reason.
    pub release: Option<Release>,
    pub requeue: Requeue,
    /// The reconcile metric's `reason` label: the step the reconcile ended on.
    pub label: &'static str,
}

/// The outcome of a reconcile of `snapshot` that `driven` describes.
#[must_use]
pub fn outcome(
    snapshot: &Snapshot,
    driven: &Driven,
    queue: Option<&Place>,
    poll_interval: Duration,
    now: Timestamp,
) -> Outcome {
    let mut events: Vec<Event> = driven.acted.iter().map(action_event).collect();
    if let Step::Release(release) = driven.step {
        events.push(release_event(release, snapshot.results_location.as_deref()));
        return Outcome {
            status: None,
            events,
            metrics: MetricsUpdate::Remove,
            release: Some(release),
            requeue: Requeue::AwaitChange,
            label: Reason::from(release).as_str(),
        };
    }
    if driven.step == Step::Wait(Wait::RecentlyObserved) {
        // Nothing was observed, and the cache may lag this operator's own latest status write
        // (a reconcile queued behind the one that wrote it): neither status nor metrics are
        // derived from it. The poll that is due does both.
        return Outcome {
            status: None,
            events: Vec::new(),
            metrics: MetricsUpdate::Keep,
            release: None,
            requeue: Requeue::After(snapshot.fresh_for.unwrap_or(poll_interval)),
            label: "Waiting",
        };
    }

    let inputs = StatusInputs {
        generation: snapshot.generation,
        deleting: snapshot.view.deleting,
        stop_requested: snapshot.view.stop_requested,
        name: &snapshot.remote_name,
        region: &snapshot.region,
        job: driven.job.as_ref(),
        cleanup_action: cleanup_action(snapshot.view.deleting, &driven.acted),
        step: &driven.step,
        failure: driven
            .failure
            .as_ref()
            .map(|f| (f.kind, f.message.as_str())),
        results_location: snapshot.results_location.as_deref(),
        queue,
        role_arn: snapshot.identity.role_arn(),
        detail: snapshot.adoption_conflict.as_deref(),
        pass_criteria: snapshot.pass_criteria.as_ref(),
    };
    let desired = status::desired(&snapshot.status, &inputs, now);
    let status = desired.write.then(|| {
        // The action taken in this reconcile (Started, StopRequested, DeleteRequested) already
        // tells what the status change is about.
        let acted = !driven.acted.is_empty();
        events.extend(transition_events(
            &snapshot.status,
            &desired.status,
            &desired.verdict,
            acted,
        ));
        events.extend(gate_event(&snapshot.status, desired.gate.as_ref()));
        desired.status.clone()
    });
    let (requeue, label) = requeue(
        &driven.step,
        queue.and_then(|place| place.retry_in(now)),
        poll_interval,
    );
    Outcome {
        status,
        events,
        metrics: MetricsUpdate::Set(object_metrics(
            snapshot,
            &desired.status,
            desired.gate.as_ref(),
        )),
        release: None,
        requeue,
        label,
    }
}

/// The cleanup step an action in this reconcile started: the last one wins (a Stop answered
/// STOPPED is followed by a Delete in the same reconcile).
fn cleanup_action(deleting: bool, acted: &[Acted]) -> Option<CleanupStep> {
    if !deleting {
        return None;
    }
    acted.iter().rev().find_map(|a| match a {
        Acted::DeleteRequested { .. } => Some(CleanupStep::Deleting),
        Acted::StopRequested { .. } => Some(CleanupStep::Stopping),
        Acted::Started { .. } => None,
    })
}

fn requeue(
    step: &Step,
    probe_in: Option<Duration>,
    poll_interval: Duration,
) -> (Requeue, &'static str) {
    match step {
        // The head of a full quota probes when its backoff is due while the rest of the queue
        // sends nothing; everyone is woken when the queue moves.
        Step::Wait(Wait::Queued) => (
            Requeue::After(probe_in.map_or(QUEUE_RECHECK_INTERVAL, |d| {
                d.max(Duration::from_millis(100))
            })),
            "Queued",
        ),
        Step::Wait(Wait::Cleanup(_)) => (
            Requeue::Poll(poll_interval.min(CLEANUP_POLL_INTERVAL)),
            "Cleaning",
        ),
        Step::Wait(_) => (Requeue::Poll(poll_interval), "Waiting"),
        Step::Retry { kind, .. } => (Requeue::Backoff(*kind), kind.as_str()),
        Step::Stall(stall) => (Requeue::AwaitChange, Reason::from(*stall).as_str()),
        Step::Idle => (Requeue::AwaitChange, "Idle"),
        // Only reachable when the step limit ran out: come back soon rather than spin here.
        Step::AddFinalizer
        | Step::Get { .. }
        | Step::FindByName
        | Step::Start
        | Step::Stop { .. }
        | Step::Delete { .. }
        | Step::Release(_) => (Requeue::After(Duration::from_secs(1)), "StepLimit"),
    }
}

fn event(type_: EventType, reason: &str, action: &str, note: String) -> Event {
    Event {
        type_,
        reason: reason.into(),
        note: Some(note),
        action: action.into(),
        secondary: None,
    }
}

fn action_event(acted: &Acted) -> Event {
    let (reason, action, note) = match acted {
        Acted::Started { name, id } => (
            Reason::Started,
            "Start",
            format!("started batch evaluation {name} ({id})"),
        ),
        Acted::StopRequested { id } => (
            Reason::StopRequested,
            "Stop",
            format!("StopBatchEvaluation called on {id}"),
        ),
        Acted::DeleteRequested { id } => (
            Reason::DeleteRequested,
            "Delete",
            format!("DeleteBatchEvaluation called on {id}"),
        ),
    };
    event(EventType::Normal, reason.as_str(), action, note)
}

fn release_event(release: Release, results_location: Option<&str>) -> Event {
    let (type_, note) = match release {
        Release::RemoteGone => (
            EventType::Normal,
            "the batch evaluation is deleted; finalizer released".to_owned(),
        ),
        Release::Retained => (
            EventType::Normal,
            "deletionPolicy is Retain: the batch evaluation stays in AWS; finalizer released"
                .to_owned(),
        ),
        Release::ForceReleased => (
            EventType::Warning,
            format!(
                "{FORCE_RELEASE_ANNOTATION} is \"true\": finalizer released without remote cleanup; the batch evaluation may remain in AWS"
            ),
        ),
        Release::NothingToCleanUp => (
            EventType::Normal,
            "no batch evaluation exists for this object; finalizer released".to_owned(),
        ),
    };
    let note = match results_location {
        Some(group) if release == Release::RemoteGone => {
            format!("{note}. Per-session results remain in CloudWatch Logs log group {group}")
        }
        _ => note,
    };
    event(type_, Reason::from(release).as_str(), "Release", note)
}

/// One event per remote status change and per change of the Ready reason. When this reconcile
/// `acted` (its Start, Stop or Delete event is already told), the Normal events for the status
/// and cleanup step that action caused are left out: one Delete would otherwise be told three
/// times (DeleteRequested, Deleting, Deleting), each an API write.
fn transition_events(
    before: &BatchEvaluationStatus,
    after: &BatchEvaluationStatus,
    verdict: &Verdict,
    acted: bool,
) -> Vec<Event> {
    let mut events = Vec::new();
    let remote = |s: &BatchEvaluationStatus| s.remote_status.as_deref().map(RemoteStatus::parse);
    let (was, now) = (remote(before), remote(after));
    if let Some(status) = now
        .as_ref()
        .filter(|_| was != now)
        .filter(|status| !acted || **status == RemoteStatus::Failed)
        // Our own deletion: the cleanup step event (AwaitingRemoval) tells it.
        .filter(|status| !(**status == RemoteStatus::Deleting && after.cleanup_step.is_some()))
    {
        // One reason per status: the recorder folds events with the same reason into a series.
        let type_ = if *status == RemoteStatus::Failed {
            EventType::Warning
        } else {
            EventType::Normal
        };
        let note = format!(
            "remote status {} → {status}",
            was.as_ref().map_or("none", RemoteStatus::as_str)
        );
        events.push(event(type_, &status.event_reason(), "Observe", note));
    }
    if let Some(step) = after
        .cleanup_step
        .filter(|_| before.cleanup_step != after.cleanup_step && !acted)
    {
        let note = format!("cleanup step: {}", step.as_str());
        events.push(event(EventType::Normal, step.as_str(), "Cleanup", note));
    }
    let ready = |s: &BatchEvaluationStatus| {
        s.conditions
            .iter()
            .find(|c| c.type_ == status::READY)
            .map(|c| (c.reason.clone(), c.message.clone(), c.status.clone()))
    };
    let reason_of = |s: &BatchEvaluationStatus| ready(s).map(|(reason, ..)| reason);
    if verdict.reason == Reason::Queued && reason_of(before) != reason_of(after) {
        // Once per stay in the queue; position changes are in the condition only.
        events.push(event(
            EventType::Normal,
            Reason::Queued.as_str(),
            "Queue",
            verdict.message.clone(),
        ));
    }
    let needs_attention = verdict.stalled.is_some() || verdict.reason.is_failure();
    if needs_attention && ready(after) != ready(before) {
        events.push(event(
            EventType::Warning,
            verdict.reason.as_str(),
            "Reconcile",
            verdict.message.clone(),
        ));
    }
    events
}

/// One event when the quality gate reaches a verdict or changes it (not while it waits, and not
/// when only the list of missed criteria changes: the condition's message has that).
fn gate_event(before: &BatchEvaluationStatus, gate: Option<&Gate>) -> Option<Event> {
    let gate = gate.filter(|gate| **gate != Gate::AwaitingResults)?;
    let was = before
        .conditions
        .iter()
        .find(|c| c.type_ == status::PASSED)
        .map(|c| c.status.as_str());
    if was == Some(gate.status()) {
        return None;
    }
    let type_ = if *gate == Gate::Met {
        EventType::Normal
    } else {
        EventType::Warning
    };
    Some(event(
        type_,
        gate.reason().as_str(),
        "Judge",
        gate.message(),
    ))
}

fn object_metrics(
    snapshot: &Snapshot,
    status: &BatchEvaluationStatus,
    gate: Option<&Gate>,
) -> ObjectMetrics {
    let scores = status
        .results
        .iter()
        .flat_map(|r| &r.evaluators)
        .filter_map(|e| {
            let label: Arc<str> = match (&e.evaluator_id, &e.dimension) {
                (Some(id), Some(dim)) => format!("{id}/{dim}").into(),
                (Some(id), None) => id.as_str().into(),
                (None, Some(dim)) => dim.as_str().into(),
                (None, None) => return None,
            };
            e.average_score.map(|s| (label, s))
        })
        .collect();
    ObjectMetrics {
        remote_status: status.remote_status.as_deref().map(RemoteStatus::parse),
        deleting_since: snapshot.deleting_since,
        scores,
        passed: match gate {
            Some(Gate::Met) => Some(true),
            Some(Gate::Missed(_) | Gate::NotCompleted(_)) => Some(false),
            Some(Gate::AwaitingResults) | None => None,
        },
    }
}

#[cfg(test)]
mod tests;
