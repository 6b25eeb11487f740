//! The console's handlers on the real router over a real vault (SQLite file
//! in a temp dir), without a browser: tests/console.rs drives Chromium.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use tower::ServiceExt;
use vault_core::{
    AgentName, KdfParams, Policy, Principal, SecretBytes, SecretPath, SecretString, Vault,
};

const OP: &Principal = &Principal::Operator;
const CANARY: &str = "canary-console-unit-4f1d9a";
const ADMIN: &str = "vadm_console_unit_test";
const HOST: &str = "127.0.0.1:8200";
const ORIGIN: &str = "http://127.0.0.1:8200";

struct World {
    app: axum::Router,
    approval: vault_core::ApprovalId,
    _dir: tempfile::TempDir,
}

fn world() -> World {
    world_with(0)
}

/// [`world`] with `extra` more audit records (a long trail).
fn world_with(extra: usize) -> World {
    let dir = tempfile::tempdir().unwrap();
    let mut v = Vault::init(
        &dir.path().join("vault"),
        &SecretString::new("console unit passphrase".into()),
        KdfParams::FLOOR,
    )
    .unwrap();
    for a in ["hermes-marketing", "codex-ci"] {
        v.add_agent(OP, &AgentName::parse(a).unwrap(), &Policy::default())
            .unwrap();
    }
    let canary = SecretPath::parse("codex-ci/CANARY").unwrap();
    v.set_secret(OP, &canary, &SecretBytes::new(CANARY.as_bytes().to_vec()))
        .unwrap();
    let db = SecretPath::parse("hermes-marketing/DB_PASSWORD").unwrap();
    v.set_secret(OP, &db, &SecretBytes::new(b"db-old-value-x81".to_vec()))
        .unwrap();
    let script = dir.path().join("rotate.sh");
    std::fs::write(
        &script,
        "#!/bin/sh\ncat >/dev/null; echo db-new-value-x82\n",
    )
    .unwrap();
    std::os::unix::fs::PermissionsExt::set_mode(
        &mut std::fs::metadata(&script).unwrap().permissions(),
        0o700,
    );
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
    v.set_rotation_command(
        OP,
        &db,
        script.to_str().unwrap(),
        false,
        std::time::Duration::from_secs(10),
    )
    .unwrap();
    // a finder's location is text from outside: it must show as text
    let approval = match v
        .report_secret_leak(
            &db,
            &SecretBytes::from_slice(b"db-old-value-x81"),
            "notes/<script>alert(1)</script>.md:2",
        )
        .unwrap()
    {
        vault_core::LeakAction::ApprovalOpened { approval_id } => approval_id,
        _ => panic!("an approval should open"),
    };
    let issued = v
        .issue_key(
            OP,
            &AgentName::parse("codex-ci-key").unwrap(),
            &AgentName::parse("codex-ci").unwrap(),
            std::time::Duration::from_secs(3600),
            false,
        )
        .unwrap();
    // a second key, suspended by a limit: its reinstatement waits for approval
    let spare = v
        .issue_key(
            OP,
            &AgentName::parse("codex-ci-spare").unwrap(),
            &AgentName::parse("codex-ci").unwrap(),
            std::time::Duration::from_secs(3600),
            false,
        )
        .unwrap();
    v.suspend_key(&spare.info.key_id, "spend limit reached")
        .unwrap()
        .expect("a reinstatement approval opens");
    // two brokered model calls today, as the broker records them
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let call = |model: &str, input: u64| vault_core::usage::UsageRecord {
        at_ms: now_ms - 1000,
        agent: AgentName::parse("codex-ci").unwrap(),
        key_id: issued.info.key_id.to_string(),
        host: "api.openai.com:443".into(),
        method: "POST".into(),
        path: "/v1/chat/completions".into(),
        rule: Some(0),
        status: 200,
        bytes_up: 100,
        bytes_down: 200,
        latency_ms: 5,
        duration_ms: 9,
        provider: Some(vault_core::usage::Provider::OpenAi),
        model: Some(model.into()),
        tokens: vault_core::usage::Tokens {
            input,
            output: 1_000_000,
            cache_read: 0,
            cache_write: 0,
        },
        estimated: false,
        cut: false,
    };
    v.record_usage(&[call("gpt-4o", 1_000_000), call("mystery-model", 5)], 0)
        .unwrap();
    // the broker stopped a credential in what the agent sent (issue 16)
    v.audit(
        &Principal::Agent(AgentName::parse("codex-ci").unwrap()),
        Some(&issued.info.key_id),
        vault_core::AuditAction::EgressExfiltration,
        Some("paste.example.com:443 rules=vault-key"),
        vault_core::AuditOutcome::EXFILTRATION_BLOCKED,
    )
    .unwrap();
    let (_, committed) = v.in_one_transaction(|v| {
        for i in 0..extra {
            v.audit(
                OP,
                None,
                vault_core::AuditAction::SecretRead,
                Some(&format!("codex-ci/SECRET_{i}")),
                vault_core::AuditOutcome::Ok,
            )
            .unwrap();
        }
    });
    committed.unwrap();
    let state = crate::AppState::new(v, SecretString::new(ADMIN.into())).unwrap();
    World {
        app: crate::app(state),
        approval,
        _dir: dir,
    }
}

