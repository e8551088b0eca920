//! Every reason a `BatchEvaluation` shows: the reasons of its conditions (Ready, Reconciling,
//! Stalled), of its events, and the `reason` label of the reconcile metric. Each string is written
//! once, here (or, for the vocabularies shared with other parts, in the one place named below), so
//! the way from a reason seen in `kubectl describe` to the code that sets it is one search.

use crate::{
    api::CleanupStep,
    batch_evaluation::lifecycle::{Release, StallReason},
    remote::FailureKind,
};

/// A reason, typed. Decisions are made on this, never on its text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    // The job's progress (Ready=False, Reconciling=True unless said otherwise).
    /// No job yet: the Start is about to be sent.
    Starting,
    Pending,
    InProgress,
    /// The job is stopping (also the cleanup step after a Stop).
    Stopping,
    /// Ready=True.
    Completed,
    /// Ready=True.
    CompletedWithErrors,
    /// Ready=True: the job stopped because `spec.stop` asked for it.
    StoppedOnRequest,
    /// Reconciling=False beside a finished job: `spec.stop` came after the job had ended.
    StopNotNeeded,
    /// The job is being deleted by someone else.
    RemoteDeleting,
    /// The service reported a status this operator does not know; it keeps polling.
    UnknownRemoteStatus,
    /// No job yet: the object waits in the start queue (AWS quota or `--max-active-jobs`).
    Queued,
    /// Ready=True: `spec.stop` was set before the job started, so it never will.
    NotStarted,

    // The quality gate (the Passed condition, with spec.passCriteria; events when it changes).
    /// Passed=Unknown: the job has not ended.
    AwaitingResults,
    /// Passed=True.
    CriteriaMet,
    /// Passed=False: a criterion is missed.
    CriteriaMissed,
    /// Passed=False: the job ended FAILED or STOPPED.
    NotCompleted,

    // The job ended without its result (Stalled=True).
    JobFailed,
    StoppedExternally,

    /// The object sits still until its spec changes (Stalled=True).
    Stalled(StallReason),
    /// An AWS call failed and is retried (strings in [`FailureKind::as_str`], shared with the
    /// AWS client's metrics).
    Failure(FailureKind),
    /// Deletion in progress (strings in [`CleanupStep::as_str`], the values of
    /// `status.cleanupStep`).
    Cleanup(CleanupStep),
    /// Stalled=False.
    NotStalled,

    // Events of the operator's own actions.
    Started,
    StopRequested,
    DeleteRequested,
    /// The finalizer was released (event reason and reconcile label).
    Released(Release),
}

