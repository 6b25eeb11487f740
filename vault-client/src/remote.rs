//! Remote mode: with `VAULT_ADDR` and the agent's named key (`VAULT_AGENT_KEY`
//! or a key file), `vault token|get|env|run` act as the agent through a
//! running `vault server`, with no passphrase.
//!
//! Where the key goes is the whole security of this module, since a named key
//! lives for 90 days. `unix:PATH` (the recommended local transport) talks
//! HTTP/1.1 over the server's owner-only socket and checks the peer's uid
//! (`SO_PEERCRED`): only a server of this same user gets the key. `https://`
//! uses rustls (web PKI roots, or only `VAULT_CACERT` when set: pin the
//! server's certificate that way, on loopback too). Plain `http://` is allowed
//! to loopback only (unless `VAULT_INSECURE_HTTP=1`); nothing authenticates
//! such a server, so a local user who binds the port while it is down
//! collects keys, and `vault doctor` warns about it. The address is parsed
//! with the `url` crate (the parser ureq connects with), and userinfo is
//! refused, so `http://[::1]@192.0.2.2/` cannot pass for loopback.

use std::path::{Path, PathBuf};
use std::time::Duration;

use vault_core::doctor::{Finding, Severity};
use vault_core::{SecretBytes, SecretName, SecretString};

use crate::credential::credential_from;
use crate::error::{invalid, Error, Result};

/// The variable that holds an agent's named key unless told otherwise.
pub const AGENT_KEY_VAR: &str = "VAULT_AGENT_KEY";

/// Where `vault server` listens unless told otherwise.
pub const DEFAULT_ADDR: &str = "http://127.0.0.1:8200";

/// How long one call to the server may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// Largest answer read from a server (an env of many secrets fits easily).
const MAX_REPLY: usize = 16 * 1024 * 1024;

/// How requests reach the server.
pub enum Transport {
    /// `http://` or `https://`, by ureq.
    Http {
        /// The URL without a trailing slash.
        base: String,
        /// The HTTP client, with its timeout and TLS roots.
        agent: ureq::Agent,
    },
    /// `unix:PATH`, by hyper over the socket.
    Unix(PathBuf),
}

/// A server to talk to, as one agent.
pub struct Remote {
    transport: Transport,
    key: SecretString,
    /// Tokens [`Remote::get`] minted, by secret name, with their expiry
    /// (Unix seconds): reused for their lifetime, so `tokens_per_minute`
    /// does not cap how often one process reads a secret (issue 19).
    read_tokens: std::sync::Mutex<std::collections::HashMap<String, (SecretString, u64)>>,
}

/// What `VAULT_ADDR` names, once checked.
#[derive(Debug, PartialEq, Eq)]
pub enum Addr {
    /// A Unix socket path.
    Unix(PathBuf),
    /// An http(s) base URL without a trailing slash; `tls` for https,
    /// `loopback` when the host is a loopback name or address.
    Http {
        /// The URL without a trailing slash.
        base: String,
        /// Whether it is https.
        tls: bool,
        /// Whether the host is a loopback name or address.
        loopback: bool,
    },
}

