//! The PostgreSQL backend against a real throwaway cluster (vault-testpg):
//! schema, row-level security, the handle, and the refusals at open.

use super::conn::rewrite_placeholders;
use super::*;
use crate::store::sql::Value;
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
        28,
        "the 27 tables of SQLite's schema and vault_schema"
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
    let sqlite = super::super::Handle::sqlite_in_memory().unwrap();
    super::super::migrate::run(&sqlite).unwrap();
    let mut want = Vec::new();
    let names = sqlite
        .query_all(
            "SELECT name FROM sqlite_schema WHERE type = 'table' ORDER BY name",
            crate::store::sql::args![],
            |r| r.get::<String>(0),
        )
        .unwrap();
    for table in names.into_iter().filter(|n| !n.starts_with("sqlite_")) {
        let cols = sqlite
            .query_all(
                "SELECT name FROM pragma_table_info(?1) ORDER BY cid",
                crate::store::sql::args![&table],
                |r| r.get::<String>(0),
            )
            .unwrap();
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

fn agent(name: &str) -> Principal {
    Principal::Agent(crate::AgentName::parse(name).unwrap())
}

#[test]
fn placeholders_are_rewritten_outside_quotes_and_comments() {
    // issue 20, the handle: SQL written once with ?N runs on PostgreSQL
    assert_eq!(
        rewrite_placeholders(
            "SELECT '?1', \"a?2\", x FROM t -- ?3\nWHERE a = ?1 AND b = ?12 AND c = 'it''s ?4'"
        ),
        "SELECT '?1', \"a?2\", x FROM t -- ?3\nWHERE a = $1 AND b = $12 AND c = 'it''s ?4'"
    );
}

#[test]
fn the_handle_runs_every_query_shape_on_postgres() {
    // issue 20, the handle: typed values, typed nulls, RETURNING ids,
    // narrow integer columns and booleans read as the families read them
    let Some(db) = TestDb::create() else { return };
    let h = Handle::Postgres(Box::new(PgConn::new(db.owner_client())));
    h.execute_batch(
        "CREATE TEMP TABLE t (id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
                              n BIGINT, s TEXT, b BYTEA)",
    )
    .unwrap();
    let blob = vec![1u8, 2, 3];
    let id = h
        .insert_returning(
            "INSERT INTO t (n, s, b) VALUES (?1, ?2, ?3)",
            crate::store::sql::args![7i64, "seven", &blob],
            "id",
        )
        .unwrap();
    assert_eq!(id, 1);
    let id2 = h
        .insert_returning(
            "INSERT INTO t (n, s, b) VALUES (?1, ?2, ?3)",
            crate::store::sql::args![None::<i64>, None::<&str>, None::<&[u8]>],
            "id",
        )
        .unwrap();
    assert_eq!(id2, 2);
    let row = h
        .query_one(
            "SELECT n, s, b, length(b), n > 1 FROM t WHERE id = ?1",
            crate::store::sql::args![id],
            |r| {
                Ok((
                    r.get::<i64>(0)?,
                    r.get::<String>(1)?,
                    r.get::<Vec<u8>>(2)?,
                    r.get::<i64>(3)?,
                    r.get::<bool>(4)?,
                ))
            },
        )
        .unwrap();
    assert_eq!(row, (7, "seven".to_owned(), blob.clone(), 3, true));
    let nulls = h
        .query_one(
            "SELECT n, s, b FROM t WHERE id = ?1",
            crate::store::sql::args![id2],
            |r| {
                Ok((
                    r.get::<Option<i64>>(0)?,
                    r.get::<Option<String>>(1)?,
                    r.get::<Option<Vec<u8>>>(2)?,
                ))
            },
        )
        .unwrap();
    assert_eq!(nulls, (None, None, None));
    // a NULL read as a non-null type is an error, not a zero
    assert!(h
        .query_one(
            "SELECT n FROM t WHERE id = ?1",
            crate::store::sql::args![id2],
            |r| r.get::<i64>(0)
        )
        .is_err());
    assert!(h
        .query_opt(
            "SELECT n FROM t WHERE id = ?1",
            crate::store::sql::args![99i64],
            |r| r.get::<i64>(0)
        )
        .unwrap()
        .is_none());
    assert!(h
        .query_one(
            "SELECT n FROM t WHERE id = ?1",
            crate::store::sql::args![99i64],
            |r| r.get::<i64>(0)
        )
        .is_err());
    // ?1 + 1 is BIGINT arithmetic: the parameter's type is the value's
    let next = h
        .query_one(
            "SELECT ?1 + 1",
            crate::store::sql::args![i64::MAX - 1],
            |r| r.get::<i64>(0),
        )
        .unwrap();
    assert_eq!(next, i64::MAX);
    let all = h
        .query_all(
            "SELECT id FROM t ORDER BY id",
            crate::store::sql::args![],
            |r| r.get::<i64>(0),
        )
        .unwrap();
    assert_eq!(all, [1, 2]);
    // a callback may run statements of its own on the same handle
    let mut seen = 0;
    h.query_each("SELECT id FROM t", crate::store::sql::args![], |r| {
        let id: i64 = r.get(0)?;
        h.execute(
            "UPDATE t SET n = ?1 WHERE id = ?2",
            crate::store::sql::args![true, id],
        )?;
        seen += 1;
        Ok(())
    })
    .unwrap();
    assert_eq!(seen, 2);
    assert_eq!(
        h.execute(
            "UPDATE t SET n = ?1 WHERE n = 1",
            crate::store::sql::args![false]
        )
        .unwrap(),
        2
    );
    assert_eq!(h.backend(), super::super::sql::Backend::Postgres);
    assert!(!h.in_transaction());
    h.execute_batch("BEGIN").unwrap();
    assert!(h.in_transaction());
    h.execute_batch("ROLLBACK").unwrap();
    assert!(!h.in_transaction());
}

