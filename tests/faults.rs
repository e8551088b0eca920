//! Fault suite (issue 6): the operator binary on real kube-apiservers with the emulator, under
//! crashes at every lifecycle step, AWS faults, API server restarts, concurrent writers, malformed
//! responses, bad input and load. After each scenario the invariants I1–I6 of design §3 are
//! checked from the emulator's job list and the API server's objects (I1/I3 are also sampled
//! every 500 ms during the run), a fake AWS secret is searched for in everything captured, and a
//! summary table is printed and written to `target/reliability-summary.md`.
//!
//! Three planes run side by side, each with its own emulator (faults are global per emulator):
//! - `crash`: SIGKILL at each lifecycle step, two kube-apiserver restarts, quiet windows before
//!   and after an operator restart, and an operator whose AWS endpoint does not answer;
//! - `aws`: a fault-free baseline, then 30% throttling, 10% HTTP 500, latency beyond the
//!   operation timeout, dropped connections and a period of 403, with `RUST_LOG=debug`;
//! - `load`: bad input, malformed responses, a concurrent writer, and many objects at once.
//!
//! Size: `AGENTCORE_FAULTS_SCALE=full` for the figures in docs/reliability.md; the default is a
//! reduced run for CI. `AGENTCORE_FAULTS_ONLY=crash,aws,load` picks planes while developing.

mod support;

use std::{
    collections::{BTreeMap, BTreeSet},
    fmt::Write as _,
    sync::{
        Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use agentcore_emulator::{
    ErrorCode, ErrorRate, FaultAction, FaultConfig, JobInfo, MalformedKind, OUTCOME_DROPPED,
    OUTCOME_MALFORMED, Operation, OperationFaults, RunningEmulator, ScriptStep, Stats, Target,
};
use agentcore_testenv::{ControlPlane, OperatorProcess};
use anyhow::{Context as _, bail, ensure};
use futures::future::join_all;
use kube::api::{Patch, PatchParams, PostParams};
use serde_json::{Value, json};
use support::{
    Env, EnvOptions,
    cluster::{Cluster, str_at},
    condition, free_port,
    invariants::{FINALIZER, Invariant, Monitor, Quiet, TOKEN_PREFIX, Violation},
    manifest, repo_path,
    report::{Row, render},
    start_operator_with, status_str,
};
use tokio::sync::watch;

/// Fake credentials given to every operator process: any trace of them in a log line, event,
/// status or metric fails the suite.
const SECRET_ACCESS_KEY: &str = "fAuLtSuItE/sEcReT+wJalrXUtnFEMI0K7MDENGbPxRfiCY";
const ACCESS_KEY_ID: &str = "AKIAFAULTSUITE7KEYID";

/// How often the invariants are sampled and objects listed.
const SAMPLE: Duration = Duration::from_millis(500);
/// Generous limit for anything to converge on a busy 2-core machine.
const LONG: Duration = Duration::from_secs(300);
/// How long kubectl calls are retried (the API server may be restarting).
const PATIENCE: Duration = Duration::from_secs(90);

// The call bound. A reconcile is triggered by a requeue or a watch event. Requeues are never
// sooner than 0.45 s (`--poll-interval 500ms` jittered by −10%; the first retry backoff is at
// least 0.5 s); a lifecycle has a handful of watch events (create, finalizer added, deletion
// requested, plus spares). One reconcile performs at most three AWS operations (List + Start +
// Stop), and the SDK makes at most three attempts per operation (standard retry mode).
const MIN_REQUEUE_SECS: f64 = 0.45;
const EVENT_RECONCILES: f64 = 6.0;
const OPS_PER_RECONCILE: f64 = 3.0;
const ATTEMPTS_PER_OP: f64 = 3.0;
/// Most AWS operations one object can make in any one second without a hot loop: three
/// requeued reconciles (0.45 s apart) and two event-triggered ones, three operations each.
const PEAK_OPS_BOUND: u32 = 15;

/// Emulator calls one lifecycle may cost, given how long the object was alive.
fn call_budget(alive: Duration) -> f64 {
    ATTEMPTS_PER_OP
        * OPS_PER_RECONCILE
        * (alive.as_secs_f64() / MIN_REQUEUE_SECS + EVENT_RECONCILES)
}

#[derive(Clone, Debug)]
struct Scale {
    full: bool,
    per_fault: usize,
    restart_lifecycles: usize,
    writers: usize,
    mass: usize,
    quiet: Duration,
    storm: Duration,
    denial: Duration,
}

impl Scale {
    fn from_env() -> Self {
        let full = std::env::var("AGENTCORE_FAULTS_SCALE").is_ok_and(|v| v == "full");
        if full {
            Self {
                full,
                per_fault: 24,
                restart_lifecycles: 18,
                writers: 20,
                mass: 200,
                quiet: Duration::from_secs(60),
                storm: Duration::from_secs(30),
                denial: Duration::from_secs(20),
            }
        } else {
            Self {
                full,
                per_fault: 6,
                restart_lifecycles: 6,
                writers: 6,
                mass: 40,
                quiet: Duration::from_secs(15),
                storm: Duration::from_secs(8),
                denial: Duration::from_secs(10),
            }
        }
    }
}

/// What scenarios of one plane share.
struct Ctx<'a> {
    cluster: &'a Cluster,
    emulator: &'a RunningEmulator,
    monitor: &'a Monitor,
    scale: &'a Scale,
    /// The main operator's /metrics port.
    metrics_port: u16,
}

// ---------------------------------------------------------------------------------------------
// Object helpers

fn cond_status<'a>(obj: &'a Value, type_: &str) -> &'a str {
    condition(obj, type_)
        .and_then(|c| c.get("status"))
        .and_then(Value::as_str)
        .unwrap_or("")
}

fn cond_reason<'a>(obj: &'a Value, type_: &str) -> &'a str {
    condition(obj, type_)
        .and_then(|c| c.get("reason"))
        .and_then(Value::as_str)
        .unwrap_or("")
}

fn ready(obj: &Value) -> bool {
    cond_status(obj, "Ready") == "True"
}

fn remote_is(obj: Option<&Value>, status: &str) -> bool {
    obj.is_some_and(|o| status_str(o, "remoteStatus") == Some(status))
}

fn has_finalizer(obj: &Value) -> bool {
    obj.pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .is_some_and(|f| f.iter().any(|v| v.as_str() == Some(FINALIZER)))
}

fn deleting(obj: &Value) -> bool {
    obj.pointer("/metadata/deletionTimestamp").is_some()
}

/// Nothing left to do for the operator: Ready, or stalled, and not being deleted.
fn settled(obj: &Value) -> bool {
    !deleting(obj) && (ready(obj) || cond_status(obj, "Stalled") == "True")
}

fn token_jobs(emulator: &RunningEmulator, uid: &str) -> Vec<JobInfo> {
    let token = format!("{TOKEN_PREFIX}{uid}");
    emulator
        .jobs()
        .into_iter()
        .filter(|j| j.client_token.as_deref() == Some(token.as_str()))
        .collect()
}

