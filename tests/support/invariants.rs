//! The invariants of design §3, checked from the two sources of truth: the emulator's job list
//! (every job ever created; deleted ones stay listed as `GONE`) and the API server's objects.
//!
//! - I1 no live job without an object holding the finalizer (unless Retain or force-release);
//! - I2 at most one job per object UID;
//! - I3 the finalizer is released only once the job is gone (or policy keeps it);
//! - I4 convergence after a crash (the scenarios time it and count stuck objects);
//! - I5 no AWS call and I6 no Kubernetes write while nothing changes ([`Quiet`] windows).
//!
//! I1 and I3 are sampled all along a run by [`Monitor`], not only at the end: a finalizer
//! released too early is visible only while the job still lives.

use std::{
    collections::{BTreeMap, BTreeSet},
    sync::{Arc, Mutex, MutexGuard, PoisonError},
    time::{Duration, Instant},
};

use agentcore_emulator::{JobInfo, Operation, RunningEmulator, Stats};
use anyhow::bail;
use serde_json::Value;
use tokio::sync::watch;

use super::{
    cluster::Cluster,
    object::{FORCE_RELEASE, TOKEN_PREFIX, has_finalizer, key, str_at},
};

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Invariant {
    I1,
    I2,
    I3,
    I4,
    I5,
    I6,
}

#[derive(Clone, Debug)]
pub struct Violation {
    pub invariant: Invariant,
    /// Namespace of the object concerned; `*` for the whole plane, `?` when unknown.
    pub namespace: String,
    pub detail: String,
}

/// What the ledger remembers of an object, across its whole life.
#[derive(Clone, Debug, Default)]
struct Owner {
    namespace: String,
    name: String,
    /// `spec.batchEvaluationName` unset: the remote name is derived from the UID, so a job of
    /// that name can only have been started for this object.
    derived_name: bool,
    names: BTreeSet<String>,
    /// Recorded `status.batchEvaluationId` and `spec.adoptBatchEvaluationId`.
    ids: BTreeSet<String>,
    /// Retain or force-release: the job may outlive the object by design.
    exempt: Option<&'static str>,
    present: bool,
    finalizer: bool,
}

/// Per-namespace figures for the summary.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Tally {
    pub violations: usize,
    pub duplicates: usize,
    pub orphans: usize,
    /// Jobs left behind on purpose (Retain, force-release).
    pub left_by_policy: usize,
    pub jobs: usize,
}

#[derive(Default)]
pub struct Ledger {
    owners: BTreeMap<String, Owner>,
    violations: Vec<Violation>,
    flagged: BTreeSet<(Invariant, String)>,
    pub samples: u64,
}

impl Ledger {
    /// Remembers every object seen; marks the ones absent from `objects` as gone.
    pub fn record_objects(&mut self, objects: &[Value]) {
        for owner in self.owners.values_mut() {
            owner.present = false;
        }
        for obj in objects {
            let uid = str_at(obj, "/metadata/uid");
            if uid.is_empty() {
                continue;
            }
            let owner = self.owners.entry(uid.to_owned()).or_default();
            owner.namespace = str_at(obj, "/metadata/namespace").to_owned();
            owner.name = str_at(obj, "/metadata/name").to_owned();
            owner.present = true;
            owner.finalizer = has_finalizer(obj);
            let spec_name = str_at(obj, "/spec/batchEvaluationName");
            owner.derived_name = spec_name.is_empty();
            for name in [spec_name, str_at(obj, "/status/batchEvaluationName")] {
                if !name.is_empty() {
                    owner.names.insert(name.to_owned());
                }
            }
            for id in [
                str_at(obj, "/status/batchEvaluationId"),
                str_at(obj, "/spec/adoptBatchEvaluationId"),
            ] {
                if !id.is_empty() {
                    owner.ids.insert(id.to_owned());
                }
            }
            if str_at(obj, "/spec/deletionPolicy") == "Retain" {
                owner.exempt = Some("Retain");
            }
            if str_at(
                obj,
                &format!("/metadata/annotations/{}", pointer_escape(FORCE_RELEASE)),
            ) == "true"
            {
                owner.exempt = Some("force-release");
            }
        }
    }

