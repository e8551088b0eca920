//! The printed figures (a Markdown report, so it can go into docs/benchmarks.md as is) and the
//! CSV of completed lifecycles over time.

use std::{fmt::Write as _, path::Path, time::Duration};

use agentcore_emulator::Operation;

use crate::{
    counters::{ApiRequests, ProcSample, Snapshot},
    runs::{RunResult, Settings},
    timeline::Milestone,
};

/// Targets of the issue; printed next to the figures, never asserted.
/// Operator lifecycle time / baseline lifecycle time.
pub const TARGET_RATIO: f64 = 1.25;
/// Operator peak RSS at 10,000 objects.
pub const TARGET_RSS_MIB: f64 = 40.0;
/// Operator CPU seconds per 1,000 lifecycles.
pub const TARGET_CPU_PER_K: f64 = 2.0;
/// Kubernetes writes per lifecycle at minimum: client create + delete, operator finalizer add +
/// removal, and two status writes (the id as soon as the job exists, the terminal result).
pub const MIN_WRITES: f64 = 6.0;

const BE: &str = "batchevaluations";

pub struct Header {
    pub command: String,
    pub date: String,
    pub machine: String,
    pub load_before: String,
    pub load_after: String,
}

/// AWS calls one lifecycle needs at minimum, by operation, with the reason.
pub fn aws_minimum(settings: &Settings) -> Vec<(Operation, u64, String)> {
    let poll = settings.poll_interval.as_secs_f64();
    let cleanup_poll = settings
        .poll_interval
        .min(Duration::from_secs(5))
        .as_secs_f64();
    let polls = (settings.job_duration.as_secs_f64() / poll).ceil() as u64;
    let confirm = ((settings.delete_duration.as_secs_f64() / cleanup_poll).ceil() as u64).max(1);
    vec![
        (
            Operation::StartBatchEvaluation,
            1,
            "one job per object".into(),
        ),
        (
            Operation::GetBatchEvaluation,
            polls + confirm,
            format!(
                "⌈job {} / poll {}⌉ = {polls} polls until terminal, + ⌈delete {} / cleanup poll {}⌉ (≥ 1) = {confirm} read confirming it gone",
                fmt_d(settings.job_duration),
                fmt_d(settings.poll_interval),
                fmt_d(settings.delete_duration),
                fmt_d(settings.poll_interval.min(Duration::from_secs(5)))
            ),
        ),
        (
            Operation::ListBatchEvaluations,
            0,
            "only when a Start's answer was lost".into(),
        ),
        (
            Operation::StopBatchEvaluation,
            0,
            "1 only if still running when deleted; here every job is terminal".into(),
        ),
        (Operation::DeleteBatchEvaluation, 1, "one per job".into()),
    ]
}

fn fmt_d(d: Duration) -> String {
    humantime::format_duration(d).to_string()
}

fn met(ok: bool) -> &'static str {
    if ok { "**met**" } else { "**missed**" }
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// CPU seconds per 1,000 lifecycles.
fn cpu_per_k(d: Duration, n: usize) -> f64 {
    d.as_secs_f64() * 1000.0 / n as f64
}

fn per_k(d: Option<Duration>, n: usize) -> String {
    d.map_or("–".into(), |d| format!("{:.2}", cpu_per_k(d, n)))
}

/// The controller's Kubernetes writes, as the idle and restart figures count them: to the
/// objects and Events (not kube-apiserver's own, such as its identity lease).
fn controller_writes(api: &ApiRequests) -> f64 {
    api.writes(BE) + api.writes("events")
}

/// `AWS calls, controller writes` of a window, as the side-by-side table shows them.
fn calls_and_writes(aws: u64, api: &ApiRequests) -> String {
    format!("{aws}, {:.0}", controller_writes(api))
}

/// Non-zero counters as `name n, name n`; `none` when all are zero.
fn nonzero_list(items: impl IntoIterator<Item = (String, f64)>) -> String {
    let parts: Vec<String> = items
        .into_iter()
        .filter(|(_, n)| *n > 0.0)
        .map(|(what, n)| format!("{what} {n}"))
        .collect();
    if parts.is_empty() {
        "none".into()
    } else {
        parts.join(", ")
    }
}

