//! The broker's side of the server: the [`vault_broker::Backend`] over the
//! server's one vault thread (every brokered request checks its credential and
//! reads its secret there, so revocation and rotation apply on the next
//! request). `GET /v1/broker/ca.pem` is in routes/broker.rs.
//!
//! Also what issue 16's governance needs of the vault: held requests'
//! approvals (opened, polled, closed through the vault, so `vault approve` in
//! another process decides them), and outbound scanning's matcher (the same
//! [`crate::leak::Matcher`] `vault scan` uses, reloaded at most once a second)
//! and leak flow ([`crate::leak::act`]).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use vault_broker::{Backend, Code, HeldRequest, Leak, Leaked, Outbound, OwnedRequest, Refusal};
use vault_core::{EgressGovernance, EgressGrant, Error, HoldOutcome, Principal, SecretString};

use crate::leak::{Matcher, Seen};
use crate::state::AppState;

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

fn load_matcher(state: &AppState) -> Option<Arc<Matcher>> {
    Matcher::load(state.home()).map(|m| Arc::new(m.with_token_signer(state.inner.signer.clone())))
}

impl Backend for VaultBackend {
    async fn authenticate(&self, credential: Arc<SecretString>) -> Result<(), Refusal> {
        let answer = self
            .0
            .with_vault(move |vault| Ok(vault.egress_authenticate(credential.expose_secret())))
            .await
            .map_err(|_| internal())?;
        answer.map(|_| ()).map_err(refusal)
    }

    async fn grant(
        &self,
        credential: Arc<SecretString>,
        request: OwnedRequest,
    ) -> Result<EgressGrant, Refusal> {
        self.grant_governed(credential, request)
            .await
            .map(|(grant, _)| grant)
    }

    async fn grant_governed(
        &self,
        credential: Arc<SecretString>,
        request: OwnedRequest,
    ) -> Result<(EgressGrant, EgressGovernance), Refusal> {
        let answer = self
            .0
            .with_vault(move |vault| {
                Ok(vault.egress_grant_governed(credential.expose_secret(), &request.as_request()))
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

    async fn hold_poll(&self, approval_id: String, give_up: bool) -> Result<HoldOutcome, Refusal> {
        let answer = self
            .0
            .with_vault(move |vault| Ok(vault.egress_hold_poll(&approval_id, give_up)))
            .await
            .map_err(|_| internal())?;
        answer.map_err(refusal)
    }

    async fn hold_close(&self, approval_id: String) {
        let closed = self
            .0
            .with_vault(move |vault| Ok(vault.egress_hold_close(&approval_id)?))
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
                    "egress.exfiltration",
                    Some(&format!(
                        "{}:{} rules={}",
                        leak.host,
                        leak.port,
                        leak.rules.join(",")
                    )),
                    if leak.redacted {
                        "ok:redacted"
                    } else {
                        "denied:exfiltration_blocked"
                    },
                )?;
                let seen = leak
                    .items
                    .into_iter()
                    .map(|item| match item {
                        Leaked::Credential(text) => Seen::Credential(text),
                        Leaked::Secret(path) => Seen::Secret(path),
                    })
                    .collect();
                let actions = crate::leak::act(vault, seen, &vault_scan::Report::default())?;
                state.refresh_snapshot(vault)?;
                for err in crate::leak::notify(vault, &actions) {
                    tracing::warn!("notification failed: {err}");
                }
                for action in &actions {
                    tracing::warn!(
                        "broker: a credential in an outbound request: {}",
                        crate::leak::describe(action)
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
            code: "out_of_scope",
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