#[test]
fn a_write_as_an_agent_sees_only_its_rows_even_with_the_vaults_filter_removed() {
    // issue 20, RLS through the store: a transaction the store opens for
    // agent a is scoped to a; a query naming b's rows returns nothing
    let Some(db) = migrated() else { return };
    seed(&db);
    let store = Postgres::open(&db.url(), None).unwrap();
    let tx = store.write(&agent("a")).unwrap();
    let names =
        |sql: &str, args: &[Value<'_>]| tx.query_all(sql, args, |r| r.get::<String>(0)).unwrap();
    assert_eq!(
        names("SELECT name FROM secrets", crate::store::sql::args![]),
        ["TOKEN"]
    );
    // the vault's own filter, pointed at b: the database still says no
    let for_b = names(
        "SELECT s.name FROM secrets s JOIN agents a USING (agent_id) WHERE a.name = ?1",
        crate::store::sql::args!["b"],
    );
    assert!(for_b.is_empty());
    tx.commit().unwrap();
    // the operator, in a batch of writes by two principals (group commit)
    assert!(store.begin_batch());
    let tx = store.write(&agent("b")).unwrap();
    let n = tx
        .query_one(
            "SELECT count(*) FROM secret_versions",
            crate::store::sql::args![],
            |r| r.get::<i64>(0),
        )
        .unwrap();
    assert_eq!(n, 1, "b's version only");
    tx.commit().unwrap();
    let tx = store.write(&Principal::Operator).unwrap();
    let n = tx
        .query_one(
            "SELECT count(*) FROM secrets",
            crate::store::sql::args![],
            |r| r.get::<i64>(0),
        )
        .unwrap();
    assert_eq!(n, 2, "the operator sees both");
    tx.commit().unwrap();
    store.commit_batch().unwrap();
    // outside a transaction the handle reads as the operator, read-only
    // (the operator's path; a bare connection with no setting sees nothing,
    // rls_shows_an_agent_only_its_own_secrets_without_a_where_clause)
    let n = store
        .query_one(
            "SELECT count(*) FROM secrets",
            crate::store::sql::args![],
            |r| r.get::<i64>(0),
        )
        .unwrap();
    assert_eq!(n, 2);
}

#[test]
fn a_second_writer_waits_for_the_first_across_connections() {
    // issue 20, several servers: writers exclude each other as SQLite's
    // BEGIN IMMEDIATE makes them, so the vault's read-then-write steps hold
    let Some(db) = migrated() else { return };
    let first = Postgres::open(&db.url(), None).unwrap();
    let tx = first.write(&Principal::Operator).unwrap();
    let url = db.url();
    let second = std::thread::spawn(move || {
        let store = Postgres::open(&url, None).unwrap();
        let tx = store.write(&Principal::Operator).unwrap();
        tx.commit().unwrap();
    });
    // bounded: until the second writer is seen waiting on the lock
    let mut admin = db.admin_client();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let waiting: i64 = admin
            .query_one(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted",
                &[],
            )
            .unwrap()
            .get(0);
        if waiting == 1 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the second writer never waited"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert!(!second.is_finished());
    tx.commit().unwrap();
    second.join().unwrap();
}

#[test]
fn a_writer_lock_held_past_the_wait_is_store_busy_and_the_next_write_goes_through() {
    // issue 20: SQLite's busy handler bounds a writer's wait (store/busy.rs);
    // on PostgreSQL `lock_timeout` does, with the same error
    let Some(db) = migrated() else { return };
    let first = Postgres::open(&db.url(), None).unwrap();
    let second = Postgres::open(&db.url(), None).unwrap();
    let held = first.write(&Principal::Operator).unwrap();
    let start = std::time::Instant::now();
    let wait = std::time::Duration::from_millis(400);
    let err = match crate::store::busy::with_wait(wait, || second.write(&Principal::Operator)) {
        Err(e) => e,
        Ok(_) => panic!("the second writer got the lock the first holds"),
    };
    let took = start.elapsed();
    assert!(took >= wait, "waited the bound: {took:?}");
    assert!(
        took < std::time::Duration::from_secs(5),
        "then stopped: {took:?}"
    );
    assert_eq!(err.code(), "store_busy", "{err}");
    assert!(err.to_string().contains("nothing was changed"), "{err}");
    held.commit().unwrap();
    // the refused connection is usable: its transaction was rolled back
    second
        .write(&Principal::Operator)
        .unwrap()
        .commit()
        .unwrap();
}

fn header(db: &TestDb, vault_id: [u8; 16]) {
    let mut owner = db.owner_client();
    let mut tx = owner.transaction().unwrap();
    tx.execute("SELECT set_config('vault.operator', 'on', true)", &[])
        .unwrap();
    tx.execute(
        "INSERT INTO vault_header (singleton, vault_id, format_version, kdf_algorithm,
             kdf_memory_kib, kdf_iterations, kdf_lanes, kdf_salt, dek_id, wrapped_dek, created_at)
         VALUES (1, $1, 1, 'argon2id', 65536, 3, 1, $2, $2, $2, 1)",
        &[&vault_id.as_slice(), &[0u8; 16].as_slice()],
    )
    .unwrap();
    tx.commit().unwrap();
}

