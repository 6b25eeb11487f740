//! Scrubbing (`vault scrub PATH...`): after a leak, take the leaked values out of the
//! transcripts that hold them. Rotation makes a leaked key useless; scrubbing
//! stops the transcript from carrying it on into backups, synced folders,
//! exports and the agent's own replayed context.
//!
//! Which values: the vault-managed credentials the scanner recognises (named
//! keys, tokens and stored secrets, through the same matcher `vault scan`
//! uses, no passphrase needed), and with `--all-findings` every provider
//! finding too. Each is replaced in place by `<redacted:RULE>` (a marker the
//! scanner itself treats as a placeholder, so a rerun finds nothing and
//! changes nothing).
//!
//! How, per file kind:
//! - **SQLite** (Hermes `state.db`, OpenClaw `openclaw-agent.sqlite`, found by
//!   the file header): every text cell of every table, including FTS tables
//!   that keep their own copy of the text, rewritten in one `BEGIN IMMEDIATE`
//!   transaction with `secure_delete` on; FTS indexes are then optimized (or
//!   rebuilt from their content table) so the old terms leave the index, and
//!   the WAL is checkpointed so old pages do not linger in it.
//! - **Anything else** (JSONL transcripts, logs): the whole file is scanned
//!   and rewritten atomically: a temp file in the same directory with the
//!   same mode, fsync, rename, fsync of the directory.
//!
//! A line or cell that was JSON must still be JSON afterwards, else the file
//! is left alone and the error says where. A file modified in the last two
//! seconds is being written by its agent: it is refused unless `force`.
//! An [`Outcome`] lists files and counts, never values; the CLI prints it.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use rusqlite::types::{Value, ValueRef};
use rusqlite::{Connection, TransactionBehavior};
use vault_scan::{KnownSecrets, Scanner, Span};
use zeroize::Zeroizing;

use crate::error::{invalid, refused, Context as _, Result};

/// How to scrub.
#[derive(Clone, Copy, Debug, Default)]
pub struct Options {
    /// Also replace every provider finding, not only vault-managed credentials.
    pub all_findings: bool,
    /// Keep a 0600 copy of each file before changing it (PATH.vault-backup-UNIXTIME).
    pub backup: bool,
    /// Scrub a file even if it was modified in the last two seconds.
    pub force: bool,
}

/// A file this recent is taken to be still written by its agent.
const BUSY_WINDOW: Duration = Duration::from_secs(2);

/// What happened to one file.
#[derive(Debug)]
pub struct Outcome {
    /// The file named.
    pub path: PathBuf,
    /// `sqlite` or `text`.
    pub kind: &'static str,
    /// What was done.
    pub status: Status,
    /// How many values were replaced.
    pub replaced: usize,
    /// The copy kept before the change, with `backup`.
    pub backup: Option<PathBuf>,
}

/// What was done to one file.
#[derive(Debug)]
pub enum Status {
    /// Nothing to replace; the file was not touched.
    Clean,
    /// Values were replaced.
    Scrubbed,
    /// Not touched, and why (a symlink, busy, changed meanwhile).
    Refused(String),
    /// Could not be scrubbed, and why; nothing was replaced.
    Failed(String),
}

/// Scrubs one file: the values `known` (the vault's matcher) recognises, and
/// every provider finding of `scanner` with `all_findings`.
pub fn scrub_path(
    scanner: &Scanner,
    known: Option<&dyn KnownSecrets>,
    path: &Path,
    options: &Options,
) -> Outcome {
    let pick = Pick {
        scanner,
        known,
        all: options.all_findings,
    };
    scrub_one(&pick, path, options)
}

/// The scanner, the vault's matcher, and which matches to replace.
struct Pick<'a> {
    scanner: &'a Scanner,
    known: Option<&'a dyn KnownSecrets>,
    all: bool,
}

