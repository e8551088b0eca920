//! `agentcore-bench`: lifecycle benchmark of agentcore-operator (a program that prints figures,
//! not a test).
//!
//! Three runs, each on a fresh local kube-apiserver + etcd:
//! 1. baseline: a plain kube client creates N objects and, with the same concurrency, does only
//!    the writes the operator must do at minimum (finalizer, id recorded, terminal status,
//!    finalizer removal) — what the API server allows for this work;
//! 2. operator: the same client creates N objects; the operator (release binary) runs their jobs
//!    on the in-process AgentCore emulator; then N terminal objects sit idle; then the operator is
//!    restarted (SIGTERM, started again with the same options) and watched while it settles; then
//!    the client deletes them all;
//! 3. peer: the same as 2 with `bench/peer`, a controller-runtime operator in Go, in place of the
//!    operator (skip it with `--no-peer`).
//!
//! It prints a Markdown report (figures, targets, met or missed) and writes a CSV of completed
//! lifecycles over time (plot it with `bench/plot.sh`). Everything runs on loopback, bounded in
//! objects and time.

mod counters;
mod env;
mod report;
mod runs;
mod timeline;
mod workload;

use std::{path::PathBuf, time::Duration};

use anyhow::{Context as _, bail};
use clap::Parser;

/// Namespace of the benchmark's objects.
pub const NAMESPACE: &str = "bench";

#[derive(Parser, Debug)]
#[command(
    about = "Lifecycle benchmark of agentcore-operator against a plain-client baseline and a controller-runtime peer"
)]
struct Cli {
    /// CI mode: 1,000 objects, 60 s idle window, 15 s after the restart.
    #[arg(long, conflicts_with = "full")]
    quick: bool,
    /// Documentation mode: 10,000 objects, 5 min idle window, 30 s after the restart.
    #[arg(long)]
    full: bool,
    /// Override the number of objects.
    #[arg(long)]
    objects: Option<usize>,
    /// Requests in flight for the client, the baseline's workers, and the operator's
    /// `--max-concurrent-reconciles`.
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// Override the idle window.
    #[arg(long, value_parser = humantime::parse_duration)]
    idle: Option<Duration>,
    /// Override how long the restarted controller is watched after its ready line (its AWS calls
    /// and writes are counted until then).
    #[arg(long, value_parser = humantime::parse_duration)]
    restart_settle: Option<Duration>,
    /// How long each emulated job runs.
    #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
    job_duration: Duration,
    /// The operator's `--poll-interval`.
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
    poll_interval: Duration,
    /// How long an emulated job stays DELETING.
    #[arg(long, default_value = "500ms", value_parser = humantime::parse_duration)]
    delete_duration: Duration,
    /// The operator binary (build it with `cargo build --release -p agentcore-operator -p agentcore-bench`).
    #[arg(long)]
    operator: Option<PathBuf>,
    /// The controller-runtime peer binary (default: built and cached by `hack/build-peer.sh`).
    #[arg(long, conflicts_with = "no_peer")]
    peer: Option<PathBuf>,
    /// Skip the peer run (two runs: baseline and operator).
    #[arg(long)]
    no_peer: bool,
    /// Where the CSV, the report and the operator's log go.
    #[arg(long)]
    out_dir: Option<PathBuf>,
    /// Limit for each phase (all Ready; all gone). Default: 2 min + 100 ms per object.
    #[arg(long, value_parser = humantime::parse_duration)]
    phase_timeout: Option<Duration>,
}

