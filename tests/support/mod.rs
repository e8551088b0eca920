//! Shared end-to-end fixture: a real kube-apiserver + etcd, the AgentCore emulator, and the
//! operator binary running as its own process with the Helm chart's RBAC, driven by kubectl.

#![allow(dead_code)] // each test binary uses a different part of the fixture

pub mod cluster;
pub mod faults;
pub mod invariants;
pub mod metrics;
pub mod object;
pub mod report;
pub mod wait;

use object::status_str;

use std::{path::PathBuf, time::Duration};

use agentcore_emulator::{EmulatorConfig, JobInfo, Operation, RunningEmulator};
use agentcore_testenv::{
    ControlPlane, ControlPlaneOptions, OPERATOR_NAMESPACE, OperatorOptions, OperatorProcess,
    ensure_helm, kubernetes_version, wait_until_ok,
};
use anyhow::{Context as _, bail};
use serde_json::Value;

pub const OPERATOR_BIN: &str = env!("CARGO_BIN_EXE_agentcore-operator");
/// Release name used to render the chart's RBAC; the chart's fullname and lease name follow it.
pub const RELEASE: &str = "agentcore-operator";

pub fn repo_path(relative: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(relative)
}

/// Renders templates of the chart with `helm template` (helm built from its Go module).
pub async fn helm_template(extra: &[&str]) -> anyhow::Result<String> {
    let helm = ensure_helm().await?;
    let mut args = vec![
        "template".to_owned(),
        RELEASE.to_owned(),
        repo_path("charts/agentcore-operator").display().to_string(),
        "--namespace".to_owned(),
        OPERATOR_NAMESPACE.to_owned(),
        "--kube-version".to_owned(),
        kubernetes_version()?,
    ];
    args.extend(extra.iter().map(|s| (*s).to_owned()));
    let out = tokio::process::Command::new(&helm)
        .args(&args)
        .output()
        .await?;
    if !out.status.success() {
        bail!(
            "helm {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8(out.stdout)?)
}

pub struct Env {
    pub plane: ControlPlane,
    pub emulator: RunningEmulator,
    pub operator: OperatorProcess,
    /// The operator's /metrics, /healthz and /readyz port.
    pub metrics_port: u16,
}

pub struct EnvOptions {
    pub emulator: EmulatorConfig,
    pub operator_args: Vec<String>,
    /// Extra environment of the operator process (after the harness's fake AWS credentials).
    pub operator_env: Vec<(String, String)>,
}

/// What runs beside the API server in an [`Env`] ([`Env::start_with`]). Apart from
/// [`EnvOptions`] so that suites spelling out every field of that struct keep compiling as this
/// one grows.
#[derive(Debug, Clone, Default)]
pub struct PlaneOptions {
    /// Run kube-controller-manager (ownerReference garbage collection, namespace deletion; see
    /// `ControlPlaneOptions::controller_manager`). Started after the CRDs are installed, so the
    /// garbage collector watches their kinds from the start.
    pub controller_manager: bool,
}

impl Default for EnvOptions {
    fn default() -> Self {
        Self {
            emulator: EmulatorConfig {
                job_duration: Duration::from_secs(3),
                stop_duration: Duration::from_secs(1),
                delete_duration: Duration::from_millis(500),
                ..EmulatorConfig::default()
            },
            operator_args: Vec::new(),
            operator_env: Vec::new(),
        }
    }
}

impl Env {
    pub async fn start(options: EnvOptions) -> anyhow::Result<Self> {
        Self::start_with(options, PlaneOptions::default()).await
    }

    /// [`Self::start`] with more than the API server, e.g.
    /// `Env::start_with(EnvOptions::default(), PlaneOptions { controller_manager: true })`.
    pub async fn start_with(
        options: EnvOptions,
        plane_options: PlaneOptions,
    ) -> anyhow::Result<Self> {
        let mut plane = ControlPlane::start(ControlPlaneOptions::default()).await?;
        plane
            .install_crd(repo_path("crds/evals.agentcore.dev_batchevaluations.yaml"))
            .await?;
        grant_chart_rbac(&plane).await?;
        if plane_options.controller_manager {
            plane.start_controller_manager().await?;
        }
        let emulator = agentcore_emulator::start(options.emulator).await?;
        let mut operator_args = options.operator_args;
        let metrics_port = match metrics_port_of(&operator_args) {
            Some(port) => port,
            None => {
                let port = free_port()?;
                operator_args.extend(["--metrics-addr".to_owned(), format!("127.0.0.1:{port}")]);
                port
            }
        };
        let operator = start_operator_with(
            &plane,
            &emulator.endpoint_url(),
            "operator",
            &operator_args,
            &options.operator_env,
        )?;
        wait::serving(metrics_port, Duration::from_secs(30))
            .await
            .with_context(|| format!("operator log: {}", operator.log_path().display()))?;
        Ok(Self {
            plane,
            emulator,
            operator,
            metrics_port,
        })
    }

    pub async fn kubectl(&self, args: &[&str]) -> anyhow::Result<String> {
        Ok(self.plane.kubectl_ok(args).await?)
    }

    /// `kubectl apply` of a manifest from a string.
    pub async fn apply(&self, yaml: &str) -> anyhow::Result<String> {
        Ok(self.plane.apply_yaml(yaml).await?)
    }

    /// The object as JSON, or `None` once it is gone.
    pub async fn get(&self, ns: &str, name: &str) -> anyhow::Result<Option<Value>> {
        let out = self
            .plane
            .kubectl()
            .args([
                "get",
                "beval",
                name,
                "-n",
                ns,
                "-o",
                "json",
                "--ignore-not-found",
            ])
            .output()
            .await?;
        if !out.status.success() {
            bail!(
                "kubectl get failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        if out.stdout.iter().all(u8::is_ascii_whitespace) {
            return Ok(None);
        }
        Ok(Some(serde_json::from_slice(&out.stdout)?))
    }

    /// Waits until the object satisfies `check`, returning it.
    pub async fn wait_for(
        &self,
        ns: &str,
        name: &str,
        what: &str,
        timeout: Duration,
        check: impl Fn(&Value) -> bool,
    ) -> anyhow::Result<Value> {
        let check = &check;
        let found = wait_until_ok(what, timeout, Duration::from_millis(250), || async move {
            match self.get(ns, name).await? {
                Some(obj) if check(&obj) => Ok(obj),
                Some(obj) => bail!(
                    "not yet: status {}",
                    obj.get("status").unwrap_or(&Value::Null)
                ),
                None => bail!("the object is gone"),
            }
        })
        .await
        .with_context(|| {
            format!(
                "{ns}/{name}: {what}; operator log: {}",
                self.operator.log_path().display()
            )
        })?;
        Ok(found)
    }

    /// Waits until the object's job has `status` (`status.remoteStatus`), returning the object.
    pub async fn wait_remote(
        &self,
        ns: &str,
        name: &str,
        status: &str,
        timeout: Duration,
    ) -> anyhow::Result<Value> {
        self.wait_for(ns, name, &format!("remoteStatus {status}"), timeout, |o| {
            status_str(o, "remoteStatus") == Some(status)
        })
        .await
    }

    /// `kubectl patch --type=merge` of one object.
    pub async fn patch(&self, ns: &str, name: &str, patch: &str) -> anyhow::Result<String> {
        self.kubectl(&[
            "patch",
            "beval",
            name,
            "-n",
            ns,
            "--type=merge",
            "-p",
            patch,
        ])
        .await
    }

    pub async fn wait_gone(&self, ns: &str, name: &str, timeout: Duration) -> anyhow::Result<()> {
        wait_until_ok(
            "the object to be gone",
            timeout,
            Duration::from_millis(250),
            || async move {
                match self.get(ns, name).await? {
                    None => Ok(()),
                    Some(obj) => {
                        bail!("still there: {}", obj.get("status").unwrap_or(&Value::Null))
                    }
                }
            },
        )
        .await
        .with_context(|| {
            format!(
                "{ns}/{name}; operator log: {}",
                self.operator.log_path().display()
            )
        })
    }

    /// Applies `ns/name` (a [`manifest`] with `tags`) and waits until its job runs; returns the
    /// remote job's name, under which the emulator lists it.
    pub async fn start_running(
        &self,
        ns: &str,
        name: &str,
        tags: &[(&str, &str)],
    ) -> anyhow::Result<String> {
        self.apply(&manifest(ns, name, "", tags)).await?;
        let obj = self
            .wait_remote(ns, name, "IN_PROGRESS", Duration::from_secs(60))
            .await?;
        Ok(status_str(&obj, "batchEvaluationName")
            .context("the remote name is recorded")?
            .to_owned())
    }

    pub async fn create_namespace(&self, ns: &str) -> anyhow::Result<()> {
        self.kubectl(&["create", "namespace", ns]).await?;
        Ok(())
    }

    /// Jobs the emulator created for this remote name.
    pub fn jobs_named(&self, name: &str) -> Vec<JobInfo> {
        self.emulator
            .jobs()
            .into_iter()
            .filter(|j| j.name == name)
            .collect()
    }

    /// Calls of one operation the emulator answered so far, all outcomes.
    pub fn calls(&self, op: Operation) -> u64 {
        self.emulator.stats().total(op)
    }
}

/// Applies the RBAC the Helm chart renders, bound to the ServiceAccount identity the operator
/// runs as: the tests prove that the chart's permissions are enough.
pub async fn grant_chart_rbac(plane: &ControlPlane) -> anyhow::Result<()> {
    plane
        .kubectl_ok(["create", "namespace", OPERATOR_NAMESPACE])
        .await
        .or_else(|e| {
            if e.to_string().contains("AlreadyExists") {
                Ok(String::new())
            } else {
                Err(e)
            }
        })?;
    let rbac = helm_template(&[
        "--show-only",
        "templates/rbac.yaml",
        "--show-only",
        "templates/leader-election-rbac.yaml",
    ])
    .await?;
    plane.apply_yaml(&rbac).await?;
    Ok(())
}

/// Starts the operator binary with the chart's identity against the plane and emulator.
pub fn start_operator(
    plane: &ControlPlane,
    emulator: &RunningEmulator,
    name: &str,
    extra: &[String],
) -> anyhow::Result<OperatorProcess> {
    start_operator_with(plane, &emulator.endpoint_url(), name, extra, &[])
}

/// [`start_operator`] against any AWS endpoint, with extra environment variables.
pub fn start_operator_with(
    plane: &ControlPlane,
    endpoint_url: &str,
    name: &str,
    extra: &[String],
    env: &[(String, String)],
) -> anyhow::Result<OperatorProcess> {
    let mut args: Vec<String> = [
        "run",
        "--aws-endpoint-url",
        endpoint_url,
        // The emulator answers STS too (AssumeRole for namespaces mapped to roles).
        "--aws-sts-endpoint-url",
        endpoint_url,
        "--aws-region",
        "us-west-2",
        "--poll-interval",
        "500ms",
        "--log-format",
        "json",
        "--aws-attempt-timeout",
        "3s",
        "--aws-operation-timeout",
        "10s",
    ]
    .iter()
    .map(ToString::to_string)
    .collect();
    if !extra.iter().any(|a| a.starts_with("--metrics-addr")) {
        args.extend(["--metrics-addr".to_owned(), "127.0.0.1:0".to_owned()]);
    }
    args.extend(extra.iter().cloned());
    let options = env.iter().fold(
        OperatorOptions::new(OPERATOR_BIN).name(name).args(args),
        |options, (key, value)| options.env(key, value),
    );
    Ok(OperatorProcess::start(plane, options)?)
}

/// The port of a `--metrics-addr HOST:PORT` (or `--metrics-addr=HOST:PORT`) argument.
fn metrics_port_of(args: &[String]) -> Option<u16> {
    let value = args.iter().enumerate().find_map(|(i, a)| {
        if a == "--metrics-addr" {
            args.get(i + 1).map(String::as_str)
        } else {
            a.strip_prefix("--metrics-addr=")
        }
    })?;
    value.rsplit(':').next()?.parse().ok()
}

/// An AgentCore SDK client for `endpoint` (the emulator) with credentials of its own: someone
/// else's tooling, in the same account as the operator.
pub fn sdk_client(endpoint: &str, access_key: &str) -> aws_sdk_bedrockagentcore::Client {
    use aws_sdk_bedrockagentcore::config::{BehaviorVersion, Builder, Credentials, Region};
    aws_sdk_bedrockagentcore::Client::from_conf(
        Builder::new()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-west-2"))
            .credentials_provider(Credentials::new(
                access_key,
                "not-a-secret",
                None,
                None,
                "test",
            ))
            .endpoint_url(endpoint)
            .build(),
    )
}

/// A loopback port that was free a moment ago (for the operator's metrics endpoint).
pub fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// A manifest for a BatchEvaluation with a CloudWatch source; `extra_spec` is YAML indented
/// for the spec block, `tags` become emulator controls (see [`faults::runs`] and its siblings).
pub fn manifest(ns: &str, name: &str, extra_spec: &str, tags: &[(&str, &str)]) -> String {
    let mut tag_block = String::new();
    if !tags.is_empty() {
        tag_block.push_str("  tags:\n");
        for (k, v) in tags {
            tag_block.push_str(&format!("    \"{k}\": \"{v}\"\n"));
        }
    }
    format!(
        "apiVersion: evals.agentcore.dev/v1alpha1
kind: BatchEvaluation
metadata:
  name: {name}
  namespace: {ns}
spec:
  description: end-to-end test
  evaluators:
    - evaluatorId: Builtin.Helpfulness
    - evaluatorId: Builtin.Correctness
  dataSource:
    cloudWatchLogs:
      serviceNames: [checkout-agent]
      logGroupNames: [/aws/agentcore/checkout]
{tag_block}{extra_spec}"
    )
}
