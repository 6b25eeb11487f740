//! Issue 17: the web console in a real browser. The real `vault server` on
//! 127.0.0.1:0 with seeded data (two agents, a leaked secret with a pending
//! rotation approval, a canary secret, a named key), `vault ui` for the
//! one-time URL, then Debian's Chromium driven by playwright-core
//! (tests/console/browser.mjs). Screenshots of every page go to
//! target/console-screenshots/. tests/console/setup.sh installs the browser
//! and the pinned npm package (.ci/run calls it); under CI=true their
//! absence fails this test.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::common::*;
use crate::upstream::{
    output_of, spawn, Setup, CHARGE, FINANCE_SECRET, OPENAI_KEY, STRIPE_KEY, UPSTREAM_HOST,
};

const CANARY: &str = "canary-console-7c2e91d4-never-shown";
const LEAKED: &str = "leaked-db-password-Qm72Lx0pWz";
const ROTATED: &str = "fresh-db-password-after-console";
const DENIED: &str = "leaked-api-token-Hx93Kd7QpLs2";

fn harness() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/console")
}

/// Whether this machine can run the browser test, after `tests/console/setup.sh`
/// installed what is missing; why not, if it still cannot.
fn browser_ready() -> Result<(), String> {
    browser_found().or_else(|_| {
        vault_testpg::run_setup("tests/console/setup.sh")?;
        browser_found()
    })
}

fn browser_found() -> Result<(), String> {
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    if !Path::new(&chromium).exists() {
        return Err(format!("{chromium} is missing; run tests/console/setup.sh"));
    }
    if std::process::Command::new("node")
        .arg("--version")
        .output()
        .is_err()
    {
        return Err("node is missing".into());
    }
    if !harness().join("node_modules/playwright-core").is_dir() {
        return Err("playwright-core is not installed; run tests/console/setup.sh".into());
    }
    Ok(())
}

fn json_of(out: &assert_cmd::assert::Assert) -> serde_json::Value {
    serde_json::from_str(&stdout_of(out)).unwrap()
}

/// Runs tests/console/SCRIPT under node with `vars` (bounded: 180 s), its
/// output in `log`; what it printed, as `Err` when a check failed.
fn run_browser(script: &str, log: &Path, vars: &[(&str, &str)]) -> Result<String, String> {
    let mut child = std::process::Command::new("node");
    child.arg(harness().join(script));
    for (k, v) in vars {
        child.env(k, v);
    }
    let mut child = child
        .stdout(std::fs::File::create(log).unwrap())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(180);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "the browser run did not finish in 180 s: {}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let out = std::fs::read_to_string(log).unwrap_or_default();
    println!("{out}");
    if status.success() {
        Ok(out)
    } else {
        Err(out)
    }
}

fn screenshots() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/console-screenshots")
}

