//! WebSocket upgrades for matched hosts, inside a CONNECT tunnel (or on a
//! plain `http://` request). The handshake is decided and attached like any
//! request (the credential rides on the upgrade request), sent on a fresh
//! upstream connection from the same SSRF-guarded dialer, and once the
//! upstream answers 101 the bytes are relayed both ways.
//!
//! Why a fresh connection: an upgraded connection is consumed by the socket,
//! so it cannot be the tunnel's kept-alive one. What the agent sends is
//! scanned frame by frame when its policy scans egress ([`frames`]); what
//! the upstream sends back is relayed untouched. A relay with no byte either
//! way for [`crate::Config::ws_idle_timeout`] is closed, so abandoned sockets
//! do not hold connections and memory forever.

mod frames;

use http_body_util::Either;
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::http::request::Parts;
use hyper::upgrade::OnUpgrade;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};

use std::sync::Arc;

use vault_core::{SecretPath, SecretString};

use crate::headers::strip_hop_by_hop;
use crate::outbound::{Leak, Outbound};
use crate::proxy::{Body, Tunnel, RESPONSE_HEADER_TIMEOUT};
use crate::refusal::{Code, Refusal};
use crate::usage::{Meter, UpBody};
use crate::Backend;

/// The client's side of the upgrade, if this request asks for a WebSocket
/// (`Upgrade: websocket` and `Connection: upgrade`); other upgrades are
/// stripped as hop-by-hop and forwarded as plain requests.
pub(crate) fn take_upgrade(parts: &mut Parts) -> Option<OnUpgrade> {
    let has = |name: header::HeaderName, token: &str| {
        parts
            .headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case(token))
    };
    if !(has(header::UPGRADE, "websocket") && has(header::CONNECTION, "upgrade")) {
        return None;
    }
    parts.extensions.remove::<OnUpgrade>()
}

/// What a scanned relay needs: set when the agent's policy scans egress.
pub(crate) struct FrameScan<B> {
    pub(crate) backend: Arc<B>,
    pub(crate) credential: Arc<SecretString>,
    pub(crate) outbound: Outbound,
    /// The secret the handshake's rule attaches: it may go to this host.
    pub(crate) bound: Option<SecretPath>,
    pub(crate) redact: bool,
}

impl<B: Backend> FrameScan<B> {
    /// Hands a frame's finding to the vault's leak flow, as a body's would be.
    async fn report(
        &self,
        host: &str,
        port: u16,
        finding: crate::outbound::MessageFinding,
        redacted: bool,
    ) {
        let leak = Leak {
            host: host.to_owned(),
            port,
            rules: finding.rules,
            items: finding.items,
            redacted,
        };
        self.backend.leaked(self.credential.clone(), leak).await;
    }
}

/// A relay's gate with what its findings are reported with.
struct Gated<'a, B> {
    gate: frames::Gate,
    scan: &'a FrameScan<B>,
    host: &'a str,
    port: u16,
}

impl<B: Backend> Gated<'_, B> {
    /// The gate's verdict on the client's bytes; every finding (redacted or
    /// stopping) is in the leak flow before this returns.
    async fn push(&mut self, data: &[u8]) -> Result<Vec<u8>, frames::Stop> {
        let verdict = self.gate.push(data);
        for finding in std::mem::take(&mut self.gate.redacted) {
            self.scan.report(self.host, self.port, finding, true).await;
        }
        match verdict {
            Err(mut stop) => {
                if let Some(finding) = stop.finding.take() {
                    self.scan.report(self.host, self.port, finding, false).await;
                }
                Err(stop)
            }
            ok => ok,
        }
    }
}

/// Puts back the two hop-by-hop headers a WebSocket handshake needs.
fn restore(headers: &mut HeaderMap) {
    headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
}

