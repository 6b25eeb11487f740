//! Issue 19, the operator's day: backup and restore, import, completions and
//! the man page, the shipped systemd units, and values typed on the command
//! line kept out of error messages. The real binary throughout.

use std::os::unix::fs::PermissionsExt;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::common::*;

fn key_status(env: &Env, name: &str) -> String {
    let out = env.vault(&["keys", "ls", "--json"]).assert().success();
    let v: serde_json::Value = serde_json::from_str(&stdout_of(&out)).unwrap();
    let keys = v["keys"].as_array().unwrap();
    keys.iter()
        .find(|k| k["name"] == name)
        .map(|k| k["status"].as_str().unwrap().to_owned())
        .unwrap_or_else(|| "unknown".into())
}

fn issue(env: &Env, name: &str, agent: &str) -> String {
    stdout_of(
        &env.vault(&["issue", name, "--agent", agent])
            .assert()
            .success(),
    )
    .trim()
    .to_owned()
}

// issue 19, backup and restore
#[test]
fn a_backup_taken_while_a_server_writes_restores_the_latest_committed_value() {
    sqlite_only!(SqliteOnly::Backup);
    let (env, key, _) = crate::server::setup();
    let server = crate::server::start_with(&env, &["--listen", "127.0.0.1:0"]);
    // The server writes an audit record per mint the whole time.
    let stop = std::sync::Arc::new(AtomicBool::new(false));
    let minter = {
        let (stop, base, key) = (stop.clone(), server.base.clone(), key.clone());
        std::thread::spawn(move || {
            let mut minted = 0u32;
            while !stop.load(Ordering::Relaxed) && minted < 5_000 {
                // Each answer, granted or rate-limited, is an audit record written.
                let r = ureq::post(&format!("{base}/v1/auth/token"))
                    .set("Authorization", &format!("Bearer {key}"))
                    .set("Content-Type", "application/json")
                    .send_string("{}");
                if r.is_ok() {
                    minted += 1;
                }
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            minted
        })
    };
    for v in 1..=5 {
        env.set("hermes-marketing/ROTATING", &format!("value-{v}"));
    }
    // The latest commits sit in the WAL while the server holds the database
    // open: exactly what a `cp vault.db` would miss.
    let wal = env.home.join("vault.db-wal");
    assert!(std::fs::metadata(&wal).unwrap().len() > 0);
    let backup = env.dir.path().join("vault.backup");
    let out = env
        .vault(&["backup", backup.to_str().unwrap(), "--json"])
        .assert()
        .success();
    let report: serde_json::Value = serde_json::from_str(&stdout_of(&out)).unwrap();
    assert!(report["bytes"].as_u64().unwrap() > 0);
    stop.store(true, Ordering::Relaxed);
    assert!(
        minter.join().unwrap() > 0,
        "the server never wrote during the test"
    );
    drop(server);
    assert_eq!(
        std::fs::metadata(&backup).unwrap().permissions().mode() & 0o777,
        0o600
    );
    // Restored on another machine (a fresh VAULT_HOME), the latest value is current.
    let other = Env::empty();
    std::fs::copy(&env.passfile, &other.passfile).unwrap();
    other
        .vault(&["restore", backup.to_str().unwrap()])
        .assert()
        .success();
    assert_eq!(other.get("hermes-marketing/ROTATING"), "value-5");
    assert_eq!(
        other.get("hermes-marketing/GITHUB_TOKEN"),
        crate::server::CANARY
    );
    other.vault(&["audit", "verify"]).assert().success();
    // One file, private, nothing else left in the vault directory.
    let names: Vec<_> = std::fs::read_dir(&other.home)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| !n.starts_with("vault.db"))
        .collect();
    assert!(names.is_empty(), "left behind: {names:?}");
}