    /// The UID of the object a job belongs to: by client token, by recorded or adopted id, or
    /// by a derived name. `None` for jobs nobody in the cluster started or adopted.
    pub fn owner_of(&self, job: &JobInfo) -> Option<String> {
        if let Some(uid) = job
            .client_token
            .as_deref()
            .and_then(|t| t.strip_prefix(TOKEN_PREFIX))
        {
            return Some(uid.to_owned());
        }
        self.owners
            .iter()
            .find(|(_, o)| {
                o.ids.contains(&job.id) || (o.derived_name && o.names.contains(&job.name))
            })
            .map(|(uid, _)| uid.clone())
    }

    /// The namespace of the object a request subject belongs to: a subject is the client token
    /// of a Start (the operator's prefix and the object's UID) or the id of a job without a
    /// token, recorded or adopted by an object (see `RunningEmulator::object_ops`).
    pub fn namespace_of_subject(&self, subject: &str) -> Option<&str> {
        let owner = match subject.strip_prefix(TOKEN_PREFIX) {
            Some(uid) => self.owners.get(uid),
            None => self.owners.values().find(|o| o.ids.contains(subject)),
        }?;
        Some(owner.namespace.as_str())
    }

    /// One sample: jobs listed before and after the object list. A job live in both lists
    /// existed before the objects were read and still exists after, so its object must have
    /// been there, holding the finalizer.
    pub fn sample(&mut self, before: &[JobInfo], objects: &[Value], after: &[JobInfo]) {
        self.samples += 1;
        self.record_objects(objects);
        let live_after: BTreeSet<&str> = after
            .iter()
            .filter(|j| !j.is_gone())
            .map(|j| j.id.as_str())
            .collect();
        for job in before
            .iter()
            .filter(|j| !j.is_gone() && live_after.contains(j.id.as_str()))
        {
            self.check_live_job(job);
        }
    }

    fn check_live_job(&mut self, job: &JobInfo) {
        let Some(uid) = self.owner_of(job) else {
            return; // a job the test started itself and nobody adopted
        };
        let found = match self.owners.get(&uid) {
            Some(o) if o.exempt.is_some() || (o.present && o.finalizer) => None,
            Some(o) if o.present => Some((
                Invariant::I1,
                o.namespace.clone(),
                format!(
                    "job {} ({}) is live while {}/{} has no finalizer",
                    job.id, job.status, o.namespace, o.name
                ),
            )),
            Some(o) => Some((
                Invariant::I3,
                o.namespace.clone(),
                format!(
                    "{}/{} was released while its job {} is {}",
                    o.namespace, o.name, job.id, job.status
                ),
            )),
            None => Some((
                Invariant::I1,
                "?".to_owned(),
                format!(
                    "job {} ({}, token {:?}) has no object",
                    job.id, job.status, job.client_token
                ),
            )),
        };
        if let Some((invariant, namespace, detail)) = found {
            self.flag(invariant, &job.id, namespace, detail);
        }
    }

    fn flag(&mut self, invariant: Invariant, subject: &str, namespace: String, detail: String) {
        if self.flagged.insert((invariant, subject.to_owned())) {
            self.violations.push(Violation {
                invariant,
                namespace,
                detail,
            });
        }
    }

    /// Records a violation found by a scenario (I4 stuck, I5/I6 quiet windows).
    pub fn add(&mut self, violation: Violation) {
        self.violations.push(violation);
    }

    pub fn violations(&self) -> &[Violation] {
        &self.violations
    }

