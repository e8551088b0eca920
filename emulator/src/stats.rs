//! Request counters by operation and outcome, for tests that count AWS calls.

use std::{
    collections::{BTreeMap, HashMap},
    sync::Mutex,
};

use serde::Serialize;

use crate::operation::Operation;

/// Outcome label for a connection closed without an answer.
pub const OUTCOME_DROPPED: &str = "ConnectionDropped";
/// Outcome label for a deliberately malformed answer.
pub const OUTCOME_MALFORMED: &str = "Malformed";

/// Requests served so far: operation → outcome → count. The outcome is the HTTP status of a
/// success (`"202"`), the error code of an error (`"ConflictException"`), or
/// [`OUTCOME_DROPPED`] / [`OUTCOME_MALFORMED`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Stats(pub BTreeMap<Operation, BTreeMap<String, u64>>);

impl Stats {
    /// Requests of `op` that ended with `outcome`.
    pub fn count(&self, op: Operation, outcome: &str) -> u64 {
        self.0
            .get(&op)
            .and_then(|m| m.get(outcome))
            .copied()
            .unwrap_or(0)
    }

    /// All requests of `op`, whatever their outcome.
    pub fn total(&self, op: Operation) -> u64 {
        self.0.get(&op).map_or(0, |m| m.values().sum())
    }

    /// All requests of every operation.
    pub fn grand_total(&self) -> u64 {
        Operation::ALL.into_iter().map(|op| self.total(op)).sum()
    }
}

/// One lock per operation keeps concurrent requests of different operations apart.
#[derive(Default)]
pub(crate) struct StatsRecorder {
    counts: [Mutex<HashMap<String, u64>>; 5],
}

impl StatsRecorder {
    fn slot(&self, op: Operation) -> std::sync::MutexGuard<'_, HashMap<String, u64>> {
        self.counts[op.index()]
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub(crate) fn record(&self, op: Operation, outcome: &str) {
        let mut slot = self.slot(op);
        match slot.get_mut(outcome) {
            Some(n) => *n += 1,
            None => {
                slot.insert(outcome.to_owned(), 1);
            }
        }
    }

    pub(crate) fn snapshot(&self) -> Stats {
        Stats(
            Operation::ALL
                .into_iter()
                .filter_map(|op| {
                    let slot = self.slot(op);
                    (!slot.is_empty())
                        .then(|| (op, slot.iter().map(|(k, v)| (k.clone(), *v)).collect()))
                })
                .collect(),
        )
    }

    pub(crate) fn reset(&self) {
        for op in Operation::ALL {
            self.slot(op).clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_by_operation_and_outcome() {
        let rec = StatsRecorder::default();
        rec.record(Operation::GetBatchEvaluation, "200");
        rec.record(Operation::GetBatchEvaluation, "200");
        rec.record(Operation::GetBatchEvaluation, "ResourceNotFoundException");
        let stats = rec.snapshot();
        assert_eq!(stats.count(Operation::GetBatchEvaluation, "200"), 2);
        assert_eq!(stats.total(Operation::GetBatchEvaluation), 3);
        assert_eq!(stats.total(Operation::StartBatchEvaluation), 0);
        assert_eq!(
            serde_json::to_value(&stats).unwrap(),
            serde_json::json!({"GetBatchEvaluation": {"200": 2, "ResourceNotFoundException": 1}})
        );
        rec.reset();
        assert_eq!(rec.snapshot().grand_total(), 0);
    }
}
