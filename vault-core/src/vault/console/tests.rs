use super::*;
use crate::{AgentName, AuditOutcome, AuditVerdict, KdfParams};

fn new_vault() -> (tempfile::TempDir, Vault) {
    let dir = tempfile::TempDir::new().unwrap();
    let v = Vault::init(
        &dir.path().join("v"),
        &SecretString::new("console test passphrase".into()),
        KdfParams::FLOOR,
    )
    .unwrap();
    (dir, v)
}

// issue 17: sessions are stored hashed, checked, closed and closed all at once
#[test]
fn a_console_session_works_until_logout_and_is_stored_only_hashed() {
    let (dir, mut v) = new_vault();
    let op = &Principal::Operator;
    let s = v.console_session_open(op, CONSOLE_SESSION_TTL).unwrap();
    assert!(v
        .console_session_check(s.id.expose_secret())
        .unwrap()
        .is_some());
    let other = v.console_session_open(op, CONSOLE_SESSION_TTL).unwrap();
    // the id never reaches the file
    let bytes = std::fs::read(dir.path().join("v").join(crate::DB_FILE)).unwrap();
    let id = s.id.expose_secret().as_bytes();
    assert!(!bytes.windows(id.len()).any(|w| w == id));
    assert!(v.console_session_close(s.id.expose_secret()).unwrap());
    assert!(v
        .console_session_check(s.id.expose_secret())
        .unwrap()
        .is_none());
    assert_eq!(v.console_sessions_close_all(op).unwrap(), 1);
    assert!(v
        .console_session_check(other.id.expose_secret())
        .unwrap()
        .is_none());
    let agent = Principal::Agent(AgentName::parse("a").unwrap());
    assert!(v.console_session_open(&agent, CONSOLE_SESSION_TTL).is_err());
    let actions: Vec<String> = v
        .audit_search(
            op,
            &AuditQuery {
                limit: 10,
                ..Default::default()
            },
        )
        .unwrap()
        .into_iter()
        .map(|r| r.action)
        .collect();
    assert_eq!(
        &actions[..4],
        [
            AuditAction::ConsoleLogoutAll,
            AuditAction::ConsoleLogout,
            AuditAction::ConsoleLogin,
            AuditAction::ConsoleLogin
        ]
    );
}

// issue 17: a row planted or extended by someone who can write the file
// but lacks the passphrase is no session
#[test]
fn a_session_row_edited_in_the_file_is_refused() {
    let (_dir, mut v) = new_vault();
    let s = v
        .console_session_open(&Principal::Operator, Duration::from_secs(60))
        .unwrap();
    v.conn()
        .execute(
            "UPDATE console_sessions SET expires_at = expires_at + 86400",
            crate::store::sql::args![],
        )
        .unwrap();
    assert!(v
        .console_session_check(s.id.expose_secret())
        .unwrap()
        .is_none());
    let planted = format!("{CONSOLE_SESSION_PREFIX}{}", "ab".repeat(32));
    v.conn()
        .execute(
            "INSERT INTO console_sessions VALUES (?1, 0, 9999999999, zeroblob(32))",
            crate::store::sql::args![&sha256(planted.as_bytes())[..]],
        )
        .unwrap();
    assert!(v.console_session_check(&planted).unwrap().is_none());
}

