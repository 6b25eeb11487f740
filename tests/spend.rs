//! Spend per agent and key, and budgets (issue 16), end to end: the real
//! `openai` and `anthropic` Python SDKs started by `vault run --broker`, the
//! real `vault server --broker`, and a model API on loopback (a handler on
//! tests/upstream.rs's TLS rig answering in OpenAI's and Anthropic's shapes,
//! plain and streamed, with usage).

use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use crate::common::{stdout_of, terminate, wait_bounded, Env};
use crate::upstream::{
    python_with_http_clients, start_broker_server, wait_for_file, Conn, Flow, Req, Upstream,
};

/// Loopback, but not the 127.0.0.1 that `vault run --broker` puts in NO_PROXY.
const HOST: &str = "127.0.0.2";
const OPENAI_KEY: &str = "sk-openai-real-0123456789abcdef";
const ANTHROPIC_KEY: &str = "sk-ant-real-0123456789abcdef";
const GPT: &str = "gpt-4o-2024-08-06";
const CLAUDE: &str = "claude-sonnet-4-20250514";

/// One request the model API received.
#[derive(Clone, Debug)]
struct Seen {
    head: String,
    body: String,
}

/// A TLS model API for [`HOST`] (tests/upstream.rs's rig) that records each request.
struct ModelApi {
    port: u16,
    ca_file: std::path::PathBuf,
    upstream: Upstream,
}

impl ModelApi {
    fn start(dir: &std::path::Path) -> ModelApi {
        let cut = cut_file(dir);
        let upstream = Upstream::serve_on(
            dir,
            HOST,
            true,
            Arc::new(move |req: &Req, conn: &mut Conn| serve(req, conn, &cut)),
        );
        ModelApi {
            port: upstream.port,
            ca_file: upstream.ca_file.clone(),
            upstream,
        }
    }

    fn seen(&self) -> Vec<Seen> {
        self.upstream
            .seen()
            .into_iter()
            .map(|s| Seen {
                head: s.head,
                body: String::from_utf8_lossy(&s.body).into_owned(),
            })
            .collect()
    }
}

/// The file a client writes once it has cut a stream (`x-test-slow: 1`) and
/// closed its connection.
fn cut_file(dir: &std::path::Path) -> std::path::PathBuf {
    dir.join("client-cut")
}

