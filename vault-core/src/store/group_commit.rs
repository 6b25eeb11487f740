//! How durable the server's group commit is on SQLite. A batch that holds
//! only trail records (the audit records of reads and brokered requests,
//! usage) commits without waiting for the disk, as a lone read's record
//! already does; a batch that changed any state is fsynced before any answer
//! in it is given. SQLite refuses to change `synchronous` inside an open
//! transaction, so every batch begins without the fsync and a state change
//! is made durable after its commit by syncing the WAL file itself.

use std::path::Path;
use std::sync::atomic::Ordering::Relaxed;

use crate::error::{Error, Result};

use super::{begin_batch, commit_batch, in_batch, rollback_batch, set_durable, Handle, Sqlite};

impl Sqlite {
    /// Starts a batch whose commit skips the fsync unless a write in it
    /// changes a row outside the trails ([`super::OwnWrites`]).
    pub(super) fn begin_group_commit(&self) -> bool {
        // The journal mode of a file on a filesystem without shared memory
        // may not be WAL; there only a synchronous commit is durable.
        if !self.wal || in_batch(&self.conn) {
            return begin_batch(&self.conn);
        }
        if set_durable(&self.conn, false).is_err() {
            return false;
        }
        if !begin_batch(&self.conn) {
            let _ = set_durable(&self.conn, true);
            return false;
        }
        self.writes_at_batch_start
            .store(self.own_writes.access.load(Relaxed), Relaxed);
        true
    }

    /// Commits the batch; if it changed state, the WAL is on disk when this
    /// returns `Ok`. An `Err` means the answers must not be given.
    pub(super) fn commit_group_commit(&self) -> Result<()> {
        let committed = commit_batch(&self.conn);
        if !self.wal {
            return committed;
        }
        let changed_state =
            self.own_writes.access.load(Relaxed) != self.writes_at_batch_start.load(Relaxed);
        let durable = committed.and_then(|()| match changed_state {
            true => self.sync_wal(),
            false => Ok(()),
        });
        // later transactions (rotations above all) wait for the disk again
        durable.and(set_durable(&self.conn, true))
    }

    /// Rolls the batch back; best effort.
    pub(super) fn rollback_group_commit(&self) {
        rollback_batch(&self.conn);
        if self.wal {
            let _ = set_durable(&self.conn, true);
        }
    }

    /// Flushes the WAL file: the frames of every commit so far, the batch's
    /// among them, survive a power cut from here on (what `synchronous=FULL`
    /// does at each commit).
    fn sync_wal(&self) -> Result<()> {
        let Handle::Sqlite(c) = &self.conn else {
            return Ok(());
        };
        let Some(db) = c.path().filter(|p| !p.is_empty()) else {
            return Ok(()); // in memory: nothing to lose to a power cut
        };
        let wal = format!("{db}-wal");
        std::fs::File::open(&wal)
            .and_then(|f| f.sync_data())
            .map_err(|e| Error::io(Path::new(&wal), e))?;
        self.wal_syncs.fetch_add(1, Relaxed);
        Ok(())
    }

    /// How many batches were made durable by syncing the WAL, and the
    /// connection's `synchronous` level now (2 is FULL).
    #[cfg(test)]
    pub(crate) fn durability_for_tests(&self) -> (u64, i64) {
        let Handle::Sqlite(c) = &self.conn else {
            unreachable!("a SQLite store")
        };
        let level = c.query_row("PRAGMA synchronous", [], |r| r.get(0)).unwrap();
        (self.wal_syncs.load(Relaxed), level)
    }
}

impl Handle {
    /// Whether this SQLite connection writes a WAL (`PRAGMA journal_mode`).
    pub(super) fn is_wal(&self) -> bool {
        match self {
            Handle::Sqlite(c) => c
                .query_row("PRAGMA journal_mode", [], |r| r.get::<_, String>(0))
                .is_ok_and(|mode| mode.eq_ignore_ascii_case("wal")),
            Handle::Postgres(_) => false,
        }
    }
}
