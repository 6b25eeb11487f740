//! Waiting for another process's write lock (issue 19). A server, a watcher
//! and CLI commands may hold one vault open at once; SQLite lets one of them
//! write at a time, and a writer that finds the lock taken gets SQLITE_BUSY
//! ("database is locked") unless a busy handler waits. This module is that
//! handler, so that a short overlap (a commit is a few milliseconds) is
//! waited out, and a long one ends after a bounded wait with
//! [`crate::Error::StoreBusy`] (`store_busy`, exit 75, HTTP 503), which says
//! what holds the lock and that nothing was changed.
//!
//! Why not SQLite's own `busy_timeout`: it sleeps 1, 2, 5, 10 ... up to
//! 100 ms between tries, so a writer can wait up to 100 ms after the lock was
//! freed (a watcher's rotation behind a server's group commit, issue 19's
//! leak latency). This handler tries again every 0.5 ms at first and at most
//! every 4 ms, and remembers how long it waited so the error can say so.
//!
//! Every writer transaction is `BEGIN IMMEDIATE` (store/mod.rs), so the
//! lock is taken before anything is read and the handler is always asked;
//! durability is untouched (group_commit.rs decides it; waiting changes no
//! pragma).
//!
//! The wait is 30 s, or `VAULT_BUSY_TIMEOUT` (a duration: `500ms`, `2m`)
//! read once per process; an empty variable counts as unset.

use std::cell::Cell;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};

/// How long a writer waits for another's lock unless told otherwise.
pub(crate) const DEFAULT_WAIT: Duration = Duration::from_secs(30);

/// The variable that changes [`DEFAULT_WAIT`].
pub(crate) const ENV: &str = "VAULT_BUSY_TIMEOUT";

/// The longest sleep between two tries.
const MAX_STEP: Duration = Duration::from_millis(4);

static WAIT: OnceLock<Duration> = OnceLock::new();

thread_local! {
    /// When the current wait began (the handler's first call for a lock).
    static STARTED: Cell<Option<Instant>> = const { Cell::new(None) };
    /// How long the last wait on this thread lasted before it gave up.
    static GAVE_UP_AFTER: Cell<Option<Duration>> = const { Cell::new(None) };
    /// A test's own wait (a unit test cannot set the process's variable
    /// safely while other tests run).
    static TEST_WAIT: Cell<Option<Duration>> = const { Cell::new(None) };
}

/// Reads the wait from [`ENV`] (once per process); a value that is not a
/// duration is a usage error naming the variable.
pub(crate) fn configure() -> Result<()> {
    if WAIT.get().is_some() {
        return Ok(());
    }
    let wait = match std::env::var(ENV) {
        Ok(text) if !text.trim().is_empty() => humantime::parse_duration(text.trim())
            .ok()
            .filter(|d| !d.is_zero())
            .ok_or_else(|| Error::InvalidInput {
                what: "environment variable",
                reason: format!("{ENV}={text:?} is not a duration above zero (like 30s or 500ms)"),
            })?,
        _ => DEFAULT_WAIT,
    };
    let _ = WAIT.set(wait);
    Ok(())
}

/// The wait in force on this thread.
pub(crate) fn wait() -> Duration {
    TEST_WAIT
        .get()
        .unwrap_or_else(|| *WAIT.get().unwrap_or(&DEFAULT_WAIT))
}

/// How long the last wait on this thread lasted when it gave up (the wait
/// itself when unknown).
pub(crate) fn gave_up_after() -> Duration {
    GAVE_UP_AFTER.get().unwrap_or_else(wait)
}

