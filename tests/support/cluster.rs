//! The test's own client of the plane, independent of `Env`'s borrow: reads and metadata edits
//! through a kube client (a second writer, as a person's tooling would be), and `kubectl` for
//! what users type. Scenarios keep using it while the API server is being restarted.

use std::path::PathBuf;

use agentcore_testenv::{ControlPlane, wait_until_ok};
use anyhow::{Context as _, bail};
use kube::{
    Api, Client,
    api::{DynamicObject, ListParams},
    config::{KubeConfigOptions, Kubeconfig},
    core::{ApiResource, GroupVersionKind},
};
use serde_json::Value;
use tokio::io::AsyncWriteExt as _;

/// `kubectl apply` as the suite does it: server-side, its own field manager, YAML on stdin.
const SERVER_SIDE_APPLY: [&str; 6] = [
    "apply",
    "--server-side",
    "--force-conflicts",
    "--field-manager=faults-suite",
    "-f",
    "-",
];

pub struct Cluster {
    pub client: Client,
    kubectl: PathBuf,
    kubeconfig: PathBuf,
    bevals: ApiResource,
}

impl Cluster {
    /// Connects as the plane's admin identity.
    pub async fn connect(plane: &ControlPlane) -> anyhow::Result<Self> {
        let kubeconfig = plane.admin_kubeconfig().to_owned();
        let config = kube::Config::from_custom_kubeconfig(
            Kubeconfig::read_from(&kubeconfig)?,
            &KubeConfigOptions::default(),
        )
        .await?;
        Ok(Self {
            client: Client::try_from(config)?,
            kubectl: plane.tools().kubectl().to_owned(),
            kubeconfig,
            bevals: ApiResource::from_gvk_with_plural(
                &GroupVersionKind::gvk("evals.agentcore.dev", "v1alpha1", "BatchEvaluation"),
                "batchevaluations",
            ),
        })
    }

    pub fn bevals(&self, ns: &str) -> Api<DynamicObject> {
        Api::namespaced_with(self.client.clone(), ns, &self.bevals)
    }

    /// Every BatchEvaluation in every namespace, as JSON.
    pub async fn list_bevals(&self) -> anyhow::Result<Vec<Value>> {
        let api: Api<DynamicObject> = Api::all_with(self.client.clone(), &self.bevals);
        let list = api.list(&ListParams::default()).await?;
        list.items
            .into_iter()
            .map(|o| serde_json::to_value(o).context("serializing an object"))
            .collect()
    }

    /// Every event (events.k8s.io/v1) in every namespace, as JSON.
    pub async fn list_events(&self) -> anyhow::Result<Vec<Value>> {
        let api: Api<k8s_openapi::api::events::v1::Event> = Api::all(self.client.clone());
        let list = api.list(&ListParams::default()).await?;
        list.items
            .into_iter()
            .map(|o| serde_json::to_value(o).context("serializing an event"))
            .collect()
    }

    /// Events about one object: (type, reason, note).
    pub async fn events_for(
        &self,
        ns: &str,
        name: &str,
    ) -> anyhow::Result<Vec<(String, String, String)>> {
        let api: Api<k8s_openapi::api::events::v1::Event> =
            Api::namespaced(self.client.clone(), ns);
        let list = api.list(&ListParams::default()).await?;
        Ok(list
            .items
            .into_iter()
            .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name))
            .map(|e| {
                (
                    e.type_.unwrap_or_default(),
                    e.reason.unwrap_or_default(),
                    e.note.unwrap_or_default(),
                )
            })
            .collect())
    }

    pub fn kubectl(&self) -> tokio::process::Command {
        let mut command = tokio::process::Command::new(&self.kubectl);
        command
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true);
        command
    }

    /// Runs `kubectl <args>`; stdout, or an error quoting stderr.
    pub async fn kubectl_ok(&self, args: &[&str]) -> anyhow::Result<String> {
        self.kubectl_stdin(args, None).await
    }

    /// Server-side apply of YAML text, as the admin.
    pub async fn apply(&self, yaml: &str) -> anyhow::Result<String> {
        self.kubectl_stdin(&SERVER_SIDE_APPLY, Some(yaml)).await
    }

    async fn kubectl_stdin(&self, args: &[&str], stdin: Option<&str>) -> anyhow::Result<String> {
        let mut command = self.kubectl();
        command
            .args(args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        if stdin.is_some() {
            command.stdin(std::process::Stdio::piped());
        }
        let mut child = command.spawn().context("starting kubectl")?;
        if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
            pipe.write_all(text.as_bytes()).await?;
        }
        let out = child.wait_with_output().await?;
        if !out.status.success() {
            bail!(
                "kubectl {} failed: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Retries a kubectl call for up to `patience` (the API server may be restarting).
    pub async fn kubectl_retry(
        &self,
        args: &[&str],
        stdin: Option<&str>,
        patience: std::time::Duration,
    ) -> anyhow::Result<String> {
        Ok(wait_until_ok(
            format!("kubectl {}", args.join(" ")),
            patience,
            std::time::Duration::from_millis(500),
            || self.kubectl_stdin(args, stdin),
        )
        .await?)
    }

    /// Retrying server-side apply.
    pub async fn apply_retry(
        &self,
        yaml: &str,
        patience: std::time::Duration,
    ) -> anyhow::Result<String> {
        self.kubectl_retry(&SERVER_SIDE_APPLY, Some(yaml), patience)
            .await
    }

    pub async fn create_namespace(&self, ns: &str) -> anyhow::Result<()> {
        self.kubectl_retry(
            &["create", "namespace", ns],
            None,
            std::time::Duration::from_secs(30),
        )
        .await?;
        Ok(())
    }
}
