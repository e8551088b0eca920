//! A batch-evaluation job: what was asked for ([`JobSpec`]) and where it is in its life
//! ([`Lifecycle`]). The status is never stored: it is computed from the creation, stop and
//! delete times and the job's timing, so thousands of jobs need no timers or tasks.

use std::{collections::BTreeMap, fmt, str::FromStr, time::Duration};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::wire::{ApiError, FieldError, ValidationReason};

/// Tag that picks a job's outcome (`COMPLETED`, `COMPLETED_WITH_ERRORS` or `FAILED`).
pub const TAG_OUTCOME: &str = "emulator:outcome";
/// Tag that overrides how long the job runs (humantime, e.g. `30s`).
pub const TAG_JOB_DURATION: &str = "emulator:job-duration";
/// Tag that overrides how long the job stays STOPPING.
pub const TAG_STOP_DURATION: &str = "emulator:stop-duration";
/// Tag that overrides how long the job stays DELETING.
pub const TAG_DELETE_DURATION: &str = "emulator:delete-duration";
/// Tag that fixes every evaluator's average score (a number in `[0, 1]`), for tests of pass
/// criteria; without it the score is derived from the job and evaluator names.
pub const TAG_SCORE: &str = "emulator:score";

/// The longest the emulator keeps a job PENDING before it starts "running".
const MAX_PENDING: Duration = Duration::from_secs(1);

/// The service's `BatchEvaluationStatus`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum JobStatus {
    Pending,
    InProgress,
    Completed,
    CompletedWithErrors,
    Failed,
    Stopping,
    Stopped,
    Deleting,
}

impl JobStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Pending => "PENDING",
            JobStatus::InProgress => "IN_PROGRESS",
            JobStatus::Completed => "COMPLETED",
            JobStatus::CompletedWithErrors => "COMPLETED_WITH_ERRORS",
            JobStatus::Failed => "FAILED",
            JobStatus::Stopping => "STOPPING",
            JobStatus::Stopped => "STOPPED",
            JobStatus::Deleting => "DELETING",
        }
    }

    /// Active statuses: the job counts against the account's quota of concurrent jobs.
    pub fn is_active(self) -> bool {
        matches!(
            self,
            JobStatus::Pending | JobStatus::InProgress | JobStatus::Stopping
        )
    }

    /// Terminal statuses: the job will not change again until it is deleted.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            JobStatus::Completed
                | JobStatus::CompletedWithErrors
                | JobStatus::Failed
                | JobStatus::Stopped
        )
    }
}

impl fmt::Display for JobStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a job that runs to the end finishes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Outcome {
    #[default]
    Completed,
    CompletedWithErrors,
    Failed,
}

impl Outcome {
    pub fn status(self) -> JobStatus {
        match self {
            Outcome::Completed => JobStatus::Completed,
            Outcome::CompletedWithErrors => JobStatus::CompletedWithErrors,
            Outcome::Failed => JobStatus::Failed,
        }
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.status().as_str())
    }
}

/// Error for a string that is not an [`Outcome`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown outcome {0:?} (expected COMPLETED, COMPLETED_WITH_ERRORS or FAILED)")]
pub struct UnknownOutcome(pub String);

impl FromStr for Outcome {
    type Err = UnknownOutcome;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_uppercase().replace('-', "_").as_str() {
            "COMPLETED" => Ok(Outcome::Completed),
            "COMPLETED_WITH_ERRORS" => Ok(Outcome::CompletedWithErrors),
            "FAILED" => Ok(Outcome::Failed),
            _ => Err(UnknownOutcome(s.to_owned())),
        }
    }
}

/// A point in emulator time: the monotonic time since the emulator started.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub(crate) struct Tick(pub Duration);

impl Tick {
    fn after(self, d: Duration) -> Tick {
        Tick(self.0.saturating_add(d))
    }

    fn since(self, earlier: Tick) -> Duration {
        self.0.saturating_sub(earlier.0)
    }
}

/// How long each phase of a job lasts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Timing {
    pub job: Duration,
    pub stop: Duration,
    pub delete: Duration,
}

