//! PostgreSQL (issue 20): the schema and its migrations, so that several
//! `vault server`s can share one database, with row-level security as a
//! second wall behind the vault's own access checks.
//!
//! The migrations under `schema/postgres/` mirror `schema/` one for one (same
//! tables, columns and constraints; a test compares them with SQLite's), and
//! every table is created with row-level security enabled and forced. They
//! run as the database's owner, in one transaction under an advisory lock (two
//! servers starting on a fresh database do not both migrate); the version is
//! the one row of `vault_schema`. The role the servers log in as is then
//! granted row access only: it owns nothing, and [`check_role`] refuses one
//! that is a superuser or has BYPASSRLS, which would switch the wall off.
//!
//! [`Postgres`] is the [`Store`]: writes take one advisory lock (writers on
//! every server exclude each other, as `BEGIN IMMEDIATE` does on SQLite) and
//! are scoped to their principal, reads are `BEGIN READ ONLY` scoped to their
//! reader. The client is the blocking `postgres` crate: the server calls the
//! vault on its own worker thread (vault-server/src/worker.rs), never on the
//! async runtime, so blocking is right there. The broker's outbound matcher
//! (`Matcher::load_at`, vault-server/src/broker.rs) is loaded when the
//! server starts and reloaded in `spawn_blocking`, never on the runtime.

mod config;
mod conn;
mod copy;
mod listen;
mod tls;

pub(crate) use config::config;
pub(crate) use conn::{int, int_not_null, PgConn, RlsScope};
pub(crate) use copy::{pg_to_sqlite, sqlite_to_pg};
pub(crate) use listen::listen;
pub use listen::KeyChanges;

use ::postgres::Client;

use super::{Handle, Store, WriteTx};
use crate::error::{Error, Result};
use crate::Principal;

const MIGRATIONS: &[(i64, &str)] = &[
    (1, include_str!("../../../../schema/postgres/001_init.sql")),
    (
        2,
        include_str!("../../../../schema/postgres/002_keys_tokens.sql"),
    ),
    (3, include_str!("../../../../schema/postgres/003_audit.sql")),
    (
        4,
        include_str!("../../../../schema/postgres/004_rotation.sql"),
    ),
    (
        5,
        include_str!("../../../../schema/postgres/005_fingerprints.sql"),
    ),
    (
        6,
        include_str!("../../../../schema/postgres/006_suspensions.sql"),
    ),
    (
        7,
        include_str!("../../../../schema/postgres/007_settings.sql"),
    ),
    (
        8,
        include_str!("../../../../schema/postgres/008_row_tags.sql"),
    ),
    (
        9,
        include_str!("../../../../schema/postgres/009_broker_ca.sql"),
    ),
    (
        10,
        include_str!("../../../../schema/postgres/010_target_keys.sql"),
    ),
    (
        11,
        include_str!("../../../../schema/postgres/011_usage.sql"),
    ),
    (
        12,
        include_str!("../../../../schema/postgres/012_egress_holds.sql"),
    ),
    (
        13,
        include_str!("../../../../schema/postgres/013_console.sql"),
    ),
    (
        14,
        include_str!("../../../../schema/postgres/014_usage_daily.sql"),
    ),
    (
        15,
        include_str!("../../../../schema/postgres/015_audit_prune.sql"),
    ),
    (
        16,
        include_str!("../../../../schema/postgres/016_console_speed.sql"),
    ),
    (
        17,
        include_str!("../../../../schema/postgres/017_egress_only_keys.sql"),
    ),
    (
        18,
        include_str!("../../../../schema/postgres/018_audit_daily.sql"),
    ),
    (
        19,
        include_str!("../../../../schema/postgres/019_grants.sql"),
    ),
    (
        20,
        include_str!("../../../../schema/postgres/020_key_changes.sql"),
    ),
];

// SQLite's and PostgreSQL's schemas move together: one version number.
const _: () = assert!(MIGRATIONS[MIGRATIONS.len() - 1].0 == super::LATEST_SCHEMA_VERSION);

/// The advisory lock migrations hold ("vault" in ASCII): two processes
/// opening a fresh database migrate one after the other, the second finding
/// nothing to do.
const MIGRATION_LOCK: i64 = 0x76_6175_6c74;

