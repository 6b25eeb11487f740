//! Issue 20, several servers on one PostgreSQL database: a rotation left by
//! a server killed mid-way is finished by the other, exactly once.

use std::time::{Duration, Instant};

use vault_testpg::TestDb;

use crate::common::Server;
use crate::common::*;
use crate::postgres::{
    call, hermes_with_key, mint, on_db, pg_vault, pg_vault_alone, server, server_stopping_at,
};

/// The database's rows as the operator sees them (the owner is bound by the
/// forced policies too), read without starting a `vault` process: every one
/// resumes open rotations first.
fn operator_query(db: &TestDb, sql: &str) -> Vec<vault_testpg::postgres::Row> {
    let mut client = db.owner_client();
    let mut tx = client.transaction().unwrap();
    tx.execute("SELECT set_config('vault.operator', 'on', true)", &[])
        .unwrap();
    let rows = tx.query(sql, &[]).unwrap();
    tx.commit().unwrap();
    rows
}

fn open_rotations(db: &TestDb) -> i64 {
    operator_query(
        db,
        "SELECT count(*) FROM rotations WHERE state IN ('pending', 'written')",
    )[0]
    .get(0)
}

/// Whether some session holds the claim of a rotation (the advisory-lock
/// space vault-core's `rotation::claim` uses: "rot" in the top bytes).
fn rotation_claimed(db: &TestDb) -> bool {
    let mut admin = db.admin_client();
    let n: i64 = admin
        .query_one(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted
             AND classid = x'726f7400'::int8::oid",
            &[],
        )
        .unwrap()
        .get(0);
    n > 0
}

fn wait_for(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < limit, "{what}: not after {limit:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn key_in(file: &std::path::Path) -> String {
    std::fs::read_to_string(file)
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VAULT_AGENT_KEY=").map(str::to_owned))
        .unwrap()
}

/// Agent hermes, and its key `hermes-key` issued into a registered env
/// file: the file and the key.
fn hermes_key_in_profile(env: &Env, db: &TestDb) -> (std::path::PathBuf, String) {
    on_db(env, db, &["agent", "add", "hermes"])
        .assert()
        .success();
    let profile = env.dir.path().join("profile.env");
    std::fs::write(&profile, "# hermes\n").unwrap();
    on_db(
        env,
        db,
        &["issue", "hermes-key", "--agent", "hermes", "--write-env"],
    )
    .arg(&profile)
    .assert()
    .success();
    let key = key_in(&profile);
    (profile, key)
}

