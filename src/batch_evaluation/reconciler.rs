//! Reconciles one `BatchEvaluation`, as a pipeline:
//!
//! 1. [`Snapshot`]: read the object (fresh from the API server where a Start may follow) and
//!    derive the pure view the decisions need;
//! 2. [`drive`]: perform the decided steps through [`Effects`] (AWS calls and the finalizer
//!    patch), here [`LiveEffects`];
//! 3. [`outcome`]: compute status, events, per-object metrics and the requeue, purely;
//! 4. [`apply`]: write that outcome once.
//!
//! This is the only place where Kubernetes and AWS calls happen for one object.

use std::{
    collections::{HashMap, HashSet},
    sync::{Arc, Mutex, OnceLock, PoisonError},
    time::{Duration, Instant},
};

use jiff::Timestamp;
use kube::{
    Api, Client, Resource, ResourceExt,
    api::{Patch, PatchParams},
    runtime::{
        controller::Action,
        events::{EventType, Recorder, Reporter},
        reflector::{ObjectRef, Store},
    },
};
use rand::Rng;
use serde::de::IgnoredAny;
use serde_json::json;
use tracing::{info, instrument, warn};

use crate::{
    api::{BatchEvaluation, BatchEvaluationStatus, FINALIZER},
    aws::{AgentCore, Scope, StartRequest},
    batch_evaluation::{
        admission::StartQueue,
        adoption,
        cached::CachedEvaluation,
        drive::{Effects, drive},
        lifecycle::StallReason,
        naming,
        outcome::{MetricsUpdate, Outcome, Requeue, outcome},
        reason::Reason,
        snapshot::Snapshot,
    },
    error::Error,
    metrics::Metrics,
    remote::{FailureKind, RemoteJob, RemoteStatus},
    tenancy::Tenancy,
};

/// Settings of the reconciler.
#[derive(Clone, Debug)]
pub struct Settings {
    /// How often a running job is polled (jittered by ±10%).
    pub poll_interval: Duration,
    /// Region for objects that name none.
    pub default_region: String,
    /// Which AWS identity each namespace acts with, and where adoption is allowed.
    pub tenancy: Tenancy,
    /// The most jobs of this operator active at once per region and account (`--max-active-jobs`); more
    /// objects wait in the start queue.
    pub max_active_jobs: Option<usize>,
}

/// Everything a reconcile needs, created once.
pub struct Context {
    pub client: Client,
    pub aws: AgentCore,
    /// Shared by all reconciles, so that a repeated Warning becomes one event series.
    pub recorder: Recorder,
    /// For the per-reconcile recorder of Normal events (see [`publish`]).
    pub reporter: Reporter,
    pub metrics: Arc<Metrics>,
    pub settings: Settings,
    /// Objects waiting for their first Start (AWS quota, `--max-active-jobs`).
    pub queue: StartQueue,
    /// The controller's cache of every object, once it runs.
    cache: OnceLock<Store<CachedEvaluation>>,
    /// Consecutive failures per object UID, for backoff.
    failures: Mutex<HashMap<String, u32>>,
}

impl Context {
    #[must_use]
    pub fn new(
        client: Client,
        aws: AgentCore,
        reporter: Reporter,
        metrics: Arc<Metrics>,
        settings: Settings,
    ) -> Self {
        Self {
            queue: StartQueue::new(
                settings.max_active_jobs,
                settings.default_region.clone(),
                settings.tenancy.clone(),
                metrics.clone(),
            ),
            cache: OnceLock::new(),
            recorder: Recorder::new(client.clone(), reporter.clone()),
            reporter,
            client,
            aws,
            metrics,
            settings,
            failures: Mutex::default(),
        }
    }

    /// Connects the reconciles to the controller's cache and wake-up channel.
    pub fn attach(
        &self,
        store: Store<CachedEvaluation>,
        wake: futures::channel::mpsc::UnboundedSender<ObjectRef<CachedEvaluation>>,
    ) {
        self.queue.attach(store.clone(), wake);
        // Set once per controller run.
        let _ = self.cache.set(store);
    }

