//! The quality gate on the real plane: `spec.passCriteria` judged when the job ends (`Passed`
//! condition, events, printer column, metric), judged again without any AWS call when the
//! criteria change, `kubectl wait --for=condition=Passed` as a CI gate that fails on a missed
//! criterion, and bad criteria rejected by the API server with the field named. Scores come from
//! the emulator's `emulator:score` tag.

mod support;

use std::time::Duration;

use anyhow::{Context as _, ensure};
use support::{
    Env, EnvOptions,
    cluster::Cluster,
    manifest,
    metrics::{aws_operations, scrape, scrape_until},
    object::{cond_message, cond_reason, cond_status, condition},
};

const NS: &str = "gate";
const LONG: Duration = Duration::from_secs(90);

fn criteria(helpfulness: f64, correctness: f64) -> String {
    format!(
        "  passCriteria:
    evaluators:
      - evaluatorId: Builtin.Helpfulness
        minAverageScore: {helpfulness}
      - evaluatorId: Builtin.Correctness
        minAverageScore: {correctness}
"
    )
}

fn kubectl_wait_passed(name: &str, timeout: &str) -> Vec<String> {
    [
        "wait",
        "--for=condition=Passed",
        &format!("beval/{name}"),
        "-n",
        NS,
        &format!("--timeout={timeout}"),
    ]
    .map(ToOwned::to_owned)
    .to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_quality_gate() -> anyhow::Result<()> {
    let env = Env::start(EnvOptions::default()).await?;
    let cluster = Cluster::connect(&env.plane).await?;
    env.create_namespace(NS).await?;

    // Bad criteria are refused by the API server, naming the field.
    let unknown_evaluator = manifest(
        NS,
        "refused",
        "  passCriteria:\n    evaluators:\n      - evaluatorId: Builtin.Faithfulness\n        minAverageScore: 0.5\n",
        &[],
    );
    let refused = env.apply(&unknown_evaluator).await;
    let message = format!(
        "{:#}",
        refused.err().context("an unknown evaluator is refused")?
    );
    ensure!(
        message.contains("spec.passCriteria.evaluators")
            && message.contains("must be one of spec.evaluators"),
        "{message}"
    );
    let bad_ratio = manifest(
        NS,
        "refused",
        "  passCriteria:\n    maxFailedSessionsRatio: 1.5\n",
        &[],
    );
    let message = format!(
        "{:#}",
        env.apply(&bad_ratio)
            .await
            .err()
            .context("a ratio above 1 is refused")?
    );
    ensure!(
        message.contains("spec.passCriteria.maxFailedSessionsRatio"),
        "{message}"
    );

    // good meets its criteria, bad misses both, plain has none, broken ends FAILED. `bad` runs
    // longer, so that its gate is seen waiting.
    env.apply(&manifest(
        NS,
        "good",
        &criteria(0.7, 0.7),
        &[("emulator:score", "0.8")],
    ))
    .await?;
    env.apply(&manifest(
        NS,
        "bad",
        &criteria(0.7, 0.6),
        &[("emulator:score", "0.5"), ("emulator:job-duration", "8s")],
    ))
    .await?;
    env.apply(&manifest(NS, "plain", "", &[("emulator:score", "0.1")]))
        .await?;
    env.apply(&manifest(
        NS,
        "broken",
        &criteria(0.0, 0.0),
        &[("emulator:outcome", "FAILED")],
    ))
    .await?;

    let running = env.wait_remote(NS, "bad", "IN_PROGRESS", LONG).await?;
    ensure!(
        cond_status(&running, "Passed") == "Unknown"
            && cond_reason(&running, "Passed") == "AwaitingResults",
        "while running: {running}"
    );

    // The CI gate: passes on good, fails (at its timeout) on bad.
    let args = kubectl_wait_passed("good", "60s");
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    env.kubectl(&args).await.context("kubectl wait on good")?;
    env.wait_remote(NS, "bad", "COMPLETED", LONG).await?;
    let args = kubectl_wait_passed("bad", "5s");
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let gate = env.kubectl(&args).await;
    let failure = format!("{:#}", gate.err().context("kubectl wait on bad must fail")?);
    ensure!(failure.contains("timed out"), "{failure}");
    println!("$ kubectl wait --for=condition=Passed beval/bad --timeout=5s\n{failure}");

    let bad = env
        .wait_for(NS, "bad", "Passed=False", LONG, |o| {
            cond_status(o, "Passed") == "False"
        })
        .await?;
    ensure!(cond_reason(&bad, "Passed") == "CriteriaMissed", "{bad}");
    println!(
        "bad: Passed=False {}: {}",
        cond_reason(&bad, "Passed"),
        cond_message(&bad, "Passed")
    );
    ensure!(
        cond_message(&bad, "Passed")
            == "missed: Builtin.Helpfulness average score 0.5 < minimum 0.7; Builtin.Correctness average score 0.5 < minimum 0.6",
        "{bad}"
    );
    let broken = env
        .wait_for(NS, "broken", "Passed=False", LONG, |o| {
            cond_status(o, "Passed") == "False"
        })
        .await?;
    ensure!(cond_reason(&broken, "Passed") == "NotCompleted", "{broken}");
    let plain = env.wait_remote(NS, "plain", "COMPLETED", LONG).await?;
    ensure!(condition(&plain, "Passed").is_none(), "{plain}");

    // The printer column.
    let table = env.kubectl(&["get", "bevals", "-n", NS]).await?;
    println!("{table}");
    let column = |name: &str| -> anyhow::Result<String> {
        let header = table.lines().next().context("a header")?;
        let at = header.find("PASSED").context("a PASSED column")?;
        let row = table
            .lines()
            .find(|l| l.starts_with(&format!("{name} ")))
            .with_context(|| format!("a row for {name}"))?;
        Ok(row[at..].split_whitespace().next().unwrap_or("").to_owned())
    };
    ensure!(column("good")? == "True", "{table}");
    ensure!(column("bad")? == "False", "{table}");

    // Relaxing the criteria judges the recorded results again, with no AWS call.
    let before = aws_operations(&scrape(env.metrics_port).await?);
    env.patch(
        NS,
        "bad",
        r#"{"spec":{"passCriteria":{"evaluators":[{"evaluatorId":"Builtin.Helpfulness","minAverageScore":0.4},{"evaluatorId":"Builtin.Correctness","minAverageScore":0.5}]}}}"#,
    )
    .await?;
    let passed = env
        .wait_for(NS, "bad", "Passed=True after relaxing", LONG, |o| {
            cond_status(o, "Passed") == "True"
        })
        .await?;
    ensure!(cond_reason(&passed, "Passed") == "CriteriaMet", "{passed}");
    let metrics = scrape_until(
        env.metrics_port,
        "the verdict metric to follow the status",
        LONG,
        &[r#"agentcore_operator_evaluation_passed{namespace="gate",name="bad"} 1"#],
    )
    .await?;
    ensure!(
        aws_operations(&metrics) == before,
        "judging again called AWS: {before} → {}",
        aws_operations(&metrics)
    );
    for needle in [
        r#"agentcore_operator_evaluation_passed{namespace="gate",name="good"} 1"#,
        r#"agentcore_operator_evaluation_passed{namespace="gate",name="bad"} 1"#,
        r#"agentcore_operator_evaluation_passed{namespace="gate",name="broken"} 0"#,
    ] {
        ensure!(
            metrics.contains(needle),
            "/metrics lacks {needle}:\n{metrics}"
        );
    }
    ensure!(
        !metrics.contains(r#"agentcore_operator_evaluation_passed{namespace="gate",name="plain"}"#),
        "an object without criteria has no verdict:\n{metrics}"
    );

    // Told once per verdict: a Warning when missed, a Normal event when it flips to met.
    let events = cluster.events_for(NS, "bad").await?;
    let mut verdicts: Vec<_> = events
        .iter()
        .filter(|(_, reason, _)| reason.starts_with("Criteria"))
        .map(|(type_, reason, _)| (type_.as_str(), reason.as_str()))
        .collect();
    verdicts.sort_unstable();
    ensure!(
        verdicts == [("Normal", "CriteriaMet"), ("Warning", "CriteriaMissed")],
        "{events:?}"
    );
    let args = kubectl_wait_passed("bad", "10s");
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    env.kubectl(&args)
        .await
        .context("kubectl wait after relaxing")?;
    Ok(())
}
