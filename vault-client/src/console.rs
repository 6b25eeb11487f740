//! Signing a person into the server's web console (`vault ui`): a one-time
//! sign-in URL asked of the server with the admin token (like Jupyter's
//! token URL), and every session ended at once.
//!
//! The URL holds a one-time code, so it is never passed to another program
//! as an argument: to open a browser, a 0600 file that redirects to it is
//! written in the vault directory and the browser is given the file's path
//! (what Jupyter does for the same reason).

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use zeroize::Zeroizing;

use crate::error::{invalid, Result};
use crate::Remote;

/// The file that sends a browser to the sign-in URL.
const REDIRECT_FILE: &str = "ui-login.html";

/// A one-time sign-in URL and how long it works.
pub struct SignIn {
    /// The URL, code included: show it to the person, never put it in argv.
    pub url: Zeroizing<String>,
    /// Seconds until the code expires.
    pub expires_in_seconds: u64,
}

/// Asks the server (`remote` holds the admin token) for a sign-in URL.
///
/// # Errors
/// The server is on a Unix socket (a browser cannot open one), is not a
/// vault server with the console, or refused the token.
pub fn sign_in(remote: &Remote) -> Result<SignIn> {
    let Some(base) = remote.browser_base().map(str::to_owned) else {
        return Err(invalid(
            "the console is served on the server's TCP listener; a browser cannot open a Unix \
             socket: set VAULT_ADDR to the server's http(s):// address",
        ));
    };
    let reply = remote.admin_post("/v1/admin/console/login")?;
    let path = reply["path"].as_str().unwrap_or_default();
    let secs = reply["expires_in_seconds"].as_u64().unwrap_or(0);
    if !path.starts_with("/ui/login?code=") {
        return Err(invalid(
            "the server at VAULT_ADDR did not answer with a console sign-in path (is it a vault server with the console?)",
        ));
    }
    Ok(SignIn {
        url: Zeroizing::new(format!("{base}{path}")),
        expires_in_seconds: secs,
    })
}

/// Ends every console session; how many there were.
///
/// # Errors
/// The server could not be reached or refused the admin token.
pub fn logout_all(remote: &Remote) -> Result<u64> {
    let reply = remote.admin_post("/v1/admin/console/logout-all")?;
    Ok(reply["ended"].as_u64().unwrap_or(0))
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

/// Writes the redirect file (in `home`, else the temporary directory) and
/// starts the browser on it; whether one started.
pub fn open_in_browser(home: &Path, url: &str) -> bool {
    let Some(browser) = browser() else {
        return false;
    };
    let dir = if home.is_dir() {
        home.to_path_buf()
    } else {
        std::env::temp_dir()
    };
    let file = dir.join(REDIRECT_FILE);
    let html = Zeroizing::new(format!(
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
