//! What the controller's cache keeps of each `BatchEvaluation`: a projection, not the object.
//!
//! The cache holds every object for as long as it exists, so its per-object size is most of the
//! operator's memory at scale (docs/benchmarks.md, "Memory"). It keeps:
//! - the metadata (kube-runtime's `Controller` needs a `Resource` with its `ObjectMeta`), without
//!   managed fields and kubectl's last-applied annotation, which are skipped as the event is
//!   parsed, never decoded ([`LeanMetadata`]);
//! - of the spec, only what decisions read ([`CachedSpec`]): the parts only a Start sends (data
//!   source, evaluators, insights, inline ground truth, tags, ...) are never decoded, and a Start
//!   always sends the spec of an object read from the API server (see `LiveEffects::start`);
//! - the status as one compact JSON string, decoded only when a reconcile needs it
//!   ([`CachedEvaluation::to_object`]), with the few fields that the start queue and adoption
//!   read of every object decoded beside it ([`CachedStatus`]). One string instead of a struct
//!   of about twenty strings, vectors and conditions: a third of the bytes and one allocation.
//!   The string is kept LZ4-compressed against [`STATUS_DICTIONARY`] ([`PackedJson`]): what every
//!   status repeats (field names, conditions, the ARN's prefix) is not stored again per object.
//!
//! A reconcile works on [`CachedEvaluation::to_object`], the object with its status and the
//! spec's decision fields, or on a fresh read where the cache could hide a just-recorded job id.

use std::{borrow::Cow, collections::BTreeMap, fmt};

use k8s_openapi::{
    NamespaceResourceScope,
    apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference, Time},
};
use kube::{Resource, ResourceExt};
use serde::{
    Deserialize, Deserializer,
    de::{Error as _, IgnoredAny, MapAccess, Visitor},
};

use crate::{
    api::{
        BatchEvaluation, BatchEvaluationSpec, BatchEvaluationStatus, DeletionPolicy, OutputConfig,
        PassCriteria,
    },
    batch_evaluation::{lifecycle::StallReason, snapshot, status},
    remote::RemoteStatus,
    tenancy::{Identity, Tenancy},
};

/// Written by client-side `kubectl apply`; never read by the operator.
const LAST_APPLIED_ANNOTATION: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// A `BatchEvaluation` as the controller's cache keeps it.
#[derive(Clone, Debug, Deserialize)]
pub struct CachedEvaluation {
    #[serde(deserialize_with = "LeanMetadata::decode")]
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub spec: CachedSpec,
    #[serde(default)]
    pub status: Option<CachedStatus>,
}

/// The spec fields that decisions, the start queue and adoption read; decoded like
/// [`BatchEvaluationSpec`]'s.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(from = "DecidingSpec")]
pub struct CachedSpec {
    pub deletion_policy: DeletionPolicy,
    pub stop: bool,
    pub priority: i32,
    /// The optional fields, boxed together; `None` unless the object sets one of them (most
    /// set none). In line they took 80 of the cached struct's 576 bytes: without them its `Arc`
    /// fits jemalloc's 512-byte size class instead of the 640-byte one.
    optional: Option<Box<OptionalSpec>>,
}

/// [`CachedSpec`]'s optional fields.
#[derive(Clone, Debug, Default, PartialEq)]
struct OptionalSpec {
    batch_evaluation_name: Option<String>,
    output: Option<OutputConfig>,
    region: Option<String>,
    pass_criteria: Option<PassCriteria>,
    adopt_batch_evaluation_id: Option<String>,
}

/// [`CachedSpec`] as decoded, before its optional fields are boxed.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct DecidingSpec {
    #[serde(default)]
    batch_evaluation_name: Option<String>,
    #[serde(default)]
    output: Option<OutputConfig>,
    #[serde(default)]
    region: Option<String>,
    #[serde(default)]
    deletion_policy: DeletionPolicy,
    #[serde(default)]
    stop: bool,
    #[serde(default)]
    priority: i32,
    #[serde(default)]
    pass_criteria: Option<PassCriteria>,
    #[serde(default)]
    adopt_batch_evaluation_id: Option<String>,
}

