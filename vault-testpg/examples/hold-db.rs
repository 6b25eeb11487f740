//! A throwaway PostgreSQL database for a benchmark script (bench/pg.sh): the
//! same cluster, roles and passfile the e2e_pg tests get, held until stdin
//! closes. Protocol on stdout: `url-owner URL`, `url-server URL` (pg_ctl writes lines of its own); after the script
//! writes `grant` (once `vault init` made the schema), `granted`;
//! after `log-statements`, `logging PATH` (the cluster logs every statement).

use std::io::{BufRead, Write};

fn main() {
    let Some(db) = vault_testpg::TestDb::create_alone() else {
        eprintln!("hold-db: PostgreSQL is not installed (tests/pg/setup.sh installs it)");
        std::process::exit(1);
    };
    let mut out = std::io::stdout().lock();
    writeln!(out, "url-owner {}", db.owner_url()).unwrap();
    writeln!(out, "url-server {}", db.url()).unwrap();
    out.flush().unwrap();
    for line in std::io::stdin().lock().lines() {
        match line.as_deref() {
            Ok("grant") => {
                db.grant_server();
                writeln!(out, "granted").unwrap();
                out.flush().unwrap();
            }
            Ok("log-statements") => {
                // every statement the servers send, for counting a request's
                // round trips (bench/pg-statements.sh)
                let mut admin = db.admin_client();
                // one statement per call: ALTER SYSTEM refuses a batch's transaction
                admin
                    .batch_execute("ALTER SYSTEM SET log_statement = 'all'")
                    .unwrap();
                admin.batch_execute("SELECT pg_reload_conf()").unwrap();
                writeln!(out, "logging {}", db.cluster.log_path().display()).unwrap();
                out.flush().unwrap();
            }
            Ok(_) => {}
            Err(_) => break,
        }
    }
    // dropping `db` drops the database and stops its cluster
}