/// Reads one object straight from the API server, polling fast, until `check` holds.
async fn poll_object(
    cluster: &Cluster,
    ns: &str,
    name: &str,
    what: &str,
    timeout: Duration,
    check: impl Fn(&Value) -> bool,
) -> anyhow::Result<Value> {
    let api = cluster.bevals(ns);
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok(Some(obj)) = api.get_opt(name).await {
            let obj = serde_json::to_value(obj)?;
            if check(&obj) {
                return Ok(obj);
            }
        }
        if Instant::now() > deadline {
            bail!("timed out after {timeout:?} waiting for {ns}/{name}: {what}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Polls a synchronous condition (the in-process emulator) every 20 ms.
async fn poll_until<T>(
    what: &str,
    timeout: Duration,
    mut f: impl FnMut() -> Option<T>,
) -> anyhow::Result<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return Ok(v);
        }
        if Instant::now() > deadline {
            bail!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn delta(before: &Stats, after: &Stats, op: Operation, outcome: &str) -> u64 {
    after
        .count(op, outcome)
        .saturating_sub(before.count(op, outcome))
}

fn delta_all(before: &Stats, after: &Stats, outcome: &str) -> u64 {
    Operation::ALL
        .into_iter()
        .map(|op| delta(before, after, op, outcome))
        .sum()
}

fn calls_between(before: &Stats, after: &Stats) -> u64 {
    after.grand_total().saturating_sub(before.grand_total())
}

// ---------------------------------------------------------------------------------------------
// Lifecycles

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Plan {
    /// Runs to COMPLETED, Ready, then deleted: Delete of a terminal job.
    Complete,
    /// Deleted while IN_PROGRESS: Stop, STOPPING, STOPPED, Delete.
    StopRunning,
    /// Runs to Ready and stays for the quiet windows.
    Keep,
}

impl Plan {
    fn cycle(i: usize) -> Self {
        [Plan::Complete, Plan::StopRunning, Plan::Keep][i % 3]
    }

    fn tags(self) -> Vec<(&'static str, &'static str)> {
        match self {
            Plan::Complete | Plan::Keep => vec![("emulator:job-duration", "3s")],
            Plan::StopRunning => vec![
                ("emulator:job-duration", "60s"),
                ("emulator:stop-duration", "1s"),
            ],
        }
    }
}

struct Outcome {
    name: String,
    /// Creation to the final state (Ready for `Keep`, gone otherwise).
    took: Duration,
    error: Option<String>,
}

async fn lifecycle(ctx: &Ctx<'_>, ns: &str, name: &str, plan: Plan) -> Outcome {
    let started = Instant::now();
    let result: anyhow::Result<()> = async {
        ctx.cluster
            .apply_retry(&manifest(ns, name, "", &plan.tags()), PATIENCE)
            .await?;
        if plan == Plan::StopRunning {
            ctx.monitor
                .wait_object(ns, name, "IN_PROGRESS", LONG, |o| {
                    remote_is(o, "IN_PROGRESS")
                })
                .await?;
        } else {
            ctx.monitor
                .wait_object(ns, name, "Ready", LONG, |o| o.is_some_and(ready))
                .await?;
        }
        if plan == Plan::Keep {
            return Ok(());
        }
        ctx.cluster
            .kubectl_retry(
                &[
                    "delete",
                    "beval",
                    name,
                    "-n",
                    ns,
                    "--wait=false",
                    "--ignore-not-found",
                ],
                None,
                PATIENCE,
            )
            .await?;
        ctx.monitor
            .wait_object(ns, name, "gone", LONG, |o| o.is_none())
            .await?;
        Ok(())
    }
    .await;
    Outcome {
        name: name.to_owned(),
        took: started.elapsed(),
        error: result.err().map(|e| format!("{e:#}")),
    }
}

/// Runs `n` lifecycles at once (plans cycling Complete, StopRunning, Keep).
async fn lifecycles(ctx: &Ctx<'_>, ns: &str, prefix: &str, n: usize) -> Vec<Outcome> {
    join_all((0..n).map(|i| {
        let name = format!("{prefix}-{i}");
        async move { lifecycle(ctx, ns, &name, Plan::cycle(i)).await }
    }))
    .await
}

/// Folds lifecycle outcomes into a row: convergence, stuck objects, calls per lifecycle.
fn record_lifecycles(row: &mut Row, outcomes: &[Outcome], calls: Option<u64>) {
    row.lifecycles += outcomes.len();
    let mut budget = 0.0;
    for o in outcomes {
        budget += call_budget(o.took);
        match &o.error {
            None => row.converged(o.took),
            Some(e) => {
                row.stuck += 1;
                row.fail(format!("{}: {e}", o.name));
            }
        }
    }
    if let Some(calls) = calls.filter(|_| !outcomes.is_empty()) {
        #[allow(clippy::cast_precision_loss)]
        let n = outcomes.len() as f64;
        #[allow(clippy::cast_precision_loss)]
        let per = calls as f64 / n;
        row.calls = Some((per, budget / n));
    }
}

// ---------------------------------------------------------------------------------------------
// Operator log analysis: the reconciler logs each decided step at debug level, inside a span
// that names the object.

struct Decided {
    at: jiff::Timestamp,
    namespace: String,
    name: String,
    step: String,
}

fn span_field(line: &str, field: &str) -> Option<String> {
    let span = &line[line.find("\"span\":{")?..];
    let span = &span[..span.find('}')?];
    let needle = format!("\"{field}\":\"");
    let start = span.find(&needle)? + needle.len();
    let rest = &span[start..];
    Some(rest[..rest.find('"')?].to_owned())
}

fn decided_steps(log: &str) -> Vec<Decided> {
    log.lines()
        .filter(|l| l.contains("\"decided\""))
        .filter_map(|line| {
            let v: Value = serde_json::from_str(line).ok()?;
            (v.get("message")?.as_str()? == "decided").then_some(())?;
            Some(Decided {
                at: v.get("timestamp")?.as_str()?.parse().ok()?,
                namespace: span_field(line, "namespace")?,
                name: span_field(line, "name")?,
                step: v.get("step")?.as_str()?.to_owned(),
            })
        })
        .collect()
}

fn is_aws_step(step: &str) -> bool {
    step == "Start"
        || step == "FindByName"
        || ["Get {", "Stop {", "Delete {"]
            .iter()
            .any(|p| step.starts_with(p))
}

/// Per namespace: the most AWS operations one object made within one second.
fn peak_ops(log: &str) -> BTreeMap<String, u32> {
    let mut per_object: BTreeMap<(String, String), Vec<jiff::Timestamp>> = BTreeMap::new();
    for d in decided_steps(log)
        .into_iter()
        .filter(|d| is_aws_step(&d.step))
    {
        per_object
            .entry((d.namespace, d.name))
            .or_default()
            .push(d.at);
    }
    let mut peaks: BTreeMap<String, u32> = BTreeMap::new();
    for ((ns, _), mut times) in per_object {
        times.sort();
        let mut best = 0;
        let mut lo = 0;
        for hi in 0..times.len() {
            while times[hi].duration_since(times[lo]) >= jiff::SignedDuration::from_secs(1) {
                lo += 1;
            }
            best = best.max(u32::try_from(hi - lo + 1).unwrap_or(u32::MAX));
        }
        let peak = peaks.entry(ns).or_default();
        *peak = (*peak).max(best);
    }
    peaks
}

// ---------------------------------------------------------------------------------------------
// Secrets and metrics

#[derive(Default)]
struct SecretScan {
    hits: Vec<String>,
    scanned: BTreeMap<String, usize>,
}

impl SecretScan {
    fn scan(&mut self, source: &str, text: &str) {
        *self.scanned.entry(source.to_owned()).or_default() += text.len();
        for (what, needle) in [
            ("the secret access key", SECRET_ACCESS_KEY),
            ("the access key id", ACCESS_KEY_ID),
        ] {
            if let Some(at) = text.find(needle) {
                let from = text[..at]
                    .char_indices()
                    .rev()
                    .nth(80)
                    .map_or(0, |(i, _)| i);
                self.hits
                    .push(format!("{source} contains {what}: …{}…", &text[from..at]));
            }
        }
    }
}

async fn scrape(port: u16) -> anyhow::Result<String> {
    let response = reqwest::Client::new()
        .get(format!("http://127.0.0.1:{port}/metrics"))
        .timeout(Duration::from_secs(5))
        .send()
        .await?;
    Ok(response.error_for_status()?.text().await?)
}

/// Scrapes an operator's /metrics every few seconds and searches each scrape for the secret.
struct Scraper {
    port: u16,
    scrapes: AtomicU64,
    scan: Mutex<SecretScan>,
}

impl Scraper {
    fn new(port: u16) -> Self {
        Self {
            port,
            scrapes: AtomicU64::new(0),
            scan: Mutex::new(SecretScan::default()),
        }
    }

    async fn once(&self) {
        if let Ok(text) = scrape(self.port).await {
            self.scrapes.fetch_add(1, Ordering::Relaxed);
            self.scan
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .scan("operator /metrics", &text);
        }
    }

    async fn run(&self, mut stop: watch::Receiver<bool>) {
        while !*stop.borrow() {
            self.once().await;
            tokio::select! {
                () = tokio::time::sleep(Duration::from_secs(3)) => {}
                _ = stop.changed() => {}
            }
        }
    }
}

/// Sum of `agentcore_operator_aws_requests_total` samples whose labels contain `filter`.
fn aws_requests(metrics: &str, filter: &str) -> u64 {
    metrics
        .lines()
        .filter(|l| l.starts_with("agentcore_operator_aws_requests_total{") && l.contains(filter))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .map(|v| {
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            let n = v as u64;
            n
        })
        .sum()
}

// ---------------------------------------------------------------------------------------------
// Planes

struct Plane {
    env: Env,
    cluster: Cluster,
    monitor: Monitor,
    scraper: Scraper,
}

fn operator_env(rust_log: &str) -> Vec<(String, String)> {
    vec![
        ("AWS_ACCESS_KEY_ID".to_owned(), ACCESS_KEY_ID.to_owned()),
        (
            "AWS_SECRET_ACCESS_KEY".to_owned(),
            SECRET_ACCESS_KEY.to_owned(),
        ),
        ("RUST_LOG".to_owned(), rust_log.to_owned()),
    ]
}

async fn start_plane(rust_log: &str, seed: u64) -> anyhow::Result<Plane> {
    let port = free_port()?;
    let mut options = EnvOptions {
        operator_args: vec!["--metrics-addr".to_owned(), format!("127.0.0.1:{port}")],
        operator_env: operator_env(rust_log),
        ..EnvOptions::default()
    };
    options.emulator.seed = Some(seed);
    let env = Env::start(options).await?;
    let cluster = Cluster::connect(&env.plane).await?;
    Ok(Plane {
        env,
        cluster,
        monitor: Monitor::with_needles(SAMPLE, &[SECRET_ACCESS_KEY, ACCESS_KEY_ID]),
        scraper: Scraper::new(port),
    })
}

/// What one plane hands back to the summary.
#[derive(Default)]
struct PlaneReport {
    rows: Vec<Row>,
    samples: u64,
    details: Vec<String>,
    secrets: SecretScan,
    metrics_scrapes: u64,
}

/// The end of a plane: final invariant tally per namespace, peaks from the operator log, and
/// the secret scan over everything captured.
async fn finish_plane(
    plane: &Plane,
    mut rows: Vec<Row>,
    extra_logs: Vec<(String, String)>,
) -> PlaneReport {
    let mut report = PlaneReport::default();
    let objects = plane.cluster.list_bevals().await.unwrap_or_default();
    let jobs = plane.env.emulator.jobs();
    let tallies = plane.monitor.ledger().final_tally(&jobs, &objects);
    let log = plane.env.operator.log_contents().unwrap_or_default();
    let peaks = peak_ops(&log);
    let mut attributed = BTreeSet::new();
    for row in &mut rows {
        let mut peak = None;
        for ns in row.namespaces.clone() {
            if let Some(t) = tallies.get(&ns) {
                row.violations += t.violations;
                row.duplicates += t.duplicates;
                row.orphans += t.orphans;
                if t.left_by_policy > 0 {
                    row.note(format!(
                        "{} job(s) left in AWS on purpose (Retain or force-release) in {ns}",
                        t.left_by_policy
                    ));
                }
            }
            attributed.insert(ns.clone());
            if let Some(p) = peaks.get(&ns) {
                peak = Some(peak.map_or(*p, |q: u32| q.max(*p)));
            }
        }
        if row.lifecycles > 0 {
            row.peak = peak.map(|p| (p, row.peak_bound.unwrap_or(PEAK_OPS_BOUND)));
        }
    }
    for (ns, t) in &tallies {
        if !attributed.contains(ns) && (t.violations + t.duplicates + t.orphans) > 0 {
            let mut row = Row::new(format!("unattributed ({ns})"), &[ns]);
            row.violations = t.violations;
            row.duplicates = t.duplicates;
            row.orphans = t.orphans;
            rows.push(row);
        }
    }
    for v in plane.monitor.ledger().violations() {
        report.details.push(format!(
            "- violation {:?} in {}: {}",
            v.invariant, v.namespace, v.detail
        ));
    }
    // The secret scan: operator logs, events, objects (every list of the run), metrics.
    let (scanned, hits) = plane.monitor.scan_results();
    report.secrets.scanned.insert(
        "objects, every list of the run".to_owned(),
        usize::try_from(scanned).unwrap_or(usize::MAX),
    );
    report.secrets.hits.extend(hits);
    report.samples = plane.monitor.ledger().samples;
    plane.scraper.once().await;
    report.secrets.scan("operator log", &log);
    for (source, text) in &extra_logs {
        report.secrets.scan(source, text);
    }
    for (source, args) in [
        ("events", ["get", "events", "-A", "-o", "json"]),
        ("objects at the end", ["get", "bevals", "-A", "-o", "json"]),
    ] {
        match plane.cluster.kubectl_ok(&args).await {
            Ok(text) => report.secrets.scan(source, &text),
            Err(e) => report.secrets.hits.push(format!(
                "could not read {source} for the secret scan: {e:#}"
            )),
        }
    }
    let scraped = std::mem::take(
        &mut *plane
            .scraper
            .scan
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner),
    );
    report.secrets.hits.extend(scraped.hits);
    for (k, v) in scraped.scanned {
        *report.secrets.scanned.entry(k).or_default() += v;
    }
    report.metrics_scrapes = plane.scraper.scrapes.load(Ordering::Relaxed);
    report.rows = rows;
    report
}

/// Deletes every object left and waits until all are gone; returns the ones that stay.
async fn teardown(ctx: &Ctx<'_>) -> Vec<String> {
    let _ = ctx
        .cluster
        .kubectl_retry(
            &["delete", "bevals", "--all", "-A", "--wait=false"],
            None,
            PATIENCE,
        )
        .await;
    match ctx
        .monitor
        .wait("every object gone", LONG, |s| s.objects.is_empty())
        .await
    {
        Ok(_) => Vec::new(),
        Err(_) => ctx
            .monitor
            .fresh()
            .await
            .map(|s| s.objects.keys().cloned().collect())
            .unwrap_or_default(),
    }
}

fn charge_stuck(rows: &mut [Row], stuck: &[String]) {
    for key in stuck {
        let ns = key.split('/').next().unwrap_or("");
        if let Some(row) = rows
            .iter_mut()
            .find(|r| r.namespaces.iter().any(|n| n == ns))
        {
            row.stuck += 1;
            row.fail(format!("{key} is not gone after deletion at teardown"));
        }
    }
}

/// Settles, then checks that neither AWS calls nor Kubernetes writes happen over the window
/// (I5, I6); with `restart`, the operator is restarted at the start of the window, so every
/// object is reconciled once more and must still cost nothing.
async fn quiet_window(
    ctx: &Ctx<'_>,
    label: &str,
    slug: &str,
    restart: Option<&mut OperatorProcess>,
) -> Row {
    let pseudo = format!("quiet-{slug}");
    let mut row = Row::new(format!("quiet: {label}"), &[&pseudo]);
    row.faults = if restart.is_some() {
        "1 operator restart".to_owned()
    } else {
        "none".to_owned()
    };
    let result: anyhow::Result<()> = async {
        let snap = ctx
            .monitor
            .wait("every object settled", LONG, |s| {
                s.objects.values().all(settled)
            })
            .await?;
        // Let the last status writes and events land before the first probe.
        tokio::time::sleep(Duration::from_secs(2)).await;
        let before = Quiet::probe(ctx.cluster, ctx.emulator).await?;
        if let Some(operator) = restart {
            let synced = |log: &str| log.matches("watch cache synced").count();
            let n = synced(&operator.log_contents()?);
            operator.restart().await?;
            poll_until("the restarted operator's watch cache", LONG, || {
                operator
                    .log_contents()
                    .ok()
                    .filter(|l| synced(l) > n)
                    .map(|_| ())
            })
            .await?;
        }
        tokio::time::sleep(ctx.scale.quiet).await;
        let after = Quiet::probe(ctx.cluster, ctx.emulator).await?;
        let moved = before.moved(&after, label);
        row.note(format!(
            "{} objects ({} terminal or stalled) watched for {} s: {} AWS calls, {} object or event writes",
            snap.objects.len(),
            snap.objects.values().filter(|o| settled(o)).count(),
            ctx.scale.quiet.as_secs(),
            calls_between(&before.stats, &after.stats),
            moved.iter().filter(|v| v.invariant == Invariant::I6).count()
        ));
        let mut ledger = ctx.monitor.ledger();
        for v in moved {
            ledger.add(Violation {
                namespace: pseudo.clone(),
                ..v
            });
        }
        Ok(())
    }
    .await;
    row.check("quiet window", result);
    row
}

// ---------------------------------------------------------------------------------------------
// Plane `crash`: SIGKILL at every lifecycle step, kube-apiserver restarts, quiet windows, an
// unreachable AWS endpoint.

#[derive(Clone, Copy, Debug)]
enum KillPoint {
    AfterFinalizer,
    StartInFlight,
    StartReturned,
    StartReturnedNamed,
    Stopping,
    Deleting,
    DeletedNotReleased,
}

impl KillPoint {
    const ALL: [KillPoint; 7] = [
        KillPoint::AfterFinalizer,
        KillPoint::StartInFlight,
        KillPoint::StartReturned,
        KillPoint::StartReturnedNamed,
        KillPoint::Stopping,
        KillPoint::Deleting,
        KillPoint::DeletedNotReleased,
    ];

    fn slug(self) -> &'static str {
        match self {
            KillPoint::AfterFinalizer => "finalizer",
            KillPoint::StartInFlight => "start-in-flight",
            KillPoint::StartReturned => "start-returned",
            KillPoint::StartReturnedNamed => "start-returned-named",
            KillPoint::Stopping => "stopping",
            KillPoint::Deleting => "deleting",
            KillPoint::DeletedNotReleased => "deleted",
        }
    }

    fn title(self) -> &'static str {
        match self {
            KillPoint::AfterFinalizer => "right after the finalizer is added",
            KillPoint::StartInFlight => "while Start is in flight",
            KillPoint::StartReturned => "after Start returned, before status is written",
            KillPoint::StartReturnedNamed => {
                "after Start returned, before status is written (user-chosen name)"
            }
            KillPoint::Stopping => "during STOPPING",
            KillPoint::Deleting => {
                "after Delete returned (DELETING), before the finalizer is removed"
            }
            KillPoint::DeletedNotReleased => {
                "after the job is gone, before the finalizer is removed"
            }
        }
    }

    fn faults(self) -> (FaultConfig, &'static str) {
        let mut f = FaultConfig::default();
        let held = Duration::from_secs(15);
        let text = match self {
            KillPoint::AfterFinalizer | KillPoint::StartInFlight => {
                f.entry(Target::Operation(Operation::StartBatchEvaluation))
                    .latency = Some(held);
                "1 SIGKILL; Start held 15 s before the action"
            }
            KillPoint::StartReturned | KillPoint::StartReturnedNamed => {
                f.entry(Target::Operation(Operation::StartBatchEvaluation))
                    .hold_after = Some(held);
                "1 SIGKILL; Start performed, answer held 15 s"
            }
            KillPoint::Stopping => "1 SIGKILL while STOPPING (8 s)",
            KillPoint::Deleting | KillPoint::DeletedNotReleased => {
                f.entry(Target::Operation(Operation::DeleteBatchEvaluation))
                    .hold_after = Some(held);
                "1 SIGKILL; Delete performed, answer held 15 s"
            }
        };
        (f, text)
    }
}

