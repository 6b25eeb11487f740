//! The admin API: the operator's calls, authorised by the admin token the
//! server wrote (0600) at start. Compared in constant time.

use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use subtle::ConstantTimeEq;
use vault_core::{AgentName, Policy, Principal, SecretBytes, SecretPath};

use super::bearer;
use crate::error::ApiError;
use crate::state::AppState;

const OP: &Principal = &Principal::Operator;

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/admin/agents", get(list_agents).post(add_agent))
        .route("/v1/admin/secrets", post(set_secret))
        .route("/v1/admin/keys", get(list_keys).post(issue_key))
        .route("/v1/admin/approvals", get(list_approvals))
        .route("/v1/admin/keys/{id}/revoke", post(revoke_key))
        .route("/v1/admin/tokens/revoke", post(revoke_token))
}

pub(super) fn require_admin(state: &AppState, headers: &HeaderMap) -> Result<(), ApiError> {
    let given = bearer(headers)?;
    let want = state.inner.admin_token.expose_secret();
    if given.len() == want.len() && bool::from(given.as_bytes().ct_eq(want.as_bytes())) {
        Ok(())
    } else {
        Err(ApiError::new(
            axum::http::StatusCode::UNAUTHORIZED,
            "bad_admin_token",
            "the admin token is not valid",
        ))
    }
}

async fn list_agents(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<serde_json::Value>, ApiError> {
    require_admin(&state, &headers)?;
    let agents = state.with_vault(|v| Ok(v.list_agents(OP)?)).await?;
    // the same view `vault agent ls --json` prints (issue 14)
    let list: Vec<_> = agents
        .iter()
        .map(vault_core::view::AgentView::from)
        .collect();
    Ok(Json(serde_json::json!({ "agents": list })))
}

/// Every named key, as `vault keys ls --json` prints them (issue 14).
async fn list_keys(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<serde_json::Value>, ApiError> {
    require_admin(&state, &headers)?;
    let keys = state.with_vault(|v| Ok(v.list_keys(OP, None)?)).await?;
    let list: Vec<_> = keys.iter().map(vault_core::view::KeyView::from).collect();
    Ok(Json(serde_json::json!({ "keys": list })))
}

/// Every approval, as `vault approvals --json` prints them (issue 14).
async fn list_approvals(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<serde_json::Value>, ApiError> {
    require_admin(&state, &headers)?;
    let list = state.with_vault(|v| Ok(v.approvals(OP)?)).await?;
    let list: Vec<_> = list
        .iter()
        .map(vault_core::view::ApprovalView::from)
        .collect();
    Ok(Json(serde_json::json!({ "approvals": list })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AgentBody {
    name: String,
}

async fn add_agent(
    State(state): State<AppState>,
    headers: HeaderMap,
    Json(body): Json<AgentBody>,
) -> Result<Json<serde_json::Value>, ApiError> {
    require_admin(&state, &headers)?;
    let name = AgentName::parse(&body.name)?;
    let reply = name.to_string();
    state
        .with_vault(move |v| Ok(v.add_agent(OP, &name, &Policy::default())?))
        .await?;
    Ok(Json(serde_json::json!({"agent": reply})))
}

/// The value travels in the body, never in the URL (which could be logged).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SecretBody {
    path: String,
    value: String,
}

async fn set_secret(
    State(state): State<AppState>,
    headers: HeaderMap,
    Json(body): Json<SecretBody>,
) -> Result<Json<serde_json::Value>, ApiError> {
    require_admin(&state, &headers)?;
    let path = SecretPath::parse(&body.path)?;
    let value = SecretBytes::new(body.value.into_bytes());
    let reply = path.to_string();
    let version = state
        .with_vault(move |v| Ok(v.set_secret(OP, &path, &value)?))
        .await?;
    Ok(Json(serde_json::json!({"name": reply, "version": version})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyBody {
    name: String,
    agent: String,
    ttl_seconds: Option<u64>,
}

async fn issue_key(
    State(state): State<AppState>,
    headers: HeaderMap,
    Json(body): Json<KeyBody>,
) -> Result<Json<serde_json::Value>, ApiError> {
    require_admin(&state, &headers)?;
    let name = AgentName::parse(&body.name)?;
    let agent = AgentName::parse(&body.agent)?;
    let ttl = Duration::from_secs(body.ttl_seconds.unwrap_or(90 * 86_400));
    let st = state.clone();
    let issued = state
        .with_vault(move |v| {
            let issued = v.issue_key(OP, &name, &agent, ttl, false)?;
            st.refresh_snapshot(v)?;
            Ok(issued)
        })
        .await?;
    Ok(Json(serde_json::json!({
        "name": issued.info.name, "agent": issued.info.agent.as_str(),
        "key_id": issued.info.key_id, "key": issued.key.expose_secret(),
    })))
}

async fn revoke_key(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    require_admin(&state, &headers)?;
    let st = state.clone();
    let info = state
        .with_vault(move |v| {
            let info = v.revoke_key(OP, &id)?;
            st.refresh_snapshot(v)?;
            Ok(info)
        })
        .await?;
    Ok(Json(serde_json::json!({"revoked": info.key_id})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenBody {
    token: String,
}

async fn revoke_token(
    State(state): State<AppState>,
    headers: HeaderMap,
    Json(body): Json<TokenBody>,
) -> Result<Json<serde_json::Value>, ApiError> {
    require_admin(&state, &headers)?;
    let st = state.clone();
    let id = state
        .with_vault(move |v| {
            let claims = v.verify_token(&body.token)?;
            v.revoke_token(OP, &claims)?;
            st.refresh_snapshot(v)?;
            Ok(claims.token_id)
        })
        .await?;
    Ok(Json(serde_json::json!({"revoked": id})))
}
