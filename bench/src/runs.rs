//! The runs, each on a fresh control plane: the baseline (a plain client doing the minimum
//! writes), the operator (the release binary against the in-process emulator) and its
//! controller-runtime peer (`bench/peer`, the same way).

use std::{
    path::PathBuf,
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
    /// The four moments: before create, all Ready, end of idle (= all Ready for the baseline),
    /// all gone.
    pub snapshots: [Snapshot; 4],
    pub timeline: Timeline,
    pub create_origin: Instant,
    pub delete_origin: Instant,
    /// Client and baseline requests retried after a transient failure.
    pub retries: u32,
    /// Warning and error lines in the controller's log.
    pub operator_warnings: Vec<String>,
}

impl RunResult {
    /// Counter changes over the lifecycle phases (create → Ready, delete → gone), idle excluded.
    pub fn lifecycle_api(&self) -> ApiRequests {
        let [s0, s1, s2, s3] = &self.snapshots;
        let mut sum = &s1.api - &s0.api;
        for (key, n) in (&s3.api - &s2.api).0 {
            *sum.0.entry(key).or_insert(0.0) += n;
        }
        sum
    }

    /// Writes to batchevaluations answered 409 Conflict over the lifecycle phases.
    pub fn conflicts(&self) -> f64 {
        let [s0, s1, s2, s3] = &self.snapshots;
        (s1.conflicts - s0.conflicts) + (s3.conflicts - s2.conflicts)
    }

    pub fn idle_api(&self) -> ApiRequests {
        &self.snapshots[2].api - &self.snapshots[1].api
    }

    pub fn lifecycle_aws(&self) -> AwsCalls {
        let [s0, s1, s2, s3] = &self.snapshots;
        let mut sum = &s1.aws - &s0.aws;
        for (key, n) in (&s3.aws - &s2.aws).0 {
            *sum.0.entry(key).or_insert(0) += n;
        }
        sum
    }

    pub fn idle_aws(&self) -> AwsCalls {
        &self.snapshots[2].aws - &self.snapshots[1].aws
    }

    /// CPU time of one process over the lifecycle phases (idle excluded).
    pub fn lifecycle_cpu(&self, of: impl Fn(&Snapshot) -> Option<ProcSample>) -> Option<Duration> {
        let [s0, s1, s2, s3] = &self.snapshots;
        let cpu = |s: &Snapshot| of(s).map(|p| p.cpu);
        Some(cpu(s1)?.saturating_sub(cpu(s0)?) + cpu(s3)?.saturating_sub(cpu(s2)?))
    }

    pub fn idle_cpu(&self, of: impl Fn(&Snapshot) -> Option<ProcSample>) -> Option<Duration> {
        let [_, s1, s2, _] = &self.snapshots;
        Some(of(s2)?.cpu.saturating_sub(of(s1)?.cpu))
    }

    /// Operator metric samples summed by one label, over the lifecycle phases.
    pub fn operator_metric_by(&self, metric: &str, label: &str) -> Vec<(String, f64)> {
        let [s0, s1, s2, s3] = &self.snapshots;
        let sum = |s: &Snapshot| {
            let mut by = std::collections::BTreeMap::<String, f64>::new();
            for sample in s.operator_metrics.iter().filter(|x| x.name == metric) {
                let key = sample.labels.get(label).cloned().unwrap_or_default();
                *by.entry(key).or_insert(0.0) += sample.value;
            }
            by
        };
        let (a0, a1, a2, a3) = (sum(s0), sum(s1), sum(s2), sum(s3));
        a3.iter()
            .map(|(k, v3)| {
                let get =
                    |m: &std::collections::BTreeMap<String, f64>| m.get(k).copied().unwrap_or(0.0);
                (k.clone(), (get(&a1) - get(&a0)) + (v3 - get(&a2)))
            })
            .filter(|(_, v)| *v > 0.0)
            .collect()
    }
}

struct Probe<'a> {
    env: &'a Env,
    emulator: Option<&'a RunningEmulator>,
    operator: Option<(&'a OperatorProcess, String)>,
}

impl Probe<'_> {
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
        snapshots: [s0, s1.clone(), s1, s3],
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
    let probe = Probe {
        env: &env,
        emulator: Some(&emulator),
        operator: Some((&process, format!("http://{metrics_addr}/metrics"))),
    };
    let names = settings.names();
    let c = settings.concurrency;

    let result = async {
        let s0 = probe.snapshot().await?;
        let create_origin = Instant::now();
        let mut retries = workload::create_all(&env.admin, &names, c, None).await?;
        wait(&timeline, Milestone::Ready, settings, log_hint).await?;
        let s1 = probe.snapshot().await?;
        probe.keep_sample(settings, label).await?;
        eprintln!(
            "agentcore-bench: {label} run: all {} Ready; idle for {}",
            settings.objects,
            humantime::format_duration(settings.idle)
        );
        tokio::time::sleep(settings.idle).await;
        let s2 = probe.snapshot().await?;
        let delete_origin = Instant::now();
        retries += workload::delete_all(&env.admin, &names, c, None).await?;
        wait(&timeline, Milestone::Gone, settings, log_hint).await?;
        let s3 = probe.snapshot().await?;
        probe.keep_counters(settings, label).await?;
        anyhow::Ok((s0, s1, s2, s3, create_origin, delete_origin, retries))
    }
    .await;
    watch.abort();
    let log = process.log_contents().unwrap_or_default();
    std::fs::create_dir_all(&settings.out_dir)?;
    std::fs::write(&log_path, &log)?;
    process.terminate().await;
    emulator.shutdown().await?;
    env.plane.stop().await?;
    let (s0, s1, s2, s3, create_origin, delete_origin, retries) = result?;

    Ok(RunResult {
        label,
        all_started: seconds(&timeline, Milestone::Started, create_origin),
        all_ready: seconds(&timeline, Milestone::Ready, create_origin),
        all_gone: seconds(&timeline, Milestone::Gone, delete_origin),
        snapshots: [s0, s1, s2, s3],
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

#[cfg(test)]
mod tests {
    use super::is_warning;

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
