//! Issue 18, item 5: hostile or broken input is scanned or skipped with a note, never a
//! panic, in bounded time; a token around it is still found.

use std::time::{Duration, Instant};

use vault_scan::{redact, scan_bytes, ScanOptions};

use crate::parallel::fresh_ghp;
use crate::scanner;

fn scan(name: &str, data: &[u8]) -> (vault_scan::Report, Duration) {
    let t = Instant::now();
    let r = scan_bytes(scanner(), None, name, data, &ScanOptions::default());
    (r, t.elapsed())
}

fn has(r: &vault_scan::Report, token: &str) -> bool {
    let red = redact(token.as_bytes());
    r.findings.iter().any(|f| f.redacted == red)
}

// issue 18, item 5: invalid UTF-8 around a token, and JSON nested 10,000 deep.
#[test]
fn invalid_utf8_and_deeply_nested_json_are_scanned_without_panic() {
    let token = fresh_ghp();
    let mut data = b"\xff\xfe\xc3(junk \xed\xa0\x80 ".to_vec();
    data.extend_from_slice(format!("GH_TOKEN={token}\n").as_bytes());
    data.extend_from_slice(b"\xf0\x28\x8c\x28\n");
    let (r, took) = scan("notes.txt", &data);
    assert!(has(&r, &token), "{:?}", r.findings);
    assert!(took < Duration::from_secs(5));

    let depth = 10_000;
    let mut json = "[".repeat(depth);
    json.push_str(&format!("\"{token}\""));
    json.push_str(&"]".repeat(depth));
    let (r, took) = scan("deep.json", json.as_bytes());
    // Found in the raw text whatever the decoder makes of the depth.
    assert!(has(&r, &token), "{:?}", r.findings);
    assert!(took < Duration::from_secs(10), "{took:?}");
}

// issue 18, item 5: a giant base64 blob on one line is bounded; a token after it is found.
#[test]
fn a_giant_base64_line_is_scanned_in_bounded_time() {
    let token = fresh_ghp();
    let blob = crate::fresh(64).repeat((16 << 20) / 64);
    let data = format!("data:application/octet-stream;base64,{blob}\nGH_TOKEN={token}\n");
    let (r, took) = scan("blob.txt", data.as_bytes());
    assert!(has(&r, &token));
    assert!(took < Duration::from_secs(30), "{took:?}");
}
