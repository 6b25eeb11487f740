//! Where secrets come from: a no-echo prompt, stdin, or a file. Never argv.

use std::io::{IsTerminal, Read};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use anyhow::{Context, Result};
use vault_core::{SecretBytes, SecretString, MAX_VALUE_LEN};

use crate::exit;

/// Shortest passphrase `init` and `passwd` accept.
const MIN_PASSPHRASE_CHARS: usize = 8;

/// Most bytes read from a passphrase file (only its first line is used).
const MAX_PASSPHRASE_FILE: u64 = 64 << 10;

/// The passphrase of an existing vault: from `file` if given, else a no-echo prompt.
pub fn passphrase(file: Option<&Path>, prompt: &str) -> Result<SecretString> {
    match file {
        Some(path) => passphrase_from_file(path),
        None => prompt_secret(prompt),
    }
}

/// A new passphrase: from `file`, or prompted twice and compared.
pub fn new_passphrase(file: Option<&Path>) -> Result<SecretString> {
    let pass = match file {
        Some(path) => passphrase_from_file(path)?,
        None => {
            let first = prompt_secret("New vault passphrase: ")?;
            let second = prompt_secret("Repeat the passphrase: ")?;
            if !first.ct_eq(second.expose_secret()) {
                return Err(exit::usage("the two passphrases differ"));
            }
            first
        }
    };
    if pass.expose_secret().chars().count() < MIN_PASSPHRASE_CHARS {
        return Err(exit::usage(format!(
            "the passphrase is too short: use at least {MIN_PASSPHRASE_CHARS} characters"
        )));
    }
    Ok(pass)
}

/// A secret value: from stdin when it is not a terminal (one trailing newline
/// removed), else from a no-echo prompt. At most MAX_VALUE_LEN bytes are read,
/// so an endless stdin cannot exhaust memory.
pub fn value(prompt: &str) -> Result<SecretBytes> {
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        return Ok(prompt_secret(prompt)?.into());
    }
    let mut buf = Vec::new();
    stdin
        .lock()
        .take(MAX_VALUE_LEN as u64 + 3)
        .read_to_end(&mut buf)
        .context("reading the value from stdin")?;
    if buf.ends_with(b"\n") {
        buf.pop();
        if buf.ends_with(b"\r") {
            buf.pop();
        }
    }
    Ok(SecretBytes::new(buf))
}

/// Reads the first line of a passphrase file, refusing one that others could
/// read or replace (the passphrase opens every agent's secrets, so it is held
/// to the vault's own files' standard). The checks are made on the opened
/// file, so the file read is the file checked.
fn passphrase_from_file(path: &Path) -> Result<SecretString> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let context = || format!("reading the passphrase file {}", path.display());
    let mut file = std::fs::File::open(path).with_context(context)?;
    let meta = file.metadata().with_context(context)?;
    // A pipe is fine: `--passphrase-file <(pass show vault)`.
    if !meta.is_file() && !meta.file_type().is_fifo() {
        return Err(exit::usage(format!(
            "the passphrase file {} is {}, not a file; give a file holding the passphrase",
            path.display(),
            if meta.is_dir() {
                "a directory"
            } else {
                "a device or socket"
            }
        )));
    }
    let me = nix::unistd::geteuid().as_raw();
    if meta.uid() != me {
        return Err(exit::CliError {
            code: exit::USAGE,
            name: "loose_permissions",
            message: format!(
                "the passphrase file {} is owned by uid {}, not by you (uid {me}): another user \
                 could change it; use a file you own with mode 600",
                path.display(),
                meta.uid()
            ),
        }
        .into());
    }
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(vault_core::Error::LoosePermissions {
            path: path.to_owned(),
            mode,
            want: 0o600,
        }
        .into());
    }
    let mut raw = Vec::new();
    (&mut file)
        .take(MAX_PASSPHRASE_FILE)
        .read_to_end(&mut raw)
        .with_context(context)?;
    let bytes = SecretBytes::new(raw);
    let text = bytes
        .as_str()
        .ok_or_else(|| exit::usage("the passphrase file is not UTF-8 text"))?;
    let line = text.lines().next().unwrap_or("");
    if line.is_empty() {
        return Err(exit::usage(format!(
            "the passphrase file {} is empty",
            path.display()
        )));
    }
    // `bytes` (the whole file) is zeroized when it drops at the end of this function
    Ok(SecretString::new(line.to_owned()))
}

fn prompt_secret(prompt: &str) -> Result<SecretString> {
    match rpassword::prompt_password(prompt) {
        Ok(s) => Ok(SecretString::new(s)),
        Err(_) => Err(exit::usage(
            "no terminal to prompt on: give the passphrase with --passphrase-file or \
             VAULT_PASSPHRASE_FILE, and values on stdin",
        )),
    }
}
