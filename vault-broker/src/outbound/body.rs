//! The request body on its way up: read whole up to a bound, or streamed
//! with a held-back window scanned before each chunk leaves.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::{Frame, Incoming, SizeHint};
use vault_core::{SecretPath, SecretString};
use vault_scan::Match;

use crate::refusal::{Code, Refusal};
use crate::Backend;

use super::scan::*;
use super::*;

/// Reads `body` until it ends or holds more than `limit` bytes; returns what
/// was read and, past the limit, the rest still to come.
pub(super) async fn read_up_to(
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

pub(super) fn prefixed(head: Vec<u8>, rest: Incoming) -> OutBody {
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

pub(super) struct Chained {
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
pub(super) struct ScanningBody<B: Backend> {
    /// Scanned bytes ready to send.
    ready: Option<Bytes>,
    window: Window,
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
    pub(super) fn new(
        head: Vec<u8>,
        inner: Incoming,
        outbound: Outbound,
        o: Outgoing<'_, B>,
        cut: Cut,
    ) -> Self {
        let (ready, window) = Window::new(&head);
        ScanningBody {
            ready: Some(ready),
            window,
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

    /// Scans the next chunk; on a finding, hands it to the leak flow and
    /// returns the refusal.
    fn take(&mut self, data: &[u8]) -> Result<Bytes, Refusal> {
        let found = match self.window.take(&self.outbound, self.bound.as_ref(), data) {
            Ok(out) => return Ok(out),
            Err(found) => found,
        };
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
        Err(refusal)
    }
}

/// The held-back window of a streamed body, apart from the body and the
/// vault so it can be tested on its own: what has been scanned but not sent
/// (`carry`, at most [`HOLDBACK`]) and the last bytes sent (`sent_tail`,
/// [`CONTEXT`]), scanned again with each chunk.
pub(super) struct Window {
    carry: Vec<u8>,
    sent_tail: Vec<u8>,
}

impl Window {
    /// For a body whose `head` was scanned whole: what may go now, and the window.
    pub(super) fn new(head: &[u8]) -> (Bytes, Window) {
        let keep = head.len().saturating_sub(HOLDBACK);
        let ready = Bytes::copy_from_slice(&head[..keep]);
        let window = Window {
            sent_tail: ready[ready.len().saturating_sub(CONTEXT)..].to_vec(),
            carry: head[keep..].to_vec(),
        };
        (ready, window)
    }

    /// Scans `sent_tail + carry + data`, raw and with JSON escapes decoded
    /// (an escaped value is at most 12 bytes a character, so one up to 680
    /// characters is still whole inside the window when its last byte
    /// arrives). A finding touching unsent bytes is returned; else the bytes
    /// that may go now.
    pub(super) fn take(
        &mut self,
        ob: &Outbound,
        bound: Option<&SecretPath>,
        data: &[u8],
    ) -> Result<Bytes, Found> {
        let mut hay = Vec::with_capacity(self.sent_tail.len() + self.carry.len() + data.len());
        hay.extend_from_slice(&self.sent_tail);
        hay.extend_from_slice(&self.carry);
        hay.extend_from_slice(data);
        let fresh = self.sent_tail.len();
        let matches: Vec<Match> = blocking(ob, bound, &hay)
            .into_iter()
            .filter(|m| m.end > fresh)
            .collect();
        let mut found = Found::default();
        if !matches.is_empty() {
            found.add(&hay, &matches, true);
            return Err(found);
        }
        if has_json_escape(&hay[fresh.saturating_sub(1)..]) {
            let decoded = json_unescape(&hay);
            // the sent tail decoded alone is never shorter than its part of `decoded`
            let fresh_decoded = json_unescape(&hay[..fresh]).len();
            let more: Vec<Match> = blocking(ob, bound, &decoded)
                .into_iter()
                .filter(|m| m.end > fresh_decoded)
                .collect();
            if !more.is_empty() {
                found.add(&decoded, &more, true);
                return Err(found);
            }
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

    /// What is still unsent when the body ends (scanned with the last chunk).
    pub(super) fn finish(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.carry)
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
                    let last = this.window.finish();
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

    const KEY: &str = "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";

    // issue 16, finding: JSON `\u` escapes in a body streamed past 1 MiB are
    // decoded too, wherever a chunk boundary cuts the escaped value
    #[test]
    fn an_escaped_value_in_a_streamed_body_is_found_at_every_chunk_boundary() {
        let ob = Outbound {
            scanner: Arc::new(vault_scan::Scanner::builtin().unwrap()),
            known: None,
        };
        // every character of the key escaped: no raw byte of it to match
        let escaped: String = KEY
            .chars()
            .map(|c| format!("\\u{:04x}", c as u32))
            .collect();
        let head = vec![b' '; MAX_SCANNED_BODY + 10];
        let body = format!("{{\"prompt\":\"key {escaped} ok\"}}");
        let start = body.find("\\u").unwrap();
        for cut in start..start + escaped.len() {
            let (ready, mut window) = Window::new(&head);
            let mut sent = ready.len();
            let first = window.take(&ob, None, &body.as_bytes()[..cut]);
            let Ok(out) = first else {
                panic!("cut {cut}: found before the value was whole");
            };
            sent += out.len();
            let second = window.take(&ob, None, &body.as_bytes()[cut..]);
            let found = second.err().unwrap_or_else(|| panic!("cut {cut}: missed"));
            assert_eq!(
                found.rules,
                vec!["github.pat-classic".to_owned()],
                "cut {cut}"
            );
            // nothing of the value had left
            assert!(sent <= head.len() + start, "cut {cut}");
        }
        // a clean escaped body streams on
        let (_, mut window) = Window::new(&head);
        assert!(window.take(&ob, None, br#"{"a":"caf\u00e9"}"#).is_ok());
    }
}
