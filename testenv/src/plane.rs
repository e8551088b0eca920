//! A real Kubernetes control plane: etcd and kube-apiserver as plain processes on loopback.
//!
//! By default no kube-controller-manager or scheduler runs: CRDs (with CEL validation), the
//! status subresource, server-side apply, finalizers, RBAC and watches all work; ownerReference
//! garbage collection, namespace deletion and pods do not. With
//! [`ControlPlaneOptions::controller_manager`] (or [`ControlPlane::start_controller_manager`]) a
//! kube-controller-manager runs beside them with only its garbage collector and namespace
//! controllers ([`CONTROLLER_MANAGER_CONTROLLERS`]): deleting an owner deletes its dependents,
//! and deleting a namespace deletes what it holds. Pods still need a [`crate::Node`].

use std::{
    collections::HashSet,
    ffi::{OsStr, OsString},
    net::TcpListener,
    path::{Path, PathBuf},
    process::{Command as StdCommand, Stdio},
    sync::Mutex,
    time::{Duration, Instant},
};

use base64::Engine as _;
use rand::Rng as _;
use tokio::{io::AsyncWriteExt as _, process::Command};

use crate::{
    Error, Result, certs,
    process::{Supervised, log_tail},
    tools::Tools,
};

/// Namespace of the operator's ServiceAccount identity (what the Helm chart installs into).
pub const OPERATOR_NAMESPACE: &str = "agentcore-system";
/// Name of the operator's ServiceAccount; RBAC bindings to it apply to [`Identity::Operator`].
pub const OPERATOR_SERVICE_ACCOUNT: &str = "agentcore-operator";
/// The user name the API server sees for [`Identity::Operator`].
pub const OPERATOR_USER: &str = "system:serviceaccount:agentcore-system:agentcore-operator";
/// Set to `1` to keep a plane's directory (logs, etcd data, kubeconfigs) after teardown.
pub const KEEP_ENV: &str = "AGENTCORE_KEEP_TESTENV";

const TEMP_PREFIX: &str = "agentcore-testenv-";
const KEPT_MARKER: &str = "KEPT";
const ADMIN_KUBECONFIG: &str = "admin.kubeconfig";
const OPERATOR_KUBECONFIG: &str = "operator.kubeconfig";
const FIELD_MANAGER: &str = "agentcore-testenv";
const SERVICE_ACCOUNT_ISSUER: &str = "https://kubernetes.default.svc.cluster.local";
const ETCD_READY_TIMEOUT: Duration = Duration::from_secs(20);
const READY_POLL: Duration = Duration::from_millis(100);
const APISERVER_GRACE: Duration = Duration::from_secs(5);
const ETCD_GRACE: Duration = Duration::from_secs(5);
const CRD_ESTABLISHED_TIMEOUT: &str = "60s";
const CONTROLLER_MANAGER_GRACE: Duration = Duration::from_secs(5);
/// The controllers a plane's kube-controller-manager runs (its `--controllers`): what tests need
/// from it and nothing else (no ServiceAccount tokens, no node lifecycle, no workloads).
pub const CONTROLLER_MANAGER_CONTROLLERS: &str =
    "garbage-collector-controller,namespace-controller";
/// Starts retried with fresh ports when another process grabbed one between choice and bind.
const PORT_ATTEMPTS: u32 = 3;
const LOG_TAIL_LINES: usize = 30;

/// Who a request is made as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Identity {
    /// User `admin` in group `system:masters`: may do anything.
    Admin,
    /// The operator's ServiceAccount identity ([`OPERATOR_USER`], groups `system:serviceaccounts`,
    /// `system:serviceaccounts:agentcore-system`, `system:authenticated`). Starts with no
    /// permissions: tests grant them by applying RBAC objects bound to the ServiceAccount.
    Operator,
}

