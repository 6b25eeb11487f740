//! What an agent sends over a relayed WebSocket, scanned frame by frame
//! before it reaches the upstream (issue 16: "websocket text frames" are
//! egress like any body). The client's bytes are parsed into frames (RFC
//! 6455 section 5); a frame is forwarded only once it, and for a fragmented
//! message every fragment of it, has been scanned with the same matchers as a
//! request body ([`crate::outbound::scan_message`]).
//!
//! - Text and binary messages are reassembled from their continuation frames
//!   up to [`MAX_MESSAGE`] bytes; nothing of a message leaves before its last
//!   fragment is scanned. A longer message closes the socket
//!   (`websocket_message_too_large`, close code 1009): held whole it would
//!   cost unbounded memory, streamed it would leave unscanned.
//! - Control frames (ping, pong, close) are scanned alone and pass at once,
//!   which RFC 6455 allows between the fragments of a message.
//! - A finding closes the socket with 1008 (policy violation) and the reason
//!   `exfiltration_blocked`, never a value, and goes to the leak flow. In
//!   `redact` mode a text message whose values the raw scan found is sent as
//!   one frame with each value replaced by `<redacted:RULE>`; a binary
//!   message, a control frame, or a value only a decoded scan found (JSON
//!   `\u` escapes) cannot be rewritten faithfully, so it blocks.
//! - Frames with reserved bits (a compression extension) are refused: the
//!   broker strips `Sec-WebSocket-Extensions` from the handshake it scans, so
//!   such a frame was never negotiated and cannot be read.

use vault_core::SecretPath;

use crate::outbound::{scan_message, MessageFinding, Outbound, MAX_SCANNED_BODY};
use crate::refusal::Code;

/// Largest message (all its fragments' payloads) held and scanned.
pub(crate) const MAX_MESSAGE: usize = MAX_SCANNED_BODY;

/// WebSocket close codes the broker sends (RFC 6455 section 7.4.1).
const CLOSE_PROTOCOL_ERROR: u16 = 1002;
const CLOSE_POLICY_VIOLATION: u16 = 1008;
const CLOSE_TOO_BIG: u16 = 1009;
/// A close frame's payload is at most 125 bytes, 2 of them the code.
const MAX_REASON: usize = 123;

/// Why the client's side is closed, and what goes to the leak flow first.
pub(crate) struct Stop {
    pub(crate) close: u16,
    pub(crate) code: Code,
    pub(crate) reason: String,
    pub(crate) finding: Option<MessageFinding>,
}

impl Stop {
    fn new(close: u16, code: Code, detail: &str) -> Stop {
        let mut reason = format!("{}: {detail}", code.as_str());
        if reason.len() > MAX_REASON {
            let mut cut = MAX_REASON;
            while !reason.is_char_boundary(cut) {
                cut -= 1;
            }
            reason.truncate(cut);
        }
        Stop {
            close,
            code,
            reason,
            finding: None,
        }
    }

    /// The close frame for the client (server frames are not masked).
    pub(crate) fn close_frame(&self) -> Vec<u8> {
        let mut payload = self.close.to_be_bytes().to_vec();
        payload.extend_from_slice(self.reason.as_bytes());
        frame(0x8, &payload, None)
    }
}

/// A frame's header.
struct Header {
    fin: bool,
    rsv: u8,
    opcode: u8,
    mask: Option<[u8; 4]>,
    len: u64,
    head_len: usize,
}

/// The header at the start of `b`, or `None` until all of it has arrived.
fn header(b: &[u8]) -> Option<Header> {
    let (&b0, &b1) = (b.first()?, b.get(1)?);
    let (len, mut at) = match b1 & 0x7f {
        126 => (u64::from(u16::from_be_bytes([*b.get(2)?, *b.get(3)?])), 4),
        127 => (u64::from_be_bytes(b.get(2..10)?.try_into().ok()?), 10),
        n => (u64::from(n), 2),
    };
    let mask = if b1 & 0x80 != 0 {
        let m: [u8; 4] = b.get(at..at + 4)?.try_into().ok()?;
        at += 4;
        Some(m)
    } else {
        None
    };
    Some(Header {
        fin: b0 & 0x80 != 0,
        rsv: b0 & 0x70,
        opcode: b0 & 0x0f,
        mask,
        len,
        head_len: at,
    })
}

fn unmask(payload: &mut [u8], mask: Option<[u8; 4]>) {
    if let Some(m) = mask {
        for (i, b) in payload.iter_mut().enumerate() {
            *b ^= m[i % 4];
        }
    }
}

