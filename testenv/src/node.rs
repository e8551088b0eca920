//! A real node beside a [`ControlPlane`]: containerd (CRI) with runc and the CNI bridge plugin,
//! kubelet, kube-proxy (iptables), kube-scheduler and kube-controller-manager, so that Deployments,
//! Services, PodDisruptionBudgets, garbage collection and namespace deletion all work for real.
//!
//! Needs root (network namespaces, iptables, mounts, cgroups). Everything stays on this machine:
//! pods live on the bridge [`BRIDGE`] with addresses from [`POD_CIDR`], Services in the plane's
//! `10.0.0.0/24`, and the API server is advertised on the machine's own address, which pods
//! reach through the `kubernetes` Service. No route or NAT leads off the machine (`ipMasq` off).
//!
//! The Kubernetes parts are built from the same Go modules as the API server
//! (`hack/build-node.sh`, cached; kube-controller-manager is the plane's own,
//! [`crate::Tools::ensure_controller_manager`]); containerd, runc and the CNI plugins are Debian packages
//! (`hack/node-packages.sh`); no image is pulled: the sandbox image is built by
//! `hack/build-pause-image.sh` and test images are imported with [`Node::import_image`].
//!
//! One node per machine at a time (the bridge name and pod range are fixed). Teardown
//! ([`Node::stop`] or drop) removes the pods, stops every process, unmounts what the parts
//! mounted, removes the iptables chains and the bridge, and restores the sysctls they changed.

use std::{
    ffi::OsString,
    net::Ipv4Addr,
    path::{Path, PathBuf},
    process::{Command as StdCommand, Stdio},
    time::{Duration, Instant},
};

use crate::{
    ControlPlane, ControlPlaneOptions, Error, Result,
    plane::free_ports,
    process::{Supervised, log_tail},
    tools::{KUBERNETES_VERSION, cache_root, is_executable, run_build_script},
    wait::wait_until_ok,
};

/// The node's name in the cluster.
pub const NODE_NAME: &str = "agentcore-node";
/// The Linux bridge the CNI plugin creates for pods.
pub const BRIDGE: &str = "agentcore0";
/// The pods' addresses (the bridge holds the first one).
pub const POD_CIDR: &str = "10.244.0.0/24";
/// The name of the CNI network (and of its IPAM state).
const CNI_NETWORK: &str = "agentcore";
/// The containerd namespace the CRI plugin uses.
const CRI_NAMESPACE: &str = "k8s.io";

/// Built by `hack/build-node.sh`; kube-controller-manager comes from the plane's [`crate::Tools`].
const NODE_BINARIES: [&str; 3] = ["kubelet", "kube-proxy", "kube-scheduler"];
const BUILD_NODE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../hack/build-node.sh");
const NODE_PACKAGES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../hack/node-packages.sh");
const BUILD_PAUSE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../hack/build-pause-image.sh");
/// The sandbox image's name, as `hack/build-pause-image.sh` tags it.
const PAUSE_IMAGE: &str = "localhost/agentcore-pause:3.10";

/// Host sysctls the parts change (the kubelet's kernel defaults, the bridge plugin's forwarding,
/// kube-proxy's route_localnet): saved before start and restored at teardown.
const SYSCTLS: [&str; 8] = [
    "vm/overcommit_memory",
    "kernel/panic",
    "kernel/panic_on_oops",
    "kernel/keys/root_maxkeys",
    "kernel/keys/root_maxbytes",
    "net/ipv4/ip_forward",
    "net/ipv4/conf/all/route_localnet",
    "net/ipv6/conf/all/forwarding",
];
/// The chains the kubelet creates and `kube-proxy --cleanup` does not remove.
const KUBELET_CHAINS: [&str; 3] = ["KUBE-FIREWALL", "KUBE-KUBELET-CANARY", "KUBE-IPTABLES-HINT"];

/// The kubelet listens here whatever its `--root-dir`; nothing else on a test machine does.
const DEVICE_PLUGIN_SOCKET: &str = "/var/lib/kubelet/device-plugins/kubelet.sock";