#[test]
fn the_console_works_in_a_real_browser_and_never_shows_a_value() {
    sqlite_only!(SqliteOnly::File);
    // issue 17: "Proven in a real browser"
    if let Err(why) = browser_ready() {
        skip_or_fail_in_ci(&why);
        return;
    }
    let env = Env::new();
    for agent in ["hermes-marketing", "codex-ci"] {
        env.vault(&["agent", "add", agent]).assert().success();
    }
    env.set("codex-ci/CANARY", CANARY);
    env.set("hermes-marketing/DB_PASSWORD", LEAKED);
    set_rotation_script(
        &env,
        "hermes-marketing/DB_PASSWORD",
        &format!("cat >/dev/null; echo {ROTATED}\n"),
    );
    env.set("codex-ci/API_TOKEN", DENIED);
    // its own script (set_rotation_script reuses one path)
    let script = env.dir.path().join("rotate-api.sh");
    std::fs::write(
        &script,
        "#!/bin/sh\ncat >/dev/null; echo never-stored-denied\n",
    )
    .unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
    env.vault(&[
        "rotation",
        "set",
        "codex-ci/API_TOKEN",
        "--command",
        script.to_str().unwrap(),
    ])
    .assert()
    .success();
    let key = stdout_of(
        &env.vault(&["issue", "codex-ci-key", "--agent", "codex-ci"])
            .assert()
            .success(),
    )
    .trim()
    .to_owned();
    // brokered spend today, as the broker records it (issue 16's table; its
    // rows are not authorization state, so a test may write them directly)
    env.vault(&[
        "issue",
        "hermes-marketing-key",
        "--agent",
        "hermes-marketing",
    ])
    .assert()
    .success();
    let keys = json_of(&env.vault(&["--json", "keys", "ls"]).assert().success());
    let key_of = |agent: &str| {
        let keys = keys["keys"].as_array().unwrap();
        let key = keys.iter().find(|k| k["agent"] == agent).unwrap();
        key["key_id"].as_str().unwrap().to_owned()
    };
    // Priced by the shipped table: codex-ci $3.00 (gpt-4o) + $0.18 (gpt-4o-mini),
    // hermes-marketing $0.60 (claude-sonnet-4-5), which browser.mjs checks.
    let usage = [
        (
            "codex-ci",
            "api.openai.com:443",
            "openai",
            "gpt-4o",
            400_000,
            200_000,
        ),
        (
            "codex-ci",
            "api.openai.com:443",
            "openai",
            "gpt-4o-mini",
            400_000,
            200_000,
        ),
        (
            "hermes-marketing",
            "api.anthropic.com:443",
            "anthropic",
            "claude-sonnet-4-5",
            100_000,
            20_000,
        ),
    ];
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let db = rusqlite::Connection::open(env.db()).unwrap();
    for (agent, host, provider, model, input, output) in usage {
        db.execute(
            "INSERT INTO egress_usage (at, agent, key_id, host, method, path, rule, status, bytes_up,
                bytes_down, latency_ms, duration_ms, provider, model, input_tokens, output_tokens,
                cache_read_tokens, cache_write_tokens, estimated, cut)
             VALUES (?1, ?2, ?3, ?4, 'POST', '/v1/chat/completions', 0,
                200, 100, 200, 5, 9, ?5, ?6, ?7, ?8, 0, 0, 0, 0)",
            rusqlite::params![now_ms - 1000, agent, key_of(agent), host, provider, model, input, output],
        )
        .unwrap();
    }
    drop(db);
    // the leak: found by a scan, which opens the rotation approval
    let notes = env.dir.path().join("notes.md");
    std::fs::write(
        &notes,
        format!("the db password is {LEAKED}\nthe api token is {DENIED}\n"),
    )
    .unwrap();
    env.vault(&["scan", notes.to_str().unwrap(), "--rotate"])
        .assert()
        .code(1);
    let approvals = json_of(&env.vault(&["--json", "approvals"]).assert().success());
    let id_of = |subject: &str| {
        approvals["approvals"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["subject"] == subject)
            .unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let approval = id_of("DB_PASSWORD");
    let to_deny = id_of("API_TOKEN");

    let server = crate::server::start_with(&env, &["--listen", "127.0.0.1:0"]);
    // two tokens minted today through the server, as an agent does
    let mut tokens = Vec::new();
    for _ in 0..2 {
        let out = env
            .vault(&["token"])
            .env("VAULT_ADDR", &server.base)
            .env("VAULT_AGENT_KEY", &key)
            .assert()
            .success();
        tokens.push(stdout_of(&out).trim().to_owned());
    }
    let admin_file = env.dir.path().join("admin-token");
    let ui = env
        .vault(&[
            "ui",
            "--admin-token-file",
            admin_file.to_str().unwrap(),
            "--no-open",
        ])
        .env("VAULT_ADDR", &server.base)
        .assert()
        .success();
    let login_url = stdout_of(&ui).trim().to_owned();
    assert!(
        login_url.starts_with(&format!("{}/ui/login?code=", server.base)),
        "{login_url}"
    );

    let shots = screenshots();
    let forbidden = [
        CANARY,
        LEAKED,
        ROTATED,
        DENIED,
        key.as_str(),
        server.admin.as_str(),
        tokens[0].as_str(),
        tokens[1].as_str(),
    ]
    .join("\n");
    let out = run_browser(
        "browser.mjs",
        &env.dir.path().join("browser.log"),
        &[
            ("LOGIN_URL", login_url.as_str()),
            ("BASE", server.base.as_str()),
            ("APPROVAL", approval.as_str()),
            ("DENY", to_deny.as_str()),
            ("SECRET", "hermes-marketing/DB_PASSWORD"),
            ("AGENTS", "hermes-marketing,codex-ci"),
            ("FORBIDDEN", forbidden.as_str()),
            ("SHOTS", shots.to_str().unwrap()),
        ],
    );
    assert!(
        out.is_ok(),
        "browser checks failed:\n{}\nserver stderr: {}",
        out.unwrap_or_else(|e| e),
        std::fs::read_to_string(&server.stderr).unwrap_or_default()
    );
    for page in ["overview", "spend", "approvals", "leaks", "audit", "doctor"] {
        assert!(shots.join(format!("{page}.png")).is_file(), "{page}.png");
    }
    drop(server);

    // what the browser did is what `vault approve` does, recorded as the console
    assert_eq!(env.get("hermes-marketing/DB_PASSWORD"), ROTATED);
    let history = stdout_of(
        &env.vault(&["history", "hermes-marketing/DB_PASSWORD"])
            .assert()
            .success(),
    );
    assert_eq!(history.lines().count(), 2, "rotated once: {history}");
    // the denied one ran nothing
    assert_eq!(env.get("codex-ci/API_TOKEN"), DENIED);
    let log = json_of(&env.vault(&["--json", "audit", "log"]).assert().success());
    let records = log["records"].as_array().unwrap();
    let approved: Vec<_> = records
        .iter()
        .filter(|r| r["action"] == "approval.approve")
        .collect();
    assert_eq!(approved.len(), 1, "approved once");
    assert_eq!(approved[0]["origin"], "console");
    let denied: Vec<_> = records
        .iter()
        .filter(|r| r["action"] == "approval.deny")
        .collect();
    assert_eq!(denied.len(), 1);
    assert_eq!(denied[0]["origin"], "console");
    assert!(records
        .iter()
        .any(|r| r["action"] == "console.login" && r["origin"] == "console"));
}

