//! Issue 19, the rest of an operator's day: the shadowed-variable warning for
//! registered env files, the "Misleading" items, and the passphrase tried once
//! when stdin is not a terminal.

use crate::common::*;

#[test]
fn run_warns_when_a_registered_env_file_shadows_an_injected_variable_with_another_value() {
    // issue 19, Missing: the shadowing warning for the agent's registered env files
    let env = Env::new();
    env.vault(&["agent", "add", "hermes"]).assert().success();
    env.set("hermes/GITHUB_TOKEN", "current-value-7c1d2e");
    let stale = env.dir.path().join("stale.env");
    let synced = env.dir.path().join("synced.env");
    std::fs::write(&stale, "GITHUB_TOKEN=old-value-44aa10\n").unwrap();
    std::fs::write(&synced, "GITHUB_TOKEN=current-value-7c1d2e\n").unwrap();
    for f in [&stale, &synced] {
        env.vault(&[
            "target",
            "add",
            "--agent",
            "hermes",
            "--env-file",
            f.to_str().unwrap(),
        ])
        .assert()
        .success();
    }
    let out = env
        .vault(&["run", "--agent", "hermes", "--", "true"])
        .assert()
        .success();
    let err = stderr_of(&out);
    assert!(
        err.contains(&format!("{} defines GITHUB_TOKEN", stale.display())),
        "{err}"
    );
    assert!(
        !err.contains("synced.env"),
        "a file holding the injected value shadows nothing: {err}"
    );
    assert!(!err.contains("value-"), "never a value: {err}");
}

#[test]
fn with_stdin_not_a_terminal_a_wrong_passphrase_is_tried_once_and_is_wrong_passphrase() {
    // issue 19, ops3's leftover: piped stdin, no passphrase file: one try, exit 3
    let env = Env::new();
    env.vault(&["agent", "add", "hermes"]).assert().success();
    let python = std::process::Command::new("python3")
        .arg("-c")
        .arg(PTY_ANSWERS)
        .arg(assert_cmd::cargo::cargo_bin("vault"))
        .args(["--json", "agent", "ls"])
        .env("VAULT_HOME", &env.home)
        .env("PTY_ANSWERS", "wrong one\nwrong two\nwrong three")
        .env("PTY_STDIN_PIPE", "1")
        .env_remove("VAULT_PASSPHRASE_FILE")
        .env_remove("VAULT_ADDR")
        .output();
    let report = match python {
        Ok(out) if out.status.success() => String::from_utf8_lossy(&out.stdout).into_owned(),
        Ok(out) => {
            let why = String::from_utf8_lossy(&out.stderr).into_owned();
            return skip_or_fail_in_ci(&format!("no pseudo-terminal: {why}"));
        }
        Err(e) => return skip_or_fail_in_ci(&format!("python3 is needed to drive a pty: {e}")),
    };
    assert!(report.starts_with("prompts=1 code=3"), "{report}");
    assert!(report.contains("\"wrong_passphrase\""), "{report}");
    assert!(!report.contains("try again"), "{report}");
}

#[test]
fn remote_get_reuses_its_token_so_tokens_per_minute_does_not_cap_reads_in_one_process() {
    // issue 19, Misleading: remote `vault get` minted a token per call
    let env = Env::new();
    env.vault(&["agent", "add", "hermes"]).assert().success();
    env.set("hermes/API_TOKEN", "value-9d3e7a");
    let policy = env.dir.path().join("policy.toml");
    std::fs::write(&policy, "tokens_per_minute = 2\nreads_per_minute = 100\n").unwrap();
    env.vault(&[
        "agent",
        "set-policy",
        "hermes",
        "--policy",
        policy.to_str().unwrap(),
    ])
    .assert()
    .success();
    let out = env
        .vault(&["issue", "hermes-key", "--json"])
        .assert()
        .success();
    let issued: serde_json::Value = serde_json::from_str(&stdout_of(&out)).unwrap();
    let key = vault_core::SecretString::new(issued["key"].as_str().unwrap().to_owned());
    let server = crate::server::start_with(&env, &["--listen", "127.0.0.1:0"]);
    let transport = vault_client::Transport::from_addr(&server.base).unwrap();
    let remote = vault_client::Remote::new(transport, key);
    for read in 0..5 {
        let (value, version) = remote
            .get("API_TOKEN")
            .unwrap_or_else(|e| panic!("read {read}: {e}"));
        assert_eq!((value.expose_secret(), version), ("value-9d3e7a", 1));
    }
    drop(server);
    let out = env
        .vault(&["audit", "log", "--json", "--action", "token.mint"])
        .assert()
        .success();
    let mints: serde_json::Value = serde_json::from_str(&stdout_of(&out)).unwrap();
    assert_eq!(mints["records"].as_array().unwrap().len(), 1, "{mints}");
}

