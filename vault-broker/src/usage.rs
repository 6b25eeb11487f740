//! Usage accounting and budgets for brokered egress (issue 16): what each
//! forwarded request cost, read from the answer as it streams past, and the
//! limits of the agent's `[budget]` checked before a request leaves.
//!
//! Why here and not in the proxy: the proxy only calls three hooks
//! ([`Accounting::admit`] before forwarding, [`Meter::request_body`] on the
//! way up, [`Meter::response`] on the way down). Records go to a bounded
//! queue and a batching writer ([`writer`]) that hands them to the vault; a
//! full queue drops the record and counts it, so accounting never blocks a
//! request. Budgets are checked against an in-memory tally (seeded from the
//! stored usage at start), never a database query per request.
//!
//! Token counts come from the answer: JSON answers are read whole (up to
//! [`MAX_JSON_BODY`]), server-sent events line by line as they pass. When the
//! client asks OpenAI for a stream without `stream_options.include_usage`,
//! the broker adds it and hides the extra final usage chunk from the client.
//! An answer that reports no usage (cut before its usage, compressed, too
//! large, or a provider that does not say) is recorded as estimated: about 4
//! bytes per token, request body bytes for input and answer bytes for output
//! (an overestimate, which errs on the budget's side).

use std::collections::{HashMap, VecDeque};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use http_body_util::BodyExt as _;
use hyper::body::{Body, Frame, Incoming, SizeHint};

use crate::outbound::{BoxError, OutBody};
use hyper::header::{self, HeaderMap, HeaderValue};
use tokio::sync::mpsc;
use vault_core::notify::Event;
use vault_core::policy::Budget;
use vault_core::prices::PriceTable;
use vault_core::usage::{GroupBy, Provider, Tokens, UsageBucket, UsageRecord};
use vault_core::EgressMeta;

use crate::refusal::{Code, ErrorShape, Refusal};
use crate::{Backend, OwnedRequest};

/// Records queued for the writer at most; past it they are dropped and counted.
pub const QUEUE: usize = 8192;
/// Records the writer hands the vault at once at most.
const BATCH: usize = 512;
/// How long the writer waits to fill a batch.
const BATCH_WAIT: Duration = Duration::from_millis(100);
/// Largest JSON answer read for usage (larger ones pass, estimated).
pub const MAX_JSON_BODY: usize = 4 * 1024 * 1024;
/// Largest request body the broker reads to add `stream_options.include_usage`.
const MAX_REWRITE_BODY: u64 = 4 * 1024 * 1024;
/// Longest SSE line read for usage (longer ones pass unread).
const MAX_SSE_LINE: usize = 1024 * 1024;
/// Bytes per token when an answer reports none.
const BYTES_PER_TOKEN: u64 = 4;

/// The shared accounting of one broker.
pub struct Accounting {
    prices: PriceTable,
    queue: mpsc::Sender<UsageRecord>,
    receiver: Mutex<Option<mpsc::Receiver<UsageRecord>>>,
    actions: mpsc::Sender<Action>,
    action_receiver: Mutex<Option<mpsc::Receiver<Action>>>,
    /// Records dropped since start (for /metrics).
    dropped_total: AtomicU64,
    /// Dropped and not yet written to the vault.
    dropped_pending: AtomicU64,
    tally: Mutex<HashMap<String, AgentTally>>,
}

/// What the writer does besides writing records.
enum Action {
    Suspend { key_id: String, reason: String },
    Notify(Event),
}

