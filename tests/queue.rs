//! The start queue on the real plane: objects whose Start meets the account's AWS quota (the
//! emulator's `max_active_jobs`) or the operator's `--max-active-jobs` wait their turn in
//! creation order, never overfill the quota, survive an operator kill without losing order or
//! starting anything twice, and leave the queue at once when deleted. Each scenario prints its
//! timeline: start order, active jobs over time, Start calls per object.

mod support;

use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex, PoisonError},
    time::{Duration, Instant},
};

use agentcore_emulator::{EmulatorConfig, Operation, RunningEmulator};
use anyhow::{Context as _, ensure};
use serde_json::Value;
use support::{
    Env, EnvOptions,
    faults::runs,
    manifest,
    object::{client_token, cond_message, cond_reason, ready, status_str, uid},
};

const ACCOUNT: &str = "123456789012";
const REGION: &str = "us-west-2";
const JOB: Duration = Duration::from_secs(2);
const LONG: Duration = Duration::from_secs(120);

fn names(prefix: &str, count: usize) -> Vec<String> {
    (1..=count).map(|i| format!("{prefix}{i:02}")).collect()
}

/// One multi-document manifest, so that `kubectl apply` creates the objects at once, in order.
fn all_at_once(ns: &str, names: &[String]) -> String {
    names
        .iter()
        .map(|name| manifest(ns, name, "", &[]))
        .collect::<Vec<_>>()
        .join("---\n")
}

async fn env(max_active_in_account: Option<u32>, operator_args: &[&str]) -> anyhow::Result<Env> {
    let defaults = EnvOptions::default();
    Env::start(EnvOptions {
        emulator: EmulatorConfig {
            job_duration: JOB,
            max_active_jobs: max_active_in_account,
            ..defaults.emulator
        },
        operator_args: operator_args.iter().map(ToString::to_string).collect(),
        ..defaults
    })
    .await
}

/// Samples the emulator's active jobs every 100 ms; the changes form the timeline.
struct ActiveSampler {
    samples: Arc<Mutex<Vec<(Duration, u64)>>>,
    task: tokio::task::JoinHandle<()>,
}