/// Answers in OpenAI's and Anthropic's shapes, plain or streamed, with usage.
/// A stream asked with `x-test-slow: 1` stops after its first event until the
/// client has cut it (`cut`).
fn serve(req: &Req, conn: &mut Conn, cut: &std::path::Path) -> Flow {
    let head = &req.head;
    let json = req.json();
    {
        let stream = json["stream"] == true;
        let anthropic = head.starts_with("POST /v1/messages ");
        let lower = head.to_ascii_lowercase();
        let gzip = lower.contains("x-test-gzip: 1");
        let slow = lower.contains("x-test-slow: 1");
        let out = conn.get_mut();
        if gzip {
            // Compressed whatever Accept-Encoding said, as a misbehaving gateway might.
            return if gzipped(out, GZIP_ANSWER) {
                Flow::KeepAlive
            } else {
                Flow::Close
            };
        }
        let ok = match (anthropic, stream) {
            (false, false) => whole(
                out,
                &serde_json::json!({
                    "id": "c0", "object": "chat.completion", "created": 1, "model": GPT,
                    "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello"}, "finish_reason": "stop"}],
                    "usage": {"prompt_tokens": 1200, "completion_tokens": 300, "total_tokens": 1500,
                              "prompt_tokens_details": {"cached_tokens": 200}}
                }),
            ),
            (true, false) => whole(
                out,
                &serde_json::json!({
                    "id": "msg_1", "type": "message", "role": "assistant", "model": CLAUDE,
                    "content": [{"type": "text", "text": "Hello"}], "stop_reason": "end_turn", "stop_sequence": null,
                    "usage": {"input_tokens": 1000, "cache_creation_input_tokens": 2000,
                              "cache_read_input_tokens": 4000, "output_tokens": 500}
                }),
            ),
            (false, true) => {
                let usage = json["stream_options"]["include_usage"] == true;
                let chunk = |delta: serde_json::Value, finish: serde_json::Value| {
                    let mut c = serde_json::json!({
                        "id": "c1", "object": "chat.completion.chunk", "created": 1, "model": GPT,
                        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]
                    });
                    if usage {
                        c["usage"] = serde_json::Value::Null;
                    }
                    format!("data: {c}\n\n")
                };
                let mut events = vec![
                    chunk(
                        serde_json::json!({"role": "assistant", "content": "Hel"}),
                        serde_json::Value::Null,
                    ),
                    chunk(serde_json::json!({"content": "lo"}), "stop".into()),
                ];
                if usage {
                    events.push(format!("data: {}\n\n", serde_json::json!({
                        "id": "c1", "object": "chat.completion.chunk", "created": 1, "model": GPT,
                        "choices": [], "usage": {"prompt_tokens": 500, "completion_tokens": 50, "total_tokens": 550}
                    })));
                }
                events.push("data: [DONE]\n\n".into());
                sse(out, &events, slow.then_some(cut))
            }
            (true, true) => {
                let ev = |name: &str, data: serde_json::Value| {
                    format!("event: {name}\ndata: {data}\n\n")
                };
                sse(
                    out,
                    &[
                        ev(
                            "message_start",
                            serde_json::json!({"type": "message_start", "message": {
                        "id": "msg_2", "type": "message", "role": "assistant", "model": CLAUDE, "content": [],
                        "stop_reason": null, "stop_sequence": null,
                        "usage": {"input_tokens": 300, "cache_creation_input_tokens": 0,
                                  "cache_read_input_tokens": 0, "output_tokens": 1}}}),
                        ),
                        ev(
                            "content_block_start",
                            serde_json::json!({"type": "content_block_start", "index": 0,
                        "content_block": {"type": "text", "text": ""}}),
                        ),
                        ev(
                            "content_block_delta",
                            serde_json::json!({"type": "content_block_delta", "index": 0,
                        "delta": {"type": "text_delta", "text": "Hello"}}),
                        ),
                        ev(
                            "content_block_stop",
                            serde_json::json!({"type": "content_block_stop", "index": 0}),
                        ),
                        ev(
                            "message_delta",
                            serde_json::json!({"type": "message_delta",
                        "delta": {"stop_reason": "end_turn", "stop_sequence": null}, "usage": {"output_tokens": 40}}),
                        ),
                        ev("message_stop", serde_json::json!({"type": "message_stop"})),
                    ],
                    slow.then_some(cut),
                )
            }
        };
        if ok {
            Flow::KeepAlive
        } else {
            Flow::Close
        }
    }
}

fn whole(out: &mut impl Write, body: &serde_json::Value) -> bool {
    let body = body.to_string();
    write!(
        out,
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    )
    .and_then(|()| out.flush())
    .is_ok()
}