/// The version table, created with the first migration. Every role reads it
/// (a server checks the version before it knows who acts); only the owner
/// writes it.
const VERSION_TABLE: &str = "
    CREATE TABLE vault_schema (
        singleton  BIGINT PRIMARY KEY CHECK (singleton = 1),
        version    BIGINT NOT NULL CHECK (version >= 0)
    );
    ALTER TABLE vault_schema ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
    CREATE POLICY read ON vault_schema FOR SELECT USING (true);
    CREATE POLICY migrate ON vault_schema USING (vault_is_operator()) WITH CHECK (vault_is_operator());
    INSERT INTO vault_schema (singleton, version) VALUES (1, 0);";

/// `name` as a quoted SQL identifier (roles cannot be bind parameters).
fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// The version recorded in `vault_schema`; 0 for a database without one.
pub(crate) fn schema_version(client: &mut Client) -> Result<i64> {
    let exists: bool = client
        .query_one("SELECT to_regclass('vault_schema') IS NOT NULL", &[])?
        .get(0);
    if !exists {
        return Ok(0);
    }
    Ok(client
        .query_opt("SELECT version FROM vault_schema WHERE singleton = 1", &[])?
        .map_or(0, |row| row.get(0)))
}

/// Brings the schema up to date, as the database's owner, and grants the
/// server's login role `app_role` (when given) row access to every table and
/// the use of every sequence: never ownership, never the version table's rows.
pub(crate) fn migrate(client: &mut Client, app_role: Option<&str>) -> Result<()> {
    let mut tx = client.transaction()?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])?;
    // the owner is bound by the forced policies too: it migrates as the operator
    tx.execute("SELECT set_config('vault.operator', 'on', true)", &[])?;
    let exists: bool = tx
        .query_one("SELECT to_regclass('vault_schema') IS NOT NULL", &[])?
        .get(0);
    let current: i64 = if exists {
        tx.query_one("SELECT version FROM vault_schema WHERE singleton = 1", &[])?
            .get(0)
    } else {
        0
    };
    if current > super::LATEST_SCHEMA_VERSION {
        return Err(Error::SchemaTooNew {
            found: current,
            supported: super::LATEST_SCHEMA_VERSION,
        });
    }
    for (version, sql) in MIGRATIONS.iter().filter(|(v, _)| *v > current) {
        tx.batch_execute(sql)?;
        if *version == 1 {
            // after 001, which defines vault_is_operator()
            tx.batch_execute(VERSION_TABLE)?;
        }
        tx.execute(
            "UPDATE vault_schema SET version = $1 WHERE singleton = 1",
            &[version],
        )?;
    }
    if let Some(role) = app_role {
        let role = quote_ident(role);
        tx.batch_execute(&format!(
            "GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {role};
             REVOKE INSERT, UPDATE, DELETE ON vault_schema FROM {role};
             GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO {role};"
        ))?;
    }
    tx.commit()?;
    Ok(())
}

/// Refuses to run as a role row-level security does not bind: a superuser,
/// or one with BYPASSRLS. The message says how to fix it.
pub(crate) fn check_role(client: &mut Client) -> Result<()> {
    let row = client.query_one(
        "SELECT current_user::text, rolsuper, rolbypassrls FROM pg_roles WHERE rolname = current_user",
        &[],
    )?;
    let (role, superuser, bypass): (String, bool, bool) = (row.get(0), row.get(1), row.get(2));
    let fix = match (superuser, bypass) {
        (true, _) => format!("ALTER ROLE {} NOSUPERUSER", quote_ident(&role)),
        (false, true) => format!("ALTER ROLE {} NOBYPASSRLS", quote_ident(&role)),
        (false, false) => return Ok(()),
    };
    Err(Error::Refused {
        reason: format!(
            "the database role {role:?} is not bound by row-level security (superuser or \
             BYPASSRLS); connect as a role without either, or run: {fix}"
        ),
    })
}

