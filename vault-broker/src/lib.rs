//! vault-broker: brokered egress. An HTTP forward proxy on loopback that an
//! agent started by `vault run --broker` sends its HTTPS traffic through. For
//! each request it authenticates the agent's vault credential, matches the
//! agent's `[[egress]]` rules, attaches the real secret the rule names, and
//! forwards over verified TLS, so the agent never holds the third-party key.
//!
//! What lives here: the listener and CONNECT handling ([`serve`]), the local CA
//! ([`LocalCa`]), plain `http://` forwarding and WebSocket relaying (which
//! share the CONNECT path's decide/attach/forward), the one SSRF-guarded
//! dialer ([`dial`]), and refusals
//! ([`Refusal`]). What must not: access rules and storage (vault-core's, reached
//! through a [`Backend`] the server implements over its one vault thread).
//!
//! Order per connection, fixed: authenticate (407 otherwise), then answer the
//! CONNECT, then terminate TLS with a leaf for the CONNECT host, then per
//! request: authenticate again, decide by policy, attach, forward to the
//! CONNECT target only.

#![deny(missing_docs)]

mod ca;
pub mod dial;
mod headers;
mod hold;
mod outbound;
mod plain;
mod proxy;
mod refusal;
pub mod usage;
mod websocket;

use std::future::Future;
use std::sync::Arc;

use vault_core::notify::Event;
use vault_core::policy::egress::EgressRequest;
use vault_core::usage::UsageRecord;
use vault_core::{EgressGrant, EgressMeta, HoldOutcome, SecretString};

pub use crate::ca::{upstream_roots, CaError, LocalCa, LEAF_LIFETIME};
pub use crate::hold::{HeldRequest, MAX_HELD_BODY, MAX_HELD_PER_AGENT};
pub use crate::outbound::{Leak, Leaked, Outbound, MAX_SCANNED_BODY};
pub use crate::proxy::{serve, Config, DEFAULT_MAX_CONNECTIONS, DEFAULT_WS_IDLE_TIMEOUT};
pub use crate::refusal::{Code, ErrorShape, Refusal, REFUSAL_HEADER};
pub use crate::usage::Accounting;
pub use ipnet::IpNet;

#[doc(hidden)]
pub mod testing {
    //! Hooks for benches; not a stable API.
    use crate::outbound::{self, Outbound};

    /// Runs the scan `egress_scan = "block"` applies to one request (URL,
    /// headers, body) and returns how many matches stop it.
    pub fn scan_request(
        ob: &Outbound,
        headers: &mut hyper::HeaderMap,
        path_and_query: &mut String,
        body: &[u8],
    ) -> usize {
        outbound::scan_for_bench(ob, headers, path_and_query, body)
    }
}

/// What the broker asks of the vault. The server implements it over its vault
/// thread; each call checks the credential against the store again.
pub trait Backend: Send + Sync + 'static {
    /// Checks `credential` (named key or token), returning a reason to refuse.
    fn authenticate(
        &self,
        credential: Arc<SecretString>,
    ) -> impl Future<Output = Result<(), Refusal>> + Send;

    /// Checks `credential` and decides one request by its agent's rules.
    fn grant(
        &self,
        credential: Arc<SecretString>,
        request: OwnedRequest,
    ) -> impl Future<Output = Result<EgressGrant, Refusal>> + Send;

    /// [`Backend::grant`], with who the request is for and its `[budget]`
    /// (what usage accounting, budgets, holding and
    /// outbound scanning need).
    fn grant_with_meta(
        &self,
        credential: Arc<SecretString>,
        request: OwnedRequest,
    ) -> impl Future<Output = Result<(EgressGrant, EgressMeta), Refusal>> + Send;

    /// Stores a batch of usage records and the count of those dropped.
    fn record_usage(
        &self,
        records: Vec<UsageRecord>,
        dropped: u64,
    ) -> impl Future<Output = ()> + Send {
        let _ = (records, dropped);
        async {}
    }

    /// Suspends `key_id` for `reason` (a person's approval reinstates it).
    fn suspend_key(&self, key_id: String, reason: String) -> impl Future<Output = ()> + Send {
        let _ = (key_id, reason);
        async {}
    }

    /// Sends `event` through the vault's notifiers.
    fn notify(&self, event: Event) -> impl Future<Output = ()> + Send {
        let _ = event;
        async {}
    }

    /// Opens the approval for a request held for a person (`approval = true`),
    /// expiring after `wait`; returns its id. The default cannot hold: refused.
    fn hold_open(
        &self,
        _credential: Arc<SecretString>,
        _held: HeldRequest,
        _wait: std::time::Duration,
    ) -> impl Future<Output = Result<String, Refusal>> + Send {
        async {
            Err(Refusal::new(
                Code::Internal,
                "this broker cannot hold requests",
            ))
        }
    }

    /// Where a held request stands; an approved one is claimed by this call
    /// (only one caller ever gets [`HoldOutcome::Send`]). With `give_up`, one
    /// still pending is closed as timed out.
    fn hold_poll(
        &self,
        _approval_id: String,
        _give_up: bool,
    ) -> impl Future<Output = Result<HoldOutcome, Refusal>> + Send {
        async { Ok(HoldOutcome::Denied) }
    }

    /// Closes a held request nobody waits for any more (the agent hung up),
    /// approved or not: it is never sent.
    fn hold_close(&self, _approval_id: String) -> impl Future<Output = ()> + Send {
        async {}
    }

    /// The scanner and the vault's known-credential matcher for what agents
    /// send. `None`: scanning is impossible, so requests it applies to are refused.
    fn outbound(&self) -> Option<Outbound> {
        None
    }

    /// Hands credentials found in an outbound request to the vault's leak
    /// flow (keys rotate, tokens are revoked, stored secrets are marked
    /// compromised with an approval) and records the finding. Returns when done.
    fn leaked(
        &self,
        _credential: Arc<SecretString>,
        _leak: Leak,
    ) -> impl Future<Output = ()> + Send {
        async {}
    }
}

/// An [`EgressRequest`] that can cross threads.
#[derive(Clone, Debug)]
pub struct OwnedRequest {
    /// The method.
    pub method: String,
    /// The CONNECT target's host.
    pub host: String,
    /// The CONNECT target's port.
    pub port: u16,
    /// The path, without the query.
    pub path: String,
    /// TLS upstream (CONNECT) or plain TCP (absolute-form `http://`).
    pub tls: bool,
}

impl OwnedRequest {
    /// The borrowed form vault-core decides on.
    pub fn as_request(&self) -> EgressRequest<'_> {
        EgressRequest {
            method: &self.method,
            host: &self.host,
            port: self.port,
            path: &self.path,
            tls: self.tls,
        }
    }
}

/// The TLS client configuration upstream connections use: `roots`, ALPN
/// HTTP/1.1, rustls on ring.
///
/// # Errors
/// A PEM of `extra_ca_pems` that holds no usable certificate.
pub fn upstream_tls_config(extra_ca_pems: &[String]) -> Result<Arc<rustls::ClientConfig>, CaError> {
    let roots = upstream_roots(extra_ca_pems)?;
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| CaError(e.to_string()))?
    .with_root_certificates(roots)
    .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}
