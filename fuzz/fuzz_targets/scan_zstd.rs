//! Codex `.jsonl.zst` rollouts: the pure-Rust zstd decoder and the JSONL reader behind it.
//! Truncated or hostile frames are an error for that file, never a panic or unbounded output.
#![no_main]

#[path = "scan_common.rs"]
mod common;

use libfuzzer_sys::fuzz_target;
use vault_scan::{scan_bytes, ScanOptions};

fuzz_target!(|data: &[u8]| {
    let options = ScanOptions {
        max_decode_size: 1 << 20,
        ..ScanOptions::default()
    };
    let r = scan_bytes(common::scanner(), None, "rollout.jsonl.zst", data, &options);
    common::check(&r, None);
});
