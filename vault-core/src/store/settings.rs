//! Rows of `settings`, each tagged: the notify command runs as the vault's
//! user, so it is only ever read after its tag checks.

use crate::crypto::rowtag::{Field, RowKey, Table};
use crate::error::Result;
use crate::store::sql::{args, Handle, Row};
use crate::store::tags;

/// One setting as stored.
pub(crate) struct SettingRow {
    pub name: String,
    pub value: String,
    pub tag: Option<Vec<u8>>,
}

impl SettingRow {
    pub(crate) fn fields(&self) -> [Field<'_>; 2] {
        [(&self.name).into(), (&self.value).into()]
    }
}

pub(crate) fn get(conn: &Handle, rk: &RowKey, name: &str) -> Result<Option<String>> {
    let row = conn.query_opt(
        "SELECT name, value, tag FROM settings WHERE name = ?1",
        args![name],
        setting_row,
    )?;
    let Some(row) = row else { return Ok(None) };
    tags::check(
        conn,
        rk,
        Table::Settings,
        &row.fields(),
        row.tag.as_deref(),
        || format!("the setting {name}"),
    )?;
    Ok(Some(row.value))
}

pub(crate) fn set(conn: &Handle, rk: &RowKey, name: &str, value: Option<&str>) -> Result<()> {
    match value {
        Some(v) => {
            conn.execute(
                "INSERT INTO settings (name, value) VALUES (?1, ?2) ON CONFLICT (name) DO UPDATE SET value = ?2",
                args![name, v],
            )?;
            let row = SettingRow {
                name: name.to_owned(),
                value: v.to_owned(),
                tag: None,
            };
            tags::set(conn, rk, Table::Settings, Field::Text(name), &row.fields())?;
        }
        None => {
            conn.execute("DELETE FROM settings WHERE name = ?1", args![name])?;
        }
    };
    Ok(())
}

/// Every setting, unchecked: only for re-tagging the whole database.
pub(crate) fn all_raw(conn: &Handle) -> Result<Vec<SettingRow>> {
    conn.query_all(
        "SELECT name, value, tag FROM settings",
        args![],
        setting_row,
    )
}

fn setting_row(r: &Row<'_>) -> Result<SettingRow> {
    Ok(SettingRow {
        name: r.get(0)?,
        value: r.get(1)?,
        tag: r.get(2)?,
    })
}
