//! The `BatchEvaluation` custom resource (`evals.agentcore.dev/v1alpha1`).
//!
//! The spec mirrors the `StartBatchEvaluation` request of the Bedrock AgentCore service model
//! (bedrock-agentcore 2024-02-28) plus operator policy. Every validation the service model
//! declares (patterns, lengths, item limits, enums) is repeated here as OpenAPI schema or CEL, so
//! `kubectl apply` rejects a bad object with the field named instead of the operator finding out
//! at `StartBatchEvaluation` time. Doc comments are the `kubectl explain` text.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

/// Finalizer that guarantees the remote job is cleaned up before the object goes away.
pub const FINALIZER: &str = "evals.agentcore.dev/cleanup";
/// Escape hatch: `"true"` releases the finalizer without remote cleanup (the job is left behind).
pub const FORCE_RELEASE_ANNOTATION: &str = "evals.agentcore.dev/force-release";

/// Desired state of an Amazon Bedrock AgentCore batch evaluation job. Fields that define the
/// remote job are immutable once the object exists; `deletionPolicy` and `stop` stay mutable.
// Each printcolumn repeats `type_ = ...`; clippy reads the derive's helper attributes as duplicates.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[kube(
    group = "evals.agentcore.dev",
    version = "v1alpha1",
    kind = "BatchEvaluation",
    plural = "batchevaluations",
    doc = "An Amazon Bedrock AgentCore batch evaluation, run and cleaned up by agentcore-operator. Deleting the object stops and deletes the remote job first (unless spec.deletionPolicy is Retain).",
    namespaced,
    status = "BatchEvaluationStatus",
    shortname = "beval",
    shortname = "bevals",
    category = "agentcore",
    printcolumn(name = "Status", type_ = "string", json_path = ".status.remoteStatus"),
    printcolumn(name = "Sessions", type_ = "string", json_path = ".status.sessions"),
    printcolumn(name = "Score", type_ = "number", json_path = ".status.averageScore"),
    printcolumn(
        name = "Passed",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Passed\")].status"
    ),
    printcolumn(name = "Id", type_ = "string", json_path = ".status.batchEvaluationId"),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    ),
    printcolumn(
        name = "Reason",
        type_ = "string",
        priority = 1,
        json_path = ".status.conditions[?(@.type==\"Ready\")].reason"
    )
)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = immutable_when_set("batchEvaluationName"))]
#[x_kube(validation = immutable_when_set("description"))]
#[x_kube(validation = immutable_when_set("evaluationMetadata"))]
#[x_kube(validation = immutable_when_set("output"))]
#[x_kube(validation = immutable_when_set("kmsKeyArn"))]
#[x_kube(validation = immutable_when_set("region"))]
#[x_kube(validation = immutable_when_set("adoptBatchEvaluationId"))]
#[x_kube(validation = immutable_when_set("evaluators"))]
#[x_kube(validation = immutable_when_set("insights"))]
#[x_kube(validation = immutable_when_set("tags"))]
#[x_kube(validation = kube::core::Rule::new("!has(self.passCriteria) || !has(self.passCriteria.evaluators) || !has(self.evaluators) || self.passCriteria.evaluators.all(c, self.evaluators.exists(e, e.evaluatorId == c.evaluatorId))")
    .message("every passCriteria.evaluators[].evaluatorId must be one of spec.evaluators")
    .field_path(".passCriteria.evaluators"))]
#[x_kube(validation = kube::core::Rule::new("!has(oldSelf.stop) || !oldSelf.stop || (has(self.stop) && self.stop)")
    .message("stop cannot be set back to false: a stopped batch evaluation cannot resume")
    .field_path(".stop"))]
pub struct BatchEvaluationSpec {
    /// Name of the remote batch evaluation (`[a-zA-Z][a-zA-Z0-9_]{0,47}`), unique per AWS account
    /// and region. Default: derived from namespace, name and part of the object's UID, so objects
    /// in several clusters sharing an account never collide. Immutable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[a-zA-Z][a-zA-Z0-9_]{0,47}$"))]
    pub batch_evaluation_name: Option<String>,

    /// Human-readable description of the job (at most 200 characters). Immutable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 200))]
    pub description: Option<String>,

