//! `agentcore-testenv`: a real, local Kubernetes control plane for the agentcore-operator's
//! end-to-end tests, benchmarks and quick start.
//!
//! - [`ControlPlane`] runs etcd and kube-apiserver (built from their Go modules, see
//!   `hack/build-control-plane.sh`) as plain processes on loopback, with an admin identity and
//!   the operator's ServiceAccount identity (no permissions until a test grants them). Opt in to
//!   kube-controller-manager ([`ControlPlaneOptions::controller_manager`]) for ownerReference
//!   garbage collection and namespace deletion.
//! - [`OperatorProcess`] runs the operator binary against it, logging to a file in the plane's
//!   directory.
//! - [`wait_until`] / [`wait_until_ok`] poll for eventual conditions with a named timeout.
//!
//! Every child process dies with the test process, even when that is SIGKILLed, and is stopped
//! on drop (so a panicking test leaks nothing). The AWS side is `agentcore-emulator`'s job: pass
//! its endpoint URL to the operator through [`OperatorOptions::arg`].
//!
//! ```no_run
//! # async fn f() -> anyhow::Result<()> {
//! use std::time::Duration;
//! use agentcore_testenv::{ControlPlane, ControlPlaneOptions, OperatorOptions, OperatorProcess};
//!
//! let mut plane = ControlPlane::start(ControlPlaneOptions::default()).await?;
//! plane.install_crd("crds/evals.agentcore.dev_batchevaluations.yaml").await?;
//! // The operator identity has no permissions until RBAC bound to its ServiceAccount is applied.
//! plane.apply_file("rbac.yaml").await?;
//! let mut operator = OperatorProcess::start(
//!     &plane,
//!     // In the root package's integration tests: env!("CARGO_BIN_EXE_agentcore-operator").
//!     OperatorOptions::new("target/debug/agentcore-operator")
//!         .args(["run", "--aws-endpoint-url", "http://127.0.0.1:4566"]),
//! )?;
//! operator.wait_for_log("started", Duration::from_secs(30)).await?;
//! plane.kubectl_ok(["apply", "-f", "examples/quickstart.yaml"]).await?;
//! operator.kill_hard(); // kill -9 mid-flight ...
//! plane.restart_apiserver().await?; // ... and crash the API server too
//! operator.restart().await?;
//! # Ok(()) }
//! ```

mod certs;
mod node;
mod operator;
mod plane;
mod process;
mod tools;
mod wait;

use std::{io, path::PathBuf, time::Duration};

pub use node::{BRIDGE, NODE_NAME, Node, POD_CIDR};
pub use operator::{
    DEFAULT_AWS_REGION, FAKE_AWS_ACCESS_KEY_ID, FAKE_AWS_SECRET_ACCESS_KEY, OperatorOptions,
    OperatorProcess,
};
pub use plane::{
    CONTROLLER_MANAGER_CONTROLLERS, ControlPlane, ControlPlaneOptions, Identity, KEEP_ENV,
    OPERATOR_NAMESPACE, OPERATOR_SERVICE_ACCOUNT, OPERATOR_USER,
};
pub use process::processes_mentioning;
pub use tools::{
    HELM_VERSION, KUBERNETES_VERSION, KUBERNETES_VERSION_ENV, TOOLS_DIR_ENV, Tools, ensure_helm,
    kubernetes_version,
};
pub use wait::{wait_until, wait_until_ok};

/// Everything that can go wrong in the harness.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: io::Error,
    },

    #[error("control-plane tools not available: {0}")]
    ToolsMissing(String),

    #[error("{} failed ({status}); its output ends with:\n{output_tail}", script.display())]
    Build {
        script: PathBuf,
        status: String,
        output_tail: String,
    },

    #[error("generating certificates: {0}")]
    Certificates(#[from] rcgen::Error),

    #[error("building the HTTP client for readiness checks: {0}")]
    HttpClient(#[from] reqwest::Error),

    #[error("starting {program}: {source}")]
    Spawn {
        program: String,
        #[source]
        source: io::Error,
    },

    #[error("{name} exited before it was ready ({status}); {} ends with:\n{log_tail}", log.display())]
    Exited {
        name: String,
        status: String,
        log: PathBuf,
        log_tail: String,
    },

    #[error(
        "{name} was not ready after {waited:.1?} (last check: {last_error}); {} ends with:\n{log_tail}",
        log.display()
    )]
    NotReady {
        name: String,
        waited: Duration,
        last_error: String,
        log: PathBuf,
        log_tail: String,
    },

    #[error("node: {0}")]
    Node(String),

    #[error("the process to wait for is not running")]
    NotRunning,

    #[error("`kubectl {args}` failed ({status}): {stderr}")]
    Kubectl {
        args: String,
        status: String,
        stderr: String,
    },

    #[error("{} contains no CustomResourceDefinition", .0.display())]
    NoCustomResourceDefinition(PathBuf),

    #[error(
        "timed out after {waited:.1?} waiting for {what}{}",
        last_error.as_ref().map(|e| format!(" (last error: {e})")).unwrap_or_default()
    )]
    Timeout {
        what: String,
        waited: Duration,
        last_error: Option<String>,
    },
}

impl Error {
    pub(crate) fn io(context: impl Into<String>, source: io::Error) -> Self {
        Self::Io {
            context: context.into(),
            source,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
