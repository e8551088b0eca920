//! Input validation driven by the service model: required members, unions with exactly one
//! member, list/map/string lengths, numeric ranges, enums and anchored patterns. Produces either
//! a cleaned copy of the input (unknown members and nulls dropped, timestamps normalised) or a
//! ValidationException naming every offending member by its JSON path.

use serde_json::{Map, Value};

use crate::{
    model::{Bounds, Location, ServiceModel, Shape},
    operation::Operation,
    wire::{ApiError, ErrorCode, FieldError, ValidationReason},
};

/// The pieces of an HTTP request that carry an operation's input members.
#[derive(Debug, Default)]
pub(crate) struct RawInput<'a> {
    /// Parsed JSON body, if the operation has one.
    pub body: Option<Value>,
    /// URI labels, e.g. `("batchEvaluationId", "...")`.
    pub uri: &'a [(&'a str, &'a str)],
    /// Query parameters as sent.
    pub query: &'a [(String, String)],
}

/// Validates an operation's input and returns it as one cleaned JSON object.
pub(crate) fn validate_input(
    model: &ServiceModel,
    op: Operation,
    input: RawInput<'_>,
) -> Result<Value, ApiError> {
    let shape_name = model
        .operation(op)
        .map(|o| o.input.as_str())
        .ok_or_else(|| ApiError::new(ErrorCode::InternalServerException, "model has no input"))?;
    let Some(Shape::Structure { members, .. }) = model.shape(shape_name) else {
        return Err(ApiError::new(
            ErrorCode::InternalServerException,
            "input is not a structure",
        ));
    };

    let mut walker = Walker {
        model,
        violations: Vec::new(),
        unparseable: Vec::new(),
    };
    let mut combined = Map::new();
    let body = match input.body {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(map)) => map,
        Some(_) => {
            return Err(ApiError::validation(
                ValidationReason::CannotParse,
                "The request body must be a JSON object",
                Vec::new(),
            ));
        }
    };
    for member in members {
        let value = match member.location {
            Location::Body => body.get(&member.name).cloned(),
            Location::Uri => input
                .uri
                .iter()
                .find(|(name, _)| *name == member.name)
                .map(|(_, v)| Value::String((*v).to_owned())),
            Location::Query => input
                .query
                .iter()
                .rev()
                .find(|(name, _)| *name == member.name)
                .map(|(_, v)| walker.query_value(&member.name, &member.target, v)),
        };
        if let Some(value) = value {
            combined.insert(member.name.clone(), value);
        }
    }
    let cleaned = walker.value("", shape_name, &Value::Object(combined));
    if !walker.unparseable.is_empty() {
        return Err(ApiError::invalid_fields(
            ValidationReason::CannotParse,
            walker.unparseable,
        ));
    }
    if !walker.violations.is_empty() {
        return Err(ApiError::invalid_fields(
            ValidationReason::FieldValidationFailed,
            walker.violations,
        ));
    }
    Ok(cleaned.unwrap_or_else(|| Value::Object(Map::new())))
}

struct Walker<'m> {
    model: &'m ServiceModel,
    /// Values of the right type that break a constraint (reason FieldValidationFailed).
    violations: Vec<FieldError>,
    /// Values of the wrong JSON type (reason CannotParse).
    unparseable: Vec<FieldError>,
}

fn child(path: &str, name: &str) -> String {
    if path.is_empty() {
        name.to_owned()
    } else {
        format!("{path}.{name}")
    }
}

fn fmt_bound(n: f64) -> String {
    if n.fract() == 0.0 {
        format!("{n:.0}")
    } else {
        n.to_string()
    }
}