    /// Evaluators to run on every session (at most 10). Immutable.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 10))]
    pub evaluators: Vec<EvaluatorRef>,

    /// Insights to compute over the sessions (at most 10). Immutable.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 10))]
    pub insights: Vec<InsightRef>,

    /// Where the sessions to evaluate come from: exactly one of `cloudWatchLogs` or
    /// `onlineEvaluationConfig`. Immutable.
    #[x_kube(validation = kube::core::Rule::new("self == oldSelf").message("dataSource is immutable"))]
    pub data_source: DataSource,

    /// Per-session metadata, such as inline ground truth to grade against. Immutable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evaluation_metadata: Option<EvaluationMetadata>,

    /// Where the service writes per-session results. Immutable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<OutputConfig>,

    /// ARN of a customer-managed KMS key that encrypts the job's data. Immutable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(min = 1, max = 2048),
        regex(
            pattern = r"^arn:aws(|-cn|-us-gov):kms:[a-zA-Z0-9-]*:[0-9]{12}:key/[a-zA-Z0-9-]{36}$"
        )
    )]
    pub kms_key_arn: Option<String>,

    /// Tags for the remote job (at most 50; keys 1-128 and values 0-256 characters of
    /// `[a-zA-Z0-9 ._:/=+@-]`). Immutable.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend(
        "maxProperties" = 50,
        "additionalProperties" = {"type": "string", "maxLength": 256, "pattern": "^[a-zA-Z0-9\\s._:/=+@-]*$"}
    ))]
    #[x_kube(validation = kube::core::Rule::new(
        "self.all(k, k.size() >= 1 && k.size() <= 128 && k.matches('^[a-zA-Z0-9\\\\s._:/=+@-]*$'))"
    ).message("tag keys must be 1-128 characters of [a-zA-Z0-9 ._:/=+@-]"))]
    pub tags: BTreeMap<String, String>,

    /// AWS region of the job. Default: the operator's `--aws-region`. The region used at start is
    /// recorded in status and used for every later call. Immutable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[a-z]{2}(-[a-z]+)+-[0-9]{1,2}$"))]
    pub region: Option<String>,

    /// What happens to the remote job when this object is deleted: `Delete` (default) stops it
    /// if running and deletes it; `Retain` leaves it in AWS. Mutable.
    #[serde(default)]
    pub deletion_policy: DeletionPolicy,

    /// `true` stops a running job and keeps this object with the results so far (the declarative
    /// `agentcore stop batch-evaluation`). One-way: it cannot be set back to `false`.
    #[serde(default)]
    pub stop: bool,

    /// Order in the start queue, where objects wait while the account's AWS quota on active batch
    /// evaluations (or the operator's `--max-active-jobs`) is reached: higher starts first,
    /// equal priorities start in creation order. Default 0. Mutable; it matters only until the
    /// job starts.
    #[serde(default, skip_serializing_if = "is_zero")]
    #[schemars(range(min = -1000, max = 1000))]
    pub priority: i32,

    /// What the results must reach for the evaluation to pass: the `Passed` condition (a gate
    /// for `kubectl wait --for=condition=Passed`, Argo CD and Flux). Checked, without any AWS
    /// call, when the job ends and whenever the criteria change. Mutable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pass_criteria: Option<PassCriteria>,

    /// Manage an existing batch evaluation with this id instead of starting a new one. Immutable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[a-zA-Z][a-zA-Z0-9-_]{0,99}-[a-zA-Z0-9]{10}$"))]
    pub adopt_batch_evaluation_id: Option<String>,
}

#[allow(clippy::trivially_copy_pass_by_ref)] // serde's skip_serializing_if passes a reference
const fn is_zero(value: &i32) -> bool {
    *value == 0
}

/// A CEL transition rule that keeps an optional field from changing, appearing or disappearing.
/// A field-level `self == oldSelf` only fires when the field is present on both sides, so the
/// spec-level form is what makes adding or removing the field fail too.
fn immutable_when_set(field: &str) -> kube::core::Rule {
    kube::core::Rule::new(format!(
        "has(self.{field}) == has(oldSelf.{field}) && (!has(self.{field}) || self.{field} == oldSelf.{field})"
    ))
    .message(kube::core::Message::Message(format!("{field} is immutable")))
    .field_path(format!(".{field}"))
}

