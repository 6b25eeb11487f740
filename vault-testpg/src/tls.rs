//! The certificates a TLS test cluster serves ([`TestTls`]), minted per
//! test with rcgen, so no key lives in the repository.

/// A test CA, a server certificate it signed for `127.0.0.1` (an IP
/// address SAN only, so `localhost` is a wrong host name for it), and a
/// second CA that signed nothing: minted per test, no key in the repository.
pub struct TestTls {
    /// The CA that signed the server's certificate (PEM).
    pub ca_pem: String,
    /// A CA that did not (PEM).
    pub other_ca_pem: String,
    pub(crate) server_cert_pem: String,
    pub(crate) server_key_pem: String,
}

impl TestTls {
    pub fn mint() -> TestTls {
        let ca = |name: &str| {
            let key = rcgen::KeyPair::generate().unwrap();
            let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
            params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
            params
                .distinguished_name
                .push(rcgen::DnType::CommonName, name);
            let cert = params.self_signed(&key).unwrap();
            (cert, key)
        };
        let (ca_cert, ca_key) = ca("vault test CA");
        let (other, _) = ca("another test CA");
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned()]).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "vault test database");
        let cert = params.signed_by(&key, &ca_cert, &ca_key).unwrap();
        TestTls {
            ca_pem: ca_cert.pem(),
            other_ca_pem: other.pem(),
            server_cert_pem: cert.pem(),
            server_key_pem: key.serialize_pem(),
        }
    }
}
