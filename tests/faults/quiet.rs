//! Quiet windows (I5, I6): with every object settled, neither AWS calls nor Kubernetes writes
//! may happen, also across an operator restart.

use std::time::Duration;

use agentcore_testenv::OperatorProcess;

use crate::{
    Ctx, LONG,
    budget::calls_between,
    support::{
        invariants::{Invariant, Quiet, Violation},
        object::settled,
        report::Row,
        wait,
    },
};

/// A window's label and the pseudo-namespace its findings are charged to.
pub struct Window {
    label: &'static str,
    slug: &'static str,
}

pub const CRASH: Window = Window {
    label: "objects left Ready by the kill and restart scenarios",
    slug: "crash",
};
pub const CRASH_RESTART: Window = Window {
    label: "the same objects across an operator restart",
    slug: "crash-restart",
};
pub const AWS: Window = Window {
    label: "objects left Ready by the AWS-fault phases",
    slug: "aws",
};

/// Settles, then checks that neither AWS calls nor Kubernetes writes happen over the window;
/// with `restart`, the operator is restarted at the start of the window (and waited for until
/// its watch cache is synced), so every object is reconciled once more and must still cost
/// nothing.
pub async fn window(ctx: &Ctx<'_>, w: Window, restart: Option<&mut OperatorProcess>) -> Row {
    labelled(ctx, w.label, w.slug, restart).await
}

/// [`window`] with a label made at run time.
pub async fn labelled(
    ctx: &Ctx<'_>,
    label: &str,
    slug: &str,
    restart: Option<&mut OperatorProcess>,
) -> Row {
    let pseudo = format!("quiet-{slug}");
    let mut row = Row::new(format!("quiet: {label}"), &[&pseudo]);
    row.faults = if restart.is_some() {
        "1 operator restart".to_owned()
    } else {
        "none".to_owned()
    };
    let result: anyhow::Result<()> = async {
        let snap = ctx
            .monitor
            .wait("every object settled", LONG, |s| {
                s.objects.values().all(settled)
            })
            .await?;
        // Let the last status writes and events land before the first probe.
        tokio::time::sleep(Duration::from_secs(2)).await;
        let before = Quiet::probe(ctx.cluster, ctx.emulator).await?;
        if let Some(operator) = restart {
            operator.restart().await?;
            wait::ready(ctx.metrics_port, LONG).await?;
        }
        tokio::time::sleep(ctx.scale.quiet).await;
        let after = Quiet::probe(ctx.cluster, ctx.emulator).await?;
        let moved = before.moved(&after, label);
        row.note(format!(
            "{} objects ({} terminal or stalled) watched for {} s: {} AWS calls, {} object or event writes",
            snap.objects.len(),
            snap.objects.values().filter(|o| settled(o)).count(),
            ctx.scale.quiet.as_secs(),
            calls_between(&before.stats, &after.stats),
            moved.iter().filter(|v| v.invariant == Invariant::I6).count()
        ));
        charge(ctx, &pseudo, moved);
        Ok(())
    }
    .await;
    row.check("quiet window", result);
    row
}

/// Adds what moved during a quiet window to the ledger, under `namespace`.
pub fn charge(ctx: &Ctx<'_>, namespace: &str, moved: Vec<Violation>) {
    let mut ledger = ctx.monitor.ledger();
    for v in moved {
        ledger.add(Violation {
            namespace: namespace.to_owned(),
            ..v
        });
    }
}
