//! The `BatchEvaluationSchedule` kind: the CronJob of batch evaluations.
//!
//! - [`api`]: the custom resource;
//! - [`cron`]: the calendar (next slot, missed slots, run names), purely;
//! - [`decide`]: the pure decision from the schedule, its runs and the time to actions;
//! - [`reconciler`]: performs a decision (the only Kubernetes calls);
//! - [`controller`]: watches schedules and the runs they own, wakes at the next slot;
//! - [`metrics`]: the per-schedule metric families;
//! - [`reason`]: every condition and event reason, typed.

pub mod api;
pub mod controller;
pub mod cron;
pub mod decide;
pub mod metrics;
pub mod reason;
pub mod reconciler;
