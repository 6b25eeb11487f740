//! Remote mode: with `VAULT_ADDR` and the agent's named key (`VAULT_AGENT_KEY`
//! or a key file), `vault token|get|env|run` act as the agent through a
//! running `vault server`, with no passphrase. `https://` addresses use
//! rustls (system-independent web PKI roots, or only `VAULT_CACERT` when set);
//! plain `http://` is allowed to loopback only, unless `VAULT_INSECURE_HTTP=1`.

use std::time::Duration;

use anyhow::Result;
use vault_core::SecretString;

use crate::exit::{self, CliError};

/// A server to talk to, as one agent.
pub struct Remote {
    base: String,
    key: SecretString,
    agent: ureq::Agent,
}

impl Remote {
    /// `Some` when `VAULT_ADDR` is set; then the key must be there too.
    pub fn from_env(key_file: Option<&std::path::Path>) -> Result<Option<Remote>> {
        Self::from_env_var("VAULT_AGENT_KEY", key_file)
    }

    /// Like [`Remote::from_env`], with the key in the environment variable
    /// `key_var` (an OpenClaw gateway hosting several agents keeps one key
    /// variable per agent).
    pub fn from_env_var(
        key_var: &str,
        key_file: Option<&std::path::Path>,
    ) -> Result<Option<Remote>> {
        let Some(addr) = std::env::var("VAULT_ADDR").ok().filter(|a| !a.is_empty()) else {
            return Ok(None);
        };
        let base = addr.trim_end_matches('/').to_owned();
        let mut builder = ureq::AgentBuilder::new().timeout(Duration::from_secs(30));
        if let Some(rest) = base.strip_prefix("http://") {
            let insecure = std::env::var("VAULT_INSECURE_HTTP").is_ok_and(|v| v == "1");
            if !is_loopback_host(rest) && !insecure {
                return Err(exit::refused(format!(
                    "VAULT_ADDR {base} is plain HTTP to another host: the key and secrets would cross \
                     the network in clear; use https:// (or set VAULT_INSECURE_HTTP=1)"
                )));
            }
        } else if base.starts_with("https://") {
            if let Some(ca) = std::env::var_os("VAULT_CACERT").filter(|v| !v.is_empty()) {
                builder = builder.tls_config(client_tls(std::path::Path::new(&ca))?);
            }
        } else {
            return Err(exit::usage(format!(
                "VAULT_ADDR {base:?} must start with http:// or https://"
            )));
        }
        let key = crate::cmd::token::credential_from(key_var, key_file, "named key")?;
        Ok(Some(Remote {
            base,
            key,
            agent: builder.build(),
        }))
    }

