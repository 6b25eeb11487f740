//! Numbered migrations from `schema/`, embedded in the binary and applied in
//! order, each in its own transaction; the schema version
//! ([`Handle::schema_version`], SQLite's `user_version`) records the last.

use crate::error::{Error, Result};
use crate::store::sql::Handle;

const MIGRATIONS: &[(i64, &str)] = &[
    (1, include_str!("../../../schema/001_init.sql")),
    (2, include_str!("../../../schema/002_keys_tokens.sql")),
    (3, include_str!("../../../schema/003_audit.sql")),
    (4, include_str!("../../../schema/004_rotation.sql")),
    (5, include_str!("../../../schema/005_fingerprints.sql")),
    (6, include_str!("../../../schema/006_suspensions.sql")),
    (7, include_str!("../../../schema/007_settings.sql")),
    (8, include_str!("../../../schema/008_row_tags.sql")),
    (9, include_str!("../../../schema/009_broker_ca.sql")),
    (10, include_str!("../../../schema/010_target_keys.sql")),
    (11, include_str!("../../../schema/011_usage.sql")),
    (12, include_str!("../../../schema/012_egress_holds.sql")),
    (13, include_str!("../../../schema/013_console.sql")),
    (14, include_str!("../../../schema/014_usage_daily.sql")),
    (15, include_str!("../../../schema/015_audit_prune.sql")),
    (16, include_str!("../../../schema/016_console_speed.sql")),
    (17, include_str!("../../../schema/017_egress_only_keys.sql")),
    (18, include_str!("../../../schema/018_audit_daily.sql")),
    (19, include_str!("../../../schema/019_grants.sql")),
    (20, include_str!("../../../schema/020_key_changes.sql")),
];

/// The schema version this build writes.
pub const LATEST_SCHEMA_VERSION: i64 = MIGRATIONS[MIGRATIONS.len() - 1].0;

pub(super) fn run(conn: &Handle) -> Result<()> {
    let current = conn.schema_version()?;
    if current > LATEST_SCHEMA_VERSION {
        return Err(Error::SchemaTooNew {
            found: current,
            supported: LATEST_SCHEMA_VERSION,
        });
    }
    for (version, sql) in MIGRATIONS.iter().filter(|(v, _)| *v > current) {
        // IMMEDIATE so two processes opening a fresh vault can't both migrate;
        // the loser re-reads user_version under the lock and skips.
        // Foreign keys off around the transaction, so a migration can rebuild a
        // table others reference (SQLite's documented ALTER TABLE procedure);
        // foreign_key_check below proves nothing was left dangling.
        conn.set_foreign_keys(false)?;
        conn.execute_batch("BEGIN IMMEDIATE")?;
        let result = (|| {
            let now = conn.schema_version()?;
            if now >= *version {
                return Ok(());
            }
            conn.execute_batch(sql)?;
            let dangling = conn.dangling_references()?;
            if dangling > 0 {
                return Err(Error::CorruptHeader {
                    reason: format!("migration {version} left {dangling} dangling reference(s)"),
                });
            }
            conn.set_schema_version(*version)?;
            Ok::<_, Error>(())
        })();
        let result = match result {
            Ok(()) => conn.execute_batch("COMMIT"),
            Err(e) => {
                let _ = conn.execute_batch("ROLLBACK");
                Err(e)
            }
        };
        conn.set_foreign_keys(true)?;
        result?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::sql::args;

    #[test]
    fn empty_to_latest_matches_golden_schema() {
        let conn = Handle::sqlite_in_memory().unwrap();
        run(&conn).unwrap();
        let v = conn.schema_version().unwrap();
        assert_eq!(v, LATEST_SCHEMA_VERSION);
        let tables: Vec<String> = conn
            .query_all(
                "SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name",
                args![],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(
            tables,
            [
                "agent_keys",
                "agents",
                "approvals",
                "audit_daily_ok",
                "audit_head",
                "audit_log",
                "audit_pruned",
                "audit_verified",
                "console_sessions",
                "egress_usage",
                "egress_usage_daily",
                "egress_usage_day_host",
                "egress_usage_dropped",
                "egress_usage_month_key",
                "key_changes",
                "key_suspensions",
                "revoked_tokens",
                "rotations",
                "scan_key",
                "secret_fingerprints",
                "secret_rotation",
                "secret_versions",
                "secrets",
                "settings",
                "targets",
                "vault_header",
                "vault_keys"
            ]
        );
        // running again is a no-op
        run(&conn).unwrap();
    }

    #[test]
    fn rebuilding_tables_keeps_their_rows_and_references() {
        let conn = Handle::sqlite_in_memory().unwrap();
        conn.set_foreign_keys(true).unwrap();
        for (version, sql) in &MIGRATIONS[..3] {
            conn.execute_batch(sql).unwrap();
            conn.set_schema_version(*version).unwrap();
        }
        conn.execute_batch(
            "INSERT INTO agents (name, created_at) VALUES ('hermes', 1);
             INSERT INTO agent_keys (key_id, name, agent_id, key_hash, status, created_at, expires_at)
                VALUES ('00112233445566ff', 'hermes-key', 1, zeroblob(32), 'active', 1, 9);
             INSERT INTO revoked_tokens VALUES ('aabbccddeeff0011', '00112233445566ff', 9, 1);",
        )
        .unwrap();
        run(&conn).unwrap();
        let n: i64 = conn
            .query_one(
                "SELECT count(*) FROM revoked_tokens JOIN agent_keys USING (key_id)",
                args![],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(n, 1);
        conn.execute("UPDATE agent_keys SET status = 'retiring'", args![])
            .unwrap();
        let fk: bool = conn
            .query_one("PRAGMA foreign_keys", args![], |r| r.get(0))
            .unwrap();
        assert!(fk);
    }

    #[test]
    fn newer_schema_is_refused() {
        let conn = Handle::sqlite_in_memory().unwrap();
        conn.set_schema_version(LATEST_SCHEMA_VERSION + 1).unwrap();
        assert!(matches!(run(&conn), Err(Error::SchemaTooNew { .. })));
    }
}
