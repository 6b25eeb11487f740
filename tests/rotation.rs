//! Issue 6: key rotation through the real binary, and kill -9 at every step.

use rusqlite::Connection;

use crate::common::*;

fn json(out: &assert_cmd::assert::Assert) -> serde_json::Value {
    serde_json::from_str(&stdout_of(out)).unwrap_or_else(|e| panic!("{e}: {}", stdout_of(out)))
}

/// A vault with agent hermes, key hermes-key written into two registered env files.
fn setup() -> (Env, [std::path::PathBuf; 2]) {
    let env = Env::new();
    env.vault(&["agent", "add", "hermes"]).assert().success();
    let a = env.dir.path().join("profile.env");
    let b = env.dir.path().join("openclaw.env");
    std::fs::write(&a, "# hermes profile\nOPENAI_API_KEY=keep\n").unwrap();
    env.vault(&["issue", "hermes-key", "--write-env", a.to_str().unwrap()])
        .assert()
        .success();
    // `issue --write-env` registered `a` itself (issue 19); `b` is added by hand.
    env.vault(&[
        "target",
        "add",
        "--agent",
        "hermes",
        "--env-file",
        b.to_str().unwrap(),
        "--var",
        "HERMES_VAULT_KEY",
    ])
    .assert()
    .success();
    (env, [a, b])
}

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

/// The status of the key `text` in the database, read directly so that no
/// `vault` process runs (every one resumes open rotations first).
fn status_in_db(env: &Env, text: &str) -> Option<String> {
    let hash = vault_core::NamedKey::parse(text).ok()?.hash().0;
    Connection::open(env.db())
        .unwrap()
        .query_row(
            "SELECT status FROM agent_keys WHERE key_hash = ?1",
            [hash.as_slice()],
            |r| r.get(0),
        )
        .ok()
}

