//! Many teams, one operator, on the real plane: namespaces mapped to IAM roles act only in their
//! role's account (STS AssumeRole against the emulator, credentials that expire every 15 s), a
//! tenant cannot reach another tenant's job by anything it can write, adoption is one object per
//! job, and no credential shows up anywhere. Each attack is printed with what the emulator's
//! per-account job lists showed.

mod support;

use std::time::Duration;

use agentcore_emulator::{EmulatorConfig, JobInfo, StsSettings};
use agentcore_testenv::OPERATOR_NAMESPACE;
use anyhow::{Context as _, bail, ensure};
use serde_json::Value;
use support::{
    Env, EnvOptions,
    faults::runs,
    helm_template, manifest,
    object::{cond_message, cond_reason, condition_is, status_str},
};

const ROLE_A: &str = "arn:aws:iam::111111111111:role/tenant-a";
const ROLE_B: &str = "arn:aws:iam::222222222222:role/tenant-b";
const ACCOUNT_A: &str = "111111111111";
const ACCOUNT_B: &str = "222222222222";
const OPERATOR_ACCOUNT: &str = "123456789012";
/// A namespace editor in tenant-b: the attacker.
const BOB: &str = "bob";
const LONG: Duration = Duration::from_secs(90);

async fn tenant_env(extra: &[&str]) -> anyhow::Result<Env> {
    tenant_env_with_quota(extra, None).await
}

async fn tenant_env_with_quota(extra: &[&str], quota: Option<u32>) -> anyhow::Result<Env> {
    let defaults = EnvOptions::default();
    let mut args = vec![
        "--namespace-role".to_owned(),
        format!("tenant-a={ROLE_A}"),
        "--namespace-role".to_owned(),
        format!("tenant-b={ROLE_B}"),
    ];
    args.extend(extra.iter().map(ToString::to_string));
    let env = Env::start(EnvOptions {
        emulator: EmulatorConfig {
            // Credentials expire every 15 s: running and deleting lifecycles cross refreshes.
            sts: StsSettings {
                max_session_lifetime: Some(Duration::from_secs(15)),
                ..StsSettings::default()
            },
            max_active_jobs: quota,
            ..defaults.emulator
        },
        operator_args: args,
        // At debug level the AWS SDK would print assumed access key ids; the scan below proves
        // the operator's log filter keeps them out.
        operator_env: vec![("RUST_LOG".to_owned(), "debug".to_owned())],
    })
    .await?;
    for ns in ["tenant-a", "tenant-b", "shared"] {
        env.create_namespace(ns).await?;
    }
    Ok(env)
}

/// Bob edits tenant-b: Kubernetes' own editor rules and the chart's aggregated BatchEvaluation
/// role, bound in tenant-b only (the plane runs no aggregation controller, so the roles are
/// bound directly rather than through `edit`).
async fn make_bob_a_tenant_b_editor(env: &Env) -> anyhow::Result<()> {
    let roles = helm_template(&["--show-only", "templates/user-roles.yaml"]).await?;
    env.plane.apply_yaml(&roles).await?;
    for role in ["system:aggregate-to-edit", "agentcore-operator-edit"] {
        let name = role.replace(':', "-");
        env.kubectl(&[
            "create",
            "rolebinding",
            &name,
            "-n",
            "tenant-b",
            "--clusterrole",
            role,
            "--user",
            BOB,
        ])
        .await?;
    }
    Ok(())
}

/// `kubectl --as bob`.
async fn as_bob(env: &Env, args: &[&str]) -> anyhow::Result<String> {
    let mut all = vec!["--as", BOB];
    all.extend_from_slice(args);
    env.kubectl(&all).await
}

async fn apply_as_bob(env: &Env, yaml: &str) -> anyhow::Result<()> {
    let path = std::env::temp_dir().join(format!("tenancy-{}.yaml", std::process::id()));
    tokio::fs::write(&path, yaml).await?;
    let applied = as_bob(env, &["apply", "-f", &path.to_string_lossy()]).await;
    tokio::fs::remove_file(&path).await?;
    applied.map(drop)
}