// issue 17: `vault ui logout --all` ends every console session, through the server
#[test]
fn vault_ui_logout_all_signs_every_browser_out() {
    let env = Env::new();
    let server = crate::server::start_with(&env, &["--listen", "127.0.0.1:0"]);
    let admin_file = env.dir.path().join("admin-token");
    let url = stdout_of(
        &env.vault(&[
            "ui",
            "--admin-token-file",
            admin_file.to_str().unwrap(),
            "--no-open",
        ])
        .env("VAULT_ADDR", &server.base)
        .assert()
        .success(),
    )
    .trim()
    .to_owned();
    let agent = ureq::AgentBuilder::new().redirects(0).build();
    let signed_in = agent.get(&url).call().unwrap();
    let cookie = signed_in
        .header("set-cookie")
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let page = |c: &str| match agent
        .get(&format!("{}/ui/", server.base))
        .set("Cookie", c)
        .call()
    {
        Ok(r) => r.status(),
        Err(ureq::Error::Status(s, _)) => s,
        Err(e) => panic!("{e}"),
    };
    assert_eq!(page(&cookie), 200);
    let out = env
        .vault(&[
            "--json",
            "ui",
            "logout",
            "--all",
            "--admin-token-file",
            admin_file.to_str().unwrap(),
        ])
        .env("VAULT_ADDR", &server.base)
        .assert()
        .success();
    assert_eq!(json_of(&out)["ended"], 1);
    assert_eq!(page(&cookie), 401);
    // a wrong admin token gets nothing
    let bad = env.dir.path().join("bad-token");
    write_private(&bad, "vadm_wrong\n");
    env.vault(&[
        "ui",
        "--admin-token-file",
        bad.to_str().unwrap(),
        "--no-open",
    ])
    .env("VAULT_ADDR", &server.base)
    .assert()
    .code(3);
}

/// The pending held requests' approvals, once `n` are open (bounded wait).