/// What the controller did in the restart window beyond the target: AWS calls by operation and
/// its writes by request.
fn restart_detail(r: &RunResult) -> String {
    let aws = nonzero_list(r.restart_aws().0.into_iter().map(|(op, n)| (op, n as f64)));
    let writes = nonzero_list(
        r.restart_api()
            .write_lines()
            .into_iter()
            .filter(|(what, _)| what.contains(BE) || what.ends_with(" events")),
    );
    format!("AWS calls: {aws}; writes: {writes}")
}

/// The whole report as Markdown.
#[allow(clippy::too_many_lines)] // one linear document; splitting it would only scatter it
pub fn render(
    header: &Header,
    settings: &Settings,
    op: &RunResult,
    peer: Option<&RunResult>,
    base: &RunResult,
) -> String {
    let n = settings.objects;
    let nf = n as f64;
    let mut out = String::new();
    let w = &mut out;
    let _ = writeln!(
        w,
        "## agentcore-bench --{}: {n} objects, concurrency {}\n",
        settings.mode, settings.concurrency
    );
    let _ = writeln!(w, "- command: `{}`", header.command);
    let _ = writeln!(w, "- date: {}", header.date);
    let _ = writeln!(w, "- machine: {}", header.machine);
    let _ = writeln!(
        w,
        "- load average (1, 5, 15 min) before: {}; after: {}",
        header.load_before, header.load_after
    );
    let _ = writeln!(
        w,
        "- emulator jobs: {} long ({} of it PENDING), delete takes {}; operator poll interval {} (±10% jitter), cleanup polls every {}; idle window {}{}",
        fmt_d(settings.job_duration),
        fmt_d((settings.job_duration / 5).min(Duration::from_secs(1))),
        fmt_d(settings.delete_duration),
        fmt_d(settings.poll_interval),
        fmt_d(settings.poll_interval.min(Duration::from_secs(5))),
        fmt_d(settings.idle),
        if settings.mode == "quick" {
            " (quick mode: shorter than the full mode's 5 min)"
        } else {
            ""
        }
    );
    let _ = writeln!(
        w,
        "- after the idle window the controller is restarted (SIGTERM, then the same binary and options) and watched for {} after its ready line; then the client deletes everything",
        fmt_d(settings.restart_settle)
    );
    let _ = writeln!(
        w,
        "- each run on a fresh kube-apiserver + etcd; the client creates and deletes with {c} requests in flight in every run; the baseline's {c} workers do the operator's minimum writes as the operator's ServiceAccount; the operator is the release binary, as the Helm chart runs it (JSON logs at info, no leader election){p}",
        c = settings.concurrency,
        p = if peer.is_some() {
            "; the peer (`bench/peer`, controller-runtime) runs as the same ServiceAccount with the same emulator, poll interval and concurrency (JSON logs at info, no leader election)"
        } else {
            "; no peer run (`--no-peer`)"
        }
    );
    side_by_side(w, n, op, peer, base);

    // Time.
    let _ = writeln!(w, "\n### Time\n");
    let _ = writeln!(
        w,
        "| phase | operator | baseline | operator / baseline | target | |"
    );
    let _ = writeln!(w, "|---|---:|---:|---:|---|---|");
    let row = |w: &mut String, what: &str, a: f64, b: f64, target: bool| {
        let ratio = a / b;
        let (t, m) = if target {
            (format!("≤ {TARGET_RATIO}"), met(ratio <= TARGET_RATIO))
        } else {
            ("".into(), "")
        };
        let _ = writeln!(
            w,
            "| {what} | {a:.1} s | {b:.1} s | {ratio:.2} | {t} | {m} |"
        );
    };
    row(
        w,
        "create → all started (id recorded)",
        op.all_started,
        base.all_started,
        false,
    );
    row(w, "create → all Ready", op.all_ready, base.all_ready, true);
    row(w, "delete → all gone", op.all_gone, base.all_gone, true);
    row(
        w,
        "lifecycle (create → all Ready, + delete → all gone)",
        op.all_ready + op.all_gone,
        base.all_ready + base.all_gone,
        true,
    );
    let _ = writeln!(
        w,
        "\nThroughput: operator {:.0} lifecycles/s, baseline {:.0} lifecycles/s (objects / lifecycle time).",
        nf / (op.all_ready + op.all_gone),
        nf / (base.all_ready + base.all_gone)
    );

    // Kubernetes writes.
    let (op_api, base_api) = (op.lifecycle_api(), base.lifecycle_api());
    let phases = |r: &RunResult| (r.create_api(), r.delete_api());
    let (op_create, op_delete) = phases(op);
    let (base_create, base_delete) = phases(base);
    let per = |api: &ApiRequests, verb: &str, sub: &str| api.count(Some(verb), BE, Some(sub)) / nf;
    // The operator patches; a controller-runtime controller updates (PUT) by default.
    let upd = |api: &ApiRequests, sub: &str| {
        (api.count(Some("PATCH"), BE, Some(sub)) + api.count(Some("PUT"), BE, Some(sub))) / nf
    };
    let peer_api = peer.map(RunResult::lifecycle_api).unwrap_or_default();
    let (peer_create, peer_delete) = peer.map_or_else(Default::default, phases);
    let peer_col = |v: f64| {
        if peer.is_some() {
            format!("{v:.2}")
        } else {
            "–".into()
        }
    };
    let _ = writeln!(
        w,
        "\n### Kubernetes writes per lifecycle (kube-apiserver's `apiserver_request_total`, resource `batchevaluations`)\n"
    );
    let _ = writeln!(
        w,
        "| write | by | operator run | peer run | baseline | minimum |"
    );
    let _ = writeln!(w, "|---|---|---:|---:|---:|---:|");
    let lines: [(&str, &str, [f64; 3], &str); 7] = [
        (
            "create (POST)",
            "client",
            [&op_api, &peer_api, &base_api].map(|a| per(a, "POST", "")),
            "1",
        ),
        (
            "finalizer add (PATCH or PUT, create phase)",
            "controller",
            [&op_create, &peer_create, &base_create].map(|a| upd(a, "")),
            "1",
        ),
        (
            "status while running (PATCH or PUT status, create phase)",
            "controller",
            [&op_create, &peer_create, &base_create].map(|a| upd(a, "status")),
            "2",
        ),
        (
            "delete (DELETE)",
            "client",
            [&op_api, &peer_api, &base_api].map(|a| per(a, "DELETE", "")),
            "1",
        ),
        (
            "status during deletion (PATCH or PUT status, delete phase)",
            "controller",
            [&op_delete, &peer_delete, &base_delete].map(|a| upd(a, "status")),
            "0",
        ),
        (
            "finalizer removal (PATCH or PUT, delete phase)",
            "controller",
            [&op_delete, &peer_delete, &base_delete].map(|a| upd(a, "")),
            "1",
        ),
        (
            "**total** (every outcome, conflicts included)",
            "",
            [&op_api, &peer_api, &base_api].map(|a| a.writes(BE) / nf),
            "6",
        ),
    ];
    for (what, by, [a, p, b], min) in lines {
        let _ = writeln!(
            w,
            "| {what} | {by} | {a:.2} | {} | {b:.2} | {min} |",
            peer_col(p)
        );
    }
    let op_writes = op_api.writes(BE) / nf;
    let _ = writeln!(
        w,
        "\nTarget: writes per lifecycle ≤ minimum + 1 = {}: operator run {op_writes:.2} → {}.",
        MIN_WRITES + 1.0,
        met(op_writes <= MIN_WRITES + 1.0 + 1e-9)
    );
    let _ = writeln!(
        w,
        "Not in that count: Event writes (`events`) {:.2} per lifecycle (operator), {} (peer); reads: GET batchevaluations {:.2} per lifecycle (operator run), {} (peer run), {:.2} (baseline). Conflicts (409) on batchevaluations writes: {:.2} (operator run), {} (peer run).",
        op_api.writes("events") / nf,
        peer_col(peer_api.writes("events") / nf),
        op_api.count(Some("GET"), BE, None) / nf,
        peer_col(peer_api.count(Some("GET"), BE, None) / nf),
        base_api.count(Some("GET"), BE, None) / nf,
        op.conflicts() / nf,
        peer_col(peer.map_or(0.0, RunResult::conflicts) / nf),
    );

    // AWS calls.
    let aws = op.lifecycle_aws();
    let peer_aws = peer.map(RunResult::lifecycle_aws).unwrap_or_default();
    let _ = writeln!(
        w,
        "\n### AWS calls per lifecycle (emulator counters, every outcome)\n"
    );
    let _ = writeln!(w, "| operation | operator run | peer run | minimum | why |");
    let _ = writeln!(w, "|---|---:|---:|---:|---|");
    let mut min_total = 0;
    for (operation, min, why) in aws_minimum(settings) {
        min_total += min;
        let _ = writeln!(
            w,
            "| {operation} | {:.2} | {} | {min} | {why} |",
            aws.get(operation) as f64 / nf,
            peer_col(peer_aws.get(operation) as f64 / nf)
        );
    }
    let _ = writeln!(
        w,
        "| **total** | {:.2} | {} | {min_total} | |",
        aws.total() as f64 / nf,
        peer_col(peer_aws.total() as f64 / nf)
    );

    // Idle.
    let idle_api = op.idle_api();
    let idle_aws = op.idle_aws().total();
    let idle_op_writes = controller_writes(&idle_api);
    let _ = writeln!(
        w,
        "\n### Idle: {n} terminal objects for {}\n",
        fmt_d(settings.idle)
    );
    let _ = writeln!(w, "| figure | value | target | |");
    let _ = writeln!(w, "|---|---:|---:|---|");
    let _ = writeln!(w, "| AWS calls | {idle_aws} | 0 | {} |", met(idle_aws == 0));
    let _ = writeln!(
        w,
        "| operator's Kubernetes writes (batchevaluations, events) | {idle_op_writes:.0} | 0 | {} |",
        met(idle_op_writes == 0.0)
    );
    let _ = writeln!(
        w,
        "| all API writes, incl. kube-apiserver's own (its identity lease) | {:.0} | | |",
        idle_api.all_writes()
    );
    let _ = writeln!(
        w,
        "| operator CPU | {:.2} s | | |",
        op.idle_cpu(|s| s.operator)
            .unwrap_or_default()
            .as_secs_f64()
    );

    // Restart.
    let restart_aws = op.restart_aws().total();
    let restart_op_writes = controller_writes(&op.restart_api());
    restart_section(w, settings, op, peer);

    // Resources.
    let peak = mib(op.peak_rss_kib().unwrap_or_default());
    let _ = writeln!(w, "\n### Resources\n");
    let _ = writeln!(w, "| figure | operator run | baseline | target | |");
    let _ = writeln!(w, "|---|---:|---:|---|---|");
    let rss_note = if n >= 10_000 {
        met(peak <= TARGET_RSS_MIB).to_owned()
    } else {
        format!(
            "{} (at {n} objects; the target is for 10,000)",
            met(peak <= TARGET_RSS_MIB)
        )
    };
    let _ = writeln!(
        w,
        "| operator peak RSS (VmHWM, the larger of the first and the restarted process) | {peak:.1} MiB | | ≤ {TARGET_RSS_MIB} MiB | {rss_note} |"
    );
    let _ = writeln!(
        w,
        "| operator RSS before the first object | {:.1} MiB | | | |",
        mib(op.snapshots[0].operator.unwrap_or_default().rss_kib)
    );
    let _ = writeln!(
        w,
        "| operator RSS with {n} terminal objects (end of idle) | {:.1} MiB | | | |",
        mib(op.snapshots[2].operator.unwrap_or_default().rss_kib)
    );
    let cpu_row = |w: &mut String, what: &str, of: fn(&Snapshot) -> Option<ProcSample>| {
        let _ = writeln!(
            w,
            "| {what}, CPU s per 1,000 lifecycles | {} | {} | | |",
            per_k(op.lifecycle_cpu(of), n),
            per_k(base.lifecycle_cpu(of), n)
        );
    };
    let op_cpu = op.lifecycle_cpu(|s| s.operator).map(|d| cpu_per_k(d, n));
    let _ = writeln!(
        w,
        "| operator, CPU s per 1,000 lifecycles | {} | – | ≤ {TARGET_CPU_PER_K:.1} | {} |",
        per_k(op.lifecycle_cpu(|s| s.operator), n),
        op_cpu.map_or("", |c| met(c <= TARGET_CPU_PER_K))
    );
    cpu_row(w, "kube-apiserver", |s| Some(s.apiserver));
    cpu_row(w, "etcd", |s| Some(s.etcd));
    cpu_row(
        w,
        "benchmark process (client, timing watch; emulator in the operator run)",
        |s| Some(s.bench),
    );

    // Where the operator's work goes.
    let _ = writeln!(
        w,
        "\n### Operator detail (its own metrics, per lifecycle)\n"
    );
    let _ = writeln!(w, "| reconciles by outcome reason | per lifecycle |");
    let _ = writeln!(w, "|---|---:|");
    for (reason, count) in op.operator_metric_by("agentcore_operator_reconciles_total", "reason") {
        let _ = writeln!(w, "| {reason} | {:.2} |", count / nf);
    }
    let _ = writeln!(
        w,
        "\nAPI writes by request over the lifecycle phases (operator run): {}.",
        op_api
            .write_lines()
            .iter()
            .filter(|(what, _)| what.contains(BE) || what.ends_with(" events"))
            .map(|(what, count)| format!("{what} {:.2}", count / nf))
            .collect::<Vec<_>>()
            .join(", ")
    );
    if let Some(peer) = peer {
        let _ = writeln!(
            w,
            "Peer reconciles by result (controller-runtime's `controller_runtime_reconcile_total`), per lifecycle: {}. Peer log lines at warning or error: {}.",
            peer.operator_metric_by("controller_runtime_reconcile_total", "result")
                .iter()
                .map(|(result, count)| format!("{result} {:.2}", count / nf))
                .collect::<Vec<_>>()
                .join(", "),
            peer.operator_warnings.len()
        );
        for line in peer.operator_warnings.iter().take(3) {
            let _ = writeln!(w, "    {}", truncate(line, 300));
        }
    }
    let retries = op.retries + base.retries + peer.map_or(0, |p| p.retries);
    let _ = writeln!(
        w,
        "Client requests retried after a transient failure: {retries}. Operator log lines at WARN or ERROR: {}.",
        op.operator_warnings.len()
    );
    for line in op.operator_warnings.iter().take(3) {
        let _ = writeln!(w, "    {}", truncate(line, 300));
    }

    // Summary.
    let ratio = (op.all_ready + op.all_gone) / (base.all_ready + base.all_gone);
    let _ = writeln!(w, "\n### Targets\n");
    let _ = writeln!(w, "| target | figure | |");
    let _ = writeln!(w, "|---|---:|---|");
    let _ = writeln!(
        w,
        "| operator / baseline lifecycle time ≤ {TARGET_RATIO} | {ratio:.2} | {} |",
        met(ratio <= TARGET_RATIO)
    );
    let _ = writeln!(
        w,
        "| operator peak RSS ≤ {TARGET_RSS_MIB} MiB at 10,000 objects | {peak:.1} MiB at {n} | {} |",
        if n >= 10_000 {
            met(peak <= TARGET_RSS_MIB)
        } else {
            "not measured at 10,000 in this mode"
        }
    );
    let _ = writeln!(
        w,
        "| operator CPU ≤ {TARGET_CPU_PER_K:.1} s per 1,000 lifecycles | {} | {} |",
        per_k(op.lifecycle_cpu(|s| s.operator), n),
        op_cpu.map_or("not measured", |c| met(c <= TARGET_CPU_PER_K))
    );
    let _ = writeln!(
        w,
        "| 0 AWS calls while idle | {idle_aws} | {} |",
        met(idle_aws == 0)
    );
    let _ = writeln!(
        w,
        "| 0 writes while idle | {idle_op_writes:.0} | {} |",
        met(idle_op_writes == 0.0)
    );
    let _ = writeln!(
        w,
        "| 0 AWS calls after a restart | {restart_aws} | {} |",
        met(restart_aws == 0)
    );
    let _ = writeln!(
        w,
        "| 0 writes after a restart | {restart_op_writes:.0} | {} |",
        met(restart_op_writes == 0.0)
    );
    let _ = writeln!(
        w,
        "| writes per lifecycle ≤ minimum + 1 = {} | {op_writes:.2} | {} |",
        MIN_WRITES + 1.0,
        met(op_writes <= MIN_WRITES + 1.0 + 1e-9)
    );
    out
}

