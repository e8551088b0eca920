//! The calendar of a schedule, purely: parsing the cron expression, time zone and window (with
//! the field named on failure), the next slot, the slots missed while nobody was looking, and
//! the names of runs. The cron grammar and its daylight-saving rules are `croner`'s.

use std::{fmt, str::FromStr, time::Duration};

use croner::{
    Cron,
    parser::{CronParser, Seconds, Year},
};
use jiff::{Timestamp, tz::TimeZone};

use crate::schedule::reason::Reason;

/// Most slots counted when reporting how many were missed; beyond it the count reads "more than".
pub const MAX_COUNTED_SLOTS: u64 = 1000;

/// Why a schedule cannot be followed; names the spec field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CalendarError {
    #[error("spec.schedule {expression:?} is not a valid cron expression: {reason}")]
    Schedule { expression: String, reason: String },
    #[error("spec.timeZone {0:?} is not a known IANA time zone")]
    TimeZone(String),
    #[error("spec.template.window {window:?} is not a positive duration: {reason}")]
    Window { window: String, reason: String },
}

impl CalendarError {
    /// The condition reason.
    #[must_use]
    pub const fn reason(&self) -> Reason {
        match self {
            Self::Schedule { .. } => Reason::InvalidSchedule,
            Self::TimeZone(_) => Reason::InvalidTimeZone,
            Self::Window { .. } => Reason::InvalidWindow,
        }
    }
}

/// A parsed cron expression in a time zone.
#[derive(Clone)]
pub struct Calendar {
    cron: Cron,
    tz: TimeZone,
}

impl fmt::Debug for Calendar {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Calendar")
            .field("cron", &self.cron.pattern.to_string())
            .field("tz", &self.tz.iana_name())
            .finish()
    }
}

/// Which slot to run after a gap, and how many were skipped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Missed {
    /// The slot to run now: the latest due one, unless it is past the starting deadline.
    pub run: Option<Timestamp>,
    /// The latest due slot (whether it runs or not): the new `lastScheduleTime`.
    pub latest: Option<Timestamp>,
    /// Due slots that do not run (all but `run`), counted up to [`MAX_COUNTED_SLOTS`].
    pub skipped: u64,
}

impl Calendar {
    /// Parses `expression` (five fields, six with leading seconds, or a `@nickname`) in the IANA
    /// zone `time_zone`.
    ///
    /// # Errors
    /// [`CalendarError`] naming the field at fault.
    pub fn parse(expression: &str, time_zone: &str) -> Result<Self, CalendarError> {
        let cron = CronParser::builder()
            .seconds(Seconds::Optional)
            .year(Year::Disallowed)
            .build()
            .parse(expression)
            .map_err(|e| CalendarError::Schedule {
                expression: expression.to_owned(),
                reason: e.to_string(),
            })?;
        let tz =
            TimeZone::get(time_zone).map_err(|_| CalendarError::TimeZone(time_zone.to_owned()))?;
        Ok(Self { cron, tz })
    }

    /// The first slot strictly after `after`.
    #[must_use]
    pub fn next_after(&self, after: Timestamp) -> Option<Timestamp> {
        self.cron
            .find_next_occurrence(&after.to_zoned(self.tz.clone()), false)
            .ok()
            .map(|z| z.timestamp())
    }

    /// The latest slot at or before `at`.
    #[must_use]
    pub fn latest_at_or_before(&self, at: Timestamp) -> Option<Timestamp> {
        self.cron
            .find_previous_occurrence(&at.to_zoned(self.tz.clone()), true)
            .ok()
            .map(|z| z.timestamp())
    }

    /// The slots due in `(since, now]`, CronJob-like: only the latest runs, and only if it is
    /// no older than `deadline` (`startingDeadlineSeconds`); the others are skipped.
    #[must_use]
    pub fn missed(&self, since: Timestamp, now: Timestamp, deadline: Option<Duration>) -> Missed {
        let latest = self.latest_at_or_before(now).filter(|t| *t > since);
        let Some(latest) = latest else {
            return Missed {
                run: None,
                latest: None,
                skipped: 0,
            };
        };
        let mut due = 0u64;
        let mut cursor = since;
        while due < MAX_COUNTED_SLOTS {
            match self.next_after(cursor) {
                Some(t) if t <= now => {
                    due += 1;
                    cursor = t;
                }
                _ => break,
            }
        }
        let in_time = deadline.is_none_or(|d| {
            now.duration_since(latest)
                .try_into()
                .is_ok_and(|late: Duration| late <= d)
        });
        let run = in_time.then_some(latest);
        Missed {
            run,
            latest: Some(latest),
            skipped: due.saturating_sub(u64::from(run.is_some())),
        }
    }
}

