//! vault-scan: the leak scanner as a library.
//!
//! It finds credentials in files, directories, stdin, git staged content and agent
//! transcripts (Hermes, OpenClaw, Claude Code, Codex, Gemini CLI, Aider, ChatGPT exports,
//! Slack exports, OpenAI message arrays), using provider rules kept as data
//! (`rules/*.toml`, embedded at build time) and a two-pass engine: an Aho-Corasick
//! prefilter over rule keywords, then each rule's confirm regex only near a keyword hit.
//!
//! What lives here: rules, engine, inputs, outputs, baselines. What must not: any database
//! of the vault, any dependency on vault-core, any network access. Secrets never leave the
//! crate except to the caller's [`KnownSecrets`] matcher; every [`Finding`] carries only a
//! redacted form (`ghp_FA…l4WV`) and a fingerprint.
//!
//! ```
//! use vault_scan::{scan_bytes, ScanOptions, Scanner};
//!
//! let scanner = Scanner::builtin().unwrap();
//! let text = b"GH_TOKEN=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\n";
//! let report = scan_bytes(&scanner, None, "demo.env", text, &ScanOptions::default());
//! assert_eq!(report.findings[0].rule, "github.pat-classic");
//! assert_eq!(report.findings[0].redacted, "ghp_FA…l4WV");
//! ```
#![deny(missing_docs)]

mod baseline;
mod context;
mod dedup;
mod engine;
mod error;
mod finding;
mod guard;
mod input;
mod known;
pub mod output;
mod redact;
mod rule;
mod shape;
mod span;
mod stream;

pub use baseline::Baseline;
pub use engine::{Match, Scanner, STORED_SECRET_RULE, VAULT_PROVIDER};
pub use error::Error;
pub use finding::{Finding, Report, ScanError, SkipKind, Skipped, SqliteLocation};
pub use input::staged::scan_staged;
pub use input::{
    scan_bytes, scan_file, scan_paths, scan_paths_with_progress, scan_reader, scan_reader_with,
    Progress, ScanOptions,
};
pub use known::{KnownSecrets, ManagedInfo};
pub use redact::redact;
pub use rule::{
    builtin_rules, crc32_base62, crc32_base62_ok, parse_rules, ChecksumPolicy, Confidence, Rule,
    Validator, Windows, VAULT_TOKEN_MAX_LEN,
};
pub use span::Span;

#[doc(hidden)]
pub mod testing {
    //! Hooks for the crate's own tests and benches; not a stable API.
    use crate::engine::Scanner;
    use crate::known::KnownSecrets;

    /// A staged file as `git diff --cached --raw -z` describes it: status letter, old and
    /// new object ids, and the staged path.
    pub type StagedRawEntry = (char, String, String, String);

    /// What `--staged` reads from `git diff --cached --raw -z` output, or an error for
    /// output of another shape. Exposed for the fuzz target of that parser.
    pub fn parse_staged_raw(data: &[u8]) -> Result<Vec<StagedRawEntry>, String> {
        Ok(crate::input::staged::parse_raw(data)?
            .into_iter()
            .map(|e| (e.status, e.old_id, e.new_id, e.path))
            .collect())
    }

    /// The unkeyed fingerprint a finding of `secret` under `rule_id` carries when the value
    /// is not vault-managed; tests check a managed finding never carries it.
    pub fn unkeyed_fingerprint(rule_id: &str, secret: &[u8]) -> String {
        crate::redact::fingerprint(rule_id, secret)
    }

    /// Private copies of SQLite databases made so far on the calling thread (an on-disk
    /// store is normally read in place, with none).
    pub fn sqlite_copies() -> usize {
        crate::input::sqlite::copies_on_this_thread()
    }

    /// Findings as `(line, column, rule, redacted)` when `chunks` are pushed in order.
    pub fn scan_chunks(
        scanner: &Scanner,
        known: Option<&dyn KnownSecrets>,
        chunks: &[&[u8]],
    ) -> Vec<(u64, u64, String, String)> {
        let mut s = crate::stream::StreamScanner::new(scanner, known);
        for c in chunks {
            s.push(c);
        }
        s.finish()
            .into_iter()
            .map(|l| (l.line, l.column, l.hit.rule_id, l.hit.redacted))
            .collect()
    }
}
