//! The load client bench/broker.sh drives: keep-alive HTTP/1.1 over TLS,
//! either straight to an upstream or through a CONNECT proxy (the vault
//! broker, or mitmproxy as the peer), written with tokio and rustls so the
//! client is not what limits a 2-core run.
//!
//! Modes (arguments are `key=value`):
//! - `load`: `conns` connections send `GET path` back to back for `secs`
//!   seconds; prints requests/s and latency p50/p90/p99/p99.9 in microseconds.
//! - `idle`: opens `conns` tunnels, one request each, then holds them open
//!   for `secs` seconds (the script reads the proxy's RSS meanwhile).
//! - `stream`: one `GET path` whose answer is server-sent events carrying
//!   `sent <unix micros>`; prints each event's lag at the client.
//!
//! Common: `target=HOST:PORT` (the upstream), `ca=FILE` (PEM roots the client
//! trusts: the upstream's CA direct, the proxy's CA through it), optional
//! `proxy=HOST:PORT` and `auth=CREDENTIAL` (sent as Proxy-Authorization Basic).

use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use rustls_pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

type Tls = tokio_rustls::client::TlsStream<TcpStream>;

struct Args {
    mode: String,
    target: String,
    ca: String,
    proxy: Option<String>,
    auth: Option<String>,
    conns: usize,
    secs: u64,
    path: String,
}

fn args() -> Args {
    let mut a = Args {
        mode: "load".into(),
        target: String::new(),
        ca: String::new(),
        proxy: None,
        auth: None,
        conns: 8,
        secs: 5,
        path: "/v1/health".into(),
    };
    for arg in std::env::args().skip(1) {
        let (k, v) = arg.split_once('=').expect("arguments are key=value");
        match k {
            "mode" => a.mode = v.into(),
            "target" => a.target = v.into(),
            "ca" => a.ca = v.into(),
            "proxy" => a.proxy = Some(v.into()),
            "auth" => a.auth = Some(v.into()),
            "conns" => a.conns = v.parse().expect("conns"),
            "secs" => a.secs = v.parse().expect("secs"),
            "path" => a.path = v.into(),
            _ => panic!("unknown argument {k}"),
        }
    }
    a
}

fn tls_config(ca: &str) -> Arc<rustls::ClientConfig> {
    let pem = std::fs::read_to_string(ca).expect("reading ca");
    let mut roots = rustls::RootCertStore::empty();
    let mut block = String::new();
    for line in pem.lines() {
        if line.starts_with("-----BEGIN") {
            block.clear();
        } else if line.starts_with("-----END") {
            let der = base64::engine::general_purpose::STANDARD
                .decode(&block)
                .expect("PEM base64");
            roots
                .add(CertificateDer::from(der))
                .expect("a CA certificate");
        } else {
            block.push_str(line.trim());
        }
    }
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("TLS versions")
    .with_root_certificates(roots)
    .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Arc::new(config)
}

/// A TLS connection to `target`, through the CONNECT proxy if there is one.
async fn open(a: &Args, tls: &Arc<rustls::ClientConfig>) -> Tls {
    let mut tcp = TcpStream::connect(a.proxy.as_deref().unwrap_or(&a.target))
        .await
        .expect("connect");
    tcp.set_nodelay(true).expect("nodelay");
    if a.proxy.is_some() {
        let auth = a
            .auth
            .as_ref()
            .map(|c| {
                let basic = base64::engine::general_purpose::STANDARD.encode(format!("agent:{c}"));
                format!("Proxy-Authorization: Basic {basic}\r\n")
            })
            .unwrap_or_default();
        let connect = format!(
            "CONNECT {t} HTTP/1.1\r\nHost: {t}\r\n{auth}\r\n",
            t = a.target
        );
        tcp.write_all(connect.as_bytes()).await.expect("CONNECT");
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            tcp.read_exact(&mut byte).await.expect("CONNECT answer");
            head.push(byte[0]);
        }
        assert!(
            head.starts_with(b"HTTP/1.1 200") || head.starts_with(b"HTTP/1.0 200"),
            "CONNECT refused: {}",
            String::from_utf8_lossy(&head)
        );
    }
    let host = a.target.rsplit_once(':').expect("target host:port").0;
    let name = ServerName::try_from(host.to_owned()).expect("server name");
    tokio_rustls::TlsConnector::from(tls.clone())
        .connect(name, tcp)
        .await
        .expect("TLS")
}

