//! The operator under test as a supervised process, with its log captured for assertions.

use std::{
    ffi::{OsStr, OsString},
    path::{Path, PathBuf},
    process::{Command, ExitStatus},
    sync::{Mutex, MutexGuard, PoisonError},
    time::Duration,
};

use crate::{ControlPlane, Error, Result, process::Supervised, wait::wait_until};

/// Grace between SIGTERM and SIGKILL, long enough for a clean shutdown (lease release).
const STOP_GRACE: Duration = Duration::from_secs(10);
/// Shorter when dropped (a failing test): nobody is waiting for a clean shutdown then.
const DROP_GRACE: Duration = Duration::from_secs(3);

/// Fake AWS credentials: clearly not real, and enough for the SDK to sign requests to an
/// emulator.
pub const FAKE_AWS_ACCESS_KEY_ID: &str = "AKIDTESTENVFAKE00000";
pub const FAKE_AWS_SECRET_ACCESS_KEY: &str = "testenv-fake-secret-access-key";
pub const DEFAULT_AWS_REGION: &str = "us-west-2";

/// Variables of the developer's environment that would point the operator at a real AWS account
/// or another cluster; they are removed before the caller's `env` is applied.
const SCRUBBED_ENV: &[&str] = &[
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_SESSION_TOKEN",
    "AWS_DEFAULT_REGION",
    "AWS_ROLE_ARN",
    "AWS_ROLE_SESSION_NAME",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_AUTHORIZATION_TOKEN",
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_BEDROCK_AGENTCORE",
    "KUBERNETES_SERVICE_HOST",
    "KUBERNETES_SERVICE_PORT",
];

/// How to start an [`OperatorProcess`].
#[derive(Debug, Clone)]
pub struct OperatorOptions {
    binary: PathBuf,
    args: Vec<OsString>,
    env: Vec<(OsString, OsString)>,
    kubeconfig: Option<PathBuf>,
    name: String,
}

impl OperatorOptions {
    /// Runs `binary` (in tests: `env!("CARGO_BIN_EXE_agentcore-operator")`).
    pub fn new(binary: impl Into<PathBuf>) -> Self {
        Self {
            binary: binary.into(),
            args: Vec::new(),
            env: Vec::new(),
            kubeconfig: None,
            name: "operator".to_owned(),
        }
    }

    pub fn arg(mut self, arg: impl Into<OsString>) -> Self {
        self.args.push(arg.into());
        self
    }

    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// Sets an environment variable; overrides the defaults (fake AWS credentials, region,
    /// `KUBECONFIG`).
    pub fn env(mut self, key: impl Into<OsString>, value: impl Into<OsString>) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    /// Uses this kubeconfig instead of the plane's operator identity (e.g. the admin one).
    pub fn kubeconfig(mut self, path: impl Into<PathBuf>) -> Self {
        self.kubeconfig = Some(path.into());
        self
    }

    /// Names the process; its log is `<plane dir>/<name>.log`. Give each of several concurrent
    /// operators (leader-election tests) its own name.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }
}

/// A running operator (or any binary that talks to the plane), stopped on drop.
///
/// Its environment: `KUBECONFIG` = the plane's operator identity (no permissions until a test
/// grants them), fake AWS credentials, `AWS_REGION=us-west-2`, no AWS profile, shared config
/// files or instance metadata, `NO_COLOR=1`; then the caller's variables.
#[derive(Debug)]
pub struct OperatorProcess {
    options: OperatorOptions,
    kubeconfig: PathBuf,
    log_path: PathBuf,
    aws_config_file: PathBuf,
    /// A mutex so that status queries need only `&self` (usable inside polling closures).
    child: Mutex<Option<Supervised>>,
}

impl OperatorProcess {
    /// Starts the process against `plane`. It does not wait for the operator to be ready: use
    /// [`Self::wait_for_log`] or wait for its effects.
    pub fn start(plane: &ControlPlane, options: OperatorOptions) -> Result<Self> {
        let mut process = Self {
            kubeconfig: options
                .kubeconfig
                .clone()
                .unwrap_or_else(|| plane.operator_kubeconfig().to_owned()),
            log_path: plane.dir().join(format!("{}.log", options.name)),
            // Empty: the SDK then reads no profile from the developer's ~/.aws (a missing file
            // would work too, but makes the SDK warn at every start).
            aws_config_file: plane.dir().join("aws-empty-config"),
            options,
            child: Mutex::new(None),
        };
        process.spawn()?;
        Ok(process)
    }