/// One table with the three runs side by side: what the issue asks to compare.
fn side_by_side(
    w: &mut String,
    n: usize,
    op: &RunResult,
    peer: Option<&RunResult>,
    base: &RunResult,
) {
    let nf = n as f64;
    let runs = [Some(op), peer, Some(base)];
    let _ = writeln!(w, "\n### Side by side\n");
    let _ = writeln!(
        w,
        "| per run | operator | peer (controller-runtime) | baseline |"
    );
    let _ = writeln!(w, "|---|---:|---:|---:|");
    let row = |w: &mut String, what: &str, f: &dyn Fn(&RunResult) -> Option<String>| {
        let cells: Vec<String> = runs
            .iter()
            .map(|r| r.and_then(f).unwrap_or_else(|| "–".into()))
            .collect();
        let _ = writeln!(w, "| {what} | {} |", cells.join(" | "));
    };
    let lifecycle = |r: &RunResult| r.all_ready + r.all_gone;
    let is_base = |r: &RunResult| std::ptr::eq(r, base);
    row(w, "create → all Ready", &|r| {
        Some(format!("{:.1} s", r.all_ready))
    });
    row(w, "delete → all gone", &|r| {
        Some(format!("{:.1} s", r.all_gone))
    });
    row(
        w,
        "lifecycle time (create → all Ready, + delete → all gone)",
        &|r| Some(format!("{:.1} s", lifecycle(r))),
    );
    row(w, "time / baseline", &|r| {
        Some(format!("{:.2}", lifecycle(r) / lifecycle(base)))
    });
    row(w, "controller CPU s per 1,000 lifecycles", &|r| {
        (!is_base(r)).then(|| per_k(r.lifecycle_cpu(|s| s.operator), n))
    });
    row(w, "controller peak RSS (VmHWM)", &|r| {
        r.peak_rss_kib().map(|p| format!("{:.1} MiB", mib(p)))
    });
    row(w, "kube-apiserver CPU s per 1,000 lifecycles", &|r| {
        Some(per_k(r.lifecycle_cpu(|s| Some(s.apiserver)), n))
    });
    row(
        w,
        "Kubernetes writes per lifecycle (batchevaluations)",
        &|r| Some(format!("{:.2}", r.lifecycle_api().writes(BE) / nf)),
    );
    row(w, "Event writes per lifecycle", &|r| {
        Some(format!("{:.2}", r.lifecycle_api().writes("events") / nf))
    });
    row(w, "AWS calls per lifecycle", &|r| {
        (!is_base(r)).then(|| format!("{:.2}", r.lifecycle_aws().total() as f64 / nf))
    });
    row(
        w,
        "idle: AWS calls, controller writes (batchevaluations, events)",
        &|r| (!is_base(r)).then(|| calls_and_writes(r.idle_aws().total(), &r.idle_api())),
    );
    row(w, "idle: controller CPU", &|r| {
        (!is_base(r)).then(|| {
            format!(
                "{:.2} s",
                r.idle_cpu(|s| s.operator).unwrap_or_default().as_secs_f64()
            )
        })
    });
    row(w, "restart: time until ready", &|r| {
        r.restart
            .as_ref()
            .map(|x| format!("{:.2} s", x.until_ready.as_secs_f64()))
    });
    row(
        w,
        "restart: AWS calls, controller writes (batchevaluations, events)",
        &|r| {
            r.restart
                .as_ref()
                .map(|_| calls_and_writes(r.restart_aws().total(), &r.restart_api()))
        },
    );
}

