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
    match read_hidden(prompt) {
        Ok(s) => Ok(s),
        // exit 130 as a shell expects after Ctrl-C, by way of `main`
        Err(e) if e.get_ref().is_some_and(|inner| inner.is::<CtrlC>()) => Err(exit::with_code(130)),
        Err(_) => Err(exit::usage(
            "no terminal to prompt on: give the passphrase with --passphrase-file or \
             VAULT_PASSPHRASE_FILE, and values on stdin",
        )),
    }
}

/// The person gave up at the prompt (Ctrl-C or Ctrl-\\).
#[derive(Debug)]
struct CtrlC;

impl std::fmt::Display for CtrlC {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("interrupted at the prompt")
    }
}

impl std::error::Error for CtrlC {}

/// Puts the terminal's modes back however the prompt ends.
struct RestoreTerminal<'a> {
    tty: &'a std::fs::File,
    saved: nix::sys::termios::Termios,
}

impl Drop for RestoreTerminal<'_> {
    fn drop(&mut self) {
        let _ = nix::sys::termios::tcsetattr(
            self.tty,
            nix::sys::termios::SetArg::TCSAFLUSH,
            &self.saved,
        );
    }
}

/// Reads a line from the terminal without echo. Signal keys are turned off
/// too (ISIG), so Ctrl-C arrives as a byte, not as a SIGINT that would kill
/// the process with echo still off (issue 19): the terminal's modes are put
/// back first, then the command ends with 130 as a shell expects after Ctrl-C.
fn read_hidden(prompt: &str) -> std::io::Result<SecretString> {
    use nix::sys::termios::{self, LocalFlags, SetArg, SpecialCharacterIndices};
    use std::io::Write;
    let mut tty = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/tty")?;
    let saved = termios::tcgetattr(&tty)?;
    let mut quiet = saved.clone();
    quiet
        .local_flags
        .remove(LocalFlags::ECHO | LocalFlags::ECHONL | LocalFlags::ICANON | LocalFlags::ISIG);
    quiet.control_chars[SpecialCharacterIndices::VMIN as usize] = 1;
    quiet.control_chars[SpecialCharacterIndices::VTIME as usize] = 0;
    let guard = RestoreTerminal { tty: &tty, saved };
    termios::tcsetattr(&tty, SetArg::TCSAFLUSH, &quiet)?;
    (&tty).write_all(prompt.as_bytes())?;
    (&tty).flush()?;
    let mut line = zeroize::Zeroizing::new(Vec::new());
    let mut byte = [0u8; 1];
    loop {
        if (&tty).read(&mut byte)? == 0 {
            break;
        }
        match byte[0] {
            b'\r' | b'\n' => break,
            // Ctrl-C, Ctrl-\\ : give up, terminal first
            0x03 | 0x1c => {
                drop(line);
                drop(guard);
                let _ = tty.write_all(b"\n");
                return Err(std::io::Error::other(CtrlC));
            }
            // Ctrl-D on an empty line: no passphrase
            0x04 if line.is_empty() => break,
            0x7f | 0x08 => {
                line.pop();
            }
            // Ctrl-U: start over
            0x15 => line.clear(),
            b => line.push(b),
        }
        if line.len() > MAX_PASSPHRASE_FILE as usize {
            break;
        }
    }
    drop(guard);
    let _ = (&tty).write_all(b"\n");
    // Copied out of `line`, which is zeroized when it drops.
    let text = std::str::from_utf8(&line)
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidData, "not UTF-8"))?;
    Ok(SecretString::new(text.to_owned()))
}

/// A credential from `file`, else from the environment variable `var`.
pub fn credential_from(
    var: &str,
    file: Option<&std::path::Path>,
    what: &str,
) -> Result<SecretString> {
    let text = match file {
        Some(path) => std::fs::read_to_string(path)
            .with_context(|| format!("reading the {what} from {}", path.display()))?,
        None => std::env::var(var).map_err(|_| {
            // the flag as spelled, not "the file option" (issue 19)
            let flag = match var {
                "VAULT_TOKEN" => "--token-file FILE",
                "VAULT_ADMIN_TOKEN" => "--admin-token-file FILE",
                _ => "--key-file FILE",
            };
            exit::usage(format!(
                "no {what}: set {var} or give {flag} (never the {what} itself as an argument)"
            ))
        })?,
    };
    let text = SecretString::new(text);
    let trimmed = text.expose_secret().trim();
    if trimmed.is_empty() {
        return Err(exit::usage(format!("the {what} is empty")));
    }
    Ok(SecretString::new(trimmed.to_owned()))
}
