use crate::vault::AuditVerdict;
use crate::Denial;
use tempfile::TempDir;

use super::*;
use crate::crypto::kdf::KdfParams;
use crate::names::SecretPath;
use crate::secret::SecretBytes;
use crate::store::sql::args;
use crate::store::{self};
use crate::{ApprovalKind, ApprovalState, AuditAction, RotationReason};

const OP: &Principal = &Principal::Operator;

fn pass(s: &str) -> SecretString {
    SecretString::new(s.to_owned())
}

fn new_vault() -> (TempDir, Vault) {
    let dir = TempDir::new().unwrap();
    let home = dir.path().join("v");
    let vault = Vault::init(&home, &pass("pw"), KdfParams::TEST_ONLY).unwrap();
    (dir, vault)
}

fn path(s: &str) -> SecretPath {
    SecretPath::parse(s).unwrap()
}

fn agent(s: &str) -> AgentName {
    AgentName::parse(s).unwrap()
}

fn set(v: &mut Vault, p: &str, value: &str) -> i64 {
    v.set_secret(OP, &path(p), &SecretBytes::from_slice(value.as_bytes()))
        .unwrap()
}

fn get(v: &Vault, actor: &Principal, p: &str) -> Result<String> {
    v.get_secret(actor, &path(p))
        .map(|(s, _)| s.as_str().unwrap().to_owned())
}

#[test]
fn a_handle_open_across_a_rekey_elsewhere_reloads_the_data_key_and_keeps_working() {
    // issue 19, Broken 4: a server or watcher outliving `vault rekey`
    let (dir, mut running) = new_vault();
    running
        .add_agent(OP, &agent("hermes"), &Policy::default())
        .unwrap();
    set(&mut running, "hermes/API_KEY", "value-1");
    let mut other = Vault::unlock(&dir.path().join("v"), &pass("pw")).unwrap();
    other.rekey(OP, &pass("pw")).unwrap();
    assert!(running.reload_if_rekeyed().unwrap(), "the rekey is seen");
    assert!(!running.reload_if_rekeyed().unwrap(), "and only once");
    assert_eq!(get(&running, OP, "hermes/API_KEY").unwrap(), "value-1");
    set(&mut running, "hermes/API_KEY", "value-2");
    assert_eq!(get(&other, OP, "hermes/API_KEY").unwrap(), "value-2");
}

#[test]
fn round_trip_versions_and_unlock_again() {
    let (dir, mut v) = new_vault();
    v.add_agent(OP, &agent("hermes"), &Policy::default())
        .unwrap();
    assert_eq!(set(&mut v, "hermes/TOKEN", "one"), 1);
    assert_eq!(set(&mut v, "hermes/TOKEN", "two"), 2);
    assert_eq!(get(&v, OP, "hermes/TOKEN").unwrap(), "two");
    let history = v.history(OP, &path("hermes/TOKEN")).unwrap();
    assert_eq!(
        history
            .iter()
            .map(|h| (h.version, h.current))
            .collect::<Vec<_>>(),
        [(1, false), (2, true)]
    );
    drop(v);
    let v = Vault::unlock(&dir.path().join("v"), &pass("pw")).unwrap();
    assert_eq!(get(&v, OP, "hermes/TOKEN").unwrap(), "two");
    assert!(matches!(
        Vault::unlock(&dir.path().join("v"), &pass("nope")),
        Err(Error::WrongPassphrase)
    ));
}

#[test]
fn agents_see_only_their_own_secrets() {
    let (_dir, mut v) = new_vault();
    v.add_agent(OP, &agent("hermes"), &Policy::default())
        .unwrap();
    v.add_agent(OP, &agent("finance"), &Policy::default())
        .unwrap();
    set(&mut v, "hermes/A", "h");
    set(&mut v, "finance/A", "f");
    let hermes = Principal::Agent(agent("hermes"));
    assert_eq!(get(&v, &hermes, "hermes/A").unwrap(), "h");
    let other = get(&v, &hermes, "finance/A").unwrap_err().to_string();
    let missing = get(&v, &hermes, "finance/NOPE").unwrap_err().to_string();
    // indistinguishable apart from the name the caller typed
    assert_eq!(other.replace("/A", "/X"), missing.replace("/NOPE", "/X"));
    assert_eq!(v.list_secrets(&hermes, None).unwrap().len(), 1);
    assert!(v
        .list_secrets(&hermes, Some(&agent("finance")))
        .unwrap()
        .is_empty());
    assert_eq!(v.list_agents(&hermes).unwrap().len(), 1);
    assert!(matches!(
        v.set_secret(&hermes, &path("hermes/A"), &SecretBytes::from_slice(b"x")),
        Err(Error::Refused { .. })
    ));
    assert!(v.history(&hermes, &path("finance/A")).is_err());
}

#[test]
fn every_byte_of_a_stored_ciphertext_is_authenticated() {
    let (_dir, mut v) = new_vault();
    v.add_agent(OP, &agent("hermes"), &Policy::default())
        .unwrap();
    set(&mut v, "hermes/A", "value-a");
    let blob: Vec<u8> = v
        .conn()
        .as_sqlite()
        .unwrap()
        .query_row("SELECT ciphertext FROM secret_versions", [], |r| r.get(0))
        .unwrap();
    for i in 0..blob.len() {
        let mut bad = blob.clone();
        bad[i] ^= 0x01;
        v.conn()
            .execute("UPDATE secret_versions SET ciphertext = ?1", args![&bad])
            .unwrap();
        assert!(
            matches!(get(&v, OP, "hermes/A"), Err(Error::Integrity { .. })),
            "byte {i}"
        );
    }
}

#[test]
fn a_ciphertext_moved_to_another_row_fails() {
    let (_dir, mut v) = new_vault();
    v.add_agent(OP, &agent("hermes"), &Policy::default())
        .unwrap();
    v.add_agent(OP, &agent("finance"), &Policy::default())
        .unwrap();
    set(&mut v, "hermes/A", "secret-a");
    set(&mut v, "hermes/B", "secret-b");
    set(&mut v, "finance/A", "secret-fa");
    set(&mut v, "hermes/A", "secret-a2");
    let c = v.conn();
    // same name, other agent
    c.execute(
        "UPDATE secret_versions SET ciphertext = (SELECT ciphertext FROM secret_versions v
            JOIN secrets s USING (secret_id) JOIN agents a USING (agent_id)
            WHERE a.name = 'hermes' AND s.name = 'A' AND v.version = 2)
         WHERE secret_id = (SELECT secret_id FROM secrets s JOIN agents a USING (agent_id)
            WHERE a.name = 'finance' AND s.name = 'A')",
        args![],
    )
    .unwrap();
    assert!(matches!(
        get(&v, OP, "finance/A"),
        Err(Error::Integrity { .. })
    ));
    // an old version moved over the current one (rollback)
    c.execute(
        "UPDATE secret_versions SET ciphertext = (SELECT ciphertext FROM secret_versions WHERE version = 1
            AND secret_id = (SELECT secret_id FROM secrets WHERE name = 'A' AND agent_id =
            (SELECT agent_id FROM agents WHERE name = 'hermes')))
         WHERE version = 2",
        args![],
    )
    .unwrap();
    assert!(matches!(
        get(&v, OP, "hermes/A"),
        Err(Error::Integrity { .. })
    ));
    // row renamed: B's ciphertext now answers to C
    c.execute("UPDATE secrets SET name = 'C' WHERE name = 'B'", args![])
        .unwrap();
    assert!(matches!(
        get(&v, OP, "hermes/C"),
        Err(Error::Integrity { .. })
    ));
}

