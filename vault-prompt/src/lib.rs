//! vault-prompt: where a person's secrets come from. A passphrase from a
//! checked file or a no-echo prompt on the terminal, a value from stdin or
//! that prompt, never from argv; and [`unlock`], which gives a person at a
//! terminal three tries at the passphrase.
//!
//! What must not live here: argument parsing, exit codes, printing beyond the
//! prompt itself (it is written to `/dev/tty`, not stdout or stderr). A
//! front end maps [`Error::class`] to its own codes; [`Error::Interrupted`]
//! is the person giving up (Ctrl-C), which a shell answers with 130.

#![deny(missing_docs)]

mod error;
mod tty;

use std::io::{IsTerminal, Read};
use std::path::Path;

use vault_core::secret_file::read_passphrase;
use vault_core::{Location, SecretBytes, SecretString, Vault, MAX_VALUE_LEN};

pub use crate::error::{Error, Result};

/// Shortest passphrase [`new_passphrase`] accepts (`init`, `passwd`).
pub const MIN_PASSPHRASE_CHARS: usize = 8;

/// The passphrase of an existing vault: from `file` if given, else a no-echo prompt.
pub fn passphrase(file: Option<&Path>, prompt: &str) -> Result<SecretString> {
    match file {
        Some(path) => Ok(read_passphrase(path)?),
        None => tty::prompt_secret(prompt),
    }
}

/// A new passphrase: from `file`, or prompted twice and compared (in
/// constant time); refused when shorter than [`MIN_PASSPHRASE_CHARS`].
pub fn new_passphrase(file: Option<&Path>) -> Result<SecretString> {
    let pass = match file {
        Some(path) => read_passphrase(path)?,
        None => {
            let first = tty::prompt_secret("New vault passphrase: ")?;
            let second = tty::prompt_secret("Repeat the passphrase: ")?;
            if !first.ct_eq(second.expose_secret()) {
                return Err(Error::Mismatch);
            }
            first
        }
    };
    check_length(pass)
}

/// A secret value: from stdin when it is not a terminal (one trailing newline
/// removed), else from a no-echo prompt. At most MAX_VALUE_LEN bytes (and a
/// few over, so that the store can say it is too long) are read, so an endless
/// stdin cannot exhaust memory.
pub fn value(prompt: &str) -> Result<SecretBytes> {
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        return Ok(tty::prompt_secret(prompt)?.into());
    }
    read_value(&mut stdin.lock())
}

/// A credential (a token) piped on stdin, surrounding whitespace trimmed;
/// `what` names it in the error. At most twice the longest token is read.
pub fn stdin_credential(what: &'static str) -> Result<SecretString> {
    read_credential(&mut std::io::stdin().lock(), what)
}

/// Unlocks the vault at `location` with the passphrase from `file`, or
/// prompted. A typo at the prompt is asked again, three tries in all (issue
/// 19), `on_retry` hearing how many are left; a passphrase from a file, or
/// with stdin not a terminal (a script), is tried once. A retry that cannot
/// read the prompt ends as what it is, a wrong passphrase, not a read error;
/// Ctrl-C at any try is [`Error::Interrupted`].
pub fn unlock(
    location: &Location,
    file: Option<&Path>,
    mut on_retry: impl FnMut(u32),
) -> Result<Vault> {
    let interactive = file.is_none() && std::io::stdin().is_terminal();
    let mut tries: u32 = if interactive { 3 } else { 1 };
    loop {
        let pass = match passphrase(file, "Vault passphrase: ") {
            Err(e) if interactive && tries < 3 && !matches!(e, Error::Interrupted) => {
                return Err(vault_core::Error::WrongPassphrase.into())
            }
            other => other?,
        };
        tries -= 1;
        match Vault::unlock_at(location, &pass) {
            Err(vault_core::Error::WrongPassphrase) if tries > 0 => on_retry(tries),
            other => return Ok(other?),
        }
    }
}

fn check_length(pass: SecretString) -> Result<SecretString> {
    if pass.expose_secret().chars().count() < MIN_PASSPHRASE_CHARS {
        return Err(Error::TooShort);
    }
    Ok(pass)
}

fn read_credential(input: &mut impl Read, what: &'static str) -> Result<SecretString> {
    let mut buf = String::new();
    let limit = vault_core::credential::MAX_TOKEN_LEN as u64 * 2;
    let read = input.take(limit).read_to_string(&mut buf);
    let buf = SecretString::new(buf);
    read.map_err(|_| Error::NotText(what))?;
    Ok(SecretString::new(buf.expose_secret().trim().to_owned()))
}

fn read_value(input: &mut impl Read) -> Result<SecretBytes> {
    let mut buf = Vec::new();
    input
        .take(MAX_VALUE_LEN as u64 + 3)
        .read_to_end(&mut buf)
        .map_err(Error::Stdin)?;
    if buf.ends_with(b"\n") {
        buf.pop();
        if buf.ends_with(b"\r") {
            buf.pop();
        }
    }
    Ok(SecretBytes::new(buf))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_value_loses_one_trailing_newline_and_nothing_else() {
        let v = read_value(&mut &b"abc\r\n"[..]).unwrap();
        assert_eq!(v.expose_secret(), b"abc");
        let v = read_value(&mut &b"abc\n\n"[..]).unwrap();
        assert_eq!(v.expose_secret(), b"abc\n");
        let v = read_value(&mut &b" abc "[..]).unwrap();
        assert_eq!(v.expose_secret(), b" abc ");
    }

    #[test]
    fn a_piped_credential_is_trimmed_and_must_be_text() {
        let t = read_credential(&mut &b"  avt_x \n"[..], "token").unwrap();
        assert_eq!(t.expose_secret(), "avt_x");
        let e = read_credential(&mut &b"\xff\xfe"[..], "token").unwrap_err();
        assert_eq!(e.to_string(), "the token on stdin is not UTF-8 text");
    }

    #[test]
    fn an_endless_stdin_is_read_only_a_little_past_the_limit() {
        let mut endless = std::io::repeat(b'x');
        let v = read_value(&mut endless).unwrap();
        assert_eq!(v.expose_secret().len(), MAX_VALUE_LEN + 3);
    }

    #[test]
    fn a_short_new_passphrase_is_refused_and_a_long_one_kept() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("pass");
        for (text, ok) in [("short", false), ("long enough", true)] {
            std::fs::write(&file, format!("{text}\n")).unwrap();
            let mut perms = std::fs::metadata(&file).unwrap().permissions();
            std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o600);
            std::fs::set_permissions(&file, perms).unwrap();
            match new_passphrase(Some(&file)) {
                Ok(p) => assert!(ok && p.expose_secret() == text),
                Err(e) => assert!(!ok && matches!(e, Error::TooShort), "{e}"),
            }
        }
    }

    #[test]
    fn a_passphrase_file_that_is_missing_is_the_vaults_error() {
        let dir = tempfile::tempdir().unwrap();
        let e = passphrase(Some(&dir.path().join("none")), "p: ").unwrap_err();
        assert!(matches!(e, Error::Vault(_)), "{e}");
    }
}