const GRACE: Duration = Duration::from_secs(10);
const READY_TIMEOUT: Duration = Duration::from_secs(120);
const LOG_TAIL_LINES: usize = 30;

/// A running node; torn down by [`Node::stop`] or on drop.
#[derive(Debug)]
pub struct Node {
    dir: PathBuf,
    node_ip: Ipv4Addr,
    bin: PathBuf,
    controller_manager_bin: PathBuf,
    admin_kubeconfig: PathBuf,
    kubectl: PathBuf,
    sysctls: Vec<(PathBuf, String)>,
    containerd: Option<Supervised>,
    kubelet: Option<Supervised>,
    kube_proxy: Option<Supervised>,
    scheduler: Option<Supervised>,
    controller_manager: Option<Supervised>,
    torn_down: bool,
}

impl Node {
    /// The machine's own address (the first global IPv4 address): the node's InternalIP, where
    /// the API server is advertised and where pods reach anything the tests run on the host.
    pub fn host_ip() -> Result<Ipv4Addr> {
        let out =
            run_std(StdCommand::new("ip").args(["-4", "-o", "addr", "show", "scope", "global"]))?;
        out.lines()
            .filter_map(|line| {
                let mut words = line.split_whitespace();
                words.find(|w| *w == "inet")?;
                words.next()?.split('/').next()?.parse().ok()
            })
            .next()
            .ok_or_else(|| Error::Node(format!("no global IPv4 address in `ip addr`: {out}")))
    }

    /// Control plane options for a plane that will get a node: the API server listens on every
    /// local address and is advertised on [`Self::host_ip`], and its `lease` endpoint reconciler
    /// writes that address into the `kubernetes` Service's endpoints, which is how pods reach it
    /// (kube-proxy DNATs `10.0.0.1:443` there). The plain plane runs no reconciler: its
    /// advertised 127.0.0.1 would be the pod itself inside a pod's network namespace. The
    /// ServiceAccount admission plugin gives pods their token.
    pub fn control_plane_options(mut options: ControlPlaneOptions) -> Result<ControlPlaneOptions> {
        let ip = Self::host_ip()?;
        options.extra_apiserver_args.extend([
            "--bind-address=0.0.0.0".to_owned(),
            format!("--advertise-address={ip}"),
            // Later flags win over the plane's `--endpoint-reconciler-type=none`.
            "--endpoint-reconciler-type=lease".to_owned(),
        ]);
        options.service_account_admission = true;
        Ok(options)
    }

    /// Installs the Debian packages and builds the node binaries and the pause image if needed
    /// (minutes the first time, cached afterwards), then starts the node beside `plane` (which
    /// must have been started with [`Self::control_plane_options`]) and waits until it is Ready.
    pub async fn start(plane: &ControlPlane) -> Result<Self> {
        let started = Instant::now();
        run_build_script(Path::new(NODE_PACKAGES), "K8S_VERSION", KUBERNETES_VERSION).await?;
        let bin = ensure_node_binaries().await?;
        let controller_manager_bin = plane.tools().ensure_controller_manager().await?;
        let pause =
            run_build_script(Path::new(BUILD_PAUSE), "K8S_VERSION", KUBERNETES_VERSION).await?;
        let node_ip = Self::host_ip()?;
        let dir = plane.dir().join("node");
        for sub in [
            "containerd",
            "cni/net.d",
            "cni/ipam",
            "kubelet",
            "pod-logs",
            "flex",
            "runc",
        ] {
            std::fs::create_dir_all(dir.join(sub)).map_err(|source| {
                Error::io(format!("creating {}", dir.join(sub).display()), source)
            })?;
        }
        let sysctls = SYSCTLS
            .iter()
            .filter_map(|name| {
                let path = Path::new("/proc/sys").join(name);
                let value = std::fs::read_to_string(&path).ok()?;
                Some((path, value.trim().to_owned()))
            })
            .collect();
        let mut node = Self {
            dir,
            node_ip,
            bin,
            controller_manager_bin,
            admin_kubeconfig: plane.admin_kubeconfig().to_owned(),
            kubectl: plane.tools().kubectl(),
            sysctls,
            containerd: None,
            kubelet: None,
            kube_proxy: None,
            scheduler: None,
            controller_manager: None,
            torn_down: false,
        };
        // From here on, dropping `node` on an error tears down whatever was started.
        node.write_configs(plane)?;
        node.start_containerd().await?;
        node.import_image(&pause).await?;
        node.start_control_loops(plane)?;
        node.start_kubelet_and_proxy()?;
        node.wait_ready().await?;
        tracing::info!(ip = %node.node_ip, elapsed = ?started.elapsed(), "node ready");
        Ok(node)
    }

