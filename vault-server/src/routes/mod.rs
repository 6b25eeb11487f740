//! The routes: the agent API (named key -> token; token -> secrets, env,
//! whoami, revoke), the admin API (admin token), health and metrics, and JSON
//! answers for unknown routes and methods.

mod admin;
mod agent;
mod broker;
mod console;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use crate::error::{ApiError, ErrorCode};
use crate::state::{AppState, LATENCY_BOUNDS};

pub(crate) fn router(state: AppState) -> Router {
    Router::new()
        .merge(agent::router())
        .merge(admin::router())
        .merge(broker::router())
        .merge(console::router())
        .merge(crate::console::router(state.clone()))
        .route(
            "/v1/health",
            get(|| async { axum::Json(serde_json::json!({"status": "ok"})) }),
        )
        .route("/metrics", get(metrics))
        .fallback(|| async { ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such route") })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "method not allowed on this route",
            )
        })
        // inside `observe`, so an oversized body or a request past its
        // deadline still gets our JSON error and is counted
        .layer(tower_http::limit::RequestBodyLimitLayer::new(
            crate::MAX_BODY,
        ))
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            state.request_timeout(),
        ))
        .layer(middleware::from_fn_with_state(state.clone(), observe))
        .with_state(state)
}

/// The bearer credential of a request, or 401.
pub(crate) fn bearer(headers: &HeaderMap) -> Result<&str, ApiError> {
    let value = headers
        .get(header::AUTHORIZATION)
        .ok_or_else(|| ApiError::unauthorized("missing Authorization: Bearer credential"))?
        .to_str()
        .map_err(|_| ApiError::unauthorized("malformed Authorization header"))?;
    value
        .strip_prefix("Bearer ")
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .ok_or_else(|| ApiError::unauthorized("malformed Authorization header"))
}

/// Who made a request, once a handler has authenticated it: filled by the
/// handler, read by [`observe`] for the log line. Ids and names only.
#[derive(Clone)]
pub(crate) struct CallerSlot(Arc<Mutex<Option<(String, String)>>>, Arc<str>);

impl CallerSlot {
    fn new(request_id: &str) -> CallerSlot {
        CallerSlot(Arc::default(), Arc::from(request_id))
    }

    /// The request's id, as logged and sent back in `x-request-id`.
    pub(crate) fn request_id(&self) -> String {
        self.1.to_string()
    }

    /// Records the agent and key id behind the request.
    pub(crate) fn set(&self, agent: &str, key_id: &str) {
        if let Ok(mut slot) = self.0.lock() {
            *slot = Some((agent.to_owned(), key_id.to_owned()));
        }
    }

    fn get(&self) -> (String, String) {
        self.0
            .lock()
            .ok()
            .and_then(|s| s.clone())
            .unwrap_or_default()
    }
}

/// Request ids: unique within this server's life, sent back as `x-request-id`.
static NEXT_REQUEST: AtomicU64 = AtomicU64::new(1);

/// Counts and logs every request: request id, agent, key id, route, status,
/// latency, denial code. Never a header value, a token, a key or a body.
async fn observe(State(state): State<AppState>, mut request: Request, next: Next) -> Response {
    let start = Instant::now();
    let method = request.method().clone();
    let route = route_label(request.uri().path());
    let request_id = format!("{:016x}", NEXT_REQUEST.fetch_add(1, Ordering::Relaxed));
    let caller = CallerSlot::new(&request_id);
    request.extensions_mut().insert(caller.clone());
    let header_bytes: usize = request
        .headers()
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len())
        .sum();
    let mut response = if header_bytes > crate::MAX_HEADER_BYTES {
        ApiError::new(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "headers_too_large",
            format!(
                "request headers are limited to {} KiB",
                crate::MAX_HEADER_BYTES / 1024
            ),
        )
        .into_response()
    } else {
        next.run(request).await
    };
    // Errors raised below our handlers (a JSON body that does not parse, a body
    // over the limit, a timeout) come as plain text: give them our JSON shape.
    if response.status().as_u16() >= 400 && response.extensions().get::<ErrorCode>().is_none() {
        // axum says 422 for well-formed JSON of the wrong shape; to a client
        // both are a bad request.
        let status = match response.status() {
            StatusCode::UNPROCESSABLE_ENTITY => StatusCode::BAD_REQUEST,
            other => other,
        };
        let code = match status.as_u16() {
            400 | 422 => "bad_request",
            408 => "timeout",
            413 => "body_too_large",
            415 => "unsupported_media_type",
            _ => "error",
        };
        let message = status.canonical_reason().unwrap_or("error").to_lowercase();
        response = ApiError::new(status, code, message).into_response();
    }
    let elapsed = start.elapsed().as_secs_f64();
    let status = response.status().as_u16();
    let code = response
        .extensions()
        .get::<ErrorCode>()
        .map(|c| c.0.clone());
    if let Ok(mut m) = state.inner.metrics.lock() {
        *m.requests.entry((route.clone(), status)).or_default() += 1;
        if let Some(code) = &code {
            *m.denials.entry(code.clone()).or_default() += 1;
        }
        for (i, bound) in LATENCY_BOUNDS.iter().enumerate() {
            if elapsed <= *bound {
                m.latency_buckets[i] += 1;
            }
        }
        m.latency_sum_secs += elapsed;
        m.latency_count += 1;
    }
    let (agent, key_id) = caller.get();
    tracing::info!(
        request_id,
        %method,
        route,
        status,
        agent,
        key_id,
        latency_ms = elapsed * 1000.0,
        code = code.as_deref().unwrap_or(""),
        "request"
    );
    if let Ok(v) = axum::http::HeaderValue::from_str(&request_id) {
        response.headers_mut().insert("x-request-id", v);
    }
    response
}

