//! `vault migrate` (issue 20): a whole vault copied between SQLite and
//! PostgreSQL, row for row. Ciphertexts, row tags and the audit chain move as
//! they are, with their row ids: every value's associated data binds it to
//! the vault id, its table and its row, all of which stay, so the same
//! passphrase unlocks the copy and `vault audit verify` passes there. No key
//! is needed to copy, and none is used.
//!
//! The two schemas are the same tables and columns (a test compares them);
//! the column list and types are PostgreSQL's catalogue, every column being
//! BIGINT, TEXT or BYTEA. The per-day and per-month usage rollups are not
//! copied: the target's triggers rebuild them from `egress_usage` as its
//! rows arrive. The source is read in one snapshot, the target written in one
//! transaction, and a target that holds any row is refused.

use ::postgres::types::ToSql;
use ::postgres::Client;
use rusqlite::Connection;

use crate::error::{Error, Result};

/// Not copied: rebuilt by the target's triggers from `egress_usage`, or
/// (`key_changes`) a stamp each database keeps for itself, whose seed row
/// migration 020 wrote into the empty target too.
const DERIVED: &[&str] = &[
    "egress_usage_daily",
    "egress_usage_day_host",
    "egress_usage_month_key",
    "key_changes",
];

/// How many rows moved, for the report.
#[derive(Debug, Default)]
pub(crate) struct Copied {
    pub tables: usize,
    pub rows: u64,
}

#[derive(Clone, Copy)]
enum Kind {
    Int,
    Text,
    Blob,
}

struct Table {
    name: String,
    columns: Vec<(String, Kind)>,
}

impl Table {
    fn column_list(&self) -> String {
        let names: Vec<String> = self.columns.iter().map(|(c, _)| quote(c)).collect();
        names.join(", ")
    }
}

fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// The vault's tables in an order that satisfies every foreign key (a table
/// after those it references), each with its columns as PostgreSQL has them.
fn tables(client: &mut Client) -> Result<Vec<Table>> {
    let names: Vec<String> = client
        .query(
            "SELECT table_name::text FROM information_schema.tables
             WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'
               AND table_name <> 'vault_schema' ORDER BY table_name",
            &[],
        )?
        .iter()
        .map(|r| r.get(0))
        .filter(|n: &String| !DERIVED.contains(&n.as_str()))
        .collect();
    let edges: Vec<(String, String)> = client
        .query(
            "SELECT conrelid::regclass::text, confrelid::regclass::text FROM pg_constraint
             WHERE contype = 'f' AND connamespace = current_schema()::regnamespace",
            &[],
        )?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let mut ordered: Vec<String> = Vec::new();
    let all = names.clone();
    let mut left = names;
    while !left.is_empty() {
        let before = left.len();
        let (ready, wait): (Vec<String>, Vec<String>) = left.into_iter().partition(|t| {
            edges
                .iter()
                .filter(|(from, to)| from == t && to != t)
                .all(|(_, to)| ordered.contains(to) || !all.contains(to))
        });
        ordered.extend(ready);
        left = wait;
        if left.len() == before {
            return Err(Error::Refused {
                reason: format!("foreign keys form a cycle among {left:?}; nothing was copied"),
            });
        }
    }
    let mut out = Vec::with_capacity(ordered.len());
    for name in ordered {
        let columns = client
            .query(
                "SELECT column_name::text, data_type::text FROM information_schema.columns
                 WHERE table_schema = current_schema() AND table_name = $1
                 ORDER BY ordinal_position",
                &[&name],
            )?
            .iter()
            .map(|r| {
                let (column, ty): (String, String) = (r.get(0), r.get(1));
                let kind = match ty.as_str() {
                    "bigint" | "integer" | "smallint" => Kind::Int,
                    "text" => Kind::Text,
                    "bytea" => Kind::Blob,
                    other => {
                        return Err(Error::Refused {
                            reason: format!(
                            "column {name}.{column} has type {other}, which the copy does not know"
                        ),
                        })
                    }
                };
                Ok((column, kind))
            })
            .collect::<Result<Vec<_>>>()?;
        out.push(Table { name, columns });
    }
    Ok(out)
}

/// Says which table of the target holds rows, if any: a copy goes only
/// into an empty vault.
fn refuse_non_empty(counts: impl IntoIterator<Item = (String, i64)>, target: &str) -> Result<()> {
    for (table, n) in counts {
        if n > 0 {
            return Err(Error::Refused {
                reason: format!(
                    "{target} is not empty ({table} holds {n} row(s)); `vault migrate` copies \
                     into an empty database only, nothing was copied"
                ),
            });
        }
    }
    Ok(())
}

