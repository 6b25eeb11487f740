//! The env-file writer and reader: a value written with upsert_var reads back
//! identically, and the other lines of the file are kept.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vault_core::envfile;

fuzz_target!(|data: &[u8]| {
    let Ok(value) = std::str::from_utf8(data) else { return };
    if value.is_empty() || value.contains('\0') || envfile::dotenv_value(value).is_err() {
        return;
    }
    let dir = tempfile::TempDir::new().unwrap();
    let path = dir.path().join(".env");
    std::fs::write(&path, "# keep\nOTHER=1\n").unwrap();
    envfile::upsert_var(&path, "FUZZ", value).unwrap();
    assert_eq!(envfile::value_of(&path, "FUZZ").unwrap().unwrap().as_str(), value);
    assert!(std::fs::read_to_string(&path).unwrap().starts_with("# keep\nOTHER=1\n"));
});
