//! A local emulator of the Amazon Bedrock AgentCore batch-evaluation API.
//!
//! It speaks the service's restJson1 wire protocol for the five operations
//! (`StartBatchEvaluation`, `GetBatchEvaluation`, `ListBatchEvaluations`,
//! `StopBatchEvaluation`, `DeleteBatchEvaluation`), so the AWS SDKs and the AWS CLI work
//! against it by endpoint override alone. Jobs move through the real status machine on a
//! configurable clock; inputs are validated against the embedded service model; faults
//! (errors, latency, dropped connections, malformed bodies) can be injected per operation.
//!
//! ```no_run
//! # async fn demo() -> Result<(), agentcore_emulator::Error> {
//! use std::time::Duration;
//! use agentcore_emulator::{EmulatorConfig, start};
//!
//! let emulator = start(EmulatorConfig {
//!     job_duration: Duration::from_millis(200),
//!     ..EmulatorConfig::default()
//! })
//! .await?;
//! println!("point the SDK at {}", emulator.endpoint_url());
//! emulator.shutdown().await?;
//! # Ok(()) }
//! ```

mod admin;
mod api;
mod conn;
mod faults;
mod job;
mod model;
mod objects;
mod operation;
mod server;
mod stats;
mod store;
mod sts;
mod validate;
mod wire;

use std::{net::SocketAddr, sync::Arc, time::Duration};

use tokio::{sync::watch, task::JoinHandle};

use crate::{
    conn::CuttableListener,
    faults::FaultEngine,
    job::Timing,
    objects::ObjectRecorder,
    server::AppState,
    stats::StatsRecorder,
    store::{Clock, Store, StoreConfig},
    sts::Sts,
};
pub use crate::{
    faults::{
        ErrorRate, FaultAction, FaultConfig, FaultParseError, MalformedKind, OperationFaults,
        ScriptStep, Target,
    },
    job::{
        JobStatus, Outcome, TAG_DELETE_DURATION, TAG_JOB_DURATION, TAG_OUTCOME, TAG_SCORE,
        TAG_STOP_DURATION, UnknownOutcome,
    },
    model::ModelError,
    objects::ObjectOps,
    operation::{Operation, UnknownOperation},
    stats::{OUTCOME_DROPPED, OUTCOME_MALFORMED, Stats},
    store::{JobInfo, QuotaReport, QuotaUsage},
    sts::{SessionInfo, StsSettings},
    wire::{ErrorCode, UnknownErrorCode},
};

/// How long [`RunningEmulator::shutdown`] lets in-flight requests finish.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Settings of an emulator instance.
#[derive(Debug, Clone)]
pub struct EmulatorConfig {
    /// Address to listen on; port 0 picks a free port.
    pub listen: SocketAddr,
    /// The account of requests signed with base credentials (any access key id the
    /// emulator's STS did not issue) and of unsigned requests.
    pub account_id: String,
    /// Region for requests without a SigV4 `Authorization` header.
    pub default_region: String,
    /// How long a job runs before reaching its outcome (the first fifth, at most one second,
    /// is spent PENDING). Zero makes jobs finish at once: Start already reports the outcome.
    pub job_duration: Duration,
    /// How long a stopped job stays STOPPING.
    pub stop_duration: Duration,
    /// How long a deleted job stays DELETING before it is gone.
    pub delete_duration: Duration,
    /// Outcome of jobs without an `emulator:outcome` tag.
    pub default_outcome: Outcome,
    /// Sessions evaluated by jobs whose request names none.
    pub default_session_count: u32,
    /// Faults in force from the start (and restored by reset).
    pub faults: FaultConfig,
    /// Seed for ids and fault rates, for reproducible runs.
    pub seed: Option<u64>,
    /// Most active (PENDING, IN_PROGRESS, STOPPING) jobs per account and region; a Start
    /// beyond it answers `ServiceQuotaExceededException` (402). `None`: unlimited.
    pub max_active_jobs: Option<u32>,
    /// STS: a cap on the lifetime of issued credentials and the roles that may be assumed.
    pub sts: StsSettings,
}

impl Default for EmulatorConfig {
    fn default() -> Self {
        EmulatorConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            account_id: "123456789012".to_owned(),
            default_region: "us-east-1".to_owned(),
            job_duration: Duration::from_secs(10),
            stop_duration: Duration::from_secs(2),
            delete_duration: Duration::from_secs(1),
            default_outcome: Outcome::Completed,
            default_session_count: 10,
            faults: FaultConfig::default(),
            seed: None,
            max_active_jobs: None,
            sts: StsSettings::default(),
        }
    }
}