    /// Mints a token: `POST /v1/auth/token`.
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
        let reply = self.call(
            self.agent
                .post(&format!("{}/v1/auth/token", self.base))
                .set(
                    "Authorization",
                    &format!("Bearer {}", self.key.expose_secret()),
                ),
            Some(serde_json::Value::Object(body)),
        )?;
        let token = SecretString::new(reply["token"].as_str().unwrap_or_default().to_owned());
        let mut public = reply;
        public.as_object_mut().map(|m| m.remove("token"));
        Ok((token, public))
    }

    /// One secret's value and version, through a token scoped to it alone.
    pub fn get(&self, name: &str) -> Result<(SecretString, i64)> {
        let (token, _) = self.mint(Some(vec![format!("secret:{name}")]), Some(60))?;
        let reply = self.call(
            self.agent
                .get(&format!("{}/v1/secrets/{name}", self.base))
                .set(
                    "Authorization",
                    &format!("Bearer {}", token.expose_secret()),
                ),
            None,
        )?;
        Ok((
            SecretString::new(reply["value"].as_str().unwrap_or_default().to_owned()),
            reply["version"].as_i64().unwrap_or(0),
        ))
    }

    /// The agent's whole env, through a token scoped to `env:read`.
    pub fn env(&self) -> Result<Vec<(String, SecretString)>> {
        let (token, _) = self.mint(Some(vec!["env:read".into()]), Some(60))?;
        let reply = self.call(
            self.agent.get(&format!("{}/v1/env", self.base)).set(
                "Authorization",
                &format!("Bearer {}", token.expose_secret()),
            ),
            None,
        )?;
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

    /// One secret through a token minted earlier (`secrets:read`), so a batch
    /// costs one mint. `None` when the server answers 404: a missing secret
    /// and another agent's secret look alike on purpose.
    pub fn read(&self, token: &SecretString, name: &str) -> Result<Option<SecretString>> {
        let reply = self.call(
            self.agent
                .get(&format!("{}/v1/secrets/{}", self.base, encode_path(name)))
                .set(
                    "Authorization",
                    &format!("Bearer {}", token.expose_secret()),
                ),
            None,
        );
        match reply {
            Ok(reply) => Ok(Some(SecretString::new(
                reply["value"].as_str().unwrap_or_default().to_owned(),
            ))),
            Err(e) if exit::classify(&e).0 == exit::NOT_FOUND => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn call(
        &self,
        request: ureq::Request,
        body: Option<serde_json::Value>,
    ) -> Result<serde_json::Value> {
        let result = match body {
            Some(b) => request.send_json(b),
            None => request.call(),
        };
        match result {
            Ok(response) => Ok(response.into_json()?),
            Err(ureq::Error::Status(status, response)) => {
                let body: serde_json::Value = response.into_json().unwrap_or_default();
                let code = body["error"]["code"].as_str().unwrap_or("error").to_owned();
                let message = body["error"]["message"]
                    .as_str()
                    .unwrap_or("the server refused")
                    .to_owned();
                let exit_code = match status {
                    401 | 403 => exit::AUTH,
                    404 => exit::NOT_FOUND,
                    429 => exit::REFUSED,
                    _ => exit::USAGE,
                };
                Err(CliError {
                    code: exit_code,
                    name: Box::leak(code.into_boxed_str()),
                    message: format!("server: {message}"),
                }
                .into())
            }
            Err(e) => Err(exit::usage(format!(
                "cannot reach the vault server at {}: {e}",
                self.base
            ))),
        }
    }
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

/// Whether the host part of `host_port_path` (after the scheme) is loopback.
fn is_loopback_host(host_port_path: &str) -> bool {
    let authority = host_port_path.split('/').next().unwrap_or_default();
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default(),
        None => authority.rsplit_once(':').map_or(authority, |(h, _)| h),
    };
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// A rustls client that trusts only the CA certificates in `path` (PEM).
fn client_tls(path: &std::path::Path) -> Result<std::sync::Arc<rustls::ClientConfig>> {
    use rustls_pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    let certs = rustls_pki_types::CertificateDer::pem_file_iter(path)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|_| {
            exit::usage(format!(
                "VAULT_CACERT {}: not a PEM certificate file",
                path.display()
            ))
        })?;
    for cert in certs {
        roots
            .add(cert)
            .map_err(|e| exit::usage(format!("VAULT_CACERT {}: {e}", path.display())))?;
    }
    if roots.is_empty() {
        return Err(exit::usage(format!(
            "VAULT_CACERT {}: no certificate in it",
            path.display()
        )));
    }
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| exit::usage(format!("TLS setup: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(std::sync::Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::is_loopback_host;

    #[test]
    fn loopback_hosts_are_told_apart_from_remote_ones() {
        for ok in [
            "127.0.0.1:8200",
            "localhost:1/x",
            "[::1]:8200",
            "127.9.9.9",
            "LOCALHOST",
        ] {
            assert!(is_loopback_host(ok), "{ok}");
        }
        for remote in [
            "10.0.0.1:8200",
            "vault.example:443",
            "[::2]:1",
            "127.0.0.1.evil.test:80",
            "",
        ] {
            assert!(!is_loopback_host(remote), "{remote}");
        }
    }
}
