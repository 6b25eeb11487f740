//! `vault server`: unlock once, then serve agents over HTTP on loopback. The server's rules
//! (loopback, TLS, admin token, audit, refresher) are the library's, [`vault_server::Server`];
//! this is flags and the printed line.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context as _, Result};
use vault_server::{egress, Listen, Server, ServerError};

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
    broker: BrokerArgs,
}

/// `vault server`'s broker flags.
#[derive(clap::Args, Debug)]
pub struct BrokerArgs {
    /// Also run the egress broker (an HTTP forward proxy) on this loopback
    /// address; port 0 picks a free one (the printed line shows it).
    #[arg(long, value_name = "ADDR")]
    broker: Option<String>,
    /// Trust this PEM CA for upstreams too, beside Mozilla's roots (repeatable).
    #[arg(long, value_name = "FILE", requires = "broker")]
    broker_upstream_ca: Vec<PathBuf>,
    /// Let the broker connect to this private range on purpose (repeatable),
    /// e.g. 127.0.0.0/8; cloud metadata addresses stay refused.
    #[arg(long, value_name = "CIDR", requires = "broker")]
    broker_allow_private: Vec<String>,
    /// Price model tokens with this TOML file laid over the shipped table
    /// (default: VAULT_HOME/prices.toml when it exists).
    #[arg(long, value_name = "FILE", requires = "broker")]
    prices: Option<PathBuf>,
    /// Record no usage and enforce no [budget] (for measuring what accounting costs).
    #[arg(long, requires = "broker")]
    no_usage_accounting: bool,
    /// Client connections the broker serves at once; more get 503 broker_busy.
    #[arg(long, value_name = "N", default_value_t = egress::DEFAULT_MAX_CONNECTIONS as u32, value_parser = clap::value_parser!(u32).range(1..=65_536), requires = "broker")]
    broker_max_connections: u32,
    /// Close a relayed WebSocket after this long with no traffic, e.g. 10m.
    #[arg(long, value_name = "DURATION", default_value = "10m", value_parser = super::parse_duration_flag, requires = "broker")]
    broker_ws_idle_timeout: std::time::Duration,
}

pub fn run(ctx: &Context, args: Args) -> Result<()> {
    if args.request_timeout.is_zero() || args.request_timeout > std::time::Duration::from_secs(600)
    {
        return Err(exit::usage("--request-timeout must be between 1ms and 10m"));
    }
    if args.header_timeout.is_zero() || args.header_timeout > std::time::Duration::from_secs(600) {
        return Err(exit::usage("--header-timeout must be between 1ms and 10m"));
    }
    let mut builder = Server::builder()
        .listen(Listen::parse(&args.listen).map_err(server_error)?)
        .insecure_listen(args.insecure_listen)
        .admin_token_file(args.admin_token_file.clone())
        .request_timeout(args.request_timeout)
        .limits(vault_server::conn::Limits {
            header_timeout: args.header_timeout,
            max_connections: args.max_connections as usize,
            max_per_peer: args.max_connections_per_peer as usize,
        })
        .allowed_hosts(args.allowed_host.clone());
    if let (Some(cert), Some(key)) = (&args.tls_cert, &args.tls_key) {
        builder = builder.tls(cert.clone(), key.clone());
    }
    // Checked before the passphrase is asked for.
    let server = builder.build().map_err(server_error)?;
    if server.is_cleartext_beyond_loopback() {
        eprintln!(
            "vault: WARNING: serving secrets without TLS on {}; anyone on the network path can read them",
            args.listen
        );
    }
    // Request logs go to stderr: route, status, latency, codes; never headers or bodies.
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .with_target(false)
        .try_init();
    let mut vault = ctx.unlock()?;
    let broker = match args.broker.broker {
        None => None,
        Some(addr) => {
            let prices = if args.broker.no_usage_accounting {
                None
            } else {
                Some(vault_core::prices::PriceTable::load(
                    args.broker.prices.as_deref(),
                    vault.dir(),
                )?)
            };
            let options = egress::BrokerOptions {
                addr,
                upstream_ca: args.broker.broker_upstream_ca,
                allow_private: args.broker.broker_allow_private,
                prices,
                max_connections: args.broker.broker_max_connections as usize,
                ws_idle_timeout: args.broker.broker_ws_idle_timeout,
            };
            Some(egress::prepare(options, &mut vault).map_err(server_error)?)
        }
    };
    // Bound before the runtime's threads exist: a Unix socket's umask dance
    // is process-wide.
    let mut bound = server.bind(vault).map_err(server_error)?;
    if let Some(b) = &broker {
        bound = bound.with_broker_ca(b.ca_pem());
        if let Some(accounting) = b.accounting() {
            bound = bound.with_accounting(accounting);
        }
    }
    // Blocking threads run only message scans (the vault has its own thread):
    // a few suffice, and each extra thread would keep its own malloc arena,
    // which shows up as memory that grows under load.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .max_blocking_threads(4)
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        // The broker announces itself first, then the API (the order scripts rely on).
        if let Some(b) = broker {
            let addr = b.addr();
            let local = egress::start(b, bound.state())
                .await
                .with_context(|| format!("binding the broker on {addr}"))?;
            println!("broker listening on http://{local}");
            std::io::stdout().flush()?;
        }
        // Handlers first (a SIGTERM right after the address stops cleanly); the
        // socket is listening from here on: only now say where.
        let shutdown = shutdown_signal()?;
        println!("listening on {}", bound.address());
        std::io::stdout().flush()?;
        bound.serve(shutdown).await.map_err(server_error)
    })?;
    // The state (and the vault's keys) dropped with the runtime's tasks: zeroized.
    eprintln!("vault: stopped");
    Ok(())
}

/// The library's refusals keep the CLI's exit codes.
fn server_error(e: ServerError) -> anyhow::Error {
    match e {
        ServerError::Usage(m) => exit::usage(m),
        ServerError::Refused(m) => exit::refused(m),
        ServerError::Vault(v) => v.into(),
        other => anyhow::Error::new(other),
    }
}

/// Completes on SIGTERM or SIGINT; both handlers are installed when this returns.
fn shutdown_signal() -> std::io::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    Ok(async move {
        tokio::select! { _ = term.recv() => {}, _ = int.recv() => {} }
        eprintln!("vault: shutting down: finishing requests in flight");
    })
}