/// Copies the SQLite vault `src` into the PostgreSQL database `dst`, whose
/// schema is current and which holds no row. `dst` is connected as the
/// database's owner (it sets the identity sequences past the copied ids).
pub(crate) fn sqlite_to_pg(src: &Connection, dst: &mut Client, target: &str) -> Result<Copied> {
    let tables = tables(dst)?;
    let mut tx = dst.transaction()?;
    tx.batch_execute(
        "SET TRANSACTION ISOLATION LEVEL SERIALIZABLE; SELECT set_config('vault.operator', 'on', true)",
    )?;
    let mut counts = Vec::new();
    for t in &tables {
        let n: i64 = tx
            .query_one(&format!("SELECT count(*) FROM {}", quote(&t.name)), &[])?
            .get(0);
        counts.push((t.name.clone(), n));
    }
    refuse_non_empty(counts, target)?;
    // one snapshot of the source: a read transaction held to the end
    src.execute_batch("BEGIN")?;
    let copied = (|| {
        let mut copied = Copied::default();
        for t in &tables {
            let cols = t.column_list();
            let marks: Vec<String> = (1..=t.columns.len()).map(|i| format!("${i}")).collect();
            let insert = tx.prepare(&format!(
                "INSERT INTO {} ({cols}) VALUES ({})",
                quote(&t.name),
                marks.join(", ")
            ))?;
            let mut select = src.prepare(&format!("SELECT {cols} FROM {}", quote(&t.name)))?;
            let mut rows = select.query([])?;
            while let Some(row) = rows.next()? {
                let mut values: Vec<Box<dyn ToSql + Sync>> = Vec::with_capacity(t.columns.len());
                for (i, (_, kind)) in t.columns.iter().enumerate() {
                    values.push(match kind {
                        Kind::Int => Box::new(row.get::<_, Option<i64>>(i)?),
                        Kind::Text => Box::new(row.get::<_, Option<String>>(i)?),
                        Kind::Blob => Box::new(row.get::<_, Option<Vec<u8>>>(i)?),
                    });
                }
                let params: Vec<&(dyn ToSql + Sync)> = values.iter().map(|v| &**v).collect();
                tx.execute(&insert, &params)?;
                copied.rows += 1;
            }
            copied.tables += 1;
        }
        Ok::<_, Error>(copied)
    })();
    let _ = src.execute_batch("ROLLBACK");
    let copied = copied?;
    // the next id an identity column hands out follows the copied ones
    let identities: Vec<(String, String)> = tx
        .query(
            "SELECT table_name::text, column_name::text FROM information_schema.columns
             WHERE table_schema = current_schema() AND is_identity = 'YES'",
            &[],
        )?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    for (table, column) in identities {
        tx.execute(
            &format!(
                "SELECT setval(pg_get_serial_sequence($1, $2), coalesce(max({c}), 0) + 1, false) FROM {t}",
                c = quote(&column),
                t = quote(&table)
            ),
            &[&quote(&table), &column],
        )?;
    }
    tx.commit()?;
    Ok(copied)
}

/// Copies the PostgreSQL vault `src` into the new, migrated SQLite file
/// `dst` (which holds no row).
pub(crate) fn pg_to_sqlite(src: &mut Client, dst: &Connection, target: &str) -> Result<Copied> {
    let tables = tables(src)?;
    let mut counts = Vec::new();
    for t in &tables {
        let n: i64 = dst.query_row(
            &format!("SELECT count(*) FROM {}", quote(&t.name)),
            [],
            |r| r.get(0),
        )?;
        counts.push((t.name.clone(), n));
    }
    refuse_non_empty(counts, target)?;
    let mut tx = src.transaction()?;
    tx.batch_execute(
        "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY;
         SELECT set_config('vault.operator', 'on', true)",
    )?;
    dst.execute_batch("BEGIN IMMEDIATE")?;
    let copied = (|| {
        let mut copied = Copied::default();
        for t in &tables {
            let cols = t.column_list();
            let marks: Vec<String> = (1..=t.columns.len()).map(|i| format!("?{i}")).collect();
            let mut insert = dst.prepare(&format!(
                "INSERT INTO {} ({cols}) VALUES ({})",
                quote(&t.name),
                marks.join(", ")
            ))?;
            for row in tx.query(&format!("SELECT {cols} FROM {}", quote(&t.name)), &[])? {
                let mut values: Vec<rusqlite::types::Value> = Vec::with_capacity(t.columns.len());
                for (i, (_, kind)) in t.columns.iter().enumerate() {
                    use rusqlite::types::Value;
                    let v = match kind {
                        Kind::Int => super::int(&row, i)?.map(Value::Integer),
                        Kind::Text => row.try_get::<_, Option<String>>(i)?.map(Value::Text),
                        Kind::Blob => row.try_get::<_, Option<Vec<u8>>>(i)?.map(Value::Blob),
                    };
                    values.push(v.unwrap_or(Value::Null));
                }
                insert.execute(rusqlite::params_from_iter(values))?;
                copied.rows += 1;
            }
            copied.tables += 1;
        }
        Ok::<_, Error>(copied)
    })();
    match copied {
        Ok(copied) => {
            dst.execute_batch("COMMIT")?;
            tx.commit()?;
            Ok(copied)
        }
        Err(e) => {
            let _ = dst.execute_batch("ROLLBACK");
            Err(e)
        }
    }
}
