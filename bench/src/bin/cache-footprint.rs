//! What one object costs in the operator's watch cache, measured on the heap: decodes N watch
//! events of terminal objects shaped like `agentcore-bench`'s (the API server's JSON, managed
//! fields included), keeps each the way the controller's cache does, and prints the live bytes
//! and allocations per object (dhat's heap statistics). A program that prints figures for
//! docs/benchmarks.md, not a test.
//!
//! `cargo run --release -p agentcore-bench --bin cache-footprint [-- N]`

use std::sync::Arc;

use agentcore_operator::{api::BatchEvaluation, batch_evaluation::cached::CachedEvaluation};
use anyhow::Context as _;
use kube::core::WatchEvent;
use serde_json::json;

#[global_allocator]
static ALLOC: dhat::Alloc = dhat::Alloc;

fn main() -> anyhow::Result<()> {
    let objects: usize = match std::env::args().nth(1) {
        Some(n) => n.parse().context("the number of objects")?,
        None => 10_000,
    };
    let _profiler = dhat::Profiler::builder().testing().build();
    let events: Vec<String> = (0..objects).map(watch_event).collect();

    let whole = footprint::<BatchEvaluation>(&events)?;
    let cached = footprint::<CachedEvaluation>(&events)?;
    println!(
        "{objects} terminal objects, decoded from their watch events (JSON of {} bytes each):",
        events.first().map_or(0, String::len)
    );
    println!(
        "(in line: BatchEvaluation {} bytes, CachedEvaluation {} bytes)",
        std::mem::size_of::<BatchEvaluation>(),
        std::mem::size_of::<CachedEvaluation>()
    );
    println!(
        "| kept as | bytes per object | allocations per object | with glibc's 16 B per allocation | allocations while decoding an event |"
    );
    println!("|---|---:|---:|---:|---:|");
    for (what, kept) in [
        ("the whole object", whole),
        ("the cache's projection", cached),
    ] {
        println!(
            "| {what} | {:.0} | {:.1} | {:.0} | {:.1} |",
            kept.bytes,
            kept.blocks,
            kept.bytes + 16.0 * kept.blocks,
            kept.decoding_blocks
        );
    }
    Ok(())
}

/// Per object: what stays on the heap while every event's object is kept (`Arc`ed as the store
/// keeps it), and how many allocations decoding its event made, kept or freed (the part of the
/// watch's CPU that grows with what is decoded).
struct Footprint {
    bytes: f64,
    blocks: f64,
    decoding_blocks: f64,
}

fn footprint<K: serde::de::DeserializeOwned + Clone>(
    events: &[String],
) -> anyhow::Result<Footprint> {
    let mut kept = Vec::with_capacity(events.len());
    let before = dhat::HeapStats::get();
    for event in events {
        let WatchEvent::Added(obj) = serde_json::from_str::<WatchEvent<K>>(event)? else {
            anyhow::bail!("not an ADDED event");
        };
        kept.push(Arc::new(obj));
    }
    let after = dhat::HeapStats::get();
    let n = events.len().max(1) as f64;
    Ok(Footprint {
        bytes: (after.curr_bytes - before.curr_bytes) as f64 / n,
        blocks: (after.curr_blocks - before.curr_blocks) as f64 / n,
        // Less the `Arc` each object is kept in.
        decoding_blocks: (after.total_blocks - before.total_blocks) as f64 / n - 1.0,
    })
}