/// The route a path matched, with the secret name folded away (names are
/// not secret, but per-name labels would grow without bound).
fn route_label(path: &str) -> String {
    if path.starts_with("/v1/secrets/") {
        "/v1/secrets/{name}".into()
    } else if path.starts_with("/v1/admin/keys/") {
        "/v1/admin/keys/{id}/revoke".into()
    } else {
        path.chars().take(64).collect()
    }
}

/// `/metrics` names every agent, key and read count, so it takes the admin
/// token, and only a Host this server answers to: a browser page rebound to
/// 127.0.0.1 by DNS sends its own name (issue 13, finding 15).
async fn metrics(State(state): State<AppState>, headers: HeaderMap) -> Result<Response, ApiError> {
    check_host(&state, &headers)?;
    admin::require_admin(&state, &headers)?;
    let mut out = String::new();
    if let Ok(m) = state.inner.metrics.lock() {
        out.push_str("# TYPE vault_requests_total counter\n");
        for ((route, status), n) in &m.requests {
            out.push_str(&format!(
                "vault_requests_total{{route=\"{route}\",status=\"{status}\"}} {n}\n"
            ));
        }
        out.push_str("# TYPE vault_denials_total counter\n");
        for (code, n) in &m.denials {
            out.push_str(&format!("vault_denials_total{{code=\"{code}\"}} {n}\n"));
        }
        out.push_str("# TYPE vault_request_seconds histogram\n");
        for (bound, n) in LATENCY_BOUNDS.iter().zip(m.latency_buckets) {
            out.push_str(&format!(
                "vault_request_seconds_bucket{{le=\"{bound}\"}} {n}\n"
            ));
        }
        out.push_str(&format!(
            "vault_request_seconds_bucket{{le=\"+Inf\"}} {}\n",
            m.latency_count
        ));
        out.push_str(&format!(
            "vault_request_seconds_sum {}\nvault_request_seconds_count {}\n",
            m.latency_sum_secs, m.latency_count
        ));
    }
    out.push_str(&per_key_metrics(&state).await?);
    if let Some(accounting) = &state.inner.accounting {
        out.push_str(&accounting.metrics_text());
    }
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out).into_response())
}

/// Refuses a request whose `Host` is not a loopback name or address (any
/// port) or one of the names the server was told it answers to.
pub(crate) fn check_host(state: &AppState, headers: &HeaderMap) -> Result<(), ApiError> {
    let refused = || {
        ApiError::new(
            StatusCode::MISDIRECTED_REQUEST,
            "host_not_allowed",
            "this server does not answer to that Host; a name it should answer to is given with --allowed-host",
        )
    };
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .ok_or_else(refused)?;
    // Host is `name[:port]` or `[v6][:port]`; a URL parser splits it exactly.
    let url = url::Url::parse(&format!("http://{host}/")).map_err(|_| refused())?;
    if !url.username().is_empty() || url.password().is_some() || url.path() != "/" {
        return Err(refused());
    }
    let ok = match url.host() {
        Some(url::Host::Domain(d)) => {
            d.eq_ignore_ascii_case("localhost")
                || state
                    .inner
                    .allowed_hosts
                    .iter()
                    .any(|h| h.eq_ignore_ascii_case(d))
        }
        Some(url::Host::Ipv4(ip)) => {
            ip.is_loopback()
                || state
                    .inner
                    .allowed_hosts
                    .iter()
                    .any(|h| *h == ip.to_string())
        }
        Some(url::Host::Ipv6(ip)) => {
            ip.is_loopback()
                || state
                    .inner
                    .allowed_hosts
                    .iter()
                    .any(|h| *h == ip.to_string())
        }
        None => false,
    };
    if ok {
        Ok(())
    } else {
        Err(refused())
    }
}

/// Reads one counter of a key's usage.
type UsageField = fn(&vault_core::KeyUsage) -> u64;

/// The same per-key counters as `vault usage`, labelled by key id, key name
/// and agent (ids and names only: never a key or a token).
async fn per_key_metrics(state: &AppState) -> Result<String, ApiError> {
    let st = state.clone();
    state
        .with_vault(move |vault| {
            let mut tally = st.inner.usage.lock().map_err(|_| ApiError::internal())?;
            vault.update_usage(&mut tally)?;
            let keys = vault.list_keys(&vault_core::Principal::Operator, None)?;
            let mut out = String::new();
            let families: [(&str, &str, UsageField); 3] = [
                ("vault_key_tokens_minted_total", "counter", |u| {
                    u.tokens_minted
                }),
                ("vault_key_reads_total", "counter", |u| u.reads),
                ("vault_key_denials_total", "counter", |u| u.denials),
            ];
            for (family, kind, value) in families {
                out.push_str(&format!("# TYPE {family} {kind}\n"));
                for key in &keys {
                    let n = tally.keys.get(key.key_id.as_str()).map(value).unwrap_or(0);
                    out.push_str(&format!(
                        "{family}{{key_id=\"{}\",key=\"{}\",agent=\"{}\"}} {n}\n",
                        key.key_id, key.name, key.agent
                    ));
                }
            }
            out.push_str("# TYPE vault_key_last_used_seconds gauge\n");
            for key in &keys {
                if let Some(ms) = tally
                    .keys
                    .get(key.key_id.as_str())
                    .and_then(|u| u.last_used_ms)
                {
                    out.push_str(&format!(
                        "vault_key_last_used_seconds{{key_id=\"{}\",key=\"{}\",agent=\"{}\"}} {}\n",
                        key.key_id,
                        key.name,
                        key.agent,
                        ms / 1000
                    ));
                }
            }
            Ok(out)
        })
        .await
}
