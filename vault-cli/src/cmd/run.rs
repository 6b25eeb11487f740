//! `vault run` and `vault env`: exactly one agent's secrets, into a child
//! process's environment or out as dotenv/JSON/shell text.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::Arc;

use anyhow::{Context as _, Result};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use signal_hook::consts::{SIGHUP, SIGINT, SIGQUIT, SIGTERM};
use signal_hook::iterator::Signals;
use vault_core::{envfile, AgentName, Principal, SecretBytes, SecretName};

use super::Context;
use crate::{exit, mask};

/// `vault run`.
#[derive(clap::Args, Debug)]
pub struct RunArgs {
    /// The agent whose secrets the command gets (not needed with VAULT_ADDR:
    /// the agent is the one whose key is in VAULT_AGENT_KEY).
    #[arg(long)]
    agent: Option<String>,
    /// Start the child from an empty environment instead of this one's.
    #[arg(long)]
    no_inherit: bool,
    /// Pass this VAULT_* variable to the child (repeatable). By default the
    /// child gets none of them: VAULT_PASSPHRASE_FILE and VAULT_HOME would let
    /// it read every agent's secrets.
    #[arg(long, value_name = "NAME")]
    pass_env: Vec<String>,
    /// Mask secret values in the child's output (default: when output is not a terminal).
    #[arg(long, overrides_with = "no_mask")]
    mask: bool,
    /// Never mask the child's output.
    #[arg(long)]
    no_mask: bool,
    /// The agent's own env file, checked for variables that would shadow the
    /// injected ones (Hermes loads its .env over the environment).
    #[arg(long, value_name = "FILE")]
    env_file: Option<PathBuf>,
    /// Keep running: when the agent's secrets rotate, restart the child with
    /// the new values (or send it --reload-signal). Keeps the vault unlocked.
    #[arg(long)]
    watch: bool,
    /// With --watch: send this signal (e.g. HUP) instead of restarting.
    #[arg(long, value_name = "SIGNAL", requires = "watch")]
    reload_signal: Option<String>,
    /// With --watch: how often to check for rotations, in milliseconds.
    #[arg(long, default_value_t = 1000, hide = true)]
    poll_ms: u64,
    /// Send the child's HTTPS through the running server's egress broker: it
    /// gets proxy and CA settings and placeholders, never a brokered secret's value.
    #[arg(long, conflicts_with_all = ["watch", "no_inherit"])]
    broker: bool,
    /// With --broker: the broker's address (default: $VAULT_BROKER).
    #[arg(long, value_name = "URL", requires = "broker")]
    broker_addr: Option<String>,
    /// The command and its arguments.
    #[arg(last = true, required = true, value_name = "CMD")]
    command: Vec<String>,
}

/// `vault env`.
#[derive(clap::Args, Debug)]
pub struct EnvArgs {
    /// The agent whose secrets to print (not needed with VAULT_ADDR).
    #[arg(long)]
    agent: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = EnvFormat::Dotenv)]
    format: EnvFormat,
    /// Write to FILE (atomically, mode 0600) instead of stdout. With --broker,
    /// FILE is also registered as a target, so key rotation rewrites it.
    #[arg(long, value_name = "FILE")]
    write: Option<PathBuf>,
    /// Print the settings `vault run --broker` gives its child (proxy with a
    /// key of its own, CA paths, NO_PROXY, placeholders), never a brokered value.
    #[arg(long)]
    broker: bool,
    /// With --broker: the broker's address (default: $VAULT_BROKER).
    #[arg(long, value_name = "URL", requires = "broker")]
    broker_addr: Option<String>,
}

/// How `vault env` prints.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum EnvFormat {
    /// NAME=value lines for python-dotenv, Hermes, Node dotenv, Compose.
    Dotenv,
    /// {"NAME": "value"}.
    Json,
    /// export NAME='value' lines for `eval` in a POSIX shell.
    Shell,
}

