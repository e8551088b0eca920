//! `agentcore-operator`: `crd [schedule]` prints a CRD, `run` runs the operator.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use agentcore_operator::{
    aws::{AgentCore, AwsSettings},
    batch_evaluation::reconciler::Settings,
    controller::{self, LeaderElection, RunConfig},
    crdgen,
    metrics::Metrics,
    telemetry::{self, LogFormat},
    tenancy::{Adoption, NamespaceRole, Tenancy, Unmapped},
};
use anyhow::Context as _;
use clap::{Parser, Subcommand};

/// jemalloc instead of glibc malloc: its per-size-class allocation is cheaper among the many small,
/// long-lived allocations of a large cache (measured in docs/benchmarks.md).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

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
    /// Print a CustomResourceDefinition as YAML (default: BatchEvaluation).
    Crd {
        #[arg(value_enum, default_value_t = CrdKind::Evaluation)]
        kind: CrdKind,
    },
    /// Run the operator (kubeconfig or in-cluster config).
    Run(Box<RunArgs>),
    /// Delete every BatchEvaluationSchedule, then every BatchEvaluation (of --namespace, or of all
    /// namespaces), and wait until the
    /// running operator has cleaned up their jobs and they are gone. The Helm chart's pre-delete
    /// hook runs it, so `helm uninstall` strands no object behind a finalizer.
    Cleanup(CleanupArgs),
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum CrdKind {
    /// `BatchEvaluation`.
    Evaluation,
    /// `BatchEvaluationSchedule`.
    Schedule,
}

#[derive(clap::Args)]
struct CleanupArgs {
    /// Only this namespace (default: all namespaces).
    #[arg(long, env = "WATCH_NAMESPACE")]
    namespace: Option<String>,
    /// Give up (and fail, naming what is left) after this long.
    #[arg(long, default_value = "4m", value_parser = humantime::parse_duration)]
    timeout: Duration,
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
    /// Endpoint override for STS, used to assume the namespaces' roles (for example the local
    /// emulator).
    #[arg(long, env = "AWS_ENDPOINT_URL_STS")]
    aws_sts_endpoint_url: Option<String>,
    /// Objects in NAMESPACE act only through this IAM role (STS AssumeRole from the operator's
    /// identity; session name `agentcore-operator.NAMESPACE`). Repeatable.
    #[arg(long = "namespace-role", value_name = "NAMESPACE=ROLE_ARN")]
    namespace_roles: Vec<NamespaceRole>,
    /// What objects in namespaces without a role act with.
    #[arg(long, value_enum, default_value_t = Unmapped::OperatorIdentity)]
    unmapped_namespaces: Unmapped,
    /// Where `spec.adoptBatchEvaluationId` is honoured.
    #[arg(long, value_enum, default_value_t = Adoption::Allowed)]
    adoption: Adoption,
    /// How often a running job is polled (jittered ±10%).
    #[arg(long, default_value = "15s", value_parser = humantime::parse_duration)]
    poll_interval: Duration,
    /// The most jobs this operator keeps active (PENDING, IN_PROGRESS, STOPPING) at once per
    /// region and AWS account; more objects wait in the start queue. Leaves headroom in the account's AWS quota
    /// for jobs started elsewhere. Default: no limit (the AWS quota still queues).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    max_active_jobs: Option<u32>,
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
    /// Threads that run the reconciles. 1 (the default) runs everything on one thread: the
    /// work waits on the network almost all the time, and one thread costs the least CPU and
    /// memory (docs/benchmarks.md). 0 means one per CPU.
    #[arg(long, default_value_t = 1)]
    worker_threads: usize,
}

fn main() -> anyhow::Result<()> {
    let command = Cli::parse().command;
    let threads = match &command {
        Command::Run(args) => args.worker_threads,
        Command::Crd { .. } | Command::Cleanup(_) => 1,
    };
    let mut builder = if threads == 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut builder = tokio::runtime::Builder::new_multi_thread();
        if threads > 1 {
            builder.worker_threads(threads);
        }
        builder
    };
    builder
        .enable_all()
        .build()
        .context("starting the async runtime")?
        .block_on(dispatch(command))
}

async fn dispatch(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Crd { kind } => {
            let yaml = match kind {
                CrdKind::Evaluation => crdgen::crd_yaml()?,
                CrdKind::Schedule => crdgen::schedule_crd_yaml()?,
            };
            print!("{yaml}");
            Ok(())
        }
        Command::Run(args) => run(*args).await,
        Command::Cleanup(args) => cleanup(args).await,
    }
}

