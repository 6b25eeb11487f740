//! The `--staged` reader's parser of `git diff --cached -U0` output: any text gives a list
//! of files and added-line ranges, never a panic; every kept range is non-empty.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vault_scan::testing::parse_staged_diff;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    for (path, _binary, added) in parse_staged_diff(&text) {
        assert!(!path.contains('\n'));
        assert!(added.iter().all(|&(_, count)| count > 0));
    }
});
