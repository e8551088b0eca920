//! Runs the operator: leader election, health and metrics endpoints, graceful shutdown, and the
//! controllers of each kind (their watch and reconcile live in the kind's module, such as
//! [`crate::batch_evaluation::controller`]).

use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use axum::{Router, extract::State, http::StatusCode, response::IntoResponse, routing::get};
use futures::future::BoxFuture;
use kube::{Api, Client, runtime::events::Reporter};
use tokio::sync::watch;
use tracing::{error, info, warn};

use crate::{
    api::BatchEvaluation,
    aws::AgentCore,
    batch_evaluation::{
        self,
        cached::CachedEvaluation,
        reconciler::{Context, Settings},
    },
    metrics::Metrics,
    schedule::{self, api::BatchEvaluationSchedule},
};

/// Name the operator reports in events and as field manager.
pub const CONTROLLER_NAME: &str = "agentcore-operator";

/// How to run.
#[derive(Clone, Debug)]
pub struct RunConfig {
    /// Watch one namespace, or all when `None`.
    pub namespace: Option<String>,
    pub settings: Settings,
    pub max_concurrent_reconciles: u16,
    pub metrics_addr: SocketAddr,
    pub leader_election: Option<LeaderElection>,
    /// Identity of this replica (pod name) for events and the lease.
    pub identity: String,
}

/// Lease settings.
#[derive(Clone, Debug)]
pub struct LeaderElection {
    pub lease_name: String,
    pub lease_namespace: String,
    pub lease_duration: Duration,
}

/// Errors that stop the operator.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("metrics endpoint on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("leader election: {0}")]
    Lease(#[from] kube_lease_manager::LeaseManagerError),
    #[error("leadership was lost; exiting so that a fresh process can compete again")]
    LeadershipLost,
}

#[derive(Clone)]
struct Health {
    ready: Arc<AtomicBool>,
    metrics: Arc<Metrics>,
}

/// Runs until SIGTERM/SIGINT (graceful: in-flight reconciles finish, the lease is released)
/// or until leadership is lost.
///
/// # Errors
/// [`RunError`] when the metrics port cannot be bound, the lease cannot be managed, or
/// leadership is lost.
pub async fn run(
    client: Client,
    aws: AgentCore,
    metrics: Arc<Metrics>,
    config: RunConfig,
) -> Result<(), RunError> {
    let health = Health {
        ready: Arc::new(AtomicBool::new(false)),
        metrics: metrics.clone(),
    };
    let listener = tokio::net::TcpListener::bind(config.metrics_addr)
        .await
        .map_err(|source| RunError::Listen {
            addr: config.metrics_addr,
            source,
        })?;
    info!(addr = %config.metrics_addr, "serving /metrics, /healthz and /readyz");
    let app = Router::new()
        .route("/metrics", get(serve_metrics))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(serve_ready))
        .with_state(health.clone());
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut server_stop = stop_rx.clone();
    let server = tokio::spawn(async move {
        let shutdown = async move {
            let _ = server_stop.wait_for(|stop| *stop).await;
        };
        if let Err(e) = axum::serve(listener, app)
            .with_graceful_shutdown(shutdown)
            .await
        {
            error!(error = %e, "metrics server failed");
        }
    });

    let result = match &config.leader_election {
        None => {
            metrics.set_leader(true);
            let (stop_tx, stop_rx) = watch::channel(false);
            tokio::spawn(async move {
                shutdown_signal().await;
                let _ = stop_tx.send(true);
            });
            run_controller(
                client,
                aws,
                metrics.clone(),
                &config,
                health.clone(),
                stop_rx,
            )
            .await;
            Ok(())
        }
        Some(lease) => {
            run_with_lease(client, aws, metrics.clone(), &config, lease, health.clone()).await
        }
    };
    let _ = stop_tx.send(true);
    let _ = server.await;
    result
}

async fn run_with_lease(
    client: Client,
    aws: AgentCore,
    metrics: Arc<Metrics>,
    config: &RunConfig,
    lease: &LeaderElection,
    health: Health,
) -> Result<(), RunError> {
    let duration = lease.lease_duration.as_secs().max(2);
    let manager = kube_lease_manager::LeaseManagerBuilder::new(client.clone(), &lease.lease_name)
        .with_namespace(&lease.lease_namespace)
        .with_identity(&config.identity)
        .with_duration(duration)
        .with_grace((duration / 3).max(1))
        .with_field_manager(lease_field_manager(&config.identity))
        .build()
        .await?;
    let (mut leading, lease_task) = manager.watch().await;
    // A standby replica is healthy and ready: it serves probes and metrics, and waits.
    health.ready.store(true, Ordering::Relaxed);
    metrics.set_leader(false);
    info!(lease = %lease.lease_name, namespace = %lease.lease_namespace, identity = %config.identity, "waiting for leadership");

    let mut terminate = shutdown_signal();
    let became_leader = tokio::select! {
        () = &mut terminate => false,
        changed = leading.wait_for(|is_leader| *is_leader) => changed.is_ok(),
    };
    if !became_leader {
        info!("shutdown requested before becoming leader");
        drop(leading);
        return release_lease(lease_task).await;
    }
    info!("became leader");
    metrics.set_leader(true);

    // Stop reconciling on SIGTERM, or the moment the lease is lost: another replica may
    // already be leading.
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut lost_rx = leading.clone();
    tokio::spawn(async move {
        tokio::select! {
            () = terminate => {},
            _ = lost_rx.wait_for(|is_leader| !*is_leader) => {},
        }
        let _ = stop_tx.send(true);
    });
    run_controller(client, aws, metrics.clone(), config, health, stop_rx).await;
    metrics.set_leader(false);
    let lost_lease = !*leading.borrow();
    drop(leading);
    release_lease(lease_task).await?;
    if lost_lease {
        return Err(RunError::LeadershipLost);
    }
    Ok(())
}

