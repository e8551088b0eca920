//! `BatchEvaluationSchedule` end to end: the operator binary against a real kube-apiserver + etcd
//! and the AgentCore emulator, driven with the real kubectl, on one plane. Seconds-level cron
//! expressions keep it short; each scenario runs in its own namespace, in sequence (they share
//! the operator, and one of them kills it).

mod support;

use std::{collections::BTreeSet, time::Duration};

use agentcore_testenv::wait_until_ok;
use anyhow::{Context as _, bail, ensure};
use jiff::Timestamp;
use serde_json::Value;
use support::{
    Env, EnvOptions, PlaneOptions,
    faults::runs,
    object::{cond_reason, cond_status, status_str, str_at, uid},
};

const LONG: Duration = Duration::from_secs(90);
const POLL: Duration = Duration::from_millis(300);
const SCHEDULE_LABEL: &str = "evals.agentcore.dev/schedule";
const SLOT_LABEL: &str = "evals.agentcore.dev/scheduled-at";

/// A schedule of runs over a CloudWatch source; `extra` is YAML indented for the spec block;
/// each run's emulator job lasts `job`.
fn schedule(ns: &str, name: &str, cron: &str, extra: &str, job: &str) -> String {
    let (tag, duration) = runs(job);
    format!(
        "apiVersion: evals.agentcore.dev/v1alpha1
kind: BatchEvaluationSchedule
metadata:
  name: {name}
  namespace: {ns}
spec:
  schedule: \"{cron}\"
{extra}  template:
    labels:
      team: quality
    window: 1h
    spec:
      evaluators:
        - evaluatorId: Builtin.Helpfulness
      dataSource:
        cloudWatchLogs:
          serviceNames: [checkout-agent]
          logGroupNames: [/aws/agentcore/checkout]
      tags:
        \"{tag}\": \"{duration}\"
"
    )
}

/// The runs of a schedule, oldest slot first.
async fn runs_of(env: &Env, ns: &str, schedule: &str) -> anyhow::Result<Vec<Value>> {
    let out = env
        .kubectl(&[
            "get",
            "beval",
            "-n",
            ns,
            "-l",
            &format!("{SCHEDULE_LABEL}={schedule}"),
            "-o",
            "json",
        ])
        .await?;
    let list: Value = serde_json::from_str(&out)?;
    let mut items = list
        .get("items")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    items.sort_by_key(slot_of);
    Ok(items)
}

fn slot_of(run: &Value) -> i64 {
    run.pointer("/metadata/labels")
        .and_then(|l| l.get(SLOT_LABEL))
        .and_then(Value::as_str)
        .and_then(|s| s.parse().ok())
        .unwrap_or(-1)
}

fn name_of(obj: &Value) -> String {
    str_at(obj, "/metadata/name").to_owned()
}

async fn get_schedule(env: &Env, ns: &str, name: &str) -> anyhow::Result<Value> {
    let out = env
        .kubectl(&["get", "bevalsched", name, "-n", ns, "-o", "json"])
        .await?;
    Ok(serde_json::from_str(&out)?)
}

/// Waits until the schedule's runs satisfy `check`, returning them.
async fn wait_runs(
    env: &Env,
    ns: &str,
    schedule: &str,
    what: &str,
    check: impl Fn(&[Value]) -> bool,
) -> anyhow::Result<Vec<Value>> {
    let check = &check;
    wait_until_ok(what, LONG, POLL, || async move {
        let runs = runs_of(env, ns, schedule).await?;
        if check(&runs) {
            Ok(runs)
        } else {
            bail!(
                "not yet: {:?}",
                runs.iter()
                    .map(|r| (name_of(r), status_str(r, "remoteStatus").map(str::to_owned)))
                    .collect::<Vec<_>>()
            )
        }
    })
    .await
    .with_context(|| {
        format!(
            "{ns}/{schedule}: operator log: {}",
            env.operator.log_path().display()
        )
    })
}

/// Messages of the events with `reason` on the schedule.
async fn events(env: &Env, ns: &str, name: &str, reason: &str) -> anyhow::Result<Vec<String>> {
    let out = env
        .kubectl(&[
            "get",
            "events",
            "-n",
            ns,
            "--field-selector",
            &format!("involvedObject.name={name},reason={reason}"),
            "-o",
            "json",
        ])
        .await?;
    let list: Value = serde_json::from_str(&out)?;
    Ok(list
        .get("items")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|e| str_at(e, "/message").to_owned())
        .collect())
}

