//! The `BatchEvaluationSchedule` custom resource (`evals.agentcore.dev/v1alpha1`): the CronJob of
//! batch evaluations. Each slot of `spec.schedule` becomes one child `BatchEvaluation` (a *run*)
//! built from `spec.template`, evaluating the `window` that ends at the slot. Doc comments are
//! the `kubectl explain` text.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

use crate::api::BatchEvaluationSpec;

/// A new value of this annotation on a schedule starts one extra run at once (exactly once per
/// value, whatever `suspend` and `concurrencyPolicy` say). Any value works; a timestamp is handy:
/// `kubectl annotate bevalsched NAME evals.agentcore.dev/run-now="$(date +%s)" --overwrite`.
pub const RUN_NOW_ANNOTATION: &str = "evals.agentcore.dev/run-now";
/// Label on every run: the name of the schedule that made it.
pub const SCHEDULE_LABEL: &str = "evals.agentcore.dev/schedule";
/// Label on every run: the slot it evaluates, in Unix seconds.
pub const SLOT_LABEL: &str = "evals.agentcore.dev/scheduled-at";
/// Label on runs started by the run-now annotation: `"true"`.
pub const RUN_NOW_LABEL: &str = "evals.agentcore.dev/run-now";
/// Annotation on every run: the slot it evaluates, RFC 3339.
pub const SCHEDULED_TIME_ANNOTATION: &str = "evals.agentcore.dev/scheduled-time";
/// The longest schedule name: run names append `-` and ten characters and must stay within 63
/// (they are also label values).
pub const MAX_NAME_LEN: usize = 52;

/// Desired state of a schedule of batch evaluations: when to run (`schedule`, `timeZone`), what to
/// run (`template`), and how runs relate to each other (`concurrencyPolicy`, history limits).
// Each printcolumn repeats `type_ = ...`; clippy reads the derive's helper attributes as duplicates.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "evals.agentcore.dev",
    version = "v1alpha1",
    kind = "BatchEvaluationSchedule",
    plural = "batchevaluationschedules",
    doc = "A schedule of Amazon Bedrock AgentCore batch evaluations (the CronJob of evaluations): every slot of spec.schedule creates one BatchEvaluation run from spec.template, which evaluates the window that ends at the slot. Deleting the schedule deletes its runs (and their remote jobs).",
    namespaced,
    status = "BatchEvaluationScheduleStatus",
    shortname = "bevalsched",
    shortname = "bevalscheds",
    category = "agentcore",
    validation = kube::core::Rule::new("self.metadata.name.size() <= 52").message("metadata.name must be at most 52 characters: run names append -<unix time of the slot>"),
    printcolumn(name = "Schedule", type_ = "string", json_path = ".spec.schedule"),
    printcolumn(name = "Timezone", type_ = "string", priority = 1, json_path = ".spec.timeZone"),
    printcolumn(name = "Suspend", type_ = "boolean", json_path = ".spec.suspend"),
    printcolumn(name = "Active", type_ = "integer", json_path = ".status.activeCount"),
    printcolumn(name = "Last Schedule", type_ = "date", json_path = ".status.lastScheduleTime"),
    printcolumn(name = "Last Result", type_ = "string", json_path = ".status.lastRun.remoteStatus"),
    printcolumn(name = "Passed", type_ = "string", json_path = ".status.lastRun.passed"),
    printcolumn(name = "Last Score", type_ = "number", priority = 1, json_path = ".status.lastRun.averageScore"),
    printcolumn(name = "Next", type_ = "date", priority = 1, json_path = ".status.nextScheduleTime"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[serde(rename_all = "camelCase")]
pub struct BatchEvaluationScheduleSpec {
    /// When runs start: a cron expression with five fields (minute hour day-of-month month
    /// day-of-week) or six (a leading seconds field), or a nickname such as `@daily`, read in
    /// `timeZone`. Over a daylight-saving change, a fixed time that does not exist runs right
    /// after the gap, and one that exists twice runs once.
    #[schemars(
        length(min = 1, max = 128),
        regex(pattern = r"^(@[a-zA-Z]+|\S+(\s+\S+){4,5})$")
    )]
    pub schedule: String,

    /// IANA time zone `schedule` is read in (for example `Europe/Paris`). Default `UTC`.
    #[serde(default = "default_time_zone")]
    #[schemars(
        length(min = 1, max = 64),
        regex(pattern = r"^[A-Za-z][A-Za-z0-9_+\-/]*$")
    )]
    pub time_zone: String,

    /// `true` starts no run for the slots that come while it is set (the run-now annotation still
    /// works). When set back to `false`, at most the latest missed slot runs, as after downtime.
    #[serde(default)]
    pub suspend: bool,

    /// A slot whose run cannot start within this many seconds (the operator was down, the
    /// schedule suspended) is skipped. Default: no deadline; after downtime only the latest
    /// missed slot runs either way.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub starting_deadline_seconds: Option<i64>,

    /// What happens when a slot comes while an earlier run is still active: `Forbid` (default)
    /// skips the slot; `Replace` deletes the active run (its finalizer stops and deletes the
    /// remote job) and starts the new one; `Allow` starts it anyway.
    #[serde(default)]
    pub concurrency_policy: ConcurrencyPolicy,

    /// Finished successful runs to keep (older ones are deleted). Default 3.
    #[serde(default = "default_successful_limit")]
    #[schemars(range(min = 0, max = 100))]
    pub successful_runs_history_limit: i32,

    /// Finished failed runs to keep: remote status FAILED or STOPPED, `Stalled=True`, or
    /// `Passed=False` (pass criteria missed). Default 1.
    #[serde(default = "default_failed_limit")]
    #[schemars(range(min = 0, max = 100))]
    pub failed_runs_history_limit: i32,

    /// The BatchEvaluation each run is made from.
    pub template: RunTemplate,
}

