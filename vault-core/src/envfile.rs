//! Env files: encoding values so every common reader gets them back exactly,
//! and rewriting one `NAME=value` line atomically while keeping every other
//! line and comment. Readers targeted (shared/research/agent-ecosystem.md
//! §5.1): python-dotenv and Hermes' loader, Node dotenv, Compose, and bash
//! `set -a; . FILE` for values in the safe character set.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use zeroize::Zeroizing;

use crate::credential::hex;
use crate::crypto::rand;
use crate::error::{Error, Result};

/// Encodes a value for a dotenv file:
/// bare when it only uses `[A-Za-z0-9_./:@+=,-]` (every vault credential does);
/// single-quoted (no interpolation anywhere) when it has no `'`, no backslash
/// (python-dotenv unescapes `\\` even in single quotes) and no line break; otherwise double-quoted with `\\ \" \n \r` escapes,
/// which python-dotenv and Node dotenv decode. A value needing double quotes
/// that also holds `${` would be interpolated by python-dotenv, so it is refused.
///
/// # Errors
/// [`Error::InvalidInput`] for the one unrepresentable case.
pub fn dotenv_value(value: &str) -> Result<String> {
    if !value.is_empty() && value.bytes().all(is_bare_safe) {
        return Ok(value.to_owned());
    }
    if !value.contains(['\'', '\\', '\n', '\r']) {
        return Ok(format!("'{value}'"));
    }
    if value.contains("${") {
        return Err(Error::InvalidInput {
            what: "env value",
            reason: "a value with a quote or line break and `${` cannot be written as dotenv \
                     without being interpolated; use --format json or shell"
                .into(),
        });
    }
    let mut out = String::with_capacity(value.len() + 8);
    out.push('"');
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c => out.push(c),
        }
    }
    out.push('"');
    Ok(out)
}

/// Encodes a value as one POSIX shell word: single quotes, `'` as `'\''`.
pub fn shell_value(value: &str) -> String {
    format!("'{}'", value.replace('\'', "'\\''"))
}

/// Writes or replaces `name=value` in the env file at `path`, keeping every
/// other line byte for byte; later duplicate definitions of `name` are removed
/// so the written one is the one every reader sees. Atomic (temp file in the
/// same directory, fsync, rename, fsync of the directory) and mode 0600.
///
/// # Errors
/// [`Error::Refused`] for a symlink, a directory, a non-regular or executable
/// file; [`Error::Io`] when the file or directory can't be written.
pub fn upsert_var(path: &Path, name: &str, value: &str) -> Result<()> {
    let line = format!("{name}={}", dotenv_value(value)?);
    let existing = read_existing(path)?;
    let text = String::from_utf8_lossy(&existing);
    let mut out = Zeroizing::new(String::with_capacity(text.len() + line.len() + 1));
    let mut replaced = false;
    for l in text.split_inclusive('\n') {
        if defines(l, name) {
            if !replaced {
                out.push_str(&line);
                out.push('\n');
                replaced = true;
            }
        } else {
            out.push_str(l);
        }
    }
    if !replaced {
        if !out.is_empty() && !out.ends_with('\n') {
            out.push('\n');
        }
        out.push_str(&line);
        out.push('\n');
    }
    write_private_atomic(path, out.as_bytes())
}

/// The variable names an env file defines (`NAME=` or `export NAME=` lines).
///
/// # Errors
/// As for reading the file; a missing file defines nothing.
pub fn defined_names(path: &Path) -> Result<Vec<String>> {
    let bytes = match std::fs::read(path) {
        Ok(b) => Zeroizing::new(b),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io(path, e)),
    };
    Ok(String::from_utf8_lossy(&bytes)
        .lines()
        .filter_map(|l| {
            let l = l.trim_start();
            let l = l.strip_prefix("export ").unwrap_or(l).trim_start();
            let (name, _) = l.split_once('=')?;
            let name = name.trim_end();
            let valid = !name.is_empty()
                && !name.starts_with(|c: char| c.is_ascii_digit())
                && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
            valid.then(|| name.to_owned())
        })
        .collect())
}

