//! The SQL handle's API as the families use it, on SQLite (store/pg/tests.rs
//! runs the same shapes on PostgreSQL).

use super::*;

fn handle() -> Handle {
    Handle::sqlite(Connection::open_in_memory().unwrap())
}

#[test]
fn typed_values_round_trip_through_every_query_shape() {
    // issue 14, the store seam: the handle's API as the families use it
    let h = handle();
    h.execute_batch("CREATE TABLE t (id INTEGER PRIMARY KEY, n INTEGER, s TEXT, b BLOB)")
        .unwrap();
    let blob = vec![1u8, 2, 3];
    let id = h
        .insert_returning(
            "INSERT INTO t (n, s, b) VALUES (?1, ?2, ?3)",
            args![7i64, "seven", &blob],
            "id",
        )
        .unwrap();
    assert_eq!(id, 1);
    let id2 = h
        .insert_returning(
            "INSERT INTO t (n, s, b) VALUES (?1, ?2, ?3)",
            args![None::<i64>, None::<&str>, None::<&[u8]>],
            "id",
        )
        .unwrap();
    assert_eq!(id2, 2);
    let row = h
        .query_one("SELECT n, s, b FROM t WHERE id = ?1", args![id], |r| {
            Ok((r.get::<i64>(0)?, r.get::<String>(1)?, r.get::<Vec<u8>>(2)?))
        })
        .unwrap();
    assert_eq!(row, (7, "seven".to_owned(), blob.clone()));
    let nulls = h
        .query_one("SELECT n, s, b FROM t WHERE id = ?1", args![id2], |r| {
            Ok((
                r.get::<Option<i64>>(0)?,
                r.get::<Option<String>>(1)?,
                r.get::<Option<Vec<u8>>>(2)?,
            ))
        })
        .unwrap();
    assert_eq!(nulls, (None, None, None));
    assert!(h
        .query_opt("SELECT n FROM t WHERE id = ?1", args![99i64], |r| r
            .get::<i64>(0))
        .unwrap()
        .is_none());
    assert!(h
        .query_one("SELECT n FROM t WHERE id = ?1", args![99i64], |r| r
            .get::<i64>(0))
        .is_err());
    let all = h
        .query_all("SELECT id FROM t ORDER BY id", args![], |r| r.get::<i64>(0))
        .unwrap();
    assert_eq!(all, [1, 2]);
    let mut seen = 0;
    h.query_each("SELECT id FROM t", args![], |_| {
        seen += 1;
        Ok(())
    })
    .unwrap();
    assert_eq!(seen, 2);
    assert_eq!(
        h.execute("UPDATE t SET n = ?1 WHERE n IS NULL", args![true])
            .unwrap(),
        1
    );
    assert!(h
        .query_one("SELECT n FROM t WHERE id = 2", args![], |r| r
            .get::<bool>(0))
        .unwrap());
    assert_eq!(h.backend(), Backend::Sqlite);
    assert!(!h.in_transaction());
    h.execute_batch("BEGIN").unwrap();
    assert!(h.in_transaction());
    h.execute_batch("ROLLBACK").unwrap();
}
