//! The step loop against a fake service: which calls it makes, in which order, what it learns.

use std::sync::Mutex;

use super::*;
use crate::{
    api::{CleanupStep, DeletionPolicy},
    batch_evaluation::lifecycle::Release,
};

const ID: &str = "demo-0123456789";

/// A one-job service, scripted per test, that writes down every call.
#[derive(Default)]
struct Fake {
    job: Mutex<Option<RemoteJob>>,
    calls: Mutex<Vec<&'static str>>,
    /// The call of this name fails like this.
    fail: Option<(&'static str, FailureKind)>,
    /// What Stop answers (the job's status afterwards).
    stop_answer: Option<RemoteStatus>,
    /// The finalizer patch fails (a Kubernetes error).
    finalizer_fails: bool,
}

impl Fake {
    fn with_job(status: RemoteStatus) -> Self {
        Self {
            job: Mutex::new(Some(job(status))),
            ..Self::default()
        }
    }

    fn calls(&self) -> Vec<&'static str> {
        self.calls.lock().unwrap().clone()
    }

    fn call(&self, name: &'static str, call: Call) -> Result<(), Error> {
        self.calls.lock().unwrap().push(name);
        match self.fail {
            Some((failing, kind)) if failing == name => Err(Error::Aws {
                call,
                kind,
                message: format!("{name} failed"),
            }),
            _ => Ok(()),
        }
    }

    fn set_status(&self, status: RemoteStatus) -> Option<RemoteStatus> {
        let mut job = self.job.lock().unwrap();
        job.as_mut().map(|j| {
            j.status = status.clone();
            status
        })
    }
}

fn job(status: RemoteStatus) -> RemoteJob {
    RemoteJob {
        id: ID.into(),
        arn: format!("arn:aws:bedrock-agentcore:us-west-2:123456789012:batch-evaluation/{ID}"),
        name: "demo".into(),
        status,
        created_at: None,
        updated_at: None,
        results: None,
        error_details: None,
    }
}

impl Effects for Fake {
    async fn add_finalizer(&self) -> Result<(), Error> {
        self.calls.lock().unwrap().push("AddFinalizer");
        if self.finalizer_fails {
            return Err(Error::InvalidObject("finalizer patch refused".into()));
        }
        Ok(())
    }

    async fn get(&self, id: &str) -> Result<Option<RemoteJob>, Error> {
        self.call("Get", Call::Get)?;
        Ok(self.job.lock().unwrap().clone().filter(|j| j.id == id))
    }

    async fn find_by_name(&self) -> Result<Option<RemoteJob>, Error> {
        self.call("List", Call::List)?;
        Ok(self.job.lock().unwrap().clone())
    }

    async fn start(&self) -> Result<RemoteJob, Error> {
        self.call("Start", Call::Start)?;
        let mut existing = self.job.lock().unwrap();
        Ok(existing
            .get_or_insert_with(|| job(RemoteStatus::Pending))
            .clone())
    }

    async fn stop(&self, _id: &str) -> Result<Option<RemoteStatus>, Error> {
        self.call("Stop", Call::Stop)?;
        Ok(self.set_status(self.stop_answer.clone().unwrap_or(RemoteStatus::Stopping)))
    }

    async fn delete(&self, _id: &str) -> Result<Option<RemoteStatus>, Error> {
        self.call("Delete", Call::Delete)?;
        Ok(self.set_status(RemoteStatus::Deleting))
    }
}

fn new_object() -> ObjectView {
    ObjectView {
        blocked: None,
        deleting: false,
        has_finalizer: false,
        start_may_have_happened: false,
        force_release: false,
        deletion_policy: DeletionPolicy::Delete,
        stop_requested: false,
        adopt_id: None,
        name_is_derived: true,
        recorded_id: None,
        recorded_status: None,
        stalled: None,
        recently_observed: false,
        queued: false,
    }
}

fn tracked(status: RemoteStatus) -> ObjectView {
    ObjectView {
        has_finalizer: true,
        start_may_have_happened: true,
        recorded_id: Some(ID.into()),
        recorded_status: Some(status),
        ..new_object()
    }
}

fn run(view: ObjectView, fake: &Fake) -> Result<Driven, Error> {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(drive(view, fake))
}