/// How to start a [`ControlPlane`].
#[derive(Debug, Clone)]
pub struct ControlPlaneOptions {
    /// Where state (etcd data, certificates, kubeconfigs, logs) lives. `None`: a fresh temporary
    /// directory, removed at teardown. `Some`: created if missing and never removed; reusing a
    /// directory reuses its etcd data.
    pub state_dir: Option<PathBuf>,
    /// The binaries to run. `None`: [`Tools::ensure`] (builds them on the very first use).
    pub tools: Option<Tools>,
    /// How long etcd plus kube-apiserver may take to become ready.
    pub startup_timeout: Duration,
    /// Appended to kube-apiserver's command line (later flags win).
    pub extra_apiserver_args: Vec<String>,
    /// Keep the ServiceAccount admission plugin (it mounts the projected token into pods). Only
    /// for planes with a [`crate::Node`], whose kube-controller-manager creates the `default`
    /// ServiceAccounts the plugin requires; see [`crate::Node::control_plane_options`].
    pub service_account_admission: bool,
    /// Also run kube-controller-manager with [`CONTROLLER_MANAGER_CONTROLLERS`] (ownerReference
    /// garbage collection, namespace deletion); start-up waits until it serves `/healthz`. Off by
    /// default: it adds a process and a second or two of start-up, and its binary is built (once,
    /// a few minutes) only when a plane first asks for it. Its log is
    /// `kube-controller-manager.log` in [`ControlPlane::dir`].
    pub controller_manager: bool,
}

impl Default for ControlPlaneOptions {
    fn default() -> Self {
        Self {
            state_dir: None,
            tools: None,
            startup_timeout: Duration::from_secs(60),
            extra_apiserver_args: Vec::new(),
            service_account_admission: false,
            controller_manager: false,
        }
    }
}

/// A running etcd + kube-apiserver, torn down by [`ControlPlane::stop`] or on drop.
///
/// ```no_run
/// # async fn f() -> agentcore_testenv::Result<()> {
/// use agentcore_testenv::{ControlPlane, ControlPlaneOptions};
/// let plane = ControlPlane::start(ControlPlaneOptions::default()).await?;
/// plane.kubectl_ok(["create", "namespace", "demo"]).await?;
/// plane.stop().await?;
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct ControlPlane {
    dir: PathBuf,
    remove_dir: bool,
    tools: Tools,
    startup_timeout: Duration,
    extra_apiserver_args: Vec<String>,
    service_account_admission: bool,
    pki: certs::Pki,
    admin_token: String,
    server_url: String,
    admin_kubeconfig: PathBuf,
    operator_kubeconfig: PathBuf,
    apiserver_args: Vec<OsString>,
    http: reqwest::Client,
    etcd: Option<Supervised>,
    apiserver: Option<Supervised>,
    controller_manager: Option<Supervised>,
}

impl ControlPlane {
    /// Starts etcd and kube-apiserver and waits until the API server reports ready.
    ///
    /// On failure everything started so far is torn down and the error carries the tail of the
    /// failing component's log.
    pub async fn start(options: ControlPlaneOptions) -> Result<Self> {
        let started = Instant::now();
        let tools = match options.tools {
            Some(tools) => tools,
            None => Tools::ensure().await?,
        };
        let (dir, remove_dir) = match options.state_dir {
            Some(dir) => (create_private_dir(&dir, false)?, false),
            None => {
                remove_stale_temp_dirs();
                (create_private_dir(&fresh_temp_dir(), true)?, true)
            }
        };
        // Removes the directory again if a step before the plane exists fails.
        let mut cleanup = DirCleanup(remove_dir.then(|| dir.clone()));

        let pki = certs::generate(&dir.join("pki"))?;
        let admin_token = random_token();
        let operator_token = random_token();
        certs::write_file(
            &dir.join("tokens.csv"),
            &format!(
                "{admin_token},admin,admin,\"system:masters\"\n\
                 {operator_token},{OPERATOR_USER},{OPERATOR_SERVICE_ACCOUNT},\
                 \"system:serviceaccounts,system:serviceaccounts:{OPERATOR_NAMESPACE},system:authenticated\"\n"
            ),
            0o600,
        )?;
        let http = reqwest::Client::builder()
            .add_root_certificate(reqwest::Certificate::from_pem(pki.ca_pem.as_bytes())?)
            .no_proxy()
            .timeout(Duration::from_secs(5))
            .build()?;
        cleanup.0 = None;

        let mut plane = Self {
            admin_kubeconfig: dir.join(ADMIN_KUBECONFIG),
            operator_kubeconfig: dir.join(OPERATOR_KUBECONFIG),
            dir,
            remove_dir,
            tools,
            startup_timeout: options.startup_timeout,
            extra_apiserver_args: options.extra_apiserver_args,
            service_account_admission: options.service_account_admission,
            pki,
            admin_token,
            server_url: String::new(),
            apiserver_args: Vec::new(),
            http,
            etcd: None,
            apiserver: None,
            controller_manager: None,
        };
        // From here on, dropping `plane` on an error tears down whatever was started.
        plane.launch().await?;
        let ca = base64::engine::general_purpose::STANDARD.encode(&plane.pki.ca_pem);
        certs::write_file(
            &plane.admin_kubeconfig,
            &kubeconfig(&plane.server_url, &ca, "admin", &plane.admin_token),
            0o600,
        )?;
        certs::write_file(
            &plane.operator_kubeconfig,
            &kubeconfig(
                &plane.server_url,
                &ca,
                OPERATOR_SERVICE_ACCOUNT,
                &operator_token,
            ),
            0o600,
        )?;
        if options.controller_manager {
            plane.start_controller_manager().await?;
        }
        tracing::info!(
            server = %plane.server_url,
            dir = %plane.dir.display(),
            elapsed = ?started.elapsed(),
            "control plane ready"
        );
        Ok(plane)
    }