impl Pick<'_> {
    /// The ranges of `data` to replace, merged and sorted, each with the rule
    /// that names it.
    fn ranges(&self, data: &[u8]) -> Vec<(usize, usize, String)> {
        let mut spans: Vec<Span> = self
            .scanner
            .spans(data, self.known)
            .into_iter()
            .filter(|s| self.all || s.managed.is_some())
            .filter(|s| !contains(&data[s.start..s.end], b"<redacted:"))
            .collect();
        spans.sort_by_key(|s| (s.start, std::cmp::Reverse(s.end)));
        let mut out: Vec<(usize, usize, String)> = Vec::new();
        for s in spans {
            match out.last_mut() {
                Some(last) if s.start < last.1 => last.1 = last.1.max(s.end),
                _ => out.push((s.start, s.end, s.rule)),
            }
        }
        out
    }

    /// `data` with every range replaced by its marker, and how many.
    fn replace(&self, data: &[u8]) -> (Zeroizing<Vec<u8>>, usize) {
        let ranges = self.ranges(data);
        let mut out = Zeroizing::new(Vec::with_capacity(data.len()));
        let mut at = 0;
        for (start, end, rule) in &ranges {
            out.extend_from_slice(&data[at..*start]);
            out.extend_from_slice(marker(rule).as_bytes());
            at = *end;
        }
        out.extend_from_slice(&data[at..]);
        (out, ranges.len())
    }
}

/// `<redacted:RULE>`: the scanner's placeholder check skips anything with `<`,
/// so the marker is never itself a finding. Rule ids are ASCII already; the
/// filter only keeps a future odd id from breaking JSON.
fn marker(rule: &str) -> String {
    let rule: String = rule
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
        .collect();
    format!("<redacted:{rule}>")
}

fn scrub_one(pick: &Pick<'_>, path: &Path, args: &Options) -> Outcome {
    let mut outcome = Outcome {
        path: path.to_owned(),
        kind: "text",
        status: Status::Clean,
        replaced: 0,
        backup: None,
    };
    let meta = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) => {
            outcome.status = Status::Failed(format!("cannot read it: {e}"));
            return outcome;
        }
    };
    if meta.file_type().is_symlink() {
        outcome.status = Status::Refused("it is a symlink; name the file itself".into());
        return outcome;
    }
    if !meta.is_file() {
        outcome.status = Status::Failed("not a regular file".into());
        return outcome;
    }
    if meta.permissions().mode() & 0o111 != 0 {
        outcome.status = Status::Refused("it is executable; transcripts are not".into());
        return outcome;
    }
    let sqlite = is_sqlite(path);
    outcome.kind = if sqlite { "sqlite" } else { "text" };
    if !args.force {
        if let Some(age) = busy(path, sqlite) {
            outcome.status = Status::Refused(format!(
                "modified {} ms ago: an agent may still be writing it (wait, or pass --force)",
                age.as_millis()
            ));
            return outcome;
        }
    }
    let result = if sqlite {
        scrub_sqlite(pick, path, args.backup)
    } else {
        scrub_text(pick, path, &meta, args.backup)
    };
    match result {
        Ok((0, _)) => {}
        Ok((n, backup)) => {
            outcome.status = Status::Scrubbed;
            outcome.replaced = n;
            outcome.backup = backup;
        }
        Err(e) => outcome.status = Status::Failed(e.message()),
    }
    outcome
}

/// How long ago the file (or its SQLite WAL) changed, if within the window.
fn busy(path: &Path, sqlite: bool) -> Option<Duration> {
    let mut files = vec![path.to_owned()];
    if sqlite {
        files.push(sibling(path, "-wal"));
        files.push(sibling(path, "-journal"));
    }
    let now = SystemTime::now();
    files
        .iter()
        .filter_map(|f| std::fs::metadata(f).and_then(|m| m.modified()).ok())
        .filter_map(|t| now.duration_since(t).ok().or(Some(Duration::ZERO)))
        .filter(|age| *age < BUSY_WINDOW)
        .min()
}

fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

fn is_sqlite(path: &Path) -> bool {
    let mut head = [0u8; 16];
    File::open(path)
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut head))
        .is_ok()
        && &head == b"SQLite format 3\0"
}

/// Rewrites a text file atomically; `(replacements, backup)`.
fn scrub_text(
    pick: &Pick<'_>,
    path: &Path,
    meta: &std::fs::Metadata,
    backup: bool,
) -> Result<(usize, Option<PathBuf>)> {
    let data = Zeroizing::new(std::fs::read(path).with_context(|| "reading it".to_owned())?);
    let (new, n) = pick.replace(&data);
    if n == 0 {
        return Ok((0, None));
    }
    check_json_lines(&data, &new)?;
    let backup = if backup {
        Some(write_backup(path, &data)?)
    } else {
        None
    };
    // The file must be the one that was read: an agent appending meanwhile
    // would lose its lines to the rename.
    let now = std::fs::metadata(path)?;
    if now.len() != meta.len() || now.mtime() != meta.mtime() || now.ino() != meta.ino() {
        return Err(refused(
            "it changed while being scrubbed; nothing was replaced (run again)",
        ));
    }
    crate::fs::write_atomic(path, &new, meta.permissions().mode() & 0o666)?;
    Ok((n, backup))
}

