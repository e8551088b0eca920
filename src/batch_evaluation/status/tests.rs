use super::*;
use crate::{
    api::{EvaluationResults, EvaluatorResult},
    batch_evaluation::lifecycle::Release,
    remote::Call,
};

/// The status alone; the verdict has tests of its own below.
fn desired(
    current: &BatchEvaluationStatus,
    inputs: &StatusInputs<'_>,
    now: Timestamp,
) -> BatchEvaluationStatus {
    super::desired(current, inputs, now).status
}

fn job(status: RemoteStatus) -> RemoteJob {
    RemoteJob {
        id: "demo-0123456789".into(),
        arn: "arn:aws:bedrock-agentcore:us-west-2:123456789012:batch-evaluation/demo-0123456789"
            .into(),
        name: "demo".into(),
        status,
        created_at: Some("2026-01-01T00:00:00Z".into()),
        updated_at: Some("2026-01-01T00:10:00Z".into()),
        results: Some(EvaluationResults {
            total_sessions: Some(10),
            sessions_completed: Some(7),
            evaluators: vec![
                EvaluatorResult {
                    evaluator_id: Some("Builtin.Helpfulness".into()),
                    average_score: Some(0.8),
                    ..Default::default()
                },
                EvaluatorResult {
                    evaluator_id: Some("Builtin.Correctness".into()),
                    average_score: Some(0.6),
                    ..Default::default()
                },
            ],
            ..Default::default()
        }),
        error_details: None,
    }
}

fn inputs<'a>(job: Option<&'a RemoteJob>, step: &'a Step) -> StatusInputs<'a> {
    StatusInputs {
        generation: 2,
        deleting: false,
        stop_requested: false,
        name: "demo",
        region: "us-west-2",
        job,
        cleanup_action: None,
        step,
        failure: None,
        results_location: None,
        queue: None,
        role_arn: None,
        detail: None,
        pass_criteria: None,
    }
}

fn cond<'a>(s: &'a BatchEvaluationStatus, type_: &str) -> &'a Condition {
    s.conditions
        .iter()
        .find(|c| c.type_ == type_)
        .expect("condition present")
}

const T0: &str = "2026-01-01T00:00:00Z";
fn now() -> Timestamp {
    "2026-01-01T00:20:00Z".parse().expect("timestamp")
}

#[test]
fn completed_job_is_ready_with_results() {
    let j = job(RemoteStatus::Completed);
    let s = desired(
        &BatchEvaluationStatus::default(),
        &inputs(Some(&j), &Step::Idle),
        now(),
    );
    assert_eq!(s.observed_generation, 2);
    assert_eq!(s.batch_evaluation_id.as_deref(), Some("demo-0123456789"));
    assert_eq!(s.sessions.as_deref(), Some("7/10"));
    assert_eq!(s.average_score, Some(0.7));
    assert_eq!(s.completed_at.as_deref(), Some("2026-01-01T00:10:00Z"));
    assert_eq!(cond(&s, READY).status, "True");
    assert_eq!(cond(&s, READY).reason, "Completed");
    assert_eq!(cond(&s, RECONCILING).status, "False");
    assert_eq!(cond(&s, STALLED).status, "False");
}

#[test]
fn running_job_is_reconciling() {
    let j = job(RemoteStatus::InProgress);
    let s = desired(
        &BatchEvaluationStatus::default(),
        &inputs(Some(&j), &Step::Wait(Wait::JobRunning)),
        now(),
    );
    assert_eq!(cond(&s, READY).status, "False");
    assert_eq!(cond(&s, RECONCILING).status, "True");
    assert_eq!(cond(&s, RECONCILING).reason, "InProgress");
    assert!(s.completed_at.is_none());
}

#[test]
fn failed_job_is_stalled_with_the_service_details() {
    let mut j = job(RemoteStatus::Failed);
    j.error_details = Some("no sessions found".into());
    let s = desired(
        &BatchEvaluationStatus::default(),
        &inputs(Some(&j), &Step::Idle),
        now(),
    );
    assert_eq!(cond(&s, STALLED).status, "True");
    assert_eq!(cond(&s, STALLED).reason, "JobFailed");
    assert_eq!(cond(&s, STALLED).message, "no sessions found");
}

#[test]
fn rejected_spec_stalls_with_the_message() {
    let step = Step::Stall(StallReason::InvalidSpec);
    let mut o = inputs(None, &step);
    o.failure = Some((
        FailureKind::Validation,
        "ValidationException: evaluators[0] is invalid",
    ));
    let s = desired(&BatchEvaluationStatus::default(), &o, now());
    assert_eq!(cond(&s, STALLED).reason, "InvalidSpec");
    assert!(cond(&s, STALLED).message.contains("evaluators[0]"));
    assert_eq!(
        recorded_stall(Some(&s), Some(2)),
        Some(StallReason::InvalidSpec)
    );
    // The next reconcile restates the stall without a failure: nothing changes.
    let again = desired(&s, &inputs(None, &step), now());
    assert!(
        !changed(&s, &again),
        "restating a stall must not rewrite it"
    );
    assert_eq!(
        recorded_stall(Some(&s), Some(3)),
        None,
        "a new generation clears the stall"
    );
    assert_eq!(
        recorded_stall(Some(&s), None),
        Some(StallReason::InvalidSpec),
        "whatever the generation, e.g. while deleting"
    );
    assert_eq!(s.batch_evaluation_name.as_deref(), Some("demo"));
}

