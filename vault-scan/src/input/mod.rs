//! Inputs: files and directories, stdin, git staged content and agent transcripts.

mod files;
mod json;
pub(crate) mod sqlite;
pub mod staged;

use std::io::Read;
use std::path::Path;

use crate::context;
use crate::engine::Scanner;
use crate::finding::{Finding, Report, ScanError, SkipKind, Skipped};
use crate::known::KnownSecrets;
use crate::rule::Confidence;
use crate::stream::{Located, StreamScanner};

pub use files::{scan_paths, scan_paths_with_progress, Progress};

/// How inputs are read.
#[derive(Clone, Debug)]
pub struct ScanOptions {
    /// Respect `.gitignore`, `.ignore` and git excludes (`.vaultignore` is always respected).
    pub respect_ignore: bool,
    /// Files larger than this are skipped and reported (`None`: no cap).
    pub max_file_size: Option<u64>,
    /// Largest JSON document decoded for escapes (larger ones are scanned raw only).
    pub max_decode_size: u64,
    /// Also report matches that fail their provider's documented checksum (GitHub, npm),
    /// at low confidence and marked `invalid_checksum`; by default they are not findings,
    /// since every real token of those formats passes it (issue 18, item 2).
    pub include_invalid: bool,
    /// Findings below this level are left out (`--confidence`). The default, `medium`,
    /// shows what a person should act on: provider formats and generic assignments that
    /// pass the value-shape checks, outside test, fixture, example and documentation
    /// paths (which lower every finding to `low`; see `context.rs`). Vault-managed values
    /// are always shown.
    pub min_confidence: Confidence,
    /// Threads scanning the files of a walk (`None`: one per core). The report is in walk
    /// order whatever the number.
    pub threads: Option<usize>,
}

impl Default for ScanOptions {
    fn default() -> Self {
        ScanOptions {
            respect_ignore: true,
            max_file_size: Some(256 << 20),
            max_decode_size: 64 << 20,
            include_invalid: false,
            min_confidence: Confidence::Medium,
            threads: None,
        }
    }
}

/// Scans everything readable from `reader` as one text input named `name` (e.g. stdin).
pub fn scan_reader(
    scanner: &Scanner,
    known: Option<&dyn KnownSecrets>,
    name: &str,
    reader: &mut dyn Read,
) -> Report {
    scan_reader_with(scanner, known, name, reader, &ScanOptions::default())
}

/// [`scan_reader`] with `options` (the confidence filter, `include_invalid`).
pub fn scan_reader_with(
    scanner: &Scanner,
    known: Option<&dyn KnownSecrets>,
    name: &str,
    reader: &mut dyn Read,
    options: &ScanOptions,
) -> Report {
    settle(
        scanner,
        scan_reader_all(scanner, known, name, reader),
        None,
        options,
    )
}

/// [`scan_reader`] keeping matches with a failed checksum.
fn scan_reader_all(
    scanner: &Scanner,
    known: Option<&dyn KnownSecrets>,
    name: &str,
    reader: &mut dyn Read,
) -> Report {
    let mut report = Report::default();
    let mut stream = StreamScanner::new(scanner, known);
    let mut buf = vec![0u8; 1 << 20];
    loop {
        match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                report.bytes += n as u64;
                stream.push(&buf[..n]);
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                report.errors.push(ScanError {
                    path: name.into(),
                    message: e.to_string(),
                });
                break;
            }
        }
    }
    report.files = 1;
    report
        .findings
        .extend(stream.finish().into_iter().map(|l| located(name, l)));
    report
}

/// Drops findings that fail a guaranteed checksum unless `options` asks for them, lowers
/// those of a test or documentation path `rel`, and keeps those at `options`'
/// confidence or above.
pub(crate) fn settle(
    scanner: &Scanner,
    mut report: Report,
    rel: Option<&Path>,
    options: &ScanOptions,
) -> Report {
    if !options.include_invalid {
        report.findings.retain(|f| !f.invalid_checksum);
    }
    context::settle(
        scanner,
        &mut report.findings,
        rel,
        options.min_confidence,
        context::Gate::Tree,
    );
    report
}

/// [`settle`] for a blob about to be committed: a provider-format credential in a test or
/// documentation path keeps its level (see `context.rs`).
pub(crate) fn settle_commit(
    scanner: &Scanner,
    mut report: Report,
    rel: &Path,
    options: &ScanOptions,
) -> Report {
    if !options.include_invalid {
        report.findings.retain(|f| !f.invalid_checksum);
    }
    context::settle(
        scanner,
        &mut report.findings,
        Some(rel),
        options.min_confidence,
        context::Gate::Commit,
    );
    report
}

