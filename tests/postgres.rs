//! Issue 20: the real `vault` binary on PostgreSQL (a throwaway cluster from
//! vault-testpg): `--database` / `VAULT_DATABASE_URL` for init and the
//! everyday commands, two `vault server`s sharing one database, and the bad
//! inputs each with its exit code and JSON code.

use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use vault_testpg::TestDb;

use crate::common::*;

/// A database with a vault made by `vault init --database` as its owner,
/// and the server role granted row access (README, Running on PostgreSQL).
pub(crate) fn pg_vault() -> Option<(TestDb, Env)> {
    pg_vault_in(TestDb::create()?)
}

/// As [`pg_vault`], on a cluster of its own (a test that restarts it).
pub(crate) fn pg_vault_alone() -> Option<(TestDb, Env)> {
    pg_vault_in(TestDb::create_alone()?)
}

fn pg_vault_in(db: TestDb) -> Option<(TestDb, Env)> {
    let env = Env::empty();
    env.vault(&["init", "--database", &db.owner_url()])
        .args(["--kdf-memory-mib", "64", "--kdf-iterations", "3"])
        .assert()
        .success();
    db.grant_server();
    Some((db, env))
}

/// `vault ARGS` on the database as the server role, through the variable.
pub(crate) fn on_db(env: &Env, db: &TestDb, args: &[&str]) -> assert_cmd::Command {
    let mut cmd = env.vault(args);
    cmd.env("VAULT_DATABASE_URL", db.url());
    cmd
}

/// `vault server --database URL` with its own vault directory (`host`), as
/// a second host would run it, with `VAULT_FAILPOINT` armed when `failpoint` is given.
fn server_command(
    env: &Env,
    db: &TestDb,
    host: &str,
    failpoint: Option<&str>,
) -> std::process::Command {
    let mut cmd = std::process::Command::new(assert_cmd::cargo::cargo_bin("vault"));
    cmd.args(["server", "--database", &db.url(), "--listen", "127.0.0.1:0"])
        .env_remove("VAULT_DATABASE_URL")
        .env_remove("VAULT_FAILPOINT")
        .env("VAULT_HOME", env.dir.path().join(host))
        .env("VAULT_PASSPHRASE_FILE", &env.passfile);
    if let Some(point) = failpoint {
        cmd.env("VAULT_FAILPOINT", point);
    }
    cmd
}

/// A server of its own for `host`, listening.
pub(crate) fn server(env: &Env, db: &TestDb, host: &str) -> Server {
    spawn_server(
        server_command(env, db, host, None),
        &env.dir.path().join(format!("{host}-admin")),
        &env.dir.path().join(format!("{host}.stderr")),
    )
}

/// The process of [`server`] with `failpoint` armed, not waited for: it may
/// stop at its failpoint before it listens.
pub(crate) fn server_stopping_at(env: &Env, db: &TestDb, host: &str, failpoint: &str) -> Child {
    let admin_file = env.dir.path().join(format!("{host}-admin"));
    let stderr = env.dir.path().join(format!("{host}.stderr"));
    server_command(env, db, host, Some(failpoint))
        .args(["--admin-token-file", admin_file.to_str().unwrap()])
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&stderr).unwrap())
        .spawn()
        .unwrap()
}

/// `vault --json --database URL ls`: its exit code and the error's code and message.
fn json_error(env: &Env, url: &str) -> (Option<i32>, String, String) {
    let out = env.vault(&["--json", "--database", url, "ls"]).assert();
    let v: serde_json::Value = serde_json::from_str(&stdout_of(&out)).unwrap();
    let e = &v["error"];
    (
        out.get_output().status.code(),
        e["code"].as_str().unwrap_or_default().to_owned(),
        e["message"].as_str().unwrap_or_default().to_owned(),
    )
}