/// Parses and checks `VAULT_ADDR`: `unix:PATH`, or an `http://` /
/// `https://` URL with no userinfo, query or fragment. Plain HTTP to a host
/// that is not loopback is refused unless `insecure`.
pub fn parse_addr(addr: &str, insecure: bool) -> Result<Addr> {
    if let Some(path) = addr.strip_prefix("unix:") {
        let path = path.strip_prefix("//").unwrap_or(path);
        if !path.starts_with('/') {
            return Err(invalid(format!(
                "VAULT_ADDR {addr:?}: a Unix socket is named by an absolute path, like unix:/run/user/1000/vault.sock"
            )));
        }
        return Ok(Addr::Unix(PathBuf::from(path)));
    }
    let url = url::Url::parse(addr).map_err(|e| {
        invalid(format!(
            "VAULT_ADDR {addr:?} is not a URL ({e}); use unix:PATH, https://HOST:PORT or http://127.0.0.1:PORT"
        ))
    })?;
    let tls = match url.scheme() {
        "https" => true,
        "http" => false,
        _ => {
            return Err(invalid(format!(
                "VAULT_ADDR {addr:?} must start with unix:, https:// or http://"
            )))
        }
    };
    if !url.username().is_empty() || url.password().is_some() {
        return Err(invalid(format!(
            "VAULT_ADDR {addr:?} has a user part (before @): refused, since it hides which host is reached"
        )));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(invalid(format!(
            "VAULT_ADDR {addr:?} has a query or fragment: give only scheme, host, port and path"
        )));
    }
    let loopback = match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    };
    let base = url.as_str().trim_end_matches('/').to_owned();
    if !tls && !loopback && !insecure {
        return Err(Error::Refused(format!(
            "VAULT_ADDR {base} is plain HTTP to another host: the key and secrets would cross \
             the network in clear; use https:// (or set VAULT_INSECURE_HTTP=1)"
        )));
    }
    Ok(Addr::Http {
        base,
        tls,
        loopback,
    })
}

/// `VAULT_ADDR`, when set and not empty: then a program acts through a server.
pub fn addr_from_env() -> Option<String> {
    std::env::var("VAULT_ADDR").ok().filter(|a| !a.is_empty())
}

impl Remote {
    /// The server at `VAULT_ADDR`, as the agent whose named key is in
    /// `key_file` or the variable `key_var`; `None` when `VAULT_ADDR` is not
    /// set. The address is checked before the key is read.
    ///
    /// # Errors
    /// A bad `VAULT_ADDR` or `VAULT_CACERT`, or no usable key.
    pub fn from_env(key_var: &str, key_file: Option<&Path>) -> Result<Option<Remote>> {
        let Some(addr) = addr_from_env() else {
            return Ok(None);
        };
        let transport = Transport::from_addr(&addr)?;
        let key = credential_from(key_var, key_file, "named key")?;
        Ok(Some(Remote::new(transport, key)))
    }

    /// A server at `transport`, as the holder of `key` (an agent's named
    /// key, or the admin token).
    pub fn new(transport: Transport, key: SecretString) -> Remote {
        let read_tokens = Default::default();
        Remote {
            transport,
            key,
            read_tokens,
        }
    }

    /// The server at `VAULT_ADDR` (default: `vault server`'s default
    /// address, `http://127.0.0.1:8200`), as the operator with the admin token.
    pub fn admin(admin_token: SecretString) -> Result<Remote> {
        let addr = std::env::var("VAULT_ADDR")
            .ok()
            .filter(|a| !a.is_empty())
            .unwrap_or_else(|| DEFAULT_ADDR.to_owned());
        Ok(Remote::new(Transport::from_addr(&addr)?, admin_token))
    }

    /// An admin call with an empty JSON body: `POST path`.
    pub fn admin_post(&self, path: &str) -> Result<serde_json::Value> {
        self.call("POST", path, &self.key, Some(serde_json::json!({})))
    }

    /// The http(s) base a browser can open, or `None` for a Unix socket.
    pub fn browser_base(&self) -> Option<&str> {
        match &self.transport {
            Transport::Http { base, .. } => Some(base),
            Transport::Unix(_) => None,
        }
    }

    /// Mints a token: `POST /v1/auth/token` with a named key, or
    /// `POST /v1/auth/attenuate` when the credential is itself a token.
    pub fn mint(
        &self,
        scopes: Option<Vec<String>>,
        ttl_seconds: Option<u64>,
    ) -> Result<(SecretString, serde_json::Value)> {
        let mut body = serde_json::Map::new();
        if let Some(s) = scopes {
            body.insert("scopes".into(), serde_json::json!(s));
        }
        if let Some(t) = ttl_seconds {
            body.insert("ttl_seconds".into(), serde_json::json!(t));
        }
        // A token as the credential (`--from-token`) attenuates itself.
        let token_credential = self
            .key
            .expose_secret()
            .starts_with(vault_core::credential::TOKEN_PREFIX);
        let path = ["/v1/auth/token", "/v1/auth/attenuate"][usize::from(token_credential)];
        let reply = self.call(
            "POST",
            path,
            &self.key,
            Some(serde_json::Value::Object(body)),
        )?;
        let token = SecretString::new(reply["token"].as_str().unwrap_or_default().to_owned());
        let mut public = reply;
        public.as_object_mut().map(|m| m.remove("token"));
        Ok((token, public))
    }

