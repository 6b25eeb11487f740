//! Issue 4, how the server listens: TLS with a real certificate and the CLI
//! as a client over https, a Unix socket only its owner can open, the refusal
//! of clear text beyond loopback, a slow body cut off by the deadline, and
//! (issue 13) header timeouts and connection caps, and remote mode over the socket.

use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;

use crate::common::*;
use crate::server::{exchange, raw_http, setup, start_with, CANARY};

/// A self-signed certificate for localhost and 127.0.0.1, written as PEM
/// files (key 0600); generated here so no private key lives in the repository.
fn certificate(env: &Env) -> (std::path::PathBuf, std::path::PathBuf) {
    let made =
        rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    let cert = env.dir.path().join("cert.pem");
    let key = env.dir.path().join("key.pem");
    std::fs::write(&cert, made.cert.pem()).unwrap();
    write_private(&key, &made.key_pair.serialize_pem());
    (cert, key)
}

#[test]
fn tls_serves_agents_beyond_loopback_and_the_cli_verifies_the_certificate() {
    let (env, key, _) = setup();
    let (cert, key_file) = certificate(&env);
    let s = start_with(
        &env,
        &[
            "--listen",
            "0.0.0.0:0",
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key_file.to_str().unwrap(),
        ],
    );
    let port = s
        .base
        .strip_prefix("https://0.0.0.0:")
        .unwrap_or_else(|| panic!("{}", s.base))
        .to_owned();
    let addr = format!("https://localhost:{port}");
    // the CLI in remote mode, trusting only this certificate
    let out = env
        .vault(&["get", "GITHUB_TOKEN"])
        .env("VAULT_ADDR", &addr)
        .env("VAULT_AGENT_KEY", &key)
        .env("VAULT_CACERT", &cert)
        .env_remove("VAULT_PASSPHRASE_FILE")
        .assert()
        .success();
    assert_eq!(stdout_of(&out).trim(), CANARY);
    // without the CA the certificate is not trusted: no key is sent, no value printed
    let out = env
        .vault(&["get", "GITHUB_TOKEN"])
        .env("VAULT_ADDR", &addr)
        .env("VAULT_AGENT_KEY", &key)
        .env_remove("VAULT_PASSPHRASE_FILE")
        .assert()
        .code(2);
    assert!(!stdout_of(&out).contains(CANARY));
    assert!(stderr_of(&out).contains("cannot reach the vault server"));
    // clear text to the TLS port gets no HTTP answer
    let reply = raw_http(
        &format!("http://127.0.0.1:{port}"),
        "GET /v1/health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert!(!reply.starts_with("HTTP/1.1 200"), "{reply}");
    let log = std::fs::read(&s.stderr).unwrap();
    assert!(!contains(&log, CANARY.as_bytes()));
    assert!(!contains(&log, key.as_bytes()));
}

#[test]
fn tls_setup_errors_are_clear_and_nothing_listens() {
    let env = Env::new();
    let (cert, key) = certificate(&env);
    let admin = env.dir.path().join("admin");
    let base = |extra: &[&str]| {
        let mut args = vec!["server", "--admin-token-file", admin.to_str().unwrap()];
        args.extend_from_slice(extra);
        args.iter().map(|s| s.to_string()).collect::<Vec<_>>()
    };
    let run = |args: Vec<String>| {
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        env.vault(&refs).assert()
    };
    // a key others can read
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = run(base(&[
        "--listen",
        "127.0.0.1:0",
        "--tls-cert",
        cert.to_str().unwrap(),
        "--tls-key",
        key.to_str().unwrap(),
    ]))
    .code(1);
    assert!(stderr_of(&out).contains("chmod 600"), "{}", stderr_of(&out));
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    // a certificate file that holds no certificate
    let junk = env.dir.path().join("junk.pem");
    write_private(&junk, "not a certificate\n");
    let out = run(base(&[
        "--listen",
        "127.0.0.1:0",
        "--tls-cert",
        junk.to_str().unwrap(),
        "--tls-key",
        key.to_str().unwrap(),
    ]))
    .code(2);
    assert!(stderr_of(&out).contains("junk.pem"), "{}", stderr_of(&out));
    // the key alone, or TLS together with --insecure-listen, are usage errors
    run(base(&["--tls-key", key.to_str().unwrap()])).code(2);
    // clear text beyond loopback is refused without --insecure-listen
    let out = run(base(&["--listen", "0.0.0.0:0"])).code(1);
    assert!(
        stderr_of(&out).contains("--tls-cert"),
        "{}",
        stderr_of(&out)
    );
    // and the CLI will not send a key over plain HTTP to another host
    let out = env
        .vault(&["get", "GITHUB_TOKEN"])
        .env("VAULT_ADDR", "http://192.0.2.1:8200")
        .env("VAULT_AGENT_KEY", "avk_unused")
        .assert()
        .code(1);
    assert!(stderr_of(&out).contains("https://"), "{}", stderr_of(&out));
}

/// One HTTP/1.1 exchange over a Unix socket.
fn unix_http(path: &std::path::Path, request: &str) -> String {
    let conn = std::os::unix::net::UnixStream::connect(path).unwrap();
    conn.set_read_timeout(Some(std::time::Duration::from_secs(20)))
        .unwrap();
    exchange(conn, request)
}

#[test]
fn a_unix_socket_is_private_to_its_owner_and_removed_on_stop() {
    let (env, key, _) = setup();
    let socket = env.dir.path().join("vault.sock");
    let spec = format!("unix:{}", socket.display());
    let s = start_with(&env, &["--listen", &spec]);
    assert_eq!(s.base, spec);
    let mode = std::fs::symlink_metadata(&socket)
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let reply = unix_http(
        &socket,
        &format!(
            "POST /v1/auth/token HTTP/1.1\r\nHost: vault\r\nAuthorization: Bearer {key}\r\n\
             Content-Length: 0\r\nConnection: close\r\n\r\n"
        ),
    );
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    let token = reply
        .split("\"token\":\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .unwrap()
        .to_owned();
    let reply = unix_http(
        &socket,
        &format!(
            "GET /v1/secrets/GITHUB_TOKEN HTTP/1.1\r\nHost: vault\r\nAuthorization: Bearer {token}\r\n\
             Connection: close\r\n\r\n"
        ),
    );
    assert!(reply.contains(CANARY), "{reply}");
    // a second server cannot take over a live socket
    let admin2 = env.dir.path().join("admin2");
    let out = env
        .vault(&[
            "server",
            "--listen",
            &spec,
            "--admin-token-file",
            admin2.to_str().unwrap(),
        ])
        .assert()
        .code(1);
    assert!(stderr_of(&out).contains("in use"), "{}", stderr_of(&out));
    terminate(&s.child);
    let mut s = s;
    assert_eq!(s.child.wait().unwrap().code(), Some(0));
    assert!(!socket.exists(), "the socket is removed on a graceful stop");
    // a path that is not a socket is never deleted
    write_private(&socket, "precious");
    let out = env
        .vault(&[
            "server",
            "--listen",
            &spec,
            "--admin-token-file",
            admin2.to_str().unwrap(),
        ])
        .assert()
        .code(1);
    assert!(
        stderr_of(&out).contains("not a socket"),
        "{}",
        stderr_of(&out)
    );
    assert_eq!(std::fs::read_to_string(&socket).unwrap(), "precious");
}

#[test]
fn a_slow_body_is_cut_off_at_the_request_deadline_with_json_408() {
    let (env, key, _) = setup();
    let s = start_with(
        &env,
        &["--listen", "127.0.0.1:0", "--request-timeout", "1s"],
    );
    let addr = s.base.trim_start_matches("http://").to_owned();
    let mut conn = std::net::TcpStream::connect(&addr).unwrap();
    conn.set_read_timeout(Some(std::time::Duration::from_millis(200)))
        .unwrap();
    conn.write_all(
        format!(
            "POST /v1/auth/token HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\r\n\
             Content-Type: application/json\r\nContent-Length: 64\r\n\r\n{{"
        )
        .as_bytes(),
    )
    .unwrap();
    // one byte every 200 ms, for at most 8 s: the server must answer first
    let started = std::time::Instant::now();
    let mut reply = Vec::new();
    while started.elapsed() < std::time::Duration::from_secs(8) {
        if conn.write_all(b" ").is_err() {
            break;
        }
        let mut buf = [0u8; 4096];
        match conn.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                reply.extend_from_slice(&buf[..n]);
                if contains(&reply, b"}}") {
                    break;
                }
            }
            Err(_) => {}
        }
    }
    let reply = String::from_utf8_lossy(&reply);
    assert!(reply.starts_with("HTTP/1.1 408"), "{reply}");
    assert!(reply.contains(r#""code":"timeout""#), "{reply}");
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
}

/// A connection from `source` (a loopback address of this host) to `addr`.
fn connect_from(source: &str, addr: std::net::SocketAddr) -> std::net::TcpStream {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind(format!("{source}:0").parse().unwrap()).unwrap();
        let stream = socket.connect(addr).await.unwrap();
        let stream = stream.into_std().unwrap();
        stream.set_nonblocking(false).unwrap();
        stream
            .set_read_timeout(Some(std::time::Duration::from_secs(6)))
            .unwrap();
        stream
    })
}