    /// The end-of-run check: I2 (one job per UID) over every job ever created, and the jobs
    /// still live whose object is gone or lost its finalizer (orphans).
    pub fn final_tally(&mut self, jobs: &[JobInfo], objects: &[Value]) -> BTreeMap<String, Tally> {
        self.record_objects(objects);
        let mut tallies: BTreeMap<String, Tally> = BTreeMap::new();
        let mut per_owner: BTreeMap<String, Vec<&JobInfo>> = BTreeMap::new();
        for job in jobs {
            if let Some(uid) = self.owner_of(job) {
                per_owner.entry(uid).or_default().push(job);
            }
        }
        for (uid, owned) in &per_owner {
            let (namespace, name, exempt, holds) = match self.owners.get(uid) {
                Some(o) => (
                    o.namespace.clone(),
                    o.name.clone(),
                    o.exempt,
                    o.present && o.finalizer,
                ),
                None => ("?".to_owned(), format!("uid {uid}"), None, false),
            };
            let tally = tallies.entry(namespace.clone()).or_default();
            tally.jobs += owned.len();
            if owned.len() > 1 {
                tally.duplicates += owned.len() - 1;
                let ids: Vec<_> = owned.iter().map(|j| j.id.as_str()).collect();
                self.flag(
                    Invariant::I2,
                    uid,
                    namespace.clone(),
                    format!("{namespace}/{name} has {} jobs: {ids:?}", owned.len()),
                );
            }
            for job in owned.iter().filter(|j| !j.is_gone()) {
                if holds {
                    continue;
                }
                let tally = tallies.entry(namespace.clone()).or_default();
                if exempt.is_some() {
                    tally.left_by_policy += 1;
                } else {
                    tally.orphans += 1;
                    self.check_live_job(job);
                }
            }
        }
        for v in &self.violations {
            tallies.entry(v.namespace.clone()).or_default().violations += 1;
        }
        tallies
    }
}

/// JSON Pointer escaping of one path segment (`/` in annotation keys).
fn pointer_escape(segment: &str) -> String {
    segment.replace('~', "~0").replace('/', "~1")
}

/// The latest object list, and when it was requested.
pub struct Snapshot {
    pub taken: Instant,
    pub objects: BTreeMap<String, Value>,
}

impl Snapshot {
    pub fn get(&self, ns: &str, name: &str) -> Option<&Value> {
        self.objects.get(&format!("{ns}/{name}"))
    }

    pub fn in_namespace<'a>(&'a self, ns: &'a str) -> impl Iterator<Item = &'a Value> + 'a {
        let prefix = format!("{ns}/");
        self.objects
            .iter()
            .filter(move |(k, _)| k.starts_with(&prefix))
            .map(|(_, v)| v)
    }
}

/// Samples the invariants while scenarios run, and shares each object list with them so that
/// waiting costs one list per interval, however many objects are waited on.
pub struct Monitor {
    ledger: Mutex<Ledger>,
    latest: watch::Sender<Arc<Snapshot>>,
    stop: watch::Sender<bool>,
    interval: Duration,
    /// Strings no object may ever contain (the fake AWS credentials), and where they were seen.
    needles: Vec<String>,
    hits: Mutex<Vec<String>>,
    scanned: std::sync::atomic::AtomicU64,
}

impl Monitor {
    pub fn new(interval: Duration) -> Self {
        Self::with_needles(interval, &[])
    }

    /// Also searches every object listed for each of `needles`.
    pub fn with_needles(interval: Duration, needles: &[&str]) -> Self {
        Self {
            needles: needles.iter().map(|n| (*n).to_owned()).collect(),
            hits: Mutex::new(Vec::new()),
            scanned: std::sync::atomic::AtomicU64::new(0),
            ledger: Mutex::new(Ledger::default()),
            latest: watch::channel(Arc::new(Snapshot {
                taken: Instant::now(),
                objects: BTreeMap::new(),
            }))
            .0,
            stop: watch::channel(false).0,
            interval,
        }
    }

    pub fn ledger(&self) -> MutexGuard<'_, Ledger> {
        self.ledger.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Samples until [`Self::stop`]. List failures (an API server restart) skip a sample.
    pub async fn run(&self, cluster: &Cluster, emulator: &RunningEmulator) {
        let mut stop = self.stop.subscribe();
        while !*stop.borrow() {
            let taken = Instant::now();
            let before = emulator.jobs();
            let listed = tokio::time::timeout(Duration::from_secs(10), cluster.list_bevals()).await;
            if let Ok(Ok(objects)) = listed {
                let after = emulator.jobs();
                self.ledger().sample(&before, &objects, &after);
                self.scan(&objects);
                let objects = objects.into_iter().map(|o| (key(&o), o)).collect();
                self.latest
                    .send_replace(Arc::new(Snapshot { taken, objects }));
            }
            tokio::select! {
                () = tokio::time::sleep(self.interval) => {}
                _ = stop.changed() => {}
            }
        }
    }

    pub fn stop(&self) {
        self.stop.send_replace(true);
    }

