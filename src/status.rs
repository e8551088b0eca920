//! Status is computed in exactly one place: from the previous status, what this reconcile
//! observed, and the step it ended on. Pure, so every condition is unit-tested.

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

use crate::{
    api::{BatchEvaluationStatus, CleanupStep},
    aws::RemoteJob,
    lifecycle::{FailureKind, RemoteStatus, StallReason, Step, Wait},
};

/// Condition types, with kstatus meaning.
pub const READY: &str = "Ready";
pub const RECONCILING: &str = "Reconciling";
pub const STALLED: &str = "Stalled";

/// What this reconcile learned and decided.
pub struct Observed<'a> {
    pub generation: i64,
    pub deleting: bool,
    pub stop_requested: bool,
    /// Remote name and region in use.
    pub name: &'a str,
    pub region: &'a str,
    /// The latest knowledge of the remote job, if any was obtained in this reconcile.
    pub job: Option<&'a RemoteJob>,
    /// The cleanup action performed in this reconcile (Stop or Delete during deletion).
    pub cleanup_action: Option<CleanupStep>,
    /// The step the reconcile ended on.
    pub step: &'a Step,
    /// The failure behind a `Retry` or `Stall`, with the service's message.
    pub failure: Option<(FailureKind, &'a str)>,
    /// Where per-session results remain after deletion (the output log group), if known.
    pub results_location: Option<&'a str>,
}

/// The status this object should have. `last_synced_at` is left as it was: the caller stamps it
/// only when something else changed, so an unchanged job costs no write (invariant I6).
#[must_use]
pub fn desired(
    current: &BatchEvaluationStatus,
    observed: &Observed<'_>,
    now: Timestamp,
) -> BatchEvaluationStatus {
    let mut status = current.clone();
    status.observed_generation = observed.generation;

    if let Some(job) = observed.job {
        status.batch_evaluation_id = Some(job.id.clone());
        status.batch_evaluation_arn = Some(job.arn.clone());
        status.batch_evaluation_name = Some(job.name.clone());
        status.region = Some(observed.region.to_owned());
        status.remote_status = Some(job.status.as_str().to_owned());
        if job.created_at.is_some() {
            status.started_at.clone_from(&job.created_at);
        }
        if job.status.is_terminal() && status.completed_at.is_none() {
            status.completed_at = Some(job.updated_at.clone().unwrap_or_else(|| now.to_string()));
        }
        if let Some(results) = &job.results {
            status.results = Some(results.clone());
            status.sessions = results
                .total_sessions
                .map(|total| format!("{}/{total}", results.sessions_completed.unwrap_or(0)));
            let scores: Vec<f64> = results
                .evaluators
                .iter()
                .filter_map(|e| e.average_score)
                .collect();
            status.average_score = (!scores.is_empty()).then(|| {
                #[allow(clippy::cast_precision_loss)] // at most a few dozen evaluators
                let mean = scores.iter().sum::<f64>() / scores.len() as f64;
                (mean * 1000.0).round() / 1000.0
            });
        }
        if job.error_details.is_some() {
            status.error_details.clone_from(&job.error_details);
        }
    } else if status.batch_evaluation_name.is_none()
        && matches!(observed.step, Step::Retry { .. } | Step::Stall(_))
    {
        // Record the name and region the job is (to be) started under, so the operator keeps
        // using them even if its defaults change before the Start succeeds.
        status.batch_evaluation_name = Some(observed.name.to_owned());
        status.region = Some(observed.region.to_owned());
    }

    status.cleanup_step = if observed.deleting {
        match (observed.cleanup_action, observed.step) {
            (Some(action), _) => Some(action),
            (None, Step::Wait(Wait::Cleanup(step))) => Some(*step),
            (None, _) => current.cleanup_step,
        }
    } else {
        None
    };

    let remote = status.remote_status.as_deref().map(RemoteStatus::parse);
    let previous_stall = current
        .conditions
        .iter()
        .find(|c| c.type_ == STALLED && c.status == "True")
        .map(|c| (c.reason.as_str(), c.message.as_str()));
    let set = conditions(
        observed,
        remote.as_ref(),
        status.cleanup_step,
        status.error_details.as_deref(),
        previous_stall,
    );
    status.conditions = set
        .into_iter()
        .map(|(type_, truth, reason, message)| {
            condition(
                current,
                type_,
                truth,
                reason,
                message,
                observed.generation,
                now,
            )
        })
        .collect();
    status
}