/// Agent hermes added, and its key `hermes-key` issued: the key.
pub(crate) fn hermes_with_key(env: &Env, db: &TestDb) -> String {
    on_db(env, db, &["agent", "add", "hermes"])
        .assert()
        .success();
    stdout_of(
        &on_db(env, db, &["issue", "hermes-key", "--agent", "hermes"])
            .assert()
            .success(),
    )
    .trim()
    .to_owned()
}

pub(crate) fn call(
    method: &str,
    url: &str,
    bearer: &str,
    body: Option<&str>,
) -> (u16, serde_json::Value) {
    let req = ureq::request(method, url)
        .set("Authorization", &format!("Bearer {bearer}"))
        .timeout(Duration::from_secs(10));
    let result = match body {
        Some(b) => req.set("Content-Type", "application/json").send_string(b),
        None => req.call(),
    };
    let response = match result {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("{e}"),
    };
    let status = response.status();
    let text = response.into_string().unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text)),
    )
}

pub(crate) fn mint(base: &str, key: &str) -> (u16, serde_json::Value) {
    call(
        "POST",
        &format!("{base}/v1/auth/token"),
        key,
        Some(r#"{"scopes": ["secrets:read"], "ttl_seconds": 300}"#),
    )
}

#[test]
fn init_issue_set_get_and_audit_verify_run_on_postgres() {
    // issue 20, item 2/3: every command that opens the vault takes the
    // database from --database or VAULT_DATABASE_URL; no vault.db is made
    let Some((db, env)) = pg_vault() else { return };
    on_db(&env, &db, &["agent", "add", "hermes"])
        .assert()
        .success();
    let key = stdout_of(
        &on_db(&env, &db, &["issue", "hermes-key", "--agent", "hermes"])
            .assert()
            .success(),
    );
    assert!(key.trim().starts_with("avk_"), "{key}");
    on_db(&env, &db, &["set", "hermes/TOKEN"])
        .write_stdin("pg-value-7c1d")
        .assert()
        .success();
    let out = on_db(&env, &db, &["get", "hermes/TOKEN"])
        .assert()
        .success();
    assert_eq!(stdout_of(&out), "pg-value-7c1d\n");
    let out = on_db(&env, &db, &["--json", "audit", "verify"])
        .assert()
        .success();
    let v: serde_json::Value = serde_json::from_str(&stdout_of(&out)).unwrap();
    assert!(v.to_string().contains("intact"), "{v}");
    assert!(
        !env.db().exists(),
        "the data is in the database, not vault.db"
    );
    // the same database through the flag as through the variable
    let out = env
        .vault(&["--database", &db.url(), "ls"])
        .assert()
        .success();
    assert!(stdout_of(&out).contains("TOKEN"));
    // and without either, this directory holds no vault
    env.vault(&["ls"]).assert().code(4);
}

#[test]
fn two_servers_on_one_database_share_tokens_and_revocations_within_a_second() {
    // issue 20, several servers: a token minted through one is read through
    // the other; a key revoked through one is refused by the other in < 1 s
    let Some((db, env)) = pg_vault() else { return };
    let key = hermes_with_key(&env, &db);
    on_db(&env, &db, &["set", "hermes/TOKEN"])
        .write_stdin("shared-value-91ab")
        .assert()
        .success();
    let a = server(&env, &db, "host-a");
    let b = server(&env, &db, "host-b");
    let (status, v) = mint(&a.base, &key);
    assert_eq!(status, 200, "{v}");
    let token = v["token"].as_str().unwrap().to_owned();
    let (status, v) = call("GET", &format!("{}/v1/secrets/TOKEN", b.base), &token, None);
    assert_eq!(
        (status, v["value"].as_str()),
        (200, Some("shared-value-91ab")),
        "{v}"
    );
    assert_eq!(
        mint(&b.base, &key).0,
        200,
        "b takes the key before the revocation"
    );

    let (status, v) = call(
        "POST",
        &format!("{}/v1/admin/keys/hermes-key/revoke", a.base),
        &a.admin,
        Some("{}"),
    );
    assert_eq!(status, 200, "{v}");
    let revoked = Instant::now();
    // bounded: the refresher polls every 500 ms; 5 s is a failure, not a wait
    let refused_after = loop {
        let (status, _) = mint(&b.base, &key);
        if status == 401 {
            break revoked.elapsed();
        }
        assert!(
            revoked.elapsed() < Duration::from_secs(5),
            "b still takes the key"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    // the other server hears the revocation at commit (LISTEN vault_keys);
    // its 500 ms refresh is only the fallback
    eprintln!("revocation seen by the other server after {refused_after:?}");
    assert!(
        refused_after < Duration::from_secs(1),
        "b refused the revoked key only after {refused_after:?}"
    );
    drop((a, b));
    on_db(&env, &db, &["audit", "verify"]).assert().success();
}

#[test]
fn a_key_leaked_in_a_message_posted_to_v1_scan_on_postgres_is_rotated() {
    // issue 20: /v1/scan reads the vault's known credentials through the
    // store, so on PostgreSQL (no vault.db) a leak it is shown rotates too
    let Some((db, env)) = pg_vault() else { return };
    let key = hermes_with_key(&env, &db);
    let a = server(&env, &db, "host-a");
    let b = server(&env, &db, "host-b");
    let (status, v) = mint(&a.base, &key);
    assert_eq!(status, 200, "{v}");
    let token = v["token"].as_str().unwrap().to_owned();
    let body =
        serde_json::json!({"text": format!("about to log: {key}"), "rotate": true}).to_string();
    let (status, v) = call("POST", &format!("{}/v1/scan", a.base), &token, Some(&body));
    assert_eq!(status, 200, "{v}");
    assert!(
        v["findings"][0]["managed"]["label"]
            .as_str()
            .is_some_and(|l| l.contains("hermes-key")),
        "{v}"
    );
    assert!(
        v["actions"][0]
            .as_str()
            .is_some_and(|a| a.starts_with("rotated key hermes-key")),
        "{v}"
    );
    assert!(!v.to_string().contains(&key[4..]), "{v}");
    assert_eq!(mint(&a.base, &key).0, 401);
    // revoked in the database: the other server refuses it too (at the
    // NOTIFY, within its refresh at worst)
    let since = Instant::now();
    let (status, v) = loop {
        let (status, v) = mint(&b.base, &key);
        if status != 200 || since.elapsed() > Duration::from_secs(2) {
            break (status, v);
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(
        (status, v["error"]["code"].as_str()),
        (401, Some("key_revoked")),
        "{v}"
    );
    drop((a, b));
    on_db(&env, &db, &["audit", "verify"]).assert().success();
}

#[test]
fn bad_database_input_is_a_clear_error_with_a_stable_code() {
    // issue 20, bad input: a wrong URL, an unreachable server, a wrong
    // password, a role with BYPASSRLS; each refused before any prompt is
    // answered wrongly, with its exit code and JSON code
    let Some((db, env)) = pg_vault() else { return };
    let (code, name, message) = json_error(&env, "mysql://nobody@127.0.0.1/db");
    assert_eq!(
        (code, name.as_str()),
        (Some(2), "invalid_input"),
        "{message}"
    );
    let (code, name, message) = json_error(&env, &db.url().replacen('@', ":hunter2@", 1));
    assert_eq!(
        (code, name.as_str()),
        (Some(2), "invalid_input"),
        "{message}"
    );
    assert!(
        !message.contains("hunter2") && message.contains("passfile"),
        "{message}"
    );

    let port = db.port().to_string();
    let dead_port = vault_testpg::free_port().to_string();
    let (code, name, message) = json_error(&env, &db.url().replace(&port, &dead_port));
    assert_eq!(
        (code, name.as_str()),
        (Some(2), "database_unreachable"),
        "{message}"
    );

    // a wrong password in the passfile
    let wrong = env.dir.path().join("wrong-pgpass");
    write_private(
        &wrong,
        &format!(
            "127.0.0.1:{port}:{}:{}:not-the-password\n",
            db.name, db.server
        ),
    );
    let url = format!(
        "postgres://{}@127.0.0.1:{port}/{}?passfile={}",
        db.server,
        db.name,
        wrong.display()
    );
    let (code, name, message) = json_error(&env, &url);
    assert_eq!(
        (code, name.as_str()),
        (Some(3), "database_auth"),
        "{message}"
    );
    assert!(message.contains("passfile"), "{message}");

    db.admin_client()
        .batch_execute(&format!("ALTER ROLE {} BYPASSRLS", db.server))
        .unwrap();
    let (code, name, message) = json_error(&env, &db.url());
    assert_eq!((code, name.as_str()), (Some(1), "refused"), "{message}");
    assert!(message.contains("NOBYPASSRLS"), "{message}");
}

#[test]
fn migrate_copies_a_sqlite_vault_into_postgres_and_back() {
    // issue 20, `vault migrate --to`: ciphertexts move as they are, the same
    // passphrase unlocks the copy, its audit chain verifies there, and a
    // target that holds anything is refused
    let Some(db) = TestDb::create() else { return };
    let env = Env::new();
    env.vault(&["agent", "add", "hermes"]).assert().success();
    env.set("hermes/TOKEN", "sqlite-born-5e21");
    env.vault(&["issue", "hermes-key", "--agent", "hermes"])
        .assert()
        .success();
    // a wrong passphrase is refused before anything is copied
    let wrong = env.dir.path().join("wrong-pass");
    std::fs::write(&wrong, "not the passphrase\n").unwrap();
    std::fs::set_permissions(&wrong, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    env.vault(&["--json", "migrate", "--to", &db.owner_url()])
        .env("VAULT_PASSPHRASE_FILE", &wrong)
        .assert()
        .code(3);
    let out = env
        .vault(&["--json", "migrate", "--to", &db.owner_url()])
        .assert()
        .success();
    let v: serde_json::Value = serde_json::from_str(&stdout_of(&out)).unwrap();
    assert!(v["rows"].as_u64().unwrap() > 4, "{v}");
    db.grant_server();
    let out = on_db(&env, &db, &["get", "hermes/TOKEN"])
        .assert()
        .success();
    assert_eq!(stdout_of(&out), "sqlite-born-5e21\n");
    on_db(&env, &db, &["audit", "verify"]).assert().success();
    // the copy says where it came from, in its own chain; the source's is as it was
    let migrations = |cmd: &mut assert_cmd::Command| {
        let out = cmd.assert().success();
        stdout_of(&out).matches("copied from").count()
    };
    let log = ["audit", "log", "--action", "vault.migrate"];
    assert_eq!(migrations(&mut on_db(&env, &db, &log)), 1);
    assert_eq!(migrations(&mut env.vault(&log)), 0);
    // new rows after the copy: the identity sequences start past the copied ids
    on_db(&env, &db, &["agent", "add", "argus"])
        .assert()
        .success();
    on_db(&env, &db, &["set", "argus/KEY"])
        .write_stdin("pg-born-0a77")
        .assert()
        .success();
    // the database now holds a vault: a second copy into it is refused
    let out = env
        .vault(&["--json", "migrate", "--to", &db.owner_url()])
        .assert()
        .code(1);
    assert!(stdout_of(&out).contains("not empty"), "{}", stdout_of(&out));

    // and back, into a new vault directory
    let back = env.dir.path().join("back");
    on_db(&env, &db, &["migrate", "--to", back.to_str().unwrap()])
        .assert()
        .success();
    let in_back = |args: &[&str]| {
        let mut cmd = env.vault(args);
        cmd.env("VAULT_HOME", &back);
        cmd
    };
    for (path, value) in [
        ("hermes/TOKEN", "sqlite-born-5e21"),
        ("argus/KEY", "pg-born-0a77"),
    ] {
        let out = in_back(&["get", path]).assert().success();
        assert_eq!(stdout_of(&out), format!("{value}\n"));
    }
    in_back(&["audit", "verify"]).assert().success();
    assert_eq!(migrations(&mut in_back(&log)), 2, "one record per copy");
    let out = in_back(&["keys", "ls"]).assert().success();
    assert!(
        stdout_of(&out).contains("hermes-key"),
        "{}",
        stdout_of(&out)
    );
    // an existing vault is never overwritten
    on_db(&env, &db, &["migrate", "--to", back.to_str().unwrap()])
        .assert()
        .failure();
}

#[test]
fn the_owner_a_newer_schema_and_another_vaults_database_are_refused_at_start() {
    // issue 20, bad input at start: each refused with the fix in the message
    // and a stable code, before any passphrase is tried on the database
    let Some((db, env)) = pg_vault() else { return };
    // the role that owns the tables could switch row-level security off
    let (code, name, message) = json_error(&env, &db.owner_url());
    assert_eq!((code, name.as_str()), (Some(1), "refused"), "{message}");
    assert!(
        message.contains("owns the vault's tables") && message.contains("GRANT"),
        "{message}"
    );
    // the first open as the server role binds this directory to the vault
    on_db(&env, &db, &["ls"]).assert().success();
    let Some((other, other_env)) = pg_vault() else {
        return;
    };
    drop(other_env);
    let (code, name, message) = json_error(&env, &other.url());
    assert_eq!((code, name.as_str()), (Some(1), "refused"), "{message}");
    assert!(
        message.contains("was used with vault") && message.contains("VAULT_HOME"),
        "{message}"
    );
    on_db(&env, &db, &["ls"]).assert().success();
    // a database a newer build migrated
    db.owner_client()
        .batch_execute(
            "BEGIN; SELECT set_config('vault.operator', 'on', true);
             UPDATE vault_schema SET version = version + 1; COMMIT;",
        )
        .unwrap();
    let (code, name, message) = json_error(&env, &db.url());
    assert_eq!(name, "schema_too_new", "{code:?} {message}");
    assert!(message.contains("newer"), "{message}");
}

#[test]
fn audit_prune_by_size_runs_on_postgres_and_the_rest_verifies() {
    // issue 19 on issue 20's backend: the size cut is the same SQL
    let Some((db, env)) = pg_vault() else { return };
    on_db(&env, &db, &["agent", "add", "hermes"])
        .assert()
        .success();
    for n in 0..3 {
        on_db(&env, &db, &["set", &format!("hermes/TOKEN_{n}")])
            .write_stdin("pg-value-of-some-length")
            .assert()
            .success();
    }
    let json = |args: &[&str]| -> serde_json::Value {
        let out = on_db(&env, &db, args).assert().success();
        serde_json::from_str(&stdout_of(&out)).unwrap()
    };
    let records = json(&["--json", "audit", "log"])["records"]
        .as_array()
        .unwrap()
        .len() as i64;
    assert!(records >= 5, "{records}");
    // one byte keeps no record: all are cut behind the checkpoint
    let v = json(&["--json", "audit", "prune", "--keep-size", "1B"]);
    assert_eq!(v["removed"], records, "{v}");
    assert_eq!(v["pruned"]["through_seq"], records, "{v}");
    assert!(
        v["kept_bytes"].as_i64().unwrap() > 80,
        "the prune's own record: {v}"
    );
    let v = json(&["--json", "audit", "verify"]);
    assert_eq!(v["intact"], true, "{v}");
    assert_eq!(v["starts_at_seq"], records + 1, "{v}");
    assert_eq!(v["records"], 1, "{v}");
    // a bound everything fits in removes nothing more
    let v = json(&["--json", "audit", "prune", "--keep-size", "1GB"]);
    assert_eq!(v["removed"], 0, "{v}");
}
