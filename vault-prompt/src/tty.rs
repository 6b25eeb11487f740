//! The no-echo prompt on the controlling terminal. Signal keys are turned
//! off too (ISIG), so Ctrl-C arrives as a byte, not as a SIGINT that would
//! kill the process with echo still off (issue 19): the terminal's modes are
//! put back first, then [`Error::Interrupted`] ends the command.

use std::io::{Read, Write};

use nix::sys::termios::{self, LocalFlags, SetArg, SpecialCharacterIndices, Termios};
use vault_core::secret_file::MAX_PASSPHRASE_FILE;
use vault_core::SecretString;

use crate::{Error, Result};

/// Prompts on the terminal and reads a line without echo.
pub(crate) fn prompt_secret(prompt: &str) -> Result<SecretString> {
    match read_hidden(prompt) {
        Ok(Some(s)) => Ok(s),
        Ok(None) => Err(Error::Interrupted),
        Err(_) => Err(Error::NoTerminal),
    }
}

/// Puts the terminal's modes back however the prompt ends.
struct RestoreTerminal<'a> {
    tty: &'a std::fs::File,
    saved: Termios,
}

impl Drop for RestoreTerminal<'_> {
    fn drop(&mut self) {
        let _ = termios::tcsetattr(self.tty, SetArg::TCSAFLUSH, &self.saved);
    }
}

/// Reads a line from the terminal without echo; `None` when the person gave
/// up (Ctrl-C or Ctrl-\\).
fn read_hidden(prompt: &str) -> std::io::Result<Option<SecretString>> {
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
                return Ok(None);
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
    Ok(Some(SecretString::new(text.to_owned())))
}
