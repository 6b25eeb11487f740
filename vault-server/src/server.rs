//! The server as a library: [`Server::builder`] owns the rules a vault server
//! keeps whoever embeds it, so `vault server` is only flag parsing on top and
//! another program gets the same guarantees. Those rules: clear text beyond
//! loopback is refused unless asked for, a TLS key others can read is
//! refused, the admin token is fresh randomness written 0600, an interrupted
//! rotation is finished before the first request, start and stop are in the
//! audit trail with the address really bound, revocations made by other
//! processes take effect within a second, and suspensions are notified.
//!
//! Three steps, so each failure comes where its cause is: [`ServerBuilder::build`]
//! checks the configuration (no vault needed), [`Server::bind`] takes the
//! unlocked vault and binds (before any runtime thread exists: the Unix
//! socket's umask is process-wide), and [`Bound::serve`] runs until shutdown.

use std::collections::HashSet;
use std::future::Future;
use std::io::Write;
use std::net::SocketAddr;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use vault_core::AuditAction;

use vault_core::{Principal, RotationReport, SecretString, Vault};
use zeroize::Zeroize;

use crate::conn::Limits;
use crate::state::AppState;

/// How often revocations, key states and suspensions are reloaded.
pub const REFRESH_EVERY: Duration = Duration::from_millis(500);

/// Where the server listens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Listen {
    /// HOST:PORT; port 0 picks a free port ([`Bound::address`] shows it).
    Tcp(SocketAddr),
    /// A Unix socket only this user can open (0600).
    Unix(PathBuf),
}

impl Listen {
    /// `HOST:PORT` or `unix:PATH`.
    ///
    /// # Errors
    /// [`ServerError::Usage`] for anything else.
    pub fn parse(text: &str) -> Result<Listen, ServerError> {
        // `localhost:PORT` as people write it: IPv4 loopback, not whatever a
        // resolver answers (issue 19)
        let localhost = text.strip_prefix("localhost:");
        if let Some(port) = localhost.and_then(|p| p.parse::<u16>().ok()) {
            return Ok(Listen::Tcp(SocketAddr::from(([127, 0, 0, 1], port))));
        }
        match text.strip_prefix("unix:") {
            Some(path) if !path.is_empty() => Ok(Listen::Unix(PathBuf::from(path))),
            _ => text.parse().map(Listen::Tcp).map_err(|_| {
                ServerError::Usage(format!(
                    "--listen {text:?} is not an address like 127.0.0.1:8200, localhost:8200 or unix:/path/to/socket"
                ))
            }),
        }
    }
}

/// Why the server would not start.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The configuration makes no sense (bad address, unreadable PEM, TLS on a socket).
    #[error("{0}")]
    Usage(String),
    /// The configuration would be unsafe, or its place is taken.
    #[error("{0}")]
    Refused(String),
    /// The vault failed.
    #[error(transparent)]
    Vault(#[from] vault_core::Error),
    /// Accepting or writing failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The OS error.
        source: std::io::Error,
    },
}

impl ServerError {
    /// Which kind of failure this is, and its stable name.
    pub fn class(&self) -> (vault_core::Class, std::borrow::Cow<'static, str>) {
        use vault_core::Class;
        match self {
            ServerError::Usage(_) => (Class::Usage, "usage".into()),
            ServerError::Refused(_) => (Class::Refused, "refused".into()),
            ServerError::Vault(e) => (e.class(), e.code().into()),
            ServerError::Io { .. } => (Class::Usage, "error".into()),
        }
    }
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> ServerError {
    let what = what.into();
    move |source| ServerError::Io { what, source }
}

/// Entry point: `Server::builder().listen(..).build()?.bind(vault)?.serve(shutdown)`.
pub struct Server {
    config: ServerBuilder,
    tls: Option<Arc<rustls::ServerConfig>>,
}

/// The server's configuration; see [`Server::builder`].
#[derive(Clone, Debug)]
pub struct ServerBuilder {
    listen: Listen,
    tls: Option<(PathBuf, PathBuf)>,
    insecure_listen: bool,
    admin_token_file: Option<PathBuf>,
    request_timeout: Duration,
    limits: Limits,
    allowed_hosts: Vec<String>,
}

impl Server {
    /// A server on 127.0.0.1:8200, plain HTTP, default limits.
    pub fn builder() -> ServerBuilder {
        ServerBuilder {
            listen: Listen::Tcp(SocketAddr::from(([127, 0, 0, 1], 8200))),
            tls: None,
            insecure_listen: false,
            admin_token_file: None,
            request_timeout: crate::DEFAULT_REQUEST_TIMEOUT,
            limits: Limits::default(),
            allowed_hosts: Vec::new(),
        }
    }
}

impl ServerBuilder {
    /// Where to listen.
    pub fn listen(mut self, listen: Listen) -> Self {
        self.listen = listen;
        self
    }

