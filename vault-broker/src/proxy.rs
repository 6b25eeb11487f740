//! The proxy itself: the accept loop, CONNECT (authenticated before anything
//! else), TLS termination with a leaf for the CONNECT host, and per request
//! inside the tunnel: decide, strip, attach, forward to the CONNECT target,
//! stream the answer back as it arrives. Plain `http://` requests (plain.rs)
//! and WebSocket upgrades (websocket.rs) take the same path.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{Either, Full};
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper::header::{self, HeaderValue};
use hyper::service::service_fn;
use hyper::{Method, Request, Response, Uri, Version};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use vault_core::policy::egress::EgressScan;
use vault_core::{EgressGrant, SecretString};

use crate::ca::LocalCa;
use crate::dial::Dialer;
use crate::headers::{
    apply, check_header_size, connect_target, drop_placeholders, proxy_credential, replaced_header,
    strip_hop_by_hop,
};
use crate::refusal::{Code, Refusal};
use crate::usage::{Accounting, Meter, Metered, UpBody};
use crate::{Backend, OwnedRequest};

pub(crate) type Body = Either<Metered, Full<Bytes>>;

/// How long a client may take to send a request's headers (idle keep-alive included).
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(60);
/// How long the agent may take to start TLS after the CONNECT.
const CLIENT_TLS_TIMEOUT: Duration = Duration::from_secs(15);
/// How long the upstream may take to answer with headers (bodies stream unbounded).
pub(crate) const RESPONSE_HEADER_TIMEOUT: Duration = Duration::from_secs(300);
/// Largest request head hyper buffers; past it the connection is refused.
const MAX_HEAD_BYTES: usize = 64 * 1024;

/// What the broker needs besides the vault.
#[derive(Clone)]
pub struct Config {
    /// The local CA minting leaves.
    pub ca: Arc<LocalCa>,
    /// The one dialer.
    pub dialer: Dialer,
    /// Usage accounting and budgets (None: off).
    pub accounting: Option<Arc<Accounting>>,
    /// Client connections served at once; past it a new one is answered 503
    /// `broker_busy` and closed ([`DEFAULT_MAX_CONNECTIONS`]).
    pub max_connections: usize,
    /// A relayed WebSocket with no byte either way for this long is closed
    /// ([`DEFAULT_WS_IDLE_TIMEOUT`]).
    pub ws_idle_timeout: Duration,
}

/// [`Config::max_connections`] unless the operator says otherwise: 1,000
/// streams with room to spare, well under the fd limit a server raises to.
pub const DEFAULT_MAX_CONNECTIONS: usize = 4096;
/// [`Config::ws_idle_timeout`] unless the operator says otherwise: longer
/// than the ping interval of common WebSocket clients (20-60 s).
pub const DEFAULT_WS_IDLE_TIMEOUT: Duration = Duration::from_secs(600);
/// How long an over-the-cap client may take to read its refusal.
const BUSY_WRITE_TIMEOUT: Duration = Duration::from_secs(2);

pub(crate) struct Shared<B> {
    backend: Arc<B>,
    pub(crate) config: Config,
    /// Requests held for a person, per agent.
    holds: Arc<crate::hold::HeldCounts>,
    /// Idle plain `http://` upstream connections.
    pub(crate) plain_pool: crate::plain::Pool,
}

/// Serves the broker on `listener` until `shutdown` completes.
///
/// # Errors
/// I/O errors of the accept loop.
pub async fn serve<B: Backend>(
    listener: TcpListener,
    backend: Arc<B>,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    if let Some(accounting) = &config.accounting {
        tokio::spawn(crate::usage::writer(accounting.clone(), backend.clone()));
    }
    let slots = Arc::new(tokio::sync::Semaphore::new(config.max_connections.max(1)));
    let shared = Arc::new(Shared {
        backend,
        config,
        holds: Arc::default(),
        plain_pool: crate::plain::Pool::default(),
    });
    tokio::pin!(shutdown);
    loop {
        let (stream, _) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                // a full fd table or an aborted handshake: keep accepting
                Err(_) => { tokio::time::sleep(Duration::from_millis(10)).await; continue; }
            },
            () = &mut shutdown => return Ok(()),
        };
        let _ = stream.set_nodelay(true);
        // Over the cap: a clear refusal, then close (tunnels inside an
        // accepted connection are not counted again: they are its requests).
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            tokio::spawn(refuse_busy(stream));
            continue;
        };
        let shared = shared.clone();
        tokio::spawn(async move {
            let _slot = slot;
            let service = service_fn(move |req| {
                let shared = shared.clone();
                async move { Ok::<_, Infallible>(outer(shared, req).await) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_READ_TIMEOUT)
                .max_buf_size(MAX_HEAD_BYTES)
                .serve_connection(TokioIo::new(stream), service)
                .with_upgrades()
                .await;
        });
    }
}

