//! WebSocket upgrades for matched hosts, inside a CONNECT tunnel (or on a
//! plain `http://` request). The handshake is decided and attached like any
//! request (the credential rides on the upgrade request), sent on a fresh
//! upstream connection from the same SSRF-guarded dialer, and once the
//! upstream answers 101 the bytes are relayed both ways untouched.
//!
//! Why a fresh connection: an upgraded connection is consumed by the socket,
//! so it cannot be the tunnel's kept-alive one. Frames are not inspected or
//! rewritten: the credential travels in the handshake only. A relay with no
//! byte either way for [`crate::Config::ws_idle_timeout`] is closed, so
//! abandoned sockets do not hold connections and memory forever.

use http_body_util::Either;
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::http::request::Parts;
use hyper::upgrade::OnUpgrade;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};

use crate::headers::strip_hop_by_hop;
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
) -> Result<Response<Body>, Refusal> {
    restore(&mut parts.headers);
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
        let host = tunnel.host.clone();
        let idle = tunnel.shared.config.ws_idle_timeout;
        tokio::spawn(async move {
            let (Ok(upstream), Ok(client)) = tokio::join!(upstream, client) else {
                tracing::info!(%host, "broker: a WebSocket upgrade did not complete");
                return;
            };
            if relay(TokioIo::new(client), TokioIo::new(upstream), idle).await {
                tracing::info!(%host, "broker: closed a WebSocket idle for {}s", idle.as_secs());
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

/// Copies bytes both ways until both sides are done, or until nothing moved
/// either way for `idle` (then true). A side's end is passed on as a
/// half-close, and the other direction goes on.
async fn relay<C, U>(client: C, upstream: U, idle: std::time::Duration) -> bool
where
    C: AsyncRead + AsyncWrite + Unpin,
    U: AsyncRead + AsyncWrite + Unpin,
{
    let (mut client_read, mut client_write) = tokio::io::split(client);
    let (mut up_read, mut up_write) = tokio::io::split(upstream);
    let mut up_buf = vec![0u8; 16 * 1024];
    let mut down_buf = vec![0u8; 16 * 1024];
    let (mut up_open, mut down_open) = (true, true);
    while up_open || down_open {
        // Reads are cancel-safe: the one that loses the race is retried.
        tokio::select! {
            read = client_read.read(&mut up_buf), if up_open => match read {
                Ok(n) if n > 0 => {
                    let sent = tokio::time::timeout(idle, up_write.write_all(&up_buf[..n])).await;
                    if !matches!(sent, Ok(Ok(()))) {
                        return sent.is_err();
                    }
                }
                _ => {
                    up_open = false;
                    let _ = up_write.shutdown().await;
                }
            },
            read = up_read.read(&mut down_buf), if down_open => match read {
                Ok(n) if n > 0 => {
                    let sent = tokio::time::timeout(idle, client_write.write_all(&down_buf[..n])).await;
                    if !matches!(sent, Ok(Ok(()))) {
                        return sent.is_err();
                    }
                }
                _ => {
                    down_open = false;
                    let _ = client_write.shutdown().await;
                }
            },
            () = tokio::time::sleep(idle) => return true,
        }
    }
    false
}
