//! The start queue, decided purely: which objects waiting for their first Start may send it now,
//! and where the others stand. AgentCore answers `ServiceQuotaExceededException` (402) when an
//! account already runs as many batch evaluations as its quota allows, and an administrator may
//! cap the operator's own active jobs (`--max-active-jobs`); either way objects wait their turn
//! here instead of retrying blindly. The state this is computed from lives in
//! [`super::admission`]; it is rebuilt from the objects themselves, so the order survives restarts.

use std::{cmp::Ordering, time::Duration};

use jiff::{SignedDuration, Timestamp};

/// An object waiting for its first Start, in queue order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Candidate {
    pub uid: String,
    /// `spec.priority`: higher starts first.
    pub priority: i32,
    /// `metadata.creationTimestamp`: earlier starts first among equal priorities.
    pub created: Option<Timestamp>,
    pub namespace: String,
    pub name: String,
}

impl Candidate {
    /// Queue order: priority (higher first), then creation time, then namespace and name, so
    /// that every replica and every restart computes the same order.
    #[must_use]
    pub fn queue_order(&self, other: &Self) -> Ordering {
        other
            .priority
            .cmp(&self.priority)
            .then_with(|| self.created.cmp(&other.created))
            .then_with(|| self.namespace.cmp(&other.namespace))
            .then_with(|| self.name.cmp(&other.name))
    }
}

/// First and longest wait before the head of a full queue tries again on its own (rather than
/// because one of the operator's jobs finished).
const PROBE_FIRST: Duration = Duration::from_secs(5);
const PROBE_MAX: Duration = Duration::from_secs(60);

/// What the operator knows of a full quota: the service refused a Start while `active_then` of
/// its own jobs were active (or accepted one that made it `active_then`). More fit only when one
/// of them finishes, or, if jobs started elsewhere held part of the quota, when those finish:
/// the head probes for that at `retry_at`, backing off while it keeps being refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QuotaFull {
    pub since: Timestamp,
    pub active_then: usize,
    /// Refusals since the last accepted Start.
    pub refusals: u32,
    pub retry_at: Timestamp,
}

impl QuotaFull {
    /// After a refusal while `active` of the operator's jobs were active. Only a refused probe
    /// (one due at `retry_at`) backs off further: the refusals of a burst of first Starts, or of
    /// a head woken because a job of ours finished and an outside job took the slot, do not.
    #[must_use]
    pub fn refused(previous: Option<Self>, active: usize, now: Timestamp) -> Self {
        if let Some(previous) = previous
            && now < previous.retry_at
        {
            return Self {
                active_then: active,
                ..previous
            };
        }
        let refusals = previous.map_or(0, |p| p.refusals).saturating_add(1);
        let wait = PROBE_FIRST
            .saturating_mul(2u32.saturating_pow(refusals.saturating_sub(1).min(8)))
            .min(PROBE_MAX);
        Self {
            since: previous.map_or(now, |p| p.since),
            active_then: active,
            refusals,
            retry_at: after(now, wait),
        }
    }

    /// After an accepted Start that made `active` of the operator's jobs active: the quota was
    /// not full, but may be now; the next head waits for a job of ours to finish, or probes
    /// soon.
    #[must_use]
    pub fn accepted(self, active: usize, now: Timestamp) -> Self {
        Self {
            active_then: self.active_then.max(active),
            refusals: 0,
            retry_at: after(now, PROBE_FIRST),
            ..self
        }
    }
}

/// `now + wait`; the latest representable time if that overflows.
fn after(now: Timestamp, wait: Duration) -> Timestamp {
    SignedDuration::try_from(wait)
        .ok()
        .and_then(|wait| now.checked_add(wait).ok())
        .unwrap_or(Timestamp::MAX)
}

/// One region's queue as the decision sees it.
#[derive(Clone, Debug, PartialEq)]
pub struct RegionQueue {
    /// The operator's own jobs holding quota (PENDING, IN_PROGRESS, STOPPING), as recorded.
    pub active: usize,
    /// Starts admitted but not yet recorded (in flight, or failed in transit).
    pub starting: usize,
    /// Objects waiting for their first Start (none of them admitted yet), in queue order.
    pub waiting: Vec<Candidate>,
    /// `--max-active-jobs`.
    pub limit: Option<usize>,
    pub quota: Option<QuotaFull>,
}

/// What the queue holds an object back for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Blocker {
    /// `--max-active-jobs` is reached by the operator's own jobs.
    Limit { limit: usize, active: usize },
    /// The service's quota is full (jobs started elsewhere may hold part of it); the head tries
    /// again at `retry_at` if none of the operator's jobs finishes first.
    Quota {
        since: Timestamp,
        active: usize,
        retry_at: Timestamp,
    },
    /// Objects ahead of it are being started one at a time.
    Ahead,
}

