//! `vault server`: unlock once, then serve agents over HTTP on loopback.

use std::io::Write;
use std::net::SocketAddr;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;

use anyhow::{Context as _, Result};
use vault_core::SecretString;

use super::{parse_duration_flag, Context};
use crate::exit;

/// `vault server`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Where to listen: HOST:PORT (port 0 picks a free port; the printed line
    /// shows it) or unix:PATH for a Unix socket only this user can open (0600).
    #[arg(long, default_value = "127.0.0.1:8200", value_name = "ADDR")]
    listen: String,
    /// Write a fresh admin token (0600) here at start; admin calls need it.
    #[arg(long, value_name = "FILE")]
    admin_token_file: PathBuf,
    /// Serve HTTPS with this PEM certificate chain (needs --tls-key).
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The certificate's PEM private key; must not be readable by group or others.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Allow a non-loopback address without TLS (prints a warning).
    #[arg(long, conflicts_with = "tls_cert")]
    insecure_listen: bool,
    /// Longest a request may take, body included, e.g. 15s (slow clients get 408).
    #[arg(long, value_name = "DURATION", default_value = "15s", value_parser = parse_duration_flag)]
    request_timeout: std::time::Duration,
    /// Longest a client may take to send a request's headers, and longest a
    /// kept-alive connection may sit idle, e.g. 10s; then it is closed.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_duration_flag)]
    header_timeout: std::time::Duration,
    /// Connections open at once; more are closed at accept.
    #[arg(long, value_name = "N", default_value_t = 1024, value_parser = clap::value_parser!(u32).range(1..=65_536))]
    max_connections: u32,
    /// Connections open at once from one peer address; more are closed at accept.
    #[arg(long, value_name = "N", default_value_t = 256, value_parser = clap::value_parser!(u32).range(1..=65_536))]
    max_connections_per_peer: u32,
    /// A host name (or address) clients reach this server by, besides
    /// loopback ones; `/metrics` refuses any other Host (DNS rebinding). Repeatable.
    #[arg(long, value_name = "NAME")]
    allowed_host: Vec<String>,
    #[command(flatten)]
    broker: super::broker::ServerArgs,
}

/// Where `--listen` points.
enum Place {
    Tcp(SocketAddr),
    Unix(PathBuf),
}

