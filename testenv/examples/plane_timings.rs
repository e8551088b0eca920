//! Prints how long the control plane takes to start, restart its apiserver and stop.
//!
//! `cargo run -p agentcore-testenv --example plane_timings -- [runs]` (default 3 runs, one at a
//! time). The binaries must be built already (`bash hack/build-control-plane.sh`).

use std::time::{Duration, Instant};

use agentcore_testenv::{ControlPlane, ControlPlaneOptions, Tools};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let runs: usize = std::env::args()
        .nth(1)
        .map(|n| n.parse())
        .transpose()?
        .unwrap_or(3);
    let tools = Tools::ensure().await?;
    let (mut starts, mut restarts, mut stops) = (Vec::new(), Vec::new(), Vec::new());
    for run in 1..=runs {
        let started = Instant::now();
        let mut plane = ControlPlane::start(ControlPlaneOptions {
            tools: Some(tools.clone()),
            ..ControlPlaneOptions::default()
        })
        .await?;
        starts.push(started.elapsed());

        let restarted = Instant::now();
        plane.restart_apiserver().await?;
        restarts.push(restarted.elapsed());

        let stopped = Instant::now();
        plane.stop().await?;
        stops.push(stopped.elapsed());
        println!(
            "run {run}: start {:.2}s, apiserver restart {:.2}s, stop {:.2}s",
            starts[run - 1].as_secs_f64(),
            restarts[run - 1].as_secs_f64(),
            stops[run - 1].as_secs_f64()
        );
    }
    for (name, samples) in [("start", &starts), ("restart", &restarts), ("stop", &stops)] {
        println!("{name:>8}: {}", summary(samples));
    }
    Ok(())
}

fn summary(samples: &[Duration]) -> String {
    let mut secs: Vec<f64> = samples.iter().map(Duration::as_secs_f64).collect();
    secs.sort_by(f64::total_cmp);
    let mean = secs.iter().sum::<f64>() / secs.len().max(1) as f64;
    format!(
        "min {:.2}s  median {:.2}s  max {:.2}s  mean {:.2}s  (n={})",
        secs.first().copied().unwrap_or_default(),
        secs.get(secs.len() / 2).copied().unwrap_or_default(),
        secs.last().copied().unwrap_or_default(),
        mean,
        secs.len()
    )
}
