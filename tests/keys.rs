//! Issue 3: named keys, tokens, policies, `run` and `env`.

use std::os::unix::fs::PermissionsExt;

use crate::common::*;

/// A vault with agents hermes-marketing (2 secrets) and hermes-finance (1).
fn setup() -> Env {
    let env = Env::new();
    env.vault(&["agent", "add", "hermes-marketing"])
        .assert()
        .success();
    env.vault(&["agent", "add", "hermes-finance"])
        .assert()
        .success();
    env.set("hermes-marketing/GITHUB_TOKEN", "ghp_marketing_value_1234");
    env.set("hermes-marketing/OPENAI_API_KEY", "sk-marketing-value-5678");
    env.set("hermes-finance/STRIPE_KEY", "sk_live_finance_value_9999");
    env
}

fn issue(env: &Env, name: &str) -> String {
    let out = env.vault(&["issue", name]).assert().success();
    let key = stdout_of(&out).trim().to_owned();
    assert!(key.starts_with("avk_") && key.len() == 42, "{key}");
    key
}

fn json(out: &assert_cmd::assert::Assert) -> serde_json::Value {
    serde_json::from_str(&stdout_of(out)).unwrap_or_else(|e| panic!("{e}: {}", stdout_of(out)))
}

fn token(env: &Env, key: &str, extra: &[&str]) -> assert_cmd::assert::Assert {
    let mut args = vec!["token", "--json"];
    args.extend(extra);
    env.vault(&args).env("VAULT_AGENT_KEY", key).assert()
}

fn verify(env: &Env, token: &str) -> assert_cmd::assert::Assert {
    env.vault(&["--json", "token", "verify"])
        .write_stdin(token)
        .assert()
}

fn error_code(out: &assert_cmd::assert::Assert) -> String {
    json(out)["error"]["code"].as_str().unwrap().to_owned()
}

#[test]
fn issue_shows_the_key_once_and_stores_only_its_hash() {
    let env = setup();
    let key = issue(&env, "hermes-marketing-key");
    let out = env.vault(&["keys", "ls", "--json"]).assert().success();
    let v = json(&out);
    assert_eq!(v["keys"][0]["name"], "hermes-marketing-key");
    assert_eq!(v["keys"][0]["agent"], "hermes-marketing");
    assert_eq!(v["keys"][0]["status"], "active");
    assert!(!stdout_of(&out).contains(&key));
    assert!(!contains(&env.all_bytes(), key.as_bytes()));
    let out = env
        .vault(&[
            "issue",
            "finance-bot",
            "--agent",
            "hermes-finance",
            "--json",
        ])
        .assert()
        .success();
    let v = json(&out);
    for field in ["name", "agent", "key_id", "key"] {
        assert!(v[field].is_string(), "{field}");
    }
    assert_eq!(v["agent"], "hermes-finance");
}

#[test]
fn issue_names_and_reissue_rules() {
    let env = setup();
    let out = env.vault(&["issue", "marketing"]).assert().code(2);
    assert!(stderr_of(&out).contains("--agent"));
    env.vault(&["issue", "nobody-key"]).assert().code(4);
    env.vault(&["issue", "Bad_Key", "--agent", "hermes-finance"])
        .assert()
        .code(2);
    env.vault(&["issue", "hermes-finance-key", "--ttl", "soon"])
        .assert()
        .code(2);
    let old = issue(&env, "hermes-marketing-key");
    let out = env
        .vault(&["issue", "hermes-marketing-key"])
        .assert()
        .code(1);
    assert!(stderr_of(&out).contains("--rotate"));
    let new = env
        .vault(&["issue", "hermes-marketing-key", "--rotate"])
        .assert()
        .success();
    let new = stdout_of(&new).trim().to_owned();
    assert_ne!(old, new);
    assert_eq!(error_code(&token(&env, &old, &[]).code(3)), "key_revoked");
    token(&env, &new, &[]).success();
}

