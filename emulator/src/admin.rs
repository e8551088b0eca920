//! The emulator's own API under `/_emulator/`, for tests and demos: counters, every job ever
//! created, fault settings, and reset. Never subject to fault injection.

use std::sync::Arc;

use axum::{
    Json,
    body::Bytes,
    extract::{Query, State, rejection::QueryRejection},
    http::StatusCode,
    response::{IntoResponse, Response},
};
use serde_json::json;

use crate::{faults::FaultConfig, server::AppState, sts::StsSettings};

pub(crate) async fn health() -> Response {
    Json(json!({ "status": "ok" })).into_response()
}

pub(crate) async fn stats(State(app): State<Arc<AppState>>) -> Response {
    Json(app.stats.snapshot()).into_response()
}

/// Query of `GET /_emulator/jobs`: only the jobs of one account and/or region.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct JobFilter {
    account: Option<String>,
    region: Option<String>,
}

pub(crate) async fn jobs(
    State(app): State<Arc<AppState>>,
    filter: Result<Query<JobFilter>, QueryRejection>,
) -> Response {
    let Query(filter) = match filter {
        Ok(filter) => filter,
        Err(e) => return bad_request(format!("invalid job filter: {}", e.body_text())),
    };
    let jobs: Vec<_> = app
        .store
        .jobs()
        .into_iter()
        .filter(|j| filter.account.as_ref().is_none_or(|a| *a == j.account))
        .filter(|j| filter.region.as_ref().is_none_or(|r| *r == j.region))
        .collect();
    Json(json!({ "jobs": jobs })).into_response()
}

/// STS settings and every credential issued (no secrets).
pub(crate) async fn get_sts(State(app): State<Arc<AppState>>) -> Response {
    sts_report(&app)
}

/// Replaces the STS settings until the next reset.
pub(crate) async fn put_sts(State(app): State<Arc<AppState>>, body: Bytes) -> Response {
    let settings = match serde_json::from_slice::<StsSettings>(&body) {
        Ok(settings) => settings,
        Err(e) => return bad_request(format!("invalid STS settings: {e}")),
    };
    app.sts.set_settings(settings);
    tracing::info!("STS settings replaced");
    sts_report(&app)
}

fn sts_report(app: &AppState) -> Response {
    let mut report = serde_json::to_value(app.sts.settings()).unwrap_or_default();
    if let Some(map) = report.as_object_mut() {
        map.insert("sessions".into(), json!(app.sts.sessions()));
    }
    Json(report).into_response()
}

/// Operations per object (client token or job id) and their peak per second.
pub(crate) async fn objects(State(app): State<Arc<AppState>>) -> Response {
    Json(app.objects.snapshot()).into_response()
}

/// The quota of active jobs and, per account and region, the active jobs and their peak.
pub(crate) async fn get_quota(State(app): State<Arc<AppState>>) -> Response {
    Json(app.store.quota()).into_response()
}

/// Body of `PUT /_emulator/quota`.
#[derive(Debug, serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct QuotaSetting {
    /// `null` or absent: unlimited.
    #[serde(default)]
    max_active_jobs: Option<u32>,
}

/// Replaces the quota of active jobs per account and region until the next reset.
pub(crate) async fn put_quota(State(app): State<Arc<AppState>>, body: Bytes) -> Response {
    let setting = match serde_json::from_slice::<QuotaSetting>(&body) {
        Ok(setting) => setting,
        Err(e) => return bad_request(format!("invalid quota setting: {e}")),
    };
    app.store.set_max_active(setting.max_active_jobs);
    tracing::info!(max_active_jobs = ?setting.max_active_jobs, "quota replaced");
    Json(app.store.quota()).into_response()
}

pub(crate) async fn get_faults(State(app): State<Arc<AppState>>) -> Response {
    Json(app.faults.current()).into_response()
}

/// Replaces every fault setting; script progress starts over.
pub(crate) async fn put_faults(State(app): State<Arc<AppState>>, body: Bytes) -> Response {
    let config = match serde_json::from_slice::<FaultConfig>(&body) {
        Ok(config) => config,
        Err(e) => return bad_request(format!("invalid fault configuration: {e}")),
    };
    if let Err(e) = config.validate() {
        return bad_request(format!("invalid fault configuration: {e}"));
    }
    app.faults.set(&config);
    tracing::info!(faults = %serde_json::to_string(&config).unwrap_or_default(), "faults replaced");
    Json(app.faults.current()).into_response()
}

pub(crate) async fn clear_faults(State(app): State<Arc<AppState>>) -> Response {
    app.faults.set(&FaultConfig::default());
    tracing::info!("faults cleared");
    Json(app.faults.current()).into_response()
}

/// Forgets all jobs and counters and restores the start-up faults.
pub(crate) async fn reset(State(app): State<Arc<AppState>>) -> Response {
    app.reset();
    tracing::info!("emulator reset");
    StatusCode::NO_CONTENT.into_response()
}

fn bad_request(message: String) -> Response {
    (StatusCode::BAD_REQUEST, Json(json!({ "message": message }))).into_response()
}