/// Per-job settings read from `emulator:*` tags.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct Overrides {
    pub outcome: Option<Outcome>,
    pub job: Option<Duration>,
    pub stop: Option<Duration>,
    pub delete: Option<Duration>,
    pub score: Option<f64>,
}

impl Overrides {
    pub(crate) fn apply(&self, defaults: Timing) -> Timing {
        Timing {
            job: self.job.unwrap_or(defaults.job),
            stop: self.stop.unwrap_or(defaults.stop),
            delete: self.delete.unwrap_or(defaults.delete),
        }
    }
}

/// What a StartBatchEvaluation request asked for, after validation.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct JobSpec {
    pub name: String,
    pub client_token: Option<String>,
    pub description: Option<String>,
    pub kms_key_arn: Option<String>,
    pub evaluators: Vec<String>,
    pub insights: Vec<String>,
    pub tags: BTreeMap<String, String>,
    /// Echoed verbatim by GetBatchEvaluation; already in wire form (validated, cleaned).
    pub data_source: Value,
    pub output: Option<Value>,
    pub dataset_execution: Option<Value>,
    pub session_count: u32,
    /// The request without its clientToken: what an idempotent retry must repeat exactly.
    pub fingerprint: Value,
    pub overrides: Overrides,
}

impl JobSpec {
    /// Builds the spec from a request body that passed [`crate::validate::validate_input`].
    pub(crate) fn from_request(
        mut request: Value,
        default_sessions: u32,
    ) -> Result<Self, ApiError> {
        let str_at = |v: &Value, key: &str| v.get(key).and_then(Value::as_str).map(str::to_owned);
        let ids_at = |v: &Value, list: &str, key: &str| -> Vec<String> {
            v.get(list)
                .and_then(Value::as_array)
                .map(|items| items.iter().filter_map(|i| str_at(i, key)).collect())
                .unwrap_or_default()
        };
        let tags: BTreeMap<String, String> = request
            .get("tags")
            .and_then(Value::as_object)
            .map(|m| {
                m.iter()
                    .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
                    .collect()
            })
            .unwrap_or_default();
        let overrides = overrides_from_tags(&tags)?;
        let session_count = session_count(&request).unwrap_or(default_sessions);
        let client_token = str_at(&request, "clientToken");
        let spec_without_fingerprint = JobSpec {
            name: str_at(&request, "batchEvaluationName").unwrap_or_default(),
            client_token,
            description: str_at(&request, "description"),
            kms_key_arn: str_at(&request, "kmsKeyArn"),
            evaluators: ids_at(&request, "evaluators", "evaluatorId"),
            insights: ids_at(&request, "insights", "insightId"),
            tags,
            data_source: request
                .get("dataSourceConfig")
                .cloned()
                .unwrap_or(Value::Null),
            output: request.get("outputConfig").cloned(),
            dataset_execution: request.get("datasetExecutionConfig").cloned(),
            session_count,
            fingerprint: Value::Null,
            overrides,
        };
        if let Some(map) = request.as_object_mut() {
            map.remove("clientToken");
        }
        Ok(JobSpec {
            fingerprint: request,
            ..spec_without_fingerprint
        })
    }

    /// `datasetExecutionConfig` as GetBatchEvaluation reports it (`datasetExecutionDetails`):
    /// the same data with the versions the service would have resolved.
    pub(crate) fn dataset_execution_details(&self) -> Option<Value> {
        let mut details = self.dataset_execution.clone()?;
        if let Some(dataset) = details.get_mut("dataset").and_then(Value::as_object_mut) {
            dataset
                .entry("datasetVersion")
                .or_insert_with(|| Value::from("DRAFT"));
        }
        if let Some(runtime) = details
            .get_mut("agentInvocation")
            .and_then(|a| a.get_mut("agentCoreRuntime"))
            .and_then(Value::as_object_mut)
        {
            runtime
                .entry("agentRuntimeVersion")
                .or_insert_with(|| Value::from("1"));
        }
        Some(details)
    }
}