    /// Kubeconfig of [`Identity::Admin`].
    pub fn admin_kubeconfig(&self) -> &Path {
        &self.admin_kubeconfig
    }

    /// Kubeconfig of [`Identity::Operator`].
    pub fn operator_kubeconfig(&self) -> &Path {
        &self.operator_kubeconfig
    }

    pub fn kubeconfig(&self, identity: Identity) -> &Path {
        match identity {
            Identity::Admin => &self.admin_kubeconfig,
            Identity::Operator => &self.operator_kubeconfig,
        }
    }

    /// `https://127.0.0.1:<port>`; stable across [`Self::restart_apiserver`].
    pub fn server_url(&self) -> &str {
        &self.server_url
    }

    /// The state directory: kubeconfigs, `etcd.log`, `kube-apiserver.log`,
    /// `kube-controller-manager.log` (if it runs), operator logs.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn tools(&self) -> &Tools {
        &self.tools
    }

    pub(crate) fn pki(&self) -> &certs::Pki {
        &self.pki
    }

    /// A `kubectl` command as [`Identity::Admin`]; add arguments and run it.
    pub fn kubectl(&self) -> Command {
        self.kubectl_as(Identity::Admin)
    }

    /// A `kubectl` command as `identity`.
    pub fn kubectl_as(&self, identity: Identity) -> Command {
        let mut command = Command::new(self.tools.kubectl());
        command
            .arg("--kubeconfig")
            .arg(self.kubeconfig(identity))
            .stdin(Stdio::null())
            .kill_on_drop(true);
        command
    }

    /// Runs `kubectl <args>` as admin; returns stdout, or an error with stderr.
    pub async fn kubectl_ok<I, S>(&self, args: I) -> Result<String>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.kubectl_ok_as(Identity::Admin, args).await
    }

    /// Runs `kubectl <args>` as `identity`; returns stdout, or an error with stderr.
    pub async fn kubectl_ok_as<I, S>(&self, identity: Identity, args: I) -> Result<String>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut command = self.kubectl_as(identity);
        command.args(args);
        run_kubectl(command, None).await
    }

    /// Server-side applies a manifest file (as admin, conflicts forced).
    pub async fn apply_file(&self, path: impl AsRef<Path>) -> Result<String> {
        let mut command = self.apply_command();
        command.arg("-f").arg(path.as_ref());
        run_kubectl(command, None).await
    }

    /// Server-side applies manifests given as YAML text (as admin, conflicts forced).
    pub async fn apply_yaml(&self, yaml: &str) -> Result<String> {
        self.apply_yaml_with(&[], yaml).await
    }

    /// [`Self::apply_yaml`] with extra `kubectl apply` arguments, e.g. `--dry-run=server`.
    pub async fn apply_yaml_with(&self, extra: &[&str], yaml: &str) -> Result<String> {
        let mut command = self.apply_command();
        command.args(extra).args(["-f", "-"]);
        run_kubectl(command, Some(yaml)).await
    }

    /// Applies the CustomResourceDefinitions in `path` and waits until each is Established, so
    /// objects of the new kinds can be created right away. Returns the CRD names.
    pub async fn install_crd(&self, path: impl AsRef<Path>) -> Result<Vec<String>> {
        let path = path.as_ref();
        let mut command = self.apply_command();
        command.arg("-f").arg(path).args(["-o", "name"]);
        let applied = run_kubectl(command, None).await?;
        let crds: Vec<String> = applied
            .lines()
            .filter(|line| line.starts_with("customresourcedefinition"))
            .map(str::to_owned)
            .collect();
        if crds.is_empty() {
            return Err(Error::NoCustomResourceDefinition(path.to_owned()));
        }
        let mut wait = self.kubectl();
        wait.args(["wait", "--for=condition=Established"])
            .arg(format!("--timeout={CRD_ESTABLISHED_TIMEOUT}"))
            .args(&crds);
        run_kubectl(wait, None).await?;
        Ok(crds
            .iter()
            .map(|name| name.rsplit('/').next().unwrap_or(name).to_owned())
            .collect())
    }

    /// Starts kube-controller-manager against this plane (unless it runs already) with only
    /// [`CONTROLLER_MANAGER_CONTROLLERS`], and waits until it serves `/healthz`. What
    /// [`ControlPlaneOptions::controller_manager`] does at start-up; calling it later instead,
    /// after installing CRDs, saves the garbage collector's periodic rediscovery (up to 30 s)
    /// before it watches the new kinds.
    ///
    /// As the admin identity (no per-controller ServiceAccount credentials: the plane runs no
    /// token controller), no leader election, its secure port on a free loopback port with a
    /// self-signed certificate, flex volume plugins in the plane's directory.
    pub async fn start_controller_manager(&mut self) -> Result<()> {
        if self
            .controller_manager
            .as_mut()
            .is_some_and(Supervised::is_running)
        {
            return Ok(());
        }
        let started = Instant::now();
        let binary = self.tools.ensure_controller_manager().await?;
        let flex = self.dir.join("kube-controller-manager-flex");
        std::fs::create_dir_all(&flex)
            .map_err(|source| Error::io(format!("creating {}", flex.display()), source))?;
        let [port] = free_ports()?;
        let mut command = StdCommand::new(binary);
        command
            .arg(flag("--kubeconfig", &self.admin_kubeconfig))
            // Delegated authentication and authorization of its own endpoints; /healthz is
            // always allowed.
            .arg(flag("--authentication-kubeconfig", &self.admin_kubeconfig))
            .arg(flag("--authorization-kubeconfig", &self.admin_kubeconfig))
            .arg(format!("--controllers={CONTROLLER_MANAGER_CONTROLLERS}"))
            .arg("--use-service-account-credentials=false")
            .arg("--leader-elect=false")
            .arg("--bind-address=127.0.0.1")
            .arg(format!("--secure-port={port}"))
            .arg(flag(
                "--cert-dir",
                self.dir.join("kube-controller-manager-certs"),
            ))
            .arg(flag("--flex-volume-plugin-dir", &flex));
        let log = self.dir.join("kube-controller-manager.log");
        self.controller_manager = Some(Supervised::spawn(
            "kube-controller-manager",
            command,
            &log,
            CONTROLLER_MANAGER_GRACE,
        )?);
        // Its certificate is self-signed at start-up: nothing to verify it against, and the
        // probe only reads /healthz on loopback.
        let http = reqwest::Client::builder()
            .danger_accept_invalid_certs(true)
            .no_proxy()
            .timeout(Duration::from_secs(5))
            .build()?;
        let healthz = format!("https://127.0.0.1:{port}/healthz");
        wait_ready(
            self.controller_manager.as_mut(),
            self.startup_timeout,
            || async {
                let response = http.get(&healthz).send().await.map_err(error_chain)?;
                let status = response.status();
                let body = response.text().await.unwrap_or_default();
                if status.is_success() {
                    Ok(())
                } else {
                    Err(format!("/healthz answered {status}: {body}"))
                }
            },
        )
        .await?;
        tracing::info!(elapsed = ?started.elapsed(), port, "kube-controller-manager ready");
        Ok(())
    }

    /// Whether kube-controller-manager runs beside the API server.
    pub fn runs_controller_manager(&mut self) -> bool {
        self.controller_manager
            .as_mut()
            .is_some_and(Supervised::is_running)
    }

    /// Kills kube-apiserver with SIGKILL (a crash, not a graceful stop) and starts it again on the
    /// same port against the same etcd, then waits until it is ready. Data survives; clients see
    /// connection errors and broken watches meanwhile.
    pub async fn restart_apiserver(&mut self) -> Result<()> {
        if let Some(mut apiserver) = self.apiserver.take() {
            apiserver.kill_hard();
        }
        let started = Instant::now();
        self.spawn_apiserver()?;
        self.wait_apiserver_ready(self.startup_timeout).await?;
        tracing::info!(elapsed = ?started.elapsed(), "kube-apiserver restarted");
        Ok(())
    }

    /// Stops kube-controller-manager (if it runs), kube-apiserver and etcd (SIGTERM, then SIGKILL
    /// after a grace period) and removes the temporary directory (unless
    /// `AGENTCORE_KEEP_TESTENV=1` or a `state_dir` was given).
    pub async fn stop(mut self) -> Result<()> {
        if let Some(mut manager) = self.controller_manager.take() {
            manager.terminate(CONTROLLER_MANAGER_GRACE).await;
        }
        if let Some(mut apiserver) = self.apiserver.take() {
            apiserver.terminate(APISERVER_GRACE).await;
        }
        if let Some(mut etcd) = self.etcd.take() {
            etcd.terminate(ETCD_GRACE).await;
        }
        self.remove_dir()
    }

    fn apply_command(&self) -> Command {
        let mut command = self.kubectl();
        command.args([
            "apply",
            "--server-side",
            "--force-conflicts",
            &format!("--field-manager={FIELD_MANAGER}"),
        ]);
        command
    }

    /// Starts etcd and kube-apiserver on fresh ports, retrying when a port was taken meanwhile.
    async fn launch(&mut self) -> Result<()> {
        let deadline = Instant::now() + self.startup_timeout;
        let mut attempt = 1;
        loop {
            let [etcd_client, etcd_peer, apiserver] = free_ports()?;
            match self
                .launch_on(etcd_client, etcd_peer, apiserver, deadline)
                .await
            {
                Ok(()) => return Ok(()),
                Err(error) if attempt < PORT_ATTEMPTS && is_port_conflict(&error) => {
                    tracing::warn!(%error, "port taken by another process; retrying on new ports");
                    self.apiserver = None;
                    self.etcd = None;
                    let _ = std::fs::remove_dir_all(self.dir.join("etcd-data"));
                    attempt += 1;
                }
                Err(error) => return Err(error),
            }
        }
    }

    async fn launch_on(
        &mut self,
        etcd_client: u16,
        etcd_peer: u16,
        apiserver: u16,
        deadline: Instant,
    ) -> Result<()> {
        let etcd_url = format!("http://127.0.0.1:{etcd_client}");
        let peer_url = format!("http://127.0.0.1:{etcd_peer}");
        let mut etcd = StdCommand::new(self.tools.etcd());
        etcd.arg("--name=testenv")
            .arg(flag("--data-dir", self.dir.join("etcd-data")))
            .arg(format!("--listen-client-urls={etcd_url}"))
            .arg(format!("--advertise-client-urls={etcd_url}"))
            .arg(format!("--listen-peer-urls={peer_url}"))
            .arg(format!("--initial-advertise-peer-urls={peer_url}"))
            .arg(format!("--initial-cluster=testenv={peer_url}"))
            // Durability across power loss is irrelevant here; fsync latency is not.
            .arg("--unsafe-no-fsync")
            .arg("--log-level=warn");
        let etcd_log = self.dir.join("etcd.log");
        self.etcd = Some(Supervised::spawn("etcd", etcd, &etcd_log, ETCD_GRACE)?);
        let health = format!("{etcd_url}/health");
        let etcd_timeout =
            ETCD_READY_TIMEOUT.min(deadline.saturating_duration_since(Instant::now()));
        wait_ready(self.etcd.as_mut(), etcd_timeout, || async {
            let response = self.http.get(&health).send().await.map_err(error_chain)?;
            let status = response.status();
            let body = response.text().await.unwrap_or_default();
            if status.is_success() && body.contains("\"true\"") {
                Ok(())
            } else {
                Err(format!("{health} answered {status}: {body}"))
            }
        })
        .await?;

        self.server_url = format!("https://127.0.0.1:{apiserver}");
        self.apiserver_args = self.apiserver_args(&etcd_url, apiserver);
        self.spawn_apiserver()?;
        self.wait_apiserver_ready(deadline.saturating_duration_since(Instant::now()))
            .await
    }

    fn apiserver_args(&self, etcd_url: &str, port: u16) -> Vec<OsString> {
        let pki = &self.pki;
        let mut args: Vec<OsString> = vec![
            format!("--etcd-servers={etcd_url}").into(),
            format!("--secure-port={port}").into(),
            "--bind-address=127.0.0.1".into(),
            // Without it the apiserver looks for a default route, which sandboxes may lack.
            "--advertise-address=127.0.0.1".into(),
            // No endpoints for the `kubernetes` Service: nothing here can route to it, and from
            // v1.37 the API server refuses a loopback advertise address with the reconciler on.
            // (A later --endpoint-reconciler-type in extra_apiserver_args wins.)
            "--endpoint-reconciler-type=none".into(),
            flag("--cert-dir", self.dir.join("apiserver-certs")),
            flag("--tls-cert-file", &pki.serving_cert),
            flag("--tls-private-key-file", &pki.serving_key),
            flag("--token-auth-file", self.dir.join("tokens.csv")),
            "--authorization-mode=RBAC".into(),
            format!("--service-account-issuer={SERVICE_ACCOUNT_ISSUER}").into(),
            flag(
                "--service-account-key-file",
                &pki.service_account_public_key,
            ),
            flag(
                "--service-account-signing-key-file",
                &pki.service_account_key,
            ),
            "--service-cluster-ip-range=10.0.0.0/24".into(),
            "--allow-privileged=true".into(),
            "--profiling=false".into(),
            // For a Node's kubelet (logs, exec): its address is an IP, never a resolvable name.
            "--kubelet-preferred-address-types=InternalIP,Hostname".into(),
            flag("--kubelet-client-certificate", &pki.kubelet_client_cert),
            flag("--kubelet-client-key", &pki.kubelet_client_key),
        ];
        if !self.service_account_admission {
            // The plugin needs the `default` ServiceAccount of each namespace, which only
            // kube-controller-manager creates; a plane without a node runs none.
            args.push("--disable-admission-plugins=ServiceAccount".into());
        }
        args.extend(self.extra_apiserver_args.iter().map(OsString::from));
        args
    }

    fn spawn_apiserver(&mut self) -> Result<()> {
        let mut command = StdCommand::new(self.tools.kube_apiserver());
        command.args(&self.apiserver_args);
        let log = self.dir.join("kube-apiserver.log");
        self.apiserver = Some(Supervised::spawn(
            "kube-apiserver",
            command,
            &log,
            APISERVER_GRACE,
        )?);
        Ok(())
    }

    async fn wait_apiserver_ready(&mut self, timeout: Duration) -> Result<()> {
        let readyz = format!("{}/readyz", self.server_url);
        let http = &self.http;
        let token = &self.admin_token;
        wait_ready(self.apiserver.as_mut(), timeout, || async {
            let response = http
                .get(&readyz)
                .bearer_auth(token)
                .send()
                .await
                .map_err(error_chain)?;
            let status = response.status();
            if status.is_success() {
                return Ok(());
            }
            // The verbose body lists the failing checks, e.g. "[-]etcd failed".
            let body = response.text().await.unwrap_or_default();
            let failing: Vec<&str> = body.lines().filter(|l| l.starts_with("[-]")).collect();
            Err(format!("/readyz answered {status}: {}", failing.join("; ")))
        })
        .await
    }

    fn remove_dir(&mut self) -> Result<()> {
        if !self.remove_dir {
            return Ok(());
        }
        self.remove_dir = false;
        if std::env::var_os(KEEP_ENV).is_some_and(|v| v == "1") {
            // Protects the directory from remove_stale_temp_dirs.
            let _ = std::fs::write(self.dir.join(KEPT_MARKER), "");
            eprintln!(
                "agentcore-testenv: kept the control plane directory {} ({KEEP_ENV}=1)",
                self.dir.display()
            );
            return Ok(());
        }
        std::fs::remove_dir_all(&self.dir)
            .map_err(|source| Error::io(format!("removing {}", self.dir.display()), source))
    }
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        // Order matters: an apiserver outliving etcd logs errors until it is stopped.
        if let Some(mut manager) = self.controller_manager.take() {
            manager.terminate_blocking(CONTROLLER_MANAGER_GRACE);
        }
        if let Some(mut apiserver) = self.apiserver.take() {
            apiserver.terminate_blocking(APISERVER_GRACE);
        }
        if let Some(mut etcd) = self.etcd.take() {
            etcd.terminate_blocking(ETCD_GRACE);
        }
        if let Err(error) = self.remove_dir() {
            tracing::warn!(%error, "control plane teardown");
        }
    }
}