async fn kill_point(ctx: &Ctx<'_>, operator: &mut OperatorProcess, kp: KillPoint) -> Row {
    let ns = format!("kill-{}", kp.slug());
    let mut row = Row::new(format!("SIGKILL {}", kp.title()), &[&ns]);
    row.lifecycles = 1;
    let (faults, text) = kp.faults();
    row.faults = text.to_owned();
    let result = kill_point_inner(ctx, operator, kp, &ns, faults, &mut row).await;
    row.check("scenario", result);
    ctx.emulator.clear_faults();
    if !operator.is_running() {
        let restarted = operator.restart().await;
        row.check(
            "restarting the operator",
            restarted.map_err(anyhow::Error::from),
        );
    }
    row
}

async fn kill_point_inner(
    ctx: &Ctx<'_>,
    operator: &mut OperatorProcess,
    kp: KillPoint,
    ns: &str,
    faults: FaultConfig,
    row: &mut Row,
) -> anyhow::Result<()> {
    let name = "victim";
    ctx.cluster.create_namespace(ns).await?;
    let (extra, tags): (&str, Vec<(&str, &str)>) = match kp {
        KillPoint::StartReturnedNamed => ("  batchEvaluationName: kill_named_victim\n", vec![]),
        KillPoint::Stopping => (
            "",
            vec![
                ("emulator:job-duration", "120s"),
                ("emulator:stop-duration", "8s"),
            ],
        ),
        KillPoint::Deleting => ("", vec![("emulator:delete-duration", "20s")]),
        KillPoint::DeletedNotReleased => ("", vec![("emulator:delete-duration", "200ms")]),
        _ => ("", vec![]),
    };
    let start_kind = matches!(
        kp,
        KillPoint::AfterFinalizer
            | KillPoint::StartInFlight
            | KillPoint::StartReturned
            | KillPoint::StartReturnedNamed
    );
    if start_kind {
        ctx.emulator.set_faults(&faults)?;
    }
    ctx.cluster.apply(&manifest(ns, name, extra, &tags)).await?;
    let obj = poll_object(ctx.cluster, ns, name, "created", LONG, |_| true).await?;
    let uid = str_at(&obj, "/metadata/uid").to_owned();
    let job_status = |uid: &str| {
        token_jobs(ctx.emulator, uid)
            .first()
            .map(|j| j.status.clone())
    };

    match kp {
        KillPoint::AfterFinalizer => {
            poll_object(ctx.cluster, ns, name, "the finalizer", LONG, has_finalizer).await?;
        }
        KillPoint::StartInFlight => {
            poll_object(ctx.cluster, ns, name, "the finalizer", LONG, has_finalizer).await?;
            poll_until("the operator to send Start", LONG, || {
                let log = operator.log_contents().ok()?;
                decided_steps(&log)
                    .iter()
                    .any(|d| d.namespace == ns && d.name == name && d.step == "Start")
                    .then_some(())
            })
            .await?;
            // The request is on the wire and the emulator sits on it.
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        KillPoint::StartReturned | KillPoint::StartReturnedNamed => {
            poll_until("the job to exist", LONG, || job_status(&uid)).await?;
        }
        KillPoint::Stopping => {
            ctx.monitor
                .wait_object(ns, name, "IN_PROGRESS", LONG, |o| {
                    remote_is(o, "IN_PROGRESS")
                })
                .await?;
            ctx.cluster
                .kubectl_ok(&["delete", "beval", name, "-n", ns, "--wait=false"])
                .await?;
            poll_until("the job to be STOPPING", LONG, || {
                job_status(&uid).filter(|s| s == "STOPPING")
            })
            .await?;
        }
        KillPoint::Deleting | KillPoint::DeletedNotReleased => {
            ctx.monitor
                .wait_object(ns, name, "Ready", LONG, |o| o.is_some_and(ready))
                .await?;
            ctx.emulator.set_faults(&faults)?;
            ctx.cluster
                .kubectl_ok(&["delete", "beval", name, "-n", ns, "--wait=false"])
                .await?;
            let wanted = if matches!(kp, KillPoint::Deleting) {
                "DELETING"
            } else {
                "GONE"
            };
            poll_until(&format!("the job to be {wanted}"), LONG, || {
                job_status(&uid).filter(|s| s == wanted)
            })
            .await?;
        }
    }
    operator.kill_hard();
    let at_kill = poll_object(ctx.cluster, ns, name, "readable", LONG, |_| true).await?;
    ctx.emulator.clear_faults();

    // What the kill left behind, and that the finalizer holds while the operator is down.
    match kp {
        KillPoint::AfterFinalizer | KillPoint::StartInFlight => {
            let jobs = token_jobs(ctx.emulator, &uid);
            ensure!(
                jobs.is_empty(),
                "precondition: the Start must not have been performed at the kill: {jobs:?}"
            );
            ensure!(has_finalizer(&at_kill), "the finalizer is stored");
        }
        KillPoint::StartReturned | KillPoint::StartReturnedNamed => {
            ensure!(
                status_str(&at_kill, "batchEvaluationId").is_none(),
                "precondition: the id must not be recorded at the kill: {}",
                at_kill["status"]
            );
        }
        _ => {
            tokio::time::sleep(Duration::from_secs(1)).await;
            let held = poll_object(ctx.cluster, ns, name, "readable", LONG, |_| true).await?;
            ensure!(
                has_finalizer(&held) && deleting(&held),
                "the finalizer holds the object while the operator is down"
            );
        }
    }

    operator.restart().await?;
    let restarted = Instant::now();
    let jobs = if start_kind {
        let obj = ctx
            .monitor
            .wait_object(ns, name, "Ready after the restart", LONG, |o| {
                o.is_some_and(ready)
            })
            .await?
            .context("the object is there")?;
        row.converged(restarted.elapsed());
        let jobs = token_jobs(ctx.emulator, &uid);
        ensure!(jobs.len() == 1, "exactly one job for the object: {jobs:?}");
        ensure!(
            status_str(&obj, "batchEvaluationId") == Some(jobs[0].id.as_str()),
            "the status records the one job: {}",
            obj["status"]
        );
        if matches!(kp, KillPoint::StartReturnedNamed) {
            let named: Vec<_> = ctx
                .emulator
                .jobs()
                .into_iter()
                .filter(|j| j.name == "kill_named_victim")
                .collect();
            ensure!(named.len() == 1, "one job under the chosen name: {named:?}");
        }
        jobs
    } else {
        ctx.monitor
            .wait_object(ns, name, "gone after the restart", LONG, |o| o.is_none())
            .await?;
        row.converged(restarted.elapsed());
        let jobs = token_jobs(ctx.emulator, &uid);
        ensure!(
            jobs.len() == 1 && jobs[0].is_gone(),
            "the one job is gone: {jobs:?}"
        );
        jobs
    };
    let job = &jobs[0];
    row.note(format!(
        "after the restart: job {} {}, {} Stop and {} Delete call(s)",
        job.id, job.status, job.stop_calls, job.delete_calls
    ));
    Ok(())
}

/// Lifecycles while kube-apiserver is SIGKILLed and restarted twice on the same etcd; an object
/// created and deleted after the second restart proves the watch is back (a terminal object is
/// never requeued, only a watch event can bring its deletion to the operator).
async fn apiserver_restarts(ctx: &Ctx<'_>, plane: &mut ControlPlane) -> Row {
    let ns = "apiserver-restart";
    let mut row = Row::new("kube-apiserver killed and restarted mid-run (×2)", &[ns]);
    row.faults = "2 kube-apiserver SIGKILL + restart on the same etcd".to_owned();
    if let Err(e) = ctx.cluster.create_namespace(ns).await {
        row.fail(format!("namespace: {e:#}"));
        return row;
    }
    let before = ctx.emulator.stats();
    let n = ctx.scale.restart_lifecycles;
    let disturb = async {
        let mut outcomes = Vec::new();
        let _ = ctx
            .monitor
            .wait("a job in progress", LONG, |s| {
                s.in_namespace(ns)
                    .any(|o| remote_is(Some(o), "IN_PROGRESS"))
            })
            .await;
        plane.restart_apiserver().await.context("first restart")?;
        let _ = ctx
            .monitor
            .wait("a deletion in progress", LONG, |s| {
                s.in_namespace(ns).any(deleting)
            })
            .await;
        plane.restart_apiserver().await.context("second restart")?;
        outcomes.push(lifecycle(ctx, ns, "after-restart", Plan::Complete).await);
        anyhow::Ok(outcomes)
    };
    let (outcomes, late) = tokio::join!(lifecycles(ctx, ns, "lc", n), disturb);
    let mut outcomes = outcomes;
    match late {
        Ok(more) => outcomes.extend(more),
        Err(e) => row.fail(format!("{e:#}")),
    }
    let after = ctx.emulator.stats();
    record_lifecycles(&mut row, &outcomes, Some(calls_between(&before, &after)));
    row
}

/// An operator whose AWS endpoint does not answer (a closed loopback port): it must say so in a
/// condition and an event, back off, and still let the object go (with the escape hatch,
/// because it cannot know whether an unanswered Start created a job).
async fn unreachable_endpoint(
    ctx: &Ctx<'_>,
    plane: &ControlPlane,
    main: &mut OperatorProcess,
) -> (Row, Vec<(String, String)>, SecretScan) {
    let ns = "no-endpoint";
    let mut row = Row::new("an AWS endpoint that does not answer (127.0.0.1:1)", &[ns]);
    row.lifecycles = 1;
    row.faults = "every AWS call refused".to_owned();
    let mut logs = Vec::new();
    let mut scan = SecretScan::default();
    // The main operator watches every namespace: it steps aside for this one.
    main.terminate().await;
    let port = match free_port() {
        Ok(p) => p,
        Err(e) => {
            row.fail(format!("{e:#}"));
            return (row, logs, scan);
        }
    };
    let second = start_operator_with(
        plane,
        "http://127.0.0.1:1",
        "operator-no-endpoint",
        &[
            "--namespace".to_owned(),
            ns.to_owned(),
            "--metrics-addr".to_owned(),
            format!("127.0.0.1:{port}"),
        ],
        // Trace: the most the AWS SDK ever logs, with few calls to log.
        &operator_env("trace"),
    );
    let mut second = match second {
        Ok(s) => s,
        Err(e) => {
            row.fail(format!("second operator: {e:#}"));
            return (row, logs, scan);
        }
    };
    let result = unreachable_inner(ctx, &second, ns, port, &mut row, &mut scan).await;
    row.check("scenario", result);
    second.terminate().await;
    logs.push((
        "operator log".to_owned(),
        second.log_contents().unwrap_or_default(),
    ));
    (row, logs, scan)
}

async fn unreachable_inner(
    ctx: &Ctx<'_>,
    second: &OperatorProcess,
    ns: &str,
    port: u16,
    row: &mut Row,
    scan: &mut SecretScan,
) -> anyhow::Result<()> {
    let name = "unreachable";
    second
        .wait_for_log("starting agentcore-operator", LONG)
        .await?;
    ctx.cluster.create_namespace(ns).await?;
    let created = Instant::now();
    ctx.cluster.apply(&manifest(ns, name, "", &[])).await?;
    let obj = ctx
        .monitor
        .wait_object(ns, name, "a connection failure condition", LONG, |o| {
            o.is_some_and(|o| matches!(cond_reason(o, "Ready"), "ConnectionError" | "Timeout"))
        })
        .await?
        .context("object")?;
    let reason = cond_reason(&obj, "Ready").to_owned();
    row.note(format!(
        "condition Ready=False {reason} after {:.1} s: {:?}",
        created.elapsed().as_secs_f64(),
        condition(&obj, "Ready")
            .and_then(|c| c.get("message"))
            .and_then(Value::as_str)
            .unwrap_or("")
    ));
    let events = ctx.cluster.events_for(ns, name).await?;
    ensure!(
        events
            .iter()
            .any(|(t, r, _)| t == "Warning" && *r == reason),
        "a Warning event {reason}: {events:?}"
    );
    // Backoff: count the operator's AWS operations over a window. Consecutive failures wait
    // at least 0.5 × min(2^(n-1), 60) s; a window of W seconds fits at most this many.
    let metrics = scrape(port).await?;
    scan.scan("operator /metrics", &metrics);
    let ops_before = aws_requests(&metrics, "outcome=");
    let window = ctx.scale.storm * 2;
    tokio::time::sleep(window).await;
    let metrics = scrape(port).await?;
    scan.scan("operator /metrics", &metrics);
    let ops = aws_requests(&metrics, "outcome=") - ops_before;
    let mut bound = 1_u64;
    let mut elapsed = 0.0;
    let mut attempt = 1_i32;
    while elapsed <= window.as_secs_f64() {
        elapsed += 0.5 * 2_f64.powi(attempt - 1).min(60.0);
        attempt += 1;
        bound += 1;
    }
    row.note(format!(
        "{ops} AWS operations in {} s while the endpoint refused connections (backoff bound {bound}); the SDK makes up to 3 attempts each",
        window.as_secs()
    ));
    ensure!(ops >= 1, "the operator keeps retrying (none in the window)");
    ensure!(
        ops <= bound,
        "{ops} operations in {window:?}: no backoff (bound {bound})"
    );

    // Deletion: the operator cannot tell whether an unanswered Start created a job, so it
    // must keep the finalizer until it can ask, or until a person uses the escape hatch.
    ctx.cluster
        .kubectl_ok(&["delete", "beval", name, "-n", ns, "--wait=false"])
        .await?;
    let deleting_since = Instant::now();
    tokio::time::sleep(ctx.scale.storm).await;
    let held = ctx
        .monitor
        .fresh()
        .await?
        .get(ns, name)
        .cloned()
        .context("the finalizer keeps the object while AWS cannot be asked")?;
    ensure!(has_finalizer(&held), "finalizer kept");
    row.note(format!(
        "after `kubectl delete`: still held {} s later with cleanupStep {:?}, Ready={} {}: the operator cannot tell whether an unanswered Start created a job, so it keeps the finalizer",
        deleting_since.elapsed().as_secs(),
        status_str(&held, "cleanupStep"),
        cond_status(&held, "Ready"),
        cond_reason(&held, "Ready")
    ));
    ctx.cluster
        .kubectl_ok(&[
            "annotate",
            "beval",
            name,
            "-n",
            ns,
            "evals.agentcore.dev/force-release=true",
        ])
        .await?;
    let annotated = Instant::now();
    ctx.monitor
        .wait_object(ns, name, "gone after force-release", LONG, |o| o.is_none())
        .await?;
    row.converged(annotated.elapsed());
    let events = ctx.cluster.events_for(ns, name).await?;
    ensure!(
        events
            .iter()
            .any(|(t, r, _)| t == "Warning" && r == "ForceReleased"),
        "a Warning event ForceReleased: {events:?}"
    );
    row.note("released with evals.agentcore.dev/force-release (Warning event ForceReleased)");
    Ok(())
}

async fn plane_crash(scale: Scale) -> anyhow::Result<PlaneReport> {
    let mut plane = start_plane("info,agentcore_operator=debug", 1).await?;
    let Plane {
        env,
        cluster,
        monitor,
        scraper,
    } = &mut plane;
    let Env {
        plane: control,
        emulator,
        operator,
    } = env;
    let emulator: &RunningEmulator = emulator;
    let ctx = Ctx {
        cluster,
        emulator,
        monitor,
        scale: &scale,
        metrics_port: scraper.port,
    };
    let work = async {
        let mut rows = Vec::new();
        for kp in KillPoint::ALL {
            rows.push(kill_point(&ctx, operator, kp).await);
        }
        rows.push(apiserver_restarts(&ctx, control).await);
        rows.push(
            quiet_window(
                &ctx,
                "objects left Ready by the kill and restart scenarios",
                "crash",
                None,
            )
            .await,
        );
        rows.push(
            quiet_window(
                &ctx,
                "the same objects across an operator restart",
                "crash-restart",
                Some(&mut *operator),
            )
            .await,
        );
        let stuck = teardown(&ctx).await;
        charge_stuck(&mut rows, &stuck);
        let (row, logs, scan) = unreachable_endpoint(&ctx, control, operator).await;
        rows.push(row);
        monitor.stop();
        (rows, logs, scan)
    };
    let ((), (), (rows, logs, scan)) = tokio::join!(
        monitor.run(cluster, emulator),
        scraper.run(monitor.stopped()),
        work
    );
    let mut report = finish_plane(&plane, rows, logs).await;
    report.secrets.hits.extend(scan.hits);
    for (k, v) in scan.scanned {
        *report.secrets.scanned.entry(k).or_default() += v;
    }
    Ok(report)
}

// ---------------------------------------------------------------------------------------------
// Plane `aws`: AWS faults during lifecycles, with RUST_LOG=debug.

#[derive(Clone, Copy, Debug)]
enum AwsFault {
    Baseline,
    Throttling,
    ServerErrors,
    Latency,
    Drops,
    Denial,
}

const LATENCY: Duration = Duration::from_secs(12);

impl AwsFault {
    const ALL: [AwsFault; 6] = [
        AwsFault::Baseline,
        AwsFault::Throttling,
        AwsFault::ServerErrors,
        AwsFault::Latency,
        AwsFault::Drops,
        AwsFault::Denial,
    ];

    fn slug(self) -> &'static str {
        match self {
            AwsFault::Baseline => "baseline",
            AwsFault::Throttling => "throttling",
            AwsFault::ServerErrors => "server-errors",
            AwsFault::Latency => "latency",
            AwsFault::Drops => "drops",
            AwsFault::Denial => "denial",
        }
    }

    fn title(self) -> &'static str {
        match self {
            AwsFault::Baseline => "AWS baseline (no faults)",
            AwsFault::Throttling => "AWS 30% throttling (429)",
            AwsFault::ServerErrors => "AWS 10% HTTP 500",
            AwsFault::Latency => "AWS latency beyond the operation timeout",
            AwsFault::Drops => "AWS dropped connections",
            AwsFault::Denial => "AWS 403 period, then recovery",
        }
    }

    fn faults(self) -> FaultConfig {
        let mut f = FaultConfig::default();
        let all = Target::All;
        match self {
            AwsFault::Baseline | AwsFault::Denial => {}
            AwsFault::Throttling => {
                f.entry(all).error_rate = Some(ErrorRate {
                    rate: 0.3,
                    error: ErrorCode::ThrottlingException,
                });
            }
            AwsFault::ServerErrors => {
                f.entry(all).error_rate = Some(ErrorRate {
                    rate: 0.1,
                    error: ErrorCode::InternalServerException,
                });
            }
            AwsFault::Latency => {
                // One call in 4 waits 12 s before it is handled, one in 12 is performed and
                // then answered 12 s late: both beyond the 3 s attempt and 10 s operation
                // timeouts.
                f.entry(all).script = (0..3000)
                    .map(|i| ScriptStep {
                        action: if i % 4 == 1 {
                            FaultAction::Delay { duration: LATENCY }
                        } else if i % 6 == 3 {
                            FaultAction::Hold { duration: LATENCY }
                        } else {
                            FaultAction::Pass
                        },
                        times: Some(1),
                    })
                    .collect();
            }
            AwsFault::Drops => {
                // Reads lose a fifth of their connections before the call; every third Start,
                // Stop and Delete is performed and then has its connection cut.
                f.entry(all).drop_rate = Some(0.2);
                for op in [
                    Operation::StartBatchEvaluation,
                    Operation::StopBatchEvaluation,
                    Operation::DeleteBatchEvaluation,
                ] {
                    f.entry(Target::Operation(op)).script = (0..3000)
                        .map(|i| ScriptStep {
                            action: if i % 3 == 0 {
                                FaultAction::Drop { after_action: true }
                            } else {
                                FaultAction::Pass
                            },
                            times: Some(1),
                        })
                        .collect();
                }
            }
        }
        f
    }
}

