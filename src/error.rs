//! The library's one error type. Every variant has a stable metric label and condition reason.

use crate::remote::{Call, FailureKind};

/// Errors of a reconcile that the lifecycle does not absorb as an observation.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A Kubernetes API call failed (finalizer patch, status write, fresh read).
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    /// The object cannot be worked on (no UID, no namespace); a bug or a hand-made object.
    #[error("invalid object: {0}")]
    InvalidObject(String),
    /// The spec cannot be turned into a service request (for example an unparsable timestamp
    /// that slipped past admission).
    #[error("spec cannot be sent to the service: {0}")]
    InvalidSpec(String),
    /// An AWS call failed.
    #[error("{call:?}: {kind:?}: {message}")]
    Aws {
        call: Call,
        kind: FailureKind,
        message: String,
    },
}

impl Error {
    /// Stable label for metrics and the condition reason.
    #[must_use]
    pub fn metric_label(&self) -> &'static str {
        match self {
            Self::Kube(_) => "KubernetesApiError",
            Self::InvalidObject(_) => "InvalidObject",
            Self::InvalidSpec(_) => "InvalidSpec",
            Self::Aws { kind, .. } => kind.as_str(),
        }
    }
}