#[test]
fn a_new_object_gets_its_finalizer_then_one_start() {
    let fake = Fake::default();
    let driven = run(new_object(), &fake).unwrap();
    assert_eq!(fake.calls(), ["AddFinalizer", "Start"]);
    assert_eq!(driven.step, Step::Wait(Wait::JobRunning));
    assert_eq!(
        driven.acted,
        [Acted::Started {
            name: "demo".into(),
            id: ID.into()
        }]
    );
    assert_eq!(driven.job.map(|j| j.status), Some(RemoteStatus::Pending));
    assert_eq!(driven.failure, None);
}

#[test]
fn deleting_a_running_job_stops_then_deletes_in_one_reconcile_when_stop_is_immediate() {
    let fake = Fake {
        stop_answer: Some(RemoteStatus::Stopped),
        ..Fake::with_job(RemoteStatus::InProgress)
    };
    let view = ObjectView {
        deleting: true,
        ..tracked(RemoteStatus::InProgress)
    };
    let driven = run(view, &fake).unwrap();
    assert_eq!(fake.calls(), ["Get", "Stop", "Delete"]);
    assert_eq!(
        driven.acted,
        [
            Acted::StopRequested { id: ID.into() },
            Acted::DeleteRequested { id: ID.into() }
        ]
    );
    assert_eq!(
        driven.step,
        Step::Wait(Wait::Cleanup(CleanupStep::AwaitingRemoval))
    );
    assert_eq!(driven.job.map(|j| j.status), Some(RemoteStatus::Deleting));
}

#[test]
fn a_job_already_gone_releases_after_one_get() {
    let fake = Fake::default();
    let view = ObjectView {
        deleting: true,
        ..tracked(RemoteStatus::Completed)
    };
    let driven = run(view, &fake).unwrap();
    assert_eq!(fake.calls(), ["Get"]);
    assert_eq!(driven.step, Step::Release(Release::RemoteGone));
    assert!(driven.acted.is_empty());
}

#[test]
fn a_failed_call_ends_the_loop_with_its_failure() {
    let fake = Fake {
        fail: Some(("Get", FailureKind::Throttled)),
        ..Fake::with_job(RemoteStatus::InProgress)
    };
    let driven = run(tracked(RemoteStatus::InProgress), &fake).unwrap();
    assert_eq!(fake.calls(), ["Get"]);
    assert_eq!(
        driven.step,
        Step::Retry {
            call: Call::Get,
            kind: FailureKind::Throttled
        }
    );
    assert_eq!(
        driven.failure,
        Some(Failure {
            kind: FailureKind::Throttled,
            message: "Get failed".into()
        })
    );
}

#[test]
fn a_refused_stop_is_not_told_as_an_action() {
    let fake = Fake {
        fail: Some(("Stop", FailureKind::Conflict)),
        ..Fake::with_job(RemoteStatus::InProgress)
    };
    let view = ObjectView {
        stop_requested: true,
        ..tracked(RemoteStatus::InProgress)
    };
    let driven = run(view, &fake).unwrap();
    assert_eq!(fake.calls(), ["Get", "Stop"]);
    assert!(driven.acted.is_empty(), "{:?}", driven.acted);
    assert_eq!(
        driven.step,
        Step::Retry {
            call: Call::Stop,
            kind: FailureKind::Conflict
        }
    );
}

#[test]
fn a_kubernetes_failure_ends_the_reconcile() {
    let fake = Fake {
        finalizer_fails: true,
        ..Fake::default()
    };
    assert!(run(new_object(), &fake).is_err());
    assert_eq!(
        fake.calls(),
        ["AddFinalizer"],
        "nothing remote before the finalizer"
    );
}

#[test]
fn a_deletion_without_a_recorded_id_looks_the_job_up_by_name() {
    let fake = Fake::with_job(RemoteStatus::Completed);
    let view = ObjectView {
        deleting: true,
        has_finalizer: true,
        start_may_have_happened: true,
        ..new_object()
    };
    let driven = run(view, &fake).unwrap();
    assert_eq!(fake.calls(), ["List", "Delete"]);
    assert_eq!(driven.acted, [Acted::DeleteRequested { id: ID.into() }]);
}

#[test]
fn the_step_limit_stops_a_loop_that_would_not_settle() {
    // A job that stays PENDING whatever Stop answers: Stop is decided again and again.
    let fake = Fake {
        stop_answer: Some(RemoteStatus::Pending),
        ..Fake::with_job(RemoteStatus::Pending)
    };
    let view = ObjectView {
        stop_requested: true,
        ..tracked(RemoteStatus::Pending)
    };
    let driven = run(view, &fake).unwrap();
    assert_eq!(fake.calls().len(), MAX_STEPS);
    assert_eq!(driven.step, Step::Stop { id: ID.into() });
}
