//! The egress broker's API: `GET /v1/broker/ca.pem` (the CA certificate
//! agents started by `vault run --broker` must trust) and `GET /v1/broker`
//! (where the broker listens, and the same certificate, as JSON), both public;
//! `GET /v1/broker/placeholders` (a token: the names of the secrets the
//! caller's own egress rules attach, never a value), so a remote-mode
//! `vault run --broker` knows which variables get placeholders.

use axum::extract::{Extension, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use vault_core::policy::egress::PLACEHOLDER;
use vault_core::Principal;

use super::{bearer, CallerSlot};
use crate::error::ApiError;
use crate::state::AppState;

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/broker", get(info))
        .route("/v1/broker/ca.pem", get(ca_pem))
        .route("/v1/broker/placeholders", get(placeholders))
}

fn broker_off() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "broker_off",
        "this server runs no broker; start it with: vault server --broker 127.0.0.1:0",
    )
}

/// The CA certificate (public); 404 `broker_off` when the server runs no broker.
async fn ca_pem(State(state): State<AppState>) -> Response {
    match state.broker_ca_pem() {
        Some(pem) => (
            [(header::CONTENT_TYPE, "application/x-pem-file")],
            pem.to_owned(),
        )
            .into_response(),
        None => broker_off().into_response(),
    }
}

/// `{"addr", "ca_pem"}` (public: an address and a certificate).
async fn info(State(state): State<AppState>) -> Result<Json<serde_json::Value>, ApiError> {
    match (state.broker_addr(), state.broker_ca_pem()) {
        (Some(addr), Some(pem)) => Ok(Json(serde_json::json!({ "addr": addr, "ca_pem": pem }))),
        _ => Err(broker_off()),
    }
}

/// `{"agent", "placeholder", "names"}` for the token's agent: the env names of
/// the secrets its `[[egress]]` rules attach. Any valid token may ask (an
/// `egress` token included): names only, never a value.
async fn placeholders(
    State(state): State<AppState>,
    Extension(caller): Extension<CallerSlot>,
    headers: HeaderMap,
) -> Result<Json<serde_json::Value>, ApiError> {
    let claims = state.check_token(bearer(&headers)?)?;
    caller.set(claims.agent.as_str(), &claims.key_id);
    let agent = claims.agent.clone();
    let names = state
        .with_vault(move |vault| {
            let policy = vault.policy(&Principal::Agent(agent.clone()), &agent)?;
            let mut names: Vec<String> = policy
                .egress()
                .rules()
                .iter()
                .map(|r| r.secret.env_name().to_string())
                .collect();
            names.sort();
            names.dedup();
            Ok(names)
        })
        .await?;
    Ok(Json(serde_json::json!({
        "agent": claims.agent.as_str(),
        "placeholder": PLACEHOLDER,
        "names": names,
    })))
}
