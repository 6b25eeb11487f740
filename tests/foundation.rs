//! Issue 2: the encrypted vault, its secrets, names, files and exit codes.

use std::os::unix::fs::PermissionsExt;
use std::process::Stdio;

use rusqlite::Connection;

use crate::common::*;

#[test]
fn round_trip_through_the_real_binary() {
    let env = Env::new();
    env.vault(&["agent", "add", "hermes-marketing"])
        .assert()
        .success();
    env.set(
        "hermes-marketing/GITHUB_TOKEN",
        "value with spaces & $ymbols\n",
    );
    assert_eq!(
        env.get("hermes-marketing/GITHUB_TOKEN"),
        "value with spaces & $ymbols"
    );
    env.set("hermes-marketing/GITHUB_TOKEN", "second");
    let out = env
        .vault(&["--json", "history", "hermes-marketing/GITHUB_TOKEN"])
        .assert()
        .success();
    let v: serde_json::Value = serde_json::from_str(&stdout_of(&out)).unwrap();
    assert_eq!(v["versions"].as_array().unwrap().len(), 2);
    assert!(!stdout_of(&out).contains("second"));
    let out = env.vault(&["ls", "--json"]).assert().success();
    let v: serde_json::Value = serde_json::from_str(&stdout_of(&out)).unwrap();
    assert_eq!(v["secrets"][0]["name"], "hermes-marketing/GITHUB_TOKEN");
    assert_eq!(v["secrets"][0]["version"], 2);
    assert!(!stdout_of(&out).contains("second"));
    let out = env
        .vault(&["get", "--json", "hermes-marketing/GITHUB_TOKEN"])
        .assert()
        .success();
    let v: serde_json::Value = serde_json::from_str(&stdout_of(&out)).unwrap();
    assert_eq!(v["value"], "second");
    env.vault(&["rm", "hermes-marketing/GITHUB_TOKEN"])
        .assert()
        .success();
    env.vault(&["get", "hermes-marketing/GITHUB_TOKEN"])
        .assert()
        .code(4);
}

#[test]
fn files_have_private_modes() {
    sqlite_only!(SqliteOnly::File);
    let env = Env::new();
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&env.home), 0o700);
    assert_eq!(mode(&env.db()), 0o600);
}

#[test]
fn wrong_passphrase_exits_3_and_changes_nothing() {
    sqlite_only!(SqliteOnly::File);
    let env = Env::new();
    env.vault(&["agent", "add", "hermes"]).assert().success();
    env.set("hermes/A", "kept");
    let before = std::fs::read(env.db()).unwrap();
    write_private(&env.passfile, "not the passphrase\n");
    for args in [
        &["get", "hermes/A"][..],
        &["ls"],
        &["agent", "add", "other"],
        &["rm", "hermes/A"],
        &["rekey"],
    ] {
        let out = env.vault(args).write_stdin("x").assert().code(3);
        assert!(stderr_of(&out).contains("wrong passphrase"), "{args:?}");
    }
    assert_eq!(std::fs::read(env.db()).unwrap(), before);
    write_private(&env.passfile, &format!("{PASSPHRASE}\n"));
    assert_eq!(env.get("hermes/A"), "kept");
}

#[test]
fn init_twice_is_refused() {
    let env = Env::new();
    let out = env
        .vault(&["init", "--kdf-memory-mib", "64"])
        .assert()
        .code(1);
    assert!(stderr_of(&out).contains("already exists"));
}

#[test]
fn weak_kdf_parameters_are_refused() {
    let env = Env::empty();
    for args in [
        ["init", "--kdf-memory-mib", "32", "--kdf-iterations", "3"],
        ["init", "--kdf-memory-mib", "64", "--kdf-iterations", "2"],
    ] {
        let out = env.vault(&args).assert().code(2);
        assert!(stderr_of(&out).contains("floor"), "{}", stderr_of(&out));
    }
    assert!(!env.home.join("vault.db").exists());
}

/// Finds `needle` in the database file, after SQLite has checkpointed the WAL.
fn offset_of(env: &Env, needle: &[u8]) -> usize {
    let bytes = std::fs::read(env.db()).unwrap();
    bytes
        .windows(needle.len())
        .position(|w| w == needle)
        .expect("blob in the main db file")
}