/// Polls `probe` until it succeeds, failing early with the log tail if the process exits.
async fn wait_ready<F, Fut>(
    process: Option<&mut Supervised>,
    timeout: Duration,
    mut probe: F,
) -> Result<()>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<(), String>>,
{
    let Some(process) = process else {
        return Err(Error::NotRunning);
    };
    let started = Instant::now();
    loop {
        if !process.is_running() {
            return Err(Error::Exited {
                name: process.name().to_owned(),
                status: process
                    .exit_status()
                    .map_or_else(|| "exit status unknown".to_owned(), |s| s.to_string()),
                log: process.log_path().to_owned(),
                log_tail: log_tail(process.log_path(), LOG_TAIL_LINES),
            });
        }
        let last_error = match probe().await {
            Ok(()) => {
                tracing::debug!(name = process.name(), elapsed = ?started.elapsed(), "ready");
                return Ok(());
            }
            Err(error) => error,
        };
        if started.elapsed() >= timeout {
            return Err(Error::NotReady {
                name: process.name().to_owned(),
                waited: started.elapsed(),
                last_error,
                log: process.log_path().to_owned(),
                log_tail: log_tail(process.log_path(), LOG_TAIL_LINES),
            });
        }
        tokio::time::sleep(READY_POLL).await;
    }
}

