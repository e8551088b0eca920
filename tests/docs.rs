//! The docs follow the code: every metric the operator registers is documented and every metric the
//! docs name exists, and every relative link in docs/ (file and heading) resolves.

use std::{
    collections::BTreeSet,
    path::{Path, PathBuf},
    time::Duration,
};

use agentcore_operator::{
    metrics::{Metrics, ObjectMetrics},
    remote::RemoteStatus,
};
use anyhow::{Context as _, ensure};

mod support;

use support::repo_path;

fn markdown_files() -> anyhow::Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(repo_path("docs"))?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    files.sort();
    ensure!(!files.is_empty(), "no docs");
    Ok(files)
}

/// `agentcore_operator_<name>` tokens in `text`.
fn metric_names(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut rest = text;
    while let Some(at) = rest.find("agentcore_operator_") {
        let tail = &rest[at..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        // The bare prefix, as in "prefix `agentcore_operator_`", names no metric.
        if end > "agentcore_operator_".len() {
            names.insert(tail[..end].to_owned());
        }
        rest = &tail[end..];
    }
    names
}

/// Family names as served: counters get `_total`, histograms are named by their base. A family
/// is only rendered once it has a series, so every one gets a sample first.
fn served_families() -> BTreeSet<String> {
    let metrics = Metrics::default();
    metrics.observe_reconcile(true, "Waiting", Duration::from_millis(5));
    metrics.observe_aws_call("GetBatchEvaluation", "success", Duration::from_millis(5));
    let object = ObjectMetrics {
        remote_status: Some(RemoteStatus::InProgress),
        deleting_since: Some(jiff::Timestamp::UNIX_EPOCH),
        scores: Box::new([("Builtin.Helpfulness".into(), 0.5)]),
        passed: Some(true),
    };
    metrics.set_object("ns", "name", Some(object));
    metrics.set_leader(true);
    metrics.set_queue_depth("us-west-2", None, 1);
    metrics.schedules.count(
        "ns",
        "nightly",
        agentcore_operator::schedule::metrics::RunOutcome::Created,
        1,
    );
    metrics
        .schedules
        .set_last("ns", "nightly", Some(true), Some(0.9));
    metrics
        .render()
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| {
            let mut parts = l.split_whitespace();
            let name = parts.next()?;
            Some(match parts.next()? {
                "counter" => format!("{name}_total"),
                _ => name.to_owned(),
            })
        })
        .collect()
}

#[test]
fn documented_metrics_are_the_served_ones() -> anyhow::Result<()> {
    let served = served_families();
    ensure!(served.len() >= 9, "families: {served:?}");
    let operations = std::fs::read_to_string(repo_path("docs/operations.md"))?;
    let documented = metric_names(&operations);
    for family in &served {
        ensure!(
            documented.contains(family),
            "docs/operations.md does not document {family}"
        );
    }
    for file in markdown_files()? {
        for name in metric_names(&std::fs::read_to_string(&file)?) {
            let base = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| name.strip_suffix(s))
                .unwrap_or(&name);
            ensure!(
                served.contains(base),
                "{} names {name}, which the operator does not export (served: {served:?})",
                file.display()
            );
        }
    }
    Ok(())
}

/// GitHub's heading anchor: lower case, punctuation dropped, spaces to hyphens.
fn slug(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || *c == ' ' || *c == '-' || *c == '_')
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

fn anchors(markdown: &str) -> BTreeSet<String> {
    let mut in_code = false;
    let mut out = BTreeSet::new();
    for line in markdown.lines() {
        if line.trim_start().starts_with("```") {
            in_code = !in_code;
        } else if !in_code && line.starts_with('#') {
            out.insert(slug(line.trim_start_matches('#').replace('`', "").as_str()));
        }
    }
    out
}

/// Relative link targets of `[text](target)` outside code blocks.
fn links(markdown: &str) -> Vec<String> {
    let mut in_code = false;
    let mut out = Vec::new();
    for line in markdown.lines() {
        if line.trim_start().starts_with("```") {
            in_code = !in_code;
            continue;
        }
        if in_code {
            continue;
        }
        let mut rest = line;
        while let Some(at) = rest.find("](") {
            let tail = &rest[at + 2..];
            let Some(end) = tail.find(')') else { break };
            out.push(tail[..end].to_owned());
            rest = &tail[end..];
        }
    }
    out.into_iter()
        .filter(|l| !l.starts_with("http://") && !l.starts_with("https://"))
        .collect()
}

fn check_link(from: &Path, target: &str) -> anyhow::Result<()> {
    let (path, anchor) = match target.split_once('#') {
        Some((p, a)) => (p, Some(a)),
        None => (target, None),
    };
    let file = if path.is_empty() {
        from.to_owned()
    } else {
        from.parent().context("parent")?.join(path)
    };
    ensure!(
        file.exists(),
        "{}: link to {target}: {} does not exist",
        from.display(),
        file.display()
    );
    if let Some(anchor) = anchor {
        let text = std::fs::read_to_string(&file)?;
        ensure!(
            anchors(&text).contains(anchor),
            "{}: link to {target}: no heading #{anchor} in {}",
            from.display(),
            file.display()
        );
    }
    Ok(())
}

#[test]
fn relative_links_resolve() -> anyhow::Result<()> {
    let mut files = markdown_files()?;
    files.push(repo_path("charts/agentcore-operator/README.md"));
    files.push(repo_path("examples/README.md"));
    let mut checked = 0;
    for file in &files {
        for target in links(&std::fs::read_to_string(file)?) {
            check_link(file, &target)?;
            checked += 1;
        }
    }
    ensure!(checked > 20, "only {checked} links found");
    Ok(())
}
