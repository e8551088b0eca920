//! Prints how long a real node takes to start beside a fresh control plane (Ready), what its
//! parts cost in memory, and how long teardown takes; then checks that teardown left nothing
//! (processes, the bridge, the kubelet's iptables chains).
//!
//! `cargo run -p agentcore-testenv --example node_timings -- [runs]` as root (default 1 run).
//! The first run on a machine also installs the Debian packages and builds the node binaries
//! and the pause image (minutes); later runs are warm.

use std::time::Instant;

use agentcore_testenv::{BRIDGE, ControlPlane, ControlPlaneOptions, Node, processes_mentioning};
use anyhow::ensure;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let runs: usize = std::env::args()
        .nth(1)
        .map(|n| n.parse())
        .transpose()?
        .unwrap_or(1);
    for run in 1..=runs {
        let started = Instant::now();
        let plane =
            ControlPlane::start(Node::control_plane_options(ControlPlaneOptions::default())?)
                .await?;
        let plane_ready = started.elapsed();
        let node = Node::start(&plane).await?;
        let node_ready = started.elapsed();
        let memory = node.memory_kib();
        println!(
            "{}",
            plane.kubectl_ok(["get", "nodes", "-o", "wide"]).await?
        );
        let dir = node.dir().to_owned();
        let stopped = Instant::now();
        node.stop().await?;
        let stop = stopped.elapsed();
        plane.stop().await?;
        println!(
            "run {run}: control plane {:.1}s, node Ready {:.1}s after start, node parts {} MiB RSS, node teardown {:.1}s",
            plane_ready.as_secs_f64(),
            node_ready.as_secs_f64(),
            memory / 1024,
            stop.as_secs_f64()
        );
        let left = processes_mentioning(&dir);
        ensure!(left.is_empty(), "processes left: {left:?}");
        let links = std::process::Command::new("ip")
            .args(["link", "show", BRIDGE])
            .output()?;
        ensure!(!links.status.success(), "the bridge {BRIDGE} is left");
        let rules = std::process::Command::new("iptables-save").output()?;
        let rules = String::from_utf8_lossy(&rules.stdout);
        ensure!(
            !rules.contains("KUBE-"),
            "iptables chains left:\n{}",
            rules
                .lines()
                .filter(|l| l.contains("KUBE-"))
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
    Ok(())
}
