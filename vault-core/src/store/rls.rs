//! What PostgreSQL's row-level security reads in a transaction (who acts,
//! which granted secrets the vault let it read), set through the handle so
//! the families' SQL stays one text for both backends; SQLite needs none.

use super::sql::Handle;
use super::RlsScope;
use crate::error::Result;
use crate::names::SecretPath;
use crate::Principal;

impl Handle {
    /// [`Handle::begin_immediate`], the transaction acting for `actor` from
    /// its first statement (PostgreSQL: in the same round trip).
    pub(crate) fn begin_immediate_as(&self, actor: &Principal) -> Result<()> {
        match self {
            Handle::Sqlite(_) => self.begin_immediate(),
            Handle::Postgres(p) => p.begin_write(Some(actor)),
        }
    }

    /// Opens a read for `actor`: a transaction, or inside one a savepoint
    /// (`vault_read`); on PostgreSQL one round trip with who acts.
    pub(crate) fn begin_read_as(&self, actor: &Principal, nested: bool) -> Result<()> {
        match self {
            Handle::Sqlite(_) if nested => self.execute_batch("SAVEPOINT vault_read"),
            Handle::Sqlite(_) => self.execute_batch("BEGIN"),
            Handle::Postgres(p) => p.begin_read(actor, nested),
        }
    }

    /// Opens the savepoint `vault_nested` in the open transaction, acting
    /// for `actor`; returns who acted before, for
    /// [`Handle::release_savepoint`] (SQLite: nobody, it needs nothing).
    /// PostgreSQL: one round trip.
    pub(crate) fn savepoint_as(&self, actor: &Principal) -> Result<Option<RlsScope>> {
        match self {
            Handle::Sqlite(_) => self.execute_batch("SAVEPOINT vault_nested").map(|()| None),
            Handle::Postgres(p) => p.savepoint_as(actor).map(Some),
        }
    }

    /// Releases `vault_nested` and puts back the scope `outer` its opening
    /// returned: a released savepoint's `set_config` would otherwise outlive
    /// it in the enclosing transaction. PostgreSQL: one round trip.
    pub(crate) fn release_savepoint(&self, outer: Option<&RlsScope>) -> Result<()> {
        match (self, outer) {
            (Handle::Postgres(p), Some(outer)) => p.release_savepoint(outer),
            _ => self.execute_batch("RELEASE vault_nested"),
        }
    }

    /// Lets the acting agent read another agent's secret `path` in the open
    /// transaction, once the vault's policy check allowed it (PostgreSQL's
    /// row-level security reads it; SQLite needs nothing).
    pub(crate) fn grant_read(&self, path: &SecretPath) -> Result<()> {
        match self {
            Handle::Sqlite(_) => Ok(()),
            Handle::Postgres(p) => p.grant_read(&path.to_string()),
        }
    }
}