#[test]
fn opening_a_database_of_another_vault_is_refused() {
    // issue 20, bad input: the header's vault id is checked at open
    let Some(db) = migrated() else { return };
    header(&db, [7; 16]);
    Postgres::open(&db.url(), Some(&[7; 16])).unwrap();
    let err = Postgres::open(&db.url(), Some(&[8; 16])).err().unwrap();
    assert!(err.to_string().contains("another vault"), "{err}");
    assert_eq!(err.code(), "refused");
}

#[test]
fn opening_refuses_bypassrls_a_newer_or_unmigrated_schema_and_a_password_in_the_url() {
    // issue 20, bad input: each refused at open with what to do
    let Some(db) = TestDb::create() else { return };
    // an empty database holds no vault yet (`vault init --database`)
    let err = Postgres::open(&db.url(), None).err().unwrap();
    assert_eq!(err.code(), "no_vault", "{err}");
    migrate(&mut db.owner_client(), Some(&db.server)).unwrap();
    Postgres::open(&db.url(), None).unwrap();

    let with_password = db.url().replacen('@', ":hunter2@", 1);
    let err = Postgres::open(&with_password, None).err().unwrap();
    assert!(err.to_string().contains("passfile"), "{err}");
    assert!(!err.to_string().contains("hunter2"), "{err}");
    let err = Postgres::open("mysql://x@127.0.0.1/db", None)
        .err()
        .unwrap();
    assert_eq!(err.code(), "invalid_input");
    // this cluster serves no TLS: a URL requiring it fails rather than going clear
    let err = Postgres::open(&format!("{}&sslmode=require", db.url()), None)
        .err()
        .unwrap();
    assert_eq!(err.code(), "database_tls", "{err}");
    assert!(err.to_string().contains("does not offer TLS"), "{err}");

    // a passfile others can read is refused, as libpq refuses it
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(db.passfile(), std::fs::Permissions::from_mode(0o644)).unwrap();
    let err = Postgres::open(&db.url(), None).err().unwrap();
    assert!(matches!(err, Error::LoosePermissions { .. }), "{err}");
    std::fs::set_permissions(db.passfile(), std::fs::Permissions::from_mode(0o600)).unwrap();

    // no password for this role in the passfile: the server says no, and
    // the error says where the password is read from
    let other = db.url().replace(&db.server, "nobody_here");
    let err = Postgres::open(&other, None).err().unwrap();
    assert_eq!(err.code(), "database_auth", "{err}");
    assert!(err.to_string().contains("PGPASSFILE"), "{err}");
    // nothing listens there
    let port = db.port();
    let dead = db.url().replace(
        &format!(":{port}/"),
        &format!(":{}/", vault_testpg::free_port()),
    );
    let err = Postgres::open(&dead, None).err().unwrap();
    assert_eq!(err.code(), "database_unreachable", "{err}");

    db.admin_client()
        .batch_execute(&format!("ALTER ROLE {} BYPASSRLS", db.server))
        .unwrap();
    let err = Postgres::open(&db.url(), None).err().unwrap();
    assert!(err.to_string().contains("NOBYPASSRLS"), "{err}");
    db.admin_client()
        .batch_execute(&format!("ALTER ROLE {} NOBYPASSRLS", db.server))
        .unwrap();

    let mut owner = db.owner_client();
    owner
        .batch_execute(&format!(
            "BEGIN; SELECT set_config('vault.operator', 'on', true);
             UPDATE vault_schema SET version = {}; COMMIT;",
            super::super::LATEST_SCHEMA_VERSION + 1
        ))
        .unwrap();
    let err = Postgres::open(&db.url(), None).err().unwrap();
    assert!(matches!(err, Error::SchemaTooNew { .. }), "{err}");
}

