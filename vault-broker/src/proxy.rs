//! The proxy itself: the accept loop, CONNECT (authenticated before anything
//! else), TLS termination with a leaf for the CONNECT host, and per request
//! inside the tunnel: decide, strip, attach, forward to the CONNECT target,
//! stream the answer back as it arrives. Plain `http://` requests (plain.rs)
//! and WebSocket upgrades (websocket.rs) take the same path.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use http_body_util::{Either, Full};
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper::header::{self, HeaderMap, HeaderName, HeaderValue};
use hyper::service::service_fn;
use hyper::{Method, Request, Response, Uri, Version};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use vault_core::policy::egress::{EgressAuth, PLACEHOLDER};
use vault_core::{EgressGrant, SecretBytes, SecretPath, SecretString};

use crate::ca::LocalCa;
use crate::dial::Dialer;
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
/// Largest total of header names and values the broker takes (431 past it).
const MAX_HEADER_BYTES: usize = 16 * 1024;

/// What the broker needs besides the vault.
#[derive(Clone)]
pub struct Config {
    /// The local CA minting leaves.
    pub ca: Arc<LocalCa>,
    /// The one dialer.
    pub dialer: Dialer,
    /// Usage accounting and budgets (None: off).
    pub accounting: Option<Arc<Accounting>>,
}

pub(crate) struct Shared<B> {
    backend: Arc<B>,
    pub(crate) config: Config,
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
    let shared = Arc::new(Shared { backend, config });
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
        let shared = shared.clone();
        tokio::spawn(async move {
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
        let mut meter = Meter::new(accounting, Some(meta), &asked);
        let (mut parts, body) = req.into_parts();
        let websocket = crate::websocket::take_upgrade(&mut parts);
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
            return crate::websocket::forward(self, client, parts, body, meter).await;
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

fn check_header_size(headers: &HeaderMap) -> Result<(), Refusal> {
    let size: usize = headers
        .iter()
        .map(|(n, v)| n.as_str().len() + v.len() + 4)
        .sum();
    if size > MAX_HEADER_BYTES {
        return Err(Refusal::new(
            Code::HeadersTooLarge,
            format!("the request's headers exceed {MAX_HEADER_BYTES} bytes"),
        ));
    }
    Ok(())
}

pub(crate) fn refuse(refusal: Refusal) -> Response<Body> {
    refusal.response().map(Either::Right)
}

/// The vault credential in `Proxy-Authorization`: Basic with it as user or
/// password (the URL form `http://user:CREDENTIAL@host`), or Bearer.
fn proxy_credential(headers: &HeaderMap) -> Option<SecretString> {
    let value = headers.get(header::PROXY_AUTHORIZATION)?.to_str().ok()?;
    let (scheme, rest) = value.trim().split_once(' ')?;
    let rest = rest.trim();
    if scheme.eq_ignore_ascii_case("bearer") {
        return (!rest.is_empty()).then(|| SecretString::new(rest.to_owned()));
    }
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = zeroize::Zeroizing::new(
        base64::engine::general_purpose::STANDARD
            .decode(rest)
            .ok()?,
    );
    let text = std::str::from_utf8(&decoded).ok()?;
    let (user, password) = text.split_once(':').unwrap_or((text, ""));
    let looks_like = |s: &str| s.starts_with("avk_") || s.starts_with("avt_");
    let chosen = if looks_like(password) || user.is_empty() {
        password
    } else {
        user
    };
    (!chosen.is_empty()).then(|| SecretString::new(chosen.to_owned()))
}

/// `host:port` of a CONNECT, checked: a DNS name or an IP literal, a port.
pub(crate) fn connect_target(uri: &Uri) -> Result<(String, u16), Refusal> {
    let bad = || {
        Refusal::new(
            Code::BadProxyRequest,
            "CONNECT needs a target like api.example.com:443",
        )
    };
    let authority = uri.authority().ok_or_else(bad)?;
    if uri.scheme().is_some() || uri.path_and_query().is_some_and(|p| p.as_str() != "/") {
        return Err(bad());
    }
    let port = authority.port_u16().filter(|p| *p != 0).ok_or_else(bad)?;
    let host = authority.host();
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host)
        .trim_end_matches('.')
        .to_ascii_lowercase();
    let is_ip = host.parse::<std::net::IpAddr>().is_ok();
    let is_name = !host.is_empty()
        && host.len() <= 253
        && host.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        });
    if !(is_ip || is_name) || authority.as_str().contains('@') {
        return Err(bad());
    }
    Ok((host, port))
}

