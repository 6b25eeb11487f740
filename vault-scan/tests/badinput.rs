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

/// The process's peak resident set (`VmHWM`), in bytes, where Linux reports it.
fn peak_rss() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

// issue 18, "Bad input": a file of one 64 MiB line, walked as a user's tree is, is streamed:
// the token at its end is found, at line 1, and the scan holds far less than the file.
#[test]
fn a_file_of_one_64_mib_line_is_streamed_with_bounded_memory() {
    use std::io::Write as _;
    let token = fresh_ghp();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("one-line.txt");
    let mut file = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
    let chunk = crate::fresh(1 << 16);
    for _ in 0..(64 << 20) / chunk.len() {
        file.write_all(chunk.as_bytes()).unwrap();
    }
    writeln!(file, " GH_TOKEN={token}").unwrap();
    file.into_inner().unwrap().sync_all().unwrap();
    drop(chunk);

    let before = peak_rss();
    let t = Instant::now();
    let r = vault_scan::scan_paths(
        scanner(),
        None,
        &[dir.path().to_path_buf()],
        &ScanOptions::default(),
    );
    let took = t.elapsed();
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    assert!(has(&r, &token), "{:?}", r.findings);
    assert_eq!(r.findings[0].line, 1);
    assert!(took < Duration::from_secs(60), "{took:?}");
    // One process per test (nextest, as CI runs it) makes the peak this scan's: streaming
    // keeps it far under the file's 64 MiB. Other runners share the process, so the peak
    // there is every test's and is not asserted.
    if std::env::var("NEXTEST_EXECUTION_MODE").as_deref() == Ok("process-per-test") {
        let (Some(before), Some(after)) = (before, peak_rss()) else {
            return;
        };
        let grew = after.saturating_sub(before);
        assert!(grew < 32 << 20, "peak grew {} MiB", grew >> 20);
    }
}

// issue 18, "Bad input": JSON nested 10,000 deep is still scanned as text, and the report
// says why its strings were not decoded (the decoder's depth limit), not just "invalid".
#[test]
fn json_nested_past_the_decoders_limit_is_scanned_raw_with_a_note() {
    let token = fresh_ghp();
    let depth = 10_000;
    let json = format!("{}\"{token}\"{}", "[".repeat(depth), "]".repeat(depth));
    let (r, _) = scan("deep.json", json.as_bytes());
    assert!(has(&r, &token), "{:?}", r.findings);
    assert!(
        r.errors
            .iter()
            .any(|e| e.path == "deep.json" && e.message.contains("nested deeper")),
        "{:?}",
        r.errors
    );
}

/// `text` with every character written as a JSON `\uXXXX` escape.
fn every_char_escaped(text: &str) -> String {
    text.chars()
        .map(|c| format!("\\u{:04x}", c as u32))
        .collect()
}

// issue 18, "Bad input": a token whose every character is a `\u` escape in a JSON string
// (in a .json file, a JSONL transcript line, and JSON inside a JSON string) is found once,
// at the line of the string that holds it.
#[test]
fn a_token_with_every_character_unicode_escaped_is_found_once_at_its_line() {
    let token = fresh_ghp();
    let escaped = every_char_escaped(&token);
    // The lines at which `name` holding `text` reports the token.
    let lines = |name: &str, text: &str| -> Vec<u64> {
        let (r, _) = scan(name, text.as_bytes());
        r.findings
            .iter()
            .filter(|f| f.rule == "github.pat-classic")
            .map(|f| f.line)
            .collect()
    };
    let object = format!("{{\n  \"a\": 1,\n  \"token\": \"{escaped}\"\n}}\n");
    assert_eq!(lines("config.json", &object), [3]);
    let jsonl = format!("{{\"role\":\"user\"}}\n{{\"role\":\"user\",\"content\":\"{escaped}\"}}\n");
    assert_eq!(lines("session.jsonl", &jsonl), [2]);

    let inner = format!("{{\"t\":\"{escaped}\"}}");
    let nested = format!(
        "{{\"arguments\":{}}}\n",
        serde_json::to_string(&inner).unwrap()
    );
    let (r, _) = scan("call.jsonl", nested.as_bytes());
    assert!(has(&r, &token), "{nested}: {:?}", r.findings);
}
