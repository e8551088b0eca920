//! Status is computed in exactly one place: from the previous status, what this reconcile
//! learned, and the step it ended on. Pure, so every condition is unit-tested.

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

use crate::{
    api::{BatchEvaluationStatus, CleanupStep, PassCriteria},
    batch_evaluation::{
        gate::{self, Gate},
        lifecycle::{StallReason, Step, Wait},
        queue::Place,
        reason::Reason,
    },
    remote::{FailureKind, RemoteJob, RemoteStatus},
};

/// Condition types, with kstatus meaning.
pub const READY: &str = "Ready";
pub const RECONCILING: &str = "Reconciling";
pub const STALLED: &str = "Stalled";
/// The quality gate, present when `spec.passCriteria` is set: True, False, or Unknown while the
/// job runs.
pub const PASSED: &str = "Passed";
/// A condition's `status` values.
const TRUE: &str = "True";
const FALSE: &str = "False";

/// What one reconcile learned and decided: everything the status is computed from.
pub struct StatusInputs<'a> {
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
    /// The object's place in the start queue, when it waits there.
    pub queue: Option<&'a Place>,
    /// The role the object acts through (`None`: the operator's own identity).
    pub role_arn: Option<&'a str>,
    /// Words for a stall decided without AWS (the other object of an adoption conflict).
    pub detail: Option<&'a str>,
    /// `spec.passCriteria`, judged against the recorded results.
    pub pass_criteria: Option<&'a PassCriteria>,
}

/// What the three conditions say, typed.
#[derive(Clone, Debug, PartialEq)]
pub struct Verdict {
    /// Ready=True: the desired state is reached.
    pub ready: bool,
    /// The reason of Ready (and of Reconciling, unless [`Self::settled`] says otherwise).
    pub reason: Reason,
    pub message: String,
    /// Reconciling=True: the operator is still working towards the desired state.
    pub reconciling: bool,
    /// Reason and message of Reconciling=False where they differ from Ready's.
    pub settled: Option<(Reason, String)>,
    /// Stalled=True, with its reason and message.
    pub stalled: Option<(Reason, String)>,
}

impl Verdict {
    /// The operator is working on it: Ready=False, Reconciling=True, not stalled.
    fn progressing(reason: Reason, message: impl Into<String>) -> Self {
        Self {
            ready: false,
            reason,
            message: message.into(),
            reconciling: true,
            settled: None,
            stalled: None,
        }
    }

    /// Nothing more will happen on its own: Ready=False, Reconciling=False, Stalled=True.
    fn stalled(reason: Reason, message: String) -> Self {
        Self {
            ready: false,
            reason,
            message: message.clone(),
            reconciling: false,
            settled: None,
            stalled: Some((reason, message)),
        }
    }

    /// The desired state is reached: Ready=True, Reconciling=False.
    fn done(reason: Reason, message: impl Into<String>) -> Self {
        Self {
            ready: true,
            reason,
            message: message.into(),
            reconciling: false,
            settled: None,
            stalled: None,
        }
    }

    fn with_stall(mut self, stalled: Option<(Reason, String)>) -> Self {
        self.stalled = stalled;
        self
    }

    /// The three conditions, keeping the transition time of those whose status did not flip.
    fn conditions(
        &self,
        current: &BatchEvaluationStatus,
        generation: i64,
        now: Timestamp,
    ) -> Vec<Condition> {
        let condition = |type_: &str, truth: bool, reason: Reason, message: String| {
            let status = if truth { TRUE } else { FALSE };
            condition(current, type_, status, reason, message, generation, now)
        };
        let (reconciling_reason, reconciling_message) = match (&self.settled, self.reconciling) {
            (_, true) => (self.reason, self.message.clone()),
            (Some((reason, message)), false) => (*reason, message.clone()),
            (None, false) => (self.reason, String::new()),
        };
        let (stalled_reason, stalled_message) = self
            .stalled
            .clone()
            .unwrap_or((Reason::NotStalled, String::new()));
        vec![
            condition(READY, self.ready, self.reason, self.message.clone()),
            condition(
                RECONCILING,
                self.reconciling,
                reconciling_reason,
                reconciling_message,
            ),
            condition(
                STALLED,
                self.stalled.is_some(),
                stalled_reason,
                stalled_message,
            ),
        ]
    }
}

