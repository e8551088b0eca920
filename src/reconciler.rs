//! Performs what [`lifecycle::decide`] chooses: the only place where Kubernetes and AWS calls
//! happen for one object. Each reconcile reads, decides, acts until it has to wait, then writes
//! status once (if it changed) and requeues.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, PoisonError},
    time::{Duration, Instant},
};

use jiff::Timestamp;
use kube::{
    Api, Client, Resource, ResourceExt,
    api::{Patch, PatchParams},
    runtime::{
        controller::Action,
        events::{Event, EventType, Recorder, Reporter},
    },
};
use rand::Rng;
use serde_json::json;
use tracing::{debug, info, instrument, warn};

use crate::{
    api::{
        BatchEvaluation, BatchEvaluationStatus, CleanupStep, FINALIZER, FORCE_RELEASE_ANNOTATION,
        MIN_SCORE_ANNOTATION,
    },
    aws::{AgentCore, RemoteJob, StartRequest},
    error::Error,
    lifecycle::{self, Call, FailureKind, ObjectView, Observation, Release, RemoteStatus, Step},
    metrics::{Metrics, ObjectMetrics},
    naming, status,
};

/// Settings of the reconciler.
#[derive(Clone, Debug)]
pub struct Settings {
    /// How often a running job is polled (jittered by ±10%).
    pub poll_interval: Duration,
    /// Region for objects that name none.
    pub default_region: String,
}

/// Everything a reconcile needs, created once.
pub struct Context {
    pub client: Client,
    pub aws: AgentCore,
    /// Shared by all reconciles, so that a repeated Warning becomes one event series.
    pub recorder: Recorder,
    /// For the per-reconcile recorder of Normal events (see [`publish`]).
    pub reporter: Reporter,
    pub metrics: Arc<Metrics>,
    pub settings: Settings,
    /// Consecutive failures per object UID, for backoff.
    failures: Mutex<HashMap<String, u32>>,
    /// What each object last contributed to the per-object gauges.
    exported: Mutex<HashMap<(String, String), ObjectMetrics>>,
}

impl Context {
    #[must_use]
    pub fn new(
        client: Client,
        aws: AgentCore,
        reporter: Reporter,
        metrics: Arc<Metrics>,
        settings: Settings,
    ) -> Self {
        Self {
            recorder: Recorder::new(client.clone(), reporter.clone()),
            reporter,
            client,
            aws,
            metrics,
            settings,
            failures: Mutex::default(),
            exported: Mutex::default(),
        }
    }

    fn next_failure(&self, uid: &str) -> u32 {
        let mut failures = self.failures.lock().unwrap_or_else(PoisonError::into_inner);
        let n = failures.entry(uid.to_owned()).or_insert(0);
        *n = n.saturating_add(1);
        *n
    }

    fn clear_failures(&self, uid: &str) {
        self.failures
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(uid);
    }

    fn export(&self, namespace: &str, name: &str, now: Option<ObjectMetrics>) {
        let mut exported = self.exported.lock().unwrap_or_else(PoisonError::into_inner);
        let key = (namespace.to_owned(), name.to_owned());
        let before = exported.get(&key);
        if before == now.as_ref() {
            return;
        }
        self.metrics
            .set_object(namespace, name, before, now.as_ref());
        match now {
            Some(m) => exported.insert(key, m),
            None => exported.remove(&key),
        };
    }
}

/// Longest wait between polls during deletion (STOPPING, DELETING); jobs themselves are polled
/// at the configured interval.
const CLEANUP_POLL_INTERVAL: Duration = Duration::from_secs(5);

/// Most steps one reconcile takes before it yields; a safety net, the lifecycle converges in
/// fewer (finalizer, observe, act, act).
const MAX_STEPS: usize = 8;

