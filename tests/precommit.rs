//! The pre-commit hook against content written to get past it (issue 13, finding 4): a real
//! git repository, `vault hook install`, `git commit` running the real binary. Each bypass
//! once committed a live `avk_` key.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::common::{stdout_of, Env};

struct Repo {
    env: Env,
    dir: PathBuf,
    key: String,
}

impl Repo {
    /// A vault with one issued key, and a repository with vault's hook and one commit.
    fn new() -> Repo {
        let env = Env::new();
        env.vault(&["agent", "add", "hermes"]).assert().success();
        let out = env.vault(&["issue", "hermes-key"]).assert().success();
        let key = stdout_of(&out).trim().to_owned();
        let dir = env.dir.path().join("repo");
        std::fs::create_dir(&dir).unwrap();
        let repo = Repo { env, dir, key };
        repo.git(&["init", "-q", "-b", "main"]);
        repo.env
            .vault(&["hook", "install"])
            .current_dir(&repo.dir)
            .assert()
            .success();
        repo.write("README", b"hello\n");
        repo.git(&["add", "README"]);
        let first = repo.commit();
        assert!(first.status.success(), "{first:?}");
        repo
    }

    fn write(&self, rel: &str, bytes: &[u8]) {
        let p = self.dir.join(rel);
        if let Some(d) = p.parent() {
            std::fs::create_dir_all(d).unwrap();
        }
        std::fs::write(p, bytes).unwrap();
    }

    fn git(&self, args: &[&str]) -> Output {
        let out = self.cmd("git").args(args).output().unwrap();
        assert!(out.status.success(), "git {args:?}: {out:?}");
        out
    }

    fn cmd(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut c = Command::new(program);
        c.current_dir(&self.dir)
            .env("VAULT_HOME", &self.env.home)
            .env("VAULT_BIN", assert_cmd::cargo::cargo_bin("vault"))
            .env_remove("VAULT_PASSPHRASE_FILE")
            .env_remove("VAULT_SCAN_ALLOW_SKIPPED")
            .env_remove("GIT_INDEX_FILE")
            .env("HOME", self.env.dir.path().join("home"))
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_AUTHOR_NAME", "t")
            .env("GIT_AUTHOR_EMAIL", "t@example.invalid")
            .env("GIT_COMMITTER_NAME", "t")
            .env("GIT_COMMITTER_EMAIL", "t@example.invalid");
        c
    }

    /// `git commit` with the hook: the output of the attempt.
    fn commit(&self) -> Output {
        self.cmd("git")
            .args(["-c", "commit.gpgsign=false", "commit", "-q", "-m", "change"])
            .output()
            .unwrap()
    }

    /// Commits what is staged (asserting the hook blocks it) and says what the hook said.
    fn assert_blocked(&self) -> String {
        let out = self.commit();
        let said = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(!out.status.success(), "the commit went through: {said}");
        assert!(said.contains("hermes-key"), "the key was not named: {said}");
        assert!(
            !said.contains(&self.key),
            "the hook printed the key: {said}"
        );
        said
    }
}

// issue 13, finding 4
#[test]
fn a_line_posing_as_a_diff_header_does_not_redirect_the_hook() {
    let r = Repo::new();
    r.write("other.txt", b"clean\n");
    r.git(&["add", "other.txt"]);
    assert!(r.commit().status.success());
    // With `-U0`, the added line `++ b/other.txt` reads `+++ b/other.txt` in patch text.
    r.write(
        "leak.txt",
        format!("++ b/other.txt\nKEY={}\n", r.key).as_bytes(),
    );
    r.write("other.txt", b"clean\nstill clean\n");
    r.git(&["add", "leak.txt", "other.txt"]);
    let said = r.assert_blocked();
    assert!(said.contains("leak.txt"), "{said}");
}

