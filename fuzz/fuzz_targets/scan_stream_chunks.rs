//! The engine's promise (tests/equivalence.rs) on arbitrary input: the same findings whether
//! the text arrives whole, cut in two anywhere, or line by line. Inputs of 1 KiB and more
//! also exercise the interleaved DFA lanes against the single walk used for short chunks.
#![no_main]

#[path = "scan_common.rs"]
mod common;

use libfuzzer_sys::fuzz_target;
use vault_scan::testing::scan_chunks;

fuzz_target!(|data: &[u8]| {
    let Some((&cut, text)) = data.split_first() else {
        return;
    };
    let s = common::scanner();
    let whole = scan_chunks(s, None, &[text]);
    let at = (cut as usize * text.len()) / 255;
    let (a, b) = text.split_at(at);
    assert_eq!(scan_chunks(s, None, &[a, b]), whole, "cut at {at}");
    let lines: Vec<&[u8]> = text.split_inclusive(|&b| b == b'\n').collect();
    assert_eq!(scan_chunks(s, None, &lines), whole, "line by line");
});
