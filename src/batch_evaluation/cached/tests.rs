use std::{collections::BTreeMap, time::Duration};

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::core::{ObjectList, WatchEvent};

use super::*;
use crate::{
    api::{BatchEvaluationSpec, FINALIZER},
    batch_evaluation::{reason::Reason, snapshot::Snapshot},
};

fn now() -> Timestamp {
    Timestamp::from_second(1_800_000_000).expect("timestamp")
}

fn snapshot(obj: &BatchEvaluation, tenancy: &Tenancy) -> Snapshot {
    Snapshot::of(obj, "us-west-2", tenancy, Duration::from_secs(15), now()).expect("snapshot")
}

fn object(name: &str) -> BatchEvaluation {
    let mut obj = BatchEvaluation::new(name, BatchEvaluationSpec::default());
    let meta = obj.meta_mut();
    meta.namespace = Some("team-a".into());
    meta.uid = Some(format!("0b4e7a52-6a3c-4cbb-9a39-{:012x}", name.len()));
    meta.generation = Some(2);
    meta.finalizers = Some(vec![FINALIZER.into()]);
    obj
}

fn stalled(reason: StallReason, generation: i64) -> Condition {
    Condition {
        type_: status::STALLED.into(),
        status: "True".into(),
        reason: Reason::from(reason).as_str().into(),
        message: "held".into(),
        observed_generation: Some(generation),
        last_transition_time: Time(Timestamp::UNIX_EPOCH),
    }
}

/// Every example object, with a status recorded: what a reconcile works on, decoded from the
/// cache, gives the same snapshot as the whole object, so every decision, status, event and
/// queue position is the same; and it is the whole object less the spec only a Start sends.
#[test]
fn the_cache_decides_like_the_whole_object() {
    let examples = [
        include_str!("../../../examples/ground-truth.yaml"),
        include_str!("../../../examples/cloudwatch-session-filter.yaml"),
        include_str!("../../../examples/online-evaluation.yaml"),
        include_str!("../../../examples/retain-policy.yaml"),
        include_str!("../../../examples/quickstart.yaml"),
        include_str!("../../../examples/adopt-existing-job.yaml"),
    ];
    let tenancy = Tenancy::default();
    let mut compared = 0;
    for example in examples {
        for document in
            serde_saphyr::from_multiple::<serde_json::Value>(example).expect("example YAML")
        {
            if document["kind"] != "BatchEvaluation" {
                continue;
            }
            let mut whole: BatchEvaluation =
                serde_json::from_value(document).expect("example object");
            let meta = whole.meta_mut();
            meta.namespace = Some("team-a".into());
            meta.uid = Some("0b4e7a52-6a3c-4cbb-9a39-2b7c1f0e9d11".into());
            meta.generation = Some(1);
            meta.finalizers = Some(vec![FINALIZER.into()]);
            whole.status = Some(BatchEvaluationStatus {
                batch_evaluation_id: Some("demo_1234-abcdefghij".into()),
                remote_status: Some("COMPLETED".into()),
                conditions: vec![stalled(StallReason::NameConflict, 0)],
                ..Default::default()
            });
            let decided = CachedEvaluation::of(&whole)
                .expect("cached form")
                .to_object()
                .expect("decoded status");
            assert_eq!(decided.metadata, whole.metadata);
            assert_eq!(decided.status, whole.status);
            assert_ne!(decided.spec, whole.spec, "nothing dropped from {example}");
            assert_eq!(
                format!("{:?}", snapshot(&decided, &tenancy)),
                format!("{:?}", snapshot(&whole, &tenancy))
            );
            compared += 1;
        }
    }
    assert!(compared >= 6, "{compared} example objects");
}

/// The store keeps each object in an `Arc`: with its two counters, the struct fits jemalloc's
/// 512-byte size class, the next being 640 (the boxed optional spec fields keep it there).
#[test]
fn a_cached_object_fits_a_512_byte_allocation() {
    let arc = 2 * std::mem::size_of::<usize>() + std::mem::size_of::<CachedEvaluation>();
    assert!(arc <= 512, "Arc<CachedEvaluation> takes {arc} bytes");
}

