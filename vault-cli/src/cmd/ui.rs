//! `vault ui`: a one-time sign-in URL for the web console of a running
//! `vault server` (like Jupyter's token URL), and `vault ui logout --all`.
//! Both are admin calls with the token the server wrote; the server holds
//! the console, this only asks it.
//!
//! The URL holds a one-time code, so it is printed on stdout and never
//! passed as an argument: to open a browser, a 0600 file that redirects to
//! it is written in the vault directory and the browser is given the
//! file's path (what Jupyter does for the same reason).

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use anyhow::Result;

use super::Context;
use crate::exit;
use crate::remote::Remote;

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

/// The file that sends a browser to the sign-in URL.
const REDIRECT_FILE: &str = "ui-login.html";

pub fn run(ctx: &Context, args: UiArgs) -> Result<()> {
    if let Some(UiCommand::Logout {
        all: _,
        admin_token_file,
    }) = args.command
    {
        let remote = Remote::admin(admin_token(&admin_token_file)?)?;
        let reply = remote.admin_post("/v1/admin/console/logout-all")?;
        let ended = reply["ended"].as_u64().unwrap_or(0);
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
    let Some(base) = remote.browser_base().map(str::to_owned) else {
        return Err(exit::usage(
            "the console is served on the server's TCP listener; a browser cannot open a Unix \
             socket: set VAULT_ADDR to the server's http(s):// address",
        ));
    };
    let reply = remote.admin_post("/v1/admin/console/login")?;
    let path = reply["path"].as_str().unwrap_or_default();
    let secs = reply["expires_in_seconds"].as_u64().unwrap_or(0);
    if !path.starts_with("/ui/login?code=") {
        return Err(exit::usage(
            "the server at VAULT_ADDR did not answer with a console sign-in path (is it a vault server with the console?)",
        ));
    }
    let url = zeroize::Zeroizing::new(format!("{base}{path}"));
    if ctx.json {
        ctx.print_json(&serde_json::json!({ "url": url.as_str(), "expires_in_seconds": secs }))?;
    } else {
        let mut out = std::io::stdout().lock();
        writeln!(out, "{}", url.as_str())?;
        out.flush()?;
    }
    let opened = !args.no_open && open_browser(&ctx.home, &url);
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
    crate::input::credential_from("VAULT_ADMIN_TOKEN", Some(path), "admin token")
}

/// A browser to open, if this session has one: `$BROWSER`, or the desktop's
/// opener when a display is there (macOS always has one).
fn browser() -> Option<String> {
    if let Some(b) = std::env::var("BROWSER")
        .ok()
        .filter(|b| !b.trim().is_empty())
    {
        return Some(b);
    }
    if cfg!(target_os = "macos") {
        return Some("open".into());
    }
    let display = ["DISPLAY", "WAYLAND_DISPLAY"]
        .iter()
        .any(|v| std::env::var_os(v).is_some_and(|d| !d.is_empty()));
    let on_path = std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join("xdg-open").is_file()));
    (display && on_path).then(|| "xdg-open".into())
}

/// Writes the redirect file and starts the browser on it; whether one started.
fn open_browser(home: &Path, url: &str) -> bool {
    let Some(browser) = browser() else {
        return false;
    };
    let dir = if home.is_dir() {
        home.to_path_buf()
    } else {
        std::env::temp_dir()
    };
    let file = dir.join(REDIRECT_FILE);
    let html = zeroize::Zeroizing::new(format!(
        "<!DOCTYPE html><meta charset=\"utf-8\"><meta name=\"referrer\" content=\"no-referrer\">\
         <meta http-equiv=\"refresh\" content=\"0; url={url}\"><title>vault console</title>\
         <p><a href=\"{url}\">Open the vault console</a></p>\n"
    ));
    let _ = std::fs::remove_file(&file);
    let written = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&file)
        .and_then(|mut f| f.write_all(html.as_bytes()));
    if written.is_err() {
        return false;
    }
    // $BROWSER may be a command with arguments ("firefox --new-window").
    let mut parts = browser.split_whitespace();
    let Some(program) = parts.next() else {
        return false;
    };
    std::process::Command::new(program)
        .args(parts)
        .arg(&file)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .is_ok()
}
