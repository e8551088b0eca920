//! Fault suite (issue 6): the operator binary on real kube-apiservers with the emulator, under
//! crashes at every lifecycle step, AWS faults, API server restarts, concurrent writers, malformed
//! responses, bad input and load. After each scenario the invariants I1–I6 of design §3 are
//! checked from the emulator's job list and the API server's objects (I1/I3 are also sampled
//! every 500 ms during the run), a fake AWS secret is searched for in everything captured, and a
//! summary table is printed and written to `target/reliability-summary.md`.
//!
//! Three planes run side by side, each with its own emulator (faults are global per emulator):
//! - `crash`: SIGKILL at each lifecycle step ([`kill_points`]), two kube-apiserver restarts
//!   ([`apiserver`]), quiet windows before and after an operator restart ([`quiet`]), and an
//!   operator whose AWS endpoint does not answer ([`unreachable`]);
//! - `aws`: a fault-free baseline, then 30% throttling, 10% HTTP 500, latency beyond the
//!   operation timeout, dropped connections and a period of 403, with `RUST_LOG=debug`
//!   ([`aws_faults`]);
//! - `load`: bad input ([`bad_input`]), malformed responses ([`malformed`]), a concurrent writer
//!   ([`writers`]), and many objects at once ([`scale`]).
//!
//! Size: `AGENTCORE_FAULTS_SCALE=full` for the figures in docs/reliability.md; the default is a
//! reduced run for CI. `AGENTCORE_FAULTS_ONLY=crash,aws,load` picks planes while developing.

#[path = "../support/mod.rs"]
mod support;

mod apiserver;
mod aws_faults;
mod bad_input;
mod budget;
mod checker;
mod kill_points;
mod lifecycle;
mod malformed;
mod peaks;
mod plane;
mod quiet;
mod report;
mod scale;
mod secrets;
mod unreachable;
mod writers;

use std::time::Duration;

use agentcore_emulator::RunningEmulator;

use crate::{
    plane::{Plane, PlaneReport},
    support::{cluster::Cluster, invariants::Monitor},
};

/// How often the invariants are sampled and objects listed.
const SAMPLE: Duration = Duration::from_millis(500);
/// Generous limit for anything to converge on a busy 2-core machine.
const LONG: Duration = Duration::from_secs(300);
/// How long kubectl calls are retried (the API server may be restarting).
const PATIENCE: Duration = Duration::from_secs(90);

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
    /// The main operator's /metrics, /healthz and /readyz port.
    metrics_port: u16,
}

/// Plane `crash`: SIGKILL at every lifecycle step, kube-apiserver restarts, quiet windows, an
/// unreachable AWS endpoint.
async fn plane_crash(scale: Scale) -> anyhow::Result<PlaneReport> {
    let mut plane = Plane::start("info,agentcore_operator=debug", 1).await?;
    let Plane {
        env,
        cluster,
        monitor,
        scraper,
    } = &mut plane;
    let (control, emulator, operator) = (&mut env.plane, &env.emulator, &mut env.operator);
    let ctx = Ctx {
        cluster,
        emulator,
        monitor,
        scale: &scale,
        metrics_port: scraper.port,
    };
    let work = async {
        let mut rows = Vec::new();
        for kp in &kill_points::KILL_POINTS {
            rows.push(kill_points::run(&ctx, operator, kp).await);
        }
        rows.push(apiserver::restarts(&ctx, control).await);
        rows.push(quiet::window(&ctx, quiet::CRASH, None).await);
        rows.push(quiet::window(&ctx, quiet::CRASH_RESTART, Some(&mut *operator)).await);
        plane::clear(&ctx, &mut rows).await;
        let unreachable = unreachable::endpoint(&ctx, control, operator).await;
        rows.push(unreachable.row);
        monitor.stop();
        (rows, unreachable.logs, unreachable.scan)
    };
    let ((), (), (rows, logs, scan)) = tokio::join!(
        monitor.run(cluster, emulator),
        scraper.run(monitor.stopped()),
        work
    );
    let mut report = plane.finish(rows, logs).await;
    report.secrets.merge(scan);
    Ok(report)
}

/// Plane `aws`: AWS faults during lifecycles, with RUST_LOG=debug.
async fn plane_aws(scale: Scale) -> anyhow::Result<PlaneReport> {
    let plane = Plane::start("debug", 2).await?;
    let ctx = plane.ctx(&scale);
    let work = async {
        let mut rows = Vec::new();
        for fault in &aws_faults::AWS_FAULTS {
            rows.push(aws_faults::run(&ctx, fault).await);
        }
        rows.push(quiet::window(&ctx, quiet::AWS, None).await);
        plane::wind_down(&ctx, rows).await
    };
    let rows = plane.run_alongside(work).await;
    Ok(plane.finish(rows, Vec::new()).await)
}

/// Plane `load`: bad input, malformed responses, a concurrent writer, many objects.
async fn plane_load(scale: Scale) -> anyhow::Result<PlaneReport> {
    let plane = Plane::start("info,agentcore_operator=debug", 3).await?;
    let ctx = plane.ctx(&scale);
    let work = async {
        let mut rows = vec![bad_input::run(&ctx).await];
        for kind in malformed::KINDS {
            rows.push(malformed::run(&ctx, &plane.env.operator, kind).await);
        }
        rows.push(writers::run(&ctx).await);
        rows.extend(scale::mass(&ctx).await);
        plane::wind_down(&ctx, rows).await
    };
    let rows = plane.run_alongside(work).await;
    Ok(plane.finish(rows, Vec::new()).await)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fault_suite() -> anyhow::Result<()> {
    let scale = Scale::from_env();
    let only = std::env::var("AGENTCORE_FAULTS_ONLY").unwrap_or_default();
    let wanted = |plane: &str| only.is_empty() || only.split(',').any(|p| p.trim() == plane);
    let started = std::time::Instant::now();
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
    let mut suite = report::Suite::default();
    for (name, task) in tasks {
        match task.await {
            Ok(Ok(plane)) => suite.add(plane),
            Ok(Err(e)) => suite.broken.push(format!("plane {name}: {e:#}")),
            Err(e) => suite.broken.push(format!("plane {name} panicked: {e}")),
        }
    }
    suite.conclude(&scale, started.elapsed())
}
