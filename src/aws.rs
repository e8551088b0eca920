//! The AgentCore batch-evaluation API, through `aws-sdk-bedrockagentcore` unchanged. Each call
//! is timed and counted, and every failure is classified into a [`FailureKind`].

use std::{
    collections::HashMap,
    sync::Arc,
    time::{Duration, Instant},
};

use aws_config::{
    BehaviorVersion, Region, stalled_stream_protection::StalledStreamProtectionConfig,
    timeout::TimeoutConfig,
};
use aws_sdk_bedrockagentcore::config::http::HttpResponse;
use aws_sdk_bedrockagentcore::{
    Client,
    error::{ProvideErrorMetadata, SdkError},
    types as sdk,
};
use aws_smithy_types::{DateTime, date_time::Format};

use crate::{
    api::{self, BatchEvaluationSpec},
    error::Error,
    metrics::Metrics,
    remote::{Call, FailureKind, RemoteJob, RemoteStatus},
    tenancy,
};

/// Settings for building service clients.
#[derive(Clone, Debug)]
pub struct AwsSettings {
    /// Region for objects that do not name one.
    pub default_region: Option<String>,
    /// Endpoint override (the emulator); `None` for the real service.
    pub endpoint_url: Option<String>,
    /// STS endpoint override for AssumeRole (the emulator); `None` for the real service.
    pub sts_endpoint_url: Option<String>,
    pub operation_timeout: Duration,
    pub attempt_timeout: Duration,
}

/// Where, and as whom, a call acts: the object's region and identity, and the namespace the STS
/// session is named after.
#[derive(Clone, Copy, Debug)]
pub struct Scope<'a> {
    pub region: &'a str,
    /// `None`: the operator's own identity; else the role to assume.
    pub role_arn: Option<&'a str>,
    pub namespace: &'a str,
}

/// One SDK client per region and identity, sharing HTTP connections. A client for a role holds
/// an STS AssumeRole credentials provider: the SDK's identity cache keeps its credentials and
/// refreshes them before they expire.
pub struct AgentCore {
    base: aws_config::SdkConfig,
    settings: AwsSettings,
    clients: tokio::sync::Mutex<HashMap<ClientKey, Client>>,
    metrics: Arc<Metrics>,
}

/// (region, role ARN, STS session name)
type ClientKey = (String, Option<String>, String);

/// A Start request built from the spec.
pub struct StartRequest<'a> {
    pub name: &'a str,
    pub client_token: &'a str,
    pub spec: &'a BatchEvaluationSpec,
}

type AwsResult<T> = Result<T, Error>;

impl AgentCore {
    /// Loads the default credential chain (IRSA, EKS Pod Identity, environment, profile).
    pub async fn new(settings: AwsSettings, metrics: Arc<Metrics>) -> Self {
        let timeouts = TimeoutConfig::builder()
            .operation_timeout(settings.operation_timeout)
            .operation_attempt_timeout(settings.attempt_timeout)
            .build();
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .timeout_config(timeouts)
            // Every call is bounded by the attempt and operation timeouts above, and the
            // answers are small JSON documents: the throughput watchdog the SDK wraps around
            // each body (a timer per poll) only costs CPU here (1.6 % of the operator's in the
            // benchmark's profile).
            .stalled_stream_protection(StalledStreamProtectionConfig::disabled());
        if let Some(region) = &settings.default_region {
            loader = loader.region(Region::new(region.clone()));
        }
        let base = loader.load().await;
        Self {
            base,
            settings,
            clients: tokio::sync::Mutex::new(HashMap::new()),
            metrics,
        }
    }

    /// The region an object without `spec.region` uses.
    #[must_use]
    pub fn default_region(&self) -> Option<String> {
        self.base.region().map(ToString::to_string)
    }

