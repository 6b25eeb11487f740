//! Issue 8: crash injection beyond rotation, corrupted files, ownership, and
//! the canary: a secret value that must appear only where it is asked for.

use std::os::unix::fs::PermissionsExt;

use rusqlite::Connection;

use crate::common::*;

const CANARY: &str = "canary-7f3a9c1e5b-DO-NOT-LEAK";

fn integrity_ok(env: &Env) {
    if env.pg.is_some() {
        // PostgreSQL keeps its own pages consistent; there is no file here to check
        return;
    }
    let ok: String = Connection::open(env.db())
        .unwrap()
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(ok, "ok");
}

#[test]
fn a_kill_during_rekey_or_passwd_loses_nothing() {
    let env = Env::new();
    env.vault(&["agent", "add", "hermes"]).assert().success();
    for i in 0..5 {
        env.set(&format!("hermes/S{i}"), &format!("value-{i}"));
    }
    let out = env
        .vault(&["rekey"])
        .env("VAULT_FAILPOINT", "rekey:midway")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), None, "rekey should have been killed");
    integrity_ok(&env);
    for i in 0..5 {
        assert_eq!(env.get(&format!("hermes/S{i}")), format!("value-{i}"));
    }
    let newpass = env.dir.path().join("new");
    write_private(&newpass, "another long passphrase\n");
    let out = env
        .vault(&["passwd", "--new-passphrase-file", newpass.to_str().unwrap()])
        .env("VAULT_FAILPOINT", "passwd:before-commit")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), None);
    integrity_ok(&env);
    // the old passphrase still opens the vault: the change never committed
    assert_eq!(env.get("hermes/S0"), "value-0");
    env.vault(&["rekey"]).assert().success();
    assert_eq!(env.get("hermes/S4"), "value-4");
}

#[test]
fn a_kill_while_writing_an_env_file_leaves_the_old_file_whole() {
    let env = Env::new();
    env.vault(&["agent", "add", "hermes"]).assert().success();
    let file = env.dir.path().join("agent.env");
    std::fs::write(&file, "KEEP=1\n").unwrap();
    let out = env
        .vault(&["issue", "hermes-key", "--write-env", file.to_str().unwrap()])
        .env("VAULT_FAILPOINT", "envfile:before-rename")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), None);
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "KEEP=1\n");
    integrity_ok(&env);
}

#[test]
fn truncated_and_corrupted_databases_are_clear_errors() {
    sqlite_only!(SqliteOnly::File);
    let env = Env::new();
    env.vault(&["agent", "add", "hermes"]).assert().success();
    env.set("hermes/A", "a");
    let bytes = std::fs::read(env.db()).unwrap();
    std::fs::write(env.db(), &bytes[..bytes.len() / 2]).unwrap();
    let out = env.vault(&["get", "hermes/A"]).assert().code(2);
    assert!(!stderr_of(&out).contains("panicked"));
    assert!(stderr_of(&out).starts_with("vault: error: "));
    let mut corrupt = bytes.clone();
    for b in corrupt.iter_mut().skip(100).step_by(7) {
        *b ^= 0xff;
    }
    std::fs::write(env.db(), &corrupt).unwrap();
    let out = env.vault(&["ls"]).assert().code(2);
    assert!(!stderr_of(&out).contains("panicked"));
}

#[test]
fn a_vault_owned_by_another_user_is_refused() {
    let env = Env::new();
    // Only root can hand a directory to another user; elsewhere this proves nothing.
    if nix::unistd::geteuid().is_root() {
        std::os::unix::fs::chown(&env.home, Some(4242), None).unwrap();
        let out = env.vault(&["ls"]).assert().code(1);
        assert!(
            stderr_of(&out).contains("owned by uid 4242"),
            "{}",
            stderr_of(&out)
        );
    }
}

