//! GitOps ergonomics, checked with the tools' own code rather than a re-reading of their rules:
//! kstatus (sigs.k8s.io/cli-utils, what Flux and Helm 4 `--wait` use), the Argo CD Lua health
//! check shipped in the chart, run by gopher-lua (Argo CD's Lua runtime), and the Flux
//! `healthCheckExprs` of `examples/gitops/flux-kustomization.yaml`, evaluated by Flux's own CEL
//! status reader (github.com/fluxcd/pkg/runtime/cel), all through `hack/gitops-check`, on objects
//! captured from a real API server at each lifecycle stage, including the quality gate's
//! (`spec.passCriteria`, the `Passed` condition).
//!
//! - `stage_fixtures_*`: the committed captures in `tests/fixtures/stages/`; needs only Go.
//! - `lifecycle_stages_on_a_real_api_server`: drives one object per stage with the operator and
//!   the emulator, checks every capture live, plus `kubectl explain` and `kubectl wait` (for
//!   `Ready`, for deletion, and for `Passed`, which must fail on a missed criterion).
//!   `UPDATE_STAGE_FIXTURES=1` rewrites the committed captures from this run.

mod support;

use std::{
    collections::{BTreeMap, BTreeSet},
    path::PathBuf,
    process::Stdio,
    time::Duration,
};

use agentcore_emulator::TAG_SCORE;
use anyhow::{Context as _, bail, ensure};
use serde_json::Value;
use support::{
    Env, EnvOptions,
    faults::{ends, reject_every_start, runs, stops_in},
    manifest,
    object::{condition_is, status_str},
    repo_path,
};
use tokio::io::AsyncWriteExt as _;

const LONG: Duration = Duration::from_secs(90);
const HEALTH_LUA: &str = "charts/agentcore-operator/argocd/health.lua";
/// The Flux example whose `spec.healthCheckExprs` are evaluated (the file itself, not a copy).
const FLUX_KUSTOMIZATION: &str = "examples/gitops/flux-kustomization.yaml";
const FIXTURES: &str = "tests/fixtures/stages";

/// What each stage must read as: (stage, kstatus, Argo CD health, Flux with the
/// `healthCheckExprs` of [`FLUX_KUSTOMIZATION`]). docs/gitops.md's table and the user guide's
/// GitOps section say the same; change them together.
const EXPECTED: &[(&str, &str, &str, &str)] = &[
    // Created while no operator runs: status is only the CRD default {observedGeneration: -1}.
    ("unobserved", "InProgress", "Progressing", "InProgress"),
    ("pending", "InProgress", "Progressing", "InProgress"),
    ("running", "InProgress", "Progressing", "InProgress"),
    ("completed", "Current", "Healthy", "Current"),
    ("completed-with-errors", "Current", "Healthy", "Current"),
    // A completed object whose spec changed (generation 2) while the operator was down.
    (
        "generation-not-observed",
        "InProgress",
        "Progressing",
        "InProgress",
    ),
    ("failed", "Failed", "Degraded", "Failed"),
    // The service answered StartBatchEvaluation with a ValidationException.
    ("rejected", "Failed", "Degraded", "Failed"),
    // spec.stop: true. kstatus has no "suspended": Ready=False without Reconciling or Stalled
    // reads as InProgress (cli-utils checkReadyCondition). It must never read as Failed.
    ("stopped", "Current", "Suspended", "Current"),
    // The expressions read a deleting object as InProgress; kstatus has its own Terminating.
    ("deleting", "Terminating", "Progressing", "InProgress"),
    // The quality gate: spec.passCriteria, the Passed condition. kstatus knows only Ready, so a
    // missed criterion is still Current there; Argo CD and Flux (with the expressions) gate on it.
    // Completed, every criterion met: Passed=True, CriteriaMet.
    ("passed", "Current", "Healthy", "Current"),
    // Completed below a threshold: Passed=False, CriteriaMissed (still Ready=True).
    ("criteria-missed", "Current", "Degraded", "Failed"),
    // Running with criteria: Passed=Unknown, AwaitingResults.
    (
        "awaiting-verdict",
        "InProgress",
        "Progressing",
        "InProgress",
    ),
];

#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
struct Verdict {
    name: String,
    status: String,
    message: String,
}