#[test]
fn every_byte_of_the_stored_blob_flipped_on_disk_is_rejected() {
    sqlite_only!(SqliteOnly::Tamper);
    let env = Env::new();
    env.vault(&["agent", "add", "hermes"]).assert().success();
    env.set("hermes/A", "flip-me");
    let blob: Vec<u8> = Connection::open(env.db())
        .unwrap()
        .query_row("SELECT ciphertext FROM secret_versions", [], |r| r.get(0))
        .unwrap();
    // version byte + 12-byte nonce + 7-byte ciphertext + 16-byte tag
    assert_eq!(blob.len(), 1 + 12 + 7 + 16);
    let at = offset_of(&env, &blob);
    let original = std::fs::read(env.db()).unwrap();
    for i in 0..blob.len() {
        let mut bytes = original.clone();
        bytes[at + i] ^= 0x5a;
        std::fs::write(env.db(), &bytes).unwrap();
        let out = env.vault(&["get", "hermes/A"]).assert().code(2);
        assert!(
            stderr_of(&out).contains("integrity check failed"),
            "byte {i}: {}",
            stderr_of(&out)
        );
        assert!(!stdout_of(&out).contains("flip-me"));
    }
    std::fs::write(env.db(), &original).unwrap();
    assert_eq!(env.get("hermes/A"), "flip-me");
}

#[test]
fn a_ciphertext_moved_to_another_row_is_rejected() {
    sqlite_only!(SqliteOnly::Tamper);
    let env = Env::new();
    env.vault(&["agent", "add", "hermes"]).assert().success();
    env.vault(&["agent", "add", "finance"]).assert().success();
    env.set("hermes/A", "hermes-value");
    env.set("finance/A", "finance-value");
    let conn = Connection::open(env.db()).unwrap();
    conn.execute(
        "UPDATE secret_versions SET ciphertext = (SELECT ciphertext FROM secret_versions WHERE secret_id = 1)
         WHERE secret_id = 2",
        [],
    )
    .unwrap();
    drop(conn);
    let out = env.vault(&["get", "finance/A"]).assert().code(2);
    assert!(!stdout_of(&out).contains("hermes-value"));
    assert_eq!(env.get("hermes/A"), "hermes-value");
}

#[test]
fn no_file_in_the_vault_holds_the_passphrase_or_a_value() {
    let env = Env::new();
    env.vault(&["agent", "add", "hermes"]).assert().success();
    // Hold a connection open so SQLite keeps the WAL file on disk between
    // runs (on PostgreSQL all_bytes reads the database's rows instead).
    let holder = env
        .pg
        .is_none()
        .then(|| Connection::open(env.db()).unwrap());
    if let Some(holder) = &holder {
        holder
            .query_row("SELECT count(*) FROM agents", [], |r| r.get::<_, i64>(0))
            .unwrap();
    }
    let values = ["canary-value-0001-ZXQ", "canary-value-0002-ZXQ"];
    for v in values {
        env.set("hermes/A", v);
    }
    env.vault(&["rekey"]).assert().success();
    env.vault(&[
        "passwd",
        "--new-passphrase-file",
        env.passfile.to_str().unwrap(),
    ])
    .assert()
    .success();
    let files: Vec<_> = std::fs::read_dir(&env.home)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(
        env.pg.is_some() || files.iter().any(|f| f.to_string_lossy().ends_with("-wal")),
        "{files:?}"
    );
    let all = env.all_bytes();
    for v in values {
        assert!(!contains(&all, v.as_bytes()), "value {v} found on disk");
    }
    assert!(!contains(&all, PASSPHRASE.as_bytes()));
    drop(holder);
}

#[test]
fn eight_processes_writing_at_once_all_land() {
    let env = Env::new();
    env.vault(&["agent", "add", "hermes"]).assert().success();
    let exe = assert_cmd::cargo::cargo_bin("vault");
    let children: Vec<_> = (0..8)
        .map(|i| {
            let mut child = std::process::Command::new(&exe)
                .args(["set", &format!("hermes/S{i}")])
                .env("VAULT_HOME", &env.home)
                .env("VAULT_PASSPHRASE_FILE", &env.passfile)
                .stdin(Stdio::piped())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            use std::io::Write;
            child
                .stdin
                .take()
                .unwrap()
                .write_all(format!("value-{i}").as_bytes())
                .unwrap();
            child
        })
        .collect();
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    for i in 0..8 {
        assert_eq!(env.get(&format!("hermes/S{i}")), format!("value-{i}"));
    }
}

