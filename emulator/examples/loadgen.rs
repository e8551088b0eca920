//! Load generator: starts the emulator in-process and drives it with concurrent HTTP clients
//! doing the operator's call mix (Start, Get, Stop, Get until stopped, Delete, and a List
//! every few cycles) for a bounded time, then prints throughput and latency percentiles.
//!
//! ```text
//! cargo run --release -p agentcore-emulator --example loadgen -- --concurrency 64 --duration 10s
//! ```
//! Client and server share the machine, so the figure is a lower bound for the emulator.

use std::{
    collections::BTreeMap,
    time::{Duration, Instant},
};

use agentcore_emulator::{EmulatorConfig, Operation};
use anyhow::{Context, bail};
use clap::Parser;
use reqwest::{Client, Method, StatusCode};
use serde_json::{Value, json};

#[derive(Debug, Parser)]
struct Args {
    /// Concurrent clients.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// How long to run.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    duration: Duration,
    /// Issue a ListBatchEvaluations every this many job cycles per client.
    #[arg(long, default_value_t = 5)]
    list_every: u64,
}

const SIGV4: &str = "AWS4-HMAC-SHA256 Credential=AKIDLOAD/20260102/us-west-2/bedrock-agentcore/aws4_request, SignedHeaders=host, Signature=0";

#[derive(Default)]
struct Samples {
    /// Latency in microseconds per operation.
    latencies: BTreeMap<Operation, Vec<u32>>,
    /// Responses other than the expected ones (transport errors, 5xx, unexpected 4xx).
    unexpected: u64,
}

struct Worker {
    client: Client,
    base: String,
    samples: Samples,
}

impl Worker {
    async fn call(
        &mut self,
        op: Operation,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Option<(StatusCode, Value)> {
        let mut request = self
            .client
            .request(method, format!("{}{path}", self.base))
            .header("authorization", SIGV4);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let began = Instant::now();
        let result = async {
            let response = request.send().await?;
            let status = response.status();
            let body: Value = response.json().await?;
            Ok::<_, reqwest::Error>((status, body))
        }
        .await;
        let micros = u32::try_from(began.elapsed().as_micros()).unwrap_or(u32::MAX);
        self.samples.latencies.entry(op).or_default().push(micros);
        match result {
            Ok((status, body)) => Some((status, body)),
            Err(_) => {
                self.samples.unexpected += 1;
                None
            }
        }
    }

    /// One job's life: start, look, stop, wait for STOPPED, delete.
    async fn cycle(&mut self, worker: usize, n: u64) {
        let name = format!("load_{worker}_{n}");
        let body = json!({
            "batchEvaluationName": name,
            "evaluators": [{ "evaluatorId": "Builtin.Helpfulness" }],
            "dataSourceConfig": { "cloudWatchLogs": { "serviceNames": ["svc"] } }
        });
        let Some((StatusCode::ACCEPTED, started)) = self
            .call(
                Operation::StartBatchEvaluation,
                Method::POST,
                "/evaluations/batch-evaluate",
                Some(body),
            )
            .await
        else {
            self.samples.unexpected += 1;
            return;
        };
        let Some(id) = started["batchEvaluationId"].as_str().map(str::to_owned) else {
            return;
        };
        let job = format!("/evaluations/batch-evaluate/{id}");
        self.call(Operation::GetBatchEvaluation, Method::GET, &job, None)
            .await;
        match self
            .call(
                Operation::StopBatchEvaluation,
                Method::POST,
                &format!("{job}/stop"),
                None,
            )
            .await
        {
            // A job that already finished cannot be stopped; that is part of the mix.
            Some((StatusCode::ACCEPTED | StatusCode::CONFLICT, _)) => {}
            _ => self.samples.unexpected += 1,
        }
        loop {
            match self
                .call(Operation::GetBatchEvaluation, Method::GET, &job, None)
                .await
            {
                Some((StatusCode::OK, got))
                    if got["status"] == "STOPPING"
                        || got["status"] == "PENDING"
                        || got["status"] == "IN_PROGRESS" =>
                {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                Some((StatusCode::OK, _)) => break,
                _ => {
                    self.samples.unexpected += 1;
                    return;
                }
            }
        }
        if !matches!(
            self.call(Operation::DeleteBatchEvaluation, Method::DELETE, &job, None)
                .await,
            Some((StatusCode::ACCEPTED, _))
        ) {
            self.samples.unexpected += 1;
        }
    }
}

fn percentile(sorted: &[u32], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    Duration::from_micros(u64::from(sorted[rank.min(sorted.len() - 1)]))
}

fn row(label: &str, latencies: &mut [u32], elapsed: Duration) -> String {
    latencies.sort_unstable();
    format!(
        "{label:<24} {:>9} {:>10.1} {:>10.2?} {:>10.2?} {:>10.2?}",
        latencies.len(),
        latencies.len() as f64 / elapsed.as_secs_f64(),
        percentile(latencies, 0.50),
        percentile(latencies, 0.99),
        percentile(latencies, 1.0),
    )
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if args.concurrency == 0 {
        bail!("--concurrency must be at least 1");
    }
    let emulator = agentcore_emulator::start(EmulatorConfig {
        job_duration: Duration::from_millis(100),
        stop_duration: Duration::from_millis(20),
        delete_duration: Duration::from_millis(20),
        seed: Some(1),
        ..EmulatorConfig::default()
    })
    .await
    .context("starting the emulator")?;
    let client = Client::builder()
        .pool_max_idle_per_host(args.concurrency)
        .build()
        .context("building the HTTP client")?;

    println!(
        "loadgen: {} clients for {:?} against {} (in-process, {} cores)",
        args.concurrency,
        args.duration,
        emulator.endpoint_url(),
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    let began = Instant::now();
    let deadline = began + args.duration;
    let mut tasks = Vec::with_capacity(args.concurrency);
    for worker in 0..args.concurrency {
        let mut w = Worker {
            client: client.clone(),
            base: emulator.endpoint_url(),
            samples: Samples::default(),
        };
        let list_every = args.list_every.max(1);
        tasks.push(tokio::spawn(async move {
            let mut n = 0;
            while Instant::now() < deadline {
                w.cycle(worker, n).await;
                n += 1;
                if n % list_every == 0 {
                    w.call(
                        Operation::ListBatchEvaluations,
                        Method::GET,
                        "/evaluations/batch-evaluate?maxResults=50",
                        None,
                    )
                    .await;
                }
            }
            w.samples
        }));
    }
    let mut merged = Samples::default();
    for task in tasks {
        let samples = task.await.context("worker panicked")?;
        merged.unexpected += samples.unexpected;
        for (op, mut l) in samples.latencies {
            merged.latencies.entry(op).or_default().append(&mut l);
        }
    }
    let elapsed = began.elapsed();

    println!(
        "{:<24} {:>9} {:>10} {:>10} {:>10} {:>10}",
        "operation", "requests", "req/s", "p50", "p99", "max"
    );
    let mut all = Vec::new();
    for (op, latencies) in &mut merged.latencies {
        println!("{}", row(op.as_str(), latencies, elapsed));
        all.extend_from_slice(latencies);
    }
    println!("{}", row("all", &mut all, elapsed));
    let stats = emulator.stats();
    println!(
        "jobs created: {}, unexpected responses: {}, emulator counted {} requests",
        emulator.jobs().len(),
        merged.unexpected,
        stats.grand_total()
    );
    emulator.shutdown().await?;
    if merged.unexpected > 0 {
        bail!("{} unexpected responses", merged.unexpected);
    }
    Ok(())
}