struct Answer {
    status: StatusCode,
    headers: axum::http::HeaderMap,
    body: String,
}

async fn send(app: &axum::Router, req: Request<Body>) -> Answer {
    let r = app.clone().oneshot(req).await.unwrap();
    let status = r.status();
    let headers = r.headers().clone();
    let bytes = axum::body::to_bytes(r.into_body(), 1 << 22).await.unwrap();
    Answer {
        status,
        headers,
        body: String::from_utf8_lossy(&bytes).into_owned(),
    }
}

fn get(path: &str, cookie: Option<&str>) -> Request<Body> {
    let mut b = Request::builder().uri(path).header("host", HOST);
    if let Some(c) = cookie {
        b = b.header("cookie", format!("vault_console={c}"));
    }
    b.body(Body::empty()).unwrap()
}

fn post_form(path: &str, cookie: &str, origin: Option<&str>, form: &str) -> Request<Body> {
    let mut b = Request::builder()
        .method("POST")
        .uri(path)
        .header("host", HOST)
        .header("content-type", "application/x-www-form-urlencoded")
        .header("cookie", format!("vault_console={cookie}"));
    if let Some(o) = origin {
        b = b.header("origin", o);
    }
    b.body(Body::from(form.to_owned())).unwrap()
}

/// Signs in as `vault ui` would; returns the session cookie's value.
async fn sign_in(w: &World) -> String {
    let req = Request::builder()
        .method("POST")
        .uri("/v1/admin/console/login")
        .header("host", HOST)
        .header("authorization", format!("Bearer {ADMIN}"))
        .body(Body::empty())
        .unwrap();
    let a = send(&w.app, req).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    let v: serde_json::Value = serde_json::from_str(&a.body).unwrap();
    let path = v["path"].as_str().unwrap().to_owned();
    let a = send(&w.app, get(&path, None)).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    let cookie = a.headers["set-cookie"].to_str().unwrap().to_owned();
    for flag in ["HttpOnly", "SameSite=Strict", "Max-Age=", "Path=/ui"] {
        assert!(cookie.contains(flag), "{cookie}");
    }
    // issue 17: the one-time URL works once
    let again = send(&w.app, get(&path, None)).await;
    assert_eq!(again.status, StatusCode::UNAUTHORIZED);
    assert!(again.headers.get("set-cookie").is_none());
    cookie
        .split(';')
        .next()
        .unwrap()
        .strip_prefix("vault_console=")
        .unwrap()
        .to_owned()
}

