//! From a `--database` URL to the client's settings: the password comes
//! from a libpq passfile, never from the URL (argv, the environment), and
//! `sslmode` / `sslrootcert` mean what they mean to libpq ([`super::tls`]).

use super::tls::{SslMode, Tls};
use crate::error::{Error, Result};

/// A `postgres://` URL's connection settings, its password read from a
/// passfile: the URL's `passfile` parameter, else `$PGPASSFILE`, else
/// `~/.pgpass` (libpq's order). A password in the URL itself is refused: the
/// URL travels in argv and the environment. `sslmode` and `sslrootcert` are
/// taken out for [`Tls`] (the client knows neither `verify-*` nor roots).
pub(crate) fn config(database_url: &str) -> Result<(::postgres::Config, Tls)> {
    let bad = |reason: String| Error::InvalidInput {
        what: "database URL",
        reason,
    };
    let mut parsed = url::Url::parse(database_url).map_err(|e| {
        bad(format!(
            "not a URL ({e}); expected postgres://USER@HOST:PORT/DB"
        ))
    })?;
    if !matches!(parsed.scheme(), "postgres" | "postgresql") {
        return Err(bad(format!(
            "the scheme is {:?}; expected postgres://USER@HOST:PORT/DB",
            parsed.scheme()
        )));
    }
    if parsed.password().is_some() {
        return Err(bad(
            "it holds a password; put the password in a passfile (host:port:db:user:password, \
             mode 0600) named by ?passfile=PATH or PGPASSFILE, never in the URL"
                .to_owned(),
        ));
    }
    let mut passfile = None;
    let mut tls = Tls::default();
    let mut kept: Vec<(String, String)> = Vec::new();
    for (k, v) in parsed.query_pairs() {
        match k.as_ref() {
            "passfile" => passfile = Some(std::path::PathBuf::from(v.as_ref())),
            "sslmode" => tls.mode = SslMode::parse(&v)?,
            "sslrootcert" => tls.root_cert = Some(std::path::PathBuf::from(v.as_ref())),
            _ => kept.push((k.into_owned(), v.into_owned())),
        }
    }
    parsed.set_query(None);
    if !kept.is_empty() {
        parsed.query_pairs_mut().extend_pairs(kept);
    }
    let mut config: ::postgres::Config = parsed
        .as_str()
        .parse()
        .map_err(|e: ::postgres::Error| bad(format!("{e}")))?;
    config.ssl_mode(tls.client_mode());
    let passfile = passfile
        .or_else(|| std::env::var_os("PGPASSFILE").map(Into::into))
        .or_else(|| std::env::var_os("HOME").map(|h| std::path::Path::new(&h).join(".pgpass")));
    if let Some(path) = passfile {
        if let Some(password) = passfile_password(&path, &config)? {
            config.password(password);
        }
    }
    Ok((config, tls))
}

/// The password a libpq passfile gives `config`'s host, port, database and
/// user (`*` matches anything; `\:` and `\\` are escapes). A passfile group or
/// others can read is refused, as libpq refuses it.
fn passfile_password(
    path: &std::path::Path,
    config: &::postgres::Config,
) -> Result<Option<String>> {
    use std::os::unix::fs::PermissionsExt;
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io(path, e)),
    };
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(Error::LoosePermissions {
            path: path.to_owned(),
            mode,
            want: 0o600,
        });
    }
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    let host = match config.get_hosts().first() {
        Some(::postgres::config::Host::Tcp(h)) => h.clone(),
        // libpq matches a socket directory as "localhost"
        _ => "localhost".to_owned(),
    };
    let port = config
        .get_ports()
        .first()
        .copied()
        .unwrap_or(5432)
        .to_string();
    let user = config.get_user().unwrap_or_default();
    let db = config.get_dbname().unwrap_or(user);
    let want = [host.as_str(), port.as_str(), db, user];
    for line in text.lines() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let fields = split_passfile_line(line);
        let [h, p, d, u, password] = fields.as_slice() else {
            continue;
        };
        if [h, p, d, u]
            .iter()
            .zip(want)
            .all(|(field, want)| field.as_str() == "*" || field.as_str() == want)
        {
            return Ok(Some(password.clone()));
        }
    }
    Ok(None)
}

fn split_passfile_line(line: &str) -> Vec<String> {
    let mut fields = vec![String::new()];
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let (Some(next), Some(field)) = (chars.next(), fields.last_mut()) {
                    field.push(next);
                }
            }
            ':' if fields.len() < 5 => fields.push(String::new()),
            _ => {
                if let Some(field) = fields.last_mut() {
                    field.push(c);
                }
            }
        }
    }
    fields
}