/// Refuses to serve as the role that owns the vault's tables: an owner may
/// `ALTER TABLE .. NO FORCE ROW LEVEL SECURITY` and so switch the wall off.
/// Only `vault init --database` and `vault migrate` run as the owner.
pub(crate) fn refuse_owner(client: &mut Client) -> Result<()> {
    let row = client.query_one(
        "SELECT current_user::text, count(*) FROM pg_tables
         WHERE schemaname = current_schema() AND tableowner = current_user",
        &[],
    )?;
    let (role, owned): (String, i64) = (row.get(0), row.get(1));
    if owned == 0 {
        return Ok(());
    }
    Err(Error::Refused {
        reason: format!(
            "the database role {role:?} owns the vault's tables ({owned}), so it could switch \
             row-level security off; connect as a role that owns nothing, granted rows only \
             (as the owner: GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA \
             public TO that_role; README, Running on PostgreSQL)"
        ),
    })
}

/// Connects to `database_url` (its password from a passfile, [`config`];
/// TLS as its `sslmode` asks, [`tls`]), saying which of the usual mistakes it
/// is: a server that does not answer (or no such database), a login it
/// refuses, or a certificate the URL's `sslmode` does not accept.
pub(crate) fn connect(database_url: &str) -> Result<Client> {
    let (config, tls) = config(database_url)?;
    let connected = if tls.mode == tls::SslMode::Disable {
        config.connect(::postgres::NoTls)
    } else {
        config.connect(tls.connector()?)
    };
    connected.map_err(|e| {
        // SQLSTATE class 28: invalid authorization (a wrong password, no such role)
        let auth = e
            .as_db_error()
            .is_some_and(|db| db.code().code().starts_with("28"));
        // the client's own refusal to log in without the password the server asked for
        let reason = match (e.as_db_error(), std::error::Error::source(&e)) {
            (Some(db), _) => db.message().to_owned(),
            // the client's words are in the source ("invalid configuration:
            // password missing", "error connecting to server: refused")
            (None, Some(source)) => format!("{e}: {source}"),
            (None, None) => e.to_string(),
        };
        let no_password = reason.contains("password missing");
        let place = match (config.get_hosts().first(), config.get_ports().first()) {
            (Some(::postgres::config::Host::Tcp(h)), Some(p)) => format!("{h}:{p}"),
            (Some(::postgres::config::Host::Tcp(h)), None) => h.clone(),
            _ => "the database".to_owned(),
        };
        if let Some(why) = tls::tls_failure(&e) {
            return Error::DatabaseTls {
                reason: format!(
                    "{place}: {why} (sslmode={}{})",
                    tls.mode.as_str(),
                    tls.root_cert
                        .as_ref()
                        .map(|p| format!(", sslrootcert={}", p.display()))
                        .unwrap_or_default()
                ),
            };
        }
        if reason.contains("server does not support TLS") {
            return Error::DatabaseTls {
                reason: format!(
                    "{place}: the server does not offer TLS, and sslmode={} requires it",
                    tls.mode.as_str()
                ),
            };
        }
        if auth || no_password {
            Error::DatabaseAuth {
                reason: format!(
                    "{place}: {reason}; the password comes from the passfile named by \
                     ?passfile= or PGPASSFILE (host:port:db:user:password, mode 0600)"
                ),
            }
        } else {
            Error::DatabaseUnreachable {
                reason: format!("{place}: {reason}"),
            }
        }
    })
}

/// Prepares a database for `vault init --database`: refuses a role RLS does
/// not bind, then creates (or brings up to date) the schema as this role,
/// which must be allowed to create tables (the database's owner).
pub(crate) fn prepare_for_init(database_url: &str) -> Result<()> {
    let mut client = connect(database_url)?;
    check_role(&mut client)?;
    migrate(&mut client, None).map_err(|e| match e {
        Error::Database(db) => Error::Refused {
            reason: format!(
                "the schema could not be created ({db}); run `vault init --database` as a role \
                 that may create tables in the database (its owner), then let the servers \
                 log in as a role that owns nothing (README, Running on PostgreSQL)"
            ),
        },
        other => other,
    })
}

/// The PostgreSQL backend: the vault's connection to a shared database,
/// as the role the servers log in as.
pub(crate) struct Postgres {
    conn: Handle,
}

