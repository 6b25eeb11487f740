//! schema/openapi.json is the API's published shape. This test holds it to
//! the code both ways: the routes registered in src/routes are exactly the
//! documented ones, and each documented operation, called on the real router
//! over a real vault, answers a documented status with documented fields.

use std::collections::BTreeSet;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use serde_json::json;
use tower::ServiceExt;
use vault_core::{
    AgentName, KdfParams, Policy, Principal, SecretBytes, SecretPath, SecretString, Vault,
};

fn openapi() -> serde_json::Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../schema/openapi.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// (METHOD, path) pairs the document describes.
fn documented(doc: &serde_json::Value) -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            out.insert((method.to_uppercase(), path.clone()));
        }
    }
    out
}

/// (METHOD, path) pairs registered with `.route(...)` in the router sources.
fn registered() -> BTreeSet<(String, String)> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/src/routes");
    let mut out = BTreeSet::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
        let mut rest = text.as_str();
        while let Some(at) = rest.find(".route(") {
            let call = &rest[at + ".route(".len()..];
            let end = matching_paren(call);
            let args = &call[..end];
            let path = args.split('"').nth(1).unwrap().to_owned();
            for method in ["get", "post", "put", "patch", "delete"] {
                let needle = format!("{method}(");
                let mut from = 0;
                while let Some(i) = args[from..].find(&needle) {
                    let i = from + i;
                    let before = args[..i].chars().last().unwrap_or(' ');
                    if !(before.is_alphanumeric() || before == '_') {
                        out.insert((method.to_uppercase(), path.clone()));
                    }
                    from = i + needle.len();
                }
            }
            rest = &call[end..];
        }
    }
    out
}

fn matching_paren(s: &str) -> usize {
    let mut depth = 1;
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => {
                depth -= 1;
                if depth == 0 {
                    return i;
                }
            }
            _ => {}
        }
    }
    panic!("unbalanced .route(");
}

#[test]
fn every_route_is_documented_and_every_documented_route_exists() {
    let doc = openapi();
    assert_eq!(doc["openapi"], "3.1.0");
    let registered = registered();
    assert!(registered.len() >= 12, "{registered:?}");
    assert_eq!(registered, documented(&doc));
}

struct World {
    app: axum::Router,
    admin: String,
    key: String,
    key_id: String,
    _dir: tempfile::TempDir,
}

fn world() -> World {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("vault");
    let pass = SecretString::new("correct horse battery staple".into());
    let mut vault = Vault::init(&home, &pass, KdfParams::FLOOR).unwrap();
    let agent = AgentName::parse("hermes-marketing").unwrap();
    vault
        .add_agent(&Principal::Operator, &agent, &Policy::default())
        .unwrap();
    vault
        .set_secret(
            &Principal::Operator,
            &SecretPath::parse("hermes-marketing/GITHUB_TOKEN").unwrap(),
            &SecretBytes::new(b"openapi-test-value".to_vec()),
        )
        .unwrap();
    let issued = vault
        .issue_key(
            &Principal::Operator,
            &AgentName::parse("hermes-marketing-key").unwrap(),
            &agent,
            std::time::Duration::from_secs(3600),
            false,
        )
        .unwrap();
    let admin = "vadm_openapi_test".to_owned();
    let state = vault_server::AppState::new(vault, SecretString::new(admin.clone()))
        .unwrap()
        .with_broker_ca("-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n".into());
    state.set_broker_addr("http://127.0.0.1:1".into());
    World {
        app: vault_server::app(state),
        admin,
        key: issued.key.expose_secret().to_owned(),
        key_id: issued.info.key_id.into(),
        _dir: dir,
    }
}

async fn send(
    app: &axum::Router,
    method: &str,
    path: &str,
    bearer: Option<&str>,
    body: Option<serde_json::Value>,
) -> (StatusCode, serde_json::Value) {
    // as a real client would (the Host check of /metrics needs one)
    let mut req = Request::builder()
        .method(method)
        .uri(path)
        .header("host", "127.0.0.1:8200");
    if let Some(b) = bearer {
        req = req.header("authorization", format!("Bearer {b}"));
    }
    let req = match body {
        Some(b) => req
            .header("content-type", "application/json")
            .body(Body::from(b.to_string())),
        None => req.body(Body::empty()),
    }
    .unwrap();
    let response = app.clone().oneshot(req).await.unwrap();
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap();
    let value = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| serde_json::Value::String(String::from_utf8_lossy(&bytes).into()));
    (status, value)
}

