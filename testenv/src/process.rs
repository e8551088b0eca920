//! Supervised child processes.
//!
//! Every long-lived child (etcd, kube-apiserver, the operator, the emulator) is started so that
//! it cannot outlive the process that started it, writes stdout and stderr to a log file, and is
//! stopped with SIGTERM, a grace period, then SIGKILL.
//!
//! Children die with their parent through Linux's `PR_SET_PDEATHSIG`. The kernel sends that
//! signal when the *thread* that forked the child exits, not the process, so children are forked
//! from one dedicated thread that lives as long as the process. Forking from a tokio worker or
//! blocking-pool thread would kill the child as soon as the runtime retires that thread.

use std::{
    ffi::OsStr,
    fs::{File, OpenOptions},
    io::{self, Read, Seek, SeekFrom, Write},
    os::unix::process::CommandExt,
    path::{Path, PathBuf},
    process::{Child, Command, ExitStatus, Stdio},
    sync::{OnceLock, mpsc},
    thread,
    time::{Duration, Instant},
};

use rustix::process::{Pid, Signal};

use crate::{Error, Result};

/// How often a stopping child is checked for exit.
const EXIT_POLL: Duration = Duration::from_millis(20);

/// How much of a log file [`log_tail`] reads, at most.
const TAIL_BYTES: u64 = 64 * 1024;

/// A child process owned by the harness. Dropping it stops the child (SIGTERM, then SIGKILL
/// after `drop_grace`).
#[derive(Debug)]
pub(crate) struct Supervised {
    name: String,
    child: Child,
    log_path: PathBuf,
    state: State,
    drop_grace: Duration,
}

#[derive(Debug, Clone, Copy)]
enum State {
    Running,
    Exited(ExitStatus),
    /// Reaped by something else: the exit status is unknown and the pid must not be used.
    Lost,
}

impl Supervised {
    /// Starts `command` with stdin closed and stdout+stderr appended to `log_path`, in its own
    /// process group (so a terminal's Ctrl-C reaches only the harness, which then stops its
    /// children in order) and armed to receive SIGKILL when this process dies.
    pub(crate) fn spawn(
        name: &str,
        mut command: Command,
        log_path: &Path,
        drop_grace: Duration,
    ) -> Result<Self> {
        let mut log = open_log(log_path)?;
        let program = command.get_program().to_string_lossy().into_owned();
        writeln!(
            log,
            "=== agentcore-testenv: starting {name} ({program}) ==="
        )
        .map_err(|source| Error::io(format!("writing {}", log_path.display()), source))?;
        let stderr = log
            .try_clone()
            .map_err(|source| Error::io(format!("duplicating {}", log_path.display()), source))?;
        command
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(stderr)
            .process_group(0);
        arm_parent_death_signal(&mut command);
        let child =
            spawn_on_spawner_thread(command).map_err(|source| Error::Spawn { program, source })?;
        tracing::debug!(name, pid = child.id(), "started");
        Ok(Self {
            name: name.to_owned(),
            child,
            log_path: log_path.to_owned(),
            state: State::Running,
            drop_grace,
        })
    }

    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    pub(crate) fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// Whether the child still runs (reaps it once it has exited).
    pub(crate) fn is_running(&mut self) -> bool {
        if matches!(self.state, State::Running) {
            self.state = match self.child.try_wait() {
                Ok(None) => State::Running,
                Ok(Some(status)) => State::Exited(status),
                // Only this type should reap the child; if something else did, its pid may belong
                // to another process by now, so it must never be signalled again.
                Err(error) => {
                    tracing::warn!(name = %self.name, %error, "child reaped elsewhere");
                    State::Lost
                }
            };
        }
        matches!(self.state, State::Running)
    }

    /// The exit status once the child has exited, `None` while it runs (or if it was reaped
    /// elsewhere).
    pub(crate) fn exit_status(&mut self) -> Option<ExitStatus> {
        self.is_running();
        match self.state {
            State::Exited(status) => Some(status),
            State::Running | State::Lost => None,
        }
    }

    /// SIGKILL and reap. Returns the exit status.
    pub(crate) fn kill_hard(&mut self) -> Option<ExitStatus> {
        if self.is_running() {
            // Fails only if the child is already gone; `wait` below settles it either way.
            let _ = self.child.kill();
            self.state = match self.child.wait() {
                Ok(status) => State::Exited(status),
                Err(_) => State::Lost,
            };
        }
        self.exit_status()
    }

