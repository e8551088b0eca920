//! ownerReference garbage collection of BatchEvaluations, with the real kube-controller-manager
//! beside the test API server (`PlaneOptions { controller_manager: true }`): what owners such as a
//! schedule rely on. A BatchEvaluation deleted by the garbage collector goes through the operator's
//! finalizer like one deleted with kubectl: its running remote job is stopped and deleted before
//! the object disappears.

mod support;

use std::time::Duration;

use agentcore_emulator::Operation;
use anyhow::{Context as _, ensure};
use support::{Env, EnvOptions, PlaneOptions, faults::runs, manifest, object::status_str};

const LONG: Duration = Duration::from_secs(90);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_evaluation_whose_owner_is_deleted_is_cleaned_up_then_collected()
-> anyhow::Result<()> {
    let env = Env::start_with(
        EnvOptions::default(),
        PlaneOptions {
            controller_manager: true,
        },
    )
    .await?;
    let ns = "gc";
    env.create_namespace(ns).await?;
    env.kubectl(&["create", "configmap", "owner", "-n", ns])
        .await?;
    let uid = env
        .kubectl(&[
            "get",
            "configmap",
            "owner",
            "-n",
            ns,
            "-o",
            "jsonpath={.metadata.uid}",
        ])
        .await?;
    let owned = |name: &str| {
        manifest(ns, name, "", &[runs("300s")]).replacen(
            &format!("  namespace: {ns}\n"),
            &format!(
                "  namespace: {ns}\n  ownerReferences:\n  - apiVersion: v1\n    kind: ConfigMap\n    name: owner\n    uid: {uid}\n"
            ),
            1,
        )
    };
    let child = owned("child");
    ensure!(child.contains("ownerReferences"), "{child}");
    env.apply(&child).await?;
    env.apply(&manifest(ns, "unowned", "", &[runs("300s")]))
        .await?;
    let running = env.wait_remote(ns, "child", "IN_PROGRESS", LONG).await?;
    let remote = status_str(&running, "batchEvaluationName")
        .context("remote name")?
        .to_owned();
    env.wait_remote(ns, "unowned", "IN_PROGRESS", LONG).await?;

    env.kubectl(&["delete", "configmap", "owner", "-n", ns])
        .await?;
    // The garbage collector deletes the child; the operator's finalizer holds it until the
    // remote job is stopped and deleted.
    env.kubectl(&[
        "wait",
        "--for=delete",
        "beval/child",
        "-n",
        ns,
        "--timeout=90s",
    ])
    .await
    .context("the owned BatchEvaluation is collected")?;
    let jobs = env.jobs_named(&remote);
    ensure!(
        jobs.len() == 1 && jobs[0].is_gone(),
        "the remote job is gone before the object: {jobs:?}"
    );
    ensure!(
        env.calls(Operation::StopBatchEvaluation) >= 1
            && env.calls(Operation::DeleteBatchEvaluation) >= 1,
        "stopped and deleted through the finalizer"
    );
    // Nothing without that owner is touched.
    let unowned = env.get(ns, "unowned").await?.context("unowned")?;
    ensure!(
        status_str(&unowned, "remoteStatus") == Some("IN_PROGRESS")
            && unowned.pointer("/metadata/deletionTimestamp").is_none(),
        "the unowned object is untouched: {unowned}"
    );
    Ok(())
}