// issue 20: `vault backup` of a vault on PostgreSQL (on SQLite too) is a
// file `vault restore` takes on another machine; a restore aimed at the
// database is refused before anything is asked, with the way there
#[test]
fn a_backup_of_either_backend_restores_into_a_new_vault_directory() {
    let env = Env::new();
    env.vault(&["agent", "add", "hermes"]).assert().success();
    env.set("hermes/TOKEN", "value-kept-across-backends-5521");
    issue(&env, "hermes-key", "hermes");
    env.vault(&["keys", "revoke", "hermes-key"])
        .assert()
        .success();
    let backup = env.dir.path().join("vault.backup");
    let out = env
        .vault(&["backup", backup.to_str().unwrap(), "--json"])
        .assert()
        .success();
    let report: serde_json::Value = serde_json::from_str(&stdout_of(&out)).unwrap();
    assert!(report["audit_records"].as_i64().unwrap() >= 3, "{report}");
    assert_eq!(
        std::fs::metadata(&backup).unwrap().permissions().mode() & 0o777,
        0o600
    );
    // another machine: a fresh vault directory, no database
    let mut other = Env::empty();
    other.pg = None;
    std::fs::copy(&env.passfile, &other.passfile).unwrap();
    other
        .vault(&["restore", backup.to_str().unwrap()])
        .assert()
        .success();
    assert_eq!(other.get("hermes/TOKEN"), "value-kept-across-backends-5521");
    assert_eq!(key_status(&other, "hermes-key"), "revoked");
    other.vault(&["audit", "verify"]).assert().success();
    if env.pg.is_none() {
        return;
    }
    env.set("hermes/TOKEN", "value-set-after-the-backup-7730");
    let out = env
        .vault(&["--json", "restore", backup.to_str().unwrap(), "--force"])
        .assert()
        .code(1);
    let v: serde_json::Value = serde_json::from_str(&stdout_of(&out)).unwrap();
    assert_eq!(v["error"]["code"], "refused", "{v}");
    let message = v["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("vault migrate --to postgres://"),
        "{message}"
    );
    assert_eq!(env.get("hermes/TOKEN"), "value-set-after-the-backup-7730");
}

// issue 19, backup and restore
#[test]
fn restore_without_force_over_an_existing_vault_refuses_and_changes_nothing() {
    sqlite_only!(SqliteOnly::Backup);
    let env = Env::new();
    env.vault(&["agent", "add", "a"]).assert().success();
    env.set("a/X", "before");
    let backup = env.dir.path().join("b.db");
    env.vault(&["backup", backup.to_str().unwrap()])
        .assert()
        .success();
    env.set("a/X", "after");
    let before = env.all_bytes();
    let out = env
        .vault(&["restore", backup.to_str().unwrap()])
        .assert()
        .code(1);
    assert!(stderr_of(&out).contains("--force"), "{}", stderr_of(&out));
    assert_eq!(env.all_bytes(), before);
    assert_eq!(env.get("a/X"), "after");
}

// issue 19, backup and restore
#[test]
fn a_corrupted_or_tampered_backup_is_refused_with_exit_2_and_nothing_changes() {
    sqlite_only!(SqliteOnly::Backup);
    let env = Env::new();
    env.vault(&["agent", "add", "a"]).assert().success();
    env.set("a/X", "current");
    let good = env.dir.path().join("good.db");
    env.vault(&["backup", good.to_str().unwrap()])
        .assert()
        .success();
    let bytes = std::fs::read(&good).unwrap();

    // Pages overwritten in the middle of the file.
    let corrupt = env.dir.path().join("corrupt.db");
    let mut b = bytes.clone();
    for x in &mut b[4096..4096 * 3] {
        *x = 0xA5;
    }
    write_private(&corrupt, "");
    std::fs::write(&corrupt, &b).unwrap();
    // Not a database at all.
    let junk = env.dir.path().join("junk.db");
    write_private(&junk, "this is not a vault backup\n");
    // A sound database whose audit trail was edited.
    let tampered = env.dir.path().join("tampered.db");
    std::fs::write(&tampered, &bytes).unwrap();
    {
        let conn = rusqlite::Connection::open(&tampered).unwrap();
        conn.execute(
            "UPDATE audit_log SET outcome = 'denied:x' WHERE seq = 2",
            [],
        )
        .unwrap();
    }
    let before = env.all_bytes();
    for (file, want) in [
        (&corrupt, "invalid backup"),
        (&junk, "invalid backup"),
        (&tampered, "audit chain"),
    ] {
        let out = env
            .vault(&["restore", "--force", file.to_str().unwrap()])
            .assert()
            .code(2);
        let err = stderr_of(&out);
        assert!(err.contains(want), "{file:?}: {err}");
        assert!(err.contains(file.to_str().unwrap()), "{err}");
        assert_eq!(env.all_bytes(), before, "{file:?} changed the vault");
    }
    let out = env
        .vault(&["restore", "--force", "--json", junk.to_str().unwrap()])
        .assert()
        .code(2);
    let v: serde_json::Value = serde_json::from_str(&stdout_of(&out)).unwrap();
    assert_eq!(v["error"]["code"], "invalid_input");
    // Nothing left behind by the refusals; the vault works.
    let leftovers = std::fs::read_dir(&env.home)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with(".restore")
        })
        .count();
    assert_eq!(leftovers, 0);
    assert_eq!(env.get("a/X"), "current");
}

