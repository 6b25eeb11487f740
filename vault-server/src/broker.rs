//! The broker's side of the server: the [`vault_broker::Backend`] over the
//! server's one vault thread (every brokered request checks its credential and
//! reads its secret there, so revocation and rotation apply on the next
//! request). `GET /v1/broker/ca.pem` is in routes/broker.rs.

use std::sync::Arc;

use vault_broker::{Backend, Code, OwnedRequest, Refusal};
use vault_core::Denial;
use vault_core::{EgressGrant, Error, SecretString};

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
