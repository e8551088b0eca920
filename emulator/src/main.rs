//! `agentcore-emulator`: serves the batch-evaluation API locally until SIGTERM or Ctrl-C.

use std::{
    io::{IsTerminal, Write},
    net::SocketAddr,
    path::PathBuf,
    str::FromStr,
    time::Duration,
};

use agentcore_emulator::{
    EmulatorConfig, ErrorRate, FaultConfig, MalformedKind, Outcome, ScriptStep, StsSettings, Target,
};
use anyhow::{Context, bail};
use clap::{Parser, ValueEnum};

/// Local emulator of the Amazon Bedrock AgentCore batch-evaluation API.
///
/// Per-job behaviour can be set with tags on StartBatchEvaluation: `emulator:outcome`
/// (COMPLETED | COMPLETED_WITH_ERRORS | FAILED), `emulator:job-duration`,
/// `emulator:stop-duration`, `emulator:delete-duration` (e.g. `30s`).
/// OP in fault flags is an operation name (StartBatchEvaluation, ...) or `*` for all.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// Address to listen on (port 0 picks a free port).
    #[arg(
        long,
        env = "AGENTCORE_EMULATOR_LISTEN",
        default_value = "127.0.0.1:4566"
    )]
    listen: SocketAddr,
    /// How long a job runs before reaching its outcome.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    job_duration: Duration,
    /// How long a stopped job stays STOPPING.
    #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
    stop_duration: Duration,
    /// How long a deleted job stays DELETING.
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
    delete_duration: Duration,
    /// Outcome of jobs without an `emulator:outcome` tag.
    #[arg(long, default_value = "COMPLETED")]
    default_outcome: Outcome,
    /// Sessions per job when the request names none.
    #[arg(long, default_value_t = 10)]
    default_sessions: u32,
    /// Account id used in ARNs.
    #[arg(long, default_value = "123456789012")]
    account_id: String,
    /// Region for unsigned requests.
    #[arg(long, default_value = "us-east-1")]
    default_region: String,
    /// Fault settings as JSON (the format of GET /_emulator/faults); flags below add to it.
    #[arg(long, value_name = "FILE.json")]
    fault_config: Option<PathBuf>,
    /// OP=RATE[:ErrorCode]: answer that share of calls with an error (default throttling).
    #[arg(long, value_name = "OP=RATE[:CODE]")]
    error_rate: Vec<String>,
    /// OP=RATE: close that share of connections without an answer.
    #[arg(long, value_name = "OP=RATE")]
    drop_rate: Vec<String>,
    /// OP=DURATION: wait before handling each call.
    #[arg(long, value_name = "OP=DURATION")]
    latency: Vec<String>,
    /// OP=DURATION: perform each call, then wait before answering.
    #[arg(long, value_name = "OP=DURATION")]
    hold_after: Vec<String>,
    /// OP=KIND: malformed bodies (invalid-json, unknown-status, missing-required, epoch-timestamps).
    #[arg(long, value_name = "OP=KIND")]
    malformed: Vec<String>,
    /// OP=STEP[,STEP...]: scripted faults, e.g. `StartBatchEvaluation=3*error:InternalServerException`.
    /// Steps: [N*]error:CODE, error-after:CODE, drop, drop-after, delay:DUR, hold:DUR,
    /// malformed:KIND, pass. A step without N* lasts until faults are changed.
    #[arg(long, value_name = "OP=STEPS")]
    script: Vec<String>,
    /// Seed for ids and fault rates.
    #[arg(long)]
    seed: Option<u64>,
    /// Most active (PENDING, IN_PROGRESS, STOPPING) jobs per account and region; a Start
    /// beyond it answers ServiceQuotaExceededException (402). Unlimited when absent.
    #[arg(long, value_name = "N")]
    max_active_jobs: Option<u32>,
    /// Caps the lifetime of credentials issued by STS AssumeRole (e.g. 15s, to test refresh);
    /// otherwise DurationSeconds (default 1h) applies.
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    max_session_lifetime: Option<Duration>,
    /// A role ARN STS AssumeRole grants (repeatable); others answer AccessDenied. Without
    /// this flag every role can be assumed.
    #[arg(long, value_name = "ROLE_ARN")]
    assumable_role: Vec<String>,
    /// Log format on stderr (level via RUST_LOG, default info).
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