type ConditionSpec = (&'static str, bool, String, String);

fn conditions(
    observed: &Observed<'_>,
    remote: Option<&RemoteStatus>,
    cleanup: Option<CleanupStep>,
    error_details: Option<&str>,
    previous_stall: Option<(&str, &str)>,
) -> [ConditionSpec; 3] {
    let make = |ready: (bool, &str, String),
                reconciling: (bool, &str),
                stalled: Option<(&str, String)>| {
        let (ready_ok, ready_reason, message) = ready;
        let (reconciling_on, reconciling_reason) = reconciling;
        let (stalled_on, stalled_reason, stalled_message) = match stalled {
            Some((reason, msg)) => (true, reason.to_owned(), msg),
            None => (false, "NotStalled".to_owned(), String::new()),
        };
        [
            (READY, ready_ok, ready_reason.to_owned(), message.clone()),
            (
                RECONCILING,
                reconciling_on,
                reconciling_reason.to_owned(),
                if reconciling_on {
                    message
                } else {
                    String::new()
                },
            ),
            (STALLED, stalled_on, stalled_reason, stalled_message),
        ]
    };

    if observed.deleting {
        let step = cleanup.map_or("Deleting", CleanupStep::as_str);
        let location = observed.results_location.map_or_else(
            || "Per-session results already written to CloudWatch Logs are not deleted.".to_owned(),
            |group| {
                format!("Per-session results in CloudWatch Logs log group {group} are not deleted.")
            },
        );
        let message = match observed.failure {
            Some((kind, text)) => format!(
                "cleanup step {step} is retrying after {}: {text}. {location}",
                kind.as_str()
            ),
            None => format!("cleaning up the remote job: {step}. {location}"),
        };
        let stalled = observed
            .failure
            .filter(|(kind, _)| kind.needs_intervention())
            .map(|(kind, text)| (kind.as_str(), text.to_owned()));
        return make((false, step, message), (true, step), stalled);
    }
    if let Step::Stall(reason) = observed.step {
        // Restating a stall keeps the service's words from when it happened.
        let message = match (observed.failure, previous_stall) {
            (Some((_, text)), _) => text.to_owned(),
            (None, Some((previous, text))) if previous == reason.as_str() => text.to_owned(),
            (None, _) => stall_message(*reason).to_owned(),
        };
        return make(
            (false, reason.as_str(), message.clone()),
            (false, reason.as_str()),
            Some((reason.as_str(), message)),
        );
    }
    if let Some((kind, text)) = observed.failure {
        let message = format!("retrying after {}: {text}", kind.as_str());
        let stalled = kind
            .needs_intervention()
            .then(|| (kind.as_str(), text.to_owned()));
        return make(
            (false, kind.as_str(), message),
            (true, kind.as_str()),
            stalled,
        );
    }
    let Some(remote) = remote else {
        return make(
            (
                false,
                "Starting",
                "starting the batch evaluation".to_owned(),
            ),
            (true, "Starting"),
            None,
        );
    };
    let stop_note = |what: &str| {
        if observed.stop_requested {
            (
                false,
                "StopNotNeeded",
                format!("spec.stop is true, but the job had already {what}; nothing to stop"),
            )
        } else {
            (false, "Completed", String::new())
        }
    };
    match remote {
        RemoteStatus::Pending => make(
            (false, "Pending", "the job is queued".into()),
            (true, "Pending"),
            None,
        ),
        RemoteStatus::InProgress => make(
            (false, "InProgress", "the job is evaluating sessions".into()),
            (true, "InProgress"),
            None,
        ),
        RemoteStatus::Stopping => make(
            (false, "Stopping", "the job is stopping".into()),
            (true, "Stopping"),
            None,
        ),
        RemoteStatus::Completed | RemoteStatus::CompletedWithErrors => {
            let reason = if *remote == RemoteStatus::Completed {
                "Completed"
            } else {
                "CompletedWithErrors"
            };
            let (on, reconciling_reason, note) = stop_note("completed");
            let mut out = make(
                (true, reason, format!("the job finished: {remote}")),
                (on, reconciling_reason),
                None,
            );
            if !note.is_empty() {
                out[1].3 = note;
            }
            out
        }
        RemoteStatus::Failed => {
            let details = error_details.unwrap_or("the service reported FAILED");
            make(
                (false, "JobFailed", details.to_owned()),
                (false, "JobFailed"),
                Some(("JobFailed", details.to_owned())),
            )
        }
        // The desired state ("stopped") is reached: Ready=True, so kstatus reads Current and a
        // Flux `wait: true` does not hang on it; the reason tells it apart from a completion.
        RemoteStatus::Stopped if observed.stop_requested => make(
            (
                true,
                "StoppedOnRequest",
                "stopped because spec.stop is true; results so far are kept".into(),
            ),
            (false, "StoppedOnRequest"),
            None,
        ),
        RemoteStatus::Stopped => {
            let message = "the job was stopped outside this operator".to_owned();
            make(
                (false, "StoppedExternally", message.clone()),
                (false, "StoppedExternally"),
                Some(("StoppedExternally", message)),
            )
        }
        RemoteStatus::Deleting => make(
            (
                false,
                "RemoteDeleting",
                "the job is being deleted outside this operator".into(),
            ),
            (true, "RemoteDeleting"),
            None,
        ),
        RemoteStatus::Unknown(value) => make(
            (
                false,
                "UnknownRemoteStatus",
                format!("the service reported status {value:?}, unknown to this operator; polling"),
            ),
            (true, "UnknownRemoteStatus"),
            None,
        ),
    }
}

const fn stall_message(reason: StallReason) -> &'static str {
    match reason {
        StallReason::InvalidSpec => "the service rejected the spec",
        StallReason::NameConflict => {
            "a batch evaluation with this name exists and was not started for this object"
        }
        StallReason::AdoptionTargetNotFound => {
            "spec.adoptBatchEvaluationId names no batch evaluation"
        }
        StallReason::RemoteDeleted => {
            "the batch evaluation was deleted outside this operator; it is not started again"
        }
    }
}

