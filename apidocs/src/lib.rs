//! The API reference (`docs/api-reference.md`), generated from the CRD schema so that it cannot
//! drift from what the API server enforces: every field with its type, whether it is required,
//! its constraints (pattern, lengths, item counts, enum, default) and description, and every CEL
//! rule with its message. Regenerate with [`REGENERATE`]; `apidocs/tests/api_reference.rs` fails
//! when the checked-in file is stale. A development tool: it is not part of the operator binary.

use std::fmt::Write as _;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use serde_json::Value;

/// Where the reference is checked in, relative to the repository root.
pub const PATH: &str = "docs/api-reference.md";
/// The command that rewrites [`PATH`].
pub const REGENERATE: &str = "cargo run -q -p agentcore-apidocs > docs/api-reference.md";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("serializing the CRD: {0}")]
    Serialize(#[from] serde_json::Error),
    #[error("writing Markdown: {0}")]
    Format(#[from] std::fmt::Error),
    #[error("version {0} of the CRD has no openAPIV3Schema")]
    NoSchema(String),
}

struct Row {
    path: String,
    type_: String,
    required: bool,
    constraints: Vec<String>,
    description: String,
}

struct CelRule {
    path: String,
    rule: String,
    message: String,
}

/// Renders the reference of several CRDs, one after the other (`docs/api-reference.md`).
///
/// # Errors
/// As [`render`].
pub fn render_all(crds: &[CustomResourceDefinition]) -> Result<String, Error> {
    let parts = crds.iter().map(render).collect::<Result<Vec<_>, _>>()?;
    Ok(parts.join("\n"))
}

/// Renders the reference for every version of `crd`.
///
/// # Errors
/// Only if the CRD cannot be serialized or a version has no schema.
pub fn render(crd: &CustomResourceDefinition) -> Result<String, Error> {
    let crd = serde_json::to_value(crd)?;
    let text = |pointer: &str| {
        crd.pointer(pointer)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    let list = |pointer: &str| {
        crd.pointer(pointer)
            .and_then(Value::as_array)
            .map(|items| {
                items
                    .iter()
                    .filter_map(Value::as_str)
                    .map(|s| format!("`{s}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .unwrap_or_default()
    };
    let kind = text("/spec/names/kind");
    let group = text("/spec/group");

    let mut out = String::new();
    writeln!(out, "# {kind} API reference")?;
    writeln!(out)?;
    writeln!(
        out,
        "Generated from the CRD schema (`agentcore_operator::crdgen`, the same schema as \
         `crds/` and the chart) by `{REGENERATE}`. Do not edit by hand: `apidocs/tests/api_reference.rs` \
         fails when this file is stale. `kubectl explain {}.spec --recursive` shows \
         the same descriptions from a cluster.",
        kind.to_lowercase()
    )?;
    writeln!(out)?;
    writeln!(out, "| | |")?;
    writeln!(out, "|---|---|")?;
    writeln!(out, "| Group | `{group}` |")?;
    writeln!(out, "| Kind | `{kind}` |")?;
    writeln!(out, "| Plural | `{}` |", text("/spec/names/plural"))?;
    writeln!(out, "| Scope | {} |", text("/spec/scope"))?;
    writeln!(out, "| Short names | {} |", list("/spec/names/shortNames"))?;
    writeln!(out, "| Categories | {} |", list("/spec/names/categories"))?;

    let versions = crd
        .pointer("/spec/versions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    for version in &versions {
        render_version(&mut out, &group, version)?;
    }
    Ok(out)
}

fn render_version(out: &mut String, group: &str, version: &Value) -> Result<(), Error> {
    let name = version
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let schema = version
        .pointer("/schema/openAPIV3Schema")
        .ok_or_else(|| Error::NoSchema(name.to_owned()))?;
    writeln!(out)?;
    writeln!(out, "## `{group}/{name}`")?;
    writeln!(out)?;
    let flag = |key: &str| version.get(key).and_then(Value::as_bool).unwrap_or(false);
    writeln!(
        out,
        "Served: {}. Storage version: {}. Status subresource: {}.",
        yes_no(flag("served")),
        yes_no(flag("storage")),
        yes_no(version.pointer("/subresources/status").is_some())
    )?;

    if let Some(columns) = version
        .get("additionalPrinterColumns")
        .and_then(Value::as_array)
    {
        writeln!(out)?;
        writeln!(out, "### Columns of `kubectl get`")?;
        writeln!(out)?;
        writeln!(out, "| Column | JSONPath | Type | Shown by |")?;
        writeln!(out, "|---|---|---|---|")?;
        for column in columns {
            let get = |key: &str| column.get(key).and_then(Value::as_str).unwrap_or_default();
            let shown = if column.get("priority").and_then(Value::as_i64).unwrap_or(0) > 0 {
                "`kubectl get -o wide`"
            } else {
                "`kubectl get`"
            };
            writeln!(
                out,
                "| {} | {} | {} | {shown} |",
                get("name"),
                code(get("jsonPath")),
                get("type")
            )?;
        }
    }

    let mut rules = Vec::new();
    for section in ["spec", "status"] {
        let Some(node) = schema.pointer(&format!("/properties/{section}")) else {
            continue;
        };
        let mut rows = Vec::new();
        walk(node, section, &mut rows, &mut rules);
        writeln!(out)?;
        writeln!(out, "### `{section}`")?;
        writeln!(out)?;
        if let Some(description) = node.get("description").and_then(Value::as_str) {
            writeln!(out, "{}", one_line(description))?;
            writeln!(out)?;
        }
        let constraints = constraints(node);
        if !constraints.is_empty() {
            writeln!(
                out,
                "Constraints on `{section}`: {}.",
                constraints.join("; ")
            )?;
            writeln!(out)?;
        }
        writeln!(
            out,
            "| Field | Type | Required | Constraints | Description |"
        )?;
        writeln!(out, "|---|---|---|---|---|")?;
        for row in rows {
            writeln!(
                out,
                "| `{}` | {} | {} | {} | {} |",
                row.path,
                row.type_,
                if row.required { "yes" } else { "" },
                // Already Markdown: every pattern or value is a code span with its pipes escaped.
                row.constraints.join("; "),
                cell(&one_line(&row.description))
            )?;
        }
    }

    if !rules.is_empty() {
        writeln!(out)?;
        writeln!(out, "### Validation rules (CEL)")?;
        writeln!(out)?;
        writeln!(
            out,
            "Checked by the API server at admission; a violation fails `kubectl apply` with the \
             message. Rules that mention `oldSelf` are transition rules: they only apply to \
             updates."
        )?;
        writeln!(out)?;
        writeln!(out, "| On | Rule | Message |")?;
        writeln!(out, "|---|---|---|")?;
        for rule in rules {
            writeln!(
                out,
                "| `{}` | {} | {} |",
                rule.path,
                code(&one_line(&rule.rule)),
                cell(&one_line(&rule.message))
            )?;
        }
    }
    Ok(())
}

/// Depth first, children in schema (alphabetical) order.
fn walk(node: &Value, path: &str, rows: &mut Vec<Row>, rules: &mut Vec<CelRule>) {
    collect_rules(node, path, rules);
    let (container, suffix) = match node.get("items") {
        Some(items) => {
            collect_rules(items, &format!("{path}[]"), rules);
            (items, "[]")
        }
        None => (node, ""),
    };
    let Some(properties) = container.get("properties").and_then(Value::as_object) else {
        return;
    };
    let required: Vec<&str> = container
        .get("required")
        .and_then(Value::as_array)
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    for (name, child) in properties {
        let child_path = format!("{path}{suffix}.{name}");
        rows.push(Row {
            path: child_path.clone(),
            type_: type_name(child),
            required: required.contains(&name.as_str()),
            constraints: constraints(child),
            description: child
                .get("description")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
        });
        walk(child, &child_path, rows, rules);
    }
}

fn collect_rules(node: &Value, path: &str, rules: &mut Vec<CelRule>) {
    let Some(list) = node
        .get("x-kubernetes-validations")
        .and_then(Value::as_array)
    else {
        return;
    };
    for rule in list {
        let get = |key: &str| rule.get(key).and_then(Value::as_str).unwrap_or_default();
        let on = match get("fieldPath") {
            "" => path.to_owned(),
            field => format!("{path}{field}"),
        };
        rules.push(CelRule {
            path: on,
            rule: get("rule").to_owned(),
            message: get("message").to_owned(),
        });
    }
}

fn type_name(node: &Value) -> String {
    let base = node.get("type").and_then(Value::as_str).unwrap_or("any");
    match base {
        "array" => {
            let items = node
                .get("items")
                .map_or_else(|| "any".to_owned(), type_name);
            format!("[]{items}")
        }
        "object" if node.get("properties").is_none() => match node.get("additionalProperties") {
            Some(values) if values.is_object() => format!("map[string]{}", type_name(values)),
            _ => "object".to_owned(),
        },
        other => match node.get("format").and_then(Value::as_str) {
            Some(format) => format!("{other} ({format})"),
            None => other.to_owned(),
        },
    }
}

fn constraints(node: &Value) -> Vec<String> {
    let mut out = Vec::new();
    let int = |key: &str| node.get(key).and_then(Value::as_i64);
    if let Some(range) = range(int("minLength"), int("maxLength")) {
        out.push(format!("length {range}"));
    }
    if let Some(range) = range(int("minItems"), int("maxItems")) {
        out.push(format!("items {range}"));
    }
    if let Some(range) = range(int("minProperties"), int("maxProperties")) {
        out.push(format!("entries {range}"));
    }
    if let Some(pattern) = node.get("pattern").and_then(Value::as_str) {
        out.push(format!("pattern {}", code(pattern)));
    }
    if let Some(values) = node.get("enum").and_then(Value::as_array) {
        let values: Vec<String> = values.iter().map(|v| code(&compact(v))).collect();
        out.push(format!("one of {}", values.join(", ")));
    }
    if let Some(default) = node.get("default") {
        out.push(format!("default {}", code(&compact(default))));
    }
    if let Some(list_type) = node.get("x-kubernetes-list-type").and_then(Value::as_str) {
        let keys = node
            .get("x-kubernetes-list-map-keys")
            .and_then(Value::as_array)
            .map(|k| {
                k.iter()
                    .filter_map(Value::as_str)
                    .map(code)
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .filter(|k| !k.is_empty());
        out.push(match keys {
            Some(keys) => format!("list type {list_type}, keyed by {keys}"),
            None => format!("list type {list_type}"),
        });
    }
    if let Some(values) = node.get("additionalProperties").filter(|v| v.is_object()) {
        let inner = constraints(values);
        if !inner.is_empty() {
            out.push(format!("values: {}", inner.join(", ")));
        }
    }
    if let Some(items) = node.get("items") {
        let inner = constraints(items);
        if !inner.is_empty() && items.get("properties").is_none() {
            out.push(format!("each item: {}", inner.join(", ")));
        }
    }
    out
}

fn range(min: Option<i64>, max: Option<i64>) -> Option<String> {
    match (min, max) {
        (None, None) => None,
        (Some(min), None) => Some(format!("≥ {min}")),
        (None, Some(max)) => Some(format!("≤ {max}")),
        (Some(min), Some(max)) if min == max => Some(format!("= {min}")),
        (Some(min), Some(max)) => Some(format!("{min}..{max}")),
    }
}

fn compact(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

const fn yes_no(value: bool) -> &'static str {
    if value { "yes" } else { "no" }
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// A code span that survives a Markdown table: pipes escaped, and a longer fence when the text
/// contains backticks.
fn code(text: &str) -> String {
    let escaped = text.replace('|', "\\|");
    if escaped.contains('`') {
        format!("`` {escaped} ``")
    } else {
        format!("`{escaped}`")
    }
}

/// Table cell text: pipes escaped.
fn cell(text: &str) -> String {
    text.replace('|', "\\|")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_spec_field_is_documented_with_its_constraints() -> Result<(), Error> {
        let doc = render(&agentcore_operator::crdgen::crd())?;
        for needle in [
            "| `spec.dataSource.cloudWatchLogs.serviceNames` | []string | yes | items = 1 |",
            "| `spec.deletionPolicy` | string |  | one of `Delete`, `Retain`; default `Delete` |",
            "| `spec.evaluators` | []object |  | items ≤ 10 |",
            "| `status.observedGeneration` | integer (int64) |",
            "stop cannot be set back to false",
            "| `spec.tags` | map[string]string |  | entries ≤ 50; values: length ≤ 256",
        ] {
            assert!(doc.contains(needle), "missing {needle:?} in:\n{doc}");
        }
        Ok(())
    }

    #[test]
    fn code_spans_escape_table_pipes() {
        assert_eq!(code("a|b"), "`a\\|b`");
        assert_eq!(code("`x`"), "`` `x` ``");
    }
}