/// Every field of `value` is one the schema names (one level deep, and in
/// the items of arrays), when the schema closes its object.
fn check_fields(schema: &serde_json::Value, value: &serde_json::Value, at: &str) {
    let Some(props) = schema["properties"].as_object() else {
        return;
    };
    let obj = value
        .as_object()
        .unwrap_or_else(|| panic!("{at}: not an object: {value}"));
    for (k, v) in obj {
        let sub = props
            .get(k)
            .unwrap_or_else(|| panic!("{at}: field {k:?} is not documented"));
        if let Some(items) = sub.get("items") {
            for item in v.as_array().into_iter().flatten() {
                check_fields(items, item, &format!("{at}.{k}[]"));
            }
        } else {
            check_fields(sub, v, &format!("{at}.{k}"));
        }
    }
}

/// (method, documented path, request URI, bearer, JSON body)
type Call<'a> = (
    &'a str,
    &'a str,
    String,
    Option<String>,
    Option<serde_json::Value>,
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_documented_operation_answers_as_documented() {
    let doc = openapi();
    let w = world();
    let (status, minted) = send(&w.app, "POST", "/v1/auth/token", Some(&w.key), None).await;
    assert_eq!(status, StatusCode::OK, "{minted}");
    let token = minted["token"].as_str().unwrap().to_owned();
    let (_, second) = send(&w.app, "POST", "/v1/auth/token", Some(&w.key), None).await;
    let spare = second["token"].as_str().unwrap().to_owned();
    // Calls in an order where each still has what it needs (revocations last).
    let calls: Vec<Call> = vec![
        ("GET", "/v1/health", "/v1/health".into(), None, None),
        (
            "GET",
            "/metrics",
            "/metrics".into(),
            Some(w.admin.clone()),
            None,
        ),
        (
            "GET",
            "/v1/broker/ca.pem",
            "/v1/broker/ca.pem".into(),
            None,
            None,
        ),
        ("GET", "/v1/broker", "/v1/broker".into(), None, None),
        (
            "GET",
            "/v1/broker/placeholders",
            "/v1/broker/placeholders".into(),
            Some(token.clone()),
            None,
        ),
        (
            "POST",
            "/v1/auth/token",
            "/v1/auth/token".into(),
            Some(w.key.clone()),
            Some(json!({"scopes": ["secrets:read"], "ttl_seconds": 60})),
        ),
        (
            "POST",
            "/v1/auth/attenuate",
            "/v1/auth/attenuate".into(),
            Some(token.clone()),
            Some(json!({"ttl_seconds": 60})),
        ),
        (
            "GET",
            "/v1/auth/whoami",
            "/v1/auth/whoami".into(),
            Some(token.clone()),
            None,
        ),
        (
            "GET",
            "/v1/secrets/{name}",
            "/v1/secrets/GITHUB_TOKEN".into(),
            Some(token.clone()),
            None,
        ),
        (
            "GET",
            "/v1/env",
            "/v1/env".into(),
            Some(token.clone()),
            None,
        ),
        (
            "POST",
            "/v1/scan",
            "/v1/scan".into(),
            Some(token.clone()),
            Some(json!({"text": "nothing here"})),
        ),
        (
            "GET",
            "/v1/admin/agents",
            "/v1/admin/agents".into(),
            Some(w.admin.clone()),
            None,
        ),
        (
            "GET",
            "/v1/admin/keys",
            "/v1/admin/keys".into(),
            Some(w.admin.clone()),
            None,
        ),
        (
            "GET",
            "/v1/admin/approvals",
            "/v1/admin/approvals".into(),
            Some(w.admin.clone()),
            None,
        ),
        (
            "POST",
            "/v1/admin/agents",
            "/v1/admin/agents".into(),
            Some(w.admin.clone()),
            Some(json!({"name": "codex-ci"})),
        ),
        (
            "POST",
            "/v1/admin/secrets",
            "/v1/admin/secrets".into(),
            Some(w.admin.clone()),
            Some(json!({"path": "codex-ci/NPM_TOKEN", "value": "v"})),
        ),
        (
            "POST",
            "/v1/admin/keys",
            "/v1/admin/keys".into(),
            Some(w.admin.clone()),
            Some(json!({"name": "codex-ci-key", "agent": "codex-ci"})),
        ),
        (
            "POST",
            "/v1/admin/console/login",
            "/v1/admin/console/login".into(),
            Some(w.admin.clone()),
            None,
        ),
        (
            "POST",
            "/v1/admin/console/logout-all",
            "/v1/admin/console/logout-all".into(),
            Some(w.admin.clone()),
            None,
        ),
        (
            "POST",
            "/v1/admin/tokens/revoke",
            "/v1/admin/tokens/revoke".into(),
            Some(w.admin.clone()),
            Some(json!({"token": spare})),
        ),
        (
            "POST",
            "/v1/auth/revoke",
            "/v1/auth/revoke".into(),
            Some(token.clone()),
            None,
        ),
        (
            "POST",
            "/v1/admin/keys/{id}/revoke",
            format!("/v1/admin/keys/{}/revoke", w.key_id),
            Some(w.admin.clone()),
            None,
        ),
    ];
    let covered: BTreeSet<(String, String)> = calls
        .iter()
        .map(|c| (c.0.to_owned(), c.1.to_owned()))
        .collect();
    assert_eq!(
        covered,
        documented(&doc),
        "every documented operation is called here"
    );
    for (method, template, uri, bearer, body) in calls {
        let op = &doc["paths"][template][method.to_lowercase()];
        let (status, value) = send(&w.app, method, &uri, bearer.as_deref(), body).await;
        assert_eq!(status, StatusCode::OK, "{method} {uri}: {value}");
        let schema = &op["responses"]["200"]["content"]["application/json"]["schema"];
        if !schema.is_null() {
            check_fields(schema, &value, &format!("{method} {template}"));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn documented_error_statuses_cover_what_the_routes_answer() {
    let doc = openapi();
    let w = world();
    // No credential, a bad one, and an empty JSON body, on every operation:
    // whatever comes back is either 200 or a documented error with the
    // documented shape.
    for (method, path) in documented(&doc) {
        let uri = path
            .replace("{name}", "GITHUB_TOKEN")
            .replace("{id}", "0000000000000000");
        let op = &doc["paths"][&path][method.to_lowercase()];
        for bearer in [None, Some("avt_garbage"), Some(w.key.as_str())] {
            let body = (method == "POST").then(|| serde_json::json!({}));
            let (status, value) = send(&w.app, &method, &uri, bearer, body).await;
            if status == StatusCode::OK {
                continue;
            }
            let code = status.as_u16().to_string();
            assert!(
                !op["responses"][&code].is_null(),
                "{method} {path} answered undocumented {code}: {value}"
            );
            assert!(
                value["error"]["code"].is_string(),
                "{method} {path}: {value}"
            );
            assert_ne!(
                value["error"]["message"], "no such route",
                "{method} {path}"
            );
        }
    }
}

#[test]
fn the_503_response_names_the_codes_the_store_answers_with() {
    // issue 20: on PostgreSQL a request can find the database gone, and on
    // either backend the data key replaced under another passphrase; the
    // operations that reach the vault document the 503 and its codes
    let doc = openapi();
    let unavailable = &doc["components"]["responses"]["Unavailable"];
    let text = unavailable["description"].as_str().unwrap();
    let examples = doc["components"]["schemas"]["Error"]["properties"]["error"]["properties"]
        ["code"]["examples"]
        .as_array()
        .unwrap();
    for e in [
        vault_core::Error::DatabaseUnreachable { reason: "x".into() },
        vault_core::Error::DatabaseTls { reason: "x".into() },
        vault_core::Error::Rekeyed,
        vault_core::Error::StoreBusy {
            waited_ms: 1,
            wait_ms: 1,
        },
    ] {
        assert!(text.contains(&format!("`{}`", e.code())), "{text}");
        assert!(examples.iter().any(|c| c == e.code()), "{examples:?}");
    }
    for (method, path) in [
        ("post", "/v1/auth/token"),
        ("get", "/v1/secrets/{name}"),
        ("post", "/v1/scan"),
        ("post", "/v1/admin/keys/{id}/revoke"),
    ] {
        assert_eq!(
            doc["paths"][path][method]["responses"]["503"]["$ref"],
            "#/components/responses/Unavailable",
            "{method} {path}"
        );
    }
    // those that never reach the vault do not
    assert!(doc["paths"]["/v1/health"]["get"]["responses"]["503"].is_null());
}
