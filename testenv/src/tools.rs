//! Locating (and, the first time, building) kube-apiserver, etcd, kubectl, kube-controller-manager
//! and helm.
//!
//! The binaries are built from their Go modules by the scripts in `hack/` and cached under
//! `~/.cache/agentcore-operator/tools/` (never in git). Once cached, locating them costs nothing.
//!
//! `AGENTCORE_TOOLS_DIR` overrides the cache root, with the same meaning as in the scripts. For
//! convenience it may also point straight at a directory that holds the three control-plane
//! binaries (a CI cache, a download); then nothing is ever built.
//!
//! `AGENTCORE_K8S_VERSION` selects the Kubernetes version (default [`KUBERNETES_VERSION`]), so
//! that the same test binaries run against every supported version (`hack/test-k8s-matrix.sh`);
//! each version's binaries are cached side by side.

use std::{
    collections::VecDeque,
    path::{Path, PathBuf},
    process::Stdio,
};

use tokio::{
    io::{AsyncBufReadExt, BufReader},
    process::Command,
    sync::Mutex,
};

use crate::{Error, Result};

/// The Kubernetes version the harness runs (kube-apiserver, kubectl; etcd at the version it pins)
/// unless [`KUBERNETES_VERSION_ENV`] names another; see [`kubernetes_version`].
pub const KUBERNETES_VERSION: &str = "v1.34.4";

/// The environment variable that selects another Kubernetes version, e.g. `v1.33.13`.
pub const KUBERNETES_VERSION_ENV: &str = "AGENTCORE_K8S_VERSION";

/// The Kubernetes version to run: [`KUBERNETES_VERSION_ENV`] if set, else [`KUBERNETES_VERSION`].
/// A value that is not `v1.<minor>.<patch>` is an error rather than a silent fall-back, so a
/// matrix run never tests the default version under another version's name.
pub fn kubernetes_version() -> Result<String> {
    match std::env::var(KUBERNETES_VERSION_ENV) {
        Err(std::env::VarError::NotPresent) => Ok(KUBERNETES_VERSION.to_owned()),
        Ok(v) if v.is_empty() => Ok(KUBERNETES_VERSION.to_owned()),
        Ok(v) if is_release_version(&v) => Ok(v),
        Ok(v) => Err(Error::ToolsMissing(format!(
            "{KUBERNETES_VERSION_ENV}={v:?} is not a Kubernetes release such as v1.33.13"
        ))),
        Err(std::env::VarError::NotUnicode(v)) => Err(Error::ToolsMissing(format!(
            "{KUBERNETES_VERSION_ENV}={v:?} is not a Kubernetes release such as v1.33.13"
        ))),
    }
}

fn is_release_version(v: &str) -> bool {
    let Some(rest) = v.strip_prefix("v1.") else {
        return false;
    };
    let mut parts = rest.split('.');
    let numeric =
        |p: Option<&str>| p.is_some_and(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
    numeric(parts.next()) && numeric(parts.next()) && parts.next().is_none()
}

/// The Helm version [`ensure_helm`] builds.
pub const HELM_VERSION: &str = "v3.19.5";

/// The environment variable that overrides where tools are cached or found.
pub const TOOLS_DIR_ENV: &str = "AGENTCORE_TOOLS_DIR";

const CONTROL_PLANE_BINARIES: [&str; 3] = ["kube-apiserver", "etcd", "kubectl"];
/// Optional: built only on demand ([`Tools::ensure_controller_manager`]).
const CONTROLLER_MANAGER: &str = "kube-controller-manager";
const BUILD_CONTROL_PLANE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../hack/build-control-plane.sh"
);
const BUILD_HELM: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../hack/build-helm.sh");

/// Serialises builds within this process; the scripts' own `flock` covers other processes.
static BUILD_LOCK: Mutex<()> = Mutex::const_new(());

/// A directory holding kube-apiserver, etcd and kubectl.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tools {
    dir: PathBuf,
}