    /// The client for `scope`, built on first use. The lock is held while a role's provider is
    /// built (no network call happens then: credentials are fetched on the first request).
    async fn client(&self, scope: &Scope<'_>) -> Client {
        let session = scope
            .role_arn
            .map_or_else(String::new, |_| tenancy::session_name(scope.namespace));
        let key = (
            scope.region.to_owned(),
            scope.role_arn.map(ToOwned::to_owned),
            session,
        );
        let mut clients = self.clients.lock().await;
        if let Some(client) = clients.get(&key) {
            return client.clone();
        }
        let region = Region::new(scope.region.to_owned());
        let mut config =
            aws_sdk_bedrockagentcore::config::Builder::from(&self.base).region(region.clone());
        if let Some(url) = &self.settings.endpoint_url {
            config = config.endpoint_url(url.clone());
        }
        if let Some(role_arn) = scope.role_arn {
            let mut sts = self.base.to_builder();
            if let Some(url) = &self.settings.sts_endpoint_url {
                sts.set_endpoint_url(Some(url.clone()));
            }
            // Boxed, like the calls in `timed`: this future is 13 KB and its size would be
            // carried by every call's future, though it runs once per role and region.
            let provider = Box::pin(
                aws_config::sts::AssumeRoleProvider::builder(role_arn)
                    .session_name(&key.2)
                    .region(region)
                    .configure(&sts.build())
                    .build(),
            )
            .await;
            config = config.credentials_provider(provider);
        }
        let client = Client::from_conf(config.build());
        clients.insert(key, client.clone());
        client
    }

    /// `StartBatchEvaluation`.
    ///
    /// # Errors
    /// [`Error::Aws`] when the call fails, [`Error::InvalidSpec`] when the spec cannot be sent.
    pub async fn start(
        &self,
        scope: &Scope<'_>,
        request: StartRequest<'_>,
    ) -> AwsResult<RemoteJob> {
        let spec = request.spec;
        let mut call = self
            .client(scope)
            .await
            .start_batch_evaluation()
            .batch_evaluation_name(request.name)
            .client_token(request.client_token)
            .data_source_config(data_source(&spec.data_source)?)
            .set_description(spec.description.clone())
            .set_kms_key_arn(spec.kms_key_arn.clone());
        for evaluator in &spec.evaluators {
            call = call.evaluators(
                sdk::Evaluator::builder()
                    .evaluator_id(&evaluator.evaluator_id)
                    .build()
                    .map_err(build_error)?,
            );
        }
        for insight in &spec.insights {
            call = call.insights(
                sdk::Insight::builder()
                    .insight_id(&insight.insight_id)
                    .build()
                    .map_err(build_error)?,
            );
        }
        for (key, value) in &spec.tags {
            call = call.tags(key, value);
        }
        if let Some(metadata) = &spec.evaluation_metadata {
            call = call.evaluation_metadata(evaluation_metadata(metadata)?);
        }
        if let Some(output) = &spec.output {
            call = call.output_config(output_config(output));
        }
        let out = self.timed(Call::Start, call.send()).await?;
        require_id(Call::Start, out.batch_evaluation_id(), None)?;
        Ok(RemoteJob {
            id: out.batch_evaluation_id().to_owned(),
            arn: out.batch_evaluation_arn().to_owned(),
            name: out.batch_evaluation_name().to_owned(),
            status: RemoteStatus::parse(out.status().as_str()),
            created_at: Some(timestamp(out.created_at())),
            updated_at: None,
            results: None,
            error_details: None,
        })
    }

    /// `GetBatchEvaluation`; `Ok(None)` when the job does not exist.
    ///
    /// # Errors
    /// [`Error::Aws`] when the call fails for another reason.
    pub async fn get(&self, scope: &Scope<'_>, id: &str) -> AwsResult<Option<RemoteJob>> {
        let call = self
            .client(scope)
            .await
            .get_batch_evaluation()
            .batch_evaluation_id(id);
        let Some(out) = gone_is_none(self.timed(Call::Get, call.send()).await)? else {
            return Ok(None);
        };
        require_id(Call::Get, out.batch_evaluation_id(), Some(id))?;
        Ok(Some(RemoteJob {
            id: out.batch_evaluation_id().to_owned(),
            arn: out.batch_evaluation_arn().to_owned(),
            name: out.batch_evaluation_name().to_owned(),
            status: RemoteStatus::parse(out.status().as_str()),
            created_at: Some(timestamp(out.created_at())),
            updated_at: out.updated_at().map(timestamp),
            results: out.evaluation_results().map(results),
            error_details: out.error_details().first().cloned(),
        }))
    }