/// The watch event of terminal object `i` as the API server sends it: `agentcore-bench`'s object
/// with the operator's finalizer, its terminal status (bench/src/workload.rs writes the same
/// shape), and the managed fields of the three writers.
fn watch_event(i: usize) -> String {
    let name = format!("bench-{i:05}");
    let uid = format!("0b4e7a52-6a3c-4cbb-9a39-{i:012}");
    let remote_name = format!("bench_{}_0123456789", name.replace('-', "_"));
    let id = format!("{remote_name}-ABCDEFGHIJ");
    let time = "2026-12-02T10:00:00Z";
    let condition = |type_: &str, status: &str, reason: &str, message: &str| {
        json!({"type": type_, "status": status, "reason": reason, "message": message,
               "observedGeneration": 1, "lastTransitionTime": time})
    };
    let managed = |manager: &str, subresource: Option<&str>, fields: serde_json::Value| {
        let mut entry = json!({"manager": manager, "operation": "Update",
            "apiVersion": "evals.agentcore.dev/v1alpha1", "time": time,
            "fieldsType": "FieldsV1", "fieldsV1": fields});
        if let Some(s) = subresource {
            entry["subresource"] = json!(s);
        }
        entry
    };
    let object = json!({
        "apiVersion": "evals.agentcore.dev/v1alpha1",
        "kind": "BatchEvaluation",
        "metadata": {
            "name": name, "namespace": "bench", "uid": uid,
            "resourceVersion": format!("{}", 100_000 + i), "generation": 1,
            "creationTimestamp": time,
            "finalizers": ["evals.agentcore.dev/cleanup"],
            "managedFields": [
                managed("agentcore-bench", None, json!({"f:spec": {".": {},
                    "f:dataSource": {".": {}, "f:cloudWatchLogs": {".": {},
                        "f:logGroupNames": {}, "f:serviceNames": {}}},
                    "f:deletionPolicy": {}, "f:description": {}, "f:evaluators": {},
                    "f:priority": {}, "f:stop": {}}})),
                managed("agentcore-operator", None, json!({"f:metadata": {"f:finalizers": {
                    ".": {}, "v:\"evals.agentcore.dev/cleanup\"": {}}}})),
                managed("agentcore-operator", Some("status"), json!({"f:status": {".": {},
                    "f:averageScore": {}, "f:batchEvaluationArn": {}, "f:batchEvaluationId": {},
                    "f:batchEvaluationName": {}, "f:completedAt": {}, "f:conditions": {},
                    "f:lastSyncedAt": {}, "f:observedGeneration": {}, "f:region": {},
                    "f:remoteStatus": {}, "f:results": {".": {}, "f:evaluators": {},
                        "f:sessionsCompleted": {}, "f:sessionsFailed": {},
                        "f:sessionsInProgress": {}, "f:totalSessions": {}},
                    "f:sessions": {}, "f:startedAt": {}}})),
            ]
        },
        "spec": {
            "description": "agentcore-bench lifecycle",
            "evaluators": [{"evaluatorId": "Builtin.Helpfulness"}, {"evaluatorId": "Builtin.Correctness"}],
            "dataSource": {"cloudWatchLogs": {"serviceNames": ["checkout-agent"],
                "logGroupNames": ["/aws/agentcore/checkout"]}},
            "deletionPolicy": "Delete", "priority": 0, "stop": false
        },
        "status": {
            "observedGeneration": 1,
            "batchEvaluationId": id,
            "batchEvaluationArn": format!("arn:aws:bedrock-agentcore:us-west-2:123456789012:evaluation/{id}"),
            "batchEvaluationName": remote_name,
            "region": "us-west-2",
            "remoteStatus": "COMPLETED",
            "sessions": "10/10",
            "averageScore": 0.612,
            "startedAt": time, "completedAt": time, "lastSyncedAt": time,
            "results": {"totalSessions": 10, "sessionsCompleted": 10, "sessionsInProgress": 0,
                "sessionsFailed": 0, "evaluators": [
                {"evaluatorId": "Builtin.Helpfulness", "averageScore": 0.655, "totalEvaluated": 10, "totalFailed": 0},
                {"evaluatorId": "Builtin.Correctness", "averageScore": 0.569, "totalEvaluated": 10, "totalFailed": 0}]},
            "conditions": [
                condition("Ready", "True", "Completed", "the job finished: COMPLETED"),
                condition("Reconciling", "False", "Completed", ""),
                condition("Stalled", "False", "NotStalled", ""),
            ]
        }
    });
    // The API server's order: `type` first.
    format!(r#"{{"type":"ADDED","object":{object}}}"#)
}
