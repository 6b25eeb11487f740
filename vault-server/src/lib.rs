//! vault-server: the vault's HTTP API, so agents in their own processes and
//! containers get tokens, secrets and env without the passphrase.
//!
//! What lives here: the server's own rules and lifecycle ([`Server::builder`]:
//! listening, TLS checks, admin token, rotation resume, start/stop audit,
//! revocation refresher, suspension notices), the axum router ([`app`]), the
//! accept loop with connection limits and graceful shutdown ([`serve`], [`conn`]), error mapping to `{"error": {"code", "message"}}`,
//! counters for `/metrics`, and the web console at `/ui/` (module `console`). What must not: SQL, crypto, access rules;
//! those are vault-core's, reached through one `Vault` behind a mutex (one
//! writer) on blocking threads. Token signatures and revocation are checked
//! in memory, before the vault is touched.

#![deny(missing_docs)]

pub mod broker;
mod checkpoints;
pub mod conn;
mod console;
mod denials;
pub mod egress;
mod error;
pub mod listen;
mod routes;
mod server;
mod state;
mod worker;

use std::future::Future;
use std::time::Duration;

use axum::Router;
use tower::limit::ConcurrencyLimitLayer;

pub use crate::error::ApiError;
pub use crate::server::{
    Bound, Listen, Server, ServerBuilder, ServerError, Serving, REFRESH_EVERY,
};
pub use crate::state::AppState;

/// Largest request body accepted.
pub const MAX_BODY: usize = 64 * 1024;
/// Largest total of header names and values accepted (larger gets 431;
/// beyond hyper's own ~400 KiB buffer the connection is refused outright).
pub const MAX_HEADER_BYTES: usize = 16 * 1024;
/// Requests in flight at once; more wait.
pub const MAX_IN_FLIGHT: usize = 256;

/// How long one request may take, body included, unless configured otherwise.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(15);

/// The runtime a server runs on. Blocking threads run only message scans
/// (the vault has its own thread): a few suffice, and each extra thread would
/// keep its own malloc arena, which shows up as memory that grows under load.
///
/// # Errors
/// The runtime's threads could not be started.
pub fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .max_blocking_threads(4)
        .enable_all()
        .build()
}

/// Completes on SIGTERM or SIGINT, calling `on_signal` first; both handlers
/// are installed when this returns (so a signal right after cannot kill the
/// process before requests in flight finish).
///
/// # Errors
/// A handler could not be installed.
pub fn shutdown_signal(
    on_signal: impl FnOnce() + Send + 'static,
) -> std::io::Result<impl Future<Output = ()> + Send> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    Ok(async move {
        tokio::select! { _ = term.recv() => {}, _ = int.recv() => {} }
        on_signal();
    })
}

/// The whole API as a router over `state`.
pub fn app(state: AppState) -> Router {
    routes::router(state).layer(ConcurrencyLimitLayer::new(MAX_IN_FLIGHT))
}

/// Serves `app` on `listener` (TCP, [`listen::TlsListener`] or a Unix
/// socket) with the default [`conn::Limits`] until `shutdown` completes;
/// requests in flight finish first.
///
/// # Errors
/// I/O errors of the accept loop.
pub async fn serve<L>(
    listener: L,
    app: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()>
where
    L: axum::serve::Listener,
    L::Addr: conn::PeerOf,
{
    conn::serve_with(listener, app, shutdown, conn::Limits::default()).await
}
