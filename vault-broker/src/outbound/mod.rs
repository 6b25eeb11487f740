//! What an agent sends, checked before it leaves: the one pre-forward step of
//! the proxy. Exfiltration scanning (the URL with its query, every header the
//! broker does not replace, the body) with vault-scan and the vault's
//! known-credential matcher, then, for `approval = true` rules, holding the
//! request for a person ([`crate::hold`]).
//!
//! What is blocked: a vault key or token (any `avk_`/`avt_` of valid
//! checksum, known or not), a stored secret recognised by its fingerprint
//! (except the very secret this request's rule attaches, which may go to the
//! host the rule binds it to), and any high-confidence provider secret. The
//! finding goes to the vault's leak flow ([`Backend::leaked`]) in `block` and
//! `redact` mode alike: the value was in the agent's hands and text.
//!
//! Bodies up to [`MAX_SCANNED_BODY`] are read whole and scanned before a byte
//! is sent (in `redact` mode rewritten, Content-Length fixed). A longer body
//! is sent as it streams, each chunk scanned with the bytes before it while
//! the last [`HOLDBACK`] bytes stay unsent, so a value up to that long is
//! seen before any of its bytes leave; on a finding the upstream request is
//! aborted mid-body (the bytes before the value did reach the upstream; the
//! request never completes) and the agent gets `exfiltration_blocked`. Past
//! the bound `redact` cannot rewrite, so it blocks. A body in a
//! Content-Encoding (gzip, deflate, br...) is refused (`egress_body_encoded`)
//! rather than sent unscanned: decompressing agent input in the broker is
//! attack surface this does not need, and SDKs send prompts uncompressed.

mod body;
mod scan;

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::{Body as _, Incoming};
use hyper::header::{self, HeaderName, HeaderValue};
use vault_core::policy::egress::EgressScan;
use vault_core::{EgressGovernance, SecretPath, SecretString};
use vault_scan::{KnownSecrets, Scanner};

use crate::hold::{self, HeldRequest, MAX_HELD_BODY};
use crate::refusal::{Code, Refusal};
use crate::Backend;

use body::{prefixed, read_up_to, ScanningBody};
use scan::*;

/// Largest body read whole and scanned before any of it is sent.
pub const MAX_SCANNED_BODY: usize = 1 << 20;
/// While a longer body streams, this many of its last bytes stay unsent until
/// more arrive, so a value split across chunks is seen whole before it leaves.
pub(crate) const HOLDBACK: usize = 8 * 1024;
/// Bytes already sent that are scanned again with the next chunk (a rule's
/// keyword may come shortly before its value).
const CONTEXT: usize = 1024;

/// Error type of the body sent upstream.
pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync>;
/// The body sent upstream.
pub(crate) type OutBody = UnsyncBoxBody<Bytes, BoxError>;

/// The scanner and the vault's matcher, from the [`Backend`].
#[derive(Clone)]
pub struct Outbound {
    /// The compiled built-in rules.
    pub scanner: Arc<Scanner>,
    /// Recognises the vault's keys, tokens and stored secrets (`None`: no vault to ask).
    pub known: Option<Arc<dyn KnownSecrets + Send + Sync>>,
}

impl Outbound {
    fn known(&self) -> Option<&dyn KnownSecrets> {
        self.known.as_deref().map(|k| k as &dyn KnownSecrets)
    }
}

/// Credentials an outbound request carried, for the vault's leak flow.
pub struct Leak {
    /// The CONNECT target's host.
    pub host: String,
    /// The CONNECT target's port.
    pub port: u16,
    /// The rules that matched, e.g. `vault.named-key` (never a value).
    pub rules: Vec<String>,
    /// What the vault can act on.
    pub items: Vec<Leaked>,
    /// Whether the request was sent with the values redacted (else refused).
    pub redacted: bool,
}

/// One credential the vault can act on.
pub enum Leaked {
    /// A vault key or token (its text, zeroized on drop): rotated or revoked.
    Credential(SecretString),
    /// A stored secret, by path, with the value sent (zeroized on drop):
    /// marked compromised and an approval opened, if it is still current.
    Secret(SecretPath, vault_core::SecretBytes),
}