#[test]
fn authentication_learns_the_agent_of_a_key_and_nothing_more() {
    // issue 20, RLS: before anyone acts, a key's hash or id names its
    // agent (so the request can be scoped to it); the rows stay hidden
    let Some(db) = migrated() else { return };
    seed(&db);
    let mut owner = db.owner_client();
    owner
        .batch_execute(
            "BEGIN; SELECT set_config('vault.operator', 'on', true);
             INSERT INTO agent_keys (key_id, name, agent_id, key_hash, status, created_at, expires_at)
                 SELECT '00112233445566ff', 'a-key', agent_id, decode(repeat('ab', 32), 'hex'),
                        'active', 1, 9 FROM agents WHERE name = 'a';
             COMMIT;",
        )
        .unwrap();
    let mut server = db.server_client();
    let hash = [0xabu8; 32];
    let who: Option<String> = server
        .query_one("SELECT vault_agent_of_key_hash($1)", &[&hash.as_slice()])
        .unwrap()
        .get(0);
    assert_eq!(who.as_deref(), Some("a"));
    let who: Option<String> = server
        .query_one("SELECT vault_agent_of_key_id($1)", &[&"00112233445566ff"])
        .unwrap()
        .get(0);
    assert_eq!(who.as_deref(), Some("a"));
    let unknown: Option<String> = server
        .query_one(
            "SELECT vault_agent_of_key_hash($1)",
            &[&[0u8; 32].as_slice()],
        )
        .unwrap()
        .get(0);
    assert_eq!(unknown, None);
    // the function's operator setting did not outlive it
    let rows: i64 = server
        .query_one("SELECT count(*) FROM agent_keys", &[])
        .unwrap()
        .get(0);
    assert_eq!(rows, 0);
    let setting: Option<String> = server
        .query_one("SELECT current_setting('vault.operator', true)", &[])
        .unwrap()
        .get(0);
    assert_ne!(setting.as_deref(), Some("on"));
}

#[test]
fn the_usage_rollup_triggers_run_under_the_writers_row_level_security() {
    // issue 20, schema 014: the daily rollup is kept by triggers, which run
    // as the writer and so stay inside the acting agent's rows
    let Some(db) = migrated() else { return };
    let store = Postgres::open(&db.url(), None).unwrap();
    let insert = "INSERT INTO egress_usage (at, agent, key_id, host, method, path, status,
                      bytes_up, bytes_down, latency_ms, duration_ms, input_tokens, estimated, cut)
                  VALUES (?1, ?2, 'k', 'api.example:443', 'POST', '/v1', 200, 10, 20, 1, 2, ?3, 0, 0)";
    let tx = store.write(&agent("a")).unwrap();
    for tokens in [5i64, 7] {
        tx.execute(
            insert,
            crate::store::sql::args![86_400_000i64 + 1, "a", tokens],
        )
        .unwrap();
    }
    // not for another agent
    assert!(tx
        .execute(insert, crate::store::sql::args![1i64, "b", 1i64])
        .is_err());
    drop(tx);
    let tx = store.write(&agent("a")).unwrap();
    for tokens in [5i64, 7] {
        tx.execute(
            insert,
            crate::store::sql::args![86_400_000i64 + 1, "a", tokens],
        )
        .unwrap();
    }
    let day = |tx: &WriteTx<'_>| {
        tx.query_opt(
            "SELECT day, requests, input_tokens FROM egress_usage_daily WHERE agent = ?1",
            crate::store::sql::args!["a"],
            |r| Ok((r.get::<i64>(0)?, r.get::<i64>(1)?, r.get::<i64>(2)?)),
        )
        .unwrap()
    };
    assert_eq!(day(&tx), Some((86_400_000, 2, 12)));
    tx.execute(
        "DELETE FROM egress_usage WHERE input_tokens = ?1",
        crate::store::sql::args![5i64],
    )
    .unwrap();
    assert_eq!(day(&tx), Some((86_400_000, 1, 7)));
    tx.commit().unwrap();
    // the operator sees the same rollup; agent b sees none of it
    let tx = store.write(&agent("b")).unwrap();
    let n = tx
        .query_one(
            "SELECT count(*) FROM egress_usage_daily",
            crate::store::sql::args![],
            |r| r.get::<i64>(0),
        )
        .unwrap();
    assert_eq!(n, 0);
}

