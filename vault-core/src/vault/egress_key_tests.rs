//! Egress-only keys (issue 15: the key a brokered gateway's env file holds):
//! they mint only `egress` tokens, their successors stay egress-only, and
//! clearing the flag in the database is tampering.

use std::time::Duration;

use tempfile::TempDir;

use super::*;
use crate::crypto::kdf::KdfParams;
use crate::names::SecretPath;
use crate::secret::SecretBytes;
use crate::token::Scope;
use crate::{Denial, RotationReason};

const OP: &Principal = &Principal::Operator;

fn name(s: &str) -> AgentName {
    AgentName::parse(s).unwrap()
}

/// hermes with a secret, and an egress-only key of it.
fn vault() -> (TempDir, Vault, IssuedKey) {
    let dir = TempDir::new().unwrap();
    let pass = SecretString::new("pw".into());
    let mut v = Vault::init(&dir.path().join("v"), &pass, KdfParams::TEST_ONLY).unwrap();
    v.add_agent(OP, &name("hermes"), &Policy::default())
        .unwrap();
    let path = SecretPath::parse("hermes/OPENAI_API_KEY").unwrap();
    v.set_secret(OP, &path, &SecretBytes::from_slice(b"sk-real-value"))
        .unwrap();
    let key = v
        .issue_egress_key(
            OP,
            &name("hermes-broker"),
            &name("hermes"),
            Duration::from_secs(3600),
            false,
        )
        .unwrap();
    (dir, v, key)
}

fn mint(v: &mut Vault, key: &IssuedKey, scopes: Option<Vec<Scope>>) -> Result<MintedToken> {
    let info = v.authenticate_key(key.key.expose_secret())?;
    v.mint_token(&info, &TokenRequest { scopes, ttl: None })
}

#[test]
fn an_egress_only_key_mints_egress_tokens_and_nothing_that_reads() {
    let (_dir, mut v, key) = vault();
    assert!(key.info.egress_only);

    let default = mint(&mut v, &key, None).unwrap();
    assert_eq!(default.claims.scopes, [Scope::Egress]);
    let egress = mint(&mut v, &key, Some(vec![Scope::Egress])).unwrap();
    assert_eq!(egress.claims.scopes, [Scope::Egress]);

    for wider in [
        vec![Scope::SecretsRead],
        vec![Scope::EnvRead],
        vec![Scope::Egress, Scope::Secret("OPENAI_API_KEY".into())],
    ] {
        let refused = mint(&mut v, &key, Some(wider.clone()));
        assert!(
            matches!(
                &refused,
                Err(Error::BadCredential {
                    code: Denial::OutOfScope,
                    ..
                })
            ),
            "{wider:?} was not refused: {:?}",
            refused.map(|m| m.claims.scopes)
        );
    }
}

#[test]
fn an_ordinary_key_is_not_egress_only() {
    let (_dir, mut v, _) = vault();
    let key = v
        .issue_key(
            OP,
            &name("hermes-key"),
            &name("hermes"),
            Duration::from_secs(3600),
            false,
        )
        .unwrap();
    assert!(!key.info.egress_only);
    let read = mint(&mut v, &key, Some(vec![Scope::SecretsRead])).unwrap();
    assert_eq!(read.claims.scopes, [Scope::SecretsRead]);
}

#[test]
fn a_successor_of_an_egress_only_key_is_egress_only_whichever_way_it_is_made() {
    let (_dir, mut v, key) = vault();
    // rotated (as a leak or `vault rotate --print` rotates it)
    let report = v
        .rotate_key_printed(OP, "hermes-broker", RotationReason::Manual, true)
        .unwrap();
    let successor = v.key_by_id(&report.new_key_id).unwrap();
    assert!(successor.egress_only, "rotation widened the key");
    assert_ne!(successor.key_id, key.info.key_id);

    // re-issued over the same name (`vault issue NAME --rotate`)
    let reissued = v
        .issue_key(
            OP,
            &name("hermes-broker"),
            &name("hermes"),
            Duration::from_secs(3600),
            true,
        )
        .unwrap();
    assert!(reissued.info.egress_only, "--rotate widened the key");
}

#[test]
fn clearing_the_egress_only_flag_behind_the_vaults_back_is_tampering() {
    let (dir, v, key) = vault();
    drop(v);
    let conn = rusqlite::Connection::open(dir.path().join("v").join(DB_FILE)).unwrap();
    conn.execute_batch("UPDATE agent_keys SET egress_only = 0")
        .unwrap();
    drop(conn);
    let pass = SecretString::new("pw".into());
    let mut v = Vault::unlock(&dir.path().join("v"), &pass).unwrap();
    let r = v.authenticate_key(key.key.expose_secret());
    assert!(
        matches!(r, Err(Error::Integrity { .. })),
        "a cleared flag was not noticed: {r:?}"
    );
}