/// Answers a connection over [`Config::max_connections`] with 503
/// `broker_busy` (its request unread) and closes it.
async fn refuse_busy(mut stream: tokio::net::TcpStream) {
    use tokio::io::AsyncWriteExt as _;
    tracing::warn!("broker: refused a connection over --broker-max-connections");
    let refusal = Refusal::new(
        Code::BrokerBusy,
        "the broker already serves as many connections as it takes (--broker-max-connections); \
         retry shortly, or the operator can raise the limit",
    );
    let (parts, body) = refusal.response().into_parts();
    let mut head = format!(
        "HTTP/1.1 {} {}\r\nconnection: close\r\nretry-after: 1\r\n",
        parts.status.as_u16(),
        parts.status.canonical_reason().unwrap_or("")
    );
    for (name, value) in &parts.headers {
        if let Ok(v) = value.to_str() {
            head.push_str(&format!("{name}: {v}\r\n"));
        }
    }
    let body = http_body_util::BodyExt::collect(body)
        .await
        .map(|c| c.to_bytes())
        .unwrap_or_default();
    head.push_str(&format!("content-length: {}\r\n\r\n", body.len()));
    let _ = tokio::time::timeout(BUSY_WRITE_TIMEOUT, async {
        stream.write_all(head.as_bytes()).await?;
        stream.write_all(&body).await?;
        stream.shutdown().await
    })
    .await;
}

/// A request to the proxy itself: only an authenticated CONNECT goes further.
async fn outer<B: Backend>(shared: Arc<Shared<B>>, req: Request<Incoming>) -> Response<Body> {
    if let Err(refusal) = check_header_size(req.headers()) {
        return refuse(refusal);
    }
    let Some(credential) = proxy_credential(req.headers()) else {
        return refuse(Refusal::new(
            Code::ProxyAuthRequired,
            "the broker needs the agent's vault credential (named key or token) in Proxy-Authorization; \
             start the agent with: vault run --broker --agent AGENT -- CMD",
        ));
    };
    let credential = Arc::new(credential);
    if let Err(refusal) = shared.backend.authenticate(credential.clone()).await {
        return refuse(refusal);
    }
    if req.method() != Method::CONNECT
        && req.uri().scheme() == Some(&hyper::http::uri::Scheme::HTTP)
    {
        return crate::plain::forward(shared, credential, req).await;
    }
    if req.method() != Method::CONNECT {
        return refuse(if req.uri().scheme().is_some() {
            Refusal::new(
                Code::EgressHttpRefused,
                "the broker takes https:// requests through CONNECT only (HTTPS_PROXY); \
                 absolute-form https:// requests are not brokered (no TLS stripping)",
            )
        } else {
            Refusal::new(
                Code::BadProxyRequest,
                "this is a forward proxy: send CONNECT host:port",
            )
        });
    }
    let (host, port) = match connect_target(req.uri()) {
        Ok(target) => target,
        Err(refusal) => return refuse(refusal),
    };
    let tls = match shared.config.ca.server_config(&host) {
        Ok(tls) => tls,
        Err(e) => {
            tracing::warn!(error = %e, "broker: minting a leaf failed");
            return refuse(Refusal::new(
                Code::Internal,
                "the broker could not mint a certificate for this host",
            ));
        }
    };
    let tunnel = Arc::new(Tunnel {
        shared: shared.clone(),
        host,
        port,
        credential,
        upstream: tokio::sync::Mutex::new(None),
        tls: true,
    });
    tokio::spawn(async move {
        let Ok(upgraded) = hyper::upgrade::on(req).await else {
            return;
        };
        let accepted = tokio::time::timeout(
            CLIENT_TLS_TIMEOUT,
            TlsAcceptor::from(tls).accept(TokioIo::new(upgraded)),
        )
        .await;
        // No TLS (or bad TLS) after the CONNECT: the client gets a TLS alert or
        // a closed connection; nothing was forwarded.
        let Ok(Ok(stream)) = accepted else {
            tracing::info!(host = %tunnel.host, "broker: the client did not complete TLS after CONNECT");
            return;
        };
        let service = service_fn(move |req| {
            let tunnel = tunnel.clone();
            async move { Ok::<_, Infallible>(tunnel.request(req).await) }
        });
        let _ = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(HEADER_READ_TIMEOUT)
            .max_buf_size(MAX_HEAD_BYTES)
            .serve_connection(TokioIo::new(stream), service)
            .with_upgrades()
            .await;
    });
    Response::new(Either::Right(Full::new(Bytes::new())))
}

