//! What the broker sees, it governs (issue 16): draft-only requests held for
//! a person, and exfiltration stopped in flight. The real `vault server
//! --broker`, real clients (curl, Python requests/httpx), and the counting TLS
//! upstream of tests/upstream.rs.

use std::time::{Duration, Instant};

use crate::common::{sqlite_only, stdout_of, wait_bounded, SqliteOnly};
use crate::upstream::*;

// issue 16, draft-only: a held POST waits, shows agent, method, host, path and
// body in its approval, goes out once when approved (approving again sends
// nothing more), while a request no held rule matches passes at once
#[test]
fn a_held_post_waits_for_approval_and_reaches_the_upstream_exactly_once() {
    let s = Setup::start("");
    let key = s.issue("hermes-key", "hermes");
    let held = spawn(s.curl_cmd(&key, &["-X", "POST", "--data", CHARGE], "/v1/charges"));
    let approval = s.pending_hold();
    let summary = approval["summary"].as_str().unwrap();
    assert_eq!(approval["agent"], "hermes");
    for want in [
        "POST",
        UPSTREAM_HOST,
        "/v1/charges",
        "amount=4200",
        "agent hermes",
    ] {
        assert!(summary.contains(want), "{want}: {summary}");
    }
    assert!(!summary.contains(STRIPE_KEY), "{summary}");
    // not sent while it waits; other requests are not held behind it
    let other = s.curl(&key, &[], "/v1/models");
    assert!(other.contains("upstream-ok"), "{other}");
    assert_eq!(s.upstream.count("POST /v1/charges "), 0);

    let id = approval["id"].as_str().unwrap();
    s.env.vault(&["approve", id]).assert().success();
    let text = output_of(held);
    assert!(
        text.contains("200 OK") && text.contains("upstream-ok"),
        "{text}"
    );
    let charges: Vec<Seen> = s
        .upstream
        .seen()
        .into_iter()
        .filter(|r| r.head.starts_with("POST /v1/charges "))
        .collect();
    assert_eq!(charges.len(), 1);
    assert_eq!(charges[0].body, CHARGE.as_bytes());
    assert!(
        charges[0].head.to_ascii_lowercase().contains(&format!(
            "authorization: bearer {}",
            STRIPE_KEY.to_ascii_lowercase()
        )),
        "{}",
        charges[0].head
    );
    // approving again is refused and sends nothing more
    s.env.vault(&["approve", id]).assert().failure();
    assert_sent_times(&s, id, "done", 1);
}

/// Proves, without waiting, that the held request `id` went to the upstream
/// exactly `times` times and never will again (issue 14: no sleep stands in
/// for "never sent"). Call it once the request's waiter has answered (the
/// agent got its reply, or the server holding it is gone) and a later
/// `vault approve` was refused. The broker sends a held request only from that
/// waiter, and only after claiming its approval from `approved`, which records
/// `egress.hold.send` in the same transaction. So an approval still in `state`
/// (an approve that had taken effect would have left it `approved` or `done`)
/// with `times` such records, and the upstream's own log, close every way out.
fn assert_sent_times(s: &Setup, id: &str, state: &str, times: usize) {
    let hold = s.approval(id);
    assert_eq!(hold["state"], state, "{hold}");
    let log: serde_json::Value = serde_json::from_str(&stdout_of(
        &s.env.vault(&["--json", "audit", "log"]).assert().success(),
    ))
    .unwrap();
    let sends = log["records"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| {
            r["action"] == "egress.hold.send" && r["target"].as_str().unwrap_or("").contains(id)
        })
        .count();
    assert_eq!(sends, times, "{log}");
    assert_eq!(s.upstream.count("POST /v1/charges "), times);
}

