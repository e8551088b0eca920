//! Fault injection: per-operation error and drop rates, added latency, holding a response
//! after the action was performed, malformed responses, and scripted sequences ("the next 3
//! StartBatchEvaluation calls fail with 500"). Set at start-up and replaced at run time.

use std::{collections::BTreeMap, fmt, str::FromStr, sync::Mutex, time::Duration};

use rand::{Rng, SeedableRng, rngs::StdRng};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::{operation::Operation, wire::ErrorCode};

/// Which operations a fault entry applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Target {
    /// Every operation that has no entry of its own (`"*"`).
    All,
    Operation(Operation),
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::All => f.write_str("*"),
            Target::Operation(op) => f.write_str(op.as_str()),
        }
    }
}

impl FromStr for Target {
    type Err = FaultParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "*" | "all" => Ok(Target::All),
            _ => s
                .parse()
                .map(Target::Operation)
                .map_err(|e| FaultParseError(format!("{e}; or * for all operations"))),
        }
    }
}

impl Serialize for Target {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Target {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Fault settings by operation. An operation with its own entry ignores the `"*"` entry.
///
/// JSON form (as served by `/_emulator/faults`):
/// `{"StartBatchEvaluation": {"script": [{"action": "error", "error": "InternalServerException", "times": 3}]},
///   "*": {"errorRate": {"rate": 0.3, "error": "ThrottlingException"}, "latency": "50ms"}}`
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct FaultConfig(pub BTreeMap<Target, OperationFaults>);

impl FaultConfig {
    /// The entry for `target`, created empty if absent.
    pub fn entry(&mut self, target: Target) -> &mut OperationFaults {
        self.0.entry(target).or_default()
    }

    /// The settings in force for `op`.
    pub fn for_operation(&self, op: Operation) -> OperationFaults {
        self.0
            .get(&Target::Operation(op))
            .or_else(|| self.0.get(&Target::All))
            .cloned()
            .unwrap_or_default()
    }

    /// Rejects rates outside `[0, 1]`.
    pub fn validate(&self) -> Result<(), FaultParseError> {
        for (target, faults) in &self.0 {
            let rates = [faults.error_rate.as_ref().map(|e| e.rate), faults.drop_rate];
            if let Some(rate) = rates
                .into_iter()
                .flatten()
                .find(|r| !(0.0..=1.0).contains(r))
            {
                return Err(FaultParseError(format!(
                    "{target}: rate {rate} is outside 0..=1"
                )));
            }
        }
        Ok(())
    }
}

/// Faults for one operation (or for all, under `"*"`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OperationFaults {
    /// Answer this share of calls with an error, without performing them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_rate: Option<ErrorRate>,
    /// Close this share of connections without answering, without performing the call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drop_rate: Option<f64>,
    /// Wait this long before handling each call.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "opt_duration"
    )]
    pub latency: Option<Duration>,
    /// Perform the call, then wait this long before answering: lets a test kill a client
    /// while the job already exists.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "opt_duration"
    )]
    pub hold_after: Option<Duration>,
    /// Answer every call with a malformed body.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub malformed: Option<MalformedKind>,
    /// Steps consumed one per call, front first; while a step applies, the rates above do not.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub script: Vec<ScriptStep>,
}

/// An error returned for a share of calls.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ErrorRate {
    pub rate: f64,
    pub error: ErrorCode,
}

impl FromStr for ErrorRate {
    type Err = FaultParseError;

    /// `RATE[:ErrorCode]`, e.g. `0.3:ThrottlingException`; the code defaults to throttling.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (rate, code) = s.split_once(':').unwrap_or((s, "ThrottlingException"));
        let error = code.parse().map_err(|e| FaultParseError(format!("{e}")))?;
        Ok(ErrorRate {
            rate: parse_rate(rate)?,
            error,
        })
    }
}

