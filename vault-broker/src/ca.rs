//! The vault's local CA: an ECDSA P-256 root whose private key is sealed in the
//! vault (see `Vault::broker_ca`), and short-lived leaves minted per host on
//! first use and kept in memory. Agents started by `vault run --broker` trust
//! this root, so the broker can terminate their TLS and attach credentials.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose, PKCS_ECDSA_P256_SHA256,
};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use vault_core::{SecretBytes, Vault};

/// How long a minted leaf is valid.
pub const LEAF_LIFETIME: Duration = Duration::from_secs(24 * 3600);
/// A cached leaf this close to expiry is minted again.
const LEAF_RENEW_BEFORE: Duration = Duration::from_secs(3600);
/// Most distinct hosts cached; past this the cache starts over.
const LEAF_CACHE_MAX: usize = 1024;
const CA_LIFETIME_DAYS: i64 = 3650;
const CA_NAME: &str = "vault local broker CA";

/// The loaded CA and its leaf cache.
pub struct LocalCa {
    issuer: rcgen::Certificate,
    key: KeyPair,
    cert_pem: String,
    cert_der: CertificateDer<'static>,
    leaves: Mutex<HashMap<String, (Arc<rustls::ServerConfig>, Instant)>>,
}

impl std::fmt::Debug for LocalCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalCa").finish_non_exhaustive()
    }
}

/// Errors loading the CA or minting a leaf.
#[derive(Debug)]
pub struct CaError(pub String);

impl std::fmt::Display for CaError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for CaError {}

impl LocalCa {
    /// Loads the vault's CA, generating and sealing it on first use.
    ///
    /// # Errors
    /// Vault errors, or a stored CA that does not parse.
    pub fn load_or_create(vault: &mut Vault) -> Result<LocalCa, CaError> {
        let blob = vault
            .broker_ca(|| {
                generate().map_err(|e| vault_core::Error::Integrity {
                    what: format!("generating the broker CA: {e}"),
                })
            })
            .map_err(|e| CaError(format!("the broker CA: {e}")))?;
        Self::from_blob(&blob)
    }

    /// The CA certificate, PEM (public: this is what agents trust).
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// A TLS server configuration presenting a leaf for `host` (a name or an
    /// IP literal), minted on first use and reused until near its expiry.
    ///
    /// # Errors
    /// rcgen or rustls refusing the host or the key.
    pub fn server_config(&self, host: &str) -> Result<Arc<rustls::ServerConfig>, CaError> {
        let host = host.to_ascii_lowercase();
        let now = Instant::now();
        if let Ok(cache) = self.leaves.lock() {
            if let Some((config, expires)) = cache.get(&host) {
                if *expires > now + LEAF_RENEW_BEFORE {
                    return Ok(config.clone());
                }
            }
        }
        let config = Arc::new(self.mint(&host)?);
        if let Ok(mut cache) = self.leaves.lock() {
            if cache.len() >= LEAF_CACHE_MAX {
                cache.clear();
            }
            cache.insert(host, (config.clone(), now + LEAF_LIFETIME));
        }
        Ok(config)
    }

