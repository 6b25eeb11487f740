//! Slack workspace export (`<channel>/<day>.json` message arrays, `channels.json`,
//! `users.json`): never a panic, findings inside the input.
#![no_main]

#[path = "scan_common.rs"]
mod common;

use libfuzzer_sys::fuzz_target;
use vault_scan::{scan_bytes, ScanOptions};

fuzz_target!(|data: &[u8]| {
    let r = scan_bytes(
        common::scanner(),
        None,
        "slack-export/agent-ops/2026-08-20.json",
        data,
        &ScanOptions::default(),
    );
    common::check(&r, Some(common::lines(data)));
});