#[test]
fn bad_values_are_refused_with_exit_2_and_change_nothing() {
    let env = Env::new();
    env.vault(&["agent", "add", "hermes"]).assert().success();
    env.set("hermes/A", "kept");
    let too_big = vec![b'x'; 64 * 1024 + 1];
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("empty", vec![]),
        ("only a newline", b"\n".to_vec()),
        ("too large", too_big),
        ("NUL", b"a\0b".to_vec()),
        ("invalid UTF-8", vec![0xc3, 0x28]),
    ];
    for (what, value) in cases {
        let out = env
            .vault(&["set", "hermes/A"])
            .write_stdin(value)
            .assert()
            .code(2);
        assert!(
            stderr_of(&out).contains("invalid secret value"),
            "{what}: {}",
            stderr_of(&out)
        );
    }
    assert_eq!(env.get("hermes/A"), "kept");
    let out = env
        .vault(&["--json", "history", "hermes/A"])
        .assert()
        .success();
    assert_eq!(stdout_of(&out).matches("\"version\"").count(), 1);
}

#[test]
fn bad_names_show_the_rule() {
    let env = Env::new();
    for (args, rule) in [
        (&["agent", "add", "Hermes"][..], "lowercase letters"),
        (&["agent", "add", "a--b"], "lowercase letters"),
        (&["get", "hermes/BAD-NAME"], "environment variable"),
        (&["get", "hermes/1X"], "environment variable"),
        (&["get", "no-slash"], "AGENT/NAME"),
    ] {
        let out = env.vault(args).assert().code(2);
        assert!(
            stderr_of(&out).contains(rule),
            "{args:?}: {}",
            stderr_of(&out)
        );
    }
}

#[test]
fn unknown_agent_and_missing_things_exit_4() {
    let env = Env::new();
    let out = env
        .vault(&["set", "nobody/A"])
        .write_stdin("x")
        .assert()
        .code(4);
    assert!(stderr_of(&out).contains("agent not found: nobody"));
    env.vault(&["get", "nobody/A"]).assert().code(4);
    env.vault(&["history", "nobody/A"]).assert().code(4);
    env.vault(&["agent", "rm", "nobody"]).assert().code(4);
}

#[test]
fn missing_vault_exits_4_with_a_hint() {
    let env = Env::empty();
    let out = env.vault(&["ls"]).assert().code(4);
    assert!(stderr_of(&out).contains("vault init"));
    assert!(!env.home.exists());
}

#[test]
fn corrupt_header_and_corrupt_file_are_clear_errors() {
    sqlite_only!(SqliteOnly::File);
    let env = Env::new();
    let conn = Connection::open(env.db()).unwrap();
    conn.execute("UPDATE vault_header SET kdf_salt = x'00'", [])
        .unwrap_err();
    conn.execute("PRAGMA ignore_check_constraints = ON", [])
        .unwrap();
    conn.execute("UPDATE vault_header SET dek_id = x'0102'", [])
        .unwrap();
    drop(conn);
    let out = env.vault(&["ls"]).assert().code(2);
    assert!(
        stderr_of(&out).contains("header is corrupt"),
        "{}",
        stderr_of(&out)
    );

    let env = Env::new();
    let conn = Connection::open(env.db()).unwrap();
    conn.execute("DELETE FROM vault_header", []).unwrap();
    drop(conn);
    let out = env.vault(&["ls"]).assert().code(2);
    assert!(stderr_of(&out).contains("no header row"));

    let env = Env::new();
    std::fs::write(
        env.db(),
        b"this is not a database, just garbage bytes................",
    )
    .unwrap();
    let out = env.vault(&["ls"]).assert().code(2);
    assert!(!stderr_of(&out).contains("panicked"));
}

#[test]
fn a_kdf_header_above_the_ceiling_is_refused_before_deriving() {
    sqlite_only!(SqliteOnly::Tamper);
    let env = Env::new();
    let conn = Connection::open(env.db()).unwrap();
    conn.execute("UPDATE vault_header SET kdf_memory_kib = 1073741824", [])
        .unwrap();
    drop(conn);
    let out = env.vault(&["ls"]).assert().code(2);
    assert!(stderr_of(&out).contains("ceiling"), "{}", stderr_of(&out));
}

#[test]
fn a_database_from_a_newer_schema_is_refused() {
    sqlite_only!(SqliteOnly::File);
    let env = Env::new();
    let conn = Connection::open(env.db()).unwrap();
    conn.pragma_update(None, "user_version", 999).unwrap();
    drop(conn);
    let before = std::fs::read(env.db()).unwrap();
    let out = env.vault(&["ls"]).assert().code(2);
    assert!(stderr_of(&out).contains("newer than this vault binary"));
    assert_eq!(std::fs::read(env.db()).unwrap(), before);
}