/// One condition, keeping its transition time if its status did not flip.
fn condition(
    current: &BatchEvaluationStatus,
    type_: &str,
    status: &str,
    reason: Reason,
    message: String,
    generation: i64,
    now: Timestamp,
) -> Condition {
    let last_transition_time = match current.conditions.iter().find(|c| c.type_ == type_) {
        Some(previous) if previous.status == status => previous.last_transition_time.clone(),
        _ => Time(now),
    };
    Condition {
        type_: type_.to_owned(),
        status: status.to_owned(),
        reason: reason.as_str().to_owned(),
        message,
        observed_generation: Some(generation),
        last_transition_time,
    }
}

/// The status this object should have, the verdict its conditions state, and whether it is
/// worth a write.
pub struct Desired {
    pub status: BatchEvaluationStatus,
    pub verdict: Verdict,
    /// The quality gate's verdict, when the object has pass criteria.
    pub gate: Option<Gate>,
    /// Write the status: it changed, and the change is not one the next poll records anyway.
    pub write: bool,
}

/// The status this object should have. `last_synced_at` is stamped only when the status is
/// written, so an unchanged job costs no write (invariant I6).
#[must_use]
pub fn desired(
    current: &BatchEvaluationStatus,
    inputs: &StatusInputs<'_>,
    now: Timestamp,
) -> Desired {
    let mut status = current.clone();
    status.observed_generation = inputs.generation;

    let called_aws = inputs.failure.is_some()
        || matches!(inputs.step, Step::Stall(stall) if !stall.decided_without_aws());
    if let Some(job) = inputs.job {
        record_job(&mut status, job, inputs.region, now);
        status.role_arn = inputs.role_arn.map(ToOwned::to_owned);
    } else if status.batch_evaluation_name.is_none() && called_aws {
        // Record the name, region and identity the job is (to be) started under, so the
        // operator keeps using them even if its defaults or the namespace's role change before
        // the Start succeeds.
        status.batch_evaluation_name = Some(inputs.name.to_owned());
        status.region = Some(inputs.region.to_owned());
        status.role_arn = inputs.role_arn.map(ToOwned::to_owned);
    }

    status.cleanup_step = if inputs.deleting {
        match (inputs.cleanup_action, inputs.step) {
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
        .find(|c| c.type_ == STALLED && c.status == TRUE)
        .map(|c| (c.reason.as_str(), c.message.as_str()));
    let verdict = verdict(
        inputs,
        remote.as_ref(),
        status.cleanup_step,
        status.error_details.as_deref(),
        previous_stall,
    );
    status.conditions = verdict.conditions(current, inputs.generation, now);
    let gate = inputs
        .pass_criteria
        .map(|criteria| gate::judge(criteria, remote.as_ref(), status.results.as_ref()));
    if let Some(gate) = &gate {
        status.conditions.push(condition(
            current,
            PASSED,
            gate.status(),
            gate.reason(),
            gate.message(),
            inputs.generation,
            now,
        ));
    }
    // A Delete was just accepted. The job is usually gone by the next cleanup poll, and that
    // poll records the step itself if it is not (AwaitingRemoval); the DeleteRequested event
    // tells it now. This saves one status write per deletion.
    let delete_just_accepted = inputs.cleanup_action == Some(CleanupStep::Deleting)
        && matches!(inputs.step, Step::Wait(Wait::Cleanup(_)));
    let write = !delete_just_accepted && changed(current, &status);
    if write {
        status.last_synced_at = Some(now.to_string());
    }
    Desired {
        status,
        verdict,
        gate,
        write,
    }
}

/// Copies what the service said of the job into the status.
fn record_job(status: &mut BatchEvaluationStatus, job: &RemoteJob, region: &str, now: Timestamp) {
    status.batch_evaluation_id = Some(job.id.clone());
    status.batch_evaluation_arn = Some(job.arn.clone());
    status.batch_evaluation_name = Some(job.name.clone());
    status.region = Some(region.to_owned());
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
}

/// The conditions' verdict, in order of precedence: deletion, a stall, a failing call, then
/// what the job's remote status says.
fn verdict(
    inputs: &StatusInputs<'_>,
    remote: Option<&RemoteStatus>,
    cleanup: Option<CleanupStep>,
    error_details: Option<&str>,
    previous_stall: Option<(&str, &str)>,
) -> Verdict {
    if inputs.deleting {
        return deletion_verdict(inputs, cleanup);
    }
    if let Step::Stall(stall) = inputs.step {
        // Restating a stall keeps the service's words from when it happened.
        let reason = Reason::from(*stall);
        let message = match (inputs.failure, inputs.detail, previous_stall) {
            (Some((_, text)), _, _) | (None, Some(text), _) => text.to_owned(),
            (None, None, Some((previous, text))) if Reason::stall(previous) == Some(*stall) => {
                text.to_owned()
            }
            (None, None, _) => stall_message(*stall).to_owned(),
        };
        return Verdict::stalled(reason, message);
    }
    if *inputs.step == Step::Wait(Wait::Queued) {
        // A Start refused for quota is a wait in line, not a failure.
        return Verdict::progressing(
            Reason::Queued,
            inputs
                .queue
                .map_or_else(|| "queued to start".to_owned(), Place::describe),
        );
    }
    if let Some((kind, text)) = inputs.failure {
        return Verdict::progressing(
            kind.into(),
            format!("retrying after {}: {text}", kind.as_str()),
        )
        .with_stall(needs_a_person(kind, text));
    }
    match remote {
        Some(remote) => remote_verdict(remote, inputs.stop_requested, error_details),
        None if inputs.stop_requested => Verdict::done(
            Reason::NotStarted,
            "spec.stop is true: the batch evaluation was never started",
        ),
        None => Verdict::progressing(Reason::Starting, "starting the batch evaluation"),
    }
}

fn deletion_verdict(inputs: &StatusInputs<'_>, cleanup: Option<CleanupStep>) -> Verdict {
    let step = cleanup.unwrap_or(CleanupStep::Deleting);
    let location = inputs.results_location.map_or_else(
        || "Per-session results already written to CloudWatch Logs are not deleted.".to_owned(),
        |group| {
            format!("Per-session results in CloudWatch Logs log group {group} are not deleted.")
        },
    );
    let message = match inputs.failure {
        Some((kind, text)) => format!(
            "cleanup step {} is retrying after {}: {text}. {location}",
            step.as_str(),
            kind.as_str()
        ),
        None => format!("cleaning up the remote job: {}. {location}", step.as_str()),
    };
    let stalled = inputs
        .failure
        .and_then(|(kind, text)| needs_a_person(kind, text));
    Verdict::progressing(step.into(), message).with_stall(stalled)
}

/// Credentials and permissions do not fix themselves: such a failure is also a stall.
fn needs_a_person(kind: FailureKind, text: &str) -> Option<(Reason, String)> {
    kind.needs_intervention()
        .then(|| (kind.into(), text.to_owned()))
}

fn remote_verdict(
    remote: &RemoteStatus,
    stop_requested: bool,
    error_details: Option<&str>,
) -> Verdict {
    match remote {
        RemoteStatus::Pending => Verdict::progressing(Reason::Pending, "the job is queued"),
        RemoteStatus::InProgress => {
            Verdict::progressing(Reason::InProgress, "the job is evaluating sessions")
        }
        RemoteStatus::Stopping => Verdict::progressing(Reason::Stopping, "the job is stopping"),
        RemoteStatus::Completed | RemoteStatus::CompletedWithErrors => {
            let reason = if *remote == RemoteStatus::Completed {
                Reason::Completed
            } else {
                Reason::CompletedWithErrors
            };
            let settled = if stop_requested {
                (
                    Reason::StopNotNeeded,
                    "spec.stop is true, but the job had already completed; nothing to stop"
                        .to_owned(),
                )
            } else {
                (Reason::Completed, String::new())
            };
            Verdict {
                settled: Some(settled),
                ..Verdict::done(reason, format!("the job finished: {remote}"))
            }
        }
        RemoteStatus::Failed => Verdict::stalled(
            Reason::JobFailed,
            error_details
                .unwrap_or("the service reported FAILED")
                .to_owned(),
        ),
        // The desired state ("stopped") is reached: Ready=True, so kstatus reads Current and a
        // Flux `wait: true` does not hang on it; the reason tells it apart from a completion.
        RemoteStatus::Stopped if stop_requested => Verdict::done(
            Reason::StoppedOnRequest,
            "stopped because spec.stop is true; results so far are kept",
        ),
        RemoteStatus::Stopped => Verdict::stalled(
            Reason::StoppedExternally,
            "the job was stopped outside this operator".to_owned(),
        ),
        RemoteStatus::Deleting => Verdict::progressing(
            Reason::RemoteDeleting,
            "the job is being deleted outside this operator",
        ),
        RemoteStatus::Unknown(value) => Verdict::progressing(
            Reason::UnknownRemoteStatus,
            format!("the service reported status {value:?}, unknown to this operator; polling"),
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
        StallReason::DeletedExternally => {
            "the batch evaluation was deleted outside this operator; it is not started again"
        }
        StallReason::NoAwsIdentity => {
            "this namespace is not mapped to an IAM role and the operator refuses unmapped namespaces (--unmapped-namespaces=refuse); ask the cluster administrator for a --namespace-role"
        }
        StallReason::AdoptionNotAllowed => {
            "the cluster administrator does not let this namespace adopt batch evaluations (--adoption); remove spec.adoptBatchEvaluationId"
        }
        StallReason::AdoptionConflict => {
            "another object already records or adopts this batch evaluation"
        }
    }
}

/// The stall in the current Stalled condition: for `Some(generation)` only if recorded for that
/// generation, for `None` whatever generation it was recorded for.
#[must_use]
pub fn recorded_stall(
    status: Option<&BatchEvaluationStatus>,
    generation: Option<i64>,
) -> Option<StallReason> {
    stall_condition(status?)
        .filter(|(_, observed)| stall_holds(*observed, generation))
        .map(|(reason, _)| reason)
}

/// The recorded `Stalled=True` condition: its reason, and the generation it was written for.
#[must_use]
pub fn stall_condition(status: &BatchEvaluationStatus) -> Option<(StallReason, Option<i64>)> {
    let condition = status
        .conditions
        .iter()
        .find(|c| c.type_ == STALLED && c.status == TRUE)?;
    Some((
        Reason::stall(&condition.reason)?,
        condition.observed_generation,
    ))
}

/// Whether a stall written for generation `observed` holds at `generation` (`None`: at any).
#[must_use]
pub fn stall_holds(observed: Option<i64>, generation: Option<i64>) -> bool {
    generation.is_none_or(|g| observed == Some(g))
}

/// The reason of the recorded Ready condition.
#[must_use]
pub fn recorded_reason(status: Option<&BatchEvaluationStatus>) -> Option<&str> {
    status?
        .conditions
        .iter()
        .find(|c| c.type_ == READY)
        .map(|c| c.reason.as_str())
}

/// Whether the recorded Ready condition reports a failing AWS call (so the status is not a
/// fresh observation of the job).
#[must_use]
pub fn recorded_failure(status: &BatchEvaluationStatus) -> bool {
    recorded_reason(Some(status)).is_some_and(Reason::is_recorded_failure)
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