// issue 13, finding 4
#[test]
fn gitattributes_calling_a_file_binary_does_not_hide_it() {
    let r = Repo::new();
    r.write(".gitattributes", b"*.txt binary\nkey.txt -diff\n");
    r.write("key.txt", format!("KEY={}\n", r.key).as_bytes());
    r.write("notes.txt", format!("KEY={}\n", r.key).as_bytes());
    r.git(&["add", ".gitattributes", "key.txt", "notes.txt"]);
    r.assert_blocked();
}

// issue 13, finding 4
#[test]
fn a_nul_byte_or_utf16_text_does_not_hide_a_key() {
    let r = Repo::new();
    r.write("nul.txt", format!("KEY={}\n\0\n", r.key).as_bytes());
    r.git(&["add", "nul.txt"]);
    r.assert_blocked();
    r.git(&["rm", "-q", "--cached", "nul.txt"]);
    for big_endian in [false, true] {
        let text = format!("\u{feff}KEY={}\r\n", r.key);
        let bytes: Vec<u8> = text
            .encode_utf16()
            .flat_map(|u| {
                if big_endian {
                    u.to_be_bytes()
                } else {
                    u.to_le_bytes()
                }
            })
            .collect();
        // An odd byte in front shifts the UTF-16 text to odd offsets, too.
        let mut shifted = vec![0x01];
        shifted.extend_from_slice(&bytes);
        for (name, content) in [("utf16.txt", &bytes), ("shifted.bin", &shifted)] {
            r.write(name, content);
            r.git(&["add", name]);
            r.assert_blocked();
            r.git(&["rm", "-q", "--cached", name]);
        }
    }
}

// issue 13, finding 4
#[test]
fn a_vaultignore_in_the_same_commit_does_not_apply_and_no_vaultignore_hides_a_vault_key() {
    let r = Repo::new();
    r.write(".vaultignore", b"private/\n");
    r.write("private/key.env", format!("KEY={}\n", r.key).as_bytes());
    r.git(&["add", ".vaultignore", "private/key.env"]);
    r.assert_blocked();
    // Committed first, it keeps fixtures out (a fake provider token passes) ...
    r.git(&["rm", "-q", "--cached", "private/key.env"]);
    assert!(r.commit().status.success());
    r.write(
        "private/fixture.env",
        b"T=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\n",
    );
    r.git(&["add", "private/fixture.env"]);
    let ok = r.commit();
    assert!(ok.status.success(), "{ok:?}");
    // ... but never a live vault key.
    r.git(&["add", "private/key.env"]);
    r.assert_blocked();
}

// issue 13, finding 4
#[test]
fn vault_allow_does_not_suppress_a_vault_managed_key() {
    let r = Repo::new();
    r.write(
        "fixture.py",
        b"T = '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'  # vault:allow\n",
    );
    r.git(&["add", "fixture.py"]);
    let ok = r.commit();
    assert!(
        ok.status.success(),
        "a false positive can still be allowed: {ok:?}"
    );
    r.write(
        "config.py",
        format!("KEY = '{}'  # vault:allow\n", r.key).as_bytes(),
    );
    r.git(&["add", "config.py"]);
    r.assert_blocked();
}

// issue 13, finding 4
#[test]
fn a_staged_file_the_scan_cannot_read_blocks_unless_allowed() {
    let r = Repo::new();
    r.write("big.txt", &vec![b'a'; 4096]);
    r.git(&["add", "big.txt"]);
    let vault = |extra: &[&str], allow: Option<&str>| {
        let mut c = r.cmd(assert_cmd::cargo::cargo_bin("vault"));
        c.args(["scan", "--staged", "--max-file-size", "1024"])
            .args(extra);
        if let Some(v) = allow {
            c.env("VAULT_SCAN_ALLOW_SKIPPED", v);
        }
        c.output().unwrap()
    };
    let blocked = vault(&[], None);
    assert_eq!(blocked.status.code(), Some(1), "{blocked:?}");
    let said = String::from_utf8_lossy(&blocked.stderr);
    assert!(
        said.contains("big.txt") && said.contains("could not be scanned"),
        "{said}"
    );
    assert_eq!(vault(&[], Some("0")).status.code(), Some(1));
    assert_eq!(vault(&["--allow-skipped"], None).status.code(), Some(0));
    assert_eq!(vault(&[], Some("1")).status.code(), Some(0));
    assert!(Path::new(&r.dir).join("big.txt").exists());
}

