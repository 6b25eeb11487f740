//! The one test rig for brokered egress (issues 15, 16, 17): an HTTP/1.1
//! upstream on loopback (TLS under its own CA, or plain) that records every
//! request it reads and answers through a handler each test file writes,
//! the `vault server --broker` those tests start, and the pinned Python
//! venvs their clients run in. tests/broker.rs, broker_clients.rs,
//! spend.rs, governance.rs and console.rs all stand on it; [`Setup`] is
//! the held-rule vault that governance.rs and the console's browser test of
//! held requests (console.rs) share.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::common::{
    set_rotation_script, spawn_vault, stdout_of, terminate, wait_bounded, Env, Lines,
};

pub(crate) const STRIPE_KEY: &str = "sk-test-upstream-stripe-0123456789";
pub(crate) const OPENAI_KEY: &str = "sk-test-upstream-openai-9876543210";
/// Another agent's stored secret: long and random enough to be fingerprinted.
pub(crate) const FINANCE_SECRET: &str = "Qz7vK2mW9xR4tB8nLp3s";
/// Loopback, but not the 127.0.0.1 that `vault run --broker` puts in NO_PROXY.
pub(crate) const UPSTREAM_HOST: &str = "127.0.0.2";

/// A connection's byte stream, TLS or plain.
pub(crate) trait Io: Read + Write + Send {}
impl<T: Read + Write + Send> Io for T {}

pub(crate) type Conn = BufReader<Box<dyn Io>>;

/// One request the upstream read: its head (request line and headers) and
/// body (what arrived of it, when the client cut it short).
#[derive(Clone, Debug)]
pub(crate) struct Seen {
    pub(crate) head: String,
    pub(crate) body: Vec<u8>,
}

pub(crate) type Req = Seen;

impl Seen {
    pub(crate) fn path(&self) -> &str {
        self.head.split(' ').nth(1).unwrap_or("")
    }

    pub(crate) fn header(&self, name: &str) -> Option<String> {
        self.head.lines().skip(1).find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_owned())
        })
    }

    pub(crate) fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }
}

/// What the upstream does after answering: read the next request, or close.
pub(crate) enum Flow {
    KeepAlive,
    Close,
}

pub(crate) type Handler = Arc<dyn Fn(&Req, &mut Conn) -> Flow + Send + Sync>;

/// A self-signed test CA (written to `ca_file`) and a server config for a
/// leaf it signed naming the loopback addresses the tests use.
pub(crate) fn test_tls(ca_file: &Path) -> Arc<rustls::ServerConfig> {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "test upstream CA");
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let leaf_key = rcgen::KeyPair::generate().unwrap();
    let leaf = rcgen::CertificateParams::new(vec![
        UPSTREAM_HOST.into(),
        "127.0.0.3".into(),
        "localhost".into(),
    ])
    .unwrap()
    .signed_by(&leaf_key, &ca, &ca_key)
    .unwrap();
    std::fs::write(ca_file, ca.pem()).unwrap();
    Arc::new(
        rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![leaf.der().clone()],
            rustls_pki_types::PrivateKeyDer::Pkcs8(leaf_key.serialize_der().into()),
        )
        .unwrap(),
    )
}

/// An HTTP/1.1 server on [`UPSTREAM_HOST`] (or another loopback address),
/// TLS under its own CA (written to `ca_file`) or plain, recording every
/// request it reads and answering with a handler.
pub(crate) struct Upstream {
    pub(crate) port: u16,
    pub(crate) ca_file: PathBuf,
    pub(crate) seen: Arc<Mutex<Vec<Seen>>>,
    /// Connections accepted so far.
    pub(crate) connections: Arc<std::sync::atomic::AtomicUsize>,
}

impl Upstream {
    /// The OpenAI-shaped upstream of [`Setup`]: every request answered with a
    /// chat completion saying "upstream-ok".
    pub(crate) fn start(dir: &Path) -> Upstream {
        Upstream::serve(dir, true, Arc::new(chat_ok))
    }

    pub(crate) fn serve(dir: &Path, tls: bool, handler: Handler) -> Upstream {
        Upstream::serve_on(dir, UPSTREAM_HOST, tls, handler)
    }