/// Builds hack/gitops-check (cached by content hash) and returns the binary.
async fn gitops_check() -> anyhow::Result<PathBuf> {
    let out = tokio::process::Command::new("bash")
        .arg(repo_path("hack/build-gitops-check.sh"))
        .stdin(Stdio::null())
        .output()
        .await
        .context("running hack/build-gitops-check.sh (needs Go)")?;
    ensure!(
        out.status.success(),
        "hack/build-gitops-check.sh failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let path = String::from_utf8(out.stdout)?.trim().to_owned();
    Ok(PathBuf::from(path))
}

/// Runs `gitops-check <args>` on one object.
async fn check(tool: &PathBuf, args: &[&str], obj: &Value) -> anyhow::Result<Verdict> {
    let mut child = tokio::process::Command::new(tool)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()?;
    let mut stdin = child.stdin.take().context("stdin")?;
    stdin.write_all(&serde_json::to_vec(obj)?).await?;
    drop(stdin);
    let out = child.wait_with_output().await?;
    ensure!(
        out.status.success(),
        "gitops-check {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let verdicts: Vec<Verdict> = String::from_utf8(out.stdout)?
        .lines()
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()?;
    match verdicts.as_slice() {
        [one] => Ok(one.clone()),
        other => bail!("expected one verdict, got {other:?}"),
    }
}

/// kstatus and the Argo CD health check on `obj`.
async fn both(tool: &PathBuf, obj: &Value) -> anyhow::Result<(Verdict, Verdict)> {
    let health = repo_path(HEALTH_LUA).display().to_string();
    let kstatus = check(tool, &["kstatus"], obj).await?;
    let argocd = check(tool, &["argocd-health", "--script", &health], obj).await?;
    Ok((kstatus, argocd))
}

/// Flux's health check of `obj` with the example's `healthCheckExprs`.
async fn flux(tool: &PathBuf, obj: &Value) -> anyhow::Result<Verdict> {
    let kustomization = repo_path(FLUX_KUSTOMIZATION).display().to_string();
    check(
        tool,
        &["flux-health", "--kustomization", &kustomization],
        obj,
    )
    .await
}

fn expected(stage: &str) -> anyhow::Result<(&'static str, &'static str, &'static str)> {
    EXPECTED
        .iter()
        .find(|(s, _, _, _)| *s == stage)
        .map(|(_, k, a, f)| (*k, *a, *f))
        .with_context(|| format!("no expectation for stage {stage}"))
}

/// Asserts the verdicts of one stage; returns a line for the report.
async fn assert_stage(tool: &PathBuf, stage: &str, obj: &Value) -> anyhow::Result<String> {
    let (want_kstatus, want_argocd, want_flux) = expected(stage)?;
    let (kstatus, argocd) = both(tool, obj).await?;
    let flux = flux(tool, obj).await?;
    ensure!(
        kstatus.status == want_kstatus && argocd.status == want_argocd && flux.status == want_flux,
        "stage {stage}: kstatus {kstatus:?} (want {want_kstatus}), Argo CD {argocd:?} (want {want_argocd}), Flux {flux:?} (want {want_flux}); object: {obj}"
    );
    Ok(format!(
        "{stage:<24} kstatus {:<12} flux {:<11} argocd {:<12} {}",
        kstatus.status, flux.status, argocd.status, argocd.message
    ))
}

fn fixture_path(stage: &str) -> PathBuf {
    repo_path(FIXTURES).join(format!("{stage}.json"))
}

fn load_fixture(stage: &str) -> anyhow::Result<Value> {
    let path = fixture_path(stage);
    let text = std::fs::read_to_string(&path).with_context(|| {
        format!(
            "{} missing; regenerate with UPDATE_STAGE_FIXTURES=1 cargo test -p agentcore-operator --test gitops",
            path.display()
        )
    })?;
    Ok(serde_json::from_str(&text)?)
}

/// The committed captures read as the table says (kstatus, Argo CD, Flux), without a control plane.
#[tokio::test]
async fn stage_fixtures_kstatus_argocd_and_flux_health() -> anyhow::Result<()> {
    let tool = gitops_check().await?;
    let mut report = Vec::new();
    for (stage, _, _, _) in EXPECTED {
        let obj = load_fixture(stage)?;
        report.push(assert_stage(&tool, stage, &obj).await?);
    }
    println!("{}", report.join("\n"));
    Ok(())
}

/// Variations of the captures that the lifecycle does not produce on its own but that a GitOps
/// tool can still see.
#[tokio::test]
async fn stage_fixtures_edge_cases() -> anyhow::Result<()> {
    let tool = gitops_check().await?;

    // No status at all (an object stored before the CRD defaulted status): the health check
    // still waits for the operator. kstatus cannot tell and says Current, which is why the CRD
    // defaults status to {observedGeneration: -1}.
    let mut bare = load_fixture("unobserved")?;
    bare.as_object_mut().context("object")?.remove("status");
    let (kstatus, argocd) = both(&tool, &bare).await?;
    ensure!(argocd.status == "Progressing", "no status: {argocd:?}");
    ensure!(kstatus.status == "Current", "no status: {kstatus:?}");

    // A deletion blocked on AWS access: still Progressing (Argo CD shows every object with a
    // deletionTimestamp as Progressing anyway), with the reason in the message.
    let mut blocked = load_fixture("rejected")?;
    blocked["metadata"]["deletionTimestamp"] = Value::from("2026-01-01T00:00:00Z");
    let (kstatus, argocd) = both(&tool, &blocked).await?;
    ensure!(kstatus.status == "Terminating", "{kstatus:?}");
    ensure!(
        argocd.status == "Progressing" && argocd.message.contains("blocked: InvalidSpec"),
        "{argocd:?}"
    );

    // A condition written for an older generation is not trusted even when
    // status.observedGeneration was bumped.
    let mut stale = load_fixture("failed")?;
    let generation = stale["metadata"]["generation"]
        .as_i64()
        .context("generation")?;
    stale["metadata"]["generation"] = Value::from(generation + 1);
    stale["status"]["observedGeneration"] = Value::from(generation + 1);
    let (_, argocd) = both(&tool, &stale).await?;
    ensure!(
        argocd.status == "Progressing",
        "stale conditions: {argocd:?}"
    );

    // Flux's expressions need status (the CRD defaults it, so the API server never serves an
    // object without it): without one, Flux reports the evaluation error as Unknown, never
    // Current. A blocked deletion is InProgress, not Failed.
    let bare_flux = flux(&tool, &bare).await?;
    ensure!(
        bare_flux.status == "Unknown" && bare_flux.message.contains("no such attribute"),
        "no status: {bare_flux:?}"
    );
    let blocked_flux = flux(&tool, &blocked).await?;
    ensure!(blocked_flux.status == "InProgress", "{blocked_flux:?}");

    // The verdict follows passCriteria edits: criteria loosened (generation 2) are not trusted
    // until the operator judged them, then Passed=True is Healthy and Current.
    let mut edited = load_fixture("criteria-missed")?;
    edited["metadata"]["generation"] = Value::from(2);
    let (_, argocd) = both(&tool, &edited).await?;
    let flux_edited = flux(&tool, &edited).await?;
    ensure!(
        argocd.status == "Progressing" && flux_edited.status == "InProgress",
        "criteria edited, not judged yet: {argocd:?} {flux_edited:?}"
    );
    edited["status"]["observedGeneration"] = Value::from(2);
    for c in edited["status"]["conditions"]
        .as_array_mut()
        .context("conditions")?
    {
        c["observedGeneration"] = Value::from(2);
        if c["type"] == "Passed" {
            c["status"] = Value::from("True");
            c["reason"] = Value::from("CriteriaMet");
        }
    }
    let (_, argocd) = both(&tool, &edited).await?;
    let flux_edited = flux(&tool, &edited).await?;
    ensure!(
        argocd.status == "Healthy" && flux_edited.status == "Current",
        "criteria met after the edit: {argocd:?} {flux_edited:?}"
    );

    // Passed=False on a job stopped on request (NotCompleted): Argo CD keeps Suspended (the user
    // stopped it), Flux fails the gate.
    let mut stopped = load_fixture("stopped")?;
    let generation = stopped["metadata"]["generation"].clone();
    stopped["status"]["conditions"]
        .as_array_mut()
        .context("conditions")?
        .push(serde_json::json!({
            "type": "Passed",
            "status": "False",
            "reason": "NotCompleted",
            "message": "the job ended STOPPED",
            "observedGeneration": generation,
            "lastTransitionTime": "2026-01-01T00:00:00Z",
        }));
    let (_, argocd) = both(&tool, &stopped).await?;
    let flux_stopped = flux(&tool, &stopped).await?;
    ensure!(
        argocd.status == "Suspended" && flux_stopped.status == "Failed",
        "stopped with criteria: {argocd:?} {flux_stopped:?}"
    );
    Ok(())
}

/// The Flux check reads the example's expressions, not a copy: an expression the example does
/// not hold changes the verdict, and a Kustomization without expressions is refused.
#[tokio::test]
async fn flux_health_reads_the_example_file() -> anyhow::Result<()> {
    let tool = gitops_check().await?;
    let example = std::fs::read_to_string(repo_path(FLUX_KUSTOMIZATION))?;
    ensure!(
        example.contains("healthCheckExprs:") && example.contains("kind: BatchEvaluation"),
        "{FLUX_KUSTOMIZATION} declares healthCheckExprs for BatchEvaluation"
    );
    let dir = repo_path("target/gitops-flux");
    std::fs::create_dir_all(&dir)?;
    let missed = load_fixture("criteria-missed")?;

    // The same file with the Passed clause taken out of `failed`: the missed gate then reads as
    // Current, so the verdict above really comes from the example's own expressions.
    let without_gate = example.replace(
        "(c.type == 'Stalled' && c.status == 'True') ||\n          (c.type == 'Passed' && c.status == 'False'))",
        "(c.type == 'Stalled' && c.status == 'True'))",
    );
    let without_gate = without_gate.replace(
        "!status.conditions.exists(c, c.type == 'Passed' && c.status != 'True')",
        "true",
    );
    ensure!(
        without_gate != example,
        "the example's expressions changed shape"
    );
    let altered = dir.join("without-gate.yaml");
    std::fs::write(&altered, &without_gate)?;
    let verdict = check(
        &tool,
        &[
            "flux-health",
            "--kustomization",
            &altered.display().to_string(),
        ],
        &missed,
    )
    .await?;
    ensure!(verdict.status == "Current", "without the gate: {verdict:?}");

    let none = dir.join("no-exprs.yaml");
    std::fs::write(
        &none,
        "apiVersion: kustomize.toolkit.fluxcd.io/v1\nkind: Kustomization\nmetadata: {name: x}\nspec: {}\n",
    )?;
    let refused = check(
        &tool,
        &[
            "flux-health",
            "--kustomization",
            &none.display().to_string(),
        ],
        &missed,
    )
    .await;
    ensure!(
        refused.is_err_and(|e| e
            .to_string()
            .contains("no Flux Kustomization with spec.healthCheckExprs")),
        "a Kustomization without healthCheckExprs is refused"
    );
    Ok(())
}

const HEALTH_KEY: &str = "resource.customizations.health.evals.agentcore.dev_BatchEvaluation: |";

/// The YAML block scalars under the Argo CD health key in `text`, dedented.
fn health_snippets(text: &str) -> Vec<String> {
    let lines: Vec<&str> = text.lines().collect();
    let indent = |l: &str| l.len() - l.trim_start().len();
    let mut snippets = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        if !line.trim_end().ends_with(HEALTH_KEY) {
            continue;
        }
        let key_indent = indent(line);
        let block: Vec<&str> = lines[i + 1..]
            .iter()
            .take_while(|l| l.trim().is_empty() || indent(l) > key_indent)
            .copied()
            .collect();
        let content_indent = block
            .iter()
            .find(|l| !l.trim().is_empty())
            .map_or(0, |l| indent(l));
        let mut body: Vec<&str> = block
            .iter()
            .map(|l| l.get(content_indent..).unwrap_or(""))
            .collect();
        while body.last().is_some_and(|l| l.is_empty()) {
            body.pop();
        }
        snippets.push(body.join("\n") + "\n");
    }
    snippets
}

/// Every copy of the health check in the docs, the chart README and the example equals the
/// chart's script, and each of those places has one.
#[test]
fn argocd_health_snippets_match_the_script() -> anyhow::Result<()> {
    let script = std::fs::read_to_string(repo_path(HEALTH_LUA))?;
    let mut files: Vec<PathBuf> = std::fs::read_dir(repo_path("docs"))?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    files.push(repo_path("charts/agentcore-operator/README.md"));
    files.push(repo_path("examples/argocd/argocd-cm-health.yaml"));
    let mut found = BTreeMap::new();
    for file in &files {
        let snippets = health_snippets(&std::fs::read_to_string(file)?);
        for snippet in &snippets {
            ensure!(
                *snippet == script,
                "the health check in {} differs from {HEALTH_LUA}; copy the file into it",
                file.display()
            );
        }
        found.insert(file.clone(), snippets.len());
    }
    for required in [
        "docs/gitops.md",
        "charts/agentcore-operator/README.md",
        "examples/argocd/argocd-cm-health.yaml",
    ] {
        ensure!(
            found.get(&repo_path(required)).copied().unwrap_or(0) >= 1,
            "{required} must show the argocd-cm snippet; found {found:?}"
        );
    }
    Ok(())
}

/// The `healthCheckExprs` block from `healthCheckExprs:` to where its indentation ends, dedented.
fn health_check_exprs_block(text: &str) -> Option<String> {
    let lines: Vec<&str> = text.lines().collect();
    let indent = |l: &str| l.len() - l.trim_start().len();
    let start = lines.iter().position(|l| l.trim() == "healthCheckExprs:")?;
    let base = indent(lines[start]);
    let block: Vec<&str> = std::iter::once(lines[start])
        .chain(
            lines[start + 1..]
                .iter()
                .take_while(|l| {
                    !l.trim().is_empty() && indent(l) > base && !l.trim_start().starts_with("```")
                })
                .copied(),
        )
        .collect();
    Some(
        block
            .iter()
            .map(|l| l.get(base..).unwrap_or(""))
            .collect::<Vec<_>>()
            .join("\n"),
    )
}

/// The user guide shows the example's expressions, character for character.
#[test]
fn flux_expressions_in_the_user_guide_match_the_example() -> anyhow::Result<()> {
    let example = std::fs::read_to_string(repo_path(FLUX_KUSTOMIZATION))?;
    let guide = std::fs::read_to_string(repo_path("docs/user-guide.md"))?;
    let want = health_check_exprs_block(&example).context("the example's healthCheckExprs")?;
    let shown = health_check_exprs_block(&guide).context("the user guide's healthCheckExprs")?;
    ensure!(
        want.contains("kind: BatchEvaluation") && want.lines().count() > 10,
        "{want}"
    );
    ensure!(
        shown == want,
        "docs/user-guide.md shows other expressions than {FLUX_KUSTOMIZATION}; copy them:\n{want}\n---\n{shown}"
    );
    Ok(())
}

/// A capture without the noise of managedFields.
fn capture(stage: &str, obj: &Value) -> anyhow::Result<Value> {
    let mut obj = obj.clone();
    if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.remove("managedFields");
    }
    let dir = repo_path("target/gitops-stages");
    std::fs::create_dir_all(&dir)?;
    let text = serde_json::to_string_pretty(&obj)? + "\n";
    std::fs::write(dir.join(format!("{stage}.json")), &text)?;
    if std::env::var_os("UPDATE_STAGE_FIXTURES").is_some() {
        std::fs::create_dir_all(repo_path(FIXTURES))?;
        std::fs::write(fixture_path(stage), &text)?;
    }
    Ok(obj)
}

