//! The first stage of a reconcile: the object as the decisions see it. Pure: computed from the
//! object (fresh from the API server where [`CachedEvaluation::needs_fresh_read`] says so), the
//! operator's settings and the clock.
//!
//! [`CachedEvaluation::needs_fresh_read`]: crate::batch_evaluation::cached::CachedEvaluation::needs_fresh_read

use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::{Resource, ResourceExt};

use crate::{
    api::{
        BatchEvaluation, BatchEvaluationStatus, FINALIZER, FORCE_RELEASE_ANNOTATION, PassCriteria,
    },
    batch_evaluation::{
        lifecycle::{ObjectView, StallReason},
        naming, status,
    },
    error::Error,
    tenancy::{Identity, Tenancy},
};

/// One object, read once per reconcile.
#[derive(Clone, Debug)]
pub struct Snapshot {
    pub namespace: String,
    pub name: String,
    pub uid: String,
    pub generation: i64,
    /// The remote job's name: the spec's, the recorded one, or the derived default.
    pub remote_name: String,
    /// The region recorded at Start, else the spec's, else the operator's default.
    pub region: String,
    /// The identity its AWS calls use: the one recorded at the first call, else the namespace's.
    pub identity: Identity,
    /// The status as recorded.
    pub status: BatchEvaluationStatus,
    /// What the lifecycle decides on.
    pub view: ObjectView,
    /// How much longer the recorded status is as fresh as a poll (see [`fresh_for`]).
    pub fresh_for: Option<Duration>,
    /// The output log group, where per-session results remain after deletion.
    pub results_location: Option<String>,
    /// `metadata.deletionTimestamp`.
    pub deleting_since: Option<Timestamp>,
    /// What the results must reach to pass (`spec.passCriteria`).
    pub pass_criteria: Option<PassCriteria>,
    /// The other object that records or adopts the job this one asks to adopt (set by the
    /// reconciler, which sees the cache).
    pub adoption_conflict: Option<String>,
}

/// Whether the operator's finalizer is on the object (or on its cached form).
pub(crate) fn has_finalizer(obj: &impl Resource) -> bool {
    obj.finalizers().iter().any(|f| f == FINALIZER)
}

impl Snapshot {
    /// The snapshot of `obj` at `now`.
    ///
    /// # Errors
    /// [`Error::InvalidObject`] for an object without namespace or UID.
    pub fn of(
        obj: &BatchEvaluation,
        default_region: &str,
        tenancy: &Tenancy,
        poll_interval: Duration,
        now: Timestamp,
    ) -> Result<Self, Error> {
        let namespace = obj
            .namespace()
            .ok_or_else(|| Error::InvalidObject("no metadata.namespace".into()))?;
        let name = obj.name_any();
        let uid = obj
            .uid()
            .ok_or_else(|| Error::InvalidObject("no metadata.uid".into()))?;
        let status = obj.status.clone().unwrap_or_default();
        let remote_name = match (
            &obj.spec.batch_evaluation_name,
            &status.batch_evaluation_name,
        ) {
            (Some(n), _) | (None, Some(n)) => n.clone(),
            (None, None) => naming::derived_name(&namespace, &name, &uid)?,
        };
        let region = region_of(
            status.region.as_deref(),
            obj.spec.region.as_deref(),
            default_region,
        )
        .to_owned();
        let identity = identity_of(
            status.role_arn.as_deref(),
            status.batch_evaluation_id.is_some() || status.batch_evaluation_name.is_some(),
            &namespace,
            tenancy,
        );
        let adopting = obj.spec.adopt_batch_evaluation_id.is_some();
        let blocked = if identity == Identity::Refused {
            Some(StallReason::NoAwsIdentity)
        } else if adopting && !tenancy.may_adopt(&namespace) {
            Some(StallReason::AdoptionNotAllowed)
        } else {
            None
        };
        let stalled = recorded_stall(obj);
        let fresh_for = stalled
            .is_none()
            .then(|| fresh_for(&status, poll_interval, now))
            .flatten();
        let has_finalizer = has_finalizer(obj);
        let view = ObjectView {
            deleting: obj.meta().deletion_timestamp.is_some(),
            blocked,
            has_finalizer,
            start_may_have_happened: has_finalizer,
            force_release: obj
                .annotations()
                .get(FORCE_RELEASE_ANNOTATION)
                .is_some_and(|v| v == "true"),
            deletion_policy: obj.spec.deletion_policy,
            stop_requested: obj.spec.stop,
            adopt_id: obj.spec.adopt_batch_evaluation_id.clone(),
            name_is_derived: obj.spec.batch_evaluation_name.is_none(),
            recorded_id: status.batch_evaluation_id.clone(),
            recorded_status: status
                .remote_status
                .as_deref()
                .map(crate::remote::RemoteStatus::parse),
            stalled,
            recently_observed: fresh_for.is_some(),
            // Decided by the start queue, after the snapshot (see `admission`).
            queued: false,
        };
        Ok(Self {
            generation: obj.meta().generation.unwrap_or(0),
            results_location: obj
                .spec
                .output
                .as_ref()
                .and_then(|o| o.cloud_watch.log_group_name.clone())
                .filter(|g| !g.is_empty()),
            deleting_since: obj.meta().deletion_timestamp.as_ref().map(|t| t.0),
            pass_criteria: obj.spec.pass_criteria.clone(),
            namespace,
            name,
            uid,
            remote_name,
            region,
            identity,
            status,
            adoption_conflict: None,
            view,
            fresh_for,
        })
    }
}

