//! Test-only: a throwaway PostgreSQL cluster for the tests that prove the
//! PostgreSQL backend (issue 20), and a fresh database per test.
//!
//! One cluster per test process, shared by the tests running in it at once
//! and stopped (`pg_ctl stop -m immediate`) when the last of them drops its
//! [`TestDb`], so no postmaster outlives the run. It is `initdb`ed into a
//! temporary directory, listens on its own free loopback port and on a Unix
//! socket in that directory, and runs with `fsync=off` (a test's data need not
//! survive power loss). Debian's binaries are looked up under
//! `/usr/lib/postgresql/<version>/bin` (or `$PG_BIN`), not on `PATH`: a clean
//! machine has no symlinks in /usr/local/bin. `initdb` refuses to run as root,
//! so as root the server runs as the `postgres` system user (`runuser`).
//!
//! Each [`TestDb`] is a database owned by its own role, and a separate login
//! role for the server that owns nothing and has neither SUPERUSER nor
//! BYPASSRLS, so row-level security applies to it. Both log in over TCP with
//! scram-sha-256 passwords; the cluster's superuser logs in over the socket.
//!
//! [`TestDb::create_alone_tls`] starts a cluster with `ssl=on` and a server
//! certificate for `127.0.0.1` signed by a test CA minted there ([`TestTls`]),
//! for the tests of `sslmode`.
//!
//! When the binaries are missing, the cluster's first start runs
//! `tests/pg/setup.sh` ([`run_setup`]); if that fails too, [`TestDb::create`]
//! returns `None` after [`skip_or_fail_in_ci`] (which fails under `CI=true`).

use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

mod run_wide;
mod tls;
use run_wide::Root;
pub use tls::TestTls;

pub use postgres;

/// The cluster's superuser (`initdb -U`), reached over the Unix socket.
const SUPERUSER: &str = "vault_test_admin";

/// Fails under `CI=true`, else prints why the test is skipped.
pub fn skip_or_fail_in_ci(why: &str) {
    let in_ci = std::env::var("CI").is_ok_and(|v| v == "true" || v == "1");
    assert!(!in_ci, "cannot run under CI=true: {why}");
    eprintln!("SKIP: {why}");
}

/// Runs one of the repository's setup scripts (`tests/pg/setup.sh`, ...), which
/// install what a test needs from Debian or npm and do nothing when it is there,
/// so a fresh machine's `cargo nextest run` installs its own tools. Test
/// processes take turns (`flock`), as apt and npm do not share. `Err` says why
/// it failed (no root, no registry).
pub fn run_setup(script: &str) -> Result<(), String> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(script);
    let lock = std::env::temp_dir().join("vault-tests-setup.lock");
    let out = Command::new("flock")
        .arg(&lock)
        .arg("bash")
        .arg(&path)
        .output()
        .map_err(|e| format!("{script} did not start: {e}"))?;
    if out.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    let tail: Vec<&str> = stderr.lines().rev().take(5).collect();
    let tail: Vec<&str> = tail.into_iter().rev().collect();
    Err(format!("{script} failed: {}", tail.join(" / ")))
}

/// Where PostgreSQL's server binaries are: `$PG_BIN`, else the newest
/// `/usr/lib/postgresql/*/bin` holding `initdb`.
pub fn pg_bin() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("PG_BIN") {
        let dir = PathBuf::from(dir);
        return dir.join("initdb").exists().then_some(dir);
    }
    let mut found: Vec<(u32, PathBuf)> = fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let version: u32 = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((version, bin))
        })
        .collect();
    found.sort();
    found.pop().map(|(_, bin)| bin)
}

/// A running throwaway cluster; stopped on drop.
pub struct Cluster {
    bin: PathBuf,
    // the data directory and the socket live under it; a temporary one is
    // removed after the stop, a run-wide one by its reaper (run_wide.rs)
    root: Root,
    port: u16,
    as_postgres: bool,
    next: AtomicU32,
}