fn is_port_conflict(error: &Error) -> bool {
    match error {
        Error::Exited { log_tail, .. } | Error::NotReady { log_tail, .. } => {
            log_tail.contains("address already in use")
        }
        _ => false,
    }
}

async fn run_kubectl(mut command: Command, stdin: Option<&str>) -> Result<String> {
    let args = describe_args(command.as_std());
    if stdin.is_some() {
        command.stdin(Stdio::piped());
    }
    command.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = command.spawn().map_err(|source| Error::Spawn {
        program: "kubectl".to_owned(),
        source,
    })?;
    if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(text.as_bytes())
            .await
            .map_err(|source| Error::io("writing to kubectl's stdin", source))?;
    }
    let output = child
        .wait_with_output()
        .await
        .map_err(|source| Error::io("waiting for kubectl", source))?;
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    } else {
        Err(Error::Kubectl {
            args,
            status: output.status.to_string(),
            stderr: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
        })
    }
}

/// The arguments after `--kubeconfig <path>`, for error messages.
fn describe_args(command: &StdCommand) -> String {
    command
        .get_args()
        .skip(2)
        .map(|a| a.to_string_lossy())
        .collect::<Vec<_>>()
        .join(" ")
}

fn flag(name: &str, path: impl AsRef<Path>) -> OsString {
    let mut flag = OsString::from(name);
    flag.push("=");
    flag.push(path.as_ref());
    flag
}

