//! The operator's /metrics, read as a user's monitoring would.

use std::time::Duration;

use agentcore_testenv::wait_until_ok;
use anyhow::bail;

/// One scrape of the /metrics of the operator whose metrics port is `port`.
pub async fn scrape(port: u16) -> anyhow::Result<String> {
    let response = reqwest::Client::new()
        .get(format!("http://127.0.0.1:{port}/metrics"))
        .timeout(Duration::from_secs(5))
        .send()
        .await?;
    Ok(response.error_for_status()?.text().await?)
}

/// Scrapes until every needle is in the text, and returns that text. The operator exports an
/// object's metrics right after writing its status, so a scrape that follows a status wait can
/// still come between the two.
pub async fn scrape_until(
    port: u16,
    what: &str,
    timeout: Duration,
    needles: &[&str],
) -> anyhow::Result<String> {
    let text = wait_until_ok(what, timeout, Duration::from_millis(100), || async {
        let text = scrape(port).await?;
        match needles.iter().find(|needle| !text.contains(**needle)) {
            Some(missing) => bail!("no {missing}"),
            None => Ok(text),
        }
    })
    .await?;
    Ok(text)
}

/// Scrapes until no line holds `needle` (a series that goes with its object).
pub async fn scrape_until_gone(
    port: u16,
    what: &str,
    timeout: Duration,
    needle: &str,
) -> anyhow::Result<()> {
    wait_until_ok(what, timeout, Duration::from_millis(100), || async {
        let text = scrape(port).await?;
        match text.lines().find(|line| line.contains(needle)) {
            Some(line) => bail!("still exported: {line}"),
            None => Ok(()),
        }
    })
    .await?;
    Ok(())
}

/// Sum of `agentcore_operator_aws_requests_total` samples: every AWS operation the operator
/// made, whatever its outcome.
pub fn aws_operations(metrics: &str) -> u64 {
    metrics
        .lines()
        .filter(|l| {
            l.starts_with("agentcore_operator_aws_requests_total{") && l.contains("outcome=")
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .map(|v| {
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            let n = v as u64;
            n
        })
        .sum()
}