pub fn run(ctx: &Context, args: RunArgs) -> Result<()> {
    if args.broker && args.agent.is_none() {
        if let Some(remote) = crate::remote::Remote::from_env(None)? {
            // Remote mode: the child holds an `egress` token, revoked at exit.
            let remote = crate::broker::prepare_remote(remote, args.broker_addr.as_deref(), None)?;
            remote.child.apply_to_process();
            let spawned = spawn_with_env(&args, &remote.env);
            remote.revoke();
            return Err(crate::exit::with_code(spawned?));
        }
    }
    if args.broker {
        let agent = AgentName::parse(args.agent.as_deref().ok_or_else(|| {
            exit::usage("--broker needs --agent, or VAULT_ADDR and VAULT_AGENT_KEY (remote mode)")
        })?)?;
        let (env, child, run_key) =
            crate::broker::prepare_run(ctx, &agent, args.broker_addr.as_deref())?;
        child.apply_to_process();
        let spawned = spawn_with_env(&args, &env);
        // The child is gone (or never started): its key goes with it.
        run_key.revoke();
        drop(child); // the private CA directory goes with the run
        return Err(exit::with_code(spawned?));
    }
    if let Some(remote) = crate::remote::Remote::from_env(None)? {
        let env = crate::remote::remote_env(&remote)?;
        let code = spawn_with_env(&args, &env)?;
        return Err(exit::with_code(code));
    }
    let agent = AgentName::parse(args.agent.as_deref().ok_or_else(|| {
        exit::usage("--agent is required (or set VAULT_ADDR and VAULT_AGENT_KEY)")
    })?)?;
    if args.watch {
        // Watching keeps the vault (and its data key) open for the child's life.
        let vault = ctx.unlock()?;
        let code = watch(&args, &vault, &agent)?;
        drop(vault);
        return Err(exit::with_code(code));
    }
    let env = {
        let vault = ctx.unlock()?;
        vault.env_of(&Principal::Operator, &agent)?
        // the vault (and its data key) is dropped here, before the child starts
    };
    let code = spawn_with_env(&args, &env)?;
    Err(exit::with_code(code))
}

pub fn env(ctx: &Context, args: EnvArgs) -> Result<()> {
    if args.broker && args.agent.is_none() {
        if let Some(remote) = crate::remote::Remote::from_env(None)? {
            let format = args.format;
            let (text, expires_at) = crate::broker::remote_env_settings(
                remote,
                args.broker_addr.as_deref(),
                &ctx.home.join("broker"),
                |env| render(env, format),
            )?;
            let until = humantime::format_rfc3339_seconds(
                std::time::UNIX_EPOCH + std::time::Duration::from_secs(expires_at),
            );
            match &args.write {
                Some(path) => {
                    envfile::write_private_atomic(path, text.as_bytes())?;
                    eprintln!(
                        "wrote the broker settings to {}; its egress token expires at {until} \
                         (run this again to renew it)",
                        path.display()
                    );
                }
                None => {
                    use std::io::Write;
                    eprintln!("the egress token in these settings expires at {until}");
                    let mut out = std::io::stdout().lock();
                    out.write_all(text.as_bytes())?;
                    out.flush()?;
                }
            }
            return Ok(());
        }
    }
    if args.broker {
        let agent = AgentName::parse(args.agent.as_deref().ok_or_else(|| {
            exit::usage("--broker needs --agent, or VAULT_ADDR and VAULT_AGENT_KEY (remote mode)")
        })?)?;
        let format = args.format;
        let text = crate::broker::env_settings(
            ctx,
            &agent,
            args.broker_addr.as_deref(),
            args.write.as_deref(),
            |env| render(env, format),
        )?;
        match &args.write {
            Some(path) => eprintln!(
                "wrote the broker settings for {agent} to {} and registered it as a target",
                path.display()
            ),
            None => {
                use std::io::Write;
                let mut out = std::io::stdout().lock();
                out.write_all(text.as_bytes())?;
                out.flush()?;
            }
        }
        return Ok(());
    }
    let (agent, env) = match crate::remote::Remote::from_env(None)? {
        Some(remote) => ("this agent".to_owned(), crate::remote::remote_env(&remote)?),
        None => {
            let agent = AgentName::parse(args.agent.as_deref().ok_or_else(|| {
                exit::usage("--agent is required (or set VAULT_ADDR and VAULT_AGENT_KEY)")
            })?)?;
            let vault = ctx.unlock()?;
            let env = vault.env_of(&Principal::Operator, &agent)?;
            (agent.to_string(), env)
        }
    };
    let text = zeroize::Zeroizing::new(render(&env, args.format)?);
    match &args.write {
        Some(path) => {
            envfile::write_private_atomic(path, text.as_bytes())?;
            eprintln!(
                "wrote {} variable(s) for {agent} to {}",
                env.len(),
                path.display()
            );
        }
        None => {
            use std::io::Write;
            let mut out = std::io::stdout().lock();
            out.write_all(text.as_bytes())?;
            out.flush()?;
        }
    }
    Ok(())
}

/// The env as text in `format`. Values are valid UTF-8 (`set` refuses others).
pub fn render(env: &[(SecretName, SecretBytes)], format: EnvFormat) -> Result<String> {
    let mut out = String::new();
    match format {
        EnvFormat::Json => {
            let map: BTreeMap<&str, &str> = env
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str().unwrap_or_default()))
                .collect();
            out = serde_json::to_string(&serde_json::json!({ "env": map }))?;
            out.push('\n');
        }
        EnvFormat::Dotenv => {
            for (k, v) in env {
                let value = envfile::dotenv_value(v.as_str().unwrap_or_default())
                    .with_context(|| format!("variable {k}"))?;
                out.push_str(&format!("{k}={value}\n"));
            }
        }
        EnvFormat::Shell => {
            for (k, v) in env {
                out.push_str(&format!(
                    "export {k}={}\n",
                    envfile::shell_value(v.as_str().unwrap_or_default())
                ));
            }
        }
    }
    Ok(out)
}