// issue 16, draft-only: a denied request never reaches the upstream, and the
// agent gets approval_denied
#[test]
fn a_denied_held_request_never_reaches_the_upstream() {
    let s = Setup::start("");
    let key = s.issue("hermes-key", "hermes");
    let held = spawn(s.curl_cmd(&key, &["-X", "POST", "--data", CHARGE], "/v1/charges"));
    let id = s.pending_hold()["id"].as_str().unwrap().to_owned();
    s.env.vault(&["deny", &id]).assert().success();
    let text = output_of(held);
    assert!(
        text.contains("403") && text.contains("\"approval_denied\""),
        "{text}"
    );
    assert!(text.contains("x-vault-broker: refused"), "{text}");
    assert_eq!(s.upstream.count("POST /v1/charges "), 0);
    // approving after the denial sends nothing either
    s.env.vault(&["approve", &id]).assert().failure();
    assert_sent_times(&s, &id, "denied", 0);
}

// issue 16, draft-only: nobody decides within approval_wait: approval_timeout,
// nothing sent, and a late approval sends nothing
#[test]
fn a_held_request_nobody_decides_times_out_and_is_never_sent() {
    let s = Setup::start("approval_wait = \"2s\"");
    let key = s.issue("hermes-key", "hermes");
    let started = Instant::now();
    let text = s.curl(&key, &["-X", "POST", "--data", CHARGE], "/v1/charges");
    let waited = started.elapsed();
    assert!(
        text.contains("403") && text.contains("\"approval_timeout\""),
        "{text}"
    );
    assert!(
        waited >= Duration::from_secs(2) && waited < Duration::from_secs(10),
        "{waited:?}"
    );
    let hold = s
        .approvals()
        .into_iter()
        .find(|a| a["kind"] == "egress_request")
        .unwrap();
    assert_eq!(hold["state"], "expired", "{hold}");
    s.env
        .vault(&["approve", hold["id"].as_str().unwrap()])
        .assert()
        .failure();
    assert_sent_times(&s, hold["id"].as_str().unwrap(), "expired", 0);
}

// issue 16, draft-only: a held request survives nothing: the server killed
// while holding it never sends it, and the next start closes its approval
// (audited), so approving it afterwards sends nothing
#[test]
fn a_request_held_when_the_server_dies_is_never_sent_later() {
    let mut s = Setup::start("");
    let key = s.issue("hermes-key", "hermes");
    let held = spawn(s.curl_cmd(&key, &["-X", "POST", "--data", CHARGE], "/v1/charges"));
    let id = s.pending_hold()["id"].as_str().unwrap().to_owned();
    // killed, not stopped: nothing of the server gets to clean up
    let mut server = s.server.take().unwrap();
    server.kill().unwrap();
    wait_bounded(&s.env, &mut server);
    let text = output_of(held);
    assert!(!text.contains("upstream-ok"), "{text}");
    s.start_server();
    let hold = s.approval(&id);
    assert_eq!(hold["state"], "expired", "{hold}");
    assert!(
        hold["result"].as_str().unwrap().contains("never sent"),
        "{hold}"
    );
    s.env.vault(&["approve", &id]).assert().failure();
    assert_sent_times(&s, &id, "expired", 0);
    let log = stdout_of(&s.env.vault(&["--json", "audit", "log"]).assert().success());
    assert!(
        log.contains("approval.expire") && log.contains("the server holding it stopped"),
        "{log}"
    );
}

// issue 16, draft-only: an `approved` state written into vault.db without the
// passphrase (no valid row tag) sends nothing
#[test]
fn an_approval_forged_in_the_database_sends_nothing() {
    sqlite_only!(SqliteOnly::Tamper);
    let s = Setup::start("");
    let key = s.issue("hermes-key", "hermes");
    let held = spawn(s.curl_cmd(&key, &["-X", "POST", "--data", CHARGE], "/v1/charges"));
    let id = s.pending_hold()["id"].as_str().unwrap().to_owned();
    let conn = rusqlite::Connection::open(s.env.db()).unwrap();
    conn.busy_timeout(Duration::from_secs(5)).unwrap();
    conn.execute(
        "UPDATE approvals SET state = 'approved' WHERE approval_id = ?1",
        [&id],
    )
    .unwrap();
    let text = output_of(held);
    assert!(text.contains("\"approval_denied\""), "{text}");
    assert!(text.contains("did not verify"), "{text}");
    assert_eq!(s.upstream.count("POST /v1/charges "), 0);
}

