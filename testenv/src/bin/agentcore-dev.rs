//! `agentcore-dev up`: a local playground for the quick start. Starts a real kube-apiserver and
//! etcd, the AgentCore emulator and the operator, installs the CRDs and the example, then streams
//! the operator's log until Ctrl-C, when it stops everything.

use std::{
    collections::HashMap,
    ffi::OsString,
    io::{IsTerminal as _, Read, Seek, SeekFrom, Write},
    net::{TcpListener, TcpStream},
    path::{Path, PathBuf},
    process::Stdio,
    time::{Duration, Instant},
};

use agentcore_testenv::{
    ControlPlane, ControlPlaneOptions, DEFAULT_AWS_REGION, KUBERNETES_VERSION, OperatorOptions,
    OperatorProcess, Tools,
};
use anyhow::{Context as _, Result, bail};
use clap::{Parser, Subcommand};
use tokio::signal::unix::{SignalKind, signal};

/// The operator's CRDs: BatchEvaluation and BatchEvaluationSchedule.
const CRDS: [&str; 2] = [
    "crds/evals.agentcore.dev_batchevaluations.yaml",
    "crds/evals.agentcore.dev_batchevaluationschedules.yaml",
];
const EXAMPLE: &str = "examples/quickstart.yaml";
const PID_FILE: &str = "agentcore-dev.pid";
const LOG_POLL: Duration = Duration::from_millis(200);
const EMULATOR_TIMEOUT: Duration = Duration::from_secs(15);

#[derive(Parser)]
#[command(version, about = "Local playground for agentcore-operator")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Start kube-apiserver, etcd, the emulator and the operator; Ctrl-C stops them all.
    Up(UpArgs),
}

#[derive(clap::Args)]
struct UpArgs {
    /// State directory (kubeconfig, logs, etcd data); wiped at start.
    #[arg(long, default_value_os_t = workspace_root().join(".dev"))]
    state_dir: PathBuf,
    /// Use the already built target/debug binaries instead of running `cargo build` first.
    #[arg(long)]
    no_build: bool,
    /// How long an emulated batch evaluation runs.
    #[arg(long, default_value = "60s")]
    job_duration: String,
    /// How long an emulated stop takes.
    #[arg(long, default_value = "5s")]
    stop_duration: String,
}

#[tokio::main]
async fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("AGENTCORE_DEV_LOG")
                .unwrap_or_else(|_| "agentcore_testenv=warn".into()),
        )
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .init();
    match Cli::parse().command {
        Cmd::Up(args) => up(args).await,
    }
}

async fn up(args: UpArgs) -> Result<()> {
    let root = workspace_root();
    let state = args.state_dir.clone();
    claim_state_dir(&state)?;

    let tools = match Tools::cached() {
        Some(tools) => tools,
        None => {
            say(&format!(
                "First run: building kube-apiserver, etcd and kubectl {KUBERNETES_VERSION} from \
                 source (Go modules). This takes about 4 minutes on 2 cores and is cached in \
                 ~/.cache/agentcore-operator/tools afterwards."
            ));
            Tools::ensure()
                .await
                .context("building the control plane binaries")?
        }
    };
    let binaries = if args.no_build {
        prebuilt_binaries(&root)
    } else {
        say("Building agentcore-operator and agentcore-emulator (cargo build)...");
        cargo_build(&root).await?
    };

    say("Starting etcd and kube-apiserver...");
    let started = Instant::now();
    let mut plane = ControlPlane::start(ControlPlaneOptions {
        state_dir: Some(state.clone()),
        tools: Some(tools.clone()),
        ..ControlPlaneOptions::default()
    })
    .await
    .context("starting the control plane")?;
    let kubeconfig = state.join("kubeconfig");
    std::fs::copy(plane.admin_kubeconfig(), &kubeconfig)
        .with_context(|| format!("writing {}", kubeconfig.display()))?;
    say(&format!(
        "Control plane ready at {} in {:.1?}",
        plane.server_url(),
        started.elapsed()
    ));

    for crd in CRDS.map(|path| root.join(path)) {
        if crd.is_file() {
            let names = plane
                .install_crd(&crd)
                .await
                .with_context(|| format!("installing {}", crd.display()))?;
            say(&format!("Installed CRD {}", names.join(", ")));
        } else {
            say(&format!(
                "warning: {} not found; CRD not installed",
                crd.display()
            ));
        }
    }
    // Garbage collection, as in a cluster: deleting a schedule deletes its runs. Started after
    // the CRDs, so the collector sees the new kinds at once.
    plane
        .start_controller_manager()
        .await
        .context("starting kube-controller-manager")?;
    say("kube-controller-manager started (garbage collection and namespace deletion)");

    let (mut emulator, endpoint) = start_emulator(&plane, &binaries.emulator, &args).await;
    let mut operator = start_operator(&plane, &binaries.operator, &endpoint)?;

    let example = root.join(EXAMPLE);
    if example.is_file() {
        match plane.apply_file(&example).await {
            Ok(applied) => say(&format!("Applied {EXAMPLE}:\n{}", applied.trim_end())),
            Err(error) => say(&format!("warning: applying {EXAMPLE} failed: {error}")),
        }
    }

    print_instructions(&state, &tools);
    let stopped_by = stream_until_signal(&operator, emulator.as_ref()).await?;

    say(&format!(
        "{stopped_by}: stopping the operator, the emulator and the control plane..."
    ));
    operator.terminate().await;
    if let Some(emulator) = emulator.as_mut() {
        emulator.terminate().await;
    }
    plane.stop().await.context("stopping the control plane")?;
    let _ = std::fs::remove_file(state.join(PID_FILE));
    say(&format!("Stopped. Logs remain in {}", state.display()));
    Ok(())
}

