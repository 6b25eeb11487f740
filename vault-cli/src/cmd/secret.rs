//! `vault set|get|ls|rm|history`: the secrets themselves.

use std::io::Write;

use anyhow::Result;
use vault_client::{Remote, AGENT_KEY_VAR};
use vault_core::view::{SecretView, VersionView};
use vault_core::{validate_value, AgentName, Principal, SecretPath};

use super::Context;

const OP: &Principal = &Principal::Operator;

/// `vault set AGENT/NAME`.
#[derive(clap::Args, Debug)]
pub struct SetArgs {
    /// AGENT/NAME, e.g. hermes-marketing/GITHUB_TOKEN. The value is read from
    /// stdin (one trailing newline removed) or a no-echo prompt.
    path: String,
}

/// `vault get AGENT/NAME`.
#[derive(clap::Args, Debug)]
pub struct GetArgs {
    /// AGENT/NAME whose value to print (with VAULT_ADDR: NAME or AGENT/NAME, as the agent).
    path: String,
    /// Print this stored version (see `vault history`), not the current one; local only.
    #[arg(long, value_name = "N")]
    version: Option<i64>,
}

/// `vault ls [AGENT]`.
#[derive(clap::Args, Debug)]
pub struct LsArgs {
    /// Only this agent's secrets.
    agent: Option<String>,
}

/// `vault rm AGENT/NAME`.
#[derive(clap::Args, Debug)]
pub struct RmArgs {
    /// AGENT/NAME to delete with all its versions.
    path: String,
}

/// `vault history AGENT/NAME`.
#[derive(clap::Args, Debug)]
pub struct HistoryArgs {
    /// AGENT/NAME whose versions to list.
    path: String,
}

pub fn set(ctx: &Context, args: SetArgs) -> Result<()> {
    let path = SecretPath::parse(&args.path)?;
    // Read and check the value before unlocking: a bad value costs no KDF run,
    // and the vault is never touched.
    let value = vault_prompt::value(&format!("Value for {path}: "))?;
    validate_value(&value)?;
    let mut vault = ctx.unlock()?;
    let version = vault.set_secret(OP, &path, &value)?;
    if let Some(why) = vault_core::known::unscannable(value.expose_secret()) {
        eprintln!("vault: warning: {path} will not be found if it leaks: {why}");
    }
    let outside = vault_core::doctor::outside_policy(&vault, &path)?;
    outside.iter().for_each(|w| eprintln!("{w}"));
    super::warn_dek_usage(&vault);
    if ctx.json {
        let body = serde_json::json!({"name": path.to_string(), "version": version,
            "outside_policy": outside.is_some()});
        ctx.print_json(&body)?;
    } else {
        eprintln!("stored {path} version {version}");
    }
    Ok(())
}

pub fn get(ctx: &Context, args: GetArgs) -> Result<()> {
    if let Some(remote) = Remote::from_env(AGENT_KEY_VAR, None)? {
        if args.version.is_some() {
            let why = "--version reads the local vault as the operator; unset VAULT_ADDR";
            return Err(crate::exit::usage(why));
        }
        let (value, version) = remote.get(&args.path)?;
        let mut out = std::io::stdout().lock();
        if ctx.json {
            let body = serde_json::json!({"name": args.path, "version": version, "value": value.expose_secret()});
            writeln!(out, "{body}")?;
        } else {
            writeln!(out, "{}", value.expose_secret())?;
        }
        return Ok(());
    }
    let path = SecretPath::parse(&args.path)?;
    let vault = ctx.unlock()?;
    let (value, version) = match args.version {
        Some(n) => (vault.get_secret_version(OP, &path, n)?, n),
        None => vault.get_secret(OP, &path)?,
    };
    let mut out = std::io::stdout().lock();
    if ctx.json {
        // The value is valid UTF-8: `set` refuses anything else.
        let text = value.as_str().unwrap_or_default();
        let body = serde_json::json!({"name": path.to_string(), "version": version, "value": text});
        writeln!(out, "{body}")?;
    } else {
        out.write_all(value.expose_secret())?;
        out.write_all(b"\n")?;
    }
    out.flush()?;
    Ok(())
}

pub fn ls(ctx: &Context, args: LsArgs) -> Result<()> {
    let agent = args.agent.as_deref().map(AgentName::parse).transpose()?;
    let vault = ctx.unlock()?;
    let list = vault.list_secrets(OP, agent.as_ref())?;
    let views: Vec<SecretView> = list.iter().map(SecretView::from).collect();
    if ctx.json {
        return ctx.print_json(&serde_json::json!({ "secrets": views }));
    }
    if list.is_empty() {
        // an empty listing says what would fill it (issue 19); stdout stays empty
        let of = agent
            .as_ref()
            .map(|a| format!(" for {a}"))
            .unwrap_or_default();
        eprintln!(
            "no secrets{of}: store one with `vault set AGENT/NAME` (the value on stdin or at \
             the prompt), or a dotenv file with `vault import --agent AGENT FILE`"
        );
    }
    let mut out = std::io::stdout().lock();
    views.iter().try_for_each(|v| writeln!(out, "{v}"))?;
    Ok(())
}

pub fn rm(ctx: &Context, args: RmArgs) -> Result<()> {
    let path = SecretPath::parse(&args.path)?;
    let mut vault = ctx.unlock()?;
    vault.remove_secret(OP, &path)?;
    if ctx.json {
        ctx.print_json(&serde_json::json!({"removed": path.to_string()}))?;
    } else {
        eprintln!("removed {path}");
    }
    Ok(())
}

pub fn history(ctx: &Context, args: HistoryArgs) -> Result<()> {
    let path = SecretPath::parse(&args.path)?;
    let vault = ctx.unlock()?;
    let versions = vault.history(OP, &path)?;
    let views: Vec<VersionView> = versions.iter().map(VersionView::from).collect();
    if ctx.json {
        return ctx.print_json(&serde_json::json!({"name": path.to_string(), "versions": views}));
    }
    let mut out = std::io::stdout().lock();
    views.iter().try_for_each(|v| writeln!(out, "{v}"))?;
    Ok(())
}