async fn wait_event(env: &Env, ns: &str, name: &str, reason: &str) -> anyhow::Result<Vec<String>> {
    let found = wait_until_ok(format!("a {reason} event"), LONG, POLL, || async move {
        let found = events(env, ns, name, reason).await?;
        if found.is_empty() {
            bail!("no {reason} event yet");
        }
        Ok::<_, anyhow::Error>(found)
    })
    .await?;
    Ok(found)
}

/// The remote job name each run recorded, waiting until it has one.
async fn remote_name(env: &Env, ns: &str, run: &str) -> anyhow::Result<String> {
    let obj = env
        .wait_for(ns, run, "a remote job", LONG, |o| {
            status_str(o, "batchEvaluationName").is_some()
                && status_str(o, "batchEvaluationId").is_some()
        })
        .await?;
    Ok(status_str(&obj, "batchEvaluationName")
        .context("recorded")?
        .to_owned())
}

fn ts(text: &str) -> anyhow::Result<Timestamp> {
    text.parse().with_context(|| format!("timestamp {text:?}"))
}

/// Runs with the right names, owners, labels and time range; history limits prune finished
/// runs and their jobs; suspend stops new runs; run-now starts one run per value.
async fn runs_history_suspend_run_now(env: &Env) -> anyhow::Result<()> {
    let ns = "sched-basic";
    env.create_namespace(ns).await?;
    let extra = "  successfulRunsHistoryLimit: 2\n  failedRunsHistoryLimit: 1\n";
    env.apply(&schedule(ns, "nightly", "*/4 * * * * *", extra, "1s"))
        .await?;
    let sched = get_schedule(env, ns, "nightly").await?;
    let sched_uid = uid(&sched);

    // The first run: name, owner, labels, time range.
    let first = wait_runs(env, ns, "nightly", "a first run", |r| !r.is_empty()).await?;
    let run = &first[0];
    let slot = slot_of(run);
    ensure!(slot > 0 && slot % 4 == 0, "slot {slot} is a */4 second");
    ensure!(
        name_of(run) == format!("nightly-{slot}"),
        "name {}",
        name_of(run)
    );
    let owner = run
        .pointer("/metadata/ownerReferences/0")
        .context("an owner reference")?;
    ensure!(
        str_at(owner, "/kind") == "BatchEvaluationSchedule"
            && str_at(owner, "/uid") == sched_uid
            && owner.get("controller") == Some(&Value::Bool(true))
            && owner.get("blockOwnerDeletion") == Some(&Value::Bool(true)),
        "owner reference {owner}"
    );
    ensure!(
        str_at(run, "/metadata/labels/team") == "quality",
        "template labels kept"
    );
    let end = ts(str_at(
        run,
        "/spec/dataSource/cloudWatchLogs/filter/timeRange/endTime",
    ))?;
    let start = ts(str_at(
        run,
        "/spec/dataSource/cloudWatchLogs/filter/timeRange/startTime",
    ))?;
    ensure!(end.as_second() == slot, "window ends at the slot: {end}");
    ensure!(
        end.as_second() - start.as_second() == 3600,
        "window is 1h: {start}..{end}"
    );

    // History: four runs made, the oldest finished ones pruned (object and job gone).
    let oldest = name_of(run);
    let oldest_job = remote_name(env, ns, &oldest).await?;
    wait_runs(env, ns, "nightly", "later runs", |r| {
        r.iter().any(|x| slot_of(x) >= slot + 12)
    })
    .await?;
    env.wait_gone(ns, &oldest, LONG).await?;
    wait_until_ok("the pruned run's job to be deleted", LONG, POLL, || async {
        let jobs = env.jobs_named(&oldest_job);
        if jobs.len() == 1 && jobs[0].is_gone() {
            Ok(())
        } else {
            bail!("jobs {jobs:?}")
        }
    })
    .await?;
    // The limit holds once the reconcile that follows each finished run has pruned: the count
    // of finished runs comes back to the limit (it would only grow without pruning).
    wait_runs(env, ns, "nightly", "at most 2 finished runs", |r| {
        r.iter()
            .filter(|x| status_str(x, "remoteStatus") == Some("COMPLETED"))
            .count()
            <= 2
    })
    .await?;

    // Suspend: once the operator has seen it, no run for a later slot.
    env.kubectl(&[
        "patch",
        "bevalsched",
        "nightly",
        "-n",
        ns,
        "--type=merge",
        "-p",
        r#"{"spec":{"suspend":true}}"#,
    ])
    .await?;
    wait_until_ok("the schedule to read Suspended", LONG, POLL, || async {
        let s = get_schedule(env, ns, "nightly").await?;
        if cond_reason(&s, "Ready") == "Suspended"
            && s.pointer("/status/observedGeneration") == s.pointer("/metadata/generation")
        {
            Ok(())
        } else {
            bail!("not yet: {}", s.get("status").unwrap_or(&Value::Null))
        }
    })
    .await?;
    let suspended_at = Timestamp::now().as_second();
    // Run now while suspended: one run per value, however often the value is seen.
    env.kubectl(&[
        "annotate",
        "bevalsched",
        "nightly",
        "-n",
        ns,
        "evals.agentcore.dev/run-now=first",
        "--overwrite",
    ])
    .await?;
    let with_now = wait_runs(env, ns, "nightly", "the run-now run", |r| {
        r.iter()
            .any(|x| str_at(x, "/metadata/labels/evals.agentcore.dev~1run-now") == "true")
    })
    .await?;
    let now_runs: Vec<String> = with_now
        .iter()
        .filter(|x| str_at(x, "/metadata/labels/evals.agentcore.dev~1run-now") == "true")
        .map(name_of)
        .collect();
    ensure!(
        now_runs.len() == 1 && now_runs[0].starts_with("nightly-now"),
        "{now_runs:?}"
    );
    // Two more slots pass while suspended (a wait, not a timed assertion: what is checked is
    // what exists afterwards).
    tokio::time::sleep(Duration::from_secs(9)).await;
    env.kubectl(&[
        "annotate",
        "bevalsched",
        "nightly",
        "-n",
        ns,
        "evals.agentcore.dev/run-now=first",
        "--overwrite",
    ])
    .await?;
    let after = runs_of(env, ns, "nightly").await?;
    let late: Vec<String> = after
        .iter()
        .filter(|r| str_at(r, "/metadata/labels/evals.agentcore.dev~1run-now") != "true")
        .filter(|r| slot_of(r) > suspended_at)
        .map(name_of)
        .collect();
    ensure!(late.is_empty(), "runs made while suspended: {late:?}");
    let again: Vec<String> = after
        .iter()
        .filter(|x| str_at(x, "/metadata/labels/evals.agentcore.dev~1run-now") == "true")
        .map(name_of)
        .collect();
    ensure!(again == now_runs, "one run per run-now value: {again:?}");
    let sched = get_schedule(env, ns, "nightly").await?;
    ensure!(
        status_str(&sched, "lastRunNowValue") == Some("first"),
        "{sched}"
    );
    ensure!(cond_status(&sched, "Ready") == "True", "{sched}");

    // Metrics: runs counted, the last verdict exported; gone with the schedule.
    let series = format!("namespace=\"{ns}\",schedule=\"nightly\"");
    let text = support::metrics::scrape_until(
        env.metrics_port,
        "the last verdict 1",
        LONG,
        &[&format!(
            "agentcore_operator_schedule_last_run_passed{{{series}}} 1"
        )],
    )
    .await?;
    ensure!(
        text.lines().any(|l| l.starts_with(&format!(
            "agentcore_operator_schedule_runs_total{{{series},outcome=\"succeeded\"}}"
        ))),
        "finished runs counted: {text}"
    );
    println!(
        "--- kubectl get bevalsched -n {ns} -o wide\n{}",
        env.kubectl(&["get", "bevalsched", "-n", ns, "-o", "wide"])
            .await?
    );
    println!(
        "--- kubectl get beval -n {ns} -l {SCHEDULE_LABEL}=nightly\n{}",
        env.kubectl(&[
            "get",
            "beval",
            "-n",
            ns,
            "-l",
            &format!("{SCHEDULE_LABEL}=nightly")
        ])
        .await?
    );
    env.kubectl(&["delete", "bevalsched", "nightly", "-n", ns])
        .await?;
    support::metrics::scrape_until_gone(
        env.metrics_port,
        "the schedule's gauges to go",
        LONG,
        &series,
    )
    .await?;
    Ok(())
}

