//! The five service operations on the wire: request parsing, the fault pipeline around each
//! call, and the response bodies.

use std::{sync::Arc, time::Instant};

use axum::{
    body::Bytes,
    extract::{
        ConnectInfo, Path, Query, State, rejection::PathRejection, rejection::QueryRejection,
    },
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
};
use serde_json::{Map, Value, json};

use crate::{
    conn::ConnectionHandle,
    faults::{Injection, MalformedKind},
    job::{self, JobSpec},
    operation::Operation,
    server::AppState,
    stats::{OUTCOME_DROPPED, OUTCOME_MALFORMED},
    store::JobView,
    sts::{Caller, Refusal},
    validate::{RawInput, validate_input},
    wire::{
        self, ApiError, ErrorCode, ValidationReason, bytes_response, format_timestamp,
        json_response,
    },
};

/// Default page size of ListBatchEvaluations.
const DEFAULT_MAX_RESULTS: usize = 50;

type Success = (StatusCode, Value);

pub(crate) async fn start_batch_evaluation(
    State(app): State<Arc<AppState>>,
    ConnectInfo(conn): ConnectInfo<ConnectionHandle>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let subject = serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|b| b.get("clientToken")?.as_str().map(str::to_owned));
    dispatch(
        &app,
        &conn,
        Operation::StartBatchEvaluation,
        &headers,
        subject,
        |app, caller| {
            let body = parse_body(&body)?;
            let input = validate_input(
                &app.model,
                Operation::StartBatchEvaluation,
                RawInput {
                    body: Some(body),
                    ..RawInput::default()
                },
            )?;
            let spec = JobSpec::from_request(input, app.default_session_count)?;
            let view = app.store.start(
                &caller.scope,
                caller.principal.as_ref().map(|p| p.arn.as_str()),
                spec,
            )?;
            Ok((StatusCode::ACCEPTED, start_body(&view)))
        },
    )
    .await
}

pub(crate) async fn get_batch_evaluation(
    State(app): State<Arc<AppState>>,
    ConnectInfo(conn): ConnectInfo<ConnectionHandle>,
    headers: HeaderMap,
    id: Result<Path<String>, PathRejection>,
) -> Response {
    on_job(
        &app,
        &conn,
        Operation::GetBatchEvaluation,
        &headers,
        id,
        |app, caller, id| {
            let view = app.store.get(&caller.scope, id)?;
            Ok((StatusCode::OK, get_body(&view)))
        },
    )
    .await
}

