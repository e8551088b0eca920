//! Safe adoption: a job is managed by one object only. Adopting an id that another object in
//! the cluster already records (it started or adopted the job) or adopts first is refused, so the
//! first owner is never disturbed and deleting the second touches nothing. Pure: the reconciler
//! passes the objects of its cache.

use std::sync::Arc;

use kube::{Resource, ResourceExt};

use crate::batch_evaluation::cached::CachedEvaluation;

/// `namespace/name` of the object that owns the job `id` that `me` asks to adopt, if another
/// one does: it records `id`, or it adopts `id` too and was created first (creation time, then
/// namespace and name, so every replica decides the same).
#[must_use]
pub fn owner_of(id: &str, me: &impl Resource, objects: &[Arc<CachedEvaluation>]) -> Option<String> {
    objects
        .iter()
        .filter(|other| other.uid() != me.uid())
        .find(|other| {
            let records = other.recorded_id() == Some(id);
            let adopts_first = other.spec.adopt_batch_evaluation_id() == Some(id)
                && order(other.as_ref()) < order(me);
            records || adopts_first
        })
        .map(|other| {
            format!(
                "{}/{} already manages batch evaluation {id}; this object does not adopt it",
                other.namespace().unwrap_or_default(),
                other.name_any()
            )
        })
}

/// Who came first: creation time, then namespace and name.
fn order(obj: &impl Resource) -> (Option<jiff::Timestamp>, Option<String>, String) {
    (
        obj.meta().creation_timestamp.as_ref().map(|t| t.0),
        obj.namespace(),
        obj.name_any(),
    )
}

#[cfg(test)]
mod tests {
    use jiff::Timestamp;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    use super::*;
    use crate::api::{BatchEvaluation, BatchEvaluationSpec, BatchEvaluationStatus};

    const ID: &str = "shared_job-0123456789";

    fn object(
        ns: &str,
        name: &str,
        created: i64,
        adopts: bool,
        records: bool,
    ) -> Arc<CachedEvaluation> {
        let mut obj = BatchEvaluation::new(
            name,
            BatchEvaluationSpec {
                adopt_batch_evaluation_id: adopts.then(|| ID.to_owned()),
                ..BatchEvaluationSpec::default()
            },
        );
        let meta = obj.meta_mut();
        meta.namespace = Some(ns.into());
        meta.uid = Some(format!("uid-{ns}-{name}"));
        meta.creation_timestamp = Some(Time(
            Timestamp::from_second(created).unwrap_or(Timestamp::UNIX_EPOCH),
        ));
        obj.status = records.then(|| BatchEvaluationStatus {
            batch_evaluation_id: Some(ID.into()),
            ..BatchEvaluationStatus::default()
        });
        Arc::new(CachedEvaluation::of(&obj).expect("cached form"))
    }

    #[test]
    fn the_first_owner_keeps_the_job() {
        let starter = object("tenant-a", "started-it", 10, false, true);
        let first = object("tenant-a", "first", 20, true, false);
        let second = object("tenant-b", "second", 30, true, false);
        let all = vec![starter.clone(), first.clone(), second.clone()];
        let owner = |me: &Arc<CachedEvaluation>| owner_of(ID, me.as_ref(), &all);
        // The object that records the id owns it against every adopter.
        assert!(owner(&first).is_some_and(|m| m.starts_with("tenant-a/started-it ")));
        assert!(owner(&second).is_some_and(|m| m.contains("tenant-a/started-it")));
        // Without a recorder, the first adopter wins; it is never refused itself.
        let adopters = vec![first.clone(), second.clone()];
        assert_eq!(owner_of(ID, first.as_ref(), &adopters), None);
        assert!(
            owner_of(ID, second.as_ref(), &adopters).is_some_and(|m| m.contains("tenant-a/first"))
        );
        // Alone, or once it recorded the id itself, an object owns it.
        assert_eq!(
            owner_of(ID, first.as_ref(), std::slice::from_ref(&first)),
            None
        );
        let recorded = object("tenant-a", "first", 20, true, true);
        assert_eq!(
            owner_of(ID, recorded.as_ref(), &[recorded.clone(), second]),
            None
        );
    }
}
