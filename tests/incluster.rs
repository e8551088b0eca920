//! The operator the way users run it: the image built here (`hack/build-image.sh`), imported into
//! a real node's containerd, installed with `helm install` into a namespace that enforces the
//! `restricted` Pod Security Standard, two replicas electing a leader through the Lease, driven
//! with kubectl against the in-cluster operator (in-cluster configuration, the chart's
//! ServiceAccount), the emulator as its AWS endpoint on the machine's own address.
//!
//! Needs root (the node: network namespaces, iptables, mounts). Prints what it measures (node
//! start, install, memory); asserts only outcomes.

mod support;

use std::{
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use agentcore_emulator::{EmulatorConfig, Operation, RunningEmulator};
use agentcore_testenv::{
    ControlPlane, ControlPlaneOptions, NODE_NAME, Node, OPERATOR_NAMESPACE, ensure_helm,
    wait_until_ok,
};
use anyhow::{Context as _, bail, ensure};
use serde_json::Value;
use support::{RELEASE, manifest, object::status_str, repo_path};

const LONG: Duration = Duration::from_secs(90);
/// The image tag the test builds and installs (the repository is the chart's default).
const TAG: &str = "incluster";
/// The tag `helm upgrade` moves the release to (the same image, tagged again in containerd).
const UPGRADE_TAG: &str = "incluster-upgraded";
const SELECTOR: &str = "app.kubernetes.io/name=agentcore-operator";

struct Cluster {
    plane: ControlPlane,
    node: Node,
    emulator: RunningEmulator,
    helm: PathBuf,
}

impl Cluster {
    async fn kubectl(&self, args: &[&str]) -> anyhow::Result<String> {
        Ok(self.plane.kubectl_ok(args).await?)
    }

    async fn json(&self, args: &[&str]) -> anyhow::Result<Value> {
        let mut all = args.to_vec();
        all.extend(["-o", "json"]);
        Ok(serde_json::from_str(&self.kubectl(&all).await?)?)
    }

    async fn helm(&self, args: &[&str]) -> anyhow::Result<String> {
        let out = tokio::process::Command::new(&self.helm)
            .arg("--kubeconfig")
            .arg(self.plane.admin_kubeconfig())
            .args(args)
            .output()
            .await?;
        ensure!(
            out.status.success(),
            "helm {args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// `helm install` or `helm upgrade` of the repository's chart as release [`RELEASE`], waiting
    /// until its pods are Ready; prints how long that took.
    async fn helm_chart(&self, verb: &str, extra: &[&str]) -> anyhow::Result<()> {
        let chart = repo_path("charts/agentcore-operator").display().to_string();
        let mut args = vec![verb, RELEASE, &chart, "--namespace", OPERATOR_NAMESPACE];
        args.extend(extra);
        args.extend(["--wait", "--timeout", "180s"]);
        let started = Instant::now();
        self.helm(&args).await?;
        println!(
            "helm {verb} --wait: {:.1}s",
            started.elapsed().as_secs_f64()
        );
        Ok(())
    }

    /// The operator pods (Running or not), as JSON objects.
    async fn operator_pods(&self) -> anyhow::Result<Vec<Value>> {
        let list = self
            .json(&["get", "pods", "-n", OPERATOR_NAMESPACE, "-l", SELECTOR])
            .await?;
        Ok(list["items"].as_array().cloned().unwrap_or_default())
    }

    async fn get_beval(&self, ns: &str, name: &str) -> anyhow::Result<Option<Value>> {
        let out = self
            .kubectl(&[
                "get",
                "beval",
                name,
                "-n",
                ns,
                "-o",
                "json",
                "--ignore-not-found",
            ])
            .await?;
        if out.trim().is_empty() {
            return Ok(None);
        }
        Ok(Some(serde_json::from_str(&out)?))
    }

    async fn wait_beval(
        &self,
        ns: &str,
        name: &str,
        what: &str,
        check: impl Fn(&Value) -> bool,
    ) -> anyhow::Result<Value> {
        let check = &check;
        wait_until_ok(what, LONG, Duration::from_millis(250), || async move {
            match self.get_beval(ns, name).await? {
                Some(obj) if check(&obj) => Ok(obj),
                Some(obj) => bail!("not yet: status {}", obj["status"]),
                None => bail!("the object is gone"),
            }
        })
        .await
        .with_context(|| format!("{ns}/{name}: {what}"))
    }
}

fn is_ready(pod: &Value) -> bool {
    pod["status"]["phase"] == "Running"
        && pod["status"]["conditions"].as_array().is_some_and(|c| {
            c.iter()
                .any(|c| c["type"] == "Ready" && c["status"] == "True")
        })
}

/// The pod's container mounts a projected ServiceAccount token at the in-cluster path.
fn has_projected_token(pod: &Value) -> bool {
    let empty = Vec::new();
    let volumes = pod["spec"]["volumes"].as_array().unwrap_or(&empty);
    let token_volumes: Vec<&Value> = volumes
        .iter()
        .filter(|v| {
            v["projected"]["sources"]
                .as_array()
                .is_some_and(|s| s.iter().any(|s| s["serviceAccountToken"].is_object()))
        })
        .map(|v| &v["name"])
        .collect();
    pod["spec"]["containers"][0]["volumeMounts"]
        .as_array()
        .unwrap_or(&empty)
        .iter()
        .any(|m| {
            m["mountPath"] == "/var/run/secrets/kubernetes.io/serviceaccount"
                && token_volumes.contains(&&m["name"])
        })
}

fn name_of(obj: &Value) -> String {
    obj["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// Builds the image with the script a release uses, from the release binary.
async fn build_image() -> anyhow::Result<PathBuf> {
    // `output()` captures stderr whatever was set: the script's log is printed from here.
    let out = tokio::process::Command::new("bash")
        .arg(repo_path("hack/build-image.sh"))
        .env("TAG", TAG)
        .output()
        .await?;
    let log = String::from_utf8_lossy(&out.stderr);
    ensure!(out.status.success(), "hack/build-image.sh failed: {log}");
    eprint!("{log}");
    let path = String::from_utf8_lossy(&out.stdout)
        .lines()
        .last()
        .context("hack/build-image.sh printed no path")?
        .trim()
        .to_owned();
    Ok(PathBuf::from(path))
}

/// The value of an unlabelled Prometheus sample, e.g. `agentcore_operator_leader`.
fn sample(metrics: &str, name: &str) -> Option<f64> {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

async fn http_get(url: &str) -> anyhow::Result<String> {
    let response = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(5))
        .build()?
        .get(url)
        .send()
        .await?;
    ensure!(
        response.status().is_success(),
        "{url}: {}",
        response.status()
    );
    Ok(response.text().await?)
}

async fn start(image: &Path) -> anyhow::Result<Cluster> {
    let started = Instant::now();
    let plane =
        ControlPlane::start(Node::control_plane_options(ControlPlaneOptions::default())?).await?;
    let node = Node::start(&plane).await?;
    let node_started = started.elapsed();
    node.import_image(image).await?;
    println!(
        "node: Ready {:.1}s after start (control plane included); node parts {} MiB RSS",
        node_started.as_secs_f64(),
        node.memory_kib() / 1024
    );
    let emulator = agentcore_emulator::start(EmulatorConfig {
        // On the machine's own address: pods reach it there (never off the machine).
        listen: (node.ip(), 0).into(),
        job_duration: Duration::from_secs(3),
        stop_duration: Duration::from_secs(1),
        delete_duration: Duration::from_millis(500),
        ..EmulatorConfig::default()
    })
    .await?;
    Ok(Cluster {
        plane,
        node,
        emulator,
        helm: ensure_helm().await?,
    })
}

/// `helm install` into a namespace enforcing `restricted`; both replicas Ready through their
/// probes; exactly one leader; the metrics Service answers.
async fn install(cluster: &Cluster) -> anyhow::Result<()> {
    cluster
        .kubectl(&["create", "namespace", OPERATOR_NAMESPACE])
        .await?;
    cluster
        .kubectl(&[
            "label",
            "namespace",
            OPERATOR_NAMESPACE,
            "pod-security.kubernetes.io/enforce=restricted",
            "pod-security.kubernetes.io/enforce-version=latest",
        ])
        .await?;
    // The label is enforced, not decorative: a root pod is refused in that namespace.
    let refused = cluster
        .plane
        .apply_yaml_with(
            &["--dry-run=server"],
            &format!(
                "apiVersion: v1\nkind: Pod\nmetadata:\n  name: root\n  namespace: {OPERATOR_NAMESPACE}\n\
                 spec:\n  containers:\n  - name: c\n    image: localhost/agentcore-pause:3.10\n"
            ),
        )
        .await;
    ensure!(
        refused
            .as_ref()
            .is_err_and(|e| e.to_string().contains("violates PodSecurity \"restricted")),
        "a non-conforming pod is refused: {refused:?}"
    );

    let endpoint = cluster.emulator.endpoint_url();
    let values = format!(
        "image:\n  tag: {TAG}\n  pullPolicy: Never\n\
         aws:\n  region: us-west-2\n  endpointUrl: {endpoint}\n\
         pollInterval: 1s\nleaseDuration: 6s\n"
    );
    let values_file = cluster.plane.dir().join("incluster-values.yaml");
    std::fs::write(&values_file, values)?;
    cluster
        .helm_chart("install", &["--values", &values_file.display().to_string()])
        .await?;
    // The chart refuses static AWS keys in its values (IRSA or Pod Identity in real clusters);
    // the emulator needs only some key to sign with, given the way a user without either would:
    // a Secret, then a rolling update of the Deployment.
    cluster
        .kubectl(&[
            "create",
            "secret",
            "generic",
            "aws-emulator-credentials",
            "-n",
            OPERATOR_NAMESPACE,
            "--from-literal=AWS_ACCESS_KEY_ID=AKIDEXAMPLE",
            "--from-literal=AWS_SECRET_ACCESS_KEY=emulator-does-not-check",
        ])
        .await?;
    cluster
        .kubectl(&[
            "set",
            "env",
            &format!("deployment/{RELEASE}"),
            "-n",
            OPERATOR_NAMESPACE,
            "--from=secret/aws-emulator-credentials",
        ])
        .await?;
    cluster
        .kubectl(&[
            "rollout",
            "status",
            &format!("deployment/{RELEASE}"),
            "-n",
            OPERATOR_NAMESPACE,
            "--timeout=120s",
        ])
        .await?;
    wait_until_ok(
        "the old replicas to be gone",
        LONG,
        Duration::from_millis(500),
        || async {
            let pods = cluster.operator_pods().await?;
            ensure!(pods.len() == 2, "{} pods", pods.len());
            Ok(())
        },
    )
    .await?;

    let pods = cluster.operator_pods().await?;
    ensure!(
        pods.len() == 2 && pods.iter().all(is_ready),
        "two Running and Ready replicas: {}",
        cluster
            .kubectl(&["get", "pods", "-n", OPERATOR_NAMESPACE, "-o", "wide"])
            .await?
    );
    for pod in &pods {
        ensure!(pod["spec"]["nodeName"] == NODE_NAME, "on the node: {pod}");
        ensure!(
            pod["spec"]["serviceAccountName"] == RELEASE,
            "the chart's ServiceAccount: {}",
            pod["spec"]["serviceAccountName"]
        );
        // In-cluster configuration: no kubeconfig anywhere, only the projected token that the
        // ServiceAccount admission plugin mounted where kube-rs's in-cluster config reads it.
        ensure!(
            !pod.to_string().contains("KUBECONFIG") && has_projected_token(pod),
            "in-cluster configuration from a projected ServiceAccount token: {}",
            pod["spec"]
        );
    }
    println!(
        "{}",
        cluster
            .kubectl(&["get", "pods", "-n", OPERATOR_NAMESPACE, "-o", "wide"])
            .await?
    );

    // Exactly one leader: the Lease names one of the pods, and only that pod says it leads.
    let names: Vec<String> = pods.iter().map(name_of).collect();
    let leader = wait_lease_holder(cluster, "one pod to hold the Lease", |holder| {
        names.iter().any(|n| n == holder)
    })
    .await?;
    println!(
        "{}",
        cluster
            .kubectl(&[
                "get",
                "lease",
                RELEASE,
                "-n",
                OPERATOR_NAMESPACE,
                "-o",
                "yaml"
            ])
            .await?
    );
    let mut leading = Vec::new();
    for pod in &pods {
        let ip = pod["status"]["podIP"].as_str().context("pod IP")?;
        let metrics = http_get(&format!("http://{ip}:8080/metrics")).await?;
        let value = sample(&metrics, "agentcore_operator_leader")
            .with_context(|| format!("{} exports agentcore_operator_leader", name_of(pod)))?;
        if value == 1.0 {
            leading.push(name_of(pod));
        }
    }
    ensure!(
        leading == [leader.clone()],
        "only the Lease holder {leader} leads: {leading:?}"
    );

    // The metrics Service answers on its ClusterIP (through kube-proxy's rules).
    let service = cluster
        .json(&[
            "get",
            "service",
            &format!("{RELEASE}-metrics"),
            "-n",
            OPERATOR_NAMESPACE,
        ])
        .await?;
    let cluster_ip = service["spec"]["clusterIP"].as_str().context("clusterIP")?;
    let port = service["spec"]["ports"][0]["port"]
        .as_u64()
        .context("service port")?;
    let metrics = http_get(&format!("http://{cluster_ip}:{port}/metrics")).await?;
    ensure!(
        sample(&metrics, "agentcore_operator_leader").is_some(),
        "the Service serves the operator's metrics"
    );
    Ok(())
}

/// Create → Ready; delete a running job → one Stop, one Delete, object gone: all done by the
/// in-cluster operator.
async fn lifecycle(cluster: &Cluster) -> anyhow::Result<()> {
    let ns = "incluster-lifecycle";
    cluster.kubectl(&["create", "namespace", ns]).await?;
    cluster
        .plane
        .apply_yaml(&manifest(ns, "nightly", "", &[]))
        .await?;
    cluster
        .kubectl(&[
            "wait",
            "--for=condition=Ready",
            "beval/nightly",
            "-n",
            ns,
            "--timeout=90s",
        ])
        .await
        .context("kubectl wait --for=condition=Ready")?;
    let obj = cluster
        .get_beval(ns, "nightly")
        .await?
        .context("object exists")?;
    ensure!(status_str(&obj, "remoteStatus") == Some("COMPLETED"));
    let remote = status_str(&obj, "batchEvaluationName")
        .context("name recorded")?
        .to_owned();
    ensure!(
        cluster
            .emulator
            .jobs()
            .iter()
            .filter(|j| j.name == remote)
            .count()
            == 1,
        "exactly one job"
    );

    cluster
        .plane
        .apply_yaml(&manifest(
            ns,
            "long",
            "",
            &[
                ("emulator:job-duration", "300s"),
                ("emulator:stop-duration", "2s"),
            ],
        ))
        .await?;
    let running = cluster
        .wait_beval(ns, "long", "the job to run", |o| {
            status_str(o, "remoteStatus") == Some("IN_PROGRESS")
        })
        .await?;
    let remote = status_str(&running, "batchEvaluationName")
        .context("name recorded")?
        .to_owned();
    cluster
        .kubectl(&["delete", "beval", "long", "-n", ns, "--timeout=90s"])
        .await?;
    ensure!(cluster.get_beval(ns, "long").await?.is_none(), "gone");
    each_job_stopped_and_deleted_once(cluster, &[remote])
}

/// The OCI archive's config and single layer: the Dockerfile's runtime stage (user, entrypoint,
/// command, port, labels) and only the files `hack/image-rootfs.sh` puts there (no shell).
fn image_is_the_dockerfiles_runtime_stage(archive: &Path) -> anyhow::Result<()> {
    let dir = tempfile_dir("agentcore-image-check")?;
    let status = std::process::Command::new("tar")
        .arg("-xf")
        .arg(archive)
        .arg("-C")
        .arg(&dir)
        .status()?;
    ensure!(status.success(), "unpacking {}", archive.display());
    let blob = |digest: &str| -> anyhow::Result<PathBuf> {
        let hex = digest.strip_prefix("sha256:").context("sha256 digest")?;
        Ok(dir.join("blobs/sha256").join(hex))
    };
    let read_json = |path: PathBuf| -> anyhow::Result<Value> {
        Ok(serde_json::from_slice(&std::fs::read(path)?)?)
    };
    let index = read_json(dir.join("index.json"))?;
    let manifest = read_json(blob(
        index["manifests"][0]["digest"]
            .as_str()
            .context("manifest")?,
    )?)?;
    let config = read_json(blob(
        manifest["config"]["digest"].as_str().context("config")?,
    )?)?;
    let config = &config["config"];

    let dockerfile = std::fs::read_to_string(repo_path("Dockerfile"))?;
    let stage = dockerfile
        .split("# --- runtime")
        .nth(1)
        .context("the Dockerfile has a runtime stage")?;
    let instruction = |name: &str| {
        stage
            .lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
            .map(str::trim)
    };
    ensure!(config["User"] == instruction("USER").context("USER")?);
    let entrypoint: Value = serde_json::from_str(instruction("ENTRYPOINT").context("ENTRYPOINT")?)?;
    let cmd: Value = serde_json::from_str(instruction("CMD").context("CMD")?)?;
    ensure!(
        config["Entrypoint"] == entrypoint,
        "entrypoint {}",
        config["Entrypoint"]
    );
    ensure!(config["Cmd"] == cmd, "cmd {}", config["Cmd"]);
    let port = format!("{}/tcp", instruction("EXPOSE").context("EXPOSE")?);
    ensure!(
        config["ExposedPorts"].get(&port).is_some(),
        "exposes {port}: {}",
        config["ExposedPorts"]
    );
    let labels = config["Labels"].as_object().context("labels")?;
    for key in stage
        .split("LABEL")
        .nth(1)
        .context("LABEL")?
        .lines()
        .map_while(|l| l.trim().split_once('=').map(|(k, _)| k.trim()))
    {
        ensure!(labels.contains_key(key), "label {key}: {labels:?}");
    }
    let version = labels
        .get("org.opencontainers.image.version")
        .and_then(Value::as_str);
    ensure!(
        version == Some(env!("CARGO_PKG_VERSION")),
        "version label {version:?}"
    );

    let layers = manifest["layers"].as_array().context("layers")?;
    ensure!(layers.len() == 1, "one layer: {layers:?}");
    let listing = std::process::Command::new("tar")
        .arg("-tf")
        .arg(blob(layers[0]["digest"].as_str().context("layer")?)?)
        .output()?;
    ensure!(listing.status.success(), "listing the layer");
    let files: Vec<String> = String::from_utf8(listing.stdout)?
        .lines()
        .map(|l| l.trim_start_matches("./").trim_end_matches('/').to_owned())
        .filter(|l| !l.is_empty())
        .collect();
    for required in [
        "agentcore-operator",
        "etc/ssl/certs/ca-certificates.crt",
        "etc/passwd",
    ] {
        ensure!(
            files.iter().any(|f| f == required),
            "{required} in {files:?}"
        );
    }
    for forbidden in ["bin/sh", "bin/bash", "usr/bin/dpkg", "usr/bin/apt"] {
        ensure!(
            !files.iter().any(|f| f == forbidden),
            "{forbidden} in the image"
        );
    }
    ensure!(
        files.iter().all(|f| f == "agentcore-operator"
            || f == "tmp"
            || f.starts_with("etc")
            || f.starts_with("lib")
            || f.starts_with("usr")),
        "only the binary, its libraries and /etc: {files:?}"
    );
    let size = std::fs::metadata(blob(layers[0]["digest"].as_str().context("layer")?)?)?.len();
    println!(
        "image: {} files, layer {:.1} MiB compressed",
        files.len(),
        size as f64 / 1048576.0
    );
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}

fn tempfile_dir(prefix: &str) -> anyhow::Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("{prefix}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// Applies `count` objects with long jobs in `ns` and waits until every job runs; returns the
/// remote names.
async fn start_running_jobs(
    cluster: &Cluster,
    ns: &str,
    count: usize,
    stop_duration: &str,
) -> anyhow::Result<Vec<String>> {
    cluster.kubectl(&["create", "namespace", ns]).await?;
    let mut yaml = String::new();
    for i in 0..count {
        yaml.push_str("---\n");
        yaml.push_str(&manifest(
            ns,
            &format!("job-{i}"),
            "",
            &[
                ("emulator:job-duration", "600s"),
                ("emulator:stop-duration", stop_duration),
            ],
        ));
    }
    cluster.plane.apply_yaml(&yaml).await?;
    let mut names = Vec::new();
    for i in 0..count {
        let obj = cluster
            .wait_beval(ns, &format!("job-{i}"), "the job to run", |o| {
                status_str(o, "remoteStatus") == Some("IN_PROGRESS")
            })
            .await?;
        names.push(
            status_str(&obj, "batchEvaluationName")
                .context("name recorded")?
                .to_owned(),
        );
    }
    Ok(names)
}

/// Each remote job: started once, stopped once, deleted once, gone. Counted twice, by the
/// emulator's job records (every Stop and Delete naming the job, whatever the answer) and by its
/// per-object operation counters (keyed by the object's client token, first attempts only).
fn each_job_stopped_and_deleted_once(cluster: &Cluster, names: &[String]) -> anyhow::Result<()> {
    let jobs = cluster.emulator.jobs();
    let ops = cluster.emulator.object_ops();
    for name in names {
        let mine: Vec<_> = jobs.iter().filter(|j| &j.name == name).collect();
        ensure!(
            mine.len() == 1
                && mine[0].is_gone()
                && mine[0].stop_calls == 1
                && mine[0].delete_calls == 1,
            "{name}: one job, one Stop, one Delete, gone: {mine:?}"
        );
        let key = mine[0].client_token.as_deref().unwrap_or(&mine[0].id);
        let counted = ops.get(key).cloned().unwrap_or_default();
        ensure!(
            [
                Operation::StartBatchEvaluation,
                Operation::StopBatchEvaluation,
                Operation::DeleteBatchEvaluation
            ]
            .iter()
            .all(|op| counted.count(*op) == 1),
            "{name}: one Start, one Stop, one Delete operation: {counted:?}"
        );
    }
    Ok(())
}

async fn wait_no_bevals(cluster: &Cluster, ns: &str) -> anyhow::Result<()> {
    wait_until_ok(
        format!("every BatchEvaluation in {ns} to be gone"),
        LONG,
        Duration::from_millis(500),
        || async {
            let left = cluster
                .kubectl(&["get", "bevals", "-n", ns, "-o", "name"])
                .await?;
            ensure!(left.trim().is_empty(), "left: {left}");
            Ok(())
        },
    )
    .await?;
    Ok(())
}

/// The leader pod is deleted (`--force --grace-period=0`: the API object goes at once and the
/// kubelet kills the container within seconds) while objects are being deleted: another pod (the
/// standby or the replacement, whichever is first) takes the Lease over and finishes every
/// deletion, each job stopped and deleted once; the Deployment replaces the pod.
async fn leader_deleted_mid_deletions(cluster: &Cluster) -> anyhow::Result<()> {
    let ns = "incluster-failover";
    let names = start_running_jobs(cluster, ns, 4, "5s").await?;
    let leader = lease_holder(cluster).await?;
    ensure!(!leader.is_empty(), "a holder before the deletion");
    cluster
        .kubectl(&["delete", "bevals", "--all", "-n", ns, "--wait=false"])
        .await?;
    // Mid-deletion: every job asked to stop, none gone yet.
    for i in 0..names.len() {
        cluster
            .wait_beval(ns, &format!("job-{i}"), "STOPPING during deletion", |o| {
                status_str(o, "remoteStatus") == Some("STOPPING")
            })
            .await?;
    }
    let started = Instant::now();
    cluster
        .kubectl(&[
            "delete",
            "pod",
            &leader,
            "-n",
            OPERATOR_NAMESPACE,
            "--grace-period=0",
            "--force",
        ])
        .await?;
    let new_leader = wait_lease_holder(cluster, "another pod to take the Lease", |holder| {
        !holder.is_empty() && holder != leader
    })
    .await?;
    println!(
        "failover: {new_leader} took the Lease {:.1}s after {leader} was deleted",
        started.elapsed().as_secs_f64()
    );
    wait_no_bevals(cluster, ns).await?;
    each_job_stopped_and_deleted_once(cluster, &names)?;
    wait_until_ok(
        "the Deployment to have two Ready replicas again",
        LONG,
        Duration::from_millis(500),
        || async {
            let pods = cluster.operator_pods().await?;
            let ready = pods.iter().filter(|p| is_ready(p)).count();
            ensure!(
                ready == 2 && pods.len() == 2,
                "{ready} of {} Ready",
                pods.len()
            );
            Ok(())
        },
    )
    .await?;
    Ok(())
}

/// `helm upgrade` to a new image tag while two jobs run and two objects are being deleted: a
/// rolling update (surge first, so a standby is Ready before a pod stops), the Lease moves to a
/// new pod, the running jobs are neither started again nor lost, the deletions finish with one
/// Stop and one Delete each.
async fn helm_upgrade_mid_deletions(cluster: &Cluster) -> anyhow::Result<()> {
    let ns = "incluster-upgrade";
    // A long stop keeps the deleted objects in STOPPING through the rollout.
    let names = start_running_jobs(cluster, ns, 4, "20s").await?;
    let mut ids = Vec::new();
    for i in 2..4 {
        let obj = cluster
            .get_beval(ns, &format!("job-{i}"))
            .await?
            .context("running object")?;
        ids.push(
            status_str(&obj, "batchEvaluationId")
                .context("id")?
                .to_owned(),
        );
    }
    cluster
        .kubectl(&[
            "delete",
            "beval",
            "job-0",
            "job-1",
            "-n",
            ns,
            "--wait=false",
        ])
        .await?;
    for i in 0..2 {
        cluster
            .wait_beval(ns, &format!("job-{i}"), "STOPPING during deletion", |o| {
                status_str(o, "remoteStatus") == Some("STOPPING")
            })
            .await?;
    }
    let old_pods: Vec<String> = cluster.operator_pods().await?.iter().map(name_of).collect();
    let repository = image_repository(cluster).await?;
    let image = format!("{repository}:{UPGRADE_TAG}");
    cluster
        .node
        .tag_image(&format!("{repository}:{TAG}"), &image)
        .await?;
    cluster
        .helm_chart(
            "upgrade",
            &[
                "--reuse-values",
                "--set",
                &format!("image.tag={UPGRADE_TAG}"),
            ],
        )
        .await?;
    let new_pods = wait_until_ok(
        "two Ready pods of the new image, the old ones gone",
        LONG,
        Duration::from_millis(500),
        || async {
            let pods = cluster.operator_pods().await?;
            let names: Vec<String> = pods.iter().map(name_of).collect();
            ensure!(
                pods.len() == 2
                    && pods.iter().all(is_ready)
                    && pods
                        .iter()
                        .all(|p| p["spec"]["containers"][0]["image"] == image.as_str())
                    && names.iter().all(|n| !old_pods.contains(n)),
                "pods {names:?}"
            );
            Ok(names)
        },
    )
    .await?;
    wait_lease_holder(cluster, "a new pod to hold the Lease", |holder| {
        new_pods.iter().any(|n| n == holder)
    })
    .await?;
    wait_until_ok(
        "the objects deleted before the upgrade to be gone",
        LONG,
        Duration::from_millis(500),
        || async {
            for i in 0..2 {
                let obj = cluster.get_beval(ns, &format!("job-{i}")).await?;
                ensure!(obj.is_none(), "job-{i} is still there");
            }
            Ok(())
        },
    )
    .await?;
    // The running jobs went through the rollout untouched: same job, never started again.
    for (i, id) in (2..4).zip(&ids) {
        let obj = cluster
            .get_beval(ns, &format!("job-{i}"))
            .await?
            .context("running object")?;
        ensure!(
            status_str(&obj, "batchEvaluationId") == Some(id.as_str())
                && status_str(&obj, "remoteStatus") == Some("IN_PROGRESS"),
            "job-{i} keeps its running job {id}: {}",
            obj["status"]
        );
    }
    cluster
        .kubectl(&["delete", "bevals", "--all", "-n", ns, "--timeout=120s"])
        .await?;
    each_job_stopped_and_deleted_once(cluster, &names)
}

/// The holder of the operator's Lease ("" if none).
async fn lease_holder(cluster: &Cluster) -> anyhow::Result<String> {
    let lease = cluster
        .json(&["get", "lease", RELEASE, "-n", OPERATOR_NAMESPACE])
        .await?;
    Ok(lease["spec"]["holderIdentity"]
        .as_str()
        .unwrap_or_default()
        .to_owned())
}

/// Waits until the operator's Lease holder satisfies `check`; returns the holder.
async fn wait_lease_holder(
    cluster: &Cluster,
    what: &str,
    check: impl Fn(&str) -> bool,
) -> anyhow::Result<String> {
    let check = &check;
    Ok(
        wait_until_ok(what, LONG, Duration::from_millis(250), || async move {
            let holder = lease_holder(cluster).await?;
            ensure!(check(&holder), "holder {holder:?}");
            Ok(holder)
        })
        .await?,
    )
}

/// The image repository the release runs (the chart's default).
async fn image_repository(cluster: &Cluster) -> anyhow::Result<String> {
    let image = cluster
        .kubectl(&[
            "get",
            &format!("deployment/{RELEASE}"),
            "-n",
            OPERATOR_NAMESPACE,
            "-o",
            "jsonpath={.spec.template.spec.containers[0].image}",
        ])
        .await?;
    let (repository, _) = image.rsplit_once(':').context("an image with a tag")?;
    Ok(repository.to_owned())
}

/// Deleting a namespace that holds running BatchEvaluations: the namespace controller deletes
/// them, the operator's finalizers stop and delete the jobs, then the namespace goes away.
async fn namespace_deleted_with_live_objects(cluster: &Cluster) -> anyhow::Result<()> {
    let ns = "incluster-namespace";
    let names = start_running_jobs(cluster, ns, 3, "2s").await?;
    cluster
        .kubectl(&["delete", "namespace", ns, "--timeout=120s"])
        .await?;
    let left = cluster
        .kubectl(&["get", "namespace", ns, "--ignore-not-found", "-o", "name"])
        .await?;
    ensure!(left.trim().is_empty(), "the namespace is gone: {left}");
    each_job_stopped_and_deleted_once(cluster, &names)
}

/// `kubectl drain` of the only node: the PodDisruptionBudget (minAvailable 1) lets one operator
/// pod be evicted and holds the other, so the drain cannot finish while it would take the last
/// replica; the remaining pod leads and reconciles; after uncordon both replicas are back.
async fn drain_and_the_pdb(cluster: &Cluster) -> anyhow::Result<()> {
    let drain = cluster
        .plane
        .kubectl()
        .args([
            "drain",
            NODE_NAME,
            "--ignore-daemonsets",
            "--delete-emptydir-data",
            "--timeout=25s",
        ])
        .output()
        .await?;
    let stderr = String::from_utf8_lossy(&drain.stderr);
    ensure!(
        !drain.status.success() && stderr.contains("disruption budget"),
        "the drain is held by the PodDisruptionBudget: {stderr}"
    );
    let pods = cluster.operator_pods().await?;
    let serving: Vec<String> = pods
        .iter()
        .filter(|p| is_ready(p) && p["metadata"]["deletionTimestamp"].is_null())
        .map(name_of)
        .collect();
    ensure!(
        serving.len() == 1,
        "the PDB keeps exactly one operator pod: {serving:?}"
    );
    let holder = wait_lease_holder(cluster, "the remaining pod to hold the Lease", |holder| {
        holder == serving[0]
    })
    .await?;
    println!("drain held by the PDB; {holder} leads alone");
    // The operator still works on a cordoned node.
    let ns = "incluster-drain";
    cluster.kubectl(&["create", "namespace", ns]).await?;
    cluster
        .plane
        .apply_yaml(&manifest(ns, "during-drain", "", &[]))
        .await?;
    cluster
        .kubectl(&[
            "wait",
            "--for=condition=Ready",
            "beval/during-drain",
            "-n",
            ns,
            "--timeout=90s",
        ])
        .await?;
    cluster.kubectl(&["uncordon", NODE_NAME]).await?;
    wait_until_ok(
        "two Ready replicas after uncordon",
        LONG,
        Duration::from_millis(500),
        || async {
            let pods = cluster.operator_pods().await?;
            let ready = pods.iter().filter(|p| is_ready(p)).count();
            ensure!(
                ready == 2 && pods.len() == 2,
                "{ready} of {} Ready",
                pods.len()
            );
            Ok(())
        },
    )
    .await?;
    Ok(())
}

/// `helm uninstall` with live objects: the pre-delete hook (the operator image running
/// `cleanup`) deletes them while the operator still runs; every job is stopped and deleted, no
/// object is stranded, the release's pods and the hook's own objects are gone, the CRD stays.
async fn uninstall_with_live_objects(cluster: &Cluster) -> anyhow::Result<()> {
    let ns = "incluster-uninstall";
    let names = start_running_jobs(cluster, ns, 3, "3s").await?;
    let started = Instant::now();
    let out = cluster
        .helm(&[
            "uninstall",
            RELEASE,
            "--namespace",
            OPERATOR_NAMESPACE,
            "--wait",
            "--timeout",
            "5m",
        ])
        .await?;
    println!(
        "helm uninstall with 3 running jobs: {:.1}s: {}",
        started.elapsed().as_secs_f64(),
        out.trim()
    );
    let left = cluster
        .kubectl(&["get", "bevals", "-A", "-o", "name"])
        .await?;
    ensure!(left.trim().is_empty(), "objects stranded: {left}");
    each_job_stopped_and_deleted_once(cluster, &names)?;
    wait_until_ok(
        "the release's pods to be gone",
        LONG,
        Duration::from_millis(500),
        || async {
            let pods = cluster
                .kubectl(&["get", "pods", "-n", OPERATOR_NAMESPACE, "-o", "name"])
                .await?;
            ensure!(pods.trim().is_empty(), "left: {pods}");
            Ok(())
        },
    )
    .await?;
    let hook_objects = cluster
        .kubectl(&[
            "get",
            "jobs,serviceaccounts,clusterroles,clusterrolebindings",
            "-A",
            "-o",
            "name",
        ])
        .await?;
    ensure!(
        !hook_objects.contains(&format!("{RELEASE}-uninstall")),
        "the hook's objects are deleted after success: {hook_objects}"
    );
    cluster
        .kubectl(&["get", "crd", "batchevaluations.evals.agentcore.dev"])
        .await
        .context("the CRD stays")?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn incluster_chart_on_a_real_node() -> anyhow::Result<()> {
    let image = build_image().await?;
    image_is_the_dockerfiles_runtime_stage(&image).context("the image")?;
    let cluster = start(&image).await?;
    let result = async {
        install(&cluster).await.context("install")?;
        lifecycle(&cluster).await.context("lifecycle")?;
        leader_deleted_mid_deletions(&cluster)
            .await
            .context("leader deleted mid-deletions")?;
        helm_upgrade_mid_deletions(&cluster)
            .await
            .context("helm upgrade mid-deletions")?;
        namespace_deleted_with_live_objects(&cluster)
            .await
            .context("namespace deleted with live objects")?;
        drain_and_the_pdb(&cluster).await.context("drain")?;
        uninstall_with_live_objects(&cluster)
            .await
            .context("helm uninstall with live objects")?;
        Ok::<_, anyhow::Error>(())
    }
    .await;
    if result.is_err() {
        for args in [
            ["get", "pods", "-A", "-o", "wide"].as_slice(),
            &["get", "events", "-A"],
            &[
                "logs",
                "-n",
                OPERATOR_NAMESPACE,
                "-l",
                SELECTOR,
                "--tail=30",
            ],
        ] {
            if let Ok(out) = cluster.kubectl(args).await {
                eprintln!("kubectl {}:\n{out}", args.join(" "));
            }
        }
    }
    println!("node parts: {} MiB RSS", cluster.node.memory_kib() / 1024);
    let stopped = Instant::now();
    let Cluster { plane, node, .. } = cluster;
    node.stop().await?;
    plane.stop().await?;
    println!("teardown: {:.1}s", stopped.elapsed().as_secs_f64());
    result
}