/// Steps of the script consumed so far that were delays or holds, over every operation.
fn consumed_latency_steps(initial: &FaultConfig, now: &FaultConfig) -> u64 {
    let slow = |s: &[ScriptStep]| {
        s.iter()
            .filter(|s| {
                matches!(
                    s.action,
                    FaultAction::Delay { .. } | FaultAction::Hold { .. }
                )
            })
            .count() as u64
    };
    Operation::ALL
        .into_iter()
        .map(|op| {
            let at_start: OperationFaults = initial.for_operation(op);
            let left = now
                .0
                .get(&Target::Operation(op))
                .map(|f| f.script.as_slice())
                .unwrap_or_default();
            slow(&at_start.script).saturating_sub(slow(left))
        })
        .sum()
}

async fn aws_phase(ctx: &Ctx<'_>, fault: AwsFault) -> Row {
    let ns = format!("aws-{}", fault.slug());
    let mut row = Row::new(fault.title(), &[&ns]);
    if let Err(e) = ctx.cluster.create_namespace(&ns).await {
        row.fail(format!("namespace: {e:#}"));
        return row;
    }
    let faults = fault.faults();
    let ops_before = scrape(ctx.metrics_port)
        .await
        .map(|m| aws_requests(&m, "outcome="))
        .ok();
    let before = ctx.emulator.stats();
    if let Err(e) = ctx.emulator.set_faults(&faults) {
        row.fail(format!("faults: {e}"));
        return row;
    }
    let denial = async {
        if !matches!(fault, AwsFault::Denial) {
            return anyhow::Ok(None);
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
        let mut f = FaultConfig::default();
        f.entry(Target::All).error_rate = Some(ErrorRate {
            rate: 1.0,
            error: ErrorCode::AccessDeniedException,
        });
        ctx.emulator.set_faults(&f)?;
        let began = Instant::now();
        let seen = ctx
            .monitor
            .wait("an AccessDenied condition", ctx.scale.denial, |s| {
                s.in_namespace(&ns)
                    .any(|o| cond_reason(o, "Ready") == "AccessDenied")
            })
            .await;
        let observed = seen.ok().and_then(|snap| {
            snap.in_namespace(&ns)
                .find(|o| cond_reason(o, "Ready") == "AccessDenied")
                .map(|obj| {
                    (
                        str_at(obj, "/metadata/name").to_owned(),
                        cond_reason(obj, "Stalled").to_owned(),
                    )
                })
        });
        tokio::time::sleep(ctx.scale.denial.saturating_sub(began.elapsed())).await;
        ctx.emulator.clear_faults();
        anyhow::Ok(Some(observed))
    };
    let (outcomes, denied) = tokio::join!(lifecycles(ctx, &ns, "lc", ctx.scale.per_fault), denial);
    let left = ctx.emulator.faults();
    ctx.emulator.clear_faults();
    if matches!(fault, AwsFault::Latency) {
        // Calls held by the emulator finish their delay after the clients gave up; let them
        // land before counting.
        tokio::time::sleep(LATENCY + Duration::from_secs(1)).await;
    }
    let after = ctx.emulator.stats();
    record_lifecycles(&mut row, &outcomes, Some(calls_between(&before, &after)));
    let ops_after = scrape(ctx.metrics_port)
        .await
        .map(|m| aws_requests(&m, "outcome="))
        .ok();
    if let (Some(a), Some(b)) = (ops_before, ops_after) {
        let ops = b.saturating_sub(a);
        #[allow(clippy::cast_precision_loss)]
        let ratio = calls_between(&before, &after) as f64 / ops.max(1) as f64;
        row.note(format!(
            "{ops} AWS operations by the operator, {} requests reaching the emulator ({ratio:.2} attempts per operation; the SDK allows 3)",
            calls_between(&before, &after)
        ));
    }
    row.faults = match fault {
        AwsFault::Baseline => "none".to_owned(),
        AwsFault::Throttling => format!(
            "{} × 429 ThrottlingException",
            delta_all(&before, &after, "ThrottlingException")
        ),
        AwsFault::ServerErrors => format!(
            "{} × 500 InternalServerException",
            delta_all(&before, &after, "InternalServerException")
        ),
        AwsFault::Latency => format!(
            "{} calls delayed or held 12 s",
            consumed_latency_steps(&faults, &left)
        ),
        AwsFault::Drops => format!(
            "{} connections dropped",
            delta_all(&before, &after, OUTCOME_DROPPED)
        ),
        AwsFault::Denial => format!(
            "{} × 403 AccessDeniedException over {} s",
            delta_all(&before, &after, "AccessDeniedException"),
            ctx.scale.denial.as_secs()
        ),
    };
    match denied {
        Ok(Some(Some((name, stalled)))) => {
            let events = ctx.cluster.events_for(&ns, &name).await.unwrap_or_default();
            if events
                .iter()
                .any(|(t, r, _)| t == "Warning" && r == "AccessDenied")
            {
                row.note(format!(
                    "during the 403 period {ns}/{name} showed Ready=False AccessDenied (Stalled reason {stalled}) and a Warning event AccessDenied"
                ));
            } else {
                row.fail(format!(
                    "no Warning event AccessDenied for {name}: {events:?}"
                ));
            }
        }
        Ok(Some(None)) => {
            row.fail("no object showed an AccessDenied condition during the 403 period")
        }
        Ok(None) => {}
        Err(e) => row.fail(format!("{e:#}")),
    }
    row
}

async fn plane_aws(scale: Scale) -> anyhow::Result<PlaneReport> {
    let mut plane = start_plane("debug", 2).await?;
    let Plane {
        env,
        cluster,
        monitor,
        scraper,
    } = &mut plane;
    let emulator: &RunningEmulator = &env.emulator;
    let ctx = Ctx {
        cluster,
        emulator,
        monitor,
        scale: &scale,
        metrics_port: scraper.port,
    };
    let work = async {
        let mut rows = Vec::new();
        for fault in AwsFault::ALL {
            rows.push(aws_phase(&ctx, fault).await);
        }
        rows.push(
            quiet_window(
                &ctx,
                "objects left Ready by the AWS-fault phases",
                "aws",
                None,
            )
            .await,
        );
        let stuck = teardown(&ctx).await;
        charge_stuck(&mut rows, &stuck);
        monitor.stop();
        rows
    };
    let ((), (), rows) = tokio::join!(
        monitor.run(cluster, emulator),
        scraper.run(monitor.stopped()),
        work
    );
    Ok(finish_plane(&plane, rows, Vec::new()).await)
}

// ---------------------------------------------------------------------------------------------
// Plane `load`: bad input, malformed responses, a concurrent writer, many objects.

fn sdk_client(endpoint: &str) -> aws_sdk_bedrockagentcore::Client {
    use aws_sdk_bedrockagentcore::config::{BehaviorVersion, Builder, Credentials, Region};
    aws_sdk_bedrockagentcore::Client::from_conf(
        Builder::new()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-west-2"))
            .credentials_provider(Credentials::new(
                "AKIDSOMEONEELSE",
                "someone-else",
                None,
                None,
                "test",
            ))
            .endpoint_url(endpoint)
            .build(),
    )
}

/// Input the schema cannot catch: a spec the service rejects, a name taken by someone else's
/// job, adoption of an id that does not exist.
async fn bad_input(ctx: &Ctx<'_>) -> Row {
    let ns = "bad-input";
    let mut row = Row::new(
        "bad input: rejected at Start, name collision, adoption of a missing id",
        &[ns],
    );
    row.lifecycles = 3;
    row.faults = "3 bad objects".to_owned();
    let result = bad_input_inner(ctx, ns, &mut row).await;
    row.check("scenario", result);
    row
}

async fn bad_input_inner(ctx: &Ctx<'_>, ns: &str, row: &mut Row) -> anyhow::Result<()> {
    ctx.cluster.create_namespace(ns).await?;
    let foreign_name = "someone_elses_job";
    let sdk = sdk_client(&ctx.emulator.endpoint_url());
    sdk.start_batch_evaluation()
        .batch_evaluation_name(foreign_name)
        .tags("emulator:job-duration", "3600s")
        .data_source_config(
            aws_sdk_bedrockagentcore::types::DataSourceConfig::CloudWatchLogs(
                aws_sdk_bedrockagentcore::types::CloudWatchLogsSource::builder()
                    .service_names("someone-else")
                    .build()?,
            ),
        )
        .send()
        .await?;
    let cases = [
        (
            "rejected",
            manifest(
                ns,
                "rejected",
                "",
                &[("emulator:job-duration", "not-a-duration")],
            ),
            "InvalidSpec",
        ),
        (
            "collision",
            manifest(
                ns,
                "collision",
                &format!("  batchEvaluationName: {foreign_name}\n"),
                &[],
            ),
            "NameConflict",
        ),
        (
            "ghost",
            manifest(
                ns,
                "ghost",
                "  adoptBatchEvaluationId: ghost-job-0123456789\n",
                &[],
            ),
            "AdoptionTargetNotFound",
        ),
    ];
    let created = Instant::now();
    for (_, yaml, _) in &cases {
        ctx.cluster.apply(yaml).await?;
    }
    for (name, _, reason) in &cases {
        let obj = ctx
            .monitor
            .wait_object(ns, name, &format!("Stalled {reason}"), LONG, |o| {
                o.is_some_and(|o| {
                    cond_status(o, "Stalled") == "True" && cond_reason(o, "Stalled") == *reason
                })
            })
            .await?
            .context("object")?;
        row.converged(created.elapsed());
        let events = ctx.cluster.events_for(ns, name).await?;
        ensure!(
            events.iter().any(|(t, r, _)| t == "Warning" && r == reason),
            "{name}: a Warning event {reason}: {events:?}"
        );
        row.note(format!(
            "{name}: Stalled=True {reason}: {:?}",
            condition(&obj, "Stalled")
                .and_then(|c| c.get("message"))
                .and_then(Value::as_str)
                .unwrap_or("")
        ));
    }
    // No retry storm: a stalled object costs no AWS call and no write.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let before = Quiet::probe(ctx.cluster, ctx.emulator).await?;
    tokio::time::sleep(ctx.scale.storm).await;
    let after = Quiet::probe(ctx.cluster, ctx.emulator).await?;
    let moved = before.moved(&after, "the bad-input window");
    row.note(format!(
        "{} AWS calls and {} writes in the {} s after the three stalls",
        calls_between(&before.stats, &after.stats),
        moved
            .iter()
            .filter(|v| v.invariant == Invariant::I6)
            .count(),
        ctx.scale.storm.as_secs()
    ));
    {
        let mut ledger = ctx.monitor.ledger();
        for v in moved {
            ledger.add(Violation {
                namespace: ns.to_owned(),
                ..v
            });
        }
    }
    // Deletion still possible, and the foreign job is left alone.
    let deleting = Instant::now();
    ctx.cluster
        .kubectl_ok(&[
            "delete",
            "beval",
            "rejected",
            "collision",
            "ghost",
            "-n",
            ns,
            "--wait=false",
        ])
        .await?;
    for (name, _, _) in &cases {
        ctx.monitor
            .wait_object(ns, name, "gone", LONG, |o| o.is_none())
            .await?;
    }
    row.converged(deleting.elapsed());
    let foreign: Vec<_> = ctx
        .emulator
        .jobs()
        .into_iter()
        .filter(|j| j.name == foreign_name)
        .collect();
    ensure!(
        foreign.len() == 1
            && !foreign[0].is_gone()
            && foreign[0].stop_calls == 0
            && foreign[0].delete_calls == 0,
        "the foreign job is untouched: {foreign:?}"
    );
    Ok(())
}

fn malformed_slug(kind: MalformedKind) -> &'static str {
    match kind {
        MalformedKind::InvalidJson => "invalid-json",
        MalformedKind::UnknownStatus => "unknown-status",
        MalformedKind::MissingRequired => "missing-required",
        MalformedKind::EpochTimestamps => "epoch-timestamps",
    }
}