/// The controller restarted with N terminal objects: what it cost until it settled.
fn restart_section(w: &mut String, settings: &Settings, op: &RunResult, peer: Option<&RunResult>) {
    let n = settings.objects;
    let _ = writeln!(w, "\n### Restart: {n} terminal objects\n");
    let _ = writeln!(
        w,
        "After the idle window the controller gets SIGTERM and is started again with the same options. Counted from the SIGTERM until {} after the restarted process logged its ready line (operator: `watch cache synced`, peer: `Starting workers`).\n",
        fmt_d(settings.restart_settle)
    );
    let _ = writeln!(w, "| figure | operator | peer | target | |");
    let _ = writeln!(w, "|---|---:|---:|---:|---|");
    let cell = |r: Option<&RunResult>, f: &dyn Fn(&RunResult) -> Option<String>| {
        r.and_then(f).unwrap_or_else(|| "–".into())
    };
    let row = |w: &mut String,
               what: &str,
               f: &dyn Fn(&RunResult) -> Option<String>,
               target: &str,
               verdict: &str| {
        let _ = writeln!(
            w,
            "| {what} | {} | {} | {target} | {verdict} |",
            cell(Some(op), f),
            cell(peer, f)
        );
    };
    let aws = op.restart_aws().total();
    let writes = controller_writes(&op.restart_api());
    row(
        w,
        "AWS calls",
        &|r| Some(r.restart_aws().total().to_string()),
        "0",
        met(aws == 0),
    );
    row(
        w,
        "controller's Kubernetes writes (batchevaluations, events)",
        &|r| Some(format!("{:.0}", controller_writes(&r.restart_api()))),
        "0",
        met(writes == 0.0),
    );
    row(
        w,
        "time until ready after a restart (start → ready line)",
        &|r| {
            r.restart
                .as_ref()
                .map(|x| format!("{:.2} s", x.until_ready.as_secs_f64()))
        },
        "",
        "",
    );
    row(
        w,
        "shutdown (SIGTERM → exit)",
        &|r| {
            r.restart
                .as_ref()
                .map(|x| format!("{:.2} s, {}", x.stop.as_secs_f64(), x.exit))
        },
        "",
        "",
    );
    row(
        w,
        "restarted controller CPU (start → end of window)",
        &|r| {
            r.restarted()
                .map(|p| format!("{:.2} s", p.cpu.as_secs_f64()))
        },
        "",
        "",
    );
    row(
        w,
        "restarted controller RSS at the end of the window",
        &|r| r.restarted().map(|p| format!("{:.1} MiB", mib(p.rss_kib))),
        "",
        "",
    );
    row(
        w,
        "all API writes, incl. kube-apiserver's own",
        &|r| Some(format!("{:.0}", r.restart_api().all_writes())),
        "",
        "",
    );
    let _ = writeln!(
        w,
        "\nThe restarted operator's reconciles by outcome reason: {}.",
        nonzero_list(op.restart_metric_by("agentcore_operator_reconciles_total", "reason"))
    );
    if aws > 0 || writes > 0.0 {
        let _ = writeln!(w, "Operator in the restart window: {}.", restart_detail(op));
    }
    if let Some(peer) = peer {
        let _ = writeln!(
            w,
            "The restarted peer's reconciles by result: {}.",
            nonzero_list(peer.restart_metric_by("controller_runtime_reconcile_total", "result"))
        );
        if peer.restart_aws().total() > 0 || controller_writes(&peer.restart_api()) > 0.0 {
            let _ = writeln!(w, "Peer in the restart window: {}.", restart_detail(peer));
        }
    }
}