// issue 19, backup and restore: revoked since the backup comes back revoked, never live
#[test]
fn restore_keeps_keys_revoked_since_the_backup_revoked_and_names_what_was_lost() {
    sqlite_only!(SqliteOnly::Backup);
    let env = Env::new();
    env.vault(&["agent", "add", "a"]).assert().success();
    env.set("a/X", "v1");
    let leaked = issue(&env, "leaked-key", "a");
    let kept = issue(&env, "kept-key", "a");
    let token = stdout_of(
        &env.vault(&["token"])
            .env("VAULT_AGENT_KEY", &kept)
            .assert()
            .success(),
    );
    let backup = env.dir.path().join("b.db");
    env.vault(&["backup", backup.to_str().unwrap()])
        .assert()
        .success();
    env.vault(&["keys", "revoke", "leaked-key"])
        .assert()
        .success();
    env.vault(&["keys", "revoke-tokens", "kept-key"])
        .assert()
        .success();
    issue(&env, "new-key", "a");
    env.set("a/X", "v2");
    let out = env
        .vault(&["restore", "--force", "--json", backup.to_str().unwrap()])
        .assert()
        .success();
    let v: serde_json::Value = serde_json::from_str(&stdout_of(&out)).unwrap();
    assert_eq!(v["compared_with_current"], true);
    assert_eq!(v["revoked_again"][0]["name"], "leaked-key");
    assert_eq!(v["issued_since_unknown"][0]["name"], "new-key");
    assert_eq!(v["secrets_changed"][0]["name"], "a/X");
    assert_eq!(v["tokens_revoked_again"][0]["name"], "kept-key");
    assert!(!stdout_of(&out).contains("v2\""));
    assert_eq!(key_status(&env, "leaked-key"), "revoked");
    assert_eq!(key_status(&env, "kept-key"), "active");
    assert_eq!(key_status(&env, "new-key"), "unknown");
    assert_eq!(env.get("a/X"), "v1");
    // The revoked key really is refused by the restored vault.
    env.vault(&["token"])
        .env("VAULT_AGENT_KEY", &leaked)
        .assert()
        .code(3);
    // A token the current vault had revoked stays revoked; the key still works.
    env.vault(&["token", "verify"])
        .write_stdin(token.clone())
        .assert()
        .code(3);
    env.vault(&["token"])
        .env("VAULT_AGENT_KEY", &kept)
        .assert()
        .success();
    // The text report says the same in words.
    let out = env
        .vault(&["restore", "--force", backup.to_str().unwrap()])
        .assert()
        .success();
    let err = stderr_of(&out);
    assert!(
        err.contains("revoked again (never live): leaked-key"),
        "{err}"
    );
    env.vault(&["audit", "verify"]).assert().success();
}

// issue 19, backup: a new 0600 file, never over a file or through a symlink
#[test]
fn backup_never_overwrites_a_file_or_writes_through_a_symlink() {
    sqlite_only!(SqliteOnly::Backup);
    let env = Env::new();
    let existing = env.dir.path().join("existing");
    write_private(&existing, "keep me\n");
    env.vault(&["backup", existing.to_str().unwrap()])
        .assert()
        .code(1);
    assert_eq!(std::fs::read_to_string(&existing).unwrap(), "keep me\n");
    let target = env.dir.path().join("elsewhere");
    let link = env.dir.path().join("link");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    env.vault(&["backup", link.to_str().unwrap()])
        .assert()
        .code(1);
    assert!(!target.exists());
}

