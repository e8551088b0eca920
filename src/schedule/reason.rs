//! Every condition and event reason a schedule writes, typed: [`Reason::as_str`] is the one place
//! each string is spelled.

/// A reason of a schedule's conditions or events.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    /// `Ready=True`: the schedule is followed.
    Scheduled,
    /// `Ready=True`: the schedule is valid but suspended.
    Suspended,
    /// `Stalled=False`.
    NotStalled,
    /// `Stalled=True`: `spec.schedule` does not parse.
    InvalidSchedule,
    /// `Stalled=True`: `spec.timeZone` is not a known IANA zone.
    InvalidTimeZone,
    /// `Stalled=True`: `spec.template.window` is not a positive duration.
    InvalidWindow,
    /// Event: a run was created for a slot.
    RunCreated,
    /// Event: a run was created for a run-now value.
    RunNow,
    /// Event (Warning): a slot was skipped because a run was active (`Forbid`).
    SkippedSlot,
    /// Event: the active run is deleted to make room (`Replace`).
    ReplacingRun,
    /// Event (Warning): slots were missed (downtime, suspension, starting deadline).
    MissedSchedule,
}

impl Reason {
    /// The reason as written in conditions and events.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Scheduled => "Scheduled",
            Self::Suspended => "Suspended",
            Self::NotStalled => "NotStalled",
            Self::InvalidSchedule => "InvalidSchedule",
            Self::InvalidTimeZone => "InvalidTimeZone",
            Self::InvalidWindow => "InvalidWindow",
            Self::RunCreated => "RunCreated",
            Self::RunNow => "RunNow",
            Self::SkippedSlot => "SkippedSlot",
            Self::ReplacingRun => "ReplacingRun",
            Self::MissedSchedule => "MissedSchedule",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_are_camel_case_as_the_api_server_requires() {
        let all = [
            Reason::Scheduled,
            Reason::Suspended,
            Reason::NotStalled,
            Reason::InvalidSchedule,
            Reason::InvalidTimeZone,
            Reason::InvalidWindow,
            Reason::RunCreated,
            Reason::RunNow,
            Reason::SkippedSlot,
            Reason::ReplacingRun,
            Reason::MissedSchedule,
        ];
        for reason in all {
            let text = reason.as_str();
            assert!(
                text.starts_with(|c: char| c.is_ascii_uppercase())
                    && text.chars().all(|c| c.is_ascii_alphanumeric()),
                "{text}"
            );
            assert_eq!(format!("{reason:?}"), text);
        }
    }
}