/// Reconciles one object. Errors are Kubernetes failures; AWS failures are part of the lifecycle.
///
/// # Errors
/// [`Error::Kube`] when a Kubernetes call fails, [`Error::InvalidObject`] for an object that
/// cannot be worked on.
#[instrument(skip_all, fields(namespace = obj.namespace().unwrap_or_default(), name = obj.name_any(), id))]
pub async fn reconcile(obj: Arc<BatchEvaluation>, ctx: Arc<Context>) -> Result<Action, Error> {
    let started = Instant::now();
    let result = reconcile_object(&obj, &ctx).await;
    let (success, reason) = match &result {
        Ok((_, reason)) => (true, *reason),
        Err(e) => (false, e.metric_label()),
    };
    ctx.metrics
        .observe_reconcile(success, reason, started.elapsed());
    result.map(|(action, _)| action)
}

/// Requeue policy for reconcile errors (Kubernetes API failures): capped exponential backoff.
pub fn error_policy(obj: Arc<BatchEvaluation>, error: &Error, ctx: Arc<Context>) -> Action {
    warn!(namespace = obj.namespace().unwrap_or_default(), name = obj.name_any(), error = %error, "reconcile failed");
    let attempt = ctx.next_failure(&obj.uid().unwrap_or_default());
    Action::requeue(backoff(
        attempt,
        Duration::from_millis(500),
        Duration::from_secs(60),
    ))
}

struct Target {
    api: Api<BatchEvaluation>,
    namespace: String,
    name: String,
    uid: String,
    remote_name: String,
    region: String,
}