    /// Forgets an object the API server no longer has: its metric series and its backoff count.
    /// The operator's own release removes them first; this covers an object released without
    /// it (a finalizer removed by hand, another controller's).
    pub fn forget(&self, obj: &CachedEvaluation) {
        self.metrics
            .set_object(&obj.namespace().unwrap_or_default(), &obj.name_any(), None);
        if let Some(uid) = obj.uid() {
            self.clear_failures(&uid);
        }
    }

    /// Forgets every object the controller's cache no longer has. A watch that expired is
    /// resumed with a fresh list, which sends no Delete for what was deleted in between.
    pub fn forget_missing(&self) {
        let Some(cache) = self.cache.get() else {
            return;
        };
        self.metrics.retain_objects(|namespace, name| {
            cache.get(&ObjectRef::new(name).within(namespace)).is_some()
        });
        let mut failures = self.failures.lock().unwrap_or_else(PoisonError::into_inner);
        // Usually empty (always at start-up, when the first list is done): then the whole cache
        // is not walked.
        if !failures.is_empty() {
            let present: HashSet<String> = cache.state().iter().filter_map(|o| o.uid()).collect();
            failures.retain(|uid, _| present.contains(uid));
        }
    }

    fn next_failure(&self, uid: &str) -> u32 {
        let mut failures = self.failures.lock().unwrap_or_else(PoisonError::into_inner);
        let n = failures.entry(uid.to_owned()).or_insert(0);
        *n = n.saturating_add(1);
        *n
    }

    fn clear_failures(&self, uid: &str) {
        self.failures
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(uid);
    }
}

/// Reconciles one object. Errors are Kubernetes failures; AWS failures are part of the lifecycle.
///
/// # Errors
/// [`Error::Kube`] when a Kubernetes call fails, [`Error::InvalidObject`] for an object that
/// cannot be worked on.
#[instrument(skip_all, fields(namespace = obj.namespace().unwrap_or_default(), name = obj.name_any(), id))]
pub async fn reconcile(obj: Arc<CachedEvaluation>, ctx: Arc<Context>) -> Result<Action, Error> {
    let started = Instant::now();
    let result = reconcile_object(obj, &ctx).await;
    let (success, label) = match &result {
        Ok((_, label)) => (true, *label),
        Err(e) => (false, e.metric_label()),
    };
    ctx.metrics
        .observe_reconcile(success, label, started.elapsed());
    result.map(|(action, _)| action)
}

/// Requeue policy for reconcile errors (Kubernetes API failures): capped exponential backoff.
pub fn error_policy(obj: Arc<CachedEvaluation>, error: &Error, ctx: Arc<Context>) -> Action {
    warn!(namespace = obj.namespace().unwrap_or_default(), name = obj.name_any(), error = %error, "reconcile failed");
    let attempt = ctx.next_failure(&obj.uid().unwrap_or_default());
    Action::requeue(backoff(
        attempt,
        Duration::from_millis(500),
        Duration::from_secs(60),
    ))
}

async fn reconcile_object(
    obj: Arc<CachedEvaluation>,
    ctx: &Context,
) -> Result<(Action, &'static str), Error> {
    let Some(obj) = read(&obj, ctx).await? else {
        return Ok((Action::await_change(), "Gone"));
    };
    let settings = &ctx.settings;
    let mut snapshot = Snapshot::of(
        &obj,
        &settings.default_region,
        &settings.tenancy,
        settings.poll_interval,
        Timestamp::now(),
    )?;
    if let (Some(id), None, None, Some(cache)) = (
        &snapshot.view.adopt_id,
        &snapshot.view.recorded_id,
        snapshot.view.blocked,
        ctx.cache.get(),
    ) {
        snapshot.adoption_conflict = adoption::owner_of(id, &obj, &cache.state());
        if snapshot.adoption_conflict.is_some() {
            snapshot.view.blocked = Some(StallReason::AdoptionConflict);
        }
    }
    let place = ctx.queue.admit(&snapshot).await;
    snapshot.view.queued = place.is_some();
    if let Some(id) = &snapshot.status.batch_evaluation_id {
        tracing::Span::current().record("id", id.as_str());
    }
    let effects = LiveEffects {
        ctx,
        obj: &obj,
        snapshot: &snapshot,
        finalized: OnceLock::new(),
    };
    let driven = drive(snapshot.view.clone(), &effects).await?;
    let now = Timestamp::now();
    let place = ctx.queue.settle(&obj, &snapshot, &driven, place, now);
    let outcome = outcome(
        &snapshot,
        &driven,
        place.as_ref(),
        settings.poll_interval,
        now,
    );
    apply(ctx, &obj, &snapshot, outcome).await
}

