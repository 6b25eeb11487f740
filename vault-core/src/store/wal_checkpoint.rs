//! WAL checkpoints of a long-running server, on a connection of their own.
//! SQLite runs a checkpoint inside the commit that grows the WAL past 1,000
//! pages: two fsyncs and a copy of the pages back into the database, paid by
//! whichever request's audit record happened to commit then (one brokered
//! request in a few hundred waited milliseconds for it: issue 15's p99). A
//! server hands that work to a [`WalCheckpointer`] on another thread; the
//! writer keeps a distant backstop so the WAL stays bounded if it lags.

use std::path::Path;

use super::sql::args;
use super::{Handle, Sqlite};
use crate::error::Result;

/// WAL pages past which the writer checkpoints by itself all the same (about
/// 40 MB): the checkpointer lagging, or a checkpoint that never catches up
/// with a writer that commits without pause, which keeps SQLite from
/// starting the WAL over. Most pages are then copied already, so the
/// writer's own checkpoint is short.
pub(crate) const WRITER_BACKSTOP_PAGES: i64 = 10_000;

/// A connection that only checkpoints the vault's WAL (`PASSIVE`: it waits
/// for no reader or writer, and copies what no reader still needs).
pub struct WalCheckpointer {
    conn: Handle,
}

/// What one checkpoint found and did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WalProgress {
    /// Frames in the WAL.
    pub frames: i64,
    /// Frames now copied back into the database (all of them when equal).
    pub copied: i64,
}

impl WalCheckpointer {
    /// Copies what it can of the WAL back into the database. Cheap when
    /// there is nothing new: no disk flush, a look at the WAL's index.
    pub fn checkpoint(&self) -> Result<WalProgress> {
        self.conn
            .query_one("PRAGMA wal_checkpoint(PASSIVE)", args![], |r| {
                Ok(WalProgress {
                    frames: r.get(1)?,
                    copied: r.get(2)?,
                })
            })
    }
}

impl Sqlite {
    /// Moves this connection's checkpoints to a [`WalCheckpointer`] that the
    /// caller runs (`None` when the file is not in WAL mode or in memory:
    /// nothing to move). This connection keeps only the backstop.
    pub(super) fn checkpoint_elsewhere(&self) -> Result<Option<WalCheckpointer>> {
        let Handle::Sqlite(c) = &self.conn else {
            return Ok(None);
        };
        let Some(path) = c.path().filter(|p| !p.is_empty() && self.wal) else {
            return Ok(None);
        };
        let conn = Handle::sqlite_checkpointer(Path::new(path))?;
        self.conn.execute_batch(&format!(
            "PRAGMA wal_autocheckpoint = {WRITER_BACKSTOP_PAGES}"
        ))?;
        Ok(Some(WalCheckpointer { conn }))
    }
}
