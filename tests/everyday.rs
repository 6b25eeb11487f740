//! Issue 19, "Missing": the small everyday commands users of op, Doppler,
//! Infisical and Vault look for first.

use crate::common::*;

fn json_of(out: &assert_cmd::assert::Assert) -> serde_json::Value {
    serde_json::from_str(&stdout_of(out)).unwrap()
}

#[test]
fn audit_log_limit_and_action_narrow_the_listing() {
    // issue 19, Missing: `audit log --limit --action`
    let env = Env::new();
    for a in ["hermes", "openclaw", "codex"] {
        env.vault(&["agent", "add", a]).assert().success();
    }
    let out = env
        .vault(&["audit", "log", "--json", "--action", "agent.add"])
        .assert()
        .success();
    let records = json_of(&out)["records"].as_array().unwrap().clone();
    assert_eq!(records.len(), 3, "{records:?}");
    assert!(records.iter().all(|r| r["action"] == "agent.add"));
    let out = env
        .vault(&[
            "audit",
            "log",
            "--json",
            "--action",
            "agent.add",
            "--limit",
            "1",
        ])
        .assert()
        .success();
    let records = json_of(&out)["records"].as_array().unwrap().clone();
    assert_eq!(records.len(), 1);
    assert_eq!(records[0]["target"], "codex", "the newest one");
    let out = env
        .vault(&["audit", "log", "--action", "agent.added"])
        .assert()
        .code(2);
    assert!(stderr_of(&out).contains("not an audit action"));
}

#[test]
fn approvals_pending_lists_only_open_ones_and_an_empty_listing_says_what_fills_it() {
    // issue 19, Missing: `approvals --pending`, next steps in empty listings
    let env = Env::new();
    let out = env.vault(&["approvals"]).assert().success();
    assert!(stdout_of(&out).is_empty());
    assert!(
        stderr_of(&out).contains("vault approve ID"),
        "{}",
        stderr_of(&out)
    );
    env.vault(&["agent", "add", "hermes"]).assert().success();
    let value = "stored-value-7f3a9c2e5b1d8f4a6c0e";
    env.set("hermes/API_TOKEN", value);
    set_rotation_script(
        &env,
        "hermes/API_TOKEN",
        "cat >/dev/null; echo fresh-value-2\n",
    );
    let leak = env.dir.path().join("chat.log");
    std::fs::write(&leak, format!("the token is {value}\n")).unwrap();
    let _ = env
        .vault(&["scan", "--rotate", leak.to_str().unwrap()])
        .output()
        .unwrap();
    let all = json_of(&env.vault(&["approvals", "--json"]).assert().success());
    let all = all["approvals"].as_array().unwrap().clone();
    assert_eq!(all.len(), 1, "{all:?}");
    let id = all[0]["id"].as_str().unwrap().to_owned();
    let pending = json_of(
        &env.vault(&["approvals", "--pending", "--json"])
            .assert()
            .success(),
    );
    assert_eq!(pending["approvals"].as_array().unwrap().len(), 1);
    env.vault(&["deny", &id]).assert().success();
    let pending = json_of(
        &env.vault(&["approvals", "--pending", "--json"])
            .assert()
            .success(),
    );
    assert!(pending["approvals"].as_array().unwrap().is_empty());
    let all = json_of(&env.vault(&["approvals", "--json"]).assert().success());
    assert_eq!(
        all["approvals"].as_array().unwrap().len(),
        1,
        "past ones stay listed"
    );
}

#[test]
fn real_packages_script_looks_for_vault_under_cargo_target_dir() {
    // issue 19, Missing: tests/real-packages.sh ignored CARGO_TARGET_DIR
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/real-packages.sh");
    let missing = tempfile::tempdir().unwrap();
    let target = missing.path().join("elsewhere");
    let out = assert_cmd::Command::new("bash")
        .arg(&script)
        .env_remove("VAULT_BIN")
        .env("CARGO_TARGET_DIR", &target)
        .timeout(std::time::Duration::from_secs(60))
        .assert()
        .code(2);
    let err = stderr_of(&out);
    assert!(
        err.contains(&format!("{}/debug/vault", target.display())),
        "{err}"
    );
}