impl Place {
    /// When the object must try again by itself: the head of a full quota probes at its
    /// `retry_at`; everyone else is woken when the queue moves.
    #[must_use]
    pub fn retry_in(&self, now: Timestamp) -> Option<Duration> {
        match self.blocker {
            Blocker::Quota { retry_at, .. } if self.position == 1 => {
                Some(Duration::try_from(retry_at.duration_since(now)).unwrap_or_default())
            }
            _ => None,
        }
    }
}

/// An object's place in the queue.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Place {
    /// 1-based.
    pub position: usize,
    pub length: usize,
    pub region: String,
    pub blocker: Blocker,
}

impl Place {
    /// The condition message: where the object stands and what it waits for.
    #[must_use]
    pub fn describe(&self) -> String {
        let waits_for = match &self.blocker {
            Blocker::Limit { limit, active } => format!(
                "waiting for one of the operator's {active} active jobs to finish (--max-active-jobs={limit})"
            ),
            Blocker::Quota { since, active, .. } => format!(
                "waiting for the AWS quota on active batch evaluations (ServiceQuotaExceeded since {since}; {active} of the active jobs are this operator's)"
            ),
            Blocker::Ahead => "waiting for the objects ahead of it to start".to_owned(),
        };
        format!(
            "queued to start: position {} of {} in {}; {waits_for}",
            self.position, self.length, self.region
        )
    }
}

/// Whether the object `uid` may send its Start now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Admission {
    Start,
    Queued(Place),
}

