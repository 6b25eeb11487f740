//! Rows of `settings`.

use rusqlite::{params, Connection, OptionalExtension};

use crate::error::Result;

pub(crate) fn get(conn: &Connection, name: &str) -> Result<Option<String>> {
    Ok(conn
        .query_row("SELECT value FROM settings WHERE name = ?1", [name], |r| {
            r.get(0)
        })
        .optional()?)
}

pub(crate) fn set(conn: &Connection, name: &str, value: Option<&str>) -> Result<()> {
    match value {
        Some(v) => conn.execute(
            "INSERT INTO settings (name, value) VALUES (?1, ?2) ON CONFLICT (name) DO UPDATE SET value = ?2",
            params![name, v],
        )?,
        None => conn.execute("DELETE FROM settings WHERE name = ?1", [name])?,
    };
    Ok(())
}