/// The object to work on: the cached one, or a fresh read where the cache could hide a
/// just-recorded job id. `None` when it is gone.
async fn read(obj: &CachedEvaluation, ctx: &Context) -> Result<Option<BatchEvaluation>, Error> {
    if !obj.needs_fresh_read() {
        return obj
            .to_object()
            .map(Some)
            .map_err(|e| Error::InvalidObject(format!("status: {e}")));
    }
    let namespace = obj
        .namespace()
        .ok_or_else(|| Error::InvalidObject("no metadata.namespace".into()))?;
    let api: Api<BatchEvaluation> = Api::namespaced(ctx.client.clone(), &namespace);
    Ok(api.get_opt(&obj.name_any()).await?)
}

/// Writes the outcome: status, metrics, events, finalizer, in that order, and turns its
/// requeue into the controller's action. The metrics follow the status at once, so a scrape
/// right after `kubectl wait` sees what the object says; events (API calls, best effort) come
/// after.
async fn apply(
    ctx: &Context,
    obj: &BatchEvaluation,
    snapshot: &Snapshot,
    outcome: Outcome,
) -> Result<(Action, &'static str), Error> {
    if let Some(status) = &outcome.status {
        patch_status(&ctx.client, snapshot, status).await?;
    }
    // The series follow the status at once; a released object's go before its finalizer, since
    // once that is off the object can vanish and `kubectl delete` return before this task
    // resumes. A release that fails is retried and removes them again.
    match outcome.metrics {
        MetricsUpdate::Set(metrics) => {
            ctx.metrics
                .set_object(&snapshot.namespace, &snapshot.name, Some(metrics));
        }
        MetricsUpdate::Remove => {
            ctx.metrics
                .set_object(&snapshot.namespace, &snapshot.name, None);
        }
        MetricsUpdate::Keep => {}
    }
    publish(ctx, obj, outcome.events).await;
    if let Some(release) = outcome.release {
        info!(
            reason = Reason::from(release).as_str(),
            "releasing finalizer"
        );
        remove_finalizer(&ctx.client, snapshot, obj).await?;
    }
    let action = match outcome.requeue {
        Requeue::Backoff(kind) => {
            let (base, cap) = retry_window(kind);
            Action::requeue(backoff(ctx.next_failure(&snapshot.uid), base, cap))
        }
        other => {
            ctx.clear_failures(&snapshot.uid);
            match other {
                Requeue::Poll(interval) => Action::requeue(jittered(interval)),
                Requeue::After(delay) => Action::requeue(delay),
                Requeue::AwaitChange | Requeue::Backoff(_) => Action::await_change(),
            }
        }
    };
    Ok((action, outcome.label))
}

/// The production [`Effects`]: the AWS client in the object's region, and the API server.
struct LiveEffects<'a> {
    ctx: &'a Context,
    obj: &'a BatchEvaluation,
    snapshot: &'a Snapshot,
    /// The object as the finalizer patch returned it, when this reconcile added the finalizer.
    finalized: OnceLock<BatchEvaluation>,
}

impl LiveEffects<'_> {
    /// The object's region and identity.
    fn scope(&self) -> Scope<'_> {
        Scope {
            region: &self.snapshot.region,
            role_arn: self.snapshot.identity.role_arn(),
            namespace: &self.snapshot.namespace,
        }
    }
}