    /// Serve HTTPS with this PEM certificate chain and private key.
    pub fn tls(mut self, cert: PathBuf, key: PathBuf) -> Self {
        self.tls = Some((cert, key));
        self
    }

    /// Allow a non-loopback TCP address without TLS (behind a TLS proxy).
    pub fn insecure_listen(mut self, allow: bool) -> Self {
        self.insecure_listen = allow;
        self
    }

    /// Write the fresh admin token (0600) here at bind.
    pub fn admin_token_file(mut self, path: PathBuf) -> Self {
        self.admin_token_file = Some(path);
        self
    }

    /// Longest a request may take, body included.
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// Connection limits and the header timeout.
    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// Host names, besides loopback ones, that `/metrics` answers to.
    pub fn allowed_hosts(mut self, hosts: Vec<String>) -> Self {
        self.allowed_hosts = hosts;
        self
    }

    /// Checks the configuration and loads the TLS files.
    ///
    /// # Errors
    /// [`ServerError::Refused`] for clear text beyond loopback without
    /// [`Self::insecure_listen`], or a TLS key others can read;
    /// [`ServerError::Usage`] for unusable PEM files, TLS on a Unix socket,
    /// or a request or header timeout of zero or over 10 minutes.
    pub fn build(self) -> Result<Server, ServerError> {
        let in_range = |d: Duration| !d.is_zero() && d <= Duration::from_secs(600);
        if !in_range(self.request_timeout) {
            return Err(ServerError::Usage(
                "--request-timeout must be between 1ms and 10m".into(),
            ));
        }
        if !in_range(self.limits.header_timeout) {
            return Err(ServerError::Usage(
                "--header-timeout must be between 1ms and 10m".into(),
            ));
        }
        let tls = match &self.tls {
            Some((cert, key)) => {
                check_key_file(key)?;
                Some(crate::listen::tls_config(cert, key).map_err(ServerError::Usage)?)
            }
            None => None,
        };
        match &self.listen {
            Listen::Unix(_) if tls.is_some() => {
                return Err(ServerError::Usage(
                    "TLS on a Unix socket adds nothing: the socket is already private to this user"
                        .into(),
                ))
            }
            Listen::Tcp(addr)
                if !addr.ip().is_loopback() && tls.is_none() && !self.insecure_listen =>
            {
                return Err(ServerError::Refused(format!(
                    "{addr} is not a loopback address: tokens and secrets would cross the network in clear; \
                     pass --tls-cert and --tls-key, or --insecure-listen behind a TLS proxy"
                )))
            }
            _ => {}
        }
        Ok(Server { config: self, tls })
    }
}

impl Server {
    /// Whether this server will serve clear text beyond loopback (allowed by
    /// [`ServerBuilder::insecure_listen`]); the caller should warn.
    pub fn is_cleartext_beyond_loopback(&self) -> bool {
        matches!(&self.config.listen, Listen::Tcp(a) if !a.ip().is_loopback() && self.tls.is_none())
    }

    /// Takes the unlocked vault: finishes interrupted rotations (notifying
    /// them), binds, records `server.start` with the bound address, and
    /// writes a fresh admin token. Needs no runtime; a Unix socket is bound
    /// under a process-wide umask, so bind before starting threads that
    /// create files.
    ///
    /// # Errors
    /// The place is in use or cannot be bound, or the vault fails.
    pub fn bind(self, mut vault: Vault) -> Result<Bound, ServerError> {
        // A rotation a crash interrupted is finished before any request is served.
        let resumed = vault_guard::notify::resume_rotations(&mut vault)?;
        for err in &resumed.undelivered {
            tracing::warn!("notification failed: {err}");
        }
        let resumed = resumed.reports;
        // Requests a previous server held for approval died with it: close
        // their approvals (audited), so approving one later sends nothing.
        let abandoned = vault.abandon_egress_holds()?;
        if abandoned > 0 {
            tracing::info!("closed {abandoned} held request(s) of a previous server");
        }
        let (listener, address) = match &self.config.listen {
            Listen::Unix(path) => {
                let l = crate::listen::bind_unix(path).map_err(|e| {
                    ServerError::Refused(format!("--listen unix:{}: {e}", path.display()))
                })?;
                (
                    Listener::Unix(l, path.clone()),
                    format!("unix:{}", path.display()),
                )
            }
            Listen::Tcp(addr) => {
                let l = std::net::TcpListener::bind(addr).map_err(io(format!("binding {addr}")))?;
                l.set_nonblocking(true).map_err(io("binding"))?;
                let local = l.local_addr().map_err(io("binding"))?;
                let scheme = if self.tls.is_some() { "https" } else { "http" };
                (Listener::Tcp(l), format!("{scheme}://{local}"))
            }
        };
        // Recorded with the real port, so `vault doctor` can tell where it listens.
        vault.audit(
            &Principal::Operator,
            None,
            AuditAction::ServerStart,
            Some(&address),
            vault_core::AuditOutcome::Ok,
        )?;
        let admin = new_admin_token()?;
        if let Some(path) = &self.config.admin_token_file {
            write_private(path, admin.expose_secret())?;
        }
        let state = AppState::new(vault, admin)?
            .with_request_timeout(self.config.request_timeout)
            .with_allowed_hosts(self.config.allowed_hosts.clone())
            .with_tls(self.tls.is_some());
        Ok(Bound {
            state,
            listener,
            address,
            tls: self.tls,
            limits: self.config.limits,
            resumed,
        })
    }
}

enum Listener {
    Tcp(std::net::TcpListener),
    Unix(std::os::unix::net::UnixListener, PathBuf),
}

/// A bound server, ready to serve.
pub struct Bound {
    state: AppState,
    listener: Listener,
    address: String,
    tls: Option<Arc<rustls::ServerConfig>>,
    limits: Limits,
    resumed: Vec<RotationReport>,
}

impl Bound {
    /// Where clients reach it: `http://ADDR`, `https://ADDR` or `unix:PATH`,
    /// with the port really bound.
    pub fn address(&self) -> &str {
        &self.address
    }