#[test]
fn the_audit_day_count_triggers_run_under_the_writers_row_level_security() {
    // issue 17, schema 018: an agent appending its own ok records keeps the
    // per-day count of its rows; it cannot count for another agent
    let Some(db) = migrated() else { return };
    let store = Postgres::open(&db.url(), None).unwrap();
    let insert = "INSERT INTO audit_log (seq, at_ms, actor, key_id, action, outcome, chain, mac)
                  VALUES (?1, ?2, ?3, 'k', 'token.mint', ?4, ?5, ?5)";
    let mac = vec![0u8; 32];
    let tx = store.write(&agent("a")).unwrap();
    for (seq, outcome) in [(1i64, "ok"), (2, "ok"), (3, "denied:key_revoked")] {
        tx.execute(
            insert,
            crate::store::sql::args![seq, 86_400_000i64 + seq, "agent:a", outcome, &mac],
        )
        .unwrap();
    }
    assert!(tx
        .execute(
            insert,
            crate::store::sql::args![4i64, 86_400_000i64, "agent:b", "ok", &mac]
        )
        .is_err());
    drop(tx);
    let tx = store.write(&agent("a")).unwrap();
    for seq in [1i64, 2] {
        tx.execute(
            insert,
            crate::store::sql::args![seq, 86_400_000i64 + seq, "agent:a", "ok", &mac],
        )
        .unwrap();
    }
    tx.commit().unwrap();
    let tx = store.write(&Principal::Operator).unwrap();
    let counts = tx
        .query_all(
            crate::store::console::COUNT_BY_KEY_SQL,
            crate::store::sql::args!["token.mint", 86_400_000i64],
            |r| Ok((r.get::<String>(0)?, r.get::<i64>(1)?)),
        )
        .unwrap();
    assert_eq!(counts, [("k".to_owned(), 2)]);
    tx.execute(
        "DELETE FROM audit_log WHERE seq = ?1",
        crate::store::sql::args![1i64],
    )
    .unwrap();
    let left = tx
        .query_one(
            "SELECT CAST(sum(records) AS BIGINT) FROM audit_daily_ok",
            crate::store::sql::args![],
            |r| r.get::<i64>(0),
        )
        .unwrap();
    assert_eq!(left, 1);
}

#[test]
fn a_read_is_scoped_to_its_reader_alone_and_inside_a_batch() {
    // issue 20, Store::read: agent-side reads see the reader's rows only,
    // and a read inside the server's batch leaves the batch as it was
    let Some(db) = migrated() else { return };
    seed(&db);
    let store = Postgres::open(&db.url(), None).unwrap();
    let count = |h: &Handle| {
        h.query_one(
            "SELECT count(*) FROM secrets",
            crate::store::sql::args![],
            |r| r.get::<i64>(0),
        )
        .unwrap()
    };
    {
        let read = store.read(&agent("a")).unwrap();
        assert_eq!(count(&read), 1);
        // read only
        assert!(read
            .execute(
                "UPDATE secrets SET updated_at = 2",
                crate::store::sql::args![]
            )
            .is_err());
    }
    assert!(!store.in_transaction());
    assert!(store.begin_batch());
    let write = store.write(&Principal::Operator).unwrap();
    assert_eq!(count(&write), 2);
    {
        let read = store.read(&agent("b")).unwrap();
        assert_eq!(count(&read), 1);
    }
    // the write's operator scope is back after the nested read
    assert_eq!(count(&write), 2);
    write.commit().unwrap();
    store.commit_batch().unwrap();
}

#[test]
fn the_table_families_run_their_sql_on_postgres() {
    // issue 20, the seam: the families' SQL, written once, runs on
    // PostgreSQL as it does on SQLite (agents, secrets and their versions,
    // row tags, settings, fingerprints, the audit chain's rows), scoped to
    // the operator by the write that holds it
    use crate::crypto::rowtag::RowKey;
    use crate::secret::Key256;
    use crate::store::{agents, audit, fingerprints, secrets, settings};
    let Some(db) = migrated() else { return };
    let store = Postgres::open(&db.url(), None).unwrap();
    let rk = RowKey::derive(&Key256::from_array([3; 32]), &[1; 16], &[2; 16]);
    let tx = store.write(&Principal::Operator).unwrap();
    assert!(agents::insert(&tx, &rk, "hermes", "{}", 1).unwrap());
    assert!(
        !agents::insert(&tx, &rk, "hermes", "{}", 1).unwrap(),
        "ON CONFLICT"
    );
    let agent_id = agents::id_of(&tx, &rk, "hermes").unwrap().unwrap();
    let (secret_id, v1) = secrets::next_version(&tx, &rk, agent_id, "TOKEN", 2).unwrap();
    secrets::insert_version(&tx, secret_id, v1, &[9; 29], 2).unwrap();
    let (same, v2) = secrets::next_version(&tx, &rk, agent_id, "TOKEN", 3).unwrap();
    assert_eq!((same, v1, v2), (secret_id, 1, 2));
    secrets::insert_version(&tx, secret_id, v2, &[8; 29], 3).unwrap();
    assert!(secrets::find(&tx, &rk, agent_id, "TOKEN")
        .unwrap()
        .is_some());
    assert_eq!(secrets::versions(&tx, secret_id).unwrap().len(), 2);
    settings::set(&tx, &rk, "notify.command", Some("true")).unwrap();
    assert_eq!(
        settings::get(&tx, &rk, "notify.command")
            .unwrap()
            .as_deref(),
        Some("true")
    );
    fingerprints::insert_scan_key(&tx, &[5; 32]).unwrap();
    fingerprints::insert_scan_key(&tx, &[6; 32]).unwrap();
    assert_eq!(fingerprints::scan_key(&tx).unwrap(), Some(vec![5; 32]));
    let row = audit::AuditRow {
        seq: 1,
        at_ms: 1,
        actor: "operator".into(),
        key_id: None,
        action: "secret.set".into(),
        target: Some("hermes/TOKEN".into()),
        outcome: "ok".into(),
        request_id: None,
        origin: Some("cli".into()),
        chain: vec![0; 32],
        mac: vec![1; 32],
    };
    audit::insert(&tx, &row).unwrap();
    assert_eq!(audit::list_after(&tx, 0, 10).unwrap().len(), 1);
    tx.commit().unwrap();
    // the agent sees its own secret through the same family functions
    let read = store.read(&agent("hermes")).unwrap();
    assert_eq!(secrets::list(&read, &rk, Some(agent_id)).unwrap().len(), 1);
    drop(read);
    let read = store.read(&agent("other")).unwrap();
    assert!(secrets::list(&read, &rk, Some(agent_id))
        .unwrap()
        .is_empty());
}

