//! All jobs, the name and clientToken indexes, and the rules of the five operations over them.
//! One mutex guards everything; each operation holds it for a few map look-ups only (List
//! walks the jobs, as the real service's listing does), and rendering happens outside it.

use std::{
    collections::{BTreeMap, HashMap},
    sync::{Arc, Mutex, MutexGuard, PoisonError},
    time::Instant,
};

use jiff::Timestamp;
use rand::{Rng, SeedableRng, distr::Alphanumeric, rngs::StdRng};
use serde::Serialize;

use crate::{
    job::{JobSpec, JobStatus, Lifecycle, Observation, Outcome, Refused, Tick, Timing},
    wire::{ApiError, ErrorCode, FieldError, ValidationReason},
};

/// Emulator time: monotonic, so jobs progress steadily even if the wall clock jumps, and
/// mapped onto the wall clock once, at start-up, for the timestamps clients see.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Clock {
    started: Instant,
    started_at: Timestamp,
}

impl Clock {
    pub(crate) fn start() -> Self {
        Clock {
            started: Instant::now(),
            started_at: Timestamp::now(),
        }
    }

    pub(crate) fn now(&self) -> Tick {
        Tick(self.started.elapsed())
    }

    pub(crate) fn timestamp(&self, tick: Tick) -> Timestamp {
        self.started_at
            .saturating_add(tick.0)
            .unwrap_or(Timestamp::MAX)
    }
}

/// Settings that apply to every job unless its tags override them.
#[derive(Debug, Clone)]
pub(crate) struct StoreConfig {
    pub account_id: String,
    pub timing: Timing,
    pub outcome: Outcome,
}

/// A job as one request sees it.
#[derive(Debug, Clone)]
pub(crate) struct JobView {
    pub id: String,
    pub arn: String,
    pub spec: Arc<JobSpec>,
    pub observation: Observation,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// A job as the admin API reports it, including jobs that are gone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct JobInfo {
    pub id: String,
    pub arn: String,
    pub name: String,
    pub region: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_token: Option<String>,
    /// The current `BatchEvaluationStatus`, or `"GONE"` once deleted.
    pub status: String,
    /// How the job ends if nobody stops it.
    pub outcome: Outcome,
    pub tags: BTreeMap<String, String>,
    pub created_at: String,
    /// StopBatchEvaluation calls naming this job, whatever their answer.
    pub stop_calls: u32,
    /// DeleteBatchEvaluation calls naming this job, whatever their answer.
    pub delete_calls: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deleted_at: Option<String>,
}

impl JobInfo {
    /// Status reported for jobs that were deleted.
    pub const GONE: &'static str = "GONE";

    pub fn is_gone(&self) -> bool {
        self.status == Self::GONE
    }
}

struct JobRecord {
    id: String,
    arn: String,
    region: String,
    spec: Arc<JobSpec>,
    lifecycle: Lifecycle,
    stop_calls: u32,
    delete_calls: u32,
}

struct Inner {
    jobs: HashMap<String, JobRecord>,
    /// Ids in creation order; the position is the job's sequence number, used by List cursors.
    order: Vec<String>,
    /// (region, name) → id of the job that last took the name; stale once that job is gone.
    names: HashMap<(String, String), String>,
    /// (region, clientToken) → id. Kept after the job is gone: the real service remembers
    /// tokens for hours, and handing out a fresh job for an old token would break
    /// "at most one job per token". A retry for a gone job therefore replays the original
    /// response, and the follow-up Get answers 404, which clients already handle.
    tokens: HashMap<(String, String), String>,
    rng: StdRng,
}

pub(crate) struct Store {
    config: StoreConfig,
    clock: Clock,
    inner: Mutex<Inner>,
}

const ID_SUFFIX_LEN: usize = 10;

