//! Issue 19, "Broken": what a new operator's day tripped over — rotations
//! reaching files that hold another key, env files vault wrote but never
//! registered, two watchers, a rekey under running processes, scrub's temp
//! files, and the terminal left without echo.

use crate::common::*;

fn key_in(file: &std::path::Path, var: &str) -> Option<String> {
    std::fs::read_to_string(file)
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{var}=")).map(str::to_owned))
}

fn mints(env: &Env, key: &str) -> bool {
    env.vault(&["token"])
        .env("VAULT_AGENT_KEY", key)
        .output()
        .unwrap()
        .status
        .success()
}

/// Agent marketing, its main key written by `issue --write-env` into its
/// profile's .env.
fn marketing() -> (Env, std::path::PathBuf) {
    let env = Env::new();
    env.vault(&["agent", "add", "marketing"]).assert().success();
    let profile = env.dir.path().join("profile.env");
    std::fs::write(&profile, "LOG_LEVEL=info\n").unwrap();
    env.vault(&[
        "issue",
        "marketing-key",
        "--write-env",
        profile.to_str().unwrap(),
    ])
    .assert()
    .success();
    (env, profile)
}

#[test]
fn rotating_and_revoking_a_second_key_leaves_the_agents_env_file_holding_its_main_key() {
    // issue 19, Broken 1
    let (env, profile) = marketing();
    let main = key_in(&profile, "VAULT_AGENT_KEY").unwrap();
    let tmp = stdout_of(
        &env.vault(&["issue", "tmp-key", "--agent", "marketing"])
            .assert()
            .success(),
    );
    env.vault(&["rotate", "tmp-key", "--print"])
        .assert()
        .success();
    assert_eq!(
        key_in(&profile, "VAULT_AGENT_KEY").as_deref(),
        Some(main.as_str())
    );
    env.vault(&["keys", "revoke", "tmp-key"]).assert().success();
    assert!(mints(&env, &main), "the agent's main key must still work");
    assert!(!mints(&env, tmp.trim()));
    // a leak of the second key (as `vault watch` handles it) also spares the file
    let laptop = stdout_of(
        &env.vault(&["issue", "laptop-key", "--agent", "marketing"])
            .assert()
            .success(),
    );
    let transcript = env.dir.path().join("chat.log");
    std::fs::write(&transcript, format!("oops {}\n", laptop.trim())).unwrap();
    env.vault(&["scan", transcript.to_str().unwrap(), "--rotate"])
        .assert()
        .code(predicates::ord::ne(0));
    assert!(!mints(&env, laptop.trim()), "the leaked key is revoked");
    assert_eq!(
        key_in(&profile, "VAULT_AGENT_KEY").as_deref(),
        Some(main.as_str())
    );
    assert!(mints(&env, &main));
}

#[test]
fn issue_write_env_registers_the_file_so_the_next_rotation_rewrites_it() {
    // issue 19, Broken 2
    let (env, profile) = marketing();
    let old = key_in(&profile, "VAULT_AGENT_KEY").unwrap();
    let ls = stdout_of(&env.vault(&["target", "ls"]).assert().success());
    assert!(
        ls.contains(profile.to_str().unwrap()) && ls.contains("marketing-key"),
        "{ls}"
    );
    env.vault(&["rotate", "marketing-key"]).assert().success();
    let new = key_in(&profile, "VAULT_AGENT_KEY").unwrap();
    assert_ne!(new, old);
    assert!(
        mints(&env, &new),
        "the file vault wrote holds a working key"
    );
    assert!(!mints(&env, &old));
}

#[test]
fn rotate_refuses_a_key_no_target_holds_unless_print() {
    // issue 19, Broken 2
    let env = Env::new();
    env.vault(&["agent", "add", "marketing"]).assert().success();
    let elsewhere = env.dir.path().join("by-hand.env");
    env.vault(&[
        "issue",
        "marketing-key",
        "--write-env",
        elsewhere.to_str().unwrap(),
        "--no-target",
    ])
    .assert()
    .success();
    let key = key_in(&elsewhere, "VAULT_AGENT_KEY").unwrap();
    let out = env.vault(&["rotate", "marketing-key"]).assert().code(1);
    let err = stderr_of(&out);
    assert!(
        err.contains("no registered target holds") && err.contains("--print"),
        "{err}"
    );
    assert!(mints(&env, &key), "a refused rotation revokes nothing");
    let out = env
        .vault(&["rotate", "marketing-key", "--print"])
        .assert()
        .success();
    let shown = stdout_of(&out);
    assert!(shown.trim().starts_with("avk_"), "{shown}");
    assert!(!mints(&env, &key));
    assert!(mints(&env, shown.trim()));
}