    /// SIGTERM, wait up to `grace`, then SIGKILL. Does not block the async runtime.
    pub(crate) async fn terminate(&mut self, grace: Duration) -> Option<ExitStatus> {
        if self.send_term() {
            let deadline = Instant::now() + grace;
            while self.is_running() && Instant::now() < deadline {
                tokio::time::sleep(EXIT_POLL).await;
            }
        }
        self.kill_hard_reporting()
    }

    /// Blocking variant of [`Self::terminate`], for `Drop`.
    pub(crate) fn terminate_blocking(&mut self, grace: Duration) -> Option<ExitStatus> {
        if self.send_term() {
            let deadline = Instant::now() + grace;
            while self.is_running() && Instant::now() < deadline {
                thread::sleep(EXIT_POLL);
            }
        }
        self.kill_hard_reporting()
    }

    /// Sends SIGTERM if the child still runs; returns whether it was sent.
    fn send_term(&mut self) -> bool {
        if !self.is_running() {
            return false;
        }
        // The child is not reaped yet (only this type reaps it), so its pid cannot have been
        // reused by another process.
        match Pid::from_raw(self.child.id().cast_signed()) {
            Some(pid) => rustix::process::kill_process(pid, Signal::TERM).is_ok(),
            None => false,
        }
    }

    fn kill_hard_reporting(&mut self) -> Option<ExitStatus> {
        if self.is_running() {
            tracing::warn!(name = %self.name, pid = self.pid(), "did not stop after SIGTERM; sending SIGKILL");
        }
        self.kill_hard()
    }
}

impl Drop for Supervised {
    fn drop(&mut self) {
        self.terminate_blocking(self.drop_grace);
    }
}

fn open_log(path: &Path) -> Result<File> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|source| Error::io(format!("opening log file {}", path.display()), source))
}

/// Makes the child receive SIGKILL when the thread that forks it exits (see the module docs for
/// why that thread is a dedicated one).
#[allow(unsafe_code)]
fn arm_parent_death_signal(command: &mut Command) {
    let parent = rustix::process::getpid();
    // SAFETY: the hook runs in the forked child before exec, where only async-signal-safe work is
    // allowed. It makes two raw system calls (prctl, getppid) and converts errors from raw errno
    // values; it neither allocates nor takes locks.
    unsafe {
        command.pre_exec(move || {
            rustix::process::set_parent_process_death_signal(Some(Signal::KILL))?;
            // If the parent died between fork and prctl, no signal will ever come: give up.
            if rustix::process::getppid() != Some(parent) {
                return Err(rustix::io::Errno::SRCH.into());
            }
            Ok(())
        });
    }
}

struct SpawnRequest {
    command: Command,
    reply: mpsc::SyncSender<io::Result<Child>>,
}

/// Forks `command` from the process-wide spawner thread and returns the child.
fn spawn_on_spawner_thread(command: Command) -> io::Result<Child> {
    static SPAWNER: OnceLock<Result<mpsc::Sender<SpawnRequest>, String>> = OnceLock::new();
    let spawner = SPAWNER.get_or_init(|| {
        let (requests, incoming) = mpsc::channel::<SpawnRequest>();
        thread::Builder::new()
            .name("agentcore-testenv-spawner".into())
            .spawn(move || {
                // Runs until the process exits: the sender lives in a static.
                for mut request in incoming {
                    let _ = request.reply.send(request.command.spawn());
                }
            })
            .map(|_| requests)
            .map_err(|error| format!("cannot start the spawner thread: {error}"))
    });
    let requests = spawner.as_ref().map_err(|e| io::Error::other(e.clone()))?;
    let (reply, response) = mpsc::sync_channel(1);
    requests
        .send(SpawnRequest { command, reply })
        .map_err(|_| io::Error::other("the spawner thread has stopped"))?;
    response
        .recv()
        .map_err(|_| io::Error::other("the spawner thread has stopped"))?
}

/// The last `lines` lines of a log file (at most the last 64 KiB), for error messages.
pub(crate) fn log_tail(path: &Path, lines: usize) -> String {
    let read = || -> io::Result<String> {
        let mut file = File::open(path)?;
        let len = file.metadata()?.len();
        file.seek(SeekFrom::Start(len.saturating_sub(TAIL_BYTES)))?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)?;
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    };
    match read() {
        Ok(text) => {
            let all: Vec<&str> = text.lines().collect();
            all[all.len().saturating_sub(lines)..].join("\n")
        }
        Err(error) => format!("<cannot read {}: {error}>", path.display()),
    }
}

