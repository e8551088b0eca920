//! The pure decision of one schedule reconcile: from the schedule, its runs and the time, to the
//! runs to create and delete, the events, and the status. No client, no clock.

use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

use crate::schedule::{
    api::{BatchEvaluationScheduleSpec, BatchEvaluationScheduleStatus, ConcurrencyPolicy, LastRun},
    cron::{self, Calendar, CalendarError, Missed},
    reason::Reason,
};

/// One child run as the decision sees it.
#[derive(Clone, Debug, PartialEq)]
pub struct Run {
    pub name: String,
    /// The slot it evaluates (or, for a run-now run, when it was asked for).
    pub scheduled: Timestamp,
    /// Started by the run-now annotation, not by a slot.
    pub run_now: bool,
    /// `metadata.deletionTimestamp` is set: it no longer counts.
    pub deleting: bool,
    pub remote_status: Option<String>,
    pub average_score: Option<f64>,
    /// The run's `Passed` condition status, if it has one.
    pub passed: Option<String>,
    /// The run's `Stalled` condition is `True`.
    pub stalled: bool,
}

/// Where a run stands, for concurrency and history.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunState {
    Active,
    Succeeded,
    Failed,
}

impl Run {
    /// Failed: remote FAILED or STOPPED, `Stalled=True`, or `Passed=False`. Succeeded: COMPLETED
    /// or COMPLETED_WITH_ERRORS with a `Passed` that is absent (no criteria) or `True`. Anything
    /// else (not started, running, `Passed=Unknown` awaiting results) is active.
    #[must_use]
    pub fn state(&self) -> RunState {
        if self.stalled || self.passed.as_deref() == Some("False") {
            return RunState::Failed;
        }
        match self.remote_status.as_deref() {
            Some("FAILED" | "STOPPED") => RunState::Failed,
            Some("COMPLETED" | "COMPLETED_WITH_ERRORS") => match self.passed.as_deref() {
                None | Some("True") => RunState::Succeeded,
                Some(_) => RunState::Active,
            },
            _ => RunState::Active,
        }
    }
}

/// Everything the decision reads.
#[derive(Clone, Debug)]
pub struct Observed<'a> {
    pub name: &'a str,
    pub generation: i64,
    pub created: Timestamp,
    pub spec: &'a BatchEvaluationScheduleSpec,
    pub status: &'a BatchEvaluationScheduleStatus,
    /// The value of the run-now annotation.
    pub run_now: Option<&'a str>,
    pub runs: &'a [Run],
    pub now: Timestamp,
}

/// A run to create.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewRun {
    pub name: String,
    pub scheduled: Timestamp,
    pub run_now: bool,
}

/// Why a run is deleted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Why {
    /// `concurrencyPolicy: Replace` makes room for a new run.
    Replaced,
    /// Beyond the history limit of its kind.
    History,
}

/// An event to publish on the schedule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Note {
    pub warning: bool,
    pub reason: Reason,
    pub message: String,
}

/// What one reconcile does. Deletions come before creations.
#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    pub delete: Vec<(String, Why)>,
    pub create: Vec<NewRun>,
    pub events: Vec<Note>,
    pub status: BatchEvaluationScheduleStatus,
    /// Slots skipped by `Forbid` (0 or 1) and missed after a gap, for the metrics.
    pub skipped: u64,
    pub missed: u64,
    /// When to look again at the latest (the next slot).
    pub wake_at: Option<Timestamp>,
    /// The latest finished run: the schedule's last verdict, for the metrics.
    pub last_finished: Option<Run>,
}