impl From<DecidingSpec> for CachedSpec {
    fn from(spec: DecidingSpec) -> Self {
        let optional = OptionalSpec {
            batch_evaluation_name: spec.batch_evaluation_name,
            output: spec.output,
            region: spec.region,
            pass_criteria: spec.pass_criteria,
            adopt_batch_evaluation_id: spec.adopt_batch_evaluation_id,
        };
        Self {
            deletion_policy: spec.deletion_policy,
            stop: spec.stop,
            priority: spec.priority,
            optional: (optional != OptionalSpec::default()).then(|| Box::new(optional)),
        }
    }
}

/// The status: its JSON, and what the start queue and adoption read of every cached object.
#[derive(Clone, Debug)]
pub struct CachedStatus {
    /// `batchEvaluationId`.
    pub batch_evaluation_id: Option<String>,
    /// `region`.
    pub region: Option<String>,
    /// `roleArn`.
    pub role_arn: Option<String>,
    /// A job id or name is recorded: the object's AWS identity is fixed.
    pub names_job: bool,
    /// `remoteStatus` counts against the account's quota of active jobs.
    pub holds_quota: bool,
    /// The `Stalled=True` condition: its reason and the generation it was written for.
    pub stall: Option<(StallReason, Option<i64>)>,
    /// The whole status, as compact JSON.
    json: PackedJson,
}

/// Compact JSON, LZ4-compressed against [`STATUS_DICTIONARY`] (size prepended). A finished
/// job's status of about 1,250 bytes is kept in about 260, by difference: `cache-footprint`
/// measured the projection at 978 bytes per object, 1,965 with the JSON as it is. Compressing costs a few
/// microseconds per status the watch delivers, decompressing less per reconcile.
#[derive(Clone, Debug)]
struct PackedJson(Box<[u8]>);

impl PackedJson {
    fn pack(json: &[u8]) -> Self {
        Self(
            lz4_flex::block::compress_prepend_size_with_dict(json, STATUS_DICTIONARY)
                .into_boxed_slice(),
        )
    }

    fn unpack(&self) -> Result<Vec<u8>, lz4_flex::block::DecompressError> {
        lz4_flex::block::decompress_size_prepended_with_dict(&self.0, STATUS_DICTIONARY)
    }
}

/// What a status shares with every other: each field name in the order the status is
/// encoded, the conditions as a finished job has them, the ARN's prefix, the service's status
/// values and built-in evaluator ids. LZ4 refers back into it instead of storing the bytes
/// again; any bytes work, these are the ones that match. The status's unit tests check that
/// every field name is here.
const STATUS_DICTIONARY: &[u8] = br#"IN_PROGRESS PENDING STOPPING STOPPED FAILED DELETING COMPLETED_WITH_ERRORS Builtin.GoalSuccessRate Builtin.Faithfulness "reason":"CriteriaMet" "reason":"CriteriaMissed" "reason":"AwaitingResults" "reason":"InProgress" "reason":"Queued" "reason":"Started" "type":"Passed" "cleanupStep":"AwaitingTerminal" "cleanupStep":"AwaitingRemoval" "errorDetails":"" {"observedGeneration":1,"batchEvaluationId":"","batchEvaluationArn":"arn:aws:bedrock-agentcore:us-east-1:000000000000:batch-evaluation/","batchEvaluationName":"","region":"us-east-1","roleArn":"arn:aws:iam::000000000000:role/","remoteStatus":"COMPLETED","sessions":"10/10","averageScore":0.5,"startedAt":"2026-01-01T00:00:00.0Z","completedAt":"2026-01-01T00:00:00.0Z","lastSyncedAt":"2026-01-01T00:00:00.000000000Z","results":{"totalSessions":10,"sessionsCompleted":10,"sessionsInProgress":0,"sessionsFailed":0,"sessionsIgnored":0,"evaluators":[{"evaluatorId":"Builtin.Helpfulness","dimension":"","averageScore":0.5,"totalEvaluated":10,"totalFailed":0},{"evaluatorId":"Builtin.Correctness","averageScore":0.5,"totalEvaluated":10,"totalFailed":0}]},"conditions":[{"lastTransitionTime":"2026-01-01T00:00:00Z","message":"the job finished: COMPLETED","observedGeneration":1,"reason":"Completed","status":"True","type":"Ready"},{"lastTransitionTime":"2026-01-01T00:00:00Z","message":"","observedGeneration":1,"reason":"Completed","status":"False","type":"Reconciling"},{"lastTransitionTime":"2026-01-01T00:00:00Z","message":"","observedGeneration":1,"reason":"NotStalled","status":"False","type":"Stalled"}]}"#;

