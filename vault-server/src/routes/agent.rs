//! The agent API. A named key only mints tokens; everything else takes a
//! token, checked in memory before the vault is touched.

use std::collections::BTreeMap;
use std::time::Duration;

use axum::extract::{Extension, Path, State};
use axum::http::HeaderMap;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use vault_core::{Principal, Scope, TokenRequest};

use super::{bearer, CallerSlot};
use crate::error::ApiError;
use crate::state::AppState;

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/auth/token", post(mint))
        .route("/v1/auth/attenuate", post(attenuate))
        .route("/v1/auth/whoami", get(whoami))
        .route("/v1/auth/revoke", post(revoke))
        .route("/v1/secrets/{name}", get(secret))
        .route("/v1/env", get(env))
        .route("/v1/scan", post(scan))
}

/// Body of `POST /v1/scan`: a message to check before it is kept.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ScanBody {
    text: String,
    /// Act on vault credentials found (rotate keys, revoke tokens, open approvals).
    #[serde(default)]
    rotate: bool,
}

/// Lets an agent runtime (a Claude Code or Hermes hook) check a message
/// before persisting it. Any valid token may ask, within its key's rate
/// limit, and each scan is audited. Stored secrets are matched only if the
/// token could read them, so the answer never says whether a text holds
/// another agent's value; `rotate` acts on stored secrets only when they
/// are the caller's own (issue 13, finding 1).
async fn scan(
    State(state): State<AppState>,
    Extension(caller): Extension<CallerSlot>,
    headers: HeaderMap,
    Json(body): Json<ScanBody>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let rid = caller.request_id();
    let claims = state.check_token(bearer(&headers)?)?;
    caller.set(claims.agent.as_str(), &claims.key_id);
    let agent = claims.agent.to_string();
    let (readable, known) = {
        let rid = rid.clone();
        let st = state.clone();
        state
            .with_vault_batched(move |vault| {
                tag(vault, &rid);
                st.recheck_token(vault, &claims)?;
                let readable = vault.scan_with_token(&claims)?;
                // through the store, so a server on PostgreSQL (no vault.db)
                // names its keys and secrets too; unreadable, the provider
                // rules still apply
                let known = vault_guard::leak::Matcher::of_vault(vault)
                    .map_err(|e| {
                        tracing::warn!("scanning without the vault's known credentials: {e}")
                    })
                    .ok();
                Ok((readable, known))
            })
            .await?
    };
    // The scan itself needs neither the vault lock nor a fresh scanner: only
    // acting on what it found does.
    let scanner = state.scanner()?;
    // Only a token whose signature verifies is named by its key (issue 13, finding 20).
    let signer = state.inner.signer.clone();
    let (report, matcher) = tokio::task::spawn_blocking(move || {
        let matcher = known.map(|m| m.only_secrets(readable).with_token_signer(signer));
        let known = matcher.as_ref().map(|m| m as &dyn vault_scan::KnownSecrets);
        let report = vault_scan::scan_bytes(
            &scanner,
            known,
            "<message>",
            body.text.as_bytes(),
            &vault_scan::ScanOptions::default(),
        );
        (report, matcher)
    })
    .await
    .map_err(|_| ApiError::internal())?;
    let mut actions = Vec::new();
    if let (true, Some(m)) = (body.rotate, matcher) {
        let (own, others) = m.take_actionable(&agent);
        if !own.is_empty() {
            let st = state.clone();
            let report = report.clone();
            actions = state
                .with_vault(move |vault| {
                    tag(vault, &rid);
                    // Notifies as it acts: the same events `vault scan --rotate` sends.
                    let done = vault_guard::leak::act(vault, own, &report)?;
                    st.refresh_snapshot(vault)?;
                    for err in &done.undelivered {
                        tracing::warn!("notification failed: {err}");
                    }
                    Ok(done
                        .actions
                        .iter()
                        .map(vault_guard::leak::describe)
                        .collect::<Vec<_>>())
                })
                .await?;
        }
        actions.extend(others);
    }
    let mut out = Vec::new();
    vault_scan::output::write_json(&mut out, &report).map_err(|_| ApiError::internal())?;
    let mut value: serde_json::Value = serde_json::from_slice(&out).unwrap_or_default();
    value["actions"] = serde_json::json!(actions);
    Ok(Json(value))
}

/// Body of `POST /v1/auth/token`; both fields optional.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct MintBody {
    scopes: Option<Vec<String>>,
    ttl_seconds: Option<u64>,
}

async fn mint(
    State(state): State<AppState>,
    Extension(caller): Extension<CallerSlot>,
    peer: Option<Extension<crate::conn::PeerAddr>>,
    headers: HeaderMap,
    body: Option<Json<MintBody>>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let rid = caller.request_id();
    let key = bearer(&headers)?.to_owned();
    if key.starts_with(vault_core::credential::TOKEN_PREFIX) {
        return Err(ApiError::unauthorized(
            "a token cannot mint tokens here; send the agent's named key",
        ));
    }
    let body = body.map(|Json(b)| b).unwrap_or_default();
    let scopes = match body.scopes {
        Some(list) => Some(
            list.iter()
                .map(|s| Scope::parse(s))
                .collect::<vault_core::Result<Vec<_>>>()?,
        ),
        None => None,
    };
    let request = TokenRequest {
        scopes,
        ttl: body.ttl_seconds.map(Duration::from_secs),
    };
    let st = state.clone();
    let minted = state
        .with_vault_batched(move |vault| {
            tag(vault, &rid);
            let info = vault.authenticate_key_uncounted(&key)?;
            caller.set(info.agent.as_str(), &info.key_id);
            let minted = vault.mint_token(&info, &request)?;
            // A key another `vault` process issued since the last refresh is
            // not in the snapshot yet, so every other route would refuse this
            // token (`key_revoked`) until the next refresh: refresh now.
            let known = st
                .inner
                .snapshot
                .read()
                .is_ok_and(|s| s.1.check(&minted.claims).is_ok());
            if !known {
                st.refresh_snapshot(vault)?;
            }
            Ok(minted)
        })
        .await;
    if let Err(e) = &minted {
        if e.code() == vault_core::Denial::UnknownKey.as_str() {
            let peer = peer.map_or_else(|| "unknown".into(), |Extension(p)| p.0.to_string());
            state.note_unknown_key(&peer).await;
        }
    }
    let minted = minted?;
    Ok(Json(serde_json::json!({
        "token": minted.token.expose_secret(),
        "expires_at": minted.claims.expires_at,
        "token_id": minted.claims.token_id,
        "scopes": minted.claims.scopes.iter().map(ToString::to_string).collect::<Vec<_>>(),
    })))
}

