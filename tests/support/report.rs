//! The fault suite's summary: one row per scenario, rendered as Markdown.

use std::{fmt::Write as _, time::Duration};

/// Figures of one scenario. Invariant violations, duplicate and orphaned jobs are filled in from
/// the ledger by namespace once the scenario's plane is done.
#[derive(Clone, Debug, Default)]
pub struct Row {
    pub scenario: String,
    pub namespaces: Vec<String>,
    pub lifecycles: usize,
    pub faults: String,
    pub violations: usize,
    pub duplicates: usize,
    pub orphans: usize,
    pub stuck: usize,
    pub converge: Option<Duration>,
    /// AWS calls (emulator requests, retries included) per lifecycle, and the bound.
    pub calls: Option<(f64, f64)>,
    /// Most AWS operations one object made within one second, and the bound.
    pub peak: Option<(u32, u32)>,
    /// A scenario-specific peak bound (one that adds its own watch events).
    pub peak_bound: Option<u32>,
    /// Why a scenario with lifecycles has no peak to measure (no emulator behind its AWS
    /// endpoint); any other row with lifecycles and no peak fails.
    pub peak_unmeasurable: Option<&'static str>,
    /// Scenario checks that failed (beyond the invariants).
    pub failures: Vec<String>,
    pub notes: Vec<String>,
}

impl Row {
    pub fn new(scenario: impl Into<String>, namespaces: &[&str]) -> Self {
        Self {
            scenario: scenario.into(),
            namespaces: namespaces.iter().map(|s| (*s).to_owned()).collect(),
            ..Self::default()
        }
    }

    pub fn converged(&mut self, took: Duration) {
        self.converge = Some(self.converge.map_or(took, |c| c.max(took)));
    }

    pub fn fail(&mut self, what: impl Into<String>) {
        self.failures.push(what.into());
    }

    pub fn note(&mut self, what: impl Into<String>) {
        self.notes.push(what.into());
    }

    /// Records a failed step as a failed check (the scenario goes on where it can).
    pub fn check<T>(&mut self, what: &str, result: anyhow::Result<T>) -> Option<T> {
        match result {
            Ok(v) => Some(v),
            Err(e) => {
                self.fail(format!("{what}: {e:#}"));
                None
            }
        }
    }

    pub fn clean(&self) -> bool {
        self.violations == 0
            && self.duplicates == 0
            && self.orphans == 0
            && self.stuck == 0
            && self.failures.is_empty()
            && self.calls.is_none_or(|(m, b)| m <= b)
            && self.peak.is_none_or(|(m, b)| m <= b)
    }
}

fn secs(d: Option<Duration>) -> String {
    d.map_or_else(|| "–".to_owned(), |d| format!("{:.1} s", d.as_secs_f64()))
}

/// The Markdown summary: the table, then notes, violations and failed checks.
pub fn render(title: &str, preamble: &[String], rows: &[Row], details: &[String]) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "## {title}\n");
    for line in preamble {
        let _ = writeln!(out, "{line}");
    }
    let _ = writeln!(
        out,
        "\n| Scenario | Lifecycles | Faults injected | Invariant violations | Duplicate jobs | Orphaned jobs | Stuck objects | Longest time to converge | AWS calls per lifecycle (bound) | Peak AWS ops/s per object (bound) | Failed checks |"
    );
    let _ = writeln!(
        out,
        "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|"
    );
    let mut total = Row::new("**total**", &[]);
    for row in rows {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            row.scenario,
            row.lifecycles,
            row.faults,
            row.violations,
            row.duplicates,
            row.orphans,
            row.stuck,
            secs(row.converge),
            row.calls
                .map_or_else(|| "–".to_owned(), |(m, b)| format!("{m:.1} (≤ {b:.0})")),
            row.peak
                .map_or_else(|| "–".to_owned(), |(m, b)| format!("{m} (≤ {b})")),
            row.failures.len(),
        );
        total.lifecycles += row.lifecycles;
        total.violations += row.violations;
        total.duplicates += row.duplicates;
        total.orphans += row.orphans;
        total.stuck += row.stuck;
        total.failures.extend(row.failures.iter().cloned());
        if let Some(c) = row.converge {
            total.converged(c);
        }
    }
    let _ = writeln!(
        out,
        "| {} | {} | | {} | {} | {} | {} | {} | | | {} |",
        total.scenario,
        total.lifecycles,
        total.violations,
        total.duplicates,
        total.orphans,
        total.stuck,
        secs(total.converge),
        total.failures.len()
    );
    let notes: Vec<String> = rows
        .iter()
        .flat_map(|r| {
            r.notes
                .iter()
                .map(move |n| format!("- {}: {n}", r.scenario))
        })
        .collect();
    if !notes.is_empty() {
        let _ = writeln!(out, "\nObservations:\n");
        for n in notes {
            let _ = writeln!(out, "{n}");
        }
    }
    let failures: Vec<String> = rows
        .iter()
        .flat_map(|r| {
            r.failures
                .iter()
                .map(move |f| format!("- {}: {f}", r.scenario))
        })
        .collect();
    if !failures.is_empty() {
        let _ = writeln!(out, "\nFailed checks:\n");
        for f in failures {
            let _ = writeln!(out, "{f}");
        }
    }
    if !details.is_empty() {
        let _ = writeln!(out);
        for d in details {
            let _ = writeln!(out, "{d}");
        }
    }
    out
}