#[test]
fn a_rotation_left_by_a_server_killed_mid_way_is_finished_by_the_other_exactly_once() {
    // issue 20: "one server killed with SIGKILL mid-rotation, the other
    // finishes it, nothing lost"; rotations resume on whichever server
    // starts first after a crash, exactly once
    let Some((db, env)) = pg_vault() else { return };
    let (profile, old_key) = hermes_key_in_profile(&env, &db);
    for i in 0..3 {
        on_db(&env, &db, &["set", &format!("hermes/S{i}")])
            .write_stdin(format!("kept-value-{i}"))
            .assert()
            .success();
    }

    // a rotation a crash interrupted: its successor made, no target written yet
    on_db(&env, &db, &["rotate", "hermes-key"])
        .env("VAULT_FAILPOINT", "rotate:created")
        .assert()
        .failure();
    assert_eq!(open_rotations(&db), 1);
    assert!(!rotation_claimed(&db), "a dead process holds no claim");

    // server A starts first and takes the rotation over: it stops inside it
    let mut a = server_stopping_at(&env, &db, "host-a", "rotate:resume:pause");
    wait_for(
        "server A claims the rotation",
        Duration::from_secs(30),
        || rotation_claimed(&db),
    );
    // server B starts meanwhile and keeps running beside it: it leaves the
    // rotation alone while A lives, at its start and at every refresh
    let b = server(&env, &db, "host-b");
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(
        open_rotations(&db),
        1,
        "B took over a live server's rotation"
    );
    assert_eq!(key_in(&profile), old_key);

    // A dies mid-rotation, as a kill -9 would have it
    a.kill().unwrap();
    a.wait().unwrap();
    let b_log = env.dir.path().join("host-b.stderr");
    wait_for(
        &format!(
            "server B finishes the rotation ({:?}, claimed: {})",
            std::fs::read_to_string(&b_log).unwrap_or_default(),
            rotation_claimed(&db)
        ),
        Duration::from_secs(15),
        || open_rotations(&db) == 0,
    );

    // exactly one successor, in the file, working; the old key dead
    let new_key = key_in(&profile);
    assert_ne!(new_key, old_key);
    let keys = operator_query(
        &db,
        "SELECT status, count(*) FROM agent_keys WHERE name = 'hermes-key'
         GROUP BY status ORDER BY status",
    );
    let keys: Vec<(String, i64)> = keys.iter().map(|r| (r.get(0), r.get(1))).collect();
    assert_eq!(
        keys,
        [("active".to_owned(), 1), ("revoked".to_owned(), 1)],
        "one successor, the old key revoked"
    );
    let done: i64 = operator_query(
        &db,
        "SELECT count(*) FROM audit_log WHERE action = 'rotation.done'",
    )[0]
    .get(0);
    assert_eq!(done, 1, "the rotation finished once");
    // B's snapshot already knows: the successor mints, the old key is refused
    wait_for("B refuses the old key", Duration::from_secs(5), || {
        mint(&b.base, &old_key).0 == 401
    });
    let (status, v) = mint(&b.base, &new_key);
    assert_eq!(status, 200, "{v}");
    drop(b);

    // nothing lost, and the one audit chain verifies
    for i in 0..3 {
        let out = on_db(&env, &db, &["get", &format!("hermes/S{i}")])
            .assert()
            .success();
        assert_eq!(stdout_of(&out), format!("kept-value-{i}\n"));
    }
    on_db(&env, &db, &["audit", "verify"]).assert().success();
    let stderr = std::fs::read_to_string(&b_log).unwrap();
    assert!(
        !stderr.contains(&new_key) && !stderr.contains(&old_key),
        "{stderr}"
    );
}

/// The state of the one rotation of `hermes-key` still open, if any.
fn open_rotation_state(db: &TestDb) -> Option<String> {
    operator_query(
        db,
        "SELECT state FROM rotations WHERE state IN ('pending', 'written')",
    )
    .first()
    .map(|r| r.get(0))
}

/// `vault rotate hermes-key` on the database, in a thread, stopping after
/// its targets are written until `go` exists.
fn rotation_paused_until(
    env: &Env,
    db: &TestDb,
    go: &std::path::Path,
) -> std::thread::JoinHandle<std::process::Output> {
    let mut cmd = on_db(env, db, &["rotate", "hermes-key"]);
    cmd.env(
        "VAULT_FAILPOINT",
        format!("rotate:written:pause-until={}", go.display()),
    );
    std::thread::spawn(move || cmd.output().unwrap())
}

