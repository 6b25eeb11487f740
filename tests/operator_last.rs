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