    /// The rotations finished at bind (a crash had interrupted them).
    pub fn resumed(&self) -> &[RotationReport] {
        &self.resumed
    }

    /// The admin token (also written to the admin token file, if one was given).
    pub fn admin_token(&self) -> &SecretString {
        &self.state.inner.admin_token
    }

    /// The same bound server also serving `pem` at `GET /v1/broker/ca.pem` (the broker's
    /// CA). Call before [`Bound::state`] hands out a clone.
    pub fn with_broker_ca(mut self, pem: String) -> Bound {
        self.state = self.state.with_broker_ca(pem);
        self
    }

    /// The same bound server exporting the broker's usage counters at
    /// `/metrics`. Call before [`Bound::state`] hands out a clone.
    pub fn with_accounting(
        mut self,
        accounting: std::sync::Arc<vault_broker::Accounting>,
    ) -> Bound {
        self.state = self.state.with_accounting(accounting);
        self
    }

    /// The shared state (for embedding the router elsewhere).
    pub fn state(&self) -> AppState {
        self.state.clone()
    }

    /// Serves until `shutdown` completes (requests in flight finish), then
    /// records `server.stop`. Runs the revocation refresher alongside.
    ///
    /// # Errors
    /// Accept-loop I/O errors.
    pub async fn serve(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), ServerError> {
        let Bound {
            state,
            listener,
            address,
            tls,
            limits,
            resumed: _,
        } = self;
        let refresher = tokio::spawn(refresh_loop(state.clone()));
        let app = crate::app(state.clone());
        let served = match listener {
            Listener::Unix(std_listener, path) => {
                let listener =
                    tokio::net::UnixListener::from_std(std_listener).map_err(io("listening"))?;
                let served = crate::conn::serve_with(listener, app, shutdown, limits).await;
                let _ = std::fs::remove_file(&path);
                served
            }
            Listener::Tcp(std_listener) => {
                let listener =
                    tokio::net::TcpListener::from_std(std_listener).map_err(io("listening"))?;
                match tls {
                    Some(config) => {
                        let listener = crate::listen::TlsListener::new(listener, config)
                            .map_err(io("listening"))?;
                        crate::conn::serve_with(listener, app, shutdown, limits).await
                    }
                    None => crate::conn::serve_with(listener, app, shutdown, limits).await,
                }
            }
        };
        refresher.abort();
        state.flush_denials(true).await;
        // the broker's usage records still waiting to fill a batch (issue 16)
        if let Some(accounting) = &state.inner.accounting {
            accounting.flush(std::time::Duration::from_secs(5)).await;
        }
        let stopped = state
            .with_vault(move |v| {
                // requests still held die with this process
                v.abandon_egress_holds()?;
                Ok(v.audit(
                    &Principal::Operator,
                    None,
                    AuditAction::ServerStop,
                    Some(&address),
                    vault_core::AuditOutcome::Ok,
                )?)
            })
            .await;
        if stopped.is_err() {
            tracing::error!("could not record the stop in the audit trail");
        }
        served.map_err(io("serving"))
    }