#[test]
fn a_weakened_header_does_not_unlock() {
    let (dir, v) = new_vault();
    let c = v.conn();
    c.execute(
        "UPDATE vault_header SET kdf_iterations = kdf_iterations + 1",
        args![],
    )
    .unwrap();
    drop(v);
    let home = dir.path().join("v");
    assert!(matches!(
        Vault::unlock(&home, &pass("pw")),
        Err(Error::WrongPassphrase)
    ));
}

#[test]
fn passwd_rewraps_and_rekey_reencrypts() {
    let (dir, mut v) = new_vault();
    let home = dir.path().join("v");
    v.add_agent(OP, &agent("hermes"), &Policy::default())
        .unwrap();
    set(&mut v, "hermes/A", "a1");
    set(&mut v, "hermes/A", "a2");
    set(&mut v, "hermes/B", "b1");
    v.change_passphrase(OP, &pass("new"), KdfParams::TEST_ONLY)
        .unwrap();
    assert!(matches!(
        Vault::unlock(&home, &pass("pw")),
        Err(Error::WrongPassphrase)
    ));
    let before: Vec<Vec<u8>> = blobs(&v);
    assert!(matches!(
        v.rekey(OP, &pass("wrong")),
        Err(Error::WrongPassphrase)
    ));
    assert_eq!(v.rekey(OP, &pass("new")).unwrap(), 3);
    let after = blobs(&v);
    assert!(before.iter().zip(&after).all(|(a, b)| a != b));
    assert_eq!(get(&v, OP, "hermes/A").unwrap(), "a2");
    drop(v);
    let v = Vault::unlock(&home, &pass("new")).unwrap();
    assert_eq!(get(&v, OP, "hermes/B").unwrap(), "b1");
    // the new DEK's own wrap, 3 values and the audit key
    assert_eq!(v.dek_usage().unwrap().encryptions, 5);
}

#[test]
fn a_stale_handle_cannot_write_after_another_rekeys() {
    let (dir, mut a) = new_vault();
    let home = dir.path().join("v");
    a.add_agent(OP, &agent("hermes"), &Policy::default())
        .unwrap();
    let mut b = Vault::unlock(&home, &pass("pw")).unwrap();
    b.rekey(OP, &pass("pw")).unwrap();
    let err = a
        .set_secret(OP, &path("hermes/A"), &SecretBytes::from_slice(b"x"))
        .unwrap_err();
    assert!(matches!(err, Error::Rekeyed));
}

#[test]
fn the_dek_budget_is_enforced() {
    let (_dir, mut v) = new_vault();
    v.add_agent(OP, &agent("hermes"), &Policy::default())
        .unwrap();
    v.force_dek_encryptions(DEK_LIMIT - 1);
    set(&mut v, "hermes/A", "last one");
    assert!(v.dek_usage().unwrap().should_warn());
    let err = v
        .set_secret(OP, &path("hermes/A"), &SecretBytes::from_slice(b"x"))
        .unwrap_err();
    assert!(err.to_string().contains("vault rekey"));
    // nothing changed
    assert_eq!(get(&v, OP, "hermes/A").unwrap(), "last one");
    v.rekey(OP, &pass("pw")).unwrap();
    set(&mut v, "hermes/A", "after rekey");
}

#[test]
fn bad_values_are_refused_and_change_nothing() {
    let (_dir, mut v) = new_vault();
    v.add_agent(OP, &agent("hermes"), &Policy::default())
        .unwrap();
    set(&mut v, "hermes/A", "keep");
    for bad in [
        vec![],
        vec![b'a'; MAX_VALUE_LEN + 1],
        b"a\0b".to_vec(),
        vec![0xff, 0xfe],
    ] {
        let err = v
            .set_secret(OP, &path("hermes/A"), &SecretBytes::new(bad))
            .unwrap_err();
        assert!(matches!(err, Error::InvalidValue { .. }));
    }
    assert_eq!(get(&v, OP, "hermes/A").unwrap(), "keep");
    assert_eq!(v.history(OP, &path("hermes/A")).unwrap().len(), 1);
    assert!(matches!(
        v.set_secret(OP, &path("nobody/A"), &SecretBytes::from_slice(b"x")),
        Err(Error::NotFound { what: "agent", .. })
    ));
}

#[test]
fn agent_removal_needs_force_while_it_owns_secrets() {
    let (_dir, mut v) = new_vault();
    v.add_agent(OP, &agent("hermes"), &Policy::default())
        .unwrap();
    assert!(matches!(
        v.add_agent(OP, &agent("hermes"), &Policy::default()),
        Err(Error::AlreadyExists { .. })
    ));
    set(&mut v, "hermes/A", "x");
    assert!(matches!(
        v.remove_agent(OP, &agent("hermes"), false),
        Err(Error::Refused { .. })
    ));
    assert_eq!(v.remove_agent(OP, &agent("hermes"), true).unwrap(), 1);
    assert!(v.list_secrets(OP, None).unwrap().is_empty());
    // a re-created agent and secret never decrypt an old row: ids are not reused
    v.add_agent(OP, &agent("hermes"), &Policy::default())
        .unwrap();
    set(&mut v, "hermes/A", "new");
    let ids: Vec<i64> = v
        .conn()
        .as_sqlite()
        .unwrap()
        .prepare("SELECT secret_id FROM secrets")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(|r| r.unwrap())
        .collect();
    assert_eq!(ids, [2]);
}

#[test]
fn files_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let (dir, v) = new_vault();
    let home = dir.path().join("v");
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&home), 0o700);
    assert_eq!(mode(&home.join(DB_FILE)), 0o600);
    drop(v);
    std::fs::set_permissions(home.join(DB_FILE), std::fs::Permissions::from_mode(0o644)).unwrap();
    let err = Vault::unlock(&home, &pass("pw")).unwrap_err();
    assert!(err.to_string().contains("chmod 600"), "{err}");
}

fn blobs(v: &Vault) -> Vec<Vec<u8>> {
    v.conn()
        .as_sqlite()
        .unwrap()
        .prepare("SELECT ciphertext FROM secret_versions ORDER BY secret_id, version")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(|r| r.unwrap())
        .collect()
}