/// Parses a window such as `24h`, `90m`, `1h30m` or `7d`.
///
/// # Errors
/// [`CalendarError::Window`] when it is not a positive whole number of seconds.
pub fn parse_window(window: &str) -> Result<Duration, CalendarError> {
    let bad = |reason: &str| CalendarError::Window {
        window: window.to_owned(),
        reason: reason.to_owned(),
    };
    let parsed = humantime::parse_duration(window).map_err(|e| bad(&e.to_string()))?;
    if parsed.is_zero() {
        return Err(bad("it must be longer than zero"));
    }
    if parsed.subsec_nanos() != 0 {
        return Err(bad("it must be whole seconds"));
    }
    Ok(parsed)
}

/// The run of a slot: `<schedule>-<unix seconds>`, like a CronJob's Jobs. A schedule name is at
/// most 52 characters (admission), so the run name stays within 63.
#[must_use]
pub fn slot_run_name(schedule: &str, slot: Timestamp) -> String {
    format!("{schedule}-{}", slot.as_second())
}

/// The run of a run-now value: `<schedule>-now<7 hex digits of a stable hash of the value>`,
/// so the same value never makes two runs.
#[must_use]
pub fn run_now_name(schedule: &str, value: &str) -> String {
    format!(
        "{schedule}-now{:07x}",
        fnv1a(value.as_bytes()) & 0x0fff_ffff
    )
}

