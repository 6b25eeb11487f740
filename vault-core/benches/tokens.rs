//! Issue 3's speed figures: token mint and verify in process, and named-key
//! parse + checksum. Run with `cargo bench -p vault-core --bench tokens`.

use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use vault_core::{
    AgentName, KdfParams, NamedKey, Policy, Principal, SecretString, TokenRequest, Vault,
};

fn benches(c: &mut Criterion) {
    let dir = tempfile::TempDir::new().unwrap();
    let pass = SecretString::new("benchmark passphrase".into());
    let mut vault = Vault::init(&dir.path().join("v"), &pass, KdfParams::FLOOR).unwrap();
    let agent = AgentName::parse("hermes").unwrap();
    vault
        .add_agent(&Principal::Operator, &agent, &Policy::default())
        .unwrap();
    let issued = vault
        .issue_key(
            &Principal::Operator,
            &AgentName::parse("hermes-key").unwrap(),
            &agent,
            Duration::from_secs(86_400),
            false,
        )
        .unwrap();
    let info = vault.authenticate_key(issued.key.expose_secret()).unwrap();
    let minted = vault.mint_token(&info, &TokenRequest::default()).unwrap();
    let signer = vault.token_signer().unwrap();
    let snapshot = vault.revocation_snapshot().unwrap();
    let token = minted.token.expose_secret().to_owned();
    let now = minted.claims.issued_at + 1;

    let mut g = c.benchmark_group("token");
    g.throughput(Throughput::Elements(1));
    // What the server does per request: HMAC + expiry, then the in-memory revocation check.
    g.bench_function("verify_in_memory", |b| {
        b.iter(|| {
            let claims = signer.verify(&token, now).unwrap();
            snapshot.check(&claims).unwrap();
        })
    });
    // Peer: an HS256 JWT carrying the same claims, verified by `jsonwebtoken`
    // (signature + exp), the usual choice for this job in Rust.
    let jwt_key = [7u8; 32];
    let jwt_claims = serde_json::json!({
        "jti": minted.claims.token_id, "kid": minted.claims.key_id, "sub": "hermes",
        "iat": minted.claims.issued_at, "exp": minted.claims.expires_at, "epoch": 0,
        "scope": "env:read secrets:read",
    });
    let jwt = jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &jwt_claims,
        &jsonwebtoken::EncodingKey::from_secret(&jwt_key),
    )
    .unwrap();
    let decoding = jsonwebtoken::DecodingKey::from_secret(&jwt_key);
    let validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
    g.bench_function("peer_jsonwebtoken_hs256_verify", |b| {
        b.iter(|| jsonwebtoken::decode::<serde_json::Value>(&jwt, &decoding, &validation).unwrap())
    });
    g.bench_function("sign_claims", |b| {
        b.iter(|| signer.sign(&minted.claims).unwrap())
    });
    // What the CLI does without a server: a full mint through SQLite.
    g.bench_function("mint_with_store", |b| {
        b.iter(|| vault.mint_token(&info, &TokenRequest::default()).unwrap())
    });
    g.finish();

    let key_text = issued.key.expose_secret().to_owned();
    c.bench_function("named_key_parse_checksum_hash", |b| {
        b.iter(|| NamedKey::parse(&key_text).unwrap().hash())
    });
}

criterion_group!(token_benches, benches);
criterion_main!(token_benches);