/// GetBatchEvaluation answers malformed bodies for a while: the operator must stay up, say so
/// in a condition and an event, keep retrying at its pace, and recover when the answers heal.
async fn malformed(ctx: &Ctx<'_>, operator: &OperatorProcess, kind: MalformedKind) -> Row {
    let slug = malformed_slug(kind);
    let ns = format!("malformed-{slug}");
    let mut row = Row::new(format!("malformed Get responses: {slug}"), &[&ns]);
    row.lifecycles = 1;
    let result = malformed_inner(ctx, operator, kind, &ns, &mut row).await;
    ctx.emulator.clear_faults();
    if row.check("scenario", result).is_none() {
        // Leave nothing running into the next scenario's faults.
        delete_or_force(ctx, &ns, "garbled", &mut row).await;
    }
    row
}

/// Deletes an object; one that cannot go within 30 s is stuck, and released by force.
async fn delete_or_force(ctx: &Ctx<'_>, ns: &str, name: &str, row: &mut Row) {
    let _ = ctx
        .cluster
        .kubectl_ok(&[
            "delete",
            "beval",
            name,
            "-n",
            ns,
            "--wait=false",
            "--ignore-not-found",
        ])
        .await;
    let gone = |timeout| {
        ctx.monitor
            .wait_object(ns, name, "gone", timeout, |o| o.is_none())
    };
    if gone(Duration::from_secs(30)).await.is_ok() {
        return;
    }
    row.stuck += 1;
    row.fail(format!(
        "{ns}/{name} was not gone 30 s after deletion; released with the force-release annotation"
    ));
    let _ = ctx
        .cluster
        .kubectl_ok(&[
            "annotate",
            "--overwrite",
            "beval",
            name,
            "-n",
            ns,
            "evals.agentcore.dev/force-release=true",
        ])
        .await;
    let _ = gone(LONG).await;
}

