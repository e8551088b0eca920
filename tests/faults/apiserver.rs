//! kube-apiserver SIGKILLed and restarted on the same etcd while lifecycles run.

use agentcore_testenv::ControlPlane;
use anyhow::Context as _;

use crate::{
    Ctx, LONG,
    budget::calls_between,
    lifecycle::{Plan, lifecycle, lifecycles, record_lifecycles},
    support::{
        object::{deleting, remote_is},
        report::Row,
    },
};

/// Lifecycles while kube-apiserver is SIGKILLed and restarted twice on the same etcd; an object
/// created and deleted after the second restart proves the watch is back (a terminal object is
/// never requeued, only a watch event can bring its deletion to the operator).
pub async fn restarts(ctx: &Ctx<'_>, plane: &mut ControlPlane) -> Row {
    let ns = "apiserver-restart";
    let mut row = Row::new("kube-apiserver killed and restarted mid-run (×2)", &[ns]);
    row.faults = "2 kube-apiserver SIGKILL + restart on the same etcd".to_owned();
    if let Err(e) = ctx.cluster.create_namespace(ns).await {
        row.fail(format!("namespace: {e:#}"));
        return row;
    }
    let before = ctx.emulator.stats();
    let n = ctx.scale.restart_lifecycles;
    let disturb = async {
        let _ = ctx
            .monitor
            .wait("a job in progress", LONG, |s| {
                s.in_namespace(ns)
                    .any(|o| remote_is(Some(o), "IN_PROGRESS"))
            })
            .await;
        plane.restart_apiserver().await.context("first restart")?;
        let _ = ctx
            .monitor
            .wait("a deletion in progress", LONG, |s| {
                s.in_namespace(ns).any(deleting)
            })
            .await;
        plane.restart_apiserver().await.context("second restart")?;
        anyhow::Ok(lifecycle(ctx, ns, "after-restart", Plan::Complete).await)
    };
    let (mut outcomes, late) = tokio::join!(lifecycles(ctx, ns, "lc", n), disturb);
    match late {
        Ok(more) => outcomes.push(more),
        Err(e) => row.fail(format!("{e:#}")),
    }
    let after = ctx.emulator.stats();
    record_lifecycles(&mut row, &outcomes, Some(calls_between(&before, &after)));
    row
}
