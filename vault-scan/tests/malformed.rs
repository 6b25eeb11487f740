//! Hostile input: a clear per-file error, the rest still scanned, never "clean".

use std::io::Write;

use vault_scan::{scan_paths, scan_reader, ScanOptions};

use crate::scanner;

const TOKEN: &str = "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";

#[test]
fn bad_inputs_are_errors_and_good_ones_still_scanned() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path();
    std::fs::write(p.join("good.env"), format!("T={TOKEN}\n")).unwrap();
    std::fs::write(
        p.join("trunc.jsonl"),
        format!("{{\"a\":\"{TOKEN}\"}}\n{{\"b\":\"unterminated"),
    )
    .unwrap();
    std::fs::write(
        p.join("corrupt.db"),
        b"SQLite format 3\0garbage garbage garbage",
    )
    .unwrap();
    std::fs::write(
        p.join("rollout.jsonl.zst"),
        b"\x28\xb5\x2f\xfdnot really zstd",
    )
    .unwrap();
    std::fs::write(
        p.join("latin1.txt"),
        b"caf\xe9 \xff\xfe T=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\n",
    )
    .unwrap();
    std::fs::write(
        p.join("bin.dat"),
        b"\x00\x01\x02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",
    )
    .unwrap();
    let r = scan_paths(scanner(), None, &[p.to_path_buf()], &ScanOptions::default());
    let err_paths: Vec<&str> = r.errors.iter().map(|e| e.path.as_str()).collect();
    for bad in ["trunc.jsonl", "corrupt.db", "rollout.jsonl.zst"] {
        assert!(
            err_paths.iter().any(|e| e.ends_with(bad)),
            "{bad} not an error: {:?}",
            r.errors
        );
    }
    for good in ["good.env", "trunc.jsonl", "latin1.txt"] {
        assert!(
            r.findings.iter().any(|f| f.path.ends_with(good)),
            "{good} not scanned"
        );
    }
    assert!(r.skipped.iter().any(|s| s.path.ends_with("bin.dat")));
    assert_eq!(r.exit_code(), 2);
}

#[test]
fn zstd_rollout_is_decoded() {
    // A stored-only (raw block) zstd frame built by hand: magic, header, one raw last block.
    let payload = format!("{{\"payload\":{{\"text\":\"{TOKEN}\"}}}}\n");
    let mut frame = vec![0x28, 0xb5, 0x2f, 0xfd];
    // Frame header descriptor: single segment, 1-byte content size.
    frame.push(0x20);
    frame.push(payload.len() as u8);
    let bh = ((payload.len() as u32) << 3) | 1; // last block, raw
    frame.extend_from_slice(&bh.to_le_bytes()[..3]);
    frame.extend_from_slice(payload.as_bytes());
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("rollout-x.jsonl.zst");
    std::fs::write(&f, frame).unwrap();
    let r = scan_paths(scanner(), None, &[f], &ScanOptions::default());
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    assert_eq!(r.findings.len(), 1);
    assert_eq!((r.findings[0].line, r.findings[0].column), (1, 21));
}

#[test]
fn size_cap_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("big.txt");
    std::fs::File::create(&f)
        .unwrap()
        .write_all(&[b'a'; 4096])
        .unwrap();
    let opts = ScanOptions {
        max_file_size: Some(1000),
        ..ScanOptions::default()
    };
    let r = scan_paths(scanner(), None, &[f], &opts);
    assert_eq!(r.skipped.len(), 1);
    assert!(r.skipped[0].reason.contains("size cap"));
}

/// A reader yielding one very long line without holding it.
struct LongLine {
    left: u64,
    tail: Vec<u8>,
}

impl std::io::Read for LongLine {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.left > 0 {
            let n = (buf.len() as u64).min(self.left) as usize;
            buf[..n].fill(b'a');
            buf[n.saturating_sub(1)] = b' ';
            self.left -= n as u64;
            return Ok(n);
        }
        let n = self.tail.len().min(buf.len());
        buf[..n].copy_from_slice(&self.tail[..n]);
        self.tail.drain(..n);
        Ok(n)
    }
}

#[test]
fn very_long_line_is_scanned_with_bounded_memory() {
    // 64 MiB here keeps the test quick; memory is bounded by MAX_SEGMENT, not input size.
    let mut r = LongLine {
        left: 64 << 20,
        tail: format!(" {TOKEN}\n").into_bytes(),
    };
    let rep = scan_reader(scanner(), None, "<long>", &mut r);
    assert_eq!(rep.findings.len(), 1);
    assert_eq!(rep.findings[0].line, 1);
}