/// Errors starting or running the emulator.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid configuration: {0}")]
    Config(String),
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("the server failed: {0}")]
    Serve(#[source] std::io::Error),
    #[error("the server task ended abnormally: {0}")]
    Task(#[source] tokio::task::JoinError),
}

/// Starts an emulator on the current Tokio runtime.
pub async fn start(config: EmulatorConfig) -> Result<RunningEmulator, Error> {
    let account_ok =
        config.account_id.len() == 12 && config.account_id.bytes().all(|b| b.is_ascii_digit());
    if !account_ok {
        return Err(Error::Config(format!(
            "account id {:?} must be 12 digits",
            config.account_id
        )));
    }
    config
        .faults
        .validate()
        .map_err(|e| Error::Config(e.to_string()))?;
    let model = model::ServiceModel::load()?;

    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|source| Error::Bind {
            addr: config.listen,
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| Error::Bind {
        addr: config.listen,
        source,
    })?;

    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let clock = Clock::start();
    let store = Store::new(
        StoreConfig {
            timing: Timing {
                job: config.job_duration,
                stop: config.stop_duration,
                delete: config.delete_duration,
            },
            outcome: config.default_outcome,
            max_active: config.max_active_jobs,
        },
        clock,
        config.seed,
    );
    // Derive a different stream for faults so that adding a fault does not change the ids.
    let fault_seed = config.seed.map(|s| s ^ 0x5eed_fa17);
    let app = Arc::new(AppState {
        model,
        store,
        faults: FaultEngine::new(config.faults, fault_seed),
        stats: StatsRecorder::default(),
        objects: ObjectRecorder::default(),
        sts: Sts::new(clock, config.account_id, config.sts),
        default_region: config.default_region,
        default_session_count: config.default_session_count,
        shutdown: shutdown_rx.clone(),
    });
    let router = server::router(Arc::clone(&app));
    let task = tokio::spawn(server::serve(
        CuttableListener(listener),
        router,
        shutdown_rx,
    ));
    tracing::info!(%addr, "agentcore-emulator started");
    Ok(RunningEmulator {
        addr,
        app,
        shutdown_tx,
        task: Some(task),
    })
}

/// A running emulator. Dropping it stops the server abruptly; prefer [`Self::shutdown`].
pub struct RunningEmulator {
    addr: SocketAddr,
    app: Arc<AppState>,
    shutdown_tx: watch::Sender<bool>,
    task: Option<JoinHandle<std::io::Result<()>>>,
}

impl RunningEmulator {
    /// The address the emulator listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The endpoint URL to give an AWS client, e.g. `http://127.0.0.1:4566`.
    pub fn endpoint_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Requests served so far, by operation and outcome.
    pub fn stats(&self) -> Stats {
        self.app.stats.snapshot()
    }

    /// Operations per object (the client token, or the job id for jobs without one) and the
    /// most of them within one second; see [`ObjectOps`].
    pub fn object_ops(&self) -> std::collections::BTreeMap<String, ObjectOps> {
        self.app.objects.snapshot()
    }

    /// Every job ever created, oldest first, including deleted ones.
    pub fn jobs(&self) -> Vec<JobInfo> {
        self.app.store.jobs()
    }

    /// The jobs of one account (all regions), oldest first, including deleted ones.
    pub fn jobs_in_account(&self, account: &str) -> Vec<JobInfo> {
        self.app
            .store
            .jobs()
            .into_iter()
            .filter(|j| j.account == account)
            .collect()
    }

    /// Every credential issued by `AssumeRole`, oldest first, with the calls made with it.
    pub fn sts_sessions(&self) -> Vec<SessionInfo> {
        self.app.sts.sessions()
    }

    /// The STS settings in force.
    pub fn sts_settings(&self) -> StsSettings {
        self.app.sts.settings()
    }

    /// Replaces the STS settings (lifetime cap, assumable roles) until the next reset, which
    /// restores [`EmulatorConfig::sts`]. Credentials already issued keep their expiration.
    pub fn set_sts_settings(&self, settings: StsSettings) {
        self.app.sts.set_settings(settings);
    }

    /// The quota of active jobs in force and, per account and region, the active jobs and the
    /// most ever active at once.
    pub fn quota(&self) -> QuotaReport {
        self.app.store.quota()
    }

    /// The most jobs ever active at once in `account` and `region` (since start or reset).
    pub fn peak_active_jobs(&self, account: &str, region: &str) -> u32 {
        self.quota().usage(account, region).peak_active
    }

    /// Replaces the quota of active jobs per account and region (`None`: unlimited) until
    /// the next reset, which restores [`EmulatorConfig::max_active_jobs`].
    pub fn set_max_active_jobs(&self, max: Option<u32>) {
        self.app.store.set_max_active(max);
    }

    /// The faults in force now, per operation, with the script steps not yet consumed.
    pub fn faults(&self) -> FaultConfig {
        self.app.faults.current()
    }

    /// Replaces every fault setting.
    pub fn set_faults(&self, faults: &FaultConfig) -> Result<(), FaultParseError> {
        faults.validate()?;
        self.app.faults.set(faults);
        Ok(())
    }

    /// Removes every fault.
    pub fn clear_faults(&self) {
        self.app.faults.set(&FaultConfig::default());
    }

    /// Forgets all jobs and counters and restores the start-up faults, quota and STS settings.
    /// Credentials issued by STS stay valid until they expire.
    pub fn reset(&self) {
        self.app.reset();
    }

    /// Stops accepting connections, lets in-flight requests finish (briefly), and waits for
    /// the server to end.
    pub async fn shutdown(mut self) -> Result<(), Error> {
        let _ = self.shutdown_tx.send(true);
        let Some(mut task) = self.task.take() else {
            return Ok(());
        };
        match tokio::time::timeout(SHUTDOWN_GRACE, &mut task).await {
            Ok(Ok(result)) => result.map_err(Error::Serve),
            Ok(Err(join)) => Err(Error::Task(join)),
            Err(_elapsed) => {
                tracing::warn!("in-flight requests did not finish in time; aborting them");
                task.abort();
                Ok(())
            }
        }
    }
}

impl Drop for RunningEmulator {
    fn drop(&mut self) {
        let _ = self.shutdown_tx.send(true);
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}
