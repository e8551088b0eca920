//! The lifecycle as a pure function: from what is known about the object and what was observed
//! of the remote job, to the one next step. No I/O here; the reconciler performs the steps and
//! feeds their results back in as observations.

use crate::{
    api::{CleanupStep, DeletionPolicy},
    remote::{Call, FailureKind, RemoteStatus},
};

/// Why the object sits still until its spec (generation) changes. Retrying would only repeat
/// the same answer, so there are no AWS calls in this state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StallReason {
    /// The service rejected the spec (ValidationException).
    InvalidSpec,
    /// The name belongs to a job this object did not start.
    NameConflict,
    /// `adoptBatchEvaluationId` names no job.
    AdoptionTargetNotFound,
    /// The recorded job disappeared without this operator deleting it.
    DeletedExternally,
    /// The namespace has no AWS identity: it is not mapped to a role and unmapped namespaces
    /// are refused.
    NoAwsIdentity,
    /// The administrator does not let this namespace adopt jobs.
    AdoptionNotAllowed,
    /// Another object already records or adopts the job this one asks to adopt.
    AdoptionConflict,
}

impl StallReason {
    /// Every stall, for reading a recorded one back.
    pub const ALL: [Self; 7] = [
        Self::InvalidSpec,
        Self::NameConflict,
        Self::AdoptionTargetNotFound,
        Self::DeletedExternally,
        Self::NoAwsIdentity,
        Self::AdoptionNotAllowed,
        Self::AdoptionConflict,
    ];

    /// Stalls decided from the operator's configuration and the cluster, before any AWS call.
    #[must_use]
    pub const fn decided_without_aws(self) -> bool {
        matches!(
            self,
            Self::NoAwsIdentity | Self::AdoptionNotAllowed | Self::AdoptionConflict
        )
    }

    /// Stalls that prove nothing of this object's exists remotely (the name or the adopted job
    /// is someone else's, or it never had an identity to act with): its deletion touches nothing.
    #[must_use]
    pub const fn owns_nothing(self) -> bool {
        matches!(
            self,
            Self::NameConflict
                | Self::NoAwsIdentity
                | Self::AdoptionNotAllowed
                | Self::AdoptionConflict
        )
    }
}

/// Everything about the object the decision needs, extracted without I/O.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectView {
    /// `metadata.deletionTimestamp` is set.
    pub deleting: bool,
    /// Why the object must not call AWS at all, known without asking (no identity for its
    /// namespace; an adoption not allowed or conflicting with another object). Only consulted
    /// while no job is recorded.
    pub blocked: Option<StallReason>,
    /// The cleanup finalizer is present now.
    pub has_finalizer: bool,
    /// The finalizer was already there when this reconcile began: an earlier reconcile may have
    /// sent a Start whose answer never got recorded.
    pub start_may_have_happened: bool,
    /// The force-release annotation is `"true"`.
    pub force_release: bool,
    pub deletion_policy: DeletionPolicy,
    /// `spec.stop`.
    pub stop_requested: bool,
    /// `spec.adoptBatchEvaluationId`.
    pub adopt_id: Option<String>,
    /// The remote name is the operator's derived default, which embeds part of the object's UID,
    /// so a job found under it was started for this object.
    pub name_is_derived: bool,
    /// `status.batchEvaluationId`.
    pub recorded_id: Option<String>,
    /// `status.remoteStatus`.
    pub recorded_status: Option<RemoteStatus>,
    /// A stall recorded for the current generation.
    pub stalled: Option<StallReason>,
    /// The recorded status came from an observation of the job less than a poll interval ago
    /// (and not from a failure): it is as fresh as a Get would be now.
    pub recently_observed: bool,
    /// The start queue holds the object back: a Start now would exceed the AWS quota or
    /// `--max-active-jobs` (see [`super::queue`]).
    pub queued: bool,
}

