//! The decision table: remote status × deletion state × policy × error → step.

use super::*;
use crate::api::{CleanupStep, DeletionPolicy};

const ID: &str = "job-0123456789";

/// A live object whose finalizer is in place and whose job id is recorded.
fn tracked(status: RemoteStatus) -> ObjectView {
    ObjectView {
        deleting: false,
        blocked: None,
        has_finalizer: true,
        start_may_have_happened: true,
        force_release: false,
        deletion_policy: DeletionPolicy::Delete,
        stop_requested: false,
        adopt_id: None,
        name_is_derived: true,
        recorded_id: Some(ID.into()),
        recorded_status: Some(status),
        stalled: None,
        recently_observed: false,
        queued: false,
    }
}

fn fresh() -> ObjectView {
    ObjectView {
        has_finalizer: false,
        start_may_have_happened: false,
        recorded_id: None,
        recorded_status: None,
        ..tracked(RemoteStatus::Pending)
    }
}

fn deleting(view: ObjectView) -> ObjectView {
    ObjectView {
        deleting: true,
        ..view
    }
}

fn job(status: RemoteStatus) -> Observation {
    Observation::Job {
        id: ID.into(),
        status,
    }
}

fn by_name(status: RemoteStatus) -> Observation {
    Observation::FoundByName {
        id: ID.into(),
        status,
    }
}

fn failed(call: Call, kind: FailureKind) -> Observation {
    Observation::Failed { call, kind }
}

fn get() -> Step {
    Step::Get { id: ID.into() }
}
fn stop() -> Step {
    Step::Stop { id: ID.into() }
}
fn delete() -> Step {
    Step::Delete { id: ID.into() }
}
fn retry(call: Call, kind: FailureKind) -> Step {
    Step::Retry { call, kind }
}

use RemoteStatus::{
    Completed, CompletedWithErrors, Deleting, Failed, InProgress, Pending, Stopped, Stopping,
};

fn unknown() -> RemoteStatus {
    RemoteStatus::Unknown("ARCHIVED".into())
}

fn blocked(view: ObjectView, reason: StallReason) -> ObjectView {
    ObjectView {
        blocked: Some(reason),
        ..view
    }
}

fn queued(view: ObjectView) -> ObjectView {
    ObjectView {
        queued: true,
        ..view
    }
}

fn with_stop(view: ObjectView) -> ObjectView {
    ObjectView {
        stop_requested: true,
        ..view
    }
}

