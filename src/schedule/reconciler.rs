//! Reconciles one `BatchEvaluationSchedule`: list its runs, [`decide`], then perform the plan
//! (deletions, then creations), write the status if it changed, publish events and metrics, and
//! requeue at the next slot. The only place where Kubernetes calls happen for a schedule.

use std::{
    collections::{BTreeMap, HashMap, HashSet},
    sync::{Arc, Mutex, PoisonError},
    time::{Duration, Instant},
};

use jiff::{SignedDuration, Timestamp};
use kube::{
    Api, Client, Resource, ResourceExt,
    api::{DeleteParams, ListParams, ObjectMeta, Patch, PatchParams, PostParams},
    runtime::{
        controller::Action,
        events::{Event, EventType, Recorder, Reporter},
    },
};
use serde_json::json;
use tracing::{info, instrument, warn};

use crate::{
    api::{BatchEvaluation, TimeRange},
    error::Error,
    metrics::Metrics,
    schedule::{
        api::{
            BatchEvaluationSchedule, BatchEvaluationScheduleStatus, RUN_NOW_ANNOTATION,
            RUN_NOW_LABEL, SCHEDULE_LABEL, SCHEDULED_TIME_ANNOTATION, SLOT_LABEL,
        },
        cron,
        decide::{NewRun, Observed, Plan, Run, RunState, Why, decide},
        metrics::RunOutcome,
    },
};

/// The longest wait between two looks at a schedule, whatever its next slot: a clock that jumped
/// or a lost watch event costs at most this much.
const MAX_WAIT: Duration = Duration::from_secs(300);
/// Wake this much after a slot, so a timer that fires early never finds it not yet due.
const SLOT_MARGIN: Duration = Duration::from_millis(50);

/// Everything a schedule reconcile needs, created once.
pub struct Context {
    pub client: Client,
    pub recorder: Recorder,
    pub metrics: Arc<Metrics>,
    /// Per schedule (namespace, name): its finished runs still present that this process has
    /// counted in `schedule_runs_total`. Runs that are gone leave the set, so it stays as small
    /// as the schedules' histories.
    counted: Mutex<HashMap<(String, String), HashSet<String>>>,
    /// Consecutive failures per schedule UID, for backoff.
    failures: Mutex<HashMap<String, u32>>,
}

impl Context {
    #[must_use]
    pub fn new(client: Client, reporter: Reporter, metrics: Arc<Metrics>) -> Self {
        Self {
            recorder: Recorder::new(client.clone(), reporter),
            client,
            metrics,
            counted: Mutex::default(),
            failures: Mutex::default(),
        }
    }

    /// Drops what this process exported for a deleted schedule.
    pub fn forget(&self, namespace: &str, name: &str) {
        self.metrics.schedules.forget(namespace, name);
        self.counted
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&(namespace.to_owned(), name.to_owned()));
    }
}

/// Reconciles one schedule.
///
/// # Errors
/// [`Error::Kube`] when a Kubernetes call fails, [`Error::InvalidObject`] for an object without
/// namespace, [`Error::InvalidSpec`] when a run cannot be built.
#[instrument(skip_all, fields(namespace = obj.namespace().unwrap_or_default(), schedule = obj.name_any()))]
pub async fn reconcile(
    obj: Arc<BatchEvaluationSchedule>,
    ctx: Arc<Context>,
) -> Result<Action, Error> {
    let started = Instant::now();
    let result = reconcile_schedule(&obj, &ctx).await;
    let label = match &result {
        Ok(_) => "Schedule",
        Err(e) => e.metric_label(),
    };
    ctx.metrics
        .observe_reconcile(result.is_ok(), label, started.elapsed());
    if result.is_ok() {
        ctx.failures
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&obj.uid().unwrap_or_default());
    }
    result
}

/// Capped exponential backoff for Kubernetes API failures.
pub fn error_policy(obj: Arc<BatchEvaluationSchedule>, error: &Error, ctx: Arc<Context>) -> Action {
    warn!(namespace = obj.namespace().unwrap_or_default(), schedule = obj.name_any(), error = %error, "schedule reconcile failed");
    let attempt = {
        let mut failures = ctx.failures.lock().unwrap_or_else(PoisonError::into_inner);
        let n = failures.entry(obj.uid().unwrap_or_default()).or_insert(0);
        *n = n.saturating_add(1);
        *n
    };
    let millis = 500u64.saturating_mul(1u64 << attempt.min(7));
    Action::requeue(Duration::from_millis(millis).min(Duration::from_secs(60)))
}