async fn reconcile_object(
    obj: &BatchEvaluation,
    ctx: &Context,
) -> Result<(Action, &'static str), Error> {
    let namespace = obj
        .namespace()
        .ok_or_else(|| Error::InvalidObject("no metadata.namespace".into()))?;
    let name = obj.name_any();
    let api: Api<BatchEvaluation> = Api::namespaced(ctx.client.clone(), &namespace);

    // The watch cache can lag behind this operator's own status write. Before anything that
    // may start a job, read the object fresh so a just-recorded id is never missed.
    let fresh;
    let obj = if obj.meta().deletion_timestamp.is_none()
        && obj.finalizers().iter().any(|f| f == FINALIZER)
        && obj
            .status
            .as_ref()
            .and_then(|s| s.batch_evaluation_id.as_ref())
            .is_none()
    {
        match api.get_opt(&name).await? {
            Some(o) => {
                fresh = o;
                &fresh
            }
            None => return Ok((Action::await_change(), "Gone")),
        }
    } else {
        obj
    };

    let uid = obj
        .uid()
        .ok_or_else(|| Error::InvalidObject("no metadata.uid".into()))?;
    let current = obj.status.clone().unwrap_or_default();
    let remote_name = match (
        &obj.spec.batch_evaluation_name,
        &current.batch_evaluation_name,
    ) {
        (Some(n), _) | (None, Some(n)) => n.clone(),
        (None, None) => naming::derived_name(&namespace, &name, &uid)?,
    };
    let region = current
        .region
        .clone()
        .or_else(|| obj.spec.region.clone())
        .unwrap_or_else(|| ctx.settings.default_region.clone());
    let target = Target {
        api,
        namespace,
        name,
        uid,
        remote_name,
        region,
    };
    if let Some(id) = &current.batch_evaluation_id {
        tracing::Span::current().record("id", id.as_str());
    }

    let generation = obj.meta().generation.unwrap_or(0);
    let has_finalizer = obj.finalizers().iter().any(|f| f == FINALIZER);
    let stalled = recorded_stall(obj);
    let freshness = stalled
        .is_none()
        .then(|| freshness_left(&current, ctx.settings.poll_interval, Timestamp::now()))
        .flatten();
    let mut view = ObjectView {
        deleting: obj.meta().deletion_timestamp.is_some(),
        has_finalizer,
        start_may_have_happened: has_finalizer,
        force_release: obj
            .annotations()
            .get(FORCE_RELEASE_ANNOTATION)
            .is_some_and(|v| v == "true"),
        deletion_policy: obj.spec.deletion_policy,
        stop_requested: obj.spec.stop,
        adopt_id: obj.spec.adopt_batch_evaluation_id.clone(),
        name_is_derived: obj.spec.batch_evaluation_name.is_none(),
        recorded_id: current.batch_evaluation_id.clone(),
        recorded_status: current.remote_status.as_deref().map(RemoteStatus::parse),
        stalled,
        recently_observed: freshness.is_some(),
    };

    let mut observation = Observation::None;
    let mut job: Option<RemoteJob> = None;
    let mut failure: Option<(FailureKind, String)> = None;
    let mut cleanup_action = None;
    let mut events: Vec<Event> = Vec::new();

    let mut step = Step::Wait(lifecycle::Wait::JobRunning);
    for _ in 0..MAX_STEPS {
        step = lifecycle::decide(&view, &observation);
        debug!(?step, ?observation, "decided");
        observation = match &step {
            Step::AddFinalizer => {
                add_finalizer(&target.api, obj).await?;
                view.has_finalizer = true;
                Observation::None
            }
            Step::Get { id } => match ctx.aws.get(&target.region, id).await {
                Ok(Some(found)) => observe(&mut job, found, false),
                Ok(None) => Observation::NotFound,
                Err(e) => failed(e, &mut failure)?,
            },
            Step::FindByName => match ctx
                .aws
                .find_by_name(&target.region, &target.remote_name)
                .await
            {
                Ok(Some(found)) => observe(&mut job, found, true),
                Ok(None) => Observation::NotFound,
                Err(e) => failed(e, &mut failure)?,
            },
            Step::Start => {
                let token = naming::client_token(&target.uid)?;
                let request = StartRequest {
                    name: &target.remote_name,
                    client_token: &token,
                    spec: &obj.spec,
                };
                match ctx.aws.start(&target.region, request).await {
                    Ok(started) => {
                        info!(id = %started.id, "started batch evaluation");
                        events.push(normal(
                            "Started",
                            "Start",
                            format!("started batch evaluation {} ({})", started.name, started.id),
                        ));
                        observe(&mut job, started, false)
                    }
                    Err(e) => failed(e, &mut failure)?,
                }
            }
            Step::Stop { id } => {
                let result = ctx.aws.stop(&target.region, id).await;
                after_action(result, id, &mut job, &mut failure, Call::Stop)?
                    .inspect(|_| {
                        if view.deleting {
                            cleanup_action = Some(CleanupStep::Stopping);
                        }
                        events.push(normal(
                            "StopRequested",
                            "Stop",
                            format!("StopBatchEvaluation called on {id}"),
                        ));
                    })
                    .unwrap_or(Observation::NotFound)
            }
            Step::Delete { id } => {
                let result = ctx.aws.delete(&target.region, id).await;
                after_action(result, id, &mut job, &mut failure, Call::Delete)?
                    .inspect(|_| {
                        cleanup_action = Some(CleanupStep::Deleting);
                        events.push(normal(
                            "DeleteRequested",
                            "Delete",
                            format!("DeleteBatchEvaluation called on {id}"),
                        ));
                    })
                    .unwrap_or(Observation::NotFound)
            }
            Step::Release(_) | Step::Wait(_) | Step::Retry { .. } | Step::Stall(_) | Step::Idle => {
                break;
            }
        };
    }

    if let Step::Release(release) = step {
        return release_object(ctx, &target, obj, release, events).await;
    }
    if step == Step::Wait(lifecycle::Wait::RecentlyObserved) {
        // Nothing was observed, and the cache may lag this operator's own latest status write
        // (a reconcile queued behind the one that wrote it): neither status nor metrics are
        // derived from it. The poll that is due does both.
        ctx.clear_failures(&target.uid);
        return Ok((
            Action::requeue(freshness.unwrap_or(ctx.settings.poll_interval)),
            "Waiting",
        ));
    }

    let results_location = obj
        .spec
        .output
        .as_ref()
        .and_then(|o| o.cloud_watch.log_group_name.as_deref())
        .filter(|g| !g.is_empty());
    let now = Timestamp::now();
    let observed = status::Observed {
        generation,
        deleting: view.deleting,
        stop_requested: view.stop_requested,
        name: &target.remote_name,
        region: &target.region,
        job: job.as_ref(),
        cleanup_action,
        step: &step,
        failure: failure.as_ref().map(|(k, m)| (*k, m.as_str())),
        results_location,
    };
    let mut desired = status::desired(&current, &observed, now);
    // A Delete was just accepted. The job is usually gone by the next cleanup poll, and that
    // poll records the step itself if it is not (AwaitingRemoval); the DeleteRequested event
    // tells it now. This saves one status write per deletion.
    let delete_just_accepted = cleanup_action == Some(CleanupStep::Deleting)
        && matches!(step, Step::Wait(lifecycle::Wait::Cleanup(_)));
    if !delete_just_accepted && status::changed(&current, &desired) {
        desired.last_synced_at = Some(now.to_string());
        // The action taken in this reconcile (Started, StopRequested, DeleteRequested) already
        // tells what the status change is about.
        let acted = !events.is_empty();
        transition_events(&current, &desired, acted, &mut events);
        patch_status(&target.api, &target.name, &desired).await?;
    }
    publish(ctx, obj, events).await;
    ctx.export(
        &target.namespace,
        &target.name,
        Some(object_metrics(obj, &desired, now)),
    );

    let (action, reason) = match &step {
        // Someone waits on `kubectl delete`: cleanup steps are polled at least every few seconds.
        Step::Wait(lifecycle::Wait::Cleanup(_)) => (
            Action::requeue(jittered(
                ctx.settings.poll_interval.min(CLEANUP_POLL_INTERVAL),
            )),
            "Cleaning",
        ),
        Step::Wait(_) => (
            Action::requeue(jittered(ctx.settings.poll_interval)),
            "Waiting",
        ),
        Step::Retry { kind, .. } => {
            let attempt = ctx.next_failure(&target.uid);
            let (base, cap) = retry_window(*kind);
            return Ok((Action::requeue(backoff(attempt, base, cap)), kind.as_str()));
        }
        Step::Stall(reason) => (Action::await_change(), reason.as_str()),
        Step::Idle => (Action::await_change(), "Idle"),
        // Only reachable when MAX_STEPS ran out: come back soon rather than spin here.
        _ => (Action::requeue(Duration::from_secs(1)), "StepLimit"),
    };
    ctx.clear_failures(&target.uid);
    Ok((action, reason))
}

