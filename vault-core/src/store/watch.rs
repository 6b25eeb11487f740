//! What a cache of access decisions watches on the SQLite connection
//! (vault/egress_cache.rs): this connection's own writes to the rows that
//! decide access, and other connections' commits.

use crate::error::Result;

use super::{Handle, Sqlite};

/// Counts of one connection's own row changes.
#[derive(Default)]
pub(crate) struct OwnWrites {
    /// To any table but the append-only trails (audit, usage, console
    /// sessions): what an access decision reads.
    pub(crate) access: std::sync::atomic::AtomicU64,
}

impl Sqlite {
    /// `conn`, with its own writes counted ([`Handle::count_own_writes`]).
    pub(super) fn watched(conn: Handle) -> Sqlite {
        let own_writes = std::sync::Arc::default();
        conn.count_own_writes(std::sync::Arc::clone(&own_writes));
        let wal = conn.is_wal();
        Sqlite {
            conn,
            own_writes,
            writes_at_batch_start: Default::default(),
            wal,
            wal_syncs: Default::default(),
        }
    }

    /// Where the access-deciding state stands: (another connection's
    /// commits, this connection's own writes). Equal stamps mean no key,
    /// token, secret, policy or setting changed in between.
    pub(crate) fn change_stamp(&self) -> Result<(i64, u64)> {
        let foreign = self.conn.data_version()?.unwrap_or_default();
        Ok((
            foreign,
            self.own_writes
                .access
                .load(std::sync::atomic::Ordering::Relaxed),
        ))
    }
}

/// Written on every request, and read by no access decision. Writes to
/// them neither empty the egress cache nor make a group commit fsync
/// (group_commit.rs).
const TRAILS: &[&str] = &[
    "audit_log",
    "audit_head",
    "audit_daily_ok",
    "audit_verified",
    "egress_usage",
    "egress_usage_dropped",
    "egress_usage_daily",
    "egress_usage_day_host",
    "egress_usage_month_key",
    "console_sessions",
];

impl Handle {
    /// Counts this connection's own changes to the rows that decide what an
    /// agent may do (keys, tokens, secrets, policies, settings: every table
    /// but the append-only [`TRAILS`]) in `counter`, so a cache of those
    /// decisions sees the vault's own writes. SQLite only (PostgreSQL: no-op).
    pub(crate) fn count_own_writes(&self, counter: std::sync::Arc<OwnWrites>) {
        if let Handle::Sqlite(c) = self {
            c.update_hook(Some(move |_, _: &str, table: &str, _| {
                use std::sync::atomic::Ordering::Relaxed;
                if !TRAILS.contains(&table) {
                    counter.access.fetch_add(1, Relaxed);
                }
            }));
        }
    }

    /// SQLite's `PRAGMA data_version`: changes whenever another connection
    /// (another process: `vault revoke`, `vault set`) commits to the file.
    /// `None` on PostgreSQL.
    pub(crate) fn data_version(&self) -> Result<Option<i64>> {
        match self {
            Handle::Sqlite(c) => {
                let mut stmt = c.prepare_cached("PRAGMA data_version")?;
                Ok(Some(stmt.query_row([], |r| r.get(0))?))
            }
            Handle::Postgres(_) => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::TRAILS;

    #[test]
    fn every_table_the_update_hook_cannot_see_is_a_trail() {
        // SQLite calls no update hook for WITHOUT ROWID tables: a state table
        // among them would change access without emptying the egress cache,
        // and without the fsync of the batch that changed it.
        let dir = tempfile::tempdir().unwrap();
        let conn = super::super::create(&dir.path().join("vault.db")).unwrap();
        let super::Handle::Sqlite(c) = &conn else {
            unreachable!()
        };
        let mut stmt = c
            .prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND sql LIKE '%WITHOUT ROWID%'")
            .unwrap();
        let hidden: Vec<String> = stmt
            .query_map([], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert!(!hidden.is_empty(), "the schema has WITHOUT ROWID tables");
        for table in hidden {
            assert!(TRAILS.contains(&table.as_str()), "{table} is not a trail");
        }
    }
}