impl Walker<'_> {
    fn violation(&mut self, path: &str, constraint: impl std::fmt::Display) {
        self.violations.push(FieldError {
            name: path.to_owned(),
            message: format!("Value at '{path}' failed to satisfy constraint: {constraint}"),
        });
    }

    fn unparseable(&mut self, path: &str, expected: &str) {
        self.unparseable.push(FieldError {
            name: path.to_owned(),
            message: format!("Value at '{path}' could not be parsed: expected {expected}"),
        });
    }

    /// Query parameters arrive as strings; numbers are converted here so the structure walk
    /// applies the same range checks as for JSON members.
    fn query_value(&mut self, name: &str, target: &str, raw: &str) -> Value {
        match self.model.shape(target) {
            Some(Shape::Integer { .. }) => match raw.parse::<i64>() {
                Ok(n) => Value::from(n),
                Err(_) => {
                    self.unparseable(name, "an integer");
                    Value::Null
                }
            },
            _ => Value::String(raw.to_owned()),
        }
    }

    fn length(&mut self, path: &str, len: usize, bounds: Bounds) {
        let len = len as f64;
        if let Some(min) = bounds.min.filter(|min| len < *min) {
            self.violation(
                path,
                format_args!(
                    "Member must have length greater than or equal to {}",
                    fmt_bound(min)
                ),
            );
        }
        if let Some(max) = bounds.max.filter(|max| len > *max) {
            self.violation(
                path,
                format_args!(
                    "Member must have length less than or equal to {}",
                    fmt_bound(max)
                ),
            );
        }
    }

    fn range(&mut self, path: &str, n: f64, bounds: Bounds) {
        if let Some(min) = bounds.min.filter(|min| n < *min) {
            self.violation(
                path,
                format_args!(
                    "Member must have value greater than or equal to {}",
                    fmt_bound(min)
                ),
            );
        }
        if let Some(max) = bounds.max.filter(|max| n > *max) {
            self.violation(
                path,
                format_args!(
                    "Member must have value less than or equal to {}",
                    fmt_bound(max)
                ),
            );
        }
    }

    /// Validates `value` against `shape_name`; returns the cleaned value, or `None` when the
    /// value had the wrong JSON type.
    fn value(&mut self, path: &str, shape_name: &str, value: &Value) -> Option<Value> {
        let model = self.model;
        let Some(shape) = model.shape(shape_name) else {
            // The model's references are checked at load time, so this is unreachable in
            // practice; treat an unknown shape as unconstrained rather than failing requests.
            return Some(value.clone());
        };
        match shape {
            Shape::Structure {
                members,
                required,
                union,
            } => {
                let Some(object) = value.as_object() else {
                    self.unparseable(path, "a JSON object");
                    return None;
                };
                let mut cleaned = Map::new();
                for member in members {
                    let member_path = child(path, &member.name);
                    match object.get(&member.name) {
                        None | Some(Value::Null) => {
                            if required.contains(&member.name) {
                                self.violation(&member_path, "Member must not be null");
                            }
                        }
                        Some(v) => {
                            if let Some(v) = self.value(&member_path, &member.target, v) {
                                cleaned.insert(member.name.clone(), v);
                            }
                        }
                    }
                }
                if *union && cleaned.len() != 1 {
                    let names: Vec<&str> = members.iter().map(|m| m.name.as_str()).collect();
                    let set: Vec<&str> = cleaned.keys().map(String::as_str).collect();
                    let path = if path.is_empty() { "(root)" } else { path };
                    self.violation(
                        path,
                        format_args!(
                            "Member must have exactly one member set, one of [{}]; got {}",
                            names.join(", "),
                            if set.is_empty() {
                                "none".to_owned()
                            } else {
                                set.join(", ")
                            }
                        ),
                    );
                }
                Some(Value::Object(cleaned))
            }
            Shape::List { member, len } => {
                let Some(items) = value.as_array() else {
                    self.unparseable(path, "a JSON array");
                    return None;
                };
                self.length(path, items.len(), *len);
                let mut cleaned = Vec::with_capacity(items.len());
                for (i, item) in items.iter().enumerate() {
                    let item_path = format!("{path}[{i}]");
                    if item.is_null() {
                        self.violation(&item_path, "Member must not be null");
                    } else if let Some(v) = self.value(&item_path, member, item) {
                        cleaned.push(v);
                    }
                }
                Some(Value::Array(cleaned))
            }
            Shape::Map {
                key,
                value: value_shape,
                len,
            } => {
                let Some(entries) = value.as_object() else {
                    self.unparseable(path, "a JSON object");
                    return None;
                };
                self.length(path, entries.len(), *len);
                let mut cleaned = Map::new();
                for (k, v) in entries {
                    let entry_path = child(path, k);
                    let before = self.violations.len();
                    self.value(&entry_path, key, &Value::String(k.clone()));
                    for key_violation in &mut self.violations[before..] {
                        key_violation.message =
                            key_violation.message.replacen("Value at", "Map key at", 1);
                    }
                    if v.is_null() {
                        self.violation(&entry_path, "Member must not be null");
                    } else if let Some(v) = self.value(&entry_path, value_shape, v) {
                        cleaned.insert(k.clone(), v);
                    }
                }
                Some(Value::Object(cleaned))
            }
            Shape::String {
                len,
                pattern,
                enumeration,
            } => {
                let Some(s) = value.as_str() else {
                    self.unparseable(path, "a string");
                    return None;
                };
                self.length(path, s.chars().count(), *len);
                if let Some((source, regex)) = pattern
                    && !regex.is_match(s)
                {
                    self.violation(
                        path,
                        format_args!("Member must satisfy regular expression pattern: {source}"),
                    );
                }
                if let Some(allowed) = enumeration
                    && !allowed.iter().any(|a| a == s)
                {
                    self.violation(
                        path,
                        format_args!(
                            "Member must satisfy enum value set: [{}]",
                            allowed.join(", ")
                        ),
                    );
                }
                Some(value.clone())
            }
            Shape::Integer { range } => {
                let Some(n) = value.as_i64() else {
                    self.unparseable(path, "an integer");
                    return None;
                };
                self.range(path, n as f64, *range);
                Some(value.clone())
            }
            Shape::Double { range } => {
                let Some(n) = value.as_f64() else {
                    self.unparseable(path, "a number");
                    return None;
                };
                self.range(path, n, *range);
                Some(value.clone())
            }
            Shape::Boolean => {
                if value.is_boolean() {
                    Some(value.clone())
                } else {
                    self.unparseable(path, "a boolean");
                    None
                }
            }
            Shape::Timestamp => {
                match value
                    .as_str()
                    .and_then(|s| s.parse::<jiff::Timestamp>().ok())
                {
                    Some(ts) => Some(Value::String(ts.to_string())),
                    None => {
                        self.unparseable(path, "an ISO-8601 date-time string");
                        None
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn model() -> ServiceModel {
        ServiceModel::load().unwrap()
    }

    fn start(body: Value) -> Result<Value, ApiError> {
        validate_input(
            &model(),
            Operation::StartBatchEvaluation,
            RawInput {
                body: Some(body),
                ..RawInput::default()
            },
        )
    }

    fn minimal() -> Value {
        json!({
            "batchEvaluationName": "eval_1",
            "dataSourceConfig": { "cloudWatchLogs": { "serviceNames": ["svc"] } }
        })
    }

    fn fields(err: &ApiError) -> Vec<&str> {
        err.field_names()
    }

    #[test]
    fn minimal_request_is_valid_and_unknown_members_are_dropped() {
        let mut body = minimal();
        body["somethingNew"] = json!(42);
        body["description"] = Value::Null;
        let cleaned = start(body).unwrap();
        assert_eq!(cleaned, minimal());
    }

    #[test]
    fn required_members_are_reported_by_path() {
        let err = start(json!({ "dataSourceConfig": { "cloudWatchLogs": {} } })).unwrap_err();
        assert_eq!(err.reason(), Some("FieldValidationFailed"));
        assert_eq!(
            fields(&err),
            [
                "batchEvaluationName",
                "dataSourceConfig.cloudWatchLogs.serviceNames"
            ]
        );
        assert!(
            err.message.starts_with("2 validation errors detected"),
            "{}",
            err.message
        );
    }

    #[test]
    fn list_lengths_and_nested_patterns() {
        let mut body = minimal();
        body["evaluators"] = (0..11)
            .map(|i| json!({ "evaluatorId": format!("Builtin.E{i}") }))
            .collect();
        body["dataSourceConfig"]["cloudWatchLogs"]["serviceNames"] = json!(["a", "b"]);
        body["insights"] = json!([{ "insightId": "Builtin.ok" }, { "insightId": "bad id" }]);
        let err = start(body).unwrap_err();
        assert_eq!(
            fields(&err),
            [
                "evaluators",
                "insights[1].insightId",
                "dataSourceConfig.cloudWatchLogs.serviceNames"
            ]
        );
        assert!(
            err.message.contains("less than or equal to 10"),
            "{}",
            err.message
        );
    }

    #[test]
    fn patterns_must_match_the_whole_value() {
        let mut body = minimal();
        body["batchEvaluationName"] = json!("ok-but-has-dash");
        body["kmsKeyArn"] = json!("arn:aws:kms:us-east-1:123456789012:key/short");
        let err = start(body).unwrap_err();
        assert_eq!(fields(&err), ["batchEvaluationName", "kmsKeyArn"]);
    }

    #[test]
    fn union_needs_exactly_one_member() {
        let mut body = minimal();
        body["dataSourceConfig"]["onlineEvaluationConfigSource"] = json!({
            "onlineEvaluationConfigArn": "arn:aws:bedrock-agentcore:us-east-1:123456789012:online-evaluation-config/cfg-0123456789"
        });
        let err = start(body).unwrap_err();
        assert_eq!(fields(&err), ["dataSourceConfig"]);

        let mut body = minimal();
        body["dataSourceConfig"] = json!({});
        assert_eq!(fields(&start(body).unwrap_err()), ["dataSourceConfig"]);

        let mut body = minimal();
        body["outputConfig"] = json!({ "cloudWatchConfig": { "resultDestination": "ELSEWHERE" } });
        let err = start(body).unwrap_err();
        assert_eq!(
            fields(&err),
            ["outputConfig.cloudWatchConfig.resultDestination"]
        );
        assert!(err.message.contains("DEDICATED_LOG_GROUP"));
    }

    #[test]
    fn maps_check_count_keys_and_values() {
        let mut body = minimal();
        let tags: Map<String, Value> = (0..51)
            .map(|i| (format!("k{i}"), Value::from("v")))
            .collect();
        body["tags"] = Value::Object(tags);
        assert_eq!(fields(&start(body).unwrap_err()), ["tags"]);

        let mut body = minimal();
        body["tags"] = json!({ "emulator:outcome": "FAILED", "bad!": "x", "k": "no*" });
        let err = start(body).unwrap_err();
        assert_eq!(fields(&err), ["tags.bad!", "tags.k"]);
        assert!(
            err.message.contains("Map key at 'tags.bad!'"),
            "{}",
            err.message
        );
    }

    #[test]
    fn wrong_types_and_timestamps_are_cannot_parse() {
        let mut body = minimal();
        body["dataSourceConfig"]["cloudWatchLogs"]["filterConfig"] =
            json!({ "timeRange": { "startTime": 1767225600 } });
        let err = start(body).unwrap_err();
        assert_eq!(err.reason(), Some("CannotParse"));
        assert_eq!(
            fields(&err),
            ["dataSourceConfig.cloudWatchLogs.filterConfig.timeRange.startTime"]
        );

        let mut body = minimal();
        body["dataSourceConfig"]["cloudWatchLogs"]["filterConfig"] =
            json!({ "timeRange": { "startTime": "2026-01-02T05:04:05+02:00" } });
        let cleaned = start(body).unwrap();
        assert_eq!(
            cleaned["dataSourceConfig"]["cloudWatchLogs"]["filterConfig"]["timeRange"]["startTime"],
            "2026-01-02T03:04:05Z"
        );
    }

    #[test]
    fn client_token_and_trace_id_lengths() {
        let mut body = minimal();
        body["clientToken"] = json!("short");
        body["dataSourceConfig"]["cloudWatchLogs"]["filterConfig"] = json!({
            "sessionTraceIds": [{ "sessionId": "s", "traceIds": ["0123"] }]
        });
        let err = start(body).unwrap_err();
        assert_eq!(
            fields(&err),
            [
                "dataSourceConfig.cloudWatchLogs.filterConfig.sessionTraceIds[0].traceIds[0]",
                "clientToken"
            ],
            "violations are reported in model member order"
        );
    }

    #[test]
    fn uri_and_query_members() {
        let m = model();
        let ok = validate_input(
            &m,
            Operation::GetBatchEvaluation,
            RawInput {
                uri: &[("batchEvaluationId", "eval-0123456789")],
                ..RawInput::default()
            },
        )
        .unwrap();
        assert_eq!(ok["batchEvaluationId"], "eval-0123456789");

        let err = validate_input(
            &m,
            Operation::DeleteBatchEvaluation,
            RawInput {
                uri: &[("batchEvaluationId", "nope")],
                ..RawInput::default()
            },
        )
        .unwrap_err();
        assert_eq!(fields(&err), ["batchEvaluationId"]);

        let query = [("maxResults".to_owned(), "0".to_owned())];
        let err = validate_input(
            &m,
            Operation::ListBatchEvaluations,
            RawInput {
                query: &query,
                ..RawInput::default()
            },
        )
        .unwrap_err();
        assert_eq!(fields(&err), ["maxResults"]);
        assert!(err.message.contains("greater than or equal to 1"));

        let query = [("maxResults".to_owned(), "many".to_owned())];
        let err = validate_input(
            &m,
            Operation::ListBatchEvaluations,
            RawInput {
                query: &query,
                ..RawInput::default()
            },
        )
        .unwrap_err();
        assert_eq!(err.reason(), Some("CannotParse"));
    }

    #[test]
    fn body_must_be_an_object() {
        let err = start(json!([1, 2])).unwrap_err();
        assert_eq!(err.reason(), Some("CannotParse"));
    }
}