/// The header the attached credential replaces (the client's value there never leaves).
fn replaced_header(auth: &EgressAuth) -> Option<HeaderName> {
    match auth {
        EgressAuth::Bearer | EgressAuth::Basic => Some(header::AUTHORIZATION),
        EgressAuth::Header(name) => HeaderName::from_bytes(name.as_bytes()).ok(),
        EgressAuth::Query(_) | EgressAuth::Path => None,
    }
}

/// Removes hop-by-hop headers and every header `Connection` names.
pub(crate) fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|n| HeaderName::from_bytes(n.trim().as_bytes()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in HOP_BY_HOP {
        headers.remove(name);
    }
}

const HOP_BY_HOP: [&str; 9] = [
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// Puts the secret where the rule says. The attached value always replaces
/// whatever the client sent there.
fn apply(
    headers: &mut HeaderMap,
    path_and_query: &mut String,
    auth: &EgressAuth,
    secret: &SecretPath,
    value: &SecretBytes,
) -> Result<(), Refusal> {
    let unusable = || {
        Refusal::new(
            Code::EgressSecretUnusable,
            format!(
                "the secret {secret} holds characters this rule cannot carry (such as CR, LF or non-UTF-8); \
                 the operator can store a clean value with: vault set {secret}"
            ),
        )
    };
    let text = value.as_str().ok_or_else(unusable)?;
    let header_value = |s: String| {
        let s = zeroize::Zeroizing::new(s);
        let mut v = HeaderValue::from_str(&s).map_err(|_| unusable())?;
        v.set_sensitive(true);
        Ok::<_, Refusal>(v)
    };
    match auth {
        EgressAuth::Bearer => {
            headers.insert(
                header::AUTHORIZATION,
                header_value(format!("Bearer {text}"))?,
            );
        }
        EgressAuth::Basic => {
            if text.contains(['\r', '\n']) {
                return Err(unusable());
            }
            let pair = zeroize::Zeroizing::new(if text.contains(':') {
                text.to_owned()
            } else {
                format!("{text}:")
            });
            let encoded = base64::engine::general_purpose::STANDARD.encode(pair.as_bytes());
            headers.insert(
                header::AUTHORIZATION,
                header_value(format!("Basic {encoded}"))?,
            );
        }
        EgressAuth::Header(name) => {
            let name = HeaderName::from_bytes(name.as_bytes()).map_err(|_| unusable())?;
            headers.insert(name, header_value(text.to_owned())?);
        }
        EgressAuth::Query(name) => {
            let (path, query) = match path_and_query.split_once('?') {
                Some((p, q)) => (p.to_owned(), q.to_owned()),
                None => (path_and_query.clone(), String::new()),
            };
            let mut pairs: Vec<&str> = query
                .split('&')
                .filter(|kv| !kv.is_empty() && kv.split('=').next() != Some(name.as_str()))
                .collect();
            let attached = zeroize::Zeroizing::new(format!("{name}={}", percent_encode(text)));
            pairs.push(&attached);
            let rebuilt = zeroize::Zeroizing::new(format!("{path}?{}", pairs.join("&")));
            path_and_query.clear();
            path_and_query.push_str(&rebuilt);
        }
        EgressAuth::Path => {
            let (path, query) = match path_and_query.split_once('?') {
                Some((p, q)) => (p.to_owned(), Some(q.to_owned())),
                None => (path_and_query.clone(), None),
            };
            if !path.contains(PLACEHOLDER) {
                return Err(Refusal::new(
                    Code::EgressPlaceholderMissing,
                    format!(
                        "this rule puts {secret} in the path in place of {PLACEHOLDER:?}, and the path holds none"
                    ),
                ));
            }
            let mut rebuilt = path.replace(PLACEHOLDER, &percent_encode(text));
            if let Some(q) = query {
                rebuilt.push('?');
                rebuilt.push_str(&q);
            }
            path_and_query.clear();
            path_and_query.push_str(&rebuilt);
            drop(zeroize::Zeroizing::new(rebuilt));
        }
    }
    Ok(())
}

/// Removes every other header still carrying the placeholder once the real
/// credential is attached: an SDK that sends its key in two places (the
/// Anthropic SDK sends `Authorization: Bearer` beside `x-api-key`) would
/// otherwise show the upstream a bogus credential beside the real one.
fn drop_placeholders(headers: &mut HeaderMap, auth: &EgressAuth) {
    let attached = match auth {
        EgressAuth::Bearer | EgressAuth::Basic => Some(header::AUTHORIZATION),
        EgressAuth::Header(name) => HeaderName::from_bytes(name.as_bytes()).ok(),
        EgressAuth::Query(_) | EgressAuth::Path => None,
    };
    let stale: Vec<HeaderName> = headers
        .iter()
        .filter(|(name, value)| {
            Some(*name) != attached.as_ref()
                && value
                    .as_bytes()
                    .windows(PLACEHOLDER.len())
                    .any(|w| w == PLACEHOLDER.as_bytes())
        })
        .map(|(name, _)| name.clone())
        .collect();
    for name in stale {
        headers.remove(name);
    }
}

/// RFC 3986 percent-encoding of everything but the unreserved characters.
fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path() -> SecretPath {
        SecretPath::parse("hermes/KEY").unwrap()
    }

    // issue 15, proxy: hop-by-hop headers and those Connection names are stripped
    #[test]
    fn hop_by_hop_and_connection_named_headers_are_stripped() {
        let mut h = HeaderMap::new();
        h.insert(
            "connection",
            HeaderValue::from_static("keep-alive, x-secret-hop"),
        );
        h.insert("x-secret-hop", HeaderValue::from_static("1"));
        h.insert("proxy-authorization", HeaderValue::from_static("Basic abc"));
        h.insert("te", HeaderValue::from_static("trailers"));
        h.insert("anthropic-version", HeaderValue::from_static("2023-06-01"));
        strip_hop_by_hop(&mut h);
        assert_eq!(h.len(), 1, "{h:?}");
        assert!(h.contains_key("anthropic-version"));
    }

    // issue 15, proxy: the credential replaces the client's, in each place a rule names
    #[test]
    fn each_auth_scheme_attaches_and_wins_over_the_client() {
        let v = SecretBytes::from_slice(b"sk-real/+=");
        let mut h = HeaderMap::new();
        h.insert(
            "authorization",
            HeaderValue::from_static("Bearer vault-brokered"),
        );
        let mut pq = "/v1/x?a=1".to_owned();
        apply(&mut h, &mut pq, &EgressAuth::Bearer, &path(), &v).unwrap();
        assert_eq!(h["authorization"], "Bearer sk-real/+=");
        assert!(h["authorization"].is_sensitive());
        apply(&mut h, &mut pq, &EgressAuth::Basic, &path(), &v).unwrap();
        assert_eq!(h["authorization"], "Basic c2stcmVhbC8rPTo=");
        apply(
            &mut h,
            &mut pq,
            &EgressAuth::Header("x-api-key".into()),
            &path(),
            &v,
        )
        .unwrap();
        assert_eq!(h["x-api-key"], "sk-real/+=");
        let mut pq = "/v1/x?key=vault-brokered&a=1".to_owned();
        apply(
            &mut h,
            &mut pq,
            &EgressAuth::Query("key".into()),
            &path(),
            &v,
        )
        .unwrap();
        assert_eq!(pq, "/v1/x?a=1&key=sk-real%2F%2B%3D");
        let mut pq = "/botvault-brokered/getMe?x=1".to_owned();
        apply(&mut h, &mut pq, &EgressAuth::Path, &path(), &v).unwrap();
        assert_eq!(pq, "/botsk-real%2F%2B%3D/getMe?x=1");
        let mut pq = "/bot123/getMe".to_owned();
        let err = apply(&mut h, &mut pq, &EgressAuth::Path, &path(), &v).unwrap_err();
        assert_eq!(err.code, Code::EgressPlaceholderMissing);
    }

    // issue 15 remainder, item 1: the Anthropic SDK's placeholder Bearer does
    // not reach the upstream beside the attached x-api-key
    #[test]
    fn headers_still_carrying_the_placeholder_are_dropped_once_attached() {
        let v = SecretBytes::from_slice(b"sk-ant-real");
        let mut h = HeaderMap::new();
        h.insert(
            "authorization",
            HeaderValue::from_static("Bearer vault-brokered"),
        );
        h.insert("x-api-key", HeaderValue::from_static("vault-brokered"));
        h.insert("anthropic-version", HeaderValue::from_static("2023-06-01"));
        let mut pq = "/v1/messages".to_owned();
        let auth = EgressAuth::Header("x-api-key".into());
        apply(&mut h, &mut pq, &auth, &path(), &v).unwrap();
        drop_placeholders(&mut h, &auth);
        assert_eq!(h["x-api-key"], "sk-ant-real");
        assert!(!h.contains_key("authorization"), "{h:?}");
        assert!(h.contains_key("anthropic-version"));
    }

    // issue 15, bad input: a stored value with CR/LF is never put into a header
    #[test]
    fn a_value_with_cr_lf_is_refused_not_injected() {
        let v = SecretBytes::from_slice(b"sk\r\nX-Evil: 1");
        for auth in [
            EgressAuth::Bearer,
            EgressAuth::Basic,
            EgressAuth::Header("x-k".into()),
        ] {
            let mut h = HeaderMap::new();
            let mut pq = "/".to_owned();
            let err = apply(&mut h, &mut pq, &auth, &path(), &v).unwrap_err();
            assert_eq!(err.code, Code::EgressSecretUnusable);
            assert!(!err.message.contains("sk"), "{}", err.message);
            assert!(h.is_empty());
        }
    }

    // issue 15, bad input: CONNECT targets that are not host:port are refused
    #[test]
    fn malformed_connect_targets_are_refused() {
        for ok in [
            "api.example.com:443",
            "127.0.0.1:8443",
            "[::1]:443",
            "LocalHost.:99",
        ] {
            let uri: Uri = ok.parse().unwrap();
            assert!(connect_target(&uri).is_ok(), "{ok}");
        }
        for bad in [
            "api.example.com",
            "a.com:0",
            "https://a.com:443/",
            "a_b.com:443",
            "/path",
        ] {
            let Ok(uri) = bad.parse::<Uri>() else {
                continue;
            };
            assert!(connect_target(&uri).is_err(), "{bad}");
        }
    }

    // issue 15, proxy auth: Basic (either half) and Bearer carry the credential
    #[test]
    fn proxy_credentials_are_read_from_basic_or_bearer() {
        let get = |v: &str| {
            let mut h = HeaderMap::new();
            h.insert("proxy-authorization", HeaderValue::from_str(v).unwrap());
            proxy_credential(&h).map(|s| s.expose_secret().to_owned())
        };
        let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        assert_eq!(
            get(&format!("Basic {}", b64("agent:avk_x"))).as_deref(),
            Some("avk_x")
        );
        assert_eq!(
            get(&format!("Basic {}", b64("avk_y:"))).as_deref(),
            Some("avk_y")
        );
        assert_eq!(
            get(&format!("basic {}", b64("avk_z:ignored"))).as_deref(),
            Some("avk_z")
        );
        assert_eq!(get("Bearer avt_t").as_deref(), Some("avt_t"));
        assert_eq!(get("Digest x"), None);
        assert_eq!(get("Basic !!!"), None);
        assert_eq!(get(&format!("Basic {}", b64(":"))), None);
    }
}