impl ActiveSampler {
    fn start(emulator: &RunningEmulator, since: Instant) -> Self {
        let samples: Arc<Mutex<Vec<(Duration, u64)>>> = Arc::default();
        let url = format!("{}/_emulator/quota", emulator.endpoint_url());
        let out = samples.clone();
        let task = tokio::spawn(async move {
            let http = reqwest::Client::new();
            loop {
                let Some(active) = active_jobs(&http, &url).await else {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                };
                {
                    let mut samples = out.lock().unwrap_or_else(PoisonError::into_inner);
                    if samples.last().is_none_or(|(_, last)| *last != active) {
                        samples.push((since.elapsed(), active));
                    }
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        });
        Self { samples, task }
    }

    fn finish(self) -> Vec<(Duration, u64)> {
        self.task.abort();
        self.samples
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// The account's active jobs, from the emulator's admin API.
async fn active_jobs(http: &reqwest::Client, url: &str) -> Option<u64> {
    let report: Value = http.get(url).send().await.ok()?.json().await.ok()?;
    report["usage"]
        .as_array()?
        .iter()
        .find(|u| u["account"] == ACCOUNT && u["region"] == REGION)
        .map_or(Some(0), |u| u["active"].as_u64())
}

/// What the emulator saw of each object, in the order the jobs were started.
struct Timeline {
    /// (object, seconds after apply at which its job was created, Start calls).
    starts: Vec<(String, u64)>,
}

impl Timeline {
    async fn of(env: &Env, ns: &str, names: &[String]) -> anyhow::Result<Self> {
        let ops = env.emulator.object_ops();
        let mut by_token = BTreeMap::new();
        for name in names {
            let obj = env.get(ns, name).await?.context("object present")?;
            let starts = ops
                .get(&client_token(&uid(&obj)))
                .map_or(0, |o| o.count(Operation::StartBatchEvaluation));
            by_token.insert(client_token(&uid(&obj)), (name.clone(), starts));
        }
        // The emulator lists jobs oldest first: that is the start order.
        let starts = env
            .emulator
            .jobs()
            .into_iter()
            .filter_map(|job| by_token.get(job.client_token.as_deref()?).cloned())
            .collect();
        Ok(Self { starts })
    }

    fn order(&self) -> Vec<&str> {
        self.starts.iter().map(|(n, _)| n.as_str()).collect()
    }

    fn print(&self, scenario: &str, took: Duration, active: &[(Duration, u64)]) {
        println!("--- {scenario}: all done in {:.1} s", took.as_secs_f64());
        println!("start order (Start calls): {}", {
            let parts: Vec<String> = self
                .starts
                .iter()
                .map(|(n, calls)| format!("{n}({calls})"))
                .collect();
            parts.join(" ")
        });
        let changes: Vec<String> = active
            .iter()
            .map(|(at, n)| format!("{:.1}s:{n}", at.as_secs_f64()))
            .collect();
        println!("active jobs over time: {}", changes.join(" "));
    }
}

async fn wait_all_ready(env: &Env, ns: &str, names: &[String]) -> anyhow::Result<()> {
    for name in names {
        env.wait_for(ns, name, "completed", LONG, ready).await?;
    }
    Ok(())
}

fn queued(obj: &Value) -> bool {
    cond_reason(obj, "Reconciling") == "Queued"
}

/// The emulator's quota is 2; twelve objects arrive at once. Before the first refusal the
/// operator does not know the quota, so the first Starts race; from the first 402 on, the
/// queue starts the rest one at a time in creation order, each when one of the operator's own
/// jobs finishes, and never more than two run; the operator is killed while ten wait.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_aws_quota_queues_twelve_objects_in_creation_order() -> anyhow::Result<()> {
    let ns = "quota";
    let mut env = env(Some(2), &[]).await?;
    env.create_namespace(ns).await?;
    let names = names("q", 12);
    let since = Instant::now();
    let sampler = ActiveSampler::start(&env.emulator, since);
    env.apply(&all_at_once(ns, &names)).await?;

    let last = env.wait_for(ns, "q12", "queued", LONG, queued).await?;
    let message = cond_message(&last, "Reconciling");
    ensure!(
        message.contains("position") && message.contains("quota"),
        "the queued condition tells the place and what it waits for: {message}"
    );
    // The operator dies while ten objects wait: the new one reads the queue from the objects.
    env.operator.kill_hard();
    env.operator.restart().await?;
    wait_all_ready(&env, ns, &names).await?;
    let took = since.elapsed();
    let timeline = Timeline::of(&env, ns, &names).await?;
    timeline.print("quota 2, 12 objects, kill", took, &sampler.finish());
    println!(
        "job duration {:.1} s: {:.1} job durations in all (6 would be perfect packing)",
        JOB.as_secs_f64(),
        took.as_secs_f64() / JOB.as_secs_f64()
    );

    let peak = env.emulator.peak_active_jobs(ACCOUNT, REGION);
    ensure!(peak <= 2, "never more than the quota: peak {peak}");
    ensure!(timeline.starts.len() == 12, "one job per object");
    // Before the first refusal the operator does not know the quota: the first Starts race, and
    // at most two of them win. Every other object went through the queue: creation order.
    let order = timeline.order();
    let queued_order = order.get(2..).unwrap_or_default().to_vec();
    let mut sorted = queued_order.clone();
    sorted.sort_unstable();
    ensure!(
        queued_order == sorted,
        "objects start in creation order once queued: {order:?}"
    );
    // Bounded Starts: the first burst, then one per turn, plus the head's backed-off retries.
    for (name, calls) in &timeline.starts {
        ensure!(*calls <= 4, "{name} sent {calls} Starts");
    }
    let jobs = env.emulator.jobs();
    ensure!(
        jobs.len() == 12,
        "nothing started twice: {} jobs",
        jobs.len()
    );
    Ok(())
}

/// `--max-active-jobs 2` with room in the account: the queue is consulted from the first
/// object on, so the start order is exactly the creation order and the service never refuses.
/// Then the operator is killed while ten objects wait, and a queued object is deleted: the
/// restarted operator rebuilds the order from the objects, starts nothing twice, and the
/// deleted one is released at once with no Start.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_operator_limit_keeps_creation_order_across_a_kill() -> anyhow::Result<()> {
    let ns = "limit";
    let mut env = env(None, &["--max-active-jobs", "2"]).await?;
    env.create_namespace(ns).await?;
    let names = names("l", 10);
    let since = Instant::now();
    let sampler = ActiveSampler::start(&env.emulator, since);
    env.apply(&all_at_once(ns, &names)).await?;

    let waiting = env.wait_for(ns, "l10", "queued", LONG, queued).await?;
    ensure!(
        cond_message(&waiting, "Reconciling").contains("--max-active-jobs=2"),
        "the limit is named: {}",
        cond_message(&waiting, "Reconciling")
    );
    // A queued object deleted: released at once, without a Start.
    let deleted_at = Instant::now();
    env.kubectl(&[
        "delete",
        "beval",
        "-n",
        ns,
        "l09",
        "--wait=true",
        "--timeout=30s",
    ])
    .await?;
    let release = deleted_at.elapsed();

    // Kill the operator while objects wait, then start it again.
    env.wait_for(ns, "l02", "started", LONG, |o| {
        status_str(o, "batchEvaluationId").is_some()
    })
    .await?;
    env.operator.kill_hard();
    env.operator.restart().await?;

    let remaining: Vec<String> = names.iter().filter(|n| *n != "l09").cloned().collect();
    wait_all_ready(&env, ns, &remaining).await?;
    let took = since.elapsed();
    let timeline = Timeline::of(&env, ns, &remaining).await?;
    timeline.print(
        "--max-active-jobs 2, 10 objects, kill",
        took,
        &sampler.finish(),
    );
    println!(
        "queued object deleted and gone in {:.2} s",
        release.as_secs_f64()
    );

    let peak = env.emulator.peak_active_jobs(ACCOUNT, REGION);
    ensure!(peak <= 2, "never more than the limit: peak {peak}");
    let mut expected = remaining.clone();
    expected.sort();
    ensure!(
        timeline.order() == expected,
        "creation order, across the kill: {:?}",
        timeline.order()
    );
    for (name, calls) in &timeline.starts {
        ensure!(*calls == 1, "{name}: exactly one Start, got {calls}");
    }
    ensure!(
        env.calls(Operation::StartBatchEvaluation) == 9,
        "no Start for the deleted object, none twice: {} Starts",
        env.calls(Operation::StartBatchEvaluation)
    );
    ensure!(
        env.emulator.jobs().len() == 9,
        "one job per remaining object"
    );

    // The restarted operator saw objects wait: the wait is measured, the depth exported.
    let metrics = support::metrics::scrape(env.metrics_port).await?;
    let waited = metrics
        .lines()
        .find(|l| l.starts_with("agentcore_operator_start_queue_wait_seconds_count"))
        .and_then(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .context("the queue wait histogram is exported")?;
    ensure!(waited >= 1.0, "objects that waited are measured: {waited}");
    ensure!(
        metrics.contains(
            "agentcore_operator_start_queue_depth{region=\"us-west-2\",account=\"default\"} 0"
        ),
        "the queue is empty at the end, per region"
    );
    Ok(())
}

/// The account's only slot is held by a job started outside the operator: the head of the
/// queue retries with backoff, the rest send nothing, and the queue moves when the slot frees.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_outside_job_holding_the_quota_causes_no_retry_storm() -> anyhow::Result<()> {
    use aws_sdk_bedrockagentcore::types::{CloudWatchLogsSource, DataSourceConfig};
    let ns = "outside";
    let env = env(Some(1), &[]).await?;
    env.create_namespace(ns).await?;
    let (tag, duration) = runs("12s");
    support::sdk_client(&env.emulator.endpoint_url(), "AKIDOUTSIDE")
        .start_batch_evaluation()
        .batch_evaluation_name("outside_job")
        .tags(tag, duration)
        .data_source_config(DataSourceConfig::CloudWatchLogs(
            CloudWatchLogsSource::builder()
                .service_names("someone-else")
                .build()?,
        ))
        .send()
        .await?;
    let names = names("o", 4);
    let since = Instant::now();
    let sampler = ActiveSampler::start(&env.emulator, since);
    env.apply(&all_at_once(ns, &names)).await?;
    wait_all_ready(&env, ns, &names).await?;
    let took = since.elapsed();
    let timeline = Timeline::of(&env, ns, &names).await?;
    timeline.print(
        "quota 1 held by an outside job for 12 s, 4 objects",
        took,
        &sampler.finish(),
    );

    let peak = env.emulator.peak_active_jobs(ACCOUNT, REGION);
    ensure!(peak <= 1, "never more than the quota: peak {peak}");
    let total: u64 = timeline.starts.iter().map(|(_, calls)| calls).sum();
    println!("Start calls in all: {total}");
    // Without the queue every object retries on its own backoff; with it, only the head probes
    // (after 5 s, then 10 s: twice in 12 s), besides each object's first try and one accepted
    // Start each.
    ensure!(
        total <= 4 + 3 + 3,
        "a bounded number of Starts while the quota is held elsewhere: {total}"
    );
    let mut sorted = timeline.order();
    sorted.sort_unstable();
    ensure!(
        timeline.order() == sorted,
        "creation order: {:?}",
        timeline.order()
    );
    Ok(())
}