fn parse_rate(s: &str) -> Result<f64, FaultParseError> {
    match s.trim().parse::<f64>() {
        Ok(r) if (0.0..=1.0).contains(&r) => Ok(r),
        _ => Err(FaultParseError(format!(
            "rate {s:?} must be a number in 0..=1"
        ))),
    }
}

/// How a malformed response is broken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum MalformedKind {
    /// The body is cut in half, so it is not JSON.
    InvalidJson,
    /// Every `status` is `ARCHIVED`, a value the model does not define.
    UnknownStatus,
    /// The output's required members are left out.
    MissingRequired,
    /// Timestamps are epoch seconds instead of ISO-8601 strings.
    EpochTimestamps,
}

impl MalformedKind {
    const NAMES: [(&'static str, MalformedKind); 4] = [
        ("invalid-json", MalformedKind::InvalidJson),
        ("unknown-status", MalformedKind::UnknownStatus),
        ("missing-required", MalformedKind::MissingRequired),
        ("epoch-timestamps", MalformedKind::EpochTimestamps),
    ];

    fn name(self) -> &'static str {
        Self::NAMES
            .iter()
            .find(|(_, k)| *k == self)
            .map_or("", |(n, _)| n)
    }
}

impl FromStr for MalformedKind {
    type Err = FaultParseError;

    /// Accepts `invalid-json` or `invalidJson` (and likewise for the others).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let wanted: String = s.chars().filter(|c| *c != '-' && *c != '_').collect();
        Self::NAMES
            .iter()
            .find(|(name, _)| name.replace('-', "").eq_ignore_ascii_case(&wanted))
            .map(|(_, kind)| *kind)
            .ok_or_else(|| {
                FaultParseError(format!(
                    "unknown malformed kind {s:?} (expected invalid-json, unknown-status, missing-required or epoch-timestamps)"
                ))
            })
    }
}

/// One step of a fault script.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScriptStep {
    #[serde(flatten)]
    pub action: FaultAction,
    /// How many calls the step covers; absent means every call until the faults are changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub times: Option<u32>,
}

/// What a script step does to one call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(
    tag = "action",
    rename_all = "camelCase",
    rename_all_fields = "camelCase"
)]
pub enum FaultAction {
    /// Answer with an error; with `after_action` the call is performed first.
    Error {
        error: ErrorCode,
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        after_action: bool,
    },
    /// Close the connection without answering; with `after_action` the call is performed first.
    Drop {
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        after_action: bool,
    },
    /// Wait before handling the call.
    Delay {
        #[serde(with = "duration")]
        duration: Duration,
    },
    /// Perform the call, then wait before answering.
    Hold {
        #[serde(with = "duration")]
        duration: Duration,
    },
    /// Answer with a malformed body.
    Malformed { kind: MalformedKind },
    /// Answer normally (and skip the random faults).
    Pass,
}

impl FromStr for ScriptStep {
    type Err = FaultParseError;

