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
