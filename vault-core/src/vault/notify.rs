//! Where events go: an optional command (gets the event as JSON on stdin) or
//! a loopback webhook (gets it as a JSON POST). Events name what happened and
//! to whom, never a value. Delivery is best effort: a failing notifier never
//! stops the rotation it reports.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use super::{require_operator, Vault};
use crate::error::{Error, Result};
use crate::process;
use crate::store::{self, settings};
use crate::AuditAction;
use crate::Principal;

/// Where notifications go.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NotifyConfig {
    /// Run with `/bin/sh -c`, the event on stdin.
    pub command: Option<String>,
    /// `http://127.0.0.1:PORT/path` (loopback only).
    pub webhook: Option<String>,
}

/// How long a notifier may take.
const TIMEOUT: Duration = Duration::from_secs(5);

impl Vault {
    /// The configured notifiers.
    pub fn notify_config(&self) -> Result<NotifyConfig> {
        Ok(NotifyConfig {
            command: settings::get(&self.conn, &self.rows, "notify.command")?,
            webhook: settings::get(&self.conn, &self.rows, "notify.webhook")?,
        })
    }

    /// Replaces the notifiers (`None` clears one). A webhook must be plain
    /// HTTP to a loopback address.
    pub fn set_notify_config(&mut self, actor: &Principal, config: &NotifyConfig) -> Result<()> {
        require_operator(actor, "configure notifications")?;
        if let Some(url) = &config.webhook {
            parse_loopback_url(url)?;
        }
        let tx = store::write_tx(&self.conn)?;
        settings::set(&tx, &self.rows, "notify.command", config.command.as_deref())?;
        settings::set(&tx, &self.rows, "notify.webhook", config.webhook.as_deref())?;
        self.audit_in(&tx, actor, None, AuditAction::NotifyConfigure, None, "ok")?;
        tx.commit()
    }

    /// Sends `event` to every configured notifier; returns the errors (if any)
    /// so the caller can say so. Never fails the caller's action.
    pub fn notify(&self, event: &crate::notify::Event) -> Vec<String> {
        let mut errors = Vec::new();
        let config = match self.notify_config() {
            Ok(config) => config,
            // e.g. a tampered command: said, and nothing runs
            Err(e) => return vec![format!("cannot read the notification settings: {e}")],
        };
        let body = event.to_json().to_string();
        if let Some(cmd) = &config.command {
            if let Err(e) = run_notify_command(cmd, &body) {
                errors.push(format!("notify command: {e}"));
            }
        }
        if let Some(url) = &config.webhook {
            if let Err(e) = post(url, &body) {
                errors.push(format!("notify webhook: {e}"));
            }
        }
        errors
    }
}

/// Through [`crate::process`]: allow-listed environment, own process group
/// killed at the timeout.
fn run_notify_command(cmd: &str, body: &str) -> Result<()> {
    let fail = |reason: String| Error::Refused { reason };
    let outcome =
        process::run_shell(cmd, body.as_bytes(), None, TIMEOUT).map_err(|e| fail(e.to_string()))?;
    if outcome.status.success() {
        Ok(())
    } else {
        Err(fail(format!("exited with {}", outcome.status)))
    }
}

/// (host:port, path) of a plain-HTTP loopback URL.
fn parse_loopback_url(url: &str) -> Result<(String, String)> {
    let bad = |why: &str| Error::InvalidInput {
        what: "webhook",
        reason: format!("{url:?} {why}; use http://127.0.0.1:PORT/path"),
    };
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| bad("is not a plain http:// URL"))?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let addrs: Vec<_> = authority
        .to_socket_addrs()
        .map_err(|_| bad("has no host:port"))?
        .collect();
    if addrs.is_empty() || !addrs.iter().all(|a| a.ip().is_loopback()) {
        return Err(bad("is not a loopback address"));
    }
    if path.contains(['\r', '\n', ' ']) {
        return Err(bad("has a malformed path"));
    }
    Ok((authority.to_owned(), path.to_owned()))
}

fn post(url: &str, body: &str) -> Result<()> {
    let (authority, path) = parse_loopback_url(url)?;
    let fail = |e: std::io::Error| Error::Refused {
        reason: e.to_string(),
    };
    let addr = authority
        .to_socket_addrs()
        .map_err(fail)?
        .next()
        .ok_or_else(|| Error::Refused {
            reason: "no address".into(),
        })?;
    let mut stream = TcpStream::connect_timeout(&addr, TIMEOUT).map_err(fail)?;
    stream.set_read_timeout(Some(TIMEOUT)).map_err(fail)?;
    stream.set_write_timeout(Some(TIMEOUT)).map_err(fail)?;
    write!(
        stream,
        "POST {path} HTTP/1.1\r\nHost: {authority}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .map_err(fail)?;
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).map_err(fail)?;
    let status = std::str::from_utf8(&head[9..12]).unwrap_or("???");
    if status.starts_with('2') {
        Ok(())
    } else {
        Err(Error::Refused {
            reason: format!("answered HTTP {status}"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_http_webhooks() {
        assert!(parse_loopback_url("http://127.0.0.1:9/hook").is_ok());
        assert!(parse_loopback_url("http://[::1]:9").is_ok());
        for bad in [
            "https://127.0.0.1:9/",
            "http://10.0.0.1:9/",
            "http://example.com:80/",
            "http://127.0.0.1/",
            "ftp://x",
        ] {
            assert!(parse_loopback_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_webhook_receives_the_event() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            // the request may arrive in several reads: read until the body is in
            let mut got = Vec::new();
            let mut buf = [0u8; 4096];
            while !got.ends_with(br#"{"event":"leak"}"#) {
                let n = s.read(&mut buf).unwrap();
                assert!(n > 0, "connection closed early");
                got.extend_from_slice(&buf[..n]);
            }
            s.write_all(b"HTTP/1.1 204 No Content\r\n\r\n").unwrap();
            String::from_utf8_lossy(&got).into_owned()
        });
        post(
            &format!("http://127.0.0.1:{port}/events"),
            r#"{"event":"leak"}"#,
        )
        .unwrap();
        let request = server.join().unwrap();
        assert!(request.starts_with("POST /events HTTP/1.1"));
        assert!(request.ends_with(r#"{"event":"leak"}"#));
    }
}
