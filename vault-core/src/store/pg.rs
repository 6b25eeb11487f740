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

use ::postgres::Client;

use crate::error::{Error, Result};

const MIGRATIONS: &[(i64, &str)] = &[
    (1, include_str!("../../../schema/postgres/001_init.sql")),
    (
        2,
        include_str!("../../../schema/postgres/002_keys_tokens.sql"),
    ),
    (3, include_str!("../../../schema/postgres/003_audit.sql")),
    (4, include_str!("../../../schema/postgres/004_rotation.sql")),
    (
        5,
        include_str!("../../../schema/postgres/005_fingerprints.sql"),
    ),
    (
        6,
        include_str!("../../../schema/postgres/006_suspensions.sql"),
    ),
    (7, include_str!("../../../schema/postgres/007_settings.sql")),
    (8, include_str!("../../../schema/postgres/008_row_tags.sql")),
    (
        9,
        include_str!("../../../schema/postgres/009_broker_ca.sql"),
    ),
    (
        10,
        include_str!("../../../schema/postgres/010_target_keys.sql"),
    ),
    (11, include_str!("../../../schema/postgres/011_usage.sql")),
    (
        12,
        include_str!("../../../schema/postgres/012_egress_holds.sql"),
    ),
    (13, include_str!("../../../schema/postgres/013_console.sql")),
    (
        14,
        include_str!("../../../schema/postgres/014_usage_daily.sql"),
    ),
    (
        15,
        include_str!("../../../schema/postgres/015_audit_prune.sql"),
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

#[cfg(test)]
mod tests {
    use super::*;
    use vault_testpg::TestDb;

    /// A migrated test database; `None` when PostgreSQL is missing (skipped,
    /// or failed under CI=true).
    fn migrated() -> Option<TestDb> {
        let db = TestDb::create()?;
        migrate(&mut db.owner_client(), Some(&db.server)).unwrap();
        Some(db)
    }

    /// Two agents with a secret each, written as the operator.
    fn seed(db: &TestDb) {
        let mut owner = db.owner_client();
        owner
            .batch_execute(
                "BEGIN;
                 SELECT set_config('vault.operator', 'on', true);
                 INSERT INTO agents (name, created_at) VALUES ('a', 1), ('b', 1);
                 INSERT INTO secrets (agent_id, name, current_version, created_at, updated_at)
                     SELECT agent_id, 'TOKEN', 1, 1, 1 FROM agents;
                 INSERT INTO secret_versions (secret_id, version, ciphertext, created_at)
                     SELECT secret_id, 1, decode(repeat('00', 29), 'hex'), 1 FROM secrets;
                 COMMIT;",
            )
            .unwrap();
    }

    fn agents_of_visible_secrets(client: &mut impl ::postgres::GenericClient) -> Vec<String> {
        // no WHERE on the agent: the filter is the database's
        client
            .query(
                "SELECT a.name FROM secrets s JOIN agents a USING (agent_id) ORDER BY 1",
                &[],
            )
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect()
    }

    #[test]
    fn rls_shows_an_agent_only_its_own_secrets_without_a_where_clause() {
        // issue 20, RLS: as the server's role with vault.agent = 'a', a SELECT
        // with no filter returns a's rows only; with no setting, none
        let Some(db) = migrated() else { return };
        seed(&db);
        let mut server = db.server_client();
        let mut tx = server.transaction().unwrap();
        tx.execute("SELECT set_config('vault.agent', 'a', true)", &[])
            .unwrap();
        let seen: Vec<String> = tx
            .query(
                "SELECT a.name FROM secrets s JOIN agents a USING (agent_id)",
                &[],
            )
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
        assert_eq!(seen, ["a"]);
        let all: i64 = tx
            .query_one("SELECT count(*) FROM secrets", &[])
            .unwrap()
            .get(0);
        assert_eq!(all, 1, "b's secret is invisible to a");
        let versions: i64 = tx
            .query_one("SELECT count(*) FROM secret_versions", &[])
            .unwrap()
            .get(0);
        assert_eq!(versions, 1, "b's versions are invisible to a");
        // a cannot write a row for b either
        let b_id: Option<i64> = tx
            .query_opt("SELECT agent_id FROM agents WHERE name = 'b'", &[])
            .unwrap()
            .map(|r| r.get(0));
        assert_eq!(b_id, None, "b's agent row is invisible to a");
        tx.commit().unwrap();
        // the setting ended with the transaction: nothing is visible now
        assert!(agents_of_visible_secrets(&mut server).is_empty());
        // the operator sees both
        let mut tx = server.transaction().unwrap();
        tx.execute("SELECT set_config('vault.operator', 'on', true)", &[])
            .unwrap();
        assert_eq!(agents_of_visible_secrets(&mut tx), ["a", "b"]);
    }

    #[test]
    fn an_agent_cannot_insert_a_secret_for_another_agent() {
        // issue 20, RLS: WITH CHECK refuses a write outside the acting agent
        let Some(db) = migrated() else { return };
        seed(&db);
        let mut owner = db.owner_client();
        let mut op = owner.transaction().unwrap();
        op.execute("SELECT set_config('vault.operator', 'on', true)", &[])
            .unwrap();
        let b: i64 = op
            .query_one("SELECT agent_id FROM agents WHERE name = 'b'", &[])
            .unwrap()
            .get(0);
        drop(op);
        let mut server = db.server_client();
        let mut tx = server.transaction().unwrap();
        tx.execute("SELECT set_config('vault.agent', 'a', true)", &[])
            .unwrap();
        let err = tx
            .execute(
                "INSERT INTO secrets (agent_id, name, current_version, created_at, updated_at)
                 VALUES ($1, 'PLANTED', 1, 1, 1)",
                &[&b],
            )
            .unwrap_err();
        let message = err.as_db_error().map(|e| e.message().to_owned());
        assert!(
            message
                .as_deref()
                .is_some_and(|m| m.contains("row-level security")),
            "{err:?}"
        );
    }

    #[test]
    fn a_new_table_with_forced_rls_and_no_policy_returns_no_rows() {
        // issue 20, RLS: a table created the way the migrations create them
        // refuses every row until a policy says otherwise, even to its owner
        let Some(db) = migrated() else { return };
        let mut owner = db.owner_client();
        owner
            .batch_execute(
                "CREATE TABLE later (agent_id BIGINT, x TEXT);
                 ALTER TABLE later ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
                 GRANT SELECT, INSERT ON later TO PUBLIC;",
            )
            .unwrap();
        assert!(owner
            .execute("INSERT INTO later VALUES (1, 'x')", &[])
            .is_err());
        let mut admin = db.admin_client();
        admin
            .execute("INSERT INTO later VALUES (1, 'x')", &[])
            .unwrap();
        for client in [&mut owner, &mut db.server_client()] {
            let mut tx = client.transaction().unwrap();
            tx.execute("SELECT set_config('vault.operator', 'on', true)", &[])
                .unwrap();
            let n: i64 = tx
                .query_one("SELECT count(*) FROM later", &[])
                .unwrap()
                .get(0);
            assert_eq!(n, 0);
        }
    }

    #[test]
    fn every_table_forces_rls_has_a_policy_and_belongs_to_the_owner() {
        // issue 20, RLS: no table of the schema is outside the wall, and the
        // server's role owns none of them
        let Some(db) = migrated() else { return };
        let rows = db
            .admin_client()
            .query(
                "SELECT c.relname::text, c.relrowsecurity, c.relforcerowsecurity,
                        (SELECT count(*) FROM pg_policy p WHERE p.polrelid = c.oid),
                        pg_get_userbyid(c.relowner)::text
                 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                 WHERE n.nspname = 'public' AND c.relkind = 'r' ORDER BY 1",
                &[],
            )
            .unwrap();
        assert_eq!(
            rows.len(),
            23,
            "the 22 tables of SQLite's schema and vault_schema"
        );
        for row in rows {
            let (name, on, forced, policies, owner): (String, bool, bool, i64, String) =
                (row.get(0), row.get(1), row.get(2), row.get(3), row.get(4));
            assert!(on && forced, "{name}: row-level security not forced");
            assert!(policies > 0, "{name}: no policy");
            assert_eq!(owner, db.owner, "{name}");
        }
    }

    #[test]
    fn postgres_tables_and_columns_mirror_sqlite() {
        // issue 20, schema: the same tables with the same columns, in order
        let Some(db) = migrated() else { return };
        let sqlite = super::super::Handle::sqlite(rusqlite::Connection::open_in_memory().unwrap());
        super::super::migrate::run(&sqlite).unwrap();
        let mut want = Vec::new();
        let mut tables = sqlite
            .prepare("SELECT name FROM sqlite_schema WHERE type = 'table' ORDER BY name")
            .unwrap();
        let names: Vec<String> = tables
            .query_map([], |r| r.get(0))
            .unwrap()
            .map(|r| r.unwrap())
            .filter(|n: &String| !n.starts_with("sqlite_"))
            .collect();
        for table in names {
            let mut cols = sqlite
                .prepare(&format!(
                    "SELECT name FROM pragma_table_info('{table}') ORDER BY cid"
                ))
                .unwrap();
            let cols: Vec<String> = cols
                .query_map([], |r| r.get(0))
                .unwrap()
                .map(|r| r.unwrap())
                .collect();
            want.push((table, cols));
        }
        let mut admin = db.admin_client();
        let mut got = Vec::new();
        for (table, _) in &want {
            let cols: Vec<String> = admin
                .query(
                    "SELECT column_name::text FROM information_schema.columns
                     WHERE table_schema = 'public' AND table_name = $1 ORDER BY ordinal_position",
                    &[table],
                )
                .unwrap()
                .iter()
                .map(|r| r.get(0))
                .collect();
            got.push((table.clone(), cols));
        }
        assert_eq!(got, want);
    }

    #[test]
    fn a_database_at_a_newer_schema_version_is_refused() {
        // issue 20, bad input: a newer schema is not migrated down or used
        let Some(db) = migrated() else { return };
        let mut owner = db.owner_client();
        owner
            .batch_execute(&format!(
                "BEGIN; SELECT set_config('vault.operator', 'on', true);
                 UPDATE vault_schema SET version = {}; COMMIT;",
                super::super::LATEST_SCHEMA_VERSION + 1
            ))
            .unwrap();
        assert!(matches!(
            migrate(&mut owner, None),
            Err(Error::SchemaTooNew { .. })
        ));
        // the server's role reads the version without saying who acts
        assert_eq!(
            schema_version(&mut db.server_client()).unwrap(),
            super::super::LATEST_SCHEMA_VERSION + 1
        );
        // and cannot change it
        let mut server = db.server_client();
        let mut tx = server.transaction().unwrap();
        tx.execute("SELECT set_config('vault.operator', 'on', true)", &[])
            .unwrap();
        assert!(tx
            .execute("UPDATE vault_schema SET version = 1", &[])
            .is_err());
    }

    #[test]
    fn migrating_twice_is_a_no_op() {
        // issue 20, schema: a second server starting on a migrated database
        let Some(db) = migrated() else { return };
        migrate(&mut db.owner_client(), Some(&db.server)).unwrap();
        assert_eq!(
            schema_version(&mut db.server_client()).unwrap(),
            super::super::LATEST_SCHEMA_VERSION
        );
    }

    #[test]
    fn a_role_with_bypassrls_or_superuser_is_refused_with_the_fix() {
        // issue 20, bad input: a role RLS does not bind is refused at open
        let Some(db) = migrated() else { return };
        check_role(&mut db.server_client()).unwrap();
        db.admin_client()
            .batch_execute(&format!("ALTER ROLE {} BYPASSRLS", db.server))
            .unwrap();
        let err = check_role(&mut db.server_client()).unwrap_err().to_string();
        assert!(
            err.contains(&format!("ALTER ROLE \"{}\" NOBYPASSRLS", db.server)),
            "{err}"
        );
        let err = check_role(&mut db.admin_client()).unwrap_err().to_string();
        assert!(err.contains("NOSUPERUSER"), "{err}");
    }
}