/// Most objects one run may create: the benchmark is bounded.
const MAX_OBJECTS: usize = 20_000;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let (mode, objects, idle, restart_settle) = if cli.full {
        (
            "full",
            10_000,
            Duration::from_secs(300),
            Duration::from_secs(30),
        )
    } else {
        (
            "quick",
            1_000,
            Duration::from_secs(60),
            Duration::from_secs(15),
        )
    };
    let objects = cli.objects.unwrap_or(objects);
    if objects == 0 || objects > MAX_OBJECTS {
        bail!("--objects must be 1..={MAX_OBJECTS}");
    }
    if cli.concurrency == 0 || cli.concurrency > 256 {
        bail!("--concurrency must be 1..=256");
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map_or_else(|| env::repo_path("target"), PathBuf::from);
    let mut settings = runs::Settings {
        mode,
        objects,
        concurrency: cli.concurrency,
        idle: cli.idle.unwrap_or(idle),
        restart_settle: cli.restart_settle.unwrap_or(restart_settle),
        job_duration: cli.job_duration,
        poll_interval: cli.poll_interval,
        delete_duration: cli.delete_duration,
        operator_bin: cli
            .operator
            .unwrap_or_else(|| target.join("release/agentcore-operator")),
        peer_bin: None,
        out_dir: cli.out_dir.unwrap_or_else(|| target.join("bench")),
        phase_timeout: cli
            .phase_timeout
            .unwrap_or(Duration::from_secs(120) + Duration::from_millis(100) * objects as u32),
    };
    if !settings.operator_bin.is_file() {
        bail!(
            "no operator binary at {}: run `cargo build --release -p agentcore-operator -p agentcore-bench` or pass --operator",
            settings.operator_bin.display()
        );
    }
    if !cli.no_peer {
        settings.peer_bin = Some(match cli.peer {
            Some(path) => path,
            None => build_peer().await?,
        });
    }
    let command = std::iter::once("agentcore-bench".to_owned())
        .chain(std::env::args().skip(1))
        .collect::<Vec<_>>()
        .join(" ");
    let load_before = load_average();
    let date = jiff::Zoned::now().strftime("%Y-%m-%d %H:%M %Z").to_string();
    eprintln!(
        "agentcore-bench: {mode} mode, {objects} objects, concurrency {}; load {load_before}",
        settings.concurrency
    );

    eprintln!("agentcore-bench: baseline run (plain client)");
    let base = runs::baseline(&settings).await.context("baseline run")?;
    eprintln!(
        "agentcore-bench: baseline: Ready {:.1} s, gone {:.1} s",
        base.all_ready, base.all_gone
    );
    eprintln!("agentcore-bench: operator run");
    let op = runs::controller(&settings, runs::Contender::Operator)
        .await
        .context("operator run")?;
    eprintln!(
        "agentcore-bench: operator: Ready {:.1} s, gone {:.1} s",
        op.all_ready, op.all_gone
    );
    let peer = match &settings.peer_bin {
        Some(bin) => {
            eprintln!(
                "agentcore-bench: peer run (controller-runtime, {})",
                bin.display()
            );
            let peer = runs::controller(&settings, runs::Contender::Peer(bin.clone()))
                .await
                .context("peer run")?;
            eprintln!(
                "agentcore-bench: peer: Ready {:.1} s, gone {:.1} s",
                peer.all_ready, peer.all_gone
            );
            Some(peer)
        }
        None => None,
    };

    let header = report::Header {
        command,
        date,
        machine: machine(),
        load_before,
        load_after: load_average(),
    };
    let text = report::render(&header, &settings, &op, peer.as_ref(), &base);
    println!("{text}");
    std::fs::create_dir_all(&settings.out_dir)?;
    let report_path = settings.out_dir.join(format!("results-{mode}.md"));
    std::fs::write(&report_path, &text)?;
    let csv = settings.out_dir.join(format!("lifecycles-{mode}.csv"));
    let runs: Vec<&runs::RunResult> = [Some(&op), peer.as_ref(), Some(&base)]
        .into_iter()
        .flatten()
        .collect();
    report::write_csv(&csv, &settings, &runs)?;
    eprintln!(
        "agentcore-bench: report {}, lifecycles over time {} (plot: bash bench/plot.sh {})",
        report_path.display(),
        csv.display(),
        csv.display()
    );
    Ok(())
}

/// Builds (or finds in the tool cache) the peer with `hack/build-peer.sh`.
async fn build_peer() -> anyhow::Result<PathBuf> {
    let out = tokio::process::Command::new("bash")
        .arg(env::repo_path("hack/build-peer.sh"))
        .stderr(std::process::Stdio::inherit())
        .output()
        .await
        .context("running hack/build-peer.sh")?;
    if !out.status.success() {
        bail!("hack/build-peer.sh failed (skip the peer with --no-peer)");
    }
    let path = PathBuf::from(String::from_utf8(out.stdout)?.trim());
    if !path.is_file() {
        bail!("hack/build-peer.sh printed {}, not a file", path.display());
    }
    Ok(path)
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

/// nproc, memory and CPU model, from /proc.
fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .and_then(|l| l.split_once(':'))
        .map_or("unknown CPU", |(_, m)| m.trim())
        .to_owned();
    let cpus = std::thread::available_parallelism().map_or(0, std::num::NonZero::get);
    let mem_kib: u64 = std::fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0);
    format!(
        "{cpus} CPUs ({model}), {:.1} GiB memory, {}",
        mem_kib as f64 / 1024.0 / 1024.0,
        std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map(|r| format!("Linux {}", r.trim()))
            .unwrap_or_default()
    )
}
