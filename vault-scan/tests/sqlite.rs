//! SQLite stores are read in place, read-only, without a copy, whether a live agent holds
//! them in WAL or rollback-journal mode; the one case needing a copy keeps it private and
//! removes it (issue 5).

use std::collections::BTreeMap;
use std::path::Path;

use rusqlite::Connection;
use vault_scan::testing::sqlite_copies;
use vault_scan::{scan_bytes, scan_paths, Report, ScanOptions};

use crate::scanner;

const TOKEN: &str = "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";
const OTHER: &str = "glpat-FAKE000000000000DEMO";

fn scan(path: &Path) -> Report {
    scan_paths(
        scanner(),
        None,
        &[path.to_path_buf()],
        &ScanOptions::default(),
    )
}

/// Name -> bytes of every file in `dir`, leaving out `skip`.
fn files(dir: &Path, skip: &[&str]) -> BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap())
        .map(|e| (e.file_name().to_string_lossy().into_owned(), e.path()))
        .filter(|(n, _)| !skip.contains(&n.as_str()))
        .map(|(n, p)| (n, std::fs::read(p).unwrap()))
        .collect()
}

fn copies_left() -> Vec<String> {
    std::fs::read_dir(std::env::temp_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("vault-scan-sqlite-"))
        .collect()
}

fn writer(db: &Path, journal: &str) -> Connection {
    let c = Connection::open(db).unwrap();
    c.pragma_update(None, "journal_mode", journal).unwrap();
    c.pragma_update(None, "wal_autocheckpoint", 0).unwrap();
    c.execute_batch("CREATE TABLE messages (id INTEGER PRIMARY KEY, content TEXT)")
        .unwrap();
    c
}

#[test]
fn a_live_wal_store_is_read_in_place_with_its_uncheckpointed_frames() {
    let d = tempfile::tempdir().unwrap();
    let db = d.path().join("state.db");
    let live = writer(&db, "wal");
    live.execute(
        "INSERT INTO messages VALUES (1, ?1)",
        [format!("key {TOKEN}")],
    )
    .unwrap();
    // The row is only in the WAL: the main file does not hold it yet.
    assert!(
        std::fs::metadata(d.path().join("state.db-wal"))
            .unwrap()
            .len()
            > 0
    );
    assert!(!String::from_utf8_lossy(&std::fs::read(&db).unwrap()).contains(TOKEN));
    let before = files(d.path(), &["state.db-shm"]);
    let copies = sqlite_copies();
    let r = scan(&db);
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    assert_eq!(r.findings.len(), 1, "{r:?}");
    assert_eq!(r.findings[0].sqlite.as_ref().unwrap().key, "id=1");
    assert_eq!(sqlite_copies(), copies, "read in place, not copied");
    // Nothing written, created or left locked: the database and WAL are byte-identical, and
    // the agent goes on writing.
    assert_eq!(files(d.path(), &["state.db-shm"]), before);
    live.execute("INSERT INTO messages VALUES (2, 'more')", [])
        .unwrap();
}

#[test]
fn a_store_locked_by_a_rollback_writer_is_read_without_waiting_or_copying() {
    let d = tempfile::tempdir().unwrap();
    let db = d.path().join("transcripts.sqlite");
    let live = writer(&db, "delete");
    live.execute(
        "INSERT INTO messages VALUES (1, ?1)",
        [format!("key {TOKEN}")],
    )
    .unwrap();
    // The writer is mid-transaction holding an exclusive lock: a locking reader would get
    // SQLITE_BUSY; the immutable reader takes no lock and reads the committed row.
    live.execute_batch("BEGIN EXCLUSIVE; INSERT INTO messages VALUES (2, 'pending');")
        .unwrap();
    let before = files(d.path(), &[]);
    let copies = sqlite_copies();
    let r = scan(&db);
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    assert_eq!(r.findings.len(), 1, "{r:?}");
    assert_eq!(sqlite_copies(), copies, "read in place, not copied");
    assert_eq!(files(d.path(), &[]), before);
    live.execute_batch("COMMIT").unwrap();
}

#[test]
fn wal_frames_without_an_index_are_recovered_in_a_private_copy_that_is_removed() {
    // A writer that died before writing its -shm: the database and WAL files alone.
    let live_dir = tempfile::tempdir().unwrap();
    let live_db = live_dir.path().join("state.db");
    let live = writer(&live_db, "wal");
    live.execute(
        "INSERT INTO messages VALUES (1, ?1)",
        [format!("key {OTHER}")],
    )
    .unwrap();
    let d = tempfile::tempdir().unwrap();
    let db = d.path().join("state.db");
    std::fs::copy(&live_db, &db).unwrap();
    std::fs::copy(
        live_dir.path().join("state.db-wal"),
        d.path().join("state.db-wal"),
    )
    .unwrap();
    drop(live);
    let before = files(d.path(), &[]);
    let left = copies_left();
    let copies = sqlite_copies();
    let r = scan(&db);
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    assert_eq!(r.findings.len(), 1, "{r:?}");
    assert_eq!(sqlite_copies(), copies + 1);
    // No -shm was created beside the store; the copy is gone.
    assert_eq!(files(d.path(), &[]), before);
    assert!(copies_left().iter().all(|c| left.contains(c)));
}

#[test]
fn a_database_in_memory_goes_through_a_removed_private_copy() {
    let d = tempfile::tempdir().unwrap();
    let db = d.path().join("x.db");
    let c = writer(&db, "delete");
    c.execute("INSERT INTO messages VALUES (1, ?1)", [TOKEN])
        .unwrap();
    drop(c);
    let data = std::fs::read(&db).unwrap();
    let left = copies_left();
    let copies = sqlite_copies();
    let r = scan_bytes(scanner(), None, "blob.db", &data, &ScanOptions::default());
    assert_eq!(r.findings.len(), 1, "{r:?}");
    // And on the error path: a truncated database.
    let r = scan_bytes(
        scanner(),
        None,
        "bad.db",
        &data[..200],
        &ScanOptions::default(),
    );
    assert_eq!(r.errors.len(), 1, "{r:?}");
    assert_eq!(sqlite_copies(), copies + 2);
    assert!(copies_left().iter().all(|c| left.contains(c)));
}
