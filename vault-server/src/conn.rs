//! The accept loop. `axum::serve` has no header-read timeout and no cap on
//! connections (the concurrency limit counts requests, not sockets), so a
//! local user holding 20,000 sockets that never finished their headers took
//! the server offline (issue 13, finding 7). Here every connection is
//! HTTP/1.1 through hyper with a header-read timeout, which hyper starts each
//! time it waits for a request head, so it also closes an idle keep-alive
//! connection; and connections are counted, in total and per peer, before a
//! byte of them is read. Over the limits a connection is closed at once.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::serve::Listener;
use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};

/// Limits on connections, as `vault server` sets them.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Longest a client may take to send a request's headers, and longest
    /// a kept-alive connection may sit idle between requests.
    pub header_timeout: Duration,
    /// Connections open at once, from everyone.
    pub max_connections: usize,
    /// Connections open at once from one peer address (every local user
    /// shares 127.0.0.1, so on loopback this bounds a burst, not a user; the
    /// header timeout is what frees the slots).
    pub max_per_peer: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            header_timeout: Duration::from_secs(10),
            max_connections: 1024,
            max_per_peer: 256,
        }
    }
}

/// The peer a request came in from (an IP address, or `unix` for the
/// owner-only socket), for per-peer accounting in the handlers.
#[derive(Clone, Debug)]
pub(crate) struct PeerAddr(pub Arc<str>);

/// What a listener's address says about the peer.
pub trait PeerOf {
    /// A stable name for the peer: its IP address, or `unix`.
    fn peer(&self) -> String;
}

impl PeerOf for std::net::SocketAddr {
    fn peer(&self) -> String {
        // An IPv4 client of a dual-stack socket is the same peer as over IPv4.
        match self.ip() {
            std::net::IpAddr::V6(v6) => v6
                .to_ipv4_mapped()
                .map_or_else(|| v6.to_string(), |v4| v4.to_string()),
            v4 => v4.to_string(),
        }
    }
}

impl PeerOf for tokio::net::unix::SocketAddr {
    fn peer(&self) -> String {
        // The socket is 0600: whoever connects is the owner.
        "unix".into()
    }
}

#[derive(Default)]
struct Counts {
    total: usize,
    per_peer: HashMap<String, usize>,
}

/// One open connection's place in the counts, given back on drop.
struct Slot {
    counts: Arc<Mutex<Counts>>,
    peer: String,
}

impl Slot {
    fn take(counts: &Arc<Mutex<Counts>>, peer: &str, limits: &Limits) -> Option<Slot> {
        let mut c = counts.lock().ok()?;
        let mine = c.per_peer.get(peer).copied().unwrap_or(0);
        if c.total >= limits.max_connections || mine >= limits.max_per_peer {
            return None;
        }
        c.total += 1;
        c.per_peer.insert(peer.to_owned(), mine + 1);
        Some(Slot {
            counts: counts.clone(),
            peer: peer.to_owned(),
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Ok(mut c) = self.counts.lock() {
            c.total = c.total.saturating_sub(1);
            // the map holds only peers with a connection open: it is bounded
            // by `max_connections`
            if let Some(n) = c.per_peer.get_mut(&self.peer) {
                *n -= 1;
                if *n == 0 {
                    c.per_peer.remove(&self.peer);
                }
            }
        }
    }
}

/// Connections closed at accept for being over a limit, for the log.
static REFUSED: AtomicU64 = AtomicU64::new(0);

/// Serves `app` on `listener` within `limits` until `shutdown` completes;
/// requests in flight finish first, idle connections close at once.
///
/// # Errors
/// None today (accept errors are retried by the listener); kept for the
/// callers' `?`.
pub async fn serve_with<L>(
    mut listener: L,
    app: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
    limits: Limits,
) -> std::io::Result<()>
where
    L: Listener,
    L::Addr: PeerOf,
{
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let counts = Arc::new(Mutex::new(Counts::default()));
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout);
    tokio::pin!(shutdown);
    loop {
        let (io, addr) = tokio::select! {
            pair = listener.accept() => pair,
            () = &mut shutdown => break,
        };
        let peer = addr.peer();
        let Some(slot) = Slot::take(&counts, &peer, &limits) else {
            drop(io);
            let n = REFUSED.fetch_add(1, Ordering::Relaxed) + 1;
            // one line per power of two: a flood must not flood the log too
            if n.is_power_of_two() {
                tracing::warn!(
                    peer,
                    refused_so_far = n,
                    "connection closed at accept: over the connection limit"
                );
            }
            continue;
        };
        let app = app.clone();
        let tag = PeerAddr(Arc::from(peer.as_str()));
        let service = hyper::service::service_fn(move |mut request: hyper::Request<_>| {
            request.extensions_mut().insert(tag.clone());
            tower::ServiceExt::oneshot(app.clone(), request)
        });
        let connection = builder.serve_connection(TokioIo::new(io), service);
        let watched = graceful.watch(connection);
        tokio::spawn(async move {
            // a timed-out or reset connection is the client's business
            let _ = watched.await;
            drop(slot);
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}
