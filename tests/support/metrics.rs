//! The operator's /metrics, read as a user's monitoring would.

use std::time::Duration;

/// One scrape of the /metrics of the operator whose metrics port is `port`.
pub async fn scrape(port: u16) -> anyhow::Result<String> {
    let response = reqwest::Client::new()
        .get(format!("http://127.0.0.1:{port}/metrics"))
        .timeout(Duration::from_secs(5))
        .send()
        .await?;
    Ok(response.error_for_status()?.text().await?)
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
