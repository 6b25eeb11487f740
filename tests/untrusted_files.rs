//! Issue 13: files the vault reads on someone's say-so (a passphrase file, a
//! watched transcript) are checked before they are trusted.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use crate::common::*;

fn am_root() -> bool {
    nix::unistd::geteuid().is_root()
}

fn chown(path: &Path, uid: u32) {
    std::os::unix::fs::lchown(path, Some(uid), Some(uid)).unwrap();
}

/// An uid no test file belongs to (`nobody`).
const OTHER_UID: u32 = 65534;

fn key_in(file: &Path) -> String {
    std::fs::read_to_string(file)
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VAULT_AGENT_KEY="))
        .unwrap()
        .to_owned()
}

fn error_code(out: &assert_cmd::assert::Assert) -> String {
    let v: serde_json::Value = serde_json::from_str(&stdout_of(out)).unwrap();
    v["error"]["code"].as_str().unwrap().to_owned()
}

// issue 13, finding 18
#[test]
fn a_passphrase_file_others_can_read_or_that_is_a_directory_is_refused() {
    let env = Env::new();
    std::fs::set_permissions(&env.passfile, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = env.vault(&["ls"]).assert().code(2);
    let want = format!("chmod 600 {}", env.passfile.display());
    assert!(stderr_of(&out).contains(&want), "{}", stderr_of(&out));
    assert_eq!(
        error_code(&env.vault(&["--json", "ls"]).assert().code(2)),
        "loose_permissions"
    );
    std::fs::set_permissions(&env.passfile, std::fs::Permissions::from_mode(0o600)).unwrap();
    env.vault(&["ls"]).assert().success();

    // owned by another user: refused even at 0600 (as root, give it away;
    // otherwise a root-owned file is another user's)
    let foreign = env.dir.path().join("foreign-pass");
    let foreign = if am_root() {
        write_private(&foreign, &format!("{PASSPHRASE}\n"));
        chown(&foreign, OTHER_UID);
        foreign
    } else {
        std::path::PathBuf::from("/etc/passwd")
    };
    let out = env
        .vault(&["ls"])
        .env("VAULT_PASSPHRASE_FILE", &foreign)
        .assert()
        .code(2);
    assert!(
        stderr_of(&out).contains("owned by uid"),
        "{}",
        stderr_of(&out)
    );

    // a directory: said so, not "chmod 600 DIR"
    let dir = env.dir.path().join("a-dir");
    std::fs::create_dir(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let out = env
        .vault(&["ls"])
        .env("VAULT_PASSPHRASE_FILE", &dir)
        .assert()
        .code(2);
    let err = stderr_of(&out);
    assert!(err.contains("is a directory"), "{err}");
    assert!(!err.contains("chmod"), "{err}");

    // set but empty: no file, so the prompt is asked for (and there is no terminal)
    let out = env
        .vault(&["ls"])
        .env("VAULT_PASSPHRASE_FILE", "")
        .assert()
        .code(2);
    assert!(
        stderr_of(&out).contains("no terminal to prompt on"),
        "{}",
        stderr_of(&out)
    );
}

// issue 13, finding 11
#[test]
fn watch_never_follows_a_symlink_or_a_foreign_file_swapped_in_for_a_watched_one() {
    let env = Env::new();
    env.vault(&["agent", "add", "hermes"]).assert().success();
    let target = env.dir.path().join("hermes.env");
    let t = target.to_str().unwrap();
    env.vault(&["issue", "hermes-key", "--write-env", t])
        .assert()
        .success();
    // `issue --write-env` registered the file as a target (issue 19)
    let key = key_in(&target);
    // a file only the watcher's user may read, holding a live key
    let private = env.dir.path().join("private.txt");
    write_private(&private, &format!("{{\"k\":\"{key}\"}}\n"));
    // the agent's directory and transcript (the agent's user owns both)
    let sessions = env.dir.path().join("sessions");
    std::fs::create_dir(&sessions).unwrap();
    let transcript = sessions.join("s1.jsonl");
    std::fs::write(&transcript, "{\"role\":\"user\",\"content\":\"hello\"}\n").unwrap();
    if am_root() {
        chown(&sessions, OTHER_UID);
        chown(&transcript, OTHER_UID);
    }
    let mut watcher = spawn_vault(
        &env,
        &["watch", transcript.to_str().unwrap(), "--interval-ms", "50"],
    );
    let lines = Lines::of(&mut watcher);
    // the first pass is done when the watcher has recorded its offset
    let state = env.home.join("watch-state.json");
    let start = std::time::Instant::now();
    while !std::fs::read_to_string(&state).is_ok_and(|s| s.contains("s1.jsonl")) {
        assert!(
            start.elapsed() < std::time::Duration::from_secs(30),
            "no first pass"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    // the agent swaps its transcript for a link to the private file
    let link = sessions.join("swap");
    std::os::unix::fs::symlink(&private, &link).unwrap();
    if am_root() {
        chown(&link, OTHER_UID);
    }
    std::fs::rename(&link, &transcript).unwrap();
    let mut seen = lines.until(&env, "is a symbolic link; not read");
    if am_root() {
        // ... or for a file of another owner (what a hard link would give)
        let foreign = sessions.join("swap2");
        write_private(&foreign, &format!("{{\"k\":\"{key}\"}}\n"));
        std::fs::rename(&foreign, &transcript).unwrap();
        seen.push_str(&lines.until(&env, "changed owner"));
    }
    terminate(&watcher);
    assert_eq!(wait_bounded(&env, &mut watcher).code(), Some(0));
    assert!(!seen.contains("avk_"), "{seen}");
    // nothing was rotated: the key still works and the target still holds it
    assert_eq!(key_in(&target), key);
    env.vault(&["token"])
        .env("VAULT_AGENT_KEY", &key)
        .assert()
        .success();
}