    pub(crate) fn serve_on(dir: &Path, ip: &str, tls: bool, handler: Handler) -> Upstream {
        let ca_file = dir.join(format!("upstream-ca-{ip}.pem"));
        let config = test_tls(&ca_file);
        let listener = TcpListener::bind((ip, 0)).unwrap();
        let port = listener.local_addr().unwrap().port();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let recorded = seen.clone();
        let connections = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let accepted = connections.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().map_while(Result::ok) {
                accepted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let config = config.clone();
                let recorded = recorded.clone();
                let handler = handler.clone();
                std::thread::spawn(move || {
                    stream
                        .set_read_timeout(Some(Duration::from_secs(20)))
                        .unwrap();
                    let _ = stream.set_nodelay(true);
                    let io: Box<dyn Io> = if tls {
                        let conn = rustls::ServerConnection::new(config).unwrap();
                        Box::new(rustls::StreamOwned::new(conn, stream))
                    } else {
                        Box::new(stream)
                    };
                    let mut conn = BufReader::new(io);
                    while let Some((req, whole)) = read_request(&mut conn) {
                        recorded.lock().unwrap().push(req.clone());
                        if !whole {
                            // cut short: recorded as received so far, never answered
                            return;
                        }
                        if let Flow::Close = handler(&req, &mut conn) {
                            return;
                        }
                    }
                });
            }
        });
        Upstream {
            port,
            ca_file,
            seen,
            connections,
        }
    }

    pub(crate) fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    pub(crate) fn heads(&self) -> Vec<String> {
        self.seen().into_iter().map(|s| s.head).collect()
    }

    /// Requests whose request line starts with `line` (e.g. "POST /v1/charges ").
    pub(crate) fn count(&self, line: &str) -> usize {
        self.seen()
            .iter()
            .filter(|s| s.head.starts_with(line))
            .count()
    }
}

/// The next request on `conn`, its body by Content-Length or chunked; false
/// when the body was cut short (what arrived of it is kept). None at the end.
fn read_request(conn: &mut Conn) -> Option<(Req, bool)> {
    let mut head = String::new();
    loop {
        let mut line = String::new();
        match conn.read_line(&mut line) {
            Ok(0) | Err(_) => return None,
            Ok(_) => {}
        }
        if line == "\r\n" {
            break;
        }
        head.push_str(&line);
    }
    let mut req = Req {
        head,
        body: Vec::new(),
    };
    let chunked = req
        .header("transfer-encoding")
        .is_some_and(|v| v.eq_ignore_ascii_case("chunked"));
    if let Some(length) = req
        .header("content-length")
        .map(|v| v.parse::<usize>().unwrap_or(0))
    {
        let mut body = vec![0; length];
        if conn.read_exact(&mut body).is_err() {
            return Some((req, false));
        }
        req.body = body;
    } else if chunked {
        loop {
            let mut size = String::new();
            if conn.read_line(&mut size).unwrap_or(0) == 0 {
                return Some((req, false));
            }
            let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
            let mut chunk = vec![0; n + 2];
            if conn.read_exact(&mut chunk).is_err() {
                return Some((req, false));
            }
            if n == 0 {
                break;
            }
            req.body.extend_from_slice(&chunk[..n]);
        }
    }
    Some((req, true))
}

/// Writes a whole answer with a Content-Length.
pub(crate) fn reply(conn: &mut Conn, status: &str, headers: &str, body: &str) -> Flow {
    let text = format!(
        "HTTP/1.1 {status}\r\n{headers}content-length: {}\r\n\r\n{body}",
        body.len()
    );
    match conn
        .get_mut()
        .write_all(text.as_bytes())
        .and_then(|()| conn.get_mut().flush())
    {
        Ok(()) => Flow::KeepAlive,
        Err(_) => Flow::Close,
    }
}

/// An OpenAI-shaped answer, so SDKs parse it; "upstream-ok" for curl.
fn chat_ok(_: &Req, conn: &mut Conn) -> Flow {
    let answer = r#"{"id":"c1","object":"chat.completion","created":0,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"upstream-ok"},"finish_reason":"stop"}]}"#;
    reply(conn, "200 OK", "content-type: application/json\r\n", answer)
}

pub(crate) fn now_micros() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_micros()
}

/// The file a streaming client writes (empty) once it has received the
/// event stamped `sent`, in the directory its upstream was given.
pub(crate) fn ack_file(acks: &Path, sent: u128) -> PathBuf {
    acks.join(format!("ack-{sent}"))
}

/// How long an upstream waits for a client's ack before it sends on anyway:
/// past it the event is late, and the client's lag check fails.
const ACK_WAIT: Duration = Duration::from_secs(5);

