//! Prometheus metrics (OpenMetrics text at `/metrics`). One registry, created once.

use std::{
    collections::{HashMap, HashSet},
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use jiff::Timestamp;
use prometheus_client::{
    collector::Collector,
    encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric, text::encode},
    metrics::{
        MetricType,
        counter::Counter,
        family::Family,
        gauge::{ConstGauge, Gauge},
        histogram::{Histogram, exponential_buckets},
    },
    registry::Registry,
};

use crate::remote::RemoteStatus;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReconcileLabels {
    result: &'static str,
    reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AwsLabels {
    operation: &'static str,
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OperationLabels {
    operation: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StatusLabels {
    remote_status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct QueueLabels {
    region: String,
    /// The account of the namespace's role, or `default` for the operator's own identity.
    account: String,
}

/// Every metric the operator exports.
pub struct Metrics {
    registry: Registry,
    reconciles: Family<ReconcileLabels, Counter>,
    reconcile_duration: Histogram,
    aws_requests: Family<AwsLabels, Counter>,
    aws_duration: Family<OperationLabels, Histogram>,
    objects: Family<StatusLabels, Gauge>,
    /// The per-object gauges (deletion age, scores, verdict), written out at each scrape.
    per_object: Arc<PerObject>,
    queue_depth: Family<QueueLabels, Gauge>,
    queue_wait: Histogram,
    leader: Gauge,
    /// The `BatchEvaluationSchedule` families.
    pub schedules: crate::schedule::metrics::ScheduleMetrics,
}

fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.005, 2.0, 14))
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("agentcore_operator");
        let reconciles = Family::<ReconcileLabels, Counter>::default();
        registry.register(
            "reconciles",
            "Reconciles by result and reason",
            reconciles.clone(),
        );
        let reconcile_duration = latency_histogram();
        registry.register(
            "reconcile_duration_seconds",
            "Duration of one reconcile",
            reconcile_duration.clone(),
        );
        let aws_requests = Family::<AwsLabels, Counter>::default();
        registry.register(
            "aws_requests",
            "AgentCore API calls by operation and outcome",
            aws_requests.clone(),
        );
        let aws_duration =
            Family::<OperationLabels, Histogram>::new_with_constructor(latency_histogram);
        registry.register(
            "aws_request_duration_seconds",
            "Latency of AgentCore API calls, retries included",
            aws_duration.clone(),
        );
        let objects = Family::<StatusLabels, Gauge>::default();
        registry.register(
            "objects",
            "BatchEvaluation objects by remote status (NONE before a job exists)",
            objects.clone(),
        );
        let per_object = Arc::new(PerObject::default());
        registry.register_collector(Box::new(per_object.clone()));
        let queue_depth = Family::<QueueLabels, Gauge>::default();
        registry.register(
            "start_queue_depth",
            "Objects waiting in the start queue (AWS quota or --max-active-jobs), per region and account",
            queue_depth.clone(),
        );
        let queue_wait = Histogram::new(exponential_buckets(1.0, 2.0, 14));
        registry.register(
            "start_queue_wait_seconds",
            "Time from creation to the Start of objects that waited in the start queue",
            queue_wait.clone(),
        );
        let leader = Gauge::default();
        registry.register(
            "leader",
            "1 while this replica holds the leader lease",
            leader.clone(),
        );
        let schedules = crate::schedule::metrics::ScheduleMetrics::default();
        schedules.register(&mut registry);
        Self {
            registry,
            reconciles,
            reconcile_duration,
            aws_requests,
            aws_duration,
            objects,
            per_object,
            queue_depth,
            queue_wait,
            leader,
            schedules,
        }
    }
}

/// What one object contributes to the per-object gauges.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ObjectMetrics {
    /// An enum rather than the wire string: no allocation per object for the known values.
    pub remote_status: Option<RemoteStatus>,
    /// When deletion was requested: the age is taken at each scrape, so it keeps growing while
    /// a held deletion waits between reconciles (backoff up to minutes).
    pub deleting_since: Option<Timestamp>,
    /// (evaluator label, average score). The table keeps each label once ([`PerObjectTable`]).
    pub scores: Box<[(Arc<str>, f64)]>,
    /// The quality gate's verdict: `None` while the job runs or without pass criteria.
    pub passed: Option<bool>,
}

