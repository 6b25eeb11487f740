//! Issue 13, findings 2, 8, 19, 21: `vault.db` edited behind the vault's back
//! with a plain SQLite connection (no passphrase), with the real binary.
//! Every edit is refused with the integrity error (exit 2), no value is
//! served, no command runs.

use rusqlite::Connection;

use crate::common::*;

/// hermes owns A; finance owns B (two versions: the first one "leaked").
fn setup() -> Env {
    let env = Env::new();
    env.vault(&["agent", "add", "hermes"]).assert().success();
    env.vault(&["agent", "add", "finance"]).assert().success();
    env.set("hermes/A", "hermes-value-QX1");
    env.set("finance/B", "finance-old-leaked-QX2");
    env.set("finance/B", "finance-current-QX3");
    env
}

fn tamper(env: &Env, sql: &str) {
    Connection::open(env.db())
        .unwrap()
        .execute_batch(sql)
        .unwrap();
}

fn refused_as_tampered(out: &assert_cmd::assert::Assert) {
    let stdout = stdout_of(out);
    assert!(
        stdout.contains("\"integrity\""),
        "{stdout} {}",
        stderr_of(out)
    );
    for value in [
        "hermes-value-QX1",
        "finance-old-leaked-QX2",
        "finance-current-QX3",
    ] {
        assert!(!stdout.contains(value) && !stderr_of(out).contains(value));
    }
}

// issue 13, finding 2
#[test]
fn a_widened_policy_is_refused_and_serves_nothing() {
    sqlite_only!(SqliteOnly::Tamper);
    let env = setup();
    tamper(
        &env,
        r#"UPDATE agents SET policy = '{"secrets":["*","finance/*"]}' WHERE name = 'hermes'"#,
    );
    refused_as_tampered(
        &env.vault(&["--json", "env", "--agent", "hermes", "--format", "json"])
            .assert()
            .code(2),
    );
    // and `vault audit verify` no longer says intact
    let out = env.vault(&["audit", "verify"]).assert().code(1);
    assert!(
        stderr_of(&out).contains("agent hermes"),
        "{}",
        stderr_of(&out)
    );
}

// issue 13, finding 2
#[test]
fn a_reinstated_or_extended_key_is_refused() {
    sqlite_only!(SqliteOnly::Tamper);
    let env = setup();
    let key = stdout_of(&env.vault(&["issue", "hermes-key"]).assert().success())
        .trim()
        .to_owned();
    env.vault(&["keys", "revoke", "hermes-key"])
        .assert()
        .success();
    let token = |env: &Env| {
        env.vault(&["--json", "token"])
            .env("VAULT_AGENT_KEY", &key)
            .assert()
    };
    token(&env).code(3);
    tamper(
        &env,
        "UPDATE agent_keys SET status = 'active', revoked_at = NULL",
    );
    refused_as_tampered(&token(&env).code(2));

    let env = setup();
    let key = stdout_of(
        &env.vault(&["issue", "hermes-key", "--ttl", "1h"])
            .assert()
            .success(),
    )
    .trim()
    .to_owned();
    tamper(
        &env,
        "UPDATE agent_keys SET expires_at = expires_at + 100000000",
    );
    refused_as_tampered(
        &env.vault(&["--json", "token"])
            .env("VAULT_AGENT_KEY", &key)
            .assert()
            .code(2),
    );
}

// issue 13, finding 2
#[test]
fn a_rolled_back_current_version_serves_no_value() {
    sqlite_only!(SqliteOnly::Tamper);
    let env = setup();
    tamper(
        &env,
        "UPDATE secrets SET current_version = 1 WHERE name = 'B'",
    );
    refused_as_tampered(&env.vault(&["--json", "get", "finance/B"]).assert().code(2));
    // the other secret's row is untouched and still reads
    assert_eq!(env.get("hermes/A"), "hermes-value-QX1");
}

// issue 13, finding 2
#[test]
fn an_inserted_or_changed_rotation_command_never_runs() {
    sqlite_only!(SqliteOnly::Tamper);
    let env = setup();
    let marker = env.dir.path().join("ran");
    let evil = format!("touch {}", marker.display());
    tamper(
        &env,
        &format!(
            "INSERT INTO secret_rotation (secret_id, command, mode, timeout_ms)
             SELECT secret_id, '{evil}', 'auto', 5000 FROM secrets WHERE name = 'A'"
        ),
    );
    refused_as_tampered(
        &env.vault(&["--json", "rotate", "hermes/A"])
            .assert()
            .code(2),
    );
    assert!(!marker.exists());

    let env = setup();
    let marker = env.dir.path().join("ran");
    set_rotation_script(&env, "hermes/A", "echo fresh-value");
    tamper(
        &env,
        &format!(
            "UPDATE secret_rotation SET command = 'touch {}'",
            marker.display()
        ),
    );
    refused_as_tampered(
        &env.vault(&["--json", "rotate", "hermes/A"])
            .assert()
            .code(2),
    );
    assert!(!marker.exists());
    assert_eq!(env.get("hermes/A"), "hermes-value-QX1");
}

