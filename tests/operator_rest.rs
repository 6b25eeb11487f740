//! Issue 19, the rest of an operator's day: the shadowed-variable warning for
//! registered env files, the "Misleading" items, and the passphrase tried once
//! when stdin is not a terminal.

use crate::common::*;

#[test]
fn run_warns_when_a_registered_env_file_shadows_an_injected_variable_with_another_value() {
    // issue 19, Missing: the shadowing warning for the agent's registered env files
    let env = Env::new();
    env.vault(&["agent", "add", "hermes"]).assert().success();
    env.set("hermes/GITHUB_TOKEN", "current-value-7c1d2e");
    let stale = env.dir.path().join("stale.env");
    let synced = env.dir.path().join("synced.env");
    std::fs::write(&stale, "GITHUB_TOKEN=old-value-44aa10\n").unwrap();
    std::fs::write(&synced, "GITHUB_TOKEN=current-value-7c1d2e\n").unwrap();
    for f in [&stale, &synced] {
        env.vault(&[
            "target",
            "add",
            "--agent",
            "hermes",
            "--env-file",
            f.to_str().unwrap(),
        ])
        .assert()
        .success();
    }
    let out = env
        .vault(&["run", "--agent", "hermes", "--", "true"])
        .assert()
        .success();
    let err = stderr_of(&out);
    assert!(
        err.contains(&format!("{} defines GITHUB_TOKEN", stale.display())),
        "{err}"
    );
    assert!(
        !err.contains("synced.env"),
        "a file holding the injected value shadows nothing: {err}"
    );
    assert!(!err.contains("value-"), "never a value: {err}");
}