/// The workspace root: this crate lives in `<root>/testenv`.
fn workspace_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().unwrap_or(manifest).to_owned()
}

fn say(message: &str) {
    println!("agentcore-dev: {message}");
}

/// Refuses to share the state directory with a running `up`, then wipes it for a fresh cluster.
fn claim_state_dir(state: &Path) -> Result<()> {
    let pid_file = state.join(PID_FILE);
    if let Ok(pid) = std::fs::read_to_string(&pid_file) {
        let pid = pid.trim();
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        if String::from_utf8_lossy(&cmdline).contains("agentcore-dev") {
            bail!(
                "another `agentcore-dev up` (pid {pid}) is using {}; stop it first",
                state.display()
            );
        }
    }
    if state.exists() {
        std::fs::remove_dir_all(state)
            .with_context(|| format!("wiping the previous state in {}", state.display()))?;
    }
    std::fs::create_dir_all(state).with_context(|| format!("creating {}", state.display()))?;
    std::fs::write(&pid_file, std::process::id().to_string())
        .with_context(|| format!("writing {}", pid_file.display()))?;
    Ok(())
}

struct Binaries {
    operator: PathBuf,
    emulator: PathBuf,
}

fn prebuilt_binaries(root: &Path) -> Binaries {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"))
        .join("debug");
    Binaries {
        operator: target.join("agentcore-operator"),
        emulator: target.join("agentcore-emulator"),
    }
}

/// Builds both binaries and returns their paths as cargo reports them.
async fn cargo_build(root: &Path) -> Result<Binaries> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| OsString::from("cargo"));
    let output = tokio::process::Command::new(cargo)
        .current_dir(root)
        .args([
            "build",
            "-p",
            "agentcore-operator",
            "-p",
            "agentcore-emulator",
            "--bins",
        ])
        .arg("--message-format=json-render-diagnostics")
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .await
        .context("running cargo build")?;
    if !output.status.success() {
        bail!(
            "cargo build failed ({}); see the errors above",
            output.status
        );
    }
    let mut executables: HashMap<String, PathBuf> = HashMap::new();
    for line in String::from_utf8_lossy(&output.stdout).lines() {
        let Ok(message) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        if let (Some(name), Some(path)) = (
            message["target"]["name"].as_str(),
            message["executable"].as_str(),
        ) {
            executables.insert(name.to_owned(), PathBuf::from(path));
        }
    }
    let mut take = |name: &str| {
        executables
            .remove(name)
            .with_context(|| format!("cargo build produced no {name} binary"))
    };
    Ok(Binaries {
        operator: take("agentcore-operator")?,
        emulator: take("agentcore-emulator")?,
    })
}

