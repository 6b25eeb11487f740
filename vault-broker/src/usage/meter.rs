//! One request's metering: the body sent up (counted, maybe rewritten to
//! ask for usage) and the answer read for usage as it streams back.

use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use http_body_util::BodyExt as _;
use hyper::body::{Body, Frame, Incoming, SizeHint};

use crate::outbound::{BoxError, OutBody};
use hyper::header::{self, HeaderMap, HeaderValue};
use vault_core::usage::{Provider, Tokens, UsageRecord};
use vault_core::EgressMeta;

use crate::refusal::{Code, Refusal};
use crate::OwnedRequest;

use super::answer::{detect, merge, usage_of, Api, SseReader};
use super::{now_ms, Accounting, BYTES_PER_TOKEN, MAX_JSON_BODY, MAX_REWRITE_BODY};

/// One request's accounting, from admission to the answer's end.
pub struct Meter {
    accounting: Option<Arc<Accounting>>,
    meta: Option<EgressMeta>,
    request: OwnedRequest,
    port: u16,
    api: Option<(Provider, Api)>,
    started: Instant,
    bytes_up: Arc<AtomicU64>,
    model: Option<String>,
    /// `stream_options.include_usage` was added: hide the usage chunk.
    injected: bool,
}

impl Meter {
    /// A meter for `request` (None accounting: counts nothing, changes nothing).
    pub fn new(
        accounting: Option<Arc<Accounting>>,
        meta: Option<EgressMeta>,
        request: &OwnedRequest,
    ) -> Meter {
        let api = accounting.as_ref().and(meta.as_ref()).and(detect(request));
        Meter {
            accounting: accounting.filter(|_| meta.is_some()),
            meta,
            port: request.port,
            request: request.clone(),
            api,
            started: Instant::now(),
            bytes_up: Arc::new(AtomicU64::new(0)),
            model: None,
            injected: false,
        }
    }

    /// The body sent upstream: counted as it goes, and for an OpenAI chat
    /// stream without `stream_options.include_usage`, rewritten to ask for
    /// it. For a model API, `Accept-Encoding` is set to `identity` so the
    /// answer can be read.
    ///
    /// # Errors
    /// A request body that fails to arrive while being read for the rewrite.
    pub async fn request_body(
        &mut self,
        headers: &mut HeaderMap,
        body: OutBody,
    ) -> Result<UpBody, Refusal> {
        if self.accounting.is_none() {
            return Ok(UpBody::Stream(body, None));
        }
        let Some((provider, api)) = self.api else {
            return Ok(UpBody::Stream(body, Some(self.bytes_up.clone())));
        };
        headers.insert(
            header::ACCEPT_ENCODING,
            HeaderValue::from_static("identity"),
        );
        let length = headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        let json = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.to_ascii_lowercase().contains("json"));
        let readable = json
            && api == Api::Chat
            && provider == Provider::OpenAi
            && length.is_some_and(|n| n <= MAX_REWRITE_BODY);
        if !readable {
            return Ok(UpBody::Stream(body, Some(self.bytes_up.clone())));
        }
        let bytes = body
            .collect()
            .await
            .map_err(|_| {
                Refusal::new(
                    Code::BadProxyRequest,
                    "the request body did not arrive whole",
                )
            })?
            .to_bytes();
        let rewritten = self.rewrite(&bytes);
        let out = rewritten.unwrap_or(bytes);
        self.bytes_up.store(out.len() as u64, Ordering::Relaxed);
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(out.len()));
        Ok(UpBody::Whole(Some(out)))
    }

    /// Adds `stream_options.include_usage` to a streamed chat request that
    /// lacks it; notes the model either way. None: send the body as it was.
    fn rewrite(&mut self, body: &[u8]) -> Option<Bytes> {
        // Most requests do not stream: leave them unparsed (the answer names the model).
        if !body.windows(8).any(|w| w == b"\"stream\"") {
            return None;
        }
        let mut v: serde_json::Value = serde_json::from_slice(body).ok()?;
        let obj = v.as_object_mut()?;
        self.model = obj.get("model").and_then(|m| m.as_str()).map(str::to_owned);
        if obj.get("stream").and_then(serde_json::Value::as_bool) != Some(true) {
            return None;
        }
        let options = obj
            .entry("stream_options")
            .or_insert_with(|| serde_json::json!({}));
        let options = options.as_object_mut()?;
        if options
            .get("include_usage")
            .and_then(serde_json::Value::as_bool)
            == Some(true)
        {
            return None;
        }
        options.insert("include_usage".into(), true.into());
        self.injected = true;
        serde_json::to_vec(&v).ok().map(Bytes::from)
    }

    /// The answer's body as the client gets it: read for usage as it passes,
    /// recorded when it ends or is dropped.
    pub fn response(self, status: u16, headers: &mut HeaderMap, body: Incoming) -> Metered {
        let (Some(accounting), Some(meta)) = (self.accounting.clone(), self.meta.clone()) else {
            return Metered {
                inner: body,
                state: None,
            };
        };
        let encoded = headers
            .get(header::CONTENT_ENCODING)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| !v.trim().eq_ignore_ascii_case("identity"));
        let sse = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.to_ascii_lowercase().starts_with("text/event-stream"));
        let reader = match self.api {
            _ if encoded => Reader::Opaque,
            None => Reader::Opaque,
            Some((provider, _)) if sse => Reader::Sse(SseReader::new(provider, self.injected)),
            Some((provider, _)) => Reader::Json(provider, BytesMut::new(), false),
        };
        // Hiding a chunk changes the length: the client must not expect the upstream's.
        if self.injected && matches!(reader, Reader::Sse(_)) {
            headers.remove(header::CONTENT_LENGTH);
        }
        let latency = self.started.elapsed();
        Metered {
            inner: body,
            state: Some(Box::new(MeterState {
                accounting,
                meta,
                request: self.request,
                port: self.port,
                provider: self.api.map(|(p, _)| p),
                status,
                started: self.started,
                latency,
                bytes_up: self.bytes_up,
                bytes_down: 0,
                reader,
                tokens: None,
                model: None,
                request_model: self.model,
                done: false,
            })),
        }
    }
}