/// Every line that parsed as JSON before must parse after.
fn check_json_lines(before: &[u8], after: &[u8]) -> Result<()> {
    let old: Vec<&[u8]> = before.split(|&b| b == b'\n').collect();
    let new: Vec<&[u8]> = after.split(|&b| b == b'\n').collect();
    if old.len() != new.len() {
        return Err(invalid(
            "a replacement would change the line structure; nothing was replaced",
        ));
    }
    for (i, (o, n)) in old.iter().zip(&new).enumerate() {
        if o != n && is_json(o) && !is_json(n) {
            return Err(invalid(format!(
                "line {}: a replacement would break its JSON; nothing was replaced",
                i + 1
            )));
        }
    }
    Ok(())
}

fn is_json(bytes: &[u8]) -> bool {
    serde_json::from_slice::<serde::de::IgnoredAny>(bytes).is_ok()
}

/// A 0600 copy next to the file, never overwriting anything.
fn write_backup(path: &Path, data: &[u8]) -> Result<PathBuf> {
    let target = backup_path(path);
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&target)
        .with_context(|| format!("creating the backup {}", target.display()))?;
    f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    f.write_all(data)?;
    f.sync_all()?;
    Ok(target)
}

fn backup_path(path: &Path) -> PathBuf {
    let secs = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let mut candidate = sibling(path, &format!(".vault-backup-{secs}"));
    let mut n = 1;
    while candidate.exists() {
        candidate = sibling(path, &format!(".vault-backup-{secs}-{n}"));
        n += 1;
    }
    candidate
}

/// One cell to rewrite: table, key columns and values, column, new text.
struct Update {
    table: String,
    key: Vec<(String, Value)>,
    column: String,
    text: Zeroizing<String>,
    replaced: usize,
}

/// What kind of table, for what to do after its rows change.
#[derive(Clone, Copy, PartialEq, Eq)]
enum TableKind {
    Plain,
    /// An FTS3/4/5 table keeping its own copy of the text.
    FtsInline,
    /// An FTS table reading an external content table: rebuilt, not updated.
    FtsExternal,
    /// Contentless FTS or another virtual table: nothing to read back.
    Opaque,
}

/// Rewrites every text cell holding a value to scrub, in one transaction.
fn scrub_sqlite(pick: &Pick<'_>, path: &Path, backup: bool) -> Result<(usize, Option<PathBuf>)> {
    let mut conn = Connection::open(path).context("opening the SQLite store")?;
    conn.busy_timeout(Duration::from_secs(5))?;
    // Overwrite freed cells and pages with zeros instead of leaving the old
    // text in free space.
    conn.pragma_update(None, "secure_delete", "ON")?;
    let tables = tables(&conn)?;
    // A read-only pass first: a clean store is not touched at all.
    if plan(pick, &conn, &tables)?.is_empty() {
        return Ok((0, None));
    }
    let backup = if backup {
        Some(backup_sqlite(&conn, path)?)
    } else {
        None
    };
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let mut replaced = 0;
    // Plain tables first: triggers may carry the change into FTS copies,
    // which the second round then finds already clean.
    for round in [TableKind::Plain, TableKind::FtsInline] {
        let these: Vec<_> = tables.iter().filter(|t| t.1 == round).cloned().collect();
        for update in plan(pick, &tx, &these)? {
            apply(&tx, &update)?;
            replaced += update.replaced;
        }
    }
    for (name, kind) in &tables {
        let q = quote(name);
        match kind {
            TableKind::FtsExternal => {
                tx.execute(&format!("INSERT INTO {q}({q}) VALUES('rebuild')"), [])?;
                tx.execute(&format!("INSERT INTO {q}({q}) VALUES('optimize')"), [])?;
            }
            // Merging all segments drops the deleted terms from the index.
            TableKind::FtsInline => {
                tx.execute(&format!("INSERT INTO {q}({q}) VALUES('optimize')"), [])?;
            }
            _ => {}
        }
    }
    tx.commit()?;
    // Old page images must not stay behind in the WAL; a busy reader only
    // delays this, so its result is advisory.
    let _ = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()));
    Ok((replaced, backup))
}

