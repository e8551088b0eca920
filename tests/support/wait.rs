//! Waiting, on top of `agentcore_testenv`'s polling helpers: for a synchronous check (the
//! in-process emulator), and for an operator's health endpoints, which tell that it serves and
//! that its watch cache is synced without reading its log.

use std::time::Duration;

use agentcore_testenv::{wait_until, wait_until_ok};
use anyhow::bail;

/// Polls a synchronous check every 20 ms until it yields a value.
pub async fn poll<T>(
    what: &str,
    timeout: Duration,
    mut check: impl FnMut() -> Option<T>,
) -> anyhow::Result<T> {
    Ok(wait_until(what, timeout, Duration::from_millis(20), || {
        std::future::ready(check())
    })
    .await?)
}

async fn endpoint_ok(port: u16, path: &str) -> anyhow::Result<()> {
    let response = reqwest::Client::new()
        .get(format!("http://127.0.0.1:{port}{path}"))
        .timeout(Duration::from_secs(5))
        .send()
        .await?;
    let status = response.status();
    if !status.is_success() {
        bail!("{path} answered {status}: {}", response.text().await?);
    }
    Ok(())
}

async fn endpoint(port: u16, path: &str, what: &str, timeout: Duration) -> anyhow::Result<()> {
    let what = format!("the operator on port {port} {what}");
    Ok(
        wait_until_ok(what, timeout, Duration::from_millis(100), || {
            endpoint_ok(port, path)
        })
        .await?,
    )
}

/// Waits until the operator whose metrics port is `port` serves (`/healthz`).
pub async fn serving(port: u16, timeout: Duration) -> anyhow::Result<()> {
    endpoint(port, "/healthz", "to serve /healthz", timeout).await
}

/// Waits until the operator whose metrics port is `port` is ready (`/readyz`: its watch cache
/// is synced).
pub async fn ready(port: u16, timeout: Duration) -> anyhow::Result<()> {
    endpoint(port, "/readyz", "to be ready", timeout).await
}