#[test]
fn a_rotation_whose_database_restarts_mid_way_finishes_exactly_once() {
    // issue 20: a lost connection loses the rotation's claim (a session
    // advisory lock): the process takes it again on its new connection, or,
    // when another server finished the rotation meanwhile, gives up cleanly
    let Some((db, env)) = pg_vault_alone() else {
        return;
    };
    let (profile, first_key) = hermes_key_in_profile(&env, &db);

    // 1. alone: the database restarts while the CLI is between two steps;
    // it connects again, takes its claim again and finishes the rotation
    let go = env.dir.path().join("go-1");
    let cli = rotation_paused_until(&env, &db, &go);
    wait_for(
        "the rotation's targets are written",
        Duration::from_secs(30),
        || open_rotation_state(&db).as_deref() == Some("written") && rotation_claimed(&db),
    );
    db.restart_cluster();
    assert!(!rotation_claimed(&db), "the claim died with the connection");
    std::fs::write(&go, "").unwrap();
    let out = cli.join().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(open_rotations(&db), 0);
    let second_key = key_in(&profile);
    assert_ne!(second_key, first_key);

    // 2. with a server beside it: the database restarts while the CLI is
    // between two steps; the server finishes the rotation (the claim was
    // free), and the CLI, back on the database, finds it done and stops
    let b = server(&env, &db, "host-b");
    let go = env.dir.path().join("go-2");
    let cli = rotation_paused_until(&env, &db, &go);
    wait_for(
        "the second rotation's targets are written",
        Duration::from_secs(30),
        || open_rotation_state(&db).as_deref() == Some("written") && rotation_claimed(&db),
    );
    db.restart_cluster();
    wait_for(
        "server B finishes the rotation",
        Duration::from_secs(15),
        || open_rotations(&db) == 0,
    );
    std::fs::write(&go, "").unwrap();
    let out = cli.join().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("taken over by another vault process"),
        "{stderr}"
    );
    let third_key = key_in(&profile);
    assert_ne!(third_key, second_key);

    // exactly once each: two rotations done, one live key, the one in the file
    let done: i64 = operator_query(
        &db,
        "SELECT count(*) FROM audit_log WHERE action = 'rotation.done'",
    )[0]
    .get(0);
    assert_eq!(done, 2, "each rotation finished once");
    let keys = operator_query(
        &db,
        "SELECT status, count(*) FROM agent_keys WHERE name = 'hermes-key'
         GROUP BY status ORDER BY status",
    );
    let keys: Vec<(String, i64)> = keys.iter().map(|r| (r.get(0), r.get(1))).collect();
    assert_eq!(keys, [("active".to_owned(), 1), ("revoked".to_owned(), 2)]);
    wait_for(
        "B takes the key in the file",
        Duration::from_secs(5),
        || mint(&b.base, &third_key).0 == 200,
    );
    assert_eq!(mint(&b.base, &second_key).0, 401);
    drop(b);
    on_db(&env, &db, &["audit", "verify"]).assert().success();
    assert!(!rotation_claimed(&db), "no claim outlives its rotation");
}

#[test]
fn sixty_four_clients_over_two_servers_lose_no_write_and_keep_one_audit_chain() {
    // issue 20: "64 clients spread over both servers, 0 lost writes, audit
    // chain intact"; bounded loops on loopback, no timing asserted
    const CLIENTS: usize = 64;
    const WRITES: usize = 4;
    let Some((db, env)) = pg_vault() else { return };
    let key = hermes_with_key(&env, &db);
    let servers = [server(&env, &db, "host-a"), server(&env, &db, "host-b")];
    let set = |s: &Server, path: &str, value: &str| {
        let body = serde_json::json!({"path": path, "value": value}).to_string();
        call(
            "POST",
            &format!("{}/v1/admin/secrets", s.base),
            &s.admin,
            Some(&body),
        )
    };
    let shared_versions: Vec<i64> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..CLIENTS)
            .map(|i| {
                let (s, other) = (&servers[i % 2], &servers[(i + 1) % 2]);
                let key = key.as_str();
                scope.spawn(move || {
                    let (status, v) = mint(&s.base, key);
                    assert_eq!(status, 200, "client {i}: {v}");
                    let token = v["token"].as_str().unwrap().to_owned();
                    for j in 0..WRITES {
                        let (status, v) = set(s, &format!("hermes/C{i}_{j}"), &format!("v{i}-{j}"));
                        assert_eq!(status, 200, "client {i} write {j}: {v}");
                        // read back through the other server: its audit record
                        // goes through that server's group commit
                        let (status, v) = call(
                            "GET",
                            &format!("{}/v1/secrets/C{i}_{j}", other.base),
                            &token,
                            None,
                        );
                        assert_eq!(
                            (status, v["value"].as_str()),
                            (200, Some(format!("v{i}-{j}").as_str())),
                            "client {i} read {j}: {v}"
                        );
                    }
                    // every client writes one version of the same secret
                    let (status, v) = set(s, "hermes/SHARED", &format!("from-{i}"));
                    assert_eq!(status, 200, "client {i} shared write: {v}");
                    v["version"].as_i64().unwrap()
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().unwrap()).collect()
    });
    drop(servers);
    // no two writers got the same version: none overwrote another
    let mut versions = shared_versions;
    versions.sort_unstable();
    let expected: Vec<i64> = (1..=CLIENTS as i64).collect();
    assert_eq!(versions, expected, "versions of the shared secret");
    // every write is there, counted in the database and read by the CLI
    let stored: i64 = operator_query(
        &db,
        "SELECT count(*) FROM secrets s JOIN agents a USING (agent_id)
         WHERE a.name = 'hermes' AND s.name LIKE 'C%'",
    )[0]
    .get(0);
    assert_eq!(stored, (CLIENTS * WRITES) as i64);
    let out = on_db(&env, &db, &["get", "hermes/C63_3"])
        .assert()
        .success();
    assert_eq!(stdout_of(&out), "v63-3\n");
    let sets: i64 = operator_query(
        &db,
        "SELECT count(*) FROM audit_log WHERE action = 'secret.set'",
    )[0]
    .get(0);
    assert_eq!(
        sets,
        (CLIENTS * WRITES + CLIENTS) as i64,
        "one record per write"
    );
    let reads: i64 = operator_query(
        &db,
        "SELECT count(*) FROM audit_log WHERE action = 'secret.read'",
    )[0]
    .get(0);
    assert!(reads >= (CLIENTS * WRITES) as i64, "{reads} read records");
    on_db(&env, &db, &["audit", "verify"]).assert().success();
}