/// The value `name` has in the env file at `path` (the last definition wins,
/// as in python-dotenv), decoded from the forms [`dotenv_value`] writes.
/// `None` when the file or the variable is missing.
///
/// # Errors
/// As for reading the file.
pub fn value_of(path: &Path, name: &str) -> Result<Option<Zeroizing<String>>> {
    let bytes = match std::fs::read(path) {
        Ok(b) => Zeroizing::new(b),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io(path, e)),
    };
    let text = String::from_utf8_lossy(&bytes);
    let mut found = None;
    for line in text.lines().filter(|l| defines(l, name)) {
        let raw = line
            .split_once('=')
            .map(|(_, v)| v.trim())
            .unwrap_or_default();
        let value = if let Some(inner) = raw.strip_prefix('\'').and_then(|r| r.strip_suffix('\'')) {
            inner.to_owned()
        } else if let Some(inner) = raw.strip_prefix('"').and_then(|r| r.strip_suffix('"')) {
            let mut out = String::with_capacity(inner.len());
            let mut chars = inner.chars();
            while let Some(c) = chars.next() {
                match (c, c == '\\') {
                    (_, true) => match chars.next() {
                        Some('n') => out.push('\n'),
                        Some('r') => out.push('\r'),
                        Some(other) => out.push(other),
                        None => out.push('\\'),
                    },
                    (c, false) => out.push(c),
                }
            }
            out
        } else {
            raw.to_owned()
        };
        found = Some(Zeroizing::new(value));
    }
    Ok(found)
}

/// The proxy variables `vault env --broker` writes, each carrying the agent's
/// vault credential as the URL's user (`http://agent:avk_...@127.0.0.1:PORT`);
/// OpenClaw's proxy layer reads its own.
pub const PROXY_VARS: [&str; 5] = [
    "HTTPS_PROXY",
    "https_proxy",
    "HTTP_PROXY",
    "http_proxy",
    "OPENCLAW_PROXY_URL",
];

/// The proxy URL with its vault credential (the user or password part that is
/// a named key or a token) replaced by `credential`; `None` when the URL
/// carries no vault credential (then it is not the broker's and is left alone).
fn with_proxy_credential(url: &str, credential: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (userinfo, host) = rest[..authority_end].rsplit_once('@')?;
    let is_vault = |s: &str| s.starts_with("avk_") || s.starts_with("avt_");
    let userinfo = match userinfo.split_once(':') {
        Some((user, pass)) if is_vault(user) => format!("{credential}:{pass}"),
        Some((user, pass)) if is_vault(pass) => format!("{user}:{credential}"),
        None if is_vault(userinfo) => credential.to_owned(),
        _ => return None,
    };
    Some(format!(
        "{scheme}://{userinfo}@{host}{}",
        &rest[authority_end..]
    ))
}

/// Rewrites the vault credential inside each of [`PROXY_VARS`] defined in the
/// env file at `path` (the broker's proxy URLs a rotation must follow), and
/// checks each now holds `credential`. Variables without a vault credential
/// and files without them are left as they are.
///
/// # Errors
/// As for [`upsert_var`]; [`Error::Refused`] when a read-back differs.
pub fn rewrite_proxy_credentials(path: &Path, credential: &str) -> Result<()> {
    for var in PROXY_VARS {
        let Some(old) = value_of(path, var)? else {
            continue;
        };
        let Some(new) = with_proxy_credential(&old, credential) else {
            continue;
        };
        let new = Zeroizing::new(new);
        if *old != *new {
            upsert_var(path, var, &new)?;
        }
        if value_of(path, var)?.as_deref().map(String::as_str) != Some(new.as_str()) {
            return Err(Error::Refused {
                reason: format!(
                    "{} does not hold the new key in {var} after writing it",
                    path.display()
                ),
            });
        }
    }
    Ok(())
}

/// Replaces `path` with `contents` atomically, mode 0600, refusing symlinks,
/// directories and executable files.
pub fn write_private_atomic(path: &Path, contents: &[u8]) -> Result<()> {
    check_target(path)?;
    let dir = parent_dir(path);
    let file_name = path
        .file_name()
        .ok_or_else(|| refused(path, "has no file name"))?
        .to_string_lossy();
    let tmp: PathBuf = dir.join(format!(
        ".{file_name}.vault-tmp-{}",
        hex(&rand::array::<6>()?)
    ));
    let result = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(|e| Error::io(&tmp, e))?;
        f.write_all(contents).map_err(|e| Error::io(&tmp, e))?;
        f.sync_all().map_err(|e| Error::io(&tmp, e))?;
        crate::failpoint::hit("envfile:before-rename");
        std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e))?;
        // The rename is durable only once the directory entry is on disk.
        File::open(&dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| Error::io(&dir, e))
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

