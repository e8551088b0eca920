//! AWS faults during lifecycles: one row of data per fault (what the emulator is told to do,
//! and how the injected faults are counted), and one phase that runs any row.

use std::time::{Duration, Instant};

use agentcore_emulator::{
    ErrorCode, FaultAction, FaultConfig, OUTCOME_DROPPED, Operation, OperationFaults, ScriptStep,
    Target,
};

use crate::{
    Ctx,
    budget::{calls_between, delta_all},
    lifecycle::{lifecycles, record_lifecycles},
    support::{
        faults::{error_rate, script},
        metrics::{aws_operations, scrape},
        object::{cond_reason, str_at},
        report::Row,
    },
};

/// Beyond the 3 s attempt and 10 s operation timeouts.
const LATENCY: Duration = Duration::from_secs(12);

pub struct AwsFault {
    slug: &'static str,
    title: &'static str,
    /// The emulator's faults for the whole phase.
    faults: fn() -> FaultConfig,
    injected: Injected,
}

/// How the faults the phase injected are counted for the summary.
#[derive(Clone, Copy)]
enum Injected {
    Nothing,
    /// Answers with this error code (the outcome label of the emulator's stats).
    Errors {
        code: &'static str,
        http: u16,
    },
    /// Script steps that delayed or held a call.
    Delays,
    Drops,
    /// A period of 403 in the middle of the phase, started by the phase itself.
    Denial,
}

pub const AWS_FAULTS: [AwsFault; 6] = [
    AwsFault {
        slug: "baseline",
        title: "AWS baseline (no faults)",
        faults: FaultConfig::default,
        injected: Injected::Nothing,
    },
    AwsFault {
        slug: "throttling",
        title: "AWS 30% throttling (429)",
        faults: || error_rate(Target::All, 0.3, ErrorCode::ThrottlingException),
        injected: Injected::Errors {
            code: "ThrottlingException",
            http: 429,
        },
    },
    AwsFault {
        slug: "server-errors",
        title: "AWS 10% HTTP 500",
        faults: || error_rate(Target::All, 0.1, ErrorCode::InternalServerException),
        injected: Injected::Errors {
            code: "InternalServerException",
            http: 500,
        },
    },
    AwsFault {
        slug: "latency",
        title: "AWS latency beyond the operation timeout",
        faults: latency_faults,
        injected: Injected::Delays,
    },
    AwsFault {
        slug: "drops",
        title: "AWS dropped connections",
        faults: drop_faults,
        injected: Injected::Drops,
    },
    AwsFault {
        slug: "denial",
        title: "AWS 403 period, then recovery",
        faults: FaultConfig::default,
        injected: Injected::Denial,
    },
];

/// One call in 4 waits 12 s before it is handled, one in 12 is performed and then answered 12 s
/// late: both beyond the 3 s attempt and 10 s operation timeouts.
fn latency_faults() -> FaultConfig {
    let mut f = FaultConfig::default();
    f.entry(Target::All).script = script(3000, |i| {
        if i % 4 == 1 {
            FaultAction::Delay { duration: LATENCY }
        } else if i % 6 == 3 {
            FaultAction::Hold { duration: LATENCY }
        } else {
            FaultAction::Pass
        }
    });
    f
}

/// Reads lose a fifth of their connections before the call; every third Start, Stop and Delete
/// is performed and then has its connection cut.
fn drop_faults() -> FaultConfig {
    let mut f = FaultConfig::default();
    f.entry(Target::All).drop_rate = Some(0.2);
    for op in [
        Operation::StartBatchEvaluation,
        Operation::StopBatchEvaluation,
        Operation::DeleteBatchEvaluation,
    ] {
        f.entry(Target::Operation(op)).script = script(3000, |i| {
            if i % 3 == 0 {
                FaultAction::Drop { after_action: true }
            } else {
                FaultAction::Pass
            }
        });
    }
    f
}

/// Steps of the script consumed so far that were delays or holds, over every operation.
fn consumed_latency_steps(initial: &FaultConfig, now: &FaultConfig) -> u64 {
    let slow = |s: &[ScriptStep]| {
        s.iter()
            .filter(|s| {
                matches!(
                    s.action,
                    FaultAction::Delay { .. } | FaultAction::Hold { .. }
                )
            })
            .count() as u64
    };
    Operation::ALL
        .into_iter()
        .map(|op| {
            let at_start: OperationFaults = initial.for_operation(op);
            let left = now
                .0
                .get(&Target::Operation(op))
                .map(|f| f.script.as_slice())
                .unwrap_or_default();
            slow(&at_start.script).saturating_sub(slow(left))
        })
        .sum()
}