/// The start queue and adoption read the cache without decoding the status: what they read
/// agrees with the snapshot of the whole object in every state that matters to them.
#[test]
fn the_cache_reads_like_the_snapshot() {
    let tenancy = Tenancy::new(
        [crate::tenancy::NamespaceRole {
            namespace: "team-a".into(),
            role_arn: "arn:aws:iam::210987654321:role/team-a".into(),
        }],
        crate::tenancy::Unmapped::OperatorIdentity,
        crate::tenancy::Adoption::default(),
    )
    .expect("tenancy");
    let recorded = |status: BatchEvaluationStatus| {
        let mut obj = object("recorded");
        obj.status = Some(status);
        obj
    };
    let mut cases = vec![
        object("new"),
        recorded(BatchEvaluationStatus {
            batch_evaluation_id: Some("job-0123456789".into()),
            remote_status: Some("IN_PROGRESS".into()),
            region: Some("eu-west-1".into()),
            ..Default::default()
        }),
        recorded(BatchEvaluationStatus {
            batch_evaluation_id: Some("job-0123456789".into()),
            remote_status: Some("COMPLETED".into()),
            role_arn: Some("arn:aws:iam::123456789012:role/earlier".into()),
            ..Default::default()
        }),
        recorded(BatchEvaluationStatus {
            batch_evaluation_name: Some("named_before_start".into()),
            ..Default::default()
        }),
        recorded(BatchEvaluationStatus {
            conditions: vec![stalled(StallReason::NameConflict, 2)],
            ..Default::default()
        }),
        // Recorded for an earlier generation: a spec change retries.
        recorded(BatchEvaluationStatus {
            conditions: vec![stalled(StallReason::NameConflict, 1)],
            ..Default::default()
        }),
    ];
    let mut deleting = cases[5].clone();
    deleting.meta_mut().deletion_timestamp = Some(Time(Timestamp::UNIX_EPOCH));
    cases.push(deleting);
    let mut stopped = object("stopped");
    stopped.spec.stop = true;
    cases.push(stopped);
    let mut adopting = object("adopting");
    adopting.spec.adopt_batch_evaluation_id = Some("job-0123456789".into());
    adopting.spec.region = Some("ap-south-1".into());
    cases.push(adopting);
    let mut waiting = 0;
    for whole in &cases {
        let cached = CachedEvaluation::of(whole).expect("cached form");
        let snapshot = snapshot(whole, &tenancy);
        let case = format!("{:?}", whole.status);
        assert_eq!(cached.waits_to_start(), snapshot.waits_to_start(), "{case}");
        assert_eq!(cached.region("us-west-2"), snapshot.region, "{case}");
        assert_eq!(cached.identity(&tenancy), snapshot.identity, "{case}");
        assert_eq!(
            cached.recorded_id(),
            snapshot.view.recorded_id.as_deref(),
            "{case}"
        );
        assert_eq!(
            cached.holds_quota(),
            snapshot
                .view
                .recorded_status
                .as_ref()
                .is_some_and(RemoteStatus::holds_quota),
            "{case}"
        );
        waiting += usize::from(cached.waits_to_start());
    }
    // The new object, the one named before its Start, and the stall of an earlier generation.
    assert_eq!(waiting, 3);
}