    pub fn name(&self) -> &str {
        NODE_NAME
    }

    /// The node's InternalIP (the machine's own address).
    pub fn ip(&self) -> Ipv4Addr {
        self.node_ip
    }

    /// The node's state directory (configs, logs, containerd and kubelet state).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Imports an OCI archive (e.g. from `hack/build-image.sh`) into the CRI's image store, under
    /// the name recorded in the archive, so pods can use it with `imagePullPolicy: Never` or
    /// `IfNotPresent`.
    pub async fn import_image(&self, archive: &Path) -> Result<()> {
        let mut command = self.ctr();
        command.args(["images", "import"]).arg(archive);
        run_blocking(command).await
    }

    /// Gives an image in the CRI's store a second name (`ctr images tag`), e.g. a new tag for
    /// a `helm upgrade`: to the kubelet it is another image reference, already present.
    pub async fn tag_image(&self, source: &str, target: &str) -> Result<()> {
        let mut command = self.ctr();
        command.args(["images", "tag", "--force", source, target]);
        run_blocking(command).await
    }

    /// Image references in the CRI's store.
    pub fn images(&self) -> Result<Vec<String>> {
        let mut command = self.ctr();
        command.args(["images", "list", "-q"]);
        Ok(run_std(&mut command)?.lines().map(str::to_owned).collect())
    }

    /// Resident memory of the node's own processes (containerd, its shims, kubelet, kube-proxy,
    /// scheduler, controller-manager), in KiB: what the node costs beside the control plane.
    pub fn memory_kib(&self) -> u64 {
        let mut pids: Vec<u32> = [
            &self.containerd,
            &self.kubelet,
            &self.kube_proxy,
            &self.scheduler,
            &self.controller_manager,
        ]
        .into_iter()
        .flatten()
        .map(Supervised::pid)
        .collect();
        pids.extend(crate::processes_mentioning(self.containerd_socket()));
        pids.sort_unstable();
        pids.dedup();
        pids.iter().map(|pid| rss_kib(*pid)).sum()
    }

    /// Tears the node down (see the module documentation).
    pub async fn stop(mut self) -> Result<()> {
        tokio::task::spawn_blocking(move || self.teardown())
            .await
            .map_err(|e| Error::Node(format!("teardown task: {e}")))
    }

    fn ctr(&self) -> StdCommand {
        let mut command = StdCommand::new("ctr");
        command
            .arg("--address")
            .arg(self.containerd_socket())
            .args(["--namespace", CRI_NAMESPACE]);
        command
    }

    fn containerd_socket(&self) -> PathBuf {
        self.dir.join("containerd/containerd.sock")
    }