#[test]
fn stop_on_request_is_not_a_failure() {
    let j = job(RemoteStatus::Stopped);
    let mut o = inputs(Some(&j), &Step::Idle);
    o.stop_requested = true;
    let s = desired(&BatchEvaluationStatus::default(), &o, now());
    assert_eq!(cond(&s, READY).reason, "StoppedOnRequest");
    assert_eq!(
        cond(&s, READY).status,
        "True",
        "the requested state is reached"
    );
    assert_eq!(cond(&s, STALLED).status, "False");
    assert_eq!(cond(&s, RECONCILING).status, "False");

    let j = job(RemoteStatus::Completed);
    let mut o = inputs(Some(&j), &Step::Idle);
    o.stop_requested = true;
    let s = desired(&BatchEvaluationStatus::default(), &o, now());
    assert_eq!(cond(&s, RECONCILING).reason, "StopNotNeeded");
    assert_eq!(cond(&s, READY).status, "True");
}

#[test]
fn access_denied_needs_a_person() {
    let step = Step::Retry {
        call: Call::Start,
        kind: FailureKind::AccessDenied,
    };
    let mut o = inputs(None, &step);
    o.failure = Some((
        FailureKind::AccessDenied,
        "AccessDeniedException: not authorized",
    ));
    let s = desired(&BatchEvaluationStatus::default(), &o, now());
    assert_eq!(cond(&s, STALLED).status, "True");
    assert_eq!(cond(&s, STALLED).reason, "AccessDenied");
    assert_eq!(cond(&s, RECONCILING).status, "True");
}

#[test]
fn throttling_is_reconciling_not_stalled() {
    let step = Step::Retry {
        call: Call::Get,
        kind: FailureKind::Throttled,
    };
    let mut o = inputs(None, &step);
    o.failure = Some((FailureKind::Throttled, "ThrottlingException: slow down"));
    let s = desired(&BatchEvaluationStatus::default(), &o, now());
    assert_eq!(cond(&s, STALLED).status, "False");
    assert_eq!(cond(&s, READY).reason, "Throttled");
}

#[test]
fn deletion_shows_the_cleanup_step_and_where_results_remain() {
    let j = job(RemoteStatus::Stopping);
    let step = Step::Wait(Wait::Cleanup(CleanupStep::AwaitingTerminal));
    let mut o = inputs(Some(&j), &step);
    o.deleting = true;
    o.cleanup_action = Some(CleanupStep::Stopping);
    o.results_location = Some("/agentcore/results");
    let s = desired(&BatchEvaluationStatus::default(), &o, now());
    assert_eq!(s.cleanup_step, Some(CleanupStep::Stopping));
    assert_eq!(cond(&s, READY).reason, "Stopping");
    assert!(cond(&s, READY).message.contains("/agentcore/results"));

    o.cleanup_action = None;
    let s = desired(&s, &o, now());
    assert_eq!(s.cleanup_step, Some(CleanupStep::AwaitingTerminal));
    let _ = Release::RemoteGone;
}

#[test]
fn unchanged_observation_changes_nothing() {
    let j = job(RemoteStatus::InProgress);
    let step = Step::Wait(Wait::JobRunning);
    let first = desired(
        &BatchEvaluationStatus::default(),
        &inputs(Some(&j), &step),
        now(),
    );
    let later: Timestamp = "2026-01-01T01:00:00Z".parse().expect("timestamp");
    let second = desired(&first, &inputs(Some(&j), &step), later);
    assert!(
        !changed(&first, &second),
        "same observation must not cause a write"
    );
    assert_eq!(
        cond(&second, READY).last_transition_time,
        cond(&first, READY).last_transition_time
    );
    let _ = T0;
}

#[test]
fn transition_time_moves_only_when_the_status_flips() {
    let running = job(RemoteStatus::InProgress);
    let done = job(RemoteStatus::Completed);
    let first = desired(
        &BatchEvaluationStatus::default(),
        &inputs(Some(&running), &Step::Wait(Wait::JobRunning)),
        now(),
    );
    let later: Timestamp = "2026-01-01T01:00:00Z".parse().expect("timestamp");
    let second = desired(&first, &inputs(Some(&done), &Step::Idle), later);
    assert_eq!(cond(&second, READY).last_transition_time, Time(later));
    assert_eq!(
        cond(&second, STALLED).last_transition_time,
        cond(&first, STALLED).last_transition_time
    );
}