#[test]
fn in_remote_mode_local_only_commands_say_so_and_from_token_attenuates_over_the_server() {
    // issue 19, Misleading: remote-mode wording; `--from-token` and VAULT_TOKEN over the server
    let env = Env::new();
    env.vault(&["agent", "add", "hermes"]).assert().success();
    env.set("hermes/API_TOKEN", "value-31c0de");
    env.set("hermes/OTHER", "other-5aa4e1");
    let out = env
        .vault(&["issue", "hermes-key", "--json"])
        .assert()
        .success();
    let issued: serde_json::Value = serde_json::from_str(&stdout_of(&out)).unwrap();
    let key = issued["key"].as_str().unwrap().to_owned();
    let server = crate::server::start_with(&env, &["--listen", "127.0.0.1:0"]);

    let nowhere = env.dir.path().join("no-vault-here");
    let out = env
        .vault(&["ls"])
        .env("VAULT_HOME", &nowhere)
        // nowhere means no vault at all, not the database (PostgreSQL backend)
        .env_remove("VAULT_DATABASE_URL")
        .env("VAULT_ADDR", &server.base)
        .assert()
        .code(2);
    let err = stderr_of(&out);
    assert!(
        err.contains("remote mode") && !err.contains("vault init"),
        "{err}"
    );

    let remote = |args: &[&str]| {
        let mut cmd = env.vault(args);
        cmd.env("VAULT_ADDR", &server.base)
            .env_remove("VAULT_PASSPHRASE_FILE");
        cmd
    };
    let out = remote(&["token", "--scope", "secrets:read"])
        .env("VAULT_AGENT_KEY", &key)
        .assert()
        .success();
    let parent = stdout_of(&out).trim().to_owned();
    let out = remote(&[
        "--json",
        "token",
        "--from-token",
        "--scope",
        "secret:API_TOKEN",
    ])
    .env("VAULT_TOKEN", &parent)
    .assert()
    .success();
    let child: serde_json::Value = serde_json::from_str(&stdout_of(&out)).unwrap();
    assert_eq!(
        child["scopes"],
        serde_json::json!(["secret:API_TOKEN"]),
        "{child}"
    );
    let child = child["token"].as_str().unwrap().to_owned();
    // wider than its parent: refused
    remote(&["token", "--from-token", "--scope", "env:read"])
        .env("VAULT_TOKEN", &parent)
        .assert()
        .failure();
    let get = |token: &str, name: &str| {
        let url = format!("{}/v1/secrets/{name}", server.base);
        match ureq::get(&url)
            .set("Authorization", &format!("Bearer {token}"))
            .call()
        {
            Ok(r) => r.into_string().unwrap(),
            Err(ureq::Error::Status(code, _)) => code.to_string(),
            Err(e) => panic!("{e}"),
        }
    };
    assert!(get(&child, "API_TOKEN").contains("value-31c0de"));
    assert_eq!(
        get(&child, "OTHER"),
        "403",
        "the child holds only its own scope"
    );
}

#[test]
fn doctor_advises_rotating_and_scrubbing_a_key_in_a_transcript_and_only_deleting_a_revoked_one() {
    // issue 19, Misleading: `doctor --file TRANSCRIPT` advised registering the transcript,
    // and a key already revoked was advised like a live one
    let env = Env::new();
    env.vault(&["agent", "add", "hermes"]).assert().success();
    let live = stdout_of(&env.vault(&["issue", "hermes-key"]).assert().success())
        .trim()
        .to_owned();
    let dead = stdout_of(
        &env.vault(&["issue", "old-key", "--agent", "hermes"])
            .assert()
            .success(),
    )
    .trim()
    .to_owned();
    env.vault(&["keys", "revoke", "old-key"]).assert().success();
    let transcript = env.dir.path().join("session.jsonl");
    write_private(
        &transcript,
        &format!("{{\"role\":\"tool\",\"content\":\"VAULT_AGENT_KEY={live}\"}}\n"),
    );
    let stale = env.dir.path().join("stale.env");
    write_private(&stale, &format!("VAULT_AGENT_KEY={dead}\n"));
    let out = env
        .vault(&[
            "--json",
            "doctor",
            "--file",
            transcript.to_str().unwrap(),
            "--file",
            stale.to_str().unwrap(),
        ])
        .assert();
    let v: serde_json::Value = serde_json::from_str(&stdout_of(&out)).unwrap();
    let of = |file: &std::path::Path| {
        v["findings"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| {
                f["message"]
                    .as_str()
                    .unwrap()
                    .contains(file.to_str().unwrap())
            })
            .cloned()
            .unwrap_or_else(|| panic!("no finding for {}: {v}", file.display()))
    };
    let t = of(&transcript);
    assert_eq!(t["check"], "leaked-key-in-file", "{t}");
    let fix = t["fix"].as_str().unwrap();
    assert!(
        fix.contains("vault rotate hermes-key") && fix.contains("vault scrub"),
        "{t}"
    );
    assert!(!fix.contains("target add"), "{t}");
    let s = of(&stale);
    assert_eq!(s["check"], "dead-key-in-file", "{s}");
    assert!(!s["fix"].as_str().unwrap().contains("target add"), "{s}");
    assert!(!stdout_of(&out).contains(&live), "never the key itself");
}
