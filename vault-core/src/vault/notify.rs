//! Where events go: the stored settings for an optional command (gets the
//! event as JSON on stdin) and a loopback webhook (gets it as a JSON POST).
//! Delivery is vault-guard's (`vault_guard::notify::send`): vault-core opens
//! no socket (issue 14), so a program embedding it never makes a network
//! call it did not ask for. Here the webhook is checked for its form: plain
//! `http://` to a loopback address literal or `localhost`, with a port; the
//! sender checks again, after resolving, before it connects.

use super::{require_operator, Vault};
use crate::error::{Error, Result};
use crate::store::settings;
use crate::store::Store as _;
use crate::AuditAction;
use crate::AuditOutcome;
use crate::Principal;

/// Where notifications go.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NotifyConfig {
    /// Run with `/bin/sh -c`, the event on stdin.
    pub command: Option<String>,
    /// `http://127.0.0.1:PORT/path` (loopback only).
    pub webhook: Option<String>,
}

impl Vault {
    /// The configured notifiers.
    pub fn notify_config(&self) -> Result<NotifyConfig> {
        Ok(NotifyConfig {
            command: settings::get(&self.store, &self.rows, "notify.command")?,
            webhook: settings::get(&self.store, &self.rows, "notify.webhook")?,
        })
    }

    /// Replaces the notifiers (`None` clears one). A webhook must be plain
    /// HTTP to a loopback address.
    pub fn set_notify_config(&mut self, actor: &Principal, config: &NotifyConfig) -> Result<()> {
        require_operator(actor, "configure notifications")?;
        if let Some(url) = &config.webhook {
            parse_loopback_url(url)?;
        }
        let tx = self.store.write(actor)?;
        settings::set(&tx, &self.rows, "notify.command", config.command.as_deref())?;
        settings::set(&tx, &self.rows, "notify.webhook", config.webhook.as_deref())?;
        self.audit_in(
            &tx,
            actor,
            None,
            AuditAction::NotifyConfigure,
            None,
            AuditOutcome::Ok,
        )?;
        tx.commit()
    }
}

/// (host:port, path) of a plain-HTTP loopback URL, checked by its text: the
/// host is a loopback address literal (`127.0.0.0/8`, `[::1]`) or `localhost`.
/// Public so that the sender applies the same rule before it resolves.
pub fn parse_loopback_url(url: &str) -> Result<(String, String)> {
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
    let (host, _port) = authority
        .rsplit_once(':')
        .filter(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok_and(|p| p != 0))
        .ok_or_else(|| bad("has no host:port"))?;
    // core::net holds address types only (no sockets): parsing is not connecting
    let loopback = match host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        Some(v6) => v6
            .parse::<core::net::Ipv6Addr>()
            .is_ok_and(|ip| ip.is_loopback()),
        None => {
            host.eq_ignore_ascii_case("localhost")
                || host
                    .parse::<core::net::Ipv4Addr>()
                    .is_ok_and(|ip| ip.is_loopback())
        }
    };
    if !loopback {
        return Err(bad("is not a loopback address"));
    }
    if path.contains(['\r', '\n', ' ']) {
        return Err(bad("has a malformed path"));
    }
    Ok((authority.to_owned(), path.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_http_webhooks() {
        assert!(parse_loopback_url("http://127.0.0.1:9/hook").is_ok());
        assert!(parse_loopback_url("http://[::1]:9").is_ok());
        assert!(parse_loopback_url("http://localhost:9/x").is_ok());
        for bad in [
            "https://127.0.0.1:9/",
            "http://10.0.0.1:9/",
            "http://example.com:80/",
            "http://127.0.0.1/",
            "http://127.0.0.1:0/",
            "http://localhost.example.com:80/",
            "http://[::2]:9/",
            "ftp://x",
        ] {
            assert!(parse_loopback_url(bad).is_err(), "{bad}");
        }
    }

    fn sources(dir: &std::path::Path, out: &mut Vec<(String, String)>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                sources(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push((
                    path.display().to_string(),
                    std::fs::read_to_string(&path).unwrap(),
                ));
            }
        }
    }

    #[test]
    fn vault_core_opens_no_socket() {
        // issue 14, done-when 1: vault-core has no networking module (delivery is vault-guard's)
        let mut files = Vec::new();
        sources(
            &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
            &mut files,
        );
        // spelled in pieces, so this file does not match itself
        let banned = [
            concat!("std", "::net"),
            concat!("Tcp", "Stream"),
            concat!("Udp", "Socket"),
            concat!("to_socket", "_addrs"),
            concat!("Tcp", "Listener"),
        ];
        let mut found = Vec::new();
        for (path, text) in &files {
            for (n, line) in text.lines().enumerate() {
                if banned.iter().any(|b| line.contains(b)) {
                    found.push(format!("{path}:{}: {}", n + 1, line.trim()));
                }
            }
        }
        assert!(found.is_empty(), "{found:#?}");
    }
}
