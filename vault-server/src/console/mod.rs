//! The local web console at `/ui/` (issue 17): agents and keys, spend,
//! approvals with approve/deny, leaks, the audit trail and doctor, served on
//! the API's own listener (so under the same loopback-or-TLS rule).
//!
//! It is a new way in, so every request passes [`guard`] first: the `Host`
//! must be a loopback name or an `--allowed-host` (a page rebound to
//! 127.0.0.1 by DNS sends its own name), and every answer carries a strict
//! CSP (`default-src 'self'`, no inline script), `X-Frame-Options: DENY`,
//! `Referrer-Policy: no-referrer` and `Cache-Control: no-store`. Sign-in is
//! a one-time URL that `vault ui` gets with the admin token; the session is
//! an HttpOnly, SameSite=Strict cookie whose hash vault-core stores. Every
//! state change is a POST that must carry this server's own `Origin` and
//! the session's CSRF token, and goes through the same vault-core call as
//! the CLI, recorded with `origin: console`. No page reads a value.

mod chain;
mod chart;
mod data;
mod render;
mod session;
mod spend;
#[cfg(test)]
mod tests;

use std::time::Instant;

use axum::extract::{Path, Query, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use serde::Deserialize;
use vault_core::{Origin, Principal, SecretString, Vault, CONSOLE_SESSION_TTL};

use crate::error::{ApiError, ErrorCode};
use crate::state::AppState;
use render::Nav;
pub(crate) use session::{ConsoleState, LOGIN_CODE_TTL};

const OP: &Principal = &Principal::Operator;

/// The console's Content-Security-Policy: only this origin's own files; no
/// inline script or style, no framing, forms post only here.
pub(crate) const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
    img-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

pub(crate) fn router(state: AppState) -> Router<AppState> {
    Router::new()
        .route("/ui", get(|| async { redirect("/ui/") }))
        .route("/ui/", get(overview))
        .route("/ui/spend", get(spend_page))
        .route("/ui/approvals", get(approvals_page))
        .route("/ui/approvals/{id}/confirm", get(confirm_page))
        .route("/ui/approvals/{id}/decide", post(decide))
        .route("/ui/leaks", get(leaks_page))
        .route("/ui/audit", get(audit_page))
        .route("/ui/audit/verify", post(verify_all))
        .route("/ui/doctor", get(doctor_page))
        .route("/ui/login", get(login))
        .route("/ui/logout", post(logout))
        .route("/ui/assets/{name}", get(asset))
        // browsers ask the origin's root for it whatever the page links
        .route(
            "/favicon.ico",
            get(|| async { asset(Path("favicon.svg".into())).await }),
        )
        .route(
            "/ui/{*rest}",
            get(|| async { html_error(StatusCode::NOT_FOUND, "not_found", "No such page.", None) }),
        )
        .layer(middleware::from_fn_with_state(state, guard))
}

/// Runs before and after every console request: the Host allow-list
/// (DNS rebinding), then the security headers and the server time.
async fn guard(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let start = Instant::now();
    let mut response = match crate::routes::check_host(&state, request.headers()) {
        Ok(()) => next.run(request).await,
        Err(e) => e.into_response(),
    };
    let h = response.headers_mut();
    for (name, value) in [
        ("content-security-policy", CSP),
        ("x-frame-options", "DENY"),
        ("referrer-policy", "no-referrer"),
        ("cache-control", "no-store"),
        ("x-content-type-options", "nosniff"),
        ("cross-origin-opener-policy", "same-origin"),
        ("cross-origin-resource-policy", "same-origin"),
    ] {
        h.insert(name, HeaderValue::from_static(value));
    }
    if let Ok(v) = HeaderValue::from_str(&format!(
        "app;dur={:.2}",
        start.elapsed().as_secs_f64() * 1000.0
    )) {
        h.insert("server-timing", v);
    }
    response
}

fn redirect(to: &'static str) -> Response {
    (StatusCode::SEE_OTHER, [(header::LOCATION, to)]).into_response()
}

fn html(status: StatusCode, body: String) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        body,
    )
        .into_response()
}

