//! What every request needs: the unlocked vault (owned by one thread, see
//! [`crate::worker`]), the token signer and revocation snapshot for
//! in-memory token checks, the admin token, and counters for /metrics.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, RwLock};

use vault_core::{RevocationSnapshot, SecretString, TokenClaims, TokenSigner, UsageTally, Vault};

use crate::error::ApiError;
use crate::worker::Worker;

/// Shared server state. Cloning is cheap.
#[derive(Clone)]
pub struct AppState {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub worker: Worker,
    pub signer: TokenSigner,
    /// The snapshot, with [`Vault::revocation_stamp`] as it was before the
    /// snapshot was read: a token is checked against a snapshot no key
    /// change has been committed since, so a revocation by another process
    /// or server counts at the next request. One lock over both, so no
    /// reader sees a snapshot with another snapshot's stamp.
    pub snapshot: RwLock<(i64, RevocationSnapshot)>,
    pub admin_token: SecretString,
    pub metrics: Mutex<Metrics>,
    /// Per-key counters from the audit trail, brought up to date at each
    /// scrape (only new records are read).
    pub usage: Mutex<UsageTally>,
    pub request_timeout: std::time::Duration,
    /// Unknown-key denials per peer, recorded coalesced.
    pub unknown_keys: Mutex<crate::denials::UnknownKeys>,
    /// Host names, besides loopback ones, that `/metrics` answers to.
    pub allowed_hosts: Vec<String>,
    /// Where the vault is (for the scanner's matcher, which reads its file or
    /// database on a connection of its own, without the lock).
    pub location: vault_core::Location,
    /// The built-in rules, compiled once on first use.
    pub scanner: std::sync::OnceLock<Arc<vault_scan::Scanner>>,
    /// The broker CA's certificate (PEM), when this server runs a broker.
    pub broker_ca_pem: Option<String>,
    /// The web console's one-time login codes and login rate limit.
    pub console: crate::console::ConsoleState,
    /// Whether this server speaks TLS (the console's cookie is then `Secure`).
    pub tls: bool,
    /// The broker's usage accounting, for `/metrics`.
    pub accounting: Option<Arc<vault_broker::Accounting>>,
    /// The broker's URL (`http://ADDR`), once it listens.
    pub broker_addr: std::sync::OnceLock<String>,
    /// The matcher the broker scans outbound requests with.
    pub egress_known: crate::broker::KnownCache,
}

/// Counters exported at /metrics.
#[derive(Default)]
pub(crate) struct Metrics {
    pub requests: BTreeMap<(String, u16), u64>,
    pub denials: BTreeMap<String, u64>,
    pub latency_buckets: [u64; 8],
    pub latency_sum_secs: f64,
    pub latency_count: u64,
}

/// Upper bounds (seconds) of the latency histogram buckets.
pub(crate) const LATENCY_BOUNDS: [f64; 8] = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05, 0.25, 1.0];

impl AppState {
    /// Builds the state from an unlocked vault and the admin token (which the
    /// caller has written 0600 for the operator).
    ///
    /// # Errors
    /// Vault errors loading the signing key or the revocation snapshot.
    pub fn new(mut vault: Vault, admin_token: SecretString) -> vault_core::Result<AppState> {
        let signer = vault.token_signer()?;
        let home = vault.dir().to_owned();
        let location = vault.location().clone();
        // Loaded here, off the async runtime: the broker's first request
        // would otherwise open the database (PostgreSQL: a blocking connect)
        // on it. Reloads run in `spawn_blocking` (broker.rs).
        let known = crate::broker::KnownCache::loaded(&vault, &signer);
        let stamp = vault.revocation_stamp()?;
        let snapshot = vault.revocation_snapshot()?;
        Ok(AppState {
            inner: Arc::new(Inner {
                worker: Worker::start(vault).map_err(|e| vault_core::Error::Io {
                    path: home.clone(),
                    source: e,
                })?,
                signer,
                snapshot: RwLock::new((stamp, snapshot)),
                admin_token,
                metrics: Mutex::new(Metrics::default()),
                usage: Mutex::new(UsageTally::default()),
                request_timeout: crate::DEFAULT_REQUEST_TIMEOUT,
                allowed_hosts: Vec::new(),
                unknown_keys: Mutex::new(crate::denials::UnknownKeys::default()),
                location,
                scanner: std::sync::OnceLock::new(),
                broker_ca_pem: None,
                console: crate::console::ConsoleState::default(),
                tls: false,
                accounting: None,
                broker_addr: std::sync::OnceLock::new(),
                egress_known: known,
            }),
        })
    }

