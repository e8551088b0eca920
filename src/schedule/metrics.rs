//! The schedule's metric families, registered on the operator's one registry by
//! [`crate::metrics::Metrics`].

use std::sync::atomic::AtomicU64;

use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family, gauge::Gauge},
    registry::Registry,
};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RunLabels {
    namespace: String,
    schedule: String,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ScheduleLabels {
    namespace: String,
    schedule: String,
}

type FloatGauge = Gauge<f64, AtomicU64>;

/// How a slot or run ended up, for `schedule_runs_total`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunOutcome {
    /// A run was created.
    Created,
    /// A run finished successfully.
    Succeeded,
    /// A run failed (remote failure, stalled, or pass criteria missed).
    Failed,
    /// A slot was skipped because a run was active (`Forbid`).
    Skipped,
    /// A slot was missed (downtime, suspension, starting deadline).
    Missed,
}

impl RunOutcome {
    const fn as_str(self) -> &'static str {
        match self {
            Self::Created => "created",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::Skipped => "skipped",
            Self::Missed => "missed",
        }
    }
}

/// Per-schedule families.
#[derive(Clone, Default)]
pub struct ScheduleMetrics {
    runs: Family<RunLabels, Counter>,
    last_score: Family<ScheduleLabels, FloatGauge>,
    last_passed: Family<ScheduleLabels, Gauge>,
}

impl ScheduleMetrics {
    /// Registers the families (prefix `agentcore_operator_schedule_`).
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "schedule_runs",
            "Runs and slots of BatchEvaluationSchedules by outcome (created, succeeded, failed, skipped, missed); succeeded and failed count each finished run once per operator process",
            self.runs.clone(),
        );
        registry.register(
            "schedule_last_run_score",
            "Mean evaluator score of the latest finished run of each schedule",
            self.last_score.clone(),
        );
        registry.register(
            "schedule_last_run_passed",
            "1 when the latest finished run of the schedule succeeded (pass criteria met, or completed without criteria), 0 when it failed",
            self.last_passed.clone(),
        );
    }

    /// Counts `n` runs or slots of one outcome.
    pub fn count(&self, namespace: &str, schedule: &str, outcome: RunOutcome, n: u64) {
        if n == 0 {
            return;
        }
        self.runs
            .get_or_create(&RunLabels {
                namespace: namespace.to_owned(),
                schedule: schedule.to_owned(),
                outcome: outcome.as_str(),
            })
            .inc_by(n);
    }

    /// Sets the latest verdict and score of a schedule (`None` clears the series).
    pub fn set_last(
        &self,
        namespace: &str,
        schedule: &str,
        passed: Option<bool>,
        score: Option<f64>,
    ) {
        let key = ScheduleLabels {
            namespace: namespace.to_owned(),
            schedule: schedule.to_owned(),
        };
        match passed {
            Some(passed) => {
                self.last_passed.get_or_create(&key).set(i64::from(passed));
            }
            None => {
                self.last_passed.remove(&key);
            }
        }
        match score {
            Some(score) => {
                self.last_score.get_or_create(&key).set(score);
            }
            None => {
                self.last_score.remove(&key);
            }
        }
    }

    /// Removes every per-schedule series of a deleted schedule but its counters' history.
    pub fn forget(&self, namespace: &str, schedule: &str) {
        self.set_last(namespace, schedule, None, None);
        for outcome in [
            RunOutcome::Created,
            RunOutcome::Succeeded,
            RunOutcome::Failed,
            RunOutcome::Skipped,
            RunOutcome::Missed,
        ] {
            self.runs.remove(&RunLabels {
                namespace: namespace.to_owned(),
                schedule: schedule.to_owned(),
                outcome: outcome.as_str(),
            });
        }
    }
}