impl ObjectMetrics {
    /// The object's series of `agentcore_operator_objects`.
    fn status_labels(&self) -> StatusLabels {
        StatusLabels {
            remote_status: self
                .remote_status
                .as_ref()
                .map_or("NONE", RemoteStatus::as_str)
                .to_owned(),
        }
    }
}

/// The per-object series, kept as one entry per object and written out when scraped. As
/// metric families they cost a labelled series per object and evaluator, plus the record of
/// what each object had exported (to remove it again): about 720 bytes per object, against
/// about 180 here (heaptrack, agentcore-bench).
#[derive(Debug, Default)]
struct PerObject {
    table: Mutex<PerObjectTable>,
}

#[derive(Debug, Default)]
struct PerObjectTable {
    /// Keyed by `namespace/name` ([`object_key`]): one allocation per object instead of two.
    objects: HashMap<Box<str>, ObjectMetrics>,
    /// Each evaluator label once, shared by the scores that carry it: objects report the same
    /// few evaluators, and a label of its own cost each object 32 bytes or more per evaluator.
    /// A label leaves with the last score that uses it.
    evaluators: HashSet<Arc<str>>,
}

impl PerObjectTable {
    /// The shared copy of `label`.
    fn intern(&mut self, label: &Arc<str>) -> Arc<str> {
        if let Some(shared) = self.evaluators.get(label) {
            return shared.clone();
        }
        self.evaluators.insert(label.clone());
        label.clone()
    }
}

/// Drops from `evaluators` the labels only `scores`, which are leaving the table, still use.
fn release(evaluators: &mut HashSet<Arc<str>>, scores: &[(Arc<str>, f64)]) {
    for (label, _) in scores {
        // The set's reference and this one.
        if Arc::strong_count(label) == 2 {
            evaluators.remove(label);
        }
    }
}

/// The per-object table's key: neither a namespace nor a name can contain `/`.
fn object_key(namespace: &str, name: &str) -> Box<str> {
    format!("{namespace}/{name}").into_boxed_str()
}

/// The namespace and name of an [`object_key`].
fn split_key(key: &str) -> (&str, &str) {
    key.split_once('/').unwrap_or(("", key))
}

impl Collector for PerObject {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let table = self.table.lock().unwrap_or_else(PoisonError::into_inner);
        let objects = &table.objects;
        let mut family = encoder.encode_descriptor(
            "deleting_object_age_seconds",
            "Seconds since deletion was requested, for objects still being cleaned up",
            None,
            MetricType::Gauge,
        )?;
        let now = Timestamp::now();
        for (key, m) in objects.iter() {
            let (namespace, name) = split_key(key);
            if let Some(since) = m.deleting_since {
                let labels = [("namespace", namespace), ("name", name)];
                let age = now.duration_since(since).as_secs_f64().max(0.0);
                ConstGauge::new(age).encode(family.encode_family(&labels)?)?;
            }
        }
        let mut family = encoder.encode_descriptor(
            "evaluation_average_score",
            "Average score per object and evaluator, as reported by the service",
            None,
            MetricType::Gauge,
        )?;
        for (key, m) in objects.iter() {
            let (namespace, name) = split_key(key);
            for (evaluator, score) in &*m.scores {
                let labels = [
                    ("namespace", namespace),
                    ("name", name),
                    ("evaluator", &**evaluator),
                ];
                ConstGauge::new(*score).encode(family.encode_family(&labels)?)?;
            }
        }
        let mut family = encoder.encode_descriptor(
            "evaluation_passed",
            "1 when the object's results meet its spec.passCriteria, 0 when they do not (or the job ended FAILED or STOPPED); absent while the job runs and without criteria",
            None,
            MetricType::Gauge,
        )?;
        for (key, m) in objects.iter() {
            let (namespace, name) = split_key(key);
            if let Some(passed) = m.passed {
                let labels = [("namespace", namespace), ("name", name)];
                ConstGauge::new(i64::from(passed)).encode(family.encode_family(&labels)?)?;
            }
        }
        Ok(())
    }
}

