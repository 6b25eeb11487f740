//! Scrubbing an agent's SQLite store (Hermes `state.db`, OpenClaw
//! `openclaw-agent.sqlite`): every text cell of every table, FTS copies
//! included, rewritten in one `BEGIN IMMEDIATE` transaction with
//! `secure_delete` on; FTS indexes optimized or rebuilt so old terms leave
//! them; the WAL checkpointed. Never the vault's own store.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::types::{Value, ValueRef};
use rusqlite::{Connection, TransactionBehavior};
use zeroize::Zeroizing;

use super::{backup_path, is_json, Pick};
use crate::error::{invalid, Context as _, Result};

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
pub(super) enum TableKind {
    Plain,
    /// An FTS3/4/5 table keeping its own copy of the text.
    FtsInline,
    /// An FTS table reading an external content table: rebuilt, not updated.
    FtsExternal,
    /// Contentless FTS or another virtual table: nothing to read back.
    Opaque,
}

/// Rewrites every text cell holding a value to scrub, in one transaction.
pub(super) fn scrub_sqlite(
    pick: &Pick<'_>,
    path: &Path,
    backup: bool,
    busy: Option<Duration>,
) -> Result<(usize, Option<PathBuf>)> {
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
    super::refuse_if_busy(busy)?;
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
pub(super) fn fts_kind(sql: &str) -> TableKind {
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
