//! Issue 19: several processes on one vault (server, watcher, CLI) share
//! SQLite's one write lock. A command that finds it taken waits a bounded time
//! (vault-core store/busy.rs), then fails with a clear `store_busy` error
//! (exit 75) and changes nothing. The lock is held here by a plain SQLite
//! connection in the test process, as another vault process would hold it.

use std::time::{Duration, Instant};

use crate::common::*;

fn hold_write_lock(env: &Env) -> rusqlite::Connection {
    let db = rusqlite::Connection::open(env.db()).unwrap();
    db.execute_batch("BEGIN IMMEDIATE").unwrap();
    db
}

fn secret_rows(env: &Env) -> i64 {
    let db = rusqlite::Connection::open(env.db()).unwrap();
    db.query_row("SELECT count(*) FROM secrets", [], |r| r.get(0))
        .unwrap()
}

#[test]
fn a_write_lock_held_past_the_wait_is_store_busy_exit_75_and_nothing_changes() {
    let env = Env::new();
    env.vault(&["agent", "add", "hermes"]).assert().success();
    let before = secret_rows(&env);
    let lock = hold_write_lock(&env);
    let start = Instant::now();
    let out = env
        .vault(&["--json", "set", "hermes/API_TOKEN"])
        .env("VAULT_BUSY_TIMEOUT", "400ms")
        .write_stdin("a-value-that-must-not-land")
        .assert()
        .code(75);
    let took = start.elapsed();
    assert!(took >= Duration::from_millis(400), "it waited: {took:?}");
    let v: serde_json::Value = serde_json::from_str(&stdout_of(&out)).unwrap_or_else(|_| {
        serde_json::from_str(&stderr_of(&out)).expect("a JSON error on stdout or stderr")
    });
    let text = v.to_string();
    assert!(text.contains("\"store_busy\""), "{text}");
    assert!(text.contains("locked by another process"), "{text}");
    assert!(text.contains("nothing was changed"), "{text}");
    assert!(!text.contains("a-value-that-must-not-land"), "{text}");
    drop(lock);
    assert_eq!(secret_rows(&env), before, "nothing was written");
    // without --json the person reads the same sentence, not "database is locked"
    let lock = hold_write_lock(&env);
    let out = env
        .vault(&["set", "hermes/API_TOKEN"])
        .env("VAULT_BUSY_TIMEOUT", "300ms")
        .write_stdin("a-value-that-must-not-land")
        .assert()
        .code(75);
    let err = stderr_of(&out);
    assert!(err.contains("VAULT_BUSY_TIMEOUT"), "{err}");
    assert!(!err.contains("database is locked"), "{err}");
    drop(lock);
    // a wait that is not a duration is a usage error naming the variable
    let out = env
        .vault(&["ls"])
        .env("VAULT_BUSY_TIMEOUT", "soon")
        .assert()
        .code(2);
    assert!(
        stderr_of(&out).contains("VAULT_BUSY_TIMEOUT"),
        "{}",
        stderr_of(&out)
    );
}

#[test]
fn a_short_overlap_is_waited_out_and_the_write_lands() {
    let env = Env::new();
    env.vault(&["agent", "add", "hermes"]).assert().success();
    // how long the command takes with nobody in its way
    let start = Instant::now();
    env.set("hermes/FIRST", "first-value");
    let alone = start.elapsed();
    let hold = Duration::from_secs(2);
    assert!(alone < hold, "the command alone took {alone:?}");

    let lock = hold_write_lock(&env);
    let mut child = env.vault(&["set", "hermes/SECOND"]);
    child.write_stdin("second-value");
    let start = Instant::now();
    let runner = std::thread::spawn(move || {
        child.assert().success();
    });
    std::thread::sleep(hold);
    assert!(!runner.is_finished(), "the write waited for the lock");
    lock.execute_batch("COMMIT").unwrap();
    runner.join().unwrap();
    assert!(start.elapsed() >= hold);
    assert_eq!(env.get("hermes/SECOND"), "second-value");
}