#[test]
fn write_env_keeps_other_lines_and_reads_back_in_bash_and_python_dotenv() {
    let env = setup();
    let file = env.dir.path().join("agent.env");
    std::fs::write(
        &file,
        "# Hermes profile\nOPENAI_API_KEY=keep-me\nexport VAULT_AGENT_KEY=old\n",
    )
    .unwrap();
    let out = env
        .vault(&[
            "issue",
            "hermes-marketing-key",
            "--write-env",
            file.to_str().unwrap(),
        ])
        .assert()
        .success();
    assert_eq!(stdout_of(&out), "", "the key must not be printed");
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(text.starts_with("# Hermes profile\nOPENAI_API_KEY=keep-me\nVAULT_AGENT_KEY=avk_"));
    assert_eq!(
        std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let key = text
        .lines()
        .nth(2)
        .unwrap()
        .trim_start_matches("VAULT_AGENT_KEY=")
        .to_owned();
    let bash = std::process::Command::new("bash")
        .args([
            "-c",
            "set -a; . \"$1\"; printf %s \"$VAULT_AGENT_KEY\"",
            "_",
        ])
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(String::from_utf8(bash.stdout).unwrap(), key);
    let py = std::process::Command::new(python_with_dotenv())
        .args(["-c", "import sys, dotenv; print(dotenv.dotenv_values(sys.argv[1])['VAULT_AGENT_KEY'], end='')"])
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(String::from_utf8(py.stdout).unwrap(), key);
    // the key in the file works
    token(&env, &key, &[]).success();
}

#[test]
fn write_env_refuses_symlinks_and_directories_and_leaves_no_key() {
    let env = setup();
    let real = env.dir.path().join("real.env");
    std::fs::write(&real, "A=1\n").unwrap();
    let link = env.dir.path().join("link.env");
    std::os::unix::fs::symlink(&real, &link).unwrap();
    for target in [link.to_str().unwrap(), env.dir.path().to_str().unwrap()] {
        let out = env
            .vault(&["issue", "hermes-marketing-key", "--write-env", target])
            .assert()
            .code(1);
        assert!(stderr_of(&out).contains("refusing"), "{}", stderr_of(&out));
    }
    assert_eq!(std::fs::read_to_string(&real).unwrap(), "A=1\n");
    let v = json(&env.vault(&["keys", "ls", "--json"]).assert().success());
    assert_eq!(v["keys"].as_array().unwrap().len(), 0);
}

#[test]
fn tokens_carry_scopes_and_are_capped_by_policy() {
    let env = setup();
    let key = issue(&env, "hermes-marketing-key");
    let v = json(&token(&env, &key, &[]).success());
    let t = v["token"].as_str().unwrap();
    assert!(t.starts_with("avt_"));
    assert_eq!(v["agent"], "hermes-marketing");
    assert_eq!(v["scopes"], serde_json::json!(["env:read", "secrets:read"]));
    let claims = json(&verify(&env, t).success());
    assert_eq!(claims["token_id"], v["token_id"]);
    // default ttl 15 minutes
    let issued = humantime::parse_rfc3339(v["issued_at"].as_str().unwrap()).unwrap();
    let expires = humantime::parse_rfc3339(v["expires_at"].as_str().unwrap()).unwrap();
    assert_eq!(expires.duration_since(issued).unwrap().as_secs(), 900);
    // the default policy caps tokens at one hour
    let v = json(&token(&env, &key, &["--ttl", "5h"]).success());
    let issued = humantime::parse_rfc3339(v["issued_at"].as_str().unwrap()).unwrap();
    let expires = humantime::parse_rfc3339(v["expires_at"].as_str().unwrap()).unwrap();
    assert_eq!(expires.duration_since(issued).unwrap().as_secs(), 3600);
    // scopes beyond the policy
    let out = token(&env, &key, &["--scope", "secret:hermes-finance/STRIPE_KEY"]).code(3);
    assert_eq!(error_code(&out), "out_of_scope");
    token(&env, &key, &["--scope", "admin"]).code(2);
}

#[test]
fn attenuation_narrows_and_never_widens() {
    let env = setup();
    let key = issue(&env, "hermes-marketing-key");
    let parent = json(&token(&env, &key, &["--scope", "secrets:read", "--ttl", "10m"]).success());
    let parent_token = parent["token"].as_str().unwrap();
    let attenuate = |extra: &[&str]| {
        let mut args = vec!["--json", "token", "--from-token"];
        args.extend(extra);
        env.vault(&args).env("VAULT_TOKEN", parent_token).assert()
    };
    let child = json(&attenuate(&["--scope", "secret:GITHUB_TOKEN", "--ttl", "1h"]).success());
    assert_eq!(child["scopes"], serde_json::json!(["secret:GITHUB_TOKEN"]));
    assert_eq!(child["parents"], serde_json::json!([parent["token_id"]]));
    assert!(child["expires_at"].as_str() <= parent["expires_at"].as_str());
    assert_eq!(
        error_code(&attenuate(&["--scope", "env:read"]).code(3)),
        "out_of_scope"
    );
    // revoking the parent revokes the child
    env.vault(&["token", "revoke"])
        .write_stdin(parent_token)
        .assert()
        .success();
    assert_eq!(
        error_code(&verify(&env, parent_token).code(3)),
        "token_revoked"
    );
    assert_eq!(
        error_code(&verify(&env, child["token"].as_str().unwrap()).code(3)),
        "token_revoked"
    );
}

#[test]
fn revocation_by_key_epoch_and_expiry() {
    let env = setup();
    let key = issue(&env, "hermes-marketing-key");
    let t1 = json(&token(&env, &key, &[]).success())["token"]
        .as_str()
        .unwrap()
        .to_owned();
    env.vault(&["keys", "revoke-tokens", "hermes-marketing-key"])
        .assert()
        .success();
    assert_eq!(error_code(&verify(&env, &t1).code(3)), "token_revoked");
    let t2 = json(&token(&env, &key, &[]).success())["token"]
        .as_str()
        .unwrap()
        .to_owned();
    verify(&env, &t2).success();
    let short = json(&token(&env, &key, &["--ttl", "1m"]).success())["token"]
        .as_str()
        .unwrap()
        .to_owned();
    // issue 14, item 6: the clock is moved, not slept through
    let later = env
        .vault(&["--json", "token", "verify"])
        .env("VAULT_CLOCK_SKEW_SECS", "120")
        .write_stdin(short.as_str())
        .assert()
        .code(3);
    assert_eq!(error_code(&later), "token_expired");
    // and the same token, now, still works: the skew alone expired it
    verify(&env, &short).success();
    env.vault(&["keys", "revoke", "hermes-marketing-key"])
        .assert()
        .success();
    assert_eq!(error_code(&verify(&env, &t2).code(3)), "key_revoked");
    assert_eq!(error_code(&token(&env, &key, &[]).code(3)), "key_revoked");
}

#[test]
fn malformed_credentials_get_distinct_codes_before_any_lookup() {
    let env = setup();
    let key = issue(&env, "hermes-marketing-key");
    let mut wrong_sum = key.clone().into_bytes();
    let last = wrong_sum.len() - 1;
    wrong_sum[last] = if wrong_sum[last] == b'A' { b'B' } else { b'A' };
    let wrong_sum = String::from_utf8(wrong_sum).unwrap();
    // A wrong passphrase proves these are rejected before the vault is opened.
    write_private(&env.passfile, "not the passphrase\n");
    // 1 MB does not fit in an environment variable; it comes from --key-file.
    let huge = env.dir.path().join("huge-key");
    std::fs::write(&huge, format!("avk_{}", "a".repeat(1 << 20))).unwrap();
    let out = token(&env, "unused", &["--key-file", huge.to_str().unwrap()]).code(3);
    assert_eq!(error_code(&out), "malformed_key");
    for (bad, code) in [
        (&key[..30], "malformed_key"),
        (&key.replacen("avk_", "avx_", 1)[..], "malformed_key"),
        (&wrong_sum[..], "bad_checksum"),
        ("avk_ÄÖÜäöüßÄÖÜäöüßÄÖÜäöüßÄÖÜäöüß", "malformed_key"),
    ] {
        let out = token(&env, bad, &[]).code(3);
        assert_eq!(error_code(&out), code);
        assert!(!stdout_of(&out).contains(&key[4..]));
    }
    write_private(&env.passfile, &format!("{PASSPHRASE}\n"));
    let t = json(&token(&env, &key, &[]).success())["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut tampered = t.clone().into_bytes();
    tampered[10] = if tampered[10] == b'a' { b'b' } else { b'a' };
    let tampered = String::from_utf8(tampered).unwrap();
    assert_eq!(error_code(&verify(&env, &tampered).code(3)), "bad_checksum");
    assert_eq!(error_code(&verify(&env, &key).code(3)), "malformed_token");
    assert_eq!(error_code(&token(&env, &t, &[]).code(3)), "malformed_key");
    assert_eq!(
        error_code(&verify(&env, &t[..t.len() - 3]).code(3)),
        "bad_checksum"
    );
    env.vault(&["token"])
        .env_remove("VAULT_AGENT_KEY")
        .assert()
        .code(2);
}

#[test]
fn run_gives_the_child_only_its_agents_secrets() {
    let env = setup();
    let out = env
        .vault(&[
            "run",
            "--agent",
            "hermes-marketing",
            "--no-mask",
            "--",
            "env",
        ])
        .assert()
        .success();
    let text = stdout_of(&out);
    assert!(text.contains("GITHUB_TOKEN=ghp_marketing_value_1234"));
    assert!(text.contains("OPENAI_API_KEY=sk-marketing-value-5678"));
    assert!(!text.contains("STRIPE_KEY"));
    assert!(text.contains("PATH="));
    let out = env
        .vault(&[
            "run",
            "--agent",
            "hermes-marketing",
            "--no-inherit",
            "--no-mask",
            "--",
            "/usr/bin/env",
        ])
        .assert()
        .success();
    let mut lines: Vec<_> = stdout_of(&out).lines().map(str::to_owned).collect();
    lines.sort();
    assert_eq!(
        lines,
        [
            "GITHUB_TOKEN=ghp_marketing_value_1234",
            "OPENAI_API_KEY=sk-marketing-value-5678"
        ]
    );
}

#[test]
fn run_masks_values_in_piped_output_and_passes_exit_codes_and_signals() {
    let env = setup();
    let out = env
        .vault(&[
            "run",
            "--agent",
            "hermes-marketing",
            "--",
            "sh",
            "-c",
            "echo token=$GITHUB_TOKEN; echo $OPENAI_API_KEY >&2",
        ])
        .assert()
        .success();
    assert_eq!(stdout_of(&out), "token=<concealed by vault>\n");
    assert_eq!(stderr_of(&out), "<concealed by vault>\n");
    env.vault(&[
        "run",
        "--agent",
        "hermes-marketing",
        "--",
        "sh",
        "-c",
        "exit 7",
    ])
    .assert()
    .code(7);
    env.vault(&[
        "run",
        "--agent",
        "hermes-marketing",
        "--",
        "sh",
        "-c",
        "kill -TERM $$",
    ])
    .assert()
    .code(143);
    env.vault(&[
        "run",
        "--agent",
        "hermes-marketing",
        "--",
        "/no/such/program",
    ])
    .assert()
    // as shells and `op run` answer (issue 19)
    .code(127);
    env.vault(&["run", "--agent", "nobody", "--", "true"])
        .assert()
        .code(4);
}

#[test]
fn run_forwards_sigterm_to_the_child() {
    let env = setup();
    let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("vault"))
        .args([
            "run",
            "--agent",
            "hermes-marketing",
            "--",
            "sh",
            "-c",
            "trap 'echo got-term; exit 42' TERM; echo ready; while :; do sleep 0.05; done",
        ])
        .env("VAULT_HOME", &env.home)
        .env("VAULT_PASSPHRASE_FILE", &env.passfile)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut seen = Vec::new();
    let mut buf = [0u8; 64];
    while !String::from_utf8_lossy(&seen).contains("ready") {
        use std::io::Read;
        let n = stdout.read(&mut buf).unwrap();
        assert!(n > 0, "child ended early");
        seen.extend_from_slice(&buf[..n]);
    }
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::SIGTERM,
    )
    .unwrap();
    let status = child.wait().unwrap();
    let mut rest = String::new();
    use std::io::Read;
    stdout.read_to_string(&mut rest).unwrap();
    assert!(rest.contains("got-term"));
    assert_eq!(status.code(), Some(42));
}