fn condition(
    current: &BatchEvaluationStatus,
    type_: &str,
    truth: bool,
    reason: String,
    message: String,
    generation: i64,
    now: Timestamp,
) -> Condition {
    let status = if truth { "True" } else { "False" };
    let previous = current.conditions.iter().find(|c| c.type_ == type_);
    let last_transition_time = match previous {
        Some(p) if p.status == status => p.last_transition_time.clone(),
        _ => Time(now),
    };
    Condition {
        type_: type_.to_owned(),
        status: status.to_owned(),
        reason,
        message,
        observed_generation: Some(generation),
        last_transition_time,
    }
}

/// The stall in the current Stalled condition: for `Some(generation)` only if recorded for that
/// generation, for `None` whatever generation it was recorded for.
#[must_use]
pub fn recorded_stall(
    status: Option<&BatchEvaluationStatus>,
    generation: Option<i64>,
) -> Option<StallReason> {
    status?
        .conditions
        .iter()
        .find(|c| {
            c.type_ == STALLED
                && c.status == "True"
                && generation.is_none_or(|g| c.observed_generation == Some(g))
        })
        .and_then(|c| StallReason::parse(&c.reason))
}

/// Whether `desired` differs from `current` in anything but `last_synced_at`.
#[must_use]
pub fn changed(current: &BatchEvaluationStatus, desired: &BatchEvaluationStatus) -> bool {
    let mut a = current.clone();
    a.last_synced_at = None;
    let mut b = desired.clone();
    b.last_synced_at = None;
    a != b
}

#[cfg(test)]
mod tests;
