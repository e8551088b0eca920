//! The runs, each on a fresh control plane: the baseline (a plain client doing the minimum
//! writes), the operator (the release binary against the in-process emulator) and its
//! controller-runtime peer (`bench/peer`, the same way).

use std::{
    collections::{BTreeMap, BTreeSet},
    io::{Read as _, Seek as _, SeekFrom},
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use agentcore_emulator::{EmulatorConfig, RunningEmulator};
use agentcore_testenv::{OperatorOptions, OperatorProcess};
use anyhow::{Context as _, bail};
use tokio::sync::mpsc;

use crate::{
    counters::{self, ApiRequests, AwsCalls, ProcSample, Snapshot},
    env::Env,
    timeline::{Milestone, Timeline},
    workload,
};

/// What a run is given.
#[derive(Debug, Clone)]
pub struct Settings {
    pub mode: &'static str,
    pub objects: usize,
    pub concurrency: usize,
    pub idle: Duration,
    /// How long the restarted controller is watched after its ready line.
    pub restart_settle: Duration,
    pub job_duration: Duration,
    pub poll_interval: Duration,
    pub delete_duration: Duration,
    pub operator_bin: PathBuf,
    /// The controller-runtime peer; `None`: no peer run.
    pub peer_bin: Option<PathBuf>,
    pub out_dir: PathBuf,
    /// Limit for each phase (all Ready, all gone).
    pub phase_timeout: Duration,
}

impl Settings {
    fn names(&self) -> Vec<String> {
        (0..self.objects).map(workload::object_name).collect()
    }
}

/// What a run measured.
pub struct RunResult {
    pub label: &'static str,
    /// Seconds from the first create until the last object had an id / was Ready.
    pub all_started: f64,
    pub all_ready: f64,
    /// Seconds from the first delete until the last object was gone.
    pub all_gone: f64,
    /// The five moments: before create, all Ready, end of idle (just before the restart), end
    /// of the restart's settle window, all gone. The baseline has no idle window and no restart:
    /// its second to fourth are the same, all Ready.
    ///
    /// The controller's process changes at the restart: the first three sample the first
    /// process, the last two the restarted one, so that every difference is taken within one
    /// process.
    pub snapshots: [Snapshot; 5],
    /// The controller's restart; `None` for the baseline.
    pub restart: Option<Restart>,
    pub timeline: Timeline,
    pub create_origin: Instant,
    pub delete_origin: Instant,
    /// Client and baseline requests retried after a transient failure.
    pub retries: u32,
    /// Warning and error lines in the controller's log.
    pub operator_warnings: Vec<String>,
}

impl RunResult {
    /// Counter changes over the create phase (create → all Ready).
    pub fn create_api(&self) -> ApiRequests {
        &self.snapshots[1].api - &self.snapshots[0].api
    }

    /// Counter changes over the delete phase (delete → all gone).
    pub fn delete_api(&self) -> ApiRequests {
        &self.snapshots[4].api - &self.snapshots[3].api
    }

    /// Counter changes over the lifecycle phases (create → Ready, delete → gone); idle and
    /// restart excluded.
    pub fn lifecycle_api(&self) -> ApiRequests {
        let mut sum = self.create_api();
        for (key, n) in self.delete_api().0 {
            *sum.0.entry(key).or_insert(0.0) += n;
        }
        sum
    }

    /// Writes to batchevaluations answered 409 Conflict over the lifecycle phases.
    pub fn conflicts(&self) -> f64 {
        let [s0, s1, _, s3, s4] = &self.snapshots;
        (s1.conflicts - s0.conflicts) + (s4.conflicts - s3.conflicts)
    }

    pub fn idle_api(&self) -> ApiRequests {
        &self.snapshots[2].api - &self.snapshots[1].api
    }

    /// From the SIGTERM to the end of the settle window after the restarted controller's ready
    /// line.
    pub fn restart_api(&self) -> ApiRequests {
        &self.snapshots[3].api - &self.snapshots[2].api
    }

    pub fn lifecycle_aws(&self) -> AwsCalls {
        let [s0, s1, _, s3, s4] = &self.snapshots;
        let mut sum = &s1.aws - &s0.aws;
        for (key, n) in (&s4.aws - &s3.aws).0 {
            *sum.0.entry(key).or_insert(0) += n;
        }
        sum
    }

    pub fn idle_aws(&self) -> AwsCalls {
        &self.snapshots[2].aws - &self.snapshots[1].aws
    }

    pub fn restart_aws(&self) -> AwsCalls {
        &self.snapshots[3].aws - &self.snapshots[2].aws
    }

    /// CPU time of one process over the lifecycle phases (idle and restart excluded). The
    /// delete phase is measured on the restarted controller.
    pub fn lifecycle_cpu(&self, of: impl Fn(&Snapshot) -> Option<ProcSample>) -> Option<Duration> {
        let [s0, s1, _, s3, s4] = &self.snapshots;
        let cpu = |s: &Snapshot| of(s).map(|p| p.cpu);
        Some(cpu(s1)?.saturating_sub(cpu(s0)?) + cpu(s4)?.saturating_sub(cpu(s3)?))
    }

    pub fn idle_cpu(&self, of: impl Fn(&Snapshot) -> Option<ProcSample>) -> Option<Duration> {
        let [_, s1, s2, _, _] = &self.snapshots;
        Some(of(s2)?.cpu.saturating_sub(of(s1)?.cpu))
    }

    /// The restarted controller at the end of the settle window: its CPU time since it started
    /// and its RSS then. `None` for the baseline.
    pub fn restarted(&self) -> Option<ProcSample> {
        self.restart.as_ref()?;
        self.snapshots[3].operator
    }

    /// The controller's peak RSS (VmHWM) over the run: the larger of the first process's (last
    /// read at the end of idle, just before the restart) and the restarted one's.
    pub fn peak_rss_kib(&self) -> Option<u64> {
        self.snapshots
            .iter()
            .filter_map(|s| s.operator.map(|p| p.peak_rss_kib))
            .max()
    }

    /// Operator metric samples summed by one label, over the lifecycle phases. Each phase is
    /// taken within one process (the counters restart from zero with the process).
    pub fn operator_metric_by(&self, metric: &str, label: &str) -> Vec<(String, f64)> {
        let [s0, s1, _, s3, s4] = &self.snapshots;
        let (a0, a1, a3, a4) = (
            metric_by(s0, metric, label),
            metric_by(s1, metric, label),
            metric_by(s3, metric, label),
            metric_by(s4, metric, label),
        );
        let get = |m: &BTreeMap<String, f64>, k: &str| m.get(k).copied().unwrap_or(0.0);
        let keys: BTreeSet<&String> = a1.keys().chain(a4.keys()).collect();
        keys.into_iter()
            .map(|k| {
                let v = (get(&a1, k) - get(&a0, k)) + (get(&a4, k) - get(&a3, k));
                (k.clone(), v)
            })
            .filter(|(_, v)| *v > 0.0)
            .collect()
    }

    /// The restarted controller's metric samples summed by one label at the end of the settle
    /// window: everything it did since it started.
    pub fn restart_metric_by(&self, metric: &str, label: &str) -> Vec<(String, f64)> {
        if self.restart.is_none() {
            return Vec::new();
        }
        metric_by(&self.snapshots[3], metric, label)
            .into_iter()
            .filter(|(_, v)| *v > 0.0)
            .collect()
    }
}

fn metric_by(snapshot: &Snapshot, metric: &str, label: &str) -> BTreeMap<String, f64> {
    let mut by = BTreeMap::new();
    for sample in snapshot
        .operator_metrics
        .iter()
        .filter(|x| x.name == metric)
    {
        let key = sample.labels.get(label).cloned().unwrap_or_default();
        *by.entry(key).or_insert(0.0) += sample.value;
    }
    by
}

/// The controller's restart after the idle window.
#[derive(Debug, Clone)]
pub struct Restart {
    /// From the SIGTERM until the first process exited.
    pub stop: Duration,
    /// How the first process ended (`exit status: 0`, or a signal if SIGTERM was not enough).
    pub exit: String,
    /// From the restarted process's start until it logged its ready line.
    pub until_ready: Duration,
}

struct Probe<'a> {
    env: &'a Env,
    emulator: Option<&'a RunningEmulator>,
    operator: Option<(&'a OperatorProcess, String)>,
}

impl<'a> Probe<'a> {
    fn of_controller(
        env: &'a Env,
        emulator: &'a RunningEmulator,
        process: &'a OperatorProcess,
        metrics_url: &str,
    ) -> Self {
        Self {
            env,
            emulator: Some(emulator),
            operator: Some((process, metrics_url.to_owned())),
        }
    }

    /// Keeps one Ready object as JSON, to compare what the two runs store.
    async fn keep_sample(&self, settings: &Settings, label: &str) -> anyhow::Result<()> {
        let name = workload::object_name(settings.objects - 1);
        let obj = self.env.admin.get(&name).await?;
        std::fs::create_dir_all(&settings.out_dir)?;
        std::fs::write(
            settings
                .out_dir
                .join(format!("sample-object-{label}-{}.json", settings.mode)),
            serde_json::to_string_pretty(&obj)?,
        )?;
        Ok(())
    }

    /// Keeps the API server's request counters at the end of a run, for reading by hand.
    async fn keep_counters(&self, settings: &Settings, label: &str) -> anyhow::Result<()> {
        let plane = &self.env.plane;
        let text =
            counters::scrape_apiserver(&plane.tools().kubectl(), plane.admin_kubeconfig()).await?;
        let lines: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("apiserver_request_total{"))
            .collect();
        std::fs::create_dir_all(&settings.out_dir)?;
        std::fs::write(
            settings
                .out_dir
                .join(format!("apiserver-requests-{label}-{}.txt", settings.mode)),
            lines.join("\n"),
        )?;
        Ok(())
    }

    async fn snapshot(&self) -> anyhow::Result<Snapshot> {
        let plane = &self.env.plane;
        let text =
            counters::scrape_apiserver(&plane.tools().kubectl(), plane.admin_kubeconfig()).await?;
        let operator_metrics = match &self.operator {
            Some((_, url)) => {
                let body = reqwest::get(url)
                    .await
                    .and_then(reqwest::Response::error_for_status)
                    .context("reading the operator's /metrics")?
                    .text()
                    .await?;
                counters::parse_exposition(&body)
            }
            None => Vec::new(),
        };
        let read = |pid: Option<u32>| pid.and_then(ProcSample::read).unwrap_or_default();
        Ok(Snapshot {
            api: ApiRequests::from_exposition(&text),
            conflicts: counters::conflicts(&text, "batchevaluations"),
            aws: self
                .emulator
                .map(|e| AwsCalls::from_stats(&e.stats()))
                .unwrap_or_default(),
            operator: self
                .operator
                .as_ref()
                .and_then(|(p, _)| p.pid())
                .and_then(ProcSample::read),
            operator_metrics,
            apiserver: read(self.env.pids.apiserver),
            etcd: read(self.env.pids.etcd),
            bench: read(Some(std::process::id())),
        })
    }
}