/// Waits (bounded by [`ACK_WAIT`]) for `file` to exist.
pub(crate) fn wait_for_file(file: &Path) -> bool {
    let deadline = Instant::now() + ACK_WAIT;
    while !file.exists() {
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    true
}

/// Writes server-sent events, one chunk each. `event(i, sent)` renders the
/// i-th event, carrying its send time (microseconds) when the client times
/// it. After an event carrying its time, the next waits for the client's
/// [`ack_file`] in `acks`, not for a pause (issue 14: no test sleeps longer
/// than needed). Lock-step is the sharper test of forwarding: a broker that
/// held an event back until more arrived would get no more until the ack
/// wait ran out, and the event would lag by seconds.
pub(crate) fn sse_events(
    conn: &mut Conn,
    count: usize,
    acks: &Path,
    event: impl Fn(usize, u128) -> String,
) -> Flow {
    let start = "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\ntransfer-encoding: chunked\r\n\r\n";
    if conn.get_mut().write_all(start.as_bytes()).is_err() {
        return Flow::Close;
    }
    for i in 0..count {
        let sent = now_micros();
        let text = event(i, sent);
        let chunk = format!("{:x}\r\n{text}\r\n", text.len());
        if conn
            .get_mut()
            .write_all(chunk.as_bytes())
            .and_then(|()| conn.get_mut().flush())
            .is_err()
        {
            return Flow::Close;
        }
        if text.contains(&sent.to_string()) {
            wait_for_file(&ack_file(acks, sent));
        }
    }
    match conn.get_mut().write_all(b"0\r\n\r\n") {
        Ok(()) => Flow::KeepAlive,
        Err(_) => Flow::Close,
    }
}

/// Timed server-sent events (`count`, each carrying its send time, acked in
/// `acks`) for `/v1/stream`, and `upstream-ok` with a cookie and a vendor
/// header for anything else.
pub(crate) fn stream_or_ok(req: &Req, conn: &mut Conn, count: usize, acks: &Path) -> Flow {
    if req.path().starts_with("/v1/stream") {
        return sse_events(conn, count, acks, |i, sent| {
            format!("data: event {i} sent {sent}\n\n")
        });
    }
    reply(
        conn,
        "200 OK",
        "content-type: text/plain\r\nset-cookie: tracker=1\r\nx-upstream: yes\r\n",
        "upstream-ok",
    )
}

/// `vault server --listen 127.0.0.1:0 --broker 127.0.0.1:0` trusting
/// `upstream_ca` (None: only the system roots) and opening `allow_private`;
/// the child and the broker's and the API's addresses.
pub(crate) fn start_broker_server(
    env: &Env,
    upstream_ca: Option<&Path>,
    allow_private: &[&str],
) -> (std::process::Child, String, String) {
    start_broker_server_with(env, upstream_ca, allow_private, &[])
}

/// [`start_broker_server`] with `extra` flags.
pub(crate) fn start_broker_server_with(
    env: &Env,
    upstream_ca: Option<&Path>,
    allow_private: &[&str],
    extra: &[&str],
) -> (std::process::Child, String, String) {
    let admin = env.dir.path().join("admin-token");
    let mut args = vec![
        "server".to_owned(),
        "--listen".into(),
        "127.0.0.1:0".into(),
        "--admin-token-file".into(),
        admin.to_str().unwrap().to_owned(),
        "--broker".into(),
        "127.0.0.1:0".into(),
    ];
    if let Some(ca) = upstream_ca {
        args.extend([
            "--broker-upstream-ca".into(),
            ca.to_str().unwrap().to_owned(),
        ]);
    }
    for range in allow_private {
        args.extend(["--broker-allow-private".into(), (*range).to_owned()]);
    }
    args.extend(extra.iter().map(|a| (*a).to_owned()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut server = spawn_vault(env, &args);
    let (broker, api) = addresses(env, &mut server);
    (server, broker, api)
}

/// The broker's and the API's addresses, from the server's two lines in
/// whichever order it prints them.
pub(crate) fn addresses(env: &Env, server: &mut std::process::Child) -> (String, String) {
    let lines = Lines::of(server);
    let (mut broker, mut api) = (None, None);
    while broker.is_none() || api.is_none() {
        for line in lines.until(env, "listening on http://").lines() {
            if let Some(b) = line.strip_prefix("broker listening on ") {
                broker = Some(b.to_owned());
            } else if let Some(a) = line.strip_prefix("listening on ") {
                api = Some(a.to_owned());
            }
        }
    }
    (broker.unwrap(), api.unwrap())
}

/// A python3 in a venv `name` under the target dir where `imports` import,
/// installed from PyPI (`packages`, pinned) once per run and reused after.
/// None (after a SKIP line) when it cannot be had; under CI=true that fails.
pub(crate) fn python_venv(name: &str, imports: &str, packages: &[&str]) -> Option<PathBuf> {
    let ok = |py: &Path| {
        std::process::Command::new(py)
            .args(["-c", &format!("import {imports}")])
            .output()
            .is_ok_and(|o| o.status.success())
    };
    let venv = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(name);
    let py = venv.join("bin/python3");
    let _installing = crate::common::install_lock(name);
    if !ok(&py) {
        let made = std::process::Command::new("python3")
            .args(["-m", "venv"])
            .arg(&venv)
            .status()
            .is_ok_and(|s| s.success());
        let installed = made
            && std::process::Command::new(&py)
                .args(["-m", "pip", "install", "--quiet"])
                .args(packages)
                .status()
                .is_ok_and(|s| s.success());
        if !installed || !ok(&py) {
            crate::common::skip_or_fail_in_ci(&format!(
                "could not install {} into a venv",
                packages.join(", ")
            ));
            return None;
        }
    }
    Some(py)
}

/// A python3 with requests, httpx, the real `openai` and `anthropic` SDKs and
/// a WebSocket client. The SDKs are pinned: issue 16's tests rely on their
/// retry rules (they retry 408, 409, 429 and 5xx unless the answer says
/// `x-should-retry: false`).
pub(crate) fn python_with_http_clients() -> PathBuf {
    static PYTHON: std::sync::OnceLock<Option<PathBuf>> = std::sync::OnceLock::new();
    PYTHON
        .get_or_init(|| {
            python_venv(
                "broker-venv",
                "requests, httpx, openai, anthropic, websockets",
                &[
                    "requests==2.*",
                    "httpx==0.28.*",
                    // the real provider SDKs and a WebSocket client (issue 15 remainder)
                    "openai==3.57.0",
                    "anthropic==2.14.0",
                    "websockets==17.4",
                ],
            )
        })
        .clone()
        .expect("installing the Python HTTP clients failed")
}

/// A vault with agents hermes (a held rule for POST /v1/charges and a plain
/// rule for /v1/) and finance (a stored secret with a rotation command), and
/// a server running the broker.
pub(crate) struct Setup {
    pub(crate) env: Env,
    pub(crate) upstream: Upstream,
    pub(crate) server: Option<std::process::Child>,
    pub(crate) broker: String,
    /// The server's own API, http://127.0.0.1:PORT (for `vault ui`).
    pub(crate) api: String,
    pub(crate) ca: std::path::PathBuf,
}

impl Setup {
    pub(crate) fn start(extra_policy: &str) -> Setup {
        let env = Env::new();
        let upstream = Upstream::start(env.dir.path());
        let policy = env.dir.path().join("hermes.toml");
        std::fs::write(
            &policy,
            format!(
                "{extra_policy}\n\
                 [[egress]]\nhost = \"{UPSTREAM_HOST}:{port}\"\npath_prefix = \"/v1/charges\"\n\
                 methods = [\"POST\"]\nsecret = \"STRIPE_KEY\"\nauth = \"bearer\"\napproval = true\n\n\
                 [[egress]]\nhost = \"{UPSTREAM_HOST}:{port}\"\npath_prefix = \"/v1/\"\n\
                 secret = \"OPENAI_API_KEY\"\nauth = \"bearer\"\n",
                port = upstream.port
            ),
        )
        .unwrap();
        env.vault(&["agent", "add", "hermes", "--policy"])
            .arg(&policy)
            .assert()
            .success();
        env.vault(&["agent", "add", "finance"]).assert().success();
        env.set("hermes/STRIPE_KEY", STRIPE_KEY);
        env.set("hermes/OPENAI_API_KEY", OPENAI_KEY);
        env.set("finance/DB_PASSWORD", FINANCE_SECRET);
        set_rotation_script(&env, "finance/DB_PASSWORD", "echo Rotated9vK2mW9xR4tB8nL\n");
        let mut s = Setup {
            env,
            upstream,
            server: None,
            broker: String::new(),
            api: String::new(),
            ca: std::path::PathBuf::new(),
        };
        s.start_server();
        s
    }

    pub(crate) fn start_server(&mut self) {
        let (server, broker, api) =
            start_broker_server(&self.env, Some(&self.upstream.ca_file), &["127.0.0.0/8"]);
        let pem = ureq::get(&format!("{api}/v1/broker/ca.pem"))
            .call()
            .unwrap()
            .into_string()
            .unwrap();
        self.ca = self.env.dir.path().join("vault-ca.pem");
        std::fs::write(&self.ca, pem).unwrap();
        self.broker = broker;
        self.api = api;
        self.server = Some(server);
    }

    pub(crate) fn issue(&self, name: &str, agent: &str) -> String {
        let out = self
            .env
            .vault(&["issue", name, "--agent", agent])
            .assert()
            .success();
        stdout_of(&out).trim().to_owned()
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("https://{UPSTREAM_HOST}:{}{path}", self.upstream.port)
    }

    /// curl through the broker with `key`, `args` before the URL.
    pub(crate) fn curl_cmd(&self, key: &str, args: &[&str], path: &str) -> std::process::Command {
        let proxy = self
            .broker
            .replacen("http://", &format!("http://agent:{key}@"), 1);
        let mut cmd = std::process::Command::new("curl");
        cmd.args([
            "-sS",
            "-i",
            "--max-time",
            "30",
            "--proxy",
            &proxy,
            "--cacert",
        ])
        .arg(&self.ca)
        .args(args)
        .arg(self.url(path))
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap());
        cmd
    }

    /// `vault run --broker --agent hermes -- curl ARGS URL`: the agent's
    /// request as an agent makes it, the broker's proxy and CA from `vault run`.
    pub(crate) fn run_curl_cmd(&self, args: &[&str], path: &str) -> std::process::Command {
        let mut cmd = std::process::Command::new(assert_cmd::cargo::cargo_bin("vault"));
        cmd.args(["run", "--broker", "--agent", "hermes", "--no-mask", "--"])
            .args(["curl", "-sS", "-i", "--max-time", "60"])
            .args(args)
            .arg(self.url(path))
            .env_remove("VAULT_ADDR")
            .env_remove("VAULT_AGENT_KEY")
            .env("VAULT_HOME", &self.env.home)
            .env("VAULT_PASSPHRASE_FILE", &self.env.passfile)
            .env("HOME", self.env.dir.path().join("home"))
            .env("VAULT_BROKER", &self.broker);
        self.env.on_backend(&mut cmd, &["run"]);
        cmd
    }

    pub(crate) fn curl(&self, key: &str, args: &[&str], path: &str) -> String {
        let out = self.curl_cmd(key, args, path).output().unwrap();
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    }

    pub(crate) fn approvals(&self) -> Vec<serde_json::Value> {
        let out = self.env.vault(&["--json", "approvals"]).assert().success();
        let doc: serde_json::Value = serde_json::from_str(&stdout_of(&out)).unwrap();
        doc["approvals"].as_array().unwrap().clone()
    }

    pub(crate) fn approval(&self, id: &str) -> serde_json::Value {
        self.approvals()
            .into_iter()
            .find(|a| a["id"] == id)
            .unwrap_or_else(|| panic!("no approval {id}"))
    }

    /// Waits (bounded) for a pending held request's approval; returns it.
    pub(crate) fn pending_hold(&self) -> serde_json::Value {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Some(a) = self
                .approvals()
                .into_iter()
                .find(|a| a["kind"] == "egress_request" && a["state"] == "pending")
            {
                return a;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("no held request appeared: {:?}", self.approvals());
    }

    /// Waits (bounded) until `n` held requests are pending; returns them.
    pub(crate) fn pending_holds(&self, n: usize) -> Vec<serde_json::Value> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let holds: Vec<_> = self
                .approvals()
                .into_iter()
                .filter(|a| a["kind"] == "egress_request" && a["state"] == "pending")
                .collect();
            if holds.len() >= n {
                return holds;
            }
            assert!(
                Instant::now() < deadline,
                "{n} held requests did not appear: {holds:?}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub(crate) fn stop_server(&mut self) {
        if let Some(mut server) = self.server.take() {
            terminate(&server);
            wait_bounded(&self.env, &mut server);
        }
    }
}

impl Drop for Setup {
    fn drop(&mut self) {
        self.stop_server();
    }
}

/// Waits (bounded) for a background client and returns what it printed.
pub(crate) fn output_of(child: std::process::Child) -> String {
    let out = child.wait_with_output().unwrap();
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

pub(crate) fn spawn(mut cmd: std::process::Command) -> std::process::Child {
    cmd.stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap()
}

pub(crate) const CHARGE: &str = "amount=4200&currency=usd&description=invoice+77";