fn csrf_of(body: &str) -> String {
    let at = body.find("name=\"csrf\" value=\"").unwrap() + "name=\"csrf\" value=\"".len();
    body[at..at + 64].to_owned()
}

const PAGES: &[&str] = &[
    "/ui/",
    "/ui/spend",
    "/ui/spend?bucket=hour",
    "/ui/approvals",
    "/ui/leaks",
    "/ui/audit",
    "/ui/audit?agent=codex-ci&action=key.issue",
    "/ui/doctor",
];

// issue 17: every page renders signed in, carries the security headers and
// never holds a secret value; interpolated text is escaped
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_page_renders_escaped_with_strict_headers_and_no_value() {
    let w = world();
    let cookie = sign_in(&w).await;
    for page in PAGES {
        let a = send(&w.app, get(page, Some(&cookie))).await;
        assert_eq!(a.status, StatusCode::OK, "{page}: {}", a.body);
        assert_eq!(
            a.headers["content-security-policy"].to_str().unwrap(),
            super::CSP
        );
        assert_eq!(a.headers["x-frame-options"], "DENY");
        assert_eq!(a.headers["referrer-policy"], "no-referrer");
        assert_eq!(a.headers["cache-control"], "no-store");
        assert!(a.headers.contains_key("server-timing"));
        for value in [CANARY, "db-old-value-x81", ADMIN, &cookie] {
            assert!(!a.body.contains(value), "{page} shows a secret");
        }
        assert!(!a.body.contains("<script>alert"), "{page} is not escaped");
        assert!(!a.body.contains("<script>"), "{page}: inline script");
    }
    let leaks = send(&w.app, get("/ui/leaks", Some(&cookie))).await;
    assert!(
        leaks.body.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
        "{}",
        leaks.body
    );
    // issue 16 + 17: a credential the broker stopped on its way out is a leak too
    for want in [
        "outbound request to paste.example.com:443",
        "request refused before it left",
    ] {
        assert!(
            leaks.body.contains(want),
            "leaks lacks {want}: {}",
            leaks.body
        );
    }
    let overview = send(&w.app, get("/ui/", Some(&cookie))).await;
    for want in [
        "hermes-marketing",
        "codex-ci",
        "codex-ci-key",
        // the leaked secret's rotation and the suspended key's reinstatement
        ">2</span> open approvals",
    ] {
        assert!(overview.body.contains(want), "overview lacks {want}");
    }
}

// issue 17: DNS rebinding — a foreign Host is refused before anything else
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_foreign_host_is_refused_on_every_console_route() {
    let w = world();
    let cookie = sign_in(&w).await;
    for path in [
        "/ui/",
        "/ui/login?code=x",
        "/ui/assets/console.css",
        "/ui/nowhere",
    ] {
        let mut req = get(path, Some(&cookie));
        req.headers_mut()
            .insert("host", "attacker.example:8200".parse().unwrap());
        let a = send(&w.app, req).await;
        assert_eq!(a.status, StatusCode::MISDIRECTED_REQUEST, "{path}");
        assert_eq!(a.headers["x-frame-options"], "DENY");
    }
}