pub fn run(ctx: &Context, args: Args) -> Result<()> {
    let place = match args.listen.strip_prefix("unix:") {
        Some(path) if !path.is_empty() => Place::Unix(PathBuf::from(path)),
        _ => Place::Tcp(args.listen.parse().map_err(|_| {
            exit::usage(format!(
                "--listen {:?} is not an address like 127.0.0.1:8200 or unix:/path/to/socket",
                args.listen
            ))
        })?),
    };
    if args.request_timeout.is_zero() || args.request_timeout > std::time::Duration::from_secs(600)
    {
        return Err(exit::usage("--request-timeout must be between 1ms and 10m"));
    }
    if args.header_timeout.is_zero() || args.header_timeout > std::time::Duration::from_secs(600) {
        return Err(exit::usage("--header-timeout must be between 1ms and 10m"));
    }
    let limits = vault_server::conn::Limits {
        header_timeout: args.header_timeout,
        max_connections: args.max_connections as usize,
        max_per_peer: args.max_connections_per_peer as usize,
    };
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => {
            check_key_file(key)?;
            Some(vault_server::listen::tls_config(cert, key).map_err(exit::usage)?)
        }
        _ => None,
    };
    if let (Place::Unix(_), Some(_)) = (&place, &tls) {
        return Err(exit::usage(
            "TLS on a Unix socket adds nothing: the socket is already private to this user",
        ));
    }
    if let Place::Tcp(addr) = &place {
        if !addr.ip().is_loopback() && tls.is_none() {
            if !args.insecure_listen {
                return Err(exit::refused(format!(
                    "{addr} is not a loopback address: tokens and secrets would cross the network in clear; \
                     pass --tls-cert and --tls-key, or --insecure-listen behind a TLS proxy"
                )));
            }
            eprintln!("vault: WARNING: serving secrets without TLS on {addr}; anyone on the network path can read them");
        }
    }
    // Request logs go to stderr: route, status, latency, codes; never headers or bodies.
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .with_target(false)
        .try_init();
    let mut vault = ctx.unlock()?;
    let broker = super::broker::prepare(&args.broker, &mut vault)?;
    // Recorded so `vault doctor` can tell a server exposed without TLS.
    let where_ = match (&place, &tls) {
        (Place::Unix(p), _) => format!("unix:{}", p.display()),
        (Place::Tcp(a), Some(_)) => format!("https://{a}"),
        (Place::Tcp(a), None) => format!("http://{a}"),
    };
    vault.audit(
        &vault_core::Principal::Operator,
        None,
        "server.start",
        Some(&where_),
        "ok",
    )?;
    let admin = new_admin_token()?;
    write_private(&args.admin_token_file, admin.expose_secret())?;
    let mut state = vault_server::AppState::new(vault, admin)?
        .with_request_timeout(args.request_timeout)
        .with_allowed_hosts(args.allowed_host.clone());
    if let Some(b) = &broker {
        state = state.with_broker_ca(b.ca_pem());
    }
    // The socket is bound before the runtime's threads exist: its umask dance
    // is process-wide.
    let unix = match &place {
        Place::Unix(path) => Some(
            vault_server::listen::bind_unix(path)
                .map_err(|e| exit::refused(format!("--listen unix:{}: {e}", path.display())))?,
        ),
        Place::Tcp(_) => None,
    };
    // Blocking threads run only message scans (the vault has its own thread):
    // a few suffice, and each extra thread would keep its own malloc arena,
    // which shows up as memory that grows under load.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .max_blocking_threads(4)
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let refresher = state.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
            loop {
                tick.tick().await;
                refresher.flush_denials(false).await;
                if let Err(e) = refresher.refresh().await {
                    eprintln!(
                        "vault: warning: refreshing revocations failed: {}",
                        e.code()
                    );
                }
            }
        });
        if let Some(b) = broker {
            super::broker::start(b, state.clone()).await?;
        }
        let app = vault_server::app(state.clone());
        match (place, unix) {
            (Place::Unix(path), Some(std_listener)) => {
                let listener = tokio::net::UnixListener::from_std(std_listener)?;
                announce(&format!("unix:{}", path.display()))?;
                let served =
                    vault_server::conn::serve_with(listener, app, shutdown_signal(), limits).await;
                let _ = std::fs::remove_file(&path);
                served?;
            }
            (Place::Tcp(addr), _) => {
                let listener = tokio::net::TcpListener::bind(addr)
                    .await
                    .with_context(|| format!("binding {addr}"))?;
                let local = listener.local_addr()?;
                match tls {
                    Some(config) => {
                        let listener = vault_server::listen::TlsListener::new(listener, config)?;
                        announce(&format!("https://{local}"))?;
                        vault_server::conn::serve_with(listener, app, shutdown_signal(), limits)
                            .await?;
                    }
                    None => {
                        announce(&format!("http://{local}"))?;
                        vault_server::conn::serve_with(listener, app, shutdown_signal(), limits)
                            .await?;
                    }
                }
            }
            (Place::Unix(_), None) => unreachable!("bound above"),
        }
        state.flush_denials(true).await;
        let stopped = state
            .with_vault(move |v| {
                Ok(v.audit(
                    &vault_core::Principal::Operator,
                    None,
                    "server.stop",
                    Some(&where_),
                    "ok",
                )?)
            })
            .await;
        if stopped.is_err() {
            eprintln!("vault: warning: could not record the stop in the audit trail");
        }
        anyhow::Ok(())
    })?;
    // The state (and the vault's keys) dropped with the runtime's tasks: zeroized.
    eprintln!("vault: stopped");
    Ok(())
}

/// The listener accepts from here on: only now say where.
fn announce(place: &str) -> Result<()> {
    println!("listening on {place}");
    std::io::stdout().flush()?;
    Ok(())
}

/// Completes on SIGTERM or SIGINT.
async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending().await } } => {}
    }
    eprintln!("vault: shutting down: finishing requests in flight");
}

/// A TLS private key others can read is refused, with the command that fixes it.
fn check_key_file(path: &std::path::Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(path)
        .map_err(|e| exit::usage(format!("--tls-key {}: {e}", path.display())))?;
    if meta.permissions().mode() & 0o077 != 0 {
        return Err(exit::refused(format!(
            "{} is readable by other users; run: chmod 600 {}",
            path.display(),
            path.display()
        )));
    }
    Ok(())
}

fn new_admin_token() -> Result<SecretString> {
    let mut bytes = [0u8; 32];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut bytes))
        .context("reading random bytes")?;
    let token: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    zeroize::Zeroize::zeroize(&mut bytes);
    Ok(SecretString::new(format!("vadm_{token}")))
}

fn write_private(path: &std::path::Path, text: &str) -> Result<()> {
    let _ = std::fs::remove_file(path);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("writing the admin token to {}", path.display()))?;
    f.write_all(text.as_bytes())?;
    f.write_all(b"\n")?;
    Ok(())
}
