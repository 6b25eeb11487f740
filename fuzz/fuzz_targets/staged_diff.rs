//! The `--staged` reader's parser of `git diff --cached --raw -z` output: any bytes give a
//! list of entries or an error, never a panic; object ids are hex and the paths are exactly
//! NUL-free fields of the input (issue 13, finding 4: paths are never re-parsed from text).
#![no_main]

use libfuzzer_sys::fuzz_target;
use vault_scan::testing::parse_staged_raw;

fuzz_target!(|data: &[u8]| {
    if let Ok(entries) = parse_staged_raw(data) {
        for (_status, old, new, path) in entries {
            assert!(old.bytes().all(|b| b.is_ascii_hexdigit()));
            assert!(new.bytes().all(|b| b.is_ascii_hexdigit()));
            assert!(!path.contains('\0'));
        }
    }
});