/// The number of sessions the job would evaluate, when the request names them.
fn session_count(request: &Value) -> Option<u32> {
    let len = |v: Option<&Value>| v.and_then(Value::as_array).map(Vec::len).filter(|n| *n > 0);
    let metadata = request.pointer("/evaluationMetadata/sessionMetadata");
    let filter = request.pointer("/dataSourceConfig/cloudWatchLogs/filterConfig");
    len(metadata)
        .or_else(|| len(filter.and_then(|f| f.get("sessionIds"))))
        .or_else(|| len(filter.and_then(|f| f.get("sessionTraceIds"))))
        .and_then(|n| u32::try_from(n).ok())
}

fn overrides_from_tags(tags: &BTreeMap<String, String>) -> Result<Overrides, ApiError> {
    let mut errors = Vec::new();
    let mut field_error = |key: &str, expected: &str| {
        let name = format!("tags.{key}");
        errors.push(FieldError {
            message: format!("Value at '{name}' failed to satisfy constraint: {expected}"),
            name,
        });
    };
    let mut duration = |key: &str| -> Option<Duration> {
        let raw = tags.get(key)?;
        match humantime::parse_duration(raw.trim()) {
            Ok(d) => Some(d),
            Err(_) => {
                field_error(key, "emulator tag must be a duration such as 500ms or 2m");
                None
            }
        }
    };
    let job = duration(TAG_JOB_DURATION);
    let stop = duration(TAG_STOP_DURATION);
    let delete = duration(TAG_DELETE_DURATION);
    let outcome = match tags.get(TAG_OUTCOME).map(|v| v.trim().parse::<Outcome>()) {
        None => None,
        Some(Ok(o)) => Some(o),
        Some(Err(_)) => {
            field_error(
                TAG_OUTCOME,
                "emulator tag must be one of COMPLETED, COMPLETED_WITH_ERRORS, FAILED",
            );
            None
        }
    };
    let score = match tags.get(TAG_SCORE).map(|v| v.trim().parse::<f64>()) {
        None => None,
        Some(Ok(s)) if (0.0..=1.0).contains(&s) => Some(s),
        Some(_) => {
            field_error(TAG_SCORE, "emulator tag must be a number between 0 and 1");
            None
        }
    };
    if errors.is_empty() {
        Ok(Overrides {
            outcome,
            job,
            stop,
            delete,
            score,
        })
    } else {
        Err(ApiError::invalid_fields(
            ValidationReason::FieldValidationFailed,
            errors,
        ))
    }
}

/// Where a job is in its life. All times are emulator [`Tick`]s.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Lifecycle {
    pub created: Tick,
    pub timing: Timing,
    pub outcome: Outcome,
    pub stop_requested: Option<Tick>,
    pub delete_requested: Option<Tick>,
}

/// A job's state at one instant.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Observation {
    pub status: JobStatus,
    /// When the job entered `status` (the service's `updatedAt`).
    pub since: Tick,
    /// The status that determines results: for DELETING, the terminal status before it.
    pub basis: JobStatus,
    /// Share of the sessions processed, in `[0, 1]`.
    pub fraction: f64,
}

/// Why a stop or delete was refused: the job's status at the time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refused {
    Gone,
    InStatus(JobStatus),
}

impl Lifecycle {
    pub(crate) fn new(created: Tick, timing: Timing, outcome: Outcome) -> Self {
        Lifecycle {
            created,
            timing,
            outcome,
            stop_requested: None,
            delete_requested: None,
        }
    }

    fn pending_for(&self) -> Duration {
        (self.timing.job / 5).min(MAX_PENDING)
    }

    /// When the job disappears, if a delete was accepted.
    pub(crate) fn gone_at(&self) -> Option<Tick> {
        self.delete_requested.map(|d| d.after(self.timing.delete))
    }

    /// The job's state at `now`, or `None` once it has been deleted. Instants before a stop or
    /// delete see the job as it was then, so the original Start response can be replayed.
    pub(crate) fn observe(&self, now: Tick) -> Option<Observation> {
        match self.delete_requested {
            Some(requested) if now >= requested => {
                if now >= requested.after(self.timing.delete) {
                    return None;
                }
                let before = self.observe_undeleted(requested);
                Some(Observation {
                    status: JobStatus::Deleting,
                    since: requested,
                    ..before
                })
            }
            _ => Some(self.observe_undeleted(now)),
        }
    }

