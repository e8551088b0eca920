//! Operations per object, for tests that bound how fast a client works on one job: a hot loop
//! shows up as a high peak of operations within one second, whatever the client logs.
//!
//! A request is attributed to the job it names: StartBatchEvaluation by its `clientToken`,
//! Get/Stop/DeleteBatchEvaluation by the path id, which is translated to the job's client token
//! when it has one (so a Start and the Gets of the job it created count together). List names no
//! job and is not attributed. Requests are counted when they arrive, before any injected latency,
//! so an operation the emulator is sitting on is already visible.
//!
//! Retries of one operation are not operations: an AWS SDK sends `amz-sdk-request: attempt=N;
//! max=M` on every attempt, and only the first attempt (or a request without the header, as a
//! plain HTTP client sends it) counts as an operation. Every attempt is counted separately.

use std::{
    collections::{BTreeMap, HashMap, VecDeque},
    sync::{Mutex, PoisonError},
    time::{Duration, Instant},
};

use axum::http::HeaderMap;
use serde::Serialize;

use crate::operation::Operation;

/// The window of [`ObjectOps::peak_per_second`].
const WINDOW: Duration = Duration::from_secs(1);

/// Header the AWS SDKs send with the attempt number of a request.
const SDK_REQUEST_HEADER: &str = "amz-sdk-request";

/// What clients did to one object (a client token, or a job id for jobs without one).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectOps {
    /// Operations (first attempts) by operation.
    pub operations: BTreeMap<Operation, u64>,
    /// Every request, retries included.
    pub attempts: u64,
    /// The most operations that arrived within any one second.
    pub peak_per_second: u32,
}

impl ObjectOps {
    /// Operations of `op` so far.
    pub fn count(&self, op: Operation) -> u64 {
        self.operations.get(&op).copied().unwrap_or(0)
    }
}

#[derive(Default)]
struct Entry {
    ops: ObjectOps,
    /// Arrival times of the operations of the last second.
    recent: VecDeque<Instant>,
}

/// One lock: each record is a map look-up and a few deque operations.
#[derive(Default)]
pub(crate) struct ObjectRecorder {
    entries: Mutex<HashMap<String, Entry>>,
}

impl ObjectRecorder {
    pub(crate) fn record(&self, key: &str, op: Operation, headers: &HeaderMap) {
        self.record_at(key, op, is_first_attempt(headers), Instant::now());
    }

    fn record_at(&self, key: &str, op: Operation, first_attempt: bool, now: Instant) {
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        let entry = entries.entry(key.to_owned()).or_default();
        entry.ops.attempts += 1;
        if !first_attempt {
            return;
        }
        *entry.ops.operations.entry(op).or_default() += 1;
        while entry
            .recent
            .front()
            .is_some_and(|t| now.saturating_duration_since(*t) >= WINDOW)
        {
            entry.recent.pop_front();
        }
        entry.recent.push_back(now);
        let in_window = u32::try_from(entry.recent.len()).unwrap_or(u32::MAX);
        entry.ops.peak_per_second = entry.ops.peak_per_second.max(in_window);
    }

    pub(crate) fn snapshot(&self) -> BTreeMap<String, ObjectOps> {
        self.entries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .map(|(k, e)| (k.clone(), e.ops.clone()))
            .collect()
    }

    pub(crate) fn reset(&self) {
        self.entries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }
}

/// `amz-sdk-request: attempt=2; max=3` is a retry; anything else is a first attempt.
fn is_first_attempt(headers: &HeaderMap) -> bool {
    let Some(value) = headers
        .get(SDK_REQUEST_HEADER)
        .and_then(|v| v.to_str().ok())
    else {
        return true;
    };
    value
        .split(';')
        .filter_map(|part| part.trim().strip_prefix("attempt="))
        .all(|n| n.trim() == "1")
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn headers(attempt: Option<&'static str>) -> HeaderMap {
        let mut h = HeaderMap::new();
        if let Some(a) = attempt {
            h.insert(SDK_REQUEST_HEADER, HeaderValue::from_static(a));
        }
        h
    }

    #[test]
    fn only_first_attempts_are_operations() {
        assert!(is_first_attempt(&headers(None)));
        assert!(is_first_attempt(&headers(Some("attempt=1; max=3"))));
        assert!(!is_first_attempt(&headers(Some("attempt=2; max=3"))));
        assert!(!is_first_attempt(&headers(Some("ttl=x; attempt=3; max=3"))));
    }

    #[test]
    fn peaks_are_per_object_and_per_second() {
        let rec = ObjectRecorder::default();
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let get = Operation::GetBatchEvaluation;
        rec.record_at("a", get, true, at(0));
        rec.record_at("a", Operation::DeleteBatchEvaluation, true, at(500));
        rec.record_at("a", get, false, at(600)); // a retry: an attempt, not an operation
        rec.record_at("a", Operation::StartBatchEvaluation, true, at(900));
        rec.record_at("a", get, true, at(1600)); // 0 ms and 500 ms are out of its window
        rec.record_at("b", get, true, at(100));
        let ops = rec.snapshot();
        assert_eq!(ops["a"].peak_per_second, 3);
        assert_eq!(ops["a"].count(get), 2);
        assert_eq!(ops["a"].count(Operation::StopBatchEvaluation), 0);
        assert_eq!(ops["a"].attempts, 5);
        assert_eq!(ops["b"].peak_per_second, 1);
        // Exactly one second apart: the first has left the window.
        rec.record_at("c", get, true, at(0));
        rec.record_at("c", get, true, at(1000));
        assert_eq!(rec.snapshot()["c"].peak_per_second, 1);
        rec.reset();
        assert!(rec.snapshot().is_empty());
    }

    #[test]
    fn serializes_operations_by_name() {
        let rec = ObjectRecorder::default();
        rec.record("tok", Operation::StartBatchEvaluation, &headers(None));
        assert_eq!(
            serde_json::to_value(rec.snapshot()).unwrap(),
            serde_json::json!({"tok": {"operations": {"StartBatchEvaluation": 1}, "attempts": 1, "peakPerSecond": 1}})
        );
    }
}