/// The identity of the object's AWS calls. Fixed at the first call: the recorded role, or the
/// operator's own identity once a name or job is recorded (`names_job`) without one (a later
/// mapping change must never make an object, its cleanup above all, act in another account);
/// before that, the namespace's mapping.
#[must_use]
pub fn identity_of(
    role_arn: Option<&str>,
    names_job: bool,
    namespace: &str,
    tenancy: &Tenancy,
) -> Identity {
    match role_arn {
        Some(role) => Identity::Role(role.to_owned()),
        None if names_job => Identity::Operator,
        None => tenancy.identity_for(namespace),
    }
}

/// The region of the object's job: the one recorded at Start, else the spec's, else the
/// operator's default.
#[must_use]
pub fn region_of<'a>(
    recorded: Option<&'a str>,
    spec: Option<&'a str>,
    default_region: &'a str,
) -> &'a str {
    recorded.or(spec).unwrap_or(default_region)
}

impl Snapshot {
    /// Whether the object waits for its first Start: alive, no job recorded, not adopting one,
    /// not asked to stop, not stalled. These are the members of the start queue (counted from
    /// the cache by [`CachedEvaluation::waits_to_start`], the same rule).
    ///
    /// [`CachedEvaluation::waits_to_start`]: crate::batch_evaluation::cached::CachedEvaluation::waits_to_start
    #[must_use]
    pub fn waits_to_start(&self) -> bool {
        let view = &self.view;
        !view.deleting
            && !view.stop_requested
            && view.adopt_id.is_none()
            && view.recorded_id.is_none()
            && view.stalled.is_none()
    }
}

/// The generation a recorded stall must have been written for to hold: the current one, or
/// (`None`) any while the object is deleting; see [`recorded_stall`].
#[must_use]
pub fn stall_generation(meta: &ObjectMeta) -> Option<i64> {
    meta.deletion_timestamp
        .is_none()
        .then(|| meta.generation.unwrap_or(0))
}

/// The stall the object is in. Normally only a stall recorded for the current generation
/// counts, so a spec change retries. While deleting, the current Stalled condition counts
/// whatever its generation: setting deletionTimestamp bumps metadata.generation, and the fields
/// that define the remote job are immutable, so the stall still describes the object. Above all
/// a name conflict: the job under that name is someone else's, and the cleanup must not look it
/// up by name and delete it.
fn recorded_stall(obj: &BatchEvaluation) -> Option<StallReason> {
    status::recorded_stall(obj.status.as_ref(), stall_generation(obj.meta()))
}

/// How much longer the recorded status is as fresh as a poll: it was written (`lastSyncedAt`)
/// less than `poll_interval` before `now`, after an observation rather than a failure. `None`
/// when it is not, or when the clock reads earlier than the stamp.
fn fresh_for(
    current: &BatchEvaluationStatus,
    poll_interval: Duration,
    now: Timestamp,
) -> Option<Duration> {
    if status::recorded_failure(current) {
        return None;
    }
    let synced: Timestamp = current.last_synced_at.as_deref()?.parse().ok()?;
    let age = Duration::try_from(now.duration_since(synced)).ok()?;
    poll_interval
        .checked_sub(age)
        .filter(|left| !left.is_zero())
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

    use super::*;
    use crate::{batch_evaluation::reason::Reason, remote::FailureKind};

    #[test]
    fn a_status_is_fresh_for_one_poll_interval_after_an_observation() {
        let synced: Timestamp = "2026-11-27T10:00:00Z".parse().unwrap();
        let at = |seconds: i64| synced + jiff::SignedDuration::from_secs(seconds);
        let interval = Duration::from_secs(10);
        let mut current = BatchEvaluationStatus {
            last_synced_at: Some(synced.to_string()),
            ..Default::default()
        };
        assert_eq!(
            fresh_for(&current, interval, at(3)),
            Some(Duration::from_secs(7))
        );
        assert_eq!(fresh_for(&current, interval, at(10)), None);
        assert_eq!(fresh_for(&current, interval, at(60)), None);
        // A clock behind the stamp (another replica's) proves nothing: poll.
        assert_eq!(fresh_for(&current, interval, at(-5)), None);
        // A status written for a failure is not an observation of the job.
        current.conditions = vec![Condition {
            type_: status::READY.into(),
            status: "False".into(),
            reason: Reason::from(FailureKind::Throttled).as_str().into(),
            message: String::new(),
            observed_generation: None,
            last_transition_time: Time(synced),
        }];
        assert_eq!(fresh_for(&current, interval, at(3)), None);
        current.last_synced_at = None;
        current.conditions.clear();
        assert_eq!(fresh_for(&current, interval, at(3)), None);
    }

    #[test]
    fn a_stall_survives_the_generation_bump_of_the_deletion() {
        let mut obj = BatchEvaluation::new("collision", crate::api::BatchEvaluationSpec::default());
        obj.meta_mut().generation = Some(1);
        obj.status = Some(BatchEvaluationStatus {
            conditions: vec![Condition {
                type_: status::STALLED.into(),
                status: "True".into(),
                reason: Reason::from(StallReason::NameConflict).as_str().into(),
                message: String::new(),
                observed_generation: Some(1),
                last_transition_time: Time(Timestamp::UNIX_EPOCH),
            }],
            ..BatchEvaluationStatus::default()
        });
        assert_eq!(recorded_stall(&obj), Some(StallReason::NameConflict));
        // A spec change: the stall no longer holds, the operator tries again.
        obj.meta_mut().generation = Some(2);
        assert_eq!(recorded_stall(&obj), None);
        // Deletion, which is what bumped the generation: the stall still holds, however many
        // generations lie between (deletionPolicy and stop stay mutable).
        obj.meta_mut().deletion_timestamp = Some(Time(Timestamp::UNIX_EPOCH));
        for generation in [2, 5] {
            obj.meta_mut().generation = Some(generation);
            assert_eq!(recorded_stall(&obj), Some(StallReason::NameConflict));
        }
    }
}