impl Store {
    pub(crate) fn new(config: StoreConfig, clock: Clock, seed: Option<u64>) -> Self {
        let rng = seed.map_or_else(StdRng::from_os_rng, StdRng::seed_from_u64);
        Store {
            config,
            clock,
            inner: Mutex::new(Inner {
                jobs: HashMap::new(),
                order: Vec::new(),
                names: HashMap::new(),
                tokens: HashMap::new(),
                rng,
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // Every critical section leaves the maps consistent before anything that could panic,
        // so a poisoned lock still guards valid data.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn view(&self, record: &JobRecord, observation: Observation) -> JobView {
        JobView {
            id: record.id.clone(),
            arn: record.arn.clone(),
            spec: Arc::clone(&record.spec),
            observation,
            created_at: self.clock.timestamp(record.lifecycle.created),
            updated_at: self.clock.timestamp(observation.since),
        }
    }

    /// The record for `id` in `region`, gone or not.
    fn record<'a>(
        inner: &'a mut Inner,
        region: &str,
        id: &str,
    ) -> Result<&'a mut JobRecord, ApiError> {
        inner
            .jobs
            .get_mut(id)
            .filter(|record| record.region == region)
            .ok_or_else(|| ApiError::not_found(id))
    }

    pub(crate) fn start(&self, region: &str, spec: JobSpec) -> Result<JobView, ApiError> {
        let mut inner = self.lock();
        let now = self.clock.now();

        if let Some(token) = &spec.client_token {
            let key = (region.to_owned(), token.clone());
            if let Some(record) = inner.tokens.get(&key).and_then(|id| inner.jobs.get(id)) {
                if record.spec.fingerprint != spec.fingerprint {
                    return Err(ApiError::validation(
                        ValidationReason::IdempotentParameterMismatch,
                        "The clientToken was already used with different parameters",
                        vec![FieldError {
                            name: "clientToken".into(),
                            message: "Value at 'clientToken' was used by an earlier request with different parameters".into(),
                        }],
                    ));
                }
                let created = record.lifecycle.created;
                let original = record.lifecycle.observe(created).ok_or_else(|| {
                    ApiError::new(
                        ErrorCode::InternalServerException,
                        "job vanished at creation",
                    )
                })?;
                return Ok(self.view(record, original));
            }
        }

        let name_key = (region.to_owned(), spec.name.clone());
        if let Some(holder) = inner.names.get(&name_key).and_then(|id| inner.jobs.get(id))
            && holder.lifecycle.observe(now).is_some()
        {
            return Err(ApiError::conflict(format!(
                "A batch evaluation named {} already exists ({})",
                spec.name, holder.id
            )));
        }

        let id = loop {
            let suffix: String = (&mut inner.rng)
                .sample_iter(Alphanumeric)
                .take(ID_SUFFIX_LEN)
                .map(char::from)
                .collect();
            let candidate = format!("{}-{suffix}", spec.name);
            if !inner.jobs.contains_key(&candidate) {
                break candidate;
            }
        };
        let timing = spec.overrides.apply(self.config.timing);
        let outcome = spec.overrides.outcome.unwrap_or(self.config.outcome);
        let record = JobRecord {
            arn: format!(
                "arn:{}:bedrock-agentcore:{region}:{}:batch-evaluation/{id}",
                partition(region),
                self.config.account_id
            ),
            id: id.clone(),
            region: region.to_owned(),
            lifecycle: Lifecycle::new(now, timing, outcome),
            spec: Arc::new(spec),
            stop_calls: 0,
            delete_calls: 0,
        };
        let observation = record.lifecycle.observe(now).ok_or_else(|| {
            ApiError::new(
                ErrorCode::InternalServerException,
                "job vanished at creation",
            )
        })?;
        let view = self.view(&record, observation);
        if let Some(token) = &record.spec.client_token {
            inner
                .tokens
                .insert((region.to_owned(), token.clone()), id.clone());
        }
        inner.names.insert(name_key, id.clone());
        inner.order.push(id.clone());
        inner.jobs.insert(id, record);
        Ok(view)
    }

    pub(crate) fn get(&self, region: &str, id: &str) -> Result<JobView, ApiError> {
        let mut inner = self.lock();
        let now = self.clock.now();
        let record = Self::record(&mut inner, region, id)?;
        let observation = record
            .lifecycle
            .observe(now)
            .ok_or_else(|| ApiError::not_found(id))?;
        Ok(self.view(record, observation))
    }

    /// Newest first. The token is the sequence number below which the next page starts, so
    /// pages stay stable while jobs are created or deleted between calls.
    pub(crate) fn list(
        &self,
        region: &str,
        max_results: usize,
        next_token: Option<&str>,
    ) -> Result<(Vec<JobView>, Option<String>), ApiError> {
        let inner = self.lock();
        let now = self.clock.now();
        let end = match next_token {
            None => inner.order.len(),
            Some(token) => decode_token(token)
                .filter(|cursor| *cursor <= inner.order.len())
                .ok_or_else(|| {
                    ApiError::invalid_fields(
                        ValidationReason::FieldValidationFailed,
                        vec![FieldError {
                            name: "nextToken".into(),
                            message: "Value at 'nextToken' failed to satisfy constraint: not a token returned by ListBatchEvaluations".into(),
                        }],
                    )
                })?,
        };
        let mut visible = inner.order[..end]
            .iter()
            .enumerate()
            .rev()
            .filter_map(|(seq, id)| {
                let record = inner.jobs.get(id)?;
                if record.region != region {
                    return None;
                }
                record.lifecycle.observe(now).map(|obs| (seq, record, obs))
            });
        let page: Vec<JobView> = visible
            .by_ref()
            .take(max_results)
            .map(|(_, record, obs)| self.view(record, obs))
            .collect();
        let next = visible.next().map(|(seq, _, _)| encode_token(seq + 1));
        Ok((page, next))
    }

    pub(crate) fn stop(&self, region: &str, id: &str) -> Result<JobView, ApiError> {
        let mut inner = self.lock();
        let now = self.clock.now();
        let record = Self::record(&mut inner, region, id)?;
        record.stop_calls += 1;
        match record.lifecycle.stop(now) {
            Ok(_) => {
                let observation = record
                    .lifecycle
                    .observe(now)
                    .ok_or_else(|| ApiError::not_found(id))?;
                Ok(self.view(record, observation))
            }
            Err(Refused::Gone) => Err(ApiError::not_found(id)),
            Err(Refused::InStatus(status)) => Err(ApiError::conflict(format!(
                "Batch evaluation {id} cannot be stopped while it is {status}"
            ))),
        }
    }

    pub(crate) fn delete(&self, region: &str, id: &str) -> Result<JobView, ApiError> {
        let mut inner = self.lock();
        let now = self.clock.now();
        let record = Self::record(&mut inner, region, id)?;
        record.delete_calls += 1;
        let before = record
            .lifecycle
            .observe(now)
            .ok_or_else(|| ApiError::not_found(id))?;
        match record.lifecycle.delete(now) {
            Ok(status) => {
                // The response reports DELETING even when the delete takes no time at all.
                let observation = Observation {
                    status,
                    since: now,
                    ..before
                };
                Ok(self.view(record, observation))
            }
            Err(Refused::Gone) => Err(ApiError::not_found(id)),
            Err(Refused::InStatus(JobStatus::Deleting)) => Err(ApiError::conflict(format!(
                "Batch evaluation {id} is already being deleted"
            ))),
            Err(Refused::InStatus(status)) => Err(ApiError::conflict(format!(
                "Batch evaluation {id} cannot be deleted while it is {status}; stop it and wait until it is STOPPED"
            ))),
        }
    }

    /// Every job ever created, oldest first, including deleted ones.
    pub(crate) fn jobs(&self) -> Vec<JobInfo> {
        let inner = self.lock();
        let now = self.clock.now();
        let stamp = |tick: Tick| crate::wire::format_timestamp(self.clock.timestamp(tick));
        inner
            .order
            .iter()
            .filter_map(|id| inner.jobs.get(id))
            .map(|r| {
                let observation = r.lifecycle.observe(now);
                JobInfo {
                    id: r.id.clone(),
                    arn: r.arn.clone(),
                    name: r.spec.name.clone(),
                    region: r.region.clone(),
                    client_token: r.spec.client_token.clone(),
                    status: observation
                        .map_or(JobInfo::GONE, |o| o.status.as_str())
                        .to_owned(),
                    outcome: r.lifecycle.outcome,
                    tags: r.spec.tags.clone(),
                    created_at: stamp(r.lifecycle.created),
                    stop_calls: r.stop_calls,
                    delete_calls: r.delete_calls,
                    deleted_at: observation
                        .is_none()
                        .then(|| r.lifecycle.gone_at().map(stamp))
                        .flatten(),
                }
            })
            .collect()
    }

    /// The client token of job `id`, in any region, if it was started with one.
    pub(crate) fn client_token_of(&self, id: &str) -> Option<String> {
        self.lock().jobs.get(id)?.spec.client_token.clone()
    }

    /// Forgets every job, name and token.
    pub(crate) fn reset(&self) {
        let mut inner = self.lock();
        inner.jobs.clear();
        inner.order.clear();
        inner.names.clear();
        inner.tokens.clear();
    }
}

fn partition(region: &str) -> &'static str {
    if region.starts_with("cn-") {
        "aws-cn"
    } else if region.starts_with("us-gov-") {
        "aws-us-gov"
    } else {
        "aws"
    }
}

