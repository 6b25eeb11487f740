//! Checking and writing row tags (see [`crate::crypto::rowtag`]): the one
//! place that knows which column holds each tagged table's id, and the
//! whole-database re-tag that the upgrade and `rekey` need.

use crate::crypto::rowtag::{Field, RowKey, Table};
use crate::error::{Error, Result};
use crate::store::sql::{args, Handle, Value};
use crate::store::{agents, audit, keys, rotation, secrets, settings};

/// Checks a row's tag. A mismatch after another process replaced the data
/// key (and so re-tagged everything) is [`Error::Rekeyed`], not tampering.
pub(crate) fn check(
    conn: &Handle,
    rk: &RowKey,
    table: Table,
    fields: &[Field<'_>],
    stored: Option<&[u8]>,
    what: impl FnOnce() -> String,
) -> Result<()> {
    rk.check(table, fields, stored, what).map_err(|e| {
        let current: Option<Vec<u8>> = conn
            .query_one(
                "SELECT dek_id FROM vault_header WHERE singleton = 1",
                args![],
                |r| r.get(0),
            )
            .ok();
        match current {
            Some(id) if id.as_slice() != rk.dek_id() => Error::Rekeyed,
            _ => e,
        }
    })
}

/// Stores the tag of the row of `table` whose id is `id`.
pub(crate) fn set(
    conn: &Handle,
    rk: &RowKey,
    table: Table,
    id: Field<'_>,
    fields: &[Field<'_>],
) -> Result<()> {
    let tag = rk.tag(table, fields);
    let sql = format!(
        "UPDATE {} SET tag = ?1 WHERE {} = ?2",
        table.as_str(),
        id_column(table)
    );
    let id = match id {
        Field::Blob(b) => Value::Blob(Some(b)),
        Field::Int(v) => Value::Int(Some(v)),
        // no id column is nullable; a NULL id matches no row, as before
        Field::Null => Value::Int(None),
        Field::Text(s) => Value::Text(Some(s)),
    };
    conn.execute(&sql, &[Value::from(&tag), id])?;
    Ok(())
}

/// Tags every row of every tagged table (except the header, which the
/// caller writes with its new data key) under `new`. With `old`, each row
/// must first verify under it (rekey: nothing tampered is laundered); without
/// it (the one-time upgrade of a vault from before tags) the current state is
/// trusted as it is. Returns how many rows were tagged.
pub(crate) fn retag_all(conn: &Handle, old: Option<&RowKey>, new: &RowKey) -> Result<usize> {
    let mut n = 0;
    walk(conn, &mut |table, id, fields, tag, what| {
        if let Some(old) = old {
            old.check(table, fields, tag, what)?;
        }
        set(conn, new, table, id, fields)?;
        n += 1;
        Ok(())
    })?;
    Ok(n)
}

/// Checks every tagged row, the header included: what `vault audit verify`
/// adds to the chain walk, so an edit no read has touched yet is found too.
pub(crate) fn check_all(conn: &Handle, rk: &RowKey) -> Result<()> {
    crate::store::header::read_checked(conn, rk)?;
    walk(conn, &mut |table, _, fields, tag, what| {
        check(conn, rk, table, fields, tag, what)
    })
}

/// One tagged row: its table, id, the fields its tag covers, the stored tag
/// and how to name it in an error.
type Visit<'v> = dyn FnMut(Table, Field<'_>, &[Field<'_>], Option<&[u8]>, &dyn Fn() -> String) -> Result<()>
    + 'v;

fn walk(conn: &Handle, visit: &mut Visit<'_>) -> Result<()> {
    for row in agents::list_raw(conn)? {
        visit(
            Table::Agents,
            row.agent_id.into(),
            &row.fields(),
            row.tag.as_deref(),
            &|| format!("agent {}", row.name),
        )?;
    }
    for row in keys::list_raw(conn)? {
        visit(
            Table::AgentKeys,
            Field::Text(&row.key_id),
            &row.fields(),
            row.tag.as_deref(),
            &|| format!("key {} ({})", row.name, row.key_id),
        )?;
    }
    for row in keys::revoked_raw(conn)? {
        visit(
            Table::RevokedTokens,
            Field::Text(&row.token_id),
            &row.fields(),
            row.tag.as_deref(),
            &|| format!("revoked token {}", row.token_id),
        )?;
    }
    for row in secrets::list_raw(conn)? {
        visit(
            Table::Secrets,
            row.secret_id.into(),
            &row.fields(),
            row.tag.as_deref(),
            &|| format!("secret {}/{}", row.agent, row.name),
        )?;
    }
    for row in rotation::targets_raw(conn)? {
        visit(
            Table::Targets,
            row.target_id.into(),
            &row.fields(),
            row.tag.as_deref(),
            &|| format!("target {}", row.target_id),
        )?;
    }
    for row in rotation::rotation_commands_raw(conn)? {
        visit(
            Table::SecretRotation,
            row.secret_id.into(),
            &row.fields(),
            row.tag.as_deref(),
            &|| format!("the rotation command of secret {}", row.secret_id),
        )?;
    }
    for row in settings::all_raw(conn)? {
        visit(
            Table::Settings,
            Field::Text(&row.name),
            &row.fields(),
            row.tag.as_deref(),
            &|| format!("the setting {}", row.name),
        )?;
    }
    if let Some(head) = audit::head(conn)? {
        visit(
            Table::AuditHead,
            Field::Int(1),
            &head.fields(),
            head.tag.as_deref(),
            &|| "the audit head".into(),
        )?;
    }
    Ok(())
}

fn id_column(table: Table) -> &'static str {
    match table {
        Table::AgentKeys => "key_id",
        Table::Approvals => "approval_id",
        Table::Agents => "agent_id",
        Table::AuditHead | Table::Header => "singleton",
        Table::RevokedTokens => "token_id",
        Table::SecretRotation | Table::Secrets => "secret_id",
        Table::Settings => "name",
        Table::Targets => "target_id",
        Table::ConsoleSessions => "id_hash",
    }
}
