//! JSONL transcripts (Claude Code, Codex, Gemini CLI, Hermes and OpenClaw sessions): any
//! bytes named `*.jsonl` scan to findings that point inside the input, or to errors; never a
//! panic. Seeds: the sample sessions under vault-scan/tests/data/samples.
#![no_main]

#[path = "scan_common.rs"]
mod common;

use libfuzzer_sys::fuzz_target;
use vault_scan::{scan_bytes, ScanOptions};

fuzz_target!(|data: &[u8]| {
    let r = scan_bytes(
        common::scanner(),
        None,
        "session.jsonl",
        data,
        &ScanOptions::default(),
    );
    common::check(&r, Some(common::lines(data)));
});
