//! Issue 5 and 6 through the CLI: `vault scan` names vault-managed leaks,
//! `--rotate` acts on them, and the pre-commit hook blocks a real git commit.

use std::process::Command;

use crate::common::*;

fn json(out: &assert_cmd::assert::Assert) -> serde_json::Value {
    serde_json::from_str(&stdout_of(out)).unwrap_or_else(|e| panic!("{e}: {}", stdout_of(out)))
}

fn with_key(env: &Env) -> String {
    env.vault(&["agent", "add", "hermes"]).assert().success();
    let out = env.vault(&["issue", "hermes-key"]).assert().success();
    stdout_of(&out).trim().to_owned()
}

#[test]
fn a_vault_key_in_a_transcript_is_found_and_named_without_the_passphrase() {
    let env = Env::new();
    let key = with_key(&env);
    let transcript = env.dir.path().join("session.jsonl");
    std::fs::write(
        &transcript,
        format!("{{\"role\":\"user\",\"content\":\"hi\"}}\n{{\"role\":\"user\",\"content\":\"my key is {key} ok\"}}\n"),
    )
    .unwrap();
    // no passphrase at all: the scan must not need it
    let out = env
        .vault(&["scan", transcript.to_str().unwrap(), "--format", "json"])
        .env_remove("VAULT_PASSPHRASE_FILE")
        .assert()
        .code(1);
    let v = json(&out);
    let f = &v["findings"][0];
    assert_eq!(f["line"], 2);
    assert!(
        f["managed"]["label"]
            .as_str()
            .unwrap()
            .contains("hermes-key"),
        "{f}"
    );
    assert!(
        !stdout_of(&out).contains(&key[4..]),
        "the finding must be redacted"
    );
    let clean = env.dir.path().join("clean.txt");
    std::fs::write(&clean, "nothing to see here\n").unwrap();
    env.vault(&["scan", clean.to_str().unwrap()])
        .assert()
        .success();
    env.vault(&["scan", "/no/such/file"]).assert().code(2);
    let out = env
        .vault(&["scan", "--stdin", "--format", "json"])
        .write_stdin(format!("paste: {key}\n"))
        .assert()
        .code(1);
    assert_eq!(json(&out)["findings"][0]["line"], 1);
}

#[test]
fn scan_rotate_kills_a_leaked_key_and_its_tokens_and_rewrites_the_target() {
    let env = Env::new();
    env.vault(&["agent", "add", "hermes"]).assert().success();
    let target = env.dir.path().join("hermes.env");
    env.vault(&[
        "issue",
        "hermes-key",
        "--write-env",
        target.to_str().unwrap(),
    ])
    .assert()
    .success();
    // `issue --write-env` registered the file as a target (issue 19)
    let key = std::fs::read_to_string(&target)
        .unwrap()
        .trim()
        .trim_start_matches("VAULT_AGENT_KEY=")
        .to_owned();
    let token = stdout_of(
        &env.vault(&["token"])
            .env("VAULT_AGENT_KEY", &key)
            .assert()
            .success(),
    )
    .trim()
    .to_owned();
    let transcript = env.dir.path().join("chat.jsonl");
    std::fs::write(&transcript, format!("{{\"content\":\"{key}\"}}\n")).unwrap();
    let out = env
        .vault(&["scan", transcript.to_str().unwrap(), "--rotate"])
        .assert()
        .code(1);
    assert!(
        stderr_of(&out).contains("rotated key hermes-key"),
        "{}",
        stderr_of(&out)
    );
    env.vault(&["token"])
        .env("VAULT_AGENT_KEY", &key)
        .assert()
        .code(3);
    env.vault(&["token", "verify"])
        .write_stdin(token)
        .assert()
        .code(3);
    let new = std::fs::read_to_string(&target)
        .unwrap()
        .trim()
        .trim_start_matches("VAULT_AGENT_KEY=")
        .to_owned();
    assert_ne!(new, key);
    env.vault(&["token"])
        .env("VAULT_AGENT_KEY", &new)
        .assert()
        .success();
}