    /// Serves on a thread of its own, with a runtime of its own, for a
    /// program that has no tokio runtime (a CLI, a test, a sync daemon).
    /// [`Serving::stop`] ends it as [`Bound::serve`]'s shutdown does.
    ///
    /// # Errors
    /// The runtime or the thread could not be started.
    pub fn spawn(self) -> Result<Serving, ServerError> {
        let address = self.address.clone();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(io("starting the server's runtime"))?;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("vault-server".into())
            .spawn(move || {
                runtime.block_on(self.serve(async {
                    let _ = stopped.await;
                }))
            })
            .map_err(io("starting the server's thread"))?;
        Ok(Serving {
            address,
            stop: Some(stop),
            thread: Some(thread),
        })
    }
}

/// A server serving on its own thread ([`Bound::spawn`]); dropping it stops it too.
pub struct Serving {
    address: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<Result<(), ServerError>>>,
}

impl Serving {
    /// Where clients reach it, as [`Bound::address`].
    pub fn address(&self) -> &str {
        &self.address
    }

    /// Stops accepting, lets requests in flight finish, records `server.stop`
    /// and waits for all of it. A panic on the server's thread goes on here.
    ///
    /// # Errors
    /// What serving failed with.
    pub fn stop(mut self) -> Result<(), ServerError> {
        match self.finish() {
            Some(Ok(served)) => served,
            Some(Err(panic)) => std::panic::resume_unwind(panic),
            None => Ok(()),
        }
    }

    fn finish(&mut self) -> Option<std::thread::Result<Result<(), ServerError>>> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.thread.take().map(std::thread::JoinHandle::join)
    }
}

impl Drop for Serving {
    fn drop(&mut self) {
        // already stopped by `stop`, or dropped while unwinding: nothing to report to
        let _ = self.finish();
    }
}

/// Every [`REFRESH_EVERY`]: coalesced denials recorded, revocations and key
/// states reloaded (other `vault` processes write the same file), rotations a
/// dead server left finished (PostgreSQL), and each key newly suspended notified.
async fn refresh_loop(state: AppState) {
    let mut suspended: HashSet<String> = state.suspended_keys();
    let mut tick = tokio::time::interval(REFRESH_EVERY);
    let mut rotations_tried = Vec::new();
    // on PostgreSQL, another server's key change wakes this loop at its commit
    let changed = Arc::new(tokio::sync::Notify::new());
    let wake = changed.clone();
    // connecting blocks (the postgres client runs its own runtime): not on this one
    let _listening = match state.with_vault(|v| Ok(v.location().clone())).await {
        Ok(location) => tokio::task::spawn_blocking(move || {
            location.watch_key_changes(move || wake.notify_one())
        })
        .await
        .unwrap_or_else(|_| Ok(None))
        .unwrap_or_else(|e| {
            tracing::warn!("not listening for key changes ({}): polling", e.code());
            None
        }),
        Err(_) => None,
    };
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = changed.notified() => {}
        }
        state.flush_denials(false).await;
        if let Err(e) = state.refresh().await {
            tracing::warn!("refreshing revocations failed: {}", e.code());
            continue;
        }
        state.resume_left_rotations(&mut rotations_tried).await;
        let now = state.suspended_keys();
        let new: Vec<String> = now.difference(&suspended).cloned().collect();
        suspended = now;
        if !new.is_empty() {
            let sent = state
                .with_vault(move |v| {
                    for key_id in &new {
                        for err in vault_guard::notify::key_suspended(v, key_id) {
                            tracing::warn!("notification failed: {err}");
                        }
                    }
                    Ok(())
                })
                .await;
            if sent.is_err() {
                tracing::warn!("could not send suspension notifications");
            }
        }
    }
}

/// A TLS private key others can read is refused, with the command that fixes it.
fn check_key_file(path: &Path) -> Result<(), ServerError> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(path)
        .map_err(|e| ServerError::Usage(format!("--tls-key {}: {e}", path.display())))?;
    if meta.permissions().mode() & 0o077 != 0 {
        return Err(ServerError::Refused(format!(
            "{} is readable by other users; run: chmod 600 {}",
            path.display(),
            path.display()
        )));
    }
    Ok(())
}

/// `vadm_` and 64 hex digits of the OS's randomness (through vault-core's crypto).
fn new_admin_token() -> Result<SecretString, ServerError> {
    let mut bytes = [0u8; 32];
    vault_core::fill_random(&mut bytes)?;
    let mut token = String::with_capacity(5 + 64);
    token.push_str("vadm_");
    for b in bytes {
        token.push(char::from(b"0123456789abcdef"[usize::from(b >> 4)]));
        token.push(char::from(b"0123456789abcdef"[usize::from(b & 15)]));
    }
    bytes.zeroize();
    Ok(SecretString::new(token))
}

/// Replaces `path` with a new 0600 file holding `text` (never following a
/// link planted there: the old entry is removed and the new one created
/// exclusively).
fn write_private(path: &Path, text: &str) -> Result<(), ServerError> {
    let what = || format!("writing the admin token to {}", path.display());
    let _ = std::fs::remove_file(path);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(io(what()))?;
    f.write_all(text.as_bytes()).map_err(io(what()))?;
    f.write_all(b"\n").map_err(io(what()))?;
    Ok(())
}