static ENCODE_FAILURES: AtomicU64 = AtomicU64::new(0);

impl Metrics {
    /// Counts one reconcile.
    pub fn observe_reconcile(&self, success: bool, reason: &str, took: Duration) {
        self.reconciles
            .get_or_create(&ReconcileLabels {
                result: if success { "success" } else { "error" },
                reason: reason.to_owned(),
            })
            .inc();
        self.reconcile_duration.observe(took.as_secs_f64());
    }

    /// Counts one AWS call.
    pub fn observe_aws_call(&self, operation: &'static str, outcome: &str, took: Duration) {
        self.aws_requests
            .get_or_create(&AwsLabels {
                operation,
                outcome: outcome.to_owned(),
            })
            .inc();
        self.aws_duration
            .get_or_create(&OperationLabels { operation })
            .observe(took.as_secs_f64());
    }

    /// Sets the number of objects waiting in the start queue of `account` (`None`: the
    /// operator's own identity) in `region`.
    pub fn set_queue_depth(&self, region: &str, account: Option<&str>, depth: usize) {
        self.queue_depth
            .get_or_create(&QueueLabels {
                region: region.to_owned(),
                account: account.unwrap_or("default").to_owned(),
            })
            .set(i64::try_from(depth).unwrap_or(i64::MAX));
    }

    /// Records how long an object that waited in the start queue took to be started.
    pub fn observe_queue_wait(&self, waited: Duration) {
        self.queue_wait.observe(waited.as_secs_f64());
    }

    /// Replaces what one object contributes to the gauges (`None` when the object is gone).
    pub fn set_object(&self, namespace: &str, name: &str, now: Option<ObjectMetrics>) {
        let mut table = self
            .per_object
            .table
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let key = object_key(namespace, name);
        let before = table.objects.get(&key);
        if before == now.as_ref() {
            return;
        }
        if let Some(before) = before {
            self.objects.get_or_create(&before.status_labels()).dec();
        }
        let left = match now {
            Some(mut now) => {
                self.objects.get_or_create(&now.status_labels()).inc();
                for (label, _) in &mut now.scores {
                    *label = table.intern(label);
                }
                table.objects.insert(key, now)
            }
            None => table.objects.remove(&key),
        };
        if let Some(left) = left {
            release(&mut table.evaluators, &left.scores);
        }
    }

    /// Removes the series of every object `present` says is gone.
    pub fn retain_objects(&self, present: impl Fn(&str, &str) -> bool) {
        let mut table = self
            .per_object
            .table
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let PerObjectTable {
            objects,
            evaluators,
        } = &mut *table;
        objects.retain(|key, m| {
            let (namespace, name) = split_key(key);
            let keep = present(namespace, name);
            if !keep {
                self.objects.get_or_create(&m.status_labels()).dec();
                release(evaluators, &m.scores);
            }
            keep
        });
    }

    /// Records whether this replica leads.
    pub fn set_leader(&self, leading: bool) {
        self.leader.set(i64::from(leading));
    }