/// Scans an in-memory buffer as if it were the file `name`, choosing the format by name and
/// content (SQLite, zstd, JSON/JSONL transcripts, plain text).
pub fn scan_bytes(
    scanner: &Scanner,
    known: Option<&dyn KnownSecrets>,
    name: &str,
    data: &[u8],
    options: &ScanOptions,
) -> Report {
    let report = scan_bytes_all(scanner, known, name, data, options);
    settle(
        scanner,
        report,
        Some(context::named(Path::new(name))),
        options,
    )
}

/// [`scan_bytes`] keeping matches with a failed checksum.
fn scan_bytes_all(
    scanner: &Scanner,
    known: Option<&dyn KnownSecrets>,
    name: &str,
    data: &[u8],
    options: &ScanOptions,
) -> Report {
    let mut report = Report {
        files: 1,
        bytes: data.len() as u64,
        ..Report::default()
    };
    if data.starts_with(b"SQLite format 3\0") {
        match sqlite::scan_sqlite_bytes(scanner, known, name, data) {
            Ok(f) => report.findings = f,
            Err(message) => report.errors.push(ScanError {
                path: name.into(),
                message,
            }),
        }
        return report;
    }
    if data.starts_with(&ZSTD_MAGIC) || name.ends_with(".zst") {
        match decompress_zstd(data, options.max_decode_size) {
            Ok(plain) => {
                let inner = name.trim_end_matches(".zst");
                let mut r = scan_text(scanner, known, inner, &plain, options);
                for f in &mut r.findings {
                    f.path = name.into();
                }
                for e in &mut r.errors {
                    e.path = name.into();
                }
                report.findings = r.findings;
                report.errors = r.errors;
            }
            Err(message) => report.errors.push(ScanError {
                path: name.into(),
                message,
            }),
        }
        return report;
    }
    if is_binary(data) {
        return binary_in_walk(scanner, known, name, data);
    }
    let r = scan_text(scanner, known, name, data, options);
    report.findings = r.findings;
    report.errors = r.errors;
    report
}

/// Scans one file from disk.
pub fn scan_file(
    scanner: &Scanner,
    known: Option<&dyn KnownSecrets>,
    path: &Path,
    options: &ScanOptions,
) -> Report {
    scan_file_in(scanner, known, path, context::named(path), options)
}

/// [`scan_file`] of a file whose path relative to the scanned root is `rel`.
pub(crate) fn scan_file_in(
    scanner: &Scanner,
    known: Option<&dyn KnownSecrets>,
    path: &Path,
    rel: &Path,
    options: &ScanOptions,
) -> Report {
    settle(
        scanner,
        scan_file_all(scanner, known, path, options),
        Some(rel),
        options,
    )
}

/// [`scan_file`] before [`settle`].
fn scan_file_all(
    scanner: &Scanner,
    known: Option<&dyn KnownSecrets>,
    path: &Path,
    options: &ScanOptions,
) -> Report {
    let name = path.display().to_string();
    let fail = |message: String| Report {
        errors: vec![ScanError {
            path: name.clone(),
            message,
        }],
        ..Report::default()
    };
    // Opened first, then sized through the handle: one path lookup per file, not two.
    let mut file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) => return fail(e.to_string()),
    };
    let meta = match file.metadata() {
        Ok(m) => m,
        Err(e) => return fail(e.to_string()),
    };
    if let Some(cap) = options.max_file_size {
        if meta.len() > cap {
            return Report {
                skipped: vec![Skipped {
                    path: name,
                    reason: format!("larger than the size cap ({} > {cap} bytes)", meta.len()),
                    kind: SkipKind::Unscanned,
                }],
                ..Report::default()
            };
        }
    }
    let mut head = [0u8; 8192];
    let n = match read_full(&mut file, &mut head) {
        Ok(n) => n,
        Err(e) => return fail(e.to_string()),
    };
    let head = &head[..n];
    if head.starts_with(b"SQLite format 3\0") && meta.len() <= options.max_decode_size {
        // Read in place, not into memory and not copied (see input/sqlite.rs).
        let mut report = Report {
            files: 1,
            bytes: meta.len(),
            ..Report::default()
        };
        match sqlite::scan_sqlite_file(scanner, known, &name, path) {
            Ok(f) => report.findings = f,
            Err(message) => report.errors.push(ScanError {
                path: name,
                message,
            }),
        }
        return report;
    }
    let structured = head.starts_with(b"SQLite format 3\0")
        || head.starts_with(&ZSTD_MAGIC)
        || is_json_name(&name);
    if structured && meta.len() <= options.max_decode_size {
        return match std::fs::read(path) {
            Ok(data) => scan_bytes_all(scanner, known, &name, &data, options),
            Err(e) => fail(e.to_string()),
        };
    }
    if is_binary(head) {
        // Read whole (it is under the size cap) and searched for vault credentials.
        let mut data = head.to_vec();
        if let Err(e) = file.read_to_end(&mut data) {
            return fail(e.to_string());
        }
        return binary_in_walk(scanner, known, &name, &data);
    }
    if meta.len() <= SMALL_FILE {
        // Most files: one read, no streaming buffers.
        let mut data = head.to_vec();
        if let Err(e) = file.read_to_end(&mut data) {
            return fail(e.to_string());
        }
        return scan_bytes_all(scanner, known, &name, &data, options);
    }
    // Plain text (or a JSON file too large to decode): stream it with bounded memory.
    let mut chained = std::io::Cursor::new(head.to_vec()).chain(file);
    scan_reader_all(scanner, known, &name, &mut chained)
}