/// An HTML error page with a stable code (also in the metrics, like the API's).
fn html_error(status: StatusCode, code: &str, text: &str, hint: Option<&str>) -> Response {
    let body = render::page(
        status.canonical_reason().unwrap_or("Error"),
        Nav::None,
        None,
        render::message(text, hint),
    );
    let mut r = html(status, body);
    r.extensions_mut().insert(ErrorCode(code.to_owned()));
    r
}

fn from_api(e: ApiError) -> Response {
    let text = if e.status() == StatusCode::INTERNAL_SERVER_ERROR {
        "Internal error (the server's log says more).".to_owned()
    } else {
        format!("Refused: {}", e.code())
    };
    html_error(e.status(), e.code(), &text, None)
}

/// A signed-in browser: its session id and that session's CSRF token.
struct Session {
    id: SecretString,
    csrf: String,
}

fn signed_out() -> Response {
    html_error(
        StatusCode::UNAUTHORIZED,
        "console_signed_out",
        "Not signed in (or the session ended). Get a sign-in link with:",
        Some("vault ui --admin-token-file FILE"),
    )
}

async fn session(state: &AppState, headers: &HeaderMap) -> Result<Session, Response> {
    let Some(id) = session::session_cookie(headers) else {
        return Err(signed_out());
    };
    let id = SecretString::new(id);
    let probe = SecretString::new(id.expose_secret().to_owned());
    let live = state
        .with_vault_batched(move |v| Ok(v.console_session_check(probe.expose_secret())?))
        .await
        .map_err(from_api)?;
    match live {
        Some(_) => Ok(Session {
            csrf: session::csrf_token(id.expose_secret()),
            id,
        }),
        None => Err(signed_out()),
    }
}

/// A state change: signed in, from this server's own page (Origin), with
/// the session's CSRF token.
async fn changing(state: &AppState, headers: &HeaderMap, csrf: &str) -> Result<Session, Response> {
    if !session::same_origin(headers, state.inner.tls) {
        return Err(html_error(
            StatusCode::FORBIDDEN,
            "console_bad_origin",
            "Refused: this form did not come from the console's own page.",
            None,
        ));
    }
    let s = session(state, headers).await?;
    if !session::csrf_ok(s.id.expose_secret(), csrf) {
        return Err(html_error(
            StatusCode::FORBIDDEN,
            "console_bad_csrf",
            "Refused: the form's token is missing or stale; reload the page and try again.",
            None,
        ));
    }
    Ok(s)
}

/// Runs `f` with the vault, its audit records saying they came from the console.
async fn as_console<T, F>(state: &AppState, f: F) -> Result<T, Response>
where
    T: Send + 'static,
    F: FnOnce(&mut Vault) -> Result<T, ApiError> + Send + 'static,
{
    state
        .with_vault(move |v| {
            v.set_audit_context(Some(Origin::Console.as_str().into()), None);
            f(v)
        })
        .await
        .map_err(from_api)
}

fn show(title: &str, nav: Nav, s: &Session, body: maud::Markup) -> Response {
    html(
        StatusCode::OK,
        render::page(title, nav, Some(&s.csrf), body),
    )
}

async fn overview(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let s = match session(&state, &headers).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let prices = spend::prices(&state);
    match as_console(&state, move |v| data::overview(v, &prices)).await {
        Ok(o) => show("Overview", Nav::Overview, &s, render::overview(&o)),
        Err(r) => r,
    }
}

#[derive(Deserialize)]
struct SpendQuery {
    bucket: Option<String>,
}

async fn spend_page(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<SpendQuery>,
) -> Response {
    let s = match session(&state, &headers).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let bucket = spend::Bucket::parse(q.bucket.as_deref());
    let prices = spend::prices(&state);
    match as_console(&state, move |v| data::spend(v, &prices, bucket)).await {
        Ok(d) => show("Spend and usage", Nav::Spend, &s, render::spend(&d)),
        Err(r) => r,
    }
}

async fn approvals_page(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let s = match session(&state, &headers).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    match as_console(&state, data::approvals).await {
        Ok(a) => show("Approvals", Nav::Approvals, &s, render::approvals(&a)),
        Err(r) => r,
    }
}

#[derive(Deserialize)]
struct ConfirmQuery {
    decision: Option<String>,
}

