//! SQLite transcript stores (Hermes `state.db`, OpenClaw `transcript_events`): every text
//! and blob cell of every table is scanned, raw and JSON-decoded, and findings point at
//! table, primary key and column. Values are read in code (they can start with a NUL byte).

use rusqlite::types::ValueRef;
use rusqlite::{Connection, OpenFlags};

use crate::engine::Scanner;
use crate::finding::{Finding, SqliteLocation};
use crate::known::KnownSecrets;

/// Scans a database held in memory (copied to a private temp file; SQLite needs a file).
pub(crate) fn scan_sqlite_bytes(
    scanner: &Scanner,
    known: Option<&dyn KnownSecrets>,
    name: &str,
    data: &[u8],
) -> Result<Vec<Finding>, String> {
    let dir = std::env::temp_dir().join(format!(
        "vault-scan-{}-{}",
        std::process::id(),
        crc32fast::hash(name.as_bytes())
    ));
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let file = dir.join("copy.db");
    let result = std::fs::write(&file, data)
        .map_err(|e| e.to_string())
        .and_then(|()| scan_db(scanner, known, name, &file));
    let _ = std::fs::remove_dir_all(&dir);
    result
}

fn scan_db(
    scanner: &Scanner,
    known: Option<&dyn KnownSecrets>,
    name: &str,
    file: &std::path::Path,
) -> Result<Vec<Finding>, String> {
    let err = |e: rusqlite::Error| format!("cannot read SQLite database: {e}");
    let conn = Connection::open_with_flags(
        file,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(err)?;
    let tables: Vec<String> = {
        let mut st = conn
            .prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
            .map_err(err)?;
        let rows = st.query_map([], |r| r.get::<_, String>(0)).map_err(err)?;
        rows.collect::<Result<_, _>>().map_err(err)?
    };
    let mut out = Vec::new();
    for table in tables {
        let quoted = format!("\"{}\"", table.replace('"', "\"\""));
        let mut cols: Vec<(String, i64)> = Vec::new();
        {
            let mut st = conn
                .prepare(&format!("PRAGMA table_info({quoted})"))
                .map_err(err)?;
            let rows = st
                .query_map([], |r| Ok((r.get::<_, String>(1)?, r.get::<_, i64>(5)?)))
                .map_err(err)?;
            for c in rows {
                cols.push(c.map_err(err)?);
            }
        }
        if cols.is_empty() {
            continue;
        }
        let mut pk: Vec<(usize, i64)> = cols
            .iter()
            .enumerate()
            .filter(|(_, c)| c.1 > 0)
            .map(|(i, c)| (i, c.1))
            .collect();
        pk.sort_by_key(|p| p.1);
        let list: Vec<String> = cols
            .iter()
            .map(|c| format!("\"{}\"", c.0.replace('"', "\"\"")))
            .collect();
        let sql = format!("SELECT {} FROM {quoted}", list.join(", "));
        let mut st = conn.prepare(&sql).map_err(err)?;
        let mut rows = st.query([]).map_err(err)?;
        let mut rowno = 0u64;
        while let Some(row) = rows.next().map_err(err)? {
            rowno += 1;
            let key = if pk.is_empty() {
                format!("row={rowno}")
            } else {
                pk.iter()
                    .map(|&(i, _)| format!("{}={}", cols[i].0, cell_text(row.get_ref(i).ok())))
                    .collect::<Vec<_>>()
                    .join(",")
            };
            for (i, col) in cols.iter().enumerate() {
                let bytes = match row.get_ref(i).map_err(err)? {
                    ValueRef::Text(t) => t,
                    ValueRef::Blob(b) => b,
                    _ => continue,
                };
                let loc = SqliteLocation {
                    table: table.clone(),
                    key: key.clone(),
                    column: col.0.clone(),
                };
                for mut f in super::scan_cell(scanner, known, name, bytes) {
                    f.sqlite = Some(loc.clone());
                    out.push(f);
                }
            }
        }
    }
    Ok(out)
}

fn cell_text(v: Option<ValueRef<'_>>) -> String {
    match v {
        Some(ValueRef::Integer(i)) => i.to_string(),
        Some(ValueRef::Real(r)) => r.to_string(),
        Some(ValueRef::Text(t)) => String::from_utf8_lossy(t).into_owned(),
        Some(ValueRef::Blob(_)) => "<blob>".into(),
        _ => "NULL".into(),
    }
}