/// Values that stress every quoting rule of the dotenv writer.
const AWKWARD: &[(&str, &str)] = &[
    ("DOUBLE_QUOTES", "he said \"hi\""),
    ("SINGLE_QUOTE", "it's here"),
    ("DOLLARS", "$HOME and ${PATH} and $(date)"),
    ("HASH", "a #not-a-comment # really"),
    ("SPACES", "  leading and trailing  "),
    ("UNICODE", "ünïcödé ✓ 秘密 🔑"),
    ("BACKSLASH", "C:\\path\\to"),
    ("EQUALS", "a=b=c"),
    ("MULTILINE", "line one\nline two"),
    ("PLAIN", "avk_plain-value_123"),
];

// issue 19, import: `vault env --format dotenv` output comes back identical
#[test]
fn env_output_imported_into_another_agent_gives_identical_values() {
    let env = Env::new();
    env.vault(&["agent", "add", "src"]).assert().success();
    env.vault(&["agent", "add", "dst"]).assert().success();
    env.vault(&["agent", "add", "jsn"]).assert().success();
    for (name, value) in AWKWARD {
        env.set(&format!("src/{name}"), value);
    }
    let dotenv = stdout_of(
        &env.vault(&["env", "--agent", "src", "--format", "dotenv"])
            .assert()
            .success(),
    );
    // `vault export` is `vault env`.
    let exported = stdout_of(
        &env.vault(&["export", "--agent", "src", "--format", "dotenv"])
            .assert()
            .success(),
    );
    assert_eq!(exported, dotenv);
    let file = env.dir.path().join("src.env");
    write_private(&file, &dotenv);
    let out = env
        .vault(&["import", "--agent", "dst", "--json", file.to_str().unwrap()])
        .assert()
        .success();
    let report = stdout_of(&out);
    let v: serde_json::Value = serde_json::from_str(&report).unwrap();
    assert_eq!(v["imported"].as_array().unwrap().len(), AWKWARD.len());
    assert_eq!(v["imported"][0]["version"], 1);
    assert!(v["advice"].as_str().unwrap().contains("delete it"));
    for (name, value) in AWKWARD {
        assert_eq!(&env.get(&format!("dst/{name}")), value, "{name}");
        if value.len() > 4 {
            assert!(!report.contains(value), "the report shows {name}'s value");
        }
    }
    // Importing the same file again makes no new versions.
    let out = env
        .vault(&["import", "--agent", "dst", file.to_str().unwrap()])
        .assert()
        .success();
    let err = stderr_of(&out);
    assert!(err.contains("version 1 (unchanged)"), "{err}");
    assert!(err.contains("delete it"), "{err}");
    // The JSON form round-trips too.
    let json = stdout_of(
        &env.vault(&["env", "--agent", "src", "--format", "json"])
            .assert()
            .success(),
    );
    let obj: serde_json::Value = serde_json::from_str(&json).unwrap();
    let file = env.dir.path().join("src.json");
    write_private(&file, &obj["env"].to_string());
    env.vault(&[
        "import",
        "--agent",
        "jsn",
        "--format",
        "json",
        file.to_str().unwrap(),
    ])
    .assert()
    .success();
    for (name, value) in AWKWARD {
        assert_eq!(&env.get(&format!("jsn/{name}")), value, "{name}");
    }
}

// issue 19, import: a bad line is refused by number, never echoed, and nothing is stored
#[test]
fn import_refuses_a_bad_line_by_number_without_echoing_it_and_stores_nothing() {
    let env = Env::new();
    env.vault(&["agent", "add", "dst"]).assert().success();
    let cases = [
        ("GOOD=fine\nbad-name=hunter2-secret-value\n", "line 2"),
        ("GOOD=fine\n\nsk_live_hunter2secretvalue\n", "line 3"),
        ("GOOD=fine\nQUOTED='hunter2-secret-value\n", "line 2"),
        ("GOOD=fine\nGOOD=hunter2-secret-value\n", "defined again"),
    ];
    for (text, want) in cases {
        let file = env.dir.path().join("bad.env");
        write_private(&file, text);
        let out = env
            .vault(&["import", "--agent", "dst", file.to_str().unwrap()])
            .assert()
            .code(2);
        let err = stderr_of(&out);
        assert!(err.contains(want), "{text:?}: {err}");
        assert!(!err.contains("hunter2"), "{err}");
        assert!(err.contains("nothing was imported"), "{err}");
    }
    let out = env.vault(&["ls", "dst"]).assert().success();
    assert_eq!(stdout_of(&out), "");
}

