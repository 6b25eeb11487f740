//! Schema 019 against a real cluster: a policy's grant of another agent's
//! secret opens exactly that row to the agent's transaction, for reading.

use super::*;
use crate::names::SecretPath;
use crate::store::sql::{args, Value};
use vault_testpg::TestDb;

/// Agents a and b with secrets TOKEN and OTHER each, written as the operator.
fn seeded() -> Option<(TestDb, Postgres)> {
    let db = TestDb::create()?;
    migrate(&mut db.owner_client(), Some(&db.server)).unwrap();
    db.owner_client()
        .batch_execute(
            "BEGIN;
             SELECT set_config('vault.operator', 'on', true);
             INSERT INTO agents (name, created_at) VALUES ('a', 1), ('b', 1);
             INSERT INTO secrets (agent_id, name, current_version, created_at, updated_at)
                 SELECT agent_id, n, 1, 1, 1 FROM agents, (VALUES ('TOKEN'), ('OTHER')) v(n);
             INSERT INTO secret_versions (secret_id, version, ciphertext, created_at)
                 SELECT secret_id, 1, decode(repeat('00', 29), 'hex'), 1 FROM secrets;
             COMMIT;",
        )
        .unwrap();
    let store = Postgres::open(&db.url(), None).unwrap();
    Some((db, store))
}

fn agent(name: &str) -> Principal {
    Principal::Agent(crate::names::AgentName::parse(name).unwrap())
}

/// `AGENT/NAME` of every secret the handle's transaction sees, with no
/// filter of the vault's own, and how many versions it sees.
fn visible(h: &Handle) -> (Vec<String>, i64) {
    let paths = h
        .query_all(
            "SELECT a.name || '/' || s.name FROM secrets s JOIN agents a USING (agent_id) ORDER BY 1",
            args![],
            |r| r.get::<String>(0),
        )
        .unwrap();
    let versions = h
        .query_one("SELECT count(*) FROM secret_versions", args![], |r| {
            r.get::<i64>(0)
        })
        .unwrap();
    (paths, versions)
}

#[test]
fn a_grant_opens_exactly_the_granted_secret_for_reading() {
    // issue 20: before 019 a granted read was "secret not found" on
    // PostgreSQL; now the one granted row (and its versions) is visible to
    // the reading agent, nothing else of b's, and only until the scope ends
    let Some((_db, store)) = seeded() else { return };
    let granted = SecretPath::parse("b/TOKEN").unwrap();
    {
        let read = store.read(&agent("a")).unwrap();
        assert_eq!(
            visible(&read),
            (vec!["a/OTHER".into(), "a/TOKEN".into()], 2)
        );
        read.grant_read(&granted).unwrap();
        assert_eq!(
            visible(&read),
            (
                vec!["a/OTHER".into(), "a/TOKEN".into(), "b/TOKEN".into()],
                3
            ),
            "b/OTHER stays invisible: the grant names one path"
        );
    }
    // a new read starts with no grant
    let read = store.read(&agent("a")).unwrap();
    assert_eq!(visible(&read).0.len(), 2);
    drop(read);
    // a grant given to a does not reach b's own scope, nor an unscoped one
    let read = store.read(&agent("b")).unwrap();
    read.grant_read(&SecretPath::parse("a/TOKEN").unwrap())
        .unwrap();
    assert_eq!(visible(&read).0, ["a/TOKEN", "b/OTHER", "b/TOKEN"]);
}

#[test]
fn a_granted_row_cannot_be_written_and_a_new_scope_drops_the_grant() {
    // the policies are FOR SELECT: the reading agent cannot change, delete
    // or add versions to the granted secret; a nested write for another
    // principal clears the grant, and its release puts the outer one back
    let Some((_db, store)) = seeded() else { return };
    let granted = SecretPath::parse("b/TOKEN").unwrap();
    let tx = store.write(&agent("a")).unwrap();
    tx.grant_read(&granted).unwrap();
    assert_eq!(visible(&tx).0.len(), 3);
    let changed = tx
        .execute(
            "UPDATE secrets SET updated_at = 9 WHERE name = 'TOKEN'",
            args![],
        )
        .unwrap();
    assert_eq!(changed, 1, "a's own TOKEN only");
    let removed = tx
        .execute(
            "DELETE FROM secret_versions WHERE secret_id IN
                 (SELECT secret_id FROM secrets s JOIN agents g USING (agent_id) WHERE g.name = 'b')",
            args![],
        )
        .unwrap();
    assert_eq!(removed, 0);
    let b_secret: i64 = tx
        .query_one(
            "SELECT s.secret_id FROM secrets s JOIN agents g USING (agent_id)
             WHERE g.name = 'b' AND s.name = 'TOKEN'",
            args![],
            |r| r.get(0),
        )
        .unwrap();
    let added = tx.execute(
        "INSERT INTO secret_versions (secret_id, version, ciphertext, created_at)
         VALUES (?1, 2, ?2, 1)",
        &[Value::Int(Some(b_secret)), Value::Blob(Some(&[0; 29]))],
    );
    assert!(
        added.is_err(),
        "WITH CHECK refuses a version for b's secret"
    );
    drop(tx);
    assert!(store.begin_batch());
    let outer = store.write(&agent("a")).unwrap();
    outer.grant_read(&granted).unwrap();
    {
        let inner = store.write(&agent("b")).unwrap();
        assert_eq!(visible(&inner).0, ["b/OTHER", "b/TOKEN"]);
        inner.commit().unwrap();
    }
    assert_eq!(visible(&outer).0.len(), 3, "the outer grant is back");
    outer.commit().unwrap();
    store.commit_batch().unwrap();
}
