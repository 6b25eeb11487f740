//! ChatGPT data export (`conversations.json`: one JSON document of nested mappings whose
//! message parts are strings, possibly JSON-in-JSON): never a panic, findings inside the input.
#![no_main]

#[path = "scan_common.rs"]
mod common;

use libfuzzer_sys::fuzz_target;
use vault_scan::{scan_bytes, ScanOptions};

fuzz_target!(|data: &[u8]| {
    let r = scan_bytes(
        common::scanner(),
        None,
        "chatgpt-export/conversations.json",
        data,
        &ScanOptions::default(),
    );
    common::check(&r, Some(common::lines(data)));
});