/// Reference to an evaluator.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct EvaluatorRef {
    /// Evaluator id: a built-in (`Builtin.Helpfulness`), a third-party (`ThirdParty.Vendor.Name`)
    /// or a custom evaluator id (`name-XXXXXXXXXX`).
    #[schemars(
        length(min = 1, max = 111),
        regex(
            pattern = r"^(Builtin\.[a-zA-Z0-9._-]+|ThirdParty\.[a-zA-Z0-9_-]+\.[a-zA-Z0-9_-]+|[a-zA-Z][a-zA-Z0-9-_]{0,99}-[a-zA-Z0-9]{10})$"
        )
    )]
    pub evaluator_id: String,
}

/// What a finished evaluation must reach to pass. Every criterion must hold.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = kube::core::Rule::new("!has(self.evaluators) || self.evaluators.all(a, self.evaluators.exists_one(b, b.evaluatorId == a.evaluatorId))")
    .message("passCriteria.evaluators lists an evaluatorId more than once")
    .field_path(".evaluators"))]
pub struct PassCriteria {
    /// A minimum average score per evaluator (at most 10). An evaluator that scores several
    /// dimensions must reach the minimum in each.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 10))]
    pub evaluators: Vec<EvaluatorCriterion>,

    /// The largest share of sessions whose evaluation may fail, from 0 to 1 (`0.1`: at most
    /// one session in ten). Unset: failed sessions do not fail the gate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0.0, max = 1.0))]
    pub max_failed_sessions_ratio: Option<f64>,

    /// `true`: an evaluator listed here that reported no score fails the gate. Default `false`:
    /// its criterion is not checked (a job with no evaluated session has no scores).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub require_all_evaluators: bool,
}

/// The minimum average score of one evaluator.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct EvaluatorCriterion {
    /// The evaluator, as in `spec.evaluators`.
    #[schemars(length(min = 1, max = 111))]
    pub evaluator_id: String,
    /// The lowest average score that passes (inclusive).
    pub min_average_score: f64,
}

/// Reference to an insight.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct InsightRef {
    /// Insight id: a built-in (`Builtin.X`) or a custom insight id (`name-XXXXXXXXXX`).
    #[schemars(regex(
        pattern = r"^(Builtin\.[a-zA-Z0-9._-]+|[a-zA-Z][a-zA-Z0-9-_]{0,99}-[a-zA-Z0-9]{10})$"
    ))]
    pub insight_id: String,
}

/// The sessions to evaluate. Exactly one member is set.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = kube::core::Rule::new("has(self.cloudWatchLogs) != has(self.onlineEvaluationConfig)")
    .message("exactly one of dataSource.cloudWatchLogs or dataSource.onlineEvaluationConfig must be set"))]
pub struct DataSource {
    /// Agent traces in CloudWatch Logs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cloud_watch_logs: Option<CloudWatchLogsSource>,
    /// The sessions an online evaluation configuration already sampled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub online_evaluation_config: Option<OnlineEvaluationConfigSource>,
}

/// Agent traces stored in CloudWatch Logs.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct CloudWatchLogsSource {
    /// The agent's service name as it appears in its traces (exactly one).
    #[schemars(length(min = 1, max = 1))]
    pub service_names: Vec<String>,
    /// Log groups to read (at most 10).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 10), inner(regex(pattern = r"^[.\-_/#A-Za-z0-9]+$")))]
    pub log_group_names: Vec<String>,
    /// Log group name prefixes to read (1-5 when set; each 1-512 characters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(min = 1, max = 5),
        inner(length(min = 1, max = 512), regex(pattern = r"^[.\-_/#A-Za-z0-9]+$"))
    )]
    pub log_group_name_prefixes: Option<Vec<String>>,
    /// Which sessions to pick from the logs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<CloudWatchFilter>,
}

/// Narrows the sessions read from CloudWatch Logs.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct CloudWatchFilter {
    /// Only these session ids (at most 500).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 500))]
    pub session_ids: Vec<String>,
    /// Only sessions within this time range.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_range: Option<TimeRange>,
    /// Only these traces of these sessions (1-500 sessions when set).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 500))]
    pub session_trace_ids: Option<Vec<SessionTraceIds>>,
}

