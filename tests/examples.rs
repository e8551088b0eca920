//! Every manifest under `examples/` is checked: BatchEvaluations and core objects are applied to a
//! real kube-apiserver with `--dry-run=server` (schema, CEL rules and all); Flux and Argo CD
//! objects, whose CRDs are not installed here, are parsed and checked against what their comments
//! and the docs promise, and the BatchEvaluations they deploy are dry-run like the others.

mod support;

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
};

use agentcore_testenv::{ControlPlane, ControlPlaneOptions};
use anyhow::{Context as _, bail, ensure};
use serde_json::Value;
use support::repo_path;

fn yaml_files(dir: &Path, out: &mut Vec<PathBuf>) -> anyhow::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            yaml_files(&path, out)?;
        } else if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
            out.push(path);
        }
    }
    Ok(())
}

fn documents(path: &Path) -> anyhow::Result<Vec<Value>> {
    let text = std::fs::read_to_string(path)?;
    let docs: Vec<Value> = serde_saphyr::from_multiple(&text)
        .with_context(|| format!("parsing {}", path.display()))?;
    Ok(docs.into_iter().filter(|d| !d.is_null()).collect())
}

fn str_at<'a>(doc: &'a Value, pointer: &str) -> Option<&'a str> {
    doc.pointer(pointer).and_then(Value::as_str)
}

fn kind_of(doc: &Value) -> (String, String) {
    (
        str_at(doc, "/apiVersion").unwrap_or_default().to_owned(),
        str_at(doc, "/kind").unwrap_or_default().to_owned(),
    )
}

/// A path in an example that must exist in this repository, relative to its root.
fn repo_dir(path: &str) -> anyhow::Result<PathBuf> {
    let dir = repo_path(path.trim_start_matches("./"));
    ensure!(dir.is_dir(), "{path} is not a directory of this repository");
    Ok(dir)
}

fn check_flux_kustomization(file: &Path, doc: &Value) -> anyhow::Result<PathBuf> {
    let what = file.display();
    ensure!(
        str_at(doc, "/metadata/name").is_some() && str_at(doc, "/metadata/namespace").is_some(),
        "{what}: Flux Kustomizations are namespaced and named"
    );
    let interval = str_at(doc, "/spec/interval").context("spec.interval is required")?;
    ensure!(
        interval
            .trim_end_matches(['s', 'm', 'h'])
            .parse::<u32>()
            .is_ok(),
        "{what}: interval {interval:?} is a Go duration"
    );
    ensure!(
        doc.pointer("/spec/prune") == Some(&Value::Bool(true)),
        "{what}: prune (required) must be true: removing a file from Git deletes the object"
    );
    ensure!(
        str_at(doc, "/spec/sourceRef/kind").is_some()
            && str_at(doc, "/spec/sourceRef/name").is_some(),
        "{what}: spec.sourceRef.kind/name are required"
    );
    let depends = doc
        .pointer("/spec/dependsOn")
        .and_then(Value::as_array)
        .context("dependsOn the operator's Kustomization")?;
    ensure!(
        depends
            .iter()
            .any(|d| str_at(d, "/name") == Some("agentcore-operator")),
        "{what}: dependsOn agentcore-operator, as its comment says"
    );
    ensure!(
        doc.pointer("/spec/wait") == Some(&Value::Bool(true))
            && str_at(doc, "/spec/timeout").is_some(),
        "{what}: wait with a timeout, as its comment describes"
    );
    let dir = repo_dir(str_at(doc, "/spec/path").context("spec.path")?)?;
    ensure!(
        dir.join("kustomization.yaml").is_file(),
        "{what}: {} has a kustomization.yaml",
        dir.display()
    );
    Ok(dir)
}

/// A kustomize overlay: its resources exist (they are dry-run with the other files).
fn check_kustomize_overlay(file: &Path, doc: &Value) -> anyhow::Result<()> {
    let resources = doc
        .pointer("/resources")
        .and_then(Value::as_array)
        .context("resources")?;
    ensure!(!resources.is_empty(), "{}: no resources", file.display());
    for r in resources {
        let name = r.as_str().context("resource path")?;
        let path = file.parent().context("parent")?.join(name);
        ensure!(path.is_file(), "{}: {name} does not exist", file.display());
        let kinds: Vec<_> = documents(&path)?.iter().map(kind_of).collect();
        ensure!(
            kinds.iter().all(|(_, k)| k == "BatchEvaluation"),
            "{name}: only BatchEvaluations expected, got {kinds:?}"
        );
    }
    Ok(())
}

const ARGOCD_FINALIZER: &str = "resources-finalizer.argocd.argoproj.io";

struct ArgoApp {
    name: String,
    wave: i64,
    path: String,
    prune: bool,
}