/// Lifecycles under one fault; the row counts what was injected and what it cost.
pub async fn run(ctx: &Ctx<'_>, fault: &AwsFault) -> Row {
    let ns = format!("aws-{}", fault.slug);
    let mut row = Row::new(fault.title, &[&ns]);
    if let Err(e) = ctx.cluster.create_namespace(&ns).await {
        row.fail(format!("namespace: {e:#}"));
        return row;
    }
    let faults = (fault.faults)();
    let ops_before = scrape(ctx.metrics_port)
        .await
        .map(|m| aws_operations(&m))
        .ok();
    let before = ctx.emulator.stats();
    if let Err(e) = ctx.emulator.set_faults(&faults) {
        row.fail(format!("faults: {e}"));
        return row;
    }
    let denial_period = async {
        match fault.injected {
            Injected::Denial => Some(denial(ctx, &ns).await),
            _ => None,
        }
    };
    let (outcomes, denied) = tokio::join!(
        lifecycles(ctx, &ns, "lc", ctx.scale.per_fault),
        denial_period
    );
    let left = ctx.emulator.faults();
    ctx.emulator.clear_faults();
    if matches!(fault.injected, Injected::Delays) {
        // Calls held by the emulator finish their delay after the clients gave up; let them
        // land before counting.
        tokio::time::sleep(LATENCY + Duration::from_secs(1)).await;
    }
    let after = ctx.emulator.stats();
    let calls = calls_between(&before, &after);
    record_lifecycles(&mut row, &outcomes, Some(calls));
    let ops_after = scrape(ctx.metrics_port)
        .await
        .map(|m| aws_operations(&m))
        .ok();
    if let (Some(a), Some(b)) = (ops_before, ops_after) {
        let ops = b.saturating_sub(a);
        #[allow(clippy::cast_precision_loss)]
        let ratio = calls as f64 / ops.max(1) as f64;
        row.note(format!(
            "{ops} AWS operations by the operator, {calls} requests reaching the emulator ({ratio:.2} attempts per operation; the SDK allows 3)"
        ));
    }
    row.faults = match fault.injected {
        Injected::Nothing => "none".to_owned(),
        Injected::Errors { code, http } => {
            format!("{} × {http} {code}", delta_all(&before, &after, code))
        }
        Injected::Delays => format!(
            "{} calls delayed or held 12 s",
            consumed_latency_steps(&faults, &left)
        ),
        Injected::Drops => format!(
            "{} connections dropped",
            delta_all(&before, &after, OUTCOME_DROPPED)
        ),
        Injected::Denial => format!(
            "{} × 403 AccessDeniedException over {} s",
            delta_all(&before, &after, "AccessDeniedException"),
            ctx.scale.denial.as_secs()
        ),
    };
    if let Some(denied) = denied {
        check_denial(ctx, &ns, denied, &mut row).await;
    }
    row
}

/// An object that showed AccessDenied during the 403 period: its name and Stalled reason.
type Denied = anyhow::Result<Option<(String, String)>>;

/// Two seconds in, every call is answered 403 for the denial period; then the faults clear.
async fn denial(ctx: &Ctx<'_>, ns: &str) -> Denied {
    tokio::time::sleep(Duration::from_secs(2)).await;
    ctx.emulator.set_faults(&error_rate(
        Target::All,
        1.0,
        ErrorCode::AccessDeniedException,
    ))?;
    let began = Instant::now();
    let seen = ctx
        .monitor
        .wait("an AccessDenied condition", ctx.scale.denial, |s| {
            s.in_namespace(ns)
                .any(|o| cond_reason(o, "Ready") == "AccessDenied")
        })
        .await;
    let observed = seen.ok().and_then(|snap| {
        snap.in_namespace(ns)
            .find(|o| cond_reason(o, "Ready") == "AccessDenied")
            .map(|obj| {
                (
                    str_at(obj, "/metadata/name").to_owned(),
                    cond_reason(obj, "Stalled").to_owned(),
                )
            })
    });
    tokio::time::sleep(ctx.scale.denial.saturating_sub(began.elapsed())).await;
    ctx.emulator.clear_faults();
    Ok(observed)
}

/// The 403 period must show as a condition and a Warning event.
async fn check_denial(ctx: &Ctx<'_>, ns: &str, denied: Denied, row: &mut Row) {
    match denied {
        Ok(Some((name, stalled))) => {
            let events = ctx.cluster.events_for(ns, &name).await.unwrap_or_default();
            if events
                .iter()
                .any(|(t, r, _)| t == "Warning" && r == "AccessDenied")
            {
                row.note(format!(
                    "during the 403 period {ns}/{name} showed Ready=False AccessDenied (Stalled reason {stalled}) and a Warning event AccessDenied"
                ));
            } else {
                row.fail(format!(
                    "no Warning event AccessDenied for {name}: {events:?}"
                ));
            }
        }
        Ok(None) => {
            row.fail("no object showed an AccessDenied condition during the 403 period");
        }
        Err(e) => row.fail(format!("{e:#}")),
    }
}