/// Which way a person decides; one wire name each (the form's `decision`).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Decision {
    Approve,
    Deny,
}

impl Decision {
    fn parse(text: Option<&str>) -> Option<Decision> {
        match text {
            Some("approve") => Some(Decision::Approve),
            Some("deny") => Some(Decision::Deny),
            _ => None,
        }
    }
}

async fn confirm_page(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(q): Query<ConfirmQuery>,
) -> Response {
    let s = match session(&state, &headers).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let Some(decision) = Decision::parse(q.decision.as_deref()) else {
        return html_error(
            StatusCode::BAD_REQUEST,
            "bad_request",
            "Choose approve or deny.",
            None,
        );
    };
    match as_console(&state, move |v| data::approval(v, &id)).await {
        Ok(Some(a)) if a.state == vault_core::ApprovalState::Pending => show(
            if decision == Decision::Approve {
                "Approve?"
            } else {
                "Deny?"
            },
            Nav::Approvals,
            &s,
            render::confirm(&a, decision == Decision::Approve, &s.csrf),
        ),
        Ok(Some(a)) => show(
            "Already decided",
            Nav::Approvals,
            &s,
            render::decided(Some(&a), Some("This approval is no longer pending.")),
        ),
        Ok(None) => html_error(
            StatusCode::NOT_FOUND,
            "not_found",
            "No such approval.",
            None,
        ),
        Err(r) => r,
    }
}

#[derive(Deserialize)]
struct DecideForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    decision: String,
}

/// Approve or deny: vault-core's `approve`/`deny`, the calls `vault approve`
/// makes. Approving twice runs once: the second finds it no longer pending.
async fn decide(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<DecideForm>,
) -> Response {
    let s = match changing(&state, &headers, &form.csrf).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let Some(decision) = Decision::parse(Some(&form.decision)) else {
        return html_error(
            StatusCode::BAD_REQUEST,
            "bad_request",
            "Choose approve or deny.",
            None,
        );
    };
    let st = state.clone();
    let outcome = as_console(&state, move |v| {
        let done = vault_core::ApprovalId::parse(&id).and_then(|id| match decision {
            Decision::Approve => v.approve(OP, &id),
            Decision::Deny => v.deny(OP, &id),
        });
        // a reinstated key works again at once
        st.refresh_snapshot(v)?;
        match done {
            Ok(a) => Ok(Ok(vault_core::view::ApprovalView::from(&a))),
            Err(e) => {
                let shown = data::approval(v, &id)?;
                Ok(Err((ApiError::from(e), shown)))
            }
        }
    })
    .await;
    match outcome {
        Ok(Ok(a)) => show(
            if a.state == vault_core::ApprovalState::Failed {
                "Approval failed"
            } else {
                "Done"
            },
            Nav::Approvals,
            &s,
            render::decided(Some(&a), None),
        ),
        Ok(Err((e, shown))) => {
            let text = format!("Not carried out: {}", e.code());
            let body = render::decided(shown.as_ref(), Some(&text));
            let mut r = html(
                e.status(),
                render::page("Not carried out", Nav::Approvals, Some(&s.csrf), body),
            );
            r.extensions_mut().insert(ErrorCode(e.code().to_owned()));
            r
        }
        Err(r) => r,
    }
}

async fn leaks_page(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let s = match session(&state, &headers).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    match as_console(&state, |v| data::leaks(v, data::PAGE_ROWS)).await {
        Ok(l) => show("Leaks", Nav::Leaks, &s, render::leaks(&l)),
        Err(r) => r,
    }
}

#[derive(Deserialize)]
struct AuditQueryForm {
    agent: Option<String>,
    action: Option<String>,
    before: Option<i64>,
}

async fn audit_page(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<AuditQueryForm>,
) -> Response {
    let s = match session(&state, &headers).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let agent = q.agent.filter(|a| !a.is_empty());
    let action = q.action.filter(|a| !a.is_empty());
    let (a2, act2) = (agent.clone(), action.clone());
    let st = state.clone();
    let page = as_console(&state, move |v| {
        data::audit(v, &st.inner.console.chain, a2, act2, q.before)
    })
    .await;
    match page {
        Ok((a, start)) => {
            if let Some(start) = start {
                chain::spawn(state.clone(), start);
            }
            show(
                "Audit trail",
                Nav::Audit,
                &s,
                render::audit(&a, agent.as_deref(), action.as_deref(), &s.csrf),
            )
        }
        Err(r) => r,
    }
}