/// Issue 3's access matrix: every agent-facing operation against every kind
/// of caller, with the outcome each must get.
#[test]
fn access_matrix() {
    use crate::token::{Scope, TokenClaims};
    use std::time::Duration;

    let (_dir, mut v) = new_vault();
    for a in ["hermes", "finance"] {
        v.add_agent(OP, &agent(a), &Policy::default()).unwrap();
    }
    set(&mut v, "hermes/A", "hermes-a");
    set(&mut v, "finance/B", "finance-b");
    let day = Duration::from_secs(86_400);
    let hermes_key = v
        .issue_key(OP, &agent("hermes-key"), &agent("hermes"), day, false)
        .unwrap();
    let finance_key = v
        .issue_key(OP, &agent("finance-key"), &agent("finance"), day, false)
        .unwrap();
    let revoked_key = v
        .issue_key(OP, &agent("hermes-old"), &agent("hermes"), day, false)
        .unwrap();

    let mint = |v: &mut Vault, key: &IssuedKey, scopes: Option<Vec<Scope>>| {
        let info = v.authenticate_key(key.key.expose_secret()).unwrap();
        let req = TokenRequest { scopes, ttl: None };
        v.mint_token(&info, &req)
            .unwrap()
            .token
            .expose_secret()
            .to_owned()
    };
    let own = mint(&mut v, &hermes_key, None);
    let other = mint(&mut v, &finance_key, None);
    let revoked = mint(&mut v, &revoked_key, None);
    v.revoke_key(OP, "hermes-old").unwrap();
    let narrow = mint(
        &mut v,
        &hermes_key,
        Some(vec![Scope::Secret("NOPE".into())]),
    );
    let expired = {
        let now = store::now() as u64;
        let claims = TokenClaims {
            token_id: crate::TokenId::from_store("00000000000000aa".into()),
            key_id: hermes_key.info.key_id.clone(),
            epoch: 0,
            issued_at: now - 100,
            expires_at: now - 1,
            agent: agent("hermes"),
            scopes: vec![Scope::SecretsRead, Scope::EnvRead],
            parents: vec![],
        };
        v.token_signer().unwrap().sign(&claims).unwrap()
    };

    // outcome of one operation for a token: "ok" or the error code
    let outcome = |v: &Vault, token: &str, op: &str| -> String {
        let claims = match v.verify_token(token) {
            Ok(c) => c,
            Err(e) => return e.code().to_owned(),
        };
        let result = match op {
            "read own" => v
                .read_with_token(&claims, "A")
                .map(|(_, s, _)| s.as_str().unwrap().to_owned()),
            "read other" => v
                .read_with_token(&claims, "finance/B")
                .map(|(_, s, _)| s.as_str().unwrap().to_owned()),
            "env" => v.env_with_token(&claims).map(|e| {
                e.iter()
                    .map(|(k, _)| k.to_string())
                    .collect::<Vec<_>>()
                    .join(",")
            }),
            _ => unreachable!(),
        };
        match result {
            Ok(value) => format!("ok:{value}"),
            Err(e) => e.code().to_owned(),
        }
    };
    let table = [
        ("own", &own, ["ok:hermes-a", "not_found", "ok:A"]),
        ("other agent", &other, ["not_found", "ok:finance-b", "ok:B"]),
        (
            "revoked key",
            &revoked,
            ["key_revoked", "key_revoked", "key_revoked"],
        ),
        (
            "expired",
            &expired,
            ["token_expired", "token_expired", "token_expired"],
        ),
        (
            "out of scope",
            &narrow,
            ["out_of_scope", "out_of_scope", "out_of_scope"],
        ),
    ];
    for (who, token, want) in table {
        for (op, want) in ["read own", "read other", "env"].iter().zip(want) {
            assert_eq!(outcome(&v, token, op), want, "{who} / {op}");
        }
    }
    // the operator reads anything; an agent principal never writes
    assert_eq!(get(&v, OP, "finance/B").unwrap(), "finance-b");
    let as_hermes = Principal::Agent(agent("hermes"));
    assert!(matches!(
        v.issue_key(&as_hermes, &agent("x-key"), &agent("hermes"), day, false),
        Err(Error::Refused { .. })
    ));
    assert!(matches!(
        v.remove_secret(&as_hermes, &path("hermes/A")),
        Err(Error::Refused { .. })
    ));
    assert!(matches!(
        v.env_of(&as_hermes, &agent("finance")),
        Err(Error::NotFound { .. })
    ));
    assert_eq!(
        v.list_keys(&as_hermes, Some(&agent("finance")))
            .unwrap()
            .len(),
        2
    );
}

fn audited_vault() -> (TempDir, Vault) {
    let (dir, mut v) = new_vault();
    v.add_agent(OP, &agent("hermes"), &Policy::default())
        .unwrap();
    set(&mut v, "hermes/A", "a1");
    set(&mut v, "hermes/A", "a2");
    get(&v, OP, "hermes/A").unwrap();
    v.remove_secret(OP, &path("hermes/A")).unwrap();
    (dir, v)
}

#[test]
fn the_audit_trail_records_changes_and_reads_without_values() {
    let (_dir, v) = audited_vault();
    let log = v.audit_log(None, None).unwrap();
    let actions: Vec<_> = log.iter().map(|r| r.action.as_str()).collect();
    assert_eq!(
        actions,
        [
            "vault.init",
            "agent.add",
            "secret.set",
            "secret.set",
            "secret.read",
            "secret.remove"
        ]
    );
    assert!(log
        .iter()
        .all(|r| r.outcome == "ok" && r.actor == "operator"));
    assert_eq!(log[2].target.as_deref(), Some("hermes/A"));
    assert_eq!(
        v.verify_audit().unwrap(),
        AuditVerdict::Intact { records: 6 }
    );
    let dump: Vec<u8> = v
        .conn()
        .as_sqlite()
        .unwrap()
        .prepare("SELECT * FROM audit_log")
        .unwrap()
        .query_map([], |r| {
            Ok(format!(
                "{:?}",
                (r.get::<_, String>(2)?, r.get::<_, Option<String>>(5)?)
            ))
        })
        .unwrap()
        .flat_map(|r| r.unwrap().into_bytes())
        .collect();
    assert!(!String::from_utf8_lossy(&dump).contains("a2"));
}

#[test]
fn audit_verify_names_the_first_bad_record_for_each_kind_of_tampering() {
    let cases: [(&str, &str, i64); 6] = [
        ("modified", "UPDATE audit_log SET target = 'hermes/B' WHERE seq = 3", 3),
        ("deleted in the middle", "DELETE FROM audit_log WHERE seq = 2", 2),
        ("deleted at the end", "DELETE FROM audit_log WHERE seq = 6", 6),
        (
            "reordered",
            "UPDATE audit_log SET seq = 1000 WHERE seq = 3; UPDATE audit_log SET seq = 3 WHERE seq = 4; \
             UPDATE audit_log SET seq = 4 WHERE seq = 1000",
            3,
        ),
        (
            "inserted",
            "UPDATE audit_log SET seq = seq + 100 WHERE seq >= 4; \
             UPDATE audit_log SET seq = seq - 99 WHERE seq >= 104; \
             INSERT INTO audit_log SELECT 4, at_ms, actor, key_id, action, 'forged', outcome, request_id, origin, chain, mac FROM audit_log WHERE seq = 3",
            4,
        ),
        ("outcome flipped", "UPDATE audit_log SET outcome = 'denied:x' WHERE seq = 5", 5),
    ];
    for (what, sql, first_bad) in cases {
        let (_dir, v) = audited_vault();
        v.conn().execute_batch(sql).unwrap();
        match v.verify_audit().unwrap() {
            AuditVerdict::Broken { seq, .. } => assert_eq!(seq, first_bad, "{what}"),
            ok => panic!("{what}: {ok:?}"),
        }
    }
}