async fn reconcile_schedule(obj: &BatchEvaluationSchedule, ctx: &Context) -> Result<Action, Error> {
    let namespace = obj
        .namespace()
        .ok_or_else(|| Error::InvalidObject("a schedule without namespace".into()))?;
    let name = obj.name_any();
    let uid = obj
        .uid()
        .ok_or_else(|| Error::InvalidObject("a schedule without uid".into()))?;
    if obj.meta().deletion_timestamp.is_some() {
        // Garbage collection deletes the runs; nothing to schedule any more.
        return Ok(Action::await_change());
    }
    let runs_api: Api<BatchEvaluation> = Api::namespaced(ctx.client.clone(), &namespace);
    let listed = runs_api
        .list(&ListParams::default().labels(&format!("{SCHEDULE_LABEL}={name}")))
        .await?
        .items;
    let runs: Vec<Run> = listed
        .iter()
        .filter(|child| owned_by(child, &uid))
        .map(run_of)
        .collect();
    let now = Timestamp::now();
    let status = obj.status.clone().unwrap_or_default();
    let created = obj.meta().creation_timestamp.as_ref().map_or(now, |t| t.0);
    let plan = decide(&Observed {
        name: &name,
        generation: obj.meta().generation.unwrap_or_default(),
        created,
        spec: &obj.spec,
        status: &status,
        run_now: obj
            .annotations()
            .get(RUN_NOW_ANNOTATION)
            .map(String::as_str),
        runs: &runs,
        now,
    });

    for (run, why) in &plan.delete {
        delete_run(&runs_api, run, *why).await?;
    }
    let mut created_runs = 0;
    for new in &plan.create {
        let child = build_run(obj, new)?;
        match runs_api.create(&PostParams::default(), &child).await {
            Ok(_) => {
                info!(run = %new.name, slot = %new.scheduled, "run created");
                created_runs += 1;
            }
            // Created before (a crash, a second replica, a lost response): done.
            Err(kube::Error::Api(e)) if e.code == 409 => {
                info!(run = %new.name, "run already exists");
            }
            Err(e) => return Err(e.into()),
        }
    }
    if obj.status.as_ref() != Some(&plan.status) {
        patch_status(
            &Api::namespaced(ctx.client.clone(), &namespace),
            &name,
            &plan.status,
        )
        .await?;
    }
    publish(ctx, obj, &plan).await;
    export(ctx, &namespace, &name, &runs, &plan, created_runs);
    Ok(requeue(plan.wake_at, now))
}

fn requeue(wake_at: Option<Timestamp>, now: Timestamp) -> Action {
    let Some(wake_at) = wake_at else {
        return Action::requeue(MAX_WAIT);
    };
    let wait = Duration::try_from(wake_at.duration_since(now)).unwrap_or(Duration::ZERO);
    Action::requeue((wait + SLOT_MARGIN).min(MAX_WAIT))
}

fn owned_by(child: &BatchEvaluation, uid: &str) -> bool {
    child
        .owner_references()
        .iter()
        .any(|o| o.controller == Some(true) && o.uid == uid)
}

/// A child as the decision sees it.
fn run_of(child: &BatchEvaluation) -> Run {
    let labels = child.labels();
    let created = child
        .meta()
        .creation_timestamp
        .as_ref()
        .map_or(Timestamp::UNIX_EPOCH, |t| t.0);
    let scheduled = labels
        .get(SLOT_LABEL)
        .and_then(|s| s.parse::<i64>().ok())
        .and_then(|s| Timestamp::from_second(s).ok())
        .or_else(|| {
            child
                .annotations()
                .get(SCHEDULED_TIME_ANNOTATION)
                .and_then(|t| cron::parse_time(t))
        })
        .unwrap_or(created);
    let status = child.status.as_ref();
    let condition = |type_: &str| {
        status
            .and_then(|s| s.conditions.iter().find(|c| c.type_ == type_))
            .map(|c| c.status.clone())
    };
    Run {
        name: child.name_any(),
        scheduled,
        run_now: labels.get(RUN_NOW_LABEL).is_some_and(|v| v == "true"),
        deleting: child.meta().deletion_timestamp.is_some(),
        remote_status: status.and_then(|s| s.remote_status.clone()),
        average_score: status.and_then(|s| s.average_score),
        passed: condition("Passed"),
        stalled: condition("Stalled").as_deref() == Some("True"),
    }
}