#[test]
fn loose_permissions_are_refused_with_the_fix() {
    sqlite_only!(SqliteOnly::File);
    let env = Env::new();
    std::fs::set_permissions(&env.home, std::fs::Permissions::from_mode(0o755)).unwrap();
    let out = env.vault(&["ls"]).assert().code(2);
    assert!(stderr_of(&out).contains("chmod 700"), "{}", stderr_of(&out));
    std::fs::set_permissions(&env.home, std::fs::Permissions::from_mode(0o700)).unwrap();
    std::fs::set_permissions(env.db(), std::fs::Permissions::from_mode(0o640)).unwrap();
    let out = env.vault(&["ls"]).assert().code(2);
    assert!(stderr_of(&out).contains("chmod 600"));
}

#[test]
fn json_errors_have_a_stable_code() {
    let env = Env::new();
    let out = env.vault(&["--json", "get", "nobody/A"]).assert().code(4);
    let v: serde_json::Value = serde_json::from_str(&stdout_of(&out)).unwrap();
    assert_eq!(v["error"]["code"], "not_found");
    write_private(&env.passfile, "wrong wrong wrong\n");
    let out = env.vault(&["--json", "ls"]).assert().code(3);
    let v: serde_json::Value = serde_json::from_str(&stdout_of(&out)).unwrap();
    assert_eq!(v["error"]["code"], "wrong_passphrase");
}

#[test]
fn passwd_and_rekey_keep_every_value() {
    let env = Env::new();
    env.vault(&["agent", "add", "hermes"]).assert().success();
    env.set("hermes/A", "a");
    env.set("hermes/B", "b");
    let newpass = env.dir.path().join("newpass");
    write_private(&newpass, "a brand new passphrase\n");
    env.vault(&["passwd", "--new-passphrase-file", newpass.to_str().unwrap()])
        .assert()
        .success();
    env.vault(&["ls"]).assert().code(3);
    std::fs::copy(&newpass, &env.passfile).unwrap();
    let out = env.vault(&["--json", "rekey"]).assert().success();
    assert!(stdout_of(&out).contains("\"reencrypted\":2"));
    assert_eq!(env.get("hermes/A"), "a");
    assert_eq!(env.get("hermes/B"), "b");
    let short = env.dir.path().join("short");
    write_private(&short, "short\n");
    env.vault(&["passwd", "--new-passphrase-file", short.to_str().unwrap()])
        .assert()
        .code(2);
}

#[test]
fn agent_rm_refuses_while_it_owns_secrets() {
    let env = Env::new();
    env.vault(&["agent", "add", "hermes"]).assert().success();
    env.set("hermes/A", "a");
    env.vault(&["agent", "rm", "hermes"]).assert().code(1);
    assert_eq!(env.get("hermes/A"), "a");
    env.vault(&["agent", "rm", "hermes", "--force"])
        .assert()
        .success();
    env.vault(&["get", "hermes/A"]).assert().code(4);
}

#[test]
fn no_flag_takes_a_secret_value() {
    let env = Env::new();
    // There is no --passphrase or --value: clap rejects them as usage errors.
    env.vault(&["ls", "--passphrase", "x"]).assert().code(2);
    env.vault(&["set", "a/B", "--value", "x"]).assert().code(2);
    env.vault(&["set", "hermes/A", "value-as-arg"])
        .assert()
        .code(2);
}

#[test]
fn help_documents_exit_codes_and_sources() {
    let out = Env::empty().vault(&["--help"]).assert().success();
    let help = stdout_of(&out);
    assert!(help.contains("3 wrong passphrase"));
    assert!(help.contains("VAULT_PASSPHRASE_FILE"));
}

#[test]
fn demo_runs_end_to_end() {
    let out = Env::empty().vault(&["demo"]).assert().success();
    let text = stdout_of(&out);
    assert!(text.contains("plaintext present: false"));
    assert!(text.contains("(exit 3)"));
    assert!(text.contains("the env file's key changed: true; its other lines are unchanged: true"));
    assert!(text.contains("wildcard-grant"));
    assert!(
        text.contains("the leaked key was rotated away and the env file holds its successor: true")
    );
    assert!(text.contains("GITHUB_TOKEN=<concealed by vault>"));
    // issue 15 follow-up 4: the brokered step
    assert!(text.contains("| STRIPE_KEY=vault-brokered"), "{text}");
    assert!(text.contains("the agent never saw it"), "{text}");
    assert!(!text.contains("ghp_DEMOxFAKExTOKENxVERSIONxTWO000000000\n   | STRIPE"));
}