fn job_of(env: &Env, id: &str) -> anyhow::Result<JobInfo> {
    env.emulator
        .jobs()
        .into_iter()
        .find(|j| j.id == id)
        .with_context(|| format!("job {id} exists in the emulator"))
}

/// The job of `ns/name`, once it runs.
async fn running_job(env: &Env, ns: &str, name: &str) -> anyhow::Result<JobInfo> {
    let obj = env.wait_remote(ns, name, "IN_PROGRESS", LONG).await?;
    job_of(
        env,
        status_str(&obj, "batchEvaluationId").context("id recorded")?,
    )
}

/// Starts a job in `role`'s account with the test's own assumed-role credentials: a job someone
/// in that account started outside the cluster.
async fn outside_job(env: &Env, role: &str, name: &str) -> anyhow::Result<String> {
    use aws_sdk_bedrockagentcore::{
        config::{BehaviorVersion, Builder, Credentials, Region},
        types::{CloudWatchLogsSource, DataSourceConfig},
    };
    let url = env.emulator.endpoint_url();
    let base = aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new("us-west-2"))
        .endpoint_url(&url)
        .credentials_provider(Credentials::new(
            "AKIDTENANCYTEST",
            "not-a-secret",
            None,
            None,
            "test",
        ))
        .load()
        .await;
    let assumed = aws_config::sts::AssumeRoleProvider::builder(role)
        .session_name("tenancy-test")
        .configure(&base)
        .build()
        .await;
    let client = aws_sdk_bedrockagentcore::Client::from_conf(
        Builder::from(&base).credentials_provider(assumed).build(),
    );
    let (tag, duration) = runs("60s");
    let started = client
        .start_batch_evaluation()
        .batch_evaluation_name(name)
        .tags(tag, duration)
        .data_source_config(DataSourceConfig::CloudWatchLogs(
            CloudWatchLogsSource::builder()
                .service_names("outside")
                .build()?,
        ))
        .send()
        .await?;
    Ok(started.batch_evaluation_id().to_owned())
}

async fn wait_stalled(env: &Env, ns: &str, name: &str, reason: &str) -> anyhow::Result<Value> {
    env.wait_for(ns, name, &format!("Stalled={reason}"), LONG, |o| {
        condition_is(o, "Stalled", "True", reason)
    })
    .await
}

/// A job untouched by anyone but its owner: no Stop, no Delete.
fn untouched(env: &Env, id: &str) -> anyhow::Result<()> {
    let job = job_of(env, id)?;
    ensure!(
        job.stop_calls == 0 && job.delete_calls == 0 && !job.is_gone(),
        "job {id} was touched: {job:?}"
    );
    Ok(())
}