fn truncate(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

/// One row per object and milestone: `run,milestone,seconds,count`, the running count of
/// objects that reached it. Started and Ready count from the first create, gone from the
/// first delete.
pub fn write_csv(path: &Path, settings: &Settings, runs: &[&RunResult]) -> anyhow::Result<()> {
    let mut csv = format!(
        "# agentcore-bench --{}: {} objects, concurrency {}\nrun,milestone,seconds,count\n",
        settings.mode, settings.objects, settings.concurrency
    );
    for run in runs {
        for milestone in Milestone::ALL {
            let origin = if milestone == Milestone::Gone {
                run.delete_origin
            } else {
                run.create_origin
            };
            for (i, t) in run.timeline.offsets(milestone, origin).iter().enumerate() {
                let _ = writeln!(csv, "{},{},{t:.3},{}", run.label, milestone.as_str(), i + 1);
            }
        }
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(path, csv)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::{
        counters::{AwsCalls, Snapshot},
        runs::{Restart, test_run},
    };

    fn settings() -> Settings {
        Settings {
            mode: "quick",
            objects: 200,
            concurrency: 16,
            idle: Duration::from_secs(10),
            restart_settle: Duration::from_secs(15),
            job_duration: Duration::from_secs(2),
            poll_interval: Duration::from_secs(1),
            delete_duration: Duration::from_millis(500),
            operator_bin: PathBuf::new(),
            peer_bin: None,
            out_dir: PathBuf::new(),
            phase_timeout: Duration::from_secs(60),
        }
    }

    fn header() -> Header {
        Header {
            command: "agentcore-bench".into(),
            date: "today".into(),
            machine: "here".into(),
            load_before: "0".into(),
            load_after: "0".into(),
        }
    }

    /// A controller snapshot with `cpu_ms` of CPU, 30 MiB peak RSS, and `gets` Gets and
    /// `patches` status patches so far.
    fn snapshot(cpu_ms: u64, gets: u64, patches: f64) -> Snapshot {
        let mut snapshot = Snapshot {
            operator: Some(ProcSample {
                cpu: Duration::from_millis(cpu_ms),
                peak_rss_kib: 30 * 1024,
                rss_kib: 20 * 1024,
            }),
            aws: AwsCalls([("GetBatchEvaluation".to_owned(), gets)].into()),
            ..Snapshot::default()
        };
        snapshot
            .api
            .0
            .insert(("PATCH".into(), BE.into(), "status".into()), patches);
        snapshot
    }

    /// A controller run of 200 lifecycles whose restart window saw `gets` Gets and `patches`
    /// status writes; 0.3 s of CPU over the lifecycles (1.5 s per 1,000).
    fn controller_run(label: &'static str, gets: u64, patches: f64) -> RunResult {
        test_run(
            label,
            [
                snapshot(0, 0, 0.0),
                snapshot(200, 600, 600.0),
                snapshot(200, 600, 600.0),
                snapshot(50, 600 + gets, 600.0 + patches),
                snapshot(150, 1_000 + gets, 1_000.0 + patches),
            ],
            Some(Restart {
                stop: Duration::from_millis(40),
                exit: "exit status: 0".into(),
                until_ready: Duration::from_millis(310),
            }),
        )
    }

    fn baseline() -> RunResult {
        let s = Snapshot::default;
        test_run("baseline", [s(), s(), s(), s(), s()], None)
    }

    #[test]
    fn a_quiet_restart_meets_its_targets() {
        let op = controller_run("operator", 0, 0.0);
        let peer = controller_run("peer", 0, 0.0);
        let text = render(&header(), &settings(), &op, Some(&peer), &baseline());
        assert!(text.contains("| restart: time until ready | 0.31 s | 0.31 s | – |"));
        assert!(text.contains(
            "| restart: AWS calls, controller writes (batchevaluations, events) | 0, 0 | 0, 0 | – |"
        ));
        assert!(text.contains("### Restart: 200 terminal objects"));
        assert!(text.contains("| AWS calls | 0 | 0 | 0 | **met** |"));
        assert!(text.contains("| 0 AWS calls after a restart | 0 | **met** |"));
        assert!(text.contains("| 0 writes after a restart | 0 | **met** |"));
        assert!(text.contains("| shutdown (SIGTERM → exit) | 0.04 s, exit status: 0 |"));
        assert!(!text.contains("Operator in the restart window"));
        // 0.3 s over 200 lifecycles.
        assert!(text.contains("| operator CPU ≤ 2.0 s per 1,000 lifecycles | 1.50 | **met** |"));
        assert!(text.contains("≤ 1.25"));
        assert!(text.contains(
            "| operator peak RSS ≤ 40 MiB at 10,000 objects | 30.0 MiB at 200 | not measured at 10,000 in this mode |"
        ));
    }

    #[test]
    fn calls_and_writes_after_a_restart_are_missed_and_listed() {
        let op = controller_run("operator", 200, 3.0);
        let text = render(&header(), &settings(), &op, None, &baseline());
        assert!(text.contains(
            "| restart: AWS calls, controller writes (batchevaluations, events) | 200, 3 | – | – |"
        ));
        assert!(text.contains("| 0 AWS calls after a restart | 200 | **missed** |"));
        assert!(text.contains("| 0 writes after a restart | 3 | **missed** |"));
        assert!(text.contains(
            "Operator in the restart window: AWS calls: GetBatchEvaluation 200; writes: PATCH batchevaluations/status 3."
        ));
        // The restart window is neither lifecycle nor idle.
        assert!(text.contains("| 0 AWS calls while idle | 0 | **met** |"));
        assert!(text.contains("| **total** | 5.00 | – | 5 | |"));
    }

    #[test]
    fn lists_only_nonzero_counters() {
        assert_eq!(nonzero_list([("a".to_owned(), 0.0)]), "none");
        assert_eq!(
            nonzero_list([
                ("a".to_owned(), 2.0),
                ("b".to_owned(), 0.0),
                ("c".to_owned(), 0.5)
            ]),
            "a 2, c 0.5"
        );
    }
}