/// A request body on its way upstream.
pub enum UpBody {
    /// Streamed from the client, counted when a counter is given.
    Stream(OutBody, Option<Arc<AtomicU64>>),
    /// Read whole (and maybe rewritten); sent at once.
    Whole(Option<Bytes>),
}

impl Body for UpBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.get_mut() {
            UpBody::Stream(body, counter) => {
                let polled = Pin::new(body).poll_frame(cx);
                if let (Poll::Ready(Some(Ok(frame))), Some(counter)) = (&polled, counter) {
                    if let Some(data) = frame.data_ref() {
                        counter.fetch_add(data.len() as u64, Ordering::Relaxed);
                    }
                }
                polled
            }
            UpBody::Whole(bytes) => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            UpBody::Stream(body, _) => body.is_end_stream(),
            UpBody::Whole(bytes) => bytes.is_none(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            UpBody::Stream(body, _) => body.size_hint(),
            UpBody::Whole(bytes) => {
                SizeHint::with_exact(bytes.as_ref().map_or(0, |b| b.len() as u64))
            }
        }
    }
}

/// The answer's body, metered.
pub struct Metered {
    inner: Incoming,
    state: Option<Box<MeterState>>,
}

struct MeterState {
    accounting: Arc<Accounting>,
    meta: EgressMeta,
    request: OwnedRequest,
    port: u16,
    provider: Option<Provider>,
    status: u16,
    started: Instant,
    latency: Duration,
    bytes_up: Arc<AtomicU64>,
    bytes_down: u64,
    reader: Reader,
    tokens: Option<Tokens>,
    /// The model the answer named.
    model: Option<String>,
    /// The model the request named.
    request_model: Option<String>,
    done: bool,
}

enum Reader {
    /// Not read (not a model API, or compressed).
    Opaque,
    /// A JSON answer, gathered up to [`MAX_JSON_BODY`] (true: gave up).
    Json(Provider, BytesMut, bool),
    /// Server-sent events.
    Sse(SseReader),
}

impl MeterState {
    /// Reads `data`; returns what the client gets (all of it unless a usage chunk is hidden).
    fn feed(&mut self, data: Bytes) -> Bytes {
        self.bytes_down += data.len() as u64;
        match &mut self.reader {
            Reader::Opaque => data,
            Reader::Json(_, buf, gave_up) => {
                if !*gave_up {
                    if buf.len() + data.len() > MAX_JSON_BODY {
                        *gave_up = true;
                        *buf = BytesMut::new();
                    } else {
                        buf.extend_from_slice(&data);
                    }
                }
                data
            }
            Reader::Sse(sse) => {
                let out = sse.feed(&data);
                merge(&mut self.tokens, &mut self.model, sse.take_seen());
                out.unwrap_or(data)
            }
        }
    }