    /// Finds the job with this name (`ListBatchEvaluations`, following every page).
    ///
    /// # Errors
    /// [`Error::Aws`] when a page cannot be read.
    pub async fn find_by_name(
        &self,
        scope: &Scope<'_>,
        name: &str,
    ) -> AwsResult<Option<RemoteJob>> {
        let client = self.client(scope).await;
        let mut next_token: Option<String> = None;
        loop {
            let call = client
                .list_batch_evaluations()
                .max_results(100)
                .set_next_token(next_token.take());
            let page = self.timed(Call::List, call.send()).await?;
            if let Some(found) = page
                .batch_evaluations()
                .iter()
                .find(|s| s.batch_evaluation_name() == name)
            {
                return Ok(Some(RemoteJob {
                    id: found.batch_evaluation_id().to_owned(),
                    arn: found.batch_evaluation_arn().to_owned(),
                    name: found.batch_evaluation_name().to_owned(),
                    status: RemoteStatus::parse(found.status().as_str()),
                    created_at: Some(timestamp(found.created_at())),
                    updated_at: found.updated_at().map(timestamp),
                    results: found.evaluation_results().map(results),
                    error_details: found.error_details().first().cloned(),
                }));
            }
            match page.next_token() {
                Some(token) if !token.is_empty() => next_token = Some(token.to_owned()),
                _ => return Ok(None),
            }
        }
    }

    /// `StopBatchEvaluation`; `Ok(None)` when the job does not exist.
    ///
    /// # Errors
    /// [`Error::Aws`] when the call fails for another reason (409 included).
    pub async fn stop(&self, scope: &Scope<'_>, id: &str) -> AwsResult<Option<RemoteStatus>> {
        let call = self
            .client(scope)
            .await
            .stop_batch_evaluation()
            .batch_evaluation_id(id);
        let out = gone_is_none(self.timed(Call::Stop, call.send()).await)?;
        Ok(out.map(|out| RemoteStatus::parse(out.status().as_str())))
    }

    /// `DeleteBatchEvaluation`; `Ok(None)` when the job does not exist.
    ///
    /// # Errors
    /// [`Error::Aws`] when the call fails for another reason (409 included).
    pub async fn delete(&self, scope: &Scope<'_>, id: &str) -> AwsResult<Option<RemoteStatus>> {
        let call = self
            .client(scope)
            .await
            .delete_batch_evaluation()
            .batch_evaluation_id(id);
        let out = gone_is_none(self.timed(Call::Delete, call.send()).await)?;
        Ok(out.map(|out| RemoteStatus::parse(out.status().as_str())))
    }

    /// Awaits one AWS call, counting it by operation, outcome and duration, and classifies its
    /// error.
    ///
    /// The call's future is boxed: the SDK's are 6 to 13 KB, and unboxed they would be carried
    /// in line by every future above them, up to the reconcile's, which kube-runtime keeps one
    /// of per reconcile in flight (heaptrack: its table of them was 2 MB at 16 in flight).
    fn timed<'a, T, E>(
        &'a self,
        call: Call,
        fut: impl Future<Output = Result<T, SdkError<E, HttpResponse>>> + Send + 'a,
    ) -> impl Future<Output = AwsResult<T>> + Send + 'a
    where
        T: Send + 'a,
        E: ProvideErrorMetadata + std::error::Error + Send + 'static,
    {
        let fut = Box::pin(fut);
        async move {
            let started = Instant::now();
            let result = fut.await;
            let outcome = match &result {
                Ok(_) => "success".to_owned(),
                Err(e) => outcome_label(e),
            };
            self.metrics
                .observe_aws_call(operation_name(call), &outcome, started.elapsed());
            result.map_err(|e| classify(call, &e))
        }
    }
}

/// The SDK fills required members missing from an answer with defaults (an empty id, status
/// "no value was set"); recording those would lose the job, so such an answer is malformed.
fn require_id(call: Call, got: &str, asked: Option<&str>) -> AwsResult<()> {
    if got.is_empty() || asked.is_some_and(|asked| asked != got) {
        return Err(Error::Aws {
            call,
            kind: FailureKind::MalformedResponse,
            message: format!("the service's response names batch evaluation {got:?}"),
        });
    }
    Ok(())
}

