//! A throwaway vault per test and a way to run the real binary against it,
//! on the backend of the test binary: `e2e` (main.rs) keeps each vault in its
//! SQLite file, `e2e_pg` (main_pg.rs) runs the same tests with each [`Env`]
//! on a PostgreSQL database of its own (issue 20: "the same tests,
//! parametrised"), on one cluster shared by the whole run
//! (`vault_testpg::TestDb::create_run_wide`). Every `vault` an Env runs then
//! has `VAULT_DATABASE_URL` (the password in a passfile, never argv); a test
//! about the SQLite file itself says so with [`sqlite_only!`].

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use assert_cmd::Command;
use tempfile::TempDir;

pub const PASSPHRASE: &str = "test passphrase, long enough";

/// Where a test binary's vaults keep their data.
#[allow(dead_code)] // each binary names one
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// `vault.db` in the vault directory.
    Sqlite,
    /// A database of its own per [`Env`] on the run's cluster.
    Postgres,
}

/// Whether this binary runs its vaults on PostgreSQL.
pub fn on_postgres() -> bool {
    crate::BACKEND == Backend::Postgres
}

/// Why a test runs on SQLite only: it is about the file itself.
#[allow(dead_code)] // the reasons in use vary as tests move
#[derive(Clone, Copy, Debug)]
pub enum SqliteOnly {
    /// It reads or changes `vault.db` (its bytes, modes, WAL) directly.
    File,
    /// A crash trial over SQLite's journal and fsync.
    CrashTrial,
    /// `vault backup|restore`: SQLite's online backup API and files.
    Backup,
    /// It edits rows under the vault with rusqlite to prove tamper checks.
    Tamper,
}

impl std::fmt::Display for SqliteOnly {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            SqliteOnly::File => "it is about the SQLite file itself",
            SqliteOnly::CrashTrial => "a crash trial of SQLite's journal",
            SqliteOnly::Backup => "backup and restore of the SQLite file",
            SqliteOnly::Tamper => "it edits the SQLite file's rows directly",
        })
    }
}

/// `true` (said on stderr) when this binary runs on PostgreSQL, where a test
/// marked [`sqlite_only!`] does not apply.
#[allow(dead_code)]
pub fn skip_on_postgres(why: SqliteOnly) -> bool {
    if on_postgres() {
        eprintln!("NOT ON POSTGRESQL: {why}");
    }
    on_postgres()
}

/// Returns from the test on the PostgreSQL backend, saying why
/// (`sqlite_only!(SqliteOnly::File)`).
macro_rules! sqlite_only {
    ($why:expr) => {
        if $crate::common::skip_on_postgres($why) {
            return;
        }
    };
}
#[allow(unused_imports)]
pub(crate) use sqlite_only;

/// A temp dir holding a vault directory and a passphrase file, and on the
/// PostgreSQL backend the vault's database.
pub struct Env {
    pub dir: TempDir,
    pub home: PathBuf,
    pub passfile: PathBuf,
    /// The database every `vault` of this Env uses (PostgreSQL backend).
    pub pg: Option<vault_testpg::TestDb>,
}

impl Env {
    /// An environment with no vault yet.
    pub fn empty() -> Env {
        let dir = TempDir::new().unwrap();
        let home = dir.path().join("vault");
        let passfile = dir.path().join("pass");
        write_private(&passfile, &format!("{PASSPHRASE}\n"));
        // without PostgreSQL (outside CI, where this fails) the Env stays on SQLite
        let pg = on_postgres()
            .then(|| vault_testpg::TestDb::create_run_wide(env!("CARGO_TARGET_TMPDIR")))
            .flatten();
        if let Some(db) = &pg {
            // nextest runs each test in a process of its own: the first Env's
            // database is the process's too, so a `vault` a test starts itself
            // (with only VAULT_HOME set) reaches that Env's vault
            static FIRST: std::sync::Once = std::sync::Once::new();
            FIRST.call_once(|| std::env::set_var("VAULT_DATABASE_URL", db.url()));
        }
        Env {
            dir,
            home,
            passfile,
            pg,
        }
    }

    /// An initialised vault at the KDF floor (the fastest the CLI accepts).
    pub fn new() -> Env {
        let env = Env::empty();
        env.vault(&["init", "--kdf-memory-mib", "64", "--kdf-iterations", "3"])
            .assert()
            .success();
        if let Some(db) = &env.pg {
            // as README's "Running on PostgreSQL" says after `vault init --database`
            db.grant_server();
        }
        env
    }

