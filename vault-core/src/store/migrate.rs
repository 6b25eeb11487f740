//! Numbered migrations from `schema/`, embedded in the binary and applied in
//! order, each in its own transaction; `PRAGMA user_version` records the last.

use rusqlite::Connection;

use crate::error::{Error, Result};

const MIGRATIONS: &[(i64, &str)] = &[
    (1, include_str!("../../../schema/001_init.sql")),
    (2, include_str!("../../../schema/002_keys_tokens.sql")),
    (3, include_str!("../../../schema/003_audit.sql")),
];

/// The schema version this build writes.
pub const LATEST_SCHEMA_VERSION: i64 = MIGRATIONS[MIGRATIONS.len() - 1].0;

pub(super) fn run(conn: &Connection) -> Result<()> {
    let current: i64 = conn.pragma_query_value(None, "user_version", |row| row.get(0))?;
    if current > LATEST_SCHEMA_VERSION {
        return Err(Error::SchemaTooNew {
            found: current,
            supported: LATEST_SCHEMA_VERSION,
        });
    }
    for (version, sql) in MIGRATIONS.iter().filter(|(v, _)| *v > current) {
        // IMMEDIATE so two processes opening a fresh vault can't both migrate;
        // the loser re-reads user_version under the lock and skips.
        conn.execute_batch("BEGIN IMMEDIATE")?;
        let result = (|| {
            let now: i64 = conn.pragma_query_value(None, "user_version", |row| row.get(0))?;
            if now >= *version {
                return Ok(());
            }
            conn.execute_batch(sql)?;
            conn.pragma_update(None, "user_version", version)?;
            Ok::<_, rusqlite::Error>(())
        })();
        match result {
            Ok(()) => conn.execute_batch("COMMIT")?,
            Err(e) => {
                let _ = conn.execute_batch("ROLLBACK");
                return Err(e.into());
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_to_latest_matches_golden_schema() {
        let conn = Connection::open_in_memory().unwrap();
        run(&conn).unwrap();
        let v: i64 = conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap();
        assert_eq!(v, LATEST_SCHEMA_VERSION);
        let mut stmt = conn
            .prepare("SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name")
            .unwrap();
        let tables: Vec<String> = stmt
            .query_map([], |r| r.get(0))
            .unwrap()
            .map(|r| r.unwrap())
            .collect();
        assert_eq!(
            tables,
            [
                "agent_keys",
                "agents",
                "audit_head",
                "audit_log",
                "revoked_tokens",
                "secret_versions",
                "secrets",
                "vault_header",
                "vault_keys"
            ]
        );
        // running again is a no-op
        run(&conn).unwrap();
    }

    #[test]
    fn newer_schema_is_refused() {
        let conn = Connection::open_in_memory().unwrap();
        conn.pragma_update(None, "user_version", LATEST_SCHEMA_VERSION + 1)
            .unwrap();
        assert!(matches!(run(&conn), Err(Error::SchemaTooNew { .. })));
    }
}
