//! The HTTP server: shared state, routes, and serving until shutdown.

use std::{sync::Arc, time::Duration};

use axum::{
    Router,
    extract::DefaultBodyLimit,
    http::Request,
    middleware::{self, Next},
    response::Response,
    routing::{get, post},
};
use tokio::sync::watch;

use crate::{
    admin, api,
    conn::{ConnectionHandle, CuttableListener},
    faults::FaultEngine,
    model::ServiceModel,
    objects::ObjectRecorder,
    stats::StatsRecorder,
    store::Store,
    sts::{self, Sts},
    wire,
};

/// Large enough for 500 sessions of inline ground truth; the service publishes no limit.
const BODY_LIMIT: usize = 16 * 1024 * 1024;

/// Everything a request handler needs.
pub(crate) struct AppState {
    pub model: ServiceModel,
    pub store: Store,
    pub faults: FaultEngine,
    pub stats: StatsRecorder,
    pub objects: ObjectRecorder,
    /// Identities and the credentials issued by STS.
    pub sts: Sts,
    pub default_region: String,
    pub default_session_count: u32,
    pub shutdown: watch::Receiver<bool>,
}

/// The emulator is shutting down; pending waits end early.
pub(crate) struct ShuttingDown;

impl AppState {
    /// Sleeps for `duration` unless the emulator shuts down first.
    pub(crate) async fn pause(&self, duration: Duration) -> Result<(), ShuttingDown> {
        let mut shutdown = self.shutdown.clone();
        tokio::select! {
            () = tokio::time::sleep(duration) => Ok(()),
            _ = shutdown.wait_for(|stopping| *stopping) => Err(ShuttingDown),
        }
    }

    pub(crate) fn reset(&self) {
        self.store.reset();
        self.stats.reset();
        self.objects.reset();
        self.faults.reset();
        self.sts.reset();
    }
}

pub(crate) fn router(app: Arc<AppState>) -> Router {
    let service = Router::new()
        // STS's Query protocol: form-encoded POSTs to `/` naming an `Action`.
        .route("/", post(sts::query))
        .route(
            "/evaluations/batch-evaluate",
            post(api::start_batch_evaluation).get(api::list_batch_evaluations),
        )
        .route(
            "/evaluations/batch-evaluate/{batchEvaluationId}",
            get(api::get_batch_evaluation).delete(api::delete_batch_evaluation),
        )
        .route(
            "/evaluations/batch-evaluate/{batchEvaluationId}/stop",
            post(api::stop_batch_evaluation),
        );
    let admin = Router::new()
        .route("/_emulator/health", get(admin::health))
        .route("/_emulator/stats", get(admin::stats))
        .route("/_emulator/jobs", get(admin::jobs))
        .route("/_emulator/objects", get(admin::objects))
        .route("/_emulator/sts", get(admin::get_sts).put(admin::put_sts))
        .route(
            "/_emulator/quota",
            get(admin::get_quota).put(admin::put_quota),
        )
        .route(
            "/_emulator/faults",
            get(admin::get_faults)
                .put(admin::put_faults)
                .delete(admin::clear_faults),
        )
        .route("/_emulator/reset", post(admin::reset));
    service
        .merge(admin)
        .fallback(api::unknown_operation)
        .method_not_allowed_fallback(api::unknown_operation)
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(middleware::from_fn(request_id))
        .with_state(app)
}

/// Every response, admin and fallback included, carries `x-amzn-RequestId`.
async fn request_id(request: Request<axum::body::Body>, next: Next) -> Response {
    let mut response = next.run(request).await;
    if !response.headers().contains_key(wire::REQUEST_ID_HEADER) {
        wire::ensure_request_id(&mut response, &wire::new_request_id());
    }
    response
}

/// Serves until `shutdown` turns true, then finishes in-flight requests.
pub(crate) async fn serve(
    listener: CuttableListener,
    router: Router,
    mut shutdown: watch::Receiver<bool>,
) -> std::io::Result<()> {
    axum::serve(
        listener,
        router.into_make_service_with_connect_info::<ConnectionHandle>(),
    )
    .with_graceful_shutdown(async move {
        let _ = shutdown.wait_for(|stopping| *stopping).await;
    })
    .await
}