    fn scan(&self, objects: &[Value]) {
        if self.needles.is_empty() {
            return;
        }
        for obj in objects {
            let text = obj.to_string();
            self.scanned
                .fetch_add(text.len() as u64, std::sync::atomic::Ordering::Relaxed);
            for needle in self.needles.iter().filter(|n| text.contains(n.as_str())) {
                self.hits
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push(format!("object {} contains {needle:?}", key(obj)));
            }
        }
    }

    /// Bytes of object JSON searched for the needles, and what was found.
    pub fn scan_results(&self) -> (u64, Vec<String>) {
        (
            self.scanned.load(std::sync::atomic::Ordering::Relaxed),
            self.hits
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone(),
        )
    }

    /// Resolves-on-`true` signal for other background loops of the same plane.
    pub fn stopped(&self) -> watch::Receiver<bool> {
        self.stop.subscribe()
    }

    /// Waits for a snapshot requested after this call that satisfies `check`.
    pub async fn wait(
        &self,
        what: &str,
        timeout: Duration,
        check: impl Fn(&Snapshot) -> bool,
    ) -> anyhow::Result<Arc<Snapshot>> {
        let since = Instant::now();
        let mut rx = self.latest.subscribe();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            {
                let snap = rx.borrow_and_update().clone();
                if snap.taken >= since && check(&snap) {
                    return Ok(snap);
                }
            }
            if tokio::time::timeout_at(deadline, rx.changed())
                .await
                .is_err()
            {
                bail!("timed out after {timeout:?} waiting for {what}");
            }
        }
    }

    /// Waits until one object satisfies `check` (`None`: the object is absent).
    pub async fn wait_object(
        &self,
        ns: &str,
        name: &str,
        what: &str,
        timeout: Duration,
        check: impl Fn(Option<&Value>) -> bool,
    ) -> anyhow::Result<Option<Value>> {
        let snap = self
            .wait(&format!("{ns}/{name}: {what}"), timeout, |s| {
                check(s.get(ns, name))
            })
            .await?;
        Ok(snap.get(ns, name).cloned())
    }

    /// The latest snapshot requested after this call.
    pub async fn fresh(&self) -> anyhow::Result<Arc<Snapshot>> {
        self.wait("a fresh object list", Duration::from_secs(120), |_| true)
            .await
    }
}

/// What must not move while nothing changes: the emulator's call counters (I5), the objects'
/// resourceVersions and the events (I6).
pub struct Quiet {
    pub stats: Stats,
    pub objects: BTreeMap<String, String>,
    pub events: BTreeMap<String, String>,
}

impl Quiet {
    pub async fn probe(cluster: &Cluster, emulator: &RunningEmulator) -> anyhow::Result<Self> {
        let stats = emulator.stats();
        let versions = |items: Vec<Value>| {
            items
                .iter()
                .map(|o| (key(o), str_at(o, "/metadata/resourceVersion").to_owned()))
                .collect::<BTreeMap<_, _>>()
        };
        Ok(Self {
            stats,
            objects: versions(cluster.list_bevals().await?),
            events: versions(cluster.list_events().await?),
        })
    }

    /// Everything that moved between two probes, as violations.
    pub fn moved(&self, later: &Quiet, window: &str) -> Vec<Violation> {
        let mut found = Vec::new();
        for op in Operation::ALL {
            let delta = later.stats.total(op) - self.stats.total(op).min(later.stats.total(op));
            if delta > 0 {
                found.push(Violation {
                    invariant: Invariant::I5,
                    namespace: "*".to_owned(),
                    detail: format!("{delta} {op} call(s) during {window}"),
                });
            }
        }
        for (k, rv) in &later.objects {
            if self.objects.get(k).is_some_and(|before| before != rv) {
                found.push(Violation {
                    invariant: Invariant::I6,
                    namespace: k.split('/').next().unwrap_or("?").to_owned(),
                    detail: format!("{k} was written during {window}"),
                });
            }
        }
        for (k, rv) in &later.events {
            if self.events.get(k) != Some(rv) {
                found.push(Violation {
                    invariant: Invariant::I6,
                    namespace: k.split('/').next().unwrap_or("?").to_owned(),
                    detail: format!("event {k} was written during {window}"),
                });
            }
        }
        found
    }
}