/// Forbid: a slot that comes while a run is active is skipped (with an event), and runs never
/// overlap.
async fn forbid_skips_while_active(env: &Env) -> anyhow::Result<()> {
    let ns = "sched-forbid";
    env.create_namespace(ns).await?;
    env.apply(&schedule(ns, "forbid", "*/3 * * * * *", "", "7s"))
        .await?;
    let skipped = wait_event(env, ns, "forbid", "SkippedSlot").await?;
    ensure!(skipped[0].contains("Forbid"), "{skipped:?}");
    let all = wait_runs(env, ns, "forbid", "two runs, the first finished", |r| {
        r.len() >= 2 && status_str(&r[0], "completedAt").is_some()
    })
    .await?;
    for pair in all.windows(2) {
        // A run is created only once the previous one is seen finished.
        let done = ts(status_str(&pair[0], "completedAt").context("completed")?)?;
        let created = ts(str_at(&pair[1], "/metadata/creationTimestamp"))?;
        ensure!(
            created.as_second() >= done.as_second(),
            "{} was created at {created} while {} ran until {done}",
            name_of(&pair[1]),
            name_of(&pair[0])
        );
    }
    env.kubectl(&["delete", "bevalsched", "forbid", "-n", ns, "--wait=false"])
        .await?;
    Ok(())
}