/// The busy handler: `count` is how many times it was called for this lock
/// (0 on the first). Sleeps and returns `true` to try again, or `false`
/// once the wait is spent, and SQLite then returns SQLITE_BUSY.
pub(crate) fn handler(count: i32) -> bool {
    let now = Instant::now();
    let started = match STARTED.get() {
        Some(t) if count > 0 => t,
        _ => {
            STARTED.set(Some(now));
            GAVE_UP_AFTER.set(None);
            now
        }
    };
    let waited = now.duration_since(started);
    let wait = wait();
    if waited >= wait {
        GAVE_UP_AFTER.set(Some(waited));
        return false;
    }
    std::thread::sleep(step(count).min(wait - waited));
    true
}

/// The sleep before try `count + 1`: 0.5 ms, doubling to [`MAX_STEP`].
fn step(count: i32) -> Duration {
    let shift = count.clamp(0, 3) as u32;
    Duration::from_micros(500 << shift).min(MAX_STEP)
}

/// Runs `f` with this thread's wait set to `wait` (tests).
#[cfg(test)]
pub(crate) fn with_wait<T>(wait: Duration, f: impl FnOnce() -> T) -> T {
    TEST_WAIT.set(Some(wait));
    let out = f();
    TEST_WAIT.set(None);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Sqlite, Store as _};
    use crate::Principal;

    fn settings_row(store: &Sqlite) -> Result<()> {
        let tx = store.write(&Principal::Operator)?;
        tx.execute(
            "INSERT INTO settings (name, value) VALUES ('notify.command', 'true')
             ON CONFLICT (name) DO UPDATE SET value = 'true'",
            crate::store::sql::args![],
        )?;
        tx.commit()
    }

    #[test]
    fn the_sleep_between_tries_starts_short_and_is_capped() {
        assert_eq!(step(0), Duration::from_micros(500));
        assert_eq!(step(1), Duration::from_millis(1));
        assert_eq!(step(3), MAX_STEP);
        assert_eq!(step(1_000), MAX_STEP);
    }

    #[test]
    fn a_write_waits_for_another_connections_lock_and_commits_once_it_is_freed() {
        // issue 19: a short write overlap between processes is waited out,
        // not "database is locked"
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v.db");
        let holder = Sqlite::create(&path).unwrap();
        let writer = Sqlite::open(&path).unwrap();
        let held = holder.write(&Principal::Operator).unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let t = std::thread::spawn(move || {
            let start = Instant::now();
            tx.send(()).unwrap();
            let r = with_wait(Duration::from_secs(10), || settings_row(&writer));
            (r, start.elapsed())
        });
        rx.recv().unwrap();
        std::thread::sleep(Duration::from_millis(300));
        held.commit().unwrap();
        let (result, took) = t.join().unwrap();
        result.expect("the write went through once the lock was freed");
        assert!(took >= Duration::from_millis(250), "it waited: {took:?}");
        assert!(
            took < Duration::from_secs(5),
            "and not the whole wait: {took:?}"
        );
    }

    #[test]
    fn a_lock_held_past_the_wait_is_a_store_busy_error_after_the_wait() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v.db");
        let holder = Sqlite::create(&path).unwrap();
        let writer = Sqlite::open(&path).unwrap();
        let _held = holder.write(&Principal::Operator).unwrap();
        let start = Instant::now();
        let err = with_wait(Duration::from_millis(400), || settings_row(&writer)).unwrap_err();
        let took = start.elapsed();
        assert!(
            took >= Duration::from_millis(400),
            "waited the bound: {took:?}"
        );
        assert!(took < Duration::from_secs(3), "and then stopped: {took:?}");
        assert_eq!(err.code(), "store_busy", "{err}");
        assert_eq!(err.class(), crate::Class::Busy);
        let text = err.to_string();
        assert!(text.contains("locked by another process"), "{text}");
        assert!(text.contains("nothing was changed"), "{text}");
        assert!(text.contains(ENV), "{text}");
        assert!(!text.contains("database is locked"), "{text}");
        match err {
            Error::StoreBusy { waited_ms, .. } => assert!(waited_ms >= 400, "{waited_ms}"),
            other => panic!("{other:?}"),
        }
    }
}
