//! Issue 18, item 2 (both cores): a directory scan on several threads reports exactly what
//! one thread does, in the same (walk) order.

use vault_scan::{crc32_base62, scan_paths, ScanOptions};

use crate::scanner;

/// A fresh, checksum-valid classic GitHub token drawn at test time.
pub fn fresh_ghp() -> String {
    let body = crate::fresh(30);
    let check = crc32_base62(body.as_bytes());
    format!("ghp_{body}{}", String::from_utf8_lossy(&check))
}

// issue 18, item 2: output order is deterministic whatever the thread count.
#[test]
fn a_walk_scanned_on_many_threads_reports_what_one_thread_does_in_walk_order() {
    let dir = tempfile::tempdir().unwrap();
    let mut planted = Vec::new();
    for d in 0..6 {
        for f in 0..40 {
            let sub = dir.path().join(format!("d{d}/s{}", f % 3));
            std::fs::create_dir_all(&sub).unwrap();
            let token = fresh_ghp();
            // Sizes vary so workers finish out of order.
            let filler = "x = 1\n".repeat((f * 37 + d * 11) % 300);
            std::fs::write(
                sub.join(format!("f{f}.env")),
                format!("{filler}GH_TOKEN={token}\n"),
            )
            .unwrap();
            planted.push(token);
        }
    }
    let run = |threads: usize| {
        let opts = ScanOptions {
            threads: Some(threads),
            ..ScanOptions::default()
        };
        scan_paths(scanner(), None, &[dir.path().to_path_buf()], &opts)
    };
    let one = run(1);
    assert_eq!(one.findings.len(), planted.len());
    for threads in [2, 4, 8] {
        for _ in 0..3 {
            let many = run(threads);
            assert_eq!(many.findings, one.findings, "{threads} threads");
            assert_eq!((many.files, many.bytes), (one.files, one.bytes));
        }
    }
    // Walk order: sorted by path component by component.
    let paths: Vec<&std::path::Path> = one
        .findings
        .iter()
        .map(|f| std::path::Path::new(&f.path))
        .collect();
    let mut sorted = paths.clone();
    sorted.sort();
    assert_eq!(paths, sorted);
}
