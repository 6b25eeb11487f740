//! The broker's side of the server: the [`vault_broker::Backend`] over the
//! server's one vault thread (every brokered request checks its credential and
//! reads its secret there, so revocation and rotation apply on the next
//! request: on SQLite from vault-core's cache, emptied by any change; the
//! checks and their audit records run in the worker's group commit, so
//! concurrent requests share one transaction and one fsync). `GET /v1/broker/ca.pem` is in routes/broker.rs.
//!
//! Also what issue 16's governance needs of the vault: held requests'
//! approvals (opened, polled, closed through the vault, so `vault approve` in
//! another process decides them), and outbound scanning's matcher (the same
//! [`vault_guard::leak::Matcher`] `vault scan` uses, reloaded at most once a second)
//! and leak flow ([`vault_guard::leak::act`]).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use vault_broker::{Backend, Code, HeldRequest, Leak, Leaked, Outbound, OwnedRequest, Refusal};
use vault_core::notify::Event;
use vault_core::usage::UsageRecord;
use vault_core::Denial;
use vault_core::{EgressGrant, EgressMeta, Error, HoldOutcome, Principal, SecretString};

use crate::state::AppState;
use vault_guard::leak::{Matcher, Seen};

/// How old the outbound matcher may get before it is reloaded: a key issued
/// since is still blocked (any valid `avk_`/`avt_` is), a secret stored
/// since may pass unrecognised for this long.
const MATCHER_MAX_AGE: Duration = Duration::from_secs(1);

/// The broker's view of the vault.
#[derive(Clone)]
pub struct VaultBackend(pub AppState);

/// The outbound matcher, reloaded off the request path when it is stale.
#[derive(Default)]
pub(crate) struct KnownCache {
    current: Mutex<Option<(Instant, Arc<Matcher>)>>,
    reloading: std::sync::atomic::AtomicBool,
}

impl KnownCache {
    /// A cache holding the open vault's known credentials, read through its
    /// store (either backend); empty when they cannot be read (the first
    /// request then loads them).
    pub(crate) fn loaded(
        vault: &vault_core::Vault,
        signer: &vault_core::TokenSigner,
    ) -> KnownCache {
        let m = Matcher::of_vault(vault)
            .map_err(|e| {
                tracing::warn!(
                    "scanning outbound requests without the vault's known credentials: {e}"
                )
            })
            .ok()
            .map(|m| {
                (
                    Instant::now(),
                    Arc::new(m.with_token_signer(signer.clone())),
                )
            });
        KnownCache {
            current: Mutex::new(m),
            reloading: Default::default(),
        }
    }
}

impl VaultBackend {
    fn matcher(&self) -> Option<Arc<Matcher>> {
        let cache = &self.0.inner.egress_known;
        let now = Instant::now();
        let current = cache.current.lock().ok()?.clone();
        match current {
            Some((at, m)) if now.duration_since(at) < MATCHER_MAX_AGE => Some(m),
            Some((_, stale)) => {
                use std::sync::atomic::Ordering;
                if !cache.reloading.swap(true, Ordering::AcqRel) {
                    let state = self.0.clone();
                    tokio::task::spawn_blocking(move || {
                        let fresh = load_matcher(&state);
                        let cache = &state.inner.egress_known;
                        if let (Some(m), Ok(mut slot)) = (fresh, cache.current.lock()) {
                            *slot = Some((Instant::now(), m));
                        }
                        cache.reloading.store(false, Ordering::Release);
                    });
                }
                Some(stale)
            }
            None => {
                let m = load_matcher(&self.0)?;
                if let Ok(mut slot) = cache.current.lock() {
                    *slot = Some((now, m.clone()));
                }
                Some(m)
            }
        }
    }
}

/// The vault's known credentials read on a connection of its own: its file,
/// or its PostgreSQL database (a vault there has no `vault.db`, and reading
/// only the file left the broker blind to its secrets and keys).
fn load_matcher(state: &AppState) -> Option<Arc<Matcher>> {
    Matcher::load_at(&state.inner.location)
        .map(|m| Arc::new(m.with_token_signer(state.inner.signer.clone())))
}

impl Backend for VaultBackend {
    async fn authenticate(&self, credential: Arc<SecretString>) -> Result<(), Refusal> {
        // In the next group commit, like the API's reads: the credential is
        // checked against the store now, and what the check writes (a
        // failed-attempt count) shares one fsync with the requests beside it.
        let answer = self
            .0
            .with_vault_batched(move |vault| {
                Ok(vault.egress_authenticate(credential.expose_secret()))
            })
            .await
            .map_err(|_| internal())?;
        answer.map(|_| ()).map_err(refusal)
    }

    async fn grant(
        &self,
        credential: Arc<SecretString>,
        request: OwnedRequest,
    ) -> Result<EgressGrant, Refusal> {
        self.grant_with_meta(credential, request)
            .await
            .map(|(grant, _)| grant)
    }

    async fn grant_with_meta(
        &self,
        credential: Arc<SecretString>,
        request: OwnedRequest,
    ) -> Result<(EgressGrant, EgressMeta), Refusal> {
        // In the next group commit: the decision reads the store now (a
        // revoked, suspended or rotated credential or secret applies to this
        // very request) and its audit record commits before the request
        // leaves, sharing the commit (and its fsync) with up to
        // `worker::MAX_BATCH` requests queued beside it, where each one
        // alone paid a transaction, a file lock and an fsync.
        let answer = self
            .0
            .with_vault_batched(move |vault| {
                Ok(vault.egress_grant_with_meta(credential.expose_secret(), &request.as_request()))
            })
            .await
            .map_err(|_| internal())?;
        answer.map_err(refusal)
    }