async fn wait(
    timeline: &Timeline,
    milestone: Milestone,
    settings: &Settings,
    context: impl Fn() -> String,
) -> anyhow::Result<()> {
    if let Err(reached) = timeline
        .wait_for(milestone, settings.objects, settings.phase_timeout)
        .await
    {
        bail!(
            "only {reached} of {} objects {} within {:?}; {}",
            settings.objects,
            milestone.as_str(),
            settings.phase_timeout,
            context()
        );
    }
    Ok(())
}

fn seconds(timeline: &Timeline, milestone: Milestone, origin: Instant) -> f64 {
    timeline.last(milestone).map_or(f64::NAN, |t| {
        t.saturating_duration_since(origin).as_secs_f64()
    })
}

pub async fn baseline(settings: &Settings) -> anyhow::Result<RunResult> {
    let env = Env::start().await?;
    let timeline = Timeline::default();
    let watch = timeline.watch(env.admin.clone());
    timeline.wait_synced(Duration::from_secs(60)).await?;
    let probe = Probe {
        env: &env,
        emulator: None,
        operator: None,
    };
    let names = settings.names();
    let c = settings.concurrency;
    let none = String::new;

    let s0 = probe.snapshot().await?;
    let create_origin = Instant::now();
    let (tx, rx) = mpsc::unbounded_channel();
    let (created, started) = tokio::join!(
        workload::create_all(&env.admin, &names, c, Some(tx)),
        workload::workers(rx, c, |name| {
            let api = env.operator.clone();
            async move { workload::baseline_start(&api, &name).await }
        }),
    );
    let mut retries = created? + started?;
    wait(&timeline, Milestone::Ready, settings, none).await?;
    let s1 = probe.snapshot().await?;
    probe.keep_sample(settings, "baseline").await?;

    let delete_origin = Instant::now();
    let (tx, rx) = mpsc::unbounded_channel();
    let (deleted, released) = tokio::join!(
        workload::delete_all(&env.admin, &names, c, Some(tx)),
        workload::workers(rx, c, |name| {
            let api = env.operator.clone();
            async move { workload::baseline_release(&api, &name).await }
        }),
    );
    retries += deleted? + released?;
    wait(&timeline, Milestone::Gone, settings, none).await?;
    let s3 = probe.snapshot().await?;
    probe.keep_counters(settings, "baseline").await?;
    watch.abort();
    env.plane.stop().await?;

    Ok(RunResult {
        label: "baseline",
        all_started: seconds(&timeline, Milestone::Started, create_origin),
        all_ready: seconds(&timeline, Milestone::Ready, create_origin),
        all_gone: seconds(&timeline, Milestone::Gone, delete_origin),
        snapshots: [s0, s1.clone(), s1.clone(), s1, s3],
        restart: None,
        timeline,
        create_origin,
        delete_origin,
        retries,
        operator_warnings: Vec::new(),
    })
}

