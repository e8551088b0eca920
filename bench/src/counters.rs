//! What is counted between phases: the API server's own request counters, the emulator's
//! per-operation counters, the operator's metrics, and CPU time and memory of processes from
//! /proc.

use std::{
    collections::BTreeMap, ops::Sub, path::Path, process::Command, sync::OnceLock, time::Duration,
};

use agentcore_emulator::{Operation, Stats};
use anyhow::{Context as _, bail};

/// Request verbs that change state. `APPLY` is a server-side apply PATCH.
pub const WRITE_VERBS: [&str; 6] = [
    "POST",
    "PUT",
    "PATCH",
    "DELETE",
    "APPLY",
    "DELETECOLLECTION",
];

/// One line of a Prometheus text exposition: metric name, labels, value.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

/// Parses the Prometheus / OpenMetrics text format (the subset both servers emit: no escaped
/// quotes in label values are needed here, but they are handled).
pub fn parse_exposition(text: &str) -> Vec<Sample> {
    text.lines()
        .filter(|line| !line.starts_with('#') && !line.trim().is_empty())
        .filter_map(parse_line)
        .collect()
}

fn parse_line(line: &str) -> Option<Sample> {
    let (head, value) = match line.find('{') {
        Some(open) => {
            let close = line.rfind('}')?;
            let value = line[close + 1..].split_whitespace().next()?;
            (
                (
                    line[..open].to_owned(),
                    parse_labels(&line[open + 1..close]),
                ),
                value,
            )
        }
        None => {
            let mut parts = line.split_whitespace();
            let name = parts.next()?;
            ((name.to_owned(), BTreeMap::new()), parts.next()?)
        }
    };
    Some(Sample {
        name: head.0,
        labels: head.1,
        value: value.parse().ok()?,
    })
}

fn parse_labels(text: &str) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::new();
    let mut rest = text;
    while let Some(eq) = rest.find("=\"") {
        let key = rest[..eq].trim_start_matches(',').trim().to_owned();
        let mut value = String::new();
        let mut chars = rest[eq + 2..].char_indices();
        let mut end = None;
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => {
                    if let Some((_, escaped)) = chars.next() {
                        value.push(if escaped == 'n' { '\n' } else { escaped });
                    }
                }
                '"' => {
                    end = Some(eq + 2 + i + 1);
                    break;
                }
                other => value.push(other),
            }
        }
        labels.insert(key, value);
        match end {
            Some(end) => rest = &rest[end..],
            None => break,
        }
    }
    labels
}

/// The API server's request counters at one moment, by (verb, resource, subresource).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ApiRequests(pub BTreeMap<(String, String, String), f64>);

impl ApiRequests {
    pub fn from_exposition(text: &str) -> Self {
        let mut counts = BTreeMap::new();
        for sample in parse_exposition(text) {
            if sample.name != "apiserver_request_total" {
                continue;
            }
            let label = |k: &str| sample.labels.get(k).cloned().unwrap_or_default();
            *counts
                .entry((label("verb"), label("resource"), label("subresource")))
                .or_insert(0.0) += sample.value;
        }
        Self(counts)
    }

    /// Requests matching a verb, resource and subresource (`None`: any).
    pub fn count(&self, verb: Option<&str>, resource: &str, subresource: Option<&str>) -> f64 {
        self.0
            .iter()
            .filter(|((v, r, s), _)| {
                r == resource
                    && verb.is_none_or(|verb| v == verb)
                    && subresource.is_none_or(|sub| s == sub)
            })
            .map(|(_, n)| n)
            // An empty f64 sum is -0.0, which would print as "-0.00".
            .sum::<f64>()
            + 0.0
    }

    /// Writes to one resource (any subresource).
    pub fn writes(&self, resource: &str) -> f64 {
        WRITE_VERBS
            .iter()
            .map(|verb| self.count(Some(verb), resource, None))
            .sum()
    }

    /// Writes to every resource.
    pub fn all_writes(&self) -> f64 {
        self.0
            .iter()
            .filter(|((verb, _, _), _)| WRITE_VERBS.contains(&verb.as_str()))
            .map(|(_, n)| n)
            .sum()
    }