async fn malformed_inner(
    ctx: &Ctx<'_>,
    operator: &OperatorProcess,
    kind: MalformedKind,
    ns: &str,
    row: &mut Row,
) -> anyhow::Result<()> {
    let name = "garbled";
    ctx.cluster.create_namespace(ns).await?;
    ctx.cluster
        .apply(&manifest(
            ns,
            name,
            "",
            &[
                ("emulator:job-duration", "120s"),
                ("emulator:stop-duration", "1s"),
            ],
        ))
        .await?;
    let running = ctx
        .monitor
        .wait_object(ns, name, "IN_PROGRESS", LONG, |o| {
            remote_is(o, "IN_PROGRESS")
        })
        .await?
        .context("object")?;
    let id = status_str(&running, "batchEvaluationId")
        .context("id recorded")?
        .to_owned();
    let pid = operator.pid().context("the operator runs")?;
    let mut f = FaultConfig::default();
    f.entry(Target::Operation(Operation::GetBatchEvaluation))
        .malformed = Some(kind);
    let before = ctx.emulator.stats();
    ctx.emulator.set_faults(&f)?;
    let began = Instant::now();
    // The operator's reaction: whatever it turns the Ready condition into.
    let reacted = ctx
        .monitor
        .wait_object(ns, name, "a reaction to the malformed answers", LONG, |o| {
            o.is_some_and(|o| cond_reason(o, "Ready") != "InProgress")
        })
        .await?
        .context("object")?;
    let reason = cond_reason(&reacted, "Ready").to_owned();
    tokio::time::sleep(ctx.scale.storm.saturating_sub(began.elapsed())).await;
    let during = ctx
        .monitor
        .fresh()
        .await?
        .get(ns, name)
        .cloned()
        .context("object")?;
    let after = ctx.emulator.stats();
    let window = began.elapsed();
    ctx.emulator.clear_faults();
    let malformed_gets = delta(
        &before,
        &after,
        Operation::GetBatchEvaluation,
        OUTCOME_MALFORMED,
    );
    row.faults = format!("{malformed_gets} malformed GetBatchEvaluation answers");
    ensure!(
        operator.pid() == Some(pid),
        "the operator process survived (pid {pid} → {:?})",
        operator.pid()
    );
    let events = ctx.cluster.events_for(ns, name).await?;
    let status = &during["status"];
    row.note(format!(
        "Ready=False {reason} ({:?}); remoteStatus {:?}, batchEvaluationId {:?}; events: {:?}",
        condition(&reacted, "Ready")
            .and_then(|c| c.get("message"))
            .and_then(Value::as_str)
            .unwrap_or(""),
        status.get("remoteStatus"),
        status.get("batchEvaluationId"),
        events
            .iter()
            .map(|(t, r, _)| format!("{t} {r}"))
            .collect::<Vec<_>>()
    ));
    let expected = match kind {
        MalformedKind::InvalidJson | MalformedKind::EpochTimestamps => "MalformedResponse",
        MalformedKind::UnknownStatus => "UnknownRemoteStatus",
        MalformedKind::MissingRequired => "",
    };
    if !expected.is_empty() {
        ensure!(
            reason == expected,
            "Ready reason {reason}, expected {expected}"
        );
    }
    ensure!(
        events.iter().any(|(_, r, _)| r == &reason
            || (kind == MalformedKind::UnknownStatus && r == "Archived")
            || r == "MalformedResponse"),
        "an event about the malformed answers: {events:?}"
    );
    // Still retrying, at its pace: not wedged, no storm.
    ensure!(
        malformed_gets >= 2,
        "the operator kept polling ({malformed_gets} Gets in {window:?})"
    );
    let bound = (ATTEMPTS_PER_OP * (window.as_secs_f64() / MIN_REQUEUE_SECS + 2.0)).ceil();
    #[allow(clippy::cast_precision_loss)]
    let gets = malformed_gets as f64;
    ensure!(
        gets <= bound,
        "{malformed_gets} Gets in {window:?} (bound {bound})"
    );
    ensure!(
        status_str(&during, "batchEvaluationId") == Some(id.as_str()),
        "the recorded id survives the malformed answers: {status}"
    );
    // Recovery.
    let healed = Instant::now();
    ctx.monitor
        .wait_object(ns, name, "InProgress again", LONG, |o| {
            o.is_some_and(|o| {
                cond_reason(o, "Ready") == "InProgress"
                    && status_str(o, "remoteStatus") == Some("IN_PROGRESS")
            })
        })
        .await?;
    row.converged(healed.elapsed());
    ctx.cluster
        .kubectl_ok(&["delete", "beval", name, "-n", ns, "--wait=false"])
        .await?;
    ctx.monitor
        .wait_object(ns, name, "gone", LONG, |o| o.is_none())
        .await?;
    row.converged(healed.elapsed());
    Ok(())
}

#[derive(Default)]
struct WriterLog {
    /// Per object: the annotation rounds written, and the last label value written.
    annotations: BTreeMap<String, BTreeSet<u32>>,
    label: BTreeMap<String, u32>,
    writes: u64,
    conflicts: u64,
}

const WRITER_PREFIX: &str = "writer.faults.agentcore.dev";
/// Most edits per object and second.
const WRITER_EDITS_PER_SEC: f64 = 2.0;

/// Another client editing labels and annotations of every object, each in its own loop: even
/// rounds as a slow read-modify-write with the resourceVersion read (so it meets 409s when the
/// operator wrote in between, and retries on a fresh read), odd rounds by merge patch.
async fn writer(
    cluster: &Cluster,
    ns: &str,
    names: &[String],
    stop: watch::Receiver<bool>,
    log: &Mutex<WriterLog>,
) {
    join_all(
        names
            .iter()
            .map(|name| edit_loop(cluster, ns, name, stop.clone(), log)),
    )
    .await;
}

/// How long the writer holds what it read before writing it back.
const WRITER_THINK: Duration = Duration::from_millis(300);