    fn observe_undeleted(&self, now: Tick) -> Observation {
        if let Some(requested) = self.stop_requested.filter(|requested| now >= *requested) {
            let fraction = self.run(requested).fraction;
            let stopped = requested.after(self.timing.stop);
            let (status, since) = if now >= stopped {
                (JobStatus::Stopped, stopped)
            } else {
                (JobStatus::Stopping, requested)
            };
            return Observation {
                status,
                since,
                basis: status,
                fraction,
            };
        }
        self.run(now)
    }

    /// The job as if nobody intervened.
    fn run(&self, now: Tick) -> Observation {
        let elapsed = now.since(self.created);
        let pending = self.pending_for();
        let (status, since, fraction) = if elapsed >= self.timing.job {
            (
                self.outcome.status(),
                self.created.after(self.timing.job),
                1.0,
            )
        } else if elapsed < pending {
            (JobStatus::Pending, self.created, 0.0)
        } else {
            let running = self.timing.job.saturating_sub(pending).as_secs_f64();
            let done = (elapsed - pending).as_secs_f64();
            let fraction = if running > 0.0 {
                (done / running).clamp(0.0, 1.0)
            } else {
                1.0
            };
            (JobStatus::InProgress, self.created.after(pending), fraction)
        };
        Observation {
            status,
            since,
            basis: status,
            fraction,
        }
    }

    /// StopBatchEvaluation: PENDING/IN_PROGRESS start stopping, STOPPING stays; anything else
    /// is a conflict.
    pub(crate) fn stop(&mut self, now: Tick) -> Result<JobStatus, Refused> {
        let current = self.observe(now).ok_or(Refused::Gone)?;
        match current.status {
            JobStatus::Pending | JobStatus::InProgress => {
                self.stop_requested = Some(now);
                Ok(self.observe(now).map_or(JobStatus::Stopped, |o| o.status))
            }
            JobStatus::Stopping => Ok(JobStatus::Stopping),
            other => Err(Refused::InStatus(other)),
        }
    }

    /// DeleteBatchEvaluation: only terminal jobs can be deleted.
    pub(crate) fn delete(&mut self, now: Tick) -> Result<JobStatus, Refused> {
        let current = self.observe(now).ok_or(Refused::Gone)?;
        if current.status.is_terminal() {
            self.delete_requested = Some(now);
            Ok(JobStatus::Deleting)
        } else {
            Err(Refused::InStatus(current.status))
        }
    }
}

