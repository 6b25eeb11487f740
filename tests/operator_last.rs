//! Issue 19, the last of the operator's day: scanner advice that fits the
//! finding, a failed rotation command's stderr, capped TTLs, secrets outside
//! their agent's policy, `scrub DIR`, one finding per value, short-value
//! redaction, `env --help`'s JSON shape, and the codes of wrapped errors.

use crate::common::*;

fn json_error(out: &assert_cmd::assert::Assert) -> (i32, String) {
    let v: serde_json::Value = serde_json::from_str(&stdout_of(out)).unwrap();
    (
        out.get_output().status.code().unwrap(),
        v["error"]["code"].as_str().unwrap().to_owned(),
    )
}

#[test]
fn a_wrapped_guard_or_run_error_keeps_the_code_of_its_cause() {
    // issue 19, finding 9: a Context around a cause came out as `error`, whatever the cause
    let env = Env::new();
    env.vault(&["agent", "add", "hermes"]).assert().success();
    // dotenv cannot carry this value: vault-run wraps the vault's `invalid_input` in a context
    env.set("hermes/TRICKY", "it's ${HOME}");
    let out = env
        .vault(&["env", "--agent", "hermes", "--format", "dotenv", "--json"])
        .assert()
        .failure();
    assert_eq!(json_error(&out), (2, "invalid_input".to_owned()));
    // vault-guard wraps an I/O error in "finding PATH"
    let hermes = env.dir.path().join("hermes-home");
    std::fs::create_dir_all(&hermes).unwrap();
    let missing = env.dir.path().join("no-such-vault-binary");
    let out = env
        .vault(&[
            "integrate",
            "hermes",
            "--vault-bin",
            missing.to_str().unwrap(),
            "--json",
        ])
        .env("HERMES_HOME", &hermes)
        .assert()
        .failure();
    assert_eq!(json_error(&out), (2, "io".to_owned()));
}

/// The JSON shape `vault env --help` gives for `--format json`: the text
/// after `json:` on its line, parsed.
fn env_help_json_shape(help: &str) -> serde_json::Value {
    let line = help
        .lines()
        .find_map(|l| l.trim().strip_prefix("- json:"))
        .unwrap_or_else(|| panic!("no `- json:` line in the help: {help}"));
    serde_json::from_str(line.trim().trim_end_matches('.')).unwrap()
}

/// Whether `got` has the shape of `claimed`: the same keys at each level, a
/// string wherever the claim has one.
fn same_shape(claimed: &serde_json::Value, got: &serde_json::Value) -> bool {
    use serde_json::Value::{Object, String};
    match (claimed, got) {
        (Object(c), Object(g)) => {
            c.len() == g.len()
                && c.iter()
                    .zip(g.iter())
                    .all(|((ck, cv), (gk, gv))| ck == gk && same_shape(cv, gv))
        }
        (String(_), String(_)) => true,
        _ => false,
    }
}

#[test]
fn env_help_gives_the_json_shape_env_json_prints() {
    // issue 19, finding 8: the help said {"NAME": "value"}, the output is {"env": {...}},
    // and `--json` alone printed dotenv
    let env = Env::new();
    env.vault(&["agent", "add", "hermes"]).assert().success();
    env.set("hermes/NAME", "a-value-long-enough-1f2e");
    // clap prints an env variable's value in help; keep the snapshot stable
    let help = stdout_of(
        &env.vault(&["env", "--help"])
            .env_remove("VAULT_PASSPHRASE_FILE")
            .assert()
            .success(),
    );
    insta::assert_snapshot!("env_help", help);
    let claimed = env_help_json_shape(&help);
    for args in [
        &["env", "--agent", "hermes", "--json"][..],
        &["env", "--agent", "hermes", "--format", "json"][..],
    ] {
        let out = stdout_of(&env.vault(args).assert().success());
        let got: serde_json::Value = serde_json::from_str(&out)
            .unwrap_or_else(|e| panic!("{args:?} printed no JSON ({e}): {out}"));
        assert!(
            same_shape(&claimed, &got),
            "{args:?}: help says {claimed}, got {got}"
        );
    }
    // an explicit --format still wins over --json
    let out = stdout_of(
        &env.vault(&["env", "--agent", "hermes", "--format", "dotenv", "--json"])
            .assert()
            .success(),
    );
    assert_eq!(out, "NAME=a-value-long-enough-1f2e\n");
}

#[test]
fn import_reads_back_what_env_format_json_writes() {
    // issue 19, finding 8: `vault env --format json` writes {"env": {...}}; import refused it
    let env = Env::new();
    for agent in ["hermes", "copy"] {
        env.vault(&["agent", "add", agent]).assert().success();
    }
    env.set("hermes/GITHUB_TOKEN", "ghp-like-value-7a7a7a7a");
    let file = env.dir.path().join("hermes.json");
    env.vault(&[
        "env",
        "--agent",
        "hermes",
        "--format",
        "json",
        "--write",
        file.to_str().unwrap(),
    ])
    .assert()
    .success();
    env.vault(&[
        "import",
        "--agent",
        "copy",
        "--format",
        "json",
        file.to_str().unwrap(),
    ])
    .assert()
    .success();
    assert_eq!(env.get("copy/GITHUB_TOKEN"), "ghp-like-value-7a7a7a7a");
}