fn split_op(flag: &str, value: &str) -> anyhow::Result<(Target, String)> {
    let Some((op, rest)) = value.split_once('=') else {
        bail!("--{flag} {value:?}: expected OP=VALUE");
    };
    let target = op
        .parse::<Target>()
        .with_context(|| format!("--{flag} {value:?}"))?;
    Ok((target, rest.to_owned()))
}

fn parse_each<T>(
    flag: &str,
    values: &[String],
    mut apply: impl FnMut(&mut FaultConfig, Target, T),
    faults: &mut FaultConfig,
) -> anyhow::Result<()>
where
    T: FromStr,
    T::Err: std::error::Error + Send + Sync + 'static,
{
    for value in values {
        let (target, rest) = split_op(flag, value)?;
        let parsed = rest
            .parse::<T>()
            .with_context(|| format!("--{flag} {value:?}"))?;
        apply(faults, target, parsed);
    }
    Ok(())
}

/// A duration flag value (humantime), wrapped so it fits [`parse_each`].
struct Dur(Duration);

impl FromStr for Dur {
    type Err = humantime::DurationError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        humantime::parse_duration(s).map(Dur)
    }
}

/// A comma-separated list of script steps.
struct Steps(Vec<ScriptStep>);

impl FromStr for Steps {
    type Err = agentcore_emulator::FaultParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.split(',')
            .map(str::parse)
            .collect::<Result<_, _>>()
            .map(Steps)
    }
}

/// A probability, checked to be within 0..=1.
struct Rate(f64);

impl FromStr for Rate {
    type Err = agentcore_emulator::FaultParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        format!("{s}:ThrottlingException")
            .parse::<ErrorRate>()
            .map(|r| Rate(r.rate))
    }
}

fn faults_from(args: &Args) -> anyhow::Result<FaultConfig> {
    let mut faults = match &args.fault_config {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?
        }
        None => FaultConfig::default(),
    };
    parse_each(
        "error-rate",
        &args.error_rate,
        |f, t, r: ErrorRate| f.entry(t).error_rate = Some(r),
        &mut faults,
    )?;
    parse_each(
        "drop-rate",
        &args.drop_rate,
        |f, t, Rate(r)| f.entry(t).drop_rate = Some(r),
        &mut faults,
    )?;
    parse_each(
        "latency",
        &args.latency,
        |f, t, Dur(d)| f.entry(t).latency = Some(d),
        &mut faults,
    )?;
    parse_each(
        "hold-after",
        &args.hold_after,
        |f, t, Dur(d)| f.entry(t).hold_after = Some(d),
        &mut faults,
    )?;
    parse_each(
        "malformed",
        &args.malformed,
        |f, t, k: MalformedKind| f.entry(t).malformed = Some(k),
        &mut faults,
    )?;
    parse_each(
        "script",
        &args.script,
        |f, t, Steps(s)| f.entry(t).script.extend(s),
        &mut faults,
    )?;
    faults.validate()?;
    Ok(faults)
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

async fn shutdown_signal() -> anyhow::Result<()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate()).context("installing SIGTERM handler")?;
        tokio::select! {
            result = tokio::signal::ctrl_c() => result.context("waiting for Ctrl-C")?,
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    tokio::signal::ctrl_c()
        .await
        .context("waiting for Ctrl-C")?;
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    init_logging(args.log_format);
    let faults = faults_from(&args)?;
    let config = EmulatorConfig {
        listen: args.listen,
        account_id: args.account_id,
        default_region: args.default_region,
        job_duration: args.job_duration,
        stop_duration: args.stop_duration,
        delete_duration: args.delete_duration,
        default_outcome: args.default_outcome,
        default_session_count: args.default_sessions,
        faults,
        seed: args.seed,
        max_active_jobs: args.max_active_jobs,
        sts: StsSettings {
            max_session_lifetime: args.max_session_lifetime,
            assumable_roles: (!args.assumable_role.is_empty())
                .then(|| args.assumable_role.into_iter().collect()),
        },
    };
    let emulator = agentcore_emulator::start(config).await?;
    // Scripts and test fixtures wait for this line (and read the port from it).
    let mut stdout = std::io::stdout();
    writeln!(
        stdout,
        "agentcore-emulator listening on {}",
        emulator.endpoint_url()
    )?;
    stdout.flush()?;

    shutdown_signal().await?;
    tracing::info!("shutting down");
    emulator.shutdown().await?;
    Ok(())
}