    /// One secret's value and version, through a token scoped to it alone.
    /// `name` is `NAME` or a granted `AGENT/NAME`, sent as one path segment.
    /// The token is minted once and reused until shortly before it expires.
    pub fn get(&self, name: &str) -> Result<(SecretString, i64)> {
        // A poisoned lock only means another reader panicked: the map is still whole.
        let mut tokens = self.read_tokens.lock().unwrap_or_else(|p| p.into_inner());
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        if tokens
            .get(name)
            .is_none_or(|(_, expires)| *expires <= now + 5)
        {
            let (token, public) = self.mint(Some(vec![format!("secret:{name}")]), Some(60))?;
            let expires = public["expires_at"].as_u64().unwrap_or(now);
            tokens.insert(name.to_owned(), (token, expires));
        }
        // present: found fresh above, or inserted just now
        let token = &tokens[name].0;
        let reply = self.call(
            "GET",
            &format!("/v1/secrets/{}", encode_path(name)),
            token,
            None,
        );
        if reply.is_err() {
            // revoked, expired early, refused: the next read mints afresh
            tokens.remove(name);
        }
        let reply = reply?;
        Ok((
            SecretString::new(reply["value"].as_str().unwrap_or_default().to_owned()),
            reply["version"].as_i64().unwrap_or(0),
        ))
    }

    /// The agent's whole env, through a token scoped to `env:read`.
    pub fn env(&self) -> Result<Vec<(String, SecretString)>> {
        let (token, _) = self.mint(Some(vec!["env:read".into()]), Some(60))?;
        let reply = self.call("GET", "/v1/env", &token, None)?;
        let map = reply["env"].as_object().cloned().unwrap_or_default();
        Ok(map
            .into_iter()
            .map(|(k, v)| {
                (
                    k,
                    SecretString::new(v.as_str().unwrap_or_default().to_owned()),
                )
            })
            .collect())
    }

    /// The agent's env as the vault's own types, ready for a child's environment.
    pub fn env_vars(&self) -> Result<Vec<(SecretName, SecretBytes)>> {
        self.env()?
            .into_iter()
            .map(|(k, v)| {
                Ok((
                    SecretName::parse(&k)?,
                    SecretBytes::from_slice(v.expose_secret().as_bytes()),
                ))
            })
            .collect()
    }

