//! TLS to the database, as the `--database` URL asks for it, with libpq's
//! meaning of `sslmode` and `sslrootcert`: an operator's URL that works with
//! `psql` means the same here, and `verify-full` is what it says (the
//! server's certificate chains to the given CA and names the host dialled).
//!
//! The client crate knows `disable|prefer|require` only and never verifies
//! by itself; the verification is ours, on rustls and ring (the TLS stack
//! and crypto the vault already uses), handed to the client through
//! `tokio-postgres-rustls`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::{CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};

use crate::error::{Error, Result};

/// libpq's `sslmode`, one wire name each.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SslMode {
    /// Never TLS.
    Disable,
    /// libpq tries plain first, then TLS; here as `prefer` (TLS when the
    /// server offers it, else plain): neither verifies anything.
    Allow,
    /// TLS when the server offers it, unverified; plain otherwise. libpq's
    /// default, and so the default here.
    Prefer,
    /// TLS or no connection; the certificate unverified, unless a root CA
    /// file is named (then as `verify-ca`, as libpq does).
    Require,
    /// TLS, the certificate chained to the root CA file.
    VerifyCa,
    /// As `verify-ca`, and the certificate names the host connected to.
    VerifyFull,
}

impl SslMode {
    pub(crate) const ALL: [SslMode; 6] = [
        SslMode::Disable,
        SslMode::Allow,
        SslMode::Prefer,
        SslMode::Require,
        SslMode::VerifyCa,
        SslMode::VerifyFull,
    ];

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Allow => "allow",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }

    pub(crate) fn parse(s: &str) -> Result<SslMode> {
        SslMode::ALL
            .into_iter()
            .find(|m| m.as_str() == s)
            .ok_or_else(|| Error::InvalidInput {
                what: "database URL",
                reason: format!(
                    "sslmode={s:?} is not one of {}",
                    SslMode::ALL.map(SslMode::as_str).join(", ")
                ),
            })
    }
}

/// What the URL asked of TLS: the mode and the root CA file, if named.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Tls {
    pub(crate) mode: SslMode,
    pub(crate) root_cert: Option<PathBuf>,
}

impl Default for Tls {
    fn default() -> Tls {
        Tls {
            mode: SslMode::Prefer,
            root_cert: None,
        }
    }
}

/// How the server's certificate is checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Check {
    /// Only that the handshake is signed by the certificate's key.
    Nothing,
    Chain,
    ChainAndName,
}

impl Tls {
    /// The client's own mode: it asks the server for TLS, and refuses to go
    /// on in the clear when TLS is required.
    pub(crate) fn client_mode(&self) -> ::postgres::config::SslMode {
        match self.mode {
            SslMode::Disable => ::postgres::config::SslMode::Disable,
            SslMode::Allow | SslMode::Prefer => ::postgres::config::SslMode::Prefer,
            SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => {
                ::postgres::config::SslMode::Require
            }
        }
    }

    /// The connector: rustls with the check the mode asks for. The root CA
    /// file is read here, at every connect, so a CA rotated on disk is
    /// picked up by a server's next reconnect.
    pub(crate) fn connector(&self) -> Result<tokio_postgres_rustls::MakeRustlsConnect> {
        let default_root =
            || std::env::var_os("HOME").map(|h| Path::new(&h).join(".postgresql/root.crt"));
        let (check, root) = match self.mode {
            SslMode::Disable | SslMode::Allow | SslMode::Prefer => (Check::Nothing, None),
            // libpq: with a root CA file, `require` verifies as `verify-ca`
            SslMode::Require => match &self.root_cert {
                Some(path) => (Check::Chain, Some(path.clone())),
                None => (Check::Nothing, None),
            },
            SslMode::VerifyCa | SslMode::VerifyFull => {
                let Some(path) = self.root_cert.clone().or_else(default_root) else {
                    return Err(no_root(self.mode, Path::new("~/.postgresql/root.crt")));
                };
                let check = if self.mode == SslMode::VerifyCa {
                    Check::Chain
                } else {
                    Check::ChainAndName
                };
                (check, Some(path))
            }
        };
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let webpki = match root {
            None => None,
            Some(path) => {
                let roots = read_roots(self.mode, &path)?;
                let built =
                    WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                        .build()
                        .map_err(|e| Error::InvalidInput {
                            what: "sslrootcert",
                            reason: format!("{}: {e}", path.display()),
                        })?;
                Some(built)
            }
        };
        let verifier = Arc::new(DbVerifier {
            provider: provider.clone(),
            webpki,
            check_name: check == Check::ChainAndName,
        });
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| Error::InvalidInput {
                what: "database TLS",
                reason: e.to_string(),
            })?
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_no_client_auth();
        Ok(tokio_postgres_rustls::MakeRustlsConnect::new(config))
    }
}

fn no_root(mode: SslMode, path: &Path) -> Error {
    Error::InvalidInput {
        what: "database URL",
        reason: format!(
            "sslmode={} needs the CA that signed the database's certificate: {} does not \
             exist; name a PEM file with ?sslrootcert=PATH",
            mode.as_str(),
            path.display()
        ),
    }
}

fn read_roots(mode: SslMode, path: &Path) -> Result<RootCertStore> {
    if !path.exists() {
        return Err(no_root(mode, path));
    }
    let bad = |reason: String| Error::InvalidInput {
        what: "sslrootcert",
        reason: format!("{}: {reason}", path.display()),
    };
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(path).map_err(|e| bad(e.to_string()))? {
        let cert = cert.map_err(|e| bad(format!("not a PEM certificate file ({e})")))?;
        roots
            .add(cert)
            .map_err(|e| bad(format!("not a CA certificate ({e})")))?;
    }
    if roots.is_empty() {
        return Err(bad("holds no PEM certificate".to_owned()));
    }
    Ok(roots)
}

/// The server's certificate as the mode asks. Without `webpki` (`prefer`,
/// `require` without a CA) it is encrypted but anyone on the path may
/// present a certificate; the handshake's signatures are still checked, so
/// the session's keys are the certificate holder's. With it (`verify-ca`,
/// `verify-full`), webpki's chain check against the root CA file;
/// `verify-ca` lets a certificate for another name pass, as libpq does
/// (webpki checks the name only after the chain, so the chain held).
#[derive(Debug)]
struct DbVerifier {
    provider: Arc<CryptoProvider>,
    webpki: Option<Arc<WebPkiServerVerifier>>,
    check_name: bool,
}

impl ServerCertVerifier for DbVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        let Some(webpki) = &self.webpki else {
            return Ok(ServerCertVerified::assertion());
        };
        match webpki.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) if !self.check_name => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// The rustls error somewhere in a connection error's sources: the TLS
/// handshake failed (a certificate refused, no TLS offered is the client's
/// own words instead).
pub(crate) fn tls_failure(e: &(dyn std::error::Error + 'static)) -> Option<String> {
    let mut next: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = next {
        if let Some(tls) = err.downcast_ref::<rustls::Error>() {
            return Some(tls.to_string());
        }
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            if let Some(tls) = io.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) {
                return Some(tls.to_string());
            }
        }
        next = err.source();
    }
    None
}