/// Process ids of every process (other than this one) whose command line contains `needle`.
///
/// Every process a [`crate::ControlPlane`] starts has the plane's directory on its command line,
/// so `processes_mentioning(plane.dir())` after teardown lists leaked processes.
pub fn processes_mentioning(needle: impl AsRef<OsStr>) -> Vec<u32> {
    let needle = needle.as_ref().as_encoded_bytes();
    let own = std::process::id();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| pid != own)
        .filter(|pid| {
            // Unreadable entries are processes that exited meanwhile.
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|cmdline| contains(&cmdline, needle))
        })
        .collect()
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    needle.is_empty()
        || haystack
            .windows(needle.len())
            .any(|window| window == needle)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn sleeper() -> Command {
        let mut command = Command::new("sleep");
        command.arg("30");
        command
    }

    fn wait_exit(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Some(status) = child.try_wait().unwrap() {
                return Some(status);
            }
            thread::sleep(EXIT_POLL);
        }
        let _ = child.kill();
        None
    }

    fn alive(pid: u32) -> bool {
        // A reaped or never-existing pid has no /proc entry; a zombie has state Z.
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .is_ok_and(|stat| !stat.contains(") Z "))
    }

    #[test]
    fn child_survives_the_exit_of_the_thread_that_asked_for_it() {
        let dir = std::env::temp_dir().join(format!("testenv-process-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();

        // Control: forked straight from a thread that then exits, an armed child is killed.
        // This is the hazard the spawner thread exists for.
        let mut direct = thread::spawn(|| {
            let mut command = sleeper();
            arm_parent_death_signal(&mut command);
            command.spawn().unwrap()
        })
        .join()
        .unwrap();
        let killed = wait_exit(&mut direct, Duration::from_secs(5));
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(killed.and_then(|s| s.signal()), Some(9), "{killed:?}");

        let log = dir.join("sleep.log");
        // A short-lived thread asks for the child, as a retiring tokio worker would.
        let mut child = thread::spawn({
            let log = log.clone();
            move || Supervised::spawn("sleep", sleeper(), &log, Duration::from_secs(1)).unwrap()
        })
        .join()
        .unwrap();
        thread::sleep(Duration::from_millis(300));
        assert!(
            child.is_running() && alive(child.pid()),
            "child was killed when the requesting thread exited"
        );
        let pid = child.pid();
        drop(child);
        assert!(!alive(pid), "dropping a Supervised must stop the child");
        let text = std::fs::read_to_string(&log).unwrap();
        assert!(
            text.contains("=== agentcore-testenv: starting sleep"),
            "{text}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[tokio::test]
    async fn terminate_escalates_to_sigkill_when_sigterm_is_ignored() {
        let dir = std::env::temp_dir().join(format!("testenv-term-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut command = Command::new("sh");
        command.args(["-c", "trap '' TERM; echo ready; while :; do sleep 1; done"]);
        let log = dir.join("stubborn.log");
        let mut child =
            Supervised::spawn("stubborn", command, &log, Duration::from_millis(100)).unwrap();
        crate::wait_until(
            "the shell to install its trap",
            Duration::from_secs(5),
            Duration::from_millis(20),
            || async {
                std::fs::read_to_string(&log)
                    .unwrap()
                    .contains("ready")
                    .then_some(())
            },
        )
        .await
        .unwrap();
        let status = child.terminate(Duration::from_millis(300)).await.unwrap();
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(status.signal(), Some(9), "expected SIGKILL, got {status:?}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn log_tail_returns_the_last_lines() {
        let path = std::env::temp_dir().join(format!("testenv-tail-{}.log", std::process::id()));
        std::fs::write(&path, "one\ntwo\nthree\n").unwrap();
        assert_eq!(log_tail(&path, 2), "two\nthree");
        assert_eq!(log_tail(&path, 10), "one\ntwo\nthree");
        std::fs::remove_file(&path).unwrap();
        assert!(log_tail(&path, 2).starts_with("<cannot read"));
    }

    #[test]
    fn finds_processes_by_command_line() {
        let dir = std::env::temp_dir().join(format!("testenv-find-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let marker = dir.join("unique-marker-arg");
        std::fs::write(&marker, "").unwrap();
        // One process that never forks, with the marker on its command line: `sh -c` forked a
        // child for its command, which carried sh's command line until it exec'd, and was
        // found beside the shell when the check ran in that moment (a CI run did).
        let mut command = Command::new("tail");
        command.arg("-f").arg(&marker);
        let child = Supervised::spawn(
            "marked",
            command,
            &dir.join("m.log"),
            Duration::from_secs(1),
        )
        .unwrap();
        assert_eq!(processes_mentioning(&marker), vec![child.pid()]);
        drop(child);
        assert!(processes_mentioning(&marker).is_empty());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