    /// The same state with another per-request deadline (body included).
    /// Call before the state is shared.
    pub fn with_request_timeout(mut self, timeout: std::time::Duration) -> AppState {
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            inner.request_timeout = timeout;
        }
        self
    }

    /// The same state answering to these host names too (for `Host`
    /// checks; loopback names always pass). Call before the state is shared.
    pub fn with_allowed_hosts(mut self, hosts: Vec<String>) -> AppState {
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            inner.allowed_hosts = hosts;
        }
        self
    }

    /// The same state knowing it is served over TLS (the console's session
    /// cookie is then `Secure`). Call before the state is shared.
    pub fn with_tls(mut self, tls: bool) -> AppState {
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            inner.tls = tls;
        }
        self
    }

    /// The same state serving `pem` at `GET /v1/broker/ca.pem`. Call before
    /// the state is shared.
    pub fn with_broker_ca(mut self, pem: String) -> AppState {
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            inner.broker_ca_pem = Some(pem);
        }
        self
    }

    /// The same state exporting `accounting`'s counters at `/metrics`. Call
    /// before the state is shared.
    pub fn with_accounting(mut self, accounting: Arc<vault_broker::Accounting>) -> AppState {
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            inner.accounting = Some(accounting);
        }
        self
    }

    /// Records where the broker listens (served at `GET /v1/broker`); the
    /// first call wins.
    pub fn set_broker_addr(&self, url: String) {
        let _ = self.inner.broker_addr.set(url);
    }

    /// The broker's URL, once it listens.
    pub(crate) fn broker_addr(&self) -> Option<&str> {
        self.inner.broker_addr.get().map(String::as_str)
    }

    /// The broker CA's certificate, if a broker runs.
    pub(crate) fn broker_ca_pem(&self) -> Option<&str> {
        self.inner.broker_ca_pem.as_deref()
    }

    /// The vault directory.
    pub(crate) fn home(&self) -> &std::path::Path {
        self.inner.location.dir()
    }

    /// The compiled built-in scanner rules (compiled on first use: ~ms, not per request).
    pub(crate) fn scanner(&self) -> Result<Arc<vault_scan::Scanner>, ApiError> {
        if let Some(s) = self.inner.scanner.get() {
            return Ok(s.clone());
        }
        let built = Arc::new(vault_scan::Scanner::builtin().map_err(|_| ApiError::internal())?);
        Ok(self.inner.scanner.get_or_init(|| built).clone())
    }

    /// The per-request deadline.
    pub fn request_timeout(&self) -> std::time::Duration {
        self.inner.request_timeout
    }

    /// Checks a token in memory: checksum, HMAC, expiry, key status, epoch
    /// and revocation. No database access: the snapshot may be a moment
    /// old, so a route whose job runs on the vault checks again there
    /// ([`AppState::recheck_token`]).
    pub(crate) fn check_token(&self, token: &str) -> Result<TokenClaims, ApiError> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let claims = self.inner.signer.verify(token, now)?;
        let snapshot = self.inner.snapshot.read().map_err(|_| poisoned())?;
        snapshot.1.check(&claims)?;
        Ok(claims)
    }

    /// Runs `f` with the vault, alone (see [`Worker::run`]); the CLI records
    /// the server's stop with it.
    ///
    /// # Errors
    /// What `f` returns, or `internal` if the vault thread is gone.
    pub async fn with_vault<T, F>(&self, f: F) -> Result<T, ApiError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Vault) -> Result<T, ApiError> + Send + 'static,
    {
        self.inner.worker.run(untagged(f)).await
    }

    /// Runs `f` with the vault in the next group commit; only for reads and
    /// token mints, which touch nothing outside the database (see
    /// [`Worker::run_batched`]).
    pub(crate) async fn with_vault_batched<T, F>(&self, f: F) -> Result<T, ApiError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Vault) -> Result<T, ApiError> + Send + 'static,
    {
        self.inner.worker.run_batched(untagged(f)).await
    }

    /// Reloads the revocation snapshot from the database: run every second by
    /// the server, so revocations and new keys made by other `vault`
    /// processes take effect here within a second.
    pub async fn refresh(&self) -> Result<(), ApiError> {
        let st = self.clone();
        self.with_vault(move |vault| st.refresh_snapshot(vault))
            .await
    }

    /// On PostgreSQL, finishes the rotations another server left open when
    /// it died (each claimed by one process at a time, so exactly once),
    /// notifying each; `tried` are the ones this server already finished or
    /// found stalled, retried at its next start rather than every tick.
    pub(crate) async fn resume_left_rotations(&self, tried: &mut Vec<i64>) {
        let skip = tried.clone();
        let st = self.clone();
        let resumed = self
            .with_vault(move |vault| {
                if !vault.location().is_postgres() {
                    return Ok(Vec::new());
                }
                let resumed = vault_guard::notify::resume_rotations_except(vault, &skip)?;
                for err in &resumed.undelivered {
                    tracing::warn!("notification failed: {err}");
                }
                if !resumed.reports.is_empty() {
                    st.refresh_snapshot(vault)?;
                }
                Ok(resumed.reports.iter().map(|r| r.rotation_id).collect())
            })
            .await;
        match resumed {
            Ok(ids) => tried.extend(ids),
            Err(e) => tracing::warn!("resuming rotations failed: {}", e.code()),
        }
    }

    /// Counts an unknown-key denial from `peer` and records what is due.
    pub(crate) async fn note_unknown_key(&self, peer: &str) {
        let due = match self.inner.unknown_keys.lock() {
            Ok(mut u) => u.note(peer, std::time::Instant::now()),
            Err(_) => return,
        };
        self.record_denials(due).await;
    }

    /// Records the unknown-key denials of windows that have ended (all of
    /// them when `all`, at stop). The server calls this every second.
    pub async fn flush_denials(&self, all: bool) {
        let due = match self.inner.unknown_keys.lock() {
            Ok(mut u) => u.flush(std::time::Instant::now(), all),
            Err(_) => return,
        };
        self.record_denials(due).await;
    }

    async fn record_denials(&self, due: Vec<crate::denials::Due>) {
        if due.is_empty() {
            return;
        }
        let window = crate::denials::WINDOW.as_secs();
        let written = self
            .with_vault_batched(move |vault| {
                for d in &due {
                    vault.record_unknown_key_denials(&d.peer, d.count, d.first, window)?;
                }
                Ok(())
            })
            .await;
        if written.is_err() {
            tracing::error!("could not record unknown-key denials in the audit trail");
        }
    }

    /// Ids of the keys suspended in the current snapshot.
    pub(crate) fn suspended_keys(&self) -> std::collections::HashSet<String> {
        match self.inner.snapshot.read() {
            Ok(s) => s.1.suspended_keys().map(str::to_owned).collect(),
            Err(_) => std::collections::HashSet::new(),
        }
    }

    /// Reloads key states and revoked token ids after a change to them.
    pub(crate) fn refresh_snapshot(&self, vault: &Vault) -> Result<(), ApiError> {
        // Stamped before the read: a commit landing during it moves the
        // stamp again, so the next check reads once more.
        let stamp = vault.revocation_stamp()?;
        let fresh = vault.revocation_snapshot()?;
        *self.inner.snapshot.write().map_err(|_| poisoned())? = (stamp, fresh);
        Ok(())
    }

    /// Checks `claims` again on the vault's thread, against a snapshot
    /// reloaded first if a key change was committed since it was read
    /// ([`Vault::revocation_stamp`]: one pragma on SQLite, one read on
    /// PostgreSQL): a token revoked, or whose key was revoked or suspended,
    /// by `vault revoke`, a watcher's rotation or another server is refused
    /// at the next request, not at the next refresh tick or notification
    /// (issue 19, issue 20).
    pub(crate) fn recheck_token(
        &self,
        vault: &Vault,
        claims: &TokenClaims,
    ) -> Result<(), ApiError> {
        let now = vault.revocation_stamp()?;
        let seen = self.inner.snapshot.read().map_err(|_| poisoned())?.0;
        if now != seen {
            self.refresh_snapshot(vault)?;
        }
        let snapshot = self.inner.snapshot.read().map_err(|_| poisoned())?;
        snapshot.1.check(claims)?;
        Ok(())
    }
}

/// Wraps a job so the audit records it makes say they came through the
/// server and carry no other request's id, unless the job tags them itself.
fn untagged<T, F>(f: F) -> impl FnOnce(&mut Vault) -> Result<T, ApiError> + Send + 'static
where
    F: FnOnce(&mut Vault) -> Result<T, ApiError> + Send + 'static,
{
    move |vault: &mut Vault| {
        vault.set_audit_context(Some(vault_core::Origin::Server.as_str().into()), None);
        f(vault)
    }
}

fn poisoned() -> ApiError {
    ApiError::new(
        axum::http::StatusCode::INTERNAL_SERVER_ERROR,
        "internal",
        "internal error",
    )
}