static CLUSTER: Mutex<Weak<Cluster>> = Mutex::new(Weak::new());

impl Cluster {
    /// The process's cluster, started on first use (or again after the
    /// last user dropped it). `None` when the binaries are missing.
    pub fn shared() -> Option<Arc<Cluster>> {
        let mut slot = CLUSTER.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(cluster) = slot.upgrade() {
            return Some(cluster);
        }
        let bin = pg_bin().or_else(|| {
            if std::env::var_os("PG_BIN").is_some() {
                return None;
            }
            run_setup("tests/pg/setup.sh")
                .map_err(|why| eprintln!("{why}"))
                .ok()?;
            pg_bin()
        })?;
        let cluster = Arc::new(Cluster::start(bin));
        *slot = Arc::downgrade(&cluster);
        Some(cluster)
    }

    fn start(bin: PathBuf) -> Cluster {
        Cluster::start_with(bin, None)
    }

    fn start_with(bin: PathBuf, tls: Option<&TestTls>) -> Cluster {
        let root = tempfile::Builder::new()
            .prefix("vault-pg-")
            .tempdir()
            .expect("temp dir for the cluster");
        Cluster::start_in(bin, Root::Temp(root), tls)
    }

    fn start_in(bin: PathBuf, root: Root, tls: Option<&TestTls>) -> Cluster {
        let as_postgres = nix::unistd::geteuid().is_root();
        let data = root.path().join("data");
        fs::create_dir(&data).unwrap();
        fs::set_permissions(&data, fs::Permissions::from_mode(0o700)).unwrap();
        if as_postgres {
            let user = nix::unistd::User::from_name("postgres")
                .unwrap()
                .expect("as root the cluster runs as the `postgres` system user");
            for dir in [root.path(), &data] {
                nix::unistd::chown(dir, Some(user.uid), Some(user.gid)).unwrap();
            }
        }
        let mut ssl = String::new();
        if let Some(tls) = tls {
            // the server refuses a key others can read; as root it reads it as `postgres`
            let (cert, key) = (
                root.path().join("server.crt"),
                root.path().join("server.key"),
            );
            fs::write(&cert, &tls.server_cert_pem).unwrap();
            fs::write(&key, &tls.server_key_pem).unwrap();
            fs::set_permissions(&key, fs::Permissions::from_mode(0o600)).unwrap();
            if as_postgres {
                let user = nix::unistd::User::from_name("postgres").unwrap().unwrap();
                for f in [&cert, &key] {
                    nix::unistd::chown(f, Some(user.uid), Some(user.gid)).unwrap();
                }
            }
            ssl = format!(
                " -c ssl=on -c ssl_cert_file={} -c ssl_key_file={}",
                cert.display(),
                key.display()
            );
        }
        let cluster = |port| Cluster {
            bin: bin.clone(),
            root,
            port,
            as_postgres,
            next: AtomicU32::new(0),
        };
        let mut c = cluster(0);
        let out = c
            .command("initdb")
            .args(["-D", data.to_str().unwrap(), "-U", SUPERUSER])
            .args(["--auth-local=trust", "--auth-host=scram-sha-256"])
            .args(["--encoding=UTF8", "--locale=C", "--no-sync"])
            .output()
            .expect("run initdb");
        assert!(
            out.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        // a free port, bound and released: a clash with another process in
        // between makes the start fail, so try a few
        for _ in 0..5 {
            c.port = free_port();
            let opts = format!(
                "-c port={} -c listen_addresses=127.0.0.1 -c unix_socket_directories={} \
                 -c fsync=off -c synchronous_commit=off -c full_page_writes=off \
                 -c max_connections=200 -c shared_buffers=16MB{ssl}",
                c.port,
                c.root.path().display()
            );
            let status = c
                .command("pg_ctl")
                .args(["start", "-w", "-t", "60", "-D", data.to_str().unwrap()])
                .args(["-l", c.log_path().to_str().unwrap(), "-o", &opts])
                .status()
                .expect("run pg_ctl start");
            if status.success() {
                return c;
            }
        }
        let log = fs::read_to_string(c.log_path()).unwrap_or_default();
        panic!("the test cluster did not start:\n{log}");
    }

    fn command(&self, program: &str) -> Command {
        let path = self.bin.join(program);
        let mut cmd = if self.as_postgres {
            let mut cmd = Command::new("runuser");
            cmd.args(["-u", "postgres", "--"]).arg(path);
            cmd
        } else {
            Command::new(path)
        };
        cmd.env_remove("PGDATA").env("LC_ALL", "C");
        cmd
    }

    /// Its log file (pg_ctl -l).
    pub fn log_path(&self) -> PathBuf {
        self.root.path().join("server.log")
    }

    /// The TCP port the cluster listens on (127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The cluster's superuser over the Unix socket.
    pub fn admin(&self) -> postgres::Client {
        self.admin_on("postgres")
    }

    fn admin_on(&self, db: &str) -> postgres::Client {
        postgres::Config::new()
            .host_path(self.root.path())
            .port(self.port)
            .user(SUPERUSER)
            .dbname(db)
            .connect(postgres::NoTls)
            .expect("connect to the test cluster as its superuser")
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if matches!(self.root, Root::Shared { .. }) {
            return; // other processes use it; its reaper stops it
        }
        let data = self.root.path().join("data");
        let _ = self
            .command("pg_ctl")
            .args([
                "stop",
                "-m",
                "immediate",
                "-w",
                "-D",
                data.to_str().unwrap_or(""),
            ])
            .output();
    }
}

/// A loopback port free when asked (nothing listens there once it returns).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// A fresh database for one test: owned by `owner`, with `server` the login
/// role a vault server would use (owns nothing, NOSUPERUSER, NOBYPASSRLS).
pub struct TestDb {
    pub cluster: Arc<Cluster>,
    pub name: String,
    pub owner: String,
    pub server: String,
    owner_password: String,
    server_password: String,
    // holds the passfile
    dir: tempfile::TempDir,
    // the run-wide cluster's roles serve every database: dropped with it
    shared_roles: bool,
}

impl TestDb {
    /// A new database and its two roles, or `None` (skipped; fails under CI)
    /// when PostgreSQL is not installed.
    pub fn create() -> Option<TestDb> {
        let Some(cluster) = Cluster::shared() else {
            skip_or_fail_in_ci(
                "PostgreSQL's binaries are missing (tests/pg/setup.sh installs them)",
            );
            return None;
        };
        Some(TestDb::create_in(cluster))
    }

