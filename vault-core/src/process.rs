//! The one way the vault starts a command it was configured to run (a
//! rotation command, a notify command), so every such process gets the same
//! three guarantees:
//!
//! - an allow-listed environment: the vault's own variables
//!   (`VAULT_PASSPHRASE_FILE`, `VAULT_HOME`, `VAULT_ADMIN_TOKEN`, ...) never
//!   reach it, so it is not handed the way to every agent's secrets;
//! - its own process group, killed whole at the timeout and when the command
//!   exits, so a background child cannot keep running with the old value;
//! - bounded time and output.
//!
//! `vault run` starts the agent itself differently (inherited stdio, signal
//! forwarding) but strips the same variables with [`inherited_env`].

use std::ffi::{OsStr, OsString};
use std::io::{Read, Write};
use std::os::unix::process::CommandExt;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use nix::sys::signal::{killpg, Signal};
use nix::sys::wait::{waitid, Id, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use zeroize::Zeroizing;

/// Variables a configured command may inherit: what a shell script needs to
/// find programs, files and the network, and nothing that names the vault.
const ALLOWED_VARS: &[&str] = &[
    "PATH",
    "HOME",
    "USER",
    "LOGNAME",
    "SHELL",
    "LANG",
    "LANGUAGE",
    "TZ",
    "TMPDIR",
    "TERM",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "NO_PROXY",
    "http_proxy",
    "https_proxy",
    "no_proxy",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
];

/// Whether `name` is one of the vault's own variables (credentials, paths,
/// server addresses): these never pass to a child unless asked for by name.
pub fn is_vault_var(name: &OsStr) -> bool {
    name.as_encoded_bytes().starts_with(b"VAULT_")
}

/// The allow-listed part of this process's environment, for a configured command.
pub fn allowed_env() -> Vec<(OsString, OsString)> {
    std::env::vars_os()
        .filter(|(k, _)| {
            let b = k.as_encoded_bytes();
            (ALLOWED_VARS.iter().any(|a| a.as_bytes() == b) || b.starts_with(b"LC_"))
                && !is_vault_var(k)
        })
        .collect()
}

/// This process's environment without the vault's own variables, except the
/// ones named in `keep` (`vault run --pass-env NAME`).
pub fn inherited_env(keep: &[String]) -> Vec<(OsString, OsString)> {
    std::env::vars_os()
        .filter(|(k, _)| !is_vault_var(k) || keep.iter().any(|n| OsStr::new(n) == k))
        .collect()
}

/// Why a command did not finish normally.
#[derive(Debug)]
pub enum RunError {
    /// It could not be started.
    Start(std::io::Error),
    /// Waiting for it failed.
    Wait(std::io::Error),
    /// It ran past its time; its whole process group was killed.
    TimedOut(Duration),
}

impl std::fmt::Display for RunError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RunError::Start(e) => write!(f, "could not start: {e}"),
            RunError::Wait(e) => write!(f, "could not be waited for: {e}"),
            RunError::TimedOut(t) => write!(f, "timed out after {} ms", t.as_millis()),
        }
    }
}

/// How a command ended, and what it printed (when asked for).
#[derive(Debug)]
pub struct Outcome {
    /// Its exit status.
    pub status: ExitStatus,
    /// At most the requested number of bytes of stdout (zeroized on drop).
    pub stdout: Zeroizing<Vec<u8>>,
    /// The last bytes of stderr, at most the requested number (zeroized on
    /// drop); empty unless asked for.
    pub stderr: Zeroizing<Vec<u8>>,
}