async fn get(env: &Env, ns: &str, name: &str) -> anyhow::Result<Value> {
    env.get(ns, name)
        .await?
        .with_context(|| format!("{ns}/{name} exists"))
}

/// Every version of the objects of a namespace, as `kubectl get -w` sees them: stages that last
/// less than a poll (PENDING) are caught from the watch, not by luck.
struct Watch {
    child: tokio::process::Child,
    out: tokio::task::JoinHandle<Vec<u8>>,
}

impl Watch {
    fn start(env: &Env, ns: &str) -> anyhow::Result<Self> {
        let mut command = env.plane.kubectl();
        command
            .args(["get", "bevals", "-n", ns, "--watch", "-o", "json"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        let mut child = command.spawn()?;
        let mut stdout = child.stdout.take().context("stdout")?;
        let out = tokio::spawn(async move {
            let mut buf = Vec::new();
            let _ = tokio::io::AsyncReadExt::read_to_end(&mut stdout, &mut buf).await;
            buf
        });
        Ok(Self { child, out })
    }

    async fn versions(mut self) -> anyhow::Result<Vec<Value>> {
        self.child.kill().await?;
        let buf = self.out.await?;
        Ok(serde_json::Deserializer::from_slice(&buf)
            .into_iter::<Value>()
            .collect::<Result<_, _>>()?)
    }
}

/// PENDING (from the watch) and IN_PROGRESS.
async fn pending_and_running(env: &Env) -> anyhow::Result<Vec<(&'static str, Value)>> {
    let ns = "gitops-running";
    env.create_namespace(ns).await?;
    let watch = Watch::start(env, ns)?;
    // Give the watch time to be established before the object exists.
    tokio::time::sleep(Duration::from_secs(1)).await;
    env.apply(&manifest(ns, "running", "", &[runs("300s")]))
        .await?;
    let running = env.wait_remote(ns, "running", "IN_PROGRESS", LONG).await?;
    let pending = watch
        .versions()
        .await?
        .into_iter()
        .find(|o| status_str(o, "remoteStatus") == Some("PENDING"))
        .context("the watch saw a PENDING version")?;
    Ok(vec![("pending", pending), ("running", running)])
}

async fn finished_with(
    env: &Env,
    ns: &str,
    outcome: &str,
    done: impl Fn(&Value) -> bool,
) -> anyhow::Result<Value> {
    env.create_namespace(ns).await?;
    env.apply(&manifest(ns, "job", "", &[ends(outcome)]))
        .await?;
    env.wait_for(ns, "job", outcome, LONG, done).await
}

/// Criteria every evaluator of [`manifest`] is judged by.
const PASS_CRITERIA: &str = "  passCriteria:
    evaluators:
      - evaluatorId: Builtin.Helpfulness
        minAverageScore: 0.8
      - evaluatorId: Builtin.Correctness
        minAverageScore: 0.7
";

/// The quality gate (`spec.passCriteria`; the emulator's score tag fixes every evaluator's
/// average): criteria met, criteria missed, and a verdict awaited while the job runs. `kubectl
/// wait --for=condition=Passed` returns for the first and fails (times out) for the second.
async fn gate(env: &Env) -> anyhow::Result<Vec<(&'static str, Value)>> {
    let ns = "gitops-gate";
    env.create_namespace(ns).await?;
    env.apply(&manifest(
        ns,
        "passed",
        PASS_CRITERIA,
        &[(TAG_SCORE, "0.9")],
    ))
    .await?;
    env.apply(&manifest(
        ns,
        "missed",
        PASS_CRITERIA,
        &[(TAG_SCORE, "0.42")],
    ))
    .await?;
    env.apply(&manifest(
        ns,
        "awaiting",
        PASS_CRITERIA,
        &[runs("300s"), (TAG_SCORE, "0.9")],
    ))
    .await?;

    env.kubectl(&[
        "wait",
        "--for=condition=Passed",
        "beval/passed",
        "-n",
        ns,
        "--timeout=90s",
    ])
    .await
    .context("kubectl wait --for=condition=Passed on a job that meets its criteria")?;
    let passed = get(env, ns, "passed").await?;
    ensure!(
        condition_is(&passed, "Passed", "True", "CriteriaMet")
            && condition_is(&passed, "Ready", "True", "Completed"),
        "passed: {passed}"
    );

    let missed = env
        .wait_for(ns, "missed", "Passed=False CriteriaMissed", LONG, |o| {
            condition_is(o, "Passed", "False", "CriteriaMissed")
        })
        .await?;
    // A completed job is Ready whatever the verdict; the message names each missed criterion
    // with its score and threshold.
    let message = missed
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .and_then(|cs| cs.iter().find(|c| c["type"] == "Passed"))
        .and_then(|c| c["message"].as_str())
        .unwrap_or_default()
        .to_owned();
    ensure!(
        condition_is(&missed, "Ready", "True", "Completed")
            && [
                "Builtin.Helpfulness",
                "Builtin.Correctness",
                "0.42",
                "0.8",
                "0.7"
            ]
            .iter()
            .all(|part| message.contains(part)),
        "missed: {missed}"
    );
    // The CI gate: waiting for Passed fails on a missed criterion (it never becomes True) ...
    let waited = std::time::Instant::now();
    let refused = env
        .kubectl(&[
            "wait",
            "--for=condition=Passed",
            "beval/missed",
            "-n",
            ns,
            "--timeout=5s",
        ])
        .await;
    ensure!(
        refused.is_err() && waited.elapsed() >= Duration::from_secs(4),
        "kubectl wait --for=condition=Passed must fail on a missed criterion: {refused:?}"
    );
    // ... and the verdict itself can be waited for.
    env.kubectl(&[
        "wait",
        "--for=condition=Passed=False",
        "beval/missed",
        "-n",
        ns,
        "--timeout=10s",
    ])
    .await
    .context("kubectl wait --for=condition=Passed=False on a missed criterion")?;

    let awaiting = env
        .wait_for(
            ns,
            "awaiting",
            "IN_PROGRESS with Passed=Unknown AwaitingResults",
            LONG,
            |o| {
                status_str(o, "remoteStatus") == Some("IN_PROGRESS")
                    && condition_is(o, "Passed", "Unknown", "AwaitingResults")
            },
        )
        .await?;
    Ok(vec![
        ("passed", passed),
        ("criteria-missed", missed),
        ("awaiting-verdict", awaiting),
    ])
}

/// spec.stop on a running job.
async fn stopped(env: &Env) -> anyhow::Result<Value> {
    let ns = "gitops-stopped";
    env.create_namespace(ns).await?;
    env.apply(&manifest(ns, "halt", "", &[runs("300s")]))
        .await?;
    env.wait_remote(ns, "halt", "IN_PROGRESS", LONG).await?;
    env.patch(ns, "halt", r#"{"spec":{"stop":true}}"#).await?;
    env.wait_for(ns, "halt", "STOPPED on request", LONG, |o| {
        status_str(o, "remoteStatus") == Some("STOPPED")
            && condition_is(o, "Ready", "True", "StoppedOnRequest")
    })
    .await
}

/// Deletion of a running job that takes a while to stop; then `kubectl wait --for=delete`.
async fn deleting(env: &Env) -> anyhow::Result<Value> {
    let ns = "gitops-deleting";
    env.create_namespace(ns).await?;
    env.apply(&manifest(ns, "gone", "", &[runs("300s"), stops_in("10s")]))
        .await?;
    let obj = env.wait_remote(ns, "gone", "IN_PROGRESS", LONG).await?;
    let remote = status_str(&obj, "batchEvaluationName")
        .context("name")?
        .to_owned();
    env.kubectl(&["delete", "beval", "gone", "-n", ns, "--wait=false"])
        .await?;
    let terminating = env
        .wait_for(ns, "gone", "cleanup waiting for STOPPED", LONG, |o| {
            support::object::deleting(o)
                && matches!(
                    status_str(o, "cleanupStep"),
                    Some("Stopping" | "AwaitingTerminal")
                )
        })
        .await?;
    // As the user guide documents: returns once the finalizer is released.
    env.kubectl(&[
        "wait",
        "--for=delete",
        "beval/gone",
        "-n",
        ns,
        "--timeout=90s",
    ])
    .await
    .context("kubectl wait --for=delete")?;
    ensure!(env.get(ns, "gone").await?.is_none(), "gone after the wait");
    let jobs = env.jobs_named(&remote);
    ensure!(
        jobs.len() == 1 && jobs[0].is_gone(),
        "the remote job was removed before the object: {jobs:?}"
    );
    Ok(terminating)
}

/// `kubectl explain batchevaluation.spec --recursive` lists exactly the schema's spec fields, and
/// `kubectl explain` of each object shows every child's description.
async fn explain(env: &Env) -> anyhow::Result<()> {
    let crd = serde_json::to_value(agentcore_operator::crdgen::crd())?;
    let spec = crd
        .pointer("/spec/versions/0/schema/openAPIV3Schema/properties/spec")
        .context("spec schema")?;
    let mut fields = BTreeMap::new();
    let mut objects = Vec::new();
    walk(spec, "spec", &mut fields, &mut objects);

    let recursive = env
        .kubectl(&["explain", "batchevaluation.spec", "--recursive"])
        .await?;
    let listed = recursive_paths(&recursive, "spec");
    let schema_paths: BTreeSet<String> = fields.keys().cloned().collect();
    ensure!(
        listed == schema_paths,
        "kubectl explain --recursive and the schema differ:\n only in explain: {:?}\n only in schema: {:?}\n{recursive}",
        listed.difference(&schema_paths).collect::<Vec<_>>(),
        schema_paths.difference(&listed).collect::<Vec<_>>()
    );

    for (path, description) in &fields {
        ensure!(
            !description.trim().is_empty(),
            "{path} has no description in the schema"
        );
    }
    for object in std::iter::once("spec".to_owned()).chain(objects) {
        let out = env
            .kubectl(&["explain", &format!("batchevaluation.{object}")])
            .await?;
        let shown = normalize(&out);
        for (path, description) in fields
            .iter()
            .filter(|(p, _)| parent(p) == Some(object.as_str()))
        {
            ensure!(
                shown.contains(&normalize(description)),
                "kubectl explain batchevaluation.{object} does not show the description of {path}:\n{out}"
            );
        }
    }
    Ok(())
}

fn normalize(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn parent(path: &str) -> Option<&str> {
    path.rsplit_once('.').map(|(p, _)| p)
}

/// Collects every field path under `schema` with its description, and the paths of objects
/// (including arrays of objects, which `kubectl explain` walks into transparently).
fn walk(
    schema: &Value,
    path: &str,
    fields: &mut BTreeMap<String, String>,
    objects: &mut Vec<String>,
) {
    let node = match schema.get("items") {
        Some(items) => items,
        None => schema,
    };
    let Some(props) = node.get("properties").and_then(Value::as_object) else {
        return;
    };
    if path != "spec" {
        objects.push(path.to_owned());
    }
    for (name, child) in props {
        let child_path = format!("{path}.{name}");
        let description = child
            .get("description")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        fields.insert(child_path.clone(), description);
        walk(child, &child_path, fields, objects);
    }
}

/// Field paths from the FIELDS section of `kubectl explain --recursive`, by indentation.
fn recursive_paths(out: &str, root: &str) -> BTreeSet<String> {
    let mut paths = BTreeSet::new();
    let mut stack: Vec<String> = Vec::new();
    let mut in_fields = false;
    for line in out.lines() {
        if line.starts_with("FIELDS:") {
            in_fields = true;
            continue;
        }
        if !in_fields || line.trim().is_empty() {
            continue;
        }
        let indent = line.len() - line.trim_start().len();
        let Some(name) = line.split_whitespace().next() else {
            continue;
        };
        // `enum: A, B` lines belong to the field above them.
        if name.ends_with(':') {
            continue;
        }
        let depth = indent / 2;
        stack.truncate(depth.saturating_sub(1));
        stack.push(name.to_owned());
        paths.insert(format!("{root}.{}", stack.join(".")));
    }
    paths
}

/// `kubectl wait --for=condition=Ready` on the objects `done` and `fresh`.
async fn kubectl_wait_ready(env: &Env, ns: &str, timeout: &str) -> anyhow::Result<String> {
    let timeout = format!("--timeout={timeout}");
    env.kubectl(&[
        "wait",
        "--for=condition=Ready",
        "beval/done",
        "beval/fresh",
        "-n",
        ns,
        &timeout,
    ])
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn lifecycle_stages_on_a_real_api_server() -> anyhow::Result<()> {
    let tool = gitops_check().await?;
    let mut env = Env::start(EnvOptions::default()).await?;
    let mut captured: Vec<(&'static str, Value)> = Vec::new();

    // Completed, and `kubectl wait --for=condition=Ready` returns for it.
    let ns = "gitops-base";
    env.create_namespace(ns).await?;
    env.apply(&manifest(ns, "done", "", &[])).await?;
    env.kubectl(&[
        "wait",
        "--for=condition=Ready",
        "beval/done",
        "-n",
        ns,
        "--timeout=90s",
    ])
    .await
    .context("kubectl wait --for=condition=Ready on a completing job")?;
    captured.push((
        "completed",
        capture("completed", &get(&env, ns, "done").await?)?,
    ));

    // With the operator stopped: a brand-new object, and a spec change nobody observed yet.
    env.operator.terminate().await;
    env.apply(&manifest(ns, "fresh", "", &[])).await?;
    let fresh = get(&env, ns, "fresh").await?;
    ensure!(
        fresh.pointer("/status") == Some(&serde_json::json!({"observedGeneration": -1})),
        "the CRD defaults the status of a new object: {fresh}"
    );
    captured.push(("unobserved", capture("unobserved", &fresh)?));
    env.patch(ns, "done", r#"{"spec":{"deletionPolicy":"Retain"}}"#)
        .await?;
    let stale = get(&env, ns, "done").await?;
    ensure!(
        stale.pointer("/metadata/generation") == Some(&Value::from(2))
            && condition_is(&stale, "Ready", "True", "Completed"),
        "generation 2 with the conditions of generation 1: {stale}"
    );
    captured.push((
        "generation-not-observed",
        capture("generation-not-observed", &stale)?,
    ));
    // kubectl wait ignores a Ready condition written for an older generation.
    let early = kubectl_wait_ready(&env, ns, "3s").await;
    ensure!(
        early.is_err(),
        "kubectl wait must not accept a stale or missing Ready: {early:?}"
    );
    env.operator.restart().await?;
    kubectl_wait_ready(&env, ns, "90s")
        .await
        .context("kubectl wait once the operator observed both")?;
    let fresh = env
        .wait_for(ns, "fresh", "a job id", LONG, |o| {
            status_str(o, "batchEvaluationId").is_some()
        })
        .await?;
    ensure!(fresh.pointer("/status/observedGeneration") == Some(&Value::from(1)));

    // Rejected by the service: the fault applies to every Start, so nothing else starts now.
    env.emulator.set_faults(&reject_every_start())?;
    env.apply(&manifest(ns, "rejected", "", &[])).await?;
    let rejected = env
        .wait_for(ns, "rejected", "Stalled=True InvalidSpec", LONG, |o| {
            condition_is(o, "Stalled", "True", "InvalidSpec")
        })
        .await;
    env.emulator.clear_faults();
    captured.push(("rejected", capture("rejected", &rejected?)?));

    // The other stages at once, each in its own namespace.
    let env = &env;
    let (running, with_errors, failed, stopped, deleting, explained, gated) = tokio::join!(
        pending_and_running(env),
        finished_with(env, "gitops-errors", "COMPLETED_WITH_ERRORS", |o| {
            condition_is(o, "Ready", "True", "CompletedWithErrors")
        }),
        finished_with(env, "gitops-failed", "FAILED", |o| {
            condition_is(o, "Stalled", "True", "JobFailed")
        }),
        stopped(env),
        deleting(env),
        explain(env),
        gate(env),
    );
    for (stage, obj) in running
        .context("pending/running")?
        .into_iter()
        .chain(gated.context("the quality gate")?)
    {
        captured.push((stage, capture(stage, &obj)?));
    }
    for (stage, obj) in [
        ("completed-with-errors", with_errors),
        ("failed", failed),
        ("stopped", stopped),
        ("deleting", deleting),
    ] {
        let obj = obj.with_context(|| format!("stage {stage}"))?;
        captured.push((stage, capture(stage, &obj)?));
    }
    explained.context("kubectl explain")?;

    let mut report = Vec::new();
    for (stage, obj) in &captured {
        report.push(assert_stage(&tool, stage, obj).await?);
    }
    let seen: BTreeSet<&str> = captured.iter().map(|(s, _)| *s).collect();
    let all: BTreeSet<&str> = EXPECTED.iter().map(|(s, _, _, _)| *s).collect();
    ensure!(seen == all, "stages captured {seen:?}, expected {all:?}");
    println!("{}", report.join("\n"));
    Ok(())
}