/// One CONNECT tunnel: a client, pinned to one upstream host and port (or
/// one plain `http://` request, `tls` false).
pub(crate) struct Tunnel<B> {
    pub(crate) shared: Arc<Shared<B>>,
    pub(crate) host: String,
    pub(crate) port: u16,
    pub(crate) credential: Arc<SecretString>,
    pub(crate) upstream: tokio::sync::Mutex<Option<SendRequest<UpBody>>>,
    /// TLS to the upstream (CONNECT), or plain TCP (absolute-form `http://`).
    pub(crate) tls: bool,
}

impl<B: Backend> Tunnel<B> {
    pub(crate) async fn request(&self, req: Request<Incoming>) -> Response<Body> {
        match self.forward(req).await {
            Ok(response) => response,
            Err(refusal) => {
                tracing::info!(host = %self.host, code = refusal.code.as_str(), "broker: refused");
                refuse(refusal)
            }
        }
    }

    async fn forward(&self, req: Request<Incoming>) -> Result<Response<Body>, Refusal> {
        check_header_size(req.headers())?;
        let asked = OwnedRequest {
            method: req.method().as_str().to_owned(),
            host: self.host.clone(),
            port: self.port,
            path: req.uri().path().to_owned(),
            tls: self.tls,
        };
        // Authenticated again on every request: a revoked key stops here.
        let (grant, meta) = self
            .shared
            .backend
            .grant_with_meta(self.credential.clone(), asked.clone())
            .await?;
        let target = format!("{} {}:{}{}", asked.method, self.host, self.port, asked.path);
        let attach = match grant {
            EgressGrant::Attach {
                auth, secret, value, ..
            } => Some((auth, secret, value)),
            EgressGrant::Tunnel(_) => None,
            EgressGrant::Deny(agent) => {
                let plain = if self.tls { "" } else { crate::plain::DENIED_HINT };
                return Err(Refusal::new(
                    Code::EgressDenied,
                    format!(
                        "no [[egress]] rule of agent {agent} covers {target}{plain}; the operator can add one \
                         to its policy file and run: vault agent set-policy {agent} --policy FILE"
                    ),
                ))
            }
            EgressGrant::MethodDenied(agent) => {
                return Err(Refusal::new(
                    Code::EgressMethodDenied,
                    format!(
                        "agent {agent}'s egress rules do not allow {target} (TRACE and TRACK are always \
                         refused); the operator can widen `methods` and run: vault agent set-policy {agent} --policy FILE"
                    ),
                ))
            }
        };
        let accounting = self.shared.config.accounting.clone();
        if let Some(accounting) = &accounting {
            accounting.admit(&meta, &asked)?;
        }
        let meta_governance = meta.governance();
        let agent = meta.agent.clone();
        let mut meter = Meter::new(accounting, Some(meta), &asked);
        let (mut parts, body) = req.into_parts();
        let websocket = crate::websocket::take_upgrade(&mut parts);
        // A WebSocket's frames are egress too: scanned as the body would be.
        let frame_scan = match meta_governance.scan {
            _ if websocket.is_none() => None,
            EgressScan::Off => None,
            scan => self
                .shared
                .backend
                .outbound()
                .map(|outbound| crate::websocket::FrameScan {
                    backend: self.shared.backend.clone(),
                    credential: self.credential.clone(),
                    outbound,
                    bound: attach.as_ref().map(|(_, secret, _)| secret.clone()),
                    redact: scan == EgressScan::Redact,
                }),
        };
        strip_hop_by_hop(&mut parts.headers);
        let mut path_and_query = parts
            .uri
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .to_owned();
        // Scanned (and held, if its rule says so) before the credential is attached.
        let (body, cut) = crate::outbound::prepare(
            crate::outbound::Outgoing {
                backend: &self.shared.backend,
                credential: &self.credential,
                host: &self.host,
                port: self.port,
                governance: meta_governance,
                agent: agent.as_str(),
                holds: &self.shared.holds,
                bound: attach.as_ref().map(|(_, secret, _)| secret),
                replaced: attach
                    .as_ref()
                    .and_then(|(auth, _, _)| replaced_header(auth)),
            },
            &asked.method,
            &mut parts.headers,
            &mut path_and_query,
            body,
        )
        .await?;
        // Counted (and for a model API maybe rewritten) as it goes upstream.
        let body = meter.request_body(&mut parts.headers, body).await?;
        if let Some((auth, secret, value)) = &attach {
            apply(&mut parts.headers, &mut path_and_query, auth, secret, value)?;
            drop_placeholders(&mut parts.headers, auth);
        }
        // The upstream is the CONNECT target, whatever Host or the URI said.
        let default_port = if self.tls { 443 } else { 80 };
        let host_header = if self.port == default_port {
            self.host.clone()
        } else {
            format!("{}:{}", self.host, self.port)
        };
        parts.headers.insert(
            header::HOST,
            HeaderValue::from_str(&host_header)
                .map_err(|_| Refusal::new(Code::BadProxyRequest, "bad host"))?,
        );
        parts.uri = path_and_query
            .parse::<Uri>()
            .map_err(|_| Refusal::new(Code::BadProxyRequest, "the request target is not a path"))?;
        parts.version = Version::HTTP_11;
        if let Some(client) = websocket {
            return crate::websocket::forward(self, client, parts, body, meter, frame_scan).await;
        }
        let upstream_req = Request::from_parts(parts, body);
        let pending = {
            let mut slot = self.upstream.lock().await;
            let reusable = match slot.as_mut() {
                Some(sender) if !sender.is_closed() => sender.ready().await.is_ok(),
                _ => false,
            };
            if !reusable {
                *slot = Some(self.connect().await?);
            }
            let Some(sender) = slot.as_mut() else {
                return Err(Refusal::new(Code::Internal, "no upstream connection"));
            };
            sender.send_request(upstream_req)
        };
        let response = match tokio::time::timeout(RESPONSE_HEADER_TIMEOUT, pending).await {
            Ok(Ok(r)) => r,
            Ok(Err(_)) => {
                // a body cut for a credential in it: say so, not "unreachable"
                if let Some(refusal) = cut.refusal() {
                    return Err(refusal);
                }
                return Err(Refusal::new(
                    Code::UpstreamUnreachable,
                    format!(
                        "{}:{} closed the connection before answering",
                        self.host, self.port
                    ),
                ));
            }
            Err(_) => {
                return Err(Refusal::new(
                    Code::UpstreamUnreachable,
                    format!(
                        "{}:{} sent no answer within 5 minutes",
                        self.host, self.port
                    ),
                ))
            }
        };
        let (mut parts, body) = response.into_parts();
        strip_hop_by_hop(&mut parts.headers);
        // The upstream may not plant cookies in the agent's jar.
        parts.headers.remove(header::SET_COOKIE);
        let body = meter.response(parts.status.as_u16(), &mut parts.headers, body);
        Ok(Response::from_parts(parts, Either::Left(body)))
    }

    async fn connect(&self) -> Result<SendRequest<UpBody>, Refusal> {
        let stream = self
            .shared
            .config
            .dialer
            .open(&self.host, self.port, self.tls)
            .await?;
        let (sender, conn) = hyper::client::conn::http1::Builder::new()
            .handshake(TokioIo::new(stream))
            .await
            .map_err(|_| {
                Refusal::new(
                    Code::UpstreamUnreachable,
                    format!("HTTP/1.1 with {}:{} failed", self.host, self.port),
                )
            })?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(sender)
    }
}

pub(crate) fn refuse(refusal: Refusal) -> Response<Body> {
    refusal.response().map(Either::Right)
}
