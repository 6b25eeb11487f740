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

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::{Body as _, Frame, Incoming, SizeHint};
use hyper::header::{self, HeaderName, HeaderValue};
use vault_core::policy::egress::EgressScan;
use vault_core::{EgressGovernance, SecretPath, SecretString};
use vault_scan::{Confidence, KnownSecrets, Match, Scanner};

use crate::hold::{self, HeldRequest, MAX_HELD_BODY, PREVIEW_CHARS};
use crate::refusal::{Code, Refusal};
use crate::Backend;

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
    /// A stored secret, by path: marked compromised, an approval opened.
    Secret(SecretPath),
}

/// What the pre-forward step needs to know of the request.
pub(crate) struct Outgoing<'a, B> {
    pub backend: &'a Arc<B>,
    pub credential: &'a Arc<SecretString>,
    pub host: &'a str,
    pub port: u16,
    pub governance: EgressGovernance,
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

/// What a scan found, for the leak flow and the refusal.
#[derive(Default)]
struct Found {
    rules: Vec<String>,
    items: Vec<Leaked>,
    /// A finding `redact` cannot rewrite (percent-decoded, past the bound).
    unredactable: bool,
}

impl Found {
    fn add(&mut self, data: &[u8], matches: &[Match], unredactable: bool) {
        self.unredactable |= unredactable;
        for m in matches {
            if !self.rules.contains(&m.rule) {
                self.rules.push(m.rule.clone());
            }
            if let Some(item) = leaked(data, m) {
                let dup = self.items.iter().any(|i| match (i, &item) {
                    (Leaked::Secret(a), Leaked::Secret(b)) => a == b,
                    (Leaked::Credential(a), Leaked::Credential(b)) => {
                        a.expose_secret() == b.expose_secret()
                    }
                    _ => false,
                });
                if !dup {
                    self.items.push(item);
                }
            }
        }
    }
}

/// What the vault can act on for a match: a vault credential by its text, a
/// stored secret by path; a provider secret the vault does not hold, nothing.
fn leaked(data: &[u8], m: &Match) -> Option<Leaked> {
    if let Some(path) = m
        .managed
        .as_ref()
        .and_then(|i| i.id.strip_prefix("secret:"))
    {
        return SecretPath::parse(path).ok().map(Leaked::Secret);
    }
    if m.provider == "vault" {
        let text = std::str::from_utf8(data.get(m.start..m.end)?).ok()?;
        return Some(Leaked::Credential(SecretString::new(text.to_owned())));
    }
    None
}

/// The matches that stop a request: vault credentials (known or not), stored
/// secrets (but the one this rule attaches), high-confidence provider secrets.
fn blocking(ob: &Outbound, bound: Option<&SecretPath>, data: &[u8]) -> Vec<Match> {
    let bound_id = bound.map(|p| format!("secret:{p}"));
    ob.scanner
        .find(data, ob.known())
        .into_iter()
        .filter(|m| {
            if let Some(info) = &m.managed {
                return bound_id.as_deref() != Some(info.id.as_str());
            }
            !m.invalid_checksum && (m.provider == "vault" || m.confidence == Confidence::High)
        })
        .collect()
}

fn scan_url(
    ob: &Outbound,
    bound: Option<&SecretPath>,
    path_and_query: &mut String,
    redact: bool,
    found: &mut Found,
) -> Result<(), Refusal> {
    let raw = path_and_query.as_bytes();
    let matches = blocking(ob, bound, raw);
    if !matches.is_empty() {
        found.add(raw, &matches, !redact);
        if redact {
            // `<` and `>` may not appear in a request target: percent-encoded there
            let fixed = redact_bytes(raw, &matches)
                .into_iter()
                .flat_map(|b| match b {
                    b'<' => b"%3C".to_vec(),
                    b'>' => b"%3E".to_vec(),
                    b => vec![b],
                })
                .collect();
            *path_and_query = String::from_utf8(fixed).map_err(|_| {
                Refusal::new(Code::BadProxyRequest, "the request target is not text")
            })?;
        }
    }
    if path_and_query.contains('%') {
        let decoded = percent_decode(path_and_query.as_bytes());
        let more = blocking(ob, bound, &decoded);
        if !more.is_empty() {
            found.add(&decoded, &more, true);
        }
    }
    Ok(())
}

fn scan_headers(
    ob: &Outbound,
    bound: Option<&SecretPath>,
    headers: &mut hyper::HeaderMap,
    replaced: Option<&HeaderName>,
    redact: bool,
    found: &mut Found,
) -> Result<(), Refusal> {
    // One scan over all of them; header by header only when it found something.
    let mut all = Vec::new();
    for (name, value) in headers.iter() {
        if Some(name) != replaced {
            all.extend_from_slice(value.as_bytes());
            all.push(b'\n');
        }
    }
    if blocking(ob, bound, &all).is_empty() {
        return Ok(());
    }
    for (name, value) in headers.iter_mut() {
        if Some(name) == replaced {
            continue;
        }
        let matches = blocking(ob, bound, value.as_bytes());
        if matches.is_empty() {
            continue;
        }
        found.add(value.as_bytes(), &matches, !redact);
        if redact {
            let fixed = redact_bytes(value.as_bytes(), &matches);
            *value = HeaderValue::from_bytes(&fixed)
                .map_err(|_| Refusal::new(Code::BadProxyRequest, "a header is not text"))?;
        }
    }
    Ok(())
}