pub(crate) async fn list_batch_evaluations(
    State(app): State<Arc<AppState>>,
    ConnectInfo(conn): ConnectInfo<ConnectionHandle>,
    headers: HeaderMap,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Response {
    dispatch(
        &app,
        &conn,
        Operation::ListBatchEvaluations,
        &headers,
        None,
        |app, caller| {
            let Query(query) = query.map_err(|e| {
                ApiError::validation(ValidationReason::CannotParse, e.body_text(), Vec::new())
            })?;
            let input = validate_input(
                &app.model,
                Operation::ListBatchEvaluations,
                RawInput {
                    query: &query,
                    ..RawInput::default()
                },
            )?;
            let max_results = input
                .get("maxResults")
                .and_then(Value::as_u64)
                .and_then(|n| usize::try_from(n).ok())
                .unwrap_or(DEFAULT_MAX_RESULTS);
            let token = input.get("nextToken").and_then(Value::as_str);
            let (page, next) = app.store.list(&caller.scope, max_results, token)?;
            let summaries: Vec<Value> = page.iter().map(summary_body).collect();
            let mut body = Map::new();
            body.insert("batchEvaluations".into(), summaries.into());
            put(&mut body, "nextToken", next);
            Ok((StatusCode::OK, body.into()))
        },
    )
    .await
}

pub(crate) async fn stop_batch_evaluation(
    State(app): State<Arc<AppState>>,
    ConnectInfo(conn): ConnectInfo<ConnectionHandle>,
    headers: HeaderMap,
    id: Result<Path<String>, PathRejection>,
) -> Response {
    on_job(
        &app,
        &conn,
        Operation::StopBatchEvaluation,
        &headers,
        id,
        |app, caller, id| {
            let view = app.store.stop(&caller.scope, id)?;
            let mut body = identity(&view);
            put(&mut body, "description", view.spec.description.clone());
            Ok((StatusCode::ACCEPTED, body.into()))
        },
    )
    .await
}

pub(crate) async fn delete_batch_evaluation(
    State(app): State<Arc<AppState>>,
    ConnectInfo(conn): ConnectInfo<ConnectionHandle>,
    headers: HeaderMap,
    id: Result<Path<String>, PathRejection>,
) -> Response {
    on_job(
        &app,
        &conn,
        Operation::DeleteBatchEvaluation,
        &headers,
        id,
        |app, caller, id| {
            let view = app.store.delete(&caller.scope, id)?;
            Ok((StatusCode::ACCEPTED, identity(&view).into()))
        },
    )
    .await
}

/// Anything that is not one of the five operations (or the admin API).
pub(crate) async fn unknown_operation() -> Response {
    let body = json!({ "__type": "UnknownOperationException", "message": "Unknown operation" });
    let mut response = json_response(StatusCode::NOT_FOUND, &body);
    response.headers_mut().insert(
        wire::ERROR_TYPE_HEADER,
        axum::http::HeaderValue::from_static("UnknownOperationException"),
    );
    response
}

/// Get, Stop and Delete: validates the path id and runs `action` on it through the fault
/// pipeline; the call counts against the job's client token, or its id without one.
async fn on_job<F>(
    app: &AppState,
    conn: &ConnectionHandle,
    op: Operation,
    headers: &HeaderMap,
    id: Result<Path<String>, PathRejection>,
    action: F,
) -> Response
where
    F: FnOnce(&AppState, &Caller, &str) -> Result<Success, ApiError>,
{
    let subject = id
        .as_ref()
        .ok()
        .map(|Path(id)| app.store.client_token_of(id).unwrap_or_else(|| id.clone()));
    dispatch(app, conn, op, headers, subject, |app, caller| {
        let id = path_id(app, op, id)?;
        action(app, caller, &id)
    })
    .await
}

/// Runs one call through the fault pipeline: latency → injected error or drop → the action →
/// error or drop after the action → hold → malformed body. Records the outcome, and the call
/// against `subject` (the object it names) on arrival.
async fn dispatch<F>(
    app: &AppState,
    conn: &ConnectionHandle,
    op: Operation,
    headers: &HeaderMap,
    subject: Option<String>,
    action: F,
) -> Response
where
    F: FnOnce(&AppState, &Caller) -> Result<Success, ApiError>,
{
    if let Some(subject) = &subject {
        app.objects.record(subject, op, headers);
    }
    let started = Instant::now();
    let request_id = wire::new_request_id();
    let region = wire::region_from_headers(headers)
        .unwrap_or(&app.default_region)
        .to_owned();
    let plan = app.faults.plan(op);
    let mut account = None;

    let outcome: Result<Result<Success, ApiError>, Dropped> = async {
        if let Some(latency) = plan.latency {
            app.pause(latency).await?;
        }
        match plan.before {
            Some(Injection::Drop) => return Err(Dropped),
            Some(Injection::Error(code)) => return Ok(Err(injected(code))),
            None => {}
        }
        // The credentials are checked where the service would, before the action itself.
        let caller = app.sts.caller(headers, region.clone(), Some(op));
        if let Ok(caller) = &caller {
            account = Some(caller.scope.account.clone());
        }
        let result = caller
            .map_err(Refusal::api_error)
            .and_then(|caller| action(app, &caller));
        let result = match plan.after {
            Some(Injection::Drop) => return Err(Dropped),
            Some(Injection::Error(code)) => Err(injected(code)),
            None => result,
        };
        if let Some(hold) = plan.hold {
            app.pause(hold).await?;
        }
        Ok(result)
    }
    .await;

    let (mut response, label) = match outcome {
        Err(Dropped) => {
            conn.cut();
            // Never written: the cut connection fails hyper's first write and is closed.
            (
                StatusCode::INTERNAL_SERVER_ERROR.into_response(),
                OUTCOME_DROPPED.to_owned(),
            )
        }
        Ok(Err(error)) => {
            let label = error.code.as_str().to_owned();
            (error.into_response(), label)
        }
        Ok(Ok((status, body))) => match plan.malformed {
            Some(kind) => (
                bytes_response(status, malform(app, op, kind, body)),
                OUTCOME_MALFORMED.to_owned(),
            ),
            None => (json_response(status, &body), status.as_str().to_owned()),
        },
    };
    app.stats.record(op, &label);
    wire::ensure_request_id(&mut response, &request_id);
    tracing::debug!(
        operation = op.as_str(),
        account = account.as_deref(),
        region,
        request_id,
        outcome = label,
        elapsed_us = started.elapsed().as_micros() as u64,
        "request"
    );
    response
}

/// The connection is to be closed without an answer.
struct Dropped;

impl From<crate::server::ShuttingDown> for Dropped {
    fn from(_: crate::server::ShuttingDown) -> Self {
        Dropped
    }
}

fn injected(code: ErrorCode) -> ApiError {
    match code {
        ErrorCode::ValidationException => ApiError::validation(
            ValidationReason::FieldValidationFailed,
            code.default_message(),
            Vec::new(),
        ),
        _ => ApiError::new(code, code.default_message()),
    }
}

fn parse_body(body: &[u8]) -> Result<Value, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        // restJson1 clients may send no body when every member is absent.
        return Ok(Value::Object(Map::new()));
    }
    serde_json::from_slice(body).map_err(|e| {
        ApiError::validation(
            ValidationReason::CannotParse,
            format!("The request body is not valid JSON: {e}"),
            Vec::new(),
        )
    })
}