impl Effects for LiveEffects<'_> {
    async fn add_finalizer(&self) -> Result<(), Error> {
        let api = Api::namespaced(self.ctx.client.clone(), &self.snapshot.namespace);
        let written = add_finalizer(&api, self.obj).await?;
        let _ = self.finalized.set(written);
        Ok(())
    }

    async fn get(&self, id: &str) -> Result<Option<RemoteJob>, Error> {
        self.ctx.aws.get(&self.scope(), id).await
    }

    async fn find_by_name(&self) -> Result<Option<RemoteJob>, Error> {
        self.ctx
            .aws
            .find_by_name(&self.scope(), &self.snapshot.remote_name)
            .await
    }

    async fn start(&self) -> Result<RemoteJob, Error> {
        let token = naming::client_token(&self.snapshot.uid)?;
        // The cache keeps no more of the spec than decisions read (see `cached`): a Start sends
        // the spec of an object read from the API server, either fresh before this reconcile
        // (`CachedEvaluation::needs_fresh_read`) or as the finalizer patch just before it
        // returned it.
        let spec = self.finalized.get().map_or(&self.obj.spec, |obj| &obj.spec);
        let request = StartRequest {
            name: &self.snapshot.remote_name,
            client_token: &token,
            spec,
        };
        self.ctx.aws.start(&self.scope(), request).await
    }

    async fn stop(&self, id: &str) -> Result<Option<RemoteStatus>, Error> {
        self.ctx.aws.stop(&self.scope(), id).await
    }

    async fn delete(&self, id: &str) -> Result<Option<RemoteStatus>, Error> {
        self.ctx.aws.delete(&self.scope(), id).await
    }
}

/// Publishes Warnings through the shared recorder, which folds a repeated one into a series,
/// and Normal events through a recorder of this reconcile. Normal events mark one-off
/// transitions that do not repeat, while the shared recorder keeps every event it publishes for
/// six minutes and scans them all on each publish: its table was 34 MiB of the operator's
/// 41 MiB peak heap after 1,000 lifecycles in a minute (agentcore-bench, heaptrack), and grows
/// with every lifecycle in the window.
async fn publish(ctx: &Context, obj: &BatchEvaluation, events: Vec<kube::runtime::events::Event>) {
    if events.is_empty() {
        return;
    }
    let reference = obj.object_ref(&());
    let one_off = Recorder::new(ctx.client.clone(), ctx.reporter.clone());
    for event in events {
        let recorder = match event.type_ {
            EventType::Normal => &one_off,
            EventType::Warning => &ctx.recorder,
        };
        // Events are best effort: losing one must never fail or repeat a lifecycle step.
        if let Err(e) = recorder.publish(&event, &reference).await {
            warn!(error = %e, reason = %event.reason, "could not publish event");
        }
    }
}

/// Adds the finalizer with a JSON Patch whose `test` makes a concurrent change fail instead of
/// being overwritten. Returns the object as the API server stored it.
async fn add_finalizer(
    api: &Api<BatchEvaluation>,
    obj: &BatchEvaluation,
) -> Result<BatchEvaluation, Error> {
    let patch = if obj.meta().finalizers.is_none() {
        json!([
            { "op": "test", "path": "/metadata/finalizers", "value": null },
            { "op": "add", "path": "/metadata/finalizers", "value": [FINALIZER] },
        ])
    } else {
        json!([
            { "op": "test", "path": "/metadata/finalizers", "value": obj.finalizers() },
            { "op": "add", "path": "/metadata/finalizers/-", "value": FINALIZER },
        ])
    };
    Ok(api
        .patch(
            &obj.name_any(),
            &PatchParams::default(),
            &json_patch(patch)?,
        )
        .await?)
}

async fn remove_finalizer(
    client: &Client,
    snapshot: &Snapshot,
    obj: &BatchEvaluation,
) -> Result<(), Error> {
    let Some(index) = obj.finalizers().iter().position(|f| f == FINALIZER) else {
        return Ok(());
    };
    let path = format!("/metadata/finalizers/{index}");
    let patch = json_patch(json!([
        { "op": "test", "path": path, "value": FINALIZER },
        { "op": "remove", "path": path },
    ]))?;
    match send_patch(client, snapshot, Target::Object, &patch).await {
        // Already gone: another reconcile or a person removed it.
        Err(Error::Kube(kube::Error::Api(e))) if e.code == 404 => Ok(()),
        other => other,
    }
}