/// A vault made with `init_at` as the database's owner, the server role
/// granted row access as README says, and the vault opened again as that role.
fn vault_on(db: &TestDb) -> (tempfile::TempDir, crate::Vault) {
    use crate::{KdfParams, Location, SecretString, Vault};
    let dir = tempfile::tempdir().unwrap();
    let pass = SecretString::new("pw".into());
    let owner = Location::new(dir.path().join("v"), Some(db.owner_url()));
    drop(Vault::init_at(&owner, &pass, KdfParams::TEST_ONLY).unwrap());
    migrate(&mut db.owner_client(), Some(&db.server)).unwrap();
    let server = Location::new(dir.path().join("v"), Some(db.url()));
    let vault = Vault::unlock_at(&server, &pass).unwrap();
    (dir, vault)
}

#[test]
fn the_operators_reads_outside_a_transaction_see_the_rows_on_postgres() {
    // issue 20, the open path: the operator's listings, reads and `audit
    // verify` run outside Store::read/write; on PostgreSQL, row-level
    // security showed them no row (nobody acting) until they ran as the
    // operator in a read-only transaction
    use crate::{AgentName, AuditVerdict, Policy, SecretBytes, SecretPath};
    let Some(db) = migrated() else { return };
    let (_dir, mut vault) = vault_on(&db);
    let op = Principal::Operator;
    let hermes = AgentName::parse("hermes").unwrap();
    vault.add_agent(&op, &hermes, &Policy::default()).unwrap();
    let path = SecretPath::parse("hermes/TOKEN").unwrap();
    vault
        .set_secret(&op, &path, &SecretBytes::from_slice(b"value-1"))
        .unwrap();
    assert_eq!(vault.list_agents(&op).unwrap().len(), 1);
    assert_eq!(vault.list_secrets(&op, None).unwrap().len(), 1);
    let (value, version) = vault.get_secret(&op, &path).unwrap();
    assert_eq!((value.expose_secret(), version), (&b"value-1"[..], 1));
    // the agent reads its own through Store::read
    let (value, _) = vault.get_secret(&agent("hermes"), &path).unwrap();
    assert_eq!(value.expose_secret(), b"value-1");
    match vault.verify_audit().unwrap() {
        AuditVerdict::Intact { records } => assert!(records >= 3, "{records}"),
        other => panic!("{other:?}"),
    }
    // nothing is left open, and a write outside a transaction is refused
    // by the read-only scope instead of running unscoped
    assert!(!vault.conn().in_transaction());
    assert!(vault
        .conn()
        .execute("DELETE FROM settings", crate::store::sql::args![])
        .is_err());
}

#[test]
fn init_at_refuses_a_database_that_holds_a_vault_and_unlock_at_one_that_holds_none() {
    // issue 20, bad input: a second `vault init --database` on one database,
    // and a command pointed at an empty database
    use crate::{Error, KdfParams, Location, SecretString, Vault};
    let Some(db) = TestDb::create() else { return };
    let dir = tempfile::tempdir().unwrap();
    let pass = SecretString::new("pw".into());
    let at = Location::new(dir.path().join("v"), Some(db.owner_url()));
    let err = Vault::unlock_at(&at, &pass).unwrap_err();
    assert!(matches!(err, Error::NoVault { .. }), "{err:?}");
    drop(Vault::init_at(&at, &pass, KdfParams::TEST_ONLY).unwrap());
    let err = Vault::init_at(&at, &pass, KdfParams::TEST_ONLY).unwrap_err();
    assert!(matches!(err, Error::VaultExists { .. }), "{err:?}");
    // the owner may make the vault, not serve it: it could switch RLS off
    let err = Vault::unlock_at(&at, &pass).unwrap_err();
    assert!(
        matches!(&err, Error::Refused { reason } if reason.contains("owns the vault's tables")),
        "{err:?}"
    );
    migrate(&mut db.owner_client(), Some(&db.server)).unwrap();
    let at = Location::new(dir.path().join("v"), Some(db.url()));
    let err = Vault::unlock_at(&at, &SecretString::new("nope".into())).unwrap_err();
    assert!(matches!(err, Error::WrongPassphrase), "{err:?}");
}