/// One final frame of `opcode` carrying `payload`, masked with `mask` if given.
pub(crate) fn frame(opcode: u8, payload: &[u8], mask: Option<[u8; 4]>) -> Vec<u8> {
    let mut out = vec![0x80 | opcode];
    let masked = if mask.is_some() { 0x80 } else { 0 };
    match payload.len() {
        n if n < 126 => out.push(masked | n as u8),
        n if n <= usize::from(u16::MAX) => {
            out.push(masked | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(masked | 127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    let start = out.len();
    if let Some(m) = mask {
        out.extend_from_slice(&m);
    }
    out.extend_from_slice(payload);
    unmask(&mut out[start + 4 * usize::from(mask.is_some())..], mask);
    out
}

/// The client-to-upstream side of a scanned relay (see the module doc).
pub(crate) struct Gate {
    outbound: Outbound,
    bound: Option<SecretPath>,
    redact: bool,
    /// Client bytes not yet a whole frame.
    buf: Vec<u8>,
    /// The raw frames of the message being assembled, and its payload.
    held: Vec<u8>,
    message: Vec<u8>,
    /// Its opcode (text 1, binary 2) and its first frame's mask.
    open: Option<(u8, Option<[u8; 4]>)>,
    /// Messages sent redacted since the caller last took them.
    pub(crate) redacted: Vec<MessageFinding>,
}

impl Gate {
    pub(crate) fn new(outbound: Outbound, bound: Option<SecretPath>, redact: bool) -> Gate {
        Gate {
            outbound,
            bound,
            redact,
            buf: Vec::new(),
            held: Vec::new(),
            message: Vec::new(),
            open: None,
            redacted: Vec::new(),
        }
    }

    /// Takes bytes from the client; returns the bytes that may go upstream now.
    pub(crate) fn push(&mut self, data: &[u8]) -> Result<Vec<u8>, Stop> {
        self.buf.extend_from_slice(data);
        let mut out = Vec::new();
        let mut used = 0;
        while let Some(h) = header(&self.buf[used..]) {
            let limit = (MAX_MESSAGE - self.message.len().min(MAX_MESSAGE)) as u64;
            if h.len > limit {
                return Err(Stop::new(
                    CLOSE_TOO_BIG,
                    Code::WebsocketMessageTooLarge,
                    &format!("over {MAX_MESSAGE} bytes, the most the broker scans"),
                ));
            }
            // bounded by MAX_MESSAGE just above
            let total = h.head_len + h.len as usize;
            if self.buf.len() - used < total {
                break;
            }
            let raw = self.buf[used..used + total].to_vec();
            used += total;
            if h.rsv != 0 {
                return Err(Stop::new(
                    CLOSE_PROTOCOL_ERROR,
                    Code::EgressBodyEncoded,
                    "a frame with reserved bits (compressed?) the broker cannot scan",
                ));
            }
            let mut payload = raw[h.head_len..].to_vec();
            unmask(&mut payload, h.mask);
            match (h.opcode, self.open) {
                (0x8..=0xf, _) => {
                    self.check(&payload, false)?;
                    out.extend_from_slice(&raw);
                }
                (0x1 | 0x2, None) if h.fin => match self.check(&payload, h.opcode == 0x1)? {
                    Some(clean) => out.extend_from_slice(&frame(h.opcode, &clean, h.mask)),
                    None => out.extend_from_slice(&raw),
                },
                (0x1 | 0x2, None) => {
                    self.open = Some((h.opcode, h.mask));
                    self.held.extend_from_slice(&raw);
                    self.message = payload;
                }
                (0x0, Some((opcode, mask))) => {
                    self.held.extend_from_slice(&raw);
                    self.message.extend_from_slice(&payload);
                    if h.fin {
                        let message = std::mem::take(&mut self.message);
                        let held = std::mem::take(&mut self.held);
                        self.open = None;
                        match self.check(&message, opcode == 0x1)? {
                            Some(clean) => out.extend_from_slice(&frame(opcode, &clean, mask)),
                            None => out.extend_from_slice(&held),
                        }
                    }
                }
                _ => {
                    return Err(Stop::new(
                        CLOSE_PROTOCOL_ERROR,
                        Code::BadProxyRequest,
                        "a continuation frame out of sequence, or an unknown opcode",
                    ))
                }
            }
        }
        self.buf.drain(..used);
        Ok(out)
    }

    /// Scans one message or control payload: `Ok(None)` to send it as it
    /// came, `Ok(Some(redacted))` to send that instead, `Err` to close.
    fn check(&mut self, payload: &[u8], text: bool) -> Result<Option<Vec<u8>>, Stop> {
        let redactable = self.redact && text;
        let Some(mut finding) =
            scan_message(&self.outbound, self.bound.as_ref(), payload, redactable)
        else {
            return Ok(None);
        };
        match finding.replacement.take() {
            Some(clean) => {
                self.redacted.push(finding);
                Ok(Some(clean))
            }
            None => {
                let mut stop = Stop::new(
                    CLOSE_POLICY_VIOLATION,
                    Code::ExfiltrationBlocked,
                    &format!(
                        "a frame carried a credential ({})",
                        finding.rules.join(", ")
                    ),
                );
                stop.finding = Some(finding);
                Err(stop)
            }
        }
    }
}

/// Follows the frame boundaries of the upstream's bytes to the client, so a
/// close frame of the broker's is never written into the middle of one.
#[derive(Default)]
pub(crate) struct Boundaries {
    head: Vec<u8>,
    remaining: u64,
}

impl Boundaries {
    pub(crate) fn feed(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            if self.remaining > 0 {
                let n = data
                    .len()
                    .min(usize::try_from(self.remaining).unwrap_or(usize::MAX));
                self.remaining -= n as u64;
                data = &data[n..];
                continue;
            }
            // a header is at most 14 bytes: take one byte at a time until it parses
            self.head.push(data[0]);
            data = &data[1..];
            if let Some(h) = header(&self.head) {
                self.remaining = h.len;
                self.head.clear();
            }
        }
    }

    pub(crate) fn at_boundary(&self) -> bool {
        self.remaining == 0 && self.head.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    const KEY: &str = "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";

    fn gate(redact: bool) -> Gate {
        let outbound = Outbound {
            scanner: Arc::new(vault_scan::Scanner::builtin().unwrap()),
            known: None,
        };
        Gate::new(outbound, None, redact)
    }

    /// A client frame (masked), FIN as given.
    fn client_frame(fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
        let mut f = frame(opcode, payload, Some([1, 2, 3, 4]));
        if !fin {
            f[0] &= 0x7f;
        }
        f
    }

    // issue 16, websocket frames: a message split into continuation frames,
    // fed a byte at a time, is held whole and blocked when the value spans fragments
    #[test]
    fn a_value_split_across_fragments_is_reassembled_and_blocks_before_any_fragment_leaves() {
        let text = format!("deploy with {KEY} now");
        let (a, b) = text.as_bytes().split_at(20);
        let mut wire = client_frame(false, 0x1, a);
        wire.extend(client_frame(true, 0x9, b"ping"));
        wire.extend(client_frame(true, 0x0, b));
        let mut g = gate(false);
        let mut sent = Vec::new();
        let mut stop = None;
        for byte in &wire {
            match g.push(std::slice::from_ref(byte)) {
                Ok(out) => sent.extend(out),
                Err(s) => {
                    stop = Some(s);
                    break;
                }
            }
        }
        let stop = stop.expect("the split value is found");
        assert_eq!(stop.close, 1008);
        assert!(
            stop.reason.starts_with("exfiltration_blocked"),
            "{}",
            stop.reason
        );
        assert!(!stop.reason.contains(KEY));
        // only the ping went on; no byte of the message did
        assert_eq!(sent, client_frame(true, 0x9, b"ping"));
        let close = stop.close_frame();
        assert_eq!(&close[2..4], &1008u16.to_be_bytes());
    }

    // issue 16, websocket frames: clean messages pass byte for byte; redact
    // mode rewrites a text message; a binary one blocks even in redact mode
    #[test]
    fn clean_frames_pass_as_sent_and_redact_rewrites_text_but_not_binary() {
        let mut g = gate(true);
        let mut wire = client_frame(false, 0x1, b"hello ");
        wire.extend(client_frame(true, 0x0, b"world"));
        assert_eq!(g.push(&wire).ok(), Some(wire.clone()));
        let out = g
            .push(&client_frame(true, 0x1, format!("key {KEY}!").as_bytes()))
            .ok()
            .unwrap();
        assert_eq!(
            out,
            client_frame(true, 0x1, b"key <redacted:github.pat-classic>!")
        );
        assert_eq!(g.redacted.len(), 1);
        let stop = g
            .push(&client_frame(true, 0x2, KEY.as_bytes()))
            .err()
            .unwrap();
        assert_eq!(stop.close, 1008);
    }

    // issue 16, websocket frames: a message past the bound is refused, not held or passed
    #[test]
    fn a_message_over_the_bound_closes_with_1009_and_says_so() {
        let mut g = gate(false);
        let half = vec![b'a'; MAX_MESSAGE / 2 + 1];
        assert!(g
            .push(&client_frame(false, 0x1, &half))
            .ok()
            .unwrap()
            .is_empty());
        let stop = g.push(&client_frame(true, 0x0, &half)).err().unwrap();
        assert_eq!(stop.close, 1009);
        assert!(
            stop.reason.starts_with("websocket_message_too_large"),
            "{}",
            stop.reason
        );
        // a header announcing too much is refused before its payload arrives
        let stop = gate(false)
            .push(&[0x81, 0xff, 0, 0, 0, 0, 0, 0x20, 0, 0, 1, 2, 3, 4])
            .err()
            .unwrap();
        assert_eq!(stop.close, 1009);
    }

    #[test]
    fn boundaries_follow_frames_split_anywhere() {
        let mut wire = frame(0x1, &[b'x'; 300], None);
        wire.extend(frame(0x2, b"ab", None));
        for cut in 0..wire.len() {
            let mut b = Boundaries::default();
            b.feed(&wire[..cut]);
            assert_eq!(b.at_boundary(), cut == 0 || cut == 304, "cut {cut}");
            b.feed(&wire[cut..]);
            assert!(b.at_boundary());
        }
    }
}