/// The run of one slot: the template, its labels and annotations plus the schedule's, owned by
/// the schedule, its data source's time range set to [slot − window, slot].
///
/// # Errors
/// [`Error::InvalidSpec`] when the window cannot be applied.
pub fn build_run(
    schedule: &BatchEvaluationSchedule,
    new: &NewRun,
) -> Result<BatchEvaluation, Error> {
    let template = &schedule.spec.template;
    let window =
        cron::parse_window(&template.window).map_err(|e| Error::InvalidSpec(e.to_string()))?;
    let window = SignedDuration::try_from(window).map_err(|e| Error::InvalidSpec(e.to_string()))?;
    let start = new
        .scheduled
        .checked_sub(window)
        .map_err(|e| Error::InvalidSpec(format!("spec.template.window: {e}")))?;
    let range = TimeRange {
        start_time: Some(start.to_string()),
        end_time: Some(new.scheduled.to_string()),
    };
    let mut spec = template.spec.clone();
    if let Some(logs) = spec.data_source.cloud_watch_logs.as_mut() {
        logs.filter.get_or_insert_default().time_range = Some(range.clone());
    }
    if let Some(online) = spec.data_source.online_evaluation_config.as_mut() {
        online.time_range = Some(range);
    }
    let mut labels: BTreeMap<String, String> = template.labels.clone();
    labels.insert(SCHEDULE_LABEL.to_owned(), schedule.name_any());
    if new.run_now {
        labels.insert(RUN_NOW_LABEL.to_owned(), "true".to_owned());
    }
    labels.insert(SLOT_LABEL.to_owned(), new.scheduled.as_second().to_string());
    let mut annotations = template.annotations.clone();
    annotations.insert(
        SCHEDULED_TIME_ANNOTATION.to_owned(),
        new.scheduled.to_string(),
    );
    let mut owner = schedule
        .controller_owner_ref(&())
        .ok_or_else(|| Error::InvalidObject("a schedule without uid".into()))?;
    // Foreground deletion of the schedule waits for its runs (and so their remote cleanup).
    owner.block_owner_deletion = Some(true);
    Ok(BatchEvaluation {
        metadata: ObjectMeta {
            name: Some(new.name.clone()),
            namespace: schedule.namespace(),
            labels: Some(labels),
            annotations: Some(annotations),
            owner_references: Some(vec![owner]),
            ..ObjectMeta::default()
        },
        spec,
        status: None,
    })
}