/// A 404 from a call on one job means the job does not exist: `Ok(None)`.
fn gone_is_none<T>(result: AwsResult<T>) -> AwsResult<Option<T>> {
    match result {
        Ok(out) => Ok(Some(out)),
        Err(Error::Aws {
            kind: FailureKind::NotFound,
            ..
        }) => Ok(None),
        Err(e) => Err(e),
    }
}

/// The service's operation name, as in metrics and the emulator's counters.
#[must_use]
pub const fn operation_name(call: Call) -> &'static str {
    match call {
        Call::Start => "StartBatchEvaluation",
        Call::Get => "GetBatchEvaluation",
        Call::List => "ListBatchEvaluations",
        Call::Stop => "StopBatchEvaluation",
        Call::Delete => "DeleteBatchEvaluation",
    }
}

fn outcome_label<E: ProvideErrorMetadata>(e: &SdkError<E, HttpResponse>) -> String {
    match e {
        SdkError::TimeoutError(_) => "timeout".into(),
        SdkError::DispatchFailure(d) if d.is_timeout() => "timeout".into(),
        SdkError::DispatchFailure(_) => "dispatch".into(),
        SdkError::ResponseError(_) => "malformed".into(),
        SdkError::ServiceError(s) if s.raw().status().is_success() => "malformed".into(),
        SdkError::ServiceError(s) => s.err().code().unwrap_or("unknown").to_owned(),
        _ => "construction".into(),
    }
}

/// Maps an SDK failure to the lifecycle's vocabulary.
fn classify<E: ProvideErrorMetadata + std::error::Error + 'static>(
    call: Call,
    e: &SdkError<E, HttpResponse>,
) -> Error {
    let (kind, message) = match e {
        SdkError::TimeoutError(_) => (FailureKind::Timeout, "the call timed out".to_owned()),
        SdkError::DispatchFailure(d) if d.is_timeout() => {
            (FailureKind::Timeout, "the connection timed out".to_owned())
        }
        SdkError::DispatchFailure(_) => (
            FailureKind::Dispatch,
            "the request could not be sent or the connection dropped".to_owned(),
        ),
        SdkError::ResponseError(_) => (
            FailureKind::MalformedResponse,
            "the service's response could not be read".to_owned(),
        ),
        // The SDK reports a 2xx body it cannot parse as an unhandled service error.
        SdkError::ServiceError(service) if service.raw().status().is_success() => (
            FailureKind::MalformedResponse,
            "the service's response could not be read".to_owned(),
        ),
        SdkError::ServiceError(service) => {
            let err = service.err();
            let status = service.raw().status().as_u16();
            let code = err.code().unwrap_or_default();
            let text = err.message().unwrap_or_default();
            let kind = match (code, status) {
                ("ThrottlingException", _) | (_, 429) => FailureKind::Throttled,
                ("AccessDeniedException", _) | (_, 403) => FailureKind::AccessDenied,
                ("UnauthorizedException", _) | (_, 401) => FailureKind::Unauthorized,
                ("ServiceQuotaExceededException", _) | (_, 402) => FailureKind::QuotaExceeded,
                ("ValidationException", _) | (_, 400) => FailureKind::Validation,
                ("ConflictException", _) | (_, 409) => FailureKind::Conflict,
                ("ResourceNotFoundException", _) | (_, 404) => FailureKind::NotFound,
                (_, 500..=599) => FailureKind::ServerError,
                _ => FailureKind::Unknown,
            };
            (kind, format!("{code}: {text}"))
        }
        _ => (
            FailureKind::Unknown,
            "the request could not be built".to_owned(),
        ),
    };
    Error::Aws {
        call,
        kind,
        message,
    }
}

fn build_error(e: aws_smithy_types::error::operation::BuildError) -> Error {
    Error::InvalidSpec(e.to_string())
}

fn timestamp(t: &DateTime) -> String {
    t.fmt(Format::DateTime)
        .unwrap_or_else(|_| t.secs().to_string())
}

