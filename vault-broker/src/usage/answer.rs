//! Reading token usage out of model APIs' answers: which API a request
//! is, JSON answers, and server-sent events line by line.

use bytes::Bytes;

use vault_core::usage::{Provider, Tokens};

use crate::OwnedRequest;

use super::MAX_SSE_LINE;

/// Which model API a request is, and which of its endpoints.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Api {
    /// `/v1/chat/completions` (OpenAI, OpenRouter).
    Chat,
    /// `/v1/responses`.
    Responses,
    /// `/v1/messages`.
    Messages,
    /// `:generateContent`, `:streamGenerateContent`.
    Generate,
}

/// The provider and endpoint of a POST to a model API, by its path (so a
/// self-hosted gateway speaking a provider's API is read too) and, for
/// OpenRouter, its host.
pub(super) fn detect(r: &OwnedRequest) -> Option<(Provider, Api)> {
    if !r.method.eq_ignore_ascii_case("POST") {
        return None;
    }
    let openrouter = r.host.eq_ignore_ascii_case("openrouter.ai");
    let p = r.path.as_str();
    match p {
        "/api/v1/chat/completions" => Some((Provider::OpenRouter, Api::Chat)),
        "/v1/chat/completions" | "/chat/completions" if openrouter => {
            Some((Provider::OpenRouter, Api::Chat))
        }
        "/v1/chat/completions" => Some((Provider::OpenAi, Api::Chat)),
        "/v1/responses" => Some((Provider::OpenAi, Api::Responses)),
        "/v1/messages" => Some((Provider::Anthropic, Api::Messages)),
        _ if (p.starts_with("/v1beta/models/") || p.starts_with("/v1/models/"))
            && (p.ends_with(":generateContent") || p.ends_with(":streamGenerateContent")) =>
        {
            Some((Provider::Gemini, Api::Generate))
        }
        _ => None,
    }
}

/// Server-sent events read line by line. With `hide`, events are held until
/// complete and OpenAI's extra usage chunk (`"choices":[]` with a `usage`
/// object) is dropped from what the client gets.
pub(super) struct SseReader {
    provider: Provider,
    pub(super) hide: bool,
    /// The current line's bytes so far (bounded by [`MAX_SSE_LINE`]).
    line: Vec<u8>,
    line_too_long: bool,
    /// With `hide`: the current event's bytes so far, and whether it is the usage chunk.
    event: Vec<u8>,
    event_is_usage: bool,
    seen: Option<(Tokens, Option<String>)>,
}

impl SseReader {
    pub(super) fn new(provider: Provider, hide: bool) -> SseReader {
        SseReader {
            provider,
            hide,
            line: Vec::new(),
            line_too_long: false,
            event: Vec::new(),
            event_is_usage: false,
            seen: None,
        }
    }

    pub(super) fn take_seen(&mut self) -> Option<(Tokens, Option<String>)> {
        self.seen.take()
    }

    /// Reads `data`; with `hide`, returns the bytes of the events it completed.
    pub(super) fn feed(&mut self, data: &[u8]) -> Option<Bytes> {
        let mut out = self.hide.then(Vec::new);
        let mut rest = data;
        while !rest.is_empty() {
            let (piece, ended) = match memchr(b'\n', rest) {
                Some(i) => (&rest[..=i], true),
                None => (rest, false),
            };
            rest = &rest[piece.len()..];
            if self.hide {
                self.event.extend_from_slice(piece);
            }
            if self.line.len() + piece.len() > MAX_SSE_LINE {
                self.line_too_long = true;
                self.line.clear();
            } else if !self.line_too_long {
                self.line.extend_from_slice(piece);
            }
            if ended {
                self.end_line();
                if let Some(out) = out.as_mut() {
                    if self.line_was_blank() {
                        self.end_event(out);
                    }
                }
                self.line.clear();
                self.line_too_long = false;
            }
        }
        out.map(Bytes::from)
    }

    fn line_was_blank(&self) -> bool {
        !self.line_too_long && matches!(self.line.as_slice(), b"\n" | b"\r\n")
    }

    fn end_line(&mut self) {
        if self.line_too_long {
            return;
        }
        let line = trim_eol(&self.line);
        let Some(data) = line.strip_prefix(b"data:") else {
            return;
        };
        let data = data.strip_prefix(b" ").unwrap_or(data);
        if !has_usage(data) {
            return;
        }
        let Ok(v) = serde_json::from_slice::<serde_json::Value>(data) else {
            return;
        };
        if self.hide && is_usage_only_chunk(&v) {
            self.event_is_usage = true;
        }
        if let Some(seen) = usage_of(self.provider, &v) {
            let (mut tokens, mut model) = match self.seen.take() {
                Some((t, m)) => (Some(t), m),
                None => (None, None),
            };
            merge(&mut tokens, &mut model, Some(seen));
            self.seen = tokens.map(|t| (t, model));
        }
    }

