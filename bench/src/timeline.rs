//! Times each object's milestones from a watch of its own, the same way in the operator run and
//! in the baseline: started (an id is recorded), Ready (the Ready condition is True), and gone
//! (deleted from the API).

use std::{
    collections::{HashMap, HashSet},
    sync::{Arc, Mutex, PoisonError},
    time::{Duration, Instant},
};

use agentcore_operator::api::BatchEvaluation;
use futures::StreamExt as _;
use kube::{
    Api, ResourceExt as _,
    runtime::{WatchStreamExt as _, watcher},
};
use tokio::task::JoinHandle;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Milestone {
    Started,
    Ready,
    Gone,
}

impl Milestone {
    pub const ALL: [Self; 3] = [Self::Started, Self::Ready, Self::Gone];

    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Started => "started",
            Self::Ready => "ready",
            Self::Gone => "gone",
        }
    }
}

#[derive(Debug, Default)]
struct State {
    first: HashMap<(String, Milestone), Instant>,
    counts: HashMap<Milestone, usize>,
    /// Names listed since the last (re)start of the watch; objects missing from a relist were
    /// deleted while the watch was down.
    relisting: Option<HashSet<String>>,
    known: HashSet<String>,
    /// The first list completed: later changes are all seen.
    synced: bool,
}

impl State {
    fn mark(&mut self, name: &str, milestone: Milestone, at: Instant) {
        if let std::collections::hash_map::Entry::Vacant(slot) =
            self.first.entry((name.to_owned(), milestone))
        {
            slot.insert(at);
            *self.counts.entry(milestone).or_insert(0) += 1;
        }
    }

    fn seen(&mut self, obj: &BatchEvaluation, at: Instant) {
        let name = obj.name_any();
        let status = obj.status.as_ref();
        if status
            .and_then(|s| s.batch_evaluation_id.as_ref())
            .is_some()
        {
            self.mark(&name, Milestone::Started, at);
        }
        let ready = status.is_some_and(|s| {
            s.conditions
                .iter()
                .any(|c| c.type_ == "Ready" && c.status == "True")
        });
        if ready {
            self.mark(&name, Milestone::Ready, at);
        }
        self.known.insert(name);
    }
}

/// The milestones seen so far, shared with the watch task.
#[derive(Clone, Default)]
pub struct Timeline {
    state: Arc<Mutex<State>>,
}

impl Timeline {
    /// Starts watching `api`; the task runs until the handle is aborted.
    pub fn watch(&self, api: Api<BatchEvaluation>) -> JoinHandle<()> {
        let state = self.state.clone();
        tokio::spawn(async move {
            let mut events = watcher(api, watcher::Config::default())
                .default_backoff()
                .boxed();
            while let Some(event) = events.next().await {
                let at = Instant::now();
                let mut s = state.lock().unwrap_or_else(PoisonError::into_inner);
                match event {
                    Ok(watcher::Event::Apply(obj)) => s.seen(&obj, at),
                    Ok(watcher::Event::Delete(obj)) => s.mark(&obj.name_any(), Milestone::Gone, at),
                    Ok(watcher::Event::Init) => s.relisting = Some(HashSet::new()),
                    Ok(watcher::Event::InitApply(obj)) => {
                        if let Some(listed) = s.relisting.as_mut() {
                            listed.insert(obj.name_any());
                        }
                        s.seen(&obj, at);
                    }
                    Ok(watcher::Event::InitDone) => {
                        s.synced = true;
                        if let Some(listed) = s.relisting.take() {
                            let missing: Vec<String> =
                                s.known.difference(&listed).cloned().collect();
                            for name in missing {
                                s.mark(&name, Milestone::Gone, at);
                            }
                        }
                    }
                    Err(error) => tracing::warn!(%error, "timeline watch"),
                }
            }
        })
    }

    /// Waits until the watch has listed once, so no later change is missed.
    pub async fn wait_synced(&self, timeout: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + timeout;
        while !self
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .synced
        {
            if Instant::now() >= deadline {
                anyhow::bail!("the timeline watch did not sync within {timeout:?}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(())
    }

    pub fn count(&self, milestone: Milestone) -> usize {
        let s = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        s.counts.get(&milestone).copied().unwrap_or(0)
    }

    /// Waits until `n` objects reached `milestone`; on timeout returns how many did.
    pub async fn wait_for(
        &self,
        milestone: Milestone,
        n: usize,
        timeout: Duration,
    ) -> Result<(), usize> {
        let deadline = Instant::now() + timeout;
        loop {
            let reached = self.count(milestone);
            if reached >= n {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(reached);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// When each object reached `milestone`, as seconds after `origin`, sorted.
    pub fn offsets(&self, milestone: Milestone, origin: Instant) -> Vec<f64> {
        let s = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let mut times: Vec<f64> = s
            .first
            .iter()
            .filter(|((_, m), _)| *m == milestone)
            .map(|(_, at)| at.saturating_duration_since(origin).as_secs_f64())
            .collect();
        times.sort_by(f64::total_cmp);
        times
    }

    /// When the last object reached `milestone`.
    pub fn last(&self, milestone: Milestone) -> Option<Instant> {
        let s = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        s.first
            .iter()
            .filter(|((_, m), _)| *m == milestone)
            .map(|(_, at)| *at)
            .max()
    }
}