async fn edit_loop(
    cluster: &Cluster,
    ns: &str,
    name: &str,
    mut stop: watch::Receiver<bool>,
    log: &Mutex<WriterLog>,
) {
    let api = cluster.bevals(ns);
    let lock = || {
        log.lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    };
    let record = |round: u32| {
        let mut log = lock();
        log.writes += 1;
        log.annotations
            .entry(name.to_owned())
            .or_default()
            .insert(round);
        log.label.insert(name.to_owned(), round);
    };
    let label_key = format!("{WRITER_PREFIX}/round");
    let mut round = 0_u32;
    while !*stop.borrow() {
        round += 1;
        let annotation_key = format!("{WRITER_PREFIX}/r{round}");
        if round.is_multiple_of(2) {
            for _ in 0..10 {
                let Ok(Some(mut obj)) = api.get_opt(name).await else {
                    break;
                };
                tokio::time::sleep(WRITER_THINK).await;
                obj.metadata
                    .labels
                    .get_or_insert_default()
                    .insert(label_key.clone(), round.to_string());
                obj.metadata
                    .annotations
                    .get_or_insert_default()
                    .insert(annotation_key.clone(), "written".to_owned());
                match api.replace(name, &PostParams::default(), &obj).await {
                    Ok(_) => {
                        record(round);
                        break;
                    }
                    Err(kube::Error::Api(e)) if e.code == 409 => lock().conflicts += 1,
                    Err(_) => break,
                }
            }
        } else {
            let patch = json!({"metadata": {
                "labels": {&label_key: round.to_string()},
                "annotations": {&annotation_key: "written"},
            }});
            if api
                .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
                .is_ok()
            {
                record(round);
            }
        }
        tokio::select! {
            () = tokio::time::sleep(Duration::from_secs_f64(1.0 / WRITER_EDITS_PER_SEC)) => {}
            _ = stop.changed() => {}
        }
    }
}

async fn concurrent_writers(ctx: &Ctx<'_>) -> Row {
    let ns = "writers";
    let mut row = Row::new("concurrent writer editing labels and annotations", &[ns]);
    let result = writers_inner(ctx, ns, &mut row).await;
    row.check("scenario", result);
    row
}

async fn writers_inner(ctx: &Ctx<'_>, ns: &str, row: &mut Row) -> anyhow::Result<()> {
    ctx.cluster.create_namespace(ns).await?;
    let n = ctx.scale.writers;
    let names: Vec<String> = (0..n).map(|i| format!("w-{i}")).collect();
    let yaml: Vec<String> = names
        .iter()
        .map(|name| manifest(ns, name, "", &[("emulator:job-duration", "8s")]))
        .collect();
    let log = Mutex::new(WriterLog::default());
    let (stop_tx, stop_rx) = watch::channel(false);
    let before = ctx.emulator.stats();
    let created = Instant::now();
    ctx.cluster.apply(&yaml.join("---\n")).await?;
    let scenario = async {
        // Creation, finalizer, Start and every status write race with the writer.
        let snap = ctx
            .monitor
            .wait("every object Ready", LONG, |s| {
                s.in_namespace(ns).filter(|o| ready(o)).count() == n
            })
            .await?;
        row.converged(created.elapsed());
        // With everything terminal, the writer's edits must cost no AWS call and no status
        // write (the watch predicate lets only the operator's own annotations through; an
        // operator that reconciled on them would still have to call nothing).
        let statuses = |snap: &support::invariants::Snapshot| {
            snap.in_namespace(ns)
                .map(|o| (str_at(o, "/metadata/name").to_owned(), o["status"].clone()))
                .collect::<BTreeMap<_, _>>()
        };
        let first = statuses(&snap);
        let stats0 = ctx.emulator.stats();
        let writes0 = log
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .writes;
        tokio::time::sleep(ctx.scale.storm).await;
        let stats1 = ctx.emulator.stats();
        let later = ctx.monitor.fresh().await?;
        let second = statuses(&later);
        let churn = log
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .writes
            - writes0;
        let calls = calls_between(&stats0, &stats1);
        let rewritten: Vec<_> = first
            .iter()
            .filter(|(k, v)| second.get(*k) != Some(v))
            .map(|(k, _)| k.clone())
            .collect();
        row.note(format!(
            "{churn} edits of terminal objects over {} s: {calls} AWS calls, {} status rewrites",
            ctx.scale.storm.as_secs(),
            rewritten.len()
        ));
        {
            let mut ledger = ctx.monitor.ledger();
            if calls > 0 {
                ledger.add(Violation {
                    invariant: Invariant::I5,
                    namespace: ns.to_owned(),
                    detail: format!("{calls} AWS calls while only annotations changed"),
                });
            }
            for k in rewritten {
                ledger.add(Violation {
                    invariant: Invariant::I6,
                    namespace: ns.to_owned(),
                    detail: format!("status of {ns}/{k} rewritten while only annotations changed"),
                });
            }
        }
        // Nothing written by either side was lost. Every write the log holds was acknowledged
        // before the next list begins, so the list must show it (the writer goes on meanwhile:
        // labels can only be newer).
        let written = {
            let log = log
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            (log.annotations.clone(), log.label.clone())
        };
        let snap = ctx.monitor.fresh().await?;
        let jobs = ctx.emulator.jobs();
        for name in &names {
            let obj = snap.get(ns, name).context("object")?;
            let missing: Vec<u32> = written
                .0
                .get(name)
                .map(|rounds| {
                    rounds
                        .iter()
                        .copied()
                        .filter(|r| {
                            obj.pointer("/metadata/annotations")
                                .and_then(|a| a.get(format!("{WRITER_PREFIX}/r{r}")))
                                .is_none()
                        })
                        .collect()
                })
                .unwrap_or_default();
            ensure!(
                missing.is_empty(),
                "{name}: annotations of rounds {missing:?} lost"
            );
            let label: Option<u32> = obj
                .pointer("/metadata/labels")
                .and_then(|l| l.get(format!("{WRITER_PREFIX}/round")))
                .and_then(Value::as_str)
                .and_then(|v| v.parse().ok());
            ensure!(
                label.is_some() && label >= written.1.get(name).copied(),
                "{name}: label {label:?}, last written {:?}",
                written.1.get(name)
            );
            let uid = str_at(obj, "/metadata/uid");
            let job = jobs
                .iter()
                .find(|j| j.client_token.as_deref() == Some(&format!("{TOKEN_PREFIX}{uid}")))
                .context("the object's job")?;
            ensure!(
                ready(obj)
                    && cond_reason(obj, "Ready") == "Completed"
                    && status_str(obj, "remoteStatus") == Some("COMPLETED")
                    && status_str(obj, "batchEvaluationId") == Some(job.id.as_str())
                    && obj.pointer("/status/observedGeneration")
                        == obj.pointer("/metadata/generation"),
                "{name}: status intact: {}",
                obj["status"]
            );
            ensure!(has_finalizer(obj), "{name}: finalizer intact");
        }
        // Deletion while the writer keeps editing: the finalizer must still come off.
        let deleting = Instant::now();
        ctx.cluster
            .kubectl_ok(&["delete", "bevals", "--all", "-n", ns, "--wait=false"])
            .await?;
        ctx.monitor
            .wait("every writer object gone", LONG, |s| {
                s.in_namespace(ns).next().is_none()
            })
            .await?;
        row.converged(deleting.elapsed());
        anyhow::Ok(())
    };
    let (result, ()) = tokio::join!(
        async {
            let r = scenario.await;
            stop_tx.send_replace(true);
            r
        },
        writer(ctx.cluster, ns, &names, stop_rx, &log)
    );
    let after = ctx.emulator.stats();
    let (writes, conflicts) = {
        let log = log
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        (log.writes, log.conflicts)
    };
    row.faults = format!(
        "{writes} label/annotation writes by another client ({conflicts} × 409 met and retried)"
    );
    row.note(format!(
        "the writer met {conflicts} conflicts (409) on resourceVersion-checked updates; the operator's own writes are patches without a resourceVersion, so they never conflict"
    ));
    row.lifecycles = n;
    // Each edit is a watch event. The operator ignores other tools' annotations and labels,
    // but the bound does not rely on that filter: it grants one reconcile per edit.
    #[allow(clippy::cast_precision_loss)]
    let edits_per_object = writes as f64 / n as f64;
    let budget =
        call_budget(created.elapsed()) + ATTEMPTS_PER_OP * OPS_PER_RECONCILE * edits_per_object;
    #[allow(clippy::cast_precision_loss)]
    let per = calls_between(&before, &after) as f64 / n as f64;
    row.calls = Some((per, budget));
    // At most WRITER_EDITS_PER_SEC edits per object and second, plus one straddling.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let extra = (OPS_PER_RECONCILE * (WRITER_EDITS_PER_SEC + 1.0)) as u32;
    row.peak_bound = Some(PEAK_OPS_BOUND + extra);
    result
}

/// Many objects created at once, left Ready through a quiet window, then deleted at once.
async fn mass(ctx: &Ctx<'_>) -> Vec<Row> {
    let ns = "mass";
    let n = ctx.scale.mass;
    let mut row = Row::new(format!("{n} objects created and deleted at once"), &[ns]);
    row.lifecycles = n;
    row.faults = "load".to_owned();
    let mut quiet = Row::new(
        format!("quiet: {n} terminal objects and their events"),
        &["quiet-mass"],
    );
    quiet.faults = "none".to_owned();
    let result: anyhow::Result<()> = async {
        ctx.cluster.create_namespace(ns).await?;
        let yaml: Vec<String> = (0..n)
            .map(|i| manifest(ns, &format!("m-{i}"), "", &[("emulator:job-duration", "3s")]))
            .collect();
        let before = ctx.emulator.stats();
        let created = Instant::now();
        ctx.cluster
            .apply_retry(&yaml.join("---\n"), PATIENCE)
            .await?;
        ctx.monitor
            .wait(&format!("{n} objects Ready"), LONG * 2, |s| {
                s.in_namespace(ns).filter(|o| ready(o)).count() == n
            })
            .await?;
        let to_ready = created.elapsed();
        let mid = ctx.emulator.stats();
        quiet = quiet_window(ctx, &format!("{n} terminal objects and their events"), "mass", None)
            .await;
        let deleting = Instant::now();
        let mid2 = ctx.emulator.stats();
        ctx.cluster
            .kubectl_retry(
                &["delete", "bevals", "--all", "-n", ns, "--wait=false"],
                None,
                PATIENCE,
            )
            .await?;
        ctx.monitor
            .wait(&format!("{n} objects gone"), LONG * 2, |s| {
                s.in_namespace(ns).next().is_none()
            })
            .await?;
        let to_gone = deleting.elapsed();
        let after = ctx.emulator.stats();
        row.converged(to_ready.max(to_gone));
        row.note(format!(
            "all {n} Ready {:.1} s after one `kubectl apply`; all gone {:.1} s after one `kubectl delete --all`",
            to_ready.as_secs_f64(),
            to_gone.as_secs_f64()
        ));
        let calls = calls_between(&before, &mid) + calls_between(&mid2, &after);
        #[allow(clippy::cast_precision_loss)]
        let per = calls as f64 / n as f64;
        row.calls = Some((per, call_budget(to_ready + to_gone)));
        let jobs: Vec<_> = ctx
            .emulator
            .jobs()
            .into_iter()
            .filter(|j| j.name.starts_with("mass_m_"))
            .collect();
        ensure!(
            jobs.len() == n && jobs.iter().all(JobInfo::is_gone),
            "{n} jobs, all gone: {} jobs, {} live",
            jobs.len(),
            jobs.iter().filter(|j| !j.is_gone()).count()
        );
        Ok(())
    }
    .await;
    if let Err(e) = result {
        row.stuck = ctx
            .monitor
            .fresh()
            .await
            .map(|s| s.in_namespace(ns).count())
            .unwrap_or(0);
        row.fail(format!("{e:#}"));
    }
    vec![row, quiet]
}