impl Reason {
    /// The CamelCase text written to conditions, events and metrics.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Starting => "Starting",
            Self::Pending => "Pending",
            Self::InProgress => "InProgress",
            Self::Stopping => "Stopping",
            Self::Completed => "Completed",
            Self::CompletedWithErrors => "CompletedWithErrors",
            Self::StoppedOnRequest => "StoppedOnRequest",
            Self::StopNotNeeded => "StopNotNeeded",
            Self::RemoteDeleting => "RemoteDeleting",
            Self::UnknownRemoteStatus => "UnknownRemoteStatus",
            Self::Queued => "Queued",
            Self::NotStarted => "NotStarted",
            Self::AwaitingResults => "AwaitingResults",
            Self::CriteriaMet => "CriteriaMet",
            Self::CriteriaMissed => "CriteriaMissed",
            Self::NotCompleted => "NotCompleted",
            Self::JobFailed => "JobFailed",
            Self::StoppedExternally => "StoppedExternally",
            Self::Stalled(stall) => match stall {
                StallReason::InvalidSpec => "InvalidSpec",
                StallReason::NameConflict => "NameConflict",
                StallReason::AdoptionTargetNotFound => "AdoptionTargetNotFound",
                StallReason::DeletedExternally => "DeletedExternally",
                StallReason::NoAwsIdentity => "NoAwsIdentity",
                StallReason::AdoptionNotAllowed => "AdoptionNotAllowed",
                StallReason::AdoptionConflict => "AdoptionConflict",
            },
            Self::Failure(kind) => kind.as_str(),
            Self::Cleanup(step) => step.as_str(),
            Self::NotStalled => "NotStalled",
            Self::Started => "Started",
            Self::StopRequested => "StopRequested",
            Self::DeleteRequested => "DeleteRequested",
            Self::Released(release) => match release {
                Release::RemoteGone => "RemoteDeleted",
                Release::Retained => "Retained",
                Release::ForceReleased => "ForceReleased",
                Release::NothingToCleanUp => "NothingToCleanUp",
            },
        }
    }

    /// A failing AWS call: the status is not a fresh observation of the job, and a change to
    /// this reason is told as a Warning.
    #[must_use]
    pub const fn is_failure(self) -> bool {
        matches!(self, Self::Failure(_))
    }

    /// The stall recorded under a condition reason written by [`Self::as_str`], if it is one.
    #[must_use]
    pub fn stall(recorded: &str) -> Option<StallReason> {
        StallReason::ALL
            .into_iter()
            .find(|stall| Self::Stalled(*stall).as_str() == recorded)
    }

    /// Whether a condition reason written by [`Self::as_str`] is a failing AWS call.
    #[must_use]
    pub fn is_recorded_failure(recorded: &str) -> bool {
        FailureKind::ALL
            .into_iter()
            .any(|kind| Self::Failure(kind).as_str() == recorded)
    }
}

impl From<StallReason> for Reason {
    fn from(stall: StallReason) -> Self {
        Self::Stalled(stall)
    }
}

impl From<FailureKind> for Reason {
    fn from(kind: FailureKind) -> Self {
        Self::Failure(kind)
    }
}

impl From<CleanupStep> for Reason {
    fn from(step: CleanupStep) -> Self {
        Self::Cleanup(step)
    }
}

impl From<Release> for Reason {
    fn from(release: Release) -> Self {
        Self::Released(release)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recorded_stalls_read_back() {
        for stall in StallReason::ALL {
            assert_eq!(Reason::stall(Reason::from(stall).as_str()), Some(stall));
        }
        assert_eq!(Reason::stall("Completed"), None);
        // A failure is not a stall, even where the text is the same word (InvalidSpec is both:
        // the stall restates the service's rejection).
        assert_eq!(Reason::stall("Throttled"), None);
    }

    #[test]
    fn recorded_failures_read_back() {
        for kind in FailureKind::ALL {
            assert!(Reason::is_recorded_failure(Reason::from(kind).as_str()));
            assert!(Reason::from(kind).is_failure());
        }
        for other in [
            "Completed",
            "Pending",
            "NameConflict",
            "RemoteDeleted",
            "NotStalled",
        ] {
            assert!(!Reason::is_recorded_failure(other), "{other}");
        }
    }

    #[test]
    fn a_release_and_a_stall_never_share_a_reason() {
        let releases = [
            Release::RemoteGone,
            Release::Retained,
            Release::ForceReleased,
            Release::NothingToCleanUp,
        ];
        for release in releases {
            for stall in StallReason::ALL {
                assert_ne!(Reason::from(release).as_str(), Reason::from(stall).as_str());
            }
        }
    }

    #[test]
    fn reasons_are_camel_case() {
        let samples = [
            Reason::Starting,
            Reason::CompletedWithErrors,
            Reason::Stalled(StallReason::AdoptionTargetNotFound),
            Reason::Failure(FailureKind::Dispatch),
            Reason::Cleanup(CleanupStep::AwaitingRemoval),
            Reason::Released(Release::NothingToCleanUp),
        ];
        for reason in samples {
            let text = reason.as_str();
            assert!(text.starts_with(|c: char| c.is_ascii_uppercase()), "{text}");
            assert!(text.chars().all(|c| c.is_ascii_alphanumeric()), "{text}");
        }
    }
}