/// The stall the object is in. Normally only a stall recorded for the current generation
/// counts, so a spec change retries. While deleting, the current Stalled condition counts
/// whatever its generation: setting deletionTimestamp bumps metadata.generation, and the fields
/// that define the remote job are immutable, so the stall still describes the object. Above all
/// a name conflict: the job under that name is someone else's, and the cleanup must not look it
/// up by name and delete it.
fn recorded_stall(obj: &BatchEvaluation) -> Option<lifecycle::StallReason> {
    let generation = obj
        .meta()
        .deletion_timestamp
        .is_none()
        .then(|| obj.meta().generation.unwrap_or(0));
    status::recorded_stall(obj.status.as_ref(), generation)
}

/// How much longer the recorded status is as fresh as a poll: it was written (`lastSyncedAt`)
/// less than `poll_interval` before `now`, after an observation rather than a failure. `None`
/// when it is not, or when the clock reads earlier than the stamp.
fn freshness_left(
    current: &BatchEvaluationStatus,
    poll_interval: Duration,
    now: Timestamp,
) -> Option<Duration> {
    let failing = current
        .conditions
        .iter()
        .any(|c| c.type_ == status::READY && FailureKind::is_warning_reason(&c.reason));
    if failing {
        return None;
    }
    let synced: Timestamp = current.last_synced_at.as_deref()?.parse().ok()?;
    let age = Duration::try_from(now.duration_since(synced)).ok()?;
    poll_interval
        .checked_sub(age)
        .filter(|left| !left.is_zero())
}