    /// `[N*]ACTION[:ARG]`: `3*error:InternalServerException`, `error-after:ThrottlingException`,
    /// `drop`, `drop-after`, `delay:2s`, `hold:5s`, `malformed:invalid-json`, `pass`.
    /// Without `N*` the step applies to every later call.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        let (times, rest) = match s.split_once('*') {
            Some((n, rest)) => {
                let n: u32 = n
                    .trim()
                    .parse()
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or_else(|| FaultParseError(format!("bad repeat count in {s:?}")))?;
                (Some(n), rest)
            }
            None => (None, s),
        };
        let (name, arg) = match rest.split_once(':') {
            Some((name, arg)) => (name, Some(arg)),
            None => (rest, None),
        };
        let need = |what: &str| {
            arg.ok_or_else(|| FaultParseError(format!("{name} needs {what}, e.g. {name}:…")))
        };
        let code = |arg: &str| {
            arg.parse::<ErrorCode>()
                .map_err(|e| FaultParseError(e.to_string()))
        };
        let dur = |arg: &str| {
            humantime::parse_duration(arg)
                .map_err(|e| FaultParseError(format!("bad duration {arg:?}: {e}")))
        };
        let action = match name {
            "error" => FaultAction::Error {
                error: code(need("an error code")?)?,
                after_action: false,
            },
            "error-after" => FaultAction::Error {
                error: code(need("an error code")?)?,
                after_action: true,
            },
            "drop" => FaultAction::Drop {
                after_action: false,
            },
            "drop-after" => FaultAction::Drop { after_action: true },
            "delay" => FaultAction::Delay {
                duration: dur(need("a duration")?)?,
            },
            "hold" => FaultAction::Hold {
                duration: dur(need("a duration")?)?,
            },
            "malformed" => FaultAction::Malformed {
                kind: need("a kind")?.parse()?,
            },
            "pass" => FaultAction::Pass,
            other => {
                return Err(FaultParseError(format!(
                    "unknown fault action {other:?} (expected error, error-after, drop, drop-after, delay, hold, malformed or pass)"
                )));
            }
        };
        Ok(ScriptStep { action, times })
    }
}

impl fmt::Display for ScriptStep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(n) = self.times {
            write!(f, "{n}*")?;
        }
        match &self.action {
            FaultAction::Error {
                error,
                after_action: false,
            } => write!(f, "error:{error}"),
            FaultAction::Error {
                error,
                after_action: true,
            } => write!(f, "error-after:{error}"),
            FaultAction::Drop {
                after_action: false,
            } => f.write_str("drop"),
            FaultAction::Drop { after_action: true } => f.write_str("drop-after"),
            FaultAction::Delay { duration } => {
                write!(f, "delay:{}", humantime::format_duration(*duration))
            }
            FaultAction::Hold { duration } => {
                write!(f, "hold:{}", humantime::format_duration(*duration))
            }
            FaultAction::Malformed { kind } => write!(f, "malformed:{}", kind.name()),
            FaultAction::Pass => f.write_str("pass"),
        }
    }
}

/// A fault setting that could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct FaultParseError(pub String);

/// Durations as humantime strings in JSON (`"250ms"`).
pub(crate) mod duration {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub(crate) fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&humantime::format_duration(*d))
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let s = String::deserialize(d)?;
        humantime::parse_duration(&s).map_err(serde::de::Error::custom)
    }
}

/// Optional durations as humantime strings in JSON, `null` when absent.
pub(crate) mod opt_duration {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub(crate) fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => super::duration::serialize(d, s),
            None => s.serialize_none(),
        }
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Duration>, D::Error> {
        Option::<String>::deserialize(d)?
            .map(|s| humantime::parse_duration(&s).map_err(serde::de::Error::custom))
            .transpose()
    }
}

/// How one call is to be disturbed.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct FaultPlan {
    pub latency: Option<Duration>,
    pub before: Option<Injection>,
    pub after: Option<Injection>,
    pub hold: Option<Duration>,
    pub malformed: Option<MalformedKind>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Injection {
    Error(ErrorCode),
    Drop,
}

/// The faults in force, with script progress and the random source for the rates.
pub(crate) struct FaultEngine {
    initial: FaultConfig,
    state: Mutex<EngineState>,
}

struct EngineState {
    active: [OperationFaults; 5],
    rng: StdRng,
}

fn expand(config: &FaultConfig) -> [OperationFaults; 5] {
    Operation::ALL.map(|op| config.for_operation(op))
}

