//! The broker's cache of credential checks and attached values
//! (`egress_cache`): whatever another connection to the same file commits
//! (the CLI beside a running server) and whatever this handle writes
//! itself applies to the very next grant.

use std::time::Duration;

use tempfile::TempDir;

use super::*;
use crate::crypto::kdf::KdfParams;
use crate::names::SecretPath;
use crate::policy::egress::EgressRequest;
use crate::secret::SecretBytes;
use crate::token::Scope;

const OP: &Principal = &Principal::Operator;

fn name(s: &str) -> AgentName {
    AgentName::parse(s).unwrap()
}

/// A POST of /v1/chat to `host` (as vault/broker.rs's tests send).
fn post(host: &str) -> EgressRequest<'_> {
    EgressRequest {
        method: "POST",
        host,
        port: 443,
        path: "/v1/chat",
        tls: true,
    }
}

const RULE: &str =
    "[[egress]]\nhost = \"api.openai.com\"\nsecret = \"OPENAI_API_KEY\"\nauth = \"bearer\"\n";

/// A vault (in the returned directory's `v`) with hermes, its rule and
/// secret `sk-one`, a key of it and an `egress` token of that key.
fn hermes() -> (TempDir, Vault, KeyInfo, String, String) {
    let dir = TempDir::new().unwrap();
    let pass = SecretString::new("pw".into());
    let mut v = Vault::init(&dir.path().join("v"), &pass, KdfParams::TEST_ONLY).unwrap();
    let hermes = name("hermes");
    v.add_agent(OP, &hermes, &Policy::from_toml(RULE).unwrap())
        .unwrap();
    let path = SecretPath::parse("hermes/OPENAI_API_KEY").unwrap();
    v.set_secret(OP, &path, &SecretBytes::from_slice(b"sk-one"))
        .unwrap();
    let day = Duration::from_secs(86_400);
    let issued = v
        .issue_key(OP, &name("hermes-key"), &hermes, day, false)
        .unwrap();
    let key = issued.key.expose_secret().to_owned();
    let info = v.authenticate_key(&key).unwrap();
    let minted = v
        .mint_token(
            &info,
            &TokenRequest {
                scopes: Some(vec![Scope::Egress]),
                ttl: None,
            },
        )
        .unwrap();
    let token = minted.token.expose_secret().to_owned();
    (dir, v, info, key, token)
}

/// The value a grant attaches (panics on anything but an attach).
fn attached(v: &mut Vault, credential: &str) -> Vec<u8> {
    match v.egress_grant(credential, &post("api.openai.com")).unwrap() {
        EgressGrant::Attach { value, .. } => value.expose_secret().to_vec(),
        other => panic!("no attach: {other:?}"),
    }
}

fn grant_code(v: &mut Vault, credential: &str) -> String {
    match v.egress_grant(credential, &post("api.openai.com")) {
        Ok(EgressGrant::Attach { .. }) => "attach".into(),
        Ok(EgressGrant::MethodDenied(_)) => "method_denied".into(),
        Ok(EgressGrant::Deny(_)) => "deny".into(),
        Ok(EgressGrant::Tunnel(_)) => "tunnel".into(),
        Err(e) => e.code().to_owned(),
    }
}

// issue 15 speed: a secret rotated, a policy narrowed, a key suspended or
// revoked by another process (another connection) applies to the next grant
// of a credential whose check and value are cached
#[test]
fn what_another_process_commits_applies_to_the_next_cached_grant() {
    let (dir, mut server, info, key, token) = hermes();
    let home = dir.path().join("v");
    let pass = SecretString::new("pw".into());
    let hermes = name("hermes");
    let path = SecretPath::parse("hermes/OPENAI_API_KEY").unwrap();
    for _ in 0..3 {
        assert_eq!(attached(&mut server, &key), b"sk-one");
        assert_eq!(attached(&mut server, &token), b"sk-one");
    }

    let mut cli = Vault::unlock(&home, &pass).unwrap();
    cli.set_secret(OP, &path, &SecretBytes::from_slice(b"sk-two"))
        .unwrap();
    assert_eq!(attached(&mut server, &key), b"sk-two");
    assert_eq!(attached(&mut server, &token), b"sk-two");

    // the policy narrowed to GET: the next POST is refused
    let narrow = Policy::from_toml(&RULE.replace("auth", "methods = [\"GET\"]\nauth")).unwrap();
    cli.set_policy(OP, &hermes, &narrow).unwrap();
    assert_eq!(grant_code(&mut server, &key), "method_denied");
    assert_eq!(grant_code(&mut server, &token), "method_denied");
    cli.set_policy(OP, &hermes, &Policy::from_toml(RULE).unwrap())
        .unwrap();
    assert_eq!(attached(&mut server, &key), b"sk-two");

    // suspended by the other process: key and token refused at once
    cli.suspend_key(&info.key_id, "test").unwrap();
    assert_eq!(grant_code(&mut server, &key), "key_suspended");
    assert_eq!(grant_code(&mut server, &token), "key_suspended");
    assert_eq!(
        server.egress_authenticate(&key).unwrap_err().code(),
        "key_suspended"
    );
}

// the same through this handle's own writes (the server's API, its leak
// flow, its budget suspensions), and a token revoked alone
#[test]
fn what_this_handle_writes_applies_to_the_next_cached_grant() {
    let (_dir, mut v, info, key, token) = hermes();
    let hermes = name("hermes");
    let claims = v.verify_token(&token).unwrap();
    assert_eq!(attached(&mut v, &token), b"sk-one");
    assert_eq!(attached(&mut v, &token), b"sk-one");
    v.revoke_token(OP, &claims).unwrap();
    assert_eq!(grant_code(&mut v, &token), "token_revoked");
    assert_eq!(attached(&mut v, &key), b"sk-one");

    v.set_policy(OP, &hermes, &Policy::default()).unwrap();
    assert_eq!(grant_code(&mut v, &key), "deny");
    v.set_policy(OP, &hermes, &Policy::from_toml(RULE).unwrap())
        .unwrap();
    assert_eq!(attached(&mut v, &key), b"sk-one");
    v.suspend_key(&info.key_id, "test").unwrap();
    assert_eq!(grant_code(&mut v, &key), "key_suspended");
}