    fn end_event(&mut self, out: &mut Vec<u8>) {
        if !self.event_is_usage {
            out.extend_from_slice(&self.event);
        }
        self.event.clear();
        self.event_is_usage = false;
    }

    /// At the end: an unfinished event is passed on as it was.
    pub(super) fn flush(&mut self) -> Option<Bytes> {
        if !self.line.is_empty() {
            self.end_line();
        }
        if !self.hide || self.event.is_empty() {
            return None;
        }
        let mut out = Vec::new();
        self.end_event(&mut out);
        Some(Bytes::from(out))
    }
}

pub(super) fn memchr(needle: u8, hay: &[u8]) -> Option<usize> {
    hay.iter().position(|b| *b == needle)
}

pub(super) fn trim_eol(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// Whether an event's data may hold usage (so most chunks are never parsed).
pub(super) fn has_usage(data: &[u8]) -> bool {
    data.windows(7).any(|w| w == b"\"usage\"")
        || data.windows(15).any(|w| w == b"\"usageMetadata\"")
}

/// OpenAI's extra final chunk: no choices, a usage object.
pub(super) fn is_usage_only_chunk(v: &serde_json::Value) -> bool {
    v.get("choices")
        .and_then(|c| c.as_array())
        .is_some_and(|c| c.is_empty())
        && v.get("usage").is_some_and(serde_json::Value::is_object)
}

/// The token counts and model in one answer (or event), normalised (see [`Tokens`]).
pub(super) fn usage_of(
    provider: Provider,
    v: &serde_json::Value,
) -> Option<(Tokens, Option<String>)> {
    let n =
        |u: &serde_json::Value, k: &str| u.get(k).and_then(serde_json::Value::as_u64).unwrap_or(0);
    let s = |v: &serde_json::Value, k: &str| v.get(k).and_then(|m| m.as_str()).map(str::to_owned);
    if let Some(u) = v.get("usageMetadata").filter(|u| u.is_object()) {
        let cached = n(u, "cachedContentTokenCount");
        return Some((
            Tokens {
                input: n(u, "promptTokenCount").saturating_sub(cached),
                output: n(u, "candidatesTokenCount") + n(u, "thoughtsTokenCount"),
                cache_read: cached,
                cache_write: 0,
            },
            s(v, "modelVersion"),
        ));
    }
    // Anthropic's message_start and the Responses API's completed event nest theirs.
    let (holder, usage) = [v.get("message"), v.get("response"), Some(v)]
        .into_iter()
        .flatten()
        .find_map(|h| h.get("usage").filter(|u| u.is_object()).map(|u| (h, u)))?;
    let model = s(holder, "model").or_else(|| s(v, "model"));
    if usage.get("prompt_tokens").is_some() || usage.get("completion_tokens").is_some() {
        let cached = usage
            .get("prompt_tokens_details")
            .map_or(0, |d| n(d, "cached_tokens"));
        return Some((
            Tokens {
                input: n(usage, "prompt_tokens").saturating_sub(cached),
                output: n(usage, "completion_tokens"),
                cache_read: cached,
                cache_write: 0,
            },
            model,
        ));
    }
    if provider == Provider::Anthropic {
        return Some((
            Tokens {
                input: n(usage, "input_tokens"),
                output: n(usage, "output_tokens"),
                cache_read: n(usage, "cache_read_input_tokens"),
                cache_write: n(usage, "cache_creation_input_tokens"),
            },
            model,
        ));
    }
    // The Responses API: input_tokens includes the cached ones.
    let cached = usage
        .get("input_tokens_details")
        .map_or(0, |d| n(d, "cached_tokens"));
    Some((
        Tokens {
            input: n(usage, "input_tokens").saturating_sub(cached),
            output: n(usage, "output_tokens"),
            cache_read: cached,
            cache_write: 0,
        },
        model,
    ))
}

/// Keeps the largest of each count seen (usage in streams is cumulative) and
/// the first model named.
pub(super) fn merge(
    tokens: &mut Option<Tokens>,
    model: &mut Option<String>,
    seen: Option<(Tokens, Option<String>)>,
) {
    let Some((t, m)) = seen else { return };
    let mine = tokens.get_or_insert_with(Tokens::default);
    mine.input = mine.input.max(t.input);
    mine.output = mine.output.max(t.output);
    mine.cache_read = mine.cache_read.max(t.cache_read);
    mine.cache_write = mine.cache_write.max(t.cache_write);
    if model.is_none() {
        *model = m;
    }
}
