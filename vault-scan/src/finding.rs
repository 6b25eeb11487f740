//! What a scan reports: findings (redacted), errors and skipped inputs.

use serde::Serialize;

use crate::known::ManagedInfo;
use crate::rule::Confidence;

/// One leaked credential. Holds only public forms of the secret.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
pub struct Finding {
    /// The input: a file path, `<stdin>`, or a staged path.
    pub path: String,
    /// 1-based line in the file (0 for SQLite cells, which use `sqlite`).
    pub line: u64,
    /// 1-based column, counted in Unicode characters of the raw line.
    pub column: u64,
    /// Where in a SQLite database, for transcript stores.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sqlite: Option<SqliteLocation>,
    /// JSON pointer of the string the secret was decoded from, when escapes hid it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub json_pointer: Option<String>,
    /// Rule id, e.g. `github.pat-classic`.
    pub rule: String,
    /// Provider family.
    pub provider: String,
    /// Rule name.
    pub name: String,
    /// `high` or `low`.
    pub confidence: Confidence,
    /// The secret with its middle hidden: `ghp_FA…l4WV`.
    pub redacted: String,
    /// Stable fingerprint for baselines.
    pub fingerprint: String,
    /// Set when the matcher recognised a vault-managed value.
    pub managed: Option<ManagedInfo>,
    /// The value fails its provider's documented checksum, so it is not that provider's
    /// token; present only when the scan included invalid matches (`--include-invalid`).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub invalid_checksum: bool,
}

/// A cell in a SQLite transcript store.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
pub struct SqliteLocation {
    /// Table name.
    pub table: String,
    /// Primary key as `column=value` pairs joined by `,` (or `rowid=N`).
    pub key: String,
    /// Column name.
    pub column: String,
}

/// An input that could not be scanned; any error means the scan is not clean (exit 2).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ScanError {
    /// The input.
    pub path: String,
    /// What went wrong (never content).
    pub message: String,
}

/// An input deliberately not scanned (binary, over the size cap, excluded by `.vaultignore`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Skipped {
    /// The input.
    pub path: String,
    /// Why.
    pub reason: String,
    /// Whether the owner excluded it or the scanner could not read it.
    pub kind: SkipKind,
}

/// Why an input was skipped, which decides whether a pre-commit check may pass over it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SkipKind {
    /// Excluded on purpose by the owner (`.vaultignore`); still searched for vault-managed
    /// credentials where the content is at hand (`--staged`).
    Ignored,
    /// Not scanned: binary in a walk, or over the size cap. Its content is unknown, so a
    /// commit holding it is blocked unless the user accepts that (issue 13, finding 4).
    Unscanned,
}

impl SkipKind {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            SkipKind::Ignored => "ignored",
            SkipKind::Unscanned => "unscanned",
        }
    }
}

/// Everything a scan produced.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Report {
    /// Findings, in input order.
    pub findings: Vec<Finding>,
    /// Inputs that failed.
    pub errors: Vec<ScanError>,
    /// Inputs not scanned on purpose.
    pub skipped: Vec<Skipped>,
    /// Bytes scanned.
    pub bytes: u64,
    /// Inputs scanned.
    pub files: u64,
}

impl Report {
    /// Appends another report.
    pub fn merge(&mut self, other: Report) {
        self.findings.extend(other.findings);
        self.errors.extend(other.errors);
        self.skipped.extend(other.skipped);
        self.bytes += other.bytes;
        self.files += other.files;
    }

    /// Inputs skipped because they could not be scanned (not the owner's exclusions).
    pub fn unscanned(&self) -> impl Iterator<Item = &Skipped> {
        self.skipped
            .iter()
            .filter(|s| s.kind == SkipKind::Unscanned)
    }

    /// The conventional exit code: 2 on any error, else 1 on any finding, else 0.
    pub fn exit_code(&self) -> i32 {
        if !self.errors.is_empty() {
            2
        } else if !self.findings.is_empty() {
            1
        } else {
            0
        }
    }
}