/// A python3 with requests, httpx and the official `openai` SDK (pinned): a
/// venv under the target dir, installed from PyPI once per run. None (after a
/// SKIP line) when it cannot be had; under CI=true that fails the test.
fn python_with_sdks() -> Option<std::path::PathBuf> {
    static PYTHON: std::sync::OnceLock<Option<std::path::PathBuf>> = std::sync::OnceLock::new();
    PYTHON
        .get_or_init(|| {
            python_venv(
                "governance-venv",
                "requests, httpx, openai",
                &["requests==2.*", "httpx==0.28.*", "openai==2.54.0"],
            )
        })
        .clone()
}

fn bodies_hold(s: &Setup, needle: &str) -> bool {
    s.upstream
        .seen()
        .iter()
        .any(|r| crate::common::contains(&r.body, needle.as_bytes()) || r.head.contains(needle))
}

const PROMPT_SCRIPT: &str = r#"
import os, sys, json, requests, httpx, openai
url, secret = sys.argv[1], sys.argv[2]
auth = {"Authorization": "Bearer " + os.environ["OPENAI_API_KEY"]}
leak = {"model": "m", "messages": [{"role": "user", "content": "the db password is " + secret + ", remember it"}]}
r = requests.post(url + "/chat/completions", json=leak, headers=auth, timeout=20)
print("requests", r.status_code, r.json().get("error", {}).get("code"))
h = httpx.post(url + "/chat/completions", json=leak, headers=auth, timeout=20)
print("httpx", h.status_code, h.json().get("error", {}).get("code"))
client = openai.OpenAI(base_url=url, api_key=os.environ["OPENAI_API_KEY"], max_retries=3)
try:
    c = client.chat.completions.create(model="m", messages=leak["messages"])
    print("openai", "sent", c.choices[0].message.content)
except openai.APIStatusError as e:
    print("openai", e.status_code, "exfiltration_blocked" in str(e.body) or "exfiltration_blocked" in str(e))
clean = client.chat.completions.create(model="m", messages=[{"role": "user", "content": "hello"}])
print("clean", clean.choices[0].message.content)
"#;

// issue 16, exfiltration: a prompt holding another agent's stored secret,
// sent by requests, httpx and the official openai SDK under `vault run
// --broker`, is refused before it leaves (the SDK does not retry it), the
// secret gets an approval, and a clean prompt still goes through
#[test]
fn a_prompt_holding_another_agents_secret_is_blocked_and_that_secret_gets_an_approval() {
    let Some(python) = python_with_sdks() else {
        return;
    };
    let s = Setup::start("");
    let url = s.url("/v1");
    let out = s
        .env
        .vault(&["run", "--broker", "--agent", "hermes", "--no-mask", "--"])
        .arg(&python)
        .args(["-c", PROMPT_SCRIPT, &url, FINANCE_SECRET])
        .env("VAULT_BROKER", &s.broker)
        .assert()
        .success();
    let text = stdout_of(&out);
    assert!(text.contains("requests 403 exfiltration_blocked"), "{text}");
    assert!(text.contains("httpx 403 exfiltration_blocked"), "{text}");
    assert!(text.contains("openai 403 True"), "{text}");
    assert!(text.contains("clean upstream-ok"), "{text}");
    assert!(!bodies_hold(&s, FINANCE_SECRET));
    // one request reached the upstream: the clean one (no SDK retry storm)
    assert_eq!(s.upstream.count("POST /v1/chat/completions "), 1);
    let approvals = s.approvals();
    assert!(
        approvals.iter().any(|a| a["kind"] == "rotate_secret"
            && a["agent"] == "finance"
            && a["subject"] == "DB_PASSWORD"
            && a["state"] == "pending"),
        "{approvals:?}"
    );
    let log = stdout_of(&s.env.vault(&["--json", "audit", "log"]).assert().success());
    assert!(
        log.contains("egress.exfiltration") && log.contains("secret.leaked"),
        "{log}"
    );
    assert!(!log.contains(FINANCE_SECRET));
}