#[test]
fn decision_table() {
    let pending_untracked = ObjectView {
        recorded_id: None,
        recorded_status: None,
        ..tracked(Pending)
    };
    let retain = ObjectView {
        deletion_policy: DeletionPolicy::Retain,
        ..tracked(InProgress)
    };
    let forced = ObjectView {
        force_release: true,
        ..tracked(InProgress)
    };
    let adopting = ObjectView {
        adopt_id: Some(ID.into()),
        ..pending_untracked.clone()
    };
    let user_named = ObjectView {
        name_is_derived: false,
        ..pending_untracked.clone()
    };
    let recent = |status| ObjectView {
        recently_observed: true,
        ..tracked(status)
    };
    let stalled = |reason| ObjectView {
        stalled: Some(reason),
        ..pending_untracked.clone()
    };

    #[rustfmt::skip]
    let table: Vec<(&str, ObjectView, Observation, Step)> = vec![
        // --- creation ---
        ("new object gets the finalizer first", fresh(), Observation::None, Step::AddFinalizer),
        ("finalizer before anything, even with an adopt id", ObjectView { adopt_id: Some(ID.into()), ..fresh() }, Observation::None, Step::AddFinalizer),
        ("finalizer just added in this reconcile: start directly", ObjectView { has_finalizer: true, ..fresh() }, Observation::None, Step::Start),
        ("finalizer was there, no id: a start may have happened, look it up", pending_untracked.clone(), Observation::None, Step::FindByName),
        ("lookup found nothing: start", pending_untracked.clone(), Observation::NotFound, Step::Start),
        ("lookup found our derived name running: adopt it, wait", pending_untracked.clone(), by_name(InProgress), Step::Wait(Wait::JobRunning)),
        ("lookup found our derived name completed: adopt it, idle", pending_untracked.clone(), by_name(Completed), Step::Idle),
        ("lookup found a user-chosen name: confirm ownership by idempotent start", user_named.clone(), by_name(InProgress), Step::Start),
        ("adopt: read the named job", adopting.clone(), Observation::None, get()),
        ("adopt target missing: stall", adopting.clone(), Observation::NotFound, Step::Stall(StallReason::AdoptionTargetNotFound)),
        ("adopt target running: wait", adopting.clone(), job(InProgress), Step::Wait(Wait::JobRunning)),
        ("start rejected by the service: stall, no retry storm", pending_untracked.clone(), failed(Call::Start, FailureKind::Validation), Step::Stall(StallReason::InvalidSpec)),
        ("start 409: the name is someone else's", pending_untracked.clone(), failed(Call::Start, FailureKind::Conflict), Step::Stall(StallReason::NameConflict)),
        ("start throttled: retry", pending_untracked.clone(), failed(Call::Start, FailureKind::Throttled), retry(Call::Start, FailureKind::Throttled)),
        ("start 500: retry", pending_untracked.clone(), failed(Call::Start, FailureKind::ServerError), retry(Call::Start, FailureKind::ServerError)),
        ("start timed out: retry (the next round looks the job up first)", pending_untracked.clone(), failed(Call::Start, FailureKind::Timeout), retry(Call::Start, FailureKind::Timeout)),
        ("start 403: retry slowly", pending_untracked.clone(), failed(Call::Start, FailureKind::AccessDenied), retry(Call::Start, FailureKind::AccessDenied)),
        ("start 401: retry slowly", pending_untracked.clone(), failed(Call::Start, FailureKind::Unauthorized), retry(Call::Start, FailureKind::Unauthorized)),
        ("start 402: back in the start queue, not a blind retry", pending_untracked.clone(), failed(Call::Start, FailureKind::QuotaExceeded), Step::Wait(Wait::Queued)),
        ("list throttled: retry", pending_untracked.clone(), failed(Call::List, FailureKind::Throttled), retry(Call::List, FailureKind::Throttled)),
        ("stalled on invalid spec: no AWS call", stalled(StallReason::InvalidSpec), Observation::None, Step::Stall(StallReason::InvalidSpec)),
        ("stalled on name conflict: no AWS call", stalled(StallReason::NameConflict), Observation::None, Step::Stall(StallReason::NameConflict)),
        // --- the start queue ---
        ("queued, finalizer just added: no Start", ObjectView { has_finalizer: true, ..queued(fresh()) }, Observation::None, Step::Wait(Wait::Queued)),
        ("queued, a start may have happened: not even the lookup until its turn", queued(pending_untracked.clone()), Observation::None, Step::Wait(Wait::Queued)),
        ("queued, lookup found nothing: no Start", queued(pending_untracked.clone()), Observation::NotFound, Step::Wait(Wait::Queued)),
        ("queued, lookup found our derived name: adopt it", queued(pending_untracked.clone()), by_name(InProgress), Step::Wait(Wait::JobRunning)),
        ("queued, user-chosen name found: no Start", queued(user_named.clone()), by_name(InProgress), Step::Wait(Wait::Queued)),
        ("queued and deleted: the lookup alone proves nothing started", deleting(queued(pending_untracked.clone())), Observation::None, Step::FindByName),
        ("queued and deleted, nothing found: release", deleting(queued(pending_untracked.clone())), Observation::NotFound, Step::Release(Release::NothingToCleanUp)),
        ("queued and stopped: look up what may have started", with_stop(queued(pending_untracked.clone())), Observation::None, Step::FindByName),
        ("queued and stopped, nothing found: never started", with_stop(queued(pending_untracked.clone())), Observation::NotFound, Step::Idle),
        ("queued and stopped, our job found: stop it", with_stop(queued(pending_untracked.clone())), by_name(InProgress), stop()),
        // --- tenancy: blocked before any AWS call ---
        ("no identity for the namespace: stall, no AWS call", blocked(ObjectView { has_finalizer: true, ..fresh() }, StallReason::NoAwsIdentity), Observation::None, Step::Stall(StallReason::NoAwsIdentity)),
        ("adoption not allowed here: stall, no Get", blocked(adopting.clone(), StallReason::AdoptionNotAllowed), Observation::None, Step::Stall(StallReason::AdoptionNotAllowed)),
        ("adoption of another object's job: stall, no Get", blocked(adopting.clone(), StallReason::AdoptionConflict), Observation::None, Step::Stall(StallReason::AdoptionConflict)),
        ("conflicting adopter deleted: released, the other's job untouched", deleting(blocked(adopting.clone(), StallReason::AdoptionConflict)), Observation::None, Step::Release(Release::NothingToCleanUp)),
        ("conflicting adoption recorded, then deleted: released without a Get", deleting(ObjectView { stalled: Some(StallReason::AdoptionConflict), ..adopting.clone() }), Observation::None, Step::Release(Release::NothingToCleanUp)),
        ("no identity, deleted: nothing could have started", deleting(blocked(pending_untracked.clone(), StallReason::NoAwsIdentity)), Observation::None, Step::Release(Release::NothingToCleanUp)),
        ("a recorded job is followed whatever blocks new work", blocked(tracked(InProgress), StallReason::NoAwsIdentity), Observation::None, get()),
        ("a recorded job is cleaned up whatever blocks new work", deleting(blocked(tracked(InProgress), StallReason::AdoptionConflict)), Observation::None, get()),
        // --- spec.stop before any start ---
        ("stop requested before the first start: nothing is started", with_stop(ObjectView { has_finalizer: true, ..fresh() }), Observation::None, Step::Idle),
        ("stop requested, lookup found nothing: nothing is started", with_stop(pending_untracked.clone()), Observation::NotFound, Step::Idle),
        ("stop requested, user-chosen name found: confirm ownership, then stop", with_stop(user_named.clone()), by_name(InProgress), Step::Start),
        // --- tracking a recorded job ---
        ("pending: poll", tracked(Pending), Observation::None, get()),
        ("in progress: poll", tracked(InProgress), Observation::None, get()),
        ("stopping: poll", tracked(Stopping), Observation::None, get()),
        ("deleting out of band: poll", tracked(Deleting), Observation::None, get()),
        ("unknown status: poll, never act", tracked(unknown()), Observation::None, get()),
        ("completed: no AWS call (I5)", tracked(Completed), Observation::None, Step::Idle),
        ("completed with errors: no AWS call", tracked(CompletedWithErrors), Observation::None, Step::Idle),
        ("failed: no AWS call", tracked(Failed), Observation::None, Step::Idle),
        ("stopped: no AWS call", tracked(Stopped), Observation::None, Step::Idle),
        ("pending, observed a moment ago: no Get, wait out the interval", recent(Pending), Observation::None, Step::Wait(Wait::RecentlyObserved)),
        ("in progress, observed a moment ago: no Get", recent(InProgress), Observation::None, Step::Wait(Wait::RecentlyObserved)),
        ("unknown status, observed a moment ago: no Get", recent(unknown()), Observation::None, Step::Wait(Wait::RecentlyObserved)),
        ("completed, observed a moment ago: idle", recent(Completed), Observation::None, Step::Idle),
        ("stop requested right after an observation: read now, the stop cannot wait", with_stop(recent(InProgress)), Observation::None, get()),
        ("deleting right after an observation: read now", deleting(recent(InProgress)), Observation::None, get()),
        ("observed running: wait", tracked(Pending), job(InProgress), Step::Wait(Wait::JobRunning)),
        ("observed completed: idle", tracked(InProgress), job(Completed), Step::Idle),
        ("observed failed: idle", tracked(InProgress), job(Failed), Step::Idle),
        ("observed unknown status: wait", tracked(InProgress), job(unknown()), Step::Wait(Wait::JobRunning)),
        ("observed deleting: wait", tracked(InProgress), job(Deleting), Step::Wait(Wait::JobRunning)),
        ("job vanished: stall, never start twice", tracked(InProgress), Observation::NotFound, Step::Stall(StallReason::DeletedExternally)),
        ("get throttled: retry", tracked(InProgress), failed(Call::Get, FailureKind::Throttled), retry(Call::Get, FailureKind::Throttled)),
        ("get malformed: retry", tracked(InProgress), failed(Call::Get, FailureKind::MalformedResponse), retry(Call::Get, FailureKind::MalformedResponse)),
        ("get connection dropped: retry", tracked(InProgress), failed(Call::Get, FailureKind::Dispatch), retry(Call::Get, FailureKind::Dispatch)),
        // --- spec.stop ---
        ("stop requested, pending: stop", with_stop(tracked(Pending)), job(Pending), stop()),
        ("stop requested, in progress: stop", with_stop(tracked(InProgress)), job(InProgress), stop()),
        ("stop requested, stopping: wait", with_stop(tracked(Stopping)), job(Stopping), Step::Wait(Wait::JobRunning)),
        ("stop requested, stopped: idle", with_stop(tracked(Stopping)), job(Stopped), Step::Idle),
        ("stop requested, already completed: nothing to stop, no call", with_stop(tracked(Completed)), Observation::None, Step::Idle),
        ("stop requested, already failed: nothing to stop", with_stop(tracked(InProgress)), job(Failed), Step::Idle),
        ("stop requested, completed with errors: nothing to stop", with_stop(tracked(InProgress)), job(CompletedWithErrors), Step::Idle),
        ("stop requested, deleting out of band: wait", with_stop(tracked(InProgress)), job(Deleting), Step::Wait(Wait::JobRunning)),
        ("stop requested, unknown status: wait", with_stop(tracked(InProgress)), job(unknown()), Step::Wait(Wait::JobRunning)),
        ("stop 409 (finished meanwhile): re-read", with_stop(tracked(InProgress)), failed(Call::Stop, FailureKind::Conflict), retry(Call::Stop, FailureKind::Conflict)),
        // --- deletion ---
        ("deleting, finalizer gone: nothing to do", ObjectView { has_finalizer: false, ..deleting(tracked(InProgress)) }, Observation::None, Step::Idle),
        ("deleting: read the job first", deleting(tracked(Completed)), Observation::None, get()),
        ("deleting pending: stop", deleting(tracked(Pending)), job(Pending), stop()),
        ("deleting in progress: stop", deleting(tracked(InProgress)), job(InProgress), stop()),
        ("deleting stopping: wait for terminal", deleting(tracked(Stopping)), job(Stopping), Step::Wait(Wait::Cleanup(CleanupStep::AwaitingTerminal))),
        ("deleting completed: delete", deleting(tracked(Completed)), job(Completed), delete()),
        ("deleting completed with errors: delete", deleting(tracked(CompletedWithErrors)), job(CompletedWithErrors), delete()),
        ("deleting failed: delete", deleting(tracked(Failed)), job(Failed), delete()),
        ("deleting stopped: delete", deleting(tracked(Stopped)), job(Stopped), delete()),
        ("deleting deleting: wait for removal", deleting(tracked(Deleting)), job(Deleting), Step::Wait(Wait::Cleanup(CleanupStep::AwaitingRemoval))),
        ("deleting unknown status: wait", deleting(tracked(InProgress)), job(unknown()), Step::Wait(Wait::Cleanup(CleanupStep::AwaitingTerminal))),
        ("deleting, job gone (404): release", deleting(tracked(Deleting)), Observation::NotFound, Step::Release(Release::RemoteGone)),
        ("deleting, stop 409: re-read, never give up", deleting(tracked(InProgress)), failed(Call::Stop, FailureKind::Conflict), retry(Call::Stop, FailureKind::Conflict)),
        ("deleting, delete 409: re-read, never give up", deleting(tracked(Stopping)), failed(Call::Delete, FailureKind::Conflict), retry(Call::Delete, FailureKind::Conflict)),
        ("deleting, 403: keep the finalizer, retry", deleting(tracked(InProgress)), failed(Call::Stop, FailureKind::AccessDenied), retry(Call::Stop, FailureKind::AccessDenied)),
        ("deleting, 401: keep the finalizer, retry", deleting(tracked(InProgress)), failed(Call::Delete, FailureKind::Unauthorized), retry(Call::Delete, FailureKind::Unauthorized)),
        ("deleting, 429: retry", deleting(tracked(InProgress)), failed(Call::Get, FailureKind::Throttled), retry(Call::Get, FailureKind::Throttled)),
        ("deleting, 500: retry", deleting(tracked(InProgress)), failed(Call::Delete, FailureKind::ServerError), retry(Call::Delete, FailureKind::ServerError)),
        ("deleting, timeout: retry", deleting(tracked(InProgress)), failed(Call::Stop, FailureKind::Timeout), retry(Call::Stop, FailureKind::Timeout)),
        ("deleting, malformed answer: retry", deleting(tracked(InProgress)), failed(Call::Get, FailureKind::MalformedResponse), retry(Call::Get, FailureKind::MalformedResponse)),
        ("deleting, no id: look it up by name before concluding", deleting(pending_untracked.clone()), Observation::None, Step::FindByName),
        ("deleting, no id, found by name running: stop it", deleting(pending_untracked.clone()), by_name(InProgress), stop()),
        ("deleting, no id, found by name completed: delete it", deleting(pending_untracked.clone()), by_name(Completed), delete()),
        ("deleting, no id, nothing found: release", deleting(pending_untracked.clone()), Observation::NotFound, Step::Release(Release::NothingToCleanUp)),
        ("deleting, list throttled: retry", deleting(pending_untracked.clone()), failed(Call::List, FailureKind::Throttled), retry(Call::List, FailureKind::Throttled)),
        ("deleting, name conflict: the job is not ours, release", deleting(stalled(StallReason::NameConflict)), Observation::None, Step::Release(Release::NothingToCleanUp)),
        ("deleting, adopted but never recorded: read the adopted id", deleting(adopting.clone()), Observation::None, get()),
        ("deleting, adoption target missing: release", deleting(adopting.clone()), Observation::NotFound, Step::Release(Release::NothingToCleanUp)),
        ("deleting, stopped on request: straight to delete (no second stop)", deleting(with_stop(tracked(Stopped))), job(Stopped), delete()),
        ("deleting, remote deleted out of band: release", deleting(ObjectView { stalled: Some(StallReason::DeletedExternally), ..tracked(InProgress) }), Observation::NotFound, Step::Release(Release::RemoteGone)),
        // --- policy and escape hatch ---
        ("retain: release without touching the job", deleting(retain.clone()), Observation::None, Step::Release(Release::Retained)),
        ("retain wins over any observation", deleting(retain.clone()), job(InProgress), Step::Release(Release::Retained)),
        ("retain while AWS denies access: still released", deleting(retain), failed(Call::Get, FailureKind::AccessDenied), Step::Release(Release::Retained)),
        ("force-release: released at once", deleting(forced.clone()), Observation::None, Step::Release(Release::ForceReleased)),
        ("force-release while AWS denies access", deleting(forced.clone()), failed(Call::Stop, FailureKind::AccessDenied), Step::Release(Release::ForceReleased)),
        ("force-release annotation on a live object does nothing", forced, Observation::None, get()),
    ];

    assert!(table.len() >= 40, "the table must cover at least 40 rows");
    let mut failures = Vec::new();
    for (name, view, observation, expected) in &table {
        let actual = decide(view, observation);
        if &actual != expected {
            failures.push(format!("{name}: expected {expected:?}, got {actual:?}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} rows failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// Every remote status, in every deletion state, gets an answer, and a deletion never picks
/// Start: nothing is ever started while the object goes away.
#[test]
fn deletion_never_starts_anything() {
    let statuses = [
        Pending,
        InProgress,
        Completed,
        CompletedWithErrors,
        Failed,
        Stopping,
        Stopped,
        Deleting,
        unknown(),
    ];
    for status in statuses {
        for observation in [
            Observation::None,
            job(status.clone()),
            by_name(status.clone()),
            Observation::NotFound,
            failed(Call::Start, FailureKind::Conflict),
        ] {
            for view in [deleting(tracked(status.clone())), deleting(fresh())] {
                let step = decide(&view, &observation);
                assert_ne!(step, Step::Start, "{view:?} / {observation:?}");
            }
        }
    }
}

#[test]
fn status_names_round_trip() {
    for s in [
        "PENDING",
        "IN_PROGRESS",
        "COMPLETED",
        "COMPLETED_WITH_ERRORS",
        "FAILED",
        "STOPPING",
        "STOPPED",
        "DELETING",
        "ARCHIVED",
    ] {
        assert_eq!(RemoteStatus::parse(s).as_str(), s);
    }
    assert!(RemoteStatus::parse("ARCHIVED") == unknown());
}