/// Decides for `uid` (one of `queue.waiting`, or a newcomer placed at the end).
///
/// Objects start one at a time, in order: only the head, and only once the Start admitted before
/// it is answered, so the service sees Starts in queue order and nobody overtakes, not even a
/// newcomer that would find a slot. The head starts when
/// - under `--max-active-jobs`, fewer than `limit` of the operator's jobs are active;
/// - once the service refused a Start for quota, one of the operator's jobs finished since the
///   quota was last found full, or the head's probe is due (jobs started elsewhere may have
///   finished).
///
/// Before any refusal, and without a limit, the queue is not consulted at all (see
/// [`super::admission`]).
#[must_use]
pub fn admit(queue: &RegionQueue, uid: &str, region: &str, now: Timestamp) -> Admission {
    let position = queue
        .waiting
        .iter()
        .position(|c| c.uid == uid)
        .unwrap_or(queue.waiting.len());
    let length = queue.waiting.len().max(position + 1);
    let queued = |blocker| {
        Admission::Queued(Place {
            position: position + 1,
            length,
            region: region.to_owned(),
            blocker,
        })
    };
    let active = queue.active + queue.starting;
    let blocker = if let Some(limit) = queue.limit.filter(|l| active + position >= *l) {
        Blocker::Limit { limit, active }
    } else if let Some(quota) = queue.quota
        && (position > 0 || (active >= quota.active_then && now < quota.retry_at))
    {
        Blocker::Quota {
            since: quota.since,
            active,
            retry_at: quota.retry_at,
        }
    } else if position > 0 || queue.starting > 0 {
        Blocker::Ahead
    } else {
        return Admission::Start;
    };
    queued(blocker)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn candidate(name: &str, priority: i32, created_secs: i64) -> Candidate {
        Candidate {
            uid: format!("uid-{name}"),
            priority,
            created: Some(Timestamp::from_second(created_secs).unwrap_or(Timestamp::UNIX_EPOCH)),
            namespace: "team-a".into(),
            name: name.into(),
        }
    }

    fn queue(active: usize, limit: Option<usize>, quota: bool, names: &[&str]) -> RegionQueue {
        RegionQueue {
            active,
            starting: 0,
            waiting: names
                .iter()
                .enumerate()
                .map(|(i, n)| candidate(n, 0, i64::try_from(i).unwrap_or(0)))
                .collect(),
            limit,
            // Found full while three of ours were active; the probe is not due yet.
            quota: quota.then_some(QuotaFull {
                since: Timestamp::UNIX_EPOCH,
                active_then: 3,
                refusals: 1,
                retry_at: later(),
            }),
        }
    }

    fn now() -> Timestamp {
        Timestamp::from_second(1_000).unwrap_or(Timestamp::UNIX_EPOCH)
    }

    fn later() -> Timestamp {
        Timestamp::from_second(1_005).unwrap_or(Timestamp::UNIX_EPOCH)
    }

    fn verdict(q: &RegionQueue, name: &str) -> Verdict {
        match admit(q, &format!("uid-{name}"), "us-east-1", now()) {
            Admission::Start => (true, None),
            Admission::Queued(p) => (false, Some((p.position, p.length))),
        }
    }

    #[test]
    fn order_is_priority_then_creation_then_name() {
        let mut all = [
            candidate("late", 0, 30),
            candidate("urgent", 5, 40),
            candidate("early", 0, 10),
            candidate("b", 0, 20),
            candidate("a", 0, 20),
            candidate("low", -1, 0),
        ];
        all.sort_by(Candidate::queue_order);
        let names: Vec<&str> = all.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["urgent", "early", "a", "b", "late", "low"]);
    }

    /// Whether the object starts, else its (position, length).
    type Verdict = (bool, Option<(usize, usize)>);

    /// (active, limit, quota full, object among [a, b, c]) → verdict.
    #[test]
    fn admission_table() {
        let names = ["a", "b", "c"];
        let table: &[(usize, Option<usize>, bool, &str, Verdict)] = &[
            // No limit, after a refusal: the head starts, the rest follow one at a time.
            (0, None, false, "a", (true, None)),
            (0, None, false, "b", (false, Some((2, 3)))),
            // Under a limit, one at a time while slots are free.
            (0, Some(2), false, "a", (true, None)),
            (0, Some(2), false, "b", (false, Some((2, 3)))),
            (0, Some(2), false, "c", (false, Some((3, 3)))),
            (1, Some(2), false, "a", (true, None)),
            (1, Some(2), false, "b", (false, Some((2, 3)))),
            (2, Some(2), false, "a", (false, Some((1, 3)))),
            // Quota found full at 3 active; one of ours finished since: only the head tries.
            (2, None, true, "a", (true, None)),
            (2, None, true, "b", (false, Some((2, 3)))),
            (0, Some(5), true, "b", (false, Some((2, 3)))),
            // None of ours finished and the probe is not due: even the head waits.
            (3, None, true, "a", (false, Some((1, 3)))),
            // The limit holds even when the quota has room.
            (3, Some(2), true, "a", (false, Some((1, 3)))),
        ];
        for (active, limit, quota, name, expected) in table {
            let q = queue(*active, *limit, *quota, &names);
            assert_eq!(
                verdict(&q, name),
                *expected,
                "active {active}, limit {limit:?}, quota full {quota}, object {name}"
            );
        }
    }

    #[test]
    fn without_a_limit_an_unrecorded_start_holds_the_head() {
        let mut q = queue(1, None, false, &["a", "b"]);
        q.starting = 1;
        assert_eq!(verdict(&q, "a"), (false, Some((1, 2))));
        q.starting = 0;
        assert_eq!(verdict(&q, "a"), (true, None));
        // Under a limit too; and admitted Starts count as active.
        let mut limited = queue(0, Some(2), false, &["a", "b"]);
        limited.starting = 1;
        assert_eq!(verdict(&limited, "a"), (false, Some((1, 2))));
        limited.active = 1;
        limited.starting = 0;
        assert_eq!(verdict(&limited, "a"), (true, None));
    }

    #[test]
    fn the_head_probes_a_quota_held_elsewhere_with_backoff() {
        let mut q = queue(3, None, true, &["a", "b"]);
        let head = |q: &RegionQueue, at| admit(q, "uid-a", "us-east-1", at);
        assert!(matches!(head(&q, now()), Admission::Queued(_)));
        assert_eq!(head(&q, later()), Admission::Start, "the probe is due");
        // Each refusal doubles the wait, up to a minute; an accepted Start resets it.
        let first = QuotaFull::refused(None, 3, now());
        let wait = |f: QuotaFull| f.retry_at.duration_since(now()).as_secs();
        // A burst of refusals before the probe is due: no further backoff.
        let burst = QuotaFull::refused(Some(first), 2, now());
        assert_eq!((wait(burst), burst.refusals, burst.active_then), (5, 1, 2));
        // Refused probes double the wait, up to a minute.
        let probe = |previous: QuotaFull| QuotaFull::refused(Some(previous), 3, previous.retry_at);
        let second = probe(first);
        assert_eq!(second.retry_at.duration_since(first.retry_at).as_secs(), 10);
        let mut many = second;
        for _ in 0..10 {
            many = probe(many);
        }
        assert_eq!(
            many.since, first.since,
            "the refusals since the first are one episode"
        );
        let last = probe(many);
        assert_eq!(last.retry_at.duration_since(many.retry_at).as_secs(), 60);
        assert_eq!(many.since, first.since);
        let accepted = many.accepted(4, now());
        assert_eq!(
            (accepted.refusals, accepted.active_then, wait(accepted)),
            (0, 4, 5)
        );
        q.quota = Some(accepted);
        q.active = 4;
        assert!(
            matches!(head(&q, now()), Admission::Queued(_)),
            "right after a Start, the next waits for a job to finish or the probe"
        );
        q.active = 3;
        assert_eq!(head(&q, now()), Admission::Start, "one of ours finished");
    }

    #[test]
    fn a_newcomer_is_placed_at_the_end() {
        let q = queue(0, None, true, &["a", "b"]);
        assert_eq!(verdict(&q, "new"), (false, Some((3, 3))));
        let alone = queue(0, None, true, &[]);
        assert_eq!(verdict(&alone, "new"), (true, None));
    }

    #[test]
    fn the_message_names_the_position_and_the_blocker() {
        let place = Place {
            position: 2,
            length: 5,
            region: "us-west-2".into(),
            blocker: Blocker::Limit {
                limit: 2,
                active: 2,
            },
        };
        let text = place.describe();
        assert!(text.contains("position 2 of 5 in us-west-2"), "{text}");
        assert!(text.contains("--max-active-jobs=2"), "{text}");
    }
}
