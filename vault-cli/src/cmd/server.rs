//! `vault server`: unlock once, then serve agents over HTTP on loopback.

use std::io::Write;
use std::net::SocketAddr;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;

use anyhow::{Context as _, Result};
use vault_core::SecretString;

use super::Context;
use crate::exit;

/// `vault server`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Address to listen on; port 0 picks a free port (the printed line shows it).
    #[arg(long, default_value = "127.0.0.1:8200")]
    listen: String,
    /// Write a fresh admin token (0600) here at start; admin calls need it.
    #[arg(long, value_name = "FILE")]
    admin_token_file: PathBuf,
    /// Allow a non-loopback address without TLS (prints a warning). TLS itself
    /// is not built in yet: put a TLS proxy in front instead.
    #[arg(long)]
    insecure_listen: bool,
}

pub fn run(ctx: &Context, args: Args) -> Result<()> {
    let addr: SocketAddr = args.listen.parse().map_err(|_| {
        exit::usage(format!(
            "--listen {:?} is not an address like 127.0.0.1:8200",
            args.listen
        ))
    })?;
    if !addr.ip().is_loopback() {
        if !args.insecure_listen {
            return Err(exit::refused(format!(
                "{addr} is not a loopback address: tokens and secrets would cross the network in clear; \
                 listen on 127.0.0.1 behind a TLS proxy, or pass --insecure-listen"
            )));
        }
        eprintln!("vault: WARNING: serving secrets without TLS on {addr}; anyone on the network path can read them");
    }
    // Request logs go to stderr: route, status, latency, codes; never headers or bodies.
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .with_target(false)
        .try_init();
    let vault = ctx.unlock()?;
    let admin = new_admin_token()?;
    write_private(&args.admin_token_file, admin.expose_secret())?;
    let state = vault_server::AppState::new(vault, admin)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(addr).await.with_context(|| format!("binding {addr}"))?;
        let local = listener.local_addr()?;
        // The listener accepts from here on: only now announce it.
        println!("listening on http://{local}");
        std::io::stdout().flush()?;
        let shutdown = async {
            let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending().await } } => {}
            }
            eprintln!("vault: shutting down: finishing requests in flight");
        };
        let refresher = state.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
            loop {
                tick.tick().await;
                if let Err(e) = refresher.refresh().await {
                    eprintln!("vault: warning: refreshing revocations failed: {}", e.code());
                }
            }
        });
        vault_server::serve(listener, vault_server::app(state), shutdown).await?;
        anyhow::Ok(())
    })?;
    // The state (and the vault's keys) dropped with the runtime's tasks: zeroized.
    eprintln!("vault: stopped");
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