impl Postgres {
    /// Connects as the server's role and refuses what it must not run on:
    /// a role RLS does not bind, a schema newer (or older) than this build's,
    /// and, when `vault_id` is given, a database holding another vault.
    pub(crate) fn open(database_url: &str, vault_id: Option<&[u8; 16]>) -> Result<Postgres> {
        let mut client = connect(database_url)?;
        check_role(&mut client)?;
        let version = schema_version(&mut client)?;
        if version > super::LATEST_SCHEMA_VERSION {
            return Err(Error::SchemaTooNew {
                found: version,
                supported: super::LATEST_SCHEMA_VERSION,
            });
        }
        if version == 0 {
            return Err(Error::NoVault {
                path: database_url.into(),
            });
        }
        if version < super::LATEST_SCHEMA_VERSION {
            return Err(Error::Refused {
                reason: format!(
                    "the database's vault schema is at version {version}, this build needs \
                     {}; migrate it as the database's owner first",
                    super::LATEST_SCHEMA_VERSION
                ),
            });
        }
        if let Some(want) = vault_id {
            let mut tx = client.transaction()?;
            tx.execute("SELECT set_config('vault.operator', 'on', true)", &[])?;
            let found: Option<Vec<u8>> = tx
                .query_opt("SELECT vault_id FROM vault_header WHERE singleton = 1", &[])?
                .map(|r| r.get(0));
            tx.commit()?;
            match found {
                Some(id) if id == want => {}
                Some(id) => {
                    return Err(Error::Refused {
                        reason: format!(
                            "the database holds another vault (id {}, expected {}); \
                             check the --database URL",
                            hex(&id),
                            hex(want)
                        ),
                    })
                }
                None => {
                    return Err(Error::Refused {
                        reason: "the database holds no vault yet; run `vault init --database`"
                            .to_owned(),
                    })
                }
            }
        }
        Ok(Postgres {
            conn: Handle::Postgres(Box::new(PgConn::reconnecting(client, database_url)?)),
        })
    }
}

impl Postgres {
    /// [`refuse_owner`] on this connection: the everyday commands' and the
    /// servers' open.
    pub(crate) fn refuse_owner(&self) -> Result<()> {
        match &self.conn {
            Handle::Postgres(c) => c.with_client(refuse_owner),
            Handle::Sqlite(_) => Ok(()),
        }
    }
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl std::ops::Deref for Postgres {
    type Target = Handle;
    fn deref(&self) -> &Handle {
        &self.conn
    }
}

/// A read on behalf of a principal: `BEGIN READ ONLY` scoped to it, or a
/// savepoint inside an open transaction (the server's batch), rolled back on
/// drop so the enclosing transaction's actor is back in force.
pub(crate) struct PgRead<'a> {
    conn: &'a Handle,
    nested: bool,
}

impl std::ops::Deref for PgRead<'_> {
    type Target = Handle;
    fn deref(&self) -> &Handle {
        self.conn
    }
}

impl Drop for PgRead<'_> {
    fn drop(&mut self) {
        // a read changed nothing: rolling back ends it and its scope
        let _ = self.conn.execute_batch(if self.nested {
            "ROLLBACK TO vault_read; RELEASE vault_read"
        } else {
            "ROLLBACK"
        });
    }
}

impl Store for Postgres {
    type Tx<'a> = WriteTx<'a>;
    type Read<'a> = PgRead<'a>;

    fn read(&self, actor: &Principal) -> Result<PgRead<'_>> {
        let nested = self.conn.in_transaction();
        self.conn.begin_read_as(actor, nested)?;
        Ok(PgRead {
            conn: &self.conn,
            nested,
        })
    }

    fn write(&self, actor: &Principal) -> Result<WriteTx<'_>> {
        let tx = super::write_tx_as(&self.conn, actor)?;
        Ok(tx)
    }

    fn begin_batch(&self) -> bool {
        super::begin_batch(&self.conn)
    }

    fn commit_batch(&self) -> Result<()> {
        super::commit_batch(&self.conn)
    }

    fn rollback_batch(&self) {
        super::rollback_batch(&self.conn)
    }

    fn set_durable(&self, durable: bool) -> Result<()> {
        self.conn.set_durable(durable)
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod grant_tests;