/// The `{batchEvaluationId}` label, validated against the model like any member.
fn path_id(
    app: &AppState,
    op: Operation,
    id: Result<Path<String>, PathRejection>,
) -> Result<String, ApiError> {
    let Path(id) = id.map_err(|e| {
        ApiError::validation(ValidationReason::CannotParse, e.body_text(), Vec::new())
    })?;
    validate_input(
        &app.model,
        op,
        RawInput {
            uri: &[("batchEvaluationId", id.as_str())],
            ..RawInput::default()
        },
    )?;
    Ok(id)
}

fn put(map: &mut Map<String, Value>, key: &str, value: Option<impl Into<Value>>) {
    if let Some(value) = value {
        map.insert(key.to_owned(), value.into());
    }
}

fn id_list(ids: &[String], key: &str) -> Option<Value> {
    (!ids.is_empty()).then(|| ids.iter().map(|id| json!({ key: id })).collect())
}

fn identity(view: &JobView) -> Map<String, Value> {
    let mut body = Map::new();
    body.insert("batchEvaluationId".into(), view.id.clone().into());
    body.insert("batchEvaluationArn".into(), view.arn.clone().into());
    body.insert("status".into(), view.observation.status.as_str().into());
    body
}

fn common(view: &JobView) -> Map<String, Value> {
    let spec = &view.spec;
    let mut body = identity(view);
    body.insert("batchEvaluationName".into(), spec.name.clone().into());
    body.insert("createdAt".into(), format_timestamp(view.created_at).into());
    put(
        &mut body,
        "evaluators",
        id_list(&spec.evaluators, "evaluatorId"),
    );
    put(&mut body, "insights", id_list(&spec.insights, "insightId"));
    put(&mut body, "description", spec.description.clone());
    put(&mut body, "kmsKeyArn", spec.kms_key_arn.clone());
    body
}

fn start_body(view: &JobView) -> Value {
    let spec = &view.spec;
    let mut body = common(view);
    put(&mut body, "outputConfig", spec.output.clone());
    if !spec.tags.is_empty() {
        body.insert("tags".into(), json!(spec.tags));
    }
    body.into()
}

/// Results and timestamps shared by Get and List.
fn progress(view: &JobView, body: &mut Map<String, Value>) {
    body.insert("updatedAt".into(), format_timestamp(view.updated_at).into());
    let results =
        job::results(&view.spec, &view.observation).and_then(|r| serde_json::to_value(r).ok());
    put(body, "evaluationResults", results);
    put(
        body,
        "errorDetails",
        job::error_details(&view.spec, &view.observation),
    );
}

fn get_body(view: &JobView) -> Value {
    let spec = &view.spec;
    let mut body = common(view);
    progress(view, &mut body);
    body.insert("dataSourceConfig".into(), spec.data_source.clone());
    put(&mut body, "outputConfig", spec.output.clone());
    put(
        &mut body,
        "datasetExecutionDetails",
        spec.dataset_execution_details(),
    );
    body.into()
}

fn summary_body(view: &JobView) -> Value {
    let mut body = common(view);
    progress(view, &mut body);
    body.into()
}

/// Breaks a successful response body the way `kind` says.
fn malform(app: &AppState, op: Operation, kind: MalformedKind, mut body: Value) -> Vec<u8> {
    fn each_item(body: &mut Value, f: &mut dyn FnMut(&mut Map<String, Value>)) {
        if let Some(map) = body.as_object_mut() {
            f(map);
        }
        if let Some(items) = body
            .get_mut("batchEvaluations")
            .and_then(Value::as_array_mut)
        {
            for item in items.iter_mut().filter_map(Value::as_object_mut) {
                f(item);
            }
        }
    }
    match kind {
        MalformedKind::InvalidJson => {
            let mut text = body.to_string().into_bytes();
            // Any proper prefix of a JSON object is unbalanced, hence not JSON.
            text.truncate(text.len() / 2);
            return text;
        }
        MalformedKind::UnknownStatus => each_item(&mut body, &mut |m| {
            if m.contains_key("status") {
                m.insert("status".into(), "ARCHIVED".into());
            }
        }),
        MalformedKind::MissingRequired => {
            if let Some(map) = body.as_object_mut() {
                for member in app.model.output_required(op) {
                    map.remove(member);
                }
            }
        }
        MalformedKind::EpochTimestamps => each_item(&mut body, &mut |m| {
            for key in ["createdAt", "updatedAt"] {
                let epoch = m
                    .get(key)
                    .and_then(Value::as_str)
                    .and_then(|s| s.parse::<jiff::Timestamp>().ok())
                    .map(|ts| ts.as_second());
                if let Some(epoch) = epoch {
                    m.insert(key.into(), epoch.into());
                }
            }
        }),
    }
    body.to_string().into_bytes()
}