impl FaultEngine {
    pub(crate) fn new(initial: FaultConfig, seed: Option<u64>) -> Self {
        let rng = seed.map_or_else(StdRng::from_os_rng, StdRng::seed_from_u64);
        let active = expand(&initial);
        FaultEngine {
            initial,
            state: Mutex::new(EngineState { active, rng }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, EngineState> {
        // A panic while holding the lock cannot leave the state half-updated in a way that
        // matters for fault injection, so recover from poisoning.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Replaces every operation's faults (script progress starts over).
    pub(crate) fn set(&self, config: &FaultConfig) {
        self.lock().active = expand(config);
    }

    /// Back to the faults given at start-up.
    pub(crate) fn reset(&self) {
        self.set(&self.initial.clone());
    }

    /// What is in force now, per operation, with the remaining script steps.
    pub(crate) fn current(&self) -> FaultConfig {
        let state = self.lock();
        FaultConfig(
            Operation::ALL
                .into_iter()
                .zip(state.active.iter())
                .filter(|(_, faults)| **faults != OperationFaults::default())
                .map(|(op, faults)| (Target::Operation(op), faults.clone()))
                .collect(),
        )
    }

    /// Decides how the next call of `op` is disturbed, consuming a script step if one applies.
    pub(crate) fn plan(&self, op: Operation) -> FaultPlan {
        let mut state = self.lock();
        let EngineState { active, rng } = &mut *state;
        let faults = &mut active[op.index()];
        let mut plan = FaultPlan {
            latency: faults.latency,
            hold: faults.hold_after,
            malformed: faults.malformed,
            ..FaultPlan::default()
        };
        faults.script.retain(|step| step.times != Some(0));
        if let Some(step) = faults.script.first_mut() {
            let action = step.action.clone();
            match &mut step.times {
                Some(1) => {
                    faults.script.remove(0);
                }
                Some(n) => *n -= 1,
                None => {}
            }
            match action {
                FaultAction::Error {
                    error,
                    after_action: false,
                } => {
                    plan.before = Some(Injection::Error(error));
                }
                FaultAction::Error {
                    error,
                    after_action: true,
                } => {
                    plan.after = Some(Injection::Error(error));
                }
                FaultAction::Drop {
                    after_action: false,
                } => plan.before = Some(Injection::Drop),
                FaultAction::Drop { after_action: true } => plan.after = Some(Injection::Drop),
                FaultAction::Delay { duration } => {
                    plan.latency = Some(plan.latency.unwrap_or_default() + duration);
                }
                FaultAction::Hold { duration } => plan.hold = Some(duration),
                FaultAction::Malformed { kind } => plan.malformed = Some(kind),
                FaultAction::Pass => {}
            }
            return plan;
        }
        if faults
            .drop_rate
            .is_some_and(|rate| rng.random::<f64>() < rate)
        {
            plan.before = Some(Injection::Drop);
        } else if let Some(e) = faults.error_rate.filter(|e| rng.random::<f64>() < e.rate) {
            plan.before = Some(Injection::Error(e.error));
        }
        plan
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const START: Operation = Operation::StartBatchEvaluation;
    const GET: Operation = Operation::GetBatchEvaluation;

    #[test]
    fn script_steps_parse_and_print() {
        for text in [
            "3*error:InternalServerException",
            "error-after:ThrottlingException",
            "drop",
            "2*drop-after",
            "delay:2s",
            "hold:500ms",
            "malformed:invalid-json",
            "pass",
        ] {
            let step: ScriptStep = text.parse().unwrap();
            assert_eq!(step.to_string(), text);
        }
        assert_eq!(
            "malformed:unknownStatus"
                .parse::<ScriptStep>()
                .unwrap()
                .action,
            FaultAction::Malformed {
                kind: MalformedKind::UnknownStatus
            }
        );
        assert!("0*drop".parse::<ScriptStep>().is_err());
        assert!("error".parse::<ScriptStep>().is_err());
        assert!("error:Teapot".parse::<ScriptStep>().is_err());
        assert!("explode".parse::<ScriptStep>().is_err());
    }

    #[test]
    fn error_rates_parse() {
        let rate: ErrorRate = "0.3:AccessDeniedException".parse().unwrap();
        assert_eq!(
            rate,
            ErrorRate {
                rate: 0.3,
                error: ErrorCode::AccessDeniedException
            }
        );
        assert_eq!(
            "1".parse::<ErrorRate>().unwrap().error,
            ErrorCode::ThrottlingException
        );
        assert!("1.5".parse::<ErrorRate>().is_err());
    }

    #[test]
    fn json_form_round_trips() {
        let json = r#"{
            "StartBatchEvaluation": {
                "script": [
                    {"action": "error", "error": "InternalServerException", "times": 3},
                    {"action": "drop", "afterAction": true},
                    {"action": "hold", "duration": "2s"}
                ],
                "latency": "50ms"
            },
            "*": {"errorRate": {"rate": 0.5, "error": "ThrottlingException"}, "malformed": "unknownStatus"}
        }"#;
        let config: FaultConfig = serde_json::from_str(json).unwrap();
        let start = config.for_operation(START);
        assert_eq!(start.latency, Some(Duration::from_millis(50)));
        assert_eq!(
            start.script[1].action,
            FaultAction::Drop { after_action: true }
        );
        assert_eq!(
            config.for_operation(GET).malformed,
            Some(MalformedKind::UnknownStatus)
        );
        let back: FaultConfig =
            serde_json::from_value(serde_json::to_value(&config).unwrap()).unwrap();
        assert_eq!(back, config);
        assert!(serde_json::from_str::<FaultConfig>(r#"{"Nope": {}}"#).is_err());
        assert!(serde_json::from_str::<FaultConfig>(r#"{"*": {"latncy": "1s"}}"#).is_err());
    }

    #[test]
    fn scripts_are_consumed_in_order_then_normal_service_resumes() {
        let mut config = FaultConfig::default();
        config.entry(Target::Operation(START)).script = vec![
            "2*error:InternalServerException".parse().unwrap(),
            "drop-after".parse().unwrap(),
        ];
        config.entry(Target::Operation(START)).script[1].times = Some(1);
        let engine = FaultEngine::new(config, Some(1));
        let err = Some(Injection::Error(ErrorCode::InternalServerException));
        assert_eq!(engine.plan(START).before, err);
        assert_eq!(
            engine.plan(GET),
            FaultPlan::default(),
            "other operations are unaffected"
        );
        assert_eq!(engine.plan(START).before, err);
        assert_eq!(engine.plan(START).after, Some(Injection::Drop));
        assert_eq!(engine.plan(START), FaultPlan::default());
        assert!(engine.current().0.is_empty());
        engine.reset();
        assert_eq!(
            engine.plan(START).before,
            err,
            "reset restores the start-up script"
        );
    }

    #[test]
    fn open_ended_steps_last_until_cleared() {
        let engine = FaultEngine::new(FaultConfig::default(), Some(1));
        let mut config = FaultConfig::default();
        config.entry(Target::All).script = vec!["error:AccessDeniedException".parse().unwrap()];
        engine.set(&config);
        for _ in 0..5 {
            assert_eq!(
                engine.plan(GET).before,
                Some(Injection::Error(ErrorCode::AccessDeniedException))
            );
        }
        engine.set(&FaultConfig::default());
        assert_eq!(engine.plan(GET), FaultPlan::default());
    }

    #[test]
    fn rates_are_honoured_roughly_and_reproducibly_with_a_seed() {
        let mut config = FaultConfig::default();
        config.entry(Target::All).error_rate = Some("0.3:ThrottlingException".parse().unwrap());
        let count = |engine: &FaultEngine| {
            (0..10_000)
                .filter(|_| engine.plan(GET).before.is_some())
                .count()
        };
        let a = count(&FaultEngine::new(config.clone(), Some(7)));
        let b = count(&FaultEngine::new(config, Some(7)));
        assert_eq!(a, b);
        assert!((2500..3500).contains(&a), "{a} of 10000");
    }

    #[test]
    fn validate_rejects_out_of_range_rates() {
        let mut config = FaultConfig::default();
        config.entry(Target::All).drop_rate = Some(1.5);
        assert!(config.validate().is_err());
    }
}