/// Tables of the main schema worth reading, and their kinds. Shadow tables
/// of virtual tables (`x_data`, `x_content`, ...) are left to their owner.
fn tables(conn: &Connection) -> Result<Vec<(String, TableKind)>> {
    let mut st = conn.prepare(
        "SELECT name, type FROM pragma_table_list WHERE schema = 'main' \
         AND type IN ('table', 'virtual') AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\'",
    )?;
    let rows = st.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?;
    let mut out = Vec::new();
    for row in rows {
        let (name, kind) = row?;
        let kind = if kind == "virtual" {
            let sql: String = conn.query_row(
                "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?1",
                [&name],
                |r| r.get(0),
            )?;
            fts_kind(&sql)
        } else {
            TableKind::Plain
        };
        out.push((name, kind));
    }
    Ok(out)
}

/// Reads an FTS table's `CREATE VIRTUAL TABLE` statement for its content option.
fn fts_kind(sql: &str) -> TableKind {
    let lower = sql.to_ascii_lowercase();
    let Some(using) = lower.find(" using ") else {
        return TableKind::Opaque;
    };
    let module = lower[using + 7..].trim_start();
    if !(module.starts_with("fts5") || module.starts_with("fts4") || module.starts_with("fts3")) {
        return TableKind::Opaque;
    }
    let compact: String = lower.chars().filter(|c| !c.is_whitespace()).collect();
    if compact.contains("content=''") || compact.contains("content=\"\"") {
        TableKind::Opaque
    } else if compact.contains("content=") {
        TableKind::FtsExternal
    } else {
        TableKind::FtsInline
    }
}

/// Every text cell in `tables` whose scrubbed text differs.
fn plan(pick: &Pick<'_>, conn: &Connection, tables: &[(String, TableKind)]) -> Result<Vec<Update>> {
    let mut out = Vec::new();
    for (table, kind) in tables {
        if !matches!(kind, TableKind::Plain | TableKind::FtsInline) {
            continue;
        }
        let q = quote(table);
        let cols: Vec<(String, i64)> = {
            let mut st = conn.prepare(&format!(
                "SELECT name, pk FROM pragma_table_info({})",
                literal(table)
            ))?;
            let rows = st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
            rows.collect::<rusqlite::Result<_>>()?
        };
        if cols.is_empty() {
            continue;
        }
        // Rows are addressed by rowid, or by primary key in WITHOUT ROWID tables.
        let has_rowid = conn
            .prepare(&format!("SELECT rowid FROM {q} LIMIT 0"))
            .is_ok();
        let mut key_cols: Vec<String> = if has_rowid {
            vec!["rowid".into()]
        } else {
            let mut pk: Vec<&(String, i64)> = cols.iter().filter(|c| c.1 > 0).collect();
            pk.sort_by_key(|c| c.1);
            pk.iter().map(|c| c.0.clone()).collect()
        };
        if key_cols.is_empty() {
            key_cols.push("rowid".into());
        }
        let list: Vec<String> = key_cols
            .iter()
            .map(|k| if k == "rowid" { k.clone() } else { quote(k) })
            .chain(cols.iter().map(|c| quote(&c.0)))
            .collect();
        let mut st = conn.prepare(&format!("SELECT {} FROM {q}", list.join(", ")))?;
        let mut rows = st.query([])?;
        while let Some(row) = rows.next()? {
            for (i, (col, _)) in cols.iter().enumerate() {
                let ValueRef::Text(bytes) = row.get_ref(key_cols.len() + i)? else {
                    continue;
                };
                let (new, n) = pick.replace(bytes);
                if n == 0 {
                    continue;
                }
                let Ok(text) = String::from_utf8(new.to_vec()) else {
                    continue;
                };
                if json_body(bytes).is_some_and(is_json)
                    && !json_body(text.as_bytes()).is_some_and(is_json)
                {
                    return Err(invalid(format!(
                        "table {table}, column {col}: a replacement would break its JSON; \
                         nothing was replaced"
                    )));
                }
                let key = key_cols
                    .iter()
                    .enumerate()
                    .map(|(k, name)| Ok((name.clone(), row.get::<_, Value>(k)?)))
                    .collect::<rusqlite::Result<Vec<_>>>()?;
                out.push(Update {
                    table: table.clone(),
                    key,
                    column: col.clone(),
                    text: Zeroizing::new(text),
                    replaced: n,
                });
            }
        }
    }
    Ok(out)
}