// issue 19, completions and man page
#[test]
fn completions_name_the_subcommands_and_man_is_roff_for_vault() {
    let env = Env::empty();
    let bash = stdout_of(&env.vault(&["completions", "bash"]).assert().success());
    for sub in ["backup", "restore", "import", "export", "scan", "rotate"] {
        assert!(bash.contains(sub), "bash completion lacks {sub}");
    }
    assert!(bash.contains("complete -F"), "not a bash completion script");
    for shell in ["zsh", "fish"] {
        let out = stdout_of(&env.vault(&["completions", shell]).assert().success());
        assert!(out.contains("backup"), "{shell}");
    }
    let man = stdout_of(&env.vault(&["man"]).assert().success());
    assert!(man.starts_with(".ie") || man.contains(".TH"), "{man}");
    assert!(man.contains(".TH vault"), "{}", &man[..200.min(man.len())]);
    assert!(man.contains("backup"));
}

/// The error text for an argument, with the value never in it.
fn guarded_error(args: &[&str], value: &str) -> String {
    let env = Env::new();
    env.vault(&["agent", "add", "hermes"]).assert().success();
    let out = env.vault(args).assert().code(2);
    let err = stderr_of(&out);
    assert!(!err.contains(value), "{args:?} echoed the value: {err}");
    assert!(err.contains("shell history"), "{err}");
    assert!(err.contains("rotate"), "{err}");
    err
}

// issue 19, values typed on the command line are never echoed back
#[test]
fn values_typed_on_the_command_line_are_never_echoed_in_errors() {
    let token = "avt_08R7xKq2Lm9Pz4Wv7Ny3Bt6Hd1Fg5Js8";
    // clap's "unexpected argument"
    insta::assert_snapshot!(
        "unexpected_token_argument",
        guarded_error(&["ls", "hermes", token], token)
    );
    // the library's "invalid secret name/path"
    insta::assert_snapshot!(
        "name_equals_value",
        guarded_error(&["set", "MAILCHIMP_API_KEY=abc123-us6"], "abc123-us6")
    );
    insta::assert_snapshot!("token_as_a_path", guarded_error(&["get", token], token));
    // A short value after the name: no rule would call it a credential.
    insta::assert_snapshot!(
        "surplus_value_after_the_name",
        guarded_error(&["set", "hermes/PASSWORD", "hunter2"], "hunter2")
    );
    // An ordinary mistake still gets clap's own message.
    let env = Env::empty();
    let out = env.vault(&["ls", "--bogus"]).assert().code(2);
    assert!(stderr_of(&out).contains("unexpected argument '--bogus'"));
}

fn help_of(args: &[&str]) -> String {
    let env = Env::empty();
    let mut cmd = env.vault(args);
    // clap prints an env variable's value in help; keep the snapshot stable.
    cmd.env_remove("VAULT_PASSPHRASE_FILE");
    stdout_of(&cmd.assert().success())
}

// issue 19, "Proven": help texts are snapshot-tested
#[test]
fn help_texts_are_reviewed_snapshots() {
    insta::assert_snapshot!("vault_help", help_of(&["--help"]));
    insta::assert_snapshot!("vault_backup_help", help_of(&["backup", "--help"]));
}

const UNITS: &[(&str, &str)] = &[
    ("vault-server.service", "vault server"),
    ("vault-watch.service", "vault watch"),
];

fn unit_path(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../contrib/systemd")
        .join(name)
}

