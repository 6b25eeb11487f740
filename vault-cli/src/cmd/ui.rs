//! `vault ui`: a one-time sign-in URL for the web console of a running
//! `vault server`, and `vault ui logout --all`: flags and printing over
//! [`vault_client::console`]. The URL is printed on stdout, never passed as
//! an argument.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Result;
use vault_client::{console, Remote};

use super::Context;
use crate::exit;

/// `vault ui`.
#[derive(clap::Args, Debug)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct UiArgs {
    #[command(subcommand)]
    command: Option<UiCommand>,
    /// The admin token file `vault server --admin-token-file` wrote.
    #[arg(long, value_name = "FILE", required = true)]
    admin_token_file: Option<PathBuf>,
    /// Print the URL only; do not open a browser.
    #[arg(long)]
    no_open: bool,
}

/// `vault ui logout`.
#[derive(clap::Subcommand, Debug)]
pub enum UiCommand {
    /// End console sessions: `--all` signs every browser out.
    Logout {
        /// Every session (a single browser signs out with its Sign out button).
        #[arg(long, required = true)]
        all: bool,
        /// The admin token file `vault server --admin-token-file` wrote.
        #[arg(long, value_name = "FILE")]
        admin_token_file: PathBuf,
    },
}

pub fn run(ctx: &Context, args: UiArgs) -> Result<()> {
    if let Some(UiCommand::Logout {
        all: _,
        admin_token_file,
    }) = args.command
    {
        let remote = Remote::admin(admin_token(&admin_token_file)?)?;
        let ended = console::logout_all(&remote)?;
        if ctx.json {
            ctx.print_json(&serde_json::json!({ "ended": ended }))?;
        } else {
            eprintln!("vault: ended {ended} console session(s)");
        }
        return Ok(());
    }
    let Some(file) = args.admin_token_file else {
        return Err(exit::usage("vault ui needs --admin-token-file FILE"));
    };
    let remote = Remote::admin(admin_token(&file)?)?;
    let signin = console::sign_in(&remote)?;
    let (url, secs) = (signin.url, signin.expires_in_seconds);
    if ctx.json {
        ctx.print_json(&serde_json::json!({ "url": url.as_str(), "expires_in_seconds": secs }))?;
    } else {
        let mut out = std::io::stdout().lock();
        writeln!(out, "{}", url.as_str())?;
        out.flush()?;
    }
    let opened = !args.no_open && console::open_in_browser(&ctx.home, &url);
    if opened {
        eprintln!(
            "vault: opened the console in your browser; the URL works once, for {} minutes",
            secs / 60
        );
    } else {
        eprintln!(
            "vault: open that URL in a browser on this machine; it works once, for {} minutes",
            secs / 60
        );
    }
    Ok(())
}

fn admin_token(path: &Path) -> Result<vault_core::SecretString> {
    Ok(vault_client::credential_from(
        "VAULT_ADMIN_TOKEN",
        Some(path),
        "admin token",
    )?)
}
