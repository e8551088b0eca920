//! One plane: a control plane, an emulator and the operator, with the invariant monitor and the
//! /metrics scraper running alongside its scenarios; and what the plane hands back at the end.

use std::{collections::BTreeSet, future::Future};

use crate::{
    Ctx, LONG, PATIENCE, SAMPLE, Scale, peaks,
    secrets::{self, Scraper, SecretScan},
    support::{Env, EnvOptions, cluster::Cluster, free_port, invariants::Monitor, report::Row},
};

pub struct Plane {
    pub env: Env,
    pub cluster: Cluster,
    pub monitor: Monitor,
    pub scraper: Scraper,
}

/// What one plane hands back to the summary.
#[derive(Default)]
pub struct PlaneReport {
    pub rows: Vec<Row>,
    pub samples: u64,
    pub details: Vec<String>,
    pub secrets: SecretScan,
    pub metrics_scrapes: u64,
}

impl Plane {
    pub async fn start(rust_log: &str, seed: u64) -> anyhow::Result<Self> {
        let port = free_port()?;
        let mut options = EnvOptions {
            operator_args: vec!["--metrics-addr".to_owned(), format!("127.0.0.1:{port}")],
            operator_env: secrets::operator_env(rust_log),
            ..EnvOptions::default()
        };
        options.emulator.seed = Some(seed);
        let env = Env::start(options).await?;
        let cluster = Cluster::connect(&env.plane).await?;
        Ok(Self {
            env,
            cluster,
            monitor: Monitor::with_needles(SAMPLE, &secrets::NEEDLES),
            scraper: Scraper::new(port),
        })
    }

    pub fn ctx<'a>(&'a self, scale: &'a Scale) -> Ctx<'a> {
        Ctx {
            cluster: &self.cluster,
            emulator: &self.env.emulator,
            monitor: &self.monitor,
            scale,
            metrics_port: self.scraper.port,
        }
    }

    /// Runs `work` with the monitor and the scraper alongside; `work` stops the monitor.
    pub async fn run_alongside<T>(&self, work: impl Future<Output = T>) -> T {
        let ((), (), out) = tokio::join!(
            self.monitor.run(&self.cluster, &self.env.emulator),
            self.scraper.run(self.monitor.stopped()),
            work
        );
        out
    }

    /// The end of a plane: final invariant tally per namespace, per-object peaks from the
    /// emulator, and the secret scan over everything captured.
    pub async fn finish(
        &self,
        mut rows: Vec<Row>,
        extra_logs: Vec<(String, String)>,
    ) -> PlaneReport {
        let mut report = PlaneReport::default();
        self.tally(&mut rows).await;
        for v in self.monitor.ledger().violations() {
            report.details.push(format!(
                "- violation {:?} in {}: {}",
                v.invariant, v.namespace, v.detail
            ));
        }
        report.samples = self.monitor.ledger().samples;
        report.secrets = self.scan(&extra_logs).await;
        report.metrics_scrapes = self.scraper.scrapes();
        report.rows = rows;
        report
    }

    /// Adds each namespace's invariant figures and peak to the rows that own it; namespaces no
    /// row owns get a row of their own when they have findings.
    async fn tally(&self, rows: &mut Vec<Row>) {
        let objects = self.cluster.list_bevals().await.unwrap_or_default();
        let jobs = self.env.emulator.jobs();
        let (tallies, peaks) = {
            let mut ledger = self.monitor.ledger();
            let tallies = ledger.final_tally(&jobs, &objects);
            (
                tallies,
                peaks::by_namespace(&self.env.emulator.object_ops(), &ledger),
            )
        };
        let mut attributed = BTreeSet::new();
        for row in rows.iter_mut() {
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
                attributed.insert(ns);
            }
            peaks::check_row(row, &peaks);
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
    }

    /// The secret scan: operator logs, events, objects (every list of the run), metrics.
    async fn scan(&self, extra_logs: &[(String, String)]) -> SecretScan {
        let mut scan = SecretScan::default();
        let (scanned, hits) = self.monitor.scan_results();
        scan.scanned.insert(
            "objects, every list of the run".to_owned(),
            usize::try_from(scanned).unwrap_or(usize::MAX),
        );
        scan.hits.extend(hits);
        self.scraper.once().await;
        let log = self.env.operator.log_contents().unwrap_or_default();
        scan.scan("operator log", &log);
        for (source, text) in extra_logs {
            scan.scan(source, text);
        }
        for (source, args) in [
            ("events", ["get", "events", "-A", "-o", "json"]),
            ("objects at the end", ["get", "bevals", "-A", "-o", "json"]),
        ] {
            match self.cluster.kubectl_ok(&args).await {
                Ok(text) => scan.scan(source, &text),
                Err(e) => scan.hits.push(format!(
                    "could not read {source} for the secret scan: {e:#}"
                )),
            }
        }
        scan.merge(self.scraper.take_scan());
        scan
    }
}

/// Deletes every object left; those that stay are charged to the rows of their namespaces.
pub async fn clear(ctx: &Ctx<'_>, rows: &mut [Row]) {
    let stuck = teardown(ctx).await;
    charge_stuck(rows, &stuck);
}

/// The end of a plane's scenarios: [`clear`], and the monitor stopped.
pub async fn wind_down(ctx: &Ctx<'_>, mut rows: Vec<Row>) -> Vec<Row> {
    clear(ctx, &mut rows).await;
    ctx.monitor.stop();
    rows
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

/// Charges objects left at teardown to the rows of their namespaces.
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