/// The `evaluationResults` of a job at one instant.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct EvaluationResults {
    pub number_of_sessions_completed: u32,
    pub number_of_sessions_in_progress: u32,
    pub number_of_sessions_failed: u32,
    pub total_number_of_sessions: u32,
    pub number_of_sessions_ignored: u32,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub evaluator_summaries: Vec<EvaluatorSummary>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct EvaluatorSummary {
    pub evaluator_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub statistics: Option<EvaluatorStatistics>,
    pub total_evaluated: u32,
    pub total_failed: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct EvaluatorStatistics {
    pub average_score: f64,
}

/// Plausible results for a job in the observed state; `None` while PENDING.
pub(crate) fn results(spec: &JobSpec, obs: &Observation) -> Option<EvaluationResults> {
    let total = spec.session_count;
    let partial = (f64::from(total) * obs.fraction).floor() as u32;
    let (completed, in_progress, failed, ignored) = match obs.basis {
        JobStatus::Pending => return None,
        JobStatus::InProgress | JobStatus::Stopping => (partial, total - partial, 0, 0),
        JobStatus::Stopped => (partial, 0, 0, total - partial),
        JobStatus::Completed => (total, 0, 0, 0),
        JobStatus::CompletedWithErrors => {
            let failed = if total == 0 { 0 } else { (total / 5).max(1) };
            (total - failed, 0, failed, 0)
        }
        // A DELETING basis cannot happen: observe() resolves it to the pre-delete status.
        JobStatus::Failed | JobStatus::Deleting => (0, 0, total, 0),
    };
    let evaluator_summaries = spec
        .evaluators
        .iter()
        .map(|id| EvaluatorSummary {
            evaluator_id: id.clone(),
            statistics: (completed > 0).then(|| EvaluatorStatistics {
                average_score: spec
                    .overrides
                    .score
                    .unwrap_or_else(|| score(&spec.name, id)),
            }),
            total_evaluated: completed,
            total_failed: failed,
        })
        .collect();
    Some(EvaluationResults {
        number_of_sessions_completed: completed,
        number_of_sessions_in_progress: in_progress,
        number_of_sessions_failed: failed,
        total_number_of_sessions: total,
        number_of_sessions_ignored: ignored,
        evaluator_summaries,
    })
}

/// `errorDetails` for failed or partly failed jobs (the model allows one entry).
pub(crate) fn error_details(spec: &JobSpec, obs: &Observation) -> Option<Vec<String>> {
    match obs.basis {
        JobStatus::Failed => Some(vec![format!(
            "Batch evaluation {} failed: emulated failure ({} sessions could not be evaluated)",
            spec.name, spec.session_count
        )]),
        JobStatus::CompletedWithErrors => {
            let failed = results(spec, obs).map_or(0, |r| r.number_of_sessions_failed);
            Some(vec![format!(
                "{failed} of {} sessions failed evaluation (emulated)",
                spec.session_count
            )])
        }
        _ => None,
    }
}

/// A score in `[0, 1]` that depends only on the job name and evaluator, so reruns of a test
/// see the same numbers whatever ids the emulator generated.
fn score(job_name: &str, evaluator_id: &str) -> f64 {
    // FNV-1a: stable across Rust versions, unlike std's hasher.
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in job_name.bytes().chain([0]).chain(evaluator_id.bytes()) {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    (hash % 1001) as f64 / 1000.0
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const MS: fn(u64) -> Duration = Duration::from_millis;

    fn at(ms: u64) -> Tick {
        Tick(MS(ms))
    }

    fn lifecycle(job: u64, stop: u64, delete: u64, outcome: Outcome) -> Lifecycle {
        Lifecycle::new(
            at(1000),
            Timing {
                job: MS(job),
                stop: MS(stop),
                delete: MS(delete),
            },
            outcome,
        )
    }

    fn status(l: &Lifecycle, now: u64) -> Option<JobStatus> {
        l.observe(at(now)).map(|o| o.status)
    }

    #[test]
    fn runs_pending_then_in_progress_then_outcome() {
        let l = lifecycle(10_000, 2000, 1000, Outcome::Completed);
        // Pending lasts min(20%, 1s) = 1s.
        assert_eq!(status(&l, 1000), Some(JobStatus::Pending));
        assert_eq!(status(&l, 1999), Some(JobStatus::Pending));
        assert_eq!(status(&l, 2000), Some(JobStatus::InProgress));
        let mid = l.observe(at(6500)).unwrap();
        assert_eq!(mid.status, JobStatus::InProgress);
        assert!((mid.fraction - 0.5).abs() < 1e-9);
        assert_eq!(mid.since, at(2000));
        let done = l.observe(at(11_000)).unwrap();
        assert_eq!(
            (done.status, done.since),
            (JobStatus::Completed, at(11_000))
        );
    }

    #[test]
    fn short_jobs_spend_a_fifth_pending_and_zero_length_jobs_finish_at_once() {
        let l = lifecycle(100, 0, 0, Outcome::Failed);
        assert_eq!(status(&l, 1019), Some(JobStatus::Pending));
        assert_eq!(status(&l, 1020), Some(JobStatus::InProgress));
        assert_eq!(status(&l, 1100), Some(JobStatus::Failed));
        let l = lifecycle(0, 0, 0, Outcome::CompletedWithErrors);
        assert_eq!(status(&l, 1000), Some(JobStatus::CompletedWithErrors));
    }

    #[test]
    fn stop_moves_through_stopping_to_stopped_and_freezes_progress() {
        let mut l = lifecycle(10_000, 2000, 1000, Outcome::Completed);
        assert_eq!(l.stop(at(6500)), Ok(JobStatus::Stopping));
        assert_eq!(
            l.stop(at(7000)),
            Ok(JobStatus::Stopping),
            "stop is repeatable while stopping"
        );
        assert_eq!(
            l.stop_requested,
            Some(at(6500)),
            "a repeated stop does not restart the clock"
        );
        assert_eq!(status(&l, 8499), Some(JobStatus::Stopping));
        let stopped = l.observe(at(20_000)).unwrap();
        assert_eq!(
            (stopped.status, stopped.since),
            (JobStatus::Stopped, at(8500))
        );
        assert!((stopped.fraction - 0.5).abs() < 1e-9);
        assert_eq!(
            l.stop(at(20_000)),
            Err(Refused::InStatus(JobStatus::Stopped))
        );
    }

    #[test]
    fn stop_with_zero_duration_is_stopped_immediately_and_pending_jobs_can_stop() {
        let mut l = lifecycle(10_000, 0, 0, Outcome::Completed);
        assert_eq!(l.stop(at(1000)), Ok(JobStatus::Stopped));
    }

    #[test]
    fn stop_on_terminal_job_conflicts() {
        for outcome in [
            Outcome::Completed,
            Outcome::CompletedWithErrors,
            Outcome::Failed,
        ] {
            let mut l = lifecycle(100, 100, 100, outcome);
            assert_eq!(l.stop(at(5000)), Err(Refused::InStatus(outcome.status())));
        }
    }

    #[test]
    fn delete_only_from_terminal_states_then_gone() {
        let mut l = lifecycle(1000, 500, 300, Outcome::Completed);
        assert_eq!(
            l.delete(at(1000)),
            Err(Refused::InStatus(JobStatus::Pending))
        );
        assert_eq!(
            l.delete(at(1500)),
            Err(Refused::InStatus(JobStatus::InProgress))
        );
        assert_eq!(l.stop(at(1500)), Ok(JobStatus::Stopping));
        assert_eq!(
            l.delete(at(1600)),
            Err(Refused::InStatus(JobStatus::Stopping))
        );
        assert_eq!(l.delete(at(2000)), Ok(JobStatus::Deleting));
        let deleting = l.observe(at(2100)).unwrap();
        assert_eq!(
            (deleting.status, deleting.basis),
            (JobStatus::Deleting, JobStatus::Stopped)
        );
        assert_eq!(
            l.delete(at(2100)),
            Err(Refused::InStatus(JobStatus::Deleting))
        );
        assert_eq!(
            l.stop(at(2100)),
            Err(Refused::InStatus(JobStatus::Deleting))
        );
        assert_eq!(status(&l, 2299), Some(JobStatus::Deleting));
        assert_eq!(status(&l, 2300), None);
        assert_eq!(l.gone_at(), Some(at(2300)));
        assert_eq!(l.delete(at(2300)), Err(Refused::Gone));
        assert_eq!(l.stop(at(2300)), Err(Refused::Gone));
        assert_eq!(
            status(&l, 1000),
            Some(JobStatus::Pending),
            "the past is unchanged"
        );
    }

    fn spec(request: Value) -> Result<JobSpec, ApiError> {
        JobSpec::from_request(request, 10)
    }

    fn base() -> Value {
        json!({
            "batchEvaluationName": "ev",
            "clientToken": "t".repeat(40),
            "evaluators": [{ "evaluatorId": "Builtin.Helpfulness" }, { "evaluatorId": "Builtin.Correctness" }],
            "dataSourceConfig": { "cloudWatchLogs": { "serviceNames": ["svc"] } }
        })
    }

    #[test]
    fn spec_reads_tags_and_excludes_the_token_from_the_fingerprint() {
        let mut request = base();
        request["tags"] = json!({
            "emulator:outcome": "completed_with_errors",
            "emulator:job-duration": "250ms",
            "emulator:stop-duration": "1s",
            "team": "evals"
        });
        let s = spec(request).unwrap();
        assert_eq!(s.overrides.outcome, Some(Outcome::CompletedWithErrors));
        assert_eq!(s.overrides.job, Some(MS(250)));
        assert_eq!(s.overrides.stop, Some(MS(1000)));
        assert_eq!(s.overrides.delete, None);
        assert_eq!(s.client_token.as_deref(), Some("t".repeat(40).as_str()));
        assert!(s.fingerprint.get("clientToken").is_none());
        assert_eq!(s.evaluators, ["Builtin.Helpfulness", "Builtin.Correctness"]);
        assert_eq!(s.session_count, 10);
    }

    #[test]
    fn bad_emulator_tags_are_validation_errors() {
        let mut request = base();
        request["tags"] = json!({ "emulator:outcome": "ARCHIVED", "emulator:delete-duration": "soon", "emulator:score": "1.5" });
        let err = spec(request).unwrap_err();
        assert_eq!(
            err.field_names(),
            [
                "tags.emulator:delete-duration",
                "tags.emulator:outcome",
                "tags.emulator:score"
            ]
        );
    }

    #[test]
    fn the_score_tag_fixes_every_evaluators_average() {
        let mut request = base();
        request["tags"] = json!({ "emulator:score": "0.25" });
        let s = spec(request).unwrap();
        let done = Observation {
            status: JobStatus::Completed,
            since: at(0),
            basis: JobStatus::Completed,
            fraction: 1.0,
        };
        let summaries = results(&s, &done).unwrap().evaluator_summaries;
        assert!(!summaries.is_empty());
        for summary in summaries {
            assert_eq!(summary.statistics.map(|st| st.average_score), Some(0.25));
        }
    }

    #[test]
    fn session_count_comes_from_the_request() {
        let mut request = base();
        request["evaluationMetadata"] =
            json!({ "sessionMetadata": [{ "sessionId": "a" }, { "sessionId": "b" }] });
        request["dataSourceConfig"]["cloudWatchLogs"]["filterConfig"] =
            json!({ "sessionIds": ["x", "y", "z"] });
        assert_eq!(spec(request.clone()).unwrap().session_count, 2);
        request
            .as_object_mut()
            .unwrap()
            .remove("evaluationMetadata");
        assert_eq!(spec(request).unwrap().session_count, 3);
    }

    #[test]
    fn results_follow_progress_and_outcome() {
        let s = spec(base()).unwrap();
        let obs = |basis, fraction| Observation {
            status: basis,
            since: at(0),
            basis,
            fraction,
        };
        assert_eq!(results(&s, &obs(JobStatus::Pending, 0.0)), None);

        let running = results(&s, &obs(JobStatus::InProgress, 0.55)).unwrap();
        assert_eq!(
            (
                running.number_of_sessions_completed,
                running.number_of_sessions_in_progress
            ),
            (5, 5)
        );
        let done = results(&s, &obs(JobStatus::Completed, 1.0)).unwrap();
        assert_eq!(done.number_of_sessions_completed, 10);
        assert_eq!(done.evaluator_summaries.len(), 2);
        let score = done.evaluator_summaries[0]
            .statistics
            .as_ref()
            .unwrap()
            .average_score;
        assert!((0.0..=1.0).contains(&score));
        let again = results(&s, &obs(JobStatus::Completed, 1.0)).unwrap();
        assert_eq!(done, again, "scores are deterministic");

        let partial = results(&s, &obs(JobStatus::CompletedWithErrors, 1.0)).unwrap();
        assert_eq!(
            (
                partial.number_of_sessions_completed,
                partial.number_of_sessions_failed
            ),
            (8, 2)
        );
        assert_eq!(partial.evaluator_summaries[0].total_failed, 2);

        let stopped = results(&s, &obs(JobStatus::Stopped, 0.3)).unwrap();
        assert_eq!(
            (
                stopped.number_of_sessions_completed,
                stopped.number_of_sessions_ignored
            ),
            (3, 7)
        );

        assert!(error_details(&s, &obs(JobStatus::Failed, 1.0)).is_some_and(|d| d.len() == 1));
        assert!(error_details(&s, &obs(JobStatus::Completed, 1.0)).is_none());
    }

    #[test]
    fn dataset_details_fill_in_resolved_versions() {
        let mut request = base();
        request["datasetExecutionConfig"] = json!({
            "dataset": { "datasetId": "ds1" },
            "agentInvocation": { "agentCoreRuntime": { "agentRuntimeEndpointArn": "arn" } }
        });
        let details = spec(request).unwrap().dataset_execution_details().unwrap();
        assert_eq!(details["dataset"]["datasetVersion"], "DRAFT");
        assert_eq!(
            details["agentInvocation"]["agentCoreRuntime"]["agentRuntimeVersion"],
            "1"
        );
    }
}
