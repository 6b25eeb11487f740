//! One cluster for a whole test run (issue 20's e2e suite on PostgreSQL).
//!
//! nextest runs every test in a process of its own, so a cluster per process
//! (`Cluster::shared`) would `initdb` hundreds of times. [`Cluster::run_wide`]
//! starts one the first time any process of the run asks, in a directory
//! under the temp dir named by the caller's key (its target dir: two
//! checkouts do not share), and every later process finds it there.
//!
//! - `setup.lock` (flock, exclusive) is held while a process checks, starts
//!   or stops the cluster, so two processes never start two.
//! - `users.lock` is held shared by every process using the cluster, until it
//!   exits (the kernel drops the lock however the process ends).
//! - A reaper (a small shell loop, in its own process group so a test's kill
//!   does not take it, with no inherited output so nextest sees no leak)
//!   stops the cluster (`pg_ctl stop -m immediate`) and removes its files
//!   once `users.lock` has been free for [`IDLE_SECS`] seconds in a row, and
//!   exits. A run after that starts a new one; a run that overlaps another
//!   simply uses the same cluster, each test on a database of its own.
//!
//! Each test gets its database with one statement: `CREATE DATABASE ...
//! TEMPLATE vault_template`, a template made at the cluster's start whose
//! `public` schema the shared owner role owns and whose default privileges
//! grant the server role row access (never ownership) to every table the
//! owner creates there (`vault init --database` as the owner).

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, OnceLock};

use nix::fcntl::{Flock, FlockArg};

use crate::{pg_bin, random_password, run_setup, skip_or_fail_in_ci, Cluster, TestDb};

/// How long the cluster may go unused before its reaper stops it.
pub const IDLE_SECS: u32 = 5;

const OWNER: &str = "vault_owner";
const SERVER: &str = "vault_server";
const TEMPLATE: &str = "vault_template";

/// Where a cluster's files are.
pub(crate) enum Root {
    /// Of this process alone; removed on drop.
    Temp(tempfile::TempDir),
    /// The run's, under its base directory (this process holds that
    /// directory's `users.lock` shared until it exits).
    Shared { dir: PathBuf },
}

impl Root {
    pub(crate) fn path(&self) -> &Path {
        match self {
            Root::Temp(t) => t.path(),
            Root::Shared { dir } => dir,
        }
    }
}

/// The run-wide cluster as this process knows it.
struct RunWide {
    cluster: Arc<Cluster>,
    owner_password: String,
    server_password: String,
}

static RUN_WIDE: OnceLock<Option<RunWide>> = OnceLock::new();

/// `users.lock`, held shared by this process until it exits.
static USERS: OnceLock<Flock<File>> = OnceLock::new();

fn lock_file(path: &Path) -> File {
    OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn take(path: &Path, how: FlockArg) -> Flock<File> {
    Flock::lock(lock_file(path), how)
        .map_err(|(_, e)| e)
        .unwrap_or_else(|e| panic!("flock {}: {e}", path.display()))
}

impl Cluster {
    /// The cluster of the whole test run keyed by `key`, started (with its
    /// reaper) if none runs; `None` when PostgreSQL's binaries are missing.
    fn run_wide(key: &str) -> Option<&'static RunWide> {
        RUN_WIDE
            .get_or_init(|| {
                let bin = pg_bin().or_else(|| {
                    run_setup("tests/pg/setup.sh")
                        .map_err(|why| eprintln!("{why}"))
                        .ok()?;
                    pg_bin()
                })?;
                Some(attach(bin, key))
            })
            .as_ref()
    }
}

fn base_dir(key: &str) -> PathBuf {
    // FNV-1a of the key: a short, stable directory name (socket paths are short)
    let hash = key.bytes().fold(0xcbf29ce484222325u64, |h, b| {
        (h ^ b as u64).wrapping_mul(0x100000001b3)
    });
    let uid = nix::unistd::geteuid();
    std::env::temp_dir().join(format!("vault-testpg-{uid}-{:08x}", hash as u32))
}

fn attach(bin: PathBuf, key: &str) -> RunWide {
    let base = base_dir(key);
    fs::create_dir_all(&base).unwrap();
    // the `postgres` user (as root) must reach its directory below
    fs::set_permissions(&base, fs::Permissions::from_mode(0o711)).unwrap();
    let _setup = take(&base.join("setup.lock"), FlockArg::LockExclusive);
    // shared until this process exits; the reaper waits for all of them
    USERS.get_or_init(|| take(&base.join("users.lock"), FlockArg::LockShared));
    let dir = base.join("pg");
    let state = base.join("state");
    if let Some(found) = running(&bin, &dir, &state) {
        ensure_reaper(&base, &found.cluster);
        return found;
    }
    // nothing usable: a stale one (a reboot, a crash) is cleared first
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir(&dir).unwrap();
    let cluster = Cluster::start_in(bin, Root::Shared { dir }, None);
    let (owner_password, server_password) = (random_password(), random_password());
    prepare(&cluster, &owner_password, &server_password);
    let mut f = OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .mode(0o600)
        .open(&state)
        .unwrap();
    writeln!(f, "{}\n{owner_password}\n{server_password}", cluster.port).unwrap();
    let cluster = Arc::new(cluster);
    ensure_reaper(&base, &cluster);
    RunWide {
        cluster,
        owner_password,
        server_password,
    }
}

