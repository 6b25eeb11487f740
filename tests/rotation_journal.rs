//! Issue 19, what was left of "Missing": the rotation journal at the CLI
//! (`vault rotation ls|show|rm`), `vault rollback AGENT/NAME --to N`, and a
//! versioned read's audit record naming its version.

use crate::common::*;

fn json_of(out: &assert_cmd::assert::Assert) -> serde_json::Value {
    serde_json::from_str(&stdout_of(out)).unwrap()
}

/// The audit records of `action`, oldest first.
fn records(env: &Env, action: &str) -> Vec<serde_json::Value> {
    let out = env
        .vault(&["audit", "log", "--json", "--action", action])
        .assert()
        .success();
    json_of(&out)["records"].as_array().unwrap().clone()
}

#[test]
fn rotation_ls_show_and_rm_read_the_journal_and_rm_refuses_a_rotation_still_running() {
    // issue 19, Missing: `vault rotation ls|show|rm`
    let env = Env::new();
    env.vault(&["agent", "add", "marketing"]).assert().success();
    let profile = env.dir.path().join("profile.env");
    env.vault(&[
        "issue",
        "marketing-key",
        "--write-env",
        profile.to_str().unwrap(),
    ])
    .assert()
    .success();
    env.vault(&["rotate", "marketing-key"]).assert().success();

    let out = env.vault(&["--json", "rotation", "ls"]).assert().success();
    assert!(
        !stdout_of(&out).contains("avk_"),
        "never a key: {}",
        stdout_of(&out)
    );
    let list = json_of(&out)["rotations"].as_array().unwrap().clone();
    assert_eq!(list.len(), 1, "{list:?}");
    assert_eq!(list[0]["state"], "done");
    assert_eq!(list[0]["reason"], "manual");
    assert_eq!(list[0]["key"], "marketing-key");
    assert_eq!(list[0]["agent"], "marketing");
    let done = list[0]["rotation_id"].as_i64().unwrap();
    let out = env
        .vault(&["rotation", "show", &done.to_string()])
        .assert()
        .success();
    assert!(
        stdout_of(&out).contains("\tdone\tmarketing/marketing-key\t"),
        "{}",
        stdout_of(&out)
    );

    // A second rotation dies after creating its successor; the file it must
    // write is then a directory, so every resume stalls: it stays running.
    let out = env
        .vault(&["rotate", "marketing-key"])
        .env("VAULT_FAILPOINT", "rotate:created")
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        None,
        "the rotation should have died (SIGABRT)"
    );
    std::fs::remove_file(&profile).unwrap();
    std::fs::create_dir(&profile).unwrap();
    let running = done + 1;
    let out = env
        .vault(&["rotation", "rm", &running.to_string()])
        .assert()
        .code(1);
    assert!(
        stderr_of(&out).contains("not finished"),
        "{}",
        stderr_of(&out)
    );
    let out = env
        .vault(&["--json", "rotation", "show", &running.to_string()])
        .assert()
        .success();
    let shown = json_of(&out);
    assert_eq!(shown["state"], "pending", "{shown}");
    assert!(
        shown["error"].as_str().is_some_and(|e| !e.is_empty()),
        "{shown}"
    );

    env.vault(&["rotation", "rm", &done.to_string()])
        .assert()
        .success();
    env.vault(&["rotation", "show", &done.to_string()])
        .assert()
        .code(4);
    let removed = records(&env, "rotation.remove");
    assert_eq!(removed.len(), 1, "{removed:?}");
    let out = env.vault(&["--json", "rotation", "ls"]).assert().success();
    let ids: Vec<i64> = json_of(&out)["rotations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["rotation_id"].as_i64().unwrap())
        .collect();
    assert_eq!(
        ids,
        [running],
        "the running rotation stays, the finished one is gone"
    );
}

#[test]
fn rollback_stores_a_kept_version_as_a_new_current_one_audited_and_written_to_targets() {
    // issue 19, Missing: `vault rollback AGENT/NAME --to N`
    let env = Env::new();
    env.vault(&["agent", "add", "hermes"]).assert().success();
    env.set("hermes/API_TOKEN", "first-value-5e2b9d");
    env.set("hermes/API_TOKEN", "second-value-8a1f3c");
    let file = env.dir.path().join("hermes.env");
    std::fs::write(&file, "LOG_LEVEL=info\nAPI_TOKEN=second-value-8a1f3c\n").unwrap();
    env.vault(&[
        "target",
        "add",
        "--agent",
        "hermes",
        "--env-file",
        file.to_str().unwrap(),
    ])
    .assert()
    .success();

    let out = env
        .vault(&["--json", "rollback", "hermes/API_TOKEN", "--to", "1"])
        .assert()
        .success();
    let v = json_of(&out);
    assert_eq!(
        (v["version"].as_i64(), v["from"].as_i64()),
        (Some(3), Some(1)),
        "{v}"
    );
    assert!(!stdout_of(&out).contains("value-"), "{}", stdout_of(&out));
    assert_eq!(env.get("hermes/API_TOKEN"), "first-value-5e2b9d");
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(text.contains("API_TOKEN=first-value-5e2b9d\n"), "{text}");
    assert!(text.contains("LOG_LEVEL=info\n"), "{text}");
    let out = env
        .vault(&["--json", "history", "hermes/API_TOKEN"])
        .assert()
        .success();
    assert_eq!(
        json_of(&out)["versions"].as_array().unwrap().len(),
        3,
        "history keeps all"
    );
    let audited = records(&env, "secret.rollback");
    assert_eq!(audited.len(), 1, "{audited:?}");
    assert_eq!(audited[0]["target"], "hermes/API_TOKEN v3 (from v1)");

    // version 1 is the current value now: nothing to roll back
    let out = env
        .vault(&["rollback", "hermes/API_TOKEN", "--to", "1"])
        .assert()
        .code(1);
    assert!(
        stderr_of(&out).contains("holds the current value"),
        "{}",
        stderr_of(&out)
    );
    let out = env
        .vault(&["rollback", "hermes/API_TOKEN", "--to", "9"])
        .assert()
        .code(4);
    let err = stderr_of(&out);
    assert!(
        err.contains("stored versions: 1, 2, 3") && !err.contains("value-"),
        "{err}"
    );
    assert_eq!(
        records(&env, "secret.rollback").len(),
        1,
        "a refusal stores nothing"
    );
}

#[test]
fn a_versioned_read_is_audited_with_the_version_it_read() {
    // issue 19, ops3's leftover: the record of `get --version N` names N
    let env = Env::new();
    env.vault(&["agent", "add", "hermes"]).assert().success();
    env.set("hermes/API_TOKEN", "first-value-5e2b9d");
    env.set("hermes/API_TOKEN", "second-value-8a1f3c");
    env.vault(&["get", "hermes/API_TOKEN", "--version", "1"])
        .assert()
        .success();
    env.vault(&["get", "hermes/API_TOKEN"]).assert().success();
    let targets: Vec<String> = records(&env, "secret.read")
        .iter()
        .map(|r| r["target"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(targets, ["hermes/API_TOKEN v1", "hermes/API_TOKEN"]);
}