/// Reads `conn` until the server closes it (EOF or reset, or 6 s of
/// silence): whether that came within `within`, and what was sent.
fn closed_within(mut conn: std::net::TcpStream, within: std::time::Duration) -> (bool, String) {
    let start = std::time::Instant::now();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match conn.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
    (
        start.elapsed() < within,
        String::from_utf8_lossy(&got).into_owned(),
    )
}

const PARTIAL: &str = "GET /v1/health HTTP/1.1\r\nHost: x\r\nX-Slow: ";
const HEALTH: &str = "GET /v1/health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";

// issue 13, finding 7
#[test]
fn idle_and_half_sent_connections_time_out_and_are_capped_per_peer_and_in_total() {
    let (env, _, _) = setup();
    let s = start_with(
        &env,
        &[
            "--listen",
            "127.0.0.1:0",
            "--header-timeout",
            "1s",
            "--max-connections",
            "8",
            "--max-connections-per-peer",
            "4",
        ],
    );
    let addr: std::net::SocketAddr = s.base.trim_start_matches("http://").parse().unwrap();
    let slow = |source: &str| {
        let mut c = connect_from(source, addr);
        c.write_all(PARTIAL.as_bytes()).unwrap();
        c
    };
    let served = |source: &str| {
        let mut c = connect_from(source, addr);
        let _ = c.write_all(HEALTH.as_bytes());
        closed_within(c, std::time::Duration::from_secs(5)).1
    };
    // Closed at once and unanswered, tried until the server has accepted the
    // slow connections before it (under load that lags behind our connects),
    // and well before their 1 s header timeout frees the slots again.
    let refused = |source: &str| {
        let until = std::time::Instant::now() + std::time::Duration::from_millis(700);
        loop {
            let mut c = connect_from(source, addr);
            let _ = c.write_all(HEALTH.as_bytes());
            let (quick, reply) = closed_within(c, std::time::Duration::from_millis(250));
            if quick && reply.is_empty() {
                return Ok(());
            }
            if std::time::Instant::now() > until {
                return Err(reply);
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    };
    // one peer fills its share with headers it never finishes
    let first: Vec<_> = (0..4).map(|_| slow("127.0.0.1")).collect();
    // its next connection is closed at once, unanswered...
    refused("127.0.0.1").expect("a fifth connection from one peer was served");
    // ...while another peer is served
    assert!(served("127.0.0.2").starts_with("HTTP/1.1 200"));
    // a second peer takes the rest of the total; a third gets nothing
    let second: Vec<_> = (0..4).map(|_| slow("127.0.0.3")).collect();
    refused("127.0.0.4").expect("a connection past the total was served");
    // every half-sent request is cut off by the header timeout (1 s)
    for c in first.into_iter().chain(second) {
        let (in_time, reply) = closed_within(c, std::time::Duration::from_secs(4));
        assert!(in_time, "a half-sent request was kept open: {reply:?}");
        assert!(!reply.contains("200 OK"), "{reply}");
    }
    // and then the slots are free again
    std::thread::sleep(std::time::Duration::from_millis(100));
    assert!(served("127.0.0.1").starts_with("HTTP/1.1 200"));
    // an idle kept-alive connection is closed too
    let mut c = connect_from("127.0.0.1", addr);
    c.write_all(b"GET /v1/health HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let (in_time, reply) = closed_within(c, std::time::Duration::from_secs(4));
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    assert!(in_time, "an idle keep-alive connection was kept open");
    // the server is alive throughout
    assert!(raw_http(&s.base, HEALTH).starts_with("HTTP/1.1 200"));
}

/// The `check` ids of a `vault doctor --json` answer.
fn doctor_checks(out: &assert_cmd::assert::Assert) -> Vec<String> {
    let v: serde_json::Value = serde_json::from_str(&stdout_of(out)).unwrap();
    v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["check"].as_str().unwrap().to_owned())
        .collect()
}

/// Lets hermes-marketing read hermes-finance/STRIPE_KEY.
fn grant_stripe_to_marketing(env: &Env) {
    let policy = env.dir.path().join("grant.toml");
    std::fs::write(
        &policy,
        "secrets = [\"*\", \"hermes-finance/STRIPE_KEY\"]\n",
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
}

// issue 13, findings 9 and 22
#[test]
fn remote_mode_works_over_the_private_socket_and_doctor_warns_about_plain_loopback() {
    let (env, key, _) = setup();
    grant_stripe_to_marketing(&env);
    let socket = env.dir.path().join("vault.sock");
    let spec = format!("unix:{}", socket.display());
    let s = start_with(&env, &["--listen", &spec]);
    let remote = |args: &[&str]| {
        let mut c = env.vault(args);
        c.env_remove("VAULT_PASSPHRASE_FILE")
            .env("VAULT_ADDR", &spec)
            .env("VAULT_AGENT_KEY", &key);
        c
    };
    assert_eq!(
        stdout_of(&remote(&["get", "GITHUB_TOKEN"]).assert().success()).trim(),
        CANARY
    );
    // a granted read names another agent's secret: one encoded path segment
    assert_eq!(
        stdout_of(
            &remote(&["get", "hermes-finance/STRIPE_KEY"])
                .assert()
                .success()
        )
        .trim(),
        "finance-only-value"
    );
    let v: serde_json::Value = serde_json::from_str(&stdout_of(
        &remote(&["env", "--format", "json"]).assert().success(),
    ))
    .unwrap();
    assert_eq!(v["env"]["GITHUB_TOKEN"], CANARY);
    assert!(stdout_of(&remote(&["token"]).assert().success()).starts_with("avt_"));
    // errors keep their codes over the socket
    remote(&["get", "NOT_THERE"]).assert().code(4);
    // a socket server draws no doctor warning, neither does such a VAULT_ADDR
    let out = env
        .vault(&["doctor", "--json"])
        .env("VAULT_ADDR", &spec)
        .assert()
        .success();
    let checks = doctor_checks(&out);
    assert!(!checks.iter().any(|c| c.contains("plain")), "{checks:?}");
    terminate(&s.child);
    let mut s = s;
    assert_eq!(s.child.wait().unwrap().code(), Some(0));
    // with the server gone nothing answers, and nothing is printed
    let out = remote(&["get", "GITHUB_TOKEN"]).assert().code(2);
    assert!(stdout_of(&out).is_empty());
    // plain HTTP on loopback still works, and doctor says what it risks
    let s = start_with(&env, &["--listen", "127.0.0.1:0"]);
    let out = env
        .vault(&["get", "hermes-finance/STRIPE_KEY"])
        .env_remove("VAULT_PASSPHRASE_FILE")
        .env("VAULT_ADDR", &s.base)
        .env("VAULT_AGENT_KEY", &key)
        .assert()
        .success();
    assert_eq!(stdout_of(&out).trim(), "finance-only-value");
    let out = env
        .vault(&["doctor", "--json"])
        .env("VAULT_ADDR", &s.base)
        .assert()
        .success();
    let checks = doctor_checks(&out);
    assert!(
        checks.contains(&"server-plain-loopback".to_owned()),
        "{checks:?}"
    );
    assert!(
        checks.contains(&"remote-plain-http".to_owned()),
        "{checks:?}"
    );
    // a user part cannot make another host pass for loopback (finding 16)
    let port = s.base.rsplit(':').next().unwrap().to_owned();
    let out = env
        .vault(&["get", "GITHUB_TOKEN"])
        .env_remove("VAULT_PASSPHRASE_FILE")
        .env("VAULT_ADDR", format!("http://[::1]@192.0.2.2:{port}"))
        .env("VAULT_AGENT_KEY", &key)
        .assert()
        .code(2);
    assert!(stderr_of(&out).contains("user part"), "{}", stderr_of(&out));
}