// issue 17 remainder: the browser's own /favicon.ico (outside /ui/) is
// served, not a 404 in the log, behind the same Host check and headers
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_favicon_at_the_root_is_served_behind_the_host_check() {
    let w = world();
    let a = send(&w.app, get("/favicon.ico", None)).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert_eq!(a.headers["content-type"], "image/svg+xml");
    assert!(a.body.starts_with("<svg"), "{}", a.body);
    assert_eq!(a.headers["x-frame-options"], "DENY");
    let mut foreign = get("/favicon.ico", None);
    foreign
        .headers_mut()
        .insert("host", "attacker.example:8200".parse().unwrap());
    let a = send(&w.app, foreign).await;
    assert_eq!(a.status, StatusCode::MISDIRECTED_REQUEST);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_out_pages_say_how_to_sign_in() {
    let w = world();
    for page in PAGES {
        let a = send(&w.app, get(page, None)).await;
        assert_eq!(a.status, StatusCode::UNAUTHORIZED, "{page}");
        assert!(a.body.contains("vault ui"), "{page}");
        let forged = send(&w.app, get(page, Some(&format!("vcs_{}", "0".repeat(64))))).await;
        assert_eq!(forged.status, StatusCode::UNAUTHORIZED, "{page}");
    }
}

// issue 17: Origin and CSRF on every state change; approving twice runs once;
// the action is the CLI's, recorded with origin console
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approving_needs_origin_and_csrf_runs_once_and_is_recorded_as_console() {
    let w = world();
    let cookie = sign_in(&w).await;
    let path = format!("/ui/approvals/{}/decide", w.approval);
    let page = send(
        &w.app,
        get(
            &format!("/ui/approvals/{}/confirm?decision=approve", w.approval),
            Some(&cookie),
        ),
    )
    .await;
    assert_eq!(page.status, StatusCode::OK);
    let csrf = csrf_of(&page.body);
    let form = format!("csrf={csrf}&decision=approve");
    for (origin, want) in [
        (None, "console_bad_origin"),
        (Some("http://evil.example"), "console_bad_origin"),
        (Some("null"), "console_bad_origin"),
    ] {
        let a = send(&w.app, post_form(&path, &cookie, origin, &form)).await;
        assert_eq!(a.status, StatusCode::FORBIDDEN, "{origin:?}");
        assert!(a.body.contains("did not come from"), "{want}");
    }
    let a = send(
        &w.app,
        post_form(&path, &cookie, Some(ORIGIN), "csrf=0000&decision=approve"),
    )
    .await;
    assert_eq!(a.status, StatusCode::FORBIDDEN);
    assert!(a.body.contains("token is missing or stale"));
    // still pending after all of that
    let list = send(&w.app, get("/ui/approvals", Some(&cookie))).await;
    assert!(list.body.contains("Approve…"));
    let a = send(&w.app, post_form(&path, &cookie, Some(ORIGIN), &form)).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert!(a.body.contains("rotated to version 2"), "{}", a.body);
    let again = send(&w.app, post_form(&path, &cookie, Some(ORIGIN), &form)).await;
    assert_eq!(again.status, StatusCode::FORBIDDEN, "{}", again.body);
    assert!(again.body.contains("Not carried out"));
    let overview = send(&w.app, get("/ui/", Some(&cookie))).await;
    assert!(overview.body.contains("v2"), "rotated once, to v2");
    assert!(!overview.body.contains("v3"));
    let audit = send(
        &w.app,
        get("/ui/audit?action=approval.approve", Some(&cookie)),
    )
    .await;
    assert!(audit.body.contains("console"), "{}", audit.body);
    assert!(audit.body.contains("Chain verified"));
}

// issue 17: logout ends the session; `vault ui logout --all` ends them all
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logout_and_logout_all_end_sessions() {
    let w = world();
    let one = sign_in(&w).await;
    let two = sign_in(&w).await;
    let page = send(&w.app, get("/ui/", Some(&one))).await;
    let csrf = csrf_of(&page.body);
    let a = send(
        &w.app,
        post_form("/ui/logout", &one, Some(ORIGIN), &format!("csrf={csrf}")),
    )
    .await;
    assert_eq!(a.status, StatusCode::OK);
    assert!(a.headers["set-cookie"]
        .to_str()
        .unwrap()
        .contains("Max-Age=0"));
    assert_eq!(
        send(&w.app, get("/ui/", Some(&one))).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        send(&w.app, get("/ui/", Some(&two))).await.status,
        StatusCode::OK
    );
    let req = Request::builder()
        .method("POST")
        .uri("/v1/admin/console/logout-all")
        .header("host", HOST)
        .header("authorization", format!("Bearer {ADMIN}"))
        .body(Body::empty())
        .unwrap();
    let a = send(&w.app, req).await;
    assert_eq!(a.status, StatusCode::OK);
    assert!(a.body.contains("\"ended\":1"), "{}", a.body);
    assert_eq!(
        send(&w.app, get("/ui/", Some(&two))).await.status,
        StatusCode::UNAUTHORIZED
    );
    // no admin token, no login URL
    let req = Request::builder()
        .method("POST")
        .uri("/v1/admin/console/login")
        .header("host", HOST)
        .body(Body::empty())
        .unwrap();
    assert_eq!(send(&w.app, req).await.status, StatusCode::UNAUTHORIZED);
}

/// Reloads the audit page until `done` holds (at most 20 s).
async fn audit_until(w: &World, cookie: &str, done: impl Fn(&str) -> bool) -> String {
    for _ in 0..400 {
        let a = send(&w.app, get("/ui/audit", Some(cookie))).await;
        assert_eq!(a.status, StatusCode::OK);
        if done(&a.body) {
            return a.body;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("the audit page did not reach the state wanted");
}

// issue 17, item 1: a page never walks a long trail itself: it checks at
// most INLINE_RECORDS records, says a walk runs in the background, and
// shows the walk's result, with what it covered, when it is done; "verify
// all again" is a POST (Origin and CSRF) that starts one walk and returns
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_audit_page_hands_a_long_walk_to_the_background_and_shows_its_result() {
    let w = world_with(3 * super::chain::INLINE_RECORDS);
    let cookie = sign_in(&w).await;
    let first = send(&w.app, get("/ui/audit", Some(&cookie))).await;
    assert_eq!(first.status, StatusCode::OK);
    assert!(
        first
            .body
            .contains("A full walk of the chain from the start")
            && first.body.contains("is running in the background"),
        "{}",
        first.body
    );
    assert!(
        !first.body.contains("Chain verified"),
        "nothing claimed yet"
    );
    let done = audit_until(&w, &cookie, |b| !b.contains("is running")).await;
    assert!(done.contains("Chain verified through record #"), "{done}");
    assert!(
        done.contains("Last full walk from the start: through record #"),
        "{done}"
    );
    // the next look goes on from that walk's checkpoint and says so
    let next = send(&w.app, get("/ui/audit", Some(&cookie))).await.body;
    assert!(
        next.contains("from the checkpoint at #") || next.contains("since the checkpoint at #"),
        "{next}"
    );
    // verify all again: refused from elsewhere, started from the page
    let csrf = csrf_of(&next);
    let refused = send(
        &w.app,
        post_form(
            "/ui/audit/verify",
            &cookie,
            Some("http://evil.example"),
            &format!("csrf={csrf}"),
        ),
    )
    .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    let started = send(
        &w.app,
        post_form(
            "/ui/audit/verify",
            &cookie,
            Some(ORIGIN),
            &format!("csrf={csrf}"),
        ),
    )
    .await;
    assert_eq!(started.status, StatusCode::SEE_OTHER, "{}", started.body);
    let again = audit_until(&w, &cookie, |b| !b.contains("is running")).await;
    assert!(again.contains("Chain verified through record #"), "{again}");
    assert!(again.contains("Verify all again"));
}

// issue 17: a suspended key shows as suspended on the overview, and its
// reinstatement is a pending approval saying what approving does
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_suspended_key_shows_and_its_reinstatement_waits_for_approval() {
    let w = world();
    let cookie = sign_in(&w).await;
    let overview = send(&w.app, get("/ui/", Some(&cookie))).await;
    let at = overview
        .body
        .find("codex-ci-spare")
        .expect("the spare key is listed");
    assert!(
        overview.body[at..].contains("suspended"),
        "{}",
        overview.body
    );
    let approvals = send(&w.app, get("/ui/approvals", Some(&cookie))).await;
    for want in [
        "Reinstate a suspended key",
        "spend limit reached",
        "Approving reinstates the key",
    ] {
        assert!(approvals.body.contains(want), "{want}: {}", approvals.body);
    }
}