/// Waits (bounded) until the spawned vault's stderr contains `want`.
fn stderr_until(env: &Env, want: &str) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let file = env.dir.path().join("spawned.stderr");
    while std::time::Instant::now() < deadline {
        if std::fs::read_to_string(&file).is_ok_and(|t| t.contains(want)) {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    panic!(
        "never saw {want:?}; stderr {:?}",
        std::fs::read_to_string(&file)
    );
}

#[test]
fn a_second_watcher_is_refused_naming_the_first_and_a_killed_watchers_lock_is_no_obstacle() {
    // issue 19, Broken 3
    let env = Env::new();
    let sessions = env.dir.path().join("sessions");
    std::fs::create_dir(&sessions).unwrap();
    let dir = sessions.to_str().unwrap();
    let mut first = spawn_vault(&env, &["watch", dir, "--interval-ms", "50"]);
    stderr_until(&env, "watching");
    let out = env.vault(&["watch", dir, "--once"]).assert().code(1);
    let err = stderr_of(&out);
    assert!(
        err.contains("already watching this vault") && err.contains(&format!("pid {}", first.id())),
        "{err}"
    );
    // kill -9: no cleanup runs, the lock file stays, yet the lock is gone
    first.kill().unwrap();
    first.wait().unwrap();
    assert!(env.home.join("watch.lock").exists());
    env.vault(&["watch", dir, "--once"]).assert().success();
}

#[test]
fn a_watcher_survives_a_rekey_and_still_kills_a_key_leaked_afterwards() {
    // issue 19, Broken 4
    let (env, _profile) = marketing();
    let key = stdout_of(
        &env.vault(&["issue", "laptop-key", "--agent", "marketing"])
            .assert()
            .success(),
    );
    let key = key.trim().to_owned();
    let sessions = env.dir.path().join("sessions");
    std::fs::create_dir(&sessions).unwrap();
    let mut watcher = spawn_vault(
        &env,
        &["watch", sessions.to_str().unwrap(), "--interval-ms", "50"],
    );
    stderr_until(&env, "watching");
    env.vault(&["rekey"]).assert().success();
    std::fs::write(sessions.join("chat.log"), format!("here it is {key}\n")).unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while mints(&env, &key) && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(
        watcher.try_wait().unwrap().is_none(),
        "the watcher exited: {:?}",
        std::fs::read_to_string(env.dir.path().join("spawned.stderr"))
    );
    assert!(!mints(&env, &key), "a key leaked after the rekey must die");
    terminate(&watcher);
    wait_bounded(&env, &mut watcher);
}

fn approvals(env: &Env) -> Vec<serde_json::Value> {
    let v: serde_json::Value = serde_json::from_str(&stdout_of(
        &env.vault(&["approvals", "--json"]).assert().success(),
    ))
    .unwrap();
    v["approvals"].as_array().unwrap().clone()
}

#[test]
fn the_watcher_opens_no_second_approval_for_a_rotated_secret_nor_for_scrubs_temp_file() {
    // issue 19, Broken 5. On PostgreSQL the watcher's known credentials can be a second older
    // than a rotation approved in another process; the vault checks a reported value is still
    // the secret's current one in the transaction that acts on it (issue 20).
    let env = Env::new();
    env.vault(&["agent", "add", "hermes"]).assert().success();
    env.set("hermes/DB_PASSWORD", "leaked-db-password-1");
    set_rotation_script(
        &env,
        "hermes/DB_PASSWORD",
        "cat >/dev/null; echo fresh-db-password-2\n",
    );
    let sessions = env.dir.path().join("sessions");
    std::fs::create_dir(&sessions).unwrap();
    let chat = sessions.join("chat.log");
    std::fs::write(&chat, "the password is leaked-db-password-1\n").unwrap();
    let mut watcher = spawn_vault(
        &env,
        &["watch", sessions.to_str().unwrap(), "--interval-ms", "50"],
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while approvals(&env).is_empty() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let first = approvals(&env);
    assert_eq!(first.len(), 1, "{first:?}");
    env.vault(&["approve", first[0]["id"].as_str().unwrap()])
        .assert()
        .success();
    assert_eq!(env.get("hermes/DB_PASSWORD"), "fresh-db-password-2");
    // the rotated-away value seen again (a copy, or scrub's temp file of it)
    std::fs::write(
        sessions.join(".chat.log.vault-scrub-4242"),
        "the password is fresh-db-password-2\n",
    )
    .unwrap();
    std::fs::write(sessions.join("copy.log"), "again leaked-db-password-1\n").unwrap();
    // a marker leak after both, so we know the watcher has looked at them
    let key = stdout_of(&env.vault(&["issue", "hermes-key"]).assert().success());
    std::fs::write(sessions.join("z.log"), format!("{}\n", key.trim())).unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while mints(&env, key.trim()) && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(
        !mints(&env, key.trim()),
        "the watcher did not get to the marker"
    );
    let all = approvals(&env);
    assert_eq!(all.len(), 1, "no second approval: {all:?}");
    terminate(&watcher);
    wait_bounded(&env, &mut watcher);
}

/// Runs `vault ARGS` on a fresh pseudo-terminal (python's pty module), types
/// Ctrl-C once the passphrase prompt shows, and reports the exit status and
/// whether the terminal echoes again afterwards.
const PTY_CTRL_C: &str = r#"
import os, pty, sys, termios, time
pid, fd = pty.fork()
if pid == 0:
    os.execv(sys.argv[1], sys.argv[1:])
seen = b""
deadline = time.time() + 20
while b"assphrase" not in seen and time.time() < deadline:
    try:
        seen += os.read(fd, 1024)
    except OSError:
        break
time.sleep(0.1)
os.write(fd, b"\x03")
_, status = os.waitpid(pid, 0)
echo = bool(termios.tcgetattr(fd)[3] & termios.ECHO)
print("prompted=%d echo=%d signaled=%d code=%d" % (b"assphrase" in seen, echo,
      os.WIFSIGNALED(status), os.WEXITSTATUS(status) if os.WIFEXITED(status) else -1))
"#;

#[test]
fn ctrl_c_at_a_passphrase_prompt_leaves_the_terminal_echoing() {
    // issue 19, Broken 6
    let env = Env::new();
    let python = std::process::Command::new("python3")
        .arg("-c")
        .arg(PTY_CTRL_C)
        .arg(assert_cmd::cargo::cargo_bin("vault"))
        .args(["agent", "ls"])
        .env("VAULT_HOME", &env.home)
        .env_remove("VAULT_PASSPHRASE_FILE")
        .env_remove("VAULT_ADDR")
        .output();
    let out = match python {
        Ok(out) if out.status.success() => out,
        Ok(out) => {
            skip_or_fail_in_ci(&format!(
                "no pseudo-terminal: {}",
                String::from_utf8_lossy(&out.stderr)
            ));
            return;
        }
        Err(e) => {
            skip_or_fail_in_ci(&format!("python3 is needed to drive a pty: {e}"));
            return;
        }
    };
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(report.contains("prompted=1"), "{report}");
    assert!(
        report.contains("echo=1"),
        "echo left off after Ctrl-C: {report}"
    );
    assert!(report.contains("code=130"), "{report}");
}

/// `vault agent ls` at a terminal prompt with these answers typed; None when no pty.
fn at_prompt(env: &Env, answers: &[&str]) -> Option<String> {
    let python = std::process::Command::new("python3")
        .arg("-c")
        .arg(PTY_ANSWERS)
        .arg(assert_cmd::cargo::cargo_bin("vault"))
        .args(["agent", "ls"])
        .env("VAULT_HOME", &env.home)
        .env("PTY_ANSWERS", answers.join("\n"))
        .env_remove("VAULT_PASSPHRASE_FILE")
        .env_remove("VAULT_ADDR")
        .output();
    match python {
        Ok(out) if out.status.success() => Some(String::from_utf8_lossy(&out.stdout).into_owned()),
        Ok(out) => {
            skip_or_fail_in_ci(&format!(
                "no pseudo-terminal: {}",
                String::from_utf8_lossy(&out.stderr)
            ));
            None
        }
        Err(e) => {
            skip_or_fail_in_ci(&format!("python3 is needed to drive a pty: {e}"));
            None
        }
    }
}

#[test]
fn a_wrong_passphrase_at_the_prompt_is_asked_again_three_tries_in_all() {
    // issue 19, Missing: three tries at an interactive passphrase prompt
    let env = Env::new();
    env.vault(&["agent", "add", "hermes"]).assert().success();
    let Some(report) = at_prompt(&env, &["wrong one", "wrong two", PASSPHRASE]) else {
        return;
    };
    assert!(report.starts_with("prompts=3 code=0"), "{report}");
    assert!(report.contains("hermes"), "{report}");
    assert!(report.contains("1 left"), "{report}");
    let Some(report) = at_prompt(&env, &["wrong one", "wrong two", "wrong three"]) else {
        return;
    };
    assert!(report.starts_with("prompts=3 code=3"), "{report}");
    // from a file: one try, no prompt
    write_private(&env.passfile, "wrong wrong wrong\n");
    let out = env.vault(&["agent", "ls"]).assert().code(3);
    assert!(
        !stderr_of(&out).contains("try again"),
        "{}",
        stderr_of(&out)
    );
}