    /// The `VAULT_DATABASE_URL` for `vault ARGS` on the PostgreSQL backend:
    /// `vault init` runs as the database's owner (it creates the schema),
    /// everything else as the server role, which owns nothing.
    pub fn database_url(&self, args: &[&str]) -> Option<String> {
        let db = self.pg.as_ref()?;
        let mut rest = args.iter();
        let command = loop {
            match rest.next() {
                Some(&"--passphrase-file" | &"--database") => {
                    rest.next();
                }
                Some(a) if a.starts_with('-') => {}
                other => break other,
            }
        };
        Some(match command {
            Some(&"init") => db.owner_url(),
            _ => db.url(),
        })
    }

    /// Where this Env's vault is, for a test opening it in-process.
    pub fn location(&self) -> vault_core::Location {
        vault_core::Location::new(self.home.clone(), self.pg.as_ref().map(|db| db.url()))
    }

    /// Points `cmd` (a `vault` with `args`) at this Env's database, if it has one.
    pub fn on_backend<C: EnvSetter>(&self, cmd: &mut C, args: &[&str]) {
        match self.database_url(args) {
            Some(url) => cmd.set_env("VAULT_DATABASE_URL", &url),
            None => cmd.remove_env("VAULT_DATABASE_URL"),
        }
    }

    /// `vault ARGS` with this env's VAULT_HOME and passphrase file, and nothing
    /// inherited that could point it elsewhere.
    pub fn vault(&self, args: &[&str]) -> Command {
        let mut cmd = Command::cargo_bin("vault").unwrap();
        cmd.args(args)
            .env_remove("VAULT_ADDR")
            .env_remove("VAULT_AGENT_KEY")
            .env("VAULT_HOME", &self.home)
            .env("VAULT_PASSPHRASE_FILE", &self.passfile)
            // the machine's own agent homes stay out of every test
            .env("HOME", self.dir.path().join("home"))
            .env_remove("HERMES_HOME")
            .env_remove("OPENCLAW_STATE_DIR")
            .timeout(std::time::Duration::from_secs(60));
        self.on_backend(&mut cmd, args);
        cmd
    }

    /// `vault set PATH` with `value` on stdin; asserts success.
    pub fn set(&self, path: &str, value: &str) {
        self.vault(&["set", path])
            .write_stdin(value)
            .assert()
            .success();
    }

    /// Writes `policy` to `AGENT.toml` in the test's directory and runs
    /// `vault agent add AGENT --policy` with it; asserts success.
    pub fn add_agent_with_policy(&self, agent: &str, policy: &str) -> PathBuf {
        let file = self.dir.path().join(format!("{agent}.toml"));
        write_private(&file, policy);
        self.vault(&["agent", "add", agent, "--policy", file.to_str().unwrap()])
            .assert()
            .success();
        file
    }

    /// Writes `policy` to `AGENT.toml` and runs `vault agent set-policy
    /// AGENT --policy` with it; asserts success.
    pub fn set_policy(&self, agent: &str, policy: &str) {
        let file = self.dir.path().join(format!("{agent}.toml"));
        write_private(&file, policy);
        self.vault(&[
            "agent",
            "set-policy",
            agent,
            "--policy",
            file.to_str().unwrap(),
        ])
        .assert()
        .success();
    }

    /// `vault get PATH`, asserting success; the value without its newline.
    pub fn get(&self, path: &str) -> String {
        let out = self.vault(&["get", path]).assert().success();
        let mut s = String::from_utf8(out.get_output().stdout.clone()).unwrap();
        assert!(s.ends_with('\n'));
        s.pop();
        s
    }

    pub fn db(&self) -> PathBuf {
        self.home.join("vault.db")
    }

    /// Bytes of every file in the vault directory, concatenated; on
    /// PostgreSQL also every row of every table of the vault's database, as
    /// `COPY ... (FORMAT binary)` gives them (bytea columns raw, not hex), so
    /// "no byte of the vault holds X" reads what the database stores.
    pub fn all_bytes(&self) -> Vec<u8> {
        use std::io::Read;
        let mut all = Vec::new();
        for entry in std::fs::read_dir(&self.home).unwrap() {
            all.extend(std::fs::read(entry.unwrap().path()).unwrap());
        }
        if let Some(db) = &self.pg {
            let mut admin = db.admin_client();
            let tables = admin
                .query(
                    "SELECT tablename::text FROM pg_tables WHERE schemaname = 'public' ORDER BY 1",
                    &[],
                )
                .unwrap();
            assert!(!tables.is_empty(), "the vault's database has no tables");
            for t in tables {
                let table: String = t.get(0);
                let copy = format!("COPY \"{table}\" TO STDOUT (FORMAT binary)");
                admin
                    .copy_out(copy.as_str())
                    .unwrap()
                    .read_to_end(&mut all)
                    .unwrap();
            }
        }
        all
    }
}

