//! Conformance of the emulator with the real Rust SDK (`aws-sdk-bedrockagentcore`), pointed at
//! it by endpoint override only. Every test starts its own emulator on a free port.

#![allow(clippy::unwrap_used)]

use std::{
    collections::HashSet,
    time::{Duration, Instant},
};

use agentcore_emulator::{
    EmulatorConfig, FaultConfig, Operation, RunningEmulator, StsSettings, Target,
};
use aws_config::{SdkConfig, sts::AssumeRoleProvider};
use aws_sdk_bedrockagentcore::{
    Client,
    config::{BehaviorVersion, Credentials, Region, retry::RetryConfig, timeout::TimeoutConfig},
    error::SdkError,
    operation::{
        delete_batch_evaluation::DeleteBatchEvaluationError,
        get_batch_evaluation::{GetBatchEvaluationError, GetBatchEvaluationOutput},
        list_batch_evaluations::ListBatchEvaluationsError,
        start_batch_evaluation::{
            StartBatchEvaluationError, builders::StartBatchEvaluationFluentBuilder,
        },
        stop_batch_evaluation::StopBatchEvaluationError,
    },
    primitives::DateTime,
    types::{
        BatchEvaluationStatus, CloudWatchFilterConfig, CloudWatchLogsSource,
        CloudWatchOutputConfig, DataSourceConfig, EvaluationContent, EvaluationExpectedTrajectory,
        EvaluationMetadata, Evaluator, GroundTruthSource, GroundTruthTurn, GroundTruthTurnInput,
        InlineGroundTruth, Insight, OnlineEvaluationConfigSource, OutputConfig, ResultDestination,
        SessionFilterConfig, SessionMetadataShape, SessionTraceIds, ValidationExceptionReason,
    },
};

const REGION: &str = "us-west-2";
const KMS_KEY: &str = "arn:aws:kms:us-west-2:123456789012:key/0123abcd-4567-89ef-0123-456789abcdef";
const ONLINE_CONFIG: &str =
    "arn:aws:bedrock-agentcore:us-west-2:123456789012:online-evaluation-config/nightly-AbCdE12345";
const WAIT: Duration = Duration::from_secs(15);

async fn emulator(config: EmulatorConfig) -> RunningEmulator {
    agentcore_emulator::start(config)
        .await
        .expect("emulator starts")
}

/// Short phases so a whole lifecycle takes a fraction of a second.
fn fast() -> EmulatorConfig {
    EmulatorConfig {
        job_duration: Duration::from_millis(200),
        stop_duration: Duration::from_millis(50),
        delete_duration: Duration::from_millis(50),
        seed: Some(7),
        ..EmulatorConfig::default()
    }
}

/// Phases that never end during a test, for checks on live jobs.
fn slow() -> EmulatorConfig {
    EmulatorConfig {
        job_duration: Duration::from_secs(600),
        stop_duration: Duration::from_secs(600),
        delete_duration: Duration::from_secs(600),
        ..EmulatorConfig::default()
    }
}

/// Shared settings with base (not emulator-issued) credentials, every service pointed at
/// `endpoint` (STS included).
async fn sdk_config(
    endpoint: &str,
    region: &str,
    retry: RetryConfig,
    timeout: Duration,
) -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new(region.to_owned()))
        .credentials_provider(Credentials::new(
            "AKIDEMULATOR",
            "emulator-secret",
            None,
            None,
            "test",
        ))
        .endpoint_url(endpoint)
        .retry_config(retry)
        .timeout_config(TimeoutConfig::builder().operation_timeout(timeout).build())
        .load()
        .await
}

async fn client_with(
    endpoint: &str,
    region: &str,
    retry: RetryConfig,
    timeout: Duration,
) -> Client {
    Client::new(&sdk_config(endpoint, region, retry, timeout).await)
}

/// A client with base credentials that reports the first error it gets (no retries).
async fn client(emulator: &RunningEmulator) -> Client {
    Client::new(&base_config(emulator).await)
}

fn cloudwatch() -> DataSourceConfig {
    DataSourceConfig::CloudWatchLogs(
        CloudWatchLogsSource::builder()
            .service_names("checkout-agent")
            .log_group_names("/aws/bedrock-agentcore/checkout")
            .build()
            .unwrap(),
    )
}

fn start(client: &Client, name: &str) -> StartBatchEvaluationFluentBuilder {
    client
        .start_batch_evaluation()
        .batch_evaluation_name(name)
        .data_source_config(cloudwatch())
}

fn token(seed: &str) -> String {
    format!("{seed}-{}", "0".repeat(40))
}

fn script(op: Operation, steps: &str) -> FaultConfig {
    let mut faults = FaultConfig::default();
    faults.entry(Target::Operation(op)).script =
        steps.split(',').map(|s| s.parse().unwrap()).collect();
    faults
}

async fn get(
    client: &Client,
    id: &str,
) -> Result<GetBatchEvaluationOutput, SdkError<GetBatchEvaluationError>> {
    client
        .get_batch_evaluation()
        .batch_evaluation_id(id)
        .send()
        .await
}