#[test]
fn unknown_remote_status_is_reported_not_fatal() {
    let j = job(RemoteStatus::Unknown("ARCHIVED".into()));
    let s = desired(
        &BatchEvaluationStatus::default(),
        &inputs(Some(&j), &Step::Wait(Wait::JobRunning)),
        now(),
    );
    assert_eq!(cond(&s, READY).reason, "UnknownRemoteStatus");
    assert_eq!(s.remote_status.as_deref(), Some("ARCHIVED"));
}

#[test]
fn stop_before_any_start_is_done_without_a_job() {
    let step = Step::Idle;
    let mut input = inputs(None, &step);
    input.stop_requested = true;
    let status = desired(&BatchEvaluationStatus::default(), &input, now());
    let ready = cond(&status, READY);
    assert_eq!(
        (ready.status.as_str(), ready.reason.as_str()),
        ("True", "NotStarted")
    );
    assert_eq!(cond(&status, RECONCILING).status, "False");
    assert_eq!(status.batch_evaluation_id, None);
}

fn criteria(min_helpfulness: f64) -> PassCriteria {
    PassCriteria {
        evaluators: vec![crate::api::EvaluatorCriterion {
            evaluator_id: "Builtin.Helpfulness".into(),
            min_average_score: min_helpfulness,
        }],
        ..PassCriteria::default()
    }
}

#[test]
fn no_criteria_no_passed_condition() {
    let j = job(RemoteStatus::Completed);
    let result = super::desired(
        &BatchEvaluationStatus::default(),
        &inputs(Some(&j), &Step::Idle),
        now(),
    );
    assert!(result.gate.is_none());
    assert!(result.status.conditions.iter().all(|c| c.type_ != PASSED));
}

#[test]
fn the_gate_waits_for_the_job_then_judges_its_results() {
    let running = job(RemoteStatus::InProgress);
    let done = job(RemoteStatus::Completed);
    let strict = criteria(0.9);
    let mut running_inputs = inputs(Some(&running), &Step::Wait(Wait::JobRunning));
    running_inputs.pass_criteria = Some(&strict);
    let first = desired(&BatchEvaluationStatus::default(), &running_inputs, now());
    assert_eq!(cond(&first, PASSED).status, "Unknown");
    assert_eq!(cond(&first, PASSED).reason, "AwaitingResults");

    let later: Timestamp = "2026-01-01T01:00:00Z".parse().expect("timestamp");
    let mut done_inputs = inputs(Some(&done), &Step::Idle);
    done_inputs.pass_criteria = Some(&strict);
    let second = desired(&first, &done_inputs, later);
    let passed = cond(&second, PASSED);
    assert_eq!(passed.status, "False");
    assert_eq!(passed.reason, "CriteriaMissed");
    assert_eq!(
        passed.message,
        "missed: Builtin.Helpfulness average score 0.8 < minimum 0.9"
    );
    assert_eq!(passed.last_transition_time, Time(later));
    // A completed job is Ready whatever its verdict: the gate is a condition of its own.
    assert_eq!(cond(&second, READY).status, "True");
}

#[test]
fn changed_criteria_are_judged_again_from_the_recorded_results() {
    let done = job(RemoteStatus::Completed);
    let strict = criteria(0.9);
    let mut with_job = inputs(Some(&done), &Step::Idle);
    with_job.pass_criteria = Some(&strict);
    let missed = desired(&BatchEvaluationStatus::default(), &with_job, now());
    assert_eq!(cond(&missed, PASSED).status, "False");

    // The next reconcile calls no AWS (Step::Idle, no job observed): the verdict comes from
    // the results in status.
    let lenient = criteria(0.5);
    let mut without_job = inputs(None, &Step::Idle);
    without_job.generation = 3;
    without_job.pass_criteria = Some(&lenient);
    let later: Timestamp = "2026-01-01T01:00:00Z".parse().expect("timestamp");
    let result = super::desired(&missed, &without_job, later);
    assert!(result.write);
    assert_eq!(result.gate, Some(Gate::Met));
    let passed = cond(&result.status, PASSED);
    assert_eq!(
        (passed.status.as_str(), passed.reason.as_str()),
        ("True", "CriteriaMet")
    );
    assert_eq!(passed.observed_generation, Some(3));

    // Criteria removed: the condition goes.
    let mut removed = inputs(None, &Step::Idle);
    removed.generation = 4;
    let gone = desired(&result.status, &removed, later);
    assert!(gone.conditions.iter().all(|c| c.type_ != PASSED));
}

#[test]
fn a_failed_job_does_not_pass() {
    let failed = job(RemoteStatus::Failed);
    let lenient = criteria(0.0);
    let mut failed_inputs = inputs(Some(&failed), &Step::Idle);
    failed_inputs.pass_criteria = Some(&lenient);
    let s = desired(&BatchEvaluationStatus::default(), &failed_inputs, now());
    assert_eq!(cond(&s, PASSED).status, "False");
    assert_eq!(cond(&s, PASSED).reason, "NotCompleted");
}