// issue 19, install: the shipped systemd user units, checked without systemd
#[test]
fn the_systemd_units_run_vault_with_a_passphrase_file_and_no_secret_inline() {
    for (name, command) in UNITS {
        let text = std::fs::read_to_string(unit_path(name)).unwrap();
        let mut section = String::new();
        let mut keys = std::collections::BTreeMap::<String, Vec<String>>::new();
        for line in text.lines().map(str::trim) {
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            if line.starts_with('[') {
                section = line.to_owned();
                continue;
            }
            let (k, v) = line
                .split_once('=')
                .unwrap_or_else(|| panic!("{name}: {line}"));
            keys.entry(format!("{section}{k}"))
                .or_default()
                .push(v.to_owned());
        }
        for required in [
            "[Unit]Description",
            "[Service]ExecStart",
            "[Service]Environment",
            "[Service]UMask",
            "[Install]WantedBy",
        ] {
            assert!(keys.contains_key(required), "{name} lacks {required}");
        }
        let exec = &keys["[Service]ExecStart"][0];
        assert!(
            exec.contains(&format!("/{command} ")) || exec.contains(&format!("{command} ")),
            "{name}: {exec}"
        );
        assert!(exec.contains(command.split(' ').nth(1).unwrap()));
        let env = keys["[Service]Environment"].join("\n");
        assert!(
            env.contains("VAULT_PASSPHRASE_FILE=%h/") || env.contains("VAULT_PASSPHRASE_FILE=%d/"),
            "{name}: the passphrase must come from a file: {env}"
        );
        assert_eq!(keys["[Service]UMask"][0], "0077");
        let lower = text.to_lowercase();
        for forbidden in ["vault_passphrase=", "avk_", "avt_", "--passphrase "] {
            assert!(!lower.contains(forbidden), "{name} holds {forbidden}");
        }
        assert!(!text.contains("VAULT_PASSPHRASE="), "{name}");
    }
}

// issue 19, install: systemd's own verifier, on copies naming the binary
// just built (verify checks that ExecStart exists). It exits 0 on lines it
// ignores, so its warnings fail the test too.
#[test]
fn the_systemd_units_pass_systemd_analyze_verify() {
    let present = || {
        std::process::Command::new("systemd-analyze")
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if !present() {
        if let Err(why) = vault_testpg::run_setup("tests/setup.sh") {
            skip_or_fail_in_ci(&format!("systemd-analyze is not installed: {why}"));
            return;
        }
    }
    assert!(
        present(),
        "tests/setup.sh ran but systemd-analyze is still missing"
    );
    let dir = tempfile::TempDir::new().unwrap();
    let runtime = dir.path().join("runtime");
    std::fs::create_dir(&runtime).unwrap();
    std::fs::set_permissions(&runtime, std::fs::Permissions::from_mode(0o700)).unwrap();
    let bin = assert_cmd::cargo::cargo_bin("vault");
    for (name, _) in UNITS {
        let text = std::fs::read_to_string(unit_path(name)).unwrap();
        assert!(text.contains("%h/.cargo/bin/vault "), "{name}");
        let copy = dir.path().join(name);
        std::fs::write(
            &copy,
            text.replace("%h/.cargo/bin/vault ", &format!("{} ", bin.display())),
        )
        .unwrap();
        let out = std::process::Command::new("systemd-analyze")
            .args(["verify", "--user", "--man=no"])
            .arg(&copy)
            .env("XDG_RUNTIME_DIR", &runtime)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{name}: {stderr}");
        assert!(stderr.trim().is_empty(), "{name}: {stderr}");
    }
}

// issue 19, backup and restore: a `passwd` since the backup does not stop the
// current vault's revocations from being carried over (it is read, not unlocked)
#[test]
fn restore_after_a_passphrase_change_still_keeps_revoked_keys_revoked() {
    sqlite_only!(SqliteOnly::Backup);
    let env = Env::new();
    env.vault(&["agent", "add", "a"]).assert().success();
    let leaked = issue(&env, "leaked-key", "a");
    let backup = env.dir.path().join("b.db");
    env.vault(&["backup", backup.to_str().unwrap()])
        .assert()
        .success();
    env.vault(&["keys", "revoke", "leaked-key"])
        .assert()
        .success();
    let newpass = env.dir.path().join("newpass");
    write_private(&newpass, "a different passphrase, also long\n");
    env.vault(&["passwd", "--new-passphrase-file", newpass.to_str().unwrap()])
        .assert()
        .success();
    // The backup opens with the passphrase it was taken under.
    let out = env
        .vault(&["restore", "--force", "--json", backup.to_str().unwrap()])
        .assert()
        .success();
    let v: serde_json::Value = serde_json::from_str(&stdout_of(&out)).unwrap();
    assert_eq!(v["compared_with_current"], true, "{v}");
    assert_eq!(v["revoked_again"][0]["name"], "leaked-key");
    assert_eq!(key_status(&env, "leaked-key"), "revoked");
    env.vault(&["token"])
        .env("VAULT_AGENT_KEY", &leaked)
        .assert()
        .code(3);
}
