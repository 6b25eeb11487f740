//! The child of `vault run`: started with exactly one agent's secrets in an
//! environment built from scratch (the vault's own variables never reach it
//! unless named), its output masked when it is not a person's terminal,
//! SIGINT/TERM/HUP/QUIT forwarded from the moment it is spawned, and with
//! [`watch`] restarted (or signalled) when the agent's secrets rotate.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use signal_hook::consts::{SIGHUP, SIGINT, SIGQUIT, SIGTERM};
use signal_hook::iterator::Signals;
use vault_core::{envfile, AgentName, Principal, SecretBytes, SecretName};

use crate::error::{invalid, Error, Result};
use crate::mask;

/// How the child is started.
#[derive(Clone, Debug)]
pub struct Spec {
    /// The program and its arguments.
    pub command: Vec<String>,
    /// Start from an empty environment instead of this process's.
    pub no_inherit: bool,
    /// `VAULT_*` (or, with `no_inherit`, any) variables passed on by name.
    pub pass_env: Vec<String>,
    /// Whether the child's output is masked.
    pub masking: Masking,
    /// The agent's own env file, checked for variables that would shadow the injected ones.
    pub env_file: Option<PathBuf>,
    /// The agent's registered env files (`vault target ls`), checked too; see
    /// [`registered_env_files`].
    pub registered: Vec<PathBuf>,
}

/// The env files registered for `agent`: a runtime loads them over the
/// environment just as Hermes loads its `.env`, so `vault run` checks them
/// for variables that would shadow what it injects (issue 19).
///
/// # Errors
/// The vault cannot be read.
pub fn registered_env_files(vault: &vault_core::Vault, agent: &AgentName) -> Result<Vec<PathBuf>> {
    let targets = vault.list_targets(&Principal::Operator, Some(agent))?;
    Ok(targets.into_iter().map(|t| t.path).collect())
}

/// Whether secret values are masked in the child's output.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Masking {
    /// When stdout or stderr is not a terminal (a log, a pipe).
    Auto,
    /// Always.
    Always,
    /// Never.
    Never,
}

/// How [`watch`] notices and applies a rotation.
#[derive(Clone, Debug)]
pub struct Watch {
    /// How often the agent's secret versions are read.
    pub poll: Duration,
    /// A signal name (`HUP`, `SIGHUP`) sent instead of restarting the child.
    pub reload_signal: Option<String>,
}

/// What a person should be told while the child runs.
#[derive(Debug)]
pub enum Notice<'a> {
    /// `file` defines `name`, which the agent may load over the injected value.
    Shadowed {
        /// The env file.
        file: &'a Path,
        /// The variable it defines.
        name: &'a str,
    },
    /// The agent's secrets changed: the child gets `signal`, or (None) is restarted.
    Changed {
        /// The agent.
        agent: &'a AgentName,
        /// The reload signal sent, if any.
        signal: Option<Signal>,
    },
}

/// What the person is told, as `vault run` says it (after `vault: `).
impl std::fmt::Display for Notice<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Notice::Shadowed { file, name } => write!(
                f,
                "warning: {} defines {name}, which the agent may load over the injected value; \
                 remove it there or write it with `vault env --write`",
                file.display()
            ),
            Notice::Changed {
                agent,
                signal: Some(sig),
            } => write!(
                f,
                "the secrets of {agent} changed; sending {sig} to the child"
            ),
            Notice::Changed {
                agent,
                signal: None,
            } => write!(f, "the secrets of {agent} changed; restarting the child"),
        }
    }
}

