//! The binaries built from Go modules (by `hack/build-*.sh`, cached after the first run) carry
//! the versions the harness pins. Unversioned builds would report v0.0.0 and break clients that
//! check the server version (Helm's `kubeVersion`).

#![allow(clippy::unwrap_used)]

use std::process::Command;

use agentcore_testenv::{HELM_VERSION, Tools, ensure_helm, kubernetes_version};

fn stdout_of(command: &mut Command) -> String {
    let output = command.output().unwrap();
    assert!(output.status.success(), "{command:?}: {output:?}");
    String::from_utf8(output.stdout).unwrap()
}

#[tokio::test]
async fn control_plane_binaries_report_the_selected_kubernetes_version() {
    // The pinned version, or the one AGENTCORE_K8S_VERSION selects (hack/test-k8s-matrix.sh).
    let version = kubernetes_version().unwrap();
    let tools = Tools::ensure().await.unwrap();
    let apiserver = stdout_of(Command::new(tools.kube_apiserver()).arg("--version"));
    assert_eq!(apiserver.trim(), format!("Kubernetes {version}"));
    let kubectl: serde_json::Value = serde_json::from_str(&stdout_of(
        Command::new(tools.kubectl()).args(["version", "--client", "-o", "json"]),
    ))
    .unwrap();
    assert_eq!(kubectl["clientVersion"]["gitVersion"], version.as_str());
    let etcd = stdout_of(Command::new(tools.etcd()).arg("--version"));
    // etcd at the version k8s.io/kubernetes pins, which moves with it (3.5.21 for v1.33.13,
    // 3.6 for v1.34, 3.7.0 for v1.37.2): a real, versioned 3.5 or newer.
    let etcd_minor: u32 = etcd
        .strip_prefix("etcd Version: 3.")
        .and_then(|rest| rest.split('.').next())
        .and_then(|minor| minor.parse().ok())
        .unwrap_or_else(|| panic!("Kubernetes {version}: {etcd}"));
    assert!(etcd_minor >= 5, "Kubernetes {version}: {etcd}");
}

#[tokio::test]
async fn helm_reports_the_pinned_version() {
    let helm = ensure_helm().await.unwrap();
    let version = stdout_of(Command::new(&helm).args(["version", "--short"]));
    assert!(version.starts_with(HELM_VERSION), "{version}");
}