/// Reqwest's Display hides the cause ("error sending request"); the chain says "connection
/// refused", which is what a reader of a readiness timeout needs.
fn error_chain(error: reqwest::Error) -> String {
    let mut message = error.to_string();
    let mut source = std::error::Error::source(&error);
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    message
}

/// Picks `N` distinct free loopback ports, never one this process handed out before (parallel
/// tests in one binary would otherwise race for the same port).
pub(crate) fn free_ports<const N: usize>() -> Result<[u16; N]> {
    static HANDED_OUT: Mutex<Option<HashSet<u16>>> = Mutex::new(None);
    let mut handed_out = HANDED_OUT
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let handed_out = handed_out.get_or_insert_with(HashSet::new);
    // Holding every listener until all are chosen keeps the kernel from repeating a port.
    let mut listeners = Vec::with_capacity(N);
    let mut ports = [0; N];
    let mut chosen = 0;
    while chosen < N {
        let listener = TcpListener::bind("127.0.0.1:0")
            .map_err(|source| Error::io("binding a free loopback port", source))?;
        let port = listener
            .local_addr()
            .map_err(|source| Error::io("reading a bound port", source))?
            .port();
        if handed_out.insert(port) {
            ports[chosen] = port;
            chosen += 1;
        }
        listeners.push(listener);
    }
    Ok(ports)
}