// issue 17: the console's incremental check finds what the full walk finds
#[test]
fn verifying_from_a_checkpoint_agrees_with_the_full_walk() {
    let (_dir, mut v) = new_vault();
    let op = &Principal::Operator;
    let (verdict, cp) = v.verify_audit_since(op, None).unwrap();
    assert_eq!(verdict, v.verify_audit().unwrap());
    let cp = cp.unwrap();
    v.console_session_open(op, CONSOLE_SESSION_TTL).unwrap();
    let (verdict, cp2) = v.verify_audit_since(op, Some(&cp)).unwrap();
    assert_eq!(verdict, v.verify_audit().unwrap());
    assert_eq!(cp2.unwrap().seq(), cp.seq() + 1);
    // a record after the checkpoint edited in the file is found
    v.conn()
        .execute(
            "UPDATE audit_log SET target = 'forged' WHERE seq = ?1",
            crate::store::sql::args![cp.seq() + 1],
        )
        .unwrap();
    let (verdict, none) = v.verify_audit_since(op, Some(&cp)).unwrap();
    assert!(matches!(verdict, AuditVerdict::Broken { seq, .. } if seq == cp.seq() + 1));
    assert!(none.is_none());
}

#[test]
fn an_expired_session_is_refused() {
    let (_dir, mut v) = new_vault();
    let s = v
        .console_session_open(&Principal::Operator, Duration::ZERO)
        .unwrap();
    assert!(v
        .console_session_check(s.id.expose_secret())
        .unwrap()
        .is_none());
}

#[test]
fn the_console_queries_use_indexes() {
    let (_dir, v) = new_vault();
    for (name, plan) in v.console_query_plans().unwrap() {
        let text = plan.join(" | ");
        assert!(
            text.contains("USING INDEX")
                || text.contains("USING INTEGER PRIMARY KEY")
                || text.contains("USING PRIMARY KEY")
                || text.contains("USING COVERING INDEX"),
            "{name}: {text}"
        );
        assert!(
            !text.contains("SCAN audit_log"),
            "{name} reads the whole trail: {text}"
        );
    }
}

// issue 17: tokens minted today come from the day rollup (schema 018), which
// counts only successful records with a key, per key, and loses pruned ones
#[test]
fn tokens_minted_today_are_counted_per_key_from_the_rollup() {
    let (_dir, mut v) = new_vault();
    let op = &Principal::Operator;
    let agent = Principal::Agent(AgentName::parse("a").unwrap());
    let mint = |v: &mut Vault, key: &str, action, outcome| {
        v.audit(&agent, Some(key), action, Some("a"), outcome)
            .unwrap();
    };
    for _ in 0..3 {
        mint(&mut v, "key_a", AuditAction::TokenMint, AuditOutcome::Ok);
    }
    mint(&mut v, "key_b", AuditAction::TokenMint, AuditOutcome::Ok);
    mint(&mut v, "key_a", AuditAction::SecretRead, AuditOutcome::Ok);
    mint(
        &mut v,
        "key_a",
        AuditAction::TokenMint,
        AuditOutcome::Denied("key_revoked"),
    );
    let now_ms = crate::clock::now_ms();
    let counts = v
        .audit_count_by_key(op, AuditAction::TokenMint, now_ms)
        .unwrap();
    assert_eq!(
        counts.into_iter().collect::<Vec<_>>(),
        [("key_a".to_owned(), 3), ("key_b".to_owned(), 1)]
    );
    let tomorrow = now_ms + 86_400_000;
    assert!(v
        .audit_count_by_key(op, AuditAction::TokenMint, tomorrow)
        .unwrap()
        .is_empty());
    // records leaving the trail (pruning) leave the count
    v.conn()
        .execute(
            "DELETE FROM audit_log WHERE key_id = 'key_b'",
            crate::store::sql::args![],
        )
        .unwrap();
    let counts = v
        .audit_count_by_key(op, AuditAction::TokenMint, now_ms)
        .unwrap();
    assert_eq!(
        counts.into_iter().collect::<Vec<_>>(),
        [("key_a".to_owned(), 3)]
    );
    let per_agent = v
        .audit_count_by_agent(op, AuditAction::TokenMint, now_ms)
        .unwrap();
    assert_eq!(
        per_agent.into_iter().collect::<Vec<_>>(),
        [("a".to_owned(), 3)]
    );
    assert!(v
        .audit_count_by_key(&agent, AuditAction::TokenMint, now_ms)
        .is_err());
}