/// A session and some of its traces.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct SessionTraceIds {
    /// The session id.
    pub session_id: String,
    /// Trace ids of the session (1-100, each 32 characters).
    #[schemars(length(min = 1, max = 100), inner(length(min = 32, max = 32)))]
    pub trace_ids: Vec<String>,
}

/// A time range; either end may be open.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = kube::core::Rule::new("!has(self.startTime) || !has(self.endTime) || timestamp(self.startTime) <= timestamp(self.endTime)")
    .message("startTime must not be after endTime"))]
pub struct TimeRange {
    /// Start of the range, RFC 3339 (for example `2026-01-02T03:04:05Z`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("format" = "date-time"))]
    pub start_time: Option<String>,
    /// End of the range, RFC 3339.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("format" = "date-time"))]
    pub end_time: Option<String>,
}

/// Sessions sampled by an online evaluation configuration.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct OnlineEvaluationConfigSource {
    /// ARN of the online evaluation configuration.
    #[schemars(regex(
        pattern = r"^arn:aws[a-zA-Z-]*:bedrock-agentcore:[a-z0-9-]+:[0-9]{12}:online-evaluation-config/[a-zA-Z][a-zA-Z0-9-_]{0,99}-[a-zA-Z0-9]{10}$"
    ))]
    pub arn: String,
    /// Only sessions within this time range.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_range: Option<TimeRange>,
}

/// Metadata about the sessions, such as ground truth.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct EvaluationMetadata {
    /// One entry per session (at most 500).
    #[schemars(length(max = 500))]
    pub session_metadata: Vec<SessionMetadata>,
}

/// Metadata about one session.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct SessionMetadata {
    /// The session this entry describes.
    pub session_id: String,
    /// Test scenario the session belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test_scenario_id: Option<String>,
    /// What the session should have done.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ground_truth: Option<GroundTruth>,
    /// Free-form key/value metadata.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub metadata: BTreeMap<String, String>,
}

/// Ground truth for a session.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct GroundTruth {
    /// Ground truth written inline in this object.
    pub inline: InlineGroundTruth,
}

/// Inline ground truth.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct InlineGroundTruth {
    /// Statements the session must satisfy (1-100 when set, each 1-100000 characters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 100), inner(length(min = 1, max = 100_000)))]
    pub assertions: Option<Vec<String>>,
    /// The tools the agent is expected to call, in order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_trajectory: Option<ExpectedTrajectory>,
    /// Expected turns of the conversation (at least 1 when set).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1))]
    pub turns: Option<Vec<GroundTruthTurn>>,
}

/// The expected sequence of tool calls.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExpectedTrajectory {
    /// Tool names in order (at most 1000, each 1-500 characters).
    #[schemars(length(max = 1000), inner(length(min = 1, max = 500)))]
    pub tool_names: Vec<String>,
}

/// One expected turn.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct GroundTruthTurn {
    /// The user's prompt (at most 4000 characters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 4000))]
    pub prompt: Option<String>,
    /// The expected agent response (1-100000 characters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 100_000))]
    pub expected_response: Option<String>,
}

/// Where results are written.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct OutputConfig {
    /// Write results to CloudWatch.
    pub cloud_watch: CloudWatchOutput,
}

/// CloudWatch destination of the per-session results.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct CloudWatchOutput {
    /// Log group for the results (empty lets the service choose).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^$|^[.\-_/#A-Za-z0-9]+$"))]
    pub log_group_name: Option<String>,
    /// Log stream for the results.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[^:*]*$"))]
    pub log_stream_name: Option<String>,
    /// CloudWatch metrics namespace for the scores (1-255 characters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 255), regex(pattern = r"^[a-zA-Z0-9._#/:-]+$"))]
    pub metrics_namespace: Option<String>,
    /// `DEDICATED_LOG_GROUP` or `SOURCE_LOG_GROUP`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result_destination: Option<ResultDestination>,
}