fn default_time_zone() -> String {
    "UTC".to_owned()
}

const fn default_successful_limit() -> i32 {
    3
}

const fn default_failed_limit() -> i32 {
    1
}

/// What to do with a slot while an earlier run is active.
#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default, schemars::JsonSchema,
)]
pub enum ConcurrencyPolicy {
    /// Skip the slot (with an event) while a run is active.
    #[default]
    Forbid,
    /// Delete the active run, then start the new one.
    Replace,
    /// Start the new run regardless.
    Allow,
}

impl ConcurrencyPolicy {
    /// The name as written in the spec.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Forbid => "Forbid",
            Self::Replace => "Replace",
            Self::Allow => "Allow",
        }
    }
}

/// The run each slot creates. Its data source's time range is set by the schedule.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = kube::core::Rule::new("!has(self.spec.batchEvaluationName)")
    .message("template.spec.batchEvaluationName must not be set: each run derives its own remote name")
    .field_path(".spec.batchEvaluationName"))]
#[x_kube(validation = kube::core::Rule::new("!has(self.spec.adoptBatchEvaluationId)")
    .message("template.spec.adoptBatchEvaluationId must not be set: each run starts its own job")
    .field_path(".spec.adoptBatchEvaluationId"))]
pub struct RunTemplate {
    /// Labels of each run (the schedule adds `evals.agentcore.dev/schedule` and
    /// `evals.agentcore.dev/scheduled-at`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,

    /// Annotations of each run (the schedule adds `evals.agentcore.dev/scheduled-time`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,

    /// How far back each run looks: it evaluates the sessions of [slot − window, slot], written
    /// into the time range of the template's data source (`cloudWatchLogs.filter.timeRange` or
    /// `onlineEvaluationConfig.timeRange`). A duration such as `24h`, `90m` or `7d`.
    #[schemars(length(min = 2, max = 32), regex(pattern = r"^([0-9]+(s|m|h|d))+$"))]
    pub window: String,

    /// The BatchEvaluation spec of each run. `batchEvaluationName` and `adoptBatchEvaluationId`
    /// must be left out; the data source's time range is overwritten per run.
    pub spec: BatchEvaluationSpec,
}

/// Observed state, written only by the operator through the status subresource.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct BatchEvaluationScheduleStatus {
    /// The `metadata.generation` this status describes; -1 before the operator has seen the object.
    #[serde(default = "unobserved_generation")]
    #[schemars(extend("default" = -1))]
    pub observed_generation: i64,
    /// The latest slot handled (run, skipped by `Forbid`, or missed), RFC 3339.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_schedule_time: Option<String>,
    /// The next slot, RFC 3339; absent while suspended or invalid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_schedule_time: Option<String>,
    /// Runs not finished yet.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub active: Vec<String>,
    /// Number of active runs, for `kubectl get`.
    #[serde(default)]
    pub active_count: i32,
    /// The most recent run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_run: Option<LastRun>,
    /// Slot of the latest run that finished successfully, RFC 3339.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_successful_time: Option<String>,
    /// The last value of the `evals.agentcore.dev/run-now` annotation that was acted on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_run_now_value: Option<String>,
    /// `Ready` (the schedule is valid and followed), `Reconciling`, `Stalled` (invalid
    /// schedule, time zone or window), with kstatus meaning.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
}

fn unobserved_generation() -> i64 {
    -1
}

/// The most recent run and how it went.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct LastRun {
    /// The run's BatchEvaluation.
    pub name: String,
    /// The run's remote status (absent before its job started).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote_status: Option<String>,
    /// The run's mean evaluator score.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub average_score: Option<f64>,
    /// The run's `Passed` condition (`True`, `False`, `Unknown`); absent without pass criteria.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub passed: Option<String>,
}