    /// The log file (stdout and stderr, appended across restarts).
    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// Everything the process wrote so far.
    pub fn log_contents(&self) -> Result<String> {
        std::fs::read(&self.log_path)
            .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
            .map_err(|source| Error::io(format!("reading {}", self.log_path.display()), source))
    }

    /// Waits until the log contains `needle`; the error quotes the end of the log.
    pub async fn wait_for_log(&self, needle: &str, timeout: Duration) -> Result<()> {
        let what = format!("{:?} in {}", needle, self.log_path.display());
        wait_until(what, timeout, Duration::from_millis(100), || async {
            self.log_contents().ok()?.contains(needle).then_some(())
        })
        .await
    }

    /// The pid while the process runs.
    pub fn pid(&self) -> Option<u32> {
        let mut child = self.lock();
        let child = child.as_mut()?;
        child.is_running().then(|| child.pid())
    }

    pub fn is_running(&self) -> bool {
        self.pid().is_some()
    }

    /// The exit status once the process has exited; `None` while it runs.
    pub fn exit_status(&self) -> Option<ExitStatus> {
        self.lock().as_mut().and_then(Supervised::exit_status)
    }

    /// Waits until the process exits by itself; the error quotes the end of its log.
    pub async fn wait_for_exit(&self, timeout: Duration) -> Result<ExitStatus> {
        let what = format!("{} to exit", self.options.name);
        wait_until(what, timeout, Duration::from_millis(50), || async {
            self.exit_status()
        })
        .await
    }

    /// SIGKILL, as a crash or `kill -9` would: no shutdown code runs.
    pub fn kill_hard(&mut self) -> Option<ExitStatus> {
        self.child_mut().as_mut().and_then(Supervised::kill_hard)
    }

    /// SIGTERM and wait for exit (SIGKILL after 10 s).
    pub async fn terminate(&mut self) -> Option<ExitStatus> {
        match self.child_mut().as_mut() {
            Some(child) => child.terminate(STOP_GRACE).await,
            None => None,
        }
    }

    /// Stops the process if it still runs (SIGTERM) and starts it again with the same
    /// arguments and environment; the log continues in the same file.
    pub async fn restart(&mut self) -> Result<()> {
        self.terminate().await;
        *self.child_mut() = None;
        self.spawn()
    }

    fn lock(&self) -> MutexGuard<'_, Option<Supervised>> {
        // A panic while holding this lock cannot leave the child in a broken state.
        self.child.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn child_mut(&mut self) -> &mut Option<Supervised> {
        self.child.get_mut().unwrap_or_else(PoisonError::into_inner)
    }

    fn spawn(&mut self) -> Result<()> {
        if !self.aws_config_file.exists() {
            crate::certs::write_file(&self.aws_config_file, "", 0o644)?;
        }
        let options = &self.options;
        let mut command = Command::new(&options.binary);
        command.args(&options.args);
        for key in SCRUBBED_ENV {
            command.env_remove(key);
        }
        command
            .env("KUBECONFIG", &self.kubeconfig)
            .env("AWS_ACCESS_KEY_ID", FAKE_AWS_ACCESS_KEY_ID)
            .env("AWS_SECRET_ACCESS_KEY", FAKE_AWS_SECRET_ACCESS_KEY)
            .env("AWS_REGION", DEFAULT_AWS_REGION)
            .env("AWS_CONFIG_FILE", &self.aws_config_file)
            .env("AWS_SHARED_CREDENTIALS_FILE", &self.aws_config_file)
            .env("AWS_EC2_METADATA_DISABLED", "true")
            // The log is a file that tests search: colour codes would split what they look for.
            .env("NO_COLOR", "1");
        command.envs(options.env.iter().map(|(k, v)| (k as &OsStr, v as &OsStr)));
        let child = Supervised::spawn(&options.name, command, &self.log_path, DROP_GRACE)?;
        *self.child_mut() = Some(child);
        Ok(())
    }
}
