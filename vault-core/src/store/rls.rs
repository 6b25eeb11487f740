//! What PostgreSQL's row-level security reads in a transaction (who acts,
//! which granted secrets the vault let it read), set through the handle so
//! the families' SQL stays one text for both backends; SQLite needs none.

use super::sql::Handle;
use super::RlsScope;
use crate::error::Result;
use crate::names::SecretPath;
use crate::Principal;

impl Handle {
    /// Says who acts in the open transaction (PostgreSQL's row-level
    /// security reads it; SQLite needs nothing).
    pub(crate) fn scope_to(&self, actor: &Principal) -> Result<()> {
        match self {
            Handle::Sqlite(_) => Ok(()),
            Handle::Postgres(p) => p.scope_to(actor),
        }
    }

    /// [`Handle::begin_immediate`] and [`Handle::scope_to`] in one: on
    /// PostgreSQL one round trip instead of two.
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

    /// Who acts in the open transaction, as [`Handle::restore_scope`] takes
    /// it back (SQLite: nobody, it needs nothing).
    pub(crate) fn scope(&self) -> Result<Option<RlsScope>> {
        match self {
            Handle::Sqlite(_) => Ok(None),
            Handle::Postgres(p) => p.scope().map(Some),
        }
    }

    /// Puts back a scope [`Handle::scope`] read: a savepoint's released
    /// `set_config` would otherwise outlive it in the enclosing transaction.
    pub(crate) fn restore_scope(&self, scope: &RlsScope) -> Result<()> {
        match self {
            Handle::Sqlite(_) => Ok(()),
            Handle::Postgres(p) => p.set_scope(scope),
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