/// The controller a run measures: the Rust operator or its controller-runtime peer. Both get the
/// same emulator, poll interval, concurrency, fake credentials, region and identity.
pub enum Contender {
    Operator,
    Peer(PathBuf),
}

impl Contender {
    const fn label(&self) -> &'static str {
        match self {
            Self::Operator => "operator",
            Self::Peer(_) => "peer",
        }
    }

    /// Binary, arguments and environment, and the log line that says its cache is synced.
    fn options(
        &self,
        settings: &Settings,
        endpoint: String,
        metrics_addr: &str,
    ) -> (OperatorOptions, &'static str) {
        let poll = settings.poll_interval;
        let concurrency = settings.concurrency.to_string();
        match self {
            Self::Operator => {
                let args: Vec<String> = vec![
                    "run".into(),
                    "--aws-endpoint-url".into(),
                    endpoint,
                    "--aws-region".into(),
                    "us-west-2".into(),
                    "--poll-interval".into(),
                    humantime::format_duration(poll).to_string(),
                    "--max-concurrent-reconciles".into(),
                    concurrency,
                    // As the Helm chart runs it (logFormat json, logLevel info).
                    "--log-format".into(),
                    "json".into(),
                    "--metrics-addr".into(),
                    metrics_addr.into(),
                ];
                let options = OperatorOptions::new(&settings.operator_bin)
                    .args(&args)
                    .env("RUST_LOG", "info");
                (options, "watch cache synced")
            }
            Self::Peer(bin) => {
                let args: Vec<String> = vec![
                    "--aws-endpoint-url".into(),
                    endpoint,
                    "--aws-region".into(),
                    "us-west-2".into(),
                    // Go's time.ParseDuration reads "1500ms", not humantime's "1s 500ms".
                    "--poll-interval".into(),
                    format!("{}ms", poll.as_millis()),
                    "--max-concurrent-reconciles".into(),
                    concurrency,
                    // controller-runtime's zap logger in production mode: JSON at info.
                    "--metrics-bind-address".into(),
                    metrics_addr.into(),
                ];
                let options = OperatorOptions::new(bin).args(&args).name("peer");
                (options, "Starting workers")
            }
        }
    }
}