    /// As [`TestDb::create`], on a cluster of its own that no other test
    /// shares: for a test that restarts it ([`TestDb::restart_cluster`]).
    pub fn create_alone() -> Option<TestDb> {
        let Some(bin) = pg_bin() else {
            skip_or_fail_in_ci(
                "PostgreSQL's binaries are missing (tests/pg/setup.sh installs them)",
            );
            return None;
        };
        Some(TestDb::create_in(Arc::new(Cluster::start(bin))))
    }

    /// As [`TestDb::create_alone`], the cluster serving TLS (`ssl=on`) with
    /// `tls`'s server certificate; plain connections are still accepted.
    pub fn create_alone_tls(tls: &TestTls) -> Option<TestDb> {
        let Some(bin) = pg_bin() else {
            skip_or_fail_in_ci(
                "PostgreSQL's binaries are missing (tests/pg/setup.sh installs them)",
            );
            return None;
        };
        Some(TestDb::create_in(Arc::new(Cluster::start_with(
            bin,
            Some(tls),
        ))))
    }

    /// Restarts the cluster (`pg_ctl restart -m fast`: every connection is
    /// ended, the server is down until it is back), returning once it
    /// accepts connections again.
    pub fn restart_cluster(&self) {
        let data = self.cluster.root.path().join("data");
        let status = self
            .cluster
            .command("pg_ctl")
            .args(["restart", "-m", "fast", "-w", "-t", "60", "-D"])
            .arg(&data)
            .arg("-l")
            .arg(self.cluster.log_path())
            .status()
            .expect("run pg_ctl restart");
        assert!(status.success(), "pg_ctl restart failed");
    }

