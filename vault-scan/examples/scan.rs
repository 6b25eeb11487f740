//! Minimal command-line driver used by bench/scan-peers.sh until `vault scan` exists:
//! `scan [--no-ignore] [--json] [--staged] [--confidence=low|medium|high] PATH...`; exit 0
//! clean, 1 findings, 2 errors.

use std::path::PathBuf;
use std::time::Instant;

use vault_scan::{output, scan_paths, ScanOptions, Scanner};

fn main() {
    let mut options = ScanOptions::default();
    let mut json = false;
    let mut staged = false;
    let mut paths = Vec::new();
    for a in std::env::args().skip(1) {
        match a.as_str() {
            "--no-ignore" => options.respect_ignore = false,
            "--json" => json = true,
            "--staged" => staged = true,
            _ if a.starts_with("--confidence=") => {
                match vault_scan::Confidence::parse(&a["--confidence=".len()..]) {
                    Some(c) => options.min_confidence = c,
                    None => {
                        eprintln!("error: --confidence takes low, medium or high");
                        std::process::exit(2);
                    }
                }
            }
            _ => paths.push(PathBuf::from(a)),
        }
    }
    let t = Instant::now();
    let scanner = match Scanner::builtin() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(2);
        }
    };
    let report = if staged {
        vault_scan::scan_staged(&scanner, None, std::path::Path::new("."), &options)
    } else {
        scan_paths(&scanner, None, &paths, &options)
    };
    let secs = t.elapsed().as_secs_f64();
    let stdout = &mut std::io::stdout();
    let written = if json {
        output::write_json(stdout, &report)
    } else {
        output::write_human(stdout, &report, false)
    };
    if written.is_err() {
        std::process::exit(2);
    }
    eprintln!(
        "{} files, {:.1} MB in {:.3} s = {:.1} MB/s, {} findings",
        report.files,
        report.bytes as f64 / 1e6,
        secs,
        report.bytes as f64 / 1e6 / secs,
        report.findings.len()
    );
    std::process::exit(report.exit_code());
}