/// `data` with each match replaced by `<redacted:RULE>` (overlaps merged).
pub(crate) fn redact_bytes(data: &[u8], matches: &[Match]) -> Vec<u8> {
    let mut sorted: Vec<&Match> = matches.iter().collect();
    sorted.sort_by_key(|m| (m.start, std::cmp::Reverse(m.end)));
    let mut out = Vec::with_capacity(data.len());
    let mut at = 0;
    for m in sorted {
        if m.start < at {
            continue;
        }
        out.extend_from_slice(&data[at..m.start]);
        out.extend_from_slice(format!("<redacted:{}>", m.rule).as_bytes());
        at = m.end;
    }
    out.extend_from_slice(&data[at..]);
    out
}

/// A short, redacted, printable preview of `data` for an approval.
fn preview(ob: Option<&Outbound>, data: &[u8]) -> String {
    let Some(ob) = ob else {
        return format!(
            "({} bytes, not shown: no scanner to redact them)",
            data.len()
        );
    };
    let head = &data[..data.len().min(PREVIEW_CHARS * 4)];
    // every match, low confidence included: this is only for a person to read
    let matches = ob.scanner.find(head, ob.known());
    let redacted = redact_bytes(head, &matches);
    let text = String::from_utf8_lossy(&redacted);
    let mut out: String = text
        .chars()
        .take(PREVIEW_CHARS)
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if text.chars().count() > PREVIEW_CHARS || head.len() < data.len() {
        out.push('…');
    }
    out
}

fn encoded(headers: &hyper::HeaderMap) -> bool {
    headers
        .get_all(header::CONTENT_ENCODING)
        .iter()
        .any(|v| !v.as_bytes().eq_ignore_ascii_case(b"identity"))
}

fn is_form(headers: &hyper::HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.to_ascii_lowercase()
                .starts_with("application/x-www-form-urlencoded")
        })
}

fn percent_decode(data: &[u8]) -> Vec<u8> {
    let hex = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    let mut out = Vec::with_capacity(data.len());
    let mut i = 0;
    while i < data.len() {
        match data[i] {
            b'%' if i + 2 < data.len() => match (hex(data[i + 1]), hex(data[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push(h << 4 | l);
                    i += 3;
                    continue;
                }
                _ => out.push(b'%'),
            },
            b'+' => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    out
}

/// Reads `body` until it ends or holds more than `limit` bytes; returns what
/// was read and, past the limit, the rest still to come.
async fn read_up_to(
    mut body: Incoming,
    limit: usize,
) -> Result<(Vec<u8>, Option<Incoming>), Refusal> {
    let mut buf = Vec::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|_| {
            Refusal::new(
                Code::BadProxyRequest,
                "the request body ended before its stated length, or was malformed",
            )
        })?;
        if let Ok(data) = frame.into_data() {
            buf.extend_from_slice(&data);
            if buf.len() > limit {
                return Ok((buf, Some(body)));
            }
        }
    }
    Ok((buf, None))
}

fn prefixed(head: Vec<u8>, rest: Incoming) -> OutBody {
    Chained {
        first: Some(
            Full::new(Bytes::from(head))
                .map_err(|e| match e {})
                .boxed_unsync(),
        ),
        rest: rest.map_err(BoxError::from).boxed_unsync(),
    }
    .boxed_unsync()
}

struct Chained {
    first: Option<OutBody>,
    rest: OutBody,
}

impl hyper::body::Body for Chained {
    type Data = Bytes;
    type Error = BoxError;
    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        if let Some(first) = self.first.as_mut() {
            match Pin::new(first).poll_frame(cx) {
                Poll::Ready(None) => self.first = None,
                other => return other,
            }
        }
        Pin::new(&mut self.rest).poll_frame(cx)
    }
}

/// A body past [`MAX_SCANNED_BODY`], scanned as it streams (see the module doc).
struct ScanningBody<B: Backend> {
    /// Scanned bytes ready to send.
    ready: Option<Bytes>,
    /// Scanned, not yet sent (at most [`HOLDBACK`] once streaming).
    carry: Vec<u8>,
    /// The last bytes sent, scanned again with the next chunk.
    sent_tail: Vec<u8>,
    inner: Incoming,
    outbound: Outbound,
    backend: Arc<B>,
    credential: Arc<SecretString>,
    host: String,
    port: u16,
    bound: Option<SecretPath>,
    cut: Cut,
    done: bool,
}