    fn create_in(cluster: Arc<Cluster>) -> TestDb {
        let n = cluster.next.fetch_add(1, Ordering::Relaxed);
        let tag = format!("{}_{n}", std::process::id());
        let name = format!("vault_{tag}");
        let owner = format!("vault_owner_{tag}");
        let server = format!("vault_server_{tag}");
        let owner_password = random_password();
        let server_password = random_password();
        let mut admin = cluster.admin();
        // one statement each: CREATE DATABASE refuses a transaction block
        for sql in [
            format!(
                "CREATE ROLE {owner} LOGIN NOSUPERUSER NOBYPASSRLS PASSWORD '{owner_password}'"
            ),
            format!(
                "CREATE ROLE {server} LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE \
                 PASSWORD '{server_password}'"
            ),
            format!("CREATE DATABASE {name} OWNER {owner}"),
            format!("REVOKE ALL ON DATABASE {name} FROM PUBLIC"),
            format!("GRANT CONNECT ON DATABASE {name} TO {server}"),
        ] {
            admin
                .batch_execute(&sql)
                .expect("create the test database and its roles");
        }
        // PostgreSQL 15 no longer lets PUBLIC create in `public`; the owner
        // of the database still may, through its ownership of the database
        let mut on_db = cluster.admin_on(&name);
        on_db
            .batch_execute(&format!(
                "ALTER SCHEMA public OWNER TO {owner}; REVOKE CREATE ON SCHEMA public FROM PUBLIC;"
            ))
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let db = TestDb {
            cluster,
            name,
            owner,
            server,
            owner_password,
            server_password,
            dir,
            shared_roles: false,
        };
        let mut pass = fs::File::create(db.passfile()).unwrap();
        fs::set_permissions(db.passfile(), fs::Permissions::from_mode(0o600)).unwrap();
        for (role, password) in [
            (&db.owner, &db.owner_password),
            (&db.server, &db.server_password),
        ] {
            // `localhost` too: the TLS tests dial the name the certificate lacks
            for host in ["127.0.0.1", "localhost"] {
                writeln!(pass, "{host}:{}:{}:{role}:{password}", db.port(), db.name).unwrap();
            }
        }
        db
    }

    pub fn port(&self) -> u16 {
        self.cluster.port
    }

    /// A libpq-style passfile (`host:port:db:user:password`, 0600) holding
    /// both roles' passwords.
    pub fn passfile(&self) -> PathBuf {
        self.dir.path().join("pgpass")
    }

    /// The server role's URL; its password is in [`TestDb::passfile`], not here.
    pub fn url(&self) -> String {
        self.url_for(&self.server)
    }

    /// The owner's URL (migrations run as the owner).
    pub fn owner_url(&self) -> String {
        self.url_for(&self.owner)
    }

    fn url_for(&self, role: &str) -> String {
        format!(
            "postgres://{role}@127.0.0.1:{}/{}?passfile={}",
            self.port(),
            self.name,
            self.passfile().display()
        )
    }

    /// Grants the server role row access to the vault's tables, as README's
    /// "Running on PostgreSQL" tells the operator to after `vault init
    /// --database` (run as the owner): rows only, never ownership, and only
    /// reads of the schema version.
    pub fn grant_server(&self) {
        let role = &self.server;
        self.owner_client()
            .batch_execute(&format!(
                "GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {role};
                 REVOKE INSERT, UPDATE, DELETE ON vault_schema FROM {role};
                 GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO {role};"
            ))
            .expect("grant the server role row access");
    }

    /// A client connected as the owner.
    pub fn owner_client(&self) -> postgres::Client {
        self.connect(&self.owner, &self.owner_password)
    }