fn parse_time(field: &str, value: &str) -> AwsResult<DateTime> {
    DateTime::from_str(value, Format::DateTime)
        .map_err(|e| Error::InvalidSpec(format!("{field}: {value:?} is not RFC 3339: {e}")))
}

fn time_range(field: &str, range: &api::TimeRange) -> AwsResult<sdk::SessionFilterConfig> {
    let start = range
        .start_time
        .as_deref()
        .map(|v| parse_time(&format!("{field}.startTime"), v))
        .transpose()?;
    let end = range
        .end_time
        .as_deref()
        .map(|v| parse_time(&format!("{field}.endTime"), v))
        .transpose()?;
    Ok(sdk::SessionFilterConfig::builder()
        .set_start_time(start)
        .set_end_time(end)
        .build())
}

fn data_source(source: &api::DataSource) -> AwsResult<sdk::DataSourceConfig> {
    if let Some(cw) = &source.cloud_watch_logs {
        let mut filter = None;
        if let Some(f) = &cw.filter {
            let mut b = sdk::CloudWatchFilterConfig::builder()
                .set_session_ids((!f.session_ids.is_empty()).then(|| f.session_ids.clone()));
            if let Some(range) = &f.time_range {
                b = b.time_range(time_range(
                    "spec.dataSource.cloudWatchLogs.filter.timeRange",
                    range,
                )?);
            }
            for s in f.session_trace_ids.iter().flatten() {
                b = b.session_trace_ids(
                    sdk::SessionTraceIds::builder()
                        .session_id(&s.session_id)
                        .set_trace_ids(Some(s.trace_ids.clone()))
                        .build()
                        .map_err(build_error)?,
                );
            }
            filter = Some(b.build());
        }
        let source = sdk::CloudWatchLogsSource::builder()
            .set_service_names(Some(cw.service_names.clone()))
            .set_log_group_names(
                (!cw.log_group_names.is_empty()).then(|| cw.log_group_names.clone()),
            )
            .set_log_group_name_prefixes(cw.log_group_name_prefixes.clone())
            .set_filter_config(filter)
            .build()
            .map_err(build_error)?;
        return Ok(sdk::DataSourceConfig::CloudWatchLogs(source));
    }
    if let Some(online) = &source.online_evaluation_config {
        let range = online
            .time_range
            .as_ref()
            .map(|r| time_range("spec.dataSource.onlineEvaluationConfig.timeRange", r))
            .transpose()?;
        let source = sdk::OnlineEvaluationConfigSource::builder()
            .online_evaluation_config_arn(&online.arn)
            .set_time_range(range)
            .build()
            .map_err(build_error)?;
        return Ok(sdk::DataSourceConfig::OnlineEvaluationConfigSource(source));
    }
    Err(Error::InvalidSpec(
        "spec.dataSource: exactly one of cloudWatchLogs or onlineEvaluationConfig must be set"
            .into(),
    ))
}

fn evaluation_metadata(metadata: &api::EvaluationMetadata) -> AwsResult<sdk::EvaluationMetadata> {
    let mut sessions = Vec::with_capacity(metadata.session_metadata.len());
    for session in &metadata.session_metadata {
        let ground_truth = session.ground_truth.as_ref().map(|g| {
            let inline = &g.inline;
            let mut b = sdk::InlineGroundTruth::builder().set_assertions(
                inline.assertions.as_ref().map(|a| {
                    a.iter()
                        .cloned()
                        .map(sdk::EvaluationContent::Text)
                        .collect()
                }),
            );
            if let Some(t) = &inline.expected_trajectory {
                b = b.expected_trajectory(
                    sdk::EvaluationExpectedTrajectory::builder()
                        .set_tool_names(Some(t.tool_names.clone()))
                        .build(),
                );
            }
            for turn in inline.turns.iter().flatten() {
                b = b.turns(
                    sdk::GroundTruthTurn::builder()
                        .set_input(turn.prompt.clone().map(sdk::GroundTruthTurnInput::Prompt))
                        .set_expected_response(
                            turn.expected_response
                                .clone()
                                .map(sdk::EvaluationContent::Text),
                        )
                        .build(),
                );
            }
            sdk::GroundTruthSource::Inline(b.build())
        });
        sessions.push(
            sdk::SessionMetadataShape::builder()
                .session_id(&session.session_id)
                .set_test_scenario_id(session.test_scenario_id.clone())
                .set_ground_truth(ground_truth)
                .set_metadata((!session.metadata.is_empty()).then(|| {
                    session
                        .metadata
                        .iter()
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect()
                }))
                .build()
                .map_err(build_error)?,
        );
    }
    Ok(sdk::EvaluationMetadata::SessionMetadata(sessions))
}