#[test]
fn an_action_whose_audit_record_cannot_be_written_does_not_happen() {
    let (_dir, mut v) = new_vault();
    v.add_agent(OP, &agent("hermes"), &Policy::default())
        .unwrap();
    set(&mut v, "hermes/A", "before");
    v.conn()
        .execute_batch("CREATE TRIGGER no_audit BEFORE INSERT ON audit_log BEGIN SELECT RAISE(ABORT, 'disk full'); END")
        .unwrap();
    assert!(v
        .set_secret(OP, &path("hermes/A"), &SecretBytes::from_slice(b"after"))
        .is_err());
    assert!(v.remove_secret(OP, &path("hermes/A")).is_err());
    assert!(v
        .add_agent(OP, &agent("other"), &Policy::default())
        .is_err());
    // a read whose record cannot be written hands out no value
    assert!(get(&v, OP, "hermes/A").is_err());
    v.conn().execute_batch("DROP TRIGGER no_audit").unwrap();
    assert_eq!(get(&v, OP, "hermes/A").unwrap(), "before");
    assert_eq!(v.list_agents(OP).unwrap().len(), 1);
    assert!(matches!(
        v.verify_audit().unwrap(),
        AuditVerdict::Intact { .. }
    ));
}

#[test]
fn usage_counts_match_the_requests_made() {
    use std::time::Duration;
    let (_dir, mut v) = new_vault();
    v.add_agent(OP, &agent("hermes"), &Policy::default())
        .unwrap();
    set(&mut v, "hermes/A", "a");
    let key = v
        .issue_key(
            OP,
            &agent("hermes-key"),
            &agent("hermes"),
            Duration::from_secs(3600),
            false,
        )
        .unwrap();
    let info = v.authenticate_key(key.key.expose_secret()).unwrap();
    let mut tokens = Vec::new();
    for _ in 0..3 {
        tokens.push(
            v.mint_token(&info, &TokenRequest::default())
                .unwrap()
                .claims,
        );
    }
    for _ in 0..5 {
        v.read_with_token(&tokens[0], "A").unwrap();
    }
    v.env_with_token(&tokens[1]).unwrap();
    for _ in 0..2 {
        assert!(v.read_with_token(&tokens[2], "NOPE").is_err());
    }
    let usage = v.usage().unwrap();
    let u = &usage[info.key_id.as_str()];
    assert_eq!((u.tokens_minted, u.reads, u.denials), (3, 6, 2));
    assert!(u.last_used_ms.is_some());
}

mod rotation {
    use std::path::Path;
    use std::time::Duration;

    use super::*;
    use crate::envfile;
    use crate::names::SecretName;
    use crate::vault::{LeakAction, RotationState};

    fn with_key(v: &mut Vault) -> IssuedKey {
        v.add_agent(OP, &agent("hermes"), &Policy::default())
            .unwrap();
        v.issue_key(
            OP,
            &agent("hermes-key"),
            &agent("hermes"),
            Duration::from_secs(86_400),
            false,
        )
        .unwrap()
    }

    #[test]
    fn key_rotation_writes_every_target_then_revokes_the_old_key() {
        let (dir, mut v) = new_vault();
        let old = with_key(&mut v);
        let a = dir.path().join("a.env");
        let b = dir.path().join("b.env");
        std::fs::write(&a, "KEEP=1\nVAULT_AGENT_KEY=stale\n").unwrap();
        v.add_target(
            OP,
            &agent("hermes"),
            &a,
            &SecretName::parse("VAULT_AGENT_KEY").unwrap(),
            None,
        )
        .unwrap();
        v.add_target(
            OP,
            &agent("hermes"),
            &b,
            &SecretName::parse("HERMES_KEY").unwrap(),
            None,
        )
        .unwrap();
        let report = v
            .rotate_key(OP, "hermes-key", RotationReason::Manual)
            .unwrap();
        assert_eq!(report.state, RotationState::Done);
        assert_eq!(report.written.len(), 2);
        assert!(report.new_key.is_none());
        let in_a = envfile::value_of(&a, "VAULT_AGENT_KEY").unwrap().unwrap();
        let in_b = envfile::value_of(&b, "HERMES_KEY").unwrap().unwrap();
        assert_eq!(in_a.as_str(), in_b.as_str());
        assert!(std::fs::read_to_string(&a).unwrap().starts_with("KEEP=1\n"));
        assert_eq!(v.authenticate_key(&in_a).unwrap().key_id, report.new_key_id);
        assert!(matches!(
            v.authenticate_key(old.key.expose_secret()),
            Err(Error::BadCredential {
                code: Denial::KeyRevoked,
                ..
            })
        ));
        let keys = v.list_keys(OP, None).unwrap();
        assert_eq!(
            keys.iter()
                .filter(|k| k.status == KeyStatus::Active)
                .count(),
            1
        );
    }

    #[test]
    fn rotating_a_second_key_leaves_the_targets_holding_the_main_key_alone() {
        // issue 19, Broken 1: targets belong to a key, not to every key of the agent
        let (dir, mut v) = new_vault();
        let main = with_key(&mut v);
        let main_file = dir.path().join("main.env");
        std::fs::write(
            &main_file,
            format!("VAULT_AGENT_KEY={}\n", main.key.expose_secret()),
        )
        .unwrap();
        let t = v
            .add_target(
                OP,
                &agent("hermes"),
                &main_file,
                &SecretName::parse("VAULT_AGENT_KEY").unwrap(),
                None,
            )
            .unwrap();
        assert_eq!(t.key_name.as_deref(), Some("hermes-key"));
        let tmp = v
            .issue_key(
                OP,
                &agent("tmp-key"),
                &agent("hermes"),
                Duration::from_secs(86_400),
                false,
            )
            .unwrap();
        let before = std::fs::read_to_string(&main_file).unwrap();
        let report = v
            .rotate_key_printed(OP, "tmp-key", RotationReason::Manual, true)
            .unwrap();
        assert!(report.written.is_empty(), "{:?}", report.written);
        assert_eq!(std::fs::read_to_string(&main_file).unwrap(), before);
        assert!(v.authenticate_key(tmp.key.expose_secret()).is_err());
        v.authenticate_key(main.key.expose_secret()).unwrap();
        // and the main key's rotation still reaches its file
        let report = v
            .rotate_key(OP, "hermes-key", RotationReason::Manual)
            .unwrap();
        assert_eq!(report.written, std::slice::from_ref(&main_file));
    }

    #[test]
    fn an_unbound_target_gets_a_successor_only_if_its_file_holds_the_rotated_key() {
        // issue 19, Broken 1: targets registered before they named a key
        let (dir, mut v) = new_vault();
        let main = with_key(&mut v);
        let tmp = v
            .issue_key(
                OP,
                &agent("tmp-key"),
                &agent("hermes"),
                Duration::from_secs(86_400),
                false,
            )
            .unwrap();
        let main_file = dir.path().join("main.env");
        let tmp_file = dir.path().join("tmp.env");
        std::fs::write(
            &main_file,
            format!("VAULT_AGENT_KEY={}\n", main.key.expose_secret()),
        )
        .unwrap();
        std::fs::write(
            &tmp_file,
            format!("VAULT_AGENT_KEY={}\n", tmp.key.expose_secret()),
        )
        .unwrap();
        for f in [&main_file, &tmp_file] {
            let t = v
                .add_target(
                    OP,
                    &agent("hermes"),
                    f,
                    &SecretName::parse("VAULT_AGENT_KEY").unwrap(),
                    None,
                )
                .unwrap();
            assert_eq!(t.key_name, None, "two key names: nothing to guess");
        }
        let LeakAction::KeyRotated(report) =
            v.handle_leaked_credential(tmp.key.expose_secret()).unwrap()
        else {
            panic!("not rotated");
        };
        assert_eq!(report.written, std::slice::from_ref(&tmp_file));
        let in_main = envfile::value_of(&main_file, "VAULT_AGENT_KEY")
            .unwrap()
            .unwrap();
        assert_eq!(in_main.as_str(), main.key.expose_secret());
        let bound: Vec<_> = v
            .list_targets(OP, None)
            .unwrap()
            .into_iter()
            .map(|t| (t.path, t.key_name))
            .collect();
        assert!(
            bound.contains(&(tmp_file, Some("tmp-key".into()))),
            "{bound:?}"
        );
        assert!(bound.contains(&(main_file, None)), "{bound:?}");
    }