#[test]
fn a_leaked_stored_secret_is_named_and_opens_an_approval() {
    let env = Env::new();
    env.vault(&["agent", "add", "hermes"]).assert().success();
    let value = "custom-db-password-Zq81vL0pXw";
    env.set("hermes/DB_PASSWORD", value);
    set_rotation_script(
        &env,
        "hermes/DB_PASSWORD",
        "cat >/dev/null; echo fresh-db-password-2\n",
    );
    let leak = env.dir.path().join("notes.md");
    std::fs::write(
        &leak,
        format!("line one\nthe password is {value} do not share\n"),
    )
    .unwrap();
    let out = env
        .vault(&[
            "scan",
            leak.to_str().unwrap(),
            "--format",
            "json",
            "--rotate",
        ])
        .assert()
        .code(1);
    let v = json(&out);
    let f = v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| !f["managed"].is_null())
        .unwrap()
        .clone();
    assert_eq!(f["managed"]["label"], "secret hermes/DB_PASSWORD");
    assert_eq!(f["line"], 2);
    assert!(!stdout_of(&out).contains(value));
    assert!(
        stderr_of(&out).contains("opened approval"),
        "{}",
        stderr_of(&out)
    );
    // draft only: nothing rotated until a person approves
    assert_eq!(env.get("hermes/DB_PASSWORD"), value);
    let approvals = json(&env.vault(&["approvals", "--json"]).assert().success());
    let id = approvals["approvals"][0]["id"].as_str().unwrap().to_owned();
    assert!(approvals["approvals"][0]["summary"]
        .as_str()
        .unwrap()
        .contains("notes.md:2"));
    env.vault(&["approve", &id]).assert().success();
    assert_eq!(env.get("hermes/DB_PASSWORD"), "fresh-db-password-2");
}

fn git(dir: &std::path::Path, args: &[&str]) -> std::process::Output {
    Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_AUTHOR_NAME", "t")
        .env("GIT_AUTHOR_EMAIL", "t@example.com")
        .env("GIT_COMMITTER_NAME", "t")
        .env("GIT_COMMITTER_EMAIL", "t@example.com")
        .output()
        .unwrap()
}