fn output_config(output: &api::OutputConfig) -> sdk::OutputConfig {
    let cw = &output.cloud_watch;
    sdk::OutputConfig::CloudWatchConfig(
        sdk::CloudWatchOutputConfig::builder()
            .set_log_group_name(cw.log_group_name.clone())
            .set_log_stream_name(cw.log_stream_name.clone())
            .set_metrics_namespace(cw.metrics_namespace.clone())
            .set_result_destination(cw.result_destination.map(|d| match d {
                api::ResultDestination::DedicatedLogGroup => {
                    sdk::ResultDestination::DedicatedLogGroup
                }
                api::ResultDestination::SourceLogGroup => sdk::ResultDestination::SourceLogGroup,
            }))
            .build(),
    )
}

fn results(r: &sdk::EvaluationJobResults) -> api::EvaluationResults {
    api::EvaluationResults {
        total_sessions: r.total_number_of_sessions(),
        sessions_completed: r.number_of_sessions_completed(),
        sessions_in_progress: r.number_of_sessions_in_progress(),
        sessions_failed: r.number_of_sessions_failed(),
        sessions_ignored: r.number_of_sessions_ignored(),
        evaluators: r
            .evaluator_summaries()
            .iter()
            .map(|s| api::EvaluatorResult {
                evaluator_id: s.evaluator_id().map(ToOwned::to_owned),
                dimension: s.evaluation_dimension_name().map(ToOwned::to_owned),
                average_score: s
                    .statistics()
                    .and_then(sdk::EvaluatorStatistics::average_score),
                total_evaluated: s.total_evaluated(),
                total_failed: s.total_failed(),
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_bedrockagentcore::operation::get_batch_evaluation::GetBatchEvaluationError;
    use aws_smithy_types::{body::SdkBody, error::ErrorMetadata};

    fn service_error(
        status: u16,
        code: Option<&str>,
    ) -> SdkError<GetBatchEvaluationError, HttpResponse> {
        let mut meta = ErrorMetadata::builder();
        if let Some(code) = code {
            meta = meta.code(code);
        }
        let raw = HttpResponse::new(status.try_into().expect("a status code"), SdkBody::empty());
        SdkError::service_error(GetBatchEvaluationError::generic(meta.build()), raw)
    }

    fn kind(e: &Error) -> Option<FailureKind> {
        match e {
            Error::Aws { kind, .. } => Some(*kind),
            _ => None,
        }
    }

    #[test]
    fn unreadable_success_answers_are_malformed() {
        // What the SDK makes of a 200 whose body it cannot parse.
        let e = service_error(200, None);
        assert_eq!(
            kind(&classify(Call::Get, &e)),
            Some(FailureKind::MalformedResponse)
        );
        assert_eq!(outcome_label(&e), "malformed");
        let throttled = service_error(429, Some("ThrottlingException"));
        assert_eq!(
            kind(&classify(Call::Get, &throttled)),
            Some(FailureKind::Throttled)
        );
        assert_eq!(outcome_label(&throttled), "ThrottlingException");
    }

    #[test]
    fn answers_without_the_asked_id_are_malformed() {
        assert!(require_id(Call::Get, "job-0123456789", Some("job-0123456789")).is_ok());
        assert!(require_id(Call::Start, "job-0123456789", None).is_ok());
        for (got, asked) in [
            ("", Some("job-0123456789")),
            ("other-0123456789", Some("job-0123456789")),
            ("", None),
        ] {
            assert!(matches!(
                require_id(Call::Get, got, asked),
                Err(Error::Aws {
                    kind: FailureKind::MalformedResponse,
                    ..
                })
            ));
        }
    }
}