    #[test]
    fn a_second_rotation_of_a_key_another_process_rotated_is_a_no_op_not_a_crash() {
        // issue 19, Broken 3: two watchers see one leak; the second read the
        // key as active just before the first rotated it
        let (dir, mut first) = new_vault();
        let key = with_key(&mut first);
        let mut second = Vault::unlock(&dir.path().join("v"), &pass("pw")).unwrap();
        let stale = crate::store::keys::find(second.conn(), &second.rows, "hermes-key")
            .unwrap()
            .unwrap();
        assert!(matches!(
            first
                .handle_leaked_credential(key.key.expose_secret())
                .unwrap(),
            LeakAction::KeyRotated(_)
        ));
        let again = second
            .rotate_from(OP, stale, RotationReason::Leak, false)
            .unwrap();
        assert!(
            again.is_none(),
            "a stale view must not mint a second successor"
        );
        let live: Vec<_> = second
            .list_keys(OP, None)
            .unwrap()
            .into_iter()
            .filter(|k| k.status == KeyStatus::Active)
            .collect();
        assert_eq!(live.len(), 1, "exactly the first watcher's successor");
        assert!(matches!(
            second
                .handle_leaked_credential(key.key.expose_secret())
                .unwrap(),
            LeakAction::KeyAlreadyDead { .. }
        ));
    }

    #[test]
    fn a_manual_rotation_refuses_up_front_when_a_target_cannot_be_written() {
        let (dir, mut v) = new_vault();
        let old = with_key(&mut v);
        let sub = dir.path().join("gone");
        std::fs::create_dir(&sub).unwrap();
        v.add_target(
            OP,
            &agent("hermes"),
            &sub.join(".env"),
            &SecretName::parse("K").unwrap(),
            None,
        )
        .unwrap();
        std::fs::remove_dir(&sub).unwrap();
        assert!(v
            .rotate_key(OP, "hermes-key", RotationReason::Manual)
            .is_err());
        v.authenticate_key(old.key.expose_secret()).unwrap();
        // a leak rotates anyway: the leaked key must die even if a file can't be written
        let report = v
            .rotate_key(OP, "hermes-key", RotationReason::Leak)
            .unwrap();
        assert_eq!(report.state, RotationState::Done);
        assert_eq!(report.errors.len(), 1);
        assert!(v.authenticate_key(old.key.expose_secret()).is_err());
    }

    #[test]
    fn leaked_keys_rotate_and_leaked_tokens_are_revoked() {
        let (_dir, mut v) = new_vault();
        let key = with_key(&mut v);
        let info = v.authenticate_key(key.key.expose_secret()).unwrap();
        let token = v.mint_token(&info, &TokenRequest::default()).unwrap();
        match v
            .handle_leaked_credential(token.token.expose_secret())
            .unwrap()
        {
            LeakAction::TokenRevoked { token_id } => assert_eq!(token_id, token.claims.token_id),
            other => panic!("{other:?}"),
        }
        assert!(v.verify_token(token.token.expose_secret()).is_err());
        let other = v.mint_token(&info, &TokenRequest::default()).unwrap();
        let LeakAction::KeyRotated(report) =
            v.handle_leaked_credential(key.key.expose_secret()).unwrap()
        else {
            panic!("not rotated");
        };
        // issue 13, finding 10: no target, so a 0600 file holds it, never the caller's output
        assert!(
            report.new_key.is_none(),
            "a leak's new key is never handed out"
        );
        let file = report.key_file.as_ref().expect("no target: kept in a file");
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let kept = std::fs::read_to_string(file).unwrap();
        assert!(v.authenticate_key(kept.trim_end()).is_ok());
        assert!(v.verify_token(other.token.expose_secret()).is_err());
        assert!(matches!(
            v.handle_leaked_credential(key.key.expose_secret()).unwrap(),
            LeakAction::KeyAlreadyDead { .. }
        ));
        assert!(matches!(
            v.handle_leaked_credential("avk_notarealkeyatall").unwrap(),
            LeakAction::Unknown
        ));
    }

