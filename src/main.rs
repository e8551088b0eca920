//! `agentcore-operator`: `crd` prints the CRD, `run` runs the operator.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use agentcore_operator::{
    aws::{AgentCore, AwsSettings},
    batch_evaluation::reconciler::Settings,
    controller::{self, LeaderElection, RunConfig},
    crdgen,
    metrics::Metrics,
    telemetry::{self, LogFormat},
};
use anyhow::Context as _;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    version,
    about = "Kubernetes operator for Amazon Bedrock AgentCore batch evaluations"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print the BatchEvaluation CustomResourceDefinition as YAML.
    Crd,
    /// Run the operator (kubeconfig or in-cluster config).
    Run(Box<RunArgs>),
}

#[derive(clap::Args)]
struct RunArgs {
    /// Watch only this namespace (default: all namespaces).
    #[arg(long, env = "WATCH_NAMESPACE")]
    namespace: Option<String>,
    /// Default AWS region; `spec.region` overrides it per object.
    #[arg(long, env = "AWS_REGION")]
    aws_region: Option<String>,
    /// Endpoint override for the AgentCore API (for example the local emulator).
    #[arg(long, env = "AWS_ENDPOINT_URL_BEDROCK_AGENTCORE")]
    aws_endpoint_url: Option<String>,
    /// How often a running job is polled (jittered ±10%).
    #[arg(long, default_value = "15s", value_parser = humantime::parse_duration)]
    poll_interval: Duration,
    /// Objects reconciled at the same time.
    #[arg(long, default_value_t = 16)]
    max_concurrent_reconciles: u16,
    /// Log line format.
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value = "text")]
    log_format: LogFormat,
    /// Address of /metrics, /healthz and /readyz.
    #[arg(long, default_value = "0.0.0.0:8080")]
    metrics_addr: SocketAddr,
    /// Reconcile only while holding a Lease (run several replicas safely).
    #[arg(long)]
    leader_election: bool,
    /// Name of the Lease.
    #[arg(long, default_value = "agentcore-operator")]
    lease_name: String,
    /// Namespace of the Lease (default: the pod's namespace).
    #[arg(long, env = "POD_NAMESPACE")]
    lease_namespace: Option<String>,
    /// How long a Lease stays valid without renewal; a standby takes over after it.
    #[arg(long, default_value = "15s", value_parser = humantime::parse_duration)]
    lease_duration: Duration,
    /// Limit for one AWS operation, retries included.
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    aws_operation_timeout: Duration,
    /// Limit for one attempt of an AWS operation.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    aws_attempt_timeout: Duration,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Crd => {
            print!("{}", crdgen::crd_yaml()?);
            Ok(())
        }
        Command::Run(args) => run(*args).await,
    }
}

async fn run(args: RunArgs) -> anyhow::Result<()> {
    telemetry::init(args.log_format);
    let metrics = Arc::new(Metrics::default());
    let aws = AgentCore::new(
        AwsSettings {
            default_region: args.aws_region.clone(),
            endpoint_url: args.aws_endpoint_url.clone(),
            operation_timeout: args.aws_operation_timeout,
            attempt_timeout: args.aws_attempt_timeout,
        },
        metrics.clone(),
    )
    .await;
    let default_region = aws.default_region().context(
        "no AWS region: set --aws-region or AWS_REGION (objects may still override it with spec.region)",
    )?;
    let client = kube::Client::try_default()
        .await
        .context("no Kubernetes configuration (KUBECONFIG, ~/.kube/config or in-cluster)")?;
    let identity = std::env::var("POD_NAME")
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| format!("agentcore-operator-{}", std::process::id()));
    let leader_election = if args.leader_election {
        let lease_namespace = match args.lease_namespace {
            Some(ns) => ns,
            None => client.default_namespace().to_owned(),
        };
        Some(LeaderElection {
            lease_name: args.lease_name,
            lease_namespace,
            lease_duration: args.lease_duration,
        })
    } else {
        None
    };
    tracing::info!(
        version = env!("CARGO_PKG_VERSION"),
        namespace = args.namespace.as_deref().unwrap_or("<all>"),
        region = %default_region,
        endpoint = args.aws_endpoint_url.as_deref().unwrap_or("<AWS>"),
        "starting agentcore-operator"
    );
    let config = RunConfig {
        namespace: args.namespace,
        settings: Settings {
            poll_interval: args.poll_interval,
            default_region,
        },
        max_concurrent_reconciles: args.max_concurrent_reconciles,
        metrics_addr: args.metrics_addr,
        leader_election,
        identity,
    };
    controller::run(client, aws, metrics, config).await?;
    tracing::info!("stopped");
    Ok(())
}
