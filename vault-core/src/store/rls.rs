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
