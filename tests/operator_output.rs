//! Issue 13: what the CLI prints for a person (and what a hook or a log
//! receives) holds no minted key and no text that forges lines.

use std::collections::BTreeSet;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

use crate::common::*;

/// The `new-key-*.txt` files in the vault directory.
fn key_files(env: &Env) -> BTreeSet<PathBuf> {
    std::fs::read_dir(&env.home)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("new-key-"))
        })
        .collect()
}

/// The one key file that appeared since `before`: asserts it is a 0600
/// regular file holding a key that works, and returns that key.
fn new_key_since(env: &Env, before: &BTreeSet<PathBuf>) -> String {
    let after = key_files(env);
    let fresh: Vec<_> = after.difference(before).collect();
    assert_eq!(fresh.len(), 1, "{fresh:?}");
    let meta = std::fs::symlink_metadata(fresh[0]).unwrap();
    assert!(meta.is_file());
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    let key = std::fs::read_to_string(fresh[0])
        .unwrap()
        .trim_end()
        .to_owned();
    assert!(key.starts_with("avk_"), "{key}");
    env.vault(&["token"])
        .env("VAULT_AGENT_KEY", &key)
        .assert()
        .success();
    key
}

fn all_output(out: &assert_cmd::assert::Assert) -> String {
    format!("{}{}", stdout_of(out), stderr_of(out))
}

// issue 13, finding 10
#[test]
fn a_key_minted_for_a_leak_goes_to_a_private_file_never_to_any_output() {
    let env = Env::new();
    env.vault(&["agent", "add", "hermes"]).assert().success();
    // no target registered: nobody can receive a successor
    let leaked = stdout_of(&env.vault(&["issue", "hermes-key"]).assert().success())
        .trim()
        .to_owned();

    // `vault scan --rotate`
    let file = env.dir.path().join("notes.md");
    std::fs::write(&file, format!("key: {leaked}\n")).unwrap();
    let before = key_files(&env);
    let out = env
        .vault(&["scan", file.to_str().unwrap(), "--rotate"])
        .assert()
        .code(1);
    let key = new_key_since(&env, &before);
    assert!(
        !all_output(&out).contains(&key[4..]),
        "{}",
        all_output(&out)
    );
    assert!(
        stderr_of(&out).contains("it is in the vault directory, new-key-"),
        "{}",
        stderr_of(&out)
    );

    // Claude Code hook mode: stderr is shown to the model
    let before = key_files(&env);
    let out = env
        .vault(&["scan", "--stdin", "--hook", "claude-code", "--rotate"])
        .write_stdin(format!("{{\"prompt\":\"use {key}\"}}"))
        .assert()
        .code(2);
    let next = new_key_since(&env, &before);
    assert!(
        !all_output(&out).contains(&next[4..]),
        "{}",
        all_output(&out)
    );
    // nor where it is: the model that leaked the old key reads this
    let home = env.home.to_str().unwrap();
    assert!(!all_output(&out).contains(home), "{}", all_output(&out));

    // `vault watch`: what a log collects
    let transcript = env.dir.path().join("t.jsonl");
    std::fs::write(&transcript, format!("{{\"k\":\"{next}\"}}\n")).unwrap();
    let before = key_files(&env);
    let out = env
        .vault(&["watch", transcript.to_str().unwrap(), "--once"])
        .assert()
        .success();
    let third = new_key_since(&env, &before);
    assert!(
        !all_output(&out).contains(&third[4..]),
        "{}",
        all_output(&out)
    );

    // the server's leak action: the answer and the server's log
    let server = crate::server::start_with(&env, &["--listen", "127.0.0.1:0"]);
    let token = stdout_of(
        &env.vault(&["token"])
            .env("VAULT_AGENT_KEY", &third)
            .assert()
            .success(),
    )
    .trim()
    .to_owned();
    let before = key_files(&env);
    let body = serde_json::json!({"text": format!("about to log: {third}"), "rotate": true});
    let answer = ureq::post(&format!("{}/v1/scan", server.base))
        .set("Authorization", &format!("Bearer {token}"))
        .send_json(body)
        .unwrap()
        .into_string()
        .unwrap();
    let fourth = new_key_since(&env, &before);
    drop(server);
    let log = std::fs::read_to_string(env.dir.path().join("server.stderr")).unwrap();
    assert!(answer.contains("rotated key hermes-key"), "{answer}");
    assert!(!answer.contains(&fourth[4..]) && !log.contains(&fourth[4..]));
}

// issue 13, finding 17
#[test]
fn names_with_newlines_and_escapes_cannot_forge_lines_of_approvals_or_the_audit_log() {
    let env = Env::new();
    env.vault(&["agent", "add", "hermes"]).assert().success();
    let value = "custom-db-password-Zq81vL0pXw";
    env.set("hermes/DB_PASSWORD", value);
    let command = "/bin/echo fresh-db-password-2 # and every later word";
    env.vault(&[
        "rotation",
        "set",
        "hermes/DB_PASSWORD",
        "--command",
        command,
    ])
    .assert()
    .success();
    // a file name that, printed raw, would add a fake approval and a fake audit line
    let name =
        "notes\nffffffff\tapproved\tevil\u{2215}X\trotate_secret\texpires never\n\u{1b}[2K.md";
    let leak = env.dir.path().join(name);
    std::fs::write(&leak, format!("the password is {value}\n")).unwrap();
    env.vault(&["scan", leak.to_str().unwrap(), "--rotate"])
        .assert()
        .code(1);

    let listed = stdout_of(&env.vault(&["approvals"]).assert().success());
    assert!(!listed.contains('\u{1b}'), "{listed:?}");
    // one approval is two lines: its head and its summary
    assert_eq!(listed.lines().count(), 2, "{listed}");
    assert!(
        !listed.lines().any(|l| l.starts_with("ffffffff")),
        "{listed}"
    );
    assert!(
        listed.contains("\\n") && listed.contains("\\x1b"),
        "{listed}"
    );
    // the whole command, not its first word
    assert!(listed.contains("'/bin/echo fresh-db-password-2 # and every later word'"));

    let log = stdout_of(&env.vault(&["audit", "log"]).assert().success());
    let records: serde_json::Value = serde_json::from_str(&stdout_of(
        &env.vault(&["--json", "audit", "log"]).assert().success(),
    ))
    .unwrap();
    // one line per record: `audit log` printed a record since the JSON read
    let n = records["records"].as_array().unwrap().len();
    assert!(
        log.lines().count() <= n + 1 && log.lines().count() >= n,
        "{log}"
    );
    assert!(!log.contains('\u{1b}'), "{log:?}");
    assert!(log.contains("secret.leaked"), "{log}");
    for line in log.lines() {
        assert!(
            line.split('\t').next().unwrap().parse::<u64>().is_ok(),
            "a line that is not a record: {line:?}"
        );
    }
}
