//! SQLite transcript stores read from disk (Hermes `state.db`, OpenClaw): the bytes are
//! written to a temp file and scanned in place, as `vault scan` reads a store. A corrupt
//! database is an error for that file, never a panic; cells are located by table and key.
//! Seeds: fuzz/run.sh builds databases from the samples' .sql scripts.
#![no_main]

#[path = "scan_common.rs"]
mod common;

use libfuzzer_sys::fuzz_target;
use vault_scan::{scan_paths, ScanOptions};

fuzz_target!(|data: &[u8]| {
    let dir = tempfile::TempDir::new().unwrap();
    let db = dir.path().join("state.db");
    std::fs::write(&db, data).unwrap();
    let r = scan_paths(common::scanner(), None, &[db], &ScanOptions::default());
    let lines = (!data.starts_with(b"SQLite format 3\0")).then(|| common::lines(data));
    common::check(&r, lines);
    // A reader never writes: nothing but the database is left in its directory.
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
});