/// After any crash and a restart: the database is sound, exactly one active
/// key has the name, every registered file holds a key that works, and the
/// old key is dead once a rotation began (a kill before it began leaves the
/// old key in place, working).
fn check_invariants(env: &Env, files: &[std::path::PathBuf; 2], old_key: &str) {
    let conn = Connection::open(env.db()).unwrap();
    let started: i64 = conn
        .query_row("SELECT count(*) FROM rotations", [], |r| r.get(0))
        .unwrap();
    drop(conn);
    // any command finishes the interrupted rotation first
    env.vault(&["keys", "ls"]).assert().success();
    let conn = Connection::open(env.db()).unwrap();
    let ok: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(ok, "ok");
    let active: i64 = conn
        .query_row(
            "SELECT count(*) FROM agent_keys WHERE name = 'hermes-key' AND status = 'active'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(active, 1);
    let open: i64 = conn
        .query_row(
            "SELECT count(*) FROM rotations WHERE state IN ('pending', 'written')",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(open, 0);
    drop(conn);
    if started == 0 {
        assert!(
            mints(env, old_key),
            "no rotation began, yet the old key is dead"
        );
        assert_eq!(
            key_in(&files[0], "VAULT_AGENT_KEY").as_deref(),
            Some(old_key)
        );
        return;
    }
    for (file, var) in [
        (&files[0], "VAULT_AGENT_KEY"),
        (&files[1], "HERMES_VAULT_KEY"),
    ] {
        let key = key_in(file, var).unwrap_or_else(|| panic!("{} has no key", file.display()));
        assert!(
            mints(env, &key),
            "{} holds a key that does not work",
            file.display()
        );
        assert_ne!(key, old_key);
    }
    assert!(!mints(env, old_key), "the old key still works");
    assert_eq!(
        std::fs::read_to_string(&files[0]).unwrap().lines().next(),
        Some("# hermes profile")
    );
}

#[test]
fn rotate_rewrites_every_target_and_revokes_the_old_key() {
    // its invariant check reads vault.db
    sqlite_only!(SqliteOnly::File);
    let (env, files) = setup();
    let old = key_in(&files[0], "VAULT_AGENT_KEY").unwrap();
    let token = env
        .vault(&["token"])
        .env("VAULT_AGENT_KEY", &old)
        .assert()
        .success();
    let token = stdout_of(&token).trim().to_owned();
    let v = json(
        &env.vault(&["rotate", "hermes-key", "--json"])
            .assert()
            .success(),
    );
    assert_eq!(v["state"], "done");
    assert_eq!(v["written"].as_array().unwrap().len(), 2);
    assert!(
        v.get("new_key").is_none(),
        "targets hold it; it is not printed"
    );
    check_invariants(&env, &files, &old);
    env.vault(&["token", "verify"])
        .write_stdin(token)
        .assert()
        .code(3);
    let log = json(&env.vault(&["--json", "audit", "log"]).assert().success());
    let actions: Vec<&str> = log["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["action"].as_str().unwrap())
        .collect();
    assert!(
        actions
            .windows(3)
            .any(|w| w == ["rotation.start", "key.revoke", "rotation.done"]),
        "{actions:?}"
    );
}

#[test]
fn rotate_print_without_targets_shows_the_new_key_once() {
    let env = Env::new();
    env.vault(&["agent", "add", "hermes"]).assert().success();
    let old = stdout_of(&env.vault(&["issue", "hermes-key"]).assert().success())
        .trim()
        .to_owned();
    // without --print it is refused (issue 19; tests/operator_day.rs)
    let out = env
        .vault(&["rotate", "hermes-key", "--print"])
        .assert()
        .success();
    let new = stdout_of(&out).trim().to_owned();
    assert!(new.starts_with("avk_") && new != old);
    assert!(mints(&env, &new));
    assert!(!mints(&env, &old));
}

#[test]
fn targets_are_validated() {
    let (env, _) = setup();
    let link = env.dir.path().join("link.env");
    std::os::unix::fs::symlink("/etc/hostname", &link).unwrap();
    env.vault(&[
        "target",
        "add",
        "--agent",
        "hermes",
        "--env-file",
        link.to_str().unwrap(),
    ])
    .assert()
    .code(1);
    env.vault(&[
        "target",
        "add",
        "--agent",
        "hermes",
        "--env-file",
        "/no/such/dir/.env",
    ])
    .assert()
    .code(2);
    env.vault(&[
        "target",
        "add",
        "--agent",
        "nobody",
        "--env-file",
        "/tmp/x.env",
    ])
    .assert()
    .code(4);
    let v = json(&env.vault(&["target", "ls", "--json"]).assert().success());
    assert_eq!(v["targets"].as_array().unwrap().len(), 2);
}

#[test]
fn a_kill_at_every_step_of_a_rotation_resumes_with_the_invariants_intact() {
    sqlite_only!(SqliteOnly::CrashTrial);
    for step in [
        "rotate:created",
        "rotate:target",
        "rotate:written",
        "rotate:done",
    ] {
        let (env, files) = setup();
        let old = key_in(&files[0], "VAULT_AGENT_KEY").unwrap();
        let out = env
            .vault(&["rotate", "hermes-key"])
            .env("VAULT_FAILPOINT", step)
            .output()
            .unwrap();
        assert_eq!(
            out.status.code(),
            None,
            "{step}: the process should have died (SIGABRT)"
        );
        // Before any restart: until the rotation is done, whatever key a file
        // holds is still valid (active or retiring), read straight from the db.
        let conn = Connection::open(env.db()).unwrap();
        let done: i64 = conn
            .query_row(
                "SELECT count(*) FROM rotations WHERE state = 'done'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        drop(conn);
        for (file, var) in [
            (&files[0], "VAULT_AGENT_KEY"),
            (&files[1], "HERMES_VAULT_KEY"),
        ] {
            if let (Some(key), 0) = (key_in(file, var), done) {
                let status = status_in_db(&env, &key);
                assert!(
                    matches!(status.as_deref(), Some("active" | "retiring")),
                    "{step}: {} holds a {status:?} key mid-rotation",
                    file.display()
                );
            }
        }
        check_invariants(&env, &files, &old);
    }
}

// issue 19: leak -> refused p99 < 10 ms. A leaked key is refused from the
// rotation's first commit, not once its successor is in every file.
#[test]
fn a_leaked_key_is_revoked_in_the_commit_that_stores_its_successor() {
    sqlite_only!(SqliteOnly::CrashTrial);
    let (env, files) = setup();
    let old = key_in(&files[0], "VAULT_AGENT_KEY").unwrap();
    let leak = env.dir.path().join("chat.md");
    std::fs::write(&leak, format!("here is my key {old} thanks\n")).unwrap();
    let out = env
        .vault(&["scan", leak.to_str().unwrap(), "--rotate"])
        .env("VAULT_FAILPOINT", "rotate:created")
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        None,
        "the scan should have died (SIGABRT)"
    );
    // killed before any file was written: the files still hold the leaked
    // key, and it is already dead
    assert_eq!(
        key_in(&files[0], "VAULT_AGENT_KEY").as_deref(),
        Some(old.as_str())
    );
    assert_eq!(status_in_db(&env, &old).as_deref(), Some("revoked"));
    let conn = Connection::open(env.db()).unwrap();
    assert_eq!(open_rotations(&conn), 1);
    drop(conn);
    // the next start hands the agent its successor; one revocation on record
    check_invariants(&env, &files, &old);
    let new = key_in(&files[0], "VAULT_AGENT_KEY").unwrap();
    assert_ne!(new, old);
    assert!(mints(&env, &new) && !mints(&env, &old));
    let out = env
        .vault(&["--json", "audit", "log", "--action", "key.revoke"])
        .assert()
        .success();
    let v = json(&out);
    let revokes = v["records"].as_array().unwrap().len();
    assert_eq!(revokes, 1, "{v}");
}

/// Open rotations (journal rows not yet done), read straight from the db.
fn open_rotations(conn: &Connection) -> i64 {
    conn.query_row(
        "SELECT count(*) FROM rotations WHERE state IN ('pending', 'written')",
        [],
        |r| r.get(0),
    )
    .unwrap_or(0)
}

#[test]
fn kills_at_random_times_during_rotations_never_break_the_invariants() {
    sqlite_only!(SqliteOnly::CrashTrial);
    // issue 14, done-when 12: the kills aim at the rotation's own steps (after
    // its journal row is committed), not at the unlock before them, and the
    // test asserts how many landed inside a rotation
    const TRIALS: usize = 12;
    let mut rng = 0x9e37_79b9_u64;
    let mut inside = 0;
    for trial in 0..TRIALS {
        let (env, files) = setup();
        let old = key_in(&files[0], "VAULT_AGENT_KEY").unwrap();
        let conn = Connection::open(env.db()).unwrap();
        let mut child = spawn_vault(&env, &["rotate", "hermes-key"]);
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        // one trial in four at any moment of the run (unlock included), the
        // rest a random 0-3 ms after the rotation's journal row appears
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        let started = std::time::Instant::now();
        let at_any = std::time::Duration::from_micros(rng % 200_000);
        loop {
            let due = if trial % 4 == 0 {
                started.elapsed() >= at_any
            } else {
                open_rotations(&conn) > 0
            };
            if due || child.try_wait().unwrap().is_some() {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "trial {trial}: the rotation never began"
            );
            std::thread::sleep(std::time::Duration::from_micros(100));
        }
        if trial % 4 != 0 {
            let lag = std::time::Instant::now() + std::time::Duration::from_micros(rng % 3_000);
            while std::time::Instant::now() < lag {
                std::hint::spin_loop();
            }
        }
        let _ = child.kill();
        let _ = child.wait();
        let killed_inside = open_rotations(&conn) > 0;
        drop(conn);
        inside += usize::from(killed_inside);
        check_invariants(&env, &files, &old);
        eprintln!(
            "trial {trial}: killed {} the rotation",
            if killed_inside { "inside" } else { "outside" }
        );
    }
    // at least 30 % (the bar of issue 14); aimed kills make it most of them
    assert!(
        inside * 10 >= TRIALS * 3,
        "only {inside} of {TRIALS} kills landed inside a rotation"
    );
}

#[test]
fn run_watch_restarts_the_child_when_its_secrets_rotate() {
    let env = Env::new();
    env.vault(&["agent", "add", "hermes"]).assert().success();
    env.set("hermes/A", "first");
    // the trap comes first: a TERM right after "start" must find it set
    let script = "trap 'exit 0' TERM; echo \"start $A\"; while :; do sleep 0.05; done";
    let mut child = spawn_vault(
        &env,
        &[
            "run",
            "--agent",
            "hermes",
            "--watch",
            "--poll-ms",
            "100",
            "--no-mask",
            "--",
            "sh",
            "-c",
            script,
        ],
    );
    let out = Lines::of(&mut child);
    out.until(&env, "start first");
    env.set("hermes/A", "second");
    out.until(&env, "start second");
    terminate(&child);
    assert_eq!(wait_bounded(&env, &mut child).code(), Some(0));
}

#[test]
fn run_watch_can_signal_instead_of_restarting() {
    let env = Env::new();
    env.vault(&["agent", "add", "hermes"]).assert().success();
    env.set("hermes/A", "first");
    let script = "trap 'echo reload' HUP; trap 'exit 3' TERM; echo \"start $A\"; while :; do sleep 0.05; done";
    let mut child = spawn_vault(
        &env,
        &[
            "run",
            "--agent",
            "hermes",
            "--watch",
            "--reload-signal",
            "HUP",
            "--poll-ms",
            "100",
            "--no-mask",
            "--",
            "sh",
            "-c",
            script,
        ],
    );
    let out = Lines::of(&mut child);
    out.until(&env, "start first");
    env.set("hermes/A", "second");
    let seen = out.until(&env, "reload");
    assert!(
        !seen.contains("start second"),
        "it restarted instead: {seen}"
    );
    terminate(&child);
    assert_eq!(wait_bounded(&env, &mut child).code(), Some(3));
}

#[test]
fn notifications_reach_a_command_and_never_carry_a_key() {
    let (env, files) = setup();
    let sink = env.dir.path().join("events.jsonl");
    let cmd = format!("cat >> {}; echo >> {}", sink.display(), sink.display());
    env.vault(&["notify", "set", "--command", &cmd])
        .assert()
        .success();
    env.vault(&["notify", "test"]).assert().success();
    env.vault(&["rotate", "hermes-key"]).assert().success();
    let text = std::fs::read_to_string(&sink).unwrap();
    let events: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(events[0]["event"], "test");
    assert_eq!(events[1]["event"], "rotation");
    assert_eq!(events[1]["key"], "hermes-key");
    assert_eq!(events[1]["state"], "done");
    let key = key_in(&files[0], "VAULT_AGENT_KEY").unwrap();
    assert!(!text.contains(&key) && !text.contains("avk_"));
    env.vault(&["notify", "set", "--webhook", "http://10.1.2.3:80/x"])
        .assert()
        .code(2);
    env.vault(&["notify", "set", "--command", "exit 1"])
        .assert()
        .success();
    env.vault(&["notify", "test"]).assert().code(1);
}
