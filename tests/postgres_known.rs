//! Issue 20: the leak scanner knows a PostgreSQL vault's credentials. A vault
//! there has no `vault.db`, and the known credentials (key hashes, keyed
//! fingerprints of stored values) were read from that file only: `vault scan`,
//! `vault watch` and the broker's outbound scan saw none of them, so a leaked
//! stored secret passed as nothing and a leaked key as an unmanaged finding.

use crate::common::*;
use crate::postgres::{on_db, pg_vault};

const VALUE: &str = "custom-db-password-Zq81vL0pXw";

/// A PostgreSQL vault holding `hermes/DB_PASSWORD` (= [`VALUE`]) and the key
/// `hermes-key`, and a file leaking both: the key and the file.
fn leaked(env: &Env, db: &vault_testpg::TestDb) -> (String, std::path::PathBuf) {
    on_db(env, db, &["agent", "add", "hermes"])
        .assert()
        .success();
    on_db(env, db, &["set", "hermes/DB_PASSWORD"])
        .write_stdin(VALUE)
        .assert()
        .success();
    let key = stdout_of(
        &on_db(env, db, &["issue", "hermes-key", "--agent", "hermes"])
            .assert()
            .success(),
    )
    .trim()
    .to_owned();
    let file = env.dir.path().join("notes.jsonl");
    std::fs::write(
        &file,
        format!(
            "{{\"content\":\"the password is {VALUE}\"}}\n{{\"content\":\"my key is {key}\"}}\n"
        ),
    )
    .unwrap();
    (key, file)
}

// issue 20: `vault scan` on a PostgreSQL vault, without the passphrase, names
// the leaked stored secret and the leaked key as the vault's (before the fix
// the secret was not found at all and the key was "vault token format" only)
#[test]
fn scan_names_a_postgres_vaults_leaked_secret_and_key_without_the_passphrase() {
    let Some((db, env)) = pg_vault() else { return };
    let (key, file) = leaked(&env, &db);
    let out = on_db(
        &env,
        &db,
        &["scan", file.to_str().unwrap(), "--format", "json"],
    )
    .env_remove("VAULT_PASSPHRASE_FILE")
    .assert()
    .code(1);
    let v: serde_json::Value = serde_json::from_str(&stdout_of(&out)).unwrap();
    let labels: Vec<String> = v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|f| f["managed"]["label"].as_str().map(str::to_owned))
        .collect();
    assert!(
        labels.iter().any(|l| l == "secret hermes/DB_PASSWORD"),
        "{labels:?}: {v}"
    );
    assert!(
        labels.iter().any(|l| l.contains("hermes-key")),
        "{labels:?}"
    );
    assert!(!stdout_of(&out).contains(VALUE));
    assert!(!stdout_of(&out).contains(&key[4..]));
}

// issue 20: `vault watch` on a PostgreSQL vault recognises a leaked key and
// acts on it: the key is refused afterwards
#[test]
fn watch_on_a_postgres_vault_acts_on_a_leaked_key() {
    let Some((db, env)) = pg_vault() else { return };
    let (key, file) = leaked(&env, &db);
    let out = on_db(&env, &db, &["watch", "--once", file.to_str().unwrap()])
        .assert()
        .success();
    let said = stderr_of(&out);
    assert!(said.contains("hermes-key"), "{said}");
    on_db(&env, &db, &["token"])
        .env("VAULT_AGENT_KEY", &key)
        .assert()
        .code(3);
}
