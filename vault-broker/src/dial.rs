//! The one dialer every upstream connection goes through, and its SSRF guard:
//! resolve the name, check every address it resolves to, then connect to a
//! checked address (never re-resolve, so DNS rebinding cannot swap in another),
//! and open verified TLS to it under the CONNECT target's name (or, for plain
//! `http://` requests, leave it plain). Intercepted requests, plain HTTP and
//! WebSocket upgrades all dial here.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use ipnet::IpNet;
use rustls_pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

use crate::refusal::{Code, Refusal};

const RESOLVE_TIMEOUT: Duration = Duration::from_secs(10);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const TLS_TIMEOUT: Duration = Duration::from_secs(15);

/// An upstream byte stream, TLS or plain.
pub trait Stream: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin> Stream for T {}

/// Opens upstream connections.
#[derive(Clone)]
pub struct Dialer {
    allow_private: Arc<Vec<IpNet>>,
    tls: TlsConnector,
}

impl Dialer {
    /// A dialer trusting `tls`'s roots and opening `allow_private` on purpose
    /// (cloud metadata addresses stay refused whatever is allowed).
    pub fn new(tls: Arc<rustls::ClientConfig>, allow_private: Vec<IpNet>) -> Dialer {
        Dialer {
            allow_private: Arc::new(allow_private),
            tls: TlsConnector::from(tls),
        }
    }

    /// Resolves `host`, checks every address, connects to a checked one and
    /// opens verified TLS as `host` (`tls`), or leaves the TCP stream plain
    /// (plain `http://` upstreams). Every upstream connection comes from here.
    pub async fn open(&self, host: &str, port: u16, tls: bool) -> Result<Box<dyn Stream>, Refusal> {
        if tls {
            Ok(Box::new(self.connect(host, port).await?))
        } else {
            Ok(Box::new(self.connect_tcp(host, port).await?))
        }
    }

    /// Resolves `host`, checks every address and connects to a checked one:
    /// the SSRF guard, for TLS and plain upstreams alike.
    pub async fn connect_tcp(&self, host: &str, port: u16) -> Result<TcpStream, Refusal> {
        let addrs = self.resolve_checked(host, port).await?;
        let mut tcp = None;
        for addr in &addrs {
            if let Ok(Ok(stream)) =
                tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr)).await
            {
                tcp = Some(stream);
                break;
            }
        }
        let tcp = tcp.ok_or_else(|| {
            Refusal::new(
                Code::UpstreamUnreachable,
                format!("could not connect to {host}:{port}"),
            )
        })?;
        let _ = tcp.set_nodelay(true);
        Ok(tcp)
    }

    /// Resolves `host`, checks every address, connects to a checked one and
    /// completes a verified TLS handshake as `host`.
    pub async fn connect(&self, host: &str, port: u16) -> Result<TlsStream<TcpStream>, Refusal> {
        let tcp = self.connect_tcp(host, port).await?;
        let name = ServerName::try_from(host.to_owned()).map_err(|_| {
            Refusal::new(
                Code::BadProxyRequest,
                format!("{host} is not a valid TLS server name"),
            )
        })?;
        match tokio::time::timeout(TLS_TIMEOUT, self.tls.connect(name, tcp)).await {
            Ok(Ok(tls)) => Ok(tls),
            Ok(Err(e)) => Err(Refusal::new(
                Code::UpstreamTls,
                format!("TLS to {host}:{port} failed: {e}; if it uses a private CA, start the server with --broker-upstream-ca FILE"),
            )),
            Err(_) => Err(Refusal::new(
                Code::UpstreamTls,
                format!("TLS handshake with {host}:{port} timed out"),
            )),
        }
    }

    async fn resolve_checked(&self, host: &str, port: u16) -> Result<Vec<SocketAddr>, Refusal> {
        let addrs: Vec<SocketAddr> = match host.parse::<IpAddr>() {
            Ok(ip) => vec![SocketAddr::new(ip, port)],
            Err(_) => {
                match tokio::time::timeout(RESOLVE_TIMEOUT, tokio::net::lookup_host((host, port)))
                    .await
                {
                    Ok(Ok(found)) => found.collect(),
                    _ => Vec::new(),
                }
            }
        };
        if addrs.is_empty() {
            return Err(Refusal::new(
                Code::UpstreamUnreachable,
                format!("{host} did not resolve"),
            ));
        }
        // Every address, not just the first: a name that also resolves to a
        // private address is refused, whichever one a retry would pick.
        for addr in &addrs {
            if let Some(why) = refused_address(addr.ip(), &self.allow_private) {
                return Err(Refusal::new(
                    Code::EgressPrivateAddress,
                    format!(
                        "{host} resolves to {} ({why}); the broker does not connect there. \
                         To allow it on purpose, start the server with --broker-allow-private CIDR",
                        addr.ip()
                    ),
                ));
            }
        }
        Ok(addrs)
    }
}

/// Why `ip` may not be dialled, or `None` if it may. Cloud metadata addresses
/// are refused even inside an allowed range.
pub fn refused_address(ip: IpAddr, allow: &[IpNet]) -> Option<&'static str> {
    let ip = canonical(ip);
    if is_metadata(ip) {
        return Some("a cloud metadata address");
    }
    let why = special_range(ip)?;
    if allow.iter().any(|net| net.contains(&ip)) {
        return None;
    }
    Some(why)
}

/// IPv4-mapped (`::ffff:a.b.c.d`) and IPv4-compatible (`::a.b.c.d`) forms are
/// judged as the IPv4 address they carry.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return IpAddr::V4(v4);
            }
            let s = v6.segments();
            if s[..6] == [0; 6] && !(s[6] == 0 && s[7] <= 1) {
                return IpAddr::V4(Ipv4Addr::new(
                    (s[6] >> 8) as u8,
                    s[6] as u8,
                    (s[7] >> 8) as u8,
                    s[7] as u8,
                ));
            }
            IpAddr::V6(v6)
        }
        v4 => v4,
    }
}

