//! The service model (botocore's `bedrock-agentcore` 2024-02-28, reduced to the five
//! batch-evaluation operations), embedded and compiled once into the table the validator walks.
//! Keeping the model file as the single source of the constraints means the emulator cannot
//! drift from what the real clients are generated from.

use std::collections::HashMap;

use regex::Regex;
use serde::Deserialize;

use crate::operation::Operation;

const MODEL_JSON: &str =
    include_str!("../model/bedrock-agentcore-batch-evaluation-2024-02-28.json");

/// The embedded model could not be read; only a broken build can cause this.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("the embedded service model is not valid JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("shape {shape}: invalid pattern {pattern:?}: {source}")]
    Pattern {
        shape: String,
        pattern: String,
        source: regex::Error,
    },
    #[error("shape {shape} refers to unknown shape {target}")]
    Dangling { shape: String, target: String },
    #[error("shape {0} has unsupported type {1}")]
    UnsupportedType(String, String),
    #[error("operation {0} is missing from the model")]
    MissingOperation(&'static str),
}

/// Where an input member is carried in the HTTP request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Location {
    Body,
    Uri,
    Query,
}

#[derive(Debug)]
pub(crate) struct Member {
    /// JSON member name (also the URI label / query key: this model never renames them).
    pub name: String,
    pub target: String,
    pub location: Location,
}

#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Bounds {
    pub min: Option<f64>,
    pub max: Option<f64>,
}

#[derive(Debug)]
pub(crate) enum Shape {
    Structure {
        members: Vec<Member>,
        required: Vec<String>,
        union: bool,
    },
    List {
        member: String,
        len: Bounds,
    },
    Map {
        key: String,
        value: String,
        len: Bounds,
    },
    String {
        len: Bounds,
        pattern: Option<(String, Regex)>,
        enumeration: Option<Vec<String>>,
    },
    Integer {
        range: Bounds,
    },
    Double {
        range: Bounds,
    },
    Boolean,
    Timestamp,
}

#[derive(Debug)]
pub(crate) struct OperationShapes {
    pub input: String,
    pub output: String,
}

/// The compiled model.
#[derive(Debug)]
pub(crate) struct ServiceModel {
    shapes: HashMap<String, Shape>,
    operations: HashMap<Operation, OperationShapes>,
}

#[derive(Deserialize)]
struct RawModel {
    operations: HashMap<String, RawOperation>,
    shapes: HashMap<String, RawShape>,
}

#[derive(Deserialize)]
struct RawOperation {
    input: RawRef,
    output: RawRef,
}

#[derive(Deserialize)]
struct RawRef {
    shape: String,
}

#[derive(Deserialize)]
struct RawShape {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default, deserialize_with = "ordered_members::deserialize")]
    members: Vec<(String, RawMember)>,
    #[serde(default)]
    required: Vec<String>,
    #[serde(default)]
    union: bool,
    member: Option<RawRef>,
    key: Option<RawRef>,
    value: Option<RawRef>,
    min: Option<f64>,
    max: Option<f64>,
    pattern: Option<String>,
    #[serde(rename = "enum")]
    enumeration: Option<Vec<String>>,
}

#[derive(Deserialize)]
struct RawMember {
    shape: String,
    location: Option<String>,
    #[serde(rename = "locationName")]
    location_name: Option<String>,
}

/// Reads a JSON object as ordered pairs, so violations are reported in model order.
mod ordered_members {
    use serde::{Deserialize, Deserializer, de};

    pub(super) fn deserialize<'de, D, T>(deserializer: D) -> Result<Vec<(String, T)>, D::Error>
    where
        D: Deserializer<'de>,
        T: Deserialize<'de>,
    {
        struct Visitor<T>(std::marker::PhantomData<T>);
        impl<'de, T: Deserialize<'de>> de::Visitor<'de> for Visitor<T> {
            type Value = Vec<(String, T)>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a map of members")
            }
            fn visit_map<A: de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut out = Vec::new();
                while let Some(entry) = map.next_entry()? {
                    out.push(entry);
                }
                Ok(out)
            }
        }
        deserializer.deserialize_map(Visitor(std::marker::PhantomData))
    }
}

impl ServiceModel {
    /// Compiles the embedded model.
    pub(crate) fn load() -> Result<Self, ModelError> {
        Self::from_json(MODEL_JSON)
    }

    fn from_json(json: &str) -> Result<Self, ModelError> {
        let raw: RawModel = serde_json::from_str(json)?;
        let mut shapes = HashMap::with_capacity(raw.shapes.len());
        for (name, raw_shape) in raw.shapes {
            let shape = compile_shape(&name, raw_shape)?;
            shapes.insert(name, shape);
        }
        let model = ServiceModel {
            shapes,
            operations: HashMap::new(),
        };
        model.check_references()?;

        let mut operations = HashMap::new();
        for op in Operation::ALL {
            let raw_op = raw
                .operations
                .get(op.as_str())
                .ok_or(ModelError::MissingOperation(op.as_str()))?;
            operations.insert(
                op,
                OperationShapes {
                    input: raw_op.input.shape.clone(),
                    output: raw_op.output.shape.clone(),
                },
            );
        }
        Ok(ServiceModel {
            operations,
            ..model
        })
    }

