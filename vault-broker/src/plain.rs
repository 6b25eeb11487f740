//! Plain `http://` requests in absolute form (what clients send through
//! `HTTP_PROXY`). Each is authenticated like a CONNECT and decided by the
//! `[[egress]]` rules, but only by those the operator wrote with
//! `scheme = "http"` (port 80 unless the host names one): a credential goes
//! upstream unencrypted only where a person said it may, never because a rule
//! written for a TLS API happens to match the host and port. It is forwarded
//! on the tunnel's path (strip, attach, stream back) over plain TCP from the
//! same SSRF-guarded dialer.
//!
//! Why it exists: a client whose `HTTP_PROXY` points at a CONNECT-only proxy
//! gets an error on every plain call (a pitfall other brokers hit). What it
//! does not do: encrypt. The agent-to-broker hop is loopback only; the
//! broker-to-upstream hop is as plain as the URL the agent asked for, so a
//! plain `http://` request to port 443 is refused (a TLS port reached in
//! clear would carry the credential unencrypted).

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper::{Request, Response, Uri};
use vault_core::SecretString;

use crate::headers::connect_target;
use crate::proxy::{refuse, Body, Shared, Tunnel};
use crate::refusal::{Code, Refusal};
use crate::usage::UpBody;
use crate::Backend;

/// Idle upstream connections kept per (host, port, credential).
const IDLE_PER_TARGET: usize = 8;
/// An idle upstream connection is closed after this long unused.
const IDLE_FOR: Duration = Duration::from_secs(30);
/// Targets (host, port, credential) with idle connections, at most.
const TARGETS: usize = 256;

/// Plain `http://` upstream connections kept between requests, by upstream
/// and by the credential that sent them: a connection only ever carries one
/// credential's requests (one agent's), to the host and port it was dialed
/// for through the checked dialer. The credential is keyed by a hash
/// under a per-process random key, never its text.
#[derive(Default)]
pub(crate) struct Pool {
    hasher: std::collections::hash_map::RandomState,
    idle: Mutex<HashMap<Target, Vec<Idle>>>,
}

/// An idle connection and since when.
type Idle = (Instant, SendRequest<UpBody>);

/// Host, port and the credential's hash.
type Target = (String, u16, u64);

impl Pool {
    fn key(&self, host: &str, port: u16, credential: &SecretString) -> Target {
        let hash = self.hasher.hash_one(credential.expose_secret().as_bytes());
        (host.to_owned(), port, hash)
    }

    /// An idle connection to the target, ready for a request now.
    fn take(&self, key: &Target) -> Option<SendRequest<UpBody>> {
        let mut idle = self.idle.lock().ok()?;
        let list = idle.get_mut(key)?;
        let now = Instant::now();
        list.retain(|(at, s)| !s.is_closed() && now.duration_since(*at) < IDLE_FOR);
        let ready = list.iter().position(|(_, s)| s.is_ready());
        let taken = ready.map(|i| list.swap_remove(i).1);
        if list.is_empty() {
            idle.remove(key);
        }
        taken
    }

    /// Keeps `sender` for the next request to the target (it becomes ready
    /// once the answer it carries has been read).
    fn put(&self, key: Target, sender: SendRequest<UpBody>) {
        if sender.is_closed() {
            return;
        }
        let Ok(mut idle) = self.idle.lock() else {
            return;
        };
        if idle.len() >= TARGETS && !idle.contains_key(&key) {
            let now = Instant::now();
            idle.retain(|_, list| {
                list.retain(|(at, s)| !s.is_closed() && now.duration_since(*at) < IDLE_FOR);
                !list.is_empty()
            });
            if idle.len() >= TARGETS {
                return;
            }
        }
        let list = idle.entry(key).or_default();
        if list.len() >= IDLE_PER_TARGET {
            list.remove(0);
        }
        list.push((Instant::now(), sender));
    }
}

/// Appended to the `egress_denied` message of a plain request: the usual
/// cause is a rule that covers the host but not unencrypted requests.
pub(crate) const DENIED_HINT: &str =
    " over plain http:// (only a rule with scheme = \"http\" attaches \
     its credential to an unencrypted request; rules without it cover https:// only)";

/// Forwards one authenticated absolute-form `http://` request.
pub(crate) async fn forward<B: Backend>(
    shared: Arc<Shared<B>>,
    credential: Arc<SecretString>,
    req: Request<Incoming>,
) -> Response<Body> {
    let (host, port) = match target(req.uri()) {
        Ok(target) => target,
        Err(refusal) => return refuse(refusal),
    };
    if port == 443 {
        return refuse(Refusal::new(
            Code::EgressHttpRefused,
            format!(
                "plain http:// to {host}:443 is refused: that is a TLS port and the credential would \
                 cross the network unencrypted; use https://{host}/"
            ),
        ));
    }
    // Plain requests through a proxy may name a different host each: each
    // takes an idle connection to its own target from the pool (or dials
    // one) and gives it back once its answer's head is in; the answer
    // streams on it, and it is handed out again only when ready.
    let key = shared.plain_pool.key(&host, port, &credential);
    let idle = shared.plain_pool.take(&key);
    let tunnel = Tunnel {
        shared,
        host,
        port,
        credential,
        upstream: tokio::sync::Mutex::new(idle),
        tls: false,
    };
    let response = tunnel.request(req).await;
    if let Some(sender) = tunnel.upstream.into_inner() {
        tunnel.shared.plain_pool.put(key, sender);
    }
    response
}

/// The host and port of an absolute `http://` URL (80 when unstated), checked
/// as a CONNECT target is; user info in the URL is refused.
fn target(uri: &Uri) -> Result<(String, u16), Refusal> {
    let authority = uri
        .authority()
        .ok_or_else(|| Refusal::new(Code::BadProxyRequest, "an http:// request needs a host"))?;
    if authority.as_str().contains('@') {
        return Err(Refusal::new(
            Code::BadProxyRequest,
            "user info in an http:// URL is not forwarded; the broker attaches credentials itself",
        ));
    }
    let port = authority.port_u16().unwrap_or(80);
    let host = authority.host();
    let as_connect: Uri = format!("{host}:{port}")
        .parse()
        .map_err(|_| Refusal::new(Code::BadProxyRequest, "the http:// URL's host is not valid"))?;
    connect_target(&as_connect)
}

#[cfg(test)]
mod tests {
    use super::*;

    // issue 15 remainder, item 2: absolute http:// targets, default port 80
    #[test]
    fn plain_http_targets_are_checked_and_default_to_port_80() {
        let t = |s: &str| target(&s.parse::<Uri>().unwrap());
        assert_eq!(
            t("http://Example.com/x").unwrap(),
            ("example.com".into(), 80)
        );
        assert_eq!(
            t("http://127.0.0.2:8080/").unwrap(),
            ("127.0.0.2".into(), 8080)
        );
        assert_eq!(t("http://[::1]:81/").unwrap(), ("::1".into(), 81));
        assert!(t("http://user:pw@example.com/").is_err());
        assert!(t("http://bad_host/").is_err());
    }
}