impl Tools {
    /// Uses the binaries in `dir`; fails if one is missing or not executable.
    pub fn from_dir(dir: impl Into<PathBuf>) -> Result<Self> {
        let dir = dir.into();
        match missing_binaries(&dir).as_slice() {
            [] => Ok(Self { dir }),
            missing => Err(Error::ToolsMissing(format!(
                "{} has no executable {}",
                dir.display(),
                missing.join(", ")
            ))),
        }
    }

    /// The cached binaries of [`kubernetes_version`], if they are already built. Never builds.
    pub fn cached() -> Option<Self> {
        let root = cache_root().ok()?;
        let version = kubernetes_version().ok()?;
        [root.clone(), root.join(format!("kubernetes-{version}"))]
            .into_iter()
            .find_map(|dir| Self::from_dir(dir).ok())
    }

    /// The cached binaries, building them first if needed (minutes, the first time only).
    /// Build output streams to this process's stderr.
    pub async fn ensure() -> Result<Self> {
        if let Some(tools) = Self::cached() {
            return Ok(tools);
        }
        let _guard = BUILD_LOCK.lock().await;
        if let Some(tools) = Self::cached() {
            return Ok(tools);
        }
        let version = kubernetes_version()?;
        let dir = run_build_script(Path::new(BUILD_CONTROL_PLANE), "K8S_VERSION", &version).await?;
        Self::from_dir(dir)
    }

    /// The directory holding the binaries (put it on `PATH` to use them by name).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn kube_apiserver(&self) -> PathBuf {
        self.dir.join("kube-apiserver")
    }

    pub fn etcd(&self) -> PathBuf {
        self.dir.join("etcd")
    }

    pub fn kubectl(&self) -> PathBuf {
        self.dir.join("kubectl")
    }

    /// Where kube-controller-manager is when [`Self::dir`] holds it; see
    /// [`Self::ensure_controller_manager`].
    pub fn kube_controller_manager(&self) -> PathBuf {
        self.dir.join(CONTROLLER_MANAGER)
    }

    /// The kube-controller-manager of [`kubernetes_version`]: the one beside the other binaries,
    /// or else built (`hack/build-control-plane.sh kube-controller-manager`, a few minutes the
    /// first time, then cached beside the control plane's binaries). Built only when a plane asks
    /// for it, so planes without it (and the version matrix) never pay for the build.
    pub async fn ensure_controller_manager(&self) -> Result<PathBuf> {
        let beside = self.kube_controller_manager();
        if is_executable(&beside) {
            return Ok(beside);
        }
        let version = kubernetes_version()?;
        let cached = cache_root()?
            .join(format!("kubernetes-{version}"))
            .join(CONTROLLER_MANAGER);
        if is_executable(&cached) {
            return Ok(cached);
        }
        let _guard = BUILD_LOCK.lock().await;
        let dir = run_build_script_with(
            Path::new(BUILD_CONTROL_PLANE),
            &[("K8S_VERSION", &version)],
            &[CONTROLLER_MANAGER],
        )
        .await?;
        let built = dir.join(CONTROLLER_MANAGER);
        if is_executable(&built) {
            Ok(built)
        } else {
            Err(Error::ToolsMissing(format!(
                "{BUILD_CONTROL_PLANE} did not produce {}",
                built.display()
            )))
        }
    }
}

/// The path of the `helm` binary, building it first if needed (a minute or two, once).
pub async fn ensure_helm() -> Result<PathBuf> {
    let cached = cache_root()?
        .join(format!("helm-{HELM_VERSION}"))
        .join("helm");
    if is_executable(&cached) {
        return Ok(cached);
    }
    let _guard = BUILD_LOCK.lock().await;
    let dir = run_build_script(Path::new(BUILD_HELM), "HELM_VERSION", HELM_VERSION).await?;
    let helm = dir.join("helm");
    if is_executable(&helm) {
        Ok(helm)
    } else {
        Err(Error::ToolsMissing(format!(
            "{} did not produce {}",
            BUILD_HELM,
            helm.display()
        )))
    }
}

pub(crate) fn cache_root() -> Result<PathBuf> {
    if let Some(dir) = std::env::var_os(TOOLS_DIR_ENV).filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(dir));
    }
    let home = std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .ok_or_else(|| Error::ToolsMissing(format!("neither {TOOLS_DIR_ENV} nor HOME is set")))?;
    Ok(PathBuf::from(home).join(".cache/agentcore-operator/tools"))
}

