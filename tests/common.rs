//! A throwaway vault per test and a way to run the real binary against it.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use assert_cmd::Command;
use tempfile::TempDir;

pub const PASSPHRASE: &str = "test passphrase, long enough";

/// A temp dir holding a vault directory and a passphrase file.
pub struct Env {
    pub dir: TempDir,
    pub home: PathBuf,
    pub passfile: PathBuf,
}

impl Env {
    /// An environment with no vault yet.
    pub fn empty() -> Env {
        let dir = TempDir::new().unwrap();
        let home = dir.path().join("vault");
        let passfile = dir.path().join("pass");
        write_private(&passfile, &format!("{PASSPHRASE}\n"));
        Env {
            dir,
            home,
            passfile,
        }
    }

    /// An initialised vault at the KDF floor (the fastest the CLI accepts).
    pub fn new() -> Env {
        let env = Env::empty();
        env.vault(&["init", "--kdf-memory-mib", "64", "--kdf-iterations", "3"])
            .assert()
            .success();
        env
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
            .timeout(std::time::Duration::from_secs(60));
        cmd
    }

    /// `vault set PATH` with `value` on stdin; asserts success.
    pub fn set(&self, path: &str, value: &str) {
        self.vault(&["set", path])
            .write_stdin(value)
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

    /// Bytes of every file in the vault directory, concatenated.
    pub fn all_bytes(&self) -> Vec<u8> {
        let mut all = Vec::new();
        for entry in std::fs::read_dir(&self.home).unwrap() {
            all.extend(std::fs::read(entry.unwrap().path()).unwrap());
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