    fn write_configs(&self, plane: &ControlPlane) -> Result<()> {
        let dir = &self.dir;
        let d = |sub: &str| dir.join(sub).display().to_string();
        let containerd = format!(
            r#"version = 2
root = "{root}"
state = "{state}"
[grpc]
  address = "{socket}"
[ttrpc]
  address = "{socket}.ttrpc"
[metrics]
  address = ""
[plugins."io.containerd.internal.v1.opt"]
  path = "{opt}"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{PAUSE_IMAGE}"
  # The machine lacks CAP_SYS_RESOURCE: without this, the kubelet's oom_score_adj of -998 for
  # the sandbox fails runc ("can't get final child's PID from pipe: EOF").
  restrict_oom_score_adj = true
  disable_apparmor = true
  enable_selinux = false
  netns_mounts_under_state_dir = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        # cgroup v1 (hybrid) with the kubelet's cgroupfs driver.
        SystemdCgroup = false
        Root = "{runc}"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "{cni}"
"#,
            root = d("containerd/root"),
            state = d("containerd/state"),
            socket = self.containerd_socket().display(),
            opt = d("containerd/opt"),
            runc = d("runc"),
            cni = d("cni/net.d"),
        );
        write(&dir.join("containerd.toml"), &containerd)?;

        let gateway = pod_gateway();
        let cni = format!(
            r#"{{
  "cniVersion": "1.0.0",
  "name": "{CNI_NETWORK}",
  "plugins": [
    {{
      "type": "bridge",
      "bridge": "{BRIDGE}",
      "isGateway": true,
      "ipMasq": false,
      "hairpinMode": true,
      "ipam": {{
        "type": "host-local",
        "dataDir": "{ipam}",
        "ranges": [[{{"subnet": "{POD_CIDR}", "gateway": "{gateway}"}}]],
        "routes": [{{"dst": "0.0.0.0/0"}}]
      }}
    }},
    {{"type": "loopback"}}
  ]
}}
"#,
            ipam = d("cni/ipam"),
        );
        // `loopback` in a conflist is fine for libcni; the CRI sets up lo itself as well.
        write(&dir.join("cni/net.d/10-agentcore.conflist"), &cni)?;

        let [kubelet_port, healthz_port] = free_ports()?;
        // 1.35+ refuses cgroup v1 unless told otherwise; older versions do not know the field.
        let fail_cgroup_v1 = if minor_version(KUBERNETES_VERSION) >= 35 {
            "failCgroupV1: false\n"
        } else {
            ""
        };
        let kubelet = format!(
            r#"apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: "{ip}"
port: {kubelet_port}
readOnlyPort: 0
healthzBindAddress: "127.0.0.1"
healthzPort: {healthz_port}
authentication:
  anonymous:
    enabled: false
  webhook:
    enabled: true
  x509:
    clientCAFile: "{ca}"
authorization:
  mode: Webhook
cgroupDriver: cgroupfs
{fail_cgroup_v1}failSwapOn: false
# Imported images can never be pulled again: never collect them.
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard:
  memory.available: "1Mi"
  nodefs.available: "0%"
  imagefs.available: "0%"
podLogsDir: "{pod_logs}"
clusterDomain: cluster.local
resolvConf: /etc/resolv.conf
maxPods: 30
syncFrequency: 10s
fileCheckFrequency: 10s
nodeStatusUpdateFrequency: 5s
serializeImagePulls: false
containerRuntimeEndpoint: "unix://{socket}"
"#,
            ip = self.node_ip,
            ca = plane.pki().ca_cert.display(),
            pod_logs = d("pod-logs"),
            socket = self.containerd_socket().display(),
        );
        write(&dir.join("kubelet.yaml"), &kubelet)?;

        let [proxy_healthz, proxy_metrics] = free_ports()?;
        let proxy = format!(
            r#"apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection:
  kubeconfig: "{kubeconfig}"
hostnameOverride: {NODE_NAME}
mode: iptables
clusterCIDR: {POD_CIDR}
healthzBindAddress: "127.0.0.1:{proxy_healthz}"
metricsBindAddress: "127.0.0.1:{proxy_metrics}"
iptables:
  # Else kube-proxy sets net.ipv4.conf.all.route_localnet=1.
  localhostNodePorts: false
conntrack:
  # Zero keeps kube-proxy off the conntrack sysctls.
  maxPerCore: 0
  min: 0
  tcpEstablishedTimeout: 0s
  tcpCloseWaitTimeout: 0s
"#,
            kubeconfig = self.admin_kubeconfig.display(),
        );
        write(&dir.join("kube-proxy.yaml"), &proxy)
    }

    async fn start_containerd(&mut self) -> Result<()> {
        let mut command = StdCommand::new("containerd");
        command
            .arg("--config")
            .arg(self.dir.join("containerd.toml"));
        self.containerd = Some(self.spawn("containerd", command)?);
        let socket = self.containerd_socket();
        let mut version = self.ctr();
        version.arg("version");
        wait_until_ok(
            "containerd to answer",
            Duration::from_secs(30),
            Duration::from_millis(100),
            || {
                let ready = socket.exists()
                    && version
                        .stdout(Stdio::null())
                        .stderr(Stdio::null())
                        .status()
                        .is_ok_and(|s| s.success());
                let exited = self.containerd.as_mut().is_some_and(|c| !c.is_running());
                async move {
                    if exited {
                        Err("containerd exited".to_owned())
                    } else if ready {
                        Ok(())
                    } else {
                        Err("no answer yet".to_owned())
                    }
                }
            },
        )
        .await
        .map_err(|e| self.with_log(e, "containerd"))
    }

    fn start_control_loops(&mut self, plane: &ControlPlane) -> Result<()> {
        let [scheduler_port, manager_port] = free_ports()?;
        let pki = plane.pki();
        let mut scheduler = StdCommand::new(self.bin.join("kube-scheduler"));
        scheduler
            .arg(flag("--kubeconfig", &self.admin_kubeconfig))
            .arg(flag("--authentication-kubeconfig", &self.admin_kubeconfig))
            .arg(flag("--authorization-kubeconfig", &self.admin_kubeconfig))
            .arg("--leader-elect=false")
            .arg("--bind-address=127.0.0.1")
            .arg(format!("--secure-port={scheduler_port}"));
        self.scheduler = Some(self.spawn("kube-scheduler", scheduler)?);

        let mut manager = StdCommand::new(&self.controller_manager_bin);
        manager
            .arg(flag("--kubeconfig", &self.admin_kubeconfig))
            .arg(flag("--authentication-kubeconfig", &self.admin_kubeconfig))
            .arg(flag("--authorization-kubeconfig", &self.admin_kubeconfig))
            .arg("--leader-elect=false")
            .arg("--bind-address=127.0.0.1")
            .arg(format!("--secure-port={manager_port}"))
            .arg("--controllers=*")
            .arg("--use-service-account-credentials=false")
            // Publishes the kube-root-ca.crt ConfigMap that pods' projected token volumes mount.
            .arg(flag("--root-ca-file", &pki.ca_cert))
            .arg(flag(
                "--service-account-private-key-file",
                &pki.service_account_key,
            ))
            .arg(flag("--flex-volume-plugin-dir", self.dir.join("flex")))
            .arg("--node-monitor-grace-period=20s");
        self.controller_manager = Some(self.spawn("kube-controller-manager", manager)?);
        Ok(())
    }

    fn start_kubelet_and_proxy(&mut self) -> Result<()> {
        let mut kubelet = StdCommand::new(self.bin.join("kubelet"));
        kubelet
            .arg(flag("--config", self.dir.join("kubelet.yaml")))
            .arg(flag("--kubeconfig", &self.admin_kubeconfig))
            .arg(flag("--root-dir", self.dir.join("kubelet")))
            .arg(flag("--cert-dir", self.dir.join("kubelet/pki")))
            .arg(format!("--hostname-override={NODE_NAME}"))
            .arg(format!("--node-ip={}", self.node_ip));
        self.kubelet = Some(self.spawn("kubelet", kubelet)?);

        let mut proxy = StdCommand::new(self.bin.join("kube-proxy"));
        proxy.arg(flag("--config", self.dir.join("kube-proxy.yaml")));
        self.kube_proxy = Some(self.spawn("kube-proxy", proxy)?);
        Ok(())
    }

    async fn wait_ready(&mut self) -> Result<()> {
        let kubectl = self.kubectl.clone();
        let kubeconfig = self.admin_kubeconfig.clone();
        let result = wait_until_ok(
            format!("node {NODE_NAME} to be Ready"),
            READY_TIMEOUT,
            Duration::from_millis(250),
            || {
                let mut command = tokio::process::Command::new(&kubectl);
                command
                    .arg("--kubeconfig")
                    .arg(&kubeconfig)
                    .args(["get", "node", NODE_NAME, "-o"])
                    .arg("jsonpath={.status.conditions[?(@.type==\"Ready\")].status}");
                async move {
                    let out = command.output().await.map_err(|e| e.to_string())?;
                    let status = String::from_utf8_lossy(&out.stdout).trim().to_owned();
                    if status == "True" {
                        Ok(())
                    } else {
                        Err(format!(
                            "Ready={status:?} {}",
                            String::from_utf8_lossy(&out.stderr).trim()
                        ))
                    }
                }
            },
        )
        .await;
        for (name, process) in self.processes_mut() {
            if !process.is_running() {
                return Err(Error::Exited {
                    name: name.to_owned(),
                    status: process
                        .exit_status()
                        .map_or_else(|| "unknown".to_owned(), |s| s.to_string()),
                    log: process.log_path().to_owned(),
                    log_tail: log_tail(process.log_path(), LOG_TAIL_LINES),
                });
            }
        }
        result.map_err(|e| self.with_log(e, "kubelet"))
    }

    fn processes_mut(&mut self) -> Vec<(&'static str, &mut Supervised)> {
        let mut all = Vec::new();
        for (name, slot) in [
            ("containerd", &mut self.containerd),
            ("kubelet", &mut self.kubelet),
            ("kube-proxy", &mut self.kube_proxy),
            ("kube-scheduler", &mut self.scheduler),
            ("kube-controller-manager", &mut self.controller_manager),
        ] {
            if let Some(process) = slot.as_mut() {
                all.push((name, process));
            }
        }
        all
    }

    fn spawn(&self, name: &str, command: StdCommand) -> Result<Supervised> {
        Supervised::spawn(name, command, &self.dir.join(format!("{name}.log")), GRACE)
    }

    fn with_log(&self, error: Error, name: &str) -> Error {
        let log = self.dir.join(format!("{name}.log"));
        Error::Node(format!(
            "{error}; {} ends with:\n{}",
            log.display(),
            log_tail(&log, LOG_TAIL_LINES)
        ))
    }

    /// Best effort and idempotent: every step runs even if an earlier one failed.
    fn teardown(&mut self) {
        if std::mem::replace(&mut self.torn_down, true) {
            return;
        }
        let started = Instant::now();
        // Nothing may recreate pods while they are removed.
        for slot in [&mut self.controller_manager, &mut self.scheduler] {
            if let Some(mut process) = slot.take() {
                process.terminate_blocking(GRACE);
            }
        }
        // With the kubelet still running, deleting the pods lets it stop their sandboxes through
        // the CRI (CNI DEL releases the addresses and veths).
        if self.kubelet.as_mut().is_some_and(Supervised::is_running) {
            let _ = StdCommand::new(&self.kubectl)
                .arg("--kubeconfig")
                .arg(&self.admin_kubeconfig)
                .args([
                    "delete",
                    "pods",
                    "--all",
                    "--all-namespaces",
                    "--force",
                    "--grace-period=0",
                    "--wait=true",
                    "--timeout=20s",
                ])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
        for slot in [&mut self.kubelet, &mut self.kube_proxy] {
            if let Some(mut process) = slot.take() {
                process.terminate_blocking(GRACE);
            }
        }
        // Whatever is left (a kubelet that died early): kill the tasks, which ends their shims
        // (they outlive containerd otherwise).
        if self.containerd.as_mut().is_some_and(Supervised::is_running) {
            let mut list = self.ctr();
            list.args(["tasks", "list", "-q"]);
            for id in run_std(&mut list).unwrap_or_default().lines() {
                let mut kill = self.ctr();
                kill.args(["tasks", "delete", "--force", id]);
                let _ = run_std(&mut kill);
            }
        }
        if let Some(mut containerd) = self.containerd.take() {
            containerd.terminate_blocking(GRACE);
        }
        // Shims of this node that outlived containerd (they name its socket on their command line).
        for pid in crate::processes_mentioning(self.containerd_socket()) {
            if let Some(pid) = i32::try_from(pid)
                .ok()
                .and_then(rustix::process::Pid::from_raw)
            {
                let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
            }
        }
        unmount_under(&self.dir);
        // kube-proxy's own rules, then the kubelet's chains it leaves.
        let _ = StdCommand::new(self.bin.join("kube-proxy"))
            .arg("--cleanup")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        for iptables in ["iptables", "ip6tables"] {
            remove_chains(iptables, &KUBELET_CHAINS);
        }
        let _ = StdCommand::new("ip")
            .args(["link", "delete", BRIDGE])
            .stderr(Stdio::null())
            .status();
        for (path, value) in &self.sysctls {
            let changed = std::fs::read_to_string(path).is_ok_and(|now| now.trim() != value);
            if changed && let Err(error) = std::fs::write(path, value) {
                tracing::warn!(path = %path.display(), %error, "restoring a sysctl");
            }
        }
        remove_kubelet_cgroups();
        // libcni's result cache is outside the node's directory.
        if let Ok(entries) = std::fs::read_dir("/var/lib/cni/results") {
            for entry in entries.flatten() {
                if entry
                    .file_name()
                    .to_string_lossy()
                    .starts_with(&format!("{CNI_NETWORK}-"))
                {
                    let _ = std::fs::remove_file(entry.path());
                }
            }
        }
        // The kubelet's device-plugin registration socket (a fixed path, whatever its root dir).
        let _ = std::fs::remove_file(DEVICE_PLUGIN_SOCKET);
        // The kubelet's symlinks to container logs (a fixed path), pointing into this node.
        if let Ok(entries) = std::fs::read_dir("/var/log/containers") {
            for entry in entries.flatten() {
                if std::fs::read_link(entry.path())
                    .is_ok_and(|target| target.starts_with(&self.dir))
                {
                    let _ = std::fs::remove_file(entry.path());
                }
            }
        }
        tracing::info!(elapsed = ?started.elapsed(), "node torn down");
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.teardown();
    }
}