/// Starts the emulator and waits for its port. A failure is reported, not fatal: the cluster
/// stays useful, and the emulator may still be under construction.
async fn start_emulator(
    plane: &ControlPlane,
    binary: &Path,
    args: &UpArgs,
) -> (Option<OperatorProcess>, String) {
    let port = match free_port() {
        Ok(port) => port,
        Err(error) => {
            say(&format!("warning: no free port for the emulator: {error}"));
            return (None, "http://127.0.0.1:1".to_owned());
        }
    };
    let listen = format!("127.0.0.1:{port}");
    let endpoint = format!("http://{listen}");
    let options = OperatorOptions::new(binary)
        .name("emulator")
        .args(["--listen", &listen])
        .args(["--job-duration", &args.job_duration])
        .args(["--stop-duration", &args.stop_duration]);
    let emulator = match OperatorProcess::start(plane, options) {
        Ok(emulator) => emulator,
        Err(error) => {
            say(&format!("warning: the emulator did not start: {error}"));
            return (None, endpoint);
        }
    };
    // Ready once the port accepts connections; give up early if the process exits.
    let deadline = Instant::now() + EMULATOR_TIMEOUT;
    loop {
        if !emulator.is_running() {
            report_exit("agentcore-emulator", &emulator, true);
            break;
        }
        if TcpStream::connect(&listen).is_ok() {
            say(&format!("AgentCore emulator listening on {endpoint}"));
            break;
        }
        if Instant::now() >= deadline {
            say(&format!(
                "warning: the emulator is not listening on {listen} after {EMULATOR_TIMEOUT:?}; see {}",
                emulator.log_path().display()
            ));
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    (Some(emulator), endpoint)
}

fn start_operator(plane: &ControlPlane, binary: &Path, endpoint: &str) -> Result<OperatorProcess> {
    // Its default 0.0.0.0:8080 is often taken on a developer machine, and need not be public.
    let metrics = format!(
        "127.0.0.1:{}",
        free_port().context("finding a port for the operator's metrics")?
    );
    // The admin identity for now: the quick start shows the operator, not its RBAC.
    let options = OperatorOptions::new(binary)
        .kubeconfig(plane.admin_kubeconfig())
        .args(["run", "--aws-endpoint-url", endpoint])
        .args(["--aws-region", DEFAULT_AWS_REGION, "--log-format", "text"])
        .args(["--metrics-addr", &metrics]);
    let operator = OperatorProcess::start(plane, options).context("starting agentcore-operator")?;
    say(&format!(
        "agentcore-operator started: metrics on http://{metrics}/metrics, log in {}",
        operator.log_path().display()
    ));
    Ok(operator)
}

/// A loopback port that was free a moment ago (the child binds it right after).
fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Says that `name` exited; with `show_log`, quotes the end of its log too (the operator's log
/// is streamed already).
fn report_exit(name: &str, process: &OperatorProcess, show_log: bool) {
    let status = process
        .exit_status()
        .map_or_else(|| "exit status unknown".to_owned(), |s| s.to_string());
    let mut message =
        format!("warning: {name} exited ({status}); everything else keeps running until Ctrl-C.");
    if show_log {
        let log = process.log_contents().unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        message.push_str(&format!(
            " Last lines of {}:\n{}",
            process.log_path().display(),
            lines[lines.len().saturating_sub(15)..].join("\n")
        ));
    }
    say(&message);
}

fn print_instructions(state: &Path, tools: &Tools) {
    println!(
        "
==> The playground is up. In another terminal:

    export KUBECONFIG={kubeconfig}
    export PATH={tools}:$PATH
    kubectl apply -f examples/quickstart.yaml     # agentcore-dev applied it once already
    kubectl get bevals -w
    kubectl describe beval <name>
    kubectl delete beval <name>                  # the finalizer stops and deletes the remote job

Logs: {state}/{{operator,emulator,kube-apiserver,etcd}}.log
Streaming the operator's log below. Ctrl-C stops everything.
",
        kubeconfig = state.join("kubeconfig").display(),
        tools = tools.dir().display(),
        state = state.display(),
    );
}

/// Prints the operator's log as it grows until SIGINT or SIGTERM; reports the operator or the
/// emulator exiting meanwhile. Returns the name of the signal.
async fn stream_until_signal(
    operator: &OperatorProcess,
    emulator: Option<&OperatorProcess>,
) -> Result<&'static str> {
    let mut interrupt = signal(SignalKind::interrupt()).context("installing a SIGINT handler")?;
    let mut terminate = signal(SignalKind::terminate()).context("installing a SIGTERM handler")?;
    let mut offset = 0;
    // start_emulator already reported an emulator that exited right away.
    let mut operator_reported = false;
    let mut emulator_reported = emulator.is_none_or(|e| !e.is_running());
    loop {
        offset = print_new_bytes(operator.log_path(), offset);
        if !operator_reported && !operator.is_running() {
            operator_reported = true;
            report_exit("agentcore-operator", operator, false);
        }
        if let Some(emulator) = emulator.filter(|_| !emulator_reported)
            && !emulator.is_running()
        {
            emulator_reported = true;
            report_exit("agentcore-emulator", emulator, true);
        }
        tokio::select! {
            _ = interrupt.recv() => return Ok("interrupted"),
            _ = terminate.recv() => return Ok("terminated"),
            () = tokio::time::sleep(LOG_POLL) => {}
        }
    }
}

/// Copies what was appended to `path` since `offset` to stdout; returns the new offset.
fn print_new_bytes(path: &Path, offset: u64) -> u64 {
    let Ok(mut file) = std::fs::File::open(path) else {
        return offset;
    };
    if file.seek(SeekFrom::Start(offset)).is_err() {
        return offset;
    }
    let mut bytes = Vec::new();
    match file.read_to_end(&mut bytes) {
        Ok(read) => {
            let mut stdout = std::io::stdout().lock();
            let _ = stdout.write_all(&bytes).and_then(|()| stdout.flush());
            offset + read as u64
        }
        Err(_) => offset,
    }
}