/// The field manager of this replica's writes to the Lease. It must differ between replicas:
/// an orphaned lease is taken with a server-side apply, which conflicts (409) only between
/// different field managers. With one shared name, two standbys that take an expired lease at
/// the same moment both succeed and both lead (seen in the in-cluster suite).
fn lease_field_manager(identity: &str) -> String {
    // The API server refuses field managers longer than 128 characters.
    format!("{CONTROLLER_NAME}/{identity}")
        .chars()
        .take(128)
        .collect()
}

/// Ends the lease task (the channel is dropped) and releases the lease, so a standby replica
/// takes over at once instead of after the lease expires.
async fn release_lease(
    task: tokio::task::JoinHandle<
        Result<kube_lease_manager::LeaseManager, kube_lease_manager::LeaseManagerError>,
    >,
) -> Result<(), RunError> {
    match task.await {
        Ok(Ok(manager)) => {
            manager.release().await?;
            info!("lease released");
            Ok(())
        }
        Ok(Err(e)) => Err(e.into()),
        Err(e) => {
            warn!(error = %e, "lease task ended abnormally");
            Ok(())
        }
    }
}

/// Resolves on SIGTERM or SIGINT.
fn shutdown_signal() -> BoxFuture<'static, ()> {
    Box::pin(async {
        let ctrl_c = tokio::signal::ctrl_c();
        #[cfg(unix)]
        {
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(mut term) => {
                    tokio::select! {
                        _ = ctrl_c => {},
                        _ = term.recv() => {},
                    }
                }
                Err(_) => {
                    let _ = ctrl_c.await;
                }
            }
        }
        #[cfg(not(unix))]
        {
            let _ = ctrl_c.await;
        }
        info!("shutdown signal received; finishing in-flight reconciles");
    })
}

/// Runs every kind's controller until `stop` turns true.
async fn run_controller(
    client: Client,
    aws: AgentCore,
    metrics: Arc<Metrics>,
    config: &RunConfig,
    health: Health,
    stop: watch::Receiver<bool>,
) {
    let reporter = Reporter {
        controller: CONTROLLER_NAME.into(),
        instance: Some(config.identity.clone()),
    };
    let schedule_ctx = Arc::new(schedule::reconciler::Context::new(
        client.clone(),
        reporter.clone(),
        metrics.clone(),
    ));
    let ctx = Arc::new(Context::new(
        client.clone(),
        aws,
        reporter,
        metrics,
        config.settings.clone(),
    ));
    let (cached, runs, schedules): (
        Api<CachedEvaluation>,
        Api<BatchEvaluation>,
        Api<BatchEvaluationSchedule>,
    ) = match &config.namespace {
        Some(ns) => (
            Api::namespaced(client.clone(), ns),
            Api::namespaced(client.clone(), ns),
            Api::namespaced(client, ns),
        ),
        None => (
            Api::all(client.clone()),
            Api::all(client.clone()),
            Api::all(client),
        ),
    };
    tokio::join!(
        batch_evaluation::controller::run(
            cached,
            ctx,
            config.max_concurrent_reconciles,
            health.ready,
            stop.clone(),
        ),
        schedule::controller::run(
            schedules,
            runs,
            schedule_ctx,
            config.max_concurrent_reconciles,
            stop,
        ),
    );
}

async fn serve_metrics(State(health): State<Health>) -> impl IntoResponse {
    (
        [(
            "content-type",
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        health.metrics.render(),
    )
}

async fn serve_ready(State(health): State<Health>) -> impl IntoResponse {
    if health.ready.load(Ordering::Relaxed) {
        (StatusCode::OK, "ready")
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: the watch cache is not synced yet",
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_replica_writes_the_lease_as_its_own_field_manager() {
        let a = lease_field_manager("agentcore-operator-666ff87dd6-g6229");
        let b = lease_field_manager("agentcore-operator-666ff87dd6-vwz5z");
        assert_ne!(a, b);
        assert_eq!(a, "agentcore-operator/agentcore-operator-666ff87dd6-g6229");
        assert_eq!(lease_field_manager(&"x".repeat(300)).chars().count(), 128);
    }
}