/// One request's answer, as the load of the restart test keeps it.
fn outcome(status: u16, v: &serde_json::Value) -> String {
    match status {
        200 => "ok".to_owned(),
        _ => format!("{status} {}", v["error"]["code"].as_str().unwrap_or("?")),
    }
}

#[test]
fn the_database_restarted_under_load_fails_requests_clearly_and_the_servers_reconnect() {
    // issue 20: "the database restarted under load: servers reconnect,
    // requests fail clearly during the outage, nothing is lost, nothing is
    // served from a stale revocation list after it"
    let Some(db) = TestDb::create_alone() else {
        return;
    };
    let env = Env::empty();
    env.vault(&["init", "--database", &db.owner_url()])
        .args(["--kdf-memory-mib", "64", "--kdf-iterations", "3"])
        .assert()
        .success();
    db.grant_server();
    let key = hermes_with_key(&env, &db);
    on_db(&env, &db, &["set", "hermes/TOKEN"])
        .write_stdin("before-the-restart")
        .assert()
        .success();
    let servers = [server(&env, &db, "host-a"), server(&env, &db, "host-b")];
    let stop = std::sync::atomic::AtomicBool::new(false);
    // reads answered so far, so the test waits for load, not for a time
    let reads = std::sync::atomic::AtomicUsize::new(0);
    let reads_reach = |n: usize| {
        let start = Instant::now();
        while reads.load(std::sync::atomic::Ordering::Relaxed) < n {
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "the readers stalled"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    };
    let (outcomes, acknowledged) = std::thread::scope(|scope| {
        let readers: Vec<_> = (0..4)
            .map(|i| {
                let (s, key, stop, reads) = (&servers[i % 2], key.as_str(), &stop, &reads);
                scope.spawn(move || {
                    let (status, v) = mint(&s.base, key);
                    assert_eq!(status, 200, "{v}");
                    let token = v["token"].as_str().unwrap().to_owned();
                    let mut seen = Vec::new();
                    // bounded: 20 s at most, whatever happens
                    let start = Instant::now();
                    while !stop.load(std::sync::atomic::Ordering::Relaxed)
                        && start.elapsed() < Duration::from_secs(20)
                    {
                        let url = format!("{}/v1/secrets/TOKEN", s.base);
                        let (status, v) = call("GET", &url, &token, None);
                        seen.push(outcome(status, &v));
                        reads.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        std::thread::sleep(Duration::from_millis(5));
                    }
                    seen
                })
            })
            .collect();
        let writer = scope.spawn(|| {
            let mut acknowledged = Vec::new();
            let start = Instant::now();
            let mut n = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed)
                && start.elapsed() < Duration::from_secs(20)
            {
                let s = &servers[n % 2];
                let body =
                    serde_json::json!({"path": format!("hermes/W{n}"), "value": format!("w{n}")});
                let (status, v) = call(
                    "POST",
                    &format!("{}/v1/admin/secrets", s.base),
                    &s.admin,
                    Some(&body.to_string()),
                );
                if status == 200 {
                    acknowledged.push(n);
                }
                n += 1;
                let _ = v;
                std::thread::sleep(Duration::from_millis(10));
            }
            acknowledged
        });
        reads_reach(40);
        db.restart_cluster();
        // both servers answer again by themselves
        for s in &servers {
            let start = Instant::now();
            let mut last = String::new();
            loop {
                let answer = match mint(&s.base, &key) {
                    (200, v) => {
                        let token = v["token"].as_str().unwrap().to_owned();
                        let url = format!("{}/v1/secrets/TOKEN", s.base);
                        call("GET", &url, &token, None)
                    }
                    other => other,
                };
                if answer.0 == 200 {
                    break;
                }
                last = format!("{answer:?}");
                assert!(
                    start.elapsed() < Duration::from_secs(20),
                    "{} does not read again: {last}; {}",
                    s.base,
                    ["host-a.stderr", "host-b.stderr"]
                        .map(|f| std::fs::read_to_string(env.dir.path().join(f)).unwrap())
                        .join("\n")
                );
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = last;
        }
        // the load goes on a while after both answer again
        reads_reach(reads.load(std::sync::atomic::Ordering::Relaxed) + 40);
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let outcomes: Vec<String> = readers
            .into_iter()
            .flat_map(|r| r.join().unwrap())
            .collect();
        (outcomes, writer.join().unwrap())
    });
    // every failure said what it was: the database, not an internal error
    let failures: Vec<&String> = outcomes.iter().filter(|o| *o != "ok").collect();
    let unclear: Vec<&&String> = failures
        .iter()
        .filter(|o| o.as_str() != "503 database_unreachable")
        .collect();
    let logs: String = ["host-a.stderr", "host-b.stderr"]
        .iter()
        .map(|f| std::fs::read_to_string(env.dir.path().join(f)).unwrap())
        .collect();
    assert!(unclear.is_empty(), "unclear failures: {unclear:?}; {logs}");
    assert!(!logs.contains("panicked"), "{logs}");
    assert!(
        !failures.is_empty(),
        "no request failed: the restart was not under load"
    );
    assert_eq!(outcomes.last().map(String::as_str), Some("ok"));
    eprintln!(
        "{} reads, {} failed during the restart; {} writes acknowledged",
        outcomes.len(),
        failures.len(),
        acknowledged.len()
    );

    // nothing acknowledged is lost
    let stored: Vec<String> =
        operator_query(&db, "SELECT s.name FROM secrets s WHERE s.name LIKE 'W%'")
            .iter()
            .map(|r| r.get(0))
            .collect();
    for n in &acknowledged {
        assert!(
            stored.contains(&format!("W{n}")),
            "write {n} was acknowledged and lost"
        );
    }

    // a revocation made through one server after the restart is honoured by the other
    let (a, b) = (&servers[0], &servers[1]);
    let (status, v) = call(
        "POST",
        &format!("{}/v1/admin/keys/hermes-key/revoke", a.base),
        &a.admin,
        Some("{}"),
    );
    assert_eq!(status, 200, "{v}");
    let revoked = Instant::now();
    wait_for("b refuses the revoked key", Duration::from_secs(5), || {
        mint(&b.base, &key).0 == 401
    });
    eprintln!(
        "revocation seen by the other server after {:?}",
        revoked.elapsed()
    );
    drop(servers);
    on_db(&env, &db, &["audit", "verify"]).assert().success();
}
