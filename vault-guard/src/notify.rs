//! Notifications that belong to a flow rather than to one front end: a
//! rotation a crash interrupted and that was finished on open, and a key
//! suspended for anomalous use. The CLI and the server both call these, so a
//! person hears the same thing whichever process noticed. Delivery ([`send`])
//! lives here rather than in vault-core, which opens no socket: the command
//! runs through vault-core's process runner, the webhook goes out on ureq to
//! loopback only. Each function returns what could not be delivered, for the
//! caller to log or print; a failing notifier never stops what it reports.

use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Duration;

use vault_core::notify::Event;
use vault_core::{Principal, RotationReport, Vault};

/// How long a notifier may take.
const TIMEOUT: Duration = Duration::from_secs(5);

/// Sends `event` to every configured notifier ([`Vault::notify_config`]);
/// returns the errors (if any) so the caller can say so.
pub fn send(vault: &Vault, event: &Event) -> Vec<String> {
    let mut errors = Vec::new();
    let config = match vault.notify_config() {
        Ok(config) => config,
        // e.g. a tampered command: said, and nothing runs
        Err(e) => return vec![format!("cannot read the notification settings: {e}")],
    };
    let body = event.to_json().to_string();
    if let Some(cmd) = &config.command {
        if let Err(e) = run_command(cmd, &body) {
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

/// Through vault-core's runner: allow-listed environment, own process group
/// killed at the timeout.
fn run_command(cmd: &str, body: &str) -> Result<(), String> {
    let outcome = vault_core::process::run_shell(cmd, body.as_bytes(), None, None, TIMEOUT)
        .map_err(|e| e.to_string())?;
    if outcome.status.success() {
        Ok(())
    } else {
        Err(format!("exited with {}", outcome.status))
    }
}

/// Resolves `netloc` and refuses it unless every address is loopback, so a
/// name that resolves elsewhere (a changed /etc/hosts) is never connected to.
fn resolve_loopback(netloc: &str) -> std::io::Result<Vec<SocketAddr>> {
    let addrs: Vec<SocketAddr> = netloc.to_socket_addrs()?.collect();
    if addrs.is_empty() || !addrs.iter().all(|a| a.ip().is_loopback()) {
        return Err(std::io::Error::other(format!(
            "{netloc} does not resolve to loopback only"
        )));
    }
    Ok(addrs)
}

/// POSTs `body` to the loopback webhook: no redirects (one could leave
/// loopback), no proxy, bounded in time.
fn post(url: &str, body: &str) -> Result<(), String> {
    vault_core::notify::parse_loopback_url(url).map_err(|e| e.to_string())?;
    let agent = ureq::AgentBuilder::new()
        .timeout(TIMEOUT)
        .redirects(0)
        .resolver(resolve_loopback)
        .build();
    match agent
        .post(url)
        .set("Content-Type", "application/json")
        .send_string(body)
    {
        Ok(r) if (200..300).contains(&r.status()) => Ok(()),
        Ok(r) => Err(format!("answered HTTP {}", r.status())),
        Err(ureq::Error::Status(code, _)) => Err(format!("answered HTTP {code}")),
        Err(e) => Err(e.to_string()),
    }
}

/// What [`resume_rotations`] finished, and what could not be told.
#[derive(Debug, Default)]
pub struct Resumed {
    /// One report per rotation finished.
    pub reports: Vec<RotationReport>,
    /// Notifications that could not be delivered (never a value).
    pub undelivered: Vec<String>,
}

/// Finishes every rotation a crash interrupted ([`Vault::resume_rotations`])
/// and notifies each outcome.
///
/// # Errors
/// Vault errors; rotations finished before the error stay finished.
pub fn resume_rotations(vault: &mut Vault) -> vault_core::Result<Resumed> {
    resume_rotations_except(vault, &[])
}

/// [`resume_rotations`] leaving the rotations `skip` names alone
/// ([`Vault::resume_rotations_except`]).
///
/// # Errors
/// As [`resume_rotations`].
pub fn resume_rotations_except(vault: &mut Vault, skip: &[i64]) -> vault_core::Result<Resumed> {
    let reports = vault.resume_rotations_except(skip)?;
    let mut undelivered = Vec::new();
    for r in &reports {
        undelivered.extend(send(vault, &Event::rotation(r)));
    }
    Ok(Resumed {
        reports,
        undelivered,
    })
}

/// Notifies that the key `key_id` was suspended, naming whose it is and the
/// approval that reinstates it; returns what could not be delivered.
pub fn key_suspended(vault: &Vault, key_id: &str) -> Vec<String> {
    send(vault, &suspension(vault, key_id))
}

/// The notice for a suspended key: whose, and the approval that reinstates it.
fn suspension(vault: &Vault, key_id: &str) -> Event {
    let approval = vault
        .approvals(&Principal::Operator)
        .ok()
        .and_then(|all| all.into_iter().find(|a| a.reinstates(key_id)));
    Event::KeySuspended {
        agent: approval
            .as_ref()
            .map(|a| a.agent.clone())
            .unwrap_or_default(),
        key_id: key_id.to_owned(),
        approval_id: approval.map(|a| a.approval_id.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};

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
        super::post(
            &format!("http://127.0.0.1:{port}/events"),
            r#"{"event":"leak"}"#,
        )
        .unwrap();
        let request = server.join().unwrap();
        assert!(request.starts_with("POST /events HTTP/1.1"), "{request}");
        assert!(request.ends_with(r#"{"event":"leak"}"#));
    }

    #[test]
    fn a_webhook_that_redirects_is_not_followed() {
        // issue 14: delivery moved to ureq, which follows redirects unless told not to
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf).unwrap();
            s.write_all(
                b"HTTP/1.1 307 Temporary Redirect\r\nLocation: http://10.0.0.1:80/\r\nContent-Length: 0\r\n\r\n",
            )
            .unwrap();
        });
        let err = super::post(&format!("http://127.0.0.1:{port}/events"), "{}").unwrap_err();
        server.join().unwrap();
        assert!(err.contains("307"), "{err}");
    }

    #[test]
    fn a_webhook_beyond_loopback_is_never_contacted() {
        assert!(super::post("http://10.0.0.1:9/", "{}").is_err());
        assert!(super::resolve_loopback("localhost:9").is_ok());
    }
}