async fn ensure_node_binaries() -> Result<PathBuf> {
    let cached = cache_root()?.join(format!("kubernetes-{KUBERNETES_VERSION}"));
    if NODE_BINARIES.iter().all(|b| is_executable(&cached.join(b))) {
        return Ok(cached);
    }
    let dir = run_build_script(Path::new(BUILD_NODE), "K8S_VERSION", KUBERNETES_VERSION).await?;
    match NODE_BINARIES.iter().find(|b| !is_executable(&dir.join(b))) {
        None => Ok(dir),
        Some(missing) => Err(Error::ToolsMissing(format!(
            "{BUILD_NODE} did not produce {missing} in {}",
            dir.display()
        ))),
    }
}

/// `10.244.0.1` for `10.244.0.0/24`: the bridge's address, the pods' default gateway.
fn pod_gateway() -> String {
    let network = POD_CIDR.split('/').next().unwrap_or(POD_CIDR);
    let mut octets: Vec<&str> = network.split('.').collect();
    octets.pop();
    format!("{}.1", octets.join("."))
}

/// 34 for "v1.34.4"; 0 if unparsable (the older behaviour).
fn minor_version(version: &str) -> u32 {
    version
        .trim_start_matches('v')
        .split('.')
        .nth(1)
        .and_then(|m| m.parse().ok())
        .unwrap_or(0)
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.split_whitespace().next()?.parse().ok())
        })
        .unwrap_or(0)
}