async fn delete_run(api: &Api<BatchEvaluation>, name: &str, why: Why) -> Result<(), Error> {
    match api.delete(name, &DeleteParams::background()).await {
        Ok(_) => {
            info!(run = name, why = ?why, "run deleted");
            Ok(())
        }
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Replaces the whole status in one JSON Patch `add`, so fields that disappeared are removed.
async fn patch_status(
    api: &Api<BatchEvaluationSchedule>,
    name: &str,
    status: &BatchEvaluationScheduleStatus,
) -> Result<(), Error> {
    let value = serde_json::to_value(status).map_err(|e| Error::InvalidObject(e.to_string()))?;
    let patch: json_patch::Patch =
        serde_json::from_value(json!([{ "op": "add", "path": "/status", "value": value }]))
            .map_err(|e| Error::InvalidObject(e.to_string()))?;
    api.patch_status(name, &PatchParams::default(), &Patch::<()>::Json(patch))
        .await?;
    Ok(())
}

/// Events are best effort: losing one never fails the reconcile.
async fn publish(ctx: &Context, obj: &BatchEvaluationSchedule, plan: &Plan) {
    let reference = obj.object_ref(&());
    for note in &plan.events {
        let event = Event {
            type_: if note.warning {
                EventType::Warning
            } else {
                EventType::Normal
            },
            reason: note.reason.as_str().to_owned(),
            note: Some(note.message.clone()),
            action: "Schedule".to_owned(),
            secondary: None,
        };
        if let Err(e) = ctx.recorder.publish(&event, &reference).await {
            warn!(error = %e, reason = note.reason.as_str(), "could not publish event");
        }
    }
}

fn export(ctx: &Context, namespace: &str, name: &str, runs: &[Run], plan: &Plan, created: u64) {
    let metrics = &ctx.metrics.schedules;
    metrics.count(namespace, name, RunOutcome::Created, created);
    metrics.count(namespace, name, RunOutcome::Skipped, plan.skipped);
    metrics.count(namespace, name, RunOutcome::Missed, plan.missed);
    {
        let mut all = ctx.counted.lock().unwrap_or_else(PoisonError::into_inner);
        let counted = all
            .entry((namespace.to_owned(), name.to_owned()))
            .or_default();
        counted.retain(|run| runs.iter().any(|r| &r.name == run));
        for run in runs {
            let outcome = match run.state() {
                RunState::Active => continue,
                RunState::Succeeded => RunOutcome::Succeeded,
                RunState::Failed => RunOutcome::Failed,
            };
            if counted.insert(run.name.clone()) {
                metrics.count(namespace, name, outcome, 1);
            }
        }
    }
    if let Some(last) = &plan.last_finished {
        metrics.set_last(
            namespace,
            name,
            Some(last.state() == RunState::Succeeded),
            last.average_score,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        api::{
            BatchEvaluationSpec, CloudWatchLogsSource, DataSource, OnlineEvaluationConfigSource,
        },
        schedule::api::{BatchEvaluationScheduleSpec, ConcurrencyPolicy, RunTemplate},
    };

    fn schedule(data_source: DataSource) -> BatchEvaluationSchedule {
        let mut schedule = BatchEvaluationSchedule::new(
            "nightly",
            BatchEvaluationScheduleSpec {
                schedule: "0 2 * * *".to_owned(),
                time_zone: "UTC".to_owned(),
                suspend: false,
                starting_deadline_seconds: None,
                concurrency_policy: ConcurrencyPolicy::Forbid,
                successful_runs_history_limit: 3,
                failed_runs_history_limit: 1,
                template: RunTemplate {
                    labels: BTreeMap::from([("team".to_owned(), "a".to_owned())]),
                    annotations: BTreeMap::new(),
                    window: "24h".to_owned(),
                    spec: BatchEvaluationSpec {
                        data_source,
                        ..BatchEvaluationSpec::default()
                    },
                },
            },
        );
        schedule.metadata.namespace = Some("team-a".to_owned());
        schedule.metadata.uid = Some("5c1e".to_owned());
        schedule
    }

    fn new_run(run_now: bool) -> NewRun {
        NewRun {
            name: "nightly-1796090400".to_owned(),
            scheduled: "2026-12-01T02:00:00Z".parse().expect("time"),
            run_now,
        }
    }

    #[test]
    fn a_run_evaluates_the_window_before_its_slot_whatever_the_source() {
        let range = Some(TimeRange {
            start_time: Some("2026-11-30T02:00:00Z".to_owned()),
            end_time: Some("2026-12-01T02:00:00Z".to_owned()),
        });
        let logs = build_run(
            &schedule(DataSource {
                cloud_watch_logs: Some(CloudWatchLogsSource::default()),
                online_evaluation_config: None,
            }),
            &new_run(false),
        )
        .expect("run");
        let filter = logs
            .spec
            .data_source
            .cloud_watch_logs
            .and_then(|l| l.filter)
            .expect("filter");
        assert_eq!(filter.time_range, range);

        let online = build_run(
            &schedule(DataSource {
                cloud_watch_logs: None,
                online_evaluation_config: Some(OnlineEvaluationConfigSource::default()),
            }),
            &new_run(true),
        )
        .expect("run");
        assert_eq!(
            online
                .spec
                .data_source
                .online_evaluation_config
                .and_then(|o| o.time_range),
            range
        );
        let labels = online.metadata.labels.expect("labels");
        assert_eq!(
            labels.get(SCHEDULE_LABEL).map(String::as_str),
            Some("nightly")
        );
        assert_eq!(
            labels.get(SLOT_LABEL).map(String::as_str),
            Some("1796090400")
        );
        assert_eq!(labels.get(RUN_NOW_LABEL).map(String::as_str), Some("true"));
        assert_eq!(labels.get("team").map(String::as_str), Some("a"));
        assert_eq!(online.metadata.namespace.as_deref(), Some("team-a"));
        let owner = &online.metadata.owner_references.expect("owner")[0];
        assert_eq!(
            (
                owner.kind.as_str(),
                owner.uid.as_str(),
                owner.controller,
                owner.block_owner_deletion
            ),
            ("BatchEvaluationSchedule", "5c1e", Some(true), Some(true))
        );
    }
}