/// The operator or its peer against the in-process emulator: create N, all Ready, idle, delete
/// all, all gone.
pub async fn controller(settings: &Settings, contender: Contender) -> anyhow::Result<RunResult> {
    let label = contender.label();
    let env = Env::start().await?;
    let emulator = agentcore_emulator::start(EmulatorConfig {
        job_duration: settings.job_duration,
        stop_duration: Duration::from_secs(1),
        delete_duration: settings.delete_duration,
        seed: Some(7),
        ..EmulatorConfig::default()
    })
    .await?;
    let metrics_port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let metrics_addr = format!("127.0.0.1:{metrics_port}");
    let (options, ready_log) = contender.options(settings, emulator.endpoint_url(), &metrics_addr);
    let mut process = OperatorProcess::start(&env.plane, options)?;
    process
        .wait_for_log(ready_log, Duration::from_secs(60))
        .await?;
    let log_path = settings.out_dir.join(log_name(settings, label));
    let log_hint = || format!("{label} log: {}", log_path.display());

    let timeline = Timeline::default();
    let watch = timeline.watch(env.admin.clone());
    timeline.wait_synced(Duration::from_secs(60)).await?;
    let metrics_url = format!("http://{metrics_addr}/metrics");
    // Each probe reads the controller's pid at its snapshot and borrows the process only for
    // that snapshot: the restart needs the process to itself.
    let names = settings.names();
    let c = settings.concurrency;

    let result = async {
        let s0 = Probe::of_controller(&env, &emulator, &process, &metrics_url).snapshot().await?;
        let create_origin = Instant::now();
        let mut retries = workload::create_all(&env.admin, &names, c, None).await?;
        wait(&timeline, Milestone::Ready, settings, log_hint).await?;
        let s1 = Probe::of_controller(&env, &emulator, &process, &metrics_url).snapshot().await?;
        Probe::of_controller(&env, &emulator, &process, &metrics_url).keep_sample(settings, label).await?;
        eprintln!(
            "agentcore-bench: {label} run: all {} Ready; idle for {}",
            settings.objects,
            humantime::format_duration(settings.idle)
        );
        tokio::time::sleep(settings.idle).await;
        let s2 = Probe::of_controller(&env, &emulator, &process, &metrics_url).snapshot().await?;

        let restart = restart(&mut process, ready_log, settings.phase_timeout)
            .await
            .with_context(log_hint)?;
        eprintln!(
            "agentcore-bench: {label} run: restarted ({} to stop, {}, ready {:.2} s after its start); watching for {}",
            humantime::format_duration(round_ms(restart.stop)),
            restart.exit,
            restart.until_ready.as_secs_f64(),
            humantime::format_duration(settings.restart_settle)
        );
        tokio::time::sleep(settings.restart_settle).await;
        let s3 = Probe::of_controller(&env, &emulator, &process, &metrics_url).snapshot().await?;

        let delete_origin = Instant::now();
        retries += workload::delete_all(&env.admin, &names, c, None).await?;
        wait(&timeline, Milestone::Gone, settings, log_hint).await?;
        let s4 = Probe::of_controller(&env, &emulator, &process, &metrics_url).snapshot().await?;
        Probe::of_controller(&env, &emulator, &process, &metrics_url).keep_counters(settings, label).await?;
        anyhow::Ok((
            [s0, s1, s2, s3, s4],
            restart,
            create_origin,
            delete_origin,
            retries,
        ))
    }
    .await;
    watch.abort();
    let log = process.log_contents().unwrap_or_default();
    std::fs::create_dir_all(&settings.out_dir)?;
    std::fs::write(&log_path, &log)?;
    process.terminate().await;
    emulator.shutdown().await?;
    env.plane.stop().await?;
    let (snapshots, restart, create_origin, delete_origin, retries) = result?;

    Ok(RunResult {
        label,
        all_started: seconds(&timeline, Milestone::Started, create_origin),
        all_ready: seconds(&timeline, Milestone::Ready, create_origin),
        all_gone: seconds(&timeline, Milestone::Gone, delete_origin),
        snapshots,
        restart: Some(restart),
        timeline,
        create_origin,
        delete_origin,
        retries,
        operator_warnings: log
            .lines()
            .filter(|l| is_warning(l))
            .map(str::to_owned)
            .collect(),
    })
}