    /// A client connected as the server role.
    pub fn server_client(&self) -> postgres::Client {
        self.connect(&self.server, &self.server_password)
    }

    /// The cluster's superuser, on this database.
    pub fn admin_client(&self) -> postgres::Client {
        self.cluster.admin_on(&self.name)
    }

    fn connect(&self, role: &str, password: &str) -> postgres::Client {
        postgres::Config::new()
            .host("127.0.0.1")
            .port(self.port())
            .user(role)
            .password(password)
            .dbname(&self.name)
            .connect(postgres::NoTls)
            .unwrap_or_else(|e| panic!("connect to {} as {role}: {e}", self.name))
    }

    /// Waits (bounded) until no backend is connected to this database, then
    /// drops it: a test's clients may still be closing when it ends.
    fn drop_database(&self) -> Result<(), postgres::Error> {
        let mut admin = self.cluster.admin();
        if self.shared_roles {
            return admin.batch_execute(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ));
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1",
            &[&self.name],
        )?;
        while Instant::now() < deadline {
            if admin
                .batch_execute(&format!("DROP DATABASE IF EXISTS {}", self.name))
                .is_ok()
            {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        admin.batch_execute(&format!(
            "DROP ROLE IF EXISTS {}; DROP ROLE IF EXISTS {}",
            self.server, self.owner
        ))
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        // the cluster is stopped with its last user anyway; dropping the
        // database only keeps a long-lived cluster small
        let _ = self.drop_database();
    }
}

/// 32 hex characters from the kernel's generator (scram-sha-256 hashes it).
fn random_password() -> String {
    let mut bytes = [0u8; 16];
    fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut bytes))
        .expect("read /dev/urandom");
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_test_database_has_a_server_role_that_owns_nothing_and_cannot_bypass_rls() {
        // issue 20, CI cluster: the role the server logs in as is subject to RLS
        let Some(db) = TestDb::create() else { return };
        let mut server = db.server_client();
        let row = server
            .query_one(
                "SELECT rolsuper, rolbypassrls FROM pg_roles WHERE rolname = current_user",
                &[],
            )
            .unwrap();
        assert!(!row.get::<_, bool>(0) && !row.get::<_, bool>(1));
        let owned: i64 = db
            .admin_client()
            .query_one(
                "SELECT count(*) FROM pg_class c JOIN pg_roles r ON r.oid = c.relowner
                 WHERE r.rolname = $1",
                &[&db.server],
            )
            .unwrap()
            .get(0);
        assert_eq!(owned, 0);
        // the server cannot create tables of its own in the vault's schema
        assert!(server.batch_execute("CREATE TABLE mine (x int)").is_err());
        // the owner can, over TCP with its password from the passfile
        let pass = fs::read_to_string(db.passfile()).unwrap();
        assert!(pass.contains(&format!(":{}:", db.owner)));
        db.owner_client()
            .batch_execute("CREATE TABLE t (x int)")
            .unwrap();
    }

    #[test]
    fn the_cluster_stops_when_its_last_user_is_dropped() {
        // issue 20, CI cluster: no postmaster outlives the tests
        let Some(db) = TestDb::create() else { return };
        let pid_file = db.cluster.root.path().join("data/postmaster.pid");
        let pid = fs::read_to_string(pid_file).unwrap();
        let stat = PathBuf::from(format!("/proc/{}/stat", pid.lines().next().unwrap()));
        // a zombie (dead, not yet reaped by whoever adopted it) is not running
        let running = || {
            fs::read_to_string(&stat).is_ok_and(|s| {
                s.rsplit(')')
                    .next()
                    .is_some_and(|r| !r.trim_start().starts_with('Z'))
            })
        };
        assert!(running());
        let weak = Arc::downgrade(&db.cluster);
        drop(db);
        // other tests of this process may still hold the cluster
        if weak.upgrade().is_none() {
            assert!(!running(), "the postmaster is still running");
        }
    }
}
