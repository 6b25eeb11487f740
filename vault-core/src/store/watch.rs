//! What a cache of access decisions watches on the SQLite connection
//! (vault/egress_cache.rs): this connection's own writes to the rows that
//! decide access, and other connections' commits.

use crate::error::Result;

use super::Handle;

impl Handle {
    /// Counts this connection's own changes to the rows that decide what an
    /// agent may do (keys, tokens, secrets, policies, settings: every table
    /// but the append-only trails below) in `counter`, so a cache of those
    /// decisions sees the vault's own writes. SQLite only (PostgreSQL: no-op).
    pub(crate) fn count_own_writes(&self, counter: std::sync::Arc<super::OwnWrites>) {
        /// Written on every request, and read by no access decision.
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