/// Every occurrence of an assumed-role access key id (`ASIA` + 16 of `[A-Z0-9]`) in `text`.
fn assumed_key_ids(text: &str) -> Vec<String> {
    text.match_indices("ASIA")
        .filter_map(|(at, _)| text.get(at..at + 20))
        .filter(|key| {
            key[4..]
                .bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
        })
        .map(ToOwned::to_owned)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn tenants_act_in_their_own_accounts_and_cannot_reach_each_other() -> anyhow::Result<()> {
    let mut env = tenant_env(&["--adoption", "mapped-only"]).await?;
    make_bob_a_tenant_b_editor(&env).await?;
    // Long enough to be deleted while running, after the other scenarios.
    let long = [runs("300s")];
    env.apply(&manifest("tenant-a", "a1", "", &long)).await?;
    env.apply(&manifest("tenant-b", "b1", "", &long)).await?;
    env.apply(&manifest("shared", "s1", "", &long)).await?;
    let a1 = running_job(&env, "tenant-a", "a1").await?;
    let b1 = running_job(&env, "tenant-b", "b1").await?;
    let s1 = running_job(&env, "shared", "s1").await?;
    println!("--- each tenant's job lands in its own account");
    for (who, job, account) in [
        ("tenant-a/a1", &a1, ACCOUNT_A),
        ("tenant-b/b1", &b1, ACCOUNT_B),
        ("shared/s1", &s1, OPERATOR_ACCOUNT),
    ] {
        println!("{who}: job {} in account {}", job.id, job.account);
        ensure!(job.account == account, "{who} acted in {}", job.account);
    }
    let a1_obj = env.get("tenant-a", "a1").await?.context("a1")?;
    ensure!(
        status_str(&a1_obj, "roleArn") == Some(ROLE_A),
        "the role is recorded"
    );

    println!(
        "--- attacks by bob, editor of tenant-b, on tenant-a's job {}",
        a1.id
    );
    // 1. Adopt tenant-a's job by its id (it is in tenant-a's status, readable to many).
    let adopt = format!("  adoptBatchEvaluationId: {}\n", a1.id);
    apply_as_bob(&env, &manifest("tenant-b", "x-adopt", &adopt, &[])).await?;
    let refused = wait_stalled(&env, "tenant-b", "x-adopt", "AdoptionConflict").await?;
    let message = cond_message(&refused, "Stalled");
    ensure!(
        message.contains("tenant-a/a1"),
        "the owner is named: {message}"
    );
    let events = env
        .kubectl(&["get", "events", "-n", "tenant-b", "-o", "json"])
        .await?;
    ensure!(
        events.contains("AdoptionConflict") && events.contains("tenant-a/a1"),
        "a Warning event names the other object"
    );
    println!(
        "adoptBatchEvaluationId: {} → Stalled AdoptionConflict ({message})",
        a1.id
    );
    // 2. Ask for tenant-a's remote name: names are per account, so this is a new job in B's.
    let named = format!("  batchEvaluationName: {}\n", a1.name);
    apply_as_bob(&env, &manifest("tenant-b", "x-name", &named, &long)).await?;
    let x_name = running_job(&env, "tenant-b", "x-name").await?;
    ensure!(x_name.account == ACCOUNT_B && x_name.id != a1.id);
    println!(
        "batchEvaluationName: {} → a new job {} in account {}",
        a1.name, x_name.id, x_name.account
    );
    // 3. Adopt a job of tenant-a's account that no object records: B's role cannot see it.
    let outside_a = outside_job(&env, ROLE_A, "outside_a").await?;
    let adopt_outside = format!("  adoptBatchEvaluationId: {outside_a}\n");
    apply_as_bob(
        &env,
        &manifest("tenant-b", "x-outside", &adopt_outside, &[]),
    )
    .await?;
    wait_stalled(&env, "tenant-b", "x-outside", "AdoptionTargetNotFound").await?;
    println!(
        "adoptBatchEvaluationId: {outside_a} (account A, no object) → Stalled AdoptionTargetNotFound: 404 in account B"
    );
    // 4. Write the status the operator's cleanup trusts, or the operator's configuration.
    let forged = format!(
        r#"{{"status":{{"roleArn":"{ROLE_A}","batchEvaluationId":"{}"}}}}"#,
        a1.id
    );
    let status_write = as_bob(
        &env,
        &[
            "patch",
            "beval",
            "b1",
            "-n",
            "tenant-b",
            "--subresource=status",
            "--type=merge",
            "-p",
            &forged,
        ],
    )
    .await;
    ensure!(
        status_write
            .as_ref()
            .is_err_and(|e| e.to_string().contains("forbidden")),
        "status is not writable by a namespace editor: {status_write:?}"
    );
    println!("patch status.roleArn/batchEvaluationId → forbidden");
    // `can-i` exits 1 when the answer is no; the check can say yes, for bob's own namespace.
    let can_i = |args: Vec<&'static str>| {
        let env = &env;
        async move {
            let mut all = vec!["auth", "can-i"];
            all.extend(args);
            let answer = as_bob(env, &all).await.unwrap_or_else(|e| e.to_string());
            let yes = answer.trim().ends_with("yes");
            println!(
                "kubectl {} --as bob → {}",
                all.join(" "),
                if yes { "yes" } else { "no" }
            );
            yes
        }
    };
    ensure!(can_i(vec!["patch", "batchevaluations", "-n", "tenant-b"]).await);
    for args in [
        vec![
            "patch",
            "batchevaluations",
            "--subresource=status",
            "-n",
            "tenant-b",
        ],
        vec!["patch", "deployments", "-n", OPERATOR_NAMESPACE],
        vec!["update", "configmaps", "-n", OPERATOR_NAMESPACE],
        vec!["create", "batchevaluations", "-n", "tenant-a"],
        vec!["patch", "batchevaluations", "-n", "tenant-a"],
    ] {
        let what = args.join(" ");
        ensure!(!can_i(args).await, "bob can {what}");
    }
    let denied = as_bob(
        &env,
        &["create", "configmap", "x", "-n", OPERATOR_NAMESPACE],
    )
    .await;
    ensure!(denied.is_err(), "bob cannot write the operator's namespace");
    // 5. Delete the attacking objects: the jobs they pointed at are untouched.
    for name in ["x-adopt", "x-outside"] {
        as_bob(
            &env,
            &["delete", "beval", name, "-n", "tenant-b", "--timeout=60s"],
        )
        .await?;
    }
    untouched(&env, &a1.id)?;
    untouched(&env, &outside_a)?;
    println!(
        "deleting x-adopt and x-outside → released; {} and {outside_a}: no Stop, no Delete",
        a1.id
    );

    println!("--- adoption policy and one object per job");
    // An unmapped namespace may not adopt under --adoption mapped-only.
    env.apply(&manifest("shared", "s-adopt", &adopt_outside, &[]))
        .await?;
    wait_stalled(&env, "shared", "s-adopt", "AdoptionNotAllowed").await?;
    env.kubectl(&[
        "delete",
        "beval",
        "s-adopt",
        "-n",
        "shared",
        "--timeout=60s",
    ])
    .await?;
    untouched(&env, &outside_a)?;
    println!(
        "shared (unmapped) adopts {outside_a} → Stalled AdoptionNotAllowed; deleted, job untouched"
    );
    // A double adoption inside tenant-a: the first keeps the job.
    env.apply(&manifest("tenant-a", "first", &adopt_outside, &[]))
        .await?;
    env.wait_remote("tenant-a", "first", "IN_PROGRESS", LONG)
        .await?;
    env.apply(&manifest("tenant-a", "second", &adopt_outside, &[]))
        .await?;
    let second = wait_stalled(&env, "tenant-a", "second", "AdoptionConflict").await?;
    ensure!(cond_message(&second, "Stalled").contains("tenant-a/first"));
    env.kubectl(&[
        "delete",
        "beval",
        "second",
        "-n",
        "tenant-a",
        "--timeout=60s",
    ])
    .await?;
    untouched(&env, &outside_a)?;
    println!(
        "tenant-a/second adopts the job tenant-a/first adopted → Stalled AdoptionConflict; deleted, job untouched"
    );

    println!("--- lifecycles across credential refreshes (15 s credentials)");
    env.wait_remote("tenant-a", "first", "COMPLETED", LONG)
        .await?;
    // Delete a running job of each tenant: Stop and Delete in its own account.
    for (ns, name, id) in [("tenant-a", "a1", &a1.id), ("tenant-b", "b1", &b1.id)] {
        env.kubectl(&["delete", "beval", name, "-n", ns, "--timeout=60s"])
            .await?;
        let job = job_of(&env, id)?;
        ensure!(
            job.is_gone() && job.stop_calls == 1 && job.delete_calls == 1,
            "{ns}/{name}: one Stop and one Delete: {job:?}"
        );
    }
    let sessions = env.emulator.sts_sessions();
    for role in [ROLE_A, ROLE_B] {
        let issued = sessions.iter().filter(|s| s.role_arn == role).count();
        println!("{role}: {issued} sets of credentials issued");
        ensure!(
            issued >= 2,
            "{role}: credentials were refreshed ({issued} issued)"
        );
    }
    ensure!(
        sessions.iter().all(|s| s.expired_calls == 0),
        "no call used expired credentials: {sessions:?}"
    );
    for session in &sessions {
        ensure!(
            session.role_session_name.starts_with("agentcore-operator.")
                || session.role_session_name == "tenancy-test",
            "the session names the namespace: {}",
            session.role_session_name
        );
    }
    let metrics = support::metrics::scrape(env.metrics_port).await?;
    ensure!(
        !metrics.contains("ExpiredToken"),
        "no AWS call failed on expired credentials"
    );
    // Every job of each account: none of another tenant's.
    for (account, expected) in [(ACCOUNT_A, 2), (ACCOUNT_B, 2), (OPERATOR_ACCOUNT, 1)] {
        let jobs = env.emulator.jobs_in_account(account);
        let names: Vec<&str> = jobs.iter().map(|j| j.name.as_str()).collect();
        println!("account {account}: {names:?}");
        ensure!(jobs.len() == expected, "account {account} holds {names:?}");
    }

    // No credential, base or assumed, in any log, event, object or metric.
    let log = env.operator.log_contents()?;
    let objects = env.kubectl(&["get", "beval", "-A", "-o", "json"]).await?;
    let events = env.kubectl(&["get", "events", "-A", "-o", "json"]).await?;
    for (place, text) in [
        ("operator log", &log),
        ("objects", &objects),
        ("events", &events),
        ("metrics", &metrics),
    ] {
        let keys = assumed_key_ids(text);
        ensure!(
            keys.is_empty(),
            "assumed credentials in the {place}: {keys:?}"
        );
        for secret in [
            agentcore_testenv::FAKE_AWS_SECRET_ACCESS_KEY,
            agentcore_testenv::FAKE_AWS_ACCESS_KEY_ID,
        ] {
            ensure!(!text.contains(secret), "a base credential in the {place}");
        }
    }
    env.operator.terminate().await;
    Ok(())
}

