//! `GET /v1/broker/ca.pem`: the egress broker's CA certificate, which agents
//! started by `vault run --broker` must trust. Public: no credential needed.

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use crate::error::ApiError;
use crate::state::AppState;

pub(super) fn router() -> Router<AppState> {
    Router::new().route("/v1/broker/ca.pem", get(ca_pem))
}

/// The CA certificate (public); 404 `broker_off` when the server runs no broker.
async fn ca_pem(State(state): State<AppState>) -> Response {
    match state.broker_ca_pem() {
        Some(pem) => (
            [(header::CONTENT_TYPE, "application/x-pem-file")],
            pem.to_owned(),
        )
            .into_response(),
        None => ApiError::new(
            StatusCode::NOT_FOUND,
            "broker_off",
            "this server runs no broker; start it with: vault server --broker 127.0.0.1:0",
        )
        .into_response(),
    }
}