/// Replace: the active run is deleted (its finalizer stops and deletes the job) and a new one
/// starts.
async fn replace_deletes_the_active_run(env: &Env) -> anyhow::Result<()> {
    let ns = "sched-replace";
    env.create_namespace(ns).await?;
    env.apply(&schedule(
        ns,
        "replace",
        "*/6 * * * * *",
        "  concurrencyPolicy: Replace\n",
        "300s",
    ))
    .await?;
    let first = wait_runs(env, ns, "replace", "a first run", |r| !r.is_empty()).await?;
    let victim = name_of(&first[0]);
    let job = remote_name(env, ns, &victim).await?;
    wait_runs(env, ns, "replace", "a second run", |r| {
        r.iter().any(|x| slot_of(x) > slot_of(&first[0]))
    })
    .await?;
    env.wait_gone(ns, &victim, LONG).await?;
    let jobs = env.jobs_named(&job);
    ensure!(
        jobs.len() == 1 && jobs[0].is_gone() && jobs[0].stop_calls >= 1,
        "the replaced run's job was stopped and deleted: {jobs:?}"
    );
    let replaced = wait_event(env, ns, "replace", "ReplacingRun").await?;
    ensure!(replaced.iter().any(|m| m.contains(&victim)), "{replaced:?}");
    env.kubectl(&["delete", "bevalsched", "replace", "-n", ns, "--wait=false"])
        .await?;
    Ok(())
}