    async fn hold_open(
        &self,
        credential: Arc<SecretString>,
        held: HeldRequest,
        wait: Duration,
    ) -> Result<String, Refusal> {
        let answer = self
            .0
            .with_vault(move |vault| {
                let request = vault_core::HeldRequest {
                    method: &held.method,
                    host: &held.host,
                    port: held.port,
                    path: &held.path,
                    query: &held.query,
                    body_len: held.body_len,
                    preview: &held.preview,
                };
                Ok(vault.egress_hold_open(credential.expose_secret(), &request, wait))
            })
            .await
            .map_err(|_| internal())?;
        answer.map_err(refusal)
    }

    async fn record_usage(&self, records: Vec<UsageRecord>, dropped: u64) {
        let n = records.len();
        // In the next group commit: it touches nothing outside the database,
        // and shares an fsync with the reads and mints queued beside it.
        let written = self
            .0
            .with_vault_batched(move |vault| Ok(vault.record_usage(&records, dropped)?))
            .await;
        if written.is_err() {
            tracing::error!(records = n, "broker: could not store usage records");
        }
    }

    async fn suspend_key(&self, key_id: String, reason: String) {
        let st = self.0.clone();
        let done = self
            .0
            .with_vault(move |vault| {
                vault.suspend_key(&key_id, &reason)?;
                // The suspension applies to tokens at once, not at the next refresh.
                st.refresh_snapshot(vault)
            })
            .await;
        if done.is_err() {
            tracing::error!("broker: could not suspend a key over its budget");
        }
    }

    async fn notify(&self, event: Event) {
        let sent = self
            .0
            .with_vault(move |vault| {
                for err in vault_guard::notify::send(vault, &event) {
                    tracing::warn!("notification failed: {err}");
                }
                Ok(())
            })
            .await;
        if sent.is_err() {
            tracing::warn!("broker: could not send a notification");
        }
    }

    async fn hold_poll(&self, approval_id: String, give_up: bool) -> Result<HoldOutcome, Refusal> {
        let answer = self
            .0
            .with_vault(move |vault| {
                let id = vault_core::ApprovalId::parse(&approval_id);
                Ok(id.and_then(|id| vault.egress_hold_poll(&id, give_up)))
            })
            .await
            .map_err(|_| internal())?;
        answer.map_err(refusal)
    }

    async fn hold_close(&self, approval_id: String) {
        let closed = self
            .0
            .with_vault(move |vault| {
                let id = vault_core::ApprovalId::parse(&approval_id)?;
                Ok(vault.egress_hold_close(&id)?)
            })
            .await;
        if closed.is_err() {
            tracing::warn!("broker: could not close a held request's approval");
        }
    }

    fn outbound(&self) -> Option<Outbound> {
        let scanner = self.0.scanner().ok()?;
        let known = self
            .matcher()
            .map(|m| m as Arc<dyn vault_scan::KnownSecrets + Send + Sync>);
        Some(Outbound { scanner, known })
    }

    async fn leaked(&self, credential: Arc<SecretString>, leak: Leak) {
        let state = self.0.clone();
        let done = self
            .0
            .with_vault(move |vault| {
                let actor = match vault.egress_authenticate(credential.expose_secret()) {
                    Ok(agent) => Principal::Agent(agent),
                    Err(_) => Principal::Operator,
                };
                vault.audit(
                    &actor,
                    None,
                    vault_core::AuditAction::EgressExfiltration,
                    Some(&format!(
                        "{}:{} rules={}",
                        leak.host,
                        leak.port,
                        leak.rules.join(",")
                    )),
                    if leak.redacted {
                        vault_core::AuditOutcome::REDACTED
                    } else {
                        vault_core::AuditOutcome::EXFILTRATION_BLOCKED
                    },
                )?;
                let seen = leak
                    .items
                    .into_iter()
                    .map(|item| match item {
                        Leaked::Credential(text) => Seen::Credential(text),
                        Leaked::Secret(path, value) => Seen::Secret(path, value),
                    })
                    .collect();
                // act notifies each action itself (vault_guard::leak::act).
                let acted = vault_guard::leak::act(vault, seen, &vault_scan::Report::default())?;
                state.refresh_snapshot(vault)?;
                for err in &acted.undelivered {
                    tracing::warn!("notification failed: {err}");
                }
                for action in &acted.actions {
                    tracing::warn!(
                        "broker: a credential in an outbound request: {}",
                        vault_guard::leak::describe(action)
                    );
                }
                Ok(())
            })
            .await;
        if done.is_err() {
            tracing::error!("broker: acting on a credential found in an outbound request failed");
        }
    }
}

fn refusal(e: Error) -> Refusal {
    match &e {
        Error::BadCredential {
            code: Denial::OutOfScope,
            message,
        } => Refusal::new(Code::EgressDenied, format!("{message}; mint a token with the secret's scope")),
        Error::BadCredential { code, message } => Refusal::new(
            Code::ProxyAuthRequired,
            format!(
                "the vault credential was refused ({code}: {message}); the operator can issue a key with: \
                 vault issue KEYNAME --agent AGENT"
            ),
        ),
        Error::NotFound { .. } => Refusal::new(
            Code::EgressDenied,
            format!("the secret this egress rule attaches is not readable ({e}); the operator can store it with: vault set AGENT/NAME"),
        ),
        Error::RateLimited { .. } => Refusal::new(Code::EgressDenied, e.to_string()),
        _ => {
            tracing::warn!(code = e.code(), "broker: vault error");
            internal()
        }
    }
}

fn internal() -> Refusal {
    Refusal::new(Code::Internal, "internal error; see the server's log")
}