/// `cleanup`: deletes, then waits while the operator (still running) stops and deletes each
/// remote job and removes its finalizer. On timeout it fails so that the uninstall stops with
/// the operator still installed, rather than leaving objects no one will ever finalise.
async fn cleanup(args: CleanupArgs) -> anyhow::Result<()> {
    use agentcore_operator::api::BatchEvaluation;
    use kube::{
        ResourceExt as _,
        api::{Api, DeleteParams, ListParams},
    };
    let client = kube::Client::try_default()
        .await
        .context("no Kubernetes configuration (KUBECONFIG, ~/.kube/config or in-cluster)")?;
    let all: Api<BatchEvaluation> = match &args.namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    };
    delete_schedules(&client, args.namespace.as_deref()).await?;
    let deadline = tokio::time::Instant::now() + args.timeout;
    loop {
        let left = all
            .list(&ListParams::default())
            .await
            .context("listing BatchEvaluations")?
            .items;
        if left.is_empty() {
            println!("no BatchEvaluation left");
            return Ok(());
        }
        for obj in left
            .iter()
            .filter(|o| o.metadata.deletion_timestamp.is_none())
        {
            let ns = obj.namespace().unwrap_or_default();
            let api: Api<BatchEvaluation> = Api::namespaced(client.clone(), &ns);
            match api.delete(&obj.name_any(), &DeleteParams::default()).await {
                Ok(_) => println!("deleting {ns}/{}", obj.name_any()),
                Err(kube::Error::Api(e)) if e.code == 404 => {}
                Err(e) => return Err(e).context(format!("deleting {ns}/{}", obj.name_any())),
            }
        }
        if tokio::time::Instant::now() >= deadline {
            let names: Vec<String> = left
                .iter()
                .map(|o| format!("{}/{}", o.namespace().unwrap_or_default(), o.name_any()))
                .collect();
            anyhow::bail!(
                "{} BatchEvaluation(s) still waiting for their remote jobs after {:?}: {}. The \
                 operator is still installed; see `kubectl describe beval` for why, then uninstall \
                 again",
                names.len(),
                args.timeout,
                names.join(", ")
            );
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

/// Deletes every BatchEvaluationSchedule first, so that none starts a run the cleanup would miss
/// (their runs are deleted below with every other BatchEvaluation). A cluster without the
/// schedule CRD has none.
async fn delete_schedules(client: &kube::Client, namespace: Option<&str>) -> anyhow::Result<()> {
    use agentcore_operator::schedule::api::BatchEvaluationSchedule;
    use kube::{
        ResourceExt as _,
        api::{Api, DeleteParams, ListParams},
    };
    let all: Api<BatchEvaluationSchedule> = match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    };
    let schedules = match all.list(&ListParams::default()).await {
        Ok(list) => list.items,
        Err(kube::Error::Api(e)) if e.code == 404 => return Ok(()),
        Err(e) => return Err(e).context("listing BatchEvaluationSchedules"),
    };
    for schedule in schedules {
        let ns = schedule.namespace().unwrap_or_default();
        let api: Api<BatchEvaluationSchedule> = Api::namespaced(client.clone(), &ns);
        match api
            .delete(&schedule.name_any(), &DeleteParams::background())
            .await
        {
            Ok(_) => println!("deleting schedule {ns}/{}", schedule.name_any()),
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            Err(e) => {
                return Err(e).context(format!("deleting schedule {ns}/{}", schedule.name_any()));
            }
        }
    }
    Ok(())
}

async fn run(args: RunArgs) -> anyhow::Result<()> {
    telemetry::init(args.log_format);
    let metrics = Arc::new(Metrics::default());
    let aws = AgentCore::new(
        AwsSettings {
            default_region: args.aws_region.clone(),
            endpoint_url: args.aws_endpoint_url.clone(),
            sts_endpoint_url: args.aws_sts_endpoint_url.clone(),
            operation_timeout: args.aws_operation_timeout,
            attempt_timeout: args.aws_attempt_timeout,
        },
        metrics.clone(),
    )
    .await;
    let tenancy = Tenancy::new(
        args.namespace_roles,
        args.unmapped_namespaces,
        args.adoption,
    )
    .map_err(anyhow::Error::msg)?;
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
            max_active_jobs: args.max_active_jobs.map(|n| n as usize),
            tenancy,
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
