//! Where secrets come from: a no-echo prompt, stdin, or a file. Never argv.

use std::io::{IsTerminal, Read};
use std::path::Path;

use anyhow::{Context, Result};
use vault_core::secret_file::{read_passphrase, MAX_PASSPHRASE_FILE};
use vault_core::{SecretBytes, SecretString, MAX_VALUE_LEN};

use crate::exit;

/// Shortest passphrase `init` and `passwd` accept.
const MIN_PASSPHRASE_CHARS: usize = 8;

/// The passphrase of an existing vault: from `file` if given, else a no-echo prompt.
pub fn passphrase(file: Option<&Path>, prompt: &str) -> Result<SecretString> {
    match file {
        Some(path) => Ok(read_passphrase(path)?),
        None => prompt_secret(prompt),
    }
}

/// A new passphrase: from `file`, or prompted twice and compared.
pub fn new_passphrase(file: Option<&Path>) -> Result<SecretString> {
    let pass = match file {
        Some(path) => read_passphrase(path)?,
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