    fn script(dir: &Path, name: &str, body: &str) -> String {
        let p = dir.join(name);
        std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o700)).unwrap();
        p.to_string_lossy().into_owned()
    }

    #[test]
    fn a_leaked_secret_waits_for_approval_then_rotates() {
        let (dir, mut v) = new_vault();
        v.add_agent(OP, &agent("hermes"), &Policy::default())
            .unwrap();
        set(&mut v, "hermes/API_KEY", "old-value-1");
        let env_file = dir.path().join("h.env");
        std::fs::write(&env_file, "API_KEY=old-value-1\nOTHER=x\n").unwrap();
        v.add_target(
            OP,
            &agent("hermes"),
            &env_file,
            &SecretName::parse("VAULT_AGENT_KEY").unwrap(),
            None,
        )
        .unwrap();
        // the command sees the old value on stdin and prints a new one
        let cmd = script(
            dir.path(),
            "rot.sh",
            "read old; [ \"$old\" = old-value-1 ] || exit 3; echo new-value-2",
        );
        v.set_rotation_command(
            OP,
            &path("hermes/API_KEY"),
            &cmd,
            false,
            Duration::from_secs(5),
        )
        .unwrap();
        let LeakAction::ApprovalOpened { approval_id } = v
            .report_secret_leak(
                &path("hermes/API_KEY"),
                &SecretBytes::from_slice(b"old-value-1"),
                "chat.jsonl:3",
            )
            .unwrap()
        else {
            panic!("no approval");
        };
        // nothing happened yet: draft only
        assert_eq!(get(&v, OP, "hermes/API_KEY").unwrap(), "old-value-1");
        let pending = v.approvals(OP).unwrap();
        assert_eq!(pending[0].state, ApprovalState::Pending);
        assert!(
            pending[0].summary.contains("chat.jsonl:3") && pending[0].summary.contains("rot.sh")
        );
        assert!(!pending[0].summary.contains("old-value-1"));
        // a second report of the same leak reuses the open approval
        let LeakAction::ApprovalOpened { approval_id: again } = v
            .report_secret_leak(
                &path("hermes/API_KEY"),
                &SecretBytes::from_slice(b"old-value-1"),
                "x:1",
            )
            .unwrap()
        else {
            panic!();
        };
        assert_eq!(again, approval_id);
        let done = v.approve(OP, &approval_id).unwrap();
        assert_eq!(done.state, ApprovalState::Done, "{:?}", done.result);
        assert_eq!(get(&v, OP, "hermes/API_KEY").unwrap(), "new-value-2");
        assert_eq!(
            envfile::value_of(&env_file, "API_KEY")
                .unwrap()
                .unwrap()
                .as_str(),
            "new-value-2"
        );
        assert_eq!(v.history(OP, &path("hermes/API_KEY")).unwrap().len(), 2);
        assert!(
            v.approve(OP, &approval_id).is_err(),
            "an approval is used once"
        );
    }

    #[test]
    fn denied_expired_failing_and_hanging_rotations_keep_the_old_value() {
        let (dir, mut v) = new_vault();
        v.add_agent(OP, &agent("hermes"), &Policy::default())
            .unwrap();
        set(&mut v, "hermes/K", "keep-me-7Qx2");
        let p = path("hermes/K");
        let open = |v: &mut Vault| match v
            .report_secret_leak(&p, &SecretBytes::from_slice(b"keep-me-7Qx2"), "t:1")
            .unwrap()
        {
            LeakAction::ApprovalOpened { approval_id } => approval_id,
            other => panic!("{other:?}"),
        };
        v.set_rotation_command(
            OP,
            &p,
            &script(dir.path(), "ok.sh", "echo fresh"),
            false,
            Duration::from_secs(5),
        )
        .unwrap();
        let id = open(&mut v);
        assert_eq!(v.deny(OP, &id).unwrap().state, ApprovalState::Denied);
        assert!(v.approve(OP, &id).is_err());
        let id = open(&mut v);
        v.conn()
            .execute(
                "UPDATE approvals SET expires_at = 0 WHERE approval_id = ?1",
                args![id.as_str()],
            )
            .unwrap();
        assert!(v.approve(OP, &id).is_err());
        assert_eq!(
            v.approvals(OP)
                .unwrap()
                .iter()
                .find(|a| a.approval_id == id)
                .unwrap()
                .state,
            ApprovalState::Expired
        );
        for (name, body, timeout, why) in [
            ("fail.sh", "echo oops >&2; exit 4", 5_000, "failed"),
            ("hang.sh", "sleep 30", 300, "timed out"),
            ("empty.sh", "true", 5_000, "refused"),
        ] {
            v.set_rotation_command(
                OP,
                &p,
                &script(dir.path(), name, body),
                false,
                Duration::from_millis(timeout),
            )
            .unwrap();
            let id = open(&mut v);
            let result = v.approve(OP, &id).unwrap();
            assert_eq!(result.state, ApprovalState::Failed, "{name}");
            assert!(
                result.result.as_deref().unwrap().contains(why),
                "{name}: {:?}",
                result.result
            );
            assert!(
                !result.result.unwrap().contains("oops"),
                "stderr is never kept"
            );
            assert_eq!(get(&v, OP, "hermes/K").unwrap(), "keep-me-7Qx2", "{name}");
        }
        // auto mode rotates at once
        v.set_rotation_command(
            OP,
            &p,
            &script(dir.path(), "auto.sh", "echo auto-new"),
            true,
            Duration::from_secs(5),
        )
        .unwrap();
        assert!(matches!(
            v.report_secret_leak(&p, &SecretBytes::from_slice(b"keep-me-7Qx2"), "t:2")
                .unwrap(),
            LeakAction::SecretRotated { .. }
        ));
        assert_eq!(get(&v, OP, "hermes/K").unwrap(), "auto-new");
    }
}

#[test]
fn known_credentials_name_keys_tokens_and_secrets_without_the_passphrase() {
    use crate::known::KnownCredentials;
    use std::time::Duration;
    let (dir, mut v) = new_vault();
    v.add_agent(OP, &agent("hermes"), &Policy::default())
        .unwrap();
    set(&mut v, "hermes/STRIPE_KEY", "sk_live_first_value");
    set(&mut v, "hermes/STRIPE_KEY", "sk_live_second_value");
    set(&mut v, "hermes/OTHER", "another-secret-value");
    let key = v
        .issue_key(
            OP,
            &agent("hermes-key"),
            &agent("hermes"),
            Duration::from_secs(3600),
            false,
        )
        .unwrap();
    let info = v.authenticate_key(key.key.expose_secret()).unwrap();
    let token = v.mint_token(&info, &TokenRequest::default()).unwrap();
    let signer = v.token_signer().unwrap();
    drop(v);
    let known = KnownCredentials::load(&dir.path().join("v")).unwrap();
    assert_eq!(known.counts(), (2, 1));
    assert_eq!(
        known
            .identify_secret(b"sk_live_second_value")
            .unwrap()
            .to_string(),
        "hermes/STRIPE_KEY"
    );
    assert!(
        known.identify_secret(b"sk_live_first_value").is_none(),
        "only current values"
    );
    assert!(known.identify_secret(b"sk_live_second_valuX").is_none());
    assert_eq!(
        known.identify_key(key.key.expose_secret()).unwrap().name,
        "hermes-key"
    );
    // issue 13, finding 20: unverified, a token is only "this vault's format"; with the
    // signer it names its key, and a forgery with a recomputed checksum names nothing.
    use crate::known::TokenIdentity;
    let text = token.token.expose_secret();
    assert_eq!(
        known.identify_token(text, None),
        Some(TokenIdentity::Unverified)
    );
    match known.identify_token(text, Some(&signer)) {
        Some(TokenIdentity::Verified(k)) => assert_eq!(k.key_id, info.key_id),
        other => panic!("{other:?}"),
    }
    let mut payload = crate::credential::parse_token_body(text).unwrap();
    let last = payload.len() - 1;
    payload[last] ^= 1;
    let forged = crate::credential::encode_token(&payload);
    assert_eq!(
        known.identify_token(&forged, None),
        Some(TokenIdentity::Unverified)
    );
    assert_eq!(known.identify_token(&forged, Some(&signer)), None);
    assert!(known
        .identify_key("avk_00000000000000000000000000000000000000")
        .is_none());
    assert!(!format!("{known:?}").contains("sk_live"));
}

// Issue 20: a watcher on another server reported a value its view of the vault still knew
// after the secret was rotated, and opened a second approval for the new value.
#[test]
fn a_leak_of_a_value_that_is_no_longer_the_secrets_marks_and_opens_nothing() {
    let (_dir, mut v) = new_vault();
    v.add_agent(OP, &agent("hermes"), &Policy::default())
        .unwrap();
    set(&mut v, "hermes/K", "first-value-1");
    set(&mut v, "hermes/K", "second-value-2");
    let p = path("hermes/K");
    for stale in ["first-value-1", "never-stored-3", "second-value-"] {
        let action = v
            .report_secret_leak(&p, &SecretBytes::from_slice(stale.as_bytes()), "t:1")
            .unwrap();
        assert!(
            matches!(action, LeakAction::SecretAlreadyRotated),
            "{stale}: {action:?}"
        );
    }
    assert!(!v.has_open_compromise().unwrap());
    assert!(v.approvals(OP).unwrap().is_empty());
    // The current value is acted on.
    let action = v
        .report_secret_leak(&p, &SecretBytes::from_slice(b"second-value-2"), "t:2")
        .unwrap();
    assert!(
        matches!(action, LeakAction::SecretNeedsManualRotation),
        "{action:?}"
    );
    assert!(v.has_open_compromise().unwrap());
}