/// The operator killed across slots: after restart only the latest missed slot runs (an event
/// counts the others), each slot has one run and one job.
async fn killed_across_slots(env: &mut Env) -> anyhow::Result<()> {
    let ns = "sched-kill";
    env.create_namespace(ns).await?;
    env.apply(&schedule(
        ns,
        "kill",
        "*/5 * * * * *",
        "  concurrencyPolicy: Allow\n",
        "1s",
    ))
    .await?;
    let first = wait_runs(env, ns, "kill", "a first run", |r| !r.is_empty()).await?;
    let before = slot_of(&first[first.len() - 1]);
    env.operator.kill_hard();
    // Down across at least two slots.
    let down_until = before + 12;
    while Timestamp::now().as_second() < down_until {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let restarted_at = Timestamp::now().as_second();
    env.operator.restart().await?;
    // The latest slot missed while it was down; a slow restart may miss a later one too.
    let latest_missed = restarted_at - restarted_at % 5;
    let all = wait_runs(env, ns, "kill", "the catch-up run", |r| {
        r.iter().any(|x| slot_of(x) > before)
    })
    .await?;
    let catch_up = all
        .iter()
        .map(slot_of)
        .find(|slot| *slot > before)
        .context("a run after the restart")?;
    ensure!(
        catch_up >= latest_missed,
        "the first run after the restart is for the latest missed slot {latest_missed} or later, got {catch_up}"
    );
    let between: Vec<String> = all
        .iter()
        .filter(|r| slot_of(r) > before && slot_of(r) < catch_up)
        .map(name_of)
        .collect();
    ensure!(
        between.is_empty(),
        "only the latest missed slot runs: {between:?}"
    );
    let missed = wait_event(env, ns, "kill", "MissedSchedule").await?;
    ensure!(
        missed.iter().any(|m| m.contains("missed slot")),
        "{missed:?}"
    );
    let slots: BTreeSet<i64> = all.iter().map(slot_of).collect();
    ensure!(slots.len() == all.len(), "one run per slot: {all:?}");
    for run in &all {
        let job = remote_name(env, ns, &name_of(run)).await?;
        let jobs = env.jobs_named(&job);
        ensure!(jobs.len() == 1, "one job per run: {jobs:?}");
    }
    env.kubectl(&["delete", "bevalsched", "kill", "-n", ns, "--wait=false"])
        .await?;
    Ok(())
}

/// An invalid time zone stalls the schedule, naming the field; an invalid cron is refused at
/// admission, naming it too.
async fn invalid_input(env: &Env) -> anyhow::Result<()> {
    let ns = "sched-invalid";
    env.create_namespace(ns).await?;
    let refused = env
        .apply(&schedule(ns, "bad-cron", "every night", "", "1s"))
        .await;
    let message = format!("{refused:?}");
    ensure!(
        refused.is_err() && message.contains("spec.schedule"),
        "{message}"
    );
    let refused = env
        .apply(
            &schedule(ns, "bad-window", "0 2 * * *", "", "1s")
                .replace("window: 1h", "window: soon"),
        )
        .await;
    let message = format!("{refused:?}");
    ensure!(
        refused.is_err() && message.contains("spec.template.window"),
        "{message}"
    );
    env.apply(&schedule(
        ns,
        "bad-zone",
        "0 2 * * *",
        "  timeZone: Mars/Olympus_Mons\n",
        "1s",
    ))
    .await?;
    let s = wait_until_ok("the schedule to stall", LONG, POLL, || async {
        let s = get_schedule(env, ns, "bad-zone").await?;
        if cond_status(&s, "Stalled") == "True" {
            Ok(s)
        } else {
            bail!("not yet: {}", s.get("status").unwrap_or(&Value::Null))
        }
    })
    .await?;
    ensure!(cond_reason(&s, "Stalled") == "InvalidTimeZone", "{s}");
    ensure!(
        s.pointer("/status/conditions")
            .is_some_and(|c| c.to_string().contains("spec.timeZone")),
        "{s}"
    );
    Ok(())
}

/// Pass criteria on the template: a run scored below them is a failed run (kept by
/// `failedRunsHistoryLimit`, exported as the last verdict 0); deleting the schedule deletes every
/// run through garbage collection, and every run's job through its finalizer.
async fn verdicts_and_garbage_collection(env: &Env) -> anyhow::Result<()> {
    let ns = "sched-gate";
    env.create_namespace(ns).await?;
    let manifest = schedule(
        ns,
        "gated",
        "*/4 * * * * *",
        "  concurrencyPolicy: Allow\n  successfulRunsHistoryLimit: 5\n  failedRunsHistoryLimit: 2\n",
        "2s",
    )
    .replace(
        "      tags:\n",
        "      passCriteria:\n        evaluators:\n          - evaluatorId: Builtin.Helpfulness\n            minAverageScore: 0.8\n      tags:\n        \"emulator:score\": \"0.42\"\n",
    );
    env.apply(&manifest).await?;
    // Three failed runs: the oldest is pruned, two are kept.
    let failed = |r: &Value| {
        support::object::cond_status(r, "Passed") == "False"
            && status_str(r, "remoteStatus") == Some("COMPLETED")
    };
    let first = wait_runs(env, ns, "gated", "a first run", |r| !r.is_empty()).await?;
    let oldest = name_of(&first[0]);
    env.wait_for(
        ns,
        &oldest,
        "the first run to fail its criteria",
        LONG,
        failed,
    )
    .await?;
    env.wait_gone(ns, &oldest, LONG).await?;
    let runs = wait_runs(env, ns, "gated", "two failed runs kept", |r| {
        r.iter().filter(|x| failed(x)).count() == 2
    })
    .await?;
    let sched = get_schedule(env, ns, "gated").await?;
    ensure!(
        sched.pointer("/status/lastSuccessfulTime").is_none(),
        "no run met the criteria: {sched}"
    );
    let series = format!("namespace=\"{ns}\",schedule=\"gated\"");
    support::metrics::scrape_until(
        env.metrics_port,
        "the last verdict 0",
        LONG,
        &[
            &format!("agentcore_operator_schedule_last_run_passed{{{series}}} 0"),
            &format!("agentcore_operator_schedule_last_run_score{{{series}}} 0.42"),
        ],
    )
    .await?;
    println!(
        "--- kubectl get bevalsched -n {ns}\n{}",
        env.kubectl(&["get", "bevalsched", "-n", ns]).await?
    );
    println!(
        "--- kubectl get beval -n {ns}\n{}",
        env.kubectl(&["get", "beval", "-n", ns]).await?
    );
    // Delete the schedule: the garbage collector deletes every run, each run's finalizer deletes
    // its job.
    env.kubectl(&["delete", "bevalsched", "gated", "-n", ns])
        .await?;
    let mut jobs = Vec::new();
    for run in &runs {
        if let Some(job) = status_str(run, "batchEvaluationName") {
            jobs.push(job.to_owned());
        }
    }
    ensure!(!jobs.is_empty(), "runs recorded their jobs: {runs:?}");
    wait_runs(env, ns, "gated", "every run collected", <[Value]>::is_empty).await?;
    for job in &jobs {
        let found = env.jobs_named(job);
        ensure!(
            found.len() == 1 && found[0].is_gone(),
            "the job of a collected run is deleted: {found:?}"
        );
    }
    Ok(())
}

/// `agentcore-operator cleanup` (the chart's uninstall hook) deletes the schedules first, so no
/// run starts behind its back, then every run, and returns once every job is deleted.
async fn uninstall_cleanup(env: &Env) -> anyhow::Result<()> {
    let ns = "sched-uninstall";
    env.create_namespace(ns).await?;
    env.apply(&schedule(
        ns,
        "busy",
        "*/2 * * * * *",
        "  concurrencyPolicy: Allow\n",
        "30s",
    ))
    .await?;
    let running = wait_runs(env, ns, "busy", "two runs", |r| r.len() >= 2).await?;
    let mut jobs = Vec::new();
    for run in &running {
        jobs.push(remote_name(env, ns, &name_of(run)).await?);
    }
    let out = tokio::process::Command::new(support::OPERATOR_BIN)
        .args(["cleanup", "--namespace", ns, "--timeout", "90s"])
        .env(
            "KUBECONFIG",
            env.plane.kubeconfig(agentcore_testenv::Identity::Admin),
        )
        .output()
        .await?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    ensure!(
        out.status.success(),
        "cleanup failed: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    ensure!(stdout.contains("deleting schedule"), "{stdout}");
    let left = env
        .kubectl(&["get", "bevalsched,beval", "-n", ns, "-o", "name"])
        .await?;
    ensure!(left.trim().is_empty(), "left after cleanup: {left}");
    for job in &jobs {
        let found = env.jobs_named(job);
        ensure!(
            found.len() == 1 && found[0].is_gone(),
            "every job deleted: {found:?}"
        );
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn schedules_on_the_real_plane() -> anyhow::Result<()> {
    // kube-controller-manager's garbage collector deletes the runs of a deleted schedule.
    let mut env = Env::start_with(
        EnvOptions::default(),
        PlaneOptions {
            controller_manager: true,
        },
    )
    .await?;
    let started = std::time::Instant::now();
    invalid_input(&env).await.context("invalid input")?;
    println!("invalid input: {:.1}s", started.elapsed().as_secs_f64());
    runs_history_suspend_run_now(&env)
        .await
        .context("runs, history, suspend, run-now")?;
    println!(
        "runs/history/suspend/run-now: {:.1}s",
        started.elapsed().as_secs_f64()
    );
    forbid_skips_while_active(&env).await.context("Forbid")?;
    println!("forbid: {:.1}s", started.elapsed().as_secs_f64());
    replace_deletes_the_active_run(&env)
        .await
        .context("Replace")?;
    println!("replace: {:.1}s", started.elapsed().as_secs_f64());
    killed_across_slots(&mut env)
        .await
        .context("operator killed across slots")?;
    println!(
        "killed across slots: {:.1}s",
        started.elapsed().as_secs_f64()
    );
    verdicts_and_garbage_collection(&env)
        .await
        .context("verdicts, garbage collection")?;
    println!(
        "verdicts and garbage collection: {:.1}s",
        started.elapsed().as_secs_f64()
    );
    uninstall_cleanup(&env).await.context("uninstall cleanup")?;
    println!("uninstall cleanup: {:.1}s", started.elapsed().as_secs_f64());
    Ok(())
}
