//! Issue 7: the audit trail, usage and doctor through the real binary.

use std::os::unix::fs::PermissionsExt;

use rusqlite::Connection;

use crate::common::*;

fn json(out: &assert_cmd::assert::Assert) -> serde_json::Value {
    serde_json::from_str(&stdout_of(out)).unwrap_or_else(|e| panic!("{e}: {}", stdout_of(out)))
}

#[test]
fn audit_log_and_verify_through_the_cli() {
    sqlite_only!(SqliteOnly::Tamper);
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

/// A profile's `HERMES_HOME` (`ROOT/profiles/NAME`, as Hermes sets it) leads
/// doctor to the root's `.env` and every profile's, as it leads `vault target
/// add --hermes-profile`: one set of runtime paths (vault_guard::runtimes).
// issue 14, "agent-runtime paths used by target add and doctor alike"
#[test]
fn doctor_reads_the_hermes_root_from_a_profiles_hermes_home() {
    let env = Env::new();
    let root = env.dir.path().join("hermes-root");
    let profile = root.join("profiles").join("work");
    std::fs::create_dir_all(&profile).unwrap();
    write_private(
        &root.join(".env"),
        "OTHER_STRIPE=sk_live_4eC39HqLyjWDarjtT1zdp7dc\n",
    );
    let out = env
        .vault(&["doctor", "--json"])
        .env("HERMES_HOME", &profile)
        .assert();
    let findings = json(&out)["findings"].as_array().unwrap().clone();
    let root_env = root.join(".env").display().to_string();
    assert!(
        findings.iter().any(|f| f["check"] == "unmanaged-secret"
            && f["message"].as_str().unwrap().contains(&root_env)),
        "{findings:#?}"
    );
}

/// The checks that reach beyond the vault file: env files agent runtimes
/// read (found under HERMES_HOME without being named), registered git
/// repositories, and where the server last listened.
#[test]
fn doctor_scans_env_files_repos_and_the_servers_address() {
    let env = Env::new();
    env.vault(&["agent", "add", "hermes"]).assert().success();
    env.set("hermes/STRIPE_KEY", "sk_live_9xQ2mN7vR4tK8wL3pZ6yB1cD");
    let key = stdout_of(&env.vault(&["issue", "hermes-key"]).assert().success())
        .trim()
        .to_owned();
    let hermes = env.dir.path().join("hermes-home");
    std::fs::create_dir_all(&hermes).unwrap();
    let dotenv = hermes.join(".env");
    write_private(
        &dotenv,
        &format!(
            "VAULT_AGENT_KEY={key}\nSTRIPE_KEY=sk_live_9xQ2mN7vR4tK8wL3pZ6yB1cD\n\
             OTHER_STRIPE=sk_live_4eC39HqLyjWDarjtT1zdp7dc\n"
        ),
    );
    let checks = |out: &assert_cmd::assert::Assert| -> Vec<String> {
        json(out)["findings"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["check"].as_str().unwrap().to_owned())
            .collect()
    };
    let out = env
        .vault(&["doctor", "--json"])
        .env("HERMES_HOME", &hermes)
        .assert()
        .code(1);
    assert_eq!(
        checks(&out),
        [
            "stored-secret-in-file",
            "unregistered-env-file",
            "unmanaged-secret"
        ]
    );
    let text = stdout_of(&out);
    assert!(!text.contains(&key) && !text.contains("9xQ2mN7vR4tK8wL3pZ6yB1cD"));
    assert!(
        !text.contains("4eC39HqLyjWDarjtT1zdp7dc"),
        "redacted: {text}"
    );
    // registered, the key is where it belongs; the rest stays flagged
    env.vault(&[
        "target",
        "add",
        "--agent",
        "hermes",
        "--env-file",
        dotenv.to_str().unwrap(),
    ])
    .assert()
    .success();
    std::fs::write(&dotenv, "OTHER_STRIPE=sk_live_4eC39HqLyjWDarjtT1zdp7dc\n").unwrap();
    std::fs::set_permissions(&dotenv, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = env
        .vault(&["doctor", "--json"])
        .env("HERMES_HOME", &hermes)
        .assert()
        .code(1);
    // a target others can read is high
    assert_eq!(checks(&out), ["loose-permissions", "unmanaged-secret"]);

    // a repository whose hook was installed, then removed behind vault's back
    let repo = env.dir.path().join("repo");
    std::fs::create_dir_all(&repo).unwrap();
    assert!(std::process::Command::new("git")
        .args(["init", "-q"])
        .current_dir(&repo)
        .status()
        .unwrap()
        .success());
    env.vault(&["hook", "install"])
        .current_dir(&repo)
        .assert()
        .success();
    std::fs::write(&dotenv, "").unwrap();
    std::fs::set_permissions(&dotenv, std::fs::Permissions::from_mode(0o600)).unwrap();
    let out = env
        .vault(&["doctor", "--json"])
        .env("HERMES_HOME", &hermes)
        .assert()
        .success();
    assert_eq!(checks(&out), Vec::<String>::new());
    std::fs::remove_file(repo.join(".git/hooks/pre-commit")).unwrap();
    let out = env.vault(&["doctor", "--json"]).assert().success();
    assert_eq!(checks(&out), ["repo-without-hook"]);
    env.vault(&["hook", "install"])
        .current_dir(&repo)
        .assert()
        .success();

    // a server started beyond loopback without TLS is high until it stops
    let admin = env.dir.path().join("admin");
    let mut server = spawn_vault(
        &env,
        &[
            "server",
            "--listen",
            "0.0.0.0:0",
            "--insecure-listen",
            "--admin-token-file",
            admin.to_str().unwrap(),
        ],
    );
    Lines::of(&mut server).until(&env, "listening on");
    let out = env.vault(&["doctor", "--json"]).assert().code(1);
    assert_eq!(checks(&out), ["server-without-tls"]);
    terminate(&server);
    assert_eq!(wait_bounded(&env, &mut server).code(), Some(0));
    let out = env.vault(&["doctor", "--json"]).assert().success();
    assert_eq!(checks(&out), Vec::<String>::new());
}