fn json_patch(patch: serde_json::Value) -> Result<Patch<()>, Error> {
    serde_json::from_value(patch)
        .map(Patch::Json)
        .map_err(|e| Error::InvalidObject(e.to_string()))
}

/// Replaces the whole status in one JSON Patch `add`: fields that disappeared are removed
/// (a merge patch would keep them), and no resourceVersion is needed, so label or annotation
/// edits by others never conflict with it. The patch is built as a value, not through
/// `json!` and a parse: this runs on every status write.
async fn patch_status(
    client: &Client,
    snapshot: &Snapshot,
    status: &BatchEvaluationStatus,
) -> Result<(), Error> {
    let value = serde_json::to_value(status).map_err(|e| Error::InvalidObject(e.to_string()))?;
    let patch = Patch::Json(json_patch::Patch(vec![json_patch::PatchOperation::Add(
        json_patch::AddOperation {
            path: json_patch::jsonptr::Pointer::from_static("/status").to_buf(),
            value,
        },
    )]));
    send_patch(client, snapshot, Target::Status, &patch).await
}

/// What a patch changes: the object (its metadata) or its status subresource.
#[derive(Clone, Copy)]
enum Target {
    Object,
    Status,
}

/// Sends a patch and skips the object the API server answers with instead of decoding it, as
/// `Api::patch` would: that answer is the whole object, managed fields and all, and nothing
/// reads it (the watch brings the change to the cache). Only the finalizer's addition, whose
/// answer a Start may read, goes through `Api::patch`.
async fn send_patch(
    client: &Client,
    snapshot: &Snapshot,
    target: Target,
    patch: &Patch<()>,
) -> Result<(), Error> {
    let request =
        kube::core::Request::new(BatchEvaluation::url_path(&(), Some(&snapshot.namespace)));
    let params = PatchParams::default();
    // The second name labels the request in kube's client traces, as `Api` does.
    let (request, traced_as) = match target {
        Target::Object => (request.patch(&snapshot.name, &params, patch), "patch"),
        Target::Status => (
            request.patch_subresource("status", &snapshot.name, &params, patch),
            "patch_status",
        ),
    };
    let mut request = request.map_err(kube::Error::BuildRequest)?;
    request.extensions_mut().insert(traced_as);
    client.request::<IgnoredAny>(request).await?;
    Ok(())
}

/// Base and cap of the retry backoff for one kind of failure.
const fn retry_window(kind: FailureKind) -> (Duration, Duration) {
    match kind {
        // "Not in the state you thought": re-read soon.
        FailureKind::Conflict => (Duration::from_secs(1), Duration::from_secs(10)),
        FailureKind::AccessDenied | FailureKind::Unauthorized => {
            (Duration::from_secs(5), Duration::from_secs(300))
        }
        // The head of the start queue while jobs started elsewhere hold the quota: its own
        // jobs finishing wake it sooner.
        FailureKind::QuotaExceeded => (Duration::from_secs(5), Duration::from_secs(60)),
        _ => (Duration::from_secs(1), Duration::from_secs(60)),
    }
}

/// Capped exponential backoff with full jitter over the upper half.
fn backoff(attempt: u32, base: Duration, cap: Duration) -> Duration {
    let exp = base.saturating_mul(2u32.saturating_pow(attempt.saturating_sub(1).min(16)));
    let ceiling = exp.min(cap);
    let factor = rand::rng().random_range(0.5..=1.0);
    ceiling.mul_f64(factor)
}

fn jittered(interval: Duration) -> Duration {
    interval.mul_f64(rand::rng().random_range(0.9..=1.1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        let cap = Duration::from_secs(60);
        for attempt in 1..40 {
            let d = backoff(attempt, Duration::from_secs(1), cap);
            assert!(d <= cap, "attempt {attempt}: {d:?}");
        }
        assert!(backoff(1, Duration::from_secs(1), cap) <= Duration::from_secs(1));
        assert!(backoff(10, Duration::from_secs(1), cap) >= Duration::from_secs(30));
    }

    #[test]
    fn conflicts_retry_sooner_than_access_problems() {
        assert!(retry_window(FailureKind::Conflict).1 < retry_window(FailureKind::AccessDenied).1);
    }
}