fn random_token() -> String {
    let bytes: [u8; 24] = rand::rng().random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn fresh_temp_dir() -> PathBuf {
    let suffix: u32 = rand::rng().random();
    std::env::temp_dir().join(format!("{TEMP_PREFIX}{}-{suffix:08x}", std::process::id()))
}

/// Removes the directories of planes whose process died without tearing down (a SIGKILLed
/// test): their children died with it, but the files remain, ~60 MB of etcd preallocation each.
/// Directories kept on request (`AGENTCORE_KEEP_TESTENV=1`) are marked and left alone.
fn remove_stale_temp_dirs() {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|name| name.strip_prefix(TEMP_PREFIX))
            .and_then(|rest| rest.split('-').next())
            .and_then(|pid| pid.parse::<u32>().ok())
        else {
            continue;
        };
        let dir = entry.path();
        if Path::new(&format!("/proc/{pid}")).exists() || dir.join(KEPT_MARKER).exists() {
            continue;
        }
        tracing::debug!(dir = %dir.display(), "removing the directory of a dead test process");
        // Best effort: another user's directory or a concurrent removal are fine to skip.
        let _ = std::fs::remove_dir_all(&dir);
    }
}

/// Creates `dir` mode 0700 (it holds keys and tokens). `fresh` demands that it did not exist.
fn create_private_dir(dir: &Path, fresh: bool) -> Result<PathBuf> {
    use std::os::unix::fs::DirBuilderExt;
    let mut builder = std::fs::DirBuilder::new();
    builder.mode(0o700).recursive(!fresh);
    builder
        .create(dir)
        .map_err(|source| Error::io(format!("creating {}", dir.display()), source))?;
    Ok(dir.to_owned())
}