/// `POST /v1/auth/attenuate` with a token as the bearer: a child token with
/// at most its scopes and lifetime (`vault token --from-token` in remote
/// mode, issue 19). Kept apart from `/v1/auth/token`, where a token never
/// mints; an egress token is the broker's alone and attenuates nothing here.
async fn attenuate(
    State(state): State<AppState>,
    Extension(caller): Extension<CallerSlot>,
    headers: HeaderMap,
    body: Option<Json<MintBody>>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let rid = caller.request_id();
    let parent = bearer(&headers)?.to_owned();
    let claims = state.check_token(&parent)?;
    if claims.scopes.contains(&Scope::Egress) {
        return Err(ApiError::unauthorized(
            "an egress token cannot mint tokens; send a token for the vault's API",
        ));
    }
    caller.set(claims.agent.as_str(), &claims.key_id);
    let body = body.map(|Json(b)| b).unwrap_or_default();
    let scopes = match body.scopes {
        Some(list) => Some(
            list.iter()
                .map(|s| Scope::parse(s))
                .collect::<vault_core::Result<Vec<_>>>()?,
        ),
        None => None,
    };
    let request = TokenRequest {
        scopes,
        ttl: body.ttl_seconds.map(Duration::from_secs),
    };
    let st = state.clone();
    let minted = state
        .with_vault_batched(move |vault| {
            tag(vault, &rid);
            st.recheck_token(vault, &claims)?;
            Ok(vault.attenuate_token(&parent, &request)?)
        })
        .await?;
    Ok(Json(serde_json::json!({
        "token": minted.token.expose_secret(),
        "expires_at": minted.claims.expires_at,
        "token_id": minted.claims.token_id,
        "scopes": minted.claims.scopes.iter().map(ToString::to_string).collect::<Vec<_>>(),
    })))
}

async fn whoami(
    State(state): State<AppState>,
    Extension(caller): Extension<CallerSlot>,
    headers: HeaderMap,
) -> Result<Json<serde_json::Value>, ApiError> {
    let claims = state.check_token(bearer(&headers)?)?;
    caller.set(claims.agent.as_str(), &claims.key_id);
    Ok(Json(serde_json::json!({
        "agent": claims.agent.as_str(), "key_id": claims.key_id, "token_id": claims.token_id,
        "scopes": claims.scopes.iter().map(ToString::to_string).collect::<Vec<_>>(),
        "expires_at": claims.expires_at,
    })))
}

async fn revoke(
    State(state): State<AppState>,
    Extension(caller): Extension<CallerSlot>,
    headers: HeaderMap,
) -> Result<Json<serde_json::Value>, ApiError> {
    let rid = caller.request_id();
    let claims = state.check_token(bearer(&headers)?)?;
    caller.set(claims.agent.as_str(), &claims.key_id);
    let token_id = claims.token_id.clone();
    let st = state.clone();
    state
        .with_vault(move |vault| {
            tag(vault, &rid);
            vault.revoke_token(&Principal::Agent(claims.agent.clone()), &claims)?;
            st.refresh_snapshot(vault)
        })
        .await?;
    Ok(Json(serde_json::json!({"revoked": token_id})))
}

async fn secret(
    State(state): State<AppState>,
    Extension(caller): Extension<CallerSlot>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let rid = caller.request_id();
    let claims = state.check_token(bearer(&headers)?)?;
    caller.set(claims.agent.as_str(), &claims.key_id);
    let st = state.clone();
    let (path, value, version) = state
        .with_vault_batched(move |vault| {
            tag(vault, &rid);
            st.recheck_token(vault, &claims)?;
            Ok(vault.read_with_token(&claims, &name)?)
        })
        .await?;
    Ok(Json(serde_json::json!({
        "name": path.name.as_str(),
        "value": value.as_str().unwrap_or_default(),
        "version": version,
    })))
}

async fn env(
    State(state): State<AppState>,
    Extension(caller): Extension<CallerSlot>,
    headers: HeaderMap,
) -> Result<Json<serde_json::Value>, ApiError> {
    let rid = caller.request_id();
    let claims = state.check_token(bearer(&headers)?)?;
    caller.set(claims.agent.as_str(), &claims.key_id);
    let st = state.clone();
    let env = state
        .with_vault_batched(move |vault| {
            tag(vault, &rid);
            st.recheck_token(vault, &claims)?;
            Ok(vault.env_with_token(&claims)?)
        })
        .await?;
    let map: BTreeMap<&str, &str> = env
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str().unwrap_or_default()))
        .collect();
    Ok(Json(serde_json::json!({ "env": map })))
}

/// Audit records made for this request carry its id (the one in the log
/// line and in `x-request-id`) and say they came through the server.
fn tag(vault: &mut vault_core::Vault, request_id: &str) {
    vault.set_audit_context(Some("server".into()), Some(request_id.to_owned()));
}
