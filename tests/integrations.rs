//! Issue 9: agent runtime integrations. `vault resolve --openclaw` against a
//! real `vault server` on 127.0.0.1:0, `vault scrub` on real JSONL and SQLite
//! transcripts, `vault target add --hermes-profile/--openclaw-agent`, and
//! `vault integrate`. (tests/real-packages.sh runs the real Hermes Agent and
//! OpenClaw packages against the same commands.)

use std::process::Child;

use crate::common::*;

const MARKETING_SECRET: &str = "canary-integ-4d1c9e0b-marketing";
const FINANCE_SECRET: &str = "canary-integ-7a33f2c8-finance";

/// A running `vault server`, killed on drop.
struct Server {
    child: Child,
    base: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(env: &Env) -> Server {
    let admin = env.dir.path().join("admin-token");
    let mut child = spawn_vault(
        env,
        &[
            "server",
            "--listen",
            "127.0.0.1:0",
            "--admin-token-file",
            admin.to_str().unwrap(),
        ],
    );
    let lines = Lines::of(&mut child);
    let seen = lines.until(env, "listening on ");
    let base = seen
        .lines()
        .find_map(|l| l.trim().strip_prefix("listening on "))
        .unwrap()
        .to_owned();
    Server { child, base }
}

/// Two agents with one secret each and a named key each.
fn two_agents() -> (Env, String, String) {
    let env = Env::new();
    for agent in ["hermes-marketing", "hermes-finance"] {
        env.vault(&["agent", "add", agent]).assert().success();
    }
    env.set("hermes-marketing/GITHUB_TOKEN", MARKETING_SECRET);
    env.set("hermes-finance/STRIPE_KEY", FINANCE_SECRET);
    let issue = |name: &str| {
        stdout_of(&env.vault(&["issue", name]).assert().success())
            .trim()
            .to_owned()
    };
    let m = issue("hermes-marketing-key");
    let f = issue("hermes-finance-key");
    (env, m, f)
}

/// `vault resolve --openclaw` as OpenClaw runs it: only the passed-through
/// variables, no HOME, no VAULT_HOME, the request on stdin.
fn resolve(
    env: &Env,
    base: Option<&str>,
    key: Option<&str>,
    stdin: impl Into<Vec<u8>>,
) -> assert_cmd::assert::Assert {
    let mut cmd = assert_cmd::Command::cargo_bin("vault").unwrap();
    cmd.args(["resolve", "--openclaw"])
        .env_clear()
        .current_dir(env.dir.path())
        .timeout(std::time::Duration::from_secs(60))
        .write_stdin(stdin.into());
    if let Some(b) = base {
        cmd.env("VAULT_ADDR", b);
    }
    if let Some(k) = key {
        cmd.env("VAULT_AGENT_KEY", k);
    }
    cmd.assert()
}

fn request(ids: &[&str]) -> String {
    serde_json::json!({"protocolVersion": 1, "provider": "vault", "ids": ids}).to_string()
}

fn json_of(out: &assert_cmd::assert::Assert) -> serde_json::Value {
    serde_json::from_str(&stdout_of(out)).unwrap_or_else(|e| panic!("{e}: {}", stdout_of(out)))
}

fn assert_no_panic(out: &assert_cmd::assert::Assert) {
    assert!(!stderr_of(out).contains("panicked"), "{}", stderr_of(out));
}

#[test]
fn resolve_answers_each_agent_with_its_own_secrets_only() {
    let (env, m, f) = two_agents();
    let s = start(&env);
    let ids = [
        "GITHUB_TOKEN",
        "hermes-marketing/GITHUB_TOKEN",
        "hermes-finance/STRIPE_KEY",
        "STRIPE_KEY",
        "NOPE",
    ];
    let out = resolve(&env, Some(&s.base), Some(&m), request(&ids)).success();
    let v = json_of(&out);
    assert_eq!(v["protocolVersion"], 1);
    assert_eq!(
        v["values"],
        serde_json::json!({"GITHUB_TOKEN": MARKETING_SECRET,
                           "hermes-marketing/GITHUB_TOKEN": MARKETING_SECRET})
    );
    // another agent's secret answers exactly like a missing one
    let not_found = serde_json::json!({"code": "NOT_FOUND"});
    for id in ["hermes-finance/STRIPE_KEY", "STRIPE_KEY", "NOPE"] {
        assert_eq!(v["errors"][id], not_found, "{id}");
    }
    assert!(!stdout_of(&out).contains(FINANCE_SECRET));

    let out = resolve(&env, Some(&s.base), Some(&f), request(&ids)).success();
    let v = json_of(&out);
    assert_eq!(
        v["values"],
        serde_json::json!({"hermes-finance/STRIPE_KEY": FINANCE_SECRET,
                           "STRIPE_KEY": FINANCE_SECRET})
    );
    for id in ["GITHUB_TOKEN", "hermes-marketing/GITHUB_TOKEN", "NOPE"] {
        assert_eq!(v["errors"][id], not_found, "{id}");
    }
    assert!(!stdout_of(&out).contains(MARKETING_SECRET));

    // --key-env names the variable: one gateway, one key variable per agent
    let mut cmd = assert_cmd::Command::cargo_bin("vault").unwrap();
    let out = cmd
        .args([
            "resolve",
            "--openclaw",
            "--key-env",
            "VAULT_AGENT_KEY_FINANCE",
        ])
        .env_clear()
        .env("VAULT_ADDR", &s.base)
        .env("VAULT_AGENT_KEY_FINANCE", &f)
        .write_stdin(request(&["STRIPE_KEY"]))
        .timeout(std::time::Duration::from_secs(60))
        .assert()
        .success();
    assert_eq!(json_of(&out)["values"]["STRIPE_KEY"], FINANCE_SECRET);
}

#[test]
fn resolve_refuses_malformed_requests_with_a_protocol_error() {
    let (env, m, _) = two_agents();
    let s = start(&env);
    for bad in [
        "".to_owned(),
        "{not json".to_owned(),
        "[1,2]".to_owned(),
        r#"{"protocolVersion":2,"provider":"vault","ids":["GITHUB_TOKEN"]}"#.to_owned(),
        r#"{"protocolVersion":1,"provider":"vault","ids":[7]}"#.to_owned(),
        r#"{"protocolVersion":1,"provider":"vault","ids":"GITHUB_TOKEN"}"#.to_owned(),
        r#"{"protocolVersion":1,"ids":["GITHUB_TOKEN"]}"#.to_owned(),
    ] {
        let out = resolve(&env, Some(&s.base), Some(&m), bad.clone()).code(2);
        assert_no_panic(&out);
        let v = json_of(&out);
        assert_eq!(v["error"]["code"], "protocol_error", "{bad}");
        assert!(v.get("values").is_none());
        assert!(!stdout_of(&out).contains(MARKETING_SECRET));
    }
}

#[test]
fn resolve_caps_the_request_at_one_mebibyte() {
    let (env, m, _) = two_agents();
    let s = start(&env);
    // padding inside a valid request: only the size is wrong
    let pad = " ".repeat(1024 * 1024);
    let big = format!(r#"{{"protocolVersion":1,"provider":"vault",{pad}"ids":["GITHUB_TOKEN"]}}"#);
    let out = resolve(&env, Some(&s.base), Some(&m), big).code(2);
    assert_no_panic(&out);
    let v = json_of(&out);
    assert_eq!(v["error"]["code"], "protocol_error");
    assert!(v["error"]["message"]
        .as_str()
        .unwrap()
        .contains("larger than 1048576 bytes"));
    // just under the cap is fine
    let pad = " ".repeat(1024 * 1024 - 100);
    let ok = format!(r#"{{"protocolVersion":1,"provider":"vault",{pad}"ids":["GITHUB_TOKEN"]}}"#);
    let out = resolve(&env, Some(&s.base), Some(&m), ok).success();
    assert_eq!(json_of(&out)["values"]["GITHUB_TOKEN"], MARKETING_SECRET);
}

#[test]
fn resolve_rejects_path_tricks_per_id() {
    let (env, m, _) = two_agents();
    let s = start(&env);
    let tricks = [
        "../hermes-finance/STRIPE_KEY",
        "hermes-marketing/../hermes-finance/STRIPE_KEY",
        "hermes-finance/STRIPE_KEY/x",
        "GITHUB_TOKEN\u{0}",
        "GITHUB\nTOKEN",
        "/GITHUB_TOKEN",
        "..",
    ];
    let mut ids = tricks.to_vec();
    ids.push("GITHUB_TOKEN");
    let out = resolve(&env, Some(&s.base), Some(&m), request(&ids)).success();
    assert_no_panic(&out);
    let v = json_of(&out);
    assert_eq!(
        v["values"],
        serde_json::json!({"GITHUB_TOKEN": MARKETING_SECRET})
    );
    for id in tricks {
        assert_eq!(v["errors"][id]["code"], "INVALID_ID", "{id:?}");
    }
    assert!(!stdout_of(&out).contains(FINANCE_SECRET));
}

#[test]
fn resolve_with_a_missing_or_revoked_key_fails_clearly_and_leaks_nothing() {
    let (env, m, _) = two_agents();
    let s = start(&env);
    let req = request(&["GITHUB_TOKEN"]);
    // no key at all
    let out = resolve(&env, Some(&s.base), None, req.clone()).code(2);
    let v = json_of(&out);
    assert_eq!(v["error"]["code"], "usage");
    assert!(stderr_of(&out).contains("VAULT_AGENT_KEY"));
    // no server address
    let out = resolve(&env, None, Some(&m), req.clone()).code(2);
    assert_eq!(json_of(&out)["error"]["code"], "no_server");
    // a key that is not a vault key
    let out = resolve(&env, Some(&s.base), Some("avk_not-a-key"), req.clone()).code(3);
    assert!(json_of(&out)["error"]["code"].is_string());
    // a revoked key
    env.vault(&["keys", "revoke", "hermes-marketing-key"])
        .assert()
        .success();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let out = loop {
        let out = resolve(&env, Some(&s.base), Some(&m), req.clone());
        if out.get_output().status.code() == Some(3) || std::time::Instant::now() > deadline {
            break out;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    let out = out.code(3);
    let v = json_of(&out);
    assert!(v["error"]["code"].is_string());
    assert!(v.get("values").is_none());
    for text in [stdout_of(&out), stderr_of(&out)] {
        assert!(!text.contains(MARKETING_SECRET), "{text}");
        assert!(
            !text.contains(&m),
            "the key itself must not be echoed: {text}"
        );
    }
}

/// A vault whose agent has a named key, the key, and a stored secret.
fn leaky_vault() -> (Env, String) {
    let env = Env::new();
    env.vault(&["agent", "add", "hermes-marketing"])
        .assert()
        .success();
    env.set(
        "hermes-marketing/SLACK_WEBHOOK",
        "FAKE-stored-value-9f3b2a7c1d-DEMO",
    );
    let key = stdout_of(
        &env.vault(&["issue", "hermes-marketing-key"])
            .assert()
            .success(),
    )
    .trim()
    .to_owned();
    (env, key)
}

/// Makes a file look old enough not to be "being written".
fn age(path: &std::path::Path) {
    if !path.exists() {
        return;
    }
    let old = std::time::SystemTime::now() - std::time::Duration::from_secs(60);
    std::fs::File::options()
        .write(true)
        .open(path)
        .unwrap()
        .set_modified(old)
        .unwrap();
}

fn mode_of(path: &std::path::Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

const PROVIDER_SECRET: &str = "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";

#[test]
fn scrub_rewrites_a_jsonl_transcript_in_place_and_a_rerun_changes_nothing() {
    let (env, key) = leaky_vault();
    let file = env.dir.path().join("session.jsonl");
    let lines = [
        serde_json::json!({"role": "user", "content": format!("my key is {key} ok")}),
        serde_json::json!({"role": "assistant", "tool_calls": [{"function": {"name": "terminal",
            "arguments": serde_json::json!({"command": format!("curl -H 'X: {key}'")}).to_string()}}]}),
        serde_json::json!({"role": "tool", "content": "webhook FAKE-stored-value-9f3b2a7c1d-DEMO sent"}),
        serde_json::json!({"role": "user", "content": format!("and {PROVIDER_SECRET}")}),
    ];
    let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
    std::fs::write(&file, &text).unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o640)).unwrap();
    }
    age(&file);
    let out = env
        .vault(&["scrub", "--json", file.to_str().unwrap()])
        .assert()
        .success();
    let v: serde_json::Value = serde_json::from_str(&stdout_of(&out)).unwrap();
    assert_eq!(v["files"][0]["status"], "scrubbed");
    assert_eq!(v["files"][0]["kind"], "text");
    assert_eq!(v["replaced"], 3, "{v}");
    for text in [stdout_of(&out), stderr_of(&out)] {
        assert!(
            !text.contains(&key) && !text.contains("FAKE-stored-value"),
            "{text}"
        );
    }
    let after = std::fs::read_to_string(&file).unwrap();
    assert!(!after.contains(&key));
    assert!(!after.contains("FAKE-stored-value-9f3b2a7c1d-DEMO"));
    // a provider finding stays without --all-findings
    assert!(after.contains(PROVIDER_SECRET));
    assert!(after.contains("<redacted:vault.named-key>"), "{after}");
    assert!(after.contains("<redacted:vault.stored-secret>"), "{after}");
    // still one JSON object per line, the tool arguments still JSON inside
    let parsed: Vec<serde_json::Value> = after
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(parsed.len(), 4);
    let args = parsed[1]["tool_calls"][0]["function"]["arguments"]
        .as_str()
        .unwrap();
    serde_json::from_str::<serde_json::Value>(args).unwrap();
    assert_eq!(mode_of(&file), 0o640, "the agent's mode is kept");

    // a rerun finds nothing and leaves the file byte for byte
    age(&file);
    let before = std::fs::read(&file).unwrap();
    let meta = std::fs::metadata(&file).unwrap().modified().unwrap();
    let out = env
        .vault(&["scrub", "--json", file.to_str().unwrap()])
        .assert()
        .success();
    let v: serde_json::Value = serde_json::from_str(&stdout_of(&out)).unwrap();
    assert_eq!(
        (v["files"][0]["status"].as_str(), v["replaced"].as_u64()),
        (Some("clean"), Some(0))
    );
    assert_eq!(std::fs::read(&file).unwrap(), before);
    assert_eq!(std::fs::metadata(&file).unwrap().modified().unwrap(), meta);

    // --all-findings takes the provider token too, and then nothing is left
    env.vault(&["scrub", "--all-findings", file.to_str().unwrap()])
        .assert()
        .success();
    let after = std::fs::read_to_string(&file).unwrap();
    assert!(!after.contains(PROVIDER_SECRET));
    assert!(after.contains("<redacted:github.pat-classic>"));
    env.vault(&["scan", "--no-ignore", file.to_str().unwrap()])
        .assert()
        .success();
}

#[test]
fn scrub_refuses_a_file_being_written_unless_forced_and_backs_up_0600() {
    let (env, key) = leaky_vault();
    let file = env.dir.path().join("live.jsonl");
    std::fs::write(
        &file,
        format!("{}\n", serde_json::json!({"content": format!("key {key}")})),
    )
    .unwrap();
    // just written: refused, untouched
    let out = env
        .vault(&["scrub", "--json", file.to_str().unwrap()])
        .assert()
        .code(1);
    let v: serde_json::Value = serde_json::from_str(&stdout_of(&out)).unwrap();
    assert_eq!(v["files"][0]["status"], "refused");
    assert!(std::fs::read_to_string(&file).unwrap().contains(&key));
    // --force with --backup: scrubbed, and the original kept 0600
    let out = env
        .vault(&[
            "scrub",
            "--json",
            "--force",
            "--backup",
            file.to_str().unwrap(),
        ])
        .assert()
        .success();
    let v: serde_json::Value = serde_json::from_str(&stdout_of(&out)).unwrap();
    assert_eq!(v["files"][0]["status"], "scrubbed");
    let backup = std::path::PathBuf::from(v["files"][0]["backup"].as_str().unwrap());
    assert_eq!(mode_of(&backup), 0o600);
    assert!(std::fs::read_to_string(&backup).unwrap().contains(&key));
    assert!(!std::fs::read_to_string(&file).unwrap().contains(&key));
    assert!(!stdout_of(&out).contains(&key));
    // a symlink is never followed
    let link = env.dir.path().join("link.jsonl");
    std::os::unix::fs::symlink(&backup, &link).unwrap();
    env.vault(&["scrub", "--force", link.to_str().unwrap()])
        .assert()
        .code(1);
    assert!(std::fs::read_to_string(&backup).unwrap().contains(&key));
}

/// A store shaped like Hermes' `state.db`: messages with tool calls, an FTS5
/// table keeping its own copy of the text (kept in step by triggers), and a
/// `\0json:` multimodal row.
fn hermes_like_store(path: &std::path::Path, key: &str) {
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.execute_batch(
        "PRAGMA journal_mode=WAL;
         CREATE TABLE messages (id INTEGER PRIMARY KEY AUTOINCREMENT, session_id TEXT,
             role TEXT, content TEXT, tool_calls TEXT, active INTEGER DEFAULT 1);
         CREATE VIRTUAL TABLE messages_fts USING fts5(content);
         CREATE TRIGGER m_ins AFTER INSERT ON messages BEGIN
             INSERT INTO messages_fts(rowid, content) VALUES (new.id, new.content); END;
         CREATE TRIGGER m_upd AFTER UPDATE ON messages BEGIN
             DELETE FROM messages_fts WHERE rowid = old.id;
             INSERT INTO messages_fts(rowid, content) VALUES (new.id, new.content); END;
         CREATE TABLE notes (k TEXT PRIMARY KEY, v TEXT) WITHOUT ROWID;",
    )
    .unwrap();
    let calls = serde_json::json!([{"type": "function", "function": {"name": "terminal",
        "arguments": serde_json::json!({"command": format!("export K={key}")}).to_string()}}]);
    conn.execute(
        "INSERT INTO messages (session_id, role, content, tool_calls) VALUES ('s1', 'user', ?1, NULL)",
        [format!("here is my key {key} thanks")],
    )
    .unwrap();
    conn.execute(
        "INSERT INTO messages (session_id, role, content, tool_calls) VALUES ('s1', 'assistant', '', ?1)",
        [calls.to_string()],
    )
    .unwrap();
    conn.execute(
        "INSERT INTO messages (session_id, role, content, active) VALUES ('s1', 'user', ?1, 0)",
        [format!(
            "\0json:{}",
            serde_json::json!([{"type": "text", "text": format!("rewound {key}")}])
        )],
    )
    .unwrap();
    conn.execute(
        "INSERT INTO notes (k, v) VALUES ('n', ?1)",
        [format!("note {key}")],
    )
    .unwrap();
}

#[test]
fn scrub_rewrites_a_sqlite_store_with_its_fts_copy_in_one_transaction() {
    let (env, key) = leaky_vault();
    let db = env.dir.path().join("state.db");
    hermes_like_store(&db, &key);
    age(&db);
    age(&env.dir.path().join("state.db-wal"));
    let out = env
        .vault(&["scrub", "--json", "--backup", db.to_str().unwrap()])
        .assert()
        .success();
    let v: serde_json::Value = serde_json::from_str(&stdout_of(&out)).unwrap();
    assert_eq!(v["files"][0]["kind"], "sqlite");
    assert_eq!(v["files"][0]["status"], "scrubbed", "{v}");
    assert!(v["replaced"].as_u64().unwrap() >= 4, "{v}");
    assert!(!stdout_of(&out).contains(&key) && !stderr_of(&out).contains(&key));
    let backup = std::path::PathBuf::from(v["files"][0]["backup"].as_str().unwrap());
    assert_eq!(mode_of(&backup), 0o600);

    let conn = rusqlite::Connection::open(&db).unwrap();
    let texts: Vec<String> = conn
        .prepare(
            "SELECT coalesce(content, '') || coalesce(tool_calls, '') FROM messages ORDER BY id",
        )
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert!(texts.iter().all(|t| !t.contains(&key)), "{texts:?}");
    assert!(texts[0].contains("<redacted:vault.named-key>"));
    assert!(texts[2].starts_with("\0json:["), "the NUL prefix is kept");
    serde_json::from_str::<serde_json::Value>(&texts[2]["\0json:".len()..]).unwrap();
    let calls: serde_json::Value = serde_json::from_str(&texts[1]).unwrap();
    serde_json::from_str::<serde_json::Value>(calls[0]["function"]["arguments"].as_str().unwrap())
        .unwrap();
    let note: String = conn
        .query_row("SELECT v FROM notes WHERE k = 'n'", [], |r| r.get(0))
        .unwrap();
    assert!(!note.contains(&key));
    // the FTS copy is clean and no longer finds the key's body
    let fts: Vec<String> = conn
        .prepare("SELECT content FROM messages_fts")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert!(fts.iter().all(|t| !t.contains(&key)), "{fts:?}");
    let body = &key["avk_".len()..];
    let hits: i64 = conn
        .query_row(
            "SELECT count(*) FROM messages_fts WHERE messages_fts MATCH ?1",
            [format!("\"{body}\"")],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(hits, 0);
    drop(conn);
    // no file of the store holds the key any more
    for f in ["state.db", "state.db-wal"] {
        let p = env.dir.path().join(f);
        if p.exists() {
            assert!(
                !contains(&std::fs::read(&p).unwrap(), key.as_bytes()),
                "{f}"
            );
        }
    }
    // the backup still has it; a rerun is a no-op
    let conn = rusqlite::Connection::open(&backup).unwrap();
    let n: i64 = conn
        .query_row(
            "SELECT count(*) FROM messages WHERE instr(content, ?1) > 0",
            [&key],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(n, 2);
    drop(conn);
    age(&db);
    let before = std::fs::read(&db).unwrap();
    let out = env
        .vault(&["scrub", "--json", db.to_str().unwrap()])
        .assert()
        .success();
    let v: serde_json::Value = serde_json::from_str(&stdout_of(&out)).unwrap();
    assert_eq!(
        (v["files"][0]["status"].as_str(), v["replaced"].as_u64()),
        (Some("clean"), Some(0))
    );
    assert_eq!(std::fs::read(&db).unwrap(), before);
}

#[test]
fn scrub_refuses_a_store_being_written_unless_forced() {
    let (env, key) = leaky_vault();
    let db = env.dir.path().join("openclaw-agent.sqlite");
    hermes_like_store(&db, &key);
    env.vault(&["scrub", db.to_str().unwrap()]).assert().code(1);
    let conn = rusqlite::Connection::open(&db).unwrap();
    let n: i64 = conn
        .query_row(
            "SELECT count(*) FROM messages WHERE instr(content, ?1) > 0",
            [&key],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(n, 2, "refused means untouched");
    drop(conn);
    env.vault(&["scrub", "--force", db.to_str().unwrap()])
        .assert()
        .success();
}

/// Regression (found by tests/real-packages.sh on a state.db Hermes wrote): a
/// key pasted once sits in a store several times (the row, its FTS copies),
/// and `vault scan --rotate` acted once per copy: one rotation, then "already
/// revoked" for each other copy (and a notification each); a stored secret
/// found twice got two actions. One leaked credential is one action.
#[test]
fn scan_rotate_acts_once_per_credential_however_many_copies_it_finds() {
    let (env, key) = leaky_vault();
    let db = env.dir.path().join("state.db");
    hermes_like_store(&db, &key);
    let log = env.dir.path().join("session.jsonl");
    std::fs::write(
        &log,
        "{\"content\":\"hook FAKE-stored-value-9f3b2a7c1d-DEMO\"}\n\
         {\"content\":\"again FAKE-stored-value-9f3b2a7c1d-DEMO\"}\n",
    )
    .unwrap();
    let out = env
        .vault(&[
            "scan",
            "--format",
            "json",
            "--rotate",
            db.to_str().unwrap(),
            log.to_str().unwrap(),
        ])
        .assert()
        .code(1);
    let report = json_of(&out);
    let key_findings = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["rule"] == "vault.named-key")
        .count();
    assert!(key_findings >= 4, "the key is found in each copy: {report}");
    let err = stderr_of(&out);
    assert_eq!(
        err.matches("rotated key hermes-marketing-key").count(),
        1,
        "{err}"
    );
    assert!(!err.contains("already revoked"), "{err}");
    let secret_actions = err
        .lines()
        .filter(|l| l.contains("stored secret") || l.contains("approval"))
        .count();
    assert_eq!(secret_actions, 1, "{err}");
    assert!(!err.contains(&key) && !stdout_of(&out).contains(&key));
}

/// `vault ARGS` with HOME and the runtimes' variables under the test's control.
fn vault_at_home(env: &Env, home: &std::path::Path, args: &[&str]) -> assert_cmd::Command {
    let mut cmd = env.vault(args);
    cmd.env("HOME", home)
        .env_remove("HERMES_HOME")
        .env_remove("OPENCLAW_STATE_DIR")
        .env_remove("OPENCLAW_HOME")
        .env_remove("OPENCLAW_PROFILE")
        .env_remove("OPENCLAW_CONFIG_PATH");
    cmd
}

fn target_json(out: &assert_cmd::assert::Assert) -> (String, String) {
    let v: serde_json::Value = serde_json::from_str(&stdout_of(out)).unwrap();
    (
        v["path"].as_str().unwrap().to_owned(),
        v["var"].as_str().unwrap().to_owned(),
    )
}

#[test]
fn target_add_finds_hermes_profile_env_files_as_hermes_does() {
    let env = Env::new();
    env.vault(&["agent", "add", "hermes-marketing"])
        .assert()
        .success();
    let home = env.dir.path().join("home");
    let profile = home.join(".hermes/profiles/marketing");
    std::fs::create_dir_all(&profile).unwrap();
    let out = vault_at_home(
        &env,
        &home,
        &[
            "target",
            "add",
            "--json",
            "--agent",
            "hermes-marketing",
            "--hermes-profile",
            "Marketing",
        ],
    )
    .assert()
    .success();
    let canon = std::fs::canonicalize(&profile).unwrap();
    assert_eq!(
        target_json(&out),
        (
            canon.join(".env").display().to_string(),
            "VAULT_AGENT_KEY".into()
        )
    );
    // the default profile is the root
    let out = vault_at_home(
        &env,
        &home,
        &[
            "target",
            "add",
            "--json",
            "--agent",
            "hermes-marketing",
            "--hermes-profile",
            "default",
        ],
    )
    .assert()
    .success();
    let root = std::fs::canonicalize(home.join(".hermes")).unwrap();
    assert_eq!(target_json(&out).0, root.join(".env").display().to_string());
    // a Docker-style HERMES_HOME outside ~/.hermes is the root; a profile path
    // under it means its root
    let data = env.dir.path().join("opt-data");
    std::fs::create_dir_all(data.join("profiles/marketing")).unwrap();
    for hermes_home in [data.clone(), data.join("profiles/marketing")] {
        let mut cmd = vault_at_home(
            &env,
            &home,
            &[
                "target",
                "add",
                "--json",
                "--agent",
                "hermes-marketing",
                "--hermes-profile",
                "marketing",
            ],
        );
        cmd.env("HERMES_HOME", &hermes_home);
        let out = cmd.assert();
        let want = std::fs::canonicalize(data.join("profiles/marketing"))
            .unwrap()
            .join(".env");
        if hermes_home == data {
            assert_eq!(target_json(&out.success()).0, want.display().to_string());
        } else {
            // the same file again: already registered
            out.code(1);
        }
    }
    // a profile Hermes never created, and a name Hermes would refuse
    vault_at_home(
        &env,
        &home,
        &[
            "target",
            "add",
            "--agent",
            "hermes-marketing",
            "--hermes-profile",
            "finance",
        ],
    )
    .assert()
    .code(2);
    vault_at_home(
        &env,
        &home,
        &[
            "target",
            "add",
            "--agent",
            "hermes-marketing",
            "--hermes-profile",
            "../x",
        ],
    )
    .assert()
    .code(2);
    // a rotation writes the new key where that profile's Hermes reads it
    stdout_of(
        &env.vault(&["issue", "hermes-marketing-key"])
            .assert()
            .success(),
    );
    env.vault(&["rotate", "hermes-marketing-key"])
        .assert()
        .success();
    let dotenv = std::fs::read_to_string(profile.join(".env")).unwrap();
    assert!(dotenv.starts_with("VAULT_AGENT_KEY=avk_"), "{dotenv}");
}

#[test]
fn target_add_finds_the_openclaw_gateway_env_file_with_a_variable_per_agent() {
    let env = Env::new();
    env.vault(&["agent", "add", "openclaw-ops"])
        .assert()
        .success();
    let home = env.dir.path().join("home");
    std::fs::create_dir_all(home.join(".openclaw/agents/ops/agent")).unwrap();
    let out = vault_at_home(
        &env,
        &home,
        &[
            "target",
            "add",
            "--json",
            "--agent",
            "openclaw-ops",
            "--openclaw-agent",
            "Ops",
        ],
    )
    .assert()
    .success();
    let state = std::fs::canonicalize(home.join(".openclaw")).unwrap();
    assert_eq!(
        target_json(&out),
        (
            state.join(".env").display().to_string(),
            "VAULT_AGENT_KEY_OPS".into()
        )
    );
    // OPENCLAW_HOME replaces HOME; OPENCLAW_STATE_DIR wins over both
    let other = env.dir.path().join("oc-home");
    std::fs::create_dir_all(other.join(".openclaw")).unwrap();
    let mut cmd = vault_at_home(
        &env,
        &home,
        &[
            "target",
            "add",
            "--json",
            "--agent",
            "openclaw-ops",
            "--openclaw-agent",
            "ops",
        ],
    );
    cmd.env("OPENCLAW_HOME", &other);
    let out = cmd.assert().success();
    let want = std::fs::canonicalize(other.join(".openclaw"))
        .unwrap()
        .join(".env");
    assert_eq!(target_json(&out).0, want.display().to_string());
    let custom = env.dir.path().join("state");
    std::fs::create_dir_all(&custom).unwrap();
    let mut cmd = vault_at_home(
        &env,
        &home,
        &[
            "target",
            "add",
            "--json",
            "--agent",
            "openclaw-ops",
            "--openclaw-agent",
            "ops",
            "--var",
            "OPS_KEY",
        ],
    );
    cmd.env("OPENCLAW_HOME", &other)
        .env("OPENCLAW_STATE_DIR", &custom);
    let out = cmd.assert().success();
    let want = std::fs::canonicalize(&custom).unwrap().join(".env");
    assert_eq!(
        target_json(&out),
        (want.display().to_string(), "OPS_KEY".into())
    );
    vault_at_home(
        &env,
        &home,
        &[
            "target",
            "add",
            "--agent",
            "openclaw-ops",
            "--openclaw-agent",
            "a/b",
        ],
    )
    .assert()
    .code(2);
}

#[test]
fn integrate_hermes_installs_the_plugin_and_writes_no_secret() {
    let (env, key) = leaky_vault();
    let home = env.dir.path().join("home");
    let profile = home.join(".hermes/profiles/marketing");
    std::fs::create_dir_all(&profile).unwrap();
    let config = "# written by hermes\nmodel:\n  default: some-model\nplugins:\n  enabled:\n  \
                  - disk-cleanup\nsecrets:\n  bitwarden:\n    enabled: false\n";
    std::fs::write(profile.join("config.yaml"), config).unwrap();
    let dotenv = format!("OPENAI_API_KEY=x\nVAULT_AGENT_KEY={key}\n");
    std::fs::write(profile.join(".env"), &dotenv).unwrap();
    let run = || {
        vault_at_home(
            &env,
            &home,
            &[
                "integrate",
                "hermes",
                "--json",
                "--profile",
                "marketing",
                "--addr",
                "http://127.0.0.1:8200",
            ],
        )
        .assert()
        .success()
    };
    let out = run();
    let v: serde_json::Value = serde_json::from_str(&stdout_of(&out)).unwrap();
    assert_eq!(v["changed_config"], true);
    assert_eq!(v["key_in_env_file"], true);
    let plugin = profile.join("plugins/vault");
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../integrations/hermes");
    for f in ["plugin.yaml", "__init__.py"] {
        assert_eq!(
            std::fs::read(plugin.join(f)).unwrap(),
            std::fs::read(repo.join(f)).unwrap(),
            "{f}"
        );
    }
    let written = std::fs::read_to_string(profile.join("config.yaml")).unwrap();
    assert!(written.starts_with("# written by hermes\nmodel:\n  default: some-model\n"));
    assert!(
        written.contains("  enabled:\n  - disk-cleanup\n  - vault\n"),
        "{written}"
    );
    assert!(
        written.contains("  vault:\n    enabled: true\n"),
        "{written}"
    );
    assert!(written.contains("    agent_key_env: VAULT_AGENT_KEY\n"));
    assert!(written.contains("    addr: \"http://127.0.0.1:8200\"\n"));
    // no secret in config.yaml; .env untouched
    assert!(!written.contains(&key));
    assert!(!written.contains("avk_"));
    assert_eq!(
        std::fs::read_to_string(profile.join(".env")).unwrap(),
        dotenv
    );
    assert!(!stdout_of(&out).contains(&key) && !stderr_of(&out).contains(&key));
    // twice is once
    let out = run();
    let v: serde_json::Value = serde_json::from_str(&stdout_of(&out)).unwrap();
    assert_eq!(v["changed_config"], false);
    assert_eq!(
        std::fs::read_to_string(profile.join("config.yaml")).unwrap(),
        written
    );
    // a config it cannot edit safely is refused with the lines to add
    std::fs::write(profile.join("config.yaml"), "plugins: {enabled: [a]}\n").unwrap();
    let out = vault_at_home(
        &env,
        &home,
        &["integrate", "hermes", "--profile", "marketing"],
    )
    .assert()
    .code(1);
    assert!(stderr_of(&out).contains("add these lines by hand"));
    assert_eq!(
        std::fs::read_to_string(profile.join("config.yaml")).unwrap(),
        "plugins: {enabled: [a]}\n"
    );
}

#[test]
fn integrate_claude_code_adds_hooks_that_block_a_secret_with_exit_2() {
    let (env, key) = leaky_vault();
    let settings = env.dir.path().join("claude/settings.json");
    std::fs::create_dir_all(settings.parent().unwrap()).unwrap();
    std::fs::write(&settings, r#"{"model": "opus", "hooks": {}}"#).unwrap();
    let out = env
        .vault(&[
            "integrate",
            "claude-code",
            "--json",
            "--settings",
            settings.to_str().unwrap(),
        ])
        .assert()
        .success();
    let v: serde_json::Value = serde_json::from_str(&stdout_of(&out)).unwrap();
    assert_eq!(v["added"], 2);
    let s = installed_hooks(
        &settings,
        ("UserPromptSubmit", "PreToolUse", "*"),
        "claude-code",
    );
    assert_eq!(s["model"], "opus");
    // again: nothing added
    let out = env
        .vault(&[
            "integrate",
            "claude-code",
            "--json",
            "--settings",
            settings.to_str().unwrap(),
        ])
        .assert()
        .success();
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&stdout_of(&out)).unwrap()["added"],
        0
    );

    // the hook itself, fed what Claude Code sends: a prompt with the key is
    // blocked with exit 2 and a redacted reason; a clean one passes silently
    let payload = serde_json::json!({"session_id": "s", "hook_event_name": "UserPromptSubmit",
        "prompt": format!("use this key {key} please")});
    let out = env
        .vault(&["scan", "--stdin", "--hook", "claude-code"])
        .write_stdin(payload.to_string())
        .assert()
        .code(2);
    assert_eq!(stdout_of(&out), "");
    let reason = stderr_of(&out);
    assert!(
        reason.contains("blocked") && reason.contains("vault.named-key"),
        "{reason}"
    );
    assert!(reason.contains("hermes-marketing"), "{reason}");
    assert!(!reason.contains(&key), "{reason}");
    let tool = serde_json::json!({"hook_event_name": "PreToolUse", "tool_name": "Bash",
        "tool_input": {"command": "curl -H 'Authorization: token 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' x"}});
    env.vault(&["scan", "--stdin", "--hook", "claude-code"])
        .write_stdin(tool.to_string())
        .assert()
        .code(2);
    let clean = serde_json::json!({"hook_event_name": "UserPromptSubmit", "prompt": "hello"});
    let out = env
        .vault(&["scan", "--stdin", "--hook", "claude-code"])
        .write_stdin(clean.to_string())
        .assert()
        .success();
    assert_eq!(stdout_of(&out), "");
}

/// Issue 9 regression: a key issued while the server runs (`vault issue`
/// from another process, as `vault integrate` users do) minted a token the
/// server's in-memory check did not know yet, so the first `vault env` or
/// `vault resolve` failed with `key_revoked` for up to a second.
#[test]
fn a_key_issued_while_the_server_runs_works_at_once() {
    let (env, _, _) = two_agents();
    let s = start(&env);
    for n in 0..3 {
        let key = stdout_of(
            &env.vault(&[
                "issue",
                &format!("late-key-{n}"),
                "--agent",
                "hermes-marketing",
            ])
            .assert()
            .success(),
        )
        .trim()
        .to_owned();
        let out = resolve(&env, Some(&s.base), Some(&key), request(&["GITHUB_TOKEN"])).success();
        assert_eq!(json_of(&out)["values"]["GITHUB_TOKEN"], MARKETING_SECRET);
    }
}

#[test]
fn integrate_gemini_adds_hooks_that_block_a_secret_and_answer_json_otherwise() {
    let (env, key) = leaky_vault();
    let project = env.dir.path().join("repo");
    std::fs::create_dir_all(project.join(".gemini")).unwrap();
    let settings = project.join(".gemini/settings.json");
    std::fs::write(&settings, r#"{"theme": "Default"}"#).unwrap();
    let out = env
        .vault(&[
            "integrate",
            "gemini",
            "--json",
            "--project",
            project.to_str().unwrap(),
        ])
        .assert()
        .success();
    let v: serde_json::Value = serde_json::from_str(&stdout_of(&out)).unwrap();
    assert_eq!(v["added"], 2);
    let s = installed_hooks(&settings, ("BeforeAgent", "BeforeTool", ".*"), "gemini");
    assert_eq!(s["theme"], "Default");
    assert!(!std::fs::read_to_string(&settings).unwrap().contains(&key));

    // what Gemini CLI sends: a prompt holding the key is blocked with exit 2
    // and a redacted reason on stderr; a clean one answers `{}` on stdout
    let payload = serde_json::json!({"hook_event_name": "BeforeAgent",
        "prompt": format!("deploy with {key}")});
    let out = env
        .vault(&["scan", "--stdin", "--hook", "gemini"])
        .write_stdin(payload.to_string())
        .assert()
        .code(2);
    let reason = stderr_of(&out);
    assert!(
        reason.contains("blocked") && reason.contains("hermes-marketing"),
        "{reason}"
    );
    assert!(!reason.contains(&key) && !stdout_of(&out).contains(&key));
    let clean = serde_json::json!({"hook_event_name": "BeforeTool", "tool_name": "run_shell_command",
        "tool_input": {"command": "ls"}});
    let out = env
        .vault(&["scan", "--stdin", "--hook", "gemini"])
        .write_stdin(clean.to_string())
        .assert()
        .success();
    assert_eq!(stdout_of(&out).trim(), "{}");
}

/// Reads a hooked CLI's settings file and checks that its prompt event and
/// its tool event (with `matcher`) both run `vault scan --stdin --hook MODE`;
/// returns the whole settings document for further checks.
fn installed_hooks(
    settings: &std::path::Path,
    (prompt_event, tool_event, matcher): (&str, &str, &str),
    mode: &str,
) -> serde_json::Value {
    let s: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(settings).unwrap()).unwrap();
    let command = s["hooks"][prompt_event][0]["hooks"][0]["command"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        command.ends_with(&format!(" scan --stdin --hook {mode}")),
        "{command}"
    );
    assert_eq!(s["hooks"][tool_event][0]["matcher"], matcher);
    assert_eq!(s["hooks"][tool_event][0]["hooks"][0]["command"], command);
    s
}
