//! Polling with a deadline, for conditions that become true eventually.

use std::{fmt::Display, future::Future, time::Duration};

use tokio::time::Instant;

use crate::{Error, Result};

/// Polls `check` every `poll` until it returns `Some`, and returns that value.
///
/// Fails with [`Error::Timeout`] naming `what` once `timeout` has passed. A check that itself
/// hangs is cut off at the deadline too.
///
/// ```no_run
/// # async fn f(plane: &agentcore_testenv::ControlPlane) -> agentcore_testenv::Result<()> {
/// use std::time::Duration;
/// agentcore_testenv::wait_until("configmap demo to exist", Duration::from_secs(10), Duration::from_millis(200), || async {
///     plane.kubectl_ok(["get", "configmap", "demo"]).await.ok()
/// })
/// .await?;
/// # Ok(()) }
/// ```
pub async fn wait_until<T, F, Fut>(
    what: impl Into<String>,
    timeout: Duration,
    poll: Duration,
    mut check: F,
) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    wait_until_ok(what, timeout, poll, || {
        let attempt = check();
        async move { attempt.await.ok_or(NotYet) }
    })
    .await
}

/// Like [`wait_until`], for checks that fail with an error until the condition holds; the
/// timeout error carries the last error seen, which usually says why the wait failed.
pub async fn wait_until_ok<T, E, F, Fut>(
    what: impl Into<String>,
    timeout: Duration,
    poll: Duration,
    mut check: F,
) -> Result<T>
where
    E: Display,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let started = Instant::now();
    let deadline = started + timeout;
    loop {
        let last_error = match tokio::time::timeout_at(deadline, check()).await {
            Ok(Ok(value)) => return Ok(value),
            Ok(Err(error)) => error.to_string(),
            Err(_elapsed) => "the last check was still running".to_owned(),
        };
        if Instant::now() + poll >= deadline {
            return Err(Error::Timeout {
                what: what.into(),
                waited: started.elapsed(),
                last_error: (last_error != NotYet::MESSAGE).then_some(last_error),
            });
        }
        tokio::time::sleep(poll).await;
    }
}

/// The "error" of a plain `Option` check, filtered out of timeout messages.
struct NotYet;

impl NotYet {
    const MESSAGE: &str = "not yet";
}

impl Display for NotYet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(Self::MESSAGE)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    const POLL: Duration = Duration::from_millis(5);

    #[tokio::test]
    async fn returns_the_value_once_the_check_succeeds() {
        let calls = AtomicU32::new(0);
        let value = wait_until("the third call", Duration::from_secs(5), POLL, || async {
            let n = calls.fetch_add(1, Ordering::SeqCst) + 1;
            (n == 3).then_some(n * 10)
        })
        .await
        .unwrap();
        assert_eq!(value, 30);
    }

    #[tokio::test]
    async fn timeout_names_what_was_awaited() {
        let error = wait_until::<(), _, _>(
            "the moon to turn blue",
            Duration::from_millis(50),
            POLL,
            || async { None },
        )
        .await
        .unwrap_err();
        let message = error.to_string();
        assert!(message.contains("the moon to turn blue"), "{message}");
        assert!(!message.contains("not yet"), "{message}");
    }

    #[tokio::test]
    async fn timeout_carries_the_last_error() {
        let calls = AtomicU32::new(0);
        let error = wait_until_ok::<(), _, _, _>(
            "a flaky thing",
            Duration::from_millis(50),
            POLL,
            || async {
                Err(format!(
                    "attempt {} refused",
                    calls.fetch_add(1, Ordering::SeqCst) + 1
                ))
            },
        )
        .await
        .unwrap_err();
        let last = calls.load(Ordering::SeqCst);
        assert!(
            error
                .to_string()
                .contains(&format!("attempt {last} refused")),
            "{error}"
        );
    }

    #[tokio::test]
    async fn a_hanging_check_is_cut_off_at_the_deadline() {
        let started = std::time::Instant::now();
        let error =
            wait_until::<(), _, _>("a hanging check", Duration::from_millis(100), POLL, || {
                std::future::pending()
            })
            .await
            .unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(5));
        assert!(error.to_string().contains("still running"), "{error}");
    }
}