    /// Called once: at the end (`cut` false) or when dropped early.
    fn finish(&mut self, cut: bool) -> Option<Bytes> {
        if self.done {
            return None;
        }
        self.done = true;
        let mut tail = None;
        match &mut self.reader {
            Reader::Json(provider, buf, false) if !cut => {
                let seen = serde_json::from_slice::<serde_json::Value>(buf)
                    .ok()
                    .and_then(|v| match v {
                        // Gemini's streamed JSON array: the last element carries the totals
                        serde_json::Value::Array(items) => items
                            .into_iter()
                            .rev()
                            .find_map(|i| usage_of(*provider, &i)),
                        v => usage_of(*provider, &v),
                    });
                merge(&mut self.tokens, &mut self.model, seen);
            }
            Reader::Sse(sse) => {
                tail = sse.flush();
                merge(&mut self.tokens, &mut self.model, sse.take_seen());
            }
            _ => {}
        }
        let bytes_up = self.bytes_up.load(Ordering::Relaxed);
        let ok = (200..300).contains(&self.status);
        let estimated = self.provider.is_some() && ok && self.tokens.is_none();
        let tokens = match self.tokens {
            Some(t) => t,
            None if estimated => Tokens {
                input: bytes_up.div_ceil(BYTES_PER_TOKEN),
                output: self.bytes_down.div_ceil(BYTES_PER_TOKEN),
                ..Tokens::default()
            },
            None => Tokens::default(),
        };
        let record = UsageRecord {
            at_ms: now_ms(),
            agent: self.meta.agent.clone(),
            key_id: self.meta.key_id.clone(),
            host: format!("{}:{}", self.request.host, self.port),
            method: self.request.method.clone(),
            path: self.request.path.clone(),
            rule: self.meta.rule,
            status: self.status,
            bytes_up,
            bytes_down: self.bytes_down,
            latency_ms: self.latency.as_millis() as u64,
            duration_ms: self.started.elapsed().as_millis() as u64,
            provider: self.provider,
            model: self.model.clone().or_else(|| self.request_model.clone()),
            tokens,
            estimated,
            cut,
        };
        self.accounting.submit(record);
        self.accounting.check_alert(&self.meta);
        tail
    }
}

impl Drop for Metered {
    fn drop(&mut self) {
        // Dropped before its end was polled: hyper stops at a known length
        // (then the answer was whole), or the client went away or the
        // upstream failed (then what was seen is still recorded, as cut).
        let whole = self.inner.is_end_stream();
        if let Some(state) = self.state.as_mut() {
            let _ = state.finish(!whole);
        }
    }
}

impl Body for Metered {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = self.get_mut();
        loop {
            let polled = Pin::new(&mut this.inner).poll_frame(cx);
            let Some(state) = this.state.as_mut() else {
                return polled;
            };
            match polled {
                Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                    Ok(data) => {
                        let mut out = state.feed(data);
                        if this.inner.is_end_stream() {
                            // The last bytes of a known length: hyper may not poll again.
                            if let Some(tail) = state.finish(false).filter(|t| !t.is_empty()) {
                                let mut joined = BytesMut::from(&out[..]);
                                joined.extend_from_slice(&tail);
                                out = joined.freeze();
                            }
                        }
                        if out.is_empty() {
                            continue;
                        }
                        return Poll::Ready(Some(Ok(Frame::data(out))));
                    }
                    Err(frame) => return Poll::Ready(Some(Ok(frame))),
                },
                Poll::Ready(None) => {
                    if let Some(tail) = state.finish(false).filter(|t| !t.is_empty()) {
                        return Poll::Ready(Some(Ok(Frame::data(tail))));
                    }
                    return Poll::Ready(None);
                }
                Poll::Ready(Some(Err(e))) => {
                    let _ = state.finish(true);
                    return Poll::Ready(Some(Err(e)));
                }
                Poll::Pending => return Poll::Pending,
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        // Never claim the end before `finish` ran on the last poll.
        self.state.as_ref().is_none_or(|s| s.done) && self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        match &self.state {
            Some(s) if matches!(&s.reader, Reader::Sse(r) if r.hide) => SizeHint::default(),
            _ => self.inner.size_hint(),
        }
    }
}