/// Files up to this size are read whole; larger ones are streamed.
const SMALL_FILE: u64 = 8 << 20;

const ZSTD_MAGIC: [u8; 4] = [0x28, 0xB5, 0x2F, 0xFD];

fn is_json_name(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    n.ends_with(".json") || n.ends_with(".jsonl") || n.ends_with(".ndjson")
}

pub(crate) fn is_binary(data: &[u8]) -> bool {
    data[..data.len().min(8192)].contains(&0)
}

/// [`scan_binary`], saying that provider rules were not applied.
fn binary_in_walk(
    scanner: &Scanner,
    known: Option<&dyn KnownSecrets>,
    name: &str,
    data: &[u8],
) -> Report {
    let mut r = scan_binary(scanner, known, name, data);
    r.skipped.push(Skipped {
        path: name.into(),
        reason: "binary (searched for vault credentials only)".into(),
        kind: SkipKind::Unscanned,
    });
    r
}

/// Formats with NUL bytes that [`scan_bytes`] decodes itself.
pub(crate) fn is_structured(data: &[u8]) -> bool {
    data.starts_with(b"SQLite format 3\0") || data.starts_with(&ZSTD_MAGIC)
}

/// A binary input (NUL bytes: an object file, UTF-16 text, a text file with one NUL put in
/// to look binary) searched for what must never pass: vault credentials and stored secrets.
/// Provider rules are not applied, since random bytes would trip them. It is searched three
/// ways, each keeping byte offsets' line structure: the printable ASCII bytes (others become
/// spaces, which end a candidate), and the ASCII characters of UTF-16 text at even and at
/// odd offsets (little- and big-endian). Issue 13, finding 4.
pub(crate) fn scan_binary(
    scanner: &Scanner,
    known: Option<&dyn KnownSecrets>,
    name: &str,
    data: &[u8],
) -> Report {
    let printable = |b: u8| {
        if b == b'\n' || b == b'\t' || (0x20..0x7f).contains(&b) {
            b
        } else {
            b' '
        }
    };
    let view = |which: usize| -> Vec<u8> {
        match which {
            0 => data.iter().map(|&b| printable(b)).collect(),
            offset => data
                .get(offset - 1..)
                .unwrap_or_default()
                .chunks_exact(2)
                .map(|p| if p[1] == 0 { printable(p[0]) } else { b' ' })
                .collect(),
        }
    };
    // Only vault-provider hits and managed values are kept: with nothing that could be
    // managed, the vault's rules alone find the same (`Scanner::vault_only`).
    let narrow = known.is_none_or(|k| k.lengths().is_empty());
    let scanner = if narrow {
        scanner.vault_only()
    } else {
        scanner
    };
    let mut report = Report {
        files: 1,
        bytes: data.len() as u64,
        ..Report::default()
    };
    let mut seen = std::collections::HashSet::new();
    // One view at a time: the input and one copy held, not three.
    for which in 0..3 {
        // The vault's rules need their keyword: a view that cannot hold one is not built.
        if narrow && !view_may_hold_keyword(scanner, data, which) {
            continue;
        }
        let view = view(which);
        let mut stream = StreamScanner::new(scanner, known);
        stream.push(&view);
        for l in stream.finish() {
            let keep = l.hit.provider == "vault" || l.hit.managed.is_some();
            if keep && seen.insert((l.hit.rule_id.clone(), l.hit.fingerprint.clone())) {
                report.findings.push(located(name, l));
            }
        }
    }
    report
}