/// Sends the (decided, attached) handshake `parts` upstream and, on 101,
/// relays the upgraded connections until either side closes.
pub(crate) async fn forward<B: Backend>(
    tunnel: &Tunnel<B>,
    client: OnUpgrade,
    mut parts: Parts,
    body: UpBody,
    meter: Meter,
    scan: Option<FrameScan<B>>,
) -> Result<Response<Body>, Refusal> {
    restore(&mut parts.headers);
    if scan.is_some() {
        // no compression extension: frames must stay readable to be scanned
        parts.headers.remove(header::SEC_WEBSOCKET_EXTENSIONS);
    }
    let unreachable = |what: &str| {
        Refusal::new(
            Code::UpstreamUnreachable,
            format!("{}:{} {what}", tunnel.host, tunnel.port),
        )
    };
    let stream = tunnel
        .shared
        .config
        .dialer
        .open(&tunnel.host, tunnel.port, tunnel.tls)
        .await?;
    let (mut sender, conn) = hyper::client::conn::http1::Builder::new()
        .handshake(TokioIo::new(stream))
        .await
        .map_err(|_| unreachable("did not speak HTTP/1.1"))?;
    tokio::spawn(async move {
        let _ = conn.with_upgrades().await;
    });
    let pending = sender.send_request(Request::from_parts(parts, body));
    let mut response = match tokio::time::timeout(RESPONSE_HEADER_TIMEOUT, pending).await {
        Ok(Ok(r)) => r,
        Ok(Err(_)) => return Err(unreachable("closed the connection before answering")),
        Err(_) => return Err(unreachable("sent no answer within 5 minutes")),
    };
    let switched = response.status() == StatusCode::SWITCHING_PROTOCOLS;
    if switched {
        let upstream = hyper::upgrade::on(&mut response);
        let (host, port) = (tunnel.host.clone(), tunnel.port);
        let idle = tunnel.shared.config.ws_idle_timeout;
        tokio::spawn(async move {
            let (Ok(upstream), Ok(client)) = tokio::join!(upstream, client) else {
                tracing::info!(%host, "broker: a WebSocket upgrade did not complete");
                return;
            };
            let mut gated = scan.as_ref().map(|scan| Gated {
                gate: frames::Gate::new(scan.outbound.clone(), scan.bound.clone(), scan.redact),
                scan,
                host: &host,
                port,
            });
            let end = relay(
                TokioIo::new(client),
                TokioIo::new(upstream),
                idle,
                gated.as_mut(),
            )
            .await;
            match end {
                End::Done => {}
                End::Idle => tracing::info!(%host, "broker: closed a WebSocket idle for {idle:?}"),
                End::Stopped(code) => {
                    tracing::info!(%host, code = code.as_str(), "broker: closed a WebSocket");
                }
            }
        });
    }
    let (mut parts, body) = response.into_parts();
    strip_hop_by_hop(&mut parts.headers);
    parts.headers.remove(header::SET_COOKIE);
    if switched {
        restore(&mut parts.headers);
    }
    // The handshake is counted like any request; the relayed frames are not.
    let body = meter.response(parts.status.as_u16(), &mut parts.headers, body);
    Ok(Response::from_parts(parts, Either::Left(body)))
}

/// How long a client closed by the gate may take to hang up after its close frame.
const CLOSE_DRAIN: std::time::Duration = std::time::Duration::from_secs(2);

/// How a relay ended.
enum End {
    /// Both sides closed.
    Done,
    /// Nothing moved either way for the idle timeout.
    Idle,
    /// The gate refused what the agent sent (this code); the client was told why.
    Stopped(Code),
}

/// Copies bytes both ways until both sides are done, or until nothing moved
/// either way for `idle`. A side's end is passed on as a half-close, and the
/// other direction goes on. With a `gate`, the client's bytes go upstream
/// only as the gate lets them; when it stops them, the client gets the close
/// frame (if the upstream's bytes to it are between frames) and both sides
/// are shut.
async fn relay<C, U, B>(
    client: C,
    upstream: U,
    idle: std::time::Duration,
    mut gate: Option<&mut Gated<'_, B>>,
) -> End
where
    C: AsyncRead + AsyncWrite + Unpin,
    U: AsyncRead + AsyncWrite + Unpin,
    B: Backend,
{
    let (mut client_read, mut client_write) = tokio::io::split(client);
    let (mut up_read, mut up_write) = tokio::io::split(upstream);
    let mut up_buf = vec![0u8; 16 * 1024];
    let mut down_buf = vec![0u8; 16 * 1024];
    let mut down = frames::Boundaries::default();
    let (mut up_open, mut down_open) = (true, true);
    let idle_end = |sent: Result<std::io::Result<()>, _>| match sent {
        Ok(Ok(())) => None,
        Ok(Err(_)) => Some(End::Done),
        Err(_) => Some(End::Idle),
    };
    while up_open || down_open {
        // Reads are cancel-safe: the one that loses the race is retried.
        tokio::select! {
            read = client_read.read(&mut up_buf), if up_open => match read {
                Ok(n) if n > 0 => {
                    let verdict = match gate.as_deref_mut() {
                        None => Ok(up_buf[..n].to_vec()),
                        Some(g) => g.push(&up_buf[..n]).await,
                    };
                    let data = match verdict {
                        Ok(pass) => pass,
                        Err(stop) => {
                            let _ = up_write.shutdown().await;
                            if down.at_boundary() && down_open {
                                let close = stop.close_frame();
                                let _ = tokio::time::timeout(idle, client_write.write_all(&close)).await;
                            }
                            let _ = client_write.shutdown().await;
                            // Read what the client still sends (its close frame) until it
                            // hangs up, briefly: unread bytes would turn our close into a
                            // reset that can discard the close frame before it reads it.
                            let drain = async {
                                while matches!(client_read.read(&mut up_buf).await, Ok(n) if n > 0) {}
                            };
                            let _ = tokio::time::timeout(CLOSE_DRAIN, drain).await;
                            return End::Stopped(stop.code);
                        }
                    };
                    if data.is_empty() {
                        continue;
                    }
                    let sent = tokio::time::timeout(idle, up_write.write_all(&data)).await;
                    if let Some(end) = idle_end(sent) {
                        return end;
                    }
                }
                _ => {
                    up_open = false;
                    let _ = up_write.shutdown().await;
                }
            },
            read = up_read.read(&mut down_buf), if down_open => match read {
                Ok(n) if n > 0 => {
                    if gate.is_some() {
                        down.feed(&down_buf[..n]);
                    }
                    let sent = tokio::time::timeout(idle, client_write.write_all(&down_buf[..n])).await;
                    if let Some(end) = idle_end(sent) {
                        return end;
                    }
                }
                _ => {
                    down_open = false;
                    let _ = client_write.shutdown().await;
                }
            },
            () = tokio::time::sleep(idle) => return End::Idle,
        }
    }
    End::Done
}
