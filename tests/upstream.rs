//! A vault whose broker governs a TLS upstream on loopback that counts every
//! request it receives, body included: shared by tests/governance.rs (issue
//! 16) and the console's browser test of held requests (tests/console.rs,
//! issue 17), so both drive the same held rule.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
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

/// One request the upstream received.
#[derive(Clone, Debug)]
pub(crate) struct Seen {
    pub(crate) head: String,
    pub(crate) body: Vec<u8>,
}

/// A TLS server for [`UPSTREAM_HOST`] that records every request, body included.
pub(crate) struct Upstream {
    pub(crate) port: u16,
    pub(crate) ca_file: std::path::PathBuf,
    pub(crate) seen: Arc<Mutex<Vec<Seen>>>,
}

impl Upstream {
    pub(crate) fn start(dir: &std::path::Path) -> Upstream {
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "test upstream CA");
        let ca = ca_params.self_signed(&ca_key).unwrap();
        let leaf_key = rcgen::KeyPair::generate().unwrap();
        let leaf = rcgen::CertificateParams::new(vec![UPSTREAM_HOST.into()])
            .unwrap()
            .signed_by(&leaf_key, &ca, &ca_key)
            .unwrap();
        let ca_file = dir.join("upstream-ca.pem");
        std::fs::write(&ca_file, ca.pem()).unwrap();
        let config = Arc::new(
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
        );
        let listener = TcpListener::bind((UPSTREAM_HOST, 0)).unwrap();
        let port = listener.local_addr().unwrap().port();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let recorded = seen.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().map_while(Result::ok) {
                let config = config.clone();
                let recorded = recorded.clone();
                std::thread::spawn(move || serve_one(stream, config, recorded));
            }
        });
        Upstream {
            port,
            ca_file,
            seen,
        }
    }

    pub(crate) fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    /// Requests whose request line starts with `line` (e.g. "POST /v1/charges ").
    pub(crate) fn count(&self, line: &str) -> usize {
        self.seen()
            .iter()
            .filter(|s| s.head.starts_with(line))
            .count()
    }
}

fn serve_one(stream: TcpStream, config: Arc<rustls::ServerConfig>, seen: Arc<Mutex<Vec<Seen>>>) {
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let conn = rustls::ServerConnection::new(config).unwrap();
    let mut tls = BufReader::new(rustls::StreamOwned::new(conn, stream));
    loop {
        let mut head = String::new();
        loop {
            let mut line = String::new();
            match tls.read_line(&mut line) {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
            if line == "\r\n" {
                break;
            }
            head.push_str(&line);
        }
        let lower = head.to_ascii_lowercase();
        let length = lower.lines().find_map(|l| {
            l.strip_prefix("content-length:")
                .map(|v| v.trim().parse::<usize>().unwrap_or(0))
        });
        let mut body = Vec::new();
        if let Some(length) = length {
            body = vec![0; length];
            if tls.read_exact(&mut body).is_err() {
                // cut short: recorded as received so far, never answered
                seen.lock().unwrap().push(Seen { head, body: vec![] });
                return;
            }
        } else if lower.contains("transfer-encoding: chunked") {
            loop {
                let mut size = String::new();
                if tls.read_line(&mut size).unwrap_or(0) == 0 {
                    seen.lock().unwrap().push(Seen { head, body });
                    return;
                }
                let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
                let mut chunk = vec![0; n + 2];
                if tls.read_exact(&mut chunk).is_err() {
                    seen.lock().unwrap().push(Seen { head, body });
                    return;
                }
                if n == 0 {
                    break;
                }
                body.extend_from_slice(&chunk[..n]);
            }
        }
        seen.lock().unwrap().push(Seen { head, body });
        // An OpenAI-shaped answer, so SDKs parse it; "upstream-ok" for curl.
        let answer = r#"{"id":"c1","object":"chat.completion","created":0,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"upstream-ok"},"finish_reason":"stop"}]}"#;
        let reply = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{answer}",
            answer.len()
        );
        if tls.get_mut().write_all(reply.as_bytes()).is_err() {
            return;
        }
    }
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
        let admin = self.env.dir.path().join("admin-token");
        let ca = self.upstream.ca_file.to_str().unwrap().to_owned();
        let mut server = spawn_vault(
            &self.env,
            &[
                "server",
                "--listen",
                "127.0.0.1:0",
                "--admin-token-file",
                admin.to_str().unwrap(),
                "--broker",
                "127.0.0.1:0",
                "--broker-upstream-ca",
                &ca,
                "--broker-allow-private",
                "127.0.0.0/8",
            ],
        );
        let lines = Lines::of(&mut server);
        let (mut broker, mut api) = (None, None);
        while broker.is_none() || api.is_none() {
            for line in lines.until(&self.env, "listening on http://").lines() {
                if let Some(b) = line.strip_prefix("broker listening on ") {
                    broker = Some(b.to_owned());
                } else if let Some(a) = line.strip_prefix("listening on ") {
                    api = Some(a.to_owned());
                }
            }
        }
        let api = api.unwrap();
        let pem = ureq::get(&format!("{api}/v1/broker/ca.pem"))
            .call()
            .unwrap()
            .into_string()
            .unwrap();
        self.ca = self.env.dir.path().join("vault-ca.pem");
        std::fs::write(&self.ca, pem).unwrap();
        self.broker = broker.unwrap();
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