/// `--unmapped-namespaces refuse`: an object in a namespace without a role never calls AWS, says
/// why, and goes at once when deleted.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn unmapped_namespaces_can_be_refused() -> anyhow::Result<()> {
    let env = tenant_env(&["--unmapped-namespaces", "refuse"]).await?;
    env.apply(&manifest("shared", "nobody", "", &[])).await?;
    let stalled = wait_stalled(&env, "shared", "nobody", "NoAwsIdentity").await?;
    ensure!(cond_reason(&stalled, "Ready") == "NoAwsIdentity");
    ensure!(
        cond_message(&stalled, "Stalled").contains("--namespace-role"),
        "the message says what to ask for"
    );
    env.apply(&manifest("tenant-a", "mapped", "", &[])).await?;
    env.wait_remote("tenant-a", "mapped", "COMPLETED", LONG)
        .await?;
    env.kubectl(&["delete", "beval", "nobody", "-n", "shared", "--timeout=30s"])
        .await?;
    let jobs = env.emulator.jobs();
    if jobs.iter().any(|j| j.account == OPERATOR_ACCOUNT) {
        bail!("the refused namespace acted with the operator's identity: {jobs:?}");
    }
    ensure!(jobs.len() == 1 && jobs[0].account == ACCOUNT_A);
    Ok(())
}