/// clap prints an `env =` argument's value in `--help`; a database URL may
/// carry a password, so help names VAULT_DATABASE_URL and never shows it.
#[test]
fn help_never_prints_the_database_urls_password() {
    let env = Env::new();
    let url = format!("postgres://vault:{CANARY}@127.0.0.1:1/vault");
    for args in [&["--help"][..], &["get", "--help"], &["server", "--help"]] {
        let out = env
            .vault(args)
            .env("VAULT_DATABASE_URL", &url)
            .assert()
            .success();
        let text = stdout_of(&out);
        assert!(
            text.contains("[env: VAULT_DATABASE_URL]"),
            "{args:?}: {text}"
        );
        assert!(!text.contains(CANARY), "{args:?} printed the URL: {text}");
    }
}

/// Every command path, success and failure: the canary value may appear only
/// in the outputs whose job is to print it.
#[test]
fn the_canary_value_appears_only_where_it_is_asked_for() {
    let env = Env::new();
    env.vault(&["agent", "add", "hermes"]).assert().success();
    env.vault(&["agent", "add", "other"]).assert().success();
    env.set("hermes/CANARY", CANARY);
    let file = env.dir.path().join("h.env");
    let key_out = env
        .vault(&["issue", "hermes-key", "--write-env", file.to_str().unwrap()])
        .assert()
        .success();
    let key = std::fs::read_to_string(&file)
        .unwrap()
        .trim()
        .trim_start_matches("VAULT_AGENT_KEY=")
        .to_owned();
    // `issue --write-env` registered the file as a target itself (issue 19)
    let policy = env.dir.path().join("p.toml");
    std::fs::write(&policy, "secrets = [\"*\"]\n").unwrap();
    let mut quiet: Vec<(String, std::process::Output)> =
        vec![("issue".into(), key_out.get_output().clone())];
    let run = |args: &[&str], stdin: Option<&str>, extra: &[(&str, &str)]| {
        let mut cmd = env.vault(args);
        for (k, v) in extra {
            cmd.env(k, v);
        }
        if let Some(s) = stdin {
            cmd.write_stdin(s.to_owned());
        }
        cmd.output().unwrap()
    };
    let with_key = [("VAULT_AGENT_KEY", key.as_str())];
    let set_policy = [
        "agent",
        "set-policy",
        "hermes",
        "--policy",
        policy.to_str().unwrap(),
    ];
    type Case<'a> = (&'a [&'a str], Option<&'a str>, &'a [(&'a str, &'a str)]);
    let cases: Vec<Case> = vec![
        (&["ls"], None, &[]),
        (&["--json", "ls"], None, &[]),
        (&["history", "hermes/CANARY"], None, &[]),
        (&["--json", "history", "hermes/CANARY"], None, &[]),
        (&["agent", "ls"], None, &[]),
        (&["agent", "show", "hermes", "--json"], None, &[]),
        (&["keys", "ls", "--json"], None, &[]),
        (&["token", "--json"], None, &with_key),
        (&["token", "--scope", "secret:NOPE"], None, &with_key),
        (&["usage", "--json"], None, &[]),
        (&["--json", "audit", "log"], None, &[]),
        (&["audit", "verify"], None, &[]),
        (&["doctor", "--json"], None, &[]),
        (&["target", "ls"], None, &[]),
        (&["approvals"], None, &[]),
        (&["set", "hermes/CANARY"], Some(""), &[]),
        (&["set", "nobody/CANARY"], Some(CANARY), &[]),
        (&["set", "hermes/bad-name"], Some(CANARY), &[]),
        (&["get", "other/CANARY"], None, &[]),
        (&["rotate", "hermes/CANARY"], None, &[]),
        (&set_policy, None, &[]),
        (&["rotate", "hermes-key"], None, &[]),
        (&["env", "--agent", "other"], None, &[]),
        (
            &[
                "run",
                "--agent",
                "hermes",
                "--",
                "sh",
                "-c",
                "echo $CANARY; echo $CANARY >&2",
            ],
            None,
            &[],
        ),
        (&["rekey"], None, &[]),
    ];
    for (args, stdin, extra) in cases {
        quiet.push((args.join(" "), run(args, stdin, extra)));
    }
    for (what, out) in &quiet {
        for (stream, bytes) in [("stdout", &out.stdout), ("stderr", &out.stderr)] {
            assert!(
                !contains(bytes, CANARY.as_bytes()),
                "`vault {what}` leaked the canary on {stream}: {}",
                String::from_utf8_lossy(bytes)
            );
        }
    }
    // The commands whose job is to print it do.
    assert_eq!(env.get("hermes/CANARY"), CANARY);
    let out = run(&["env", "--agent", "hermes", "--format", "json"], None, &[]);
    assert!(contains(&out.stdout, CANARY.as_bytes()));
    let out = run(
        &[
            "run",
            "--agent",
            "hermes",
            "--no-mask",
            "--",
            "sh",
            "-c",
            "echo $CANARY",
        ],
        None,
        &[],
    );
    assert!(contains(&out.stdout, CANARY.as_bytes()));
    // And never in any file of the vault.
    assert!(!contains(&env.all_bytes(), CANARY.as_bytes()));
    assert!(std::fs::metadata(&env.home).unwrap().permissions().mode() & 0o077 == 0);
}

/// The end of the disk, simulated with RLIMIT_FSIZE (which binds root too;
/// with SIGXFSZ ignored a write past it fails with EFBIG, as one fails with
/// ENOSPC on a full disk): the write is refused with a clear error, nothing
/// stored before is lost, and the database stays whole.
#[test]
fn a_full_disk_is_a_clear_error_and_loses_nothing() {
    sqlite_only!(SqliteOnly::File);
    let env = Env::new();
    env.vault(&["agent", "add", "hermes"]).assert().success();
    for i in 0..10 {
        env.set(&format!("hermes/S{i}"), &format!("value-{i}"));
    }
    let size = |suffix: &str| {
        std::fs::metadata(format!("{}{suffix}", env.db().display()))
            .map(|m| m.len())
            .unwrap_or(0)
    };
    // Closing checkpoints and empties the WAL, so the write lands in a
    // fresh WAL: 32 KiB of room cannot hold a 60 KB value.
    assert_eq!(size("-wal"), 0);
    let blocks = 64;
    let mut child = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "trap '' XFSZ; ulimit -f {blocks}; exec \"$0\" set hermes/BIG"
        ))
        .arg(assert_cmd::cargo::cargo_bin("vault"))
        .env("VAULT_HOME", &env.home)
        .env("VAULT_PASSPHRASE_FILE", &env.passfile)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all("x".repeat(60_000).as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "the write cannot have fitted");
    assert!(
        stderr.contains("could not be written") && stderr.contains("nothing was changed"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(!stderr.contains("xxxxxxxx"), "no value in the error");
    // everything from before is there, the big value is not, the file is whole
    integrity_ok(&env);
    for i in 0..10 {
        assert_eq!(env.get(&format!("hermes/S{i}")), format!("value-{i}"));
    }
    env.vault(&["get", "hermes/BIG"]).assert().code(4);
    env.vault(&["audit", "verify"]).assert().success();
    // with room again, the same write succeeds
    env.set("hermes/BIG", &"y".repeat(60_000));
}

/// A vault on a filesystem that turns read-only (a real tmpfs mount,
/// remounted `ro`): writes are refused with a clear error, nothing is lost,
/// and once the filesystem is writable again everything is there. Mounting
/// needs CAP_SYS_ADMIN; where the test cannot mount it says so and stops.
#[test]
fn a_read_only_filesystem_is_a_clear_error_and_loses_nothing() {
    sqlite_only!(SqliteOnly::File);
    let env = Env::empty();
    let mnt = env.dir.path().join("mnt");
    std::fs::create_dir(&mnt).unwrap();
    let mount = |args: &[&str]| {
        std::process::Command::new("mount")
            .args(args)
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if !mount(&[
        "-t",
        "tmpfs",
        "-o",
        "size=8m,mode=0700",
        "tmpfs",
        mnt.to_str().unwrap(),
    ]) {
        skip_or_fail_in_ci("cannot mount a tmpfs here (needs CAP_SYS_ADMIN)");
        return;
    }
    struct Unmount(std::path::PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount").arg(&self.0).status();
        }
    }
    let _unmount = Unmount(mnt.clone());
    let home = mnt.join("vault");
    let vault = |args: &[&str]| {
        let mut cmd = env.vault(args);
        cmd.env("VAULT_HOME", &home);
        cmd
    };
    vault(&["init", "--kdf-memory-mib", "64"])
        .assert()
        .success();
    vault(&["agent", "add", "hermes"]).assert().success();
    for i in 0..5 {
        vault(&["set", &format!("hermes/S{i}")])
            .write_stdin(format!("value-{i}"))
            .assert()
            .success();
    }
    assert!(mount(&["-o", "remount,ro", mnt.to_str().unwrap()]));
    let out = vault(&["set", "hermes/NEW"])
        .write_stdin("new-value")
        .assert()
        .failure();
    let err = stderr_of(&out);
    assert!(err.contains("nothing was changed"), "{err}");
    assert!(
        !err.contains("panicked") && !err.contains("new-value"),
        "{err}"
    );
    assert!(mount(&["-o", "remount,rw", mnt.to_str().unwrap()]));
    for i in 0..5 {
        let out = vault(&["get", &format!("hermes/S{i}")]).assert().success();
        assert_eq!(stdout_of(&out).trim(), format!("value-{i}"));
    }
    vault(&["get", "hermes/NEW"]).assert().code(4);
    vault(&["audit", "verify"]).assert().success();
}

/// Approval execution killed right after the rotation command's new value
/// is stored (before the compromise flag is cleared and env files are
/// rewritten): the new value, which the provider may already be the only
/// valid one of, is never lost; the approval stays open, and approving
/// again finishes the job.
#[test]
fn a_kill_while_executing_an_approval_keeps_the_new_value() {
    let env = Env::new();
    env.vault(&["agent", "add", "hermes"]).assert().success();
    env.set("hermes/DB_PASSWORD", "leaked-db-password-1");
    // prints a new value each time, as a provider's API would
    set_rotation_script(
        &env,
        "hermes/DB_PASSWORD",
        "cat >/dev/null; echo \"fresh-db-password-$(date +%s%N)\"\n",
    );
    let leak = env.dir.path().join("notes.md");
    std::fs::write(&leak, "the password is leaked-db-password-1\n").unwrap();
    env.vault(&["scan", leak.to_str().unwrap(), "--rotate"])
        .assert()
        .code(1);
    let approvals: serde_json::Value = serde_json::from_str(&stdout_of(
        &env.vault(&["approvals", "--json"]).assert().success(),
    ))
    .unwrap();
    let id = approvals["approvals"][0]["id"].as_str().unwrap().to_owned();
    let out = env
        .vault(&["approve", &id])
        .env("VAULT_FAILPOINT", "rotate-secret:stored")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), None, "the process should have died");
    integrity_ok(&env);
    let stored = env.get("hermes/DB_PASSWORD");
    assert!(stored.starts_with("fresh-db-password-"), "{stored}");
    env.vault(&["audit", "verify"]).assert().success();
    // the approval is still open: a person approves again and it completes
    let approvals: serde_json::Value = serde_json::from_str(&stdout_of(
        &env.vault(&["approvals", "--json"]).assert().success(),
    ))
    .unwrap();
    let open: Vec<_> = approvals["approvals"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["state"] == "pending")
        .collect();
    assert_eq!(open.len(), 1, "{approvals}");
    env.vault(&["approve", open[0]["id"].as_str().unwrap()])
        .assert()
        .success();
    let after = env.get("hermes/DB_PASSWORD");
    assert!(after.starts_with("fresh-db-password-") && after != stored);
    let history: serde_json::Value = serde_json::from_str(&stdout_of(
        &env.vault(&["--json", "history", "hermes/DB_PASSWORD"])
            .assert()
            .success(),
    ))
    .unwrap();
    // the leaked value, the one stored before the kill, and the last one
    assert_eq!(
        history["versions"].as_array().map(Vec::len),
        Some(3),
        "{history}"
    );
}
