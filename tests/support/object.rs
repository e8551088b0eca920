//! Reading a BatchEvaluation as JSON, as the API server returns it: status fields, conditions
//! and the metadata the operator manages. One set of readers for every test binary.

use serde_json::Value;

/// Prefix of the client token the operator sends with a Start: the object's UID follows.
pub const TOKEN_PREFIX: &str = "agentcore-operator-";
pub const FINALIZER: &str = "evals.agentcore.dev/cleanup";
pub const FORCE_RELEASE: &str = "evals.agentcore.dev/force-release";

/// The client token of the object with `uid`.
pub fn client_token(uid: &str) -> String {
    format!("{TOKEN_PREFIX}{uid}")
}

pub fn status_str<'a>(obj: &'a Value, field: &str) -> Option<&'a str> {
    obj.pointer(&format!("/status/{field}"))
        .and_then(Value::as_str)
}

pub fn condition<'a>(obj: &'a Value, type_: &str) -> Option<&'a Value> {
    obj.pointer("/status/conditions")?
        .as_array()?
        .iter()
        .find(|c| c.get("type").and_then(Value::as_str) == Some(type_))
}

fn condition_field<'a>(obj: &'a Value, type_: &str, field: &str) -> &'a str {
    condition(obj, type_)
        .and_then(|c| c.get(field))
        .and_then(Value::as_str)
        .unwrap_or("")
}

/// The condition's status (`"True"`, `"False"`, ...), or `""` without the condition.
pub fn cond_status<'a>(obj: &'a Value, type_: &str) -> &'a str {
    condition_field(obj, type_, "status")
}

/// The condition's reason, or `""`.
pub fn cond_reason<'a>(obj: &'a Value, type_: &str) -> &'a str {
    condition_field(obj, type_, "reason")
}

/// The condition's message, or `""`.
pub fn cond_message<'a>(obj: &'a Value, type_: &str) -> &'a str {
    condition_field(obj, type_, "message")
}

pub fn condition_is(obj: &Value, type_: &str, status: &str, reason: &str) -> bool {
    cond_status(obj, type_) == status && cond_reason(obj, type_) == reason
}

pub fn ready(obj: &Value) -> bool {
    cond_status(obj, "Ready") == "True"
}

/// The object exists and its job has `status` (`remoteStatus`).
pub fn remote_is(obj: Option<&Value>, status: &str) -> bool {
    obj.is_some_and(|o| status_str(o, "remoteStatus") == Some(status))
}

pub fn has_finalizer(obj: &Value) -> bool {
    obj.pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .is_some_and(|f| f.iter().any(|v| v.as_str() == Some(FINALIZER)))
}

pub fn deleting(obj: &Value) -> bool {
    obj.pointer("/metadata/deletionTimestamp").is_some()
}

/// Nothing left to do for the operator: Ready, or stalled, and not being deleted.
pub fn settled(obj: &Value) -> bool {
    !deleting(obj) && (ready(obj) || cond_status(obj, "Stalled") == "True")
}

pub fn uid(obj: &Value) -> String {
    str_at(obj, "/metadata/uid").to_owned()
}

/// The string at a JSON pointer, or `""`.
pub fn str_at<'a>(obj: &'a Value, pointer: &str) -> &'a str {
    obj.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

/// `metadata.namespace/metadata.name`.
pub fn key(obj: &Value) -> String {
    format!(
        "{}/{}",
        str_at(obj, "/metadata/namespace"),
        str_at(obj, "/metadata/name")
    )
}