/// Each event as its own chunk, every one split in two TCP writes with a
/// pause between, so the broker sees SSE lines cut mid-way. With `cut`, the
/// rest waits after the first event until the client says it has cut the
/// stream, then goes on as SSE comments until the broker closes this
/// connection (issue 14: events, not a 300 ms pause, order the cut before the
/// stream's end).
fn sse(out: &mut impl Write, events: &[String], cut: Option<&std::path::Path>) -> bool {
    let start =
        "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n";
    if out.write_all(start.as_bytes()).is_err() {
        return false;
    }
    for event in events {
        let (a, b) = event.split_at(event.len() / 2);
        for piece in [a, b] {
            let chunk = format!("{:x}\r\n{piece}\r\n", piece.len());
            if out
                .write_all(chunk.as_bytes())
                .and_then(|()| out.flush())
                .is_err()
            {
                return false;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        if let Some(cut) = cut {
            // bounded; a client that never cuts fails its own assertions
            wait_for_file(cut);
            return until_closed(out);
        }
    }
    out.write_all(b"0\r\n\r\n")
        .and_then(|()| out.flush())
        .is_ok()
}

/// Writes SSE comments (which every reader skips) until a write fails: the
/// broker closed this connection. Bounded: after 10 s the stream ends.
fn until_closed(out: &mut impl Write) -> bool {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while std::time::Instant::now() < deadline {
        let ping = ": still here\n\n";
        let chunk = format!("{:x}\r\n{ping}\r\n", ping.len());
        if out
            .write_all(chunk.as_bytes())
            .and_then(|()| out.flush())
            .is_err()
        {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    out.write_all(b"0\r\n\r\n")
        .and_then(|()| out.flush())
        .is_ok()
}

const GZIP_ANSWER: &str = r#"{"id":"c9","object":"chat.completion","created":1,"model":"gpt-4o-2024-08-06","choices":[{"index":0,"message":{"role":"assistant","content":"Zipped"},"finish_reason":"stop"}],"usage":{"prompt_tokens":7,"completion_tokens":7,"total_tokens":14}}"#;

/// `body` gzip-compressed by the system's gzip, with `content-encoding: gzip`.
fn gzipped(out: &mut impl Write, body: &str) -> bool {
    let mut child = std::process::Command::new("gzip")
        .args(["-c", "-n"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(body.as_bytes())
        .unwrap();
    let zipped = child.wait_with_output().unwrap().stdout;
    assert!(zipped.starts_with(&[0x1f, 0x8b]));
    write!(
        out,
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-encoding: gzip\r\ncontent-length: {}\r\n\r\n",
        zipped.len()
    )
    .and_then(|()| out.write_all(&zipped))
    .and_then(|()| out.flush())
    .is_ok()
}

struct Setup {
    env: Env,
    api: ModelApi,
    server: std::process::Child,
    broker: String,
    api_url: String,
    events: std::path::PathBuf,
}

impl Setup {
    /// Agent hermes with OpenAI and Anthropic rules for the model API, `extra`
    /// appended to its policy; a notify command writing events to a file.
    fn start(extra: &str) -> Setup {
        let env = Env::new();
        let api = ModelApi::start(env.dir.path());
        env.add_agent_with_policy("hermes", &policy(api.port, extra));
        env.set("hermes/OPENAI_API_KEY", OPENAI_KEY);
        env.set("hermes/ANTHROPIC_API_KEY", ANTHROPIC_KEY);
        let events = env.dir.path().join("events.jsonl");
        env.vault(&[
            "notify",
            "set",
            "--command",
            &format!(
                "cat >> '{}'; echo >> '{}'",
                events.display(),
                events.display()
            ),
        ])
        .assert()
        .success();
        let (server, broker, api_url) =
            start_broker_server(&env, Some(&api.ca_file), &["127.0.0.0/8"]);
        Setup {
            env,
            api,
            server,
            broker,
            api_url,
            events,
        }
    }

    /// Runs `script` with the SDKs under `vault run --broker --agent hermes`.
    fn python(&self, script: &str) -> String {
        let python = python_with_http_clients();
        let base = format!("https://{HOST}:{}", self.api.port);
        let out = self
            .env
            .vault(&["run", "--broker", "--agent", "hermes", "--no-mask", "--"])
            .arg(&python)
            .args(["-c", &format!("BASE = {base:?}\n{PRELUDE}\n{script}")])
            .env("VAULT_BROKER", &self.broker)
            .assert()
            .success();
        stdout_of(&out)
    }

    fn usage(&self, args: &[&str]) -> serde_json::Value {
        let mut all = vec!["--json", "usage"];
        all.extend_from_slice(args);
        serde_json::from_str(&stdout_of(&self.env.vault(&all).assert().success())).unwrap()
    }

    /// `vault usage --json ARGS` once its rows hold `requests` requests
    /// (the broker writes records in batches, after the answer).
    fn usage_when(&self, requests: u64, args: &[&str]) -> serde_json::Value {
        for _ in 0..100 {
            let v = self.usage(args);
            let total: u64 = v["egress"]["rows"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r["requests"].as_u64().unwrap())
                .sum();
            if total >= requests {
                return v;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!(
            "usage never reached {requests} requests: {}",
            self.usage(args)
        );
    }

    fn events(&self) -> String {
        std::fs::read_to_string(&self.events).unwrap_or_default()
    }

    /// `egress.attach` records of hermes: requests the broker saw and decided.
    fn attempts(&self) -> usize {
        let log = stdout_of(
            &self
                .env
                .vault(&["--json", "audit", "log", "--agent", "hermes"])
                .assert()
                .success(),
        );
        log.matches("\"egress.attach\"").count()
    }
}

impl Drop for Setup {
    fn drop(&mut self) {
        // a test may have stopped it already
        if matches!(self.server.try_wait(), Ok(None)) {
            terminate(&self.server);
            wait_bounded(&self.env, &mut self.server);
        }
    }
}

fn policy(port: u16, extra: &str) -> String {
    format!(
        "{extra}\n[[egress]]\nhost = \"{HOST}:{port}\"\npath_prefix = \"/v1/chat/\"\nsecret = \"OPENAI_API_KEY\"\nauth = \"bearer\"\n\n\
         [[egress]]\nhost = \"{HOST}:{port}\"\npath_prefix = \"/v1/messages\"\nsecret = \"ANTHROPIC_API_KEY\"\nauth = \"header:x-api-key\"\n"
    )
}

const PRELUDE: &str = r#"
import os, time, openai, anthropic
oa = openai.OpenAI(base_url=BASE + "/v1", api_key=os.environ["OPENAI_API_KEY"])
an = anthropic.Anthropic(base_url=BASE, api_key=os.environ["ANTHROPIC_API_KEY"])
MSG = [{"role": "user", "content": "hi"}]
def refused(name, call):
    t = time.monotonic()
    try:
        call()
        print(name, "not refused")
    except (openai.APIStatusError, anthropic.APIStatusError) as e:
        print(name, "refused", e.status_code, type(e).__name__, "%.1fs" % (time.monotonic() - t), "|", e.message)
"#;

fn row<'a>(v: &'a serde_json::Value, group: &str) -> &'a serde_json::Value {
    v["egress"]["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["group"] == group)
        .unwrap_or_else(|| panic!("no row {group}: {v}"))
}

// issue 16, proven: the real openai and anthropic SDKs, plain and streamed,
// through `vault run --broker`: `vault usage --json` shows the exact token
// counts the answers reported and the cost the shipped price table gives; the
// usage chunk the broker asked OpenAI for is hidden from the SDK
#[test]
fn sdk_requests_plain_and_streamed_show_exact_tokens_and_cost_in_vault_usage() {
    let s = Setup::start("");
    let text = s.python(
        r#"
r = oa.chat.completions.create(model="gpt-4o", messages=MSG)
print("openai-plain", r.choices[0].message.content, r.usage.prompt_tokens)
chunks = list(oa.chat.completions.create(model="gpt-4o", messages=MSG, stream=True))
print("openai-stream", "".join(c.choices[0].delta.content or "" for c in chunks if c.choices),
      len(chunks), "usage-only", sum(1 for c in chunks if not c.choices))
m = an.messages.create(model="claude-sonnet-4-20250514", max_tokens=10, messages=MSG)
print("anthropic-plain", m.content[0].text, m.usage.output_tokens)
with an.messages.stream(model="claude-sonnet-4-20250514", max_tokens=10, messages=MSG) as st:
    streamed = "".join(st.text_stream)
    final = st.get_final_message()
print("anthropic-stream", streamed, final.usage.output_tokens)
"#,
    );
    assert!(text.contains("openai-plain Hello 1200"), "{text}");
    assert!(
        text.contains("openai-stream Hello 2 usage-only 0"),
        "{text}"
    );
    assert!(text.contains("anthropic-plain Hello 500"), "{text}");
    assert!(text.contains("anthropic-stream Hello 40"), "{text}");
    let seen = s.api.seen();
    assert_eq!(seen.len(), 4);
    // the broker asked for the streamed usage, and attached the real keys
    assert!(
        seen[1].body.contains("\"include_usage\":true"),
        "{:?}",
        seen[1]
    );
    assert!(seen[0].head.contains(&format!("Bearer {OPENAI_KEY}")));
    assert!(seen[2]
        .head
        .to_ascii_lowercase()
        .contains(&format!("x-api-key: {ANTHROPIC_KEY}")));

    let v = s.usage_when(4, &["--by", "model"]);
    let gpt = row(&v, GPT);
    // plain 1200 prompt (200 cached) + 300 out; streamed 500 + 50
    assert_eq!(gpt["requests"], 2, "{gpt}");
    assert_eq!(gpt["input_tokens"], 1500, "{gpt}");
    assert_eq!(gpt["cache_read_tokens"], 200, "{gpt}");
    assert_eq!(gpt["output_tokens"], 350, "{gpt}");
    assert_eq!(gpt["estimated_requests"], 0, "{gpt}");
    // prices.toml gpt-4o: 2.50 in, 10.00 out, 1.25 cached (per million):
    // 1500 x 2.5 + 350 x 10 + 200 x 1.25 micro-dollars
    assert_eq!(gpt["cost_micro_usd"], 7_500, "{gpt}");
    let claude = row(&v, CLAUDE);
    assert_eq!(claude["requests"], 2, "{claude}");
    assert_eq!(claude["input_tokens"], 1300, "{claude}");
    assert_eq!(claude["output_tokens"], 540, "{claude}");
    assert_eq!(claude["cache_read_tokens"], 4000, "{claude}");
    assert_eq!(claude["cache_write_tokens"], 2000, "{claude}");
    // claude-sonnet-4: 3 in, 15 out, 0.30 cache read, 3.75 cache write
    assert_eq!(
        claude["cost_micro_usd"],
        1300 * 3 + 540 * 15 + 1200 + 7500,
        "{claude}"
    );
    assert!(v["egress"]["prices_as_of"]
        .as_str()
        .unwrap()
        .starts_with("20"));
    assert_eq!(v["egress"]["dropped_records"], 0);
    // per named key: the run's key carries all four, 28 200 micro-dollars
    let k = s.usage(&[]);
    let key = k["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["key"].as_str().unwrap().starts_with("hermes-run-"))
        .unwrap();
    assert_eq!(key["egress"]["requests"], 4, "{key}");
    assert_eq!(key["egress"]["cost_micro_usd"], 28_200, "{key}");
    // by host and by day, and text output naming the key and cost
    let by_host = s.usage(&["--by", "host"]);
    assert_eq!(
        row(&by_host, &format!("{HOST}:{}", s.api.port))["requests"],
        4
    );
    let by_day = s.usage(&["--by", "day", "--since", "24h", "--agent", "hermes"]);
    assert_eq!(by_day["egress"]["rows"].as_array().unwrap().len(), 1);
    let text = stdout_of(&s.env.vault(&["usage"]).assert().success());
    assert!(
        text.contains("hermes-run-") && text.contains("0.0282"),
        "{text}"
    );
    // nothing stored holds a key, a body or a query
    let db = s.env.all_bytes();
    for needle in [
        OPENAI_KEY.as_bytes(),
        ANTHROPIC_KEY.as_bytes(),
        b"\"role\":\"user\"",
    ] {
        assert!(!db.windows(needle.len()).any(|w| w == needle));
    }
}

// issue 16, proven: over `budget_usd_per_day` the next request is refused
// before it leaves, each SDK shows a readable error and gives up at once (the
// broker sees exactly one attempt per call); the hourly alert fires once; with
// `suspend_on_anomaly` the key is suspended, an event names agent, key and
// figure (never a value), and `vault approve` reinstates it
#[test]
fn a_budget_stops_the_next_sdk_request_without_retries_and_suspends_the_key() {
    let s =
        Setup::start("[budget]\nbudget_usd_per_day = 0.005\nalert_spend_usd_per_hour = 0.001\n");
    let text = s.python(
        r#"
r = oa.chat.completions.create(model="gpt-4o", messages=MSG)
print("first", r.usage.completion_tokens)
refused("openai", lambda: oa.chat.completions.create(model="gpt-4o", messages=MSG))
refused("anthropic", lambda: an.messages.create(model="claude-sonnet-4-20250514", max_tokens=10, messages=MSG))
"#,
    );
    assert!(text.contains("first 300"), "{text}");
    // 1000 x 2.5 + 300 x 10 + 200 x 1.25 = 5750 micro-dollars spent of 5000
    for sdk in ["openai", "anthropic"] {
        let line = text
            .lines()
            .find(|l| l.starts_with(&format!("{sdk} ")))
            .unwrap();
        assert!(
            line.contains("refused 402 ") && line.contains("Error "),
            "{sdk} did not give up at once on a 402: {line}"
        );
        assert!(
            line.contains("budget_usd_per_day") && line.contains("$0.0057 today of $0.0050"),
            "{line}"
        );
        assert!(
            line.contains("vault agent set-policy hermes --policy FILE"),
            "{line}"
        );
    }
    // one request reached the model API; the broker saw each refused call once
    assert_eq!(s.api.seen().len(), 1);
    assert_eq!(s.attempts(), 3, "the SDKs retried");
    let events = wait_for(|| {
        let e = s.events();
        (e.contains("\"spend_alert\"") && e.contains("\"egress_limit\"")).then_some(e)
    });
    assert_eq!(events.matches("\"spend_alert\"").count(), 1, "{events}");
    assert_eq!(
        events.matches("\"egress_limit\"").count(),
        1,
        "notified once: {events}"
    );
    assert!(
        events.contains("\"limit\":\"budget_usd_per_day\""),
        "{events}"
    );
    assert!(
        !events.contains(OPENAI_KEY) && !events.contains("avk_"),
        "{events}"
    );

    // now with suspend_on_anomaly: a key of its own, through the broker
    std::fs::write(
        s.env.dir.path().join("hermes.toml"),
        policy(
            s.api.port,
            "suspend_on_anomaly = true\n[budget]\nbudget_usd_per_day = 0.005\n",
        ),
    )
    .unwrap();
    s.env
        .vault(&[
            "agent",
            "set-policy",
            "hermes",
            "--policy",
            s.env.dir.path().join("hermes.toml").to_str().unwrap(),
        ])
        .assert()
        .success();
    let key = stdout_of(
        &s.env
            .vault(&["issue", "hermes-key", "--agent", "hermes"])
            .assert()
            .success(),
    )
    .trim()
    .to_owned();
    let text = s.python(&format!(
        r#"
os.environ["HTTPS_PROXY"] = os.environ["https_proxy"] = "{proxy}"
oa = openai.OpenAI(base_url=BASE + "/v1", api_key="vault-brokered")
refused("suspending", lambda: oa.chat.completions.create(model="gpt-4o", messages=MSG))
"#,
        proxy = s
            .broker
            .replacen("http://", &format!("http://agent:{key}@"), 1)
    ));
    assert!(text.contains("suspending refused 402"), "{text}");
    assert!(
        text.contains("is suspended until a person runs: vault approvals"),
        "{text}"
    );
    let status = |name: &str| {
        let v: serde_json::Value = serde_json::from_str(&stdout_of(
            &s.env.vault(&["--json", "keys", "ls"]).assert().success(),
        ))
        .unwrap();
        v["keys"]
            .as_array()
            .unwrap()
            .iter()
            .find(|k| k["name"] == name)
            .map(|k| k["status"].as_str().unwrap().to_owned())
            .unwrap()
    };
    wait_for(|| (status("hermes-key") == "suspended").then_some(()));
    let events = wait_for(|| {
        let e = s.events();
        (e.matches("\"egress_limit\"").count() == 2).then_some(e)
    });
    assert!(events.contains("\"suspended\":true"), "{events}");
    assert!(!events.contains(&key), "{events}");
    let approvals: serde_json::Value = serde_json::from_str(&stdout_of(
        &s.env.vault(&["--json", "approvals"]).assert().success(),
    ))
    .unwrap();
    let id = approvals["approvals"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["state"] == "pending")
        .map(|a| a["id"].as_str().unwrap().to_owned())
        .unwrap_or_else(|| panic!("no open approval: {approvals}"));
    s.env.vault(&["approve", &id]).assert().success();
    assert_eq!(status("hermes-key"), "active");
    assert_eq!(
        s.api.seen().len(),
        1,
        "nothing over budget reached the model API"
    );
}

// issue 16, bad input: a gzip-compressed answer reaches the SDK intact and is
// recorded as estimated; a stream the client cuts still records what it saw
// (Anthropic's input tokens from message_start); /metrics counts per agent
#[test]
fn compressed_answers_and_cut_streams_are_recorded_without_breaking_the_client() {
    let s = Setup::start("");
    let text = s.python(
        &r#"
r = oa.chat.completions.create(model="gpt-4o", messages=MSG, extra_headers={"x-test-gzip": "1"})
print("zipped", r.choices[0].message.content, r.usage.total_tokens)
with an.messages.stream(model="claude-sonnet-4-20250514", max_tokens=10, messages=MSG,
                        extra_headers={"x-test-slow": "1"}) as st:
    for event in st:
        if event.type == "message_start":
            print("cut after", event.type)
            break
open(CUT, "w").close()
"#
        .replace(
            "CUT",
            &format!("{:?}", cut_file(s.env.dir.path()).display().to_string()),
        ),
    );
    assert!(text.contains("zipped Zipped 14"), "{text}");
    assert!(text.contains("cut after message_start"), "{text}");
    // the broker asked for an uncompressed answer
    let first = &s.api.seen()[0];
    assert!(
        first
            .head
            .to_ascii_lowercase()
            .contains("accept-encoding: identity"),
        "{first:?}"
    );
    let v = s.usage_when(2, &["--by", "model"]);
    let zipped = v["egress"]["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["estimated_requests"] == 1)
        .unwrap_or_else(|| panic!("the compressed answer is not marked estimated: {v}"));
    assert!(zipped["input_tokens"].as_u64().unwrap() > 0, "{zipped}");
    let cut = row(&v, CLAUDE);
    assert_eq!(cut["cut_requests"], 1, "{cut}");
    assert_eq!(cut["estimated_requests"], 0, "{cut}");
    assert_eq!(cut["input_tokens"], 300, "{cut}");
    // /metrics: per agent requests, tokens and cost, and dropped records
    let token = std::fs::read_to_string(s.env.dir.path().join("admin-token")).unwrap();
    let metrics = ureq::get(&format!("{}/metrics", s.api_url))
        .set("authorization", &format!("Bearer {}", token.trim()))
        .call()
        .unwrap()
        .into_string()
        .unwrap();
    for want in [
        "vault_egress_requests_total{agent=\"hermes\"} 2",
        "vault_egress_tokens_total{agent=\"hermes\",kind=\"input\"}",
        "vault_egress_cost_micro_usd_total{agent=\"hermes\"}",
        "vault_egress_usage_dropped_total 0",
    ] {
        assert!(metrics.contains(want), "{want}: {metrics}");
    }
}

/// Polls `f` (every 100 ms, at most 10 s) until it gives a value.
fn wait_for<T>(mut f: impl FnMut() -> Option<T>) -> T {
    for _ in 0..100 {
        if let Some(v) = f() {
            return v;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("timed out waiting");
}

// issue 16, bad input: an operator's price file with an unknown field is
// refused by `vault usage --prices` and `vault server --prices` with the field
// and the file named (exit 2, `invalid_input`); VAULT_HOME/prices.toml is read
#[test]
fn a_price_file_with_an_unknown_field_is_refused_and_the_home_one_is_read() {
    let env = Env::new();
    let bad = env.dir.path().join("prices.toml");
    std::fs::write(&bad, "[models.\"gpt-4o\"]\ninput = 1.0\nouput = 2.0\n").unwrap();
    let out = env
        .vault(&["--json", "usage", "--prices", bad.to_str().unwrap()])
        .assert()
        .code(2);
    let err: serde_json::Value = serde_json::from_str(&stdout_of(&out)).unwrap();
    assert_eq!(err["error"]["code"], "invalid_input", "{err}");
    let message = err["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("ouput") && message.contains("prices.toml"),
        "{message}"
    );
    let admin = env.dir.path().join("admin");
    env.vault(&[
        "server",
        "--listen",
        "127.0.0.1:0",
        "--admin-token-file",
        admin.to_str().unwrap(),
        "--broker",
        "127.0.0.1:0",
        "--prices",
        bad.to_str().unwrap(),
    ])
    .assert()
    .code(2)
    .stderr(predicates::str::contains("ouput"));
    // VAULT_HOME/prices.toml is read by default
    std::fs::write(
        env.home.join("prices.toml"),
        "as_of = \"2026-12-01\"\n[models.\"gpt-4o\"]\ninput = 1.0\noutput = 1.0\n",
    )
    .unwrap();
    let v: serde_json::Value = serde_json::from_str(&stdout_of(
        &env.vault(&["--json", "usage"]).assert().success(),
    ))
    .unwrap();
    assert_eq!(v["egress"]["prices_as_of"], "2026-12-01", "{v}");
}

// issue 16 remainder: the usage records still waiting to fill a batch (the
// writer waits up to 100 ms for more) are stored when the server stops
// cleanly, not lost with the process
#[test]
fn usage_of_the_last_requests_is_stored_at_a_clean_stop() {
    let mut s = Setup::start("");
    let key = stdout_of(
        &s.env
            .vault(&["issue", "hermes-key", "--agent", "hermes"])
            .assert()
            .success(),
    )
    .trim()
    .to_owned();
    let pem = ureq::get(&format!("{}/v1/broker/ca.pem", s.api_url))
        .call()
        .unwrap()
        .into_string()
        .unwrap();
    let ca = s.env.dir.path().join("vault-ca.pem");
    std::fs::write(&ca, pem).unwrap();
    let proxy = s
        .broker
        .replacen("http://", &format!("http://agent:{key}@"), 1);
    let out = std::process::Command::new("curl")
        .args([
            "-sS",
            "-i",
            "--max-time",
            "20",
            "--proxy",
            &proxy,
            "--cacert",
        ])
        .arg(&ca)
        .args(["-H", "content-type: application/json", "--data"])
        .arg(format!(r#"{{"model":"{GPT}","messages":[]}}"#))
        .arg(format!("https://{HOST}:{}/v1/chat/completions", s.api.port))
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    // stopped at once: the record is still in the writer's batch window
    terminate(&s.server);
    assert!(wait_bounded(&s.env, &mut s.server).success());
    let v = s.usage(&[]);
    let rows = v["egress"]["rows"].as_array().unwrap();
    let requests: u64 = rows.iter().map(|r| r["requests"].as_u64().unwrap()).sum();
    assert_eq!(requests, 1, "{v}");
    // 1200 prompt tokens of which 200 cached (stored apart)
    assert_eq!(rows[0]["input_tokens"], 1000, "{v}");
    assert_eq!(rows[0]["cache_read_tokens"], 200, "{v}");
}