/// Unmounts (lazily, deepest first) every mount point under `dir`: the kubelet's bind mount of
/// its root dir onto itself, pod volumes, network namespaces, overlay snapshots.
fn unmount_under(dir: &Path) {
    let Ok(mountinfo) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return;
    };
    let prefix = dir.display().to_string();
    let mut points: Vec<String> = mountinfo
        .lines()
        .filter_map(|line| line.split(' ').nth(4))
        .map(unescape_mount_path)
        .filter(|p| p == &prefix || p.starts_with(&format!("{prefix}/")))
        .collect();
    points.sort_by_key(|p| std::cmp::Reverse(p.len()));
    points.dedup();
    for point in points {
        let _ = StdCommand::new("umount")
            .args(["--lazy", &point])
            .stderr(Stdio::null())
            .status();
    }
}

/// mountinfo escapes space, tab, newline and backslash as octal.
fn unescape_mount_path(raw: &str) -> String {
    raw.replace("\\040", " ")
        .replace("\\011", "\t")
        .replace("\\012", "\n")
        .replace("\\134", "\\")
}

/// Removes `chains` from every table: first the rules that jump to them, then the chains.
fn remove_chains(iptables: &str, chains: &[&str]) {
    for table in ["filter", "nat", "mangle"] {
        let Ok(rules) = run_std(StdCommand::new(iptables).args(["-w", "-t", table, "-S"])) else {
            continue;
        };
        for rule in rules.lines() {
            let Some(spec) = rule.strip_prefix("-A ") else {
                continue;
            };
            if chains.iter().any(|c| spec.contains(&format!("-j {c}"))) {
                // `-S` prints the rule as it was added; `-D` with the same words deletes it.
                let mut delete = StdCommand::new(iptables);
                delete
                    .args(["-w", "-t", table, "-D"])
                    .args(spec.split_whitespace());
                let _ = run_std(&mut delete);
            }
        }
        for chain in chains {
            if rules.lines().any(|l| l == format!("-N {chain}")) {
                let _ = run_std(StdCommand::new(iptables).args(["-w", "-t", table, "-F", chain]));
                let _ = run_std(StdCommand::new(iptables).args(["-w", "-t", table, "-X", chain]));
            }
        }
    }
}

