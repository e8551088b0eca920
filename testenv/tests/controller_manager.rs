//! kube-controller-manager in the test plane (`ControlPlaneOptions::controller_manager`): the real
//! garbage collector deletes dependents through their ownerReferences, and the namespace
//! controller finishes namespace deletions, against the real kube-apiserver, driven by kubectl.
//!
//! Not part of the version matrix (hack/test-k8s-matrix.sh runs `tools` and `control_plane`), so
//! the matrix never builds kube-controller-manager for every version.

#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use agentcore_testenv::{
    CONTROLLER_MANAGER_CONTROLLERS, ControlPlane, ControlPlaneOptions, processes_mentioning,
    wait_until,
};

const GC_TIMEOUT: Duration = Duration::from_secs(60);
const POLL: Duration = Duration::from_millis(200);

async fn uid(plane: &ControlPlane, ns: &str, name: &str) -> String {
    plane
        .kubectl_ok([
            "get",
            "configmap",
            name,
            "-n",
            ns,
            "-o",
            "jsonpath={.metadata.uid}",
        ])
        .await
        .unwrap()
}

async fn exists(plane: &ControlPlane, ns: &str, name: &str) -> bool {
    let out = plane
        .kubectl_ok([
            "get",
            "configmap",
            name,
            "-n",
            ns,
            "--ignore-not-found",
            "-o",
            "name",
        ])
        .await
        .unwrap();
    !out.trim().is_empty()
}

/// A ConfigMap owned by `owner` (a ConfigMap of the same namespace).
fn child(ns: &str, name: &str, owner: &str, owner_uid: &str) -> String {
    format!(
        "apiVersion: v1
kind: ConfigMap
metadata:
  name: {name}
  namespace: {ns}
  ownerReferences:
  - apiVersion: v1
    kind: ConfigMap
    name: {owner}
    uid: {owner_uid}
data:
  owner: {owner}
"
    )
}

#[tokio::test]
async fn deleting_an_owner_deletes_its_dependents_through_the_garbage_collector() {
    let started = Instant::now();
    let mut plane = ControlPlane::start(ControlPlaneOptions {
        controller_manager: true,
        ..ControlPlaneOptions::default()
    })
    .await
    .unwrap();
    eprintln!(
        "control plane with kube-controller-manager ({CONTROLLER_MANAGER_CONTROLLERS}) ready in {:.1?}",
        started.elapsed()
    );
    assert!(plane.runs_controller_manager());
    let dir = plane.dir().to_owned();
    let log = dir.join("kube-controller-manager.log");
    assert!(
        log.is_file(),
        "its log is with the plane's: {}",
        log.display()
    );

    let ns = "gc";
    plane.kubectl_ok(["create", "namespace", ns]).await.unwrap();
    for owner in ["owner", "keeper", "foreground"] {
        plane
            .kubectl_ok(["create", "configmap", owner, "-n", ns])
            .await
            .unwrap();
    }
    let (owner, keeper, foreground) = (
        uid(&plane, ns, "owner").await,
        uid(&plane, ns, "keeper").await,
        uid(&plane, ns, "foreground").await,
    );
    plane
        .apply_yaml(&child(ns, "child", "owner", &owner))
        .await
        .unwrap();
    plane
        .apply_yaml(&child(ns, "kept-child", "keeper", &keeper))
        .await
        .unwrap();
    plane
        .apply_yaml(&child(ns, "foreground-child", "foreground", &foreground))
        .await
        .unwrap();

    // Background propagation (kubectl's default): the owner goes at once, the garbage
    // collector deletes the child afterwards.
    let deleting = Instant::now();
    plane
        .kubectl_ok(["delete", "configmap", "owner", "-n", ns])
        .await
        .unwrap();
    wait_until(
        "the garbage collector to delete the owner's child",
        GC_TIMEOUT,
        POLL,
        || async { (!exists(&plane, ns, "child").await).then_some(()) },
    )
    .await
    .unwrap_or_else(|e| {
        panic!(
            "{e}; kube-controller-manager.log ends with:\n{}",
            tail(&log)
        )
    });
    eprintln!("child deleted {:.1?} after its owner", deleting.elapsed());
    // Only the deleted owner's dependents: the other child stays.
    assert!(exists(&plane, ns, "kept-child").await);

    // Foreground propagation: the owner carries the foregroundDeletion finalizer until the
    // garbage collector has deleted its child, then it goes too (kubectl waits for both).
    plane
        .kubectl_ok([
            "delete",
            "configmap",
            "foreground",
            "-n",
            ns,
            "--cascade=foreground",
            "--timeout=60s",
        ])
        .await
        .unwrap();
    assert!(!exists(&plane, ns, "foreground").await);
    assert!(!exists(&plane, ns, "foreground-child").await);
    assert!(exists(&plane, ns, "keeper").await && exists(&plane, ns, "kept-child").await);

    // The namespace controller empties and removes a deleted namespace.
    let deleting = Instant::now();
    plane
        .kubectl_ok(["delete", "namespace", ns, "--timeout=60s"])
        .await
        .unwrap();
    let left = plane
        .kubectl_ok(["get", "namespace", ns, "--ignore-not-found", "-o", "name"])
        .await
        .unwrap();
    assert!(left.trim().is_empty(), "namespace still there: {left}");
    eprintln!("namespace deleted in {:.1?}", deleting.elapsed());

    plane.stop().await.unwrap();
    assert!(
        processes_mentioning(&dir).is_empty(),
        "a process of the plane outlived it"
    );
}

fn tail(log: &std::path::Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}