async fn plane_load(scale: Scale) -> anyhow::Result<PlaneReport> {
    let mut plane = start_plane("info,agentcore_operator=debug", 3).await?;
    let Plane {
        env,
        cluster,
        monitor,
        scraper,
    } = &mut plane;
    let emulator: &RunningEmulator = &env.emulator;
    let operator: &OperatorProcess = &env.operator;
    let ctx = Ctx {
        cluster,
        emulator,
        monitor,
        scale: &scale,
        metrics_port: scraper.port,
    };
    let work = async {
        let mut rows = vec![bad_input(&ctx).await];
        for kind in [
            MalformedKind::InvalidJson,
            MalformedKind::UnknownStatus,
            MalformedKind::MissingRequired,
            MalformedKind::EpochTimestamps,
        ] {
            rows.push(malformed(&ctx, operator, kind).await);
        }
        rows.push(concurrent_writers(&ctx).await);
        rows.extend(mass(&ctx).await);
        let stuck = teardown(&ctx).await;
        charge_stuck(&mut rows, &stuck);
        monitor.stop();
        rows
    };
    let ((), (), rows) = tokio::join!(
        monitor.run(cluster, emulator),
        scraper.run(monitor.stopped()),
        work
    );
    Ok(finish_plane(&plane, rows, Vec::new()).await)
}

// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fault_suite() -> anyhow::Result<()> {
    let scale = Scale::from_env();
    let only = std::env::var("AGENTCORE_FAULTS_ONLY").unwrap_or_default();
    let wanted = |plane: &str| only.is_empty() || only.split(',').any(|p| p.trim() == plane);
    let started = Instant::now();
    let mut tasks = Vec::new();
    if wanted("crash") {
        tasks.push(("crash", tokio::spawn(plane_crash(scale.clone()))));
    }
    if wanted("aws") {
        tasks.push(("aws", tokio::spawn(plane_aws(scale.clone()))));
    }
    if wanted("load") {
        tasks.push(("load", tokio::spawn(plane_load(scale.clone()))));
    }
    let mut rows = Vec::new();
    let mut details = Vec::new();
    let mut secrets = SecretScan::default();
    let mut scrapes = 0;
    let mut samples = 0;
    let mut broken = Vec::new();
    for (name, task) in tasks {
        match task.await {
            Ok(Ok(report)) => {
                rows.extend(report.rows);
                details.extend(report.details);
                secrets.hits.extend(report.secrets.hits);
                for (k, v) in report.secrets.scanned {
                    *secrets.scanned.entry(k).or_default() += v;
                }
                scrapes += report.metrics_scrapes;
                samples += report.samples;
            }
            Ok(Err(e)) => broken.push(format!("plane {name}: {e:#}")),
            Err(e) => broken.push(format!("plane {name} panicked: {e}")),
        }
    }
    let elapsed = started.elapsed();
    let mut preamble = vec![
        format!(
            "Scale: {}; wall time {:.0} s on {} cores; 3 planes side by side, each a real kube-apiserver + etcd, the emulator and the operator binary.",
            if scale.full {
                "full (`AGENTCORE_FAULTS_SCALE=full`)"
            } else {
                "reduced (the default; `AGENTCORE_FAULTS_SCALE=full` for the full run)"
            },
            elapsed.as_secs_f64(),
            std::thread::available_parallelism().map_or(0, std::num::NonZero::get),
        ),
        String::new(),
    ];
    preamble.push(format!(
        "I1 and I3 sampled {samples} times during the run (every {} ms per plane), I2 and orphans checked over every job each emulator ever created, I5 and I6 over quiet windows of {} s.",
        SAMPLE.as_millis(),
        scale.quiet.as_secs()
    ));
    preamble.push(String::new());
    let mut scanned = String::new();
    for (source, bytes) in &secrets.scanned {
        let _ = write!(scanned, "{source} {} KiB; ", bytes / 1024);
    }
    preamble.push(format!(
        "Secret scan (fake `AWS_SECRET_ACCESS_KEY` and `AWS_ACCESS_KEY_ID` given to every operator; the `aws` plane at `RUST_LOG=debug`, the unreachable-endpoint operator at `RUST_LOG=trace`, the others at `info,agentcore_operator=debug`): {scanned}{scrapes} /metrics scrapes; **{} hit(s)**.",
        secrets.hits.len()
    ));
    for hit in &secrets.hits {
        details.push(format!("- secret: {hit}"));
    }
    for b in &broken {
        details.push(format!("- {b}"));
    }
    let summary = render("Fault suite summary", &preamble, &rows, &details);
    println!("{summary}");
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map_or_else(|| repo_path("target"), std::path::PathBuf::from);
    let path = target.join("reliability-summary.md");
    std::fs::create_dir_all(&target)?;
    std::fs::write(&path, &summary)?;
    println!("summary written to {}", path.display());

    ensure!(broken.is_empty(), "planes failed: {broken:?}");
    ensure!(
        secrets.hits.is_empty(),
        "secrets leaked: {:?}",
        secrets.hits
    );
    let dirty: Vec<_> = rows
        .iter()
        .filter(|r| !r.clean())
        .map(|r| r.scenario.clone())
        .collect();
    ensure!(
        dirty.is_empty(),
        "scenarios with findings: {dirty:?}; see {}",
        path.display()
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The checker itself: it must be able to fail.

fn job(id: &str, token: Option<&str>, status: &str) -> JobInfo {
    JobInfo {
        id: id.to_owned(),
        arn: format!("arn:aws:bedrock-agentcore:us-west-2:123456789012:evaluation/{id}"),
        name: id.replace('-', "_"),
        region: "us-west-2".to_owned(),
        client_token: token.map(ToOwned::to_owned),
        status: status.to_owned(),
        outcome: agentcore_emulator::Outcome::Completed,
        tags: BTreeMap::new(),
        created_at: "2026-01-01T00:00:00Z".to_owned(),
        stop_calls: 0,
        delete_calls: 0,
        deleted_at: None,
    }
}

fn object(uid: &str, finalizer: bool, extra: Value) -> Value {
    let mut obj = json!({
        "metadata": {"namespace": "ns", "name": format!("obj-{uid}"), "uid": uid,
                     "finalizers": if finalizer { json!([FINALIZER]) } else { json!([]) }},
        "spec": {},
    });
    if let (Some(o), Value::Object(extra)) = (obj.as_object_mut(), extra) {
        for (k, v) in extra {
            o.insert(k, v);
        }
    }
    obj
}

#[test]
fn checker_accepts_a_healthy_state() {
    let mut ledger = support::invariants::Ledger::default();
    let jobs = vec![job(
        "a-0123456789",
        Some("agentcore-operator-u1"),
        "IN_PROGRESS",
    )];
    ledger.sample(&jobs, &[object("u1", true, json!({}))], &jobs);
    let tally = ledger.final_tally(&jobs, &[object("u1", true, json!({}))]);
    assert!(ledger.violations().is_empty(), "{:?}", ledger.violations());
    assert_eq!(tally["ns"].orphans, 0);
}

#[test]
fn checker_flags_a_finalizer_released_before_the_job_is_gone() {
    let mut ledger = support::invariants::Ledger::default();
    let jobs = vec![job(
        "a-0123456789",
        Some("agentcore-operator-u1"),
        "DELETING",
    )];
    ledger.sample(&jobs, &[object("u1", true, json!({}))], &jobs);
    ledger.sample(&jobs, &[], &jobs);
    assert_eq!(ledger.violations().len(), 1);
    assert_eq!(ledger.violations()[0].invariant, Invariant::I3);
    let tally = ledger.final_tally(&jobs, &[]);
    assert_eq!(tally["ns"].orphans, 1);
}

#[test]
fn checker_flags_a_live_job_without_finalizer_or_object() {
    let mut ledger = support::invariants::Ledger::default();
    let jobs = vec![
        job("a-0123456789", Some("agentcore-operator-u1"), "PENDING"),
        job("b-0123456789", Some("agentcore-operator-u9"), "PENDING"),
    ];
    ledger.sample(&jobs, &[object("u1", false, json!({}))], &jobs);
    let kinds: Vec<_> = ledger.violations().iter().map(|v| v.invariant).collect();
    assert_eq!(kinds, vec![Invariant::I1, Invariant::I1]);
}

#[test]
fn checker_ignores_jobs_that_appeared_or_vanished_between_the_two_job_lists() {
    let mut ledger = support::invariants::Ledger::default();
    let before = vec![job(
        "a-0123456789",
        Some("agentcore-operator-u1"),
        "DELETING",
    )];
    let after = vec![job("a-0123456789", Some("agentcore-operator-u1"), "GONE")];
    ledger.sample(&[], &[object("u1", true, json!({}))], &[]);
    ledger.sample(&before, &[], &after);
    assert!(ledger.violations().is_empty(), "{:?}", ledger.violations());
}

#[test]
fn checker_flags_two_jobs_for_one_object() {
    let mut ledger = support::invariants::Ledger::default();
    let obj = object(
        "u1",
        true,
        json!({"status": {"batchEvaluationId": "b-0123456789"}}),
    );
    let jobs = vec![
        job("a-0123456789", Some("agentcore-operator-u1"), "GONE"),
        job("b-0123456789", None, "COMPLETED"),
    ];
    let tally = ledger.final_tally(&jobs, &[obj]);
    assert_eq!(tally["ns"].duplicates, 1);
    assert_eq!(ledger.violations()[0].invariant, Invariant::I2);
}

#[test]
fn checker_lets_retained_and_force_released_jobs_outlive_their_objects() {
    let mut ledger = support::invariants::Ledger::default();
    let retained = object("u1", true, json!({"spec": {"deletionPolicy": "Retain"}}));
    let mut forced = object("u2", true, json!({}));
    forced["metadata"]["annotations"] = json!({"evals.agentcore.dev/force-release": "true"});
    let jobs = vec![
        job("a-0123456789", Some("agentcore-operator-u1"), "COMPLETED"),
        job("b-0123456789", Some("agentcore-operator-u2"), "IN_PROGRESS"),
        job("c-0123456789", None, "IN_PROGRESS"), // started by someone else
    ];
    ledger.sample(&jobs, &[retained, forced], &jobs);
    ledger.sample(&jobs, &[], &jobs);
    let tally = ledger.final_tally(&jobs, &[]);
    assert!(ledger.violations().is_empty(), "{:?}", ledger.violations());
    assert_eq!(tally["ns"].left_by_policy, 2);
    assert_eq!(tally["ns"].orphans, 0);
}

#[test]
fn peaks_count_aws_steps_per_object_and_second() {
    let line = |t: &str, step: &str, name: &str| {
        format!(
            r#"{{"timestamp":"{t}","level":"DEBUG","message":"decided","step":"{step}","observation":"None","target":"agentcore_operator::reconciler","span":{{"id":"x","name":"{name}","namespace":"ns","name":"reconcile"}}}}"#
        )
    };
    let log = [
        line("2026-01-01T00:00:00.000Z", "Get { id: \\\"x\\\" }", "a"),
        line("2026-01-01T00:00:00.400Z", "Wait(JobRunning)", "a"),
        line("2026-01-01T00:00:00.500Z", "Delete { id: \\\"x\\\" }", "a"),
        line("2026-01-01T00:00:00.900Z", "Start", "a"),
        line("2026-01-01T00:00:01.600Z", "Get { id: \\\"x\\\" }", "a"),
        line("2026-01-01T00:00:00.100Z", "Get { id: \\\"x\\\" }", "b"),
    ]
    .join("\n");
    assert_eq!(peak_ops(&log).get("ns"), Some(&3));
    assert_eq!(decided_steps(&log).len(), 6);
}