/// What this reconcile has learned from AWS so far.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Observation {
    /// Nothing asked yet.
    None,
    /// Get (or a Start/Stop/Delete response) reported the job in this status.
    Job { id: String, status: RemoteStatus },
    /// List found a job with this object's name.
    FoundByName { id: String, status: RemoteStatus },
    /// Get returned 404, or List has no job with this name.
    NotFound,
    /// The last call failed.
    Failed { call: Call, kind: FailureKind },
}

/// Why the finalizer is released.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Release {
    /// The job is confirmed gone.
    RemoteGone,
    /// `deletionPolicy: Retain`: the job stays in AWS.
    Retained,
    /// The escape-hatch annotation: the job may be left behind.
    ForceReleased,
    /// Nothing remote was ever created for this object (or it belongs to someone else).
    NothingToCleanUp,
}

/// Why the reconcile waits for time to pass.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wait {
    /// The job runs (PENDING, IN_PROGRESS, STOPPING by request, or an unknown status).
    JobRunning,
    /// The job runs and was observed less than a poll interval ago: the next poll is due when
    /// that observation is a poll interval old.
    RecentlyObserved,
    /// Deletion: a cleanup step is in flight.
    Cleanup(CleanupStep),
    /// No job yet: its turn in the start queue has not come (or the service refused the Start
    /// for quota).
    Queued,
}

/// The one next thing to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// Add the finalizer; nothing remote may happen before it is stored.
    AddFinalizer,
    /// Read the job.
    Get { id: String },
    /// Look the job up by name (paginated List).
    FindByName,
    /// Start the job (idempotent through the object's client token).
    Start,
    /// Stop the running job.
    Stop { id: String },
    /// Delete the terminal job.
    Delete { id: String },
    /// Remove the finalizer.
    Release(Release),
    /// Requeue after the poll interval.
    Wait(Wait),
    /// Retry after a backoff that grows with consecutive failures.
    Retry { call: Call, kind: FailureKind },
    /// Stop working on this object until its spec changes.
    Stall(StallReason),
    /// Nothing to do until the object changes.
    Idle,
}

/// Decides the next step. Total: every combination has an answer.
#[must_use]
pub fn decide(view: &ObjectView, observation: &Observation) -> Step {
    if view.deleting {
        decide_deletion(view, observation)
    } else {
        decide_normal(view, observation)
    }
}

fn decide_normal(view: &ObjectView, observation: &Observation) -> Step {
    if !view.has_finalizer {
        return Step::AddFinalizer;
    }
    match observation {
        Observation::None => match (&view.recorded_id, &view.recorded_status) {
            // Terminal and unchanged: no AWS call at all (invariant I5).
            (Some(_), Some(status)) if status.is_terminal() => Step::Idle,
            // Typically the reconcile that the Start reconcile's own finalizer write wakes, a
            // moment later: a Get would only repeat what was just recorded. A stop request
            // cannot wait.
            (Some(_), Some(_)) if view.recently_observed && !view.stop_requested => {
                Step::Wait(Wait::RecentlyObserved)
            }
            (Some(id), _) => Step::Get { id: id.clone() },
            (None, _) if let Some(reason) = view.blocked => Step::Stall(reason),
            // Still stalled at this generation: restate it, without calling AWS.
            (None, _) if let Some(reason) = view.stalled => Step::Stall(reason),
            (None, _) => match &view.adopt_id {
                Some(id) => Step::Get { id: id.clone() },
                None if view.start_may_have_happened => {
                    // A queued object that is not stopping sends nothing: its lookup waits for
                    // its turn, just before its Start.
                    if view.queued && !view.stop_requested {
                        Step::Wait(Wait::Queued)
                    } else {
                        Step::FindByName
                    }
                }
                None => start_step(view),
            },
        },
        Observation::Job { id, status } => running_job_step(view, id, status),
        Observation::FoundByName { id, status } => {
            if view.name_is_derived {
                running_job_step(view, id, status)
            } else {
                // A user-chosen name may belong to someone else's job: an idempotent Start with
                // this object's token returns our job (to be stopped if asked), or 409 if the
                // name is not ours.
                if view.queued && !view.stop_requested {
                    Step::Wait(Wait::Queued)
                } else {
                    Step::Start
                }
            }
        }
        Observation::NotFound => {
            if view.recorded_id.is_some() {
                Step::Stall(StallReason::DeletedExternally)
            } else if view.adopt_id.is_some() {
                Step::Stall(StallReason::AdoptionTargetNotFound)
            } else {
                start_step(view)
            }
        }
        Observation::Failed { call, kind } => failure_step(*call, *kind),
    }
}