/// The cache decodes what the API server sends: watch events and list pages.
#[test]
fn watch_events_and_lists_decode_into_the_cache() {
    let mut whole = object("demo");
    whole.meta_mut().annotations = Some(BTreeMap::from([
        (
            LAST_APPLIED_ANNOTATION.to_owned(),
            "{\"spec\":{}}".to_owned(),
        ),
        ("team".to_owned(), "a".to_owned()),
    ]));
    whole.status = Some(BatchEvaluationStatus {
        batch_evaluation_id: Some("job-0123456789".into()),
        ..Default::default()
    });
    let json = serde_json::to_string(&whole).expect("object JSON");
    let event = format!(r#"{{"type":"MODIFIED","object":{json}}}"#);
    let Ok(WatchEvent::Modified(cached)) =
        serde_json::from_str::<WatchEvent<CachedEvaluation>>(&event)
    else {
        panic!("watch event not decoded: {event}");
    };
    assert_eq!(cached.recorded_id(), Some("job-0123456789"));
    assert_eq!(cached.to_object().expect("status").status, whole.status);
    // The API server sends `type` first; serde buffers an event that does not.
    let reordered = format!(r#"{{"object":{json},"type":"ADDED"}}"#);
    assert!(matches!(
        serde_json::from_str::<WatchEvent<CachedEvaluation>>(&reordered),
        Ok(WatchEvent::Added(cached)) if cached.to_object().expect("status").status == whole.status
    ));
    let list = format!(
        r#"{{"apiVersion":"v1","kind":"List","metadata":{{"resourceVersion":"7"}},"items":[{json}]}}"#
    );
    let listed: ObjectList<CachedEvaluation> = serde_json::from_str(&list).expect("list page");
    assert_eq!(listed.items[0].recorded_id(), Some("job-0123456789"));

    // A status that does not decode fails in the watch, as it did for the whole object.
    let broken = event.replace(
        r#""batchEvaluationId":"job-0123456789""#,
        r#""conditions":7"#,
    );
    assert!(serde_json::from_str::<WatchEvent<CachedEvaluation>>(&broken).is_err());
}

#[test]
fn the_cache_drops_managed_fields_and_the_last_applied_copy() {
    let mut whole = object("demo");
    let meta = whole.meta_mut();
    meta.managed_fields = Some(vec![Default::default()]);
    meta.annotations = Some(BTreeMap::from([(
        LAST_APPLIED_ANNOTATION.to_owned(),
        "{}".to_owned(),
    )]));
    let cached = CachedEvaluation::of(&whole).expect("cached form");
    assert_eq!(cached.metadata.managed_fields, None);
    assert_eq!(cached.metadata.annotations, None);

    whole
        .annotations_mut()
        .insert("argocd.argoproj.io/tracking-id".into(), "app:x".into());
    let cached = CachedEvaluation::of(&whole).expect("cached form");
    assert_eq!(cached.annotations().len(), 1);
}

/// Every metadata field the cache keeps comes through, whatever managed fields (a `fieldsV1` tree
/// of any shape) and annotations an object carries; `null` reads as absent, as in `ObjectMeta`.
#[test]
fn the_cache_keeps_every_metadata_field_but_managed_fields() {
    let kept = ObjectMeta {
        annotations: Some(BTreeMap::from([("team".to_owned(), "a".to_owned())])),
        creation_timestamp: Some(Time(now())),
        deletion_grace_period_seconds: Some(0),
        deletion_timestamp: Some(Time(now())),
        finalizers: Some(vec![FINALIZER.into(), "example.com/other".into()]),
        generate_name: Some("nightly-".into()),
        generation: Some(3),
        labels: Some(BTreeMap::from([("app".to_owned(), "agent".to_owned())])),
        managed_fields: None,
        name: Some("nightly-x7".into()),
        namespace: Some("team-a".into()),
        owner_references: Some(vec![OwnerReference {
            api_version: "agentcore.aws.dev/v1alpha1".into(),
            kind: "BatchEvaluationSchedule".into(),
            name: "nightly".into(),
            uid: "5f0c".into(),
            controller: Some(true),
            block_owner_deletion: Some(true),
        }]),
        resource_version: Some("41".into()),
        self_link: Some("/apis/x".into()),
        uid: Some("0b4e".into()),
    };
    let mut sent = serde_json::to_value(&kept).expect("metadata JSON");
    sent["managedFields"] = serde_json::json!([{
        "manager": "kubectl", "operation": "Update", "apiVersion": "v1", "fieldsType": "FieldsV1",
        "fieldsV1": {"f:metadata": {"f:annotations": {".": {}, "f:team": {}}}, "f:spec": {"f:x": [1, null, true]}},
    }]);
    sent["annotations"][LAST_APPLIED_ANNOTATION] = "{\"spec\":{}}".into();
    let object = serde_json::json!({"metadata": sent, "spec": {}});
    let cached: CachedEvaluation = serde_json::from_value(object).expect("cached form");
    assert_eq!(cached.metadata, kept);
    assert_eq!(
        cached.metadata.finalizers.as_ref().map(Vec::capacity),
        Some(2)
    );

    let nulls = serde_json::json!({"metadata": {"name": "x", "annotations": null, "labels": null}});
    let cached: CachedEvaluation = serde_json::from_value(nulls).expect("cached form");
    assert_eq!(cached.metadata.annotations, None);
    assert_eq!(cached.metadata.labels, None);
    let only_last_applied =
        serde_json::json!({"metadata": {"annotations": {LAST_APPLIED_ANNOTATION: "{}"}}});
    let cached: CachedEvaluation = serde_json::from_value(only_last_applied).expect("cached form");
    assert_eq!(cached.metadata.annotations, None);
}

#[test]
fn only_an_object_that_may_start_is_read_fresh() {
    let cached = |obj: &BatchEvaluation| CachedEvaluation::of(obj).expect("cached form");
    let mut obj = BatchEvaluation::new("demo", BatchEvaluationSpec::default());
    assert!(
        !cached(&obj).needs_fresh_read(),
        "no finalizer yet: it is added first"
    );
    obj.meta_mut().finalizers = Some(vec![FINALIZER.into()]);
    assert!(cached(&obj).needs_fresh_read());
    obj.status = Some(BatchEvaluationStatus {
        batch_evaluation_id: Some("demo-0123456789".into()),
        ..Default::default()
    });
    assert!(
        !cached(&obj).needs_fresh_read(),
        "the id is recorded: nothing can start"
    );
    obj.status = None;
    obj.meta_mut().deletion_timestamp = Some(Time(Timestamp::UNIX_EPOCH));
    assert!(!cached(&obj).needs_fresh_read(), "a deletion never starts");
}

/// A finished job's status, as the cache packs it: unchanged when unpacked, and in less than
/// half its JSON's bytes.
#[test]
fn a_finished_status_is_packed_without_loss() {
    let id = "team_a_demo_0b4e7a52-uWo9KiKBzM";
    let condition = |type_: &str, status: &str, reason: &str, message: &str| Condition {
        type_: type_.into(),
        status: status.into(),
        reason: reason.into(),
        message: message.into(),
        observed_generation: Some(2),
        last_transition_time: Time(now()),
    };
    let mut obj = object("demo");
    let status = BatchEvaluationStatus {
        observed_generation: 2,
        batch_evaluation_id: Some(id.into()),
        batch_evaluation_arn: Some(format!(
            "arn:aws:bedrock-agentcore:us-west-2:123456789012:batch-evaluation/{id}"
        )),
        batch_evaluation_name: Some("team_a_demo_0b4e7a52".into()),
        region: Some("us-west-2".into()),
        remote_status: Some("COMPLETED".into()),
        sessions: Some("10/10".into()),
        average_score: Some(0.555),
        started_at: Some("2026-12-03T07:22:21.1Z".into()),
        completed_at: Some("2026-12-03T07:22:23.1Z".into()),
        last_synced_at: Some("2026-12-03T07:22:23.217158853Z".into()),
        results: Some(crate::api::EvaluationResults {
            total_sessions: Some(10),
            sessions_completed: Some(10),
            sessions_in_progress: Some(0),
            sessions_failed: Some(0),
            sessions_ignored: Some(0),
            evaluators: ["Builtin.Helpfulness", "Builtin.Correctness"]
                .map(|evaluator| crate::api::EvaluatorResult {
                    evaluator_id: Some(evaluator.into()),
                    average_score: Some(0.581),
                    total_evaluated: Some(10),
                    total_failed: Some(0),
                    ..Default::default()
                })
                .into(),
        }),
        conditions: vec![
            condition("Ready", "True", "Completed", "the job finished: COMPLETED"),
            condition("Reconciling", "False", "Completed", ""),
            condition("Stalled", "False", "NotStalled", ""),
        ],
        ..Default::default()
    };
    obj.status = Some(status.clone());
    let cached = CachedEvaluation::of(&obj).expect("cached form");
    let packed = cached.status.as_ref().expect("status").json.0.len();
    let json = serde_json::to_vec(&status).expect("status JSON").len();
    assert!(packed * 2 < json, "{packed} bytes packed of {json}");
    assert_eq!(cached.to_object().expect("unpacked").status, Some(status));
}

/// Every field name a status can have is in the dictionary its JSON is packed against (a
/// renamed or added field would otherwise be stored in full in every object).
#[test]
fn the_status_dictionary_names_every_status_field() {
    fn names(schema: &serde_json::Value, out: &mut Vec<String>) {
        if let Some(properties) = schema["properties"].as_object() {
            for (name, property) in properties {
                out.push(name.clone());
                names(property, out);
            }
        }
        if schema["items"].is_object() {
            names(&schema["items"], out);
        }
    }
    let crd = serde_json::to_value(crate::crdgen::crd()).expect("CRD JSON");
    let status = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["status"];
    let mut found = Vec::new();
    names(status, &mut found);
    assert!(found.len() > 20, "{found:?}");
    let dictionary = String::from_utf8_lossy(STATUS_DICTIONARY);
    let missing: Vec<_> = found
        .iter()
        .filter(|name| !dictionary.contains(&format!("\"{name}\":")))
        .collect();
    assert!(missing.is_empty(), "not in STATUS_DICTIONARY: {missing:?}");
}