#[derive(Deserialize)]
struct VerifyForm {
    #[serde(default)]
    csrf: String,
}

/// "Verify all again": starts a walk of the whole chain in the background
/// (one at a time) and goes back to the audit page, which says it runs.
async fn verify_all(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(form): Form<VerifyForm>,
) -> Response {
    if let Err(r) = changing(&state, &headers, &form.csrf).await {
        return r;
    }
    if let Some(start) = chain::start_full(&state.inner.console.chain) {
        chain::spawn(state.clone(), start);
    }
    redirect("/ui/audit")
}

async fn doctor_page(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let s = match session(&state, &headers).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    match as_console(&state, data::doctor).await {
        Ok(f) => show("Doctor", Nav::Doctor, &s, render::doctor(&f)),
        Err(r) => r,
    }
}

#[derive(Deserialize)]
struct LoginQuery {
    code: Option<String>,
}

/// The one-time URL: redeems its code (once, within minutes, rate limited),
/// opens a session (`console.login` in the trail) and sets the cookie.
async fn login(State(state): State<AppState>, Query(q): Query<LoginQuery>) -> Response {
    let code = q.code.unwrap_or_default();
    match state.inner.console.redeem(&code) {
        Ok(()) => {}
        Err(session::LoginRefusal::RateLimited) => {
            let mut r = html_error(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                "Too many failed sign-in attempts; wait a minute.",
                None,
            );
            r.headers_mut().insert(
                header::RETRY_AFTER,
                HeaderValue::from(session::FAILURE_WINDOW.as_secs()),
            );
            return r;
        }
        Err(session::LoginRefusal::BadCode) => {
            return html_error(
                StatusCode::UNAUTHORIZED,
                "console_bad_login",
                "This sign-in link has been used or has expired. Get a new one with:",
                Some("vault ui --admin-token-file FILE"),
            )
        }
    }
    let opened = as_console(&state, |v| {
        Ok(v.console_session_open(OP, CONSOLE_SESSION_TTL)?)
    })
    .await;
    match opened {
        Ok(s) => {
            let cookie =
                session::set_cookie(s.id.expose_secret(), CONSOLE_SESSION_TTL, state.inner.tls);
            let mut r = html(StatusCode::OK, render::signed_in());
            if let Ok(v) = HeaderValue::from_str(&cookie) {
                r.headers_mut().insert(header::SET_COOKIE, v);
            }
            r
        }
        Err(r) => r,
    }
}

#[derive(Deserialize)]
struct LogoutForm {
    #[serde(default)]
    csrf: String,
}

async fn logout(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(form): Form<LogoutForm>,
) -> Response {
    let s = match changing(&state, &headers, &form.csrf).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let id = s.id;
    if let Err(r) = as_console(&state, move |v| {
        Ok(v.console_session_close(id.expose_secret())?)
    })
    .await
    {
        return r;
    }
    let mut r = html(
        StatusCode::OK,
        render::page(
            "Signed out",
            Nav::None,
            None,
            render::message(
                "Signed out. Get a new sign-in link with:",
                Some("vault ui --admin-token-file FILE"),
            ),
        ),
    );
    if let Ok(v) = HeaderValue::from_str(&session::clear_cookie(state.inner.tls)) {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    r
}

async fn asset(Path(name): Path<String>) -> Response {
    let (body, kind): (&'static str, &str) = match name.as_str() {
        "console.css" => (
            include_str!("assets/console.css"),
            "text/css; charset=utf-8",
        ),
        "console.js" => (
            include_str!("assets/console.js"),
            "text/javascript; charset=utf-8",
        ),
        "favicon.svg" => (include_str!("assets/favicon.svg"), "image/svg+xml"),
        _ => return html_error(StatusCode::NOT_FOUND, "not_found", "No such file.", None),
    };
    ([(header::CONTENT_TYPE, kind)], body).into_response()
}