    fn check_references(&self) -> Result<(), ModelError> {
        for (name, shape) in &self.shapes {
            let targets: Vec<&String> = match shape {
                Shape::Structure { members, .. } => members.iter().map(|m| &m.target).collect(),
                Shape::List { member, .. } => vec![member],
                Shape::Map { key, value, .. } => vec![key, value],
                _ => Vec::new(),
            };
            if let Some(missing) = targets.into_iter().find(|t| !self.shapes.contains_key(*t)) {
                return Err(ModelError::Dangling {
                    shape: name.clone(),
                    target: missing.clone(),
                });
            }
        }
        Ok(())
    }

    pub(crate) fn shape(&self, name: &str) -> Option<&Shape> {
        self.shapes.get(name)
    }

    pub(crate) fn operation(&self, op: Operation) -> Option<&OperationShapes> {
        self.operations.get(&op)
    }

    /// Required members of an operation's output, for the "missing required members" fault.
    pub(crate) fn output_required(&self, op: Operation) -> &[String] {
        match self.operation(op).and_then(|o| self.shape(&o.output)) {
            Some(Shape::Structure { required, .. }) => required,
            _ => &[],
        }
    }
}

fn compile_shape(name: &str, raw: RawShape) -> Result<Shape, ModelError> {
    let bounds = Bounds {
        min: raw.min,
        max: raw.max,
    };
    Ok(match raw.kind.as_str() {
        "structure" => {
            let members = raw
                .members
                .into_iter()
                .map(|(member_name, m)| Member {
                    name: m.location_name.unwrap_or(member_name),
                    target: m.shape,
                    location: match m.location.as_deref() {
                        Some("uri") => Location::Uri,
                        Some("querystring") => Location::Query,
                        _ => Location::Body,
                    },
                })
                .collect();
            Shape::Structure {
                members,
                required: raw.required,
                union: raw.union,
            }
        }
        "list" => Shape::List {
            member: raw.member.map(|r| r.shape).unwrap_or_default(),
            len: bounds,
        },
        "map" => Shape::Map {
            key: raw.key.map(|r| r.shape).unwrap_or_default(),
            value: raw.value.map(|r| r.shape).unwrap_or_default(),
            len: bounds,
        },
        "string" => {
            let pattern = match raw.pattern {
                Some(pattern) => {
                    // Smithy patterns are searched, not anchored; the service applies them to
                    // the whole value, so anchor them here.
                    let anchored = format!("^(?:{pattern})$");
                    let regex = Regex::new(&anchored).map_err(|source| ModelError::Pattern {
                        shape: name.to_owned(),
                        pattern: pattern.clone(),
                        source,
                    })?;
                    Some((pattern, regex))
                }
                None => None,
            };
            Shape::String {
                len: bounds,
                pattern,
                enumeration: raw.enumeration,
            }
        }
        "integer" | "long" => Shape::Integer { range: bounds },
        "double" | "float" => Shape::Double { range: bounds },
        "boolean" => Shape::Boolean,
        "timestamp" => Shape::Timestamp,
        other => {
            return Err(ModelError::UnsupportedType(
                name.to_owned(),
                other.to_owned(),
            ));
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_model_compiles_and_has_every_operation() {
        let model = ServiceModel::load().unwrap();
        for op in Operation::ALL {
            let shapes = model.operation(op).unwrap();
            assert!(model.shape(&shapes.input).is_some(), "{op} input");
            assert!(model.shape(&shapes.output).is_some(), "{op} output");
        }
        assert_eq!(
            model.output_required(Operation::ListBatchEvaluations),
            ["batchEvaluations".to_owned()]
        );
    }

    #[test]
    fn members_keep_model_order_and_locations() {
        let model = ServiceModel::load().unwrap();
        let Some(Shape::Structure { members, .. }) = model.shape("StartBatchEvaluationRequest")
        else {
            panic!("not a structure");
        };
        assert_eq!(members[0].name, "batchEvaluationName");
        assert_eq!(members[1].name, "evaluators");
        let Some(Shape::Structure { members, .. }) = model.shape("ListBatchEvaluationsRequest")
        else {
            panic!("not a structure");
        };
        assert!(members.iter().all(|m| m.location == Location::Query));
    }

    #[test]
    fn patterns_are_anchored() {
        let model = ServiceModel::load().unwrap();
        let Some(Shape::String {
            pattern: Some((_, re)),
            ..
        }) = model.shape("BatchEvaluationName")
        else {
            panic!("no pattern");
        };
        assert!(re.is_match("my_eval1"));
        assert!(
            !re.is_match("my-eval"),
            "a search would accept the 'my' prefix"
        );
        assert!(!re.is_match("1abc"));
        let Some(Shape::String {
            pattern: Some((_, re)),
            ..
        }) = model.shape("BatchEvaluationId")
        else {
            panic!("no pattern");
        };
        assert!(
            re.is_match("my-eval_1-AbCdE12345"),
            "'-' in [0-9-_] is a literal"
        );
        assert!(!re.is_match("my.eval-AbCdE12345"));
    }
}