/// The kubelet's QoS cgroups (`kubepods` in every v1 hierarchy), deepest first. Empty once the
/// pods are gone; a busy one is left (and reported) rather than forced.
fn remove_kubelet_cgroups() {
    let Ok(hierarchies) = std::fs::read_dir("/sys/fs/cgroup") else {
        return;
    };
    for hierarchy in hierarchies.flatten() {
        let root = hierarchy.path().join("kubepods");
        if !root.is_dir() {
            continue;
        }
        let mut dirs = Vec::new();
        collect_dirs(&root, &mut dirs);
        dirs.sort_by_key(|d| std::cmp::Reverse(d.components().count()));
        for dir in dirs {
            if let Err(error) = std::fs::remove_dir(&dir) {
                tracing::warn!(dir = %dir.display(), %error, "removing a kubelet cgroup");
            }
        }
    }
}

fn collect_dirs(dir: &Path, out: &mut Vec<PathBuf>) {
    out.push(dir.to_owned());
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                collect_dirs(&entry.path(), out);
            }
        }
    }
}

fn run_std(command: &mut StdCommand) -> Result<String> {
    let program = command.get_program().to_string_lossy().into_owned();
    let output = command
        .stdin(Stdio::null())
        .output()
        .map_err(|source| Error::Spawn {
            program: program.clone(),
            source,
        })?;
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    } else {
        let args: Vec<String> = command
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        Err(Error::Node(format!(
            "`{program} {}` failed ({}): {}",
            args.join(" "),
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        )))
    }
}

/// [`run_std`] on the blocking pool, for the async API.
async fn run_blocking(mut command: StdCommand) -> Result<()> {
    let program = command.get_program().to_string_lossy().into_owned();
    tokio::task::spawn_blocking(move || run_std(&mut command).map(drop))
        .await
        .map_err(|e| Error::Node(format!("{program} task: {e}")))?
}

fn write(path: &Path, contents: &str) -> Result<()> {
    std::fs::write(path, contents)
        .map_err(|source| Error::io(format!("writing {}", path.display()), source))
}

fn flag(name: &str, path: impl AsRef<Path>) -> OsString {
    let mut flag = OsString::from(name);
    flag.push("=");
    flag.push(path.as_ref());
    flag
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_gateway_is_the_first_address_of_the_pod_range() {
        assert_eq!(pod_gateway(), "10.244.0.1");
    }

    #[test]
    fn minor_versions_are_parsed() {
        assert_eq!(minor_version("v1.34.4"), 34);
        assert_eq!(minor_version("v1.35.0"), 35);
        assert_eq!(minor_version("garbage"), 0);
    }

    #[test]
    fn mount_paths_are_unescaped() {
        assert_eq!(unescape_mount_path("/a\\040b"), "/a b");
    }
}
