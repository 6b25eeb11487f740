//! The server's request bodies: arbitrary bytes POSTed to every route that
//! reads a body, with each kind of credential, through the real router over
//! a real vault. Whatever arrives, the answer is never a 5xx and every error
//! is our JSON shape.
#![no_main]

use std::sync::OnceLock;

use axum::body::Body;
use axum::http::Request;
use libfuzzer_sys::fuzz_target;
use tower::ServiceExt;
use vault_core::{AgentName, KdfParams, Policy, Principal, SecretString, TokenRequest, Vault};

struct World {
    runtime: tokio::runtime::Runtime,
    app: axum::Router,
    credentials: [String; 4],
}

fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(|| {
        let dir = Box::leak(Box::new(tempfile::tempdir().unwrap()));
        let home = dir.path().join("vault");
        let pass = SecretString::new("fuzz passphrase".into());
        let mut vault = Vault::init(&home, &pass, KdfParams::FLOOR).unwrap();
        let agent = AgentName::parse("fuzz-agent").unwrap();
        vault.add_agent(&Principal::Operator, &agent, &Policy::default()).unwrap();
        let issued = vault
            .issue_key(
                &Principal::Operator,
                &AgentName::parse("fuzz-agent-key").unwrap(),
                &agent,
                std::time::Duration::from_secs(86_400),
                false,
            )
            .unwrap();
        let token = vault
            .mint_token(&issued.info, &TokenRequest { scopes: None, ttl: None })
            .unwrap();
        let admin = "vadm_fuzz".to_owned();
        let state = vault_server::AppState::new(vault, SecretString::new(admin.clone())).unwrap();
        World {
            runtime: tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .unwrap(),
            app: vault_server::app(state),
            credentials: [
                issued.key.expose_secret().to_owned(),
                token.token.expose_secret().to_owned(),
                admin,
                "avt_garbage".to_owned(),
            ],
        }
    })
}

const ROUTES: [&str; 7] = [
    "/v1/auth/token",
    "/v1/scan",
    "/v1/auth/revoke",
    "/v1/admin/agents",
    "/v1/admin/secrets",
    "/v1/admin/keys",
    "/v1/admin/tokens/revoke",
];

fuzz_target!(|data: &[u8]| {
    let Some((&selector, body)) = data.split_first() else {
        return;
    };
    let w = world();
    let route = ROUTES[usize::from(selector) % ROUTES.len()];
    let credential = &w.credentials[usize::from(selector >> 4) % w.credentials.len()];
    let content_type = if selector & 0x08 == 0 { "application/json" } else { "text/plain" };
    let request = Request::builder()
        .method("POST")
        .uri(route)
        .header("authorization", format!("Bearer {credential}"))
        .header("content-type", content_type)
        .body(Body::from(body.to_vec()))
        .unwrap();
    let (status, bytes) = w.runtime.block_on(async {
        let response = w.app.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20).await.unwrap();
        (status, bytes)
    });
    assert!(status.as_u16() < 500, "{route}: {status}");
    if status.as_u16() >= 400 {
        let v: serde_json::Value = serde_json::from_slice(&bytes).expect("errors are JSON");
        assert!(v["error"]["code"].is_string(), "{route}: {v}");
    }
});