// issue 16, exfiltration: a prompt holding the agent's own vault credential
// is refused and the credential stops working: the run's egress token (what
// `vault run --broker` gives the child) is revoked, and a named key of the
// agent pasted into a prompt is rotated, the old key refused on its next use
#[test]
fn a_prompt_holding_the_agents_own_key_is_blocked_and_the_key_rotates() {
    let Some(python) = python_with_sdks() else {
        return;
    };
    let s = Setup::start("");
    let key = stdout_of(
        &s.env
            .vault(&["issue", "hermes-leaky", "--agent", "hermes"])
            .assert()
            .success(),
    )
    .trim()
    .to_owned();
    assert!(key.starts_with("avk_"), "{key}");
    let key_file = s.env.dir.path().join("leaky.key");
    std::fs::write(&key_file, &key).unwrap();
    let script = r#"
import os, sys, requests
url, key_file = sys.argv[1], sys.argv[2]
proxy = os.environ["HTTPS_PROXY"]
token = proxy.split("agent:", 1)[1].split("@", 1)[0]
broker = proxy.rsplit("@", 1)[1]
key = open(key_file).read().strip()
auth = {"Authorization": "Bearer " + os.environ["OPENAI_API_KEY"]}
def post(text, proxies=None):
    return requests.post(url, json={"messages": [{"role": "user", "content": text}]},
                         headers=auth, timeout=20, proxies=proxies)
r = post("my vault key is " + key)
print("key", r.status_code, r.json()["error"]["code"])
try:
    post("hello", {"https": "http://agent:" + key + "@" + broker})
    print("leaked key still works")
except requests.exceptions.ProxyError as e:
    print("leaked key refused", "407" in str(e))
r = post("and my token is " + token)
print("token", r.status_code, r.json()["error"]["code"])
try:
    again = post("hello")
    print("second", again.status_code)
except requests.exceptions.ProxyError as e:
    print("second refused", "407" in str(e))
"#;
    let key_path = key_file.to_str().unwrap();
    let out = run_python_args(
        &s,
        &python,
        script,
        &[&s.url("/v1/chat/completions"), key_path],
    );
    assert!(out.contains("key 403 exfiltration_blocked"), "{out}");
    assert!(out.contains("leaked key refused True"), "{out}");
    assert!(out.contains("token 403 exfiltration_blocked"), "{out}");
    assert!(out.contains("second refused True"), "{out}");
    assert_eq!(s.upstream.count("POST /v1/chat/completions "), 0);
    let keys = stdout_of(&s.env.vault(&["--json", "keys", "ls"]).assert().success());
    let keys: serde_json::Value = serde_json::from_str(&keys).unwrap();
    let leaky: Vec<&serde_json::Value> = keys["keys"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|k| k["name"] == "hermes-leaky")
        .collect();
    // the leaked key was rotated: revoked, with an active successor of the same name
    assert!(leaky.iter().any(|k| k["status"] == "revoked"), "{keys}");
    assert!(leaky.iter().any(|k| k["status"] == "active"), "{keys}");
    let log = stdout_of(&s.env.vault(&["--json", "audit", "log"]).assert().success());
    for want in ["egress.exfiltration", "rotation.done", "token.revoke"] {
        assert!(log.contains(want), "{want}: {log}");
    }
    assert!(!log.contains(&key));
}

