//! The call bound, and counting the emulator's requests between two moments.
//!
//! A reconcile is triggered by a requeue or a watch event. Requeues are never sooner than
//! 0.45 s (`--poll-interval 500ms` jittered by −10%; the first retry backoff is at least
//! 0.5 s); a lifecycle has a handful of watch events (create, finalizer added, deletion
//! requested, plus spares). One reconcile performs at most three AWS operations (List + Start +
//! Stop), and the SDK makes at most three attempts per operation (standard retry mode).

use std::time::Duration;

use agentcore_emulator::{Operation, Stats};

pub const MIN_REQUEUE_SECS: f64 = 0.45;
pub const EVENT_RECONCILES: f64 = 6.0;
pub const OPS_PER_RECONCILE: f64 = 3.0;
pub const ATTEMPTS_PER_OP: f64 = 3.0;

/// Emulator calls one lifecycle may cost, given how long the object was alive.
pub fn call_budget(alive: Duration) -> f64 {
    ATTEMPTS_PER_OP
        * OPS_PER_RECONCILE
        * (alive.as_secs_f64() / MIN_REQUEUE_SECS + EVENT_RECONCILES)
}

/// Requests of `op` that ended with `outcome` between two snapshots.
pub fn delta(before: &Stats, after: &Stats, op: Operation, outcome: &str) -> u64 {
    after
        .count(op, outcome)
        .saturating_sub(before.count(op, outcome))
}

/// Requests of any operation that ended with `outcome` between two snapshots.
pub fn delta_all(before: &Stats, after: &Stats, outcome: &str) -> u64 {
    Operation::ALL
        .into_iter()
        .map(|op| delta(before, after, op, outcome))
        .sum()
}

/// Every request between two snapshots.
pub fn calls_between(before: &Stats, after: &Stats) -> u64 {
    after.grand_total().saturating_sub(before.grand_total())
}

/// `calls` shared by `n` lifecycles.
#[allow(clippy::cast_precision_loss)]
pub fn per(calls: u64, n: usize) -> f64 {
    calls as f64 / n as f64
}
