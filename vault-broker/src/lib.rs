//! vault-broker: brokered egress. An HTTP forward proxy on loopback that an
//! agent started by `vault run --broker` sends its HTTPS traffic through. For
//! each request it authenticates the agent's vault credential, matches the
//! agent's `[[egress]]` rules, attaches the real secret the rule names, and
//! forwards over verified TLS, so the agent never holds the third-party key.
//!
//! What lives here: the listener and CONNECT handling ([`serve`]), the local CA
//! ([`LocalCa`]), the one SSRF-guarded dialer ([`dial`]), and refusals
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
mod proxy;
mod refusal;
pub mod usage;

use std::future::Future;
use std::sync::Arc;

use vault_core::notify::Event;
use vault_core::policy::egress::EgressRequest;
use vault_core::usage::UsageRecord;
use vault_core::{EgressGrant, EgressMeta, SecretString};

pub use crate::ca::{upstream_roots, CaError, LocalCa, LEAF_LIFETIME};
pub use crate::proxy::{serve, Config};
pub use crate::refusal::{Code, ErrorShape, Refusal, REFUSAL_HEADER};
pub use crate::usage::Accounting;
pub use ipnet::IpNet;

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
    /// (what usage accounting needs).
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
}

impl OwnedRequest {
    /// The borrowed form vault-core decides on.
    pub fn as_request(&self) -> EgressRequest<'_> {
        EgressRequest {
            method: &self.method,
            host: &self.host,
            port: self.port,
            path: &self.path,
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
