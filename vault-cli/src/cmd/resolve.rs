//! `vault resolve --openclaw`: an OpenClaw `exec` SecretRef provider, so an
//! OpenClaw config holds only refs and never a plaintext credential. The
//! protocol is [`vault_client::openclaw`]'s; here the flags, stdin, stdout and
//! the exit code. OpenClaw treats any nonzero exit as a failure of the whole
//! batch, so only a broken request or an unusable key exits nonzero.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Result;
use vault_client::openclaw;

use crate::exit;

/// `vault resolve`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Speak OpenClaw's exec SecretRef provider protocol (version 1) on stdin/stdout.
    #[arg(long, required = true)]
    openclaw: bool,
    /// The environment variable holding the agent's named key (a name, not a key).
    #[arg(long, value_name = "VAR", default_value = "VAULT_AGENT_KEY")]
    key_env: String,
    /// Read the agent's named key from FILE instead of the environment.
    #[arg(long, value_name = "FILE")]
    key_file: Option<PathBuf>,
}

pub fn run(args: Args) -> Result<()> {
    debug_assert!(args.openclaw);
    let ids = match openclaw::read_request(&mut std::io::stdin().lock()) {
        Ok(ids) => ids,
        Err(message) => return Err(fail("protocol_error", exit::USAGE, &message)),
    };
    let remote =
        match vault_client::Remote::from_env(&args.key_env, args.key_file.as_deref()) {
            Ok(Some(remote)) => remote,
            Ok(None) => return Err(fail(
                "no_server",
                exit::USAGE,
                "VAULT_ADDR is not set: vault resolve fetches through a running `vault server` \
             (pass VAULT_ADDR and the key variable through OpenClaw's passEnv)",
            )),
            Err(e) => {
                let e = anyhow::Error::from(e);
                let (code, name) = exit::classify(&e);
                return Err(fail(&name, code, &exit::message(&e)));
            }
        };
    match openclaw::answer(&remote, &ids) {
        Ok(body) => {
            let mut out = std::io::stdout().lock();
            out.write_all(&body)?;
            out.flush()?;
            Ok(())
        }
        Err(e) => {
            let e = anyhow::Error::from(e);
            let (code, name) = exit::classify(&e);
            Err(fail(&name, code, &exit::message(&e)))
        }
    }
}

/// Answers a request-level failure: a JSON error on stdout (for scripts;
/// OpenClaw ignores stdout on a nonzero exit), the message on stderr
/// (OpenClaw logs it), and a stable exit code. Returns the exit status for `main`.
fn fail(code: &str, exit_code: i32, message: &str) -> anyhow::Error {
    let _ = writeln!(std::io::stdout(), "{}", openclaw::error_body(code, message));
    let _ = writeln!(std::io::stderr(), "vault: error: {message}");
    exit::with_code(exit_code)
}