impl<'de> Deserialize<'de> for CachedStatus {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        // Decoded whole, then encoded again: a status that does not decode fails here, in the
        // watch, as it did when the cache held the object. (Keeping the JSON as sent would save
        // the encoding, but serde buffers a watch event whose `object` comes before its `type`,
        // and a buffered value cannot be kept as raw JSON.)
        let status = BatchEvaluationStatus::deserialize(deserializer)?;
        let json = PackedJson::pack(&serde_json::to_vec(&status).map_err(D::Error::custom)?);
        Ok(Self {
            names_job: status.batch_evaluation_id.is_some()
                || status.batch_evaluation_name.is_some(),
            holds_quota: status
                .remote_status
                .as_deref()
                .is_some_and(|s| RemoteStatus::parse(s).holds_quota()),
            stall: status::stall_condition(&status),
            batch_evaluation_id: status.batch_evaluation_id,
            region: status.region,
            role_arn: status.role_arn,
            json,
        })
    }
}

impl CachedSpec {
    /// `spec.region`.
    #[must_use]
    pub fn region(&self) -> Option<&str> {
        self.optional.as_ref()?.region.as_deref()
    }

    /// `spec.adoptBatchEvaluationId`.
    #[must_use]
    pub fn adopt_batch_evaluation_id(&self) -> Option<&str> {
        self.optional.as_ref()?.adopt_batch_evaluation_id.as_deref()
    }

    /// The spec with these fields, and the others empty.
    fn to_spec(&self) -> BatchEvaluationSpec {
        let optional = self.optional.as_deref().cloned().unwrap_or_default();
        BatchEvaluationSpec {
            batch_evaluation_name: optional.batch_evaluation_name,
            output: optional.output,
            region: optional.region,
            deletion_policy: self.deletion_policy,
            stop: self.stop,
            priority: self.priority,
            pass_criteria: optional.pass_criteria,
            adopt_batch_evaluation_id: optional.adopt_batch_evaluation_id,
            ..BatchEvaluationSpec::default()
        }
    }
}

impl CachedEvaluation {
    /// The cached form of `obj`, through its JSON as the watch decodes it.
    ///
    /// # Errors
    /// When `obj` does not encode, or its status does not decode back.
    pub fn of(obj: &BatchEvaluation) -> Result<Self, serde_json::Error> {
        serde_json::from_str(&serde_json::to_string(obj)?)
    }

    /// The object the decisions work on: metadata, the spec's decision fields, the whole status.
    ///
    /// # Errors
    /// When the status does not decode (it did when the watch cached it).
    pub fn to_object(&self) -> Result<BatchEvaluation, serde_json::Error> {
        Ok(BatchEvaluation {
            metadata: self.metadata.clone(),
            spec: self.spec.to_spec(),
            status: self
                .status
                .as_ref()
                .map(|s| {
                    let json = s.json.unpack().map_err(serde_json::Error::custom)?;
                    serde_json::from_slice(&json)
                })
                .transpose()?,
        })
    }

    /// The recorded job id.
    #[must_use]
    pub fn recorded_id(&self) -> Option<&str> {
        self.status.as_ref()?.batch_evaluation_id.as_deref()
    }

    /// The region of the object's job (see [`snapshot::region_of`]).
    #[must_use]
    pub fn region<'a>(&'a self, default_region: &'a str) -> &'a str {
        snapshot::region_of(
            self.status.as_ref().and_then(|s| s.region.as_deref()),
            self.spec.region(),
            default_region,
        )
    }

    /// The identity of the object's AWS calls (see [`snapshot::identity_of`]).
    #[must_use]
    pub fn identity(&self, tenancy: &Tenancy) -> Identity {
        let status = self.status.as_ref();
        snapshot::identity_of(
            status.and_then(|s| s.role_arn.as_deref()),
            status.is_some_and(|s| s.names_job),
            &self.namespace().unwrap_or_default(),
            tenancy,
        )
    }

    /// Whether its recorded job counts against the account's quota.
    #[must_use]
    pub fn holds_quota(&self) -> bool {
        self.status.as_ref().is_some_and(|s| s.holds_quota)
    }