/// Records a job found by Get/List/Start as the latest knowledge and as the observation.
fn observe(job: &mut Option<RemoteJob>, found: RemoteJob, by_name: bool) -> Observation {
    let observation = if by_name {
        Observation::FoundByName {
            id: found.id.clone(),
            status: found.status.clone(),
        }
    } else {
        Observation::Job {
            id: found.id.clone(),
            status: found.status.clone(),
        }
    };
    tracing::Span::current().record("id", found.id.as_str());
    *job = Some(found);
    observation
}

/// Turns an AWS failure into an observation; other errors end the reconcile.
fn failed(error: Error, failure: &mut Option<(FailureKind, String)>) -> Result<Observation, Error> {
    match error {
        Error::Aws {
            call,
            kind,
            message,
        } => {
            warn!(?call, kind = kind.as_str(), %message, "AWS call failed");
            *failure = Some((kind, message));
            Ok(Observation::Failed { call, kind })
        }
        Error::InvalidSpec(message) => {
            *failure = Some((FailureKind::Validation, message));
            Ok(Observation::Failed {
                call: Call::Start,
                kind: FailureKind::Validation,
            })
        }
        other => Err(other),
    }
}

/// Folds the answer of Stop or Delete into the known job. `Ok(None)` means the job is gone.
fn after_action(
    result: Result<Option<RemoteStatus>, Error>,
    id: &str,
    job: &mut Option<RemoteJob>,
    failure: &mut Option<(FailureKind, String)>,
    call: Call,
) -> Result<Option<Observation>, Error> {
    match result {
        Ok(Some(status)) => {
            if let Some(j) = job.as_mut() {
                j.status = status.clone();
            }
            Ok(Some(Observation::Job {
                id: id.to_owned(),
                status,
            }))
        }
        Ok(None) => Ok(None),
        Err(e) => {
            let observation = failed(e, failure)?;
            debug!(?call, "action failed");
            Ok(Some(observation))
        }
    }
}