/// Sends one GET and reads its whole answer (Content-Length or chunked).
async fn get(conn: &mut BufReader<Tls>, a: &Args) {
    let req = format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer vault-brokered\r\n\r\n",
        a.path, a.target
    );
    conn.get_mut()
        .write_all(req.as_bytes())
        .await
        .expect("write");
    let mut length = 0usize;
    let mut chunked = false;
    let mut line = String::new();
    loop {
        line.clear();
        conn.read_line(&mut line).await.expect("read head");
        assert!(!line.is_empty(), "the connection closed");
        let lower = line.to_ascii_lowercase();
        if let Some(v) = lower.strip_prefix("content-length:") {
            length = v.trim().parse().expect("content-length");
        }
        if lower.starts_with("transfer-encoding:") && lower.contains("chunked") {
            chunked = true;
        }
        if line == "\r\n" {
            break;
        }
    }
    if !chunked {
        let mut body = vec![0u8; length];
        conn.read_exact(&mut body).await.expect("body");
        return;
    }
    loop {
        line.clear();
        conn.read_line(&mut line).await.expect("chunk size");
        let size = usize::from_str_radix(line.trim(), 16).expect("chunk size");
        let mut chunk = vec![0u8; size + 2];
        conn.read_exact(&mut chunk).await.expect("chunk");
        if size == 0 {
            return;
        }
    }
}

fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

#[tokio::main]
async fn main() {
    let a = Arc::new(args());
    let tls = tls_config(&a.ca);
    match a.mode.as_str() {
        "load" => {
            let deadline = Instant::now() + Duration::from_secs(a.secs);
            let mut tasks = Vec::new();
            for _ in 0..a.conns {
                let (a, tls) = (a.clone(), tls.clone());
                tasks.push(tokio::spawn(async move {
                    let mut conn = BufReader::new(open(&a, &tls).await);
                    get(&mut conn, &a).await; // warm: handshake and leaf minted
                    let mut lat = Vec::new();
                    while Instant::now() < deadline {
                        let t = Instant::now();
                        get(&mut conn, &a).await;
                        lat.push(t.elapsed().as_micros() as u64);
                    }
                    lat
                }));
            }
            let mut all = Vec::new();
            for t in tasks {
                all.extend(t.await.expect("task"));
            }
            all.sort_unstable();
            println!(
                "requests {} rps {:.0} p50_us {} p90_us {} p99_us {} p999_us {}",
                all.len(),
                all.len() as f64 / a.secs as f64,
                percentile(&all, 0.50),
                percentile(&all, 0.90),
                percentile(&all, 0.99),
                percentile(&all, 0.999)
            );
        }
        "idle" => {
            let mut held = Vec::new();
            let mut tasks = Vec::new();
            for _ in 0..a.conns {
                let (a, tls) = (a.clone(), tls.clone());
                tasks.push(tokio::spawn(async move {
                    let mut conn = BufReader::new(open(&a, &tls).await);
                    get(&mut conn, &a).await;
                    conn
                }));
            }
            for t in tasks {
                held.push(t.await.expect("task"));
            }
            println!("idle {} streams open", held.len());
            tokio::time::sleep(Duration::from_secs(a.secs)).await;
            drop(held);
        }
        "stream" => {
            let mut conn = BufReader::new(open(&a, &tls).await);
            let req = format!(
                "GET {} HTTP/1.1\r\nHost: {}\r\nAccept: text/event-stream\r\n\r\n",
                a.path, a.target
            );
            conn.get_mut()
                .write_all(req.as_bytes())
                .await
                .expect("write");
            let mut lags = Vec::new();
            let mut line = String::new();
            loop {
                line.clear();
                if conn.read_line(&mut line).await.expect("read") == 0 {
                    break;
                }
                if let Some(rest) = line.trim().strip_prefix("data: ") {
                    if rest == "[DONE]" {
                        break;
                    }
                    if let Some(sent) = rest.rsplit(' ').next().and_then(|s| s.parse::<u128>().ok())
                    {
                        let now = std::time::SystemTime::now()
                            .duration_since(std::time::UNIX_EPOCH)
                            .expect("clock")
                            .as_micros();
                        lags.push(now.saturating_sub(sent) as u64);
                    }
                }
            }
            println!(
                "events {} lag_us {:?} max_us {}",
                lags.len(),
                lags,
                lags.iter().max().copied().unwrap_or(0)
            );
        }
        other => panic!("unknown mode {other}"),
    }
}