fn encode_token(cursor: usize) -> String {
    format!("page-{cursor:010}")
}

fn decode_token(token: &str) -> Option<usize> {
    token.strip_prefix("page-")?.parse().ok()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use serde_json::json;

    use super::*;

    /// A duration long enough to never elapse in a test.
    const FOREVER: Duration = Duration::from_secs(3600);

    fn store(job: Duration, stop: Duration, delete: Duration) -> Store {
        Store::new(
            StoreConfig {
                account_id: "123456789012".into(),
                timing: Timing { job, stop, delete },
                outcome: Outcome::Completed,
            },
            Clock::start(),
            Some(42),
        )
    }

    fn spec(name: &str, token: Option<&str>, extra: serde_json::Value) -> JobSpec {
        let mut request = json!({
            "batchEvaluationName": name,
            "dataSourceConfig": { "cloudWatchLogs": { "serviceNames": ["svc"] } }
        });
        if let Some(t) = token {
            request["clientToken"] = json!(t);
        }
        if let (Some(map), Some(extra)) = (request.as_object_mut(), extra.as_object()) {
            map.extend(extra.clone());
        }
        JobSpec::from_request(request, 10).unwrap()
    }

    const REGION: &str = "us-west-2";

    #[test]
    fn start_assigns_ids_and_arns_matching_the_model() {
        let s = store(FOREVER, FOREVER, FOREVER);
        let view = s.start(REGION, spec("my_eval", None, json!({}))).unwrap();
        let re = regex::Regex::new("^[a-zA-Z][a-zA-Z0-9-_]{0,99}-[a-zA-Z0-9]{10}$").unwrap();
        assert!(re.is_match(&view.id), "{}", view.id);
        assert!(view.id.starts_with("my_eval-"));
        assert_eq!(
            view.arn,
            format!(
                "arn:aws:bedrock-agentcore:us-west-2:123456789012:batch-evaluation/{}",
                view.id
            )
        );
        assert_eq!(view.observation.status, JobStatus::Pending);
    }

    #[test]
    fn tokens_are_idempotent_and_mismatches_are_rejected() {
        let s = store(FOREVER, FOREVER, FOREVER);
        let token = "a".repeat(36);
        let first = s
            .start(REGION, spec("e1", Some(&token), json!({})))
            .unwrap();
        let again = s
            .start(REGION, spec("e1", Some(&token), json!({})))
            .unwrap();
        assert_eq!(first.id, again.id);
        assert_eq!(s.jobs().len(), 1);
        let err = s
            .start(
                REGION,
                spec("e1", Some(&token), json!({ "description": "changed" })),
            )
            .unwrap_err();
        assert_eq!(err.reason(), Some("IdempotentParameterMismatchException"));
        // The same token in another region is another request.
        let other = s
            .start("eu-west-1", spec("e1", Some(&token), json!({})))
            .unwrap();
        assert_ne!(other.id, first.id);
    }

    #[test]
    fn names_are_unique_among_live_jobs_and_freed_when_gone() {
        let s = store(Duration::ZERO, Duration::ZERO, Duration::ZERO);
        let first = s
            .start(REGION, spec("dup", Some(&"b".repeat(40)), json!({})))
            .unwrap();
        let err = s
            .start(REGION, spec("dup", Some(&"c".repeat(40)), json!({})))
            .unwrap_err();
        assert_eq!(err.code, ErrorCode::ConflictException);
        assert_eq!(
            s.delete(REGION, &first.id).unwrap().observation.status,
            JobStatus::Deleting
        );
        assert_eq!(
            s.get(REGION, &first.id).unwrap_err().code,
            ErrorCode::ResourceNotFoundException
        );
        let second = s
            .start(REGION, spec("dup", Some(&"c".repeat(40)), json!({})))
            .unwrap();
        assert_ne!(second.id, first.id);
        // The old token still answers with the old (gone) job.
        let replay = s
            .start(REGION, spec("dup", Some(&"b".repeat(40)), json!({})))
            .unwrap();
        assert_eq!(replay.id, first.id);
        let jobs = s.jobs();
        assert!(jobs[0].is_gone() && jobs[0].deleted_at.is_some() && jobs[0].delete_calls == 1);
        assert_eq!(jobs[1].status, "COMPLETED");
    }

    #[test]
    fn stop_and_delete_conflicts() {
        let s = store(FOREVER, FOREVER, FOREVER);
        let job = s.start(REGION, spec("e", None, json!({}))).unwrap();
        let conflict = s.delete(REGION, &job.id).unwrap_err();
        assert_eq!(conflict.code, ErrorCode::ConflictException);
        assert_eq!(
            s.stop(REGION, &job.id).unwrap().observation.status,
            JobStatus::Stopping
        );
        assert_eq!(
            s.stop(REGION, &job.id).unwrap().observation.status,
            JobStatus::Stopping
        );
        assert_eq!(
            s.delete(REGION, &job.id).unwrap_err().code,
            ErrorCode::ConflictException
        );
        assert_eq!(
            s.get("eu-west-1", &job.id).unwrap_err().code,
            ErrorCode::ResourceNotFoundException
        );
        assert_eq!(
            s.stop(REGION, "nope-0123456789").unwrap_err().code,
            ErrorCode::ResourceNotFoundException
        );
        let info = &s.jobs()[0];
        assert_eq!((info.stop_calls, info.delete_calls), (2, 2));
    }

    #[test]
    fn list_pages_newest_first_skipping_gone_jobs_and_other_regions() {
        let s = store(Duration::ZERO, Duration::ZERO, Duration::ZERO);
        let ids: Vec<String> = (0..7)
            .map(|i| {
                s.start(REGION, spec(&format!("j{i}"), None, json!({})))
                    .unwrap()
                    .id
            })
            .collect();
        s.start("eu-west-1", spec("elsewhere", None, json!({})))
            .unwrap();
        s.delete(REGION, &ids[3]).unwrap();
        let mut seen = Vec::new();
        let mut token = None;
        loop {
            let (page, next) = s.list(REGION, 2, token.as_deref()).unwrap();
            assert!(!page.is_empty(), "no empty pages");
            seen.extend(page.into_iter().map(|v| v.id));
            match next {
                Some(t) => token = Some(t),
                None => break,
            }
        }
        let expected: Vec<String> = ids
            .iter()
            .rev()
            .filter(|id| **id != ids[3])
            .cloned()
            .collect();
        assert_eq!(seen, expected);
        assert!(s.list(REGION, 2, Some("garbage")).is_err());
        assert!(s.list(REGION, 2, Some("page-9999999999")).is_err());
    }

    #[test]
    fn reset_forgets_everything() {
        let s = store(FOREVER, FOREVER, FOREVER);
        s.start(REGION, spec("e", Some(&"d".repeat(40)), json!({})))
            .unwrap();
        s.reset();
        assert!(s.jobs().is_empty());
        assert!(s.list(REGION, 10, None).unwrap().0.is_empty());
        s.start(
            REGION,
            spec("e", Some(&"d".repeat(40)), json!({ "description": "new" })),
        )
        .unwrap();
    }
}