/// What the pre-forward step needs to know of the request.
pub(crate) struct Outgoing<'a, B> {
    pub backend: &'a Arc<B>,
    pub credential: &'a Arc<SecretString>,
    pub host: &'a str,
    pub port: u16,
    pub governance: EgressGovernance,
    /// The agent, and its count of held requests (for [`hold::MAX_HELD_PER_AGENT`]).
    pub agent: &'a str,
    pub holds: &'a Arc<hold::HeldCounts>,
    /// The secret this request's rule attaches: it may go to this host.
    pub bound: Option<&'a SecretPath>,
    /// The header the attached credential replaces (the client's is dropped).
    pub replaced: Option<HeaderName>,
}

/// Set when a body streamed past [`MAX_SCANNED_BODY`] was cut for a finding,
/// so the proxy answers with that refusal rather than an upstream error.
#[derive(Clone, Default)]
pub(crate) struct Cut(Arc<Mutex<Option<Refusal>>>);

impl Cut {
    /// The refusal, when the body was cut.
    pub(crate) fn refusal(&self) -> Option<Refusal> {
        self.0.lock().ok().and_then(|r| r.clone())
    }
}

/// Scans and, if its rule says so, holds the request; returns the body to send.
pub(crate) async fn prepare<B: Backend>(
    o: Outgoing<'_, B>,
    method: &str,
    headers: &mut hyper::HeaderMap,
    path_and_query: &mut String,
    body: Incoming,
) -> Result<(OutBody, Cut), Refusal> {
    let cut = Cut::default();
    let scan = o.governance.scan;
    let outbound = o.backend.outbound();
    let has_body = !body.is_end_stream();
    let redact = scan == EgressScan::Redact;
    let mut found = Found::default();
    let scanner = match (scan, &outbound) {
        (EgressScan::Off, _) => None,
        (_, Some(ob)) => Some(ob),
        (_, None) => return Err(Refusal::new(
            Code::Internal,
            "the broker has no scanner, and this agent's policy scans what it sends (egress_scan)",
        )),
    };
    if let Some(ob) = scanner {
        scan_url(ob, o.bound, path_and_query, redact, &mut found)?;
        scan_headers(
            ob,
            o.bound,
            headers,
            o.replaced.as_ref(),
            redact,
            &mut found,
        )?;
        if has_body && encoded(headers) {
            return Err(Refusal::new(
                Code::EgressBodyEncoded,
                "the request body has a Content-Encoding (gzip, deflate, br...) the broker does not \
                 scan; send it uncompressed, or the operator can set egress_scan = \"off\" for this agent",
            ));
        }
    }
    let needs_buffer = has_body && (scanner.is_some() || o.governance.hold.is_some());
    let (mut buf, rest) = if needs_buffer {
        read_up_to(body, MAX_SCANNED_BODY.max(MAX_HELD_BODY)).await?
    } else {
        (Vec::new(), Some(body))
    };
    let whole = !needs_buffer || rest.is_none();
    if let Some(ob) = scanner.filter(|_| has_body) {
        let mut matches = blocking(ob, o.bound, &buf);
        // Form bodies carry values percent-encoded; so may a value with `/+=`.
        if is_form(headers) && buf.contains(&b'%') {
            let decoded = percent_decode(&buf);
            let more = blocking(ob, o.bound, &decoded);
            if matches.is_empty() && !more.is_empty() {
                found.add(&decoded, &more, true);
                matches.clear();
            }
        }
        // JSON may spell a value's bytes as `\u` escapes; the upstream reads them decoded.
        if matches.is_empty() && has_json_escape(&buf) {
            let decoded = json_unescape(&buf);
            let more = blocking(ob, o.bound, &decoded);
            if !more.is_empty() {
                found.add(&decoded, &more, true);
            }
        }
        if !matches.is_empty() {
            // past the bound the body streams: it cannot be rewritten
            found.add(&buf, &matches, !whole || !redact);
            if redact && whole {
                buf = redact_bytes(&buf, &matches);
            }
        }
    }
    if !found.rules.is_empty() {
        let blocked = !redact || found.unredactable;
        let rules = found.rules.clone();
        o.backend
            .leaked(
                o.credential.clone(),
                Leak {
                    host: o.host.to_owned(),
                    port: o.port,
                    rules: found.rules,
                    items: found.items,
                    redacted: !blocked,
                },
            )
            .await;
        if blocked {
            return Err(Refusal::new(
                Code::ExfiltrationBlocked,
                format!(
                    "this request carries a credential ({}) the agent must not send to {}:{}; the broker \
                     refused it before it left, and the vault now treats the credential as leaked \
                     (a vault key rotates, a token is revoked, a stored secret is marked compromised \
                     with an approval). Remove it from what the agent sends",
                    rules.join(", "),
                    o.host,
                    o.port
                ),
            ));
        }
    }
    if let Some(wait) = o.governance.hold {
        if !whole {
            return Err(Refusal::new(
                Code::ApprovalBodyTooLarge,
                format!(
                    "this request is held for a person's approval, and its body is larger than the \
                     {} bytes a held request may have",
                    MAX_HELD_BODY
                ),
            ));
        }
        let (path, query) = match path_and_query.split_once('?') {
            Some((p, q)) => (p.to_owned(), q.to_owned()),
            None => (path_and_query.clone(), String::new()),
        };
        let held = HeldRequest {
            method: method.to_owned(),
            host: o.host.to_owned(),
            port: o.port,
            path: preview(outbound.as_ref(), path.as_bytes()),
            query: preview(outbound.as_ref(), query.as_bytes()),
            body_len: buf.len(),
            preview: if encoded(headers) {
                "(compressed, not shown)".into()
            } else {
                preview(outbound.as_ref(), &buf)
            },
        };
        let _slot = o.holds.take(o.agent)?;
        hold::wait_for_person(o.backend, o.credential.clone(), held, wait).await?;
    }
    let body = match rest {
        None if needs_buffer => {
            headers.insert(header::CONTENT_LENGTH, HeaderValue::from(buf.len()));
            Full::new(Bytes::from(buf))
                .map_err(|e| match e {})
                .boxed_unsync()
        }
        None => Empty::new().map_err(|e| match e {}).boxed_unsync(),
        Some(rest) if !needs_buffer => rest.map_err(BoxError::from).boxed_unsync(),
        Some(rest) => match scanner {
            Some(ob) => ScanningBody::new(buf, rest, ob.clone(), o, cut.clone()).boxed_unsync(),
            None => prefixed(buf, rest),
        },
    };
    Ok((body, cut))
}

