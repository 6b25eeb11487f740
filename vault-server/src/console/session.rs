//! Who may use the console and how a state change proves it came from the
//! console's own page: one-time login codes (kept hashed, in memory, used
//! once, minutes long), a rate limit on attempts, the session cookie, the
//! CSRF token bound to the session, and the Origin check.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::http::{header, HeaderMap, HeaderValue};
use subtle::ConstantTimeEq;
use vault_core::SecretString;

/// How long a login URL from `vault ui` works.
pub(crate) const LOGIN_CODE_TTL: Duration = Duration::from_secs(300);
/// Login codes outstanding at once; asking for more drops the oldest.
const MAX_CODES: usize = 16;
/// Failed login attempts allowed per [`FAILURE_WINDOW`], from anyone; past
/// that every attempt is refused until the window moves on.
pub(crate) const MAX_FAILURES: usize = 10;
/// The window of [`MAX_FAILURES`].
pub(crate) const FAILURE_WINDOW: Duration = Duration::from_secs(60);

/// The session cookie's name.
pub(crate) const COOKIE: &str = "vault_console";

/// The console's in-memory state: login codes by hash, and recent failures.
#[derive(Default)]
pub(crate) struct ConsoleState {
    codes: Mutex<Vec<([u8; 32], Instant)>>,
    failures: Mutex<VecDeque<Instant>>,
    /// How far the audit page has verified the chain, and any walk running.
    pub(crate) chain: Mutex<super::chain::ChainState>,
}

/// Why a login was refused.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum LoginRefusal {
    /// Unknown, used or expired.
    BadCode,
    /// Too many failures lately.
    RateLimited,
}

impl ConsoleState {
    /// A fresh one-time code (64 hex digits of the OS's randomness); only its
    /// hash is kept.
    pub(crate) fn new_code(&self) -> vault_core::Result<SecretString> {
        let mut raw = [0u8; 32];
        vault_core::fill_random(&mut raw)?;
        let code = SecretString::new(hex(&raw));
        zeroize::Zeroize::zeroize(&mut raw);
        let now = Instant::now();
        if let Ok(mut codes) = self.codes.lock() {
            codes.retain(|(_, until)| *until > now);
            if codes.len() >= MAX_CODES {
                codes.remove(0);
            }
            codes.push((
                sha256(code.expose_secret().as_bytes()),
                now + LOGIN_CODE_TTL,
            ));
        }
        Ok(code)
    }

    /// Uses up `code`: true once for each code handed out, within its time.
    /// Failures count towards the rate limit, which is checked first.
    pub(crate) fn redeem(&self, code: &str) -> Result<(), LoginRefusal> {
        let now = Instant::now();
        let mut failures = self
            .failures
            .lock()
            .map_err(|_| LoginRefusal::RateLimited)?;
        while failures
            .front()
            .is_some_and(|t| now.duration_since(*t) > FAILURE_WINDOW)
        {
            failures.pop_front();
        }
        if failures.len() >= MAX_FAILURES {
            return Err(LoginRefusal::RateLimited);
        }
        let hash = sha256(code.as_bytes());
        let found = self.codes.lock().ok().and_then(|mut codes| {
            codes.retain(|(_, until)| *until > now);
            let at = codes
                .iter()
                .position(|(h, _)| bool::from(h.as_slice().ct_eq(hash.as_slice())))?;
            Some(codes.remove(at))
        });
        if found.is_some() {
            Ok(())
        } else {
            failures.push_back(now);
            Err(LoginRefusal::BadCode)
        }
    }
}

/// The session id from the request's `Cookie` headers, if any.
pub(crate) fn session_cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.trim().to_owned())
        .filter(|v| !v.is_empty())
}

/// The `Set-Cookie` value for a new session: HttpOnly (no script reads it),
/// SameSite=Strict (no other site's page sends it), Secure over TLS, and
/// an expiry; scoped to `/ui`.
pub(crate) fn set_cookie(id: &str, max_age: Duration, tls: bool) -> String {
    format!(
        "{COOKIE}={id}; Path=/ui; HttpOnly; SameSite=Strict; Max-Age={}{}",
        max_age.as_secs(),
        if tls { "; Secure" } else { "" }
    )
}

/// The `Set-Cookie` value that removes the session cookie.
pub(crate) fn clear_cookie(tls: bool) -> String {
    set_cookie("", Duration::ZERO, tls)
}

/// The CSRF token of a session: derived from the session id, so it needs
/// no storage, is different for every session and tells nothing about the id.
pub(crate) fn csrf_token(session_id: &str) -> String {
    hex(&sha256(
        [b"vault-console-csrf-v1\0".as_slice(), session_id.as_bytes()]
            .concat()
            .as_slice(),
    ))
}

/// Whether `given` is the session's CSRF token (constant time).
pub(crate) fn csrf_ok(session_id: &str, given: &str) -> bool {
    let want = csrf_token(session_id);
    want.len() == given.len() && bool::from(want.as_bytes().ct_eq(given.as_bytes()))
}

