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
    wire::{self, ApiError, ErrorCode, FieldError, ValidationReason},
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
    pub timing: Timing,
    pub outcome: Outcome,
    /// Most active (PENDING, IN_PROGRESS, STOPPING) jobs per account and region; `None` is
    /// unlimited. Changed at run time by [`Store::set_max_active`], restored by reset.
    pub max_active: Option<u32>,
}

/// Where a request acts: the caller's account and the region of its credential scope. Jobs,
/// names, client tokens and the quota are all per scope, as in separate AWS accounts.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct Scope {
    pub account: String,
    pub region: String,
}

/// Active jobs and the most ever active at once, in one account and region.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct QuotaUsage {
    pub account: String,
    pub region: String,
    /// Jobs PENDING, IN_PROGRESS or STOPPING now.
    pub active: u32,
    /// The most jobs ever active at once (since start or reset).
    pub peak_active: u32,
}

/// The quota in force and its use per account and region, as `/_emulator/quota` reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct QuotaReport {
    /// `None` (JSON `null`) when unlimited.
    pub max_active_jobs: Option<u32>,
    /// Every account and region that ever started a job, sorted.
    pub usage: Vec<QuotaUsage>,
}

impl QuotaReport {
    /// The usage of `account` in `region` (zeros if it never started a job).
    pub fn usage(&self, account: &str, region: &str) -> QuotaUsage {
        self.usage
            .iter()
            .find(|u| u.account == account && u.region == region)
            .cloned()
            .unwrap_or_else(|| QuotaUsage {
                account: account.to_owned(),
                region: region.to_owned(),
                active: 0,
                peak_active: 0,
            })
    }
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
    pub account: String,
    pub region: String,
    /// The assumed-role ARN (`arn:aws:sts::ACCOUNT:assumed-role/ROLE/SESSION`) of the
    /// credentials that started the job; absent for base credentials.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub started_by: Option<String>,
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
    scope: Scope,
    started_by: Option<String>,
    spec: Arc<JobSpec>,
    lifecycle: Lifecycle,
    stop_calls: u32,
    delete_calls: u32,
}

struct Inner {
    jobs: HashMap<String, JobRecord>,
    /// Ids in creation order; the position is the job's sequence number, used by List cursors.
    order: Vec<String>,
    /// (scope, name) → id of the job that last took the name; stale once that job is gone.
    names: HashMap<(Scope, String), String>,
    /// (scope, clientToken) → id. Kept after the job is gone: the real service remembers
    /// tokens for hours, and handing out a fresh job for an old token would break
    /// "at most one job per token". A retry for a gone job therefore replays the original
    /// response, and the follow-up Get answers 404, which clients already handle.
    tokens: HashMap<(Scope, String), String>,
    /// Per scope: ids of the jobs that were active when last looked at (pruned on each Start;
    /// a job never becomes active again once it left the active statuses) and the peak.
    active: BTreeMap<Scope, ActiveJobs>,
    max_active: Option<u32>,
    rng: StdRng,
}

#[derive(Default)]
struct ActiveJobs {
    ids: Vec<String>,
    peak: u32,
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
            clock,
            inner: Mutex::new(Inner {
                jobs: HashMap::new(),
                order: Vec::new(),
                names: HashMap::new(),
                tokens: HashMap::new(),
                active: BTreeMap::new(),
                max_active: config.max_active,
                rng,
            }),
            config,
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