/// Decides one reconcile.
#[must_use]
pub fn decide(obs: &Observed<'_>) -> Plan {
    let mut plan = Plan {
        delete: Vec::new(),
        create: Vec::new(),
        events: Vec::new(),
        status: BatchEvaluationScheduleStatus {
            observed_generation: obs.generation,
            last_schedule_time: obs.status.last_schedule_time.clone(),
            last_run_now_value: obs.status.last_run_now_value.clone(),
            ..BatchEvaluationScheduleStatus::default()
        },
        skipped: 0,
        missed: 0,
        wake_at: None,
        last_finished: None,
    };
    let calendar = Calendar::parse(&obs.spec.schedule, &obs.spec.time_zone)
        .and_then(|c| cron::parse_window(&obs.spec.template.window).map(|_| c));
    let verdict = match calendar {
        Ok(calendar) => follow(obs, &calendar, &mut plan),
        Err(e) => {
            if stalled_reason(obs.status) != Some(e.reason().as_str()) {
                plan.events.push(Note {
                    warning: true,
                    reason: e.reason(),
                    message: e.to_string(),
                });
            }
            Verdict::Invalid(e)
        }
    };
    prune_history(obs, &mut plan);
    summarize(obs, &mut plan);
    plan.status.conditions = conditions(obs, &verdict);
    plan
}

enum Verdict {
    Invalid(CalendarError),
    Suspended,
    Scheduled(Option<Timestamp>),
}

fn stalled_reason(status: &BatchEvaluationScheduleStatus) -> Option<&str> {
    status
        .conditions
        .iter()
        .find(|c| c.type_ == "Stalled" && c.status == "True")
        .map(|c| c.reason.as_str())
}

/// Runs the due slot and the run-now request; returns when to look again.
fn follow(obs: &Observed<'_>, calendar: &Calendar, plan: &mut Plan) -> Verdict {
    let now = obs.now;
    // The latest slot handled: from status, or from the runs themselves when a crash came
    // between creating a run and recording it.
    let recorded = obs
        .status
        .last_schedule_time
        .as_deref()
        .and_then(cron::parse_time);
    let from_runs = obs
        .runs
        .iter()
        .filter(|r| !r.run_now)
        .map(|r| r.scheduled)
        .max();
    let last = recorded.max(from_runs);
    if let Some(value) = obs.run_now
        && obs.status.last_run_now_value.as_deref() != Some(value)
    {
        let name = cron::run_now_name(obs.name, value);
        if !obs.runs.iter().any(|r| r.name == name) {
            plan.events.push(Note {
                warning: false,
                reason: Reason::RunNow,
                message: format!("starting run {name} for run-now value {value:?}"),
            });
            plan.create.push(NewRun {
                name,
                scheduled: whole_seconds(now),
                run_now: true,
            });
        }
        plan.status.last_run_now_value = Some(value.to_owned());
    }
    if obs.spec.suspend {
        plan.status.last_schedule_time = last.map(|t| t.to_string());
        return Verdict::Suspended;
    }
    let since = last.unwrap_or(obs.created);
    let deadline = obs
        .spec
        .starting_deadline_seconds
        .and_then(|s| u64::try_from(s).ok())
        .map(Duration::from_secs);
    let missed = calendar.missed(since, now, deadline);
    report_missed(&missed, deadline, plan);
    if let Some(slot) = missed.run {
        run_slot(obs, slot, plan);
    }
    plan.status.last_schedule_time = missed.latest.or(last).map(|t| t.to_string());
    let next = calendar.next_after(now);
    plan.wake_at = next;
    Verdict::Scheduled(next)
}

fn whole_seconds(t: Timestamp) -> Timestamp {
    Timestamp::from_second(t.as_second()).unwrap_or(t)
}

fn report_missed(missed: &Missed, deadline: Option<Duration>, plan: &mut Plan) {
    if missed.skipped == 0 {
        return;
    }
    plan.missed = missed.skipped;
    let count = if missed.skipped >= cron::MAX_COUNTED_SLOTS {
        format!("at least {}", missed.skipped)
    } else {
        missed.skipped.to_string()
    };
    let message = match (missed.run, missed.latest, deadline) {
        (Some(run), _, _) => {
            format!("{count} missed slot(s) skipped; only the latest, {run}, runs")
        }
        (None, Some(latest), Some(deadline)) => format!(
            "{count} missed slot(s) skipped: the latest, {latest}, is more than \
             startingDeadlineSeconds ({}) ago",
            deadline.as_secs()
        ),
        _ => format!("{count} missed slot(s) skipped"),
    };
    plan.events.push(Note {
        warning: true,
        reason: Reason::MissedSchedule,
        message,
    });
}