pub fn write_private(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

pub fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

pub fn stdout_of(out: &assert_cmd::assert::Assert) -> String {
    String::from_utf8_lossy(&out.get_output().stdout).into_owned()
}

pub fn stderr_of(out: &assert_cmd::assert::Assert) -> String {
    String::from_utf8_lossy(&out.get_output().stderr).into_owned()
}

/// A python3 that can `import dotenv`: the system one if it can, else a venv
/// under the target dir with python-dotenv installed from PyPI (once per run).
#[allow(dead_code)] // its tests are not all in e2e_pg
pub fn python_with_dotenv() -> PathBuf {
    static PYTHON: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    PYTHON
        .get_or_init(|| {
            let ok = |py: &Path| {
                std::process::Command::new(py)
                    .args(["-c", "import dotenv"])
                    .output()
                    .is_ok_and(|o| o.status.success())
            };
            let system = PathBuf::from("python3");
            if ok(&system) {
                return system;
            }
            let venv = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("dotenv-venv");
            let py = venv.join("bin/python3");
            let _installing = install_lock("dotenv-venv");
            if !ok(&py) {
                let status = std::process::Command::new("python3")
                    .args(["-m", "venv"])
                    .arg(&venv)
                    .status()
                    .unwrap();
                assert!(status.success(), "python3 -m venv failed");
                let status = std::process::Command::new(&py)
                    .args(["-m", "pip", "install", "--quiet", "python-dotenv==1.*"])
                    .status()
                    .unwrap();
                assert!(status.success(), "installing python-dotenv failed");
            }
            py
        })
        .clone()
}

/// Setting a child's environment, for [`Env::on_backend`] on either kind of command.
pub trait EnvSetter {
    fn set_env(&mut self, key: &str, value: &str);
    fn remove_env(&mut self, key: &str);
}

impl EnvSetter for std::process::Command {
    fn set_env(&mut self, key: &str, value: &str) {
        self.env(key, value);
    }
    fn remove_env(&mut self, key: &str) {
        self.env_remove(key);
    }
}

impl EnvSetter for Command {
    fn set_env(&mut self, key: &str, value: &str) {
        self.env(key, value);
    }
    fn remove_env(&mut self, key: &str) {
        self.env_remove(key);
    }
}

/// The real binary started in the background against this env, stdout piped.
pub fn spawn_vault(env: &Env, args: &[&str]) -> std::process::Child {
    let mut cmd = std::process::Command::new(assert_cmd::cargo::cargo_bin("vault"));
    env.on_backend(&mut cmd, args);
    cmd.args(args)
        .env_remove("VAULT_ADDR")
        .env_remove("VAULT_AGENT_KEY")
        .env("VAULT_HOME", &env.home)
        .env("VAULT_PASSPHRASE_FILE", &env.passfile)
        .stdout(std::process::Stdio::piped())
        .stderr(std::fs::File::create(env.dir.path().join("spawned.stderr")).unwrap())
        .spawn()
        .unwrap()
}

/// Lines of a child's stdout, read on a thread so a test can wait with a timeout.
pub struct Lines(std::sync::mpsc::Receiver<String>);

impl Lines {
    pub fn of(child: &mut std::process::Child) -> Lines {
        use std::io::BufRead;
        let out = std::io::BufReader::new(child.stdout.take().unwrap());
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in out.lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Lines(rx)
    }

    /// Lines up to and including the first containing `want`; panics after
    /// 30 s, showing what the spawned vault wrote on stderr.
    pub fn until(&self, env: &Env, want: &str) -> String {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        let mut seen = String::new();
        while let Some(left) = deadline.checked_duration_since(std::time::Instant::now()) {
            match self.0.recv_timeout(left) {
                Ok(line) => {
                    seen.push_str(&line);
                    seen.push('\n');
                    if line.contains(want) {
                        return seen;
                    }
                }
                Err(_) => break,
            }
        }
        let stderr =
            std::fs::read_to_string(env.dir.path().join("spawned.stderr")).unwrap_or_default();
        panic!("never saw {want:?}; stdout so far {seen:?}; vault's stderr {stderr:?}");
    }
}

/// Sends SIGTERM to a child.
pub fn terminate(child: &std::process::Child) {
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::SIGTERM,
    )
    .unwrap();
}