    /// Non-zero write counters as `VERB resource[/sub] n` lines, for the detail listing.
    pub fn write_lines(&self) -> Vec<(String, f64)> {
        self.0
            .iter()
            .filter(|((verb, _, _), n)| WRITE_VERBS.contains(&verb.as_str()) && **n > 0.0)
            .map(|((verb, resource, sub), n)| {
                let target = if sub.is_empty() {
                    resource.clone()
                } else {
                    format!("{resource}/{sub}")
                };
                (format!("{verb} {target}"), *n)
            })
            .collect()
    }
}

impl Sub for &ApiRequests {
    type Output = ApiRequests;
    fn sub(self, earlier: &ApiRequests) -> ApiRequests {
        ApiRequests(
            self.0
                .iter()
                .map(|(k, n)| (k.clone(), n - earlier.0.get(k).copied().unwrap_or(0.0)))
                .collect(),
        )
    }
}

/// Writes to `resource` (any subresource) that the API server answered 409 Conflict.
pub fn conflicts(text: &str, resource: &str) -> f64 {
    parse_exposition(text)
        .iter()
        .filter(|s| {
            s.name == "apiserver_request_total"
                && s.labels.get("resource").is_some_and(|r| r == resource)
                && s.labels.get("code").is_some_and(|c| c == "409")
                && s.labels
                    .get("verb")
                    .is_some_and(|v| WRITE_VERBS.contains(&v.as_str()))
        })
        .map(|s| s.value)
        .sum::<f64>()
        + 0.0
}

/// Reads the API server's /metrics with the admin identity (`kubectl get --raw`).
pub async fn scrape_apiserver(kubectl: &Path, admin_kubeconfig: &Path) -> anyhow::Result<String> {
    let out = tokio::process::Command::new(kubectl)
        .arg("--kubeconfig")
        .arg(admin_kubeconfig)
        .args(["get", "--raw", "/metrics"])
        .output()
        .await
        .context("running kubectl get --raw /metrics")?;
    if !out.status.success() {
        bail!(
            "kubectl get --raw /metrics failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8(out.stdout)?)
}

/// Emulator counters by operation, all outcomes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AwsCalls(pub BTreeMap<String, u64>);

impl AwsCalls {
    pub fn from_stats(stats: &Stats) -> Self {
        Self(
            Operation::ALL
                .into_iter()
                .map(|op| (op.to_string(), stats.total(op)))
                .collect(),
        )
    }

    pub fn get(&self, op: Operation) -> u64 {
        self.0.get(&op.to_string()).copied().unwrap_or(0)
    }

    pub fn total(&self) -> u64 {
        self.0.values().sum()
    }
}

impl Sub for &AwsCalls {
    type Output = AwsCalls;
    fn sub(self, earlier: &AwsCalls) -> AwsCalls {
        AwsCalls(
            self.0
                .iter()
                .map(|(k, n)| {
                    (
                        k.clone(),
                        n.saturating_sub(earlier.0.get(k).copied().unwrap_or(0)),
                    )
                })
                .collect(),
        )
    }
}

/// CPU time and memory of one process at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ProcSample {
    /// utime + stime.
    pub cpu: Duration,
    /// VmHWM: the peak resident set so far.
    pub peak_rss_kib: u64,
    /// VmRSS now.
    pub rss_kib: u64,
}

impl ProcSample {
    /// Reads /proc/<pid>/stat and /proc/<pid>/status. `None` once the process is gone.
    pub fn read(pid: u32) -> Option<Self> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        // The command name (field 2) is in parentheses and may contain spaces: count fields from
        // the last ')'. utime and stime are fields 14 and 15, i.e. 12th and 13th after it.
        let after = &stat[stat.rfind(')')? + 1..];
        let fields: Vec<&str> = after.split_whitespace().collect();
        let ticks: u64 =
            fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        let kib = |key: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(key))
                .and_then(|v| v.split_whitespace().next())
                .and_then(|v| v.parse().ok())
                .unwrap_or(0)
        };
        Some(Self {
            cpu: Duration::from_secs_f64(ticks as f64 / clock_ticks_per_second()),
            peak_rss_kib: kib("VmHWM:"),
            rss_kib: kib("VmRSS:"),
        })
    }
}

