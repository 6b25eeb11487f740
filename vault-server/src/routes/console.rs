//! The console's two admin calls (admin token): a one-time sign-in path for
//! `vault ui` to print, and ending every console session for `vault ui
//! logout --all`. The pages themselves are in `crate::console`.

use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::post;
use axum::{Json, Router};
use vault_core::Principal;

use crate::error::ApiError;
use crate::state::AppState;

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/admin/console/login", post(login_url))
        .route("/v1/admin/console/logout-all", post(logout_all))
}

/// `POST /v1/admin/console/login` (admin token): a one-time sign-in path
/// for `vault ui` to print. The code in it works once, for minutes.
async fn login_url(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<serde_json::Value>, ApiError> {
    super::admin::require_admin(&state, &headers)?;
    let code = state.inner.console.new_code()?;
    Ok(Json(serde_json::json!({
        "path": format!("/ui/login?code={}", code.expose_secret()),
        "expires_in_seconds": crate::console::LOGIN_CODE_TTL.as_secs(),
    })))
}

/// `POST /v1/admin/console/logout-all` (admin token): ends every console
/// session (`vault ui logout --all`).
async fn logout_all(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<serde_json::Value>, ApiError> {
    super::admin::require_admin(&state, &headers)?;
    let n = state
        .with_vault(|v| Ok(v.console_sessions_close_all(&Principal::Operator)?))
        .await?;
    Ok(Json(serde_json::json!({ "ended": n })))
}