/// Runs the child with `env` added, masking and forwarding signals; returns
/// the exit code to pass on (128 + N when the child died of signal N).
pub fn spawn_with_env(args: &RunArgs, env: &[(SecretName, SecretBytes)]) -> Result<i32> {
    let forwarder = Forwarder::install()?;
    let mut running = Running::start(args, env, &forwarder)?;
    let status = running.wait()?;
    forwarder.close();
    Ok(exit_code(status))
}

/// `vault run --watch`: keeps the vault open, polls the agent's secret
/// versions, and on a change restarts the child with the new values (or
/// sends it `--reload-signal`). Returns when the child exits on its own.
fn watch(args: &RunArgs, vault: &vault_core::Vault, agent: &AgentName) -> Result<i32> {
    let poll = std::time::Duration::from_millis(args.poll_ms.max(50));
    let forwarder = Forwarder::install()?;
    let mut versions = vault.env_versions(agent)?;
    let mut running = Running::start(
        args,
        &vault.env_of(&Principal::Operator, agent)?,
        &forwarder,
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
        match args.reload_signal.as_deref() {
            Some(name) => {
                let sig: Signal = name
                    .parse()
                    .or_else(|_| format!("SIG{name}").parse())
                    .map_err(|_| {
                        exit::usage(format!("--reload-signal {name:?} is not a signal name"))
                    })?;
                eprintln!("vault: the secrets of {agent} changed; sending {sig} to the child");
                let _ = kill(running.pid, sig);
            }
            None => {
                eprintln!("vault: the secrets of {agent} changed; restarting the child");
                // From here until the new child's pid is known, hold signals:
                // the new child can start (and look ready) before `spawn`
                // returns, and a signal sent then belongs to it, not the old one.
                forwarder.unfollow();
                running.stop(std::time::Duration::from_secs(10))?;
                running = Running::start(
                    args,
                    &vault.env_of(&Principal::Operator, agent)?,
                    &forwarder,
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
        args: &RunArgs,
        env: &[(SecretName, SecretBytes)],
        forwarder: &Forwarder,
    ) -> Result<Running> {
        let mut cmd = Command::new(&args.command[0]);
        cmd.args(&args.command[1..]);
        // Built from scratch: the vault's own variables (credentials, paths)
        // never reach the child unless named with --pass-env.
        cmd.env_clear();
        if args.no_inherit {
            for name in &args.pass_env {
                if let Some(v) = std::env::var_os(name) {
                    cmd.env(name, v);
                }
            }
        } else {
            cmd.envs(vault_core::process::inherited_env(&args.pass_env));
        }
        for (k, v) in env {
            cmd.env(k.as_str(), v.as_str().unwrap_or_default());
        }
        warn_shadowed(args, env);
        let mask = if args.no_mask {
            false
        } else {
            args.mask || !std::io::stdout().is_terminal() || !std::io::stderr().is_terminal()
        };
        let masker = || mask::Masker::new(env.iter().map(|(_, v)| v.expose_secret()));
        let masking = mask && masker().is_some();
        if masking {
            cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        }
        let mut child = cmd.spawn().map_err(|e| {
            // as shells and `op run` answer: 127 not found, 126 not executable
            let code = match e.kind() {
                std::io::ErrorKind::NotFound => exit::COMMAND_NOT_FOUND,
                std::io::ErrorKind::PermissionDenied => exit::COMMAND_NOT_EXECUTABLE,
                _ => exit::USAGE,
            };
            eprintln!("vault: error: cannot run {:?}: {e}", args.command[0]);
            exit::with_code(code)
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
    fn stop(&mut self, grace: std::time::Duration) -> Result<()> {
        let _ = kill(self.pid, Signal::SIGTERM);
        let start = std::time::Instant::now();
        while self.try_wait()?.is_none() {
            if start.elapsed() > grace {
                let _ = self.child.kill();
                self.wait()?;
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
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
fn warn_shadowed(args: &RunArgs, env: &[(SecretName, SecretBytes)]) {
    let mut files: Vec<PathBuf> = args.env_file.iter().cloned().collect();
    if !args.no_inherit {
        if let Some(home) = std::env::var_os("HERMES_HOME") {
            files.push(Path::new(&home).join(".env"));
        }
    }
    for file in files {
        let Ok(defined) = envfile::defined_names(&file) else {
            continue;
        };
        for (k, _) in env {
            if defined.iter().any(|d| d == k.as_str()) {
                eprintln!(
                    "vault: warning: {} defines {k}, which the agent may load over the injected value; \
                     remove it there or write it with `vault env --write`",
                    file.display()
                );
            }
        }
    }
}