/// Stops the controller with SIGTERM (SIGKILL after testenv's grace period), starts it again
/// with the same binary, arguments and environment, and waits until the new process logs
/// `ready_log`. The log file is shared by both processes: only what the new one wrote counts.
async fn restart(
    process: &mut OperatorProcess,
    ready_log: &str,
    timeout: Duration,
) -> anyhow::Result<Restart> {
    let stopping = Instant::now();
    let exit = process
        .terminate()
        .await
        .map_or_else(|| "exit status unknown".to_owned(), |s| s.to_string());
    let stop = stopping.elapsed();
    let offset = std::fs::metadata(process.log_path()).map_or(0, |m| m.len());
    let starting = Instant::now();
    // The first process has exited: this only starts the new one.
    process.restart().await?;
    let deadline = starting + timeout;
    loop {
        if log_since(process.log_path(), offset)?.contains(ready_log) {
            break;
        }
        if !process.is_running() {
            bail!(
                "the restarted controller exited ({:?}) before logging {ready_log:?}",
                process.exit_status()
            );
        }
        if Instant::now() >= deadline {
            bail!("the restarted controller did not log {ready_log:?} within {timeout:?}");
        }
        tokio::time::sleep(READY_POLL).await;
    }
    Ok(Restart {
        stop,
        exit,
        until_ready: starting.elapsed(),
    })
}