#[test]
fn the_pre_commit_hook_blocks_a_staged_secret_but_not_a_working_tree_one() {
    let env = Env::new();
    let key = with_key(&env);
    let repo = env.dir.path().join("repo");
    std::fs::create_dir(&repo).unwrap();
    assert!(git(&repo, &["init", "-q"]).status.success());
    // a hook vault did not write is kept unless asked
    let hooks = repo.join(".git/hooks");
    std::fs::create_dir_all(&hooks).unwrap();
    std::fs::write(hooks.join("pre-commit"), "#!/bin/sh\necho other-hook-ran\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(
        hooks.join("pre-commit"),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    env.vault(&["hook", "install"])
        .current_dir(&repo)
        .assert()
        .code(1);
    env.vault(&["hook", "install", "--chain"])
        .current_dir(&repo)
        .assert()
        .success();

    let vault_env = [
        ("VAULT_HOME", env.home.as_os_str()),
        (
            "VAULT_BIN",
            assert_cmd::cargo::cargo_bin("vault")
                .into_os_string()
                .leak(),
        ),
    ];
    let commit = |msg: &str| {
        let mut c = Command::new("git");
        c.args(["commit", "-q", "-m", msg]).current_dir(&repo);
        for (k, v) in vault_env.iter() {
            c.env(k, v);
        }
        c.env("GIT_AUTHOR_NAME", "t")
            .env("GIT_AUTHOR_EMAIL", "t@e")
            .env("GIT_COMMITTER_NAME", "t")
            .env("GIT_COMMITTER_EMAIL", "t@e");
        c.output().unwrap()
    };
    std::fs::write(repo.join("config.py"), format!("API = \"{key}\"\n")).unwrap();
    git(&repo, &["add", "config.py"]);
    let blocked = commit("add config");
    assert!(!blocked.status.success(), "the commit went through");
    let stderr = String::from_utf8_lossy(&blocked.stderr);
    assert!(
        String::from_utf8_lossy(&blocked.stdout).contains("hermes-key")
            || stderr.contains("hermes-key")
    );
    assert!(stderr.contains("commit is blocked"), "{stderr}");
    // git sends a hook's stdout to its stderr
    assert!(
        stderr.contains("other-hook-ran"),
        "the chained hook did not run: {stderr}"
    );
    // the same secret only in the working tree: the staged content is clean
    std::fs::write(repo.join("config.py"), "API = \"from the vault\"\n").unwrap();
    git(&repo, &["add", "config.py"]);
    std::fs::write(repo.join("config.py"), format!("API = \"{key}\"\n")).unwrap();
    let ok = commit("clean");
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    env.vault(&["hook", "uninstall"])
        .current_dir(&repo)
        .assert()
        .success();
    assert_eq!(
        std::fs::read_to_string(hooks.join("pre-commit")).unwrap(),
        "#!/bin/sh\necho other-hook-ran\n"
    );
}

fn key_in_file(file: &std::path::Path) -> String {
    std::fs::read_to_string(file)
        .unwrap()
        .trim()
        .trim_start_matches("VAULT_AGENT_KEY=")
        .to_owned()
}

#[test]
fn a_key_appended_to_a_watched_transcript_dies_and_is_replaced() {
    let env = Env::new();
    env.vault(&["agent", "add", "hermes"]).assert().success();
    let target = env.dir.path().join("hermes.env");
    env.vault(&[
        "issue",
        "hermes-key",
        "--write-env",
        target.to_str().unwrap(),
    ])
    .assert()
    .success();
    // `issue --write-env` registered the file as a target (issue 19)
    let key = key_in_file(&target);
    let token = stdout_of(
        &env.vault(&["token"])
            .env("VAULT_AGENT_KEY", &key)
            .assert()
            .success(),
    )
    .trim()
    .to_owned();
    let sessions = env.dir.path().join("sessions");
    std::fs::create_dir(&sessions).unwrap();
    let transcript = sessions.join("s1.jsonl");
    std::fs::write(&transcript, "{\"role\":\"user\",\"content\":\"hello\"}\n").unwrap();
    let mut watcher = spawn_vault(
        &env,
        &["watch", sessions.to_str().unwrap(), "--interval-ms", "100"],
    );
    // issue 14, item 6: wait for the watcher's first pass (its saved offsets), not 700 ms
    let state = env.home.join("watch-state.json");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !state.exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "the watcher never finished a pass"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&transcript)
        .unwrap();
    writeln!(
        f,
        "{{\"role\":\"user\",\"content\":\"here is my key {key}\"}}"
    )
    .unwrap();
    drop(f);
    let start = std::time::Instant::now();
    while key_in_file(&target) == key {
        assert!(
            start.elapsed() < std::time::Duration::from_secs(20),
            "no rotation after 20 s"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let new = key_in_file(&target);
    env.vault(&["token"])
        .env("VAULT_AGENT_KEY", &key)
        .assert()
        .code(3);
    env.vault(&["token", "verify"])
        .write_stdin(token)
        .assert()
        .code(3);
    env.vault(&["token"])
        .env("VAULT_AGENT_KEY", &new)
        .assert()
        .success();
    terminate(&watcher);
    assert_eq!(wait_bounded(&env, &mut watcher).code(), Some(0));
}

#[test]
fn watch_resumes_from_its_offsets_and_rereads_a_truncated_file() {
    let env = Env::new();
    let key = with_key(&env);
    let t = env.dir.path().join("t.jsonl");
    std::fs::write(&t, format!("a\nb\n{{\"k\":\"{key}\"}}\n")).unwrap();
    let once = || {
        stdout_of(
            &env.vault(&["watch", t.to_str().unwrap(), "--once"])
                .assert()
                .success(),
        )
    };
    let first = once();
    assert!(first.contains(":3:"), "{first}");
    assert_eq!(once(), "", "nothing new: nothing reported");
    std::fs::OpenOptions::new().append(true).open(&t).unwrap();
    std::fs::write(
        &t,
        format!("a\nb\n{{\"k\":\"{key}\"}}\nc\n{{\"again\":\"{key}\"}}\n"),
    )
    .unwrap();
    let second = once();
    assert!(
        second.contains(":5:") && !second.contains(":3:"),
        "{second}"
    );
    std::fs::write(&t, format!("{{\"k\":\"{key}\"}}\n")).unwrap();
    assert!(
        once().contains(":1:"),
        "a truncated file is read from the start"
    );
}

/// A tree of 40 plain files (3.5 MB) and one leaked fake token.
fn tree_with_one_leak(env: &Env) -> std::path::PathBuf {
    let tree = env.dir.path().join("tree");
    for i in 0..40 {
        let sub = tree.join(format!("d{}", i % 4));
        std::fs::create_dir_all(&sub).unwrap();
        let body = "line of ordinary text with no secret in it\n".repeat(2000);
        std::fs::write(sub.join(format!("f{i}.txt")), body).unwrap();
    }
    std::fs::write(
        tree.join("d0/leak.env"),
        "T=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\n",
    )
    .unwrap();
    tree
}

/// Issue 5: the progress bar is for a person at a terminal. Piped (as here, and in CI or a
/// script), a multi-file scan leaves stderr empty in every output format.
#[test]
fn no_progress_bar_when_stderr_is_not_a_terminal() {
    let env = Env::empty();
    let tree = tree_with_one_leak(&env);
    let dir = tree.to_str().unwrap();
    for args in [
        vec!["scan", dir],
        vec!["scan", dir, "--format", "json"],
        vec!["scan", dir, "--format", "sarif"],
        vec!["--json", "scan", dir],
    ] {
        let out = env.vault(&args).assert().code(1);
        assert_eq!(stderr_of(&out), "", "{args:?}");
        assert!(stdout_of(&out).contains("ghp_FA"), "{args:?}");
    }
}

/// Issue 5: on a terminal (a pseudo-terminal from util-linux `script`) the same scan draws
/// the bar on stderr. Skipped where `script` is not installed, except under `CI=true`.
#[test]
fn progress_bar_on_a_terminal() {
    if Command::new("script").arg("--version").output().is_err() {
        skip_or_fail_in_ci("no `script` (util-linux) to provide a terminal");
        return;
    }
    let env = Env::empty();
    let tree = tree_with_one_leak(&env);
    let vault = assert_cmd::cargo::cargo_bin("vault");
    let log = env.dir.path().join("pty.log");
    let inner = format!(
        "{} scan {} > /dev/null",
        vault.display(),
        tree.to_str().unwrap()
    );
    let out = Command::new("script")
        .args(["-qec", &inner, log.to_str().unwrap()])
        .env("VAULT_HOME", &env.home)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(shown.contains("scanning 41 files"), "{shown}");
}

/// Issue 5: a path listed in `.vaultignore` is not scanned when named on the command line
/// nor when staged; the scan says it skipped it, and a commit of it is not blocked.
#[test]
fn vaultignore_holds_for_named_files_and_staged_paths() {
    let env = Env::empty();
    let repo = env.dir.path().join("repo");
    std::fs::create_dir_all(repo.join("fixtures")).unwrap();
    std::fs::write(repo.join(".vaultignore"), "fixtures/\n").unwrap();
    let leak = "T=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\n";
    std::fs::write(repo.join("fixtures/fake.env"), leak).unwrap();
    let out = env
        .vault(&["scan", "fixtures/fake.env"])
        .current_dir(&repo)
        .assert()
        .success();
    assert!(
        stdout_of(&out).contains("skipped fixtures/fake.env: excluded by .vaultignore"),
        "{}",
        stdout_of(&out)
    );
    assert!(git(&repo, &["init", "-q"]).status.success());
    // Read from HEAD, not from the change being checked (issue 13, finding 4).
    assert!(git(&repo, &["add", ".vaultignore"]).status.success());
    assert!(git(
        &repo,
        &["-c", "commit.gpgsign=false", "commit", "-q", "-m", "rules"]
    )
    .status
    .success());
    assert!(git(&repo, &["add", "."]).status.success());
    env.vault(&["scan", "--staged"])
        .current_dir(&repo)
        .assert()
        .success();
    // The control: the same file outside the ignored directory blocks.
    std::fs::write(repo.join("real.env"), leak).unwrap();
    assert!(git(&repo, &["add", "real.env"]).status.success());
    env.vault(&["scan", "--staged"])
        .current_dir(&repo)
        .assert()
        .code(1);
}

fn set_saying(env: &Env, path: &str, value: &str) -> String {
    let out = env
        .vault(&["set", path])
        .write_stdin(format!("{value}\n"))
        .assert()
        .success();
    crate::common::stderr_of(&out)
}

// issue 13, finding 12
#[test]
fn short_and_repetitive_values_are_not_fingerprinted_and_set_warns_about_them() {
    let env = Env::new();
    env.vault(&["agent", "add", "hermes"]).assert().success();
    for (path, value) in [
        ("hermes/DB_USER", "admin"),
        ("hermes/DB_PORT", "5432"),
        ("hermes/ONE", "x"),
        ("hermes/PIN", "aaaaaaaaaaaa"),
        ("hermes/PATTERN", "1212121212"),
    ] {
        let said = set_saying(&env, path, value);
        assert!(
            said.contains("will not be found if it leaks"),
            "{path}: {said}"
        );
    }
    let strong = "Xq7-vF2p-Lm9z";
    let said = set_saying(&env, "hermes/DB_PASSWORD", strong);
    assert!(!said.contains("warning"), "{said}");
    let file = env.dir.path().join("notes.txt");
    std::fs::write(
        &file,
        "connect as admin on port 5432 with x, pin aaaaaaaaaaaa or 1212121212\n",
    )
    .unwrap();
    env.vault(&["scan", file.to_str().unwrap()])
        .env_remove("VAULT_PASSPHRASE_FILE")
        .assert()
        .success();
    // The control: a value above the floor is still recognised ...
    std::fs::write(&file, format!("password is {strong}\nnext\n")).unwrap();
    let out = env
        .vault(&["scan", file.to_str().unwrap()])
        .assert()
        .code(1);
    assert!(
        stdout_of(&out).contains("hermes/DB_PASSWORD"),
        "{}",
        stdout_of(&out)
    );
    // ... until it is replaced by a short one, whose secret then has no fingerprint at all.
    set_saying(&env, "hermes/DB_PASSWORD", "pass");
    std::fs::write(&file, format!("pass {strong}\n")).unwrap();
    let out = env
        .vault(&["scan", file.to_str().unwrap(), "--format", "json"])
        .assert();
    assert!(
        !stdout_of(&out).contains("hermes/DB_PASSWORD"),
        "{}",
        stdout_of(&out)
    );
}

// issue 13, finding 13
#[test]
fn a_stored_secret_finding_carries_no_unkeyed_hash_of_the_value() {
    let env = Env::new();
    env.vault(&["agent", "add", "hermes"]).assert().success();
    let value = "hunter2-hunter2";
    set_saying(&env, "hermes/DB_PASSWORD", value);
    let unkeyed =
        vault_scan::testing::unkeyed_fingerprint(vault_scan::STORED_SECRET_RULE, value.as_bytes());
    let file = env.dir.path().join("notes.txt");
    std::fs::write(&file, format!("we used {value} here\n")).unwrap();
    for format in ["json", "sarif", "human"] {
        let out = env
            .vault(&["scan", file.to_str().unwrap(), "--format", format])
            .env_remove("VAULT_PASSPHRASE_FILE")
            .assert()
            .code(1);
        let text = stdout_of(&out);
        let named = if format == "sarif" {
            vault_scan::STORED_SECRET_RULE
        } else {
            "hermes/DB_PASSWORD"
        };
        assert!(text.contains(named), "{format}: {text}");
        assert!(
            !text.contains(&unkeyed),
            "{format} holds the unkeyed hash: {text}"
        );
    }
    let out = env
        .vault(&["scan", "--stdin", "--hook", "claude-code"])
        .write_stdin(format!("my password is {value}"))
        .assert()
        .code(2);
    assert!(!crate::common::stderr_of(&out).contains(&unkeyed));
}

/// A token of `key` carrying `scopes` (asserts minting succeeds).
fn mint(env: &Env, key: &str, scopes: &[String]) -> String {
    let mut args = vec!["token".to_string()];
    for s in scopes {
        args.push("--scope".into());
        args.push(s.clone());
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = env
        .vault(&args)
        .env("VAULT_AGENT_KEY", key)
        .assert()
        .success();
    stdout_of(&out).trim().to_owned()
}

fn findings_of(env: &Env, text: &str) -> Vec<serde_json::Value> {
    let out = env
        .vault(&["scan", "--stdin", "--format", "json"])
        .env_remove("VAULT_PASSPHRASE_FILE")
        .write_stdin(text.to_owned())
        .assert()
        .code(1);
    let v: serde_json::Value = serde_json::from_str(&stdout_of(&out)).unwrap();
    v["findings"].as_array().unwrap().clone()
}

// issue 13, finding 20
#[test]
fn a_forged_token_of_a_real_key_is_not_named_as_that_keys() {
    let env = Env::new();
    let key = with_key(&env);
    let token = mint(&env, &key, &[]);
    let mut payload = vault_core::credential::parse_token_body(&token).unwrap();
    let last = payload.len() - 1;
    payload[last] ^= 1;
    let forged = vault_core::credential::encode_token(&payload);
    assert_ne!(forged, token);
    for t in [&forged, &token] {
        let f = findings_of(&env, &format!("Authorization: Bearer {t}\n"));
        assert_eq!(f.len(), 1, "{f:?}");
        assert_eq!(f[0]["rule"], "vault.token");
        // Without the passphrase nothing is verified, so no key is named, real or forged.
        assert_eq!(
            f[0]["managed"]["label"], "vault token format, unverified",
            "{f:?}"
        );
        assert!(!f[0].to_string().contains("hermes-key"), "{f:?}");
    }
}

/// The longest token the vault mints: 32 scopes, as long as still fits MAX_TOKEN_LEN.
fn longest_token(env: &Env, key: &str) -> String {
    let chars = |bytes: usize| bytes / 8 * 11 + [0, 2, 3, 5, 6, 7, 9, 10, 11][bytes % 8];
    let limit = vault_core::credential::MAX_TOKEN_LEN;
    // claims without scopes: 37 fixed bytes, the agent (1 + 6), counts (2), tag (32)
    let len_of = |n: usize| 4 + chars(37 + 7 + 2 + 32 + 32 * (1 + "secret:".len() + n)) + 6;
    let n = (1..=128).rev().find(|&n| len_of(n) <= limit).unwrap();
    let scopes: Vec<String> = (0..32)
        .map(|i| format!("secret:S{i:02}_{}", "X".repeat(n - 4)))
        .collect();
    let token = mint(env, key, &scopes);
    assert_eq!(token.len(), len_of(n));
    // One byte more is refused rather than minted unscannable (when it would not fit).
    let payload = 37 + 7 + 2 + 32 + 32 * (1 + "secret:".len() + n);
    if 4 + chars(payload + 1) + 6 > limit {
        let mut args = vec!["token".to_string()];
        for (i, s) in scopes.iter().enumerate() {
            let s = if i == 0 { format!("{s}Y") } else { s.clone() };
            args.extend(["--scope".to_string(), s]);
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        env.vault(&args)
            .env("VAULT_AGENT_KEY", key)
            .assert()
            .failure();
    }
    token
}

// issue 13 (also found by reading the code): the scanner's bound is the vault's own
#[test]
fn the_longest_token_the_vault_mints_is_found_in_a_transcript() {
    let env = Env::new();
    let key = with_key(&env);
    let token = longest_token(&env, &key);
    assert!(token.len() > 1900, "{}", token.len());
    let line = serde_json::json!({"role": "user", "content": format!("use {token} please")});
    let f = findings_of(&env, &format!("{line}\n"));
    assert_eq!(f.len(), 1, "{f:?}");
    assert_eq!(f[0]["rule"], "vault.token");
    assert_eq!(f[0]["managed"]["label"], "vault token format, unverified");
}

/// A fresh base62 value of `n` characters, drawn at test time (never a real secret).
fn fresh(n: usize) -> String {
    use ring::rand::SecureRandom as _;
    const ALPHABET: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let mut bytes = vec![0u8; n];
    ring::rand::SystemRandom::new().fill(&mut bytes).unwrap();
    bytes
        .iter()
        .map(|b| ALPHABET[usize::from(*b) % ALPHABET.len()] as char)
        .collect()
}

// issue 18, item 1: the default shows what a person should act on. A generic password in
// source is shown (medium); a PEM fixture under tests/ and a generic key in a README are
// lowered to low and hidden unless --confidence low; a call assigned to `private_key` is
// never a finding.
#[test]
fn scan_default_confidence_hides_fixtures_and_docs_and_code_is_never_a_finding() {
    let env = Env::new();
    let tree = env.dir.path().join("proj");
    std::fs::create_dir_all(tree.join("src")).unwrap();
    std::fs::create_dir_all(tree.join("tests/fixtures")).unwrap();
    let password = format!("{}-{}", fresh(10), fresh(8));
    std::fs::write(
        tree.join("src/settings.py"),
        format!("DB_PASSWORD = \"{password}\"\nprivate_key = rsa.PrivateKey.load_pkcs1(data)\nprivate_key: x25519.X25519PrivateKey = make()\n"),
    )
    .unwrap();
    std::fs::write(
        tree.join("tests/fixtures/key.pem"),
        format!(
            "-----BEGIN PRIVATE KEY-----\n{}\n{}\n-----END PRIVATE KEY-----\n",
            fresh(64),
            fresh(64)
        ),
    )
    .unwrap();
    std::fs::write(
        tree.join("README.md"),
        format!("Configure it:\n\n    api_key = \"{}\"\n", fresh(32)),
    )
    .unwrap();
    let scan = |extra: &[&str], code: i32| {
        let mut args = vec!["scan", tree.to_str().unwrap(), "--format", "json"];
        args.extend_from_slice(extra);
        let out = env.vault(&args).assert().code(code);
        let v = json(&out);
        let mut got: Vec<(String, String, String)> = v["findings"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| {
                let path = f["path"].as_str().unwrap();
                let rel = path.rsplit("proj/").next().unwrap().to_owned();
                (
                    rel,
                    f["rule"].as_str().unwrap().to_owned(),
                    f["confidence"].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        got.sort();
        got
    };
    let t = |p: &str, r: &str, c: &str| (p.to_owned(), r.to_owned(), c.to_owned());
    assert_eq!(
        scan(&[], 1),
        vec![t(
            "src/settings.py",
            "generic.password-assignment",
            "medium"
        )]
    );
    assert_eq!(
        scan(&["--confidence", "low"], 1),
        vec![
            t("README.md", "generic.api-key-assignment", "low"),
            t("src/settings.py", "generic.password-assignment", "medium"),
            t("tests/fixtures/key.pem", "private-key.pem", "low"),
        ]
    );
    assert!(scan(&["--confidence", "high"], 0).is_empty());
}

/// `vault --json ARGS` run in `dir` with git kept from looking above it; its exit code
/// and the JSON error's code.
fn json_error_in(env: &Env, dir: &std::path::Path, args: &[&str]) -> (i32, serde_json::Value) {
    let mut full = vec!["--json"];
    full.extend_from_slice(args);
    let out = env
        .vault(&full)
        .current_dir(dir)
        .env("GIT_CEILING_DIRECTORIES", env.dir.path())
        .env_remove("GIT_DIR")
        .env_remove("GIT_INDEX_FILE")
        .output()
        .unwrap();
    let body: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)));
    (out.status.code().unwrap(), body["error"].clone())
}

#[test]
fn scan_staged_outside_a_repository_says_so_instead_of_gits_usage() {
    // issue 19, Misleading: `scan --staged` outside a repository printed git's usage
    let env = Env::new();
    let dir = env.dir.path().join("not-a-repo");
    std::fs::create_dir(&dir).unwrap();
    let (code, error) = json_error_in(&env, &dir, &["scan", "--staged"]);
    assert_eq!(code, 2, "{error}");
    assert_eq!(error["code"], "usage", "{error}");
    let message = error["message"].as_str().unwrap();
    assert!(message.contains("not inside a git repository"), "{message}");
    assert!(!message.contains("usage: git"), "{message}");
}

#[test]
fn hook_uninstall_with_no_hook_says_none_is_installed() {
    // issue 19, Misleading: `hook uninstall` with no hook said it was not vault's hook
    let env = Env::new();
    let repo = env.dir.path().join("repo");
    std::fs::create_dir(&repo).unwrap();
    git(&repo, &["init", "-q"]);
    let (code, error) = json_error_in(&env, &repo, &["hook", "uninstall"]);
    assert_eq!(code, 4, "{error}");
    assert_eq!(error["code"], "not_found", "{error}");
    let message = error["message"].as_str().unwrap();
    assert!(message.contains("pre-commit hook not found"), "{message}");
    assert!(!message.contains("not vault's hook"), "{message}");
    // and outside a repository, the one clear word for that
    let (code, error) = json_error_in(&env, env.dir.path(), &["hook", "uninstall"]);
    assert_eq!(code, 2, "{error}");
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .contains("not inside a git repository"),
        "{error}"
    );
}

// issue 18, rules as data: `vault scan --rules` lists every rule with its confidence and the
// provider's documentation, for a person (snapshot: a rule added, removed or renamed is a
// reviewed diff) and as JSON for scripts; it needs no vault and scans nothing.
#[test]
fn scan_rules_lists_every_rule_with_its_confidence_and_reference() {
    let env = Env::empty();
    let human = env.vault(&["scan", "--rules"]).assert().success();
    let human = stdout_of(&human);
    insta::assert_snapshot!("scan_rules", human);
    let out = env.vault(&["scan", "--rules", "--json"]).assert().success();
    let v = json(&out);
    let rules = v["rules"].as_array().unwrap();
    assert_eq!(
        human.lines().last().unwrap(),
        format!("{} rules", rules.len())
    );
    let ids: Vec<&str> = rules.iter().map(|r| r["id"].as_str().unwrap()).collect();
    let mut sorted = ids.clone();
    sorted.sort_unstable();
    assert_eq!(ids, sorted);
    let openai = rules
        .iter()
        .find(|r| r["id"] == "openai.project-key")
        .unwrap();
    assert_eq!(openai["confidence"], "high");
    assert_eq!(openai["provider"], "openai");
    assert!(openai["references"][0]
        .as_str()
        .unwrap()
        .starts_with("https://"));
    assert!(rules.iter().all(|r| r.get("pattern").is_none()));
    // Scanning alongside the listing is refused, not silently ignored.
    env.vault(&["scan", "--rules", "."]).assert().code(2);
}