/// Whether view `which` of [`scan_binary`] (0: the bytes, 1 and 2: UTF-16 at even and odd
/// offsets) can hold a keyword of `scanner`, found in `data` itself: a printable keyword
/// byte is itself in the ASCII view, and `b` in a UTF-16 view is `b, 0` in the input.
/// `true` when that does not decide it (a rule that ignores case, a keyword with another
/// byte).
fn view_may_hold_keyword(scanner: &Scanner, data: &[u8], which: usize) -> bool {
    let mut keywords = Vec::new();
    for rule in scanner.rules() {
        if rule.ignore_case {
            return true;
        }
        for kw in &rule.keywords {
            if !kw.bytes().all(|b| (0x21..0x7f).contains(&b)) {
                return true;
            }
            keywords.push(kw.as_bytes());
        }
    }
    keywords.iter().any(|kw| match which {
        0 => memchr::memmem::find(data, kw).is_some(),
        _ => {
            let wide: Vec<u8> = kw.iter().flat_map(|&b| [b, 0]).collect();
            memchr::memmem::find_iter(data, &wide).any(|p| p % 2 == which - 1)
        }
    })
}

fn read_full(file: &mut std::fs::File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match file.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

fn decompress_zstd(data: &[u8], cap: u64) -> Result<Vec<u8>, String> {
    let decoder = ruzstd::decoding::StreamingDecoder::new(data)
        .map_err(|e| format!("invalid zstd data: {e}"))?;
    let mut out = Vec::new();
    decoder
        .take(cap + 1)
        .read_to_end(&mut out)
        .map_err(|e| format!("invalid zstd data: {e}"))?;
    if out.len() as u64 > cap {
        return Err(format!("decompressed size exceeds {cap} bytes"));
    }
    Ok(out)
}

/// Plain text, with JSON/JSONL escape decoding when the name or content says JSON.
fn scan_text(
    scanner: &Scanner,
    known: Option<&dyn KnownSecrets>,
    name: &str,
    data: &[u8],
    options: &ScanOptions,
) -> Report {
    let mut report = Report::default();
    let mut stream = StreamScanner::new(scanner, known);
    stream.push(data);
    let raw = stream.finish();
    let trimmed = data.iter().position(|b| !b.is_ascii_whitespace());
    let looks_json = matches!(trimmed.map(|i| data[i]), Some(b'{') | Some(b'['));
    if (is_json_name(name) || looks_json) && data.len() as u64 <= options.max_decode_size {
        let (extra, errors) = json::decoded_findings(scanner, known, name, data, &raw);
        report
            .findings
            .extend(raw.into_iter().map(|l| located(name, l)));
        report.findings.extend(extra);
        if is_json_name(name) {
            report.errors.extend(errors);
        }
        report.findings.sort_by_key(|f| (f.line, f.column));
    } else {
        report
            .findings
            .extend(raw.into_iter().map(|l| located(name, l)));
    }
    report
}

/// Scans one SQLite cell: leading NUL bytes dropped, JSON decoded when it looks like JSON.
pub(crate) fn scan_cell(
    scanner: &Scanner,
    known: Option<&dyn KnownSecrets>,
    name: &str,
    bytes: &[u8],
) -> Vec<Finding> {
    let start = bytes.iter().position(|&b| b != 0).unwrap_or(bytes.len());
    let r = scan_text(scanner, known, "", &bytes[start..], &ScanOptions::default());
    r.findings
        .into_iter()
        .map(|mut f| {
            f.path = name.into();
            f.line = 0;
            f.column = 0;
            f
        })
        .collect()
}

pub(crate) fn located(name: &str, l: Located) -> Finding {
    let h = l.hit;
    Finding {
        path: name.into(),
        line: l.line,
        column: l.column,
        sqlite: None,
        json_pointer: None,
        rule: h.rule_id,
        provider: h.provider,
        name: h.rule_name,
        confidence: h.confidence,
        redacted: h.redacted,
        fingerprint: h.fingerprint,
        managed: h.managed,
        invalid_checksum: h.invalid_checksum,
    }
}
