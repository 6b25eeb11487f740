//! Issue 19, "Missing": `vault watch` wakes on file events. Every watcher
//! here is started with a poll interval of ten minutes, so a leak acted on
//! within the test's bound can only have been seen through an event.

use crate::common::*;
use std::path::Path;
use std::time::{Duration, Instant};

const TEN_MINUTES: &str = "600000";

fn mints(env: &Env, key: &str) -> bool {
    env.vault(&["token"])
        .env("VAULT_AGENT_KEY", key)
        .output()
        .unwrap()
        .status
        .success()
}

/// An agent and a second key of it (printed, so only a leak rotates it).
fn agent_with_key(env: &Env) -> String {
    env.vault(&["agent", "add", "hermes"]).assert().success();
    let out = env
        .vault(&["issue", "laptop-key", "--agent", "hermes"])
        .assert()
        .success();
    stdout_of(&out).trim().to_owned()
}

/// Waits (bounded) until the watcher has read what was there at its start, so
/// what is written next can only reach it through a later wake.
fn first_pass_done(env: &Env) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !env.home.join("watch-state.json").exists() {
        assert!(
            Instant::now() < deadline,
            "the watcher never read its files"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn dies_within(env: &Env, key: &str, bound: Duration) -> bool {
    let deadline = Instant::now() + bound;
    while Instant::now() < deadline {
        if !mints(env, key) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

fn append(path: &Path, text: &str) {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(path)
        .unwrap();
    f.write_all(text.as_bytes()).unwrap();
}

fn spawned_stderr(env: &Env) -> String {
    std::fs::read_to_string(env.dir.path().join("spawned.stderr")).unwrap_or_default()
}

#[test]
fn a_leak_appended_to_a_watched_directory_is_acted_on_at_once_not_at_the_next_poll() {
    // issue 19, Missing: watch on file events
    let env = Env::new();
    let key = agent_with_key(&env);
    let sessions = env.dir.path().join("sessions");
    std::fs::create_dir_all(sessions.join("2026-12")).unwrap();
    let chat = sessions.join("2026-12").join("chat.jsonl");
    append(&chat, "{\"role\":\"user\",\"content\":\"hi\"}\n");
    let mut watcher = spawn_vault(
        &env,
        &[
            "watch",
            sessions.to_str().unwrap(),
            "--interval-ms",
            TEN_MINUTES,
        ],
    );
    first_pass_done(&env);
    append(
        &chat,
        &format!("{{\"role\":\"user\",\"content\":\"{key}\"}}\n"),
    );
    assert!(
        dies_within(&env, &key, Duration::from_secs(20)),
        "the leaked key is still live; watcher said {:?}",
        spawned_stderr(&env)
    );
    assert!(spawned_stderr(&env).contains("(file events)"));
    terminate(&watcher);
    wait_bounded(&env, &mut watcher);
}

#[test]
fn a_watched_file_replaced_or_truncated_is_read_again_from_the_start_on_its_event() {
    // issue 19, Missing: watch on file events keeps the truncate/replace handling
    let env = Env::new();
    let first = agent_with_key(&env);
    let out = env
        .vault(&["issue", "second-key", "--agent", "hermes"])
        .assert()
        .success();
    let second = stdout_of(&out).trim().to_owned();
    let chat = env.dir.path().join("chat.log");
    // long enough that the replacement below is shorter than what was read
    append(&chat, &"an ordinary line of talk\n".repeat(40));
    let mut watcher = spawn_vault(
        &env,
        &[
            "watch",
            chat.to_str().unwrap(),
            "--interval-ms",
            TEN_MINUTES,
        ],
    );
    first_pass_done(&env);
    // replaced by a rename, as editors and log rotators do: a named file is
    // watched through its directory, so the new file is seen
    let fresh = env.dir.path().join("chat.log.new");
    std::fs::write(&fresh, format!("{first}\n")).unwrap();
    std::fs::rename(&fresh, &chat).unwrap();
    assert!(
        dies_within(&env, &first, Duration::from_secs(20)),
        "a key in the replacing file is still live; watcher said {:?}",
        spawned_stderr(&env)
    );
    // truncated in place and rewritten shorter: read from the start again
    std::fs::write(&chat, format!("{second}\n")).unwrap();
    assert!(
        dies_within(&env, &second, Duration::from_secs(20)),
        "a key written after a truncation is still live; watcher said {:?}",
        spawned_stderr(&env)
    );
    terminate(&watcher);
    wait_bounded(&env, &mut watcher);
}

#[test]
fn a_directory_created_under_a_watched_one_is_followed_with_what_it_already_holds() {
    // issue 19, Missing: watch on file events, new session folders
    let env = Env::new();
    let key = agent_with_key(&env);
    let sessions = env.dir.path().join("sessions");
    std::fs::create_dir(&sessions).unwrap();
    append(&sessions.join("old.jsonl"), "hello\n");
    let mut watcher = spawn_vault(
        &env,
        &[
            "watch",
            sessions.to_str().unwrap(),
            "--interval-ms",
            TEN_MINUTES,
        ],
    );
    first_pass_done(&env);
    // made elsewhere and moved in whole: no event ever names the file itself
    let staged = env.dir.path().join("staged");
    std::fs::create_dir(&staged).unwrap();
    append(&staged.join("new.jsonl"), &format!("{key}\n"));
    std::fs::rename(&staged, sessions.join("new-session")).unwrap();
    assert!(
        dies_within(&env, &key, Duration::from_secs(20)),
        "a key in a moved-in directory is still live; watcher said {:?}",
        spawned_stderr(&env)
    );
    terminate(&watcher);
    wait_bounded(&env, &mut watcher);
}

// A leak's rotation revokes the key in its first commit. One that a crash
// left open right there is finished when the key is seen leaking again, here
// by a watcher that ran all along (on SQLite rotations resume at a process's
// start only), so the agent's file gets the successor without a restart.
#[test]
fn a_leak_rotation_a_crash_left_open_is_finished_when_a_running_watcher_sees_the_key_again() {
    sqlite_only!(SqliteOnly::CrashTrial);
    let env = Env::new();
    env.vault(&["agent", "add", "hermes"]).assert().success();
    let target = env.dir.path().join("agent.env");
    env.vault(&[
        "issue",
        "hermes-key",
        "--write-env",
        target.to_str().unwrap(),
    ])
    .assert()
    .success();
    let key_in_target = || {
        std::fs::read_to_string(&target)
            .unwrap()
            .lines()
            .find_map(|l| l.strip_prefix("VAULT_AGENT_KEY=").map(str::to_owned))
            .unwrap()
    };
    let key = key_in_target();
    let sessions = env.dir.path().join("sessions");
    std::fs::create_dir_all(&sessions).unwrap();
    let chat = sessions.join("chat.jsonl");
    append(&chat, "{\"role\":\"user\",\"content\":\"hi\"}\n");
    let mut watcher = spawn_vault(
        &env,
        &[
            "watch",
            sessions.to_str().unwrap(),
            "--interval-ms",
            TEN_MINUTES,
        ],
    );
    first_pass_done(&env);
    // another process's rotation of the leaked key dies after its first commit
    let note = env.dir.path().join("note.md");
    std::fs::write(&note, format!("the key is {key}\n")).unwrap();
    let out = env
        .vault(&["scan", note.to_str().unwrap(), "--rotate"])
        .env("VAULT_FAILPOINT", "rotate:created")
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        None,
        "the scan should have died (SIGABRT)"
    );
    assert_eq!(key_in_target(), key, "no file was written before the crash");
    // the watcher meets the key again: it finishes the open rotation
    append(
        &chat,
        &format!("{{\"role\":\"user\",\"content\":\"again: {key}\"}}\n"),
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while key_in_target() == key && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let successor = key_in_target();
    let _ = watcher.kill();
    let _ = watcher.wait();
    assert_ne!(
        successor,
        key,
        "the open rotation was left open: {}",
        spawned_stderr(&env)
    );
    assert!(mints(&env, &successor) && !mints(&env, &key));
}