/// Where the service writes results.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, schemars::JsonSchema)]
pub enum ResultDestination {
    /// A log group of its own.
    #[serde(rename = "DEDICATED_LOG_GROUP")]
    DedicatedLogGroup,
    /// The log group the traces came from.
    #[serde(rename = "SOURCE_LOG_GROUP")]
    SourceLogGroup,
}

/// What deleting the object does to the remote job.
#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default, schemars::JsonSchema,
)]
pub enum DeletionPolicy {
    /// Stop the job if it runs, delete it, then release the object.
    #[default]
    Delete,
    /// Release the object and leave the job in AWS.
    Retain,
}

/// Observed state, written only by the operator through the status subresource.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct BatchEvaluationStatus {
    /// The `metadata.generation` this status describes; -1 before the operator has seen the object.
    #[serde(default = "unobserved_generation")]
    #[schemars(extend("default" = -1))]
    pub observed_generation: i64,
    /// Id of the remote batch evaluation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch_evaluation_id: Option<String>,
    /// ARN of the remote batch evaluation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch_evaluation_arn: Option<String>,
    /// Name of the remote batch evaluation (the spec's, or the derived default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch_evaluation_name: Option<String>,
    /// AWS region the job was started in; every later call goes there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// IAM role the operator assumed for this object when it first called AWS (the namespace's
    /// role at that time); every later call, cleanup included, uses it, whatever the mapping says
    /// since. Absent: the operator's own identity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role_arn: Option<String>,
    /// The service's status: PENDING, IN_PROGRESS, COMPLETED, COMPLETED_WITH_ERRORS, FAILED,
    /// STOPPING, STOPPED or DELETING.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote_status: Option<String>,
    /// Sessions done out of total, for `kubectl get` (for example `7/10`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sessions: Option<String>,
    /// Mean of the evaluators' average scores, for `kubectl get`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub average_score: Option<f64>,
    /// When the job was created.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<String>,
    /// When the job reached a terminal status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completed_at: Option<String>,
    /// When the operator last observed a change of the remote job and wrote it here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_synced_at: Option<String>,
    /// Results reported by the service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub results: Option<EvaluationResults>,
    /// The service's error details for a failed job.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_details: Option<String>,
    /// During deletion: the cleanup step in progress.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cleanup_step: Option<CleanupStep>,
    /// `Ready`, `Reconciling` and `Stalled`, with kstatus meaning.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
}

fn unobserved_generation() -> i64 {
    -1
}

/// Session counts and evaluator summaries.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct EvaluationResults {
    /// Sessions in the job.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_sessions: Option<i32>,
    /// Sessions evaluated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sessions_completed: Option<i32>,
    /// Sessions being evaluated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sessions_in_progress: Option<i32>,
    /// Sessions whose evaluation failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sessions_failed: Option<i32>,
    /// Sessions skipped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sessions_ignored: Option<i32>,
    /// One summary per evaluator (and evaluation dimension).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub evaluators: Vec<EvaluatorResult>,
}

/// Summary of one evaluator over all sessions.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct EvaluatorResult {
    /// The evaluator.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evaluator_id: Option<String>,
    /// The evaluation dimension, for evaluators that score several.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dimension: Option<String>,
    /// Average score over the evaluated sessions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub average_score: Option<f64>,
    /// Sessions evaluated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_evaluated: Option<i32>,
    /// Sessions whose evaluation failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_failed: Option<i32>,
}

/// The step of the deletion cleanup in progress.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, schemars::JsonSchema)]
pub enum CleanupStep {
    /// `StopBatchEvaluation` was called on a running job.
    Stopping,
    /// Waiting for the job to reach a terminal status.
    AwaitingTerminal,
    /// `DeleteBatchEvaluation` was called. Not recorded by itself: the `DeleteRequested` event
    /// marks the call, and a job still there at the next poll shows `AwaitingRemoval`.
    Deleting,
    /// Waiting for the job to disappear.
    AwaitingRemoval,
}

impl CleanupStep {
    /// The name as written in status and events.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Stopping => "Stopping",
            Self::AwaitingTerminal => "AwaitingTerminal",
            Self::Deleting => "Deleting",
            Self::AwaitingRemoval => "AwaitingRemoval",
        }
    }
}
