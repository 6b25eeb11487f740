//! Issue 4: the real `vault server` on 127.0.0.1:0, the HTTP contract, and
//! remote mode of the CLI with no passphrase.

use std::io::BufRead;
use std::process::{Child, Stdio};

use crate::common::*;

const CANARY: &str = "canary-server-5e1f0a77-never-log";

struct Server {
    child: Child,
    base: String,
    admin: String,
    stderr: std::path::PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(env: &Env) -> Server {
    let admin_file = env.dir.path().join("admin-token");
    let stderr = env.dir.path().join("server.stderr");
    let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("vault"))
        .args([
            "server",
            "--listen",
            "127.0.0.1:0",
            "--admin-token-file",
            admin_file.to_str().unwrap(),
        ])
        .env("VAULT_HOME", &env.home)
        .env("VAULT_PASSPHRASE_FILE", &env.passfile)
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&stderr).unwrap())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let base = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("{line:?}"))
        .to_owned();
    let admin = std::fs::read_to_string(&admin_file)
        .unwrap()
        .trim()
        .to_owned();
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&admin_file).unwrap().permissions().mode() & 0o777,
        0o600
    );
    Server {
        child,
        base,
        admin,
        stderr,
    }
}

/// (status, JSON body) of a request.
fn call(
    method: &str,
    url: &str,
    bearer: Option<&str>,
    body: Option<&str>,
) -> (u16, serde_json::Value) {
    let mut req = ureq::request(method, url);
    if let Some(b) = bearer {
        req = req.set("Authorization", &format!("Bearer {b}"));
    }
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

fn setup() -> (Env, String, String) {
    let env = Env::new();
    env.vault(&["agent", "add", "hermes-marketing"])
        .assert()
        .success();
    env.vault(&["agent", "add", "hermes-finance"])
        .assert()
        .success();
    env.set("hermes-marketing/GITHUB_TOKEN", CANARY);
    env.set("hermes-finance/STRIPE_KEY", "finance-only-value");
    let m = stdout_of(
        &env.vault(&["issue", "hermes-marketing-key"])
            .assert()
            .success(),
    )
    .trim()
    .to_owned();
    let f = stdout_of(
        &env.vault(&["issue", "hermes-finance-key"])
            .assert()
            .success(),
    )
    .trim()
    .to_owned();
    (env, m, f)
}

#[test]
fn the_http_contract_for_agents() {
    let (env, key, _) = setup();
    let s = start(&env);
    let (status, v) = call(
        "POST",
        &format!("{}/v1/auth/token", s.base),
        Some(&key),
        Some(r#"{"scopes": ["secrets:read", "env:read"], "ttl_seconds": 300}"#),
    );
    assert_eq!(status, 200, "{v}");
    let token = v["token"].as_str().unwrap().to_owned();
    assert!(v["expires_at"].is_u64());
    let (status, v) = call(
        "GET",
        &format!("{}/v1/secrets/GITHUB_TOKEN", s.base),
        Some(&token),
        None,
    );
    assert_eq!(
        (
            status,
            v["name"].as_str(),
            v["value"].as_str(),
            v["version"].as_i64()
        ),
        (200, Some("GITHUB_TOKEN"), Some(CANARY), Some(1))
    );
    let (status, v) = call("GET", &format!("{}/v1/env", s.base), Some(&token), None);
    assert_eq!(status, 200);
    assert_eq!(v["env"], serde_json::json!({"GITHUB_TOKEN": CANARY}));
    // another agent's secret looks exactly like a missing one
    let (s1, other) = call(
        "GET",
        &format!("{}/v1/secrets/hermes-finance%2FSTRIPE_KEY", s.base),
        Some(&token),
        None,
    );
    let (s2, missing) = call(
        "GET",
        &format!("{}/v1/secrets/NOPE", s.base),
        Some(&token),
        None,
    );
    assert_eq!((s1, s2), (404, 404));
    assert_eq!(other["error"]["code"], missing["error"]["code"]);
    let (status, v) = call(
        "GET",
        &format!("{}/v1/auth/whoami", s.base),
        Some(&token),
        None,
    );
    assert_eq!(
        (status, v["agent"].as_str()),
        (200, Some("hermes-marketing"))
    );
    let (status, _) = call(
        "POST",
        &format!("{}/v1/auth/revoke", s.base),
        Some(&token),
        None,
    );
    assert_eq!(status, 200);
    let (status, v) = call("GET", &format!("{}/v1/env", s.base), Some(&token), None);
    assert_eq!(
        (status, v["error"]["code"].as_str()),
        (401, Some("token_revoked"))
    );
}

#[test]
fn every_error_is_json_with_a_stable_code() {
    let (env, key, _) = setup();
    let s = start(&env);
    let narrow = call(
        "POST",
        &format!("{}/v1/auth/token", s.base),
        Some(&key),
        Some(r#"{"scopes": ["secret:GITHUB_TOKEN"]}"#),
    )
    .1["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let big = format!("{{\"scopes\": [\"{}\"]}}", "x".repeat(70 * 1024));
    type Case<'a> = (
        &'a str,
        String,
        Option<&'a str>,
        Option<&'a str>,
        u16,
        &'a str,
    );
    let cases: Vec<Case> = vec![
        ("GET", "/v1/env".into(), None, None, 401, "unauthorized"),
        (
            "GET",
            "/v1/env".into(),
            Some("avt_garbage"),
            None,
            401,
            "bad_checksum",
        ),
        (
            "GET",
            "/v1/env".into(),
            Some(key.as_str()),
            None,
            401,
            "malformed_token",
        ),
        (
            "GET",
            "/v1/env".into(),
            Some(narrow.as_str()),
            None,
            403,
            "out_of_scope",
        ),
        (
            "POST",
            "/v1/auth/token".into(),
            Some(narrow.as_str()),
            None,
            401,
            "unauthorized",
        ),
        (
            "POST",
            "/v1/auth/token".into(),
            Some("avk_nope"),
            None,
            401,
            "malformed_key",
        ),
        (
            "POST",
            "/v1/auth/token".into(),
            Some(key.as_str()),
            Some("{not json"),
            400,
            "bad_request",
        ),
        (
            "POST",
            "/v1/auth/token".into(),
            Some(key.as_str()),
            Some(r#"{"scopes": ["root"]}"#),
            400,
            "invalid_input",
        ),
        (
            "POST",
            "/v1/auth/token".into(),
            Some(key.as_str()),
            Some(r#"{"bogus": 1}"#),
            400,
            "bad_request",
        ),
        (
            "POST",
            "/v1/auth/token".into(),
            Some(key.as_str()),
            Some(big.as_str()),
            413,
            "body_too_large",
        ),
        (
            "GET",
            "/v1/nothing-here".into(),
            None,
            None,
            404,
            "not_found",
        ),
        (
            "DELETE",
            "/v1/env".into(),
            None,
            None,
            405,
            "method_not_allowed",
        ),
        (
            "POST",
            "/v1/admin/secrets".into(),
            Some("wrong"),
            Some(r#"{"path":"a/B","value":"x"}"#),
            401,
            "bad_admin_token",
        ),
    ];
    for (method, path, bearer, body, want_status, want_code) in cases {
        let (status, v) = call(method, &format!("{}{path}", s.base), bearer, body);
        assert_eq!(
            (status, v["error"]["code"].as_str()),
            (want_status, Some(want_code)),
            "{method} {path}: {v}"
        );
        assert!(v["error"]["message"].is_string());
    }
    // the admin API with the right token
    let (status, v) = call(
        "POST",
        &format!("{}/v1/admin/secrets", s.base),
        Some(&s.admin),
        Some(r#"{"path":"hermes-marketing/NEW","value":"via-admin"}"#),
    );
    assert_eq!((status, v["version"].as_i64()), (200, Some(1)));
    assert_eq!(env.get("hermes-marketing/NEW"), "via-admin");
    let (_, metrics) = call("GET", &format!("{}/metrics", s.base), None, None);
    let text = metrics.as_str().unwrap();
    assert!(
        text.contains("vault_requests_total{route=\"/v1/env\",status=\"401\"}"),
        "{text}"
    );
    assert!(text.contains("vault_denials_total{code=\"out_of_scope\"} 1"));
    drop(s);
}

#[test]
fn remote_mode_needs_no_passphrase() {
    let (env, key, _) = setup();
    let s = start(&env);
    let remote = |args: &[&str]| {
        let mut c = env.vault(args);
        c.env_remove("VAULT_PASSPHRASE_FILE")
            .env("VAULT_ADDR", &s.base)
            .env("VAULT_AGENT_KEY", &key);
        c
    };
    assert_eq!(
        stdout_of(&remote(&["get", "GITHUB_TOKEN"]).assert().success()),
        format!("{CANARY}\n")
    );
    remote(&["get", "hermes-finance/STRIPE_KEY"])
        .assert()
        .code(3);
    let v: serde_json::Value = serde_json::from_str(&stdout_of(
        &remote(&["env", "--format", "json"]).assert().success(),
    ))
    .unwrap();
    assert_eq!(v["env"]["GITHUB_TOKEN"], CANARY);
    let out = remote(&[
        "run",
        "--no-mask",
        "--",
        "sh",
        "-c",
        "echo \"$GITHUB_TOKEN ${STRIPE_KEY:-none}\"",
    ])
    .assert()
    .success();
    assert_eq!(stdout_of(&out), format!("{CANARY} none\n"));
    assert!(stdout_of(&remote(&["token"]).assert().success()).starts_with("avt_"));
    // a key revoked by the CLI while the server runs stops working within a second
    env.vault(&["keys", "revoke", "hermes-marketing-key"])
        .assert()
        .success();
    std::thread::sleep(std::time::Duration::from_millis(1500));
    remote(&["get", "GITHUB_TOKEN"]).assert().code(3);
}

#[test]
fn many_concurrent_clients_get_no_errors_and_logs_hold_no_secret() {
    let (env, mkey, fkey) = setup();
    let s = start(&env);
    let base = s.base.clone();
    let threads: Vec<_> = (0..32)
        .map(|i| {
            let (base, key) = (
                base.clone(),
                if i % 2 == 0 {
                    mkey.clone()
                } else {
                    fkey.clone()
                },
            );
            std::thread::spawn(move || {
                let mut errors = 0;
                let (_, v) = call("POST", &format!("{base}/v1/auth/token"), Some(&key), None);
                let token = v["token"].as_str().unwrap_or_default().to_owned();
                for j in 0..30 {
                    let (status, _) = match j % 3 {
                        0 => call("GET", &format!("{base}/v1/env"), Some(&token), None),
                        1 => call("POST", &format!("{base}/v1/auth/token"), Some(&key), None),
                        _ => call("GET", &format!("{base}/v1/auth/whoami"), Some(&token), None),
                    };
                    if status != 200 {
                        errors += 1;
                    }
                }
                errors
            })
        })
        .collect();
    let errors: i32 = threads.into_iter().map(|t| t.join().unwrap()).sum();
    assert_eq!(errors, 0);
    let (_, v) = call("GET", &format!("{base}/v1/health"), None, None);
    assert_eq!(v["status"], "ok");
    // graceful stop on SIGTERM
    terminate(&s.child);
    let mut s = s;
    let status = s.child.wait().unwrap();
    assert_eq!(status.code(), Some(0));
    let log = std::fs::read(&s.stderr).unwrap();
    assert!(!contains(&log, CANARY.as_bytes()));
    assert!(!contains(&log, mkey.as_bytes()));
    assert!(
        String::from_utf8_lossy(&log).contains("request"),
        "requests are logged"
    );
}

#[test]
fn post_scan_checks_a_message_and_can_rotate_a_leaked_key() {
    let (env, key, fkey) = setup();
    let s = start(&env);
    let token = call(
        "POST",
        &format!("{}/v1/auth/token", s.base),
        Some(&fkey),
        None,
    )
    .1["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let body =
        serde_json::json!({"text": format!("about to log: {key}"), "rotate": true}).to_string();
    let (status, v) = call(
        "POST",
        &format!("{}/v1/scan", s.base),
        Some(&token),
        Some(&body),
    );
    assert_eq!(status, 200, "{v}");
    assert!(v["findings"][0]["managed"]["label"]
        .as_str()
        .unwrap()
        .contains("hermes-marketing-key"));
    assert!(v["actions"][0]
        .as_str()
        .unwrap()
        .starts_with("rotated key hermes-marketing-key"));
    assert!(!v.to_string().contains(&key[4..]));
    let (status, v) = call(
        "POST",
        &format!("{}/v1/auth/token", s.base),
        Some(&key),
        None,
    );
    assert_eq!(
        (status, v["error"]["code"].as_str()),
        (401, Some("key_revoked"))
    );
    let (status, v) = call(
        "POST",
        &format!("{}/v1/scan", s.base),
        None,
        Some(r#"{"text":"x"}"#),
    );
    assert_eq!(
        (status, v["error"]["code"].as_str()),
        (401, Some("unauthorized"))
    );
    let (status, v) = call(
        "POST",
        &format!("{}/v1/scan", s.base),
        Some(&token),
        Some(r#"{"text":"nothing here"}"#),
    );
    assert_eq!(
        (status, v["findings"].as_array().map(Vec::len)),
        (200, Some(0))
    );
}
