//! Issue 14: the CLI and the server are two front ends on one behaviour. The
//! same leak notifies the same event whichever found it, a suspension by
//! server traffic notifies, and an entity listed both ways is the same JSON.

use crate::common::*;
use crate::server::{setup, start_with};

/// Events written by the notify command, one JSON object a line.
fn events(sink: &std::path::Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(sink)
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Sends events to `sink`, one a line.
fn notify_into(env: &Env, sink: &std::path::Path) {
    let cmd = format!("cat >> {0}; echo >> {0}", sink.display());
    env.vault(&["notify", "set", "--command", &cmd])
        .assert()
        .success();
}

/// An event's kind and field names, without the values that differ by run.
fn shape(e: &serde_json::Value) -> (String, Vec<String>) {
    let mut keys: Vec<String> = e.as_object().unwrap().keys().cloned().collect();
    keys.sort();
    (e["event"].as_str().unwrap().to_owned(), keys)
}

fn post(url: &str, bearer: &str, body: &str) -> (u16, serde_json::Value) {
    let r = ureq::post(url)
        .set("Authorization", &format!("Bearer {bearer}"))
        .set("Content-Type", "application/json")
        .send_string(body);
    let r = match r {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("{e}"),
    };
    let status = r.status();
    (
        status,
        serde_json::from_str(&r.into_string().unwrap()).unwrap(),
    )
}

#[test]
fn a_leak_found_through_the_server_notifies_the_same_events_as_vault_scan_rotate() {
    // issue 14, item 2
    let (env, mkey, fkey) = setup();
    let sink = env.dir.path().join("events.jsonl");
    notify_into(&env, &sink);

    // the CLI path: a transcript holds the marketing key
    let leak = env.dir.path().join("transcript.txt");
    std::fs::write(&leak, format!("the agent said: {mkey}\n")).unwrap();
    env.vault(&["scan", leak.to_str().unwrap(), "--rotate"])
        .assert()
        .code(1);
    let from_cli = events(&sink);
    std::fs::remove_file(&sink).unwrap();

    // the server path: a message holds the finance key
    let s = start_with(&env, &["--listen", "127.0.0.1:0"]);
    let (status, minted) = post(&format!("{}/v1/auth/token", s.base), &fkey, "{}");
    assert_eq!(status, 200, "{minted}");
    let token = minted["token"].as_str().unwrap();
    let body = serde_json::json!({"text": format!("about to log: {fkey}"), "rotate": true});
    let (status, v) = post(&format!("{}/v1/scan", s.base), token, &body.to_string());
    assert_eq!(status, 200, "{v}");
    let from_server = events(&sink);

    let kinds = |es: &[serde_json::Value]| es.iter().map(shape).collect::<Vec<_>>();
    assert_eq!(kinds(&from_cli), kinds(&from_server));
    assert_eq!(
        from_cli
            .iter()
            .map(|e| e["event"].clone())
            .collect::<Vec<_>>(),
        ["rotation", "leak"]
    );
    for (e, key) in [
        (&from_cli[0], "hermes-marketing-key"),
        (&from_server[0], "hermes-finance-key"),
    ] {
        assert_eq!(e["key"], key);
        assert_eq!(e["state"], "done");
    }
    assert!(from_server[1]["action"]
        .as_str()
        .unwrap()
        .starts_with("rotated key hermes-finance-key"));
    let all = std::fs::read_to_string(env.dir.path().join("server.stderr")).unwrap_or_default()
        + &serde_json::to_string(&from_server).unwrap()
        + &serde_json::to_string(&from_cli).unwrap();
    assert!(!all.contains(&mkey) && !all.contains(&fkey));
}

#[test]
fn a_key_suspended_by_server_traffic_notifies() {
    // issue 14, item 2
    let (env, mkey, _) = setup();
    let policy = env.dir.path().join("tight.toml");
    std::fs::write(
        &policy,
        "reads_per_minute = 5\ntokens_per_minute = 100\nsuspend_on_anomaly = true\n",
    )
    .unwrap();
    env.vault(&[
        "agent",
        "set-policy",
        "hermes-marketing",
        "--policy",
        policy.to_str().unwrap(),
    ])
    .assert()
    .success();
    let sink = env.dir.path().join("events.jsonl");
    notify_into(&env, &sink);
    let s = start_with(&env, &["--listen", "127.0.0.1:0"]);
    let (_, minted) = post(&format!("{}/v1/auth/token", s.base), &mkey, "{}");
    let token = minted["token"].as_str().unwrap().to_owned();
    for _ in 0..12 {
        let _ = ureq::get(&format!("{}/v1/secrets/GITHUB_TOKEN", s.base))
            .set("Authorization", &format!("Bearer {token}"))
            .call();
    }
    // the server's refresher notices within a tick
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    let suspended = loop {
        if let Some(e) = events(&sink)
            .into_iter()
            .find(|e| e["event"] == "key_suspended")
        {
            break e;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no key_suspended event: {:?}",
            events(&sink)
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    assert_eq!(suspended["agent"], "hermes-marketing");
    assert!(suspended["key_id"].as_str().is_some_and(|k| !k.is_empty()));
    assert!(suspended["approval_id"].as_str().is_some());
}

#[test]
fn agents_keys_and_approvals_listed_by_the_cli_and_over_http_are_the_same_json() {
    // issue 14, item 3 (done-when: agents, keys and approvals, one shape each)
    let (env, _, _) = setup();
    // an approval to list: a leaked secret whose rotation waits for a person
    set_rotation_script(
        &env,
        "hermes-marketing/GITHUB_TOKEN",
        "echo rotated-value\n",
    );
    let leak = env.dir.path().join("transcript.txt");
    std::fs::write(
        &leak,
        format!("the agent said: {}\n", crate::server::CANARY),
    )
    .unwrap();
    env.vault(&["scan", leak.to_str().unwrap(), "--rotate"])
        .assert()
        .code(1);
    let cli = |args: &[&str]| -> serde_json::Value {
        serde_json::from_str(&stdout_of(&env.vault(args).assert().success())).unwrap()
    };
    let agents = cli(&["agent", "ls", "--json"]);
    let keys = cli(&["keys", "ls", "--json"]);
    let approvals = cli(&["approvals", "--json"]);
    assert_eq!(
        approvals["approvals"].as_array().map(Vec::len),
        Some(1),
        "{approvals}"
    );
    assert_eq!(keys["keys"].as_array().map(Vec::len), Some(2), "{keys}");

    let s = start_with(&env, &["--listen", "127.0.0.1:0"]);
    let http = |path: &str| -> serde_json::Value {
        ureq::get(&format!("{}{path}", s.base))
            .set("Authorization", &format!("Bearer {}", s.admin))
            .call()
            .unwrap()
            .into_json()
            .unwrap()
    };
    assert_eq!(agents, http("/v1/admin/agents"));
    // a key's last use may move when the server starts; the shape and the rest may not
    let mut http_keys = http("/v1/admin/keys");
    let mut cli_keys = keys.clone();
    for list in [&mut http_keys, &mut cli_keys] {
        for k in list["keys"].as_array_mut().unwrap() {
            k.as_object_mut().unwrap().remove("last_used_at");
        }
    }
    assert_eq!(cli_keys, http_keys);
    assert_eq!(approvals, http("/v1/admin/approvals"));
    for (list, field) in [
        (&agents["agents"], "created_at"),
        (&keys["keys"], "expires_at"),
        (&approvals["approvals"], "created_at"),
    ] {
        let at = list[0][field].as_str().unwrap();
        assert!(humantime::parse_rfc3339(at).is_ok(), "not RFC 3339: {at}");
    }
}

#[test]
fn a_rotation_the_cli_resumes_notifies_as_the_server_does() {
    // issue 14, item 1: the server notified the rotations it resumed, the CLI did not
    let env = Env::new();
    env.vault(&["agent", "add", "hermes"]).assert().success();
    let file = env.dir.path().join("profile.env");
    env.vault(&["issue", "hermes-key", "--write-env", file.to_str().unwrap()])
        .assert()
        .success();
    let sink = env.dir.path().join("events.jsonl");
    notify_into(&env, &sink);
    let out = env
        .vault(&["rotate", "hermes-key"])
        .env("VAULT_FAILPOINT", "rotate:written")
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        None,
        "the rotation should have died (SIGABRT)"
    );
    assert!(events(&sink).is_empty(), "{:?}", events(&sink));

    env.vault(&["ls"]).assert().success();

    let sent = events(&sink);
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(sent[0]["event"], "rotation");
    assert_eq!(sent[0]["key"], "hermes-key");
    assert_eq!(sent[0]["state"], "done");
}

#[test]
fn an_embedded_server_sees_a_revocation_made_by_another_vault_process_within_a_second() {
    // issue 14, done-when 4: the library's refresher, against a real `vault keys revoke`
    let (env, mkey, _) = setup();
    let vault = vault_core::Vault::unlock_at(
        &env.location(),
        &vault_core::SecretString::new(PASSPHRASE.into()),
    )
    .unwrap();
    let serving = vault_server::Server::builder()
        .listen(vault_server::Listen::parse("127.0.0.1:0").unwrap())
        .admin_token_file(env.dir.path().join("embedded-admin-token"))
        .build()
        .unwrap()
        .bind(vault)
        .unwrap()
        .spawn()
        .unwrap();
    let base = serving.address().to_owned();
    let (status, minted) = post(&format!("{base}/v1/auth/token"), &mkey, "{}");
    assert_eq!(status, 200, "{minted}");
    let token = minted["token"].as_str().unwrap().to_owned();
    let read = || match ureq::get(&format!("{base}/v1/secrets/GITHUB_TOKEN"))
        .set("Authorization", &format!("Bearer {token}"))
        .call()
    {
        Ok(r) => r.status(),
        Err(ureq::Error::Status(code, _)) => code,
        Err(e) => panic!("{e}"),
    };
    assert_eq!(read(), 200);

    env.vault(&["keys", "revoke", "hermes-marketing-key"])
        .assert()
        .success();
    let revoked_at = std::time::Instant::now();
    let seen = loop {
        if read() == 401 {
            break revoked_at.elapsed();
        }
        assert!(
            revoked_at.elapsed() < std::time::Duration::from_secs(3),
            "the revocation was never seen"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    assert!(
        seen <= std::time::Duration::from_secs(1),
        "seen after {seen:?}"
    );
    serving.stop().unwrap();
}