/// Creates the run of `slot`, unless it exists, under the concurrency policy.
fn run_slot(obs: &Observed<'_>, slot: Timestamp, plan: &mut Plan) {
    let name = cron::slot_run_name(obs.name, slot);
    if obs.runs.iter().any(|r| r.name == name) {
        return;
    }
    let active: Vec<&Run> = obs
        .runs
        .iter()
        .filter(|r| !r.deleting && r.state() == RunState::Active)
        .collect();
    let names = || {
        active
            .iter()
            .map(|r| r.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    match obs.spec.concurrency_policy {
        ConcurrencyPolicy::Forbid if !active.is_empty() => {
            plan.skipped += 1;
            plan.events.push(Note {
                warning: true,
                reason: Reason::SkippedSlot,
                message: format!(
                    "slot {slot} skipped: run {} is still active (concurrencyPolicy Forbid)",
                    names()
                ),
            });
            return;
        }
        ConcurrencyPolicy::Replace if !active.is_empty() => {
            plan.events.push(Note {
                warning: false,
                reason: Reason::ReplacingRun,
                message: format!(
                    "deleting active run {} to start {name} (concurrencyPolicy Replace)",
                    names()
                ),
            });
            plan.delete
                .extend(active.iter().map(|r| (r.name.clone(), Why::Replaced)));
        }
        _ => {}
    }
    plan.events.push(Note {
        warning: false,
        reason: Reason::RunCreated,
        message: format!("starting run {name} for slot {slot}"),
    });
    plan.create.push(NewRun {
        name,
        scheduled: slot,
        run_now: false,
    });
}

/// Deletes finished runs beyond the history limits, oldest first.
fn prune_history(obs: &Observed<'_>, plan: &mut Plan) {
    let mut finished: Vec<&Run> = obs
        .runs
        .iter()
        .filter(|r| !r.deleting && r.state() != RunState::Active)
        .collect();
    finished.sort_by(|a, b| b.scheduled.cmp(&a.scheduled).then(b.name.cmp(&a.name)));
    for (state, limit) in [
        (RunState::Succeeded, obs.spec.successful_runs_history_limit),
        (RunState::Failed, obs.spec.failed_runs_history_limit),
    ] {
        let keep = usize::try_from(limit).unwrap_or(0);
        for run in finished.iter().filter(|r| r.state() == state).skip(keep) {
            plan.delete.push((run.name.clone(), Why::History));
        }
    }
}

/// The status fields that describe the runs.
fn summarize(obs: &Observed<'_>, plan: &mut Plan) {
    let deleted = |name: &str| plan.delete.iter().any(|(n, _)| n == name);
    let live: Vec<&Run> = obs
        .runs
        .iter()
        .filter(|r| !r.deleting && !deleted(&r.name))
        .collect();
    let mut active: Vec<String> = live
        .iter()
        .filter(|r| r.state() == RunState::Active)
        .map(|r| r.name.clone())
        .chain(plan.create.iter().map(|n| n.name.clone()))
        .collect();
    active.sort();
    active.dedup();
    plan.status.active_count = i32::try_from(active.len()).unwrap_or(i32::MAX);
    plan.status.active = active;
    let newest_existing = live.iter().max_by_key(|r| (r.scheduled, r.name.clone()));
    let newest_created = plan
        .create
        .iter()
        .max_by_key(|n| (n.scheduled, n.name.clone()));
    plan.status.last_run = match (newest_existing, newest_created) {
        (Some(run), Some(new)) if run.scheduled > new.scheduled => Some(last_run(run)),
        (_, Some(new)) => Some(LastRun {
            name: new.name.clone(),
            ..LastRun::default()
        }),
        (Some(run), None) => Some(last_run(run)),
        (None, None) => obs.status.last_run.clone(),
    };
    let succeeded = obs
        .runs
        .iter()
        .filter(|r| r.state() == RunState::Succeeded)
        .map(|r| r.scheduled)
        .max();
    let recorded = obs
        .status
        .last_successful_time
        .as_deref()
        .and_then(cron::parse_time);
    plan.status.last_successful_time = recorded.max(succeeded).map(|t| t.to_string());
    plan.last_finished = obs
        .runs
        .iter()
        .filter(|r| r.state() != RunState::Active)
        .max_by_key(|r| (r.scheduled, r.name.clone()))
        .cloned();
    if let Some(next) = plan.wake_at {
        plan.status.next_schedule_time = Some(next.to_string());
    }
}

fn last_run(run: &Run) -> LastRun {
    LastRun {
        name: run.name.clone(),
        remote_status: run.remote_status.clone(),
        average_score: run.average_score,
        passed: run.passed.clone(),
    }
}

/// `Ready`, `Reconciling`, `Stalled`, keeping the transition time of those that did not flip.
fn conditions(obs: &Observed<'_>, verdict: &Verdict) -> Vec<Condition> {
    let (ready, reason, message, stalled) = match verdict {
        Verdict::Invalid(e) => (false, e.reason(), e.to_string(), true),
        Verdict::Suspended => (
            true,
            Reason::Suspended,
            "suspended: no run starts for new slots".to_owned(),
            false,
        ),
        Verdict::Scheduled(Some(next)) => (
            true,
            Reason::Scheduled,
            format!(
                "following {:?} in {}; next slot {next}",
                obs.spec.schedule, obs.spec.time_zone
            ),
            false,
        ),
        Verdict::Scheduled(None) => (
            true,
            Reason::Scheduled,
            format!("{:?} has no future slot", obs.spec.schedule),
            false,
        ),
    };
    let condition = |type_: &str, truth: bool, reason: Reason, message: String| {
        let status = if truth { "True" } else { "False" };
        let last_transition_time = match obs.status.conditions.iter().find(|c| c.type_ == type_) {
            Some(previous) if previous.status == status => previous.last_transition_time.clone(),
            _ => Time(obs.now),
        };
        Condition {
            type_: type_.to_owned(),
            status: status.to_owned(),
            reason: reason.as_str().to_owned(),
            message,
            observed_generation: Some(obs.generation),
            last_transition_time,
        }
    };
    vec![
        condition("Ready", ready, reason, message.clone()),
        condition("Reconciling", false, reason, String::new()),
        if stalled {
            condition("Stalled", true, reason, message)
        } else {
            condition("Stalled", false, Reason::NotStalled, String::new())
        },
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schedule::api::RunTemplate;

    fn ts(text: &str) -> Timestamp {
        text.parse().expect("test timestamp")
    }

    fn spec(schedule: &str, policy: ConcurrencyPolicy) -> BatchEvaluationScheduleSpec {
        BatchEvaluationScheduleSpec {
            schedule: schedule.to_owned(),
            time_zone: "UTC".to_owned(),
            suspend: false,
            starting_deadline_seconds: None,
            concurrency_policy: policy,
            successful_runs_history_limit: 3,
            failed_runs_history_limit: 1,
            template: RunTemplate {
                labels: Default::default(),
                annotations: Default::default(),
                window: "24h".to_owned(),
                spec: Default::default(),
            },
        }
    }

    fn run(slot: &str, remote: Option<&str>, passed: Option<&str>) -> Run {
        let scheduled = ts(slot);
        Run {
            name: cron::slot_run_name("nightly", scheduled),
            scheduled,
            run_now: false,
            deleting: false,
            remote_status: remote.map(str::to_owned),
            average_score: None,
            passed: passed.map(str::to_owned),
            stalled: false,
        }
    }

    fn observe<'a>(
        spec: &'a BatchEvaluationScheduleSpec,
        status: &'a BatchEvaluationScheduleStatus,
        runs: &'a [Run],
        now: &str,
    ) -> Observed<'a> {
        Observed {
            name: "nightly",
            generation: 1,
            created: ts("2026-01-01T00:00:30Z"),
            spec,
            status,
            run_now: None,
            runs,
            now: ts(now),
        }
    }

    fn created(plan: &Plan) -> Vec<&str> {
        plan.create.iter().map(|n| n.name.as_str()).collect()
    }

    fn deleted(plan: &Plan) -> Vec<(&str, Why)> {
        plan.delete.iter().map(|(n, w)| (n.as_str(), *w)).collect()
    }

    #[test]
    fn run_states_follow_the_contract() {
        // (remote status, Passed, stalled, state)
        let table = [
            (None, None, false, RunState::Active),
            (Some("IN_PROGRESS"), None, false, RunState::Active),
            (Some("COMPLETED"), None, false, RunState::Succeeded),
            (
                Some("COMPLETED_WITH_ERRORS"),
                None,
                false,
                RunState::Succeeded,
            ),
            (Some("COMPLETED"), Some("True"), false, RunState::Succeeded),
            (Some("COMPLETED"), Some("Unknown"), false, RunState::Active),
            (Some("COMPLETED"), Some("False"), false, RunState::Failed),
            (Some("FAILED"), None, false, RunState::Failed),
            (Some("STOPPED"), None, false, RunState::Failed),
            (None, None, true, RunState::Failed),
        ];
        for (remote, passed, stalled, want) in table {
            let mut r = run("2026-01-01T00:00:00Z", remote, passed);
            r.stalled = stalled;
            assert_eq!(r.state(), want, "{remote:?} {passed:?} {stalled}");
        }
    }

    #[test]
    fn concurrency_policies_decide_the_due_slot() {
        let active = run("2026-01-01T00:00:05Z", Some("IN_PROGRESS"), None);
        let done = run("2026-01-01T00:00:05Z", Some("COMPLETED"), None);
        let status = BatchEvaluationScheduleStatus {
            last_schedule_time: Some("2026-01-01T00:00:05Z".to_owned()),
            ..Default::default()
        };
        let due = "nightly-1767225610";
        // (policy, existing run, created, deleted, skipped)
        let table = [
            (ConcurrencyPolicy::Forbid, &active, vec![], vec![], 1),
            (ConcurrencyPolicy::Forbid, &done, vec![due], vec![], 0),
            (
                ConcurrencyPolicy::Replace,
                &active,
                vec![due],
                vec![(active.name.as_str(), Why::Replaced)],
                0,
            ),
            (ConcurrencyPolicy::Replace, &done, vec![due], vec![], 0),
            (ConcurrencyPolicy::Allow, &active, vec![due], vec![], 0),
        ];
        for (policy, existing, want_created, want_deleted, skipped) in table {
            let spec = spec("*/5 * * * * *", policy);
            let runs = [existing.clone()];
            let plan = decide(&observe(&spec, &status, &runs, "2026-01-01T00:00:11Z"));
            assert_eq!(created(&plan), want_created, "{policy:?}");
            assert_eq!(deleted(&plan), want_deleted, "{policy:?}");
            assert_eq!(plan.skipped, skipped, "{policy:?}");
            // Whatever happened, the slot is handled.
            assert_eq!(
                plan.status.last_schedule_time.as_deref(),
                Some("2026-01-01T00:00:10Z")
            );
            assert_eq!(plan.wake_at, Some(ts("2026-01-01T00:00:15Z")));
        }
    }

    #[test]
    fn a_slot_is_run_once_whatever_the_status_says() {
        let spec = spec("*/5 * * * * *", ConcurrencyPolicy::Allow);
        // A crash came after the create and before the status write: the run tells.
        let runs = [run("2026-01-01T00:00:10Z", None, None)];
        let plan = decide(&observe(
            &spec,
            &Default::default(),
            &runs,
            "2026-01-01T00:00:12Z",
        ));
        assert!(plan.create.is_empty(), "{plan:?}");
        assert_eq!(
            plan.status.last_schedule_time.as_deref(),
            Some("2026-01-01T00:00:10Z")
        );
        assert_eq!(plan.status.active, vec![runs[0].name.clone()]);
        // A new schedule's first slot comes after its creation.
        let plan = decide(&observe(
            &spec,
            &Default::default(),
            &[],
            "2026-01-01T00:00:34Z",
        ));
        assert!(plan.create.is_empty(), "{plan:?}");
        let plan = decide(&observe(
            &spec,
            &Default::default(),
            &[],
            "2026-01-01T00:00:35Z",
        ));
        assert_eq!(created(&plan), vec!["nightly-1767225635"]);
    }

    #[test]
    fn downtime_runs_the_latest_slot_and_says_how_many_were_skipped() {
        let mut spec = spec("*/5 * * * * *", ConcurrencyPolicy::Forbid);
        let status = BatchEvaluationScheduleStatus {
            last_schedule_time: Some("2026-01-01T00:01:00Z".to_owned()),
            ..Default::default()
        };
        let plan = decide(&observe(&spec, &status, &[], "2026-01-01T00:01:32Z"));
        assert_eq!(created(&plan), vec!["nightly-1767225690"]);
        assert_eq!(plan.missed, 5);
        assert!(
            plan.events
                .iter()
                .any(|n| n.reason == Reason::MissedSchedule && n.message.starts_with("5 missed")),
            "{:?}",
            plan.events
        );
        spec.starting_deadline_seconds = Some(1);
        let plan = decide(&observe(&spec, &status, &[], "2026-01-01T00:01:32Z"));
        assert!(plan.create.is_empty());
        assert_eq!(plan.missed, 6);
        assert_eq!(
            plan.status.last_schedule_time.as_deref(),
            Some("2026-01-01T00:01:30Z")
        );
    }

    #[test]
    fn suspend_starts_nothing_but_run_now_does_once_per_value() {
        let mut spec = spec("*/5 * * * * *", ConcurrencyPolicy::Forbid);
        spec.suspend = true;
        let status = BatchEvaluationScheduleStatus {
            last_schedule_time: Some("2026-01-01T00:01:00Z".to_owned()),
            ..Default::default()
        };
        let mut obs = observe(&spec, &status, &[], "2026-01-01T00:01:32.5Z");
        let plan = decide(&obs);
        assert!(plan.create.is_empty());
        assert_eq!(plan.wake_at, None);
        assert_eq!(plan.status.next_schedule_time, None);
        assert_eq!(plan.status.conditions[0].reason, "Suspended");
        obs.run_now = Some("first");
        let plan = decide(&obs);
        let want = cron::run_now_name("nightly", "first");
        assert_eq!(created(&plan), vec![want.as_str()]);
        assert_eq!(plan.create[0].scheduled, ts("2026-01-01T00:01:32Z"));
        assert_eq!(plan.status.last_run_now_value.as_deref(), Some("first"));
        // Handled: the same value does nothing more.
        let handled = plan.status.clone();
        obs.status = &handled;
        assert!(decide(&obs).create.is_empty());
    }

    #[test]
    fn history_keeps_the_newest_of_each_kind() {
        let mut spec = spec("0 0 * * *", ConcurrencyPolicy::Forbid);
        spec.successful_runs_history_limit = 2;
        spec.failed_runs_history_limit = 1;
        let runs = [
            run("2026-01-01T00:00:00Z", Some("COMPLETED"), None),
            run("2026-01-02T00:00:00Z", Some("FAILED"), None),
            run("2026-01-03T00:00:00Z", Some("COMPLETED"), Some("True")),
            run("2026-01-04T00:00:00Z", Some("COMPLETED"), Some("False")),
            run("2026-01-05T00:00:00Z", Some("COMPLETED_WITH_ERRORS"), None),
            run("2026-01-06T00:00:00Z", Some("IN_PROGRESS"), None),
        ];
        let status = BatchEvaluationScheduleStatus {
            last_schedule_time: Some("2026-01-06T00:00:00Z".to_owned()),
            ..Default::default()
        };
        let plan = decide(&observe(&spec, &status, &runs, "2026-01-06T12:00:00Z"));
        assert_eq!(
            deleted(&plan),
            vec![
                (runs[0].name.as_str(), Why::History),
                (runs[1].name.as_str(), Why::History),
            ]
        );
        assert_eq!(plan.status.active, vec![runs[5].name.clone()]);
        assert_eq!(
            plan.status.last_run.as_ref().map(|r| r.name.as_str()),
            Some(runs[5].name.as_str())
        );
        assert_eq!(
            plan.last_finished.as_ref().map(|r| r.name.as_str()),
            Some(runs[4].name.as_str())
        );
        assert_eq!(
            plan.status.last_successful_time.as_deref(),
            Some("2026-01-05T00:00:00Z")
        );
        // Limits of zero keep nothing finished; runs being deleted are not counted twice.
        spec.successful_runs_history_limit = 0;
        let mut runs = runs;
        runs[0].deleting = true;
        let plan = decide(&observe(&spec, &status, &runs, "2026-01-06T12:00:00Z"));
        let names: Vec<&str> = plan.delete.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            vec![
                runs[4].name.as_str(),
                runs[2].name.as_str(),
                runs[1].name.as_str()
            ]
        );
    }

    #[test]
    fn nothing_new_means_the_same_status_so_no_write() {
        let spec = spec("*/5 * * * * *", ConcurrencyPolicy::Forbid);
        let runs = [run("2026-01-01T00:00:35Z", Some("COMPLETED"), Some("True"))];
        let first = decide(&observe(
            &spec,
            &Default::default(),
            &runs,
            "2026-01-01T00:00:36Z",
        ));
        assert!(
            first.create.is_empty() && first.events.is_empty(),
            "{first:?}"
        );
        // The API server keeps condition times to the second.
        let mut stored = first.status.clone();
        for c in &mut stored.conditions {
            c.last_transition_time =
                Time(Timestamp::from_second(c.last_transition_time.0.as_second()).expect("time"));
        }
        let again = decide(&observe(&spec, &stored, &runs, "2026-01-01T00:00:39.5Z"));
        assert_eq!(again.status, stored);
        assert!(again.create.is_empty() && again.events.is_empty() && again.delete.is_empty());
        assert_eq!(again.wake_at, Some(ts("2026-01-01T00:00:40Z")));
    }

    #[test]
    fn an_invalid_schedule_stalls_naming_the_field() {
        let spec = spec("every night", ConcurrencyPolicy::Forbid);
        let plan = decide(&observe(
            &spec,
            &Default::default(),
            &[],
            "2026-01-02T00:00:00Z",
        ));
        assert!(plan.create.is_empty());
        let stalled = &plan.status.conditions[2];
        assert_eq!(
            (stalled.type_.as_str(), stalled.status.as_str()),
            ("Stalled", "True")
        );
        assert_eq!(stalled.reason, "InvalidSchedule");
        assert!(
            stalled.message.contains("spec.schedule"),
            "{}",
            stalled.message
        );
        assert_eq!(plan.events.len(), 1);
        // Already stalled for that reason: no second event.
        let again = decide(&observe(&spec, &plan.status, &[], "2026-01-02T00:00:01Z"));
        assert!(again.events.is_empty());
        assert_eq!(again.status.conditions, plan.status.conditions);
    }
}