/// Runs the child with `env` added, masking and forwarding signals; returns
/// the exit code to pass on (128 + N when the child died of signal N).
///
/// # Errors
/// The command cannot be started, or signals cannot be caught.
pub fn spawn_with_env(
    spec: &Spec,
    env: &[(SecretName, SecretBytes)],
    notice: &mut dyn FnMut(Notice<'_>),
) -> Result<i32> {
    let forwarder = Forwarder::install()?;
    let mut running = Running::start(spec, env, &forwarder, notice)?;
    let status = running.wait()?;
    forwarder.close();
    Ok(exit_code(status))
}

/// `vault run --watch`: keeps the vault open, polls the agent's secret
/// versions, and on a change restarts the child with the new values (or
/// sends it the reload signal). Returns when the child exits on its own.
///
/// # Errors
/// The vault cannot be read, the command cannot be started, or the reload
/// signal is not a signal name.
pub fn watch(
    spec: &Spec,
    how: &Watch,
    vault: &vault_core::Vault,
    agent: &AgentName,
    notice: &mut dyn FnMut(Notice<'_>),
) -> Result<i32> {
    let poll = how.poll.max(Duration::from_millis(50));
    let forwarder = Forwarder::install()?;
    let mut versions = vault.env_versions(agent)?;
    let mut running = Running::start(
        spec,
        &vault.env_of(&Principal::Operator, agent)?,
        &forwarder,
        notice,
    )?;
    loop {
        if let Some(status) = running.try_wait()? {
            forwarder.close();
            return Ok(exit_code(status));
        }
        std::thread::sleep(poll);
        if forwarder.stopping() {
            // The child got our SIGTERM/SIGINT; wait for it, never restart it.
            continue;
        }
        let now = vault.env_versions(agent)?;
        if now == versions {
            continue;
        }
        versions = now;
        match how.reload_signal.as_deref() {
            Some(name) => {
                let sig: Signal = name
                    .parse()
                    .or_else(|_| format!("SIG{name}").parse())
                    .map_err(|_| {
                        invalid(format!("--reload-signal {name:?} is not a signal name"))
                    })?;
                notice(Notice::Changed {
                    agent,
                    signal: Some(sig),
                });
                let _ = kill(running.pid, sig);
            }
            None => {
                notice(Notice::Changed {
                    agent,
                    signal: None,
                });
                // From here until the new child's pid is known, hold signals:
                // the new child can start (and look ready) before `spawn`
                // returns, and a signal sent then belongs to it, not the old one.
                forwarder.unfollow();
                running.stop(Duration::from_secs(10))?;
                running = Running::start(
                    spec,
                    &vault.env_of(&Principal::Operator, agent)?,
                    &forwarder,
                    notice,
                )?;
            }
        }
    }
}

fn exit_code(status: std::process::ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    status
        .code()
        .unwrap_or_else(|| 128 + status.signal().unwrap_or(0))
}

/// A started child and the threads masking its output.
struct Running {
    child: std::process::Child,
    pid: Pid,
    pumps: Vec<std::thread::JoinHandle<std::io::Result<()>>>,
}

impl Running {
    /// Spawns the child and points `forwarder` at it before anything else
    /// runs, so a signal sent as soon as the child shows signs of life reaches it.
    fn start(
        spec: &Spec,
        env: &[(SecretName, SecretBytes)],
        forwarder: &Forwarder,
        notice: &mut dyn FnMut(Notice<'_>),
    ) -> Result<Running> {
        let Some((program, arguments)) = spec.command.split_first() else {
            return Err(invalid("no command to run"));
        };
        let mut cmd = Command::new(program);
        cmd.args(arguments);
        // Built from scratch: the vault's own variables (credentials, paths)
        // never reach the child unless named with --pass-env.
        cmd.env_clear();
        if spec.no_inherit {
            for name in &spec.pass_env {
                if let Some(v) = std::env::var_os(name) {
                    cmd.env(name, v);
                }
            }
        } else {
            cmd.envs(vault_core::process::inherited_env(&spec.pass_env));
        }
        for (k, v) in env {
            cmd.env(k.as_str(), v.as_str().unwrap_or_default());
        }
        warn_shadowed(spec, env, notice);
        let mask = match spec.masking {
            Masking::Never => false,
            Masking::Always => true,
            Masking::Auto => !std::io::stdout().is_terminal() || !std::io::stderr().is_terminal(),
        };
        let masker = || mask::Masker::new(env.iter().map(|(_, v)| v.expose_secret()));
        let masking = mask && masker().is_some();
        if masking {
            cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        }
        let mut child = cmd.spawn().map_err(|source| Error::Spawn {
            program: program.clone(),
            source,
        })?;
        let pid = Pid::from_raw(child.id() as i32);
        forwarder.follow(pid);
        let mut pumps = Vec::new();
        if masking {
            if let (Some(out), Some(m)) = (child.stdout.take(), masker()) {
                pumps.push(std::thread::spawn(move || {
                    mask::copy_masked(out, std::io::stdout(), m)
                }));
            }
            if let (Some(err), Some(m)) = (child.stderr.take(), masker()) {
                pumps.push(std::thread::spawn(move || {
                    mask::copy_masked(err, std::io::stderr(), m)
                }));
            }
        }
        Ok(Running { child, pid, pumps })
    }

    fn wait(&mut self) -> Result<std::process::ExitStatus> {
        let status = self.child.wait()?;
        self.join_pumps();
        Ok(status)
    }

    fn try_wait(&mut self) -> Result<Option<std::process::ExitStatus>> {
        let status = self.child.try_wait()?;
        if status.is_some() {
            self.join_pumps();
        }
        Ok(status)
    }

    /// SIGTERM, then SIGKILL after `grace`.
    fn stop(&mut self, grace: Duration) -> Result<()> {
        let _ = kill(self.pid, Signal::SIGTERM);
        let start = std::time::Instant::now();
        while self.try_wait()?.is_none() {
            if start.elapsed() > grace {
                let _ = self.child.kill();
                self.wait()?;
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }

    fn join_pumps(&mut self) {
        for p in self.pumps.drain(..) {
            let _ = p.join();
        }
    }
}

/// Catches SIGINT/TERM/HUP/QUIT from the moment it is installed (so none is
/// lost or kills us first) and passes each to the current child.
struct Forwarder {
    pid: Arc<AtomicI32>,
    /// A signal that arrived while no child was running yet; `follow` delivers it.
    pending: Arc<AtomicI32>,
    stopping: Arc<AtomicBool>,
    handle: signal_hook::iterator::Handle,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Forwarder {
    fn install() -> Result<Forwarder> {
        let mut signals = Signals::new([SIGINT, SIGTERM, SIGHUP, SIGQUIT])?;
        let pid = Arc::new(AtomicI32::new(0));
        let pending = Arc::new(AtomicI32::new(0));
        let stopping = Arc::new(AtomicBool::new(false));
        let handle = signals.handle();
        let (p, pend, st) = (pid.clone(), pending.clone(), stopping.clone());
        let thread = std::thread::spawn(move || {
            for sig in signals.forever() {
                if sig == SIGINT || sig == SIGTERM {
                    st.store(true, Ordering::SeqCst);
                }
                let target = p.load(Ordering::SeqCst);
                match Signal::try_from(sig) {
                    Ok(s) if target > 0 => {
                        let _ = kill(Pid::from_raw(target), s);
                    }
                    _ => {
                        pend.store(sig, Ordering::SeqCst);
                        // `follow` may have run between our load and store:
                        // whichever side swaps the pending signal out delivers it.
                        let now = p.load(Ordering::SeqCst);
                        let held = pend.swap(0, Ordering::SeqCst);
                        if let (true, Ok(s)) = (now > 0 && held > 0, Signal::try_from(held)) {
                            let _ = kill(Pid::from_raw(now), s);
                        } else if held > 0 {
                            pend.store(held, Ordering::SeqCst);
                        }
                    }
                }
            }
        });
        Ok(Forwarder {
            pid,
            pending,
            stopping,
            handle,
            thread: Some(thread),
        })
    }

    fn follow(&self, pid: Pid) {
        self.pid.store(pid.as_raw(), Ordering::SeqCst);
        let sig = self.pending.swap(0, Ordering::SeqCst);
        if let (true, Ok(sig)) = (sig > 0, Signal::try_from(sig)) {
            let _ = kill(pid, sig);
        }
    }

    /// Holds signals as pending until the next `follow`.
    fn unfollow(&self) {
        self.pid.store(0, Ordering::SeqCst);
    }

    fn stopping(&self) -> bool {
        self.stopping.load(Ordering::SeqCst)
    }

    fn close(mut self) {
        self.handle.close();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Hermes loads `$HERMES_HOME/.env` with override=True, so a variable defined
/// there beats the one we inject; say so rather than let it silently win.
/// A registered env file is rewritten by every rotation of the secrets it
/// carries, so there only a value other than the injected one shadows it.
fn warn_shadowed(
    spec: &Spec,
    env: &[(SecretName, SecretBytes)],
    notice: &mut dyn FnMut(Notice<'_>),
) {
    let mut files: Vec<(PathBuf, bool)> =
        spec.env_file.iter().map(|f| (f.clone(), false)).collect();
    if !spec.no_inherit {
        if let Some(home) = std::env::var_os("HERMES_HOME") {
            files.push((Path::new(&home).join(".env"), false));
        }
    }
    files.extend(spec.registered.iter().map(|f| (f.clone(), true)));
    let mut seen = std::collections::HashSet::new();
    for (file, registered) in files {
        if !seen.insert(file.clone()) {
            continue;
        }
        let Ok(defined) = envfile::defined_names(&file) else {
            continue;
        };
        for (k, v) in env {
            if !defined.iter().any(|d| d == k.as_str()) {
                continue;
            }
            let same = || {
                envfile::value_of(&file, k.as_str())
                    .ok()
                    .flatten()
                    .is_some_and(|in_file| v.ct_eq(in_file.as_bytes()))
            };
            if !(registered && same()) {
                notice(Notice::Shadowed {
                    file: &file,
                    name: k.as_str(),
                });
            }
        }
    }
}