impl<B: Backend> ScanningBody<B> {
    /// `head` was scanned whole by the caller and held nothing.
    fn new(
        head: Vec<u8>,
        inner: Incoming,
        outbound: Outbound,
        o: Outgoing<'_, B>,
        cut: Cut,
    ) -> Self {
        let keep = head.len().saturating_sub(HOLDBACK);
        let ready = Bytes::copy_from_slice(&head[..keep]);
        ScanningBody {
            sent_tail: ready[ready.len().saturating_sub(CONTEXT)..].to_vec(),
            ready: Some(ready),
            carry: head[keep..].to_vec(),
            inner,
            outbound,
            backend: o.backend.clone(),
            credential: o.credential.clone(),
            host: o.host.to_owned(),
            port: o.port,
            bound: o.bound.cloned(),
            cut,
            done: false,
        }
    }

    /// Scans `sent_tail + carry + data`; on a finding touching unsent bytes,
    /// hands it to the leak flow and returns the refusal.
    fn take(&mut self, data: &[u8]) -> Result<Bytes, Refusal> {
        let mut hay = Vec::with_capacity(self.sent_tail.len() + self.carry.len() + data.len());
        hay.extend_from_slice(&self.sent_tail);
        hay.extend_from_slice(&self.carry);
        hay.extend_from_slice(data);
        let fresh = self.sent_tail.len();
        let matches: Vec<Match> = blocking(&self.outbound, self.bound.as_ref(), &hay)
            .into_iter()
            .filter(|m| m.end > fresh)
            .collect();
        if !matches.is_empty() {
            let mut found = Found::default();
            found.add(&hay, &matches, true);
            let refusal = Refusal::new(
                Code::ExfiltrationBlocked,
                format!(
                    "the request body carried a credential ({}) past the first {} bytes; the broker \
                     cut the request before the value left, and the vault now treats it as leaked",
                    found.rules.join(", "),
                    MAX_SCANNED_BODY
                ),
            );
            let backend = self.backend.clone();
            let credential = self.credential.clone();
            let leak = Leak {
                host: self.host.clone(),
                port: self.port,
                rules: found.rules,
                items: found.items,
                redacted: false,
            };
            tokio::spawn(async move { backend.leaked(credential, leak).await });
            return Err(refusal);
        }
        let unsent = &hay[fresh..];
        let keep = unsent.len().saturating_sub(HOLDBACK);
        let out = Bytes::copy_from_slice(&unsent[..keep]);
        self.carry = unsent[keep..].to_vec();
        let mut tail = std::mem::take(&mut self.sent_tail);
        tail.extend_from_slice(&out);
        self.sent_tail = tail[tail.len().saturating_sub(CONTEXT)..].to_vec();
        Ok(out)
    }
}

impl<B: Backend> hyper::body::Body for ScanningBody<B> {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        if let Some(ready) = this.ready.take().filter(|r| !r.is_empty()) {
            return Poll::Ready(Some(Ok(Frame::data(ready))));
        }
        if this.done {
            return Poll::Ready(None);
        }
        loop {
            match Pin::new(&mut this.inner).poll_frame(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(None) => {
                    // the carry was scanned with the last chunk
                    this.done = true;
                    let last = std::mem::take(&mut this.carry);
                    if last.is_empty() {
                        return Poll::Ready(None);
                    }
                    return Poll::Ready(Some(Ok(Frame::data(Bytes::from(last)))));
                }
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(e.into()))),
                Poll::Ready(Some(Ok(frame))) => {
                    let Ok(data) = frame.into_data() else {
                        // trailers are not forwarded
                        continue;
                    };
                    match this.take(&data) {
                        Ok(out) if out.is_empty() => continue,
                        Ok(out) => return Poll::Ready(Some(Ok(Frame::data(out)))),
                        Err(refusal) => {
                            this.done = true;
                            let message = refusal.to_string();
                            if let Ok(mut slot) = this.cut.0.lock() {
                                *slot = Some(refusal);
                            }
                            return Poll::Ready(Some(Err(message.into())));
                        }
                    }
                }
            }
        }
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outbound() -> Outbound {
        Outbound {
            scanner: Arc::new(Scanner::builtin().unwrap()),
            known: None,
        }
    }

    // issue 16, exfiltration: redaction replaces each value with its rule, keeps the rest
    #[test]
    fn redaction_replaces_each_value_and_keeps_the_text_around_it() {
        let ob = outbound();
        let text = b"{\"prompt\":\"deploy with 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 please\"}";
        let m = blocking(&ob, None, text);
        assert_eq!(m.len(), 1, "{m:?}");
        let out = String::from_utf8(redact_bytes(text, &m)).unwrap();
        assert_eq!(
            out,
            "{\"prompt\":\"deploy with <redacted:github.pat-classic> please\"}"
        );
        assert!(blocking(&ob, None, b"{\"prompt\":\"hello\"}").is_empty());
    }

    // issue 16, exfiltration: percent-encoded values are decoded before scanning
    #[test]
    fn percent_decoding_reveals_encoded_values() {
        assert_eq!(percent_decode(b"a%2Fb+c%zz%4"), b"a/b c%zz%4".to_vec());
    }
}