    fn mint(&self, host: &str) -> Result<rustls::ServerConfig, CaError> {
        let err = |e: rcgen::Error| CaError(format!("minting a certificate for {host}: {e}"));
        let mut params = CertificateParams::new(vec![host.to_owned()]).map_err(err)?;
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, host);
        params.distinguished_name = dn;
        let now = time::OffsetDateTime::now_utc();
        params.not_before = now - time::Duration::minutes(5);
        params.not_after = now + time::Duration::seconds(LEAF_LIFETIME.as_secs() as i64);
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.serial_number = Some(random_serial()?);
        let leaf_key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(err)?;
        let leaf = params
            .signed_by(&leaf_key, &self.issuer, &self.key)
            .map_err(err)?;
        let key_der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der()));
        let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| CaError(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(vec![leaf.der().clone(), self.cert_der.clone()], key_der)
        .map_err(|e| CaError(e.to_string()))?;
        // HTTP/1.1 only: the broker reads and rewrites requests one by one.
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        // No resumption (no TLS 1.3 tickets, no TLS 1.2 session ids): a full
        // handshake against an ECDSA leaf is cheap, and the broker keeps no
        // session state. With tickets, Python's sync `websockets` client
        // sometimes sent its WebSocket handshake and never got an answer (2
        // runs in 17 of tests/broker_clients.rs; none in 12 under double load
        // without). Why is not proven: the tickets reach it while its
        // receiving thread and its sender share one SSL object.
        config.send_tls13_tickets = 0;
        config.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
        Ok(config)
    }

    fn from_blob(blob: &SecretBytes) -> Result<LocalCa, CaError> {
        let text = std::str::from_utf8(blob.expose_secret())
            .map_err(|_| CaError("the stored broker CA is not text".into()))?;
        let split = text
            .find(CERT_BEGIN)
            .ok_or_else(|| CaError("the stored broker CA has no certificate".into()))?;
        let (key_pem, cert_pem) = text.split_at(split);
        let key = KeyPair::from_pem(key_pem)
            .map_err(|e| CaError(format!("the stored broker CA key: {e}")))?;
        let cert_der = pem_to_der(cert_pem)?;
        // Leaves only need the issuer's name, key and key identifier, which
        // these parameters rebuild exactly; agents trust the stored certificate.
        let issuer = ca_params()
            .self_signed(&key)
            .map_err(|e| CaError(format!("the stored broker CA: {e}")))?;
        Ok(LocalCa {
            issuer,
            key,
            cert_pem: cert_pem.to_owned(),
            cert_der,
            leaves: Mutex::new(HashMap::new()),
        })
    }
}

/// The roots upstream connections verify against: Mozilla's, plus `extra`
/// (PEM certificates from `--broker-upstream-ca`).
///
/// # Errors
/// A PEM that holds no certificate, or one rustls refuses.
pub fn upstream_roots(extra: &[String]) -> Result<rustls::RootCertStore, CaError> {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    for pem in extra {
        let mut found = 0;
        for block in pem.split_inclusive(CERT_END) {
            if !block.contains(CERT_BEGIN) {
                continue;
            }
            roots
                .add(pem_to_der(block)?)
                .map_err(|e| CaError(format!("--broker-upstream-ca: {e}")))?;
            found += 1;
        }
        if found == 0 {
            return Err(CaError(
                "--broker-upstream-ca: no PEM certificate in the file".into(),
            ));
        }
    }
    Ok(roots)
}

const CERT_BEGIN: &str = "-----BEGIN CERTIFICATE-----";
const CERT_END: &str = "-----END CERTIFICATE-----";

fn pem_to_der(pem: &str) -> Result<CertificateDer<'static>, CaError> {
    use base64::Engine as _;
    let body: String = pem
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .map(str::trim)
        .collect();
    base64::engine::general_purpose::STANDARD
        .decode(body)
        .map(CertificateDer::from)
        .map_err(|_| CaError("a certificate is not valid PEM".into()))
}

fn ca_params() -> CertificateParams {
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, CA_NAME);
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params
}

/// A new CA: the key's PEM followed by the certificate's PEM.
fn generate() -> Result<SecretBytes, rcgen::Error> {
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
    let mut params = ca_params();
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::hours(1);
    params.not_after = now + time::Duration::days(CA_LIFETIME_DAYS);
    params.serial_number = Some(random_serial().map_err(|_| rcgen::Error::RingUnspecified)?);
    let cert = params.self_signed(&key)?;
    // clear intermediates: the blob owns the only copy of the key from here on
    let key_pem = zeroize::Zeroizing::new(key.serialize_pem());
    let mut text = zeroize::Zeroizing::new(String::with_capacity(key_pem.len() + 1024));
    text.push_str(&key_pem);
    text.push_str(&cert.pem());
    Ok(SecretBytes::from_slice(text.as_bytes()))
}

