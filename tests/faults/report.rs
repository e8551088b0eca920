//! The suite's summary: the planes' rows and findings gathered, printed, written to
//! `target/reliability-summary.md`, and the verdict.

use std::{fmt::Write as _, time::Duration};

use anyhow::ensure;

use crate::{
    SAMPLE, Scale,
    plane::PlaneReport,
    secrets::SecretScan,
    support::{
        repo_path,
        report::{Row, render},
    },
};

#[derive(Default)]
pub struct Suite {
    rows: Vec<Row>,
    details: Vec<String>,
    secrets: SecretScan,
    scrapes: u64,
    samples: u64,
    /// Planes that failed to run at all.
    pub broken: Vec<String>,
}

impl Suite {
    pub fn add(&mut self, plane: PlaneReport) {
        self.rows.extend(plane.rows);
        self.details.extend(plane.details);
        self.secrets.merge(plane.secrets);
        self.scrapes += plane.metrics_scrapes;
        self.samples += plane.samples;
    }

    fn preamble(&self, scale: &Scale, elapsed: Duration) -> Vec<String> {
        let mut scanned = String::new();
        for (source, bytes) in &self.secrets.scanned {
            let _ = write!(scanned, "{source} {} KiB; ", bytes / 1024);
        }
        vec![
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
            format!(
                "I1 and I3 sampled {} times during the run (every {} ms per plane), I2 and orphans checked over every job each emulator ever created, I5 and I6 over quiet windows of {} s. Peak AWS operations per object and second as the emulator counted them per object (SDK retries excluded).",
                self.samples,
                SAMPLE.as_millis(),
                scale.quiet.as_secs()
            ),
            String::new(),
            format!(
                "Secret scan (fake `AWS_SECRET_ACCESS_KEY` and `AWS_ACCESS_KEY_ID` given to every operator; the `aws` plane at `RUST_LOG=debug`, the unreachable-endpoint operator at `RUST_LOG=trace`, the others at `info,agentcore_operator=debug`): {scanned}{} /metrics scrapes; **{} hit(s)**.",
                self.scrapes,
                self.secrets.hits.len()
            ),
        ]
    }

    /// Prints and writes the summary; fails on broken planes, leaked secrets and rows with
    /// findings.
    pub fn conclude(mut self, scale: &Scale, elapsed: Duration) -> anyhow::Result<()> {
        let preamble = self.preamble(scale, elapsed);
        for hit in &self.secrets.hits {
            self.details.push(format!("- secret: {hit}"));
        }
        for b in &self.broken {
            self.details.push(format!("- {b}"));
        }
        let summary = render("Fault suite summary", &preamble, &self.rows, &self.details);
        println!("{summary}");
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .map_or_else(|| repo_path("target"), std::path::PathBuf::from);
        let path = target.join("reliability-summary.md");
        std::fs::create_dir_all(&target)?;
        std::fs::write(&path, &summary)?;
        println!("summary written to {}", path.display());

        ensure!(self.broken.is_empty(), "planes failed: {:?}", self.broken);
        ensure!(
            self.secrets.hits.is_empty(),
            "secrets leaked: {:?}",
            self.secrets.hits
        );
        let dirty: Vec<_> = self
            .rows
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
}