fn read_existing(path: &Path) -> Result<Zeroizing<Vec<u8>>> {
    check_target(path)?;
    match std::fs::read(path) {
        Ok(b) => Ok(Zeroizing::new(b)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Zeroizing::new(Vec::new())),
        Err(e) => Err(Error::io(path, e)),
    }
}

fn check_target(path: &Path) -> Result<()> {
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_symlink() => Err(refused(path, "is a symlink")),
        Ok(meta) if meta.is_dir() => Err(refused(path, "is a directory")),
        Ok(meta) if !meta.is_file() => Err(refused(path, "is not a regular file")),
        Ok(meta) if meta.permissions().mode() & 0o111 != 0 => Err(refused(path, "is executable")),
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io(path, e)),
    }
}

fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        _ => PathBuf::from("."),
    }
}

fn defines(line: &str, name: &str) -> bool {
    let l = line.trim_start();
    let l = l.strip_prefix("export ").unwrap_or(l).trim_start();
    l.strip_prefix(name)
        .is_some_and(|rest| rest.trim_start().starts_with('='))
}

fn is_bare_safe(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"_./:@+=,-".contains(&b)
}

fn refused(path: &Path, why: &str) -> Error {
    Error::Refused {
        reason: format!(
            "{} {why}; refusing to write an env file there",
            path.display()
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // issue 15 follow-up 2: a rotation rewrites only the vault credential of
    // a proxy URL, as user or password, and leaves other proxies alone
    #[test]
    fn proxy_credentials_are_replaced_only_where_a_vault_credential_is() {
        let new = "avk_new";
        assert_eq!(
            with_proxy_credential("http://agent:avk_old@127.0.0.1:9/", new).as_deref(),
            Some("http://agent:avk_new@127.0.0.1:9/")
        );
        assert_eq!(
            with_proxy_credential("http://avt_old:x@127.0.0.1:9", new).as_deref(),
            Some("http://avk_new:x@127.0.0.1:9")
        );
        assert_eq!(
            with_proxy_credential("http://corp:pw@proxy:3128", new),
            None
        );
        assert_eq!(
            with_proxy_credential("http://proxy:3128/avk_x@y", new),
            None
        );
    }

    #[test]
    fn encodings() {
        assert_eq!(dotenv_value("avk_abc123").unwrap(), "avk_abc123");
        assert_eq!(dotenv_value("a b $X #c").unwrap(), "'a b $X #c'");
        assert_eq!(dotenv_value("it's\n").unwrap(), "\"it's\\n\"");
        assert_eq!(dotenv_value("a\\b").unwrap(), "\"a\\\\b\"");
        assert_eq!(dotenv_value("").unwrap(), "''");
        assert!(dotenv_value("it's ${HOME}").is_err());
        assert_eq!(shell_value("it's"), "'it'\\''s'");
    }

    #[test]
    fn upsert_keeps_other_lines_and_replaces_duplicates() {
        let dir = tempfile::TempDir::new().unwrap();
        let path = dir.path().join(".env");
        std::fs::write(
            &path,
            "# comment\nA=1\nexport KEY = old\nB='x y'\nKEY=dup\nKEYS=other",
        )
        .unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        upsert_var(&path, "KEY", "avk_new").unwrap();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "# comment\nA=1\nKEY=avk_new\nB='x y'\nKEYS=other"
        );
        upsert_var(&path, "NEW", "v").unwrap();
        assert!(std::fs::read_to_string(&path)
            .unwrap()
            .ends_with("KEYS=other\nNEW=v\n"));
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(
            defined_names(&path).unwrap(),
            ["A", "KEY", "B", "KEYS", "NEW"]
        );
        // no temp files left behind
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn refuses_symlinks_directories_and_executables() {
        let dir = tempfile::TempDir::new().unwrap();
        let real = dir.path().join("real");
        std::fs::write(&real, "A=1\n").unwrap();
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        assert!(matches!(
            upsert_var(&link, "K", "v"),
            Err(Error::Refused { .. })
        ));
        assert!(matches!(
            upsert_var(dir.path(), "K", "v"),
            Err(Error::Refused { .. })
        ));
        std::fs::set_permissions(&real, std::fs::Permissions::from_mode(0o700)).unwrap();
        assert!(matches!(
            upsert_var(&real, "K", "v"),
            Err(Error::Refused { .. })
        ));
        assert_eq!(std::fs::read_to_string(&real).unwrap(), "A=1\n");
        let missing_dir = dir.path().join("no/such/dir/.env");
        assert!(matches!(
            upsert_var(&missing_dir, "K", "v"),
            Err(Error::Io { .. })
        ));
    }
}