fn is_metadata(ip: IpAddr) -> bool {
    const V4: [Ipv4Addr; 3] = [
        Ipv4Addr::new(169, 254, 169, 254), // AWS, GCP, Azure, OpenStack
        Ipv4Addr::new(169, 254, 170, 2),   // ECS task metadata
        Ipv4Addr::new(100, 100, 100, 200), // Alibaba Cloud
    ];
    match ip {
        IpAddr::V4(v4) => V4.contains(&v4),
        // AWS's IPv6 IMDS
        IpAddr::V6(v6) => v6 == Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254),
    }
}

fn special_range(ip: IpAddr) -> Option<&'static str> {
    const RANGES: &[(&str, &str)] = &[
        ("0.0.0.0/8", "this network"),
        ("10.0.0.0/8", "a private RFC 1918 address"),
        ("100.64.0.0/10", "carrier-grade NAT"),
        ("127.0.0.0/8", "loopback"),
        ("169.254.0.0/16", "link-local"),
        ("172.16.0.0/12", "a private RFC 1918 address"),
        ("192.0.0.0/24", "IETF protocol assignments"),
        ("192.168.0.0/16", "a private RFC 1918 address"),
        ("198.18.0.0/15", "benchmarking"),
        ("224.0.0.0/4", "multicast"),
        ("240.0.0.0/4", "reserved"),
        ("::/128", "unspecified"),
        ("::1/128", "loopback"),
        ("64:ff9b::/96", "NAT64"),
        ("64:ff9b:1::/48", "local NAT64"),
        ("100::/64", "discard-only"),
        ("2002::/16", "6to4"),
        ("fc00::/7", "unique local (ULA)"),
        ("fe80::/10", "link-local"),
        ("ff00::/8", "multicast"),
    ];
    RANGES.iter().find_map(|(net, why)| {
        let net: IpNet = net.parse().ok()?;
        net.contains(&ip).then_some(*why)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(s: &str) -> Option<&'static str> {
        refused_address(s.parse().unwrap(), &[])
    }

    // issue 15, SSRF guard: every special range is refused, public addresses pass
    #[test]
    fn ssrf_guard_refuses_each_special_range() {
        for (ip, why) in [
            ("127.0.0.1", "loopback"),
            ("127.255.0.9", "loopback"),
            ("::1", "loopback"),
            ("10.1.2.3", "RFC 1918"),
            ("172.16.0.1", "RFC 1918"),
            ("172.31.255.255", "RFC 1918"),
            ("192.168.1.1", "RFC 1918"),
            ("169.254.1.1", "link-local"),
            ("fe80::1", "link-local"),
            ("fd12:3456::1", "ULA"),
            ("fc00::1", "ULA"),
            ("100.64.0.1", "carrier-grade"),
            ("100.127.255.255", "carrier-grade"),
            ("0.0.0.0", "this network"),
            ("0.1.2.3", "this network"),
            ("224.0.0.1", "multicast"),
            ("ff02::1", "multicast"),
            ("::ffff:127.0.0.1", "loopback"),
            ("::ffff:10.0.0.1", "RFC 1918"),
            ("::10.0.0.1", "RFC 1918"),
            ("64:ff9b::a00:1", "NAT64"),
            ("64:ff9b:1::1", "NAT64"),
            ("::", "unspecified"),
            ("169.254.169.254", "metadata"),
            ("::ffff:169.254.169.254", "metadata"),
            ("fd00:ec2::254", "metadata"),
            ("100.100.100.200", "metadata"),
            ("255.255.255.255", "reserved"),
        ] {
            let got = refused(ip).unwrap_or_else(|| panic!("{ip} was allowed"));
            assert!(got.contains(why), "{ip}: {got}");
        }
        for ip in [
            "1.1.1.1",
            "8.8.8.8",
            "172.32.0.1",
            "100.128.0.1",
            "2606:4700::1111",
        ] {
            assert_eq!(refused(ip), None, "{ip}");
        }
    }

    // issue 15, SSRF guard: --broker-allow-private opens a range, never metadata
    #[test]
    fn allowed_private_ranges_open_but_metadata_stays_closed() {
        let allow: Vec<IpNet> = vec![
            "127.0.0.0/8".parse().unwrap(),
            "169.254.0.0/16".parse().unwrap(),
        ];
        assert_eq!(refused_address("127.0.0.1".parse().unwrap(), &allow), None);
        assert_eq!(
            refused_address("::ffff:127.0.0.1".parse().unwrap(), &allow),
            None
        );
        assert!(refused_address("::1".parse().unwrap(), &allow).is_some());
        assert!(refused_address("10.0.0.1".parse().unwrap(), &allow).is_some());
        assert_eq!(
            refused_address("169.254.169.254".parse().unwrap(), &allow),
            Some("a cloud metadata address")
        );
    }

    // issue 15, SSRF guard: a name resolving to loopback is refused by the dialer
    #[tokio::test]
    async fn the_dialer_refuses_names_resolving_to_private_addresses() {
        let config = crate::upstream_tls_config(&[]).unwrap();
        let dialer = Dialer::new(config, Vec::new());
        let err = dialer.connect("localhost", 443).await.unwrap_err();
        assert_eq!(err.code, Code::EgressPrivateAddress, "{err}");
        let err = dialer.connect("127.0.0.1", 443).await.unwrap_err();
        assert_eq!(err.code, Code::EgressPrivateAddress, "{err}");
    }
}