fn run_python_args(s: &Setup, python: &std::path::Path, script: &str, args: &[&str]) -> String {
    let out = s
        .env
        .vault(&["run", "--broker", "--agent", "hermes", "--no-mask", "--"])
        .arg(python)
        .args(["-c", script])
        .args(args)
        .env("VAULT_BROKER", &s.broker)
        .assert()
        .success();
    stdout_of(&out)
}

// issue 16, exfiltration: egress_scan = "redact" delivers the prompt with
// the value replaced (a body the upstream parses, its length fixed) and
// still hands the leak to the vault
#[test]
fn redact_mode_delivers_the_prompt_with_the_value_replaced() {
    let Some(python) = python_with_sdks() else {
        return;
    };
    let s = Setup::start("egress_scan = \"redact\"");
    let script = r#"
import os, sys, requests
url, secret = sys.argv[1], sys.argv[2]
auth = {"Authorization": "Bearer " + os.environ["OPENAI_API_KEY"]}
r = requests.post(url + "?note=" + secret, json={"messages": [{"role": "user", "content": "password " + secret + " ok"}]}, headers=auth, timeout=20)
print("sent", r.status_code)
"#;
    let out = run_python_args(
        &s,
        &python,
        script,
        &[&s.url("/v1/chat/completions"), FINANCE_SECRET],
    );
    assert!(out.contains("sent 200"), "{out}");
    let seen = s.upstream.seen();
    let r = seen
        .iter()
        .find(|r| r.head.starts_with("POST /v1/chat/completions"))
        .unwrap();
    assert!(!bodies_hold(&s, FINANCE_SECRET));
    let body: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(
        body["messages"][0]["content"],
        "password <redacted:vault.stored-secret> ok"
    );
    assert!(
        r.head
            .starts_with("POST /v1/chat/completions?note=%3Credacted:vault.stored-secret%3E "),
        "{}",
        r.head
    );
    assert!(s
        .approvals()
        .iter()
        .any(|a| a["kind"] == "rotate_secret" && a["agent"] == "finance"));
}

// issue 16, bad input: a body past the scanned bound streams and is cut
// before a value in it leaves; a clean one of that size passes whole; a held
// request that large is refused; a compressed body is refused; a value in the
// query or a header is found too
#[test]
fn huge_compressed_and_odd_requests_are_scanned_or_refused() {
    let s = Setup::start("");
    let key = s.issue("hermes-key", "hermes");
    let dir = s.env.dir.path();
    let line = "x".repeat(99) + "\n";
    let filler = line.repeat(25_000); // 2.5 MB
    let clean = dir.join("clean.txt");
    std::fs::write(&clean, &filler).unwrap();
    let dirty = dir.join("dirty.txt");
    std::fs::write(
        &dirty,
        format!("{filler}the password is {FINANCE_SECRET}\n{filler}"),
    )
    .unwrap();
    let data = |p: &std::path::Path| format!("@{}", p.display());

    let ok = s.curl(&key, &["--data-binary", &data(&clean)], "/v1/upload");
    assert!(ok.contains("upstream-ok"), "{ok}");
    let uploads = s
        .upstream
        .seen()
        .into_iter()
        .filter(|r| r.head.starts_with("POST /v1/upload "))
        .collect::<Vec<_>>();
    assert_eq!(uploads.len(), 1);
    assert_eq!(uploads[0].body.len(), filler.len());

    let cut = s.curl(&key, &["--data-binary", &data(&dirty)], "/v1/upload");
    assert!(cut.contains("exfiltration_blocked"), "{cut}");
    assert!(!bodies_hold(&s, FINANCE_SECRET));
    assert!(s
        .upstream
        .seen()
        .iter()
        .all(|r| r.body.len() <= filler.len()));

    let held = s.curl(
        &key,
        &["-X", "POST", "--data-binary", &data(&clean)],
        "/v1/charges",
    );
    assert!(
        held.contains("413") && held.contains("approval_body_too_large"),
        "{held}"
    );

    let gz = s.curl(
        &key,
        &[
            "-H",
            "Content-Encoding: gzip",
            "--data-binary",
            "gzipped-bytes",
        ],
        "/v1/upload",
    );
    assert!(
        gz.contains("415") && gz.contains("egress_body_encoded"),
        "{gz}"
    );

    let before = s.upstream.seen().len();
    let query = s.curl(&key, &[], &format!("/v1/models?token={FINANCE_SECRET}"));
    assert!(query.contains("exfiltration_blocked"), "{query}");
    let header = s.curl(
        &key,
        &["-H", &format!("X-Note: {FINANCE_SECRET}")],
        "/v1/models",
    );
    assert!(header.contains("exfiltration_blocked"), "{header}");
    // the placeholder where the credential goes is no finding
    let fine = s.curl(
        &key,
        &["-H", "Authorization: Bearer vault-brokered"],
        "/v1/models",
    );
    assert!(fine.contains("upstream-ok"), "{fine}");
    assert_eq!(s.upstream.seen().len(), before + 1);
}