fn missing_binaries(dir: &Path) -> Vec<&'static str> {
    CONTROL_PLANE_BINARIES
        .into_iter()
        .filter(|name| !is_executable(&dir.join(name)))
        .collect()
}

pub(crate) fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Runs a `hack/build-*.sh` script and returns the directory it prints on its last stdout line.
/// Its stderr (progress) is forwarded live and its tail kept for the error message.
pub(crate) async fn run_build_script(
    script: &Path,
    version_var: &str,
    version: &str,
) -> Result<PathBuf> {
    run_build_script_with(script, &[(version_var, version)], &[]).await
}

/// [`run_build_script`] with any environment variables and arguments.
pub(crate) async fn run_build_script_with(
    script: &Path,
    env: &[(&str, &str)],
    args: &[&str],
) -> Result<PathBuf> {
    if !script.is_file() {
        return Err(Error::ToolsMissing(format!(
            "{} does not exist (the harness is used outside its repository?); \
             set {TOOLS_DIR_ENV} to a directory holding the binaries",
            script.display()
        )));
    }
    tracing::info!(script = %script.display(), "building tools (cached after the first run)");
    let mut child = Command::new("bash")
        .arg(script)
        .args(args)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|source| Error::Spawn {
            program: format!("bash {}", script.display()),
            source,
        })?;

    let stderr = child.stderr.take();
    let forward = async move {
        let mut tail = VecDeque::with_capacity(TAIL_LINES);
        if let Some(stderr) = stderr {
            let mut lines = BufReader::new(stderr).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                eprintln!("{line}");
                if tail.len() == TAIL_LINES {
                    tail.pop_front();
                }
                tail.push_back(line);
            }
        }
        tail
    };
    let (output, tail) = tokio::join!(child.wait_with_output(), forward);
    let output =
        output.map_err(|source| Error::io(format!("waiting for {}", script.display()), source))?;
    let tail = Vec::from(tail).join("\n");
    if !output.status.success() {
        return Err(Error::Build {
            script: script.to_owned(),
            status: output.status.to_string(),
            output_tail: tail,
        });
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    match stdout
        .lines()
        .last()
        .map(str::trim)
        .filter(|l| !l.is_empty())
    {
        Some(dir) => Ok(PathBuf::from(dir)),
        None => Err(Error::Build {
            script: script.to_owned(),
            status: "printed no directory".to_owned(),
            output_tail: tail,
        }),
    }
}

const TAIL_LINES: usize = 40;

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn only_release_versions_are_accepted() {
        for good in ["v1.33.13", "v1.37.2", "v1.100.0"] {
            assert!(is_release_version(good), "{good}");
        }
        for bad in [
            "1.33.13",
            "v1.33",
            "v1.33.",
            "v1.33.1-rc.0",
            "v2.0.0",
            "v1.33.1.2",
            "v1.x.1",
        ] {
            assert!(!is_release_version(bad), "{bad}");
        }
    }

    #[test]
    fn a_directory_missing_binaries_is_rejected_with_their_names() {
        let dir = std::env::temp_dir().join(format!("testenv-tools-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("etcd"), "").unwrap();
        let error = Tools::from_dir(&dir).unwrap_err().to_string();
        assert!(
            error.contains("kube-apiserver, etcd, kubectl"),
            "a non-executable file does not count: {error}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn paths_are_inside_the_directory() {
        let dir = std::env::temp_dir().join(format!("testenv-tools-ok-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for name in CONTROL_PLANE_BINARIES {
            std::fs::write(dir.join(name), "#!/bin/sh\n").unwrap();
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(dir.join(name), std::fs::Permissions::from_mode(0o755))
                .unwrap();
        }
        let tools = Tools::from_dir(&dir).unwrap();
        assert_eq!(tools.kubectl(), dir.join("kubectl"));
        assert_eq!(tools.kube_apiserver(), dir.join("kube-apiserver"));
        assert_eq!(tools.etcd(), dir.join("etcd"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