/// Whether a state-changing request comes from this server's own pages.
/// Its `Origin` must be this scheme and the (already allowed) `Host`; a
/// form posted from any other page carries that page's origin. Under the
/// console's own `Referrer-Policy: no-referrer` a browser sends `Origin:
/// null` even for a same-origin form (Fetch: "serializing a request
/// origin"), so `null` passes only with `Sec-Fetch-Site: same-origin`,
/// which the browser sets and no page can.
pub(crate) fn same_origin(headers: &HeaderMap, tls: bool) -> bool {
    let text = |name| {
        headers
            .get(name)
            .and_then(|v: &HeaderValue| v.to_str().ok())
    };
    match (text(header::ORIGIN), text(header::HOST)) {
        (Some("null"), Some(_)) => text(SEC_FETCH_SITE) == Some("same-origin"),
        (Some(origin), Some(host)) => {
            let scheme = if tls { "https" } else { "http" };
            origin.eq_ignore_ascii_case(&format!("{scheme}://{host}"))
        }
        _ => false,
    }
}

const SEC_FETCH_SITE: header::HeaderName = header::HeaderName::from_static("sec-fetch-site");

fn sha256(bytes: &[u8]) -> [u8; 32] {
    let d = ring::digest::digest(&ring::digest::SHA256, bytes);
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(b"0123456789abcdef"[usize::from(b >> 4)]));
        s.push(char::from(b"0123456789abcdef"[usize::from(b & 15)]));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    // issue 17: the one-time URL works once
    #[test]
    fn a_login_code_works_once() {
        let st = ConsoleState::default();
        let code = st.new_code().unwrap();
        assert_eq!(st.redeem(code.expose_secret()), Ok(()));
        assert_eq!(st.redeem(code.expose_secret()), Err(LoginRefusal::BadCode));
    }

    // issue 17, item 3: the one-time URL expires in minutes (LOGIN_CODE_TTL):
    // a code whose time has passed is refused like a used one
    #[test]
    fn a_login_code_expires_after_its_minutes() {
        let st = ConsoleState::default();
        let before = Instant::now();
        let code = st.new_code().unwrap();
        {
            let mut codes = st.codes.lock().unwrap();
            let until = codes[0].1;
            assert!(until <= Instant::now() + LOGIN_CODE_TTL && until >= before + LOGIN_CODE_TTL);
            assert!(
                LOGIN_CODE_TTL <= Duration::from_secs(600),
                "minutes, not hours"
            );
            // its five minutes are up
            codes[0].1 = Instant::now();
        }
        assert_eq!(st.redeem(code.expose_secret()), Err(LoginRefusal::BadCode));
    }

    // issue 17: login attempts are rate limited, a good code included once over the limit
    #[test]
    fn login_attempts_are_rate_limited() {
        let st = ConsoleState::default();
        let code = st.new_code().unwrap();
        for _ in 0..MAX_FAILURES {
            assert_eq!(st.redeem("guess"), Err(LoginRefusal::BadCode));
        }
        assert_eq!(
            st.redeem(code.expose_secret()),
            Err(LoginRefusal::RateLimited)
        );
    }

    #[test]
    fn the_session_cookie_is_found_among_others_and_flagged() {
        let mut h = HeaderMap::new();
        h.append(
            header::COOKIE,
            HeaderValue::from_static("a=1; vault_console=vcs_x ; b=2"),
        );
        assert_eq!(session_cookie(&h).as_deref(), Some("vcs_x"));
        let c = set_cookie("vcs_x", Duration::from_secs(60), true);
        for flag in [
            "HttpOnly",
            "SameSite=Strict",
            "Max-Age=60",
            "Secure",
            "Path=/ui",
        ] {
            assert!(c.contains(flag), "{c}");
        }
        assert!(!set_cookie("vcs_x", Duration::from_secs(60), false).contains("Secure"));
    }

    // issue 17: Origin checked on every state change
    #[test]
    fn only_this_servers_own_origin_may_change_state() {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, HeaderValue::from_static("127.0.0.1:8200"));
        assert!(!same_origin(&h, false), "no Origin");
        h.insert(
            header::ORIGIN,
            HeaderValue::from_static("http://127.0.0.1:8200"),
        );
        assert!(same_origin(&h, false));
        assert!(!same_origin(&h, true), "scheme differs");
        h.insert(
            header::ORIGIN,
            HeaderValue::from_static("http://evil.example"),
        );
        assert!(!same_origin(&h, false));
        h.insert(header::ORIGIN, HeaderValue::from_static("null"));
        assert!(!same_origin(&h, false), "null without Sec-Fetch-Site");
        h.insert("sec-fetch-site", HeaderValue::from_static("cross-site"));
        assert!(!same_origin(&h, false), "null from another site");
        h.insert("sec-fetch-site", HeaderValue::from_static("same-site"));
        assert!(
            !same_origin(&h, false),
            "null from another port or subdomain"
        );
        h.insert("sec-fetch-site", HeaderValue::from_static("same-origin"));
        assert!(
            same_origin(&h, false),
            "the console's own form under no-referrer"
        );
    }

    #[test]
    fn the_csrf_token_is_bound_to_its_session() {
        let t = csrf_token("vcs_a");
        assert!(csrf_ok("vcs_a", &t));
        assert!(!csrf_ok("vcs_b", &t));
        assert!(!csrf_ok("vcs_a", ""));
    }
}