#[test]
fn a_key_revoked_through_one_connection_is_announced_to_a_listener_at_commit() {
    // issue 20, LISTEN/NOTIFY: a second process's listener hears the
    // revocation (and the issue before it) from the database itself, with no
    // polling; what it hears is counted, and nothing is heard before commit
    use crate::{AgentName, Policy};
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::time::{Duration, Instant};
    let Some(db) = migrated() else { return };
    let (dir, mut vault) = vault_on(&db);
    let heard = Arc::new(AtomicUsize::new(0));
    let counter = heard.clone();
    let other = crate::Location::new(dir.path().join("other-host"), Some(db.url()));
    let listening = other
        .watch_key_changes(move || {
            counter.fetch_add(1, Ordering::SeqCst);
        })
        .unwrap()
        .expect("a PostgreSQL location listens");
    let wait_for = |n: usize| {
        let start = Instant::now();
        while heard.load(Ordering::SeqCst) < n {
            // bounded: a failure, not a latency figure (bench/ measures that)
            assert!(start.elapsed() < Duration::from_secs(10), "not heard");
            std::thread::sleep(Duration::from_millis(10));
        }
    };
    wait_for(1); // the catch-up call after connecting
    let base = heard.load(Ordering::SeqCst);
    let op = Principal::Operator;
    let hermes = AgentName::parse("hermes").unwrap();
    vault.add_agent(&op, &hermes, &Policy::default()).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        heard.load(Ordering::SeqCst),
        base,
        "an agent is no key change"
    );
    vault
        .issue_key(
            &op,
            &AgentName::parse("hermes-key").unwrap(),
            &hermes,
            Duration::from_secs(3600),
            false,
        )
        .unwrap();
    wait_for(base + 1);
    let before = heard.load(Ordering::SeqCst);
    vault.revoke_key(&op, "hermes-key").unwrap();
    wait_for(before + 1);
    drop(listening);
}

#[test]
fn another_vaults_key_change_moves_the_revocation_stamp_at_its_commit() {
    // issue 20: a server's token snapshot followed other servers only
    // through LISTEN/NOTIFY, which arrives after the commit, so a request
    // sent right after `vault keys revoke` could pass (a CI run did). The
    // stamp is read from the database: moved by each key change the moment
    // it commits, and by nothing else, so a server rereads no more than it
    // must.
    use crate::{AgentName, Location, Policy, SecretBytes, SecretPath, SecretString, Vault};
    use std::time::Duration;
    let Some(db) = migrated() else { return };
    let (dir, mut vault) = vault_on(&db);
    let other = Location::new(dir.path().join("other-host"), Some(db.url()));
    let other = Vault::unlock_at(&other, &SecretString::new("pw".into())).unwrap();
    let op = Principal::Operator;
    let hermes = AgentName::parse("hermes").unwrap();
    let mut seen = other.revocation_stamp().unwrap();
    let mut moved = |what: &str, expected: bool| {
        let now = other.revocation_stamp().unwrap();
        assert_eq!(now != seen, expected, "{what}: {seen} -> {now}");
        seen = now;
    };
    vault.add_agent(&op, &hermes, &Policy::default()).unwrap();
    let path = SecretPath::parse("hermes/TOKEN").unwrap();
    let value = SecretBytes::new(b"a-value-that-is-no-key-change-0193".to_vec());
    vault.set_secret(&op, &path, &value).unwrap();
    moved("an agent and a secret", false);
    let key = AgentName::parse("hermes-key").unwrap();
    vault
        .issue_key(&op, &key, &hermes, Duration::from_secs(3600), false)
        .unwrap();
    moved("issue", true);
    vault.revoke_key_tokens(&op, "hermes-key").unwrap();
    moved("revoke the key's tokens", true);
    vault.revoke_key(&op, "hermes-key").unwrap();
    moved("revoke", true);
    vault
        .issue_key(
            &op,
            &AgentName::parse("hermes-key-2").unwrap(),
            &hermes,
            Duration::from_secs(3600),
            false,
        )
        .unwrap();
    moved("a second issue", true);
    vault.remove_agent(&op, &hermes, true).unwrap();
    moved("the agent and its keys removed", true);
    moved("nothing since", false);
}