/// `getconf CLK_TCK` (USER_HZ): the unit of utime/stime. 100 on every Linux this runs on.
fn clock_ticks_per_second() -> f64 {
    static TICKS: OnceLock<f64> = OnceLock::new();
    *TICKS.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse().ok())
            .filter(|t: &f64| *t > 0.0)
            .unwrap_or(100.0)
    })
}

/// The processes of one run whose CPU time is reported.
#[derive(Debug, Clone, Copy, Default)]
pub struct Pids {
    pub apiserver: Option<u32>,
    pub etcd: Option<u32>,
}

impl Pids {
    /// Finds kube-apiserver and etcd among the processes started for the plane in `dir`.
    pub fn of_plane(dir: &Path) -> Self {
        let mut pids = Self::default();
        for pid in agentcore_testenv::processes_mentioning(dir) {
            let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
            match comm.trim() {
                "kube-apiserver" => pids.apiserver = Some(pid),
                "etcd" => pids.etcd = Some(pid),
                _ => {}
            }
        }
        pids
    }
}

/// Everything counted at one moment of a run.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub api: ApiRequests,
    /// Writes to batchevaluations answered 409 Conflict so far.
    pub conflicts: f64,
    pub aws: AwsCalls,
    pub operator: Option<ProcSample>,
    /// The operator's own metrics, parsed.
    pub operator_metrics: Vec<Sample>,
    pub apiserver: ProcSample,
    pub etcd: ProcSample,
    /// This benchmark process: the client, the watch that times the lifecycles, and (in the
    /// operator run) the in-process emulator.
    pub bench: ProcSample,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_apiserver_request_counters() {
        let text = r#"# HELP apiserver_request_total x
# TYPE apiserver_request_total counter
apiserver_request_total{code="201",component="apiserver",dry_run="",group="evals.agentcore.dev",resource="batchevaluations",scope="resource",subresource="",verb="POST",version="v1alpha1"} 3
apiserver_request_total{code="200",component="apiserver",dry_run="",group="evals.agentcore.dev",resource="batchevaluations",scope="resource",subresource="status",verb="PATCH",version="v1alpha1"} 5
apiserver_request_total{code="409",component="apiserver",dry_run="",group="evals.agentcore.dev",resource="batchevaluations",scope="resource",subresource="status",verb="PATCH",version="v1alpha1"} 1
apiserver_request_total{code="200",component="apiserver",dry_run="",group="evals.agentcore.dev",resource="batchevaluations",scope="resource",subresource="",verb="GET",version="v1alpha1"} 7
apiserver_request_total{code="201",component="apiserver",dry_run="",group="events.k8s.io",resource="events",scope="resource",subresource="",verb="POST",version="v1"} 2
"#;
        let api = ApiRequests::from_exposition(text);
        assert_eq!(
            api.count(Some("PATCH"), "batchevaluations", Some("status")),
            6.0
        );
        assert_eq!(api.writes("batchevaluations"), 9.0);
        assert_eq!(api.count(Some("GET"), "batchevaluations", None), 7.0);
        assert_eq!(api.all_writes(), 11.0);
        assert_eq!(conflicts(text, "batchevaluations"), 1.0);
        assert_eq!(conflicts(text, "events"), 0.0);
        let later = ApiRequests::from_exposition(&text.replace("} 3", "} 13"));
        assert_eq!((&later - &api).writes("batchevaluations"), 10.0);
    }

    #[test]
    fn parses_openmetrics_lines_and_escapes() {
        let samples = parse_exposition(
            "agentcore_operator_reconciles_total{result=\"success\",reason=\"Idle\"} 42\n\
             up 1\n\
             x{a=\"q\\\"uote\",b=\"\"} 2.5\n# EOF\n",
        );
        assert_eq!(samples.len(), 3);
        assert_eq!(samples[0].labels["reason"], "Idle");
        assert_eq!(samples[0].value, 42.0);
        assert_eq!(samples[1].name, "up");
        assert_eq!(samples[2].labels["a"], "q\"uote");
        assert_eq!(samples[2].labels["b"], "");
    }

    #[test]
    fn reads_this_process() {
        let sample = ProcSample::read(std::process::id()).unwrap();
        assert!(sample.peak_rss_kib > 0 && sample.rss_kib > 0);
    }
}
