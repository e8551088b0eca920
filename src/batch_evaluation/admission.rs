//! The start queue's state, and the stage of a reconcile that consults it: before driving, may
//! this object send its first Start ([`StartQueue::admit`]); after driving, what the queue learned
//! ([`StartQueue::settle`]), and whom to wake because the queue moved.
//!
//! The queue itself is not stored anywhere: its members are the objects waiting for their first
//! Start, read from the controller's cache and ordered by [`Candidate::queue_order`], so a restart
//! or a new leader rebuilds the same order. Memory only holds what the cache cannot show yet
//! (Starts admitted but not recorded, jobs seen leaving the active states) and what is learned
//! from AWS (the quota was full). With no `--max-active-jobs` and no quota refusal, nothing here
//! costs more than a map lookup per Start.

use std::{
    collections::{HashMap, HashSet},
    sync::{
        Mutex, OnceLock, PoisonError,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use futures::channel::mpsc::UnboundedSender;
use jiff::Timestamp;
use kube::{
    Resource, ResourceExt,
    runtime::reflector::{ObjectRef, Store},
};
use std::sync::Arc;

use crate::{
    api::BatchEvaluation,
    batch_evaluation::{
        cached::CachedEvaluation,
        drive::{Acted, Driven},
        lifecycle::{Step, Wait},
        queue::{self, Admission, Blocker, Candidate, Place, QuotaFull, RegionQueue},
        reason::Reason,
        snapshot::Snapshot,
        status,
    },
    metrics::Metrics,
    remote::RemoteStatus,
    tenancy::{self, Identity, Tenancy},
};

/// How many objects at the head of a queue are woken when it moves: enough to fill freed slots
/// and refresh the positions users look at, without a reconcile per queued object per Start.
const WAKE_AHEAD: usize = 10;

/// Where a quota applies: AWS counts active jobs per account and region. The account is the one
/// of the namespace's role; `None` is the operator's own.
#[derive(Clone, Debug, Hash, PartialEq, Eq)]
struct QuotaScope {
    region: String,
    account: Option<String>,
}

impl QuotaScope {
    fn of(snapshot: &Snapshot) -> Self {
        Self::new(&snapshot.region, &snapshot.identity)
    }

    fn new(region: &str, identity: &Identity) -> Self {
        Self {
            region: region.to_owned(),
            account: identity
                .role_arn()
                .and_then(tenancy::account_of)
                .map(ToOwned::to_owned),
        }
    }

    /// How a queued object's message names it.
    fn describe(&self) -> String {
        match &self.account {
            Some(account) => format!("{}, account {account}", self.region),
            None => self.region.clone(),
        }
    }
}

/// The start queues of all regions and accounts.
pub struct StartQueue {
    /// `--max-active-jobs`, per region and account.
    limit: Option<usize>,
    default_region: String,
    tenancy: Tenancy,
    metrics: Arc<Metrics>,
    cache: OnceLock<Cache>,
    /// The cache holds every object: counting active jobs from it is now correct.
    synced: AtomicBool,
    regions: Mutex<HashMap<QuotaScope, RegionState>>,
}

/// The controller's cache, and its way to reconcile an object now.
struct Cache {
    store: Store<CachedEvaluation>,
    wake: UnboundedSender<ObjectRef<CachedEvaluation>>,
}

#[derive(Default)]
struct RegionState {
    /// Admitted to start, answer not known yet (or lost in transit). Counts as active, and
    /// without a limit holds the rest of the queue back.
    in_flight: HashSet<String>,
    /// Started by this operator; the cache does not show the job id yet. Counts as active.
    started: HashSet<String>,
    /// Their jobs were seen leaving the active states; the cache may still show them active.
    left: HashSet<String>,
    /// Told they are queued, and not started since.
    queued: HashSet<String>,
    quota: Option<QuotaFull>,
    /// The head of the queue at the last count, to wake when it moves.
    head: Vec<ObjectRef<CachedEvaluation>>,
    /// The operator's active jobs the cache showed at the last count (those seen leaving
    /// excluded).
    recorded_active: usize,
    /// All the operator's active jobs at the last count, admitted Starts included.
    active: usize,
    /// The queue's length at the last count.
    length: usize,
}

impl StartQueue {
    #[must_use]
    pub fn new(
        limit: Option<usize>,
        default_region: String,
        tenancy: Tenancy,
        metrics: Arc<Metrics>,
    ) -> Self {
        // Exported from the start, so that dashboards and alerts see 0 rather than nothing.
        metrics.set_queue_depth(&default_region, None, 0);
        Self {
            limit,
            default_region,
            tenancy,
            metrics,
            cache: OnceLock::new(),
            synced: AtomicBool::new(false),
            regions: Mutex::default(),
        }
    }

    /// Connects the queue to the controller's cache and wake-up channel. Until then (unit tests)
    /// every object may start.
    pub fn attach(
        &self,
        store: Store<CachedEvaluation>,
        wake: UnboundedSender<ObjectRef<CachedEvaluation>>,
    ) {
        // Attached once per controller run; a second attach would be a programming error that
        // changes nothing.
        let _ = self.cache.set(Cache { store, wake });
    }

    /// The cache has listed every object.
    pub fn mark_synced(&self) {
        self.synced.store(true, Ordering::Relaxed);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<QuotaScope, RegionState>> {
        self.regions.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Before driving: `None` when `obj` may send its Start now (or waits for nothing), its
    /// place in the queue otherwise.
    pub async fn admit(&self, snapshot: &Snapshot) -> Option<Place> {
        let cache = self.cache.get()?;
        if !snapshot.waits_to_start() {
            return None;
        }
        let scope = QuotaScope::of(snapshot);
        // An object that was queued before a restart or a leader change keeps its place: its
        // status says so, before any refusal is seen again.
        let engaged = self.limit.is_some()
            || status::recorded_reason(Some(&snapshot.status)) == Some(Reason::Queued.as_str())
            || self
                .lock()
                .get(&scope)
                .is_some_and(|r| r.quota.is_some() || !r.queued.is_empty());
        if !engaged {
            return None;
        }
        // Counting from a cache that is still listing would undercount the active jobs.
        while !self.synced.load(Ordering::Relaxed) {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let mut regions = self.lock();
        let state = regions.entry(scope.clone()).or_default();
        if state.in_flight.contains(&snapshot.uid) {
            // Admitted before (its Start failed in transit): it keeps its slot.
            return None;
        }
        let queue = state.count(&cache.store, &scope, self);
        self.metrics
            .set_queue_depth(&scope.region, scope.account.as_deref(), queue.waiting.len());
        match queue::admit(&queue, &snapshot.uid, &scope.describe(), Timestamp::now()) {
            Admission::Start => {
                state.in_flight.insert(snapshot.uid.clone());
                None
            }
            Admission::Queued(place) => {
                state.queued.insert(snapshot.uid.clone());
                Some(place)
            }
        }
    }

    /// After driving: records what the reconcile learned (a Start made, a Start refused for
    /// quota, a job leaving the active states, an object leaving the queue), wakes the head of
    /// the queue if it moved, and returns the object's place if it is queued.
    pub fn settle(
        &self,
        obj: &BatchEvaluation,
        snapshot: &Snapshot,
        driven: &Driven,
        place: Option<Place>,
        now: Timestamp,
    ) -> Option<Place> {
        let Some(cache) = self.cache.get() else {
            return place;
        };
        let uid = &snapshot.uid;
        let scope = QuotaScope::of(snapshot);
        let refused = place.is_none() && driven.step == Step::Wait(Wait::Queued);
        let mut regions = self.lock();
        if refused && !regions.contains_key(&scope) {
            // The first refusal in this region and account: from now on its queue is consulted.
            regions.insert(scope.clone(), RegionState::default());
        }
        let Some(state) = regions.get_mut(&scope) else {
            // Nothing was ever queued or refused in this region, and the limit is off.
            return place;
        };
        let mut moved = false;
        let started = driven
            .acted
            .iter()
            .any(|a| matches!(a, Acted::Started { .. }));
        if started {
            state.in_flight.remove(uid);
            state.started.insert(uid.clone());
            // A slot was free; whether another is, only a job of ours finishing or the next
            // probe tells. With nobody left waiting, the queue is not consulted any more.
            let was_queued = state.queued.remove(uid);
            state.quota = state.quota.filter(|_| !state.queued.is_empty()).map(|q| {
                let active = state.recorded_active + state.started.len() + state.in_flight.len();
                q.accepted(active, now)
            });
            if was_queued {
                let created = obj.meta().creation_timestamp.as_ref().map(|t| t.0);
                let waited = created.map(|c| now.duration_since(c));
                if let Some(waited) = waited.and_then(|w| Duration::try_from(w).ok()) {
                    self.metrics.observe_queue_wait(waited);
                }
            }
            moved = true;
        }
        let place = if refused {
            state.in_flight.remove(uid);
            state.queued.insert(uid.clone());
            // Rare, and the first refusal may come before any count: count now.
            let counted = state.count(&cache.store, &scope, self);
            let active = counted.active + counted.starting;
            let quota = QuotaFull::refused(state.quota, active, now);
            state.quota = Some(quota);
            Some(Place {
                position: 1,
                length: state.length.max(1),
                region: scope.describe(),
                blocker: Blocker::Quota {
                    since: quota.since,
                    active,
                    retry_at: quota.retry_at,
                },
            })
        } else {
            place
        };
        let released = matches!(driven.step, Step::Release(_));
        let was_active = snapshot
            .view
            .recorded_status
            .as_ref()
            .is_some_and(RemoteStatus::holds_quota);
        let still_active = driven
            .job
            .as_ref()
            .map_or(was_active, |job| job.status.holds_quota());
        if was_active && (released || !still_active) {
            state.left.insert(uid.clone());
            moved = true;
        }
        // Still waiting: queued, or nothing found, started or stalled in this reconcile.
        let waits = place.is_some()
            || (!released
                && driven.job.is_none()
                && !matches!(driven.step, Step::Stall(_))
                && snapshot.waits_to_start());
        if !waits {
            moved |= state.queued.remove(uid);
            if released {
                state.in_flight.remove(uid);
                state.started.remove(uid);
            }
        }
        if moved {
            self.metrics.set_queue_depth(
                &scope.region,
                scope.account.as_deref(),
                state.queued.len(),
            );
            for head in state
                .head
                .iter()
                .filter(|r| r.extra.uid.as_ref() != Some(uid))
            {
                // The controller is gone when the send fails: nothing left to wake.
                let _ = cache.wake.unbounded_send(head.clone());
            }
        }
        place
    }
}

impl RegionState {
    /// Counts the active jobs and waiting objects of `scope` from the cache, corrected by what
    /// the cache cannot show yet, and forgets what it now shows.
    fn count(
        &mut self,
        store: &Store<CachedEvaluation>,
        scope: &QuotaScope,
        queue: &StartQueue,
    ) -> RegionQueue {
        let mut active = 0;
        let mut holding = HashSet::new();
        let mut not_started = HashSet::new();
        let mut waiting = Vec::new();
        for obj in store.state() {
            if obj.region(&queue.default_region) != scope.region {
                continue;
            }
            if QuotaScope::new(&scope.region, &obj.identity(&queue.tenancy)) != *scope {
                continue;
            }
            let Some(uid) = obj.uid() else { continue };
            if obj.recorded_id().is_some() {
                self.in_flight.remove(&uid);
                self.started.remove(&uid);
                if obj.holds_quota() {
                    if !self.left.contains(&uid) {
                        active += 1;
                    }
                    holding.insert(uid);
                }
            } else if obj.waits_to_start() {
                if !self.in_flight.contains(&uid) && !self.started.contains(&uid) {
                    waiting.push(candidate(&obj, uid.clone()));
                }
                not_started.insert(uid);
            }
        }
        self.in_flight.retain(|uid| not_started.contains(uid));
        self.started.retain(|uid| not_started.contains(uid));
        self.left.retain(|uid| holding.contains(uid));
        self.queued.retain(|uid| not_started.contains(uid));
        waiting.sort_by(Candidate::queue_order);
        self.head = waiting
            .iter()
            .take(WAKE_AHEAD)
            .map(|c| {
                let mut r = ObjectRef::new(&c.name).within(&c.namespace);
                r.extra.uid = Some(c.uid.clone());
                r
            })
            .collect();
        self.recorded_active = active;
        self.active = active + self.started.len() + self.in_flight.len();
        self.length = waiting.len();
        RegionQueue {
            active: active + self.started.len(),
            starting: self.in_flight.len(),
            waiting,
            limit: queue.limit,
            quota: self.quota,
        }
    }
}

fn candidate(obj: &CachedEvaluation, uid: String) -> Candidate {
    Candidate {
        uid,
        priority: obj.spec.priority,
        created: obj.meta().creation_timestamp.as_ref().map(|t| t.0),
        namespace: obj.namespace().unwrap_or_default(),
        name: obj.name_any(),
    }
}