/// Whether this connection is encrypted, as the server sees it.
fn encrypted(url: &str) -> bool {
    connect(url)
        .unwrap()
        .query_one(
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
        )
        .unwrap()
        .get(0)
}

#[test]
fn sslmode_verify_full_checks_the_ca_and_the_host_name_and_require_encrypts() {
    // issue 20, TLS to the database with libpq's sslmode semantics
    let tls = vault_testpg::TestTls::mint();
    let Some(db) = TestDb::create_alone_tls(&tls) else {
        return;
    };
    migrate(&mut db.owner_client(), Some(&db.server)).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (ca, other) = (dir.path().join("ca.pem"), dir.path().join("other.pem"));
    std::fs::write(&ca, &tls.ca_pem).unwrap();
    std::fs::write(&other, &tls.other_ca_pem).unwrap();
    let with = |url: &str, q: &str| format!("{url}&{q}");
    let by_name = db.url().replace("@127.0.0.1:", "@localhost:");
    let passwords: Vec<String> = std::fs::read_to_string(db.passfile())
        .unwrap()
        .lines()
        .filter_map(|l| l.rsplit(':').next().map(str::to_owned))
        .collect();
    let refused = |url: String, code: &str| {
        let err = Postgres::open(&url, None).err().expect("refused");
        assert_eq!(err.code(), code, "{err}");
        for p in &passwords {
            assert!(!err.to_string().contains(p.as_str()), "{err}");
        }
        err.to_string()
    };

    // the right CA, the host named in the certificate: encrypted and verified
    let full = with(
        &db.url(),
        &format!("sslmode=verify-full&sslrootcert={}", ca.display()),
    );
    Postgres::open(&full, None).unwrap();
    assert!(encrypted(&full));

    // a CA that did not sign it: refused before the login is sent
    let err = refused(
        with(
            &db.url(),
            &format!("sslmode=verify-full&sslrootcert={}", other.display()),
        ),
        "database_tls",
    );
    assert!(err.contains("UnknownIssuer"), "{err}");
    assert!(err.contains("sslmode=verify-full"), "{err}");
    // verify-ca checks the chain too, and `require` with a root CA is verify-ca
    for mode in ["verify-ca", "require"] {
        refused(
            with(
                &db.url(),
                &format!("sslmode={mode}&sslrootcert={}", other.display()),
            ),
            "database_tls",
        );
    }

    // a host the certificate does not name (it names 127.0.0.1 only)
    let err = refused(
        with(
            &by_name,
            &format!("sslmode=verify-full&sslrootcert={}", ca.display()),
        ),
        "database_tls",
    );
    assert!(err.contains("localhost"), "{err}");
    assert!(err.contains("not valid for name"), "{err}");
    // verify-ca does not check the name, as libpq's does not
    let ca_only = with(
        &by_name,
        &format!("sslmode=verify-ca&sslrootcert={}", ca.display()),
    );
    Postgres::open(&ca_only, None).unwrap();
    assert!(encrypted(&ca_only));

    // require without a CA: encrypted, unverified; prefer (libpq's default)
    // takes TLS when offered; disable stays clear
    let require = with(&db.url(), "sslmode=require");
    Postgres::open(&require, None).unwrap();
    assert!(encrypted(&require));
    assert!(encrypted(&db.url()));
    assert!(!encrypted(&with(&db.url(), "sslmode=disable")));

    // bad input: an unknown mode, a CA file missing or not PEM
    let err = refused(with(&db.url(), "sslmode=verify_full"), "invalid_input");
    assert!(err.contains("verify-full"), "{err}");
    let err = refused(
        with(
            &db.url(),
            "sslmode=verify-full&sslrootcert=/nonexistent/ca.pem",
        ),
        "invalid_input",
    );
    assert!(err.contains("sslrootcert"), "{err}");
    let junk = dir.path().join("junk.pem");
    std::fs::write(&junk, "not a certificate\n").unwrap();
    let err = refused(
        with(
            &db.url(),
            &format!("sslmode=verify-full&sslrootcert={}", junk.display()),
        ),
        "invalid_input",
    );
    assert!(err.contains("no PEM certificate"), "{err}");
}

#[test]
fn who_acts_reaches_the_database_as_one_literal_and_a_nul_names_nobody() {
    // the scope shares the BEGIN's round trip as SQL text, so a quote in it
    // must stay inside its literal: PostgreSQL reads back exactly the text
    use super::conn::literal;
    let Some(db) = TestDb::create() else { return };
    let mut client = db.server_client();
    for text in [
        "hermes",
        "it's",
        "'; SELECT pg_sleep(10); --",
        "a''b",
        r"back\slash",
    ] {
        let got: String = client
            .query_one(&format!("SELECT {}", literal(text)), &[])
            .unwrap()
            .get(0);
        assert_eq!(got, text);
    }
    assert_eq!(literal("hermes\0finance"), "''");
}
