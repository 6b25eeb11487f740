//! The broker's side of the server: the [`vault_broker::Backend`] over the
//! server's one vault thread (every brokered request checks its credential and
//! reads its secret there, so revocation and rotation apply on the next
//! request). `GET /v1/broker/ca.pem` is in routes/broker.rs.

use std::sync::Arc;

use vault_broker::{Backend, Code, OwnedRequest, Refusal};
use vault_core::notify::Event;
use vault_core::usage::UsageRecord;
use vault_core::{EgressGrant, EgressMeta, Error, SecretString};

use crate::state::AppState;

/// The broker's view of the vault.
#[derive(Clone)]
pub struct VaultBackend(pub AppState);

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
        let answer = self
            .0
            .with_vault(move |vault| {
                Ok(vault.egress_grant(credential.expose_secret(), &request.as_request()))
            })
            .await
            .map_err(|_| internal())?;
        answer.map_err(refusal)
    }

    async fn grant_with_meta(
        &self,
        credential: Arc<SecretString>,
        request: OwnedRequest,
    ) -> Result<(EgressGrant, EgressMeta), Refusal> {
        let answer = self
            .0
            .with_vault(move |vault| {
                Ok(vault.egress_grant_with_meta(credential.expose_secret(), &request.as_request()))
            })
            .await
            .map_err(|_| internal())?;
        answer.map_err(refusal)
    }

    async fn record_usage(&self, records: Vec<UsageRecord>, dropped: u64) {
        let n = records.len();
        let written = self
            .0
            .with_vault(move |vault| Ok(vault.record_usage(&records, dropped)?))
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
                for err in vault.notify(&event) {
                    tracing::warn!("notification failed: {err}");
                }
                Ok(())
            })
            .await;
        if sent.is_err() {
            tracing::warn!("broker: could not send a notification");
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
