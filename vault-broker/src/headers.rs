//! The headers that cross the broker: the agent's proxy credential and
//! CONNECT target read and checked, hop-by-hop headers stripped, and the
//! rule's credential attached (winning over whatever the client sent there)
//! with placeholders dropped. Split from the proxy so what may leave is
//! read, and tested, in one place.

use base64::Engine as _;
use hyper::header::{self, HeaderMap, HeaderName, HeaderValue};
use hyper::Uri;
use vault_core::policy::egress::{EgressAuth, HOP_BY_HOP_HEADERS, PLACEHOLDER};
use vault_core::{SecretBytes, SecretPath, SecretString};

use crate::refusal::{Code, Refusal};

/// Largest total of header names and values the broker takes (431 past it).
const MAX_HEADER_BYTES: usize = 16 * 1024;

pub(crate) fn check_header_size(headers: &HeaderMap) -> Result<(), Refusal> {
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

/// The vault credential in `Proxy-Authorization`: Basic with it as user or
/// password (the URL form `http://user:CREDENTIAL@host`), or Bearer.
pub(crate) fn proxy_credential(headers: &HeaderMap) -> Option<SecretString> {
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
pub(crate) fn replaced_header(auth: &EgressAuth) -> Option<HeaderName> {
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
    for name in HOP_BY_HOP_HEADERS {
        headers.remove(name);
    }
}

/// Puts the secret where the rule says. The attached value always replaces
/// whatever the client sent there.
pub(crate) fn apply(
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
pub(crate) fn drop_placeholders(headers: &mut HeaderMap, auth: &EgressAuth) {
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
pub(crate) fn percent_encode(s: &str) -> String {
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