async fn release_object(
    ctx: &Context,
    target: &Target,
    obj: &BatchEvaluation,
    release: Release,
    mut events: Vec<Event>,
) -> Result<(Action, &'static str), Error> {
    let (kind, note) = match release {
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
    let note = match obj
        .spec
        .output
        .as_ref()
        .and_then(|o| o.cloud_watch.log_group_name.as_deref())
    {
        Some(group) if !group.is_empty() && release == Release::RemoteGone => {
            format!("{note}. Per-session results remain in CloudWatch Logs log group {group}")
        }
        _ => note,
    };
    info!(reason = release.as_str(), "releasing finalizer");
    events.push(Event {
        type_: kind,
        reason: release.as_str().into(),
        note: Some(note),
        action: "Release".into(),
        secondary: None,
    });
    publish(ctx, obj, events).await;
    remove_finalizer(&target.api, obj).await?;
    ctx.export(&target.namespace, &target.name, None);
    ctx.clear_failures(&target.uid);
    Ok((Action::await_change(), release.as_str()))
}

fn normal(reason: &str, action: &str, note: String) -> Event {
    Event {
        type_: EventType::Normal,
        reason: reason.into(),
        note: Some(note),
        action: action.into(),
        secondary: None,
    }
}

/// One event per remote status change and per change of the Ready reason. When this reconcile
/// `acted` (its Start, Stop or Delete event is already in `events`), the Normal events for the
/// status and cleanup step that action caused are left out: one Delete would otherwise be told
/// three times (DeleteRequested, Deleting, Deleting), each an API write.
fn transition_events(
    before: &BatchEvaluationStatus,
    after: &BatchEvaluationStatus,
    acted: bool,
    events: &mut Vec<Event>,
) {
    // One reason per status: the recorder folds events with the same reason into a series.
    if let Some(status) = after
        .remote_status
        .as_deref()
        .filter(|_| before.remote_status != after.remote_status)
        .filter(|status| !acted || *status == "FAILED")
        // Our own deletion: the cleanup step event (AwaitingRemoval) tells it.
        .filter(|status| !(*status == "DELETING" && after.cleanup_step.is_some()))
    {
        let type_ = if status == "FAILED" {
            EventType::Warning
        } else {
            EventType::Normal
        };
        events.push(Event {
            type_,
            reason: camel_case(status),
            note: Some(format!(
                "remote status {} → {status}",
                before.remote_status.as_deref().unwrap_or("none")
            )),
            action: "Observe".into(),
            secondary: None,
        });
    }
    if let Some(step) = after
        .cleanup_step
        .filter(|_| before.cleanup_step != after.cleanup_step && !acted)
    {
        events.push(normal(
            step.as_str(),
            "Cleanup",
            format!("cleanup step: {}", step.as_str()),
        ));
    }
    let ready = |s: &BatchEvaluationStatus| {
        s.conditions
            .iter()
            .find(|c| c.type_ == status::READY)
            .map(|c| (c.reason.clone(), c.message.clone(), c.status.clone()))
    };
    let stalled = after
        .conditions
        .iter()
        .any(|c| c.type_ == status::STALLED && c.status == "True");
    let needs_attention = after
        .conditions
        .iter()
        .any(|c| c.type_ == status::READY && FailureKind::is_warning_reason(&c.reason));
    let changed = ready(after).filter(|r| Some(r) != ready(before).as_ref());
    if let Some((reason, message, _)) = changed.filter(|_| stalled || needs_attention) {
        events.push(Event {
            type_: EventType::Warning,
            reason,
            note: Some(message),
            action: "Reconcile".into(),
            secondary: None,
        });
    }
}

/// `IN_PROGRESS` → `InProgress`: event reasons are CamelCase.
fn camel_case(status: &str) -> String {
    status
        .split('_')
        .map(|word| {
            let mut chars = word.chars();
            chars.next().map_or_else(String::new, |first| {
                first.to_ascii_uppercase().to_string() + &chars.as_str().to_ascii_lowercase()
            })
        })
        .collect()
}

/// Publishes Warnings through the shared recorder, which folds a repeated one into a series,
/// and Normal events through a recorder of this reconcile. Normal events mark one-off
/// transitions that do not repeat, while the shared recorder keeps every event it publishes for
/// six minutes and scans them all on each publish: its table was 34 MiB of the operator's
/// 41 MiB peak heap after 1,000 lifecycles in a minute (agentcore-bench, heaptrack), and grows
/// with every lifecycle in the window.
async fn publish(ctx: &Context, obj: &BatchEvaluation, events: Vec<Event>) {
    if events.is_empty() {
        return;
    }
    let reference = obj.object_ref(&());
    let one_off = Recorder::new(ctx.client.clone(), ctx.reporter.clone());
    for event in events {
        let recorder = match event.type_ {
            EventType::Normal => &one_off,
            EventType::Warning => &ctx.recorder,
        };
        // Events are best effort: losing one must never fail or repeat a lifecycle step.
        if let Err(e) = recorder.publish(&event, &reference).await {
            warn!(error = %e, reason = %event.reason, "could not publish event");
        }
    }
}

fn object_metrics(
    obj: &BatchEvaluation,
    status: &BatchEvaluationStatus,
    now: Timestamp,
) -> ObjectMetrics {
    let deleting_since = obj.meta().deletion_timestamp.as_ref().map(|t| {
        let age = now.duration_since(t.0);
        Duration::try_from(age).unwrap_or_default()
    });
    let scores = status
        .results
        .iter()
        .flat_map(|r| &r.evaluators)
        .filter_map(|e| {
            let label = match (&e.evaluator_id, &e.dimension) {
                (Some(id), Some(dim)) => format!("{id}/{dim}"),
                (Some(id), None) => id.clone(),
                (None, Some(dim)) => dim.clone(),
                (None, None) => return None,
            };
            e.average_score.map(|s| (label, s))
        })
        .collect();
    ObjectMetrics {
        remote_status: status.remote_status.clone(),
        deleting_since,
        scores,
        score_threshold: obj
            .annotations()
            .get(MIN_SCORE_ANNOTATION)
            .and_then(|v| v.trim().parse().ok()),
    }
}

/// Adds the finalizer with a JSON Patch whose `test` makes a concurrent change fail instead of
/// being overwritten.
async fn add_finalizer(api: &Api<BatchEvaluation>, obj: &BatchEvaluation) -> Result<(), Error> {
    let patch = if obj.meta().finalizers.is_none() {
        json!([
            { "op": "test", "path": "/metadata/finalizers", "value": null },
            { "op": "add", "path": "/metadata/finalizers", "value": [FINALIZER] },
        ])
    } else {
        json!([
            { "op": "test", "path": "/metadata/finalizers", "value": obj.finalizers() },
            { "op": "add", "path": "/metadata/finalizers/-", "value": FINALIZER },
        ])
    };
    json_patch(api, &obj.name_any(), patch).await
}

async fn remove_finalizer(api: &Api<BatchEvaluation>, obj: &BatchEvaluation) -> Result<(), Error> {
    let Some(index) = obj.finalizers().iter().position(|f| f == FINALIZER) else {
        return Ok(());
    };
    let path = format!("/metadata/finalizers/{index}");
    let patch = json!([
        { "op": "test", "path": path, "value": FINALIZER },
        { "op": "remove", "path": path },
    ]);
    match json_patch(api, &obj.name_any(), patch).await {
        // Already gone: another reconcile or a person removed it.
        Err(Error::Kube(kube::Error::Api(e))) if e.code == 404 => Ok(()),
        other => other,
    }
}

async fn json_patch(
    api: &Api<BatchEvaluation>,
    name: &str,
    patch: serde_json::Value,
) -> Result<(), Error> {
    let patch: json_patch::Patch =
        serde_json::from_value(patch).map_err(|e| Error::InvalidObject(e.to_string()))?;
    api.patch(name, &PatchParams::default(), &Patch::<()>::Json(patch))
        .await?;
    Ok(())
}

/// Replaces the whole status in one JSON Patch `add`: fields that disappeared are removed
/// (a merge patch would keep them), and no resourceVersion is needed, so label or annotation
/// edits by others never conflict with it.
async fn patch_status(
    api: &Api<BatchEvaluation>,
    name: &str,
    status: &BatchEvaluationStatus,
) -> Result<(), Error> {
    let value = serde_json::to_value(status).map_err(|e| Error::InvalidObject(e.to_string()))?;
    let patch: json_patch::Patch =
        serde_json::from_value(json!([{ "op": "add", "path": "/status", "value": value }]))
            .map_err(|e| Error::InvalidObject(e.to_string()))?;
    api.patch_status(name, &PatchParams::default(), &Patch::<()>::Json(patch))
        .await?;
    Ok(())
}

/// Base and cap of the retry backoff for one kind of failure.
const fn retry_window(kind: FailureKind) -> (Duration, Duration) {
    match kind {
        // "Not in the state you thought": re-read soon.
        FailureKind::Conflict => (Duration::from_secs(1), Duration::from_secs(10)),
        FailureKind::AccessDenied | FailureKind::Unauthorized | FailureKind::QuotaExceeded => {
            (Duration::from_secs(5), Duration::from_secs(300))
        }
        _ => (Duration::from_secs(1), Duration::from_secs(60)),
    }
}

/// Capped exponential backoff with full jitter over the upper half.
fn backoff(attempt: u32, base: Duration, cap: Duration) -> Duration {
    let exp = base.saturating_mul(2u32.saturating_pow(attempt.saturating_sub(1).min(16)));
    let ceiling = exp.min(cap);
    let factor = rand::rng().random_range(0.5..=1.0);
    ceiling.mul_f64(factor)
}

fn jittered(interval: Duration) -> Duration {
    interval.mul_f64(rand::rng().random_range(0.9..=1.1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        let cap = Duration::from_secs(60);
        for attempt in 1..40 {
            let d = backoff(attempt, Duration::from_secs(1), cap);
            assert!(d <= cap, "attempt {attempt}: {d:?}");
        }
        assert!(backoff(1, Duration::from_secs(1), cap) <= Duration::from_secs(1));
        assert!(backoff(10, Duration::from_secs(1), cap) >= Duration::from_secs(30));
    }

    #[test]
    fn a_status_is_fresh_for_one_poll_interval_after_an_observation() {
        use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
        let synced: Timestamp = "2026-11-27T10:00:00Z".parse().unwrap();
        let at = |seconds: i64| synced + jiff::SignedDuration::from_secs(seconds);
        let interval = Duration::from_secs(10);
        let mut current = BatchEvaluationStatus {
            last_synced_at: Some(synced.to_string()),
            ..Default::default()
        };
        assert_eq!(
            freshness_left(&current, interval, at(3)),
            Some(Duration::from_secs(7))
        );
        assert_eq!(freshness_left(&current, interval, at(10)), None);
        assert_eq!(freshness_left(&current, interval, at(60)), None);
        // A clock behind the stamp (another replica's) proves nothing: poll.
        assert_eq!(freshness_left(&current, interval, at(-5)), None);
        // A status written for a failure is not an observation of the job.
        current.conditions = vec![Condition {
            type_: status::READY.into(),
            status: "False".into(),
            reason: FailureKind::Throttled.as_str().into(),
            message: String::new(),
            observed_generation: None,
            last_transition_time: Time(synced),
        }];
        assert_eq!(freshness_left(&current, interval, at(3)), None);
        current.last_synced_at = None;
        current.conditions.clear();
        assert_eq!(freshness_left(&current, interval, at(3)), None);
    }

    #[test]
    fn status_reasons_are_camel_case() {
        assert_eq!(camel_case("IN_PROGRESS"), "InProgress");
        assert_eq!(camel_case("COMPLETED_WITH_ERRORS"), "CompletedWithErrors");
        assert_eq!(camel_case("ARCHIVED"), "Archived");
    }

    #[test]
    fn a_stall_survives_the_generation_bump_of_the_deletion() {
        use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
        let mut obj = BatchEvaluation::new("collision", crate::api::BatchEvaluationSpec::default());
        obj.meta_mut().generation = Some(1);
        obj.status = Some(BatchEvaluationStatus {
            conditions: vec![Condition {
                type_: status::STALLED.into(),
                status: "True".into(),
                reason: "NameConflict".into(),
                message: String::new(),
                observed_generation: Some(1),
                last_transition_time: Time(Timestamp::UNIX_EPOCH),
            }],
            ..BatchEvaluationStatus::default()
        });
        assert_eq!(
            recorded_stall(&obj),
            Some(lifecycle::StallReason::NameConflict)
        );
        // A spec change: the stall no longer holds, the operator tries again.
        obj.meta_mut().generation = Some(2);
        assert_eq!(recorded_stall(&obj), None);
        // Deletion, which is what bumped the generation: the stall still holds, however many
        // generations lie between (deletionPolicy and stop stay mutable).
        obj.meta_mut().deletion_timestamp = Some(Time(Timestamp::UNIX_EPOCH));
        for generation in [2, 5] {
            obj.meta_mut().generation = Some(generation);
            assert_eq!(
                recorded_stall(&obj),
                Some(lifecycle::StallReason::NameConflict)
            );
        }
    }

    #[test]
    fn conflicts_retry_sooner_than_access_problems() {
        assert!(retry_window(FailureKind::Conflict).1 < retry_window(FailureKind::AccessDenied).1);
    }
}
