//! One run's environment: a fresh control plane with the CRD and the Helm chart's RBAC bound to
//! the operator's ServiceAccount identity, and kube clients for the admin and operator identities.

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use agentcore_operator::api::BatchEvaluation;
use agentcore_testenv::{
    ControlPlane, ControlPlaneOptions, Identity, KUBERNETES_VERSION, OPERATOR_NAMESPACE,
    ensure_helm,
};
use anyhow::{Context as _, bail};
use kube::{
    Api, Client,
    config::{KubeConfigOptions, Kubeconfig},
};

use crate::counters::Pids;

/// Release name used to render the chart's RBAC (the same as the end-to-end tests).
const RELEASE: &str = "agentcore-operator";

/// The repository root (this package's parent directory).
pub fn repo_path(relative: &str) -> PathBuf {
    let bench = Path::new(env!("CARGO_MANIFEST_DIR"));
    bench.parent().unwrap_or(bench).join(relative)
}

pub struct Env {
    pub plane: ControlPlane,
    /// The benchmark's client: creates, deletes, the timeline watch.
    pub admin: Api<BatchEvaluation>,
    /// The operator's ServiceAccount identity, for the baseline's operator-side writes.
    pub operator: Api<BatchEvaluation>,
    pub pids: Pids,
}

impl Env {
    pub async fn start() -> anyhow::Result<Self> {
        let plane = ControlPlane::start(ControlPlaneOptions {
            startup_timeout: Duration::from_secs(120),
            ..ControlPlaneOptions::default()
        })
        .await?;
        plane
            .install_crd(repo_path("crds/evals.agentcore.dev_batchevaluations.yaml"))
            .await?;
        // The operator also watches schedules; without their CRD its watch would retry.
        plane
            .install_crd(repo_path(
                "crds/evals.agentcore.dev_batchevaluationschedules.yaml",
            ))
            .await?;
        grant_chart_rbac(&plane).await?;
        plane
            .kubectl_ok(["create", "namespace", crate::NAMESPACE])
            .await?;
        let admin = Api::namespaced(client(&plane, Identity::Admin).await?, crate::NAMESPACE);
        let operator = Api::namespaced(client(&plane, Identity::Operator).await?, crate::NAMESPACE);
        let pids = Pids::of_plane(plane.dir());
        if pids.apiserver.is_none() || pids.etcd.is_none() {
            bail!("cannot find the plane's kube-apiserver and etcd processes");
        }
        Ok(Self {
            plane,
            admin,
            operator,
            pids,
        })
    }
}

async fn client(plane: &ControlPlane, identity: Identity) -> anyhow::Result<Client> {
    let kubeconfig = Kubeconfig::read_from(plane.kubeconfig(identity))?;
    let config =
        kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default()).await?;
    Ok(Client::try_from(config)?)
}

/// Applies the RBAC the Helm chart renders, bound to the ServiceAccount identity the operator
/// (and the baseline's operator-side writes) run as, so the API server authorizes both alike.
async fn grant_chart_rbac(plane: &ControlPlane) -> anyhow::Result<()> {
    plane
        .kubectl_ok(["create", "namespace", OPERATOR_NAMESPACE])
        .await?;
    let helm = ensure_helm().await?;
    let out = tokio::process::Command::new(&helm)
        .arg("template")
        .arg(RELEASE)
        .arg(repo_path("charts/agentcore-operator"))
        .args(["--namespace", OPERATOR_NAMESPACE])
        .args(["--kube-version", KUBERNETES_VERSION])
        .args(["--show-only", "templates/rbac.yaml"])
        .output()
        .await
        .context("running helm template")?;
    if !out.status.success() {
        bail!(
            "helm template failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    plane.apply_yaml(&String::from_utf8(out.stdout)?).await?;
    Ok(())
}