    /// One secret through a token minted earlier (`secrets:read`), so a batch
    /// costs one mint. `None` when the server answers 404: a missing secret
    /// and another agent's secret look alike on purpose.
    pub fn read(&self, token: &SecretString, name: &str) -> Result<Option<SecretString>> {
        let reply = self.call(
            "GET",
            &format!("/v1/secrets/{}", encode_path(name)),
            token,
            None,
        );
        match reply {
            Ok(reply) => Ok(Some(SecretString::new(
                reply["value"].as_str().unwrap_or_default().to_owned(),
            ))),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The broker's address and CA certificate: `GET /v1/broker`.
    pub fn broker(&self, token: &SecretString) -> Result<(String, String)> {
        let reply = self.call("GET", "/v1/broker", token, None)?;
        let text = |k: &str| reply[k].as_str().unwrap_or_default().to_owned();
        Ok((text("addr"), text("ca_pem")))
    }

    /// The env names the agent's egress rules attach: `GET /v1/broker/placeholders`.
    pub fn placeholders(&self, token: &SecretString) -> Result<Vec<String>> {
        let reply = self.call("GET", "/v1/broker/placeholders", token, None)?;
        Ok(reply["names"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|n| n.as_str().map(str::to_owned))
            .collect())
    }

    /// Revokes `token` (the caller's own): `POST /v1/auth/revoke`.
    pub fn revoke(&self, token: &SecretString) -> Result<()> {
        self.call("POST", "/v1/auth/revoke", token, None)
            .map(|_| ())
    }

    /// Where the server is, for messages.
    fn place(&self) -> String {
        match &self.transport {
            Transport::Http { base, .. } => base.clone(),
            Transport::Unix(path) => format!("unix:{}", path.display()),
        }
    }

    /// One request; a 2xx answer's JSON, or the server's error as a CLI error.
    fn call(
        &self,
        method: &str,
        path: &str,
        bearer: &SecretString,
        body: Option<serde_json::Value>,
    ) -> Result<serde_json::Value> {
        // clear intermediates: the header text holds the key or token
        let auth = zeroize::Zeroizing::new(format!("Bearer {}", bearer.expose_secret()));
        let answer = match &self.transport {
            Transport::Http { base, agent } => {
                let request = agent
                    .request(method, &format!("{base}{path}"))
                    .set("Authorization", auth.as_str());
                let result = match body {
                    Some(b) => request.send_json(b),
                    None => request.call(),
                };
                match result {
                    Ok(response) => Ok((response.status(), response.into_json()?)),
                    Err(ureq::Error::Status(status, response)) => {
                        Ok((status, response.into_json().unwrap_or_default()))
                    }
                    Err(e) => Err(e.to_string()),
                }
            }
            Transport::Unix(socket) => unix_call(socket, method, path, auth.as_str(), body),
        };
        let (status, reply) = answer.map_err(|reason| Error::Unreachable {
            place: self.place(),
            reason,
        })?;
        if (200..300).contains(&status) {
            return Ok(reply);
        }
        let code = reply["error"]["code"]
            .as_str()
            .unwrap_or("error")
            .to_owned();
        let message = reply["error"]["message"]
            .as_str()
            .unwrap_or("the server refused")
            .to_owned();
        Err(Error::Server {
            status,
            code,
            message,
        })
    }
}

impl Transport {
    /// The transport to `addr` (a checked `VAULT_ADDR`), with `VAULT_CACERT`
    /// pinning https when set and `VAULT_INSECURE_HTTP=1` allowing plain HTTP
    /// beyond loopback.
    pub fn from_addr(addr: &str) -> Result<Transport> {
        let insecure = std::env::var("VAULT_INSECURE_HTTP").is_ok_and(|v| v == "1");
        let transport = match parse_addr(addr, insecure)? {
            Addr::Unix(path) => Transport::Unix(path),
            Addr::Http { base, tls, .. } => {
                let mut builder = ureq::AgentBuilder::new().timeout(CALL_TIMEOUT);
                if tls {
                    if let Some(ca) = std::env::var_os("VAULT_CACERT").filter(|v| !v.is_empty()) {
                        builder = builder.tls_config(client_tls(Path::new(&ca))?);
                    }
                }
                Transport::Http {
                    base,
                    agent: builder.build(),
                }
            }
        };
        Ok(transport)
    }
}

/// One HTTP/1.1 exchange over the server's Unix socket, after checking that
/// the process holding the socket is this same user (`SO_PEERCRED`): a
/// socket another user put at the path gets no key.
fn unix_call(
    socket: &Path,
    method: &str,
    path: &str,
    auth: &str,
    body: Option<serde_json::Value>,
) -> std::result::Result<(u16, serde_json::Value), String> {
    use http_body_util::BodyExt;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    runtime.block_on(async {
        let exchange = async {
            let stream = tokio::net::UnixStream::connect(socket)
                .await
                .map_err(|e| e.to_string())?;
            let peer = stream.peer_cred().map_err(|e| e.to_string())?;
            let me = nix::unistd::geteuid().as_raw();
            if peer.uid() != me {
                return Err(format!(
                    "the socket is served by uid {}, not by this user (uid {me}): refusing to send the key",
                    peer.uid()
                ));
            }
            let (mut sender, connection) =
                hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
                    .await
                    .map_err(|e| e.to_string())?;
            tokio::spawn(connection);
            let mut value =
                hyper::header::HeaderValue::from_str(auth).map_err(|_| "malformed credential")?;
            value.set_sensitive(true);
            let bytes = body.map(|b| b.to_string().into_bytes()).unwrap_or_default();
            let request = hyper::Request::builder()
                .method(method)
                .uri(path)
                .header(hyper::header::HOST, "localhost")
                .header(hyper::header::AUTHORIZATION, value)
                .header(hyper::header::CONTENT_TYPE, "application/json")
                .body(http_body_util::Full::new(hyper::body::Bytes::from(bytes)))
                .map_err(|e| e.to_string())?;
            let response = sender
                .send_request(request)
                .await
                .map_err(|e| e.to_string())?;
            let status = response.status().as_u16();
            let collected = http_body_util::Limited::new(response.into_body(), MAX_REPLY)
                .collect()
                .await
                .map_err(|e| e.to_string())?
                .to_bytes();
            let value = serde_json::from_slice(&collected).unwrap_or_default();
            Ok((status, value))
        };
        tokio::time::timeout(CALL_TIMEOUT, exchange)
            .await
            .map_err(|_| "timed out".to_owned())?
    })
}

/// Percent-encodes every byte but `[A-Za-z0-9_.-]` for one path segment, so
/// `AGENT/NAME` stays one segment (`AGENT%2FNAME`).
fn encode_path(segment: &str) -> String {
    let mut out = String::with_capacity(segment.len());
    for b in segment.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A rustls client that trusts only the CA certificates in `path` (PEM).
fn client_tls(path: &Path) -> Result<std::sync::Arc<rustls::ClientConfig>> {
    use rustls_pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    let certs = rustls_pki_types::CertificateDer::pem_file_iter(path)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|_| {
            invalid(format!(
                "VAULT_CACERT {}: not a PEM certificate file",
                path.display()
            ))
        })?;
    for cert in certs {
        roots
            .add(cert)
            .map_err(|e| invalid(format!("VAULT_CACERT {}: {e}", path.display())))?;
    }
    if roots.is_empty() {
        return Err(invalid(format!(
            "VAULT_CACERT {}: no certificate in it",
            path.display()
        )));
    }
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| invalid(format!("TLS setup: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(std::sync::Arc::new(config))
}

/// `vault doctor`'s findings about `VAULT_ADDR` as this shell would use it:
/// plain HTTP, even to loopback, authenticates no server (issue 13, finding 9).
pub fn addr_findings() -> Vec<Finding> {
    let Some(addr) = addr_from_env() else {
        return Vec::new();
    };
    let insecure = std::env::var("VAULT_INSECURE_HTTP").is_ok_and(|v| v == "1");
    match parse_addr(&addr, insecure) {
        Ok(Addr::Http {
            base, tls: false, ..
        }) => vec![Finding {
            check: "remote-plain-http",
            severity: Severity::Medium,
            message: format!(
                "VAULT_ADDR is {base}: plain HTTP authenticates no server, so whoever holds that port gets the agent's named key"
            ),
            fix: vault_core::doctor::PLAIN_LOOPBACK_FIX.into(),
        }],
        Ok(_) => Vec::new(),
        Err(e) => vec![Finding {
            check: "remote-bad-addr",
            severity: Severity::Medium,
            message: format!("VAULT_ADDR is not usable: {e}"),
            fix: "set VAULT_ADDR=unix:PATH, https://HOST:PORT or http://127.0.0.1:PORT".into(),
        }],
    }
}

#[cfg(test)]
#[path = "remote_tests.rs"]
mod tests;