/// Waits up to 30 s for a child to exit; kills it and panics (with the spawned
/// vault's stderr) if it does not, so a hang fails the test instead of CI.
pub fn wait_bounded(env: &Env, child: &mut std::process::Child) -> std::process::ExitStatus {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while std::time::Instant::now() < deadline {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let _ = child.kill();
    let stderr = std::fs::read_to_string(env.dir.path().join("spawned.stderr")).unwrap_or_default();
    panic!("the spawned vault did not exit; its stderr: {stderr:?}");
}

/// Gives `path` a rotation command: a 0700 shell script with `body` after
/// the shebang (it gets the old value on stdin, prints the new one).
pub fn set_rotation_script(env: &Env, path: &str, body: &str) {
    use std::os::unix::fs::PermissionsExt;
    let script = env.dir.path().join("rotate.sh");
    std::fs::write(&script, format!("#!/bin/sh\n{body}")).unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o700)).unwrap();
    env.vault(&[
        "rotation",
        "set",
        path,
        "--command",
        script.to_str().unwrap(),
    ])
    .assert()
    .success();
}

/// A test that cannot run on this machine says so and returns, except under `CI=true`,
/// where a test that could not run must not pass (issue 14).
pub use vault_testpg::skip_or_fail_in_ci;

/// Holds an exclusive lock on `CARGO_TARGET_TMPDIR/NAME.lock` while it lives.
/// nextest runs each test in its own process, so a `OnceLock` does not stop
/// two tests from installing the same venv or npm prefix at once on a clean
/// machine; each one checks and installs under this lock instead.
pub fn install_lock(name: &str) -> nix::fcntl::Flock<std::fs::File> {
    let path = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("{name}.lock"));
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusive)
        .unwrap_or_else(|(_, e)| panic!("locking {}: {e}", path.display()))
}

/// Runs `vault ARGS` on a pseudo-terminal, typing the lines of `PTY_ANSWERS`
/// one per passphrase prompt, and prints how many prompts showed, the exit
/// code and what the terminal saw. With `PTY_STDIN_PIPE=1` the child's stdin
/// is a pipe (a script feeding it) while its terminal stays the pty.
pub const PTY_ANSWERS: &str = r#"
import os, pty, sys, time
answers = os.environ["PTY_ANSWERS"].split("\n")
pipe = os.environ.get("PTY_STDIN_PIPE") == "1"
if pipe:
    r, w = os.pipe()
pid, fd = pty.fork()
if pid == 0:
    if pipe:
        os.dup2(r, 0)
    os.execv(sys.argv[1], sys.argv[1:])
if pipe:
    os.close(r)
seen = b""
typed = 0
deadline = time.time() + 30
while time.time() < deadline:
    try:
        chunk = os.read(fd, 1024)
    except OSError:
        break
    if not chunk:
        break
    seen += chunk
    if typed < len(answers) and seen.count(b"Vault passphrase:") > typed:
        time.sleep(0.05)
        os.write(fd, answers[typed].encode() + b"\r")
        typed += 1
if pipe:
    os.close(w)
_, status = os.waitpid(pid, 0)
print("prompts=%d code=%d" % (seen.count(b"Vault passphrase:"),
      os.WEXITSTATUS(status) if os.WIFEXITED(status) else -1))
sys.stdout.write(seen.decode(errors="replace"))
"#;

/// A running `vault server`, killed when dropped.
pub struct Server {
    pub child: std::process::Child,
    /// What the server printed after `listening on `.
    pub base: String,
    /// The admin token it wrote.
    pub admin: String,
    /// Where its stderr (the request log) goes.
    pub stderr: PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `server` (a `vault server` command with its flags and environment)
/// writing its admin token to `admin_file` and its stderr to `stderr`, waits
/// for its `listening on` line.
pub fn spawn_server(mut server: std::process::Command, admin_file: &Path, stderr: &Path) -> Server {
    use std::io::BufRead;
    let mut child = server
        .args(["--admin-token-file", admin_file.to_str().unwrap()])
        .stdout(std::process::Stdio::piped())
        .stderr(std::fs::File::create(stderr).unwrap())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let Some(base) = line.trim().strip_prefix("listening on ") else {
        let log = std::fs::read_to_string(stderr).unwrap_or_default();
        panic!("{line:?}: {log}");
    };
    let admin = std::fs::read_to_string(admin_file)
        .unwrap()
        .trim()
        .to_owned();
    Server {
        child,
        base: base.to_owned(),
        admin,
        stderr: stderr.to_owned(),
    }
}
