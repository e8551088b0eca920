//! The step loop: asks [`lifecycle::decide`] for the next step, performs it through
//! [`Effects`], feeds the answer back as the next observation, and stops at the first step that
//! waits. The calls themselves sit behind the trait, so the loop is unit-tested without a
//! cluster or AWS (a fake in the tests below; the reconciler's implementation in production).

use std::future::Future;

use tracing::{debug, info, warn};

use crate::{
    batch_evaluation::lifecycle::{self, ObjectView, Observation, Step, Wait},
    error::Error,
    remote::{Call, FailureKind, RemoteJob, RemoteStatus},
};

/// The calls a reconcile makes for one object: its finalizer and its remote job.
pub trait Effects {
    /// Adds the cleanup finalizer.
    fn add_finalizer(&self) -> impl Future<Output = Result<(), Error>> + Send;
    /// `GetBatchEvaluation`; `None` when the job does not exist.
    fn get(&self, id: &str) -> impl Future<Output = Result<Option<RemoteJob>, Error>> + Send;
    /// The job under the object's remote name, if any.
    fn find_by_name(&self) -> impl Future<Output = Result<Option<RemoteJob>, Error>> + Send;
    /// `StartBatchEvaluation` with the object's client token.
    fn start(&self) -> impl Future<Output = Result<RemoteJob, Error>> + Send;
    /// `StopBatchEvaluation`; `None` when the job does not exist.
    fn stop(&self, id: &str) -> impl Future<Output = Result<Option<RemoteStatus>, Error>> + Send;
    /// `DeleteBatchEvaluation`; `None` when the job does not exist.
    fn delete(&self, id: &str) -> impl Future<Output = Result<Option<RemoteStatus>, Error>> + Send;
}

/// An action this reconcile took on the remote job (each is told by an event).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Acted {
    Started { name: String, id: String },
    StopRequested { id: String },
    DeleteRequested { id: String },
}

/// A failed AWS call, with the service's message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    pub kind: FailureKind,
    pub message: String,
}

/// What driving the lifecycle did and learned.
#[derive(Clone, Debug, PartialEq)]
pub struct Driven {
    /// The step the loop ended on: one that waits, or (when the step limit ran out) the last
    /// action.
    pub step: Step,
    /// The latest knowledge of the remote job.
    pub job: Option<RemoteJob>,
    /// The last failed call.
    pub failure: Option<Failure>,
    /// Actions taken, in order.
    pub acted: Vec<Acted>,
}

/// Most steps one reconcile takes before it yields; a safety net, the lifecycle converges in
/// fewer (finalizer, observe, act, act).
pub const MAX_STEPS: usize = 8;

/// Drives the lifecycle from `view` until a step waits (or [`MAX_STEPS`] ran out).
///
/// # Errors
/// Kubernetes failures (the finalizer patch) and invalid objects end the reconcile; AWS
/// failures do not: they become observations the lifecycle decides on.
pub async fn drive(mut view: ObjectView, effects: &impl Effects) -> Result<Driven, Error> {
    let mut driven = Driven {
        step: Step::Wait(Wait::JobRunning),
        job: None,
        failure: None,
        acted: Vec::new(),
    };
    let mut observation = Observation::None;
    for _ in 0..MAX_STEPS {
        let step = lifecycle::decide(&view, &observation);
        debug!(?step, ?observation, "decided");
        observation = match &step {
            Step::AddFinalizer => {
                effects.add_finalizer().await?;
                view.has_finalizer = true;
                Observation::None
            }
            Step::Get { id } => driven.looked_up(effects.get(id).await, Call::Get)?,
            Step::FindByName => driven.looked_up(effects.find_by_name().await, Call::List)?,
            Step::Start => match effects.start().await {
                Ok(job) => {
                    info!(id = %job.id, "started batch evaluation");
                    driven.acted.push(Acted::Started {
                        name: job.name.clone(),
                        id: job.id.clone(),
                    });
                    driven.record(job, Call::Start)
                }
                Err(e) => driven.failed(e)?,
            },
            Step::Stop { id } => {
                let acted = Acted::StopRequested { id: id.clone() };
                driven.acted_on(effects.stop(id).await, id, acted)?
            }
            Step::Delete { id } => {
                let acted = Acted::DeleteRequested { id: id.clone() };
                driven.acted_on(effects.delete(id).await, id, acted)?
            }
            Step::Release(_) | Step::Wait(_) | Step::Retry { .. } | Step::Stall(_) | Step::Idle => {
                driven.step = step;
                return Ok(driven);
            }
        };
        driven.step = step;
    }
    Ok(driven)
}

impl Driven {
    /// Records a job found by Get, List or Start as the latest knowledge and as the observation.
    fn record(&mut self, job: RemoteJob, call: Call) -> Observation {
        let (id, status) = (job.id.clone(), job.status.clone());
        tracing::Span::current().record("id", id.as_str());
        self.job = Some(job);
        if call == Call::List {
            Observation::FoundByName { id, status }
        } else {
            Observation::Job { id, status }
        }
    }

    fn looked_up(
        &mut self,
        result: Result<Option<RemoteJob>, Error>,
        call: Call,
    ) -> Result<Observation, Error> {
        match result {
            Ok(Some(job)) => Ok(self.record(job, call)),
            Ok(None) => Ok(Observation::NotFound),
            Err(e) => self.failed(e),
        }
    }

    /// Folds the answer of Stop or Delete into the known job.
    fn acted_on(
        &mut self,
        result: Result<Option<RemoteStatus>, Error>,
        id: &str,
        acted: Acted,
    ) -> Result<Observation, Error> {
        match result {
            Ok(Some(status)) => {
                if let Some(job) = self.job.as_mut() {
                    job.status = status.clone();
                }
                self.acted.push(acted);
                Ok(Observation::Job {
                    id: id.to_owned(),
                    status,
                })
            }
            Ok(None) => Ok(Observation::NotFound),
            Err(e) => self.failed(e),
        }
    }

    /// Turns an AWS failure into an observation; other errors end the reconcile.
    fn failed(&mut self, error: Error) -> Result<Observation, Error> {
        let (call, kind, message) = match error {
            Error::Aws {
                call,
                kind,
                message,
            } => {
                warn!(?call, kind = kind.as_str(), %message, "AWS call failed");
                (call, kind, message)
            }
            // The spec could not be turned into a request: as if the service had rejected it.
            Error::InvalidSpec(message) => (Call::Start, FailureKind::Validation, message),
            other => return Err(other),
        };
        self.failure = Some(Failure { kind, message });
        Ok(Observation::Failed { call, kind })
    }
}

#[cfg(test)]
mod tests;
