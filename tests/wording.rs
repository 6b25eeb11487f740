//! Issue 19, "Misleading": the errors people read say what happened and
//! what to do, in the shape asked for, with the code shells expect.

use crate::common::*;

#[test]
fn vault_run_of_a_missing_command_exits_127_and_of_a_non_executable_one_126() {
    // issue 19, Misleading: `vault run -- nosuchcmd` exits 127 as shells and `op run` do
    let env = Env::new();
    env.vault(&["agent", "add", "hermes"]).assert().success();
    let out = env
        .vault(&["run", "--agent", "hermes", "--", "nosuchcmd-vault-test"])
        .assert()
        .code(127);
    insta::assert_snapshot!("run_missing_command", stderr_of(&out));
    let script = env.dir.path().join("not-executable.sh");
    std::fs::write(&script, "#!/bin/sh\necho hi\n").unwrap();
    env.vault(&["run", "--agent", "hermes", "--", script.to_str().unwrap()])
        .assert()
        .code(126);
}

#[test]
fn an_empty_vault_variable_is_treated_as_unset() {
    // issue 19, Misleading: `VAULT_X=` is unset, for every VAULT_* variable
    let env = Env::new();
    let unset = env.vault(&["token"]).output().unwrap();
    for var in [
        "VAULT_AGENT_KEY",
        "VAULT_ADDR",
        "VAULT_CACERT",
        "VAULT_BROKER",
    ] {
        let empty = env.vault(&["token"]).env(var, "").output().unwrap();
        assert_eq!(empty.status.code(), unset.status.code(), "{var}");
        assert_eq!(
            String::from_utf8_lossy(&empty.stderr),
            String::from_utf8_lossy(&unset.stderr),
            "{var}= must read as unset"
        );
    }
    // and a command that needs no key works with all of them empty
    env.vault(&["ls"])
        .env("VAULT_AGENT_KEY", "")
        .env("VAULT_ADDR", "")
        .env("VAULT_CACERT", "")
        .assert()
        .success();
}

#[test]
fn usage_errors_are_json_when_json_is_asked_for() {
    // issue 19, Misleading: usage errors honour --json
    let env = Env::new();
    for args in [
        &["--json", "get"][..],
        &["get", "--json"],
        &["--json", "nosuchcommand"],
    ] {
        let out = env.vault(args).assert().code(2);
        let body: serde_json::Value = serde_json::from_str(&stdout_of(&out))
            .unwrap_or_else(|e| panic!("{args:?}: not JSON ({e}): {}", stdout_of(&out)));
        assert_eq!(body["error"]["code"], "usage", "{body}");
        assert!(stderr_of(&out).is_empty(), "{}", stderr_of(&out));
    }
    let out = env.vault(&["--json", "get"]).assert().code(2);
    insta::assert_snapshot!("usage_error_json", stdout_of(&out));
    // a `--json` after `--` belongs to the child, not to vault
    let out = env.vault(&["run", "--agent"]).assert().code(2);
    assert!(stdout_of(&out).is_empty());
}

#[test]
fn a_value_quoted_in_part_of_its_argument_is_never_echoed() {
    // issue 19, Misleading: `vault set AGENT/NAME=value` quoted only "NAME=value" back
    let env = Env::new();
    env.vault(&["agent", "add", "hermes"]).assert().success();
    let value = "abc123-us6";
    let arg = format!("hermes/MAILCHIMP_API_KEY={value}");
    let out = env.vault(&["set", &arg]).write_stdin("").assert().code(2);
    let err = stderr_of(&out);
    assert!(!err.contains(value), "{err}");
    assert!(err.contains("shell history"), "{err}");
    let out = env.vault(&["--json", "get", &arg]).assert().code(2);
    assert!(!stdout_of(&out).contains(value), "{}", stdout_of(&out));
}

#[test]
fn listen_localhost_is_accepted_as_loopback() {
    // issue 19, Misleading: `--listen localhost:8200` was refused
    let env = Env::new();
    let server = crate::server::start_with(&env, &["--listen", "localhost:0"]);
    assert!(
        server.base.starts_with("http://127.0.0.1:") && !server.base.ends_with(":0"),
        "{}",
        server.base
    );
}

#[test]
fn a_missing_key_names_the_flag_that_gives_it() {
    // issue 19, Misleading: "the file option" should name `--key-file`
    let env = Env::new();
    let out = env.vault(&["token"]).assert().code(2);
    insta::assert_snapshot!("no_named_key", stderr_of(&out));
    let out = env.vault(&["token", "--from-token"]).assert().code(2);
    assert!(
        stderr_of(&out).contains("--token-file FILE"),
        "{}",
        stderr_of(&out)
    );
}