// issue 13, finding 14
#[test]
fn write_baseline_and_hook_install_replace_a_symlink_instead_of_writing_through_it() {
    use std::os::unix::fs::PermissionsExt;
    let r = Repo::new();
    let victim = r.env.dir.path().join("victim");
    std::fs::write(&victim, "keep me\n").unwrap();
    std::fs::set_permissions(&victim, std::fs::Permissions::from_mode(0o644)).unwrap();
    // A link committed to the repository, named as the baseline to write.
    std::os::unix::fs::symlink(&victim, r.dir.join("baseline.json")).unwrap();
    r.write("fake.env", b"T=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\n");
    r.env
        .vault(&["scan", "fake.env", "--write-baseline", "baseline.json"])
        .current_dir(&r.dir)
        .assert()
        .success();
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "keep me\n");
    let meta = std::fs::symlink_metadata(r.dir.join("baseline.json")).unwrap();
    assert!(meta.is_file(), "the link was not replaced");
    let text = std::fs::read_to_string(r.dir.join("baseline.json")).unwrap();
    assert!(text.contains("fingerprints"), "{text}");
    // The hook, replaced with --force while it is a link to a file outside.
    let hook = r.dir.join(".git/hooks/pre-commit");
    std::fs::remove_file(&hook).unwrap();
    std::os::unix::fs::symlink(&victim, &hook).unwrap();
    r.env
        .vault(&["hook", "install", "--force"])
        .current_dir(&r.dir)
        .assert()
        .success();
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "keep me\n");
    let mode = std::fs::metadata(&victim).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o644, "the link's target was made executable");
    let meta = std::fs::symlink_metadata(&hook).unwrap();
    assert!(meta.is_file() && meta.permissions().mode() & 0o111 != 0);
    assert!(std::fs::read_to_string(&hook)
        .unwrap()
        .contains("vault pre-commit hook"));
}

// issue 18, path context: a test path lowers the scanner's noise, never the gate. A
// provider-format key staged under tests/ blocks the commit as it would under src/.
#[test]
fn a_provider_key_staged_under_a_test_path_still_blocks_the_commit() {
    let repo = Repo::new();
    // fresh each run: the Stripe live-key format, no checksum to confirm it by
    let body: String = {
        use std::collections::hash_map::RandomState;
        use std::hash::{BuildHasher, Hasher};
        let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
        (0..32)
            .map(|i| {
                let mut h = RandomState::new().build_hasher();
                h.write_usize(i);
                alphabet[(h.finish() % alphabet.len() as u64) as usize] as char
            })
            .collect()
    };
    let key = format!("sk_live_{body}");
    repo.write(
        "tests/fixtures/settings.py",
        format!("STRIPE_KEY = \"{key}\"\n").as_bytes(),
    );
    repo.git(&["add", "tests/fixtures/settings.py"]);
    let out = repo.commit();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!out.status.success(), "the commit went through: {said}");
    assert!(said.contains("stripe"), "the finding was not named: {said}");
    assert!(!said.contains(&key), "the hook printed the key: {said}");

    // the same file scanned as a tree is lowered below the default (noise, not a gate)
    let tree = repo
        .env
        .vault(&["scan", "tests/fixtures/settings.py"])
        .current_dir(&repo.dir)
        .output()
        .unwrap();
    assert!(
        !String::from_utf8_lossy(&tree.stdout).contains("stripe"),
        "a tree scan showed a test fixture at the default confidence: {tree:?}"
    );
}
