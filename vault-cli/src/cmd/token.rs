//! `vault token`: turn an agent's named key (or a token) into a short-lived,
//! scoped token; check or revoke tokens. Credentials come from the
//! environment, a file or stdin, never from arguments.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Result;
use vault_client::{credential_from, Remote, AGENT_KEY_VAR};
use vault_core::view::{TokenView, TtlCapped};
use vault_core::{Principal, Scope, TokenRequest};

use super::Context;

/// `vault token`.
#[derive(clap::Args, Debug)]
#[command(args_conflicts_with_subcommands = true)]
pub struct Args {
    #[command(subcommand)]
    action: Option<Action>,
    #[command(flatten)]
    mint: MintArgs,
}

/// Minting options.
#[derive(clap::Args, Debug)]
pub struct MintArgs {
    /// A scope the token carries (repeatable): secrets:read, env:read,
    /// secret:NAME, secret:AGENT/NAME. Default: all the policy allows.
    #[arg(long = "scope", value_name = "SCOPE")]
    scopes: Vec<String>,
    /// Lifetime (s, m or h); default 15m, capped by the agent's policy.
    #[arg(long, value_parser = super::parse_duration_flag)]
    ttl: Option<Duration>,
    /// Read the named key from FILE (default: the VAULT_AGENT_KEY variable).
    #[arg(long, value_name = "FILE")]
    key_file: Option<PathBuf>,
    /// Attenuate: mint from the token in VAULT_TOKEN (or --token-file) instead
    /// of a key. The result is never wider or longer than its parent.
    #[arg(long)]
    from_token: bool,
    /// Read the parent token from FILE (with --from-token).
    #[arg(long, value_name = "FILE")]
    token_file: Option<PathBuf>,
}

#[derive(clap::Subcommand, Debug)]
enum Action {
    /// Check a token read from stdin; print its claims (exit 3 if invalid).
    Verify,
    /// Revoke the token read from stdin (and every token attenuated from it).
    Revoke,
}

pub fn run(ctx: &Context, args: Args) -> Result<()> {
    match args.action {
        Some(Action::Verify) => verify(ctx),
        Some(Action::Revoke) => revoke(ctx),
        None => mint(ctx, args.mint),
    }
}

fn mint(ctx: &Context, args: MintArgs) -> Result<()> {
    let request = TokenRequest {
        scopes: if args.scopes.is_empty() {
            None
        } else {
            Some(
                args.scopes
                    .iter()
                    .map(|s| Scope::parse(s))
                    .collect::<vault_core::Result<_>>()?,
            )
        },
        ttl: args.ttl,
    };
    // Remote mode: the server mints from the key, or attenuates the token (--from-token).
    let (var, file) = match args.from_token {
        true => ("VAULT_TOKEN", args.token_file.as_deref()),
        false => (AGENT_KEY_VAR, args.key_file.as_deref()),
    };
    let (token, mut body, view) = if let Some(remote) = Remote::from_env(var, file)? {
        let ttl = request.ttl.map(|t| t.as_secs());
        let scopes = request
            .scopes
            .as_ref()
            .map(|s| s.iter().map(ToString::to_string).collect());
        remote
            .mint(scopes, ttl)
            .map(|(token, body)| (token, body, None))?
    } else {
        let minted = if args.from_token {
            let parent = credential_from("VAULT_TOKEN", args.token_file.as_deref(), "token")?;
            let mut vault = ctx.unlock()?;
            vault.attenuate_token(parent.expose_secret(), &request)?
        } else {
            let key = credential_from("VAULT_AGENT_KEY", args.key_file.as_deref(), "named key")?;
            // Check the key's shape before asking for a passphrase.
            vault_core::NamedKey::parse(key.expose_secret())?;
            let mut vault = ctx.unlock()?;
            let info = vault.authenticate_key(key.expose_secret())?;
            vault.mint_token(&info, &request)?
        };
        let view = TokenView::from(&minted.claims);
        (minted.token, serde_json::to_value(&view)?, Some(view))
    };
    if let Some(note) = TtlCapped::mark(request.ttl, &mut body) {
        eprintln!("{note}");
    }
    if ctx.json {
        body["token"] = serde_json::Value::String(token.expose_secret().to_owned());
        return ctx.print_json(&body);
    }
    println!("{}", token.expose_secret());
    if let Some(view) = view {
        eprintln!("{}", vault_present::token::minted_line(&view));
    }
    Ok(())
}

fn verify(ctx: &Context) -> Result<()> {
    let token = vault_prompt::stdin_credential("token")?;
    let vault = ctx.unlock()?;
    let view = TokenView::from(&vault.verify_token(token.expose_secret())?);
    if ctx.json {
        ctx.print_json(&serde_json::to_value(&view)?)?;
    } else {
        println!("{}", vault_present::token::verified_line(&view));
    }
    Ok(())
}

fn revoke(ctx: &Context) -> Result<()> {
    let token = vault_prompt::stdin_credential("token")?;
    let mut vault = ctx.unlock()?;
    let claims = vault.verify_token(token.expose_secret())?;
    vault.revoke_token(&Principal::Operator, &claims)?;
    if ctx.json {
        ctx.print_json(&serde_json::json!({"revoked": claims.token_id}))?;
    } else {
        eprintln!("revoked token {}", claims.token_id);
    }
    Ok(())
}
