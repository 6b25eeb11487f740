//! The backend a vault holds, SQLite or PostgreSQL (issue 20): one enum
//! over the two [`Store`]s, so the vault's methods are written once.

use super::{pg, set_durable, Handle, ReadTx, Sqlite, Store, WalCheckpointer, WriteTx};
use crate::error::Result;
use crate::Principal;

/// The backend a vault holds: the one place the vault chooses between them,
/// so every method above is written once against [`Store`] and [`Handle`].
pub(crate) enum Backing {
    Sqlite(Sqlite),
    Postgres(pg::Postgres),
}

/// A read on either backend ([`Store::read`]).
pub(crate) enum AnyRead<'a> {
    Sqlite(ReadTx<'a>),
    Postgres(pg::PgRead<'a>),
}

impl std::ops::Deref for AnyRead<'_> {
    type Target = Handle;
    fn deref(&self) -> &Handle {
        match self {
            AnyRead::Sqlite(r) => r,
            AnyRead::Postgres(r) => r,
        }
    }
}

impl Backing {
    /// [`Sqlite::change_stamp`]; `None` on PostgreSQL, where other servers'
    /// changes are not seen this way (nothing there may be cached on it).
    pub(crate) fn change_stamp(&self) -> Result<Option<(i64, u64)>> {
        match self {
            Backing::Sqlite(s) => s.change_stamp().map(Some),
            Backing::Postgres(_) => Ok(None),
        }
    }
}

impl Backing {
    /// [`Sqlite::checkpoint_elsewhere`]; `None` on PostgreSQL, whose server
    /// checkpoints by itself.
    pub(crate) fn checkpoint_elsewhere(&self) -> Result<Option<WalCheckpointer>> {
        match self {
            Backing::Sqlite(s) => s.checkpoint_elsewhere(),
            Backing::Postgres(_) => Ok(None),
        }
    }

    /// [`Sqlite::durability_for_tests`].
    #[cfg(test)]
    pub(crate) fn durability_for_tests(&self) -> (u64, i64) {
        match self {
            Backing::Sqlite(s) => s.durability_for_tests(),
            Backing::Postgres(_) => unreachable!("a SQLite store"),
        }
    }
}

impl std::ops::Deref for Backing {
    type Target = Handle;
    fn deref(&self) -> &Handle {
        match self {
            Backing::Sqlite(s) => s,
            Backing::Postgres(p) => p,
        }
    }
}

impl Store for Backing {
    type Tx<'a> = WriteTx<'a>;
    type Read<'a> = AnyRead<'a>;

    fn write(&self, actor: &Principal) -> Result<WriteTx<'_>> {
        match self {
            Backing::Sqlite(s) => s.write(actor),
            Backing::Postgres(p) => p.write(actor),
        }
    }

    fn read(&self, actor: &Principal) -> Result<AnyRead<'_>> {
        Ok(match self {
            Backing::Sqlite(s) => AnyRead::Sqlite(s.read(actor)?),
            Backing::Postgres(p) => AnyRead::Postgres(p.read(actor)?),
        })
    }

    fn begin_batch(&self) -> bool {
        match self {
            Backing::Sqlite(s) => s.begin_batch(),
            Backing::Postgres(p) => p.begin_batch(),
        }
    }

    fn commit_batch(&self) -> Result<()> {
        match self {
            Backing::Sqlite(s) => s.commit_batch(),
            Backing::Postgres(p) => p.commit_batch(),
        }
    }

    fn rollback_batch(&self) {
        match self {
            Backing::Sqlite(s) => s.rollback_batch(),
            Backing::Postgres(p) => p.rollback_batch(),
        }
    }

    fn set_durable(&self, durable: bool) -> Result<()> {
        set_durable(self, durable)
    }
}