// issue 17: "deny a held egress request" in a real browser. Two requests an
// agent makes through `vault run --broker` are held by an `approval = true`
// rule; the approvals page shows each (agent, method, host, path, the body's
// redacted preview, no secret); the one denied there is refused with approval_denied
// and never reaches the upstream, the one approved there reaches it once.
// The token-shaped value in the denied one's body is the broker's finding on
// the leaks page.
#[test]
fn a_held_egress_request_is_denied_or_approved_in_a_real_browser() {
    if let Err(why) = browser_ready() {
        skip_or_fail_in_ci(&why);
        return;
    }
    const REFUND: &str = "amount=990&currency=usd&description=refund+12";
    // a token-shaped value in the body: redacted in the preview (and in what
    // an approval would send), never shown
    const PASTED: &str = "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";
    let charge = format!("{CHARGE}&note={PASTED}");
    let s = Setup::start("egress_scan = \"redact\"");
    let to_deny = spawn(s.run_curl_cmd(&["-X", "POST", "--data", &charge], "/v1/charges"));
    let first = s.pending_holds(1).remove(0);
    let to_approve = spawn(s.run_curl_cmd(&["-X", "POST", "--data", REFUND], "/v1/charges"));
    let holds = s.pending_holds(2);
    let deny_id = first["id"].as_str().unwrap().to_owned();
    let approve_id = holds.iter().find(|a| a["id"] != deny_id.as_str()).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(s.upstream.count("POST /v1/charges "), 0, "held, not sent");

    let admin_file = s.env.dir.path().join("admin-token");
    let login_url = stdout_of(
        &s.env
            .vault(&[
                "ui",
                "--admin-token-file",
                admin_file.to_str().unwrap(),
                "--no-open",
            ])
            .env("VAULT_ADDR", &s.api)
            .assert()
            .success(),
    )
    .trim()
    .to_owned();
    let admin = std::fs::read_to_string(&admin_file).unwrap();
    let forbidden = [STRIPE_KEY, OPENAI_KEY, FINANCE_SECRET, PASTED, admin.trim()].join("\n");
    let host = format!("{UPSTREAM_HOST}:{}", s.upstream.port);
    let shown = [
        "POST",
        host.as_str(),
        "/v1/charges",
        "amount=4200",
        "invoice",
        "note=<redacted:github.pat-classic>",
    ]
    .join("\n");
    // issue 17 with issue 16: the broker's egress.exfiltration finding on the leaks page
    let leak = [
        "hermes",
        "credential (github.pat-classic)",
        &format!("outbound request to {host}"),
        "redacted before it left",
        "broker",
    ]
    .join("\n");
    let shots = screenshots();
    let out = run_browser(
        "held.mjs",
        &s.env.dir.path().join("held-browser.log"),
        &[
            ("LOGIN_URL", login_url.as_str()),
            ("BASE", s.api.as_str()),
            ("DENY", deny_id.as_str()),
            ("APPROVE", approve_id.as_str()),
            ("AGENT", "hermes"),
            ("SHOWN", shown.as_str()),
            ("LEAK", leak.as_str()),
            ("FORBIDDEN", forbidden.as_str()),
            ("SHOTS", shots.to_str().unwrap()),
        ],
    );
    let denied = output_of(to_deny);
    let approved = output_of(to_approve);
    assert!(
        out.is_ok(),
        "browser checks failed:\n{}",
        out.unwrap_or_else(|e| e)
    );
    assert!(shots.join("approvals-held.png").is_file());

    // the denied one: refused to the agent, nothing reached the upstream
    assert!(
        denied.contains("403") && denied.contains("\"approval_denied\""),
        "{denied}"
    );
    // the approved one went out, once, with its own body
    assert!(
        approved.contains("200 OK") && approved.contains("upstream-ok"),
        "{approved}"
    );
    let charges: Vec<_> = s
        .upstream
        .seen()
        .into_iter()
        .filter(|r| r.head.starts_with("POST /v1/charges "))
        .collect();
    assert_eq!(charges.len(), 1, "exactly the approved one was sent");
    assert_eq!(charges[0].body, REFUND.as_bytes());
    assert_eq!(s.approval(&deny_id)["state"], "denied");
    let log = stdout_of(&s.env.vault(&["--json", "audit", "log"]).assert().success());
    let log: serde_json::Value = serde_json::from_str(&log).unwrap();
    let by_console = |action: &str| {
        log["records"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["action"] == action && r["origin"] == "console")
            .count()
    };
    assert_eq!(by_console("approval.deny"), 1);
    assert_eq!(by_console("approval.approve"), 1);
    assert!(
        log["records"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["action"] == "egress.exfiltration" && r["outcome"] == "ok:redacted"),
        "{log}"
    );
}