/// Nothing was started for the object: start it, unless it asks to be stopped (then it never
/// starts) or waits in the start queue.
fn start_step(view: &ObjectView) -> Step {
    if view.stop_requested {
        Step::Idle
    } else if view.queued {
        Step::Wait(Wait::Queued)
    } else {
        Step::Start
    }
}

fn running_job_step(view: &ObjectView, id: &str, status: &RemoteStatus) -> Step {
    if status.is_running() && view.stop_requested {
        Step::Stop { id: id.to_owned() }
    } else if status.is_terminal() {
        Step::Idle
    } else {
        Step::Wait(Wait::JobRunning)
    }
}

fn decide_deletion(view: &ObjectView, observation: &Observation) -> Step {
    if !view.has_finalizer {
        return Step::Idle;
    }
    if view.force_release {
        return Step::Release(Release::ForceReleased);
    }
    if view.deletion_policy == DeletionPolicy::Retain {
        return Step::Release(Release::Retained);
    }
    match observation {
        Observation::None => match (&view.recorded_id, &view.adopt_id) {
            // The name or the adopted job is someone else's, or nothing could act: nothing of
            // ours exists.
            (None, _)
                if view.blocked.is_some()
                    || view.stalled.is_some_and(StallReason::owns_nothing) =>
            {
                Step::Release(Release::NothingToCleanUp)
            }
            (Some(id), _) | (None, Some(id)) => Step::Get { id: id.clone() },
            (None, None) => Step::FindByName,
        },
        Observation::Job { id, status } | Observation::FoundByName { id, status } => {
            cleanup_step(id, status)
        }
        Observation::NotFound => {
            if view.recorded_id.is_some() {
                Step::Release(Release::RemoteGone)
            } else {
                Step::Release(Release::NothingToCleanUp)
            }
        }
        // 409 on Stop (the job already finished) or Delete (still stopping) means "re-read";
        // everything else backs off. A deletion never gives up: the escape hatch is explicit.
        Observation::Failed { call, kind } => Step::Retry {
            call: *call,
            kind: *kind,
        },
    }
}

fn cleanup_step(id: &str, status: &RemoteStatus) -> Step {
    match status {
        RemoteStatus::Pending | RemoteStatus::InProgress => Step::Stop { id: id.to_owned() },
        RemoteStatus::Stopping => Step::Wait(Wait::Cleanup(CleanupStep::AwaitingTerminal)),
        RemoteStatus::Completed
        | RemoteStatus::CompletedWithErrors
        | RemoteStatus::Failed
        | RemoteStatus::Stopped => Step::Delete { id: id.to_owned() },
        RemoteStatus::Deleting => Step::Wait(Wait::Cleanup(CleanupStep::AwaitingRemoval)),
        RemoteStatus::Unknown(_) => Step::Wait(Wait::Cleanup(CleanupStep::AwaitingTerminal)),
    }
}

fn failure_step(call: Call, kind: FailureKind) -> Step {
    match (call, kind) {
        (Call::Start, FailureKind::Validation) => Step::Stall(StallReason::InvalidSpec),
        // Our own earlier Start would have been answered idempotently, so a 409 at Start means
        // the name is taken by a job this object did not start.
        (Call::Start, FailureKind::Conflict) => Step::Stall(StallReason::NameConflict),
        (Call::Get, FailureKind::Validation) => Step::Stall(StallReason::InvalidSpec),
        // The account runs as many jobs as its quota allows: back in line, not a blind retry.
        (Call::Start, FailureKind::QuotaExceeded) => Step::Wait(Wait::Queued),
        _ => Step::Retry { call, kind },
    }
}

#[cfg(test)]
mod tests;