#[test]
fn a_runaway_loop_is_rate_limited_then_suspended_alone_until_approved() {
    use std::time::Duration;
    let (_dir, mut v) = new_vault();
    let policy = Policy::from_toml(
        "reads_per_minute = 5\ntokens_per_minute = 3\nsuspend_on_anomaly = true\n",
    )
    .unwrap();
    v.add_agent(OP, &agent("runaway"), &policy).unwrap();
    v.add_agent(OP, &agent("calm"), &policy).unwrap();
    set(&mut v, "runaway/A", "a");
    set(&mut v, "calm/A", "c");
    let day = Duration::from_secs(86_400);
    let loop_key = v
        .issue_key(OP, &agent("runaway-key"), &agent("runaway"), day, false)
        .unwrap();
    let calm_key = v
        .issue_key(OP, &agent("calm-key"), &agent("calm"), day, false)
        .unwrap();
    let info = v.authenticate_key(loop_key.key.expose_secret()).unwrap();
    let mut outcomes = Vec::new();
    for _ in 0..8 {
        outcomes.push(match v.mint_token(&info, &TokenRequest::default()) {
            Ok(_) => "ok".to_owned(),
            Err(e) => e.code().to_owned(),
        });
    }
    assert_eq!(&outcomes[..4], ["ok", "ok", "ok", "rate_limited"]);
    assert!(outcomes[4..].iter().all(|o| o == "rate_limited"));
    match v.mint_token(&info, &TokenRequest::default()) {
        Err(Error::RateLimited { retry_after_secs }) => {
            assert!((1..=60).contains(&retry_after_secs))
        }
        other => panic!("{other:?}"),
    }
    // suspended after the third refusal: the key itself no longer authenticates
    assert!(matches!(
        v.authenticate_key(loop_key.key.expose_secret()),
        Err(Error::BadCredential {
            code: Denial::KeySuspended,
            ..
        })
    ));
    // the other agent is untouched
    let calm = v.authenticate_key(calm_key.key.expose_secret()).unwrap();
    let t = v.mint_token(&calm, &TokenRequest::default()).unwrap();
    for _ in 0..5 {
        v.read_with_token(&t.claims, "A").unwrap();
    }
    assert!(matches!(
        v.read_with_token(&t.claims, "A"),
        Err(Error::RateLimited { .. })
    ));
    // a person reinstates the suspended key
    let approval = v
        .approvals(OP)
        .unwrap()
        .into_iter()
        .find(|a| a.kind == ApprovalKind::ReinstateKey)
        .unwrap();
    assert!(approval.summary.contains("runaway-key"));
    assert_eq!(
        v.approve(OP, &approval.approval_id).unwrap().state,
        ApprovalState::Done
    );
    v.authenticate_key(loop_key.key.expose_secret()).unwrap();
}

#[test]
fn a_request_outside_policy_suspends_the_key_when_asked_to() {
    use std::time::Duration;
    let (_dir, mut v) = new_vault();
    // the policy says one miss is enough
    let policy = Policy::from_toml("suspend_on_anomaly = true\nanomaly_threshold = 1\n").unwrap();
    v.add_agent(OP, &agent("hermes"), &policy).unwrap();
    set(&mut v, "hermes/A", "a");
    let key = v
        .issue_key(
            OP,
            &agent("hermes-key"),
            &agent("hermes"),
            Duration::from_secs(3600),
            false,
        )
        .unwrap();
    let info = v.authenticate_key(key.key.expose_secret()).unwrap();
    let narrow = TokenRequest {
        scopes: Some(vec![crate::token::Scope::Secret("A".into())]),
        ttl: None,
    };
    let t = v.mint_token(&info, &narrow).unwrap();
    assert!(v.env_with_token(&t.claims).is_err());
    assert!(matches!(
        v.verify_token(t.token.expose_secret()),
        Err(Error::BadCredential {
            code: Denial::KeySuspended,
            ..
        })
    ));
}

fn audit_count(v: &Vault) -> usize {
    v.audit_log(None, None).unwrap().len()
}

#[test]
fn a_batch_commits_every_operation_once_and_each_can_fail_alone() {
    let (_dir, mut v) = new_vault();
    v.add_agent(OP, &agent("hermes"), &Policy::default())
        .unwrap();
    set(&mut v, "hermes/TOKEN", "one");
    // what a failed read records when it runs alone
    let start = audit_count(&v);
    assert!(get(&v, OP, "hermes/MISSING").is_err());
    let failed_records = audit_count(&v) - start;
    let before = audit_count(&v);
    let (results, committed) = v.in_one_transaction(|v| {
        (0..10)
            .map(|i| {
                let name = if i == 5 {
                    "hermes/MISSING"
                } else {
                    "hermes/TOKEN"
                };
                get(v, OP, name)
            })
            .collect::<Vec<_>>()
    });
    committed.unwrap();
    assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 9);
    assert!(matches!(results[5], Err(Error::NotFound { .. })));
    // every read, and the failed one, left what it leaves alone; the chain holds
    assert_eq!(audit_count(&v), before + 9 + failed_records);
    assert!(matches!(
        v.verify_audit().unwrap(),
        AuditVerdict::Intact { .. }
    ));
    // and the connection is back in autocommit: a later write commits alone
    set(&mut v, "hermes/TOKEN", "two");
    assert_eq!(get(&v, OP, "hermes/TOKEN").unwrap(), "two");
}

/// `synchronous = FULL`, the level every commit outside a batch runs at.
const FULL: i64 = 2;

#[test]
fn a_batch_of_read_records_skips_the_fsync_and_one_that_changes_state_syncs_the_wal() {
    let (_dir, mut v) = new_vault();
    v.add_agent(OP, &agent("hermes"), &Policy::default())
        .unwrap();
    set(&mut v, "hermes/TOKEN", "one");
    let (syncs, level) = v.durability_for_tests();
    assert_eq!(level, FULL);
    // reads only: their audit records commit without waiting for the disk
    let (reads, committed) = v.in_one_transaction(|v| {
        (0..8)
            .map(|_| get(v, OP, "hermes/TOKEN"))
            .collect::<Vec<_>>()
    });
    committed.unwrap();
    assert!(reads.iter().all(|r| matches!(r.as_deref(), Ok("one"))));
    assert_eq!(
        v.durability_for_tests(),
        (syncs, FULL),
        "no sync, FULL again after"
    );
    // a state change in the batch: the WAL is on disk before the batch returns
    let (_, committed) = v.in_one_transaction(|v| {
        get(v, OP, "hermes/TOKEN").unwrap();
        set(v, "hermes/TOKEN", "two");
    });
    committed.unwrap();
    assert_eq!(v.durability_for_tests(), (syncs + 1, FULL));
    assert_eq!(get(&v, OP, "hermes/TOKEN").unwrap(), "two");
    // a key suspended in a batch (as a mint past its policy's pattern does) syncs too
    let day = std::time::Duration::from_secs(86_400);
    let key = v
        .issue_key(OP, &agent("hermes-key"), &agent("hermes"), day, false)
        .unwrap();
    let (_, committed) = v.in_one_transaction(|v| {
        v.suspend_key(key.info.key_id.as_str(), "test").unwrap();
    });
    committed.unwrap();
    assert_eq!(v.durability_for_tests(), (syncs + 2, FULL));
}