/// FNV-1a, 64 bits: stable across Rust versions and processes, unlike `DefaultHasher`.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, b| {
        (hash ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// An RFC 3339 time from status or a label, if it is one.
#[must_use]
pub fn parse_time(text: &str) -> Option<Timestamp> {
    Timestamp::from_str(text).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(text: &str) -> Timestamp {
        text.parse().expect("test timestamp")
    }

    fn cal(expr: &str, tz: &str) -> Calendar {
        Calendar::parse(expr, tz).expect("test calendar")
    }

    #[test]
    fn next_slots_across_zones_and_daylight_saving() {
        // (expression, zone, after, expected next)
        let table = [
            (
                "0 2 * * *",
                "UTC",
                "2026-03-07T12:00:00Z",
                "2026-03-08T02:00:00Z",
            ),
            (
                "*/5 * * * * *",
                "UTC",
                "2026-01-01T00:00:03Z",
                "2026-01-01T00:00:05Z",
            ),
            (
                "*/5 * * * * *",
                "UTC",
                "2026-01-01T00:00:05Z",
                "2026-01-01T00:00:10Z",
            ),
            (
                "@daily",
                "Europe/Paris",
                "2026-06-01T12:00:00Z",
                "2026-06-01T22:00:00Z",
            ),
            // New York springs forward on 2026-03-08: 02:30 does not exist, so the fixed-time
            // job runs right after the gap, at 03:00 EDT (07:00Z).
            (
                "30 2 * * *",
                "America/New_York",
                "2026-03-08T05:00:00Z",
                "2026-03-08T07:00:00Z",
            ),
            // The day before and after: 02:30 EST (07:30Z), then 02:30 EDT (06:30Z).
            (
                "30 2 * * *",
                "America/New_York",
                "2026-03-07T05:00:00Z",
                "2026-03-07T07:30:00Z",
            ),
            (
                "30 2 * * *",
                "America/New_York",
                "2026-03-09T05:00:00Z",
                "2026-03-09T06:30:00Z",
            ),
            // New York falls back on 2026-11-01: 01:30 happens twice, the fixed-time job runs
            // once, at the first (EDT, 05:30Z); the next is the next day at 01:30 EST (06:30Z).
            (
                "30 1 * * *",
                "America/New_York",
                "2026-11-01T04:00:00Z",
                "2026-11-01T05:30:00Z",
            ),
            (
                "30 1 * * *",
                "America/New_York",
                "2026-11-01T05:30:00Z",
                "2026-11-02T06:30:00Z",
            ),
            // Nightly at 02:00 Paris: 01:00Z in winter, 00:00Z in summer.
            (
                "0 2 * * *",
                "Europe/Paris",
                "2026-03-28T12:00:00Z",
                "2026-03-29T01:00:00Z",
            ),
            (
                "0 3 * * *",
                "Europe/Paris",
                "2026-03-28T12:00:00Z",
                "2026-03-29T01:00:00Z",
            ),
            (
                "0 2 * * *",
                "Europe/Paris",
                "2026-03-30T12:00:00Z",
                "2026-03-31T00:00:00Z",
            ),
            (
                "0 9 * * 1",
                "Asia/Kolkata",
                "2026-12-01T00:00:00Z",
                "2026-12-07T03:30:00Z",
            ),
        ];
        for (expr, tz, after, want) in table {
            assert_eq!(
                cal(expr, tz).next_after(ts(after)),
                Some(ts(want)),
                "{expr} in {tz} after {after}"
            );
        }
    }

    #[test]
    fn zones_resolve_without_a_system_database() {
        // The image is FROM scratch, without /usr/share/zoneinfo: jiff falls back to the copy
        // bundled by the `tzdb-bundle-always` feature.
        let bundled = jiff::tz::TimeZoneDatabase::bundled();
        for zone in ["Europe/Paris", "America/New_York", "Asia/Kolkata", "UTC"] {
            assert!(bundled.get(zone).is_ok(), "{zone} is bundled");
        }
    }

    #[test]
    fn bad_input_names_the_field() {
        let err = Calendar::parse("61 * * * *", "UTC").expect_err("bad minute");
        assert!(err.to_string().starts_with("spec.schedule"), "{err}");
        assert_eq!(err.reason(), Reason::InvalidSchedule);
        let err = Calendar::parse("* * * * * * *", "UTC").expect_err("no year field");
        assert_eq!(err.reason(), Reason::InvalidSchedule);
        let err = Calendar::parse("0 2 * * *", "Mars/Olympus_Mons").expect_err("bad zone");
        assert!(err.to_string().starts_with("spec.timeZone"), "{err}");
        assert_eq!(err.reason(), Reason::InvalidTimeZone);
        assert_eq!(parse_window("24h"), Ok(Duration::from_secs(86_400)));
        assert_eq!(parse_window("1h30m"), Ok(Duration::from_secs(5_400)));
        assert_eq!(parse_window("7d"), Ok(Duration::from_secs(604_800)));
        for bad in ["0s", "soon", ""] {
            let err = parse_window(bad).expect_err(bad);
            assert!(err.to_string().starts_with("spec.template.window"), "{err}");
        }
    }

    #[test]
    fn missed_slots_run_only_the_latest_within_the_deadline() {
        let hourly = cal("0 * * * *", "UTC");
        // (since, now, deadline, run, latest, skipped)
        type Row = (
            &'static str,
            &'static str,
            Option<u64>,
            Option<&'static str>,
            Option<&'static str>,
            u64,
        );
        let table: [Row; 7] = [
            // Nothing due yet.
            (
                "2026-01-01T00:00:00Z",
                "2026-01-01T00:59:59Z",
                None,
                None,
                None,
                0,
            ),
            // Exactly one due: it runs, nothing skipped.
            (
                "2026-01-01T00:00:00Z",
                "2026-01-01T01:00:00Z",
                None,
                Some("2026-01-01T01:00:00Z"),
                Some("2026-01-01T01:00:00Z"),
                0,
            ),
            // Down five and a half hours: the latest of five runs, four are skipped.
            (
                "2026-01-01T00:00:00Z",
                "2026-01-01T05:30:00Z",
                None,
                Some("2026-01-01T05:00:00Z"),
                Some("2026-01-01T05:00:00Z"),
                4,
            ),
            // Same, with a deadline the latest still meets.
            (
                "2026-01-01T00:00:00Z",
                "2026-01-01T05:30:00Z",
                Some(3600),
                Some("2026-01-01T05:00:00Z"),
                Some("2026-01-01T05:00:00Z"),
                4,
            ),
            // The latest is 30 minutes late, the deadline 10 minutes: none runs, all five skipped.
            (
                "2026-01-01T00:00:00Z",
                "2026-01-01T05:30:00Z",
                Some(600),
                None,
                Some("2026-01-01T05:00:00Z"),
                5,
            ),
            // The deadline boundary is inclusive.
            (
                "2026-01-01T00:00:00Z",
                "2026-01-01T01:10:00Z",
                Some(600),
                Some("2026-01-01T01:00:00Z"),
                Some("2026-01-01T01:00:00Z"),
                0,
            ),
            // The slot already handled is not due again.
            (
                "2026-01-01T01:00:00Z",
                "2026-01-01T01:00:00Z",
                None,
                None,
                None,
                0,
            ),
        ];
        for (since, now, deadline, run, latest, skipped) in table {
            let got = hourly.missed(ts(since), ts(now), deadline.map(Duration::from_secs));
            assert_eq!(
                got,
                Missed {
                    run: run.map(ts),
                    latest: latest.map(ts),
                    skipped
                },
                "since {since}, now {now}, deadline {deadline:?}"
            );
        }
        // A seconds-level schedule down for a day: the count stops at the cap.
        let every_second = cal("* * * * * *", "UTC");
        let got = every_second.missed(ts("2026-01-01T00:00:00Z"), ts("2026-01-02T00:00:00Z"), None);
        assert_eq!(got.run, Some(ts("2026-01-02T00:00:00Z")));
        assert_eq!(got.skipped, MAX_COUNTED_SLOTS - 1);
    }

    #[test]
    fn run_names_are_stable_valid_and_short() {
        let name = "n".repeat(52);
        let slot = slot_run_name(&name, ts("2026-12-01T00:00:05Z"));
        assert_eq!(slot, format!("{name}-1796083205"));
        assert!(slot.len() <= 63);
        let now = run_now_name(&name, "2026-12-01T00:00:00Z");
        assert!(now.len() <= 63, "{now}");
        assert_eq!(now, run_now_name(&name, "2026-12-01T00:00:00Z"));
        assert_ne!(now, run_now_name(&name, "2026-12-01T00:00:01Z"));
        // FNV-1a of "1" is 0xaf63ac4c86019afc: the low 28 bits.
        assert_eq!(run_now_name("s", "1"), "s-now6019afc");
    }
}
