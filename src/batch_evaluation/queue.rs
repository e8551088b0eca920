//! The start queue, decided purely: which objects waiting for their first Start may send it now,
//! and where the others stand. AgentCore answers `ServiceQuotaExceededException` (402) when an
//! account already runs as many batch evaluations as its quota allows, and an administrator may
//! cap the operator's own active jobs (`--max-active-jobs`); either way objects wait their turn
//! here instead of retrying blindly. The state this is computed from lives in
//! [`super::admission`]; it is rebuilt from the objects themselves, so the order survives restarts.

use std::cmp::Ordering;

use jiff::Timestamp;

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

/// The service refused a Start for lack of quota, and no Start has succeeded since.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QuotaFull {
    pub since: Timestamp,
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
    /// The service's quota is full (jobs started elsewhere may hold part of it).
    Quota { since: Timestamp, active: usize },
    /// Objects ahead of it are being started one at a time.
    Ahead,
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
            Blocker::Quota { since, active } => format!(
                "waiting for the AWS quota on active batch evaluations (ServiceQuotaExceeded since {since}; {active} of its jobs are this operator's)"
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
/// - Under `--max-active-jobs`, the first `limit − active` waiting objects may start at once.
/// - Without a limit, once the service refused a Start for quota, objects start one at a time
///   in order: only the head tries, and only when no admitted Start is still unrecorded (its
///   retries back off). Nobody overtakes the queue, not even a newcomer that would find a slot.
///   Before any refusal the queue is not consulted at all (see [`super::admission`]).
#[must_use]
pub fn admit(queue: &RegionQueue, uid: &str, region: &str) -> Admission {
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
    if let Some(limit) = queue.limit {
        if active + position >= limit {
            return queued(Blocker::Limit { limit, active });
        }
        if let Some(QuotaFull { since }) = queue.quota
            && position > 0
        {
            return queued(Blocker::Quota { since, active });
        }
        return Admission::Start;
    }
    if position == 0 && queue.starting == 0 {
        return Admission::Start;
    }
    match queue.quota {
        Some(QuotaFull { since }) => queued(Blocker::Quota { since, active }),
        None => queued(Blocker::Ahead),
    }
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
            quota: quota.then_some(QuotaFull {
                since: Timestamp::UNIX_EPOCH,
            }),
        }
    }

    fn verdict(q: &RegionQueue, name: &str) -> Verdict {
        match admit(q, &format!("uid-{name}"), "us-east-1") {
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
            // Under a limit, as many as there are free slots start at once.
            (0, Some(2), false, "a", (true, None)),
            (0, Some(2), false, "b", (true, None)),
            (0, Some(2), false, "c", (false, Some((3, 3)))),
            (1, Some(2), false, "a", (true, None)),
            (1, Some(2), false, "b", (false, Some((2, 3)))),
            (2, Some(2), false, "a", (false, Some((1, 3)))),
            // Quota full: only the head tries.
            (2, None, true, "a", (true, None)),
            (2, None, true, "b", (false, Some((2, 3)))),
            (0, Some(5), true, "b", (false, Some((2, 3)))),
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
        // Under a limit, admitted Starts count as active.
        let mut limited = queue(0, Some(2), false, &["a", "b"]);
        limited.starting = 1;
        assert_eq!(verdict(&limited, "a"), (true, None));
        assert_eq!(verdict(&limited, "b"), (false, Some((2, 2))));
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
