//! Issue 7: the audit trail, usage and doctor through the real binary.

use std::os::unix::fs::PermissionsExt;

use rusqlite::Connection;

use crate::common::*;

fn json(out: &assert_cmd::assert::Assert) -> serde_json::Value {
    serde_json::from_str(&stdout_of(out)).unwrap_or_else(|e| panic!("{e}: {}", stdout_of(out)))
}

#[test]
fn audit_log_and_verify_through_the_cli() {
    let env = Env::new();
    env.vault(&["agent", "add", "hermes"]).assert().success();
    env.set("hermes/A", "canary-audit-value");
    env.get("hermes/A");
    let out = env.vault(&["--json", "audit", "log"]).assert().success();
    let v = json(&out);
    let actions: Vec<&str> = v["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        ["vault.init", "agent.add", "secret.set", "secret.read"]
    );
    assert!(v["records"][3]["origin"]
        .as_str()
        .unwrap()
        .starts_with("cli pid "));
    assert!(!stdout_of(&out).contains("canary-audit-value"));
    let out = env.vault(&["audit", "verify"]).assert().success();
    assert!(stdout_of(&out).contains("intact: 4 record(s)"));

    let conn = Connection::open(env.db()).unwrap();
    conn.execute(
        "UPDATE audit_log SET actor = 'agent:hermes' WHERE seq = 3",
        [],
    )
    .unwrap();
    drop(conn);
    let out = env.vault(&["audit", "verify"]).assert().code(1);
    assert!(
        stderr_of(&out).contains("broken at record 3"),
        "{}",
        stderr_of(&out)
    );
    let v = json(&env.vault(&["--json", "audit", "verify"]).assert().code(1));
    assert_eq!(v["intact"], false);
    assert_eq!(v["first_bad_seq"], 3);
    env.vault(&["audit", "log", "--since", "yesterday"])
        .assert()
        .code(2);
    let v = json(
        &env.vault(&[
            "--json", "audit", "log", "--since", "1h", "--agent", "hermes",
        ])
        .assert()
        .success(),
    );
    assert_eq!(v["records"].as_array().unwrap().len(), 1);
}

#[test]
fn usage_counts_tokens_minted_through_the_cli() {
    let env = Env::new();
    env.vault(&["agent", "add", "hermes"]).assert().success();
    let out = env.vault(&["issue", "hermes-key"]).assert().success();
    let key = stdout_of(&out).trim().to_owned();
    for _ in 0..3 {
        env.vault(&["token"])
            .env("VAULT_AGENT_KEY", &key)
            .assert()
            .success();
    }
    let v = json(&env.vault(&["usage", "--json"]).assert().success());
    assert_eq!(v["keys"][0]["key"], "hermes-key");
    assert_eq!(v["keys"][0]["tokens_minted"], 3);
    assert_eq!(v["keys"][0]["denials"], 0);
    assert!(v["keys"][0]["last_used_at"].is_string());
}

#[test]
fn doctor_is_quiet_on_a_clean_setup_and_flags_each_planted_problem() {
    let env = Env::new();
    env.vault(&["agent", "add", "hermes"]).assert().success();
    env.vault(&["agent", "add", "finance"]).assert().success();
    env.set("finance/STRIPE_KEY", "x-value");
    let v = json(&env.vault(&["doctor", "--json"]).assert().success());
    assert_eq!(v["findings"], serde_json::json!([]));

    let policy = env.dir.path().join("p.toml");
    std::fs::write(
        &policy,
        "secrets = [\"*\", \"finance/*\"]\nmax_token_ttl = \"8h\"\n",
    )
    .unwrap();
    env.vault(&[
        "agent",
        "set-policy",
        "hermes",
        "--policy",
        policy.to_str().unwrap(),
    ])
    .assert()
    .success();
    let loose = env.dir.path().join("agent.env");
    std::fs::write(&loose, "A=1\n").unwrap();
    std::fs::set_permissions(&loose, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = env
        .vault(&["doctor", "--json", "--file", loose.to_str().unwrap()])
        .assert()
        .code(1);
    let v = json(&out);
    let checks: Vec<&str> = v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["check"].as_str().unwrap())
        .collect();
    assert_eq!(
        checks,
        [
            "loose-permissions",
            "long-token-ttl",
            "shared-secret",
            "wildcard-grant"
        ]
    );
    assert_eq!(
        v["findings"][0]["fix"],
        format!("chmod 600 {}", loose.display())
    );
    assert!(!stdout_of(&out).contains("x-value"));
    // the human form names each fix too
    let out = env
        .vault(&["doctor", "--file", loose.to_str().unwrap()])
        .assert()
        .code(1);
    assert_eq!(stdout_of(&out).matches("fix: ").count(), 4);
}