// issue 13, finding 2
#[test]
fn a_changed_notify_command_never_runs() {
    sqlite_only!(SqliteOnly::Tamper);
    let env = setup();
    let marker = env.dir.path().join("notified");
    env.vault(&["notify", "set", "--command", "true"])
        .assert()
        .success();
    tamper(
        &env,
        &format!("UPDATE settings SET value = 'touch {}'", marker.display()),
    );
    // notifying never fails the action it reports on: refused (exit 1), saying why
    let out = env.vault(&["--json", "notify", "test"]).assert().code(1);
    assert!(
        stdout_of(&out).contains("integrity check failed"),
        "{}",
        stdout_of(&out)
    );
    assert!(!marker.exists());
}

// issue 13, finding 2
#[test]
fn a_lowered_encryption_counter_refuses_writes() {
    sqlite_only!(SqliteOnly::Tamper);
    let env = setup();
    tamper(&env, "UPDATE vault_header SET dek_encryptions = 1");
    let out = env
        .vault(&["--json", "set", "hermes/A"])
        .write_stdin("new")
        .assert()
        .code(2);
    refused_as_tampered(&out);
    assert_eq!(env.get("hermes/A"), "hermes-value-QX1");
}

// issue 13, finding 8
#[test]
fn a_wiped_audit_trail_does_not_verify_and_no_fresh_chain_starts() {
    sqlite_only!(SqliteOnly::Tamper);
    let env = setup();
    tamper(&env, "DELETE FROM audit_log; DELETE FROM audit_head");
    let out = env.vault(&["audit", "verify"]).assert().code(1);
    assert!(!stdout_of(&out).contains("intact"), "{}", stdout_of(&out));
    env.vault(&["get", "hermes/A"]).assert().code(2);
    env.vault(&["audit", "verify"]).assert().code(1);
}

// issue 13, finding 8
#[test]
fn a_cut_audit_tail_does_not_verify() {
    sqlite_only!(SqliteOnly::Tamper);
    let env = setup();
    tamper(
        &env,
        "DELETE FROM audit_log WHERE seq > (SELECT max(seq) - 2 FROM audit_log)",
    );
    let out = env.vault(&["audit", "verify"]).assert().code(1);
    assert!(stderr_of(&out).contains("broken"), "{}", stderr_of(&out));
}

// issue 13, finding 19
#[test]
fn after_passwd_new_data_key_an_old_copy_of_the_header_opens_nothing() {
    sqlite_only!(SqliteOnly::Tamper);
    let env = setup();
    let saved = env.dir.path().join("saved-header.db");
    tamper(&env, &format!("VACUUM INTO '{}'", saved.display()));
    let newpass = env.dir.path().join("newpass");
    write_private(&newpass, "a brand new passphrase, long enough\n");
    let out = env
        .vault(&[
            "--json",
            "passwd",
            "--new-data-key",
            "--new-passphrase-file",
            newpass.to_str().unwrap(),
        ])
        .assert()
        .success();
    assert!(
        stdout_of(&out).contains("\"new_data_key\":true"),
        "{}",
        stdout_of(&out)
    );
    // the saved header (old salt, old wrapped key) put back over today's rows
    tamper(
        &env,
        &format!(
            "ATTACH '{}' AS old;
             UPDATE main.vault_header SET (kdf_salt, dek_id, wrapped_dek, dek_encryptions, tag) =
                (SELECT kdf_salt, dek_id, wrapped_dek, dek_encryptions, tag FROM old.vault_header);
             DETACH old;",
            saved.display()
        ),
    );
    // the old passphrase (env's passfile) unwraps the old key, which decrypts nothing
    for path in ["hermes/A", "finance/B"] {
        let out = env.vault(&["--json", "get", path]).assert().code(2);
        refused_as_tampered(&out);
    }
}

// issue 13, finding 21
#[test]
fn after_rm_the_wal_holds_neither_the_name_nor_the_fingerprint() {
    sqlite_only!(SqliteOnly::Tamper);
    let env = setup();
    env.set("hermes/DELETED_NAME_ZQ9", "a-value-to-forget-0001");
    let conn = Connection::open(env.db()).unwrap();
    let fingerprint: Vec<u8> = conn
        .query_row(
            "SELECT f.fingerprint FROM secret_fingerprints f JOIN secrets s USING (secret_id)
             WHERE s.name = 'DELETED_NAME_ZQ9'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    // held open, as a running server holds its connection
    env.vault(&["rm", "hermes/DELETED_NAME_ZQ9"])
        .assert()
        .success();
    let wal = std::fs::read(env.home.join("vault.db-wal")).unwrap_or_default();
    assert!(!contains(&wal, b"DELETED_NAME_ZQ9"));
    assert!(!contains(&wal, &fingerprint));
    drop(conn);
}