/// What [`scan_message`] found in one WebSocket message.
pub(crate) struct MessageFinding {
    /// The rules that matched (never a value).
    pub(crate) rules: Vec<String>,
    /// What the vault can act on.
    pub(crate) items: Vec<Leaked>,
    /// The message with each value redacted, when it may be sent so.
    pub(crate) replacement: Option<Vec<u8>>,
}

/// Scans one WebSocket message (or control payload) like a request body:
/// raw, then JSON-unescaped. `None`: nothing blocking in it. A finding is
/// redacted only when `redactable` and the raw scan found it.
pub(crate) fn scan_message(
    ob: &Outbound,
    bound: Option<&SecretPath>,
    data: &[u8],
    redactable: bool,
) -> Option<MessageFinding> {
    let mut found = Found::default();
    let matches = blocking(ob, bound, data);
    if !matches.is_empty() {
        found.add(data, &matches, !redactable);
    } else if has_json_escape(data) {
        let decoded = json_unescape(data);
        let more = blocking(ob, bound, &decoded);
        if !more.is_empty() {
            found.add(&decoded, &more, true);
        }
    }
    if found.rules.is_empty() {
        return None;
    }
    let replacement = (!found.unredactable).then(|| redact_bytes(data, &matches));
    Some(MessageFinding {
        rules: found.rules,
        items: found.items,
        replacement,
    })
}

/// The scan [`prepare`] runs in `block` mode, without the request around it.
pub(crate) fn scan_for_bench(
    ob: &Outbound,
    headers: &mut hyper::HeaderMap,
    path_and_query: &mut String,
    body: &[u8],
) -> usize {
    let mut found = Found::default();
    let _ = scan_url(ob, None, path_and_query, false, &mut found);
    let _ = scan_headers(
        ob,
        None,
        headers,
        Some(&header::AUTHORIZATION),
        false,
        &mut found,
    );
    found.rules.len() + blocking(ob, None, body).len()
}