    /// The record for `id` in `scope`, gone or not.
    fn record<'a>(
        inner: &'a mut Inner,
        scope: &Scope,
        id: &str,
    ) -> Result<&'a mut JobRecord, ApiError> {
        inner
            .jobs
            .get_mut(id)
            .filter(|record| record.scope == *scope)
            .ok_or_else(|| ApiError::not_found(id))
    }

    /// Starts a job in `scope`; `started_by` is the assumed role of the caller, if any.
    pub(crate) fn start(
        &self,
        scope: &Scope,
        started_by: Option<&str>,
        spec: JobSpec,
    ) -> Result<JobView, ApiError> {
        let mut inner = self.lock();
        let now = self.clock.now();

        if let Some(token) = &spec.client_token {
            let key = (scope.clone(), token.clone());
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

        let name_key = (scope.clone(), spec.name.clone());
        if let Some(holder) = inner.names.get(&name_key).and_then(|id| inner.jobs.get(id))
            && holder.lifecycle.observe(now).is_some()
        {
            return Err(ApiError::conflict(format!(
                "A batch evaluation named {} already exists ({})",
                spec.name, holder.id
            )));
        }

        let active = Self::active_now(&mut inner, scope, now);
        if let Some(max) = inner.max_active
            && active >= max
        {
            return Err(ApiError::quota_exceeded(format!(
                "The account has reached its quota of {max} active batch evaluations in {}",
                scope.region
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
                "arn:{}:bedrock-agentcore:{}:{}:batch-evaluation/{id}",
                wire::partition(&scope.region),
                scope.region,
                scope.account
            ),
            id: id.clone(),
            scope: scope.clone(),
            started_by: started_by.map(str::to_owned),
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
                .insert((scope.clone(), token.clone()), id.clone());
        }
        if observation.status.is_active() {
            let entry = inner.active.entry(scope.clone()).or_default();
            entry.ids.push(id.clone());
            entry.peak = entry.peak.max(active + 1);
        }
        inner.names.insert(name_key, id.clone());
        inner.order.push(id.clone());
        inner.jobs.insert(id, record);
        Ok(view)
    }

    /// Prunes the jobs of `scope` that left the active statuses and counts the rest. Active
    /// counts only fall between Starts, so a peak taken at each Start is the true peak.
    fn active_now(inner: &mut Inner, scope: &Scope, now: Tick) -> u32 {
        let Inner { jobs, active, .. } = inner;
        let Some(entry) = active.get_mut(scope) else {
            return 0;
        };
        entry.ids.retain(|id| {
            jobs.get(id)
                .and_then(|r| r.lifecycle.observe(now))
                .is_some_and(|o| o.status.is_active())
        });
        u32::try_from(entry.ids.len()).unwrap_or(u32::MAX)
    }

    /// Replaces the quota of active jobs per account and region (`None`: unlimited). Jobs
    /// already active stay; only later Starts are refused.
    pub(crate) fn set_max_active(&self, max: Option<u32>) {
        self.lock().max_active = max;
    }

    /// The quota in force and, per account and region, the active jobs and their peak.
    pub(crate) fn quota(&self) -> QuotaReport {
        let mut inner = self.lock();
        let now = self.clock.now();
        let scopes: Vec<Scope> = inner.active.keys().cloned().collect();
        let usage = scopes
            .into_iter()
            .map(|scope| {
                let active = Self::active_now(&mut inner, &scope, now);
                let peak_active = inner.active.get(&scope).map_or(0, |e| e.peak);
                QuotaUsage {
                    account: scope.account,
                    region: scope.region,
                    active,
                    peak_active,
                }
            })
            .collect();
        QuotaReport {
            max_active_jobs: inner.max_active,
            usage,
        }
    }

    pub(crate) fn get(&self, scope: &Scope, id: &str) -> Result<JobView, ApiError> {
        let mut inner = self.lock();
        let now = self.clock.now();
        let record = Self::record(&mut inner, scope, id)?;
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
        scope: &Scope,
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
                if record.scope != *scope {
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

    pub(crate) fn stop(&self, scope: &Scope, id: &str) -> Result<JobView, ApiError> {
        let mut inner = self.lock();
        let now = self.clock.now();
        let record = Self::record(&mut inner, scope, id)?;
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

    pub(crate) fn delete(&self, scope: &Scope, id: &str) -> Result<JobView, ApiError> {
        let mut inner = self.lock();
        let now = self.clock.now();
        let record = Self::record(&mut inner, scope, id)?;
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
                    account: r.scope.account.clone(),
                    region: r.scope.region.clone(),
                    started_by: r.started_by.clone(),
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
        inner.active.clear();
        inner.max_active = self.config.max_active;
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

    use axum::response::IntoResponse;
    use serde_json::json;

    use super::*;

    /// A duration long enough to never elapse in a test.
    const FOREVER: Duration = Duration::from_secs(3600);

    fn store(job: Duration, stop: Duration, delete: Duration) -> Store {
        Store::new(
            StoreConfig {
                timing: Timing { job, stop, delete },
                outcome: Outcome::Completed,
                max_active: None,
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
    const ACCOUNT: &str = "123456789012";

    fn at(region: &str) -> Scope {
        Scope {
            account: ACCOUNT.into(),
            region: region.into(),
        }
    }

    #[test]
    fn start_assigns_ids_and_arns_matching_the_model() {
        let s = store(FOREVER, FOREVER, FOREVER);
        let view = s
            .start(&at(REGION), None, spec("my_eval", None, json!({})))
            .unwrap();
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
            .start(&at(REGION), None, spec("e1", Some(&token), json!({})))
            .unwrap();
        let again = s
            .start(&at(REGION), None, spec("e1", Some(&token), json!({})))
            .unwrap();
        assert_eq!(first.id, again.id);
        assert_eq!(s.jobs().len(), 1);
        let err = s
            .start(
                &at(REGION),
                None,
                spec("e1", Some(&token), json!({ "description": "changed" })),
            )
            .unwrap_err();
        assert_eq!(err.reason(), Some("IdempotentParameterMismatchException"));
        // The same token in another region is another request.
        let other = s
            .start(&at("eu-west-1"), None, spec("e1", Some(&token), json!({})))
            .unwrap();
        assert_ne!(other.id, first.id);
    }

    #[test]
    fn names_are_unique_among_live_jobs_and_freed_when_gone() {
        let s = store(Duration::ZERO, Duration::ZERO, Duration::ZERO);
        let first = s
            .start(
                &at(REGION),
                None,
                spec("dup", Some(&"b".repeat(40)), json!({})),
            )
            .unwrap();
        let err = s
            .start(
                &at(REGION),
                None,
                spec("dup", Some(&"c".repeat(40)), json!({})),
            )
            .unwrap_err();
        assert_eq!(err.code, ErrorCode::ConflictException);
        assert_eq!(
            s.delete(&at(REGION), &first.id).unwrap().observation.status,
            JobStatus::Deleting
        );
        assert_eq!(
            s.get(&at(REGION), &first.id).unwrap_err().code,
            ErrorCode::ResourceNotFoundException
        );
        let second = s
            .start(
                &at(REGION),
                None,
                spec("dup", Some(&"c".repeat(40)), json!({})),
            )
            .unwrap();
        assert_ne!(second.id, first.id);
        // The old token still answers with the old (gone) job.
        let replay = s
            .start(
                &at(REGION),
                None,
                spec("dup", Some(&"b".repeat(40)), json!({})),
            )
            .unwrap();
        assert_eq!(replay.id, first.id);
        let jobs = s.jobs();
        assert!(jobs[0].is_gone() && jobs[0].deleted_at.is_some() && jobs[0].delete_calls == 1);
        assert_eq!(jobs[1].status, "COMPLETED");
    }

    #[test]
    fn stop_and_delete_conflicts() {
        let s = store(FOREVER, FOREVER, FOREVER);
        let job = s
            .start(&at(REGION), None, spec("e", None, json!({})))
            .unwrap();
        let conflict = s.delete(&at(REGION), &job.id).unwrap_err();
        assert_eq!(conflict.code, ErrorCode::ConflictException);
        assert_eq!(
            s.stop(&at(REGION), &job.id).unwrap().observation.status,
            JobStatus::Stopping
        );
        assert_eq!(
            s.stop(&at(REGION), &job.id).unwrap().observation.status,
            JobStatus::Stopping
        );
        assert_eq!(
            s.delete(&at(REGION), &job.id).unwrap_err().code,
            ErrorCode::ConflictException
        );
        assert_eq!(
            s.get(&at("eu-west-1"), &job.id).unwrap_err().code,
            ErrorCode::ResourceNotFoundException
        );
        assert_eq!(
            s.stop(&at(REGION), "nope-0123456789").unwrap_err().code,
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
                s.start(&at(REGION), None, spec(&format!("j{i}"), None, json!({})))
                    .unwrap()
                    .id
            })
            .collect();
        s.start(&at("eu-west-1"), None, spec("elsewhere", None, json!({})))
            .unwrap();
        s.delete(&at(REGION), &ids[3]).unwrap();
        let mut seen = Vec::new();
        let mut token = None;
        loop {
            let (page, next) = s.list(&at(REGION), 2, token.as_deref()).unwrap();
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
        assert!(s.list(&at(REGION), 2, Some("garbage")).is_err());
        assert!(s.list(&at(REGION), 2, Some("page-9999999999")).is_err());
    }

    #[test]
    fn reset_forgets_everything() {
        let s = store(FOREVER, FOREVER, FOREVER);
        s.start(
            &at(REGION),
            None,
            spec("e", Some(&"d".repeat(40)), json!({})),
        )
        .unwrap();
        s.reset();
        assert!(s.jobs().is_empty());
        assert!(s.list(&at(REGION), 10, None).unwrap().0.is_empty());
        s.start(
            &at(REGION),
            None,
            spec("e", Some(&"d".repeat(40)), json!({ "description": "new" })),
        )
        .unwrap();
    }

    fn limited(max: u32) -> Store {
        let s = store(FOREVER, Duration::ZERO, FOREVER);
        s.set_max_active(Some(max));
        s
    }

    #[test]
    fn the_quota_refuses_starts_beyond_the_active_limit_with_402() {
        let s = limited(2);
        let a = s
            .start(
                &at(REGION),
                None,
                spec("a", Some(&"a".repeat(40)), json!({})),
            )
            .unwrap();
        s.start(&at(REGION), None, spec("b", None, json!({})))
            .unwrap();
        let err = s
            .start(
                &at(REGION),
                None,
                spec("c", Some(&"c".repeat(40)), json!({})),
            )
            .unwrap_err();
        assert_eq!(err.code, ErrorCode::ServiceQuotaExceededException);
        assert_eq!(
            err.clone().into_response().status(),
            axum::http::StatusCode::PAYMENT_REQUIRED
        );
        assert_eq!(err.body()["__type"], "ServiceQuotaExceededException");
        // Nothing was created, and the name and the token stay free.
        assert_eq!(s.jobs().len(), 2);
        // An idempotent retry of a started job still answers that job.
        let retry = s
            .start(
                &at(REGION),
                None,
                spec("a", Some(&"a".repeat(40)), json!({})),
            )
            .unwrap();
        assert_eq!(retry.id, a.id);
        // Another region (and another account) has a quota of its own.
        s.start(&at("eu-west-1"), None, spec("c", None, json!({})))
            .unwrap();
        let other = Scope {
            account: "210987654321".into(),
            region: REGION.into(),
        };
        s.start(&other, None, spec("c", None, json!({}))).unwrap();
        // A stopped job (stop takes no time here) frees its slot.
        assert_eq!(
            s.stop(&at(REGION), &a.id).unwrap().observation.status,
            JobStatus::Stopped
        );
        let c = s
            .start(
                &at(REGION),
                None,
                spec("c", Some(&"c".repeat(40)), json!({})),
            )
            .unwrap();
        assert_eq!(c.observation.status, JobStatus::Pending);
        let report = s.quota();
        assert_eq!(report.max_active_jobs, Some(2));
        let here = report.usage(ACCOUNT, REGION);
        assert_eq!((here.active, here.peak_active), (2, 2));
        assert_eq!(report.usage(ACCOUNT, "eu-west-1").peak_active, 1);
        assert_eq!(report.usage("210987654321", REGION).peak_active, 1);
        assert_eq!(report.usage(ACCOUNT, "ap-south-1").peak_active, 0);
    }

    #[test]
    fn stopping_jobs_hold_their_slot() {
        let s = store(FOREVER, FOREVER, FOREVER);
        s.set_max_active(Some(1));
        let a = s
            .start(&at(REGION), None, spec("a", None, json!({})))
            .unwrap();
        assert_eq!(
            s.stop(&at(REGION), &a.id).unwrap().observation.status,
            JobStatus::Stopping
        );
        let err = s
            .start(&at(REGION), None, spec("b", None, json!({})))
            .unwrap_err();
        assert_eq!(err.code, ErrorCode::ServiceQuotaExceededException);
    }

    #[test]
    fn finished_jobs_do_not_count_and_the_peak_survives_them() {
        let s = store(Duration::ZERO, Duration::ZERO, Duration::ZERO);
        s.set_max_active(Some(1));
        for i in 0..3 {
            let view = s
                .start(
                    &at(REGION),
                    None,
                    spec(&format!("done{i}"), None, json!({})),
                )
                .unwrap();
            assert_eq!(view.observation.status, JobStatus::Completed);
        }
        // Jobs that finish at once are never active.
        assert_eq!(s.quota().usage(ACCOUNT, REGION).peak_active, 0);
        s.set_max_active(Some(0));
        let err = s
            .start(&at(REGION), None, spec("none", None, json!({})))
            .unwrap_err();
        assert_eq!(err.code, ErrorCode::ServiceQuotaExceededException);
    }

    #[test]
    fn the_peak_counts_jobs_active_at_once_and_reset_restores_the_limit() {
        let s = limited(3);
        let ids: Vec<String> = (0..3)
            .map(|i| {
                s.start(&at(REGION), None, spec(&format!("p{i}"), None, json!({})))
                    .unwrap()
                    .id
            })
            .collect();
        s.stop(&at(REGION), &ids[0]).unwrap();
        s.stop(&at(REGION), &ids[1]).unwrap();
        s.start(&at(REGION), None, spec("p3", None, json!({})))
            .unwrap();
        let usage = s.quota().usage(ACCOUNT, REGION);
        assert_eq!((usage.active, usage.peak_active), (2, 3));
        s.set_max_active(None);
        for i in 4..10 {
            s.start(&at(REGION), None, spec(&format!("p{i}"), None, json!({})))
                .unwrap();
        }
        assert_eq!(s.quota().usage(ACCOUNT, REGION).peak_active, 8);
        assert_eq!(s.quota().max_active_jobs, None);
        s.reset();
        let report = s.quota();
        assert!(report.usage.is_empty());
        // The store was built unlimited; reset restores that, not the run-time setting.
        assert_eq!(report.max_active_jobs, None);
    }

    #[test]
    fn accounts_are_partitions_like_separate_aws_accounts() {
        let s = store(FOREVER, FOREVER, FOREVER);
        let tenant = Scope {
            account: "111111111111".into(),
            region: REGION.into(),
        };
        let role = "arn:aws:sts::111111111111:assumed-role/tenant/a";
        let token = "t".repeat(40);
        let theirs = s
            .start(&tenant, Some(role), spec("same", Some(&token), json!({})))
            .unwrap();
        assert!(theirs.arn.contains(":111111111111:batch-evaluation/"));
        for result in [
            s.get(&at(REGION), &theirs.id),
            s.stop(&at(REGION), &theirs.id),
            s.delete(&at(REGION), &theirs.id),
        ] {
            assert_eq!(
                result.unwrap_err().code,
                ErrorCode::ResourceNotFoundException
            );
        }
        assert!(s.list(&at(REGION), 10, None).unwrap().0.is_empty());
        // Name and token are free in the other account: another job.
        let ours = s
            .start(&at(REGION), None, spec("same", Some(&token), json!({})))
            .unwrap();
        assert_ne!(ours.id, theirs.id);
        let jobs = s.jobs();
        assert_eq!(jobs[0].account, "111111111111");
        assert_eq!(jobs[0].started_by.as_deref(), Some(role));
        assert_eq!(jobs[1].account, ACCOUNT);
        assert_eq!(jobs[1].started_by, None);
        assert_eq!(s.get(&tenant, &theirs.id).unwrap().id, theirs.id);
    }
}