/// AWS counts active jobs per account: with a quota of 1, tenant-a's full quota queues
/// tenant-a's next object but never tenant-b's, whose account has room.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn start_queues_are_per_account() -> anyhow::Result<()> {
    let env = tenant_env_with_quota(&[], Some(1)).await?;
    let long = [runs("60s")];
    env.apply(&manifest("tenant-a", "a-first", "", &long))
        .await?;
    env.wait_remote("tenant-a", "a-first", "IN_PROGRESS", LONG)
        .await?;
    env.apply(&manifest("tenant-a", "a-second", "", &long))
        .await?;
    let queued = env
        .wait_for("tenant-a", "a-second", "queued", LONG, |o| {
            cond_reason(o, "Reconciling") == "Queued"
        })
        .await?;
    let message = cond_message(&queued, "Reconciling");
    ensure!(
        message.contains(ACCOUNT_A),
        "the queue names its account: {message}"
    );
    env.apply(&manifest("tenant-b", "b-first", "", &long))
        .await?;
    let b = running_job(&env, "tenant-b", "b-first").await?;
    ensure!(b.account == ACCOUNT_B);
    let a_second = env.get("tenant-a", "a-second").await?.context("a-second")?;
    ensure!(
        cond_reason(&a_second, "Reconciling") == "Queued",
        "tenant-a's object still waits for tenant-a's quota"
    );
    println!(
        "tenant-a queued ({message}); tenant-b started {} in account {}",
        b.id, b.account
    );
    Ok(())
}
