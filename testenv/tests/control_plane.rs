//! The harness against the real binaries: a started plane is a working, RBAC-enforcing
//! Kubernetes API that survives an apiserver crash and leaves nothing behind.

#![allow(clippy::unwrap_used)]

use std::{
    path::PathBuf,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use agentcore_testenv::{
    ControlPlane, ControlPlaneOptions, Identity, KEEP_ENV, OPERATOR_USER, processes_mentioning,
    wait_until,
};
use tokio::io::AsyncBufReadExt as _;

const POLL: Duration = Duration::from_millis(100);

/// The operator identity's permissions in all namespaces, as the API server decides them.
async fn operator_can(plane: &ControlPlane, verb: &str, resource: &str) -> bool {
    operator_can_in(plane, verb, resource, "--all-namespaces").await
}

/// The operator identity's permissions within `scope` (`-n NS` or `--all-namespaces`), through a
/// SelfSubjectAccessReview.
async fn operator_can_in(plane: &ControlPlane, verb: &str, resource: &str, scope: &str) -> bool {
    let mut command = plane.kubectl_as(Identity::Operator);
    command.args(["auth", "can-i", verb, resource]);
    command.args(scope.split_whitespace());
    let output = command.output().await.unwrap();
    match String::from_utf8_lossy(&output.stdout).trim() {
        "yes" => true,
        "no" => false,
        other => panic!(
            "unexpected `kubectl auth can-i` output {other:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        ),
    }
}

fn keep_requested() -> bool {
    std::env::var_os(KEEP_ENV).is_some_and(|v| v == "1")
}

#[tokio::test]
async fn a_started_plane_is_a_real_rbac_enforcing_api_server() {
    let started = Instant::now();
    let mut plane = ControlPlane::start(ControlPlaneOptions::default())
        .await
        .unwrap();
    eprintln!("control plane started in {:.1?}", started.elapsed());
    let dir = plane.dir().to_owned();
    assert!(plane.server_url().starts_with("https://127.0.0.1:"));

    // The server is the version built from Go modules, with its version stamped.
    let version: serde_json::Value =
        serde_json::from_str(&plane.kubectl_ok(["version", "-o", "json"]).await.unwrap()).unwrap();
    assert_eq!(
        version["serverVersion"]["gitVersion"],
        agentcore_testenv::kubernetes_version().unwrap().as_str(),
        "{version}"
    );

    // The admin may do anything.
    plane
        .kubectl_ok(["create", "namespace", "testenv-a"])
        .await
        .unwrap();
    let namespaces = plane
        .kubectl_ok(["get", "namespaces", "-o", "name"])
        .await
        .unwrap();
    assert!(
        namespaces.lines().any(|l| l == "namespace/testenv-a"),
        "{namespaces}"
    );

    // The operator identity starts with nothing: the authorizer says no, and real requests get 403.
    assert!(!operator_can(&plane, "list", "secrets").await);
    assert!(!operator_can(&plane, "list", "namespaces").await);
    for resource in ["secrets", "namespaces"] {
        let denied = plane
            .kubectl_ok_as(Identity::Operator, ["get", resource, "-A"])
            .await
            .unwrap_err()
            .to_string();
        assert!(denied.contains("Forbidden"), "{denied}");
        assert!(denied.contains(OPERATOR_USER), "{denied}");
    }

    // Binding a role to the ServiceAccount (as a Helm chart renders it) grants exactly that role.
    plane
        .apply_yaml(
            r#"
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: testenv-reader
rules:
- apiGroups: [""]
  resources: ["secrets", "namespaces"]
  verbs: ["get", "list"]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata:
  name: testenv-reader
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: ClusterRole
  name: testenv-reader
subjects:
- kind: ServiceAccount
  name: agentcore-operator
  namespace: agentcore-system
"#,
        )
        .await
        .unwrap();
    // The authorizer learns about new bindings through a watch, so allow it a moment.
    wait_until(
        "the binding to reach the authorizer",
        Duration::from_secs(10),
        POLL,
        || async { operator_can(&plane, "list", "secrets").await.then_some(()) },
    )
    .await
    .unwrap();
    assert!(operator_can(&plane, "list", "namespaces").await);
    let namespaces = plane
        .kubectl_ok_as(Identity::Operator, ["get", "namespaces", "-o", "name"])
        .await
        .unwrap();
    assert!(namespaces.contains("namespace/testenv-a"), "{namespaces}");
    plane
        .kubectl_ok_as(Identity::Operator, ["get", "secrets", "-A"])
        .await
        .unwrap();
    // ... and nothing more.
    assert!(!operator_can(&plane, "create", "namespaces").await);
    assert!(!operator_can(&plane, "list", "configmaps").await);
    assert!(
        plane
            .kubectl_ok_as(Identity::Operator, ["get", "configmaps", "-A"])
            .await
            .is_err()
    );

    // An apiserver crash and restart keeps the data: it lives in etcd.
    plane
        .kubectl_ok([
            "create",
            "configmap",
            "survivor",
            "-n",
            "testenv-a",
            "--from-literal=k=v1",
        ])
        .await
        .unwrap();
    let before_restart = Instant::now();
    plane.restart_apiserver().await.unwrap();
    eprintln!(
        "kube-apiserver restarted in {:.1?}",
        before_restart.elapsed()
    );
    let value = plane
        .kubectl_ok([
            "get",
            "configmap",
            "survivor",
            "-n",
            "testenv-a",
            "-o",
            "jsonpath={.data.k}",
        ])
        .await
        .unwrap();
    assert_eq!(value, "v1");
    assert!(
        operator_can(&plane, "list", "secrets").await,
        "RBAC state survives too"
    );

    // Teardown stops every process and removes the directory.
    assert_eq!(
        processes_mentioning(&dir).len(),
        2,
        "etcd and kube-apiserver run"
    );
    let before_stop = Instant::now();
    plane.stop().await.unwrap();
    eprintln!("control plane stopped in {:.1?}", before_stop.elapsed());
    assert_eq!(processes_mentioning(&dir), Vec::<u32>::new());
    if !keep_requested() {
        assert!(!dir.exists(), "{} was not removed", dir.display());
    }
}

#[tokio::test]
async fn install_crd_waits_until_the_kind_is_usable() {
    let plane = ControlPlane::start(ControlPlaneOptions::default())
        .await
        .unwrap();
    let crd = plane.dir().join("widgets-crd.yaml");
    std::fs::write(
        &crd,
        r#"
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.testenv.agentcore.dev
spec:
  group: testenv.agentcore.dev
  names: {kind: Widget, plural: widgets, singular: widget}
  scope: Namespaced
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            properties:
              size: {type: integer, minimum: 1}
"#,
    )
    .unwrap();
    let names = plane.install_crd(&crd).await.unwrap();
    assert_eq!(names, ["widgets.testenv.agentcore.dev"]);
    // No retry: right after install_crd the new kind is served and validated.
    plane
        .apply_yaml("apiVersion: testenv.agentcore.dev/v1\nkind: Widget\nmetadata: {name: w, namespace: default}\nspec: {size: 3}\n")
        .await
        .unwrap();
    let invalid = plane
        .apply_yaml("apiVersion: testenv.agentcore.dev/v1\nkind: Widget\nmetadata: {name: bad, namespace: default}\nspec: {size: 0}\n")
        .await
        .unwrap_err()
        .to_string();
    assert!(invalid.contains("spec.size"), "{invalid}");

    let not_a_crd = plane.dir().join("configmap.yaml");
    std::fs::write(
        &not_a_crd,
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c, namespace: default}\n",
    )
    .unwrap();
    let error = plane.install_crd(&not_a_crd).await.unwrap_err().to_string();
    assert!(error.contains("no CustomResourceDefinition"), "{error}");
}

#[tokio::test]
async fn a_panicking_test_leaks_no_processes() {
    let (dir_tx, dir_rx) = tokio::sync::oneshot::channel::<PathBuf>();
    let task = tokio::spawn(async move {
        let plane = ControlPlane::start(ControlPlaneOptions::default())
            .await
            .unwrap();
        dir_tx.send(plane.dir().to_owned()).unwrap();
        assert_eq!(processes_mentioning(plane.dir()).len(), 2);
        panic!("a test failing while it holds a plane");
    });
    let dir = dir_rx.await.expect("the plane started");
    assert!(task.await.unwrap_err().is_panic());
    assert_eq!(processes_mentioning(&dir), Vec::<u32>::new());
    if !keep_requested() {
        assert!(!dir.exists(), "{} was not removed", dir.display());
    }
}

const HOLD_ENV: &str = "AGENTCORE_TESTENV_HOLD_PLANE";
const DIR_LINE: &str = "TESTENV_DIR=";

/// Not a test of its own: the body the next test runs in a separate process and SIGKILLs.
#[tokio::test]
#[ignore = "helper process for sigkilled_test_process_leaves_no_processes"]
async fn hold_a_plane_until_killed() {
    if std::env::var_os(HOLD_ENV).is_none() {
        return;
    }
    let plane = ControlPlane::start(ControlPlaneOptions::default())
        .await
        .unwrap();
    println!("{DIR_LINE}{}", plane.dir().display());
    tokio::time::sleep(Duration::from_secs(120)).await;
}

#[tokio::test]
async fn sigkilled_test_process_leaves_no_processes() {
    // Re-run this test binary, as `cargo test` would, holding a plane; then kill it as a test
    // runner does on timeout: SIGKILL, so no destructor runs.
    let mut holder = tokio::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "hold_a_plane_until_killed",
            "--ignored",
            "--nocapture",
        ])
        .env(HOLD_ENV, "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = tokio::io::BufReader::new(holder.stdout.take().unwrap()).lines();
    let dir = loop {
        match lines.next_line().await.unwrap() {
            Some(line) => match line.strip_prefix(DIR_LINE) {
                Some(dir) => break PathBuf::from(dir),
                None => continue,
            },
            None => panic!("the helper process exited without printing its plane directory"),
        }
    };
    assert_eq!(
        processes_mentioning(&dir).len(),
        2,
        "etcd and kube-apiserver run"
    );

    holder.start_kill().unwrap();
    holder.wait().await.unwrap();

    let leftovers = wait_until(
        "etcd and kube-apiserver to die",
        Duration::from_secs(10),
        POLL,
        || async { processes_mentioning(&dir).is_empty().then_some(()) },
    )
    .await;
    // Clean up what a failure would leave before asserting: leaked processes and, in any case,
    // the directory (nothing removes the directory of a SIGKILLed process).
    if leftovers.is_err() {
        for pid in processes_mentioning(&dir) {
            let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    leftovers.unwrap();
}

#[tokio::test]
async fn operator_process_runs_as_the_operator_identity_and_survives_kills() {
    use std::os::unix::process::ExitStatusExt;

    use agentcore_testenv::{OperatorOptions, OperatorProcess};

    let plane = ControlPlane::start(ControlPlaneOptions::default())
        .await
        .unwrap();
    // kubectl stands in for the operator: a client that reads KUBECONFIG and keeps a watch open.
    let watcher = OperatorOptions::new(plane.tools().kubectl())
        .name("watcher")
        .args([
            "get",
            "configmaps",
            "-n",
            "default",
            "--watch",
            "-o",
            "name",
        ]);
    let mut watcher = OperatorProcess::start(&plane, watcher).unwrap();
    assert_eq!(watcher.log_path(), plane.dir().join("watcher.log"));

    // Without RBAC the watch is refused, which shows the process runs as the operator identity.
    watcher
        .wait_for_exit(Duration::from_secs(20))
        .await
        .unwrap();
    let log = watcher.log_contents().unwrap();
    assert!(
        log.contains("forbidden") && log.contains(OPERATOR_USER),
        "{log}"
    );

    plane
        .apply_yaml(
            r#"
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: configmap-watcher, namespace: default}
rules:
- apiGroups: [""]
  resources: ["configmaps"]
  verbs: ["get", "list", "watch"]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: configmap-watcher, namespace: default}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: configmap-watcher}
subjects:
- {kind: ServiceAccount, name: agentcore-operator, namespace: agentcore-system}
"#,
        )
        .await
        .unwrap();
    wait_until(
        "the role binding to take effect",
        Duration::from_secs(10),
        POLL,
        || async {
            operator_can_in(&plane, "watch", "configmaps", "-n default")
                .await
                .then_some(())
        },
    )
    .await
    .unwrap();

    // After a restart the same command (same log file) watches successfully.
    watcher.restart().await.unwrap();
    plane
        .kubectl_ok(["create", "configmap", "seen-1"])
        .await
        .unwrap();
    watcher
        .wait_for_log("configmap/seen-1", Duration::from_secs(20))
        .await
        .unwrap();
    assert!(watcher.is_running());

    // kill -9, restart, and a graceful stop.
    let status = watcher.kill_hard().unwrap();
    assert_eq!(status.signal(), Some(9));
    assert!(!watcher.is_running());
    watcher.restart().await.unwrap();
    plane
        .kubectl_ok(["create", "configmap", "seen-2"])
        .await
        .unwrap();
    watcher
        .wait_for_log("configmap/seen-2", Duration::from_secs(20))
        .await
        .unwrap();
    let log = watcher.log_contents().unwrap();
    assert_eq!(
        log.matches("=== agentcore-testenv: starting watcher")
            .count(),
        3,
        "{log}"
    );
    let status = watcher.terminate().await.unwrap();
    assert_ne!(
        status.signal(),
        Some(9),
        "kubectl stops on SIGTERM, no SIGKILL needed"
    );
    assert!(!watcher.is_running());

    // The environment: fake AWS credentials and region by default, caller's values win.
    let env = OperatorOptions::new("/bin/sh")
        .name("env")
        .args(["-c", "env | grep -E '^(AWS_|KUBECONFIG=)' | sort"])
        .env("AWS_REGION", "eu-west-1");
    let env = OperatorProcess::start(&plane, env).unwrap();
    env.wait_for_exit(Duration::from_secs(5)).await.unwrap();
    let printed = env.log_contents().unwrap();
    let expect = [
        format!("KUBECONFIG={}", plane.operator_kubeconfig().display()),
        format!(
            "AWS_ACCESS_KEY_ID={}",
            agentcore_testenv::FAKE_AWS_ACCESS_KEY_ID
        ),
        "AWS_REGION=eu-west-1".to_owned(),
        "AWS_EC2_METADATA_DISABLED=true".to_owned(),
    ];
    for line in expect {
        assert!(
            printed.lines().any(|l| l == line),
            "missing {line} in:\n{printed}"
        );
    }
    assert!(!printed.contains("AWS_PROFILE="), "{printed}");
}

#[tokio::test]
async fn an_apiserver_that_cannot_start_is_reported_with_its_log() {
    let error = ControlPlane::start(ControlPlaneOptions {
        extra_apiserver_args: vec!["--authorization-mode=NoSuchMode".to_owned()],
        ..ControlPlaneOptions::default()
    })
    .await
    .unwrap_err()
    .to_string();
    assert!(
        error.starts_with("kube-apiserver exited before it was ready"),
        "{error}"
    );
    assert!(error.contains("kube-apiserver.log ends with:"), "{error}");
    assert!(
        error.contains("NoSuchMode"),
        "the log tail names the cause: {error}"
    );
}