#[test]
fn a_trail_record_written_alone_skips_the_fsync_and_in_a_batch_leaves_it_to_the_batch() {
    // `synchronous = NORMAL`: what a trail record's own commit runs at
    const NORMAL: i64 = 1;
    let (_dir, mut v) = new_vault();
    let (syncs, level) = v.durability_for_tests();
    assert_eq!(level, FULL);
    let inside = v.trail_write(|| Ok(v.durability_for_tests().1)).unwrap();
    assert_eq!(
        inside, NORMAL,
        "a lone trail record waits for no disk flush"
    );
    assert_eq!(v.durability_for_tests(), (syncs, FULL), "and FULL after");
    // a failing write gives the level back too
    let failed: Result<()> = v.trail_write(|| Err(Error::Refused { reason: "x".into() }));
    assert!(failed.is_err());
    assert_eq!(v.durability_for_tests().1, FULL);
    // in a batch the batch chose its level when it began; nothing changes it
    let (inside, committed) = v.in_one_transaction(|v| {
        let before = v.durability_for_tests().1;
        (
            before,
            v.trail_write(|| Ok(v.durability_for_tests().1)).unwrap(),
        )
    });
    committed.unwrap();
    assert_eq!(inside.0, inside.1);
    // and the broker's usage records go through it: stored, FULL after
    v.record_usage(&[], 3).unwrap();
    assert_eq!(v.durability_for_tests(), (syncs, FULL));
}

#[test]
fn a_batch_that_panics_leaves_nothing_and_the_vault_usable() {
    let (_dir, mut v) = new_vault();
    v.add_agent(OP, &agent("hermes"), &Policy::default())
        .unwrap();
    set(&mut v, "hermes/TOKEN", "one");
    let before = audit_count(&v);
    let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        v.in_one_transaction(|v| {
            get(v, OP, "hermes/TOKEN").unwrap();
            set(v, "hermes/TOKEN", "in-the-batch");
            panic!("a bug in the middle of a batch");
        })
    }));
    assert!(caught.is_err());
    assert_eq!(audit_count(&v), before, "the batch's records rolled back");
    assert_eq!(
        v.durability_for_tests().1,
        FULL,
        "later commits wait for the disk"
    );
    assert_eq!(get(&v, OP, "hermes/TOKEN").unwrap(), "one");
    assert!(matches!(
        v.verify_audit().unwrap(),
        AuditVerdict::Intact { .. }
    ));
    set(&mut v, "hermes/TOKEN", "after");
    assert_eq!(get(&v, OP, "hermes/TOKEN").unwrap(), "after");
}

#[test]
fn an_approval_interrupted_by_a_dead_process_reopens_but_a_running_one_does_not() {
    let (_dir, mut v) = new_vault();
    v.add_agent(OP, &agent("hermes"), &Policy::default())
        .unwrap();
    set(&mut v, "hermes/DB", "x-value-1");
    v.set_rotation_command(
        OP,
        &path("hermes/DB"),
        "echo y",
        false,
        std::time::Duration::from_secs(5),
    )
    .unwrap();
    let id = match v
        .report_secret_leak(
            &path("hermes/DB"),
            &SecretBytes::from_slice(b"x-value-1"),
            "notes:1",
        )
        .unwrap()
    {
        LeakAction::ApprovalOpened { approval_id } => approval_id,
        other => panic!("{other:?}"),
    };
    let mark = |v: &Vault, pid: u32, at: i64| {
        v.conn()
            .execute(
                "UPDATE approvals SET state = 'approved', result = ?2, decided_at = ?3 WHERE approval_id = ?1",
                args![id.as_str(), &format!("running:pid={pid}"), at],
            )
            .unwrap();
    };
    let state = |v: &Vault| {
        v.approvals(OP)
            .unwrap()
            .into_iter()
            .find(|a| a.approval_id == id)
            .unwrap()
            .state
    };
    // carried out right now by a live process: left alone
    mark(&v, std::process::id(), store::now());
    assert_eq!(state(&v), ApprovalState::Approved);
    // by a live process, but for longer than any command may run: interrupted
    mark(&v, std::process::id(), store::now() - 3600);
    assert_eq!(state(&v), ApprovalState::Pending);
    // by a process that has exited: interrupted at once
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let dead = child.id();
    child.wait().unwrap();
    mark(&v, dead, store::now());
    assert_eq!(state(&v), ApprovalState::Pending);
    let reopened = v
        .audit_log(None, None)
        .unwrap()
        .iter()
        .filter(|r| r.action == AuditAction::ApprovalReopen)
        .count();
    assert_eq!(reopened, 2);
}

#[test]
fn key_states_have_one_wire_name_and_only_three_are_stored() {
    // issue 14, item 3: a key row's status is read as the enum, by its one name
    for s in KeyStatus::STORED {
        assert_eq!(KeyStatus::parse_stored(s.as_str()), Some(s));
    }
    assert_eq!(KeyStatus::parse_stored("suspended"), None);
    assert_eq!(KeyStatus::parse_stored("expired"), None);
    assert_eq!(KeyStatus::parse_stored("Active"), None);
}

/// hermes with a policy reading only `A*`, suspending on a pattern; its key.
fn narrow_hermes(v: &mut Vault) -> (KeyInfo, crate::credential::NamedKey) {
    use std::time::Duration;
    let policy = Policy::from_toml("secrets = [\"A*\"]\nsuspend_on_anomaly = true\n").unwrap();
    v.add_agent(OP, &agent("hermes"), &policy).unwrap();
    set(v, "hermes/A", "a");
    set(v, "hermes/B", "b");
    let key = v
        .issue_key(
            OP,
            &agent("hermes-key"),
            &agent("hermes"),
            Duration::from_secs(3600),
            false,
        )
        .unwrap();
    (
        v.authenticate_key(key.key.expose_secret()).unwrap(),
        key.key,
    )
}

fn one_secret(name: &str) -> TokenRequest {
    TokenRequest {
        scopes: Some(vec![crate::token::Scope::Secret(name.into())]),
        ttl: None,
    }
}

#[test]
fn one_request_outside_policy_does_not_suspend_a_pattern_does_and_says_how_to_lift_it() {
    // issue 19, Misleading: a `vault get NOPE` typo suspended a production agent
    let (_dir, mut v) = new_vault();
    let (info, key) = narrow_hermes(&mut v);
    for _ in 0..2 {
        let Err(Error::BadCredential { code, message }) = v.mint_token(&info, &one_secret("B"))
        else {
            panic!("a read outside the policy must be refused");
        };
        assert_eq!(code, Denial::OutOfScope);
        assert!(!message.contains("suspended"), "{message}");
        v.authenticate_key(key.expose_secret())
            .expect("one miss does not suspend the key");
    }
    let Err(Error::BadCredential { message, .. }) = v.mint_token(&info, &one_secret("B")) else {
        panic!("the third miss must be refused");
    };
    assert!(message.contains("now suspended"), "{message}");
    assert!(message.contains("vault approve"), "{message}");
    assert!(matches!(
        v.authenticate_key(key.expose_secret()),
        Err(Error::BadCredential {
            code: Denial::KeySuspended,
            ..
        })
    ));
}

#[test]
fn a_mistyped_secret_name_is_never_an_anomaly() {
    // issue 19, Misleading: a read of a secret that does not exist is not an anomaly
    let (_dir, mut v) = new_vault();
    let (info, key) = narrow_hermes(&mut v);
    for _ in 0..5 {
        assert!(v.mint_token(&info, &one_secret("NOPE")).is_err());
    }
    v.authenticate_key(key.expose_secret())
        .expect("five typos do not suspend the key");
}
