//! The `BatchEvaluationSchedule` controller: watches schedules and the runs they own (a run that
//! changes wakes its schedule), and requeues each schedule at its next slot.

use std::{
    hash::{DefaultHasher, Hash, Hasher},
    sync::Arc,
};

use futures::{StreamExt, TryStreamExt};
use kube::{
    Api, Resource, ResourceExt,
    runtime::{
        Controller, WatchStreamExt, controller::Config as ControllerConfig, reflector, watcher,
    },
};
use tokio::sync::watch;
use tracing::{info, warn};

use crate::{
    api::BatchEvaluation,
    schedule::{
        api::{BatchEvaluationSchedule, RUN_NOW_ANNOTATION, SCHEDULE_LABEL},
        reconciler::{self, Context},
    },
};

/// Runs the controller until `stop` turns true.
pub async fn run(
    schedules: Api<BatchEvaluationSchedule>,
    runs: Api<BatchEvaluation>,
    ctx: Arc<Context>,
    concurrency: u16,
    mut stop: watch::Receiver<bool>,
) {
    let (reader, writer) = reflector::store();
    let forget = ctx.clone();
    let stream = watcher(schedules, watcher::Config::default())
        .default_backoff()
        // A deleted schedule's gauges go with it.
        .inspect_ok(move |event| {
            if let watcher::Event::Delete(obj) = event {
                forget.forget(&obj.namespace().unwrap_or_default(), &obj.name_any());
            }
        })
        .modify(|obj: &mut BatchEvaluationSchedule| {
            // `None`, not cleared: a cleared vector keeps its buffer.
            obj.meta_mut().managed_fields = None;
        })
        .reflect(writer)
        .applied_objects()
        .predicate_filter(relevant_change, Default::default());
    Controller::for_stream(stream, reader)
        .owns(runs, watcher::Config::default().labels(SCHEDULE_LABEL))
        .with_config(ControllerConfig::default().concurrency(concurrency))
        .graceful_shutdown_on(async move {
            let _ = stop.wait_for(|stop| *stop).await;
        })
        .run(reconciler::reconcile, reconciler::error_policy, ctx)
        .for_each(|result| async move {
            if let Err(e) = result {
                match e {
                    // Logged by the error policy; a run's event for a schedule just deleted.
                    kube::runtime::controller::Error::ReconcilerFailed(..)
                    | kube::runtime::controller::Error::ObjectNotFound(..) => {}
                    other => warn!(error = %other, "schedule controller"),
                }
            }
        })
        .await;
    info!("schedule controller stopped");
}

/// Changes that need a reconcile: the spec, deletion, and the run-now annotation. The
/// operator's own status writes pass none of these.
fn relevant_change(obj: &BatchEvaluationSchedule) -> Option<u64> {
    let mut hasher = DefaultHasher::new();
    obj.meta().generation.hash(&mut hasher);
    obj.meta().deletion_timestamp.is_some().hash(&mut hasher);
    obj.annotations().get(RUN_NOW_ANNOTATION).hash(&mut hasher);
    obj.meta().uid.hash(&mut hasher);
    Some(hasher.finish())
}