    /// Whether the object waits for its first Start (see [`snapshot::Snapshot::waits_to_start`]).
    #[must_use]
    pub fn waits_to_start(&self) -> bool {
        let stalled = self
            .status
            .as_ref()
            .and_then(|s| s.stall)
            .is_some_and(|(_, observed)| {
                status::stall_holds(observed, snapshot::stall_generation(&self.metadata))
            });
        self.metadata.deletion_timestamp.is_none()
            && !self.spec.stop
            && self.spec.adopt_batch_evaluation_id().is_none()
            && self.recorded_id().is_none()
            && !stalled
    }

    /// Whether the object must be read fresh before deciding. The watch cache can lag behind
    /// this operator's own status write: before anything that may start a job (finalizer in
    /// place, no id recorded, not deleting), a just-recorded id must never be missed.
    #[must_use]
    pub fn needs_fresh_read(&self) -> bool {
        self.metadata.deletion_timestamp.is_none()
            && snapshot::has_finalizer(self)
            && self.recorded_id().is_none()
    }
}

/// `ObjectMeta` as the API server sends it, less what no reconcile reads: managed fields (most of
/// an object's JSON, and most of the allocations of decoding it: every `fieldsV1` is a tree of
/// maps) and the copy of the spec client-side `kubectl apply` keeps in an annotation. Serde skips
/// an unknown field without allocating, so neither is ever built.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct LeanMetadata {
    #[serde(default, deserialize_with = "annotations_but_last_applied")]
    annotations: Option<BTreeMap<String, String>>,
    creation_timestamp: Option<Time>,
    deletion_grace_period_seconds: Option<i64>,
    deletion_timestamp: Option<Time>,
    finalizers: Option<Vec<String>>,
    generate_name: Option<String>,
    generation: Option<i64>,
    labels: Option<BTreeMap<String, String>>,
    name: Option<String>,
    namespace: Option<String>,
    owner_references: Option<Vec<OwnerReference>>,
    resource_version: Option<String>,
    self_link: Option<String>,
    uid: Option<String>,
}

impl LeanMetadata {
    fn decode<'de, D: Deserializer<'de>>(deserializer: D) -> Result<ObjectMeta, D::Error> {
        let meta = Self::deserialize(deserializer)?;
        Ok(ObjectMeta {
            annotations: meta.annotations,
            creation_timestamp: meta.creation_timestamp,
            deletion_grace_period_seconds: meta.deletion_grace_period_seconds,
            deletion_timestamp: meta.deletion_timestamp,
            // A vector grown while decoding keeps spare room for four; the cache keeps it long.
            finalizers: meta.finalizers.map(|mut finalizers| {
                finalizers.shrink_to_fit();
                finalizers
            }),
            generate_name: meta.generate_name,
            generation: meta.generation,
            labels: meta.labels,
            managed_fields: None,
            name: meta.name,
            namespace: meta.namespace,
            owner_references: meta.owner_references,
            resource_version: meta.resource_version,
            self_link: meta.self_link,
            uid: meta.uid,
        })
    }
}

/// The annotations without kubectl's last-applied copy of the spec (skipped, not decoded); `None`
/// when nothing else is left.
fn annotations_but_last_applied<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<BTreeMap<String, String>>, D::Error> {
    struct Annotations;
    impl<'de> Visitor<'de> for Annotations {
        type Value = Option<BTreeMap<String, String>>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a map of annotations")
        }

        fn visit_none<E>(self) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_unit<E>(self) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_some<D: Deserializer<'de>>(self, inner: D) -> Result<Self::Value, D::Error> {
            inner.deserialize_map(self)
        }

        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut kept = BTreeMap::new();
            while let Some(key) = map.next_key::<String>()? {
                if key == LAST_APPLIED_ANNOTATION {
                    map.next_value::<IgnoredAny>()?;
                } else {
                    kept.insert(key, map.next_value()?);
                }
            }
            Ok((!kept.is_empty()).then_some(kept))
        }
    }
    deserializer.deserialize_option(Annotations)
}

impl Resource for CachedEvaluation {
    type DynamicType = ();
    type Scope = NamespaceResourceScope;

    fn kind(dt: &()) -> Cow<'_, str> {
        BatchEvaluation::kind(dt)
    }

    fn group(dt: &()) -> Cow<'_, str> {
        BatchEvaluation::group(dt)
    }

    fn version(dt: &()) -> Cow<'_, str> {
        BatchEvaluation::version(dt)
    }

    fn plural(dt: &()) -> Cow<'_, str> {
        BatchEvaluation::plural(dt)
    }

    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }

    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

#[cfg(test)]
mod tests;