/// The cluster `state` describes, if it still answers.
fn running(bin: &Path, dir: &Path, state: &Path) -> Option<RunWide> {
    let text = fs::read_to_string(state).ok()?;
    let mut lines = text.lines();
    let port: u16 = lines.next()?.parse().ok()?;
    let (owner_password, server_password) = (lines.next()?.to_owned(), lines.next()?.to_owned());
    let cluster = Cluster {
        bin: bin.to_owned(),
        root: Root::Shared {
            dir: dir.to_owned(),
        },
        port,
        as_postgres: nix::unistd::geteuid().is_root(),
        next: AtomicU32::new(0),
    };
    postgres::Config::new()
        .host_path(dir)
        .port(port)
        .user(crate::SUPERUSER)
        .dbname("postgres")
        .connect(postgres::NoTls)
        .ok()?;
    Some(RunWide {
        cluster: Arc::new(cluster),
        owner_password,
        server_password,
    })
}

/// The shared roles and the template database.
fn prepare(cluster: &Cluster, owner_password: &str, server_password: &str) {
    let mut admin = cluster.admin();
    for sql in [
        format!("CREATE ROLE {OWNER} LOGIN NOSUPERUSER NOBYPASSRLS PASSWORD '{owner_password}'"),
        format!(
            "CREATE ROLE {SERVER} LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE \
             PASSWORD '{server_password}'"
        ),
        format!("CREATE DATABASE {TEMPLATE} OWNER {OWNER}"),
    ] {
        admin
            .batch_execute(&sql)
            .expect("prepare the run-wide cluster");
    }
    cluster
        .admin_on(TEMPLATE)
        .batch_execute(&format!(
            "ALTER SCHEMA public OWNER TO {OWNER};
             REVOKE CREATE ON SCHEMA public FROM PUBLIC;
             ALTER DEFAULT PRIVILEGES FOR ROLE {OWNER} IN SCHEMA public
                 GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO {SERVER};
             ALTER DEFAULT PRIVILEGES FOR ROLE {OWNER} IN SCHEMA public
                 GRANT USAGE ON SEQUENCES TO {SERVER};"
        ))
        .expect("prepare the template database");
}

const REAPER: &str = r#"
base=$1; idle_max=$2; shift 2
exec 8>>"$base/setup.lock" 9>>"$base/users.lock"
idle=0
while sleep 1; do
  flock -x 8
  if flock -x -n 9; then
    idle=$((idle+1))
    if [ "$idle" -ge "$idle_max" ]; then
      "$@" stop -m immediate -w -D "$base/pg/data" >/dev/null 2>&1
      rm -rf "$base/pg" "$base/state" "$base/reaper.pid"
      exit 0
    fi
    flock -u 9
  else
    idle=0
  fi
  flock -u 8
done
"#;

/// Starts the reaper unless the one recorded in `reaper.pid` still runs.
/// Called with `setup.lock` held. Never waited for: it outlives this
/// process, and init reaps it.
#[allow(clippy::zombie_processes)]
fn ensure_reaper(base: &Path, cluster: &Cluster) {
    let pid_file = base.join("reaper.pid");
    let alive = fs::read_to_string(&pid_file)
        .ok()
        .and_then(|p| p.trim().parse::<i32>().ok())
        .is_some_and(|pid| {
            nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                None::<nix::sys::signal::Signal>,
            )
            .is_ok()
        });
    if alive {
        return;
    }
    let pg_ctl = cluster.command("pg_ctl");
    let mut cmd = Command::new("bash");
    cmd.arg("-c")
        .arg(REAPER)
        .arg("reaper")
        .arg(base)
        .arg(IDLE_SECS.to_string())
        .arg(pg_ctl.get_program())
        .args(pg_ctl.get_args())
        .env("LC_ALL", "C")
        .env_remove("PGDATA")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0);
    let child = cmd.spawn().expect("start the cluster's reaper");
    fs::write(&pid_file, child.id().to_string()).unwrap();
}

impl TestDb {
    /// A new database on the run-wide cluster keyed by `key` (see the module
    /// docs), the server role already granted row access to what the owner
    /// creates; `None` (skipped; fails under `CI=true`) without PostgreSQL.
    pub fn create_run_wide(key: &str) -> Option<TestDb> {
        let Some(run) = Cluster::run_wide(key) else {
            skip_or_fail_in_ci(
                "PostgreSQL's binaries are missing (tests/pg/setup.sh installs them)",
            );
            return None;
        };
        let cluster = run.cluster.clone();
        let n = cluster.next.fetch_add(1, Ordering::Relaxed);
        let name = format!("vault_{}_{n}", std::process::id());
        cluster
            .admin()
            .batch_execute(&format!(
                "CREATE DATABASE {name} TEMPLATE {TEMPLATE} OWNER {OWNER} STRATEGY FILE_COPY"
            ))
            .expect("create the test database");
        let db = TestDb {
            cluster,
            name,
            owner: OWNER.into(),
            server: SERVER.into(),
            owner_password: run.owner_password.clone(),
            server_password: run.server_password.clone(),
            dir: tempfile::tempdir().unwrap(),
            shared_roles: true,
        };
        let mut pass = File::create(db.passfile()).unwrap();
        fs::set_permissions(db.passfile(), fs::Permissions::from_mode(0o600)).unwrap();
        for (role, password) in [(OWNER, &db.owner_password), (SERVER, &db.server_password)] {
            for host in ["127.0.0.1", "localhost"] {
                writeln!(pass, "{host}:{}:{}:{role}:{password}", db.port(), db.name).unwrap();
            }
        }
        Some(db)
    }
}
