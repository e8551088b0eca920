//! The `BatchEvaluation` controller: its watch (a cache of projections, relevance filter), the kube-runtime
//! `Controller` around [`reconciler::reconcile`], and the cache readiness the operator's
//! `/readyz` reports.

use std::{
    hash::{DefaultHasher, Hash, Hasher},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use futures::{StreamExt, TryStreamExt, future};
use kube::{
    Api, Resource, ResourceExt,
    runtime::{
        Controller, WatchStreamExt,
        controller::Config as ControllerConfig,
        reflector::{self, ObjectRef},
        watcher,
    },
};
use tokio::sync::watch;
use tracing::{info, warn};

use crate::{
    api::FORCE_RELEASE_ANNOTATION,
    batch_evaluation::{
        cached::CachedEvaluation,
        reconciler::{self, Context},
    },
};

/// Runs the controller over `api` until `stop` turns true; sets `ready` once the cache synced.
pub async fn run(
    api: Api<CachedEvaluation>,
    ctx: Arc<Context>,
    concurrency: u16,
    ready: Arc<AtomicBool>,
    mut stop: watch::Receiver<bool>,
) {
    let (reader, mut writer) = reflector::store();
    let ready_reader = reader.clone();
    let (wake, woken) = futures::channel::mpsc::unbounded();
    ctx.attach(reader.clone(), wake);
    let queue_ctx = ctx.clone();
    // kube-runtime's store readiness is a oneshot that wakes only the last of several waiters,
    // and the controller waits on it too: re-poll on a timer instead of awaiting it once. The
    // timer is short because a restart is ready only when it fires (agentcore-bench's restart
    // phase measured every start at the timer's 500 ms when it was that long).
    tokio::spawn(async move {
        loop {
            match tokio::time::timeout(Duration::from_millis(20), ready_reader.wait_until_ready())
                .await
            {
                Ok(Ok(())) => {
                    queue_ctx.queue.mark_synced();
                    ready.store(true, Ordering::Relaxed);
                    info!("watch cache synced; ready");
                    return;
                }
                Ok(Err(_)) => return,
                Err(_) => {}
            }
        }
    });
    let forget = ctx.clone();
    let store = reader.clone();
    let stream = watcher(api, watcher::Config::default())
        .default_backoff()
        // What kube-runtime's `reflect` and `predicate_filter` do, in one step: whether an
        // object needs a reconcile is decided against the version the cache holds before it
        // takes the new one, so no table of hashes per object is kept beside the cache
        // (`predicate_filter`'s kept 211 bytes per object for an hour: 2.1 MB at 10,000).
        .map_ok(move |event| {
            let triggers = match &event {
                watcher::Event::Apply(obj) | watcher::Event::InitApply(obj) => {
                    needs_reconcile(store.get(&ObjectRef::from_obj(obj)).as_deref(), obj)
                }
                _ => false,
            };
            writer.apply_watcher_event(&event);
            // A deleted object's series go with it, however its finalizer came off. A watch
            // that expired resumes with a fresh list and no Delete for what went in between:
            // once the cache holds the new list, what it lacks is forgotten.
            match &event {
                watcher::Event::Delete(obj) => forget.forget(obj),
                watcher::Event::InitDone => forget.forget_missing(),
                _ => {}
            }
            match event {
                watcher::Event::Apply(obj) | watcher::Event::InitApply(obj) if triggers => {
                    Some(request_key(obj))
                }
                _ => None,
            }
        })
        .try_filter_map(future::ok);

    Controller::for_stream(stream, reader)
        .with_config(ControllerConfig::default().concurrency(concurrency))
        // The start queue wakes its head when it moves (a job finished, an object left it).
        .reconcile_on(woken)
        .graceful_shutdown_on(async move {
            let _ = stop.wait_for(|stop| *stop).await;
        })
        .run(reconciler::reconcile, reconciler::error_policy, ctx)
        .for_each(|result| async move {
            if let Err(e) = result {
                match e {
                    kube::runtime::controller::Error::ReconcilerFailed(..) => {}
                    other => warn!(error = %other, "controller"),
                }
            }
        })
        .await;
    info!("controller stopped");
}

/// What of a changed object the controller receives. kube-runtime makes its request key of it
/// (`ObjectRef::from_obj`) and drops it; the reconcile reads the cache's version. The key carries
/// the uid and resourceVersion but never compares them, and every request waiting in kube-runtime's
/// scheduler, and every requeue, is kept twice (its table and its timer queue): without the two
/// strings, an object that waits costs about 110 bytes less.
fn request_key(mut obj: CachedEvaluation) -> CachedEvaluation {
    obj.metadata.uid = None;
    obj.metadata.resource_version = None;
    obj
}

/// Changes that need a reconcile: the spec (generation), deletion, finalizers, and the
/// operator's own annotation (the force-release escape hatch does not bump the generation). The operator's own status writes pass none of these, so they cost no
/// reconcile; nor do labels and annotations written by other tools (GitOps tracking ids, ...).
fn relevant_change(obj: &CachedEvaluation) -> u64 {
    let mut hasher = DefaultHasher::new();
    obj.meta().generation.hash(&mut hasher);
    obj.meta().deletion_timestamp.is_some().hash(&mut hasher);
    obj.finalizers().hash(&mut hasher);
    obj.annotations()
        .get(FORCE_RELEASE_ANNOTATION)
        .hash(&mut hasher);
    obj.meta().uid.hash(&mut hasher);
    hasher.finish()
}

/// Whether `new`, as the watch delivers it, needs a reconcile, given the version the cache
/// held before (`None`: the controller has not seen the object yet, as at start-up).
fn needs_reconcile(cached: Option<&CachedEvaluation>, new: &CachedEvaluation) -> bool {
    cached.is_none_or(|cached| relevant_change(cached) != relevant_change(new))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::BatchEvaluation;
    use std::collections::BTreeMap;

    /// Whether `new` needs a reconcile when the cache holds `cached`.
    fn triggers(cached: Option<&BatchEvaluation>, new: &BatchEvaluation) -> bool {
        let project = |obj: &BatchEvaluation| CachedEvaluation::of(obj).expect("cached form");
        needs_reconcile(cached.map(project).as_ref(), &project(new))
    }

    fn object() -> BatchEvaluation {
        let mut obj = BatchEvaluation::new("demo", crate::api::BatchEvaluationSpec::default());
        obj.meta_mut().generation = Some(1);
        obj
    }

    /// The request key made of the copy the controller receives finds the cached object, uid
    /// and all: the key's missing uid and resourceVersion take no part in the lookup.
    #[test]
    fn the_request_key_finds_the_cached_object() {
        let mut obj = object();
        obj.meta_mut().namespace = Some("team-a".into());
        obj.meta_mut().uid = Some("0b4e7a52-6a3c-4cbb-9a39-2b7c1f0e9d11".into());
        obj.meta_mut().resource_version = Some("4711".into());
        let cached = CachedEvaluation::of(&obj).expect("cached form");
        let (reader, mut writer) = reflector::store();
        writer.apply_watcher_event(&watcher::Event::Apply(cached.clone()));

        let key = ObjectRef::from_obj(&request_key(cached));
        assert_eq!(
            (
                key.extra.uid.as_deref(),
                key.extra.resource_version.as_deref()
            ),
            (None, None)
        );
        let found = reader.get(&key).expect("the cached object");
        assert_eq!(found.meta().uid, obj.meta().uid);
        assert_eq!(found.meta().resource_version, obj.meta().resource_version);
    }

    #[test]
    fn status_writes_do_not_trigger_but_the_escape_hatch_does() {
        let base = object();
        // Not in the cache yet (a new object, or every object at start-up).
        assert!(triggers(None, &base));
        assert!(!triggers(Some(&base), &base));

        let mut with_status = base.clone();
        with_status.status = Some(crate::api::BatchEvaluationStatus {
            observed_generation: 1,
            ..Default::default()
        });
        assert!(!triggers(Some(&base), &with_status));

        let mut annotated = base.clone();
        annotated.meta_mut().annotations = Some(BTreeMap::from([(
            FORCE_RELEASE_ANNOTATION.to_owned(),
            "true".to_owned(),
        )]));
        assert!(triggers(Some(&base), &annotated));

        // Another tool's annotations and labels: no reconcile, so no AWS call.
        let mut foreign = base.clone();
        foreign.meta_mut().annotations = Some(BTreeMap::from([(
            "argocd.argoproj.io/tracking-id".to_owned(),
            "app:evals.agentcore.dev/BatchEvaluation:team-a/demo".to_owned(),
        )]));
        foreign.meta_mut().labels = Some(BTreeMap::from([("team".to_owned(), "a".to_owned())]));
        assert!(!triggers(Some(&base), &foreign));

        let mut finalized = base.clone();
        finalized.meta_mut().finalizers = Some(vec![crate::api::FINALIZER.into()]);
        assert!(triggers(Some(&base), &finalized));

        let mut respec = base.clone();
        respec.meta_mut().generation = Some(2);
        assert!(triggers(Some(&base), &respec));

        let mut deleting = base.clone();
        deleting.meta_mut().deletion_timestamp = Some(
            k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(jiff::Timestamp::UNIX_EPOCH),
        );
        assert!(triggers(Some(&base), &deleting));

        // Deleted and created again under the same name while the watch was away.
        let mut recreated = base.clone();
        recreated.meta_mut().uid = Some("another".into());
        assert!(triggers(Some(&base), &recreated));
    }
}