/// Polls until the job has `want`, failing if it does not within [`WAIT`].
async fn wait_for(
    client: &Client,
    id: &str,
    want: BatchEvaluationStatus,
) -> GetBatchEvaluationOutput {
    let deadline = Instant::now() + WAIT;
    loop {
        let out = get(client, id).await.expect("get while waiting");
        if *out.status() == want {
            return out;
        }
        assert!(
            Instant::now() < deadline,
            "{id} never reached {want:?}; last {:?}",
            out.status()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Polls until Get answers ResourceNotFoundException.
async fn wait_gone(client: &Client, id: &str) {
    let deadline = Instant::now() + WAIT;
    loop {
        match get(client, id).await {
            Err(e)
                if e.as_service_error()
                    .is_some_and(GetBatchEvaluationError::is_resource_not_found_exception) =>
            {
                return;
            }
            Ok(out) => assert!(Instant::now() < deadline, "{id} still {:?}", out.status()),
            Err(e) => panic!("unexpected error while waiting for {id} to go: {e:?}"),
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn http_status<E>(err: &SdkError<E>) -> Option<u16> {
    err.raw_response().map(|r| r.status().as_u16())
}

#[tokio::test]
async fn every_operation_and_field_round_trips() {
    let emu = emulator(slow()).await;
    let client = client(&emu).await;
    let start_time = DateTime::from_secs(1_767_225_600);
    let end_time = DateTime::from_secs(1_767_312_000);
    let data_source = DataSourceConfig::CloudWatchLogs(
        CloudWatchLogsSource::builder()
            .service_names("checkout-agent")
            .log_group_names("/aws/bedrock-agentcore/checkout")
            .log_group_names("/aws/bedrock-agentcore/payments")
            .filter_config(
                CloudWatchFilterConfig::builder()
                    .session_ids("session-1")
                    .session_ids("session-2")
                    .time_range(
                        SessionFilterConfig::builder()
                            .start_time(start_time)
                            .end_time(end_time)
                            .build(),
                    )
                    .session_trace_ids(
                        SessionTraceIds::builder()
                            .session_id("session-1")
                            .trace_ids("0123456789abcdef0123456789abcdef")
                            .build()
                            .unwrap(),
                    )
                    .build(),
            )
            .build()
            .unwrap(),
    );
    let ground_truth = GroundTruthSource::Inline(
        InlineGroundTruth::builder()
            .assertions(EvaluationContent::Text(
                "The agent confirms the order".into(),
            ))
            .expected_trajectory(
                EvaluationExpectedTrajectory::builder()
                    .tool_names("lookup_order")
                    .build(),
            )
            .turns(
                GroundTruthTurn::builder()
                    .input(GroundTruthTurnInput::Prompt("Where is my order?".into()))
                    .expected_response(EvaluationContent::Text("It ships tomorrow".into()))
                    .build(),
            )
            .build(),
    );
    let metadata = EvaluationMetadata::SessionMetadata(vec![
        SessionMetadataShape::builder()
            .session_id("session-1")
            .test_scenario_id("scenario-a")
            .ground_truth(ground_truth)
            .metadata("channel", "web")
            .build()
            .unwrap(),
        SessionMetadataShape::builder()
            .session_id("session-2")
            .build()
            .unwrap(),
        SessionMetadataShape::builder()
            .session_id("session-3")
            .build()
            .unwrap(),
    ]);
    let output = OutputConfig::CloudWatchConfig(
        CloudWatchOutputConfig::builder()
            .log_group_name("/aws/evaluations/results")
            .log_stream_name("nightly")
            .metrics_namespace("Evals/Checkout")
            .result_destination(ResultDestination::DedicatedLogGroup)
            .build(),
    );

    let started = client
        .start_batch_evaluation()
        .batch_evaluation_name("full_round_trip")
        .description("every member")
        .evaluators(
            Evaluator::builder()
                .evaluator_id("Builtin.Helpfulness")
                .build()
                .unwrap(),
        )
        .evaluators(
            Evaluator::builder()
                .evaluator_id("ThirdParty.acme.tone")
                .build()
                .unwrap(),
        )
        .evaluators(
            Evaluator::builder()
                .evaluator_id("custom_eval-AbCdE12345")
                .build()
                .unwrap(),
        )
        .insights(
            Insight::builder()
                .insight_id("Builtin.FailureAnalysis")
                .build()
                .unwrap(),
        )
        .data_source_config(data_source.clone())
        .evaluation_metadata(metadata)
        .output_config(output.clone())
        .kms_key_arn(KMS_KEY)
        .tags("team", "evals")
        .tags("emulator:job-duration", "10m")
        .client_token(token("round-trip"))
        .send()
        .await
        .expect("start");
    let id = started.batch_evaluation_id().to_owned();
    assert!(id.starts_with("full_round_trip-"), "{id}");
    assert_eq!(
        started.batch_evaluation_arn(),
        format!("arn:aws:bedrock-agentcore:{REGION}:123456789012:batch-evaluation/{id}")
    );
    assert_eq!(*started.status(), BatchEvaluationStatus::Pending);
    assert_eq!(started.batch_evaluation_name(), "full_round_trip");
    assert_eq!(started.evaluators().len(), 3);
    assert_eq!(
        started.insights()[0].insight_id(),
        "Builtin.FailureAnalysis"
    );
    assert_eq!(started.output_config(), Some(&output));
    assert_eq!(
        started
            .tags()
            .and_then(|t| t.get("team"))
            .map(String::as_str),
        Some("evals")
    );
    assert_eq!(started.kms_key_arn(), Some(KMS_KEY));
    assert_eq!(started.description(), Some("every member"));
    let created = started.created_at().secs();
    assert!(
        created > 1_700_000_000,
        "createdAt is a real time: {created}"
    );

    let got = get(&client, &id).await.expect("get");
    assert_eq!(got.batch_evaluation_id(), id);
    assert_eq!(
        got.data_source_config(),
        Some(&data_source),
        "union with filters round-trips"
    );
    assert_eq!(got.output_config(), Some(&output));
    assert_eq!(got.evaluators(), started.evaluators());
    assert_eq!(got.insights(), started.insights());
    assert_eq!(got.kms_key_arn(), Some(KMS_KEY));
    assert_eq!(got.description(), Some("every member"));
    assert_eq!(got.created_at(), started.created_at());
    assert!(got.updated_at().is_some());
    assert!(got.error_details().is_empty());

    let online = DataSourceConfig::OnlineEvaluationConfigSource(
        OnlineEvaluationConfigSource::builder()
            .online_evaluation_config_arn(ONLINE_CONFIG)
            .time_range(
                SessionFilterConfig::builder()
                    .start_time(start_time)
                    .build(),
            )
            .build()
            .unwrap(),
    );
    let second = client
        .start_batch_evaluation()
        .batch_evaluation_name("online_source")
        .data_source_config(online.clone())
        .send()
        .await
        .expect("start with online source");
    let second_id = second.batch_evaluation_id().to_owned();
    assert_eq!(
        get(&client, &second_id).await.unwrap().data_source_config(),
        Some(&online)
    );

    let listed = client.list_batch_evaluations().send().await.expect("list");
    assert!(listed.next_token().is_none());
    let ids: Vec<&str> = listed
        .batch_evaluations()
        .iter()
        .map(|s| s.batch_evaluation_id())
        .collect();
    assert_eq!(ids, [second_id.as_str(), id.as_str()], "newest first");
    let summary = &listed.batch_evaluations()[1];
    assert_eq!(summary.batch_evaluation_name(), "full_round_trip");
    assert_eq!(summary.evaluators().len(), 3);
    assert_eq!(summary.kms_key_arn(), Some(KMS_KEY));

    let stopped = client
        .stop_batch_evaluation()
        .batch_evaluation_id(&id)
        .send()
        .await
        .expect("stop");
    assert_eq!(stopped.batch_evaluation_id(), id);
    assert_eq!(*stopped.status(), BatchEvaluationStatus::Stopping);
    assert_eq!(stopped.description(), Some("every member"));

    let stats = emu.stats();
    assert_eq!(stats.count(Operation::StartBatchEvaluation, "202"), 2);
    assert_eq!(stats.count(Operation::GetBatchEvaluation, "200"), 2);
    assert_eq!(stats.count(Operation::ListBatchEvaluations, "200"), 1);
    assert_eq!(stats.count(Operation::StopBatchEvaluation, "202"), 1);
    emu.shutdown().await.unwrap();
}

fn rank(status: &BatchEvaluationStatus) -> u8 {
    match status {
        BatchEvaluationStatus::Pending => 0,
        BatchEvaluationStatus::InProgress => 1,
        _ => 2,
    }
}

#[tokio::test]
async fn jobs_reach_each_outcome_through_pending_and_in_progress() {
    let emu = emulator(fast()).await;
    let client = client(&emu).await;
    for (outcome, want) in [
        ("COMPLETED", BatchEvaluationStatus::Completed),
        (
            "COMPLETED_WITH_ERRORS",
            BatchEvaluationStatus::CompletedWithErrors,
        ),
        ("FAILED", BatchEvaluationStatus::Failed),
    ] {
        let started = start(&client, &format!("outcome_{}", outcome.to_lowercase()))
            .evaluators(
                Evaluator::builder()
                    .evaluator_id("Builtin.Correctness")
                    .build()
                    .unwrap(),
            )
            .tags("emulator:outcome", outcome)
            .tags("emulator:job-duration", "400ms")
            .send()
            .await
            .unwrap();
        assert_eq!(*started.status(), BatchEvaluationStatus::Pending);
        let id = started.batch_evaluation_id();

        let deadline = Instant::now() + WAIT;
        let mut last_rank = 0;
        let mut last_completed = 0;
        let done = loop {
            let out = get(&client, id).await.unwrap();
            let r = rank(out.status());
            assert!(
                r >= last_rank,
                "status went backwards to {:?}",
                out.status()
            );
            last_rank = r;
            if let Some(results) = out.evaluation_results().filter(|_| r == 1) {
                let completed = results.number_of_sessions_completed().unwrap();
                assert!(completed >= last_completed, "progress never shrinks");
                assert_eq!(
                    completed + results.number_of_sessions_in_progress().unwrap(),
                    10
                );
                last_completed = completed;
            }
            if r == 2 {
                break out;
            }
            assert!(Instant::now() < deadline);
            tokio::time::sleep(Duration::from_millis(5)).await;
        };
        assert_eq!(*done.status(), want);
        let results = done
            .evaluation_results()
            .expect("terminal jobs have results");
        assert_eq!(results.total_number_of_sessions(), Some(10));
        let summary = &results.evaluator_summaries()[0];
        assert_eq!(summary.evaluator_id(), Some("Builtin.Correctness"));
        match want {
            BatchEvaluationStatus::Completed => {
                assert_eq!(results.number_of_sessions_completed(), Some(10));
                let score = summary
                    .statistics()
                    .and_then(|s| s.average_score())
                    .unwrap();
                assert!((0.0..=1.0).contains(&score));
                assert!(done.error_details().is_empty());
            }
            BatchEvaluationStatus::CompletedWithErrors => {
                assert_eq!(results.number_of_sessions_failed(), Some(2));
                assert_eq!(summary.total_failed(), Some(2));
                assert_eq!(done.error_details().len(), 1);
            }
            _ => {
                assert_eq!(results.number_of_sessions_failed(), Some(10));
                assert_eq!(done.error_details().len(), 1, "FAILED jobs explain why");
            }
        }
        assert!(done.updated_at().unwrap().secs() >= done.created_at().secs());
    }
    emu.shutdown().await.unwrap();
}

#[tokio::test]
async fn default_outcome_applies_without_a_tag() {
    let emu = emulator(EmulatorConfig {
        default_outcome: agentcore_emulator::Outcome::Failed,
        ..fast()
    })
    .await;
    let client = client(&emu).await;
    let id = start(&client, "untagged")
        .send()
        .await
        .unwrap()
        .batch_evaluation_id()
        .to_owned();
    wait_for(&client, &id, BatchEvaluationStatus::Failed).await;
    emu.shutdown().await.unwrap();
}

#[tokio::test]
async fn stop_repeats_while_stopping_and_running_jobs_cannot_be_deleted() {
    let emu = emulator(fast()).await;
    let client = client(&emu).await;
    let started = start(&client, "stoppable")
        .tags("emulator:job-duration", "10m")
        .tags("emulator:stop-duration", "10m")
        .send()
        .await
        .unwrap();
    let id = started.batch_evaluation_id();
    wait_for(&client, id, BatchEvaluationStatus::InProgress).await;

    let conflict = client
        .delete_batch_evaluation()
        .batch_evaluation_id(id)
        .send()
        .await
        .unwrap_err();
    assert_eq!(http_status(&conflict), Some(409));
    assert!(
        matches!(
            conflict.into_service_error(),
            DeleteBatchEvaluationError::ConflictException(_)
        ),
        "delete of a running job"
    );
    let stop = client
        .stop_batch_evaluation()
        .batch_evaluation_id(id)
        .send()
        .await
        .unwrap();
    assert_eq!(*stop.status(), BatchEvaluationStatus::Stopping);
    let again = client
        .stop_batch_evaluation()
        .batch_evaluation_id(id)
        .send()
        .await
        .unwrap();
    assert_eq!(
        *again.status(),
        BatchEvaluationStatus::Stopping,
        "stop repeats while stopping"
    );
    let conflict = client
        .delete_batch_evaluation()
        .batch_evaluation_id(id)
        .send()
        .await
        .unwrap_err();
    assert!(
        conflict.into_service_error().is_conflict_exception(),
        "delete while stopping"
    );
    assert_eq!(
        *get(&client, id).await.unwrap().status(),
        BatchEvaluationStatus::Stopping
    );
    emu.shutdown().await.unwrap();
}

#[tokio::test]
async fn deleting_jobs_refuse_stop_and_delete() {
    let emu = emulator(fast()).await;
    let client = client(&emu).await;
    let started = start(&client, "deleting")
        .tags("emulator:job-duration", "0s")
        .tags("emulator:delete-duration", "10m")
        .send()
        .await
        .unwrap();
    let id = started.batch_evaluation_id();
    let deleting = client
        .delete_batch_evaluation()
        .batch_evaluation_id(id)
        .send()
        .await
        .unwrap();
    assert_eq!(*deleting.status(), BatchEvaluationStatus::Deleting);
    let conflict = client
        .delete_batch_evaluation()
        .batch_evaluation_id(id)
        .send()
        .await
        .unwrap_err();
    assert!(
        conflict.into_service_error().is_conflict_exception(),
        "delete while deleting"
    );
    let conflict = client
        .stop_batch_evaluation()
        .batch_evaluation_id(id)
        .send()
        .await
        .unwrap_err();
    assert!(
        conflict.into_service_error().is_conflict_exception(),
        "stop while deleting"
    );
    let got = get(&client, id).await.unwrap();
    assert_eq!(*got.status(), BatchEvaluationStatus::Deleting);
    assert_eq!(
        got.evaluation_results()
            .and_then(|r| r.number_of_sessions_completed()),
        Some(10),
        "a deleting job keeps the results it had"
    );
    let listed = client.list_batch_evaluations().send().await.unwrap();
    assert_eq!(
        listed.batch_evaluations()[0].batch_evaluation_id(),
        id,
        "listed until gone"
    );
    emu.shutdown().await.unwrap();
}

#[tokio::test]
async fn stopped_jobs_are_deleted_and_then_gone() {
    let emu = emulator(fast()).await;
    let client = client(&emu).await;
    let started = start(&client, "full_cycle")
        .tags("emulator:job-duration", "10m")
        .send()
        .await
        .unwrap();
    let id = started.batch_evaluation_id().to_owned();
    wait_for(&client, &id, BatchEvaluationStatus::InProgress).await;
    let stop = client
        .stop_batch_evaluation()
        .batch_evaluation_id(&id)
        .send()
        .await
        .unwrap();
    assert_eq!(*stop.status(), BatchEvaluationStatus::Stopping);

    let stopped = wait_for(&client, &id, BatchEvaluationStatus::Stopped).await;
    let results = stopped.evaluation_results().unwrap();
    assert_eq!(
        results.number_of_sessions_completed().unwrap()
            + results.number_of_sessions_ignored().unwrap(),
        10
    );
    let conflict = client
        .stop_batch_evaluation()
        .batch_evaluation_id(&id)
        .send()
        .await
        .unwrap_err();
    assert!(
        matches!(
            conflict.into_service_error(),
            StopBatchEvaluationError::ConflictException(_)
        ),
        "stop of a stopped job"
    );
    let deleting = client
        .delete_batch_evaluation()
        .batch_evaluation_id(&id)
        .send()
        .await
        .unwrap();
    assert_eq!(*deleting.status(), BatchEvaluationStatus::Deleting);
    assert_eq!(
        deleting.batch_evaluation_arn(),
        started.batch_evaluation_arn()
    );

    wait_gone(&client, &id).await;
    let listed = client.list_batch_evaluations().send().await.unwrap();
    assert!(
        listed
            .batch_evaluations()
            .iter()
            .all(|s| s.batch_evaluation_id() != id)
    );
    let err = client
        .stop_batch_evaluation()
        .batch_evaluation_id(&id)
        .send()
        .await
        .unwrap_err();
    assert!(matches!(
        err.into_service_error(),
        StopBatchEvaluationError::ResourceNotFoundException(_)
    ));
    let err = client
        .delete_batch_evaluation()
        .batch_evaluation_id(&id)
        .send()
        .await
        .unwrap_err();
    assert!(matches!(
        err.into_service_error(),
        DeleteBatchEvaluationError::ResourceNotFoundException(_)
    ));

    let info = emu.jobs().into_iter().find(|j| j.id == id).unwrap();
    assert!(info.is_gone() && info.deleted_at.is_some());
    assert_eq!(
        (info.stop_calls, info.delete_calls),
        (3, 2),
        "every call naming the job"
    );
    emu.shutdown().await.unwrap();
}

#[tokio::test]
async fn instant_stops_and_finished_jobs() {
    let emu = emulator(fast()).await;
    let client = client(&emu).await;
    // A stop that takes no time answers STOPPED at once.
    let instant = start(&client, "instant_stop")
        .tags("emulator:job-duration", "10m")
        .tags("emulator:stop-duration", "0s")
        .send()
        .await
        .unwrap();
    let stop = client
        .stop_batch_evaluation()
        .batch_evaluation_id(instant.batch_evaluation_id())
        .send()
        .await
        .unwrap();
    assert_eq!(*stop.status(), BatchEvaluationStatus::Stopped);
    // Completed jobs cannot be stopped.
    let done = start(&client, "finished").send().await.unwrap();
    wait_for(
        &client,
        done.batch_evaluation_id(),
        BatchEvaluationStatus::Completed,
    )
    .await;
    let err = client
        .stop_batch_evaluation()
        .batch_evaluation_id(done.batch_evaluation_id())
        .send()
        .await
        .unwrap_err();
    assert!(
        err.into_service_error().is_conflict_exception(),
        "stop of a completed job"
    );
    emu.shutdown().await.unwrap();
}

#[tokio::test]
async fn client_token_makes_start_idempotent() {
    let emu = emulator(slow()).await;
    let client = client(&emu).await;
    let first = start(&client, "idem")
        .client_token(token("idem"))
        .send()
        .await
        .unwrap();
    let retry = start(&client, "idem")
        .client_token(token("idem"))
        .send()
        .await
        .unwrap();
    assert_eq!(retry.batch_evaluation_id(), first.batch_evaluation_id());
    assert_eq!(retry.created_at(), first.created_at());

    let err = start(&client, "idem")
        .client_token(token("idem"))
        .description("different")
        .send()
        .await
        .unwrap_err();
    assert_eq!(http_status(&err), Some(400));
    match err.into_service_error() {
        StartBatchEvaluationError::ValidationException(e) => {
            assert_eq!(
                *e.reason(),
                ValidationExceptionReason::IdempotentParameterMismatchException
            );
            assert_eq!(e.field_list()[0].name(), "clientToken");
        }
        other => panic!("expected ValidationException, got {other:?}"),
    }
    // Without a token the SDK generates one, so every call is a new request.
    assert_eq!(emu.jobs().len(), 1);
    let auto = start(&client, "auto_token").send().await.unwrap();
    let info = emu
        .jobs()
        .into_iter()
        .find(|j| j.id == auto.batch_evaluation_id())
        .unwrap();
    assert!(
        info.client_token.is_some_and(|t| t.len() >= 33),
        "SDK fills clientToken"
    );
    emu.shutdown().await.unwrap();
}

#[tokio::test]
async fn names_are_unique_among_live_jobs() {
    let emu = emulator(EmulatorConfig {
        job_duration: Duration::ZERO,
        ..fast()
    })
    .await;
    let client = client(&emu).await;
    let first = start(&client, "taken")
        .client_token(token("a"))
        .send()
        .await
        .unwrap();
    let err = start(&client, "taken")
        .client_token(token("b"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(http_status(&err), Some(409));
    assert!(matches!(
        err.into_service_error(),
        StartBatchEvaluationError::ConflictException(_)
    ));

    client
        .delete_batch_evaluation()
        .batch_evaluation_id(first.batch_evaluation_id())
        .send()
        .await
        .unwrap();
    wait_gone(&client, first.batch_evaluation_id()).await;
    let reused = start(&client, "taken")
        .client_token(token("b"))
        .send()
        .await
        .unwrap();
    assert_ne!(reused.batch_evaluation_id(), first.batch_evaluation_id());
    emu.shutdown().await.unwrap();
}

#[tokio::test]
async fn validation_errors_name_the_field() {
    let emu = emulator(slow()).await;
    let client = client(&emu).await;

    let mut too_many = start(&client, "too_many");
    for i in 0..11 {
        too_many = too_many.evaluators(
            Evaluator::builder()
                .evaluator_id(format!("Builtin.E{i}"))
                .build()
                .unwrap(),
        );
    }
    let err = too_many.send().await.unwrap_err();
    let StartBatchEvaluationError::ValidationException(e) = err.into_service_error() else {
        panic!("expected ValidationException");
    };
    assert_eq!(
        *e.reason(),
        ValidationExceptionReason::FieldValidationFailed
    );
    assert_eq!(e.field_list().len(), 1);
    assert_eq!(e.field_list()[0].name(), "evaluators");
    assert!(
        e.field_list()[0].message().contains("evaluators"),
        "{}",
        e.field_list()[0].message()
    );
    assert!(
        e.message().contains("less than or equal to 10"),
        "{}",
        e.message()
    );

    let two_services = DataSourceConfig::CloudWatchLogs(
        CloudWatchLogsSource::builder()
            .service_names("a")
            .service_names("b")
            .build()
            .unwrap(),
    );
    let err = client
        .start_batch_evaluation()
        .batch_evaluation_name("bad-name")
        .data_source_config(two_services)
        .kms_key_arn("not-an-arn")
        .send()
        .await
        .unwrap_err();
    let StartBatchEvaluationError::ValidationException(e) = err.into_service_error() else {
        panic!("expected ValidationException");
    };
    let names: Vec<&str> = e.field_list().iter().map(|f| f.name()).collect();
    assert_eq!(
        names,
        [
            "batchEvaluationName",
            "dataSourceConfig.cloudWatchLogs.serviceNames",
            "kmsKeyArn"
        ]
    );

    let err = get(&client, "not a valid id").await.unwrap_err();
    let GetBatchEvaluationError::ValidationException(e) = err.into_service_error() else {
        panic!("expected ValidationException");
    };
    assert_eq!(e.field_list()[0].name(), "batchEvaluationId");

    let err = client
        .list_batch_evaluations()
        .max_results(101)
        .send()
        .await
        .unwrap_err();
    let ListBatchEvaluationsError::ValidationException(e) = err.into_service_error() else {
        panic!("expected ValidationException");
    };
    assert_eq!(e.field_list()[0].name(), "maxResults");
    let err = client
        .list_batch_evaluations()
        .next_token("forged")
        .send()
        .await
        .unwrap_err();
    assert!(err.into_service_error().is_validation_exception());

    let err = get(&client, "missing-AbCdE12345").await.unwrap_err();
    assert_eq!(http_status(&err), Some(404));
    assert!(matches!(
        err.into_service_error(),
        GetBatchEvaluationError::ResourceNotFoundException(_)
    ));
    assert_eq!(emu.jobs().len(), 0, "invalid requests create nothing");
    emu.shutdown().await.unwrap();
}

#[tokio::test]
async fn injected_errors_surface_as_typed_errors() {
    let emu = emulator(slow()).await;
    let client = client(&emu).await;
    let existing = start(&client, "target")
        .send()
        .await
        .unwrap()
        .batch_evaluation_id()
        .to_owned();

    type Check = fn(&StartBatchEvaluationError) -> bool;
    let start_cases: [(&str, u16, Check); 6] = [
        (
            "ValidationException",
            400,
            StartBatchEvaluationError::is_validation_exception,
        ),
        (
            "UnauthorizedException",
            401,
            StartBatchEvaluationError::is_unauthorized_exception,
        ),
        (
            "ServiceQuotaExceededException",
            402,
            StartBatchEvaluationError::is_service_quota_exceeded_exception,
        ),
        (
            "AccessDeniedException",
            403,
            StartBatchEvaluationError::is_access_denied_exception,
        ),
        (
            "ThrottlingException",
            429,
            StartBatchEvaluationError::is_throttling_exception,
        ),
        (
            "InternalServerException",
            500,
            StartBatchEvaluationError::is_internal_server_exception,
        ),
    ];
    for (code, status, check) in start_cases {
        emu.set_faults(&script(
            Operation::StartBatchEvaluation,
            &format!("1*error:{code}"),
        ))
        .unwrap();
        let err = start(&client, "never_created").send().await.unwrap_err();
        assert_eq!(http_status(&err), Some(status), "{code}");
        let service = err.into_service_error();
        assert!(check(&service), "{code}: got {service:?}");
        assert!(service.meta().message().is_some_and(|m| !m.is_empty()));
    }
    assert_eq!(
        emu.jobs().len(),
        1,
        "faults before the action create nothing"
    );

    type GetCheck = fn(&GetBatchEvaluationError) -> bool;
    let get_cases: [(&str, GetCheck); 4] = [
        (
            "UnauthorizedException",
            GetBatchEvaluationError::is_unauthorized_exception,
        ),
        (
            "AccessDeniedException",
            GetBatchEvaluationError::is_access_denied_exception,
        ),
        (
            "ThrottlingException",
            GetBatchEvaluationError::is_throttling_exception,
        ),
        (
            "InternalServerException",
            GetBatchEvaluationError::is_internal_server_exception,
        ),
    ];
    for (code, check) in get_cases {
        emu.set_faults(&script(
            Operation::GetBatchEvaluation,
            &format!("1*error:{code}"),
        ))
        .unwrap();
        let err = get(&client, &existing)
            .await
            .unwrap_err()
            .into_service_error();
        assert!(check(&err), "{code}: got {err:?}");
    }

    emu.set_faults(&script(
        Operation::ListBatchEvaluations,
        "1*error:AccessDeniedException",
    ))
    .unwrap();
    let err = client.list_batch_evaluations().send().await.unwrap_err();
    assert!(matches!(
        err.into_service_error(),
        ListBatchEvaluationsError::AccessDeniedException(_)
    ));
    emu.set_faults(&script(
        Operation::StopBatchEvaluation,
        "1*error:ThrottlingException",
    ))
    .unwrap();
    let err = client
        .stop_batch_evaluation()
        .batch_evaluation_id(&existing)
        .send()
        .await
        .unwrap_err();
    assert!(matches!(
        err.into_service_error(),
        StopBatchEvaluationError::ThrottlingException(_)
    ));
    emu.set_faults(&script(
        Operation::DeleteBatchEvaluation,
        "1*error:InternalServerException",
    ))
    .unwrap();
    let err = client
        .delete_batch_evaluation()
        .batch_evaluation_id(&existing)
        .send()
        .await
        .unwrap_err();
    assert!(matches!(
        err.into_service_error(),
        DeleteBatchEvaluationError::InternalServerException(_)
    ));

    // "Always 403 until cleared".
    emu.set_faults(&script(
        Operation::GetBatchEvaluation,
        "error:AccessDeniedException",
    ))
    .unwrap();
    for _ in 0..3 {
        assert!(
            get(&client, &existing)
                .await
                .unwrap_err()
                .into_service_error()
                .is_access_denied_exception()
        );
    }
    emu.clear_faults();
    assert_eq!(
        *get(&client, &existing).await.unwrap().status(),
        BatchEvaluationStatus::Pending
    );
    emu.shutdown().await.unwrap();
}

#[tokio::test]
async fn error_rate_throttles_every_operation() {
    let mut faults = FaultConfig::default();
    faults.entry(Target::All).error_rate = Some("1.0:ThrottlingException".parse().unwrap());
    let emu = emulator(EmulatorConfig { faults, ..slow() }).await;
    let client = client(&emu).await;
    let err = start(&client, "throttled").send().await.unwrap_err();
    assert!(err.into_service_error().is_throttling_exception());
    let err = client.list_batch_evaluations().send().await.unwrap_err();
    assert!(err.into_service_error().is_throttling_exception());
    let err = get(&client, "any-AbCdE12345").await.unwrap_err();
    assert!(err.into_service_error().is_throttling_exception());
    let stats = emu.stats();
    assert_eq!(
        stats.count(Operation::StartBatchEvaluation, "ThrottlingException"),
        1
    );
    assert_eq!(stats.grand_total(), 3);
    emu.shutdown().await.unwrap();
}

#[tokio::test]
async fn sdk_retries_through_scripted_errors() {
    let emu = emulator(slow()).await;
    emu.set_faults(&script(
        Operation::StartBatchEvaluation,
        "1*error:ThrottlingException,1*error:InternalServerException",
    ))
    .unwrap();
    let retrying = RetryConfig::standard()
        .with_max_attempts(3)
        .with_initial_backoff(Duration::from_millis(10));
    let client = client_with(
        &emu.endpoint_url(),
        REGION,
        retrying,
        Duration::from_secs(10),
    )
    .await;
    let started = start(&client, "retried")
        .send()
        .await
        .expect("third attempt succeeds");
    let stats = emu.stats();
    assert_eq!(
        stats.count(Operation::StartBatchEvaluation, "ThrottlingException"),
        1
    );
    assert_eq!(
        stats.count(Operation::StartBatchEvaluation, "InternalServerException"),
        1
    );
    assert_eq!(stats.count(Operation::StartBatchEvaluation, "202"), 1);
    assert_eq!(emu.jobs().len(), 1);
    assert_eq!(emu.jobs()[0].id, started.batch_evaluation_id());
    emu.shutdown().await.unwrap();
}

/// Per-object counters: the SDK's retries are attempts, not operations; a Get by id counts
/// under the client token of the job the Start created.
#[tokio::test]
async fn object_counters_count_operations_not_retries() {
    let emu = emulator(slow()).await;
    emu.set_faults(&script(
        Operation::StartBatchEvaluation,
        "2*error:ThrottlingException",
    ))
    .unwrap();
    let retrying = RetryConfig::standard()
        .with_max_attempts(3)
        .with_initial_backoff(Duration::from_millis(10));
    let client = client_with(
        &emu.endpoint_url(),
        REGION,
        retrying,
        Duration::from_secs(10),
    )
    .await;
    let started = start(&client, "counted")
        .client_token(token("counted"))
        .send()
        .await
        .expect("third attempt succeeds");
    get(&client, started.batch_evaluation_id()).await.unwrap();
    let ops = emu.object_ops();
    let counted = &ops[&token("counted")];
    assert_eq!(counted.count(Operation::StartBatchEvaluation), 1, "{ops:?}");
    assert_eq!(counted.count(Operation::GetBatchEvaluation), 1, "{ops:?}");
    assert_eq!(
        counted.attempts, 4,
        "three Start attempts and one Get: {ops:?}"
    );
    // Two operations; whether they fall within one second depends on the machine's load.
    assert!((1..=2).contains(&counted.peak_per_second), "{ops:?}");
    assert_eq!(ops.len(), 1, "one object: {ops:?}");
    emu.shutdown().await.unwrap();
}

#[tokio::test]
async fn dropped_connections_are_transport_errors_and_retries_stay_idempotent() {
    let emu = emulator(slow()).await;
    let client = client(&emu).await;

    emu.set_faults(&script(Operation::GetBatchEvaluation, "1*drop"))
        .unwrap();
    let err = get(&client, "any-AbCdE12345").await.unwrap_err();
    assert!(
        err.as_service_error().is_none(),
        "no response, so no service error: {err:?}"
    );
    assert!(
        matches!(
            err,
            SdkError::DispatchFailure(_) | SdkError::ResponseError(_)
        ),
        "{err:?}"
    );

    // The job is created, then the connection is cut before the answer.
    emu.set_faults(&script(Operation::StartBatchEvaluation, "1*drop-after"))
        .unwrap();
    let err = start(&client, "lost_answer")
        .client_token(token("lost"))
        .send()
        .await
        .unwrap_err();
    assert!(err.as_service_error().is_none(), "{err:?}");
    let jobs = emu.jobs();
    assert_eq!(
        jobs.len(),
        1,
        "the start happened although the client saw an error"
    );
    let retry = start(&client, "lost_answer")
        .client_token(token("lost"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        retry.batch_evaluation_id(),
        jobs[0].id,
        "the retry finds the same job"
    );
    assert_eq!(emu.jobs().len(), 1);
    assert_eq!(
        emu.stats().count(
            Operation::StartBatchEvaluation,
            agentcore_emulator::OUTCOME_DROPPED
        ),
        1
    );
    emu.shutdown().await.unwrap();
}

#[tokio::test]
async fn held_response_outlives_the_client_but_the_job_exists() {
    let emu = emulator(slow()).await;
    emu.set_faults(&script(Operation::StartBatchEvaluation, "1*hold:3s"))
        .unwrap();
    let impatient = client_with(
        &emu.endpoint_url(),
        REGION,
        RetryConfig::disabled(),
        Duration::from_millis(300),
    )
    .await;
    let err = start(&impatient, "in_flight")
        .client_token(token("held"))
        .send()
        .await
        .unwrap_err();
    assert!(matches!(err, SdkError::TimeoutError(_)), "{err:?}");
    let jobs = emu.jobs();
    assert_eq!(jobs.len(), 1);
    assert_eq!(jobs[0].name, "in_flight");
    let client = client(&emu).await;
    let retry = start(&client, "in_flight")
        .client_token(token("held"))
        .send()
        .await
        .unwrap();
    assert_eq!(retry.batch_evaluation_id(), jobs[0].id);
    emu.shutdown().await.unwrap();
}

#[tokio::test]
async fn added_latency_delays_but_does_not_fail() {
    let mut faults = FaultConfig::default();
    faults
        .entry(Target::Operation(Operation::ListBatchEvaluations))
        .latency = Some(Duration::from_millis(200));
    let emu = emulator(EmulatorConfig { faults, ..slow() }).await;
    let client = client(&emu).await;
    let begun = Instant::now();
    client.list_batch_evaluations().send().await.unwrap();
    assert!(
        begun.elapsed() >= Duration::from_millis(200),
        "latency is a lower bound"
    );
    emu.shutdown().await.unwrap();
}

#[tokio::test]
async fn malformed_responses_never_panic_the_sdk() {
    let emu = emulator(slow()).await;
    let client = client(&emu).await;
    let id = start(&client, "malformed")
        .send()
        .await
        .unwrap()
        .batch_evaluation_id()
        .to_owned();

    // A 200 whose body cannot be read fails the call as an unmodeled error (no error code).
    for kind in ["invalid-json", "epoch-timestamps"] {
        emu.set_faults(&script(
            Operation::GetBatchEvaluation,
            &format!("1*malformed:{kind}"),
        ))
        .unwrap();
        let err = get(&client, &id).await.unwrap_err();
        assert_eq!(http_status(&err), Some(200), "{kind}");
        let err = err.into_service_error();
        assert!(err.meta().code().is_none(), "{kind}: {err:?}");
        assert!(!err.is_resource_not_found_exception() && !err.is_internal_server_exception());
    }

    // An enum value the SDK does not know is kept, not rejected: callers must handle it.
    emu.set_faults(&script(
        Operation::GetBatchEvaluation,
        "1*malformed:unknown-status",
    ))
    .unwrap();
    let out = get(&client, &id).await.unwrap();
    assert_eq!(out.status().as_str(), "ARCHIVED");
    assert!(
        !BatchEvaluationStatus::values().contains(&"ARCHIVED"),
        "not a known value"
    );

    // The SDK fills missing required members with defaults rather than failing the call.
    emu.set_faults(&script(
        Operation::GetBatchEvaluation,
        "1*malformed:missing-required",
    ))
    .unwrap();
    let out = get(&client, &id).await.unwrap();
    assert_eq!(out.batch_evaluation_id(), "");

    emu.set_faults(&script(
        Operation::ListBatchEvaluations,
        "1*malformed:invalid-json",
    ))
    .unwrap();
    assert!(client.list_batch_evaluations().send().await.is_err());
    assert_eq!(
        emu.stats().count(
            Operation::GetBatchEvaluation,
            agentcore_emulator::OUTCOME_MALFORMED
        ),
        4
    );
    emu.shutdown().await.unwrap();
}

#[tokio::test]
async fn paginator_walks_120_jobs() {
    let emu = emulator(slow()).await;
    let client = client(&emu).await;
    let mut created = HashSet::new();
    for i in 0..120 {
        created.insert(
            start(&client, &format!("page_{i:03}"))
                .send()
                .await
                .unwrap()
                .batch_evaluation_id()
                .to_owned(),
        );
    }
    let pages: Vec<_> = client
        .list_batch_evaluations()
        .max_results(25)
        .into_paginator()
        .send()
        .collect::<Result<Vec<_>, _>>()
        .await
        .expect("every page");
    assert_eq!(pages.len(), 5);
    assert!(
        pages[..4]
            .iter()
            .all(|p| p.batch_evaluations().len() == 25 && p.next_token().is_some())
    );
    assert!(pages[4].next_token().is_none(), "no token on the last page");
    let listed: Vec<String> = pages
        .iter()
        .flat_map(|p| {
            p.batch_evaluations()
                .iter()
                .map(|s| s.batch_evaluation_id().to_owned())
        })
        .collect();
    assert_eq!(listed.len(), 120);
    assert_eq!(listed.iter().cloned().collect::<HashSet<_>>(), created);

    let items = client
        .list_batch_evaluations()
        .into_paginator()
        .items()
        .send()
        .collect::<Result<Vec<_>, _>>()
        .await
        .unwrap();
    assert_eq!(items.len(), 120);
    let default_page = client.list_batch_evaluations().send().await.unwrap();
    assert_eq!(
        default_page.batch_evaluations().len(),
        50,
        "default page size"
    );
    emu.shutdown().await.unwrap();
}

#[tokio::test]
async fn jobs_are_regional() {
    let emu = emulator(slow()).await;
    let west = client(&emu).await;
    let east = client_with(
        &emu.endpoint_url(),
        "eu-central-1",
        RetryConfig::disabled(),
        Duration::from_secs(10),
    )
    .await;
    let started = start(&west, "regional").send().await.unwrap();
    assert!(started.batch_evaluation_arn().contains(":us-west-2:"));
    let err = get(&east, started.batch_evaluation_id()).await.unwrap_err();
    assert!(err.into_service_error().is_resource_not_found_exception());
    assert!(
        east.list_batch_evaluations()
            .send()
            .await
            .unwrap()
            .batch_evaluations()
            .is_empty()
    );
    // The same name is free in another region.
    let other = start(&east, "regional").send().await.unwrap();
    assert!(other.batch_evaluation_arn().contains(":eu-central-1:"));
    emu.shutdown().await.unwrap();
}

#[tokio::test]
async fn the_active_job_quota_answers_the_typed_402() {
    let emu = emulator(EmulatorConfig {
        max_active_jobs: Some(2),
        ..slow()
    })
    .await;
    let client = client(&emu).await;
    let first = start(&client, "quota_a")
        .client_token(token("quota-a"))
        .send()
        .await
        .unwrap();
    start(&client, "quota_b").send().await.unwrap();

    let err = start(&client, "quota_c")
        .client_token(token("quota-c"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(http_status(&err), Some(402));
    let service = err.into_service_error();
    assert!(
        service.is_service_quota_exceeded_exception(),
        "got {service:?}"
    );
    assert!(service.meta().message().is_some_and(|m| !m.is_empty()));
    assert_eq!(service.meta().code(), Some("ServiceQuotaExceededException"));

    // An idempotent retry of a job that was started is answered with that job, not 402.
    let retry = start(&client, "quota_a")
        .client_token(token("quota-a"))
        .send()
        .await
        .unwrap();
    assert_eq!(retry.batch_evaluation_id(), first.batch_evaluation_id());
    assert_eq!(emu.jobs().len(), 2, "the refused Start created nothing");

    // A job leaving the active statuses frees a slot; STOPPING still holds it.
    client
        .stop_batch_evaluation()
        .batch_evaluation_id(first.batch_evaluation_id())
        .send()
        .await
        .unwrap();
    let still = start(&client, "quota_c").send().await.unwrap_err();
    assert!(
        still
            .into_service_error()
            .is_service_quota_exceeded_exception()
    );
    emu.set_max_active_jobs(Some(3));
    start(&client, "quota_c")
        .client_token(token("quota-c"))
        .send()
        .await
        .unwrap();

    let quota = emu.quota();
    assert_eq!(quota.max_active_jobs, Some(3));
    let usage = quota.usage("123456789012", REGION);
    assert_eq!((usage.active, usage.peak_active), (3, 3));
    assert_eq!(emu.peak_active_jobs("123456789012", REGION), 3);
    assert_eq!(
        emu.stats().count(
            Operation::StartBatchEvaluation,
            "ServiceQuotaExceededException"
        ),
        2
    );
    emu.reset();
    assert_eq!(
        emu.quota().max_active_jobs,
        Some(2),
        "reset restores the configured quota"
    );
    assert_eq!(emu.peak_active_jobs("123456789012", REGION), 0);
    emu.shutdown().await.unwrap();
}

const TENANT_A: &str = "arn:aws:iam::111111111111:role/tenant-a";
const TENANT_B: &str = "arn:aws:iam::222222222222:role/tenant-b";

/// Base credentials, no retries, a 10 s operation timeout.
async fn base_config(emu: &RunningEmulator) -> SdkConfig {
    sdk_config(
        &emu.endpoint_url(),
        REGION,
        RetryConfig::disabled(),
        Duration::from_secs(10),
    )
    .await
}

/// A client acting through `role`, assumed with aws-config's own provider from the base
/// credentials, STS reached by the same endpoint override.
async fn role_client(emu: &RunningEmulator, role: &str, session: &str) -> Client {
    let base = base_config(emu).await;
    let provider = AssumeRoleProvider::builder(role)
        .session_name(session)
        .configure(&base)
        .build()
        .await;
    let config = aws_sdk_bedrockagentcore::config::Builder::from(&base)
        .credentials_provider(provider)
        .build();
    Client::from_conf(config)
}

#[tokio::test]
async fn assumed_roles_act_in_their_own_accounts() {
    let emu = emulator(EmulatorConfig {
        max_active_jobs: Some(1),
        ..slow()
    })
    .await;
    let a = role_client(&emu, TENANT_A, "ns-tenant-a").await;
    let b = role_client(&emu, TENANT_B, "ns-tenant-b").await;
    let base = client(&emu).await;

    let theirs = start(&a, "shared_name")
        .client_token(token("shared"))
        .send()
        .await
        .unwrap();
    assert!(
        theirs
            .batch_evaluation_arn()
            .contains(":111111111111:batch-evaluation/"),
        "{}",
        theirs.batch_evaluation_arn()
    );
    let id = theirs.batch_evaluation_id();

    // Another account sees nothing of it, by any operation.
    for other in [&b, &base] {
        let err = get(other, id).await.unwrap_err();
        assert_eq!(http_status(&err), Some(404));
        assert!(err.into_service_error().is_resource_not_found_exception());
        let err = other
            .stop_batch_evaluation()
            .batch_evaluation_id(id)
            .send()
            .await
            .unwrap_err();
        assert!(err.into_service_error().is_resource_not_found_exception());
        let err = other
            .delete_batch_evaluation()
            .batch_evaluation_id(id)
            .send()
            .await
            .unwrap_err();
        assert!(err.into_service_error().is_resource_not_found_exception());
        let listed = other.list_batch_evaluations().send().await.unwrap();
        assert!(listed.batch_evaluations().is_empty());
    }
    assert_eq!(get(&a, id).await.unwrap().batch_evaluation_id(), id);

    // Names, client tokens and the quota are per account too.
    let mine = start(&b, "shared_name")
        .client_token(token("shared"))
        .send()
        .await
        .unwrap();
    assert_ne!(mine.batch_evaluation_id(), id);
    assert!(mine.batch_evaluation_arn().contains(":222222222222:"));
    let err = start(&a, "second").send().await.unwrap_err();
    assert!(
        err.into_service_error()
            .is_service_quota_exceeded_exception()
    );

    let in_a = emu.jobs_in_account("111111111111");
    assert_eq!(in_a.len(), 1);
    assert_eq!(
        in_a[0].started_by.as_deref(),
        Some("arn:aws:sts::111111111111:assumed-role/tenant-a/ns-tenant-a")
    );
    assert_eq!(emu.jobs_in_account("222222222222").len(), 1);
    assert!(emu.jobs_in_account("123456789012").is_empty());
    let sessions = emu.sts_sessions();
    let of = |role: &str| {
        sessions
            .iter()
            .filter(|s| s.role_arn == role)
            .collect::<Vec<_>>()
    };
    let a_sessions = of(TENANT_A);
    assert!(!a_sessions.is_empty());
    assert!(a_sessions.iter().all(|s| s.account == "111111111111"
        && s.role_session_name == "ns-tenant-a"
        && s.caller_arn == "arn:aws:iam::123456789012:root"));
    let a_starts: u64 = a_sessions
        .iter()
        .map(|s| {
            s.calls
                .get(&Operation::StartBatchEvaluation)
                .copied()
                .unwrap_or(0)
        })
        .sum();
    assert_eq!(a_starts, 2);
    emu.shutdown().await.unwrap();
}

#[tokio::test]
async fn expired_credentials_are_refused_and_the_provider_refreshes() {
    let emu = emulator(EmulatorConfig {
        sts: StsSettings {
            max_session_lifetime: Some(Duration::from_secs(1)),
            assumable_roles: None,
        },
        ..slow()
    })
    .await;
    let base = base_config(&emu).await;
    let provider = AssumeRoleProvider::builder(TENANT_A)
        .session_name("refresh")
        .configure(&base)
        .build()
        .await;
    let frozen = {
        use aws_credential_types::provider::ProvideCredentials;
        provider.provide_credentials().await.unwrap()
    };
    let expiry = frozen.expiry().expect("assumed credentials expire");
    let lifetime = expiry
        .duration_since(std::time::SystemTime::now())
        .unwrap_or_default();
    assert!(lifetime <= Duration::from_secs(1), "capped: {lifetime:?}");

    // The same credentials, never refreshed: refused once they expire.
    let stale = Client::from_conf(
        aws_sdk_bedrockagentcore::config::Builder::from(&base)
            .credentials_provider(frozen)
            .build(),
    );
    let deadline = Instant::now() + WAIT;
    let err = loop {
        match stale.list_batch_evaluations().send().await {
            Ok(_) => {
                assert!(Instant::now() < deadline, "credentials never expired");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(err) => break err,
        }
    };
    assert_eq!(http_status(&err), Some(403));
    let service = err.into_service_error();
    assert_eq!(
        service.meta().code(),
        Some("ExpiredTokenException"),
        "{service:?}"
    );
    assert!(
        service
            .meta()
            .message()
            .is_some_and(|m| m.contains("expired"))
    );

    // The provider behind a client refreshes: every call gets live credentials.
    let live = Client::from_conf(
        aws_sdk_bedrockagentcore::config::Builder::from(&base)
            .credentials_provider(provider)
            .build(),
    );
    let started = start(&live, "refreshed").send().await.unwrap();
    assert!(started.batch_evaluation_arn().contains(":111111111111:"));
    let issued_before = emu.sts_sessions().len();
    get(&live, started.batch_evaluation_id()).await.unwrap();
    let sessions = emu.sts_sessions();
    assert!(sessions.len() > issued_before, "refreshed after expiry");
    assert!(sessions.iter().all(|s| s.account == "111111111111"));
    assert!(sessions.iter().any(|s| s.expired_calls > 0));
    emu.shutdown().await.unwrap();
}

#[tokio::test]
async fn sts_errors_and_caller_identity_are_the_real_query_shapes() {
    let emu = emulator(EmulatorConfig {
        sts: StsSettings {
            max_session_lifetime: None,
            assumable_roles: Some([TENANT_A.to_owned()].into()),
        },
        ..slow()
    })
    .await;
    let base = base_config(&emu).await;
    let sts = aws_sdk_sts::Client::new(&base);

    let err = sts
        .assume_role()
        .role_arn(TENANT_A)
        .role_session_name("short")
        .duration_seconds(60)
        .send()
        .await
        .unwrap_err();
    assert_eq!(http_status(&err), Some(400));
    let service = err.into_service_error();
    assert_eq!(service.meta().code(), Some("ValidationError"));
    assert!(
        service
            .meta()
            .message()
            .is_some_and(|m| m.contains("durationSeconds"))
    );

    let err = sts
        .assume_role()
        .role_arn(TENANT_B)
        .role_session_name("denied")
        .send()
        .await
        .unwrap_err();
    assert_eq!(http_status(&err), Some(403));
    assert_eq!(err.into_service_error().meta().code(), Some("AccessDenied"));

    let assumed = sts
        .assume_role()
        .role_arn(TENANT_A)
        .role_session_name("granted")
        .duration_seconds(900)
        .send()
        .await
        .unwrap();
    let user = assumed.assumed_role_user().unwrap();
    assert_eq!(
        user.arn(),
        "arn:aws:sts::111111111111:assumed-role/tenant-a/granted"
    );
    assert!(user.assumed_role_id().ends_with(":granted"));
    let creds = assumed.credentials().unwrap();
    assert!(creds.access_key_id().starts_with("ASIA"));
    assert!(!creds.secret_access_key().is_empty() && !creds.session_token().is_empty());

    let me = sts.get_caller_identity().send().await.unwrap();
    assert_eq!(me.account(), Some("123456789012"));
    let as_role = aws_sdk_sts::Client::from_conf(
        aws_sdk_sts::config::Builder::from(&base)
            .credentials_provider(Credentials::new(
                creds.access_key_id(),
                creds.secret_access_key(),
                Some(creds.session_token().to_owned()),
                None,
                "assumed",
            ))
            .build(),
    );
    let me = as_role.get_caller_identity().send().await.unwrap();
    assert_eq!(me.account(), Some("111111111111"));
    assert_eq!(me.arn(), Some(user.arn()));
    // A session token the emulator never issued is refused, not taken for base credentials.
    let forged = Client::from_conf(
        aws_sdk_bedrockagentcore::config::Builder::from(&base)
            .credentials_provider(Credentials::new(
                "ASIAFORGED",
                "x",
                Some("forged".into()),
                None,
                "forged",
            ))
            .build(),
    );
    let err = forged.list_batch_evaluations().send().await.unwrap_err();
    assert_eq!(http_status(&err), Some(403));
    assert_eq!(
        err.into_service_error().meta().code(),
        Some("UnrecognizedClientException")
    );
    emu.shutdown().await.unwrap();
}