/// The JSON part of a cell: all of it, or what follows Hermes' `\0json:`.
fn json_body(cell: &[u8]) -> Option<&[u8]> {
    let body = cell.strip_prefix(b"\0json:").unwrap_or(cell);
    let first = body.iter().find(|b| !b.is_ascii_whitespace())?;
    matches!(first, b'{' | b'[' | b'"').then_some(body)
}

fn apply(conn: &Connection, u: &Update) -> Result<()> {
    let mut sql = format!(
        "UPDATE {} SET {} = ?1 WHERE ",
        quote(&u.table),
        quote(&u.column)
    );
    let clauses: Vec<String> = u
        .key
        .iter()
        .enumerate()
        .map(|(i, (name, _))| {
            let col = if name == "rowid" {
                name.clone()
            } else {
                quote(name)
            };
            format!("{col} IS ?{}", i + 2)
        })
        .collect();
    sql.push_str(&clauses.join(" AND "));
    let mut params: Vec<&dyn rusqlite::ToSql> = vec![&*u.text as &dyn rusqlite::ToSql];
    for (_, v) in &u.key {
        params.push(v);
    }
    conn.execute(&sql, params.as_slice())
        .with_context(|| format!("rewriting table {}, column {}", u.table, u.column))?;
    Ok(())
}

/// A consistent 0600 copy (WAL contents included) before anything changes.
fn backup_sqlite(conn: &Connection, path: &Path) -> Result<PathBuf> {
    let target = backup_path(path);
    // VACUUM INTO wants a missing or empty file: create it empty with 0600
    // first, so the copy is never readable by others, not even briefly.
    let f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&target)
        .with_context(|| format!("creating the backup {}", target.display()))?;
    f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    drop(f);
    let name = target
        .to_str()
        .ok_or_else(|| invalid("the backup path is not UTF-8"))?;
    conn.execute("VACUUM INTO ?1", [name])
        .context("copying the store for the backup")?;
    File::open(&target)?.sync_all()?;
    Ok(target)
}

fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

fn literal(name: &str) -> String {
    format!("'{}'", name.replace('\'', "''"))
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fts_tables_are_told_apart_by_their_content_option() {
        assert!(matches!(
            fts_kind("CREATE VIRTUAL TABLE m USING fts5(content, tool_name)"),
            TableKind::FtsInline
        ));
        assert!(matches!(
            fts_kind(
                "CREATE VIRTUAL TABLE m USING fts5(text, content='messages', content_rowid='id')"
            ),
            TableKind::FtsExternal
        ));
        assert!(matches!(
            fts_kind("CREATE VIRTUAL TABLE m USING fts5(text, content = '')"),
            TableKind::Opaque
        ));
        assert!(matches!(
            fts_kind("CREATE VIRTUAL TABLE r USING rtree(id, a, b)"),
            TableKind::Opaque
        ));
    }

    #[test]
    fn the_marker_is_a_placeholder_to_the_scanner() {
        let scanner = Scanner::builtin().unwrap();
        for text in [
            format!("password = \"{}\"\n", marker("generic.password-assignment")),
            format!("DB_PASSWORD={}\n", marker("generic.password-unquoted")),
            format!("api_key: \"{}\"\n", marker("generic.api-key-assignment")),
        ] {
            assert!(scanner.spans(text.as_bytes(), None).is_empty(), "{text}");
        }
    }

    #[test]
    fn overlapping_matches_become_one_replacement() {
        let scanner = Scanner::builtin().unwrap();
        let pick = Pick {
            scanner: &scanner,
            known: None,
            all: true,
        };
        let data = b"{\"m\":\"token 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 here\"}\n";
        let (new, n) = pick.replace(data);
        assert_eq!(n, 1);
        assert_eq!(
            &new[..],
            &b"{\"m\":\"token <redacted:github.pat-classic> here\"}\n"[..]
        );
        assert!(is_json(new.split(|&b| b == b'\n').next().unwrap()));
    }
}
