//! `vault run` and `vault env`: exactly one agent's secrets, into a child
//! process's environment or out as dotenv/JSON/shell text. The child, its
//! masking and signals, and brokered runs are [`vault_run`]'s; here the
//! flags, which mode applies (local, remote, brokered) and what is printed.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Result;
use vault_core::{envfile, Principal, SecretBytes, SecretName};
use vault_run::child::{self, Masking, Notice, Spec};
use vault_run::{broker, render::Format, source::Source};

use super::Context;
use crate::exit;

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
    /// Output format [default: dotenv, or json with --json].
    #[arg(long, value_enum)]
    format: Option<EnvFormat>,
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
    /// {"env": {"NAME": "value"}}.
    Json,
    /// export NAME='value' lines for `eval` in a POSIX shell.
    Shell,
}

pub fn run(ctx: &Context, args: RunArgs) -> Result<()> {
    let mut spec = spec(&args);
    let addr = args.broker_addr.as_deref();
    let code = match Source::choose(args.agent.as_deref(), args.broker, addr)? {
        Source::RemoteBroker(remote) => {
            // Remote mode: the child holds an `egress` token, revoked at exit.
            let remote = broker::prepare_remote(remote, addr, None)?;
            remote.child.apply_to_process();
            let spawned = child::spawn_with_env(&spec, &remote.env, &mut say);
            if let Err(e) = remote.revoke() {
                eprintln!(
                    "vault: could not revoke the run's egress token ({e}); it expires on its own"
                );
            }
            spawned?
        }
        Source::LocalBroker { agent, addr } => {
            let (env, child, run_key) = broker::prepare_run(ctx.unlock()?, &agent, &addr)?;
            child.apply_to_process();
            let spawned = child::spawn_with_env(&spec, &env, &mut say);
            // The child is gone (or never started): its key goes with it.
            let (name, key_id) = (run_key.key().0.to_owned(), run_key.key().1.to_owned());
            if let Err(e) = run_key.revoke() {
                eprintln!(
                    "vault: could not revoke the run's key {name} ({key_id}): {e}; revoke it with `vault keys revoke {key_id}`"
                );
            }
            drop(child); // the private CA directory goes with the run
            spawned?
        }
        Source::Remote(remote) => child::spawn_with_env(&spec, &remote.env_vars()?, &mut say)?,
        Source::Local(agent) if args.watch => {
            // Watching keeps the vault (and its data key) open for the child's life.
            let vault = ctx.unlock()?;
            spec.registered = child::registered_env_files(&vault, &agent)?;
            let how = child::Watch {
                poll: std::time::Duration::from_millis(args.poll_ms),
                reload_signal: args.reload_signal.clone(),
            };
            child::watch(&spec, &how, &vault, &agent, &mut say)?
        }
        Source::Local(agent) => {
            let env = {
                let vault = ctx.unlock()?;
                spec.registered = child::registered_env_files(&vault, &agent)?;
                vault.env_of(&Principal::Operator, &agent)?
                // the vault (and its data key) is dropped here, before the child starts
            };
            child::spawn_with_env(&spec, &env, &mut say)?
        }
    };
    Err(exit::with_code(code))
}

/// How the child is started, from the flags.
fn spec(args: &RunArgs) -> Spec {
    Spec {
        command: args.command.clone(),
        no_inherit: args.no_inherit,
        pass_env: args.pass_env.clone(),
        masking: if args.no_mask {
            Masking::Never
        } else if args.mask {
            Masking::Always
        } else {
            Masking::Auto
        },
        env_file: args.env_file.clone(),
        registered: Vec::new(),
    }
}

/// Says what the running child's supervisor noticed.
fn say(notice: Notice<'_>) {
    eprintln!("vault: {notice}");
}

pub fn env(ctx: &Context, args: EnvArgs) -> Result<()> {
    let json = [EnvFormat::Dotenv, EnvFormat::Json][usize::from(ctx.json)];
    let format = match args.format.unwrap_or(json) {
        EnvFormat::Dotenv => Format::Dotenv,
        EnvFormat::Json => Format::Json,
        EnvFormat::Shell => Format::Shell,
    };
    let (addr, to) = (args.broker_addr.as_deref(), args.write.as_deref());
    let (agent, env): (String, Vec<(SecretName, SecretBytes)>) =
        match Source::choose(args.agent.as_deref(), args.broker, addr)? {
            Source::RemoteBroker(remote) => {
                let home = ctx.home.join("broker");
                let (text, expires_at) = broker::remote_env_settings(remote, addr, &home, format)?;
                let until = humantime::format_rfc3339_seconds(
                    std::time::UNIX_EPOCH + std::time::Duration::from_secs(expires_at),
                );
                write_out(&text, to)?;
                match to {
                    Some(path) => eprintln!(
                        "wrote the broker settings to {}; its egress token expires at {until} \
                         (run this again to renew it)",
                        path.display()
                    ),
                    None => eprintln!("the egress token in these settings expires at {until}"),
                }
                return Ok(());
            }
            Source::LocalBroker { agent, addr } => {
                let mut vault = ctx.unlock()?;
                let settings =
                    broker::env_settings(&mut vault, &ctx.home, &agent, &addr, to, format)?;
                if let Some(old) = &settings.replaced {
                    let (name, id) = (&old.name, &old.key_id);
                    eprintln!("revoked the previous broker key {name} ({id})");
                }
                // with a file, env_settings wrote and registered it
                let text = settings.text?;
                match to {
                    Some(path) => eprintln!(
                        "wrote the broker settings for {agent} to {} and registered it as a target",
                        path.display()
                    ),
                    None => write_out(&text, None)?,
                }
                return Ok(());
            }
            Source::Remote(remote) => ("this agent".to_owned(), remote.env_vars()?),
            Source::Local(agent) => {
                let vault = ctx.unlock()?;
                let env = vault.env_of(&Principal::Operator, &agent)?;
                (agent.to_string(), env)
            }
        };
    let text = zeroize::Zeroizing::new(vault_run::render::render(&env, format)?);
    write_out(&text, to)?;
    if let Some(path) = to {
        let (n, path) = (env.len(), path.display());
        eprintln!("wrote {n} variable(s) for {agent} to {path}");
    }
    Ok(())
}

/// Writes env text to `to` (atomically, mode 0600), or to stdout, flushed.
fn write_out(text: &str, to: Option<&std::path::Path>) -> Result<()> {
    if let Some(path) = to {
        return Ok(envfile::write_private_atomic(path, text.as_bytes())?);
    }
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())?;
    out.flush()?;
    Ok(())
}