#[test]
fn init_and_an_empty_listing_say_what_to_do_next() {
    // issue 19, Missing: next steps after init and in empty listings
    let env = Env::empty();
    let out = env
        .vault(&["init", "--kdf-memory-mib", "64", "--kdf-iterations", "3"])
        .assert()
        .success();
    let err = stderr_of(&out);
    assert!(err.contains("next: `vault agent add NAME`"), "{err}");
    let out = env.vault(&["ls"]).assert().success();
    assert!(
        stdout_of(&out).is_empty(),
        "scripts read stdout: it stays empty"
    );
    insta::assert_snapshot!("empty_ls", stderr_of(&out));
}

#[test]
fn a_mistyped_agent_key_or_secret_name_says_did_you_mean_with_the_same_exit_code() {
    // issue 19, Missing: "did you mean" for agent and key names
    let env = Env::new();
    env.vault(&["agent", "add", "hermes"]).assert().success();
    env.vault(&["agent", "add", "openclaw"]).assert().success();
    env.set("hermes/API_TOKEN", "stored-value-did-you-mean-4c1e");
    env.vault(&["issue", "hermes-key"]).assert().success();
    let out = env.vault(&["ls", "hremes"]).assert().code(4);
    assert!(
        stderr_of(&out).contains(r#"agent not found: hremes (did you mean "hermes"?)"#),
        "{}",
        stderr_of(&out)
    );
    let out = env
        .vault(&["keys", "revoke", "hermes-kye"])
        .assert()
        .code(4);
    assert!(
        stderr_of(&out).contains(r#"did you mean "hermes-key"?"#),
        "{}",
        stderr_of(&out)
    );
    let out = env
        .vault(&["--json", "get", "hremes/API_TOKEN"])
        .assert()
        .code(4);
    let v: serde_json::Value = serde_json::from_str(&stdout_of(&out)).unwrap();
    assert_eq!(v["error"]["code"], "not_found");
    let message = v["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains(r#"did you mean "hermes/API_TOKEN"?"#),
        "{v}"
    );
    // nothing close: no guess
    let out = env.vault(&["ls", "zzzzzz"]).assert().code(4);
    assert!(!stderr_of(&out).contains("did you mean"));
}

#[test]
fn get_version_prints_that_stored_version_audited_and_names_the_kept_ones_when_missing() {
    // issue 19, Missing: `vault get --version N`
    let env = Env::new();
    env.vault(&["agent", "add", "hermes"]).assert().success();
    env.set("hermes/API_TOKEN", "first-value-5e2b9d");
    env.set("hermes/API_TOKEN", "second-value-8a1f3c");
    let reads = |env: &Env| {
        let out = env
            .vault(&["audit", "log", "--json", "--action", "secret.read"])
            .assert()
            .success();
        serde_json::from_str::<serde_json::Value>(&stdout_of(&out)).unwrap()["records"]
            .as_array()
            .unwrap()
            .len()
    };
    let out = env
        .vault(&["get", "hermes/API_TOKEN", "--version", "1"])
        .assert()
        .success();
    assert_eq!(stdout_of(&out), "first-value-5e2b9d\n");
    let out = env
        .vault(&["--json", "get", "hermes/API_TOKEN", "--version", "2"])
        .assert()
        .success();
    let v: serde_json::Value = serde_json::from_str(&stdout_of(&out)).unwrap();
    assert_eq!(v["value"], "second-value-8a1f3c");
    assert_eq!(v["version"], 2);
    assert_eq!(reads(&env), 2, "each versioned read is audited like a get");
    let out = env
        .vault(&["get", "hermes/API_TOKEN", "--version", "7"])
        .assert()
        .code(4);
    let err = stderr_of(&out);
    assert!(
        err.contains("hermes/API_TOKEN version 7") && err.contains("stored versions: 1, 2"),
        "{err}"
    );
    assert!(!err.contains("value-"), "{err}");
    assert_eq!(env.get("hermes/API_TOKEN"), "second-value-8a1f3c");
}