/// Runs `/bin/sh -c COMMAND` in its own process group with the allow-listed
/// environment and `stdin` on its standard input. With `capture = Some(n)`,
/// up to `n` bytes of stdout are kept; otherwise stdout is discarded. With
/// `stderr_tail = Some(n)`, stderr is read to its end and its last `n` bytes
/// kept (it may hold a value: the caller decides who sees them); otherwise it
/// is discarded unread. After `timeout`, or as soon as the shell exits, every
/// process left in the group is killed.
pub fn run_shell(
    command: &str,
    stdin: &[u8],
    capture: Option<u64>,
    stderr_tail: Option<usize>,
    timeout: Duration,
) -> Result<Outcome, RunError> {
    let mut cmd = Command::new("/bin/sh");
    cmd.arg("-c")
        .arg(command)
        .env_clear()
        .envs(allowed_env())
        .stdin(Stdio::piped())
        .stdout(if capture.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stderr(if stderr_tail.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        // its own group, so the timeout reaches whatever it started
        .process_group(0);
    let mut child = cmd.spawn().map_err(RunError::Start)?;
    // the child's pid is its group's id; a u32 pid always fits an i32 on Linux
    let pid = Pid::from_raw(child.id() as i32);
    if let Some(mut pipe) = child.stdin.take() {
        let input = Zeroizing::new(stdin.to_vec());
        // Not joined: a command that never reads (or a stray process holding
        // the pipe) must not hold us; the write ends with EPIPE once it is gone.
        std::thread::spawn(move || {
            let _ = pipe.write_all(&input);
        });
    }
    let (tx, rx) = mpsc::channel();
    if let (Some(limit), Some(mut out)) = (capture, child.stdout.take()) {
        std::thread::spawn(move || {
            let mut buf = Zeroizing::new(Vec::new());
            let _ = (&mut out).take(limit).read_to_end(&mut buf);
            let _ = tx.send(buf);
        });
    } else {
        let _ = tx.send(Zeroizing::new(Vec::new()));
    }
    let (etx, erx) = mpsc::channel();
    if let (Some(limit), Some(err)) = (stderr_tail, child.stderr.take()) {
        std::thread::spawn(move || {
            let _ = etx.send(read_tail(err, limit));
        });
    } else {
        let _ = etx.send(Zeroizing::new(Vec::new()));
    }
    let start = Instant::now();
    let timed_out = loop {
        // WNOWAIT leaves the exited shell unreaped, so its pid (the group id)
        // cannot be reused before the group is killed below.
        match waitid(
            Id::Pid(pid),
            WaitPidFlag::WEXITED | WaitPidFlag::WNOHANG | WaitPidFlag::WNOWAIT,
        ) {
            Ok(WaitStatus::StillAlive) => {}
            Ok(_) => break false,
            Err(e) => {
                kill_group(pid);
                let _ = child.wait();
                return Err(RunError::Wait(e.into()));
            }
        }
        if start.elapsed() >= timeout {
            break true;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    kill_group(pid);
    let status = child.wait().map_err(RunError::Wait)?;
    if timed_out {
        return Err(RunError::TimedOut(timeout));
    }
    // The group is dead, so the pipe is closed unless a process escaped the
    // group (setsid); such a one gets a second, then is ignored.
    let stdout = rx
        .recv_timeout(Duration::from_secs(1))
        .unwrap_or_else(|_| Zeroizing::new(Vec::new()));
    let stderr = erx
        .recv_timeout(Duration::from_secs(1))
        .unwrap_or_else(|_| Zeroizing::new(Vec::new()));
    Ok(Outcome {
        status,
        stdout,
        stderr,
    })
}

/// Everything `from` gives until its end, keeping only the last `limit`
/// bytes (a chatty command is drained, so it never blocks on a full pipe).
fn read_tail(mut from: impl Read, limit: usize) -> Zeroizing<Vec<u8>> {
    let mut kept = Zeroizing::new(Vec::with_capacity(limit * 2 + 4096));
    let mut chunk = Zeroizing::new([0u8; 4096]);
    while let Ok(n @ 1..) = from.read(&mut chunk[..]) {
        kept.extend_from_slice(&chunk[..n]);
        if kept.len() > limit * 2 {
            let cut = kept.len() - limit;
            kept.drain(..cut);
        }
    }
    let cut = kept.len().saturating_sub(limit);
    kept.drain(..cut);
    kept
}

fn kill_group(pgid: Pid) {
    // ESRCH (nothing left in the group) is the usual, fine answer
    let _ = killpg(pgid, Signal::SIGKILL);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vault_variables_are_never_allowed() {
        for name in ["VAULT_PASSPHRASE_FILE", "VAULT_HOME", "VAULT_ADMIN_TOKEN"] {
            assert!(is_vault_var(OsStr::new(name)));
        }
        assert!(!is_vault_var(OsStr::new("PATH")));
        assert!(allowed_env().iter().all(|(k, _)| !is_vault_var(k)));
    }

    #[test]
    fn stdout_is_captured_up_to_the_limit() {
        let out = run_shell(
            "cat",
            b"hello world",
            Some(5),
            None,
            Duration::from_secs(10),
        )
        .unwrap();
        assert!(out.status.success());
        assert_eq!(&out.stdout[..], b"hello");
        assert!(out.stderr.is_empty());
    }

    #[test]
    fn the_tail_of_stderr_is_kept_when_asked_for() {
        let out = run_shell(
            "seq 1 5000 >&2; echo last >&2; exit 3",
            b"",
            None,
            Some(16),
            Duration::from_secs(20),
        )
        .unwrap();
        assert_eq!(out.status.code(), Some(3));
        assert_eq!(&out.stderr[..], b"\n4999\n5000\nlast\n");
    }

    #[test]
    fn a_hanging_command_times_out() {
        let start = Instant::now();
        let err = run_shell("sleep 30", b"", None, None, Duration::from_millis(200)).unwrap_err();
        assert!(matches!(err, RunError::TimedOut(_)), "{err}");
        assert!(start.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn a_background_child_holding_stdout_does_not_hang_the_caller() {
        // the shell exits at once; its `sleep` would keep stdout open for 30 s
        let start = Instant::now();
        let out = run_shell(
            "sleep 30 & echo new",
            b"",
            Some(64),
            None,
            Duration::from_secs(20),
        )
        .unwrap();
        assert_eq!(&out.stdout[..], b"new\n");
        assert!(start.elapsed() < Duration::from_secs(5));
    }
}