/// One agent's running figures.
#[derive(Default)]
struct AgentTally {
    requests: u64,
    tokens: Tokens,
    cost_micro_usd: u64,
    day: (i64, u64),
    month: (i64, u64),
    hour: (i64, u64),
    alerted_hour: Option<i64>,
    /// Start times (ms) of the requests admitted in the last minute.
    minute_requests: VecDeque<i64>,
    /// (end ms, tokens) of the answers of the last minute.
    minute_tokens: VecDeque<(i64, u64)>,
    /// (key, limit, period) already acted on: one event (and suspension) each.
    notified: Vec<(String, &'static str, i64)>,
}

const MINUTE_MS: i64 = 60_000;
const HOUR_MS: i64 = 3_600_000;
const DAY_MS: i64 = 86_400_000;

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Months since 1970 of a unix ms (UTC).
fn month_of(ms: i64) -> i64 {
    let t = time::OffsetDateTime::from_unix_timestamp(ms / 1000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    i64::from(t.year() - 1970) * 12 + i64::from(u8::from(t.month())) - 1
}

/// Unix ms of the start of the UTC month holding `ms`.
pub fn month_start_ms(ms: i64) -> i64 {
    let t = time::OffsetDateTime::from_unix_timestamp(ms / 1000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    let start = t
        .replace_day(1)
        .map(|d| d.replace_time(time::Time::MIDNIGHT))
        .unwrap_or(t);
    start.unix_timestamp() * 1000
}

/// Dollars, with cents (or four places under a dollar, so small budgets read).
fn usd(micro: u64) -> String {
    let dollars = micro as f64 / 1e6;
    if dollars >= 1.0 {
        format!("${dollars:.2}")
    } else {
        format!("${dollars:.4}")
    }
}

impl Accounting {
    /// Accounting priced by `prices`, with a queue of [`QUEUE`] records.
    pub fn new(prices: PriceTable) -> Arc<Accounting> {
        Accounting::with_queue(prices, QUEUE)
    }

    /// As [`Accounting::new`], with a queue of `capacity` records.
    pub fn with_queue(prices: PriceTable, capacity: usize) -> Arc<Accounting> {
        let (queue, receiver) = mpsc::channel(capacity.max(1));
        let (actions, action_receiver) = mpsc::channel(256);
        Arc::new(Accounting {
            prices,
            queue,
            receiver: Mutex::new(Some(receiver)),
            actions,
            action_receiver: Mutex::new(Some(action_receiver)),
            dropped_total: AtomicU64::new(0),
            dropped_pending: AtomicU64::new(0),
            tally: Mutex::new(HashMap::new()),
        })
    }

    /// The price table.
    pub fn prices(&self) -> &PriceTable {
        &self.prices
    }

    /// Starts the running tally from stored usage: `buckets` grouped by hour
    /// since the start of the month (see [`GroupBy::Hour`]), so a restart
    /// does not reset the day's or the month's spend.
    pub fn seed(&self, buckets: &[UsageBucket]) {
        let now = now_ms();
        let (day, month, hour) = (now / DAY_MS, month_of(now), now / HOUR_MS);
        let Ok(mut tally) = self.tally.lock() else {
            return;
        };
        for b in buckets {
            let Some(at) = b.group.as_deref().and_then(|g| g.parse::<i64>().ok()) else {
                continue;
            };
            let cost = b
                .model
                .as_deref()
                .and_then(|m| self.prices.cost_micro_usd(m, &b.tokens))
                .unwrap_or(0);
            let t = tally.entry(b.agent.clone()).or_default();
            if month_of(at) == month {
                roll(&mut t.month, month).1 += cost;
            }
            if at / DAY_MS == day {
                roll(&mut t.day, day).1 += cost;
            }
            if at / HOUR_MS == hour {
                roll(&mut t.hour, hour).1 += cost;
            }
        }
    }

    /// The grouping [`Accounting::seed`] wants, from `since` (the month's start).
    pub fn seed_filter() -> vault_core::usage::UsageFilter {
        vault_core::usage::UsageFilter {
            agent: None,
            since_ms: Some(month_start_ms(now_ms())),
            by: GroupBy::Hour,
        }
    }

    /// Checks the agent's `[budget]` before a request leaves: over a limit,
    /// the refusal (in the provider's error shape), the key suspended when
    /// the policy says so, and an event sent once per limit and period.
    ///
    /// # Errors
    /// The refusal.
    pub fn admit(&self, meta: &EgressMeta, request: &OwnedRequest) -> Result<(), Refusal> {
        let budget = &meta.budget;
        if budget.is_unlimited() {
            return Ok(());
        }
        let now = now_ms();
        let over = {
            let Ok(mut tally) = self.tally.lock() else {
                return Ok(());
            };
            let t = tally.entry(meta.agent.as_str().to_owned()).or_default();
            let over = over_limit(t, budget, now);
            match &over {
                None => t.minute_requests.push_back(now),
                Some((limit, period, _, _)) => {
                    let seen = (meta.key_id.clone(), *limit, *period);
                    if t.notified.contains(&seen) {
                        return Err(self.refusal(meta, request, over.as_ref()));
                    }
                    if t.notified.len() >= 256 {
                        t.notified.remove(0);
                    }
                    t.notified.push(seen);
                }
            }
            over
        };
        let Some((limit, _, spent, threshold)) = &over else {
            return Ok(());
        };
        if meta.suspend_on_anomaly {
            self.act(Action::Suspend {
                key_id: meta.key_id.clone(),
                reason: format!("its agent went over [budget] {limit} ({spent} of {threshold})"),
            });
        }
        self.act(Action::Notify(Event::EgressLimit {
            agent: meta.agent.as_str().to_owned(),
            key_id: meta.key_id.clone(),
            limit: (*limit).to_owned(),
            spent: spent.clone(),
            threshold: threshold.clone(),
            suspended: meta.suspend_on_anomaly,
        }));
        Err(self.refusal(meta, request, over.as_ref()))
    }

    fn refusal(
        &self,
        meta: &EgressMeta,
        request: &OwnedRequest,
        over: Option<&(&'static str, i64, String, String)>,
    ) -> Refusal {
        let (limit, spent, threshold) = over
            .map(|(l, _, s, t)| (*l, s.as_str(), t.as_str()))
            .unwrap_or(("budget", "", ""));
        let agent = meta.agent.as_str();
        let code = if limit.starts_with("budget_usd") {
            Code::BudgetExceeded
        } else {
            Code::EgressRateLimited
        };
        let then = if meta.suspend_on_anomaly {
            format!(
                "; the key {} is suspended until a person runs: vault approvals, then vault approve ID",
                meta.key_id
            )
        } else {
            String::new()
        };
        let shape = detect(request).map_or(ErrorShape::Vault, |(p, _)| ErrorShape::of(p));
        Refusal::new(
            code,
            format!(
                "the vault broker refused this request before it was sent: agent {agent} is over its \
                 [budget] {limit} ({spent} of {threshold}){then}. The operator can raise the limit \
                 and run: vault agent set-policy {agent} --policy FILE"
            ),
        )
        .shaped(shape)
    }

    fn act(&self, action: Action) {
        if self.actions.try_send(action).is_err() {
            tracing::warn!("broker: usage action queue full; an event or suspension was dropped");
        }
    }

    /// Counts a finished request and queues its record (never waits).
    fn submit(&self, record: UsageRecord) {
        let cost = record
            .model
            .as_deref()
            .and_then(|m| self.prices.cost_micro_usd(m, &record.tokens))
            .unwrap_or(0);
        if let Ok(mut tally) = self.tally.lock() {
            let t = tally.entry(record.agent.as_str().to_owned()).or_default();
            t.requests += 1;
            t.tokens.add(&record.tokens);
            t.cost_micro_usd += cost;
            let at = record.at_ms;
            roll(&mut t.day, at / DAY_MS).1 += cost;
            roll(&mut t.month, month_of(at)).1 += cost;
            roll(&mut t.hour, at / HOUR_MS).1 += cost;
            let total = record.tokens.total();
            if total > 0 {
                t.minute_tokens.push_back((at, total));
            }
            // Bounded whether or not a budget reads it.
            while t
                .minute_tokens
                .front()
                .is_some_and(|(s, _)| *s <= at - MINUTE_MS)
            {
                t.minute_tokens.pop_front();
            }
        }
        match self.queue.try_send(record) {
            Ok(()) => {}
            Err(_) => {
                self.dropped_total.fetch_add(1, Ordering::Relaxed);
                self.dropped_pending.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// After a record of `meta`'s agent: the hourly alert, once per hour.
    fn check_alert(&self, meta: &EgressMeta) {
        let Some(threshold) = meta.budget.alert_spend_usd_per_hour else {
            return;
        };
        let hour = now_ms() / HOUR_MS;
        let spent = {
            let Ok(mut tally) = self.tally.lock() else {
                return;
            };
            let t = tally.entry(meta.agent.as_str().to_owned()).or_default();
            let spent = roll(&mut t.hour, hour).1;
            if spent < threshold.micro() || t.alerted_hour == Some(hour) {
                return;
            }
            t.alerted_hour = Some(hour);
            spent
        };
        self.act(Action::Notify(Event::SpendAlert {
            agent: meta.agent.as_str().to_owned(),
            key_id: meta.key_id.clone(),
            spent_this_hour: usd(spent),
            threshold: usd(threshold.micro()),
        }));
    }

    /// Records dropped since start.
    pub fn dropped(&self) -> u64 {
        self.dropped_total.load(Ordering::Relaxed)
    }

    /// The `/metrics` lines: per agent requests, tokens and cost since start,
    /// and records dropped (names only, never a value).
    pub fn metrics_text(&self) -> String {
        let mut out = String::new();
        let Ok(tally) = self.tally.lock() else {
            return out;
        };
        let mut agents: Vec<_> = tally.iter().collect();
        agents.sort_by(|a, b| a.0.cmp(b.0));
        out.push_str("# TYPE vault_egress_requests_total counter\n");
        for (agent, t) in &agents {
            out.push_str(&format!(
                "vault_egress_requests_total{{agent=\"{agent}\"}} {}\n",
                t.requests
            ));
        }
        out.push_str("# TYPE vault_egress_tokens_total counter\n");
        for (agent, t) in &agents {
            for (kind, n) in [
                ("input", t.tokens.input),
                ("output", t.tokens.output),
                ("cache_read", t.tokens.cache_read),
                ("cache_write", t.tokens.cache_write),
            ] {
                out.push_str(&format!(
                    "vault_egress_tokens_total{{agent=\"{agent}\",kind=\"{kind}\"}} {n}\n"
                ));
            }
        }
        out.push_str("# TYPE vault_egress_cost_micro_usd_total counter\n");
        for (agent, t) in &agents {
            out.push_str(&format!(
                "vault_egress_cost_micro_usd_total{{agent=\"{agent}\"}} {}\n",
                t.cost_micro_usd
            ));
        }
        out.push_str("# TYPE vault_egress_usage_dropped_total counter\n");
        out.push_str(&format!(
            "vault_egress_usage_dropped_total {}\n",
            self.dropped()
        ));
        out
    }
}

/// The period's figure, reset when the period changed.
fn roll(slot: &mut (i64, u64), period: i64) -> &mut (i64, u64) {
    if slot.0 != period {
        *slot = (period, 0);
    }
    slot
}

/// The first limit `t` is over: (field, period, figure, limit).
fn over_limit(
    t: &mut AgentTally,
    budget: &Budget,
    now: i64,
) -> Option<(&'static str, i64, String, String)> {
    if let Some(limit) = budget.budget_usd_per_month {
        let month = month_of(now);
        let spent = roll(&mut t.month, month).1;
        if spent >= limit.micro() {
            return Some((
                "budget_usd_per_month",
                month,
                format!("{} this month", usd(spent)),
                usd(limit.micro()),
            ));
        }
    }
    if let Some(limit) = budget.budget_usd_per_day {
        let day = now / DAY_MS;
        let spent = roll(&mut t.day, day).1;
        if spent >= limit.micro() {
            return Some((
                "budget_usd_per_day",
                day,
                format!("{} today", usd(spent)),
                usd(limit.micro()),
            ));
        }
    }
    while t
        .minute_requests
        .front()
        .is_some_and(|s| *s <= now - MINUTE_MS)
    {
        t.minute_requests.pop_front();
    }
    while t
        .minute_tokens
        .front()
        .is_some_and(|(s, _)| *s <= now - MINUTE_MS)
    {
        t.minute_tokens.pop_front();
    }
    let minute = now / MINUTE_MS;
    if let Some(limit) = budget.requests_per_minute {
        let n = t.minute_requests.len() as u64;
        if n >= u64::from(limit) {
            return Some((
                "requests_per_minute",
                minute,
                format!("{n} requests in the last minute"),
                limit.to_string(),
            ));
        }
    }
    if let Some(limit) = budget.tokens_per_minute {
        let n: u64 = t.minute_tokens.iter().map(|(_, n)| n).sum();
        if n >= limit {
            return Some((
                "tokens_per_minute",
                minute,
                format!("{n} tokens in the last minute"),
                limit.to_string(),
            ));
        }
    }
    None
}

/// Hands queued records to the vault in batches, with the count of those
/// dropped, and runs suspensions and notifications. Ends when the
/// accounting is dropped (or its receivers were already taken).
pub async fn writer<B: Backend>(accounting: Arc<Accounting>, backend: Arc<B>) {
    let (Some(mut records), Some(mut actions)) = (
        accounting.receiver.lock().ok().and_then(|mut r| r.take()),
        accounting
            .action_receiver
            .lock()
            .ok()
            .and_then(|mut r| r.take()),
    ) else {
        return;
    };
    let weak = Arc::downgrade(&accounting);
    drop(accounting);
    loop {
        tokio::select! {
            first = records.recv() => {
                let Some(first) = first else { return };
                let mut batch = vec![first];
                let deadline = tokio::time::Instant::now() + BATCH_WAIT;
                while batch.len() < BATCH {
                    match tokio::time::timeout_at(deadline, records.recv()).await {
                        Ok(Some(r)) => batch.push(r),
                        _ => break,
                    }
                }
                let dropped = weak
                    .upgrade()
                    .map_or(0, |a| a.dropped_pending.swap(0, Ordering::Relaxed));
                backend.record_usage(batch, dropped).await;
            }
            action = actions.recv() => match action {
                Some(Action::Suspend { key_id, reason }) => backend.suspend_key(key_id, reason).await,
                Some(Action::Notify(event)) => backend.notify(event).await,
                None => return,
            },
        }
    }
}

/// Which model API a request is, and which of its endpoints.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Api {
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
fn detect(r: &OwnedRequest) -> Option<(Provider, Api)> {
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

/// Keeps the largest of each count seen (usage in streams is cumulative) and
/// the first model named.
fn merge(
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

/// Server-sent events read line by line. With `hide`, events are held until
/// complete and OpenAI's extra usage chunk (`"choices":[]` with a `usage`
/// object) is dropped from what the client gets.
struct SseReader {
    provider: Provider,
    hide: bool,
    /// The current line's bytes so far (bounded by [`MAX_SSE_LINE`]).
    line: Vec<u8>,
    line_too_long: bool,
    /// With `hide`: the current event's bytes so far, and whether it is the usage chunk.
    event: Vec<u8>,
    event_is_usage: bool,
    seen: Option<(Tokens, Option<String>)>,
}

impl SseReader {
    fn new(provider: Provider, hide: bool) -> SseReader {
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

    fn take_seen(&mut self) -> Option<(Tokens, Option<String>)> {
        self.seen.take()
    }

    /// Reads `data`; with `hide`, returns the bytes of the events it completed.
    fn feed(&mut self, data: &[u8]) -> Option<Bytes> {
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
    fn flush(&mut self) -> Option<Bytes> {
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

fn memchr(needle: u8, hay: &[u8]) -> Option<usize> {
    hay.iter().position(|b| *b == needle)
}

fn trim_eol(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// Whether an event's data may hold usage (so most chunks are never parsed).
fn has_usage(data: &[u8]) -> bool {
    data.windows(7).any(|w| w == b"\"usage\"")
        || data.windows(15).any(|w| w == b"\"usageMetadata\"")
}

/// OpenAI's extra final chunk: no choices, a usage object.
fn is_usage_only_chunk(v: &serde_json::Value) -> bool {
    v.get("choices")
        .and_then(|c| c.as_array())
        .is_some_and(|c| c.is_empty())
        && v.get("usage").is_some_and(serde_json::Value::is_object)
}

/// The token counts and model in one answer (or event), normalised (see [`Tokens`]).
fn usage_of(provider: Provider, v: &serde_json::Value) -> Option<(Tokens, Option<String>)> {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn sse(
        provider: Provider,
        hide: bool,
        chunks: &[&[u8]],
    ) -> (String, Option<(Tokens, Option<String>)>) {
        let mut r = SseReader::new(provider, hide);
        let mut out = Vec::new();
        let mut tokens = None;
        let mut model = None;
        for c in chunks {
            match r.feed(c) {
                Some(b) => out.extend_from_slice(&b),
                None => out.extend_from_slice(c),
            }
            merge(&mut tokens, &mut model, r.take_seen());
        }
        if let Some(b) = r.flush() {
            out.extend_from_slice(&b);
        }
        merge(&mut tokens, &mut model, r.take_seen());
        (
            String::from_utf8_lossy(&out).into_owned(),
            tokens.map(|t| (t, model)),
        )
    }

    const OPENAI_STREAM: &str = "data: {\"id\":\"c\",\"model\":\"gpt-4o-2024-08-06\",\"choices\":[{\"delta\":{\"content\":\"Hi\"}}],\"usage\":null}\n\n\
        data: {\"id\":\"c\",\"model\":\"gpt-4o-2024-08-06\",\"choices\":[],\"usage\":{\"prompt_tokens\":120,\"completion_tokens\":7,\"prompt_tokens_details\":{\"cached_tokens\":20}}}\n\n\
        data: [DONE]\n\n";

    // issue 16, usage: OpenAI's final usage chunk is read, and hidden when the
    // broker asked for it, whichever TCP segment boundaries split its lines
    #[test]
    fn openai_stream_usage_is_read_and_the_added_chunk_hidden_across_any_split() {
        let bytes = OPENAI_STREAM.as_bytes();
        let want = Tokens {
            input: 100,
            output: 7,
            cache_read: 20,
            cache_write: 0,
        };
        for split in 1..bytes.len() {
            for hide in [false, true] {
                let (out, seen) = sse(Provider::OpenAi, hide, &[&bytes[..split], &bytes[split..]]);
                assert_eq!(seen.as_ref().map(|s| s.0), Some(want), "split {split}");
                assert_eq!(seen.unwrap().1.as_deref(), Some("gpt-4o-2024-08-06"));
                if hide {
                    assert!(!out.contains("prompt_tokens"), "split {split}: {out}");
                    assert!(
                        out.contains("\"Hi\"") && out.ends_with("data: [DONE]\n\n"),
                        "{out}"
                    );
                } else {
                    assert_eq!(out, OPENAI_STREAM);
                }
            }
        }
        // one byte at a time
        let chunks: Vec<&[u8]> = bytes.chunks(1).collect();
        let (out, seen) = sse(Provider::OpenAi, true, &chunks);
        assert_eq!(seen.unwrap().0, want);
        assert!(!out.contains("prompt_tokens"));
    }

    // issue 16, usage: Anthropic's message_start and cumulative message_delta, with cache tokens
    #[test]
    fn anthropic_stream_usage_is_cumulative_with_cache_tokens() {
        let stream = "event: message_start\n\
            data: {\"type\":\"message_start\",\"message\":{\"model\":\"claude-sonnet-4-20250514\",\"usage\":{\"input_tokens\":25,\"cache_creation_input_tokens\":100,\"cache_read_input_tokens\":50,\"output_tokens\":1}}}\n\n\
            event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"delta\":{\"text\":\"usage\"}}\n\n\
            event: message_delta\ndata: {\"type\":\"message_delta\",\"usage\":{\"output_tokens\":15}}\n\n\
            event: message_delta\ndata: {\"type\":\"message_delta\",\"usage\":{\"output_tokens\":42}}\n\n";
        let (out, seen) = sse(Provider::Anthropic, false, &[stream.as_bytes()]);
        assert_eq!(out, stream);
        let (t, model) = seen.unwrap();
        assert_eq!(
            t,
            Tokens {
                input: 25,
                output: 42,
                cache_read: 50,
                cache_write: 100
            }
        );
        assert_eq!(model.as_deref(), Some("claude-sonnet-4-20250514"));
    }

    // issue 16, bad input: malformed usage JSON, CRLF lines, an over-long line
    // and a stream with no final newline pass untouched and never panic
    #[test]
    fn malformed_sse_passes_untouched_and_reads_what_it_can() {
        let long = format!(
            "data: {{\"usage\": \"{}\"}}\n\n",
            "x".repeat(MAX_SSE_LINE + 10)
        );
        let cases: [&[u8]; 5] = [
            b"data: {\"usage\":{\"prompt_tokens\":\n\n",
            b"data: {\"usage\": [1,2]}\r\n\r\ndata: {\"choices\":[],\"usage\":{\"prompt_tokens\":-1}}\r\n\r\n",
            long.as_bytes(),
            b"data: {\"choices\":[],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":4}}",
            b"\xff\xfe\n\ndata: \xff\"usage\"\n\n",
        ];
        for (i, case) in cases.iter().enumerate() {
            for hide in [false, true] {
                let (out, _) = sse(Provider::OpenAi, hide, &[case]);
                if !hide {
                    assert_eq!(out, String::from_utf8_lossy(case), "case {i}");
                }
            }
        }
        // the unterminated last event is still read (and, being the added usage chunk, hidden)
        let (out, seen) = sse(Provider::OpenAi, true, &[cases[3]]);
        assert_eq!(seen.unwrap().0.output, 4);
        assert_eq!(out, "");
        let (out, _) = sse(Provider::OpenAi, true, &[b"data: {\"choices\":[{}]}"]);
        assert_eq!(
            out, "data: {\"choices\":[{}]}",
            "any other unended event is passed on"
        );
    }

    // issue 16, usage: each provider's JSON answer shape
    #[test]
    fn json_answers_of_each_provider_are_read() {
        let v = |s: &str| serde_json::from_str::<serde_json::Value>(s).unwrap();
        let (t, m) = usage_of(
            Provider::OpenAi,
            &v(r#"{"model":"gpt-4.1-2025-04-14","usage":{"prompt_tokens":10,"completion_tokens":5}}"#),
        )
        .unwrap();
        assert_eq!(
            (t.input, t.output, m.as_deref()),
            (10, 5, Some("gpt-4.1-2025-04-14"))
        );
        let (t, _) = usage_of(
            Provider::OpenAi,
            &v(r#"{"type":"response.completed","response":{"model":"o3","usage":{"input_tokens":30,"input_tokens_details":{"cached_tokens":10},"output_tokens":9}}}"#),
        )
        .unwrap();
        assert_eq!((t.input, t.cache_read, t.output), (20, 10, 9));
        let (t, m) = usage_of(
            Provider::Gemini,
            &v(r#"{"modelVersion":"gemini-2.5-flash","usageMetadata":{"promptTokenCount":12,"cachedContentTokenCount":2,"candidatesTokenCount":3,"thoughtsTokenCount":4}}"#),
        )
        .unwrap();
        assert_eq!(
            (t.input, t.cache_read, t.output, m.as_deref()),
            (10, 2, 7, Some("gemini-2.5-flash"))
        );
        assert!(usage_of(Provider::OpenAi, &v(r#"{"usage":null}"#)).is_none());
        let req = |path: &str, host: &str| OwnedRequest {
            method: "POST".into(),
            host: host.into(),
            port: 443,
            path: path.into(),
            tls: true,
        };
        assert_eq!(
            detect(&req("/api/v1/chat/completions", "openrouter.ai"))
                .unwrap()
                .0,
            Provider::OpenRouter
        );
        assert_eq!(
            detect(&req(
                "/v1beta/models/gemini-2.5-pro:streamGenerateContent",
                "g"
            ))
            .unwrap()
            .0,
            Provider::Gemini
        );
        assert!(detect(&req("/v1/models", "api.openai.com")).is_none());
    }

    // issue 16, budgets: over a daily budget or a per-minute limit the next
    // request is refused; an event is queued once per limit and period
    #[test]
    fn budgets_refuse_once_over_and_notify_once() {
        let acc = Accounting::new(PriceTable::shipped());
        let policy = vault_core::Policy::from_toml(
            "suspend_on_anomaly = true\n[budget]\nbudget_usd_per_day = 0.01\nrequests_per_minute = 100\n",
        )
        .unwrap();
        let meta = EgressMeta {
            agent: vault_core::AgentName::parse("hermes").unwrap(),
            key_id: "k1".into(),
            rule: Some(0),
            budget: *policy.budget(),
            suspend_on_anomaly: true,
            hold: None,
            scan: vault_core::policy::egress::EgressScan::Block,
        };
        let req = OwnedRequest {
            method: "POST".into(),
            host: "api.anthropic.com".into(),
            port: 443,
            path: "/v1/messages".into(),
            tls: true,
        };
        assert!(acc.admit(&meta, &req).is_ok());
        let mut record = UsageRecord {
            at_ms: now_ms(),
            agent: meta.agent.clone(),
            key_id: "k1".into(),
            host: "h".into(),
            method: "POST".into(),
            path: "/v1/messages".into(),
            rule: Some(0),
            status: 200,
            bytes_up: 0,
            bytes_down: 0,
            latency_ms: 0,
            duration_ms: 0,
            provider: Some(Provider::Anthropic),
            model: Some("claude-sonnet-4".into()),
            tokens: Tokens {
                input: 4_000,
                ..Tokens::default()
            },
            estimated: false,
            cut: false,
        };
        acc.submit(record.clone());
        // $0.012 spent of $0.01
        let err = acc.admit(&meta, &req).unwrap_err();
        assert_eq!(err.code, Code::BudgetExceeded);
        assert!(
            err.message.contains("budget_usd_per_day")
                && err.message.contains("$0.0120 today of $0.0100"),
            "{}",
            err.message
        );
        let body = String::from_utf8(futures_body(err.response())).unwrap();
        assert!(body.contains("\"type\":\"error\""), "{body}");
        assert!(acc.admit(&meta, &req).is_err());
        let mut actions = acc.action_receiver.lock().unwrap().take().unwrap();
        assert!(matches!(actions.try_recv(), Ok(Action::Suspend { .. })));
        assert!(matches!(
            actions.try_recv(),
            Ok(Action::Notify(Event::EgressLimit { .. }))
        ));
        assert!(actions.try_recv().is_err(), "notified once");
        record.tokens = Tokens::default();
        assert!(acc
            .metrics_text()
            .contains("vault_egress_cost_micro_usd_total{agent=\"hermes\"} 12000"));
    }

    fn meta_with(policy: &str) -> EgressMeta {
        let policy = vault_core::Policy::from_toml(policy).unwrap();
        EgressMeta {
            agent: vault_core::AgentName::parse("hermes").unwrap(),
            key_id: "k1".into(),
            rule: Some(0),
            budget: *policy.budget(),
            suspend_on_anomaly: policy.doc().suspend_on_anomaly,
            hold: None,
            scan: vault_core::policy::egress::EgressScan::Block,
        }
    }

    fn openai_request() -> OwnedRequest {
        OwnedRequest {
            method: "POST".into(),
            host: "api.openai.com".into(),
            port: 443,
            path: "/v1/chat/completions".into(),
            tls: true,
        }
    }

    // issue 16, budgets: requests_per_minute and tokens_per_minute refuse in
    // OpenAI's error shape with a status and header the SDKs do not retry
    #[test]
    fn per_minute_limits_refuse_in_the_providers_shape_without_retry() {
        let acc = Accounting::new(PriceTable::shipped());
        let meta = meta_with("[budget]\nrequests_per_minute = 2\n");
        let req = openai_request();
        assert!(acc.admit(&meta, &req).is_ok());
        assert!(acc.admit(&meta, &req).is_ok());
        let err = acc.admit(&meta, &req).unwrap_err();
        assert_eq!(err.code, Code::EgressRateLimited);
        let response = err.response();
        assert_eq!(response.status(), 403);
        assert_eq!(response.headers()["x-should-retry"], "false");
        assert_eq!(response.headers()["x-vault-broker"], "refused");
        let body: serde_json::Value = serde_json::from_slice(&futures_body(response)).unwrap();
        assert_eq!(body["error"]["code"], "egress_rate_limited");
        assert_eq!(body["error"]["type"], "vault_broker");
        assert!(body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("2 requests in the last minute"));

        let acc = Accounting::new(PriceTable::shipped());
        let meta = meta_with("[budget]\ntokens_per_minute = 1000\n");
        assert!(acc.admit(&meta, &req).is_ok());
        let mut r = record_of(&meta);
        r.tokens.output = 1_000;
        acc.submit(r);
        let err = acc.admit(&meta, &req).unwrap_err();
        assert!(err.message.contains("tokens_per_minute"), "{}", err.message);
    }

    fn record_of(meta: &EgressMeta) -> UsageRecord {
        UsageRecord {
            at_ms: now_ms(),
            agent: meta.agent.clone(),
            key_id: meta.key_id.clone(),
            host: "api.openai.com:443".into(),
            method: "POST".into(),
            path: "/v1/chat/completions".into(),
            rule: Some(0),
            status: 200,
            bytes_up: 0,
            bytes_down: 0,
            latency_ms: 0,
            duration_ms: 0,
            provider: Some(Provider::OpenAi),
            model: Some("gpt-4o".into()),
            tokens: Tokens::default(),
            estimated: false,
            cut: false,
        }
    }

    // issue 16, budgets: the day's and month's spend is seeded from stored
    // usage, so restarting the server does not reset a budget
    #[test]
    fn seeded_spend_survives_a_restart() {
        let acc = Accounting::new(PriceTable::shipped());
        let meta = meta_with("[budget]\nbudget_usd_per_month = 1\n");
        let hour = (now_ms() / HOUR_MS) * HOUR_MS;
        acc.seed(&[UsageBucket {
            agent: "hermes".into(),
            key_id: "old".into(),
            key: None,
            group: Some(hour.to_string()),
            model: Some("gpt-4o-2024-08-06".into()),
            requests: 1,
            estimated_requests: 0,
            cut_requests: 0,
            // 100 000 x 10 = $1.00 of output
            tokens: Tokens {
                output: 100_000,
                ..Tokens::default()
            },
            bytes_up: 0,
            bytes_down: 0,
        }]);
        let err = acc.admit(&meta, &openai_request()).unwrap_err();
        assert_eq!(err.code, Code::BudgetExceeded);
        assert!(
            err.message.contains("$1.00 this month of $1.00"),
            "{}",
            err.message
        );
        assert!(Accounting::seed_filter().since_ms.unwrap() <= hour);
    }

    // issue 16, usage: a full queue never blocks the request: the record is
    // dropped and counted (for /metrics, and for the vault with the next batch)
    #[test]
    fn a_full_queue_drops_records_and_counts_them() {
        let acc = Accounting::with_queue(PriceTable::shipped(), 1);
        let record = UsageRecord {
            at_ms: now_ms(),
            agent: vault_core::AgentName::parse("hermes").unwrap(),
            key_id: "k1".into(),
            host: "h:443".into(),
            method: "GET".into(),
            path: "/".into(),
            rule: None,
            status: 200,
            bytes_up: 0,
            bytes_down: 0,
            latency_ms: 0,
            duration_ms: 0,
            provider: None,
            model: None,
            tokens: Tokens::default(),
            estimated: false,
            cut: false,
        };
        for _ in 0..3 {
            acc.submit(record.clone());
        }
        assert_eq!(acc.dropped(), 2);
        assert_eq!(acc.dropped_pending.load(Ordering::Relaxed), 2);
        let text = acc.metrics_text();
        assert!(
            text.contains("vault_egress_usage_dropped_total 2"),
            "{text}"
        );
        assert!(
            text.contains("vault_egress_requests_total{agent=\"hermes\"} 3"),
            "{text}"
        );
    }

    fn futures_body(r: hyper::Response<http_body_util::Full<Bytes>>) -> Vec<u8> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(async { r.into_body().collect().await.unwrap().to_bytes().to_vec() })
    }
}