// issue 16, draft-only: an agent that stops waiting (its connection closed)
// leaves no approval that a later `vault approve` would send
#[test]
fn a_held_request_whose_agent_hangs_up_is_closed_and_never_sent() {
    let s = Setup::start("");
    let key = s.issue("hermes-key", "hermes");
    let mut held = spawn(s.curl_cmd(&key, &["-X", "POST", "--data", CHARGE], "/v1/charges"));
    let id = s.pending_hold()["id"].as_str().unwrap().to_owned();
    held.kill().unwrap();
    held.wait().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut hold = s.approval(&id);
    while hold["state"] == "pending" && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
        hold = s.approval(&id);
    }
    assert_eq!(hold["state"], "expired", "{hold}");
    assert!(
        hold["result"].as_str().unwrap().contains("stopped waiting"),
        "{hold}"
    );
    s.env.vault(&["approve", &id]).assert().failure();
    assert_sent_times(&s, &id, "expired", 0);
}

// issue 16 remainder: an agent may have MAX_HELD_PER_AGENT (16) requests held
// at once; the next is refused with approval_queue_full at once, opens no
// approval and reaches nobody, and a place frees when one is decided
#[test]
fn held_requests_past_the_per_agent_cap_are_refused_at_once() {
    let s = Setup::start("");
    let key = s.issue("hermes-key", "hermes");
    let held: Vec<_> = (0..16)
        .map(|_| spawn(s.curl_cmd(&key, &["-X", "POST", "--data", CHARGE], "/v1/charges")))
        .collect();
    let pending = s.pending_holds(16);
    let started = Instant::now();
    let over = s.curl(&key, &["-X", "POST", "--data", CHARGE], "/v1/charges");
    assert!(
        over.contains("403") && over.contains("\"approval_queue_full\""),
        "{over}"
    );
    assert!(over.contains("vault approvals"), "{over}");
    assert!(started.elapsed() < Duration::from_secs(10), "not held");
    assert_eq!(
        s.pending_holds(16).len(),
        16,
        "the refused one opened no approval"
    );
    // a decision frees a place: the next one is held again
    let id = pending[0]["id"].as_str().unwrap().to_owned();
    s.env.vault(&["deny", &id]).assert().success();
    // held again (curl gives up waiting after 3 s), not refused
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let text = s.curl(
            &key,
            &["--max-time", "3", "-X", "POST", "--data", CHARGE],
            "/v1/charges",
        );
        if !text.contains("approval_queue_full") {
            assert!(!text.contains("x-vault-broker: refused"), "{text}");
            break;
        }
        assert!(Instant::now() < deadline, "no place freed: {text}");
        std::thread::sleep(Duration::from_millis(100));
    }
    for mut child in held {
        let _ = child.kill();
        let _ = child.wait();
    }
    assert_eq!(s.upstream.count("POST /v1/charges "), 0);
}
