//! What the operator knows of a remote job and of a failed AWS call: plain data shared by the
//! AWS client (which produces it) and the lifecycle decisions and status (which read it). No I/O.

use std::fmt;

use crate::api::EvaluationResults;

/// What the operator keeps of a remote job.
#[derive(Clone, Debug, PartialEq)]
pub struct RemoteJob {
    pub id: String,
    pub arn: String,
    pub name: String,
    pub status: RemoteStatus,
    pub created_at: Option<String>,
    pub updated_at: Option<String>,
    pub results: Option<EvaluationResults>,
    pub error_details: Option<String>,
}

/// The service's `BatchEvaluationStatus`, plus values this operator does not know yet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RemoteStatus {
    Pending,
    InProgress,
    Completed,
    CompletedWithErrors,
    Failed,
    Stopping,
    Stopped,
    Deleting,
    /// A value added to the service after this operator was built. Treated as "not settled":
    /// polled, never acted on.
    Unknown(String),
}

impl RemoteStatus {
    /// Parses the service's wire value.
    #[must_use]
    pub fn parse(value: &str) -> Self {
        match value {
            "PENDING" => Self::Pending,
            "IN_PROGRESS" => Self::InProgress,
            "COMPLETED" => Self::Completed,
            "COMPLETED_WITH_ERRORS" => Self::CompletedWithErrors,
            "FAILED" => Self::Failed,
            "STOPPING" => Self::Stopping,
            "STOPPED" => Self::Stopped,
            "DELETING" => Self::Deleting,
            other => Self::Unknown(other.to_owned()),
        }
    }

    /// The service's wire value.
    #[must_use]
    pub fn as_str(&self) -> &str {
        match self {
            Self::Pending => "PENDING",
            Self::InProgress => "IN_PROGRESS",
            Self::Completed => "COMPLETED",
            Self::CompletedWithErrors => "COMPLETED_WITH_ERRORS",
            Self::Failed => "FAILED",
            Self::Stopping => "STOPPING",
            Self::Stopped => "STOPPED",
            Self::Deleting => "DELETING",
            Self::Unknown(other) => other,
        }
    }

    /// PENDING or IN_PROGRESS: the job can still be stopped.
    #[must_use]
    pub const fn is_running(&self) -> bool {
        matches!(self, Self::Pending | Self::InProgress)
    }

    /// PENDING, IN_PROGRESS or STOPPING: the job counts against the account's quota of active
    /// batch evaluations. An unknown status counts too: the queue must not overfill on a guess.
    #[must_use]
    pub const fn holds_quota(&self) -> bool {
        matches!(
            self,
            Self::Pending | Self::InProgress | Self::Stopping | Self::Unknown(_)
        )
    }

    /// The four statuses from which a job can be deleted and never moves on its own.
    #[must_use]
    pub const fn is_terminal(&self) -> bool {
        matches!(
            self,
            Self::Completed | Self::CompletedWithErrors | Self::Failed | Self::Stopped
        )
    }
}

impl RemoteStatus {
    /// The status as an event reason: `IN_PROGRESS` → `InProgress` (reasons are CamelCase).
    #[must_use]
    pub fn event_reason(&self) -> String {
        self.as_str()
            .split('_')
            .map(|word| {
                let mut chars = word.chars();
                chars.next().map_or_else(String::new, |first| {
                    first.to_ascii_uppercase().to_string() + &chars.as_str().to_ascii_lowercase()
                })
            })
            .collect()
    }
}

impl fmt::Display for RemoteStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How an AWS call failed, as far as the lifecycle cares.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FailureKind {
    /// 429.
    Throttled,
    /// 5xx.
    ServerError,
    /// The operation or attempt timeout elapsed.
    Timeout,
    /// The request could not be sent or the connection dropped.
    Dispatch,
    /// The response could not be understood.
    MalformedResponse,
    /// 403.
    AccessDenied,
    /// 401.
    Unauthorized,
    /// 402.
    QuotaExceeded,
    /// 400: the service rejected the request.
    Validation,
    /// 409: the job is not in the state the call needs, or the name is taken.
    Conflict,
    /// 404 where the job was expected to exist. The AWS client turns the expected 404s (Get,
    /// Stop, Delete) into "gone" before the lifecycle sees them.
    NotFound,
    /// Anything else.
    Unknown,
}

impl FailureKind {
    /// Every kind, for reading a recorded reason back.
    pub const ALL: [Self; 12] = [
        Self::Throttled,
        Self::ServerError,
        Self::Timeout,
        Self::Dispatch,
        Self::MalformedResponse,
        Self::AccessDenied,
        Self::Unauthorized,
        Self::QuotaExceeded,
        Self::Validation,
        Self::Conflict,
        Self::NotFound,
        Self::Unknown,
    ];

    /// CamelCase name used as condition reason, event reason and metric label.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Throttled => "Throttled",
            Self::ServerError => "ServiceError",
            Self::Timeout => "Timeout",
            Self::Dispatch => "ConnectionError",
            Self::MalformedResponse => "MalformedResponse",
            Self::AccessDenied => "AccessDenied",
            Self::Unauthorized => "Unauthorized",
            Self::QuotaExceeded => "QuotaExceeded",
            Self::Validation => "InvalidSpec",
            Self::Conflict => "Conflict",
            Self::NotFound => "NotFound",
            Self::Unknown => "UnknownError",
        }
    }

    /// Failures that need a person (credentials, permissions): retried slowly.
    #[must_use]
    pub const fn needs_intervention(self) -> bool {
        matches!(self, Self::AccessDenied | Self::Unauthorized)
    }
}

/// The AWS call an observation or failure came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Call {
    Start,
    Get,
    List,
    Stop,
    Delete,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_event_reasons_are_camel_case() {
        let reason = |s: &str| RemoteStatus::parse(s).event_reason();
        assert_eq!(reason("IN_PROGRESS"), "InProgress");
        assert_eq!(reason("COMPLETED_WITH_ERRORS"), "CompletedWithErrors");
        assert_eq!(reason("ARCHIVED"), "Archived");
    }
}