fn check_argocd_application(file: &Path, doc: &Value) -> anyhow::Result<ArgoApp> {
    let what = file.display();
    let name = str_at(doc, "/metadata/name").context("metadata.name")?;
    ensure!(
        str_at(doc, "/metadata/namespace") == Some("argocd"),
        "{what}: Applications live in Argo CD's namespace"
    );
    ensure!(
        doc.pointer("/metadata/finalizers")
            .and_then(Value::as_array)
            .is_some_and(|f| f.iter().any(|f| f.as_str() == Some(ARGOCD_FINALIZER))),
        "{what}: {ARGOCD_FINALIZER} makes deleting the Application delete its resources, in reverse wave order"
    );
    ensure!(
        str_at(doc, "/spec/project").is_some(),
        "{what}: spec.project is required"
    );
    ensure!(
        str_at(doc, "/spec/source/repoURL").is_some(),
        "{what}: spec.source.repoURL is required"
    );
    let path = str_at(doc, "/spec/source/path").context("spec.source.path")?;
    repo_dir(path)?;
    ensure!(
        str_at(doc, "/spec/destination/server").is_some()
            && str_at(doc, "/spec/destination/namespace").is_some(),
        "{what}: spec.destination server and namespace"
    );
    let wave = match str_at(doc, "/metadata/annotations/argocd.argoproj.io~1sync-wave") {
        Some(w) => w
            .parse()
            .with_context(|| format!("{what}: sync-wave {w:?}"))?,
        None => 0,
    };
    Ok(ArgoApp {
        name: name.to_owned(),
        wave,
        path: path.to_owned(),
        prune: doc.pointer("/spec/syncPolicy/automated/prune") == Some(&Value::Bool(true)),
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_example_is_valid() -> anyhow::Result<()> {
    let mut files = Vec::new();
    yaml_files(&repo_path("examples"), &mut files)?;
    files.sort();
    ensure!(files.len() >= 8, "examples found: {files:?}");

    let plane = ControlPlane::start(ControlPlaneOptions::default()).await?;
    plane
        .install_crd(repo_path("crds/evals.agentcore.dev_batchevaluations.yaml"))
        .await?;
    plane
        .install_crd(repo_path(
            "crds/evals.agentcore.dev_batchevaluationschedules.yaml",
        ))
        .await?;
    plane.kubectl_ok(["create", "namespace", "argocd"]).await?;

    let mut dry_run = Vec::new();
    let mut flux_dirs = Vec::new();
    let mut argo_apps = Vec::new();
    for file in &files {
        let docs = documents(file)?;
        ensure!(!docs.is_empty(), "{}: no documents", file.display());
        let mut needs_dry_run = false;
        for doc in &docs {
            match kind_of(doc) {
                (api, kind)
                    if api == "evals.agentcore.dev/v1alpha1"
                        && (kind == "BatchEvaluation" || kind == "BatchEvaluationSchedule") =>
                {
                    needs_dry_run = true;
                }
                (api, kind) if api == "v1" && kind == "ConfigMap" => needs_dry_run = true,
                (api, kind)
                    if api == "kustomize.toolkit.fluxcd.io/v1" && kind == "Kustomization" =>
                {
                    flux_dirs.push(check_flux_kustomization(file, doc)?);
                }
                (api, kind)
                    if api == "kustomize.config.k8s.io/v1beta1" && kind == "Kustomization" =>
                {
                    check_kustomize_overlay(file, doc)?;
                }
                (api, kind) if api == "argoproj.io/v1alpha1" && kind == "Application" => {
                    argo_apps.push(check_argocd_application(file, doc)?);
                }
                other => bail!(
                    "{}: no check for {other:?}; add one to tests/examples.rs",
                    file.display()
                ),
            }
        }
        if needs_dry_run {
            dry_run.push(file.clone());
        }
    }

    for file in &dry_run {
        plane
            .kubectl_ok([
                "apply",
                "--server-side",
                "--dry-run=server",
                "-f",
                &file.display().to_string(),
            ])
            .await
            .with_context(|| format!("kubectl apply --dry-run=server -f {}", file.display()))?;
    }

    // The GitOps examples deploy BatchEvaluations that were dry-run above.
    for dir in &flux_dirs {
        ensure!(
            dry_run.iter().any(|f| f.starts_with(dir)),
            "nothing dry-run under {}",
            dir.display()
        );
    }
    let by_name: BTreeMap<&str, &ArgoApp> =
        argo_apps.iter().map(|a| (a.name.as_str(), a)).collect();
    let operator = by_name
        .get("agentcore-operator")
        .context("the Argo CD operator Application")?;
    let evaluations = by_name
        .get("agentcore-evaluations")
        .context("the Argo CD evaluations Application")?;
    let root = by_name
        .get("agentcore")
        .context("the Argo CD parent Application")?;
    ensure!(
        operator.wave < evaluations.wave,
        "the operator syncs first and is deleted last: waves {} < {}",
        operator.wave,
        evaluations.wave
    );
    ensure!(operator.path == "charts/agentcore-operator");
    ensure!(root.path == "examples/argocd/apps" && root.prune);
    ensure!(evaluations.prune, "evaluations removed from Git are pruned");
    let evaluations_dir = repo_dir(&evaluations.path)?;
    ensure!(
        dry_run.iter().any(|f| f.starts_with(&evaluations_dir)),
        "the evaluations Application deploys dry-run BatchEvaluations"
    );
    // Every child Application is in the parent's directory.
    let apps_dir = repo_dir(&root.path)?;
    for child in [operator, evaluations] {
        let found = std::fs::read_dir(&apps_dir)?
            .filter_map(Result::ok)
            .any(|e| {
                documents(&e.path()).is_ok_and(|docs| {
                    docs.iter()
                        .any(|d| str_at(d, "/metadata/name") == Some(child.name.as_str()))
                })
            });
        ensure!(found, "{} is not under {}", child.name, apps_dir.display());
    }

    // The dry run is a real check: a broken example is refused.
    let broken = std::fs::read_to_string(repo_path("examples/online-evaluation.yaml"))?.replace(
        "    onlineEvaluationConfig:\n",
        "    cloudWatchLogs:\n      serviceNames: [x]\n    onlineEvaluationConfig:\n",
    );
    let refused = plane.apply_yaml_with(&["--dry-run=server"], &broken).await;
    ensure!(
        refused.is_err_and(|e| e.to_string().contains("exactly one of dataSource")),
        "a BatchEvaluation with two data sources must be refused"
    );
    Ok(())
}