    /// The OpenMetrics text exposition.
    #[must_use]
    pub fn render(&self) -> String {
        let mut out = String::new();
        if encode(&mut out, &self.registry).is_err() {
            ENCODE_FAILURES.fetch_add(1, Ordering::Relaxed);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_object_gauges_follow_the_object() {
        let metrics = Metrics::default();
        let running = ObjectMetrics {
            remote_status: Some(RemoteStatus::InProgress),
            scores: Box::new([("Builtin.Helpfulness".into(), 0.8)]),
            passed: Some(false),
            ..ObjectMetrics::default()
        };
        metrics.set_object("ns", "a", Some(running));
        let text = metrics.render();
        assert!(
            text.contains(r#"agentcore_operator_objects{remote_status="IN_PROGRESS"} 1"#),
            "{text}"
        );
        assert!(text.contains(r#"agentcore_operator_evaluation_average_score{namespace="ns",name="a",evaluator="Builtin.Helpfulness"} 0.8"#), "{text}");
        assert!(
            text.contains(r#"agentcore_operator_evaluation_passed{namespace="ns",name="a"} 0"#),
            "{text}"
        );

        metrics.set_object("ns", "a", None);
        let text = metrics.render();
        assert!(
            text.contains(r#"agentcore_operator_objects{remote_status="IN_PROGRESS"} 0"#),
            "{text}"
        );
        assert!(
            !text.contains("evaluator=\"Builtin.Helpfulness\""),
            "{text}"
        );
        assert!(
            !text.contains("agentcore_operator_evaluation_passed{"),
            "{text}"
        );
    }

    /// Objects that report the same evaluator share one copy of its label, which goes with the
    /// last of them.
    #[test]
    fn evaluator_labels_are_kept_once() {
        let metrics = Metrics::default();
        let scored = |score| ObjectMetrics {
            remote_status: Some(RemoteStatus::Completed),
            // A label of its own, as each reconcile makes it.
            scores: Box::new([(Arc::from("Builtin.Helpfulness"), score)]),
            ..ObjectMetrics::default()
        };
        let labels = |metrics: &Metrics| {
            let table = metrics.per_object.table.lock().expect("table");
            let mut labels: Vec<Arc<str>> = table
                .objects
                .values()
                .flat_map(|m| m.scores.iter().map(|(label, _)| label.clone()))
                .collect();
            labels.sort();
            (labels, table.evaluators.len())
        };
        metrics.set_object("ns", "a", Some(scored(0.8)));
        metrics.set_object("ns", "b", Some(scored(0.6)));
        // A new score for "a" replaces its entry; the label stays shared.
        metrics.set_object("ns", "a", Some(scored(0.9)));
        {
            let (kept, evaluators) = labels(&metrics);
            assert_eq!(kept.len(), 2);
            assert!(Arc::ptr_eq(&kept[0], &kept[1]), "one copy of the label");
            assert_eq!(evaluators, 1);
            // `kept`'s references go here: the table counts who uses a label.
        }

        metrics.set_object("ns", "a", None);
        assert_eq!(labels(&metrics).1, 1, "still used by b");
        metrics.retain_objects(|_, _| false);
        assert_eq!(labels(&metrics), (vec![], 0));
        let text = metrics.render();
        assert!(!text.contains("evaluator="), "{text}");
    }

    #[test]
    fn objects_gone_in_a_watch_gap_are_removed() {
        let metrics = Metrics::default();
        for name in ["kept", "gone"] {
            let object = ObjectMetrics {
                remote_status: Some(RemoteStatus::Completed),
                passed: Some(true),
                ..ObjectMetrics::default()
            };
            metrics.set_object("ns", name, Some(object));
        }
        metrics.retain_objects(|namespace, name| namespace == "ns" && name == "kept");
        let text = metrics.render();
        assert!(
            text.contains(r#"agentcore_operator_objects{remote_status="COMPLETED"} 1"#),
            "{text}"
        );
        assert!(text.contains(r#"name="kept""#), "{text}");
        assert!(!text.contains(r#"name="gone""#), "{text}");
    }

    #[test]
    fn a_held_deletion_ages_between_reconciles() {
        let metrics = Metrics::default();
        let requested = Timestamp::now() - jiff::SignedDuration::from_secs(600);
        let deleting = ObjectMetrics {
            deleting_since: Some(requested),
            ..ObjectMetrics::default()
        };
        metrics.set_object("ns", "held", Some(deleting));
        let text = metrics.render();
        let age: f64 = text
            .lines()
            .find_map(|l| {
                l.strip_prefix(
                    r#"agentcore_operator_deleting_object_age_seconds{namespace="ns",name="held"} "#,
                )
            })
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no age in {text}"));
        // Taken at the scrape, not when the object was last reconciled.
        assert!((600.0..660.0).contains(&age), "{age}");
    }

    #[test]
    fn aws_calls_are_counted_by_operation_and_outcome() {
        let metrics = Metrics::default();
        metrics.observe_aws_call(
            "StartBatchEvaluation",
            "ThrottlingException",
            Duration::from_millis(3),
        );
        let text = metrics.render();
        assert!(text.contains(r#"agentcore_operator_aws_requests_total{operation="StartBatchEvaluation",outcome="ThrottlingException"} 1"#), "{text}");
    }
}