/// Removes a fresh directory if start-up fails before a [`ControlPlane`] owns it.
struct DirCleanup(Option<PathBuf>);

impl Drop for DirCleanup {
    fn drop(&mut self) {
        if let Some(dir) = self.0.take() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

fn kubeconfig(server: &str, ca_base64: &str, user: &str, token: &str) -> String {
    format!(
        "apiVersion: v1
kind: Config
clusters:
- name: agentcore-testenv
  cluster:
    server: {server}
    certificate-authority-data: {ca_base64}
users:
- name: {user}
  user:
    token: {token}
contexts:
- name: agentcore-testenv
  context:
    cluster: agentcore-testenv
    user: {user}
    namespace: default
current-context: agentcore-testenv
"
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn free_ports_are_distinct_and_never_repeated() {
        let first: [u16; 3] = free_ports().unwrap();
        let second: [u16; 3] = free_ports().unwrap();
        let all: HashSet<u16> = first.iter().chain(&second).copied().collect();
        assert_eq!(all.len(), 6, "{first:?} {second:?}");
    }

    #[test]
    fn stale_directories_of_dead_processes_are_removed_but_kept_ones_stay() {
        // pid 0 never names a process in /proc.
        let tmp = std::env::temp_dir();
        let dead = tmp.join(format!(
            "{TEMP_PREFIX}0-{:08x}",
            rand::rng().random::<u32>()
        ));
        let kept = tmp.join(format!(
            "{TEMP_PREFIX}0-{:08x}",
            rand::rng().random::<u32>()
        ));
        let alive = fresh_temp_dir();
        for dir in [&dead, &kept, &alive] {
            std::fs::create_dir_all(dir.join("etcd-data")).unwrap();
        }
        std::fs::write(kept.join(KEPT_MARKER), "").unwrap();
        remove_stale_temp_dirs();
        assert!(!dead.exists());
        assert!(kept.exists() && alive.exists());
        std::fs::remove_dir_all(&kept).unwrap();
        std::fs::remove_dir_all(&alive).unwrap();
    }

    #[test]
    fn tokens_are_random_hex() {
        let (a, b) = (random_token(), random_token());
        assert_ne!(a, b);
        assert_eq!(a.len(), 48);
        assert!(a.chars().all(|c| c.is_ascii_hexdigit()));
    }

    #[test]
    fn port_conflicts_are_recognised_from_the_log() {
        let exited = |tail: &str| Error::Exited {
            name: "etcd".into(),
            status: "exit status: 1".into(),
            log: PathBuf::from("etcd.log"),
            log_tail: tail.into(),
        };
        assert!(is_port_conflict(&exited(
            "listen tcp 127.0.0.1:2379: bind: address already in use"
        )));
        assert!(!is_port_conflict(&exited("permission denied")));
    }
}