const HARD_VALUE: &str = "sp ace \"dq\" 'sq' $HOME #hash \\back\\slash\nline2 ${NOPE} `tick`";

#[test]
fn env_formats_round_trip_through_their_real_readers() {
    let env = Env::new();
    env.vault(&["agent", "add", "hermes"]).assert().success();
    env.set("hermes/HARD", &format!("{HARD_VALUE}\n"));
    env.set("hermes/NOQUOTE", "a b $HOME \\x # y");
    env.set("hermes/PLAIN", "avk_plain-value.1");
    // shell: eval in bash
    let out = env
        .vault(&["env", "--agent", "hermes", "--format", "shell"])
        .assert()
        .success();
    let script = stdout_of(&out);
    for (name, want) in [
        ("HARD", HARD_VALUE),
        ("NOQUOTE", "a b $HOME \\x # y"),
        ("PLAIN", "avk_plain-value.1"),
    ] {
        let bash = std::process::Command::new("bash")
            .args([
                "-c",
                &format!("eval \"$1\"; printf %s \"${name}\""),
                "_",
                &script,
            ])
            .output()
            .unwrap();
        assert_eq!(String::from_utf8(bash.stdout).unwrap(), want, "{name}");
    }
    // json
    let v = json(
        &env.vault(&["env", "--agent", "hermes", "--format", "json"])
            .assert()
            .success(),
    );
    assert_eq!(v["env"]["HARD"], HARD_VALUE);
    // dotenv: HARD holds a quote, a newline and ${, which python-dotenv would
    // interpolate: refused rather than written wrong.
    let out = env.vault(&["env", "--agent", "hermes"]).assert().code(2);
    assert!(stderr_of(&out).contains("HARD"));
    env.vault(&["rm", "hermes/HARD"]).assert().success();
    env.set("hermes/QUOTES", "it's \"q\" \\ $X #h\nl2");
    let file = env.dir.path().join("out.env");
    env.vault(&[
        "env",
        "--agent",
        "hermes",
        "--write",
        file.to_str().unwrap(),
    ])
    .assert()
    .success();
    assert_eq!(
        std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let py = std::process::Command::new(python_with_dotenv())
        .args([
            "-c",
            "import sys, json, dotenv; print(json.dumps(dotenv.dotenv_values(sys.argv[1])))",
        ])
        .arg(&file)
        .output()
        .unwrap();
    let got: serde_json::Value = serde_json::from_slice(&py.stdout).unwrap();
    assert_eq!(got["QUOTES"], "it's \"q\" \\ $X #h\nl2");
    assert_eq!(got["NOQUOTE"], "a b $HOME \\x # y");
    assert_eq!(got["PLAIN"], "avk_plain-value.1");
}

#[test]
fn policies_grant_and_bad_policies_are_refused() {
    let env = setup();
    let policy = env.dir.path().join("policy.toml");
    std::fs::write(
        &policy,
        "secrets = [\"GITHUB_*\", \"hermes-finance/STRIPE_KEY\"]\nmax_token_ttl = \"30m\"\n",
    )
    .unwrap();
    env.vault(&[
        "agent",
        "set-policy",
        "hermes-marketing",
        "--policy",
        policy.to_str().unwrap(),
    ])
    .assert()
    .success();
    let v = json(
        &env.vault(&["env", "--agent", "hermes-marketing", "--format", "json"])
            .assert()
            .success(),
    );
    assert_eq!(
        v["env"],
        serde_json::json!({"GITHUB_TOKEN": "ghp_marketing_value_1234", "STRIPE_KEY": "sk_live_finance_value_9999"})
    );
    let show = json(
        &env.vault(&["agent", "show", "hermes-marketing", "--json"])
            .assert()
            .success(),
    );
    assert_eq!(show["policy"]["max_token_ttl"], "30m");
    for (text, needle) in [
        ("secrets = [\"*\"]\nbogus = 1\n", "unknown field"),
        ("secrets = [\"a[\"]\n", "secret pattern"),
        ("max_token_ttl = \"2d\"\n", "24h"),
        ("scopes = [\"root\"]\n", "not a scope"),
        ("not toml at all", ""),
    ] {
        std::fs::write(&policy, text).unwrap();
        let out = env
            .vault(&[
                "agent",
                "add",
                "new-agent",
                "--policy",
                policy.to_str().unwrap(),
            ])
            .assert()
            .code(2);
        assert!(
            stderr_of(&out).contains(needle),
            "{text}: {}",
            stderr_of(&out)
        );
    }
    env.vault(&["agent", "show", "new-agent"]).assert().code(4);
}

#[test]
fn run_warns_when_hermes_env_file_shadows_an_injected_variable() {
    let env = setup();
    let hermes_home = env.dir.path().join("hermes");
    std::fs::create_dir(&hermes_home).unwrap();
    std::fs::write(hermes_home.join(".env"), "GITHUB_TOKEN=stale\n").unwrap();
    let out = env
        .vault(&["run", "--agent", "hermes-marketing", "--", "true"])
        .env("HERMES_HOME", &hermes_home)
        .assert()
        .success();
    assert!(
        stderr_of(&out).contains("defines GITHUB_TOKEN"),
        "{}",
        stderr_of(&out)
    );
}

/// Issue 14: one duration grammar. `--ttl 1h30m` on `token` and `issue`, a policy's
/// `max_token_ttl = "1h30m"` and `server --request-timeout 1h30m` are all accepted and mean
/// ninety minutes; a bare number is refused by each with the same advice.
#[test]
fn compound_durations_work_in_every_flag_and_policy() {
    let env = setup();
    let policy = env.dir.path().join("policy.toml");
    std::fs::write(&policy, "max_token_ttl = \"1h30m\"\n").unwrap();
    env.vault(&[
        "agent",
        "set-policy",
        "hermes-marketing",
        "--policy",
        policy.to_str().unwrap(),
    ])
    .assert()
    .success();
    let out = env
        .vault(&["issue", "hermes-marketing-key", "--ttl", "1d12h", "--json"])
        .assert()
        .success();
    let issued = json(&out);
    let key = issued["key"].as_str().unwrap().to_owned();
    let v = json(&token(&env, &key, &["--ttl", "1h30m"]).success());
    let at = |f: &str| humantime::parse_rfc3339(v[f].as_str().unwrap()).unwrap();
    assert_eq!(
        at("expires_at")
            .duration_since(at("issued_at"))
            .unwrap()
            .as_secs(),
        5400
    );
    // The policy's 1h30m is the cap: a longer request is capped there, not at the default hour.
    let v = json(&token(&env, &key, &["--ttl", "3h"]).success());
    let at = |f: &str| humantime::parse_rfc3339(v[f].as_str().unwrap()).unwrap();
    assert_eq!(
        at("expires_at")
            .duration_since(at("issued_at"))
            .unwrap()
            .as_secs(),
        5400
    );
    for bad in [
        &["token", "--ttl", "90"][..],
        &["issue", "x-key", "--ttl", "90"],
    ] {
        let out = env.vault(bad).env("VAULT_AGENT_KEY", &key).assert().code(2);
        assert!(stderr_of(&out).contains("not a duration"), "{bad:?}");
    }
    // The server parses the same grammar: a bad value is a usage error before anything
    // listens; 1h30m parses and is then refused for its range (at most 10m), not its form;
    // a compound value in range gets as far as listening.
    let out = env
        .vault(&[
            "server",
            "--request-timeout",
            "90",
            "--listen",
            "127.0.0.1:0",
        ])
        .assert()
        .code(2);
    assert!(stderr_of(&out).contains("not a duration"));
    let token_file = env.dir.path().join("admin-token");
    let tf = token_file.to_str().unwrap();
    let out = env
        .vault(&[
            "server",
            "--request-timeout",
            "1h30m",
            "--admin-token-file",
            tf,
        ])
        .assert()
        .code(2);
    assert!(stderr_of(&out).contains("between"), "{}", stderr_of(&out));
    let mut server = spawn_vault(
        &env,
        &[
            "server",
            "--listen",
            "127.0.0.1:0",
            "--request-timeout",
            "2m30s",
            "--admin-token-file",
            tf,
        ],
    );
    Lines::of(&mut server).until(&env, "listening on");
    terminate(&server);
    wait_bounded(&env, &mut server);
}
