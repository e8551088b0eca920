//! Emulator fault settings the tests share, and the emulator's job-control tags (taken from the
//! emulator crate, so a renamed tag breaks the build instead of silently doing nothing).

use std::time::Duration;

use agentcore_emulator::{
    ErrorCode, ErrorRate, FaultAction, FaultConfig, Operation, ScriptStep, TAG_DELETE_DURATION,
    TAG_JOB_DURATION, TAG_OUTCOME, TAG_STOP_DURATION, Target,
};

/// A job that runs for `d` (e.g. `"120s"`).
pub fn runs(d: &str) -> (&'static str, &str) {
    (TAG_JOB_DURATION, d)
}

/// A job that stays STOPPING for `d`.
pub fn stops_in(d: &str) -> (&'static str, &str) {
    (TAG_STOP_DURATION, d)
}

/// A job that stays DELETING for `d`.
pub fn deletes_in(d: &str) -> (&'static str, &str) {
    (TAG_DELETE_DURATION, d)
}

/// A job that ends with `outcome` (`COMPLETED`, `FAILED`, ...).
pub fn ends(outcome: &str) -> (&'static str, &str) {
    (TAG_OUTCOME, outcome)
}

/// Every StartBatchEvaluation rejected with a ValidationException until the faults change: the
/// service refusing a spec the schema let through.
pub fn reject_every_start() -> FaultConfig {
    let mut faults = FaultConfig::default();
    faults
        .entry(Target::Operation(Operation::StartBatchEvaluation))
        .script = vec![ScriptStep {
        action: FaultAction::Error {
            error: ErrorCode::ValidationException,
            after_action: false,
        },
        times: None,
    }];
    faults
}

/// `rate` of the calls to `target` answered with `error`.
pub fn error_rate(target: Target, rate: f64, error: ErrorCode) -> FaultConfig {
    let mut faults = FaultConfig::default();
    faults.entry(target).error_rate = Some(ErrorRate { rate, error });
    faults
}

/// A script of `n` one-call steps: call `i` meets `action(i)`.
pub fn script(n: usize, action: impl Fn(usize) -> FaultAction) -> Vec<ScriptStep> {
    (0..n)
        .map(|i| ScriptStep {
            action: action(i),
            times: Some(1),
        })
        .collect()
}

/// Calls of `op` wait `d` before they are handled.
pub fn latency(op: Operation, d: Duration) -> FaultConfig {
    let mut faults = FaultConfig::default();
    faults.entry(Target::Operation(op)).latency = Some(d);
    faults
}

/// Calls of `op` are performed, and their answer is held back for `d`.
pub fn hold_after(op: Operation, d: Duration) -> FaultConfig {
    let mut faults = FaultConfig::default();
    faults.entry(Target::Operation(op)).hold_after = Some(d);
    faults
}