fn random_serial() -> Result<rcgen::SerialNumber, CaError> {
    use ring::rand::SecureRandom as _;
    let mut serial = [0u8; 16];
    ring::rand::SystemRandom::new()
        .fill(&mut serial)
        .map_err(|_| CaError("no randomness for a serial number".into()))?;
    serial[0] &= 0x7f; // positive, as RFC 5280 requires
    Ok(rcgen::SerialNumber::from_slice(&serial))
}

#[cfg(test)]
mod tests {
    use super::*;
    use vault_core::{KdfParams, SecretString};

    // issue 15, local CA: the root is P-256, reloads from the vault unchanged,
    // and leaves it mints verify against it and are cached per host
    #[test]
    fn the_local_ca_reloads_from_the_vault_and_mints_cached_leaves() {
        let dir = tempfile::TempDir::new().unwrap();
        let home = dir.path().join("v");
        let pw = SecretString::new("pw".into());
        let mut vault = Vault::init(&home, &pw, KdfParams::FLOOR).unwrap();
        let ca = LocalCa::load_or_create(&mut vault).unwrap();
        assert!(ca.cert_pem().starts_with(CERT_BEGIN));
        drop(vault);
        let mut vault = Vault::unlock(&home, &pw).unwrap();
        let again = LocalCa::load_or_create(&mut vault).unwrap();
        assert_eq!(again.cert_pem(), ca.cert_pem());
        let a = again.server_config("api.example.com").unwrap();
        let b = again.server_config("API.example.com").unwrap();
        assert!(Arc::ptr_eq(&a, &b), "the leaf is cached per host");
        let c = again.server_config("127.0.0.1").unwrap();
        assert!(!Arc::ptr_eq(&a, &c));
    }

    /// A handshake of `client` with `server` in memory; how it went.
    fn handshake(
        client: &Arc<rustls::ClientConfig>,
        server: &Arc<rustls::ServerConfig>,
    ) -> rustls::HandshakeKind {
        let name = rustls_pki_types::ServerName::try_from("api.example.com").unwrap();
        let mut c = rustls::ClientConnection::new(client.clone(), name).unwrap();
        let mut s = rustls::ServerConnection::new(server.clone()).unwrap();
        // bounded: a handshake is a few flights, and any tickets follow it
        for _ in 0..10 {
            let mut wire = Vec::new();
            while c.wants_write() {
                c.write_tls(&mut wire).unwrap();
            }
            s.read_tls(&mut wire.as_slice()).unwrap();
            s.process_new_packets().unwrap();
            let mut wire = Vec::new();
            while s.wants_write() {
                s.write_tls(&mut wire).unwrap();
            }
            c.read_tls(&mut wire.as_slice()).unwrap();
            c.process_new_packets().unwrap();
        }
        assert!(!c.is_handshaking() && !s.is_handshaking());
        c.handshake_kind().unwrap()
    }

    // a leaf's TLS never resumes, over TLS 1.3 (tickets) or TLS 1.2 (session
    // ids): a client that comes back makes a full handshake (see `mint`)
    #[test]
    fn a_client_of_the_broker_never_resumes_a_session() {
        let dir = tempfile::TempDir::new().unwrap();
        let pw = SecretString::new("pw".into());
        let mut vault = Vault::init(&dir.path().join("v"), &pw, KdfParams::FLOOR).unwrap();
        let ca = LocalCa::load_or_create(&mut vault).unwrap();
        let server = ca.server_config("api.example.com").unwrap();
        let mut roots = rustls::RootCertStore::empty();
        roots.add(ca.cert_der.clone()).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        for version in [&rustls::version::TLS13, &rustls::version::TLS12] {
            let client = Arc::new(
                rustls::ClientConfig::builder_with_provider(provider.clone())
                    .with_protocol_versions(&[version])
                    .unwrap()
                    .with_root_certificates(roots.clone())
                    .with_no_client_auth(),
            );
            assert_eq!(handshake(&client, &server), rustls::HandshakeKind::Full);
            assert_eq!(
                handshake(&client, &server),
                rustls::HandshakeKind::Full,
                "{version:?}: the second handshake resumed"
            );
        }
    }
}