/// How often the log is searched for the ready line after a restart: the resolution of the
/// time until ready.
const READY_POLL: Duration = Duration::from_millis(20);

/// What the log file holds from byte `offset` on.
fn log_since(path: &Path, offset: u64) -> anyhow::Result<String> {
    let mut file =
        std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    file.seek(SeekFrom::Start(offset))?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

fn round_ms(d: Duration) -> Duration {
    Duration::from_millis(d.as_millis().try_into().unwrap_or(u64::MAX))
}

/// A JSON log line at warning or error level: the operator's tracing (`"level":"WARN"`) or
/// controller-runtime's zap (`"level":"error"`).
fn is_warning(line: &str) -> bool {
    let line = line.to_ascii_lowercase();
    ["warn", "error", "dpanic", "panic", "fatal"]
        .iter()
        .any(|level| line.contains(&format!("\"level\":\"{level}\"")))
}

fn log_name(settings: &Settings, label: &str) -> String {
    format!("{label}-{}.log", settings.mode)
}

/// A run made of given snapshots, for the tests of the figures derived from them.
#[cfg(test)]
pub fn test_run(
    label: &'static str,
    snapshots: [Snapshot; 5],
    restart: Option<Restart>,
) -> RunResult {
    let now = Instant::now();
    RunResult {
        label,
        all_started: 10.0,
        all_ready: 12.0,
        all_gone: 8.0,
        snapshots,
        restart,
        timeline: Timeline::default(),
        create_origin: now,
        delete_origin: now,
        retries: 0,
        operator_warnings: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write as _;

    use super::*;
    use crate::counters::Sample;

    /// A controller snapshot: its CPU so far, its peak RSS, status writes, Gets and reconciles
    /// by reason `Idle` so far.
    fn snapshot(cpu_ms: u64, peak_mib: u64, writes: f64, gets: u64, idle: f64) -> Snapshot {
        let mut api = ApiRequests::default();
        api.0.insert(
            ("PATCH".into(), "batchevaluations".into(), "status".into()),
            writes,
        );
        let mut aws = AwsCalls::default();
        aws.0.insert("GetBatchEvaluation".into(), gets);
        Snapshot {
            api,
            aws,
            operator: Some(ProcSample {
                cpu: Duration::from_millis(cpu_ms),
                peak_rss_kib: peak_mib * 1024,
                rss_kib: peak_mib * 1024,
            }),
            operator_metrics: vec![Sample {
                name: "agentcore_operator_reconciles_total".into(),
                labels: [("reason".to_owned(), "Idle".to_owned())].into(),
                value: idle,
            }],
            ..Snapshot::default()
        }
    }

    fn restart() -> Restart {
        Restart {
            stop: Duration::from_millis(120),
            exit: "exit status: 0".into(),
            until_ready: Duration::from_millis(300),
        }
    }

    /// The first process runs create and idle, the restarted one (counters from zero) the
    /// restart window and the delete phase.
    fn across_a_restart(first_peak: u64, second_peak: u64) -> RunResult {
        test_run(
            "operator",
            [
                snapshot(0, 10, 0.0, 0, 0.0),
                snapshot(4_000, first_peak, 400.0, 300, 100.0),
                snapshot(5_000, first_peak, 400.0, 300, 100.0),
                snapshot(500, second_peak, 400.0, 300, 100.0),
                snapshot(2_500, second_peak, 500.0, 500, 130.0),
            ],
            Some(restart()),
        )
    }

    #[test]
    fn each_phase_is_measured_within_one_process() {
        let run = across_a_restart(50, 30);
        // Create 4 s on the first process, delete 2 s on the restarted one; the restarted
        // process's 0.5 s before the delete is not lifecycle.
        assert_eq!(
            run.lifecycle_cpu(|s| s.operator),
            Some(Duration::from_secs(6))
        );
        assert_eq!(run.idle_cpu(|s| s.operator), Some(Duration::from_secs(1)));
        assert_eq!(
            run.restarted().map(|p| p.cpu),
            Some(Duration::from_millis(500))
        );
        assert_eq!(run.restart_aws().total(), 0);
        assert_eq!(run.restart_api().writes("batchevaluations"), 0.0);
        assert_eq!(run.lifecycle_api().writes("batchevaluations"), 500.0);
        assert_eq!(run.lifecycle_aws().total(), 500);
        // 100 reconciles by the first process, 30 in the delete phase by the restarted one.
        assert_eq!(
            run.operator_metric_by("agentcore_operator_reconciles_total", "reason"),
            vec![("Idle".to_owned(), 130.0)]
        );
        assert_eq!(
            run.restart_metric_by("agentcore_operator_reconciles_total", "reason"),
            vec![("Idle".to_owned(), 100.0)]
        );
    }

    #[test]
    fn peak_rss_is_the_larger_of_both_processes() {
        assert_eq!(across_a_restart(50, 30).peak_rss_kib(), Some(50 * 1024));
        assert_eq!(across_a_restart(30, 60).peak_rss_kib(), Some(60 * 1024));
    }

    #[test]
    fn the_ready_line_counts_only_after_the_offset() {
        let path = std::env::temp_dir().join(format!("bench-log-since-{}", std::process::id()));
        std::fs::write(&path, "watch cache synced; ready\nshutting down\n").unwrap();
        let offset = std::fs::metadata(&path).unwrap().len();
        assert!(
            !log_since(&path, offset)
                .unwrap()
                .contains("watch cache synced")
        );
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        writeln!(file, "starting\nwatch cache synced; ready").unwrap();
        let since = log_since(&path, offset).unwrap();
        assert!(since.starts_with("starting") && since.contains("watch cache synced"));
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn warnings_of_both_log_formats() {
        assert!(is_warning(
            r#"{"timestamp":"t","level":"WARN","fields":{}}"#
        ));
        assert!(is_warning(
            r#"{"level":"error","ts":1.5,"msg":"Reconciler error"}"#
        ));
        assert!(!is_warning(r#"{"level":"info","msg":"Starting workers"}"#));
        assert!(!is_warning(
            r#"{"level":"INFO","fields":{"message":"a warning about nothing"}}"#
        ));
    }
}
