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

mod answer;
mod meter;
#[cfg(test)]
mod tests;

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::mpsc;
use vault_core::notify::Event;
use vault_core::policy::Budget;
use vault_core::prices::PriceTable;
use vault_core::usage::{GroupBy, Tokens, UsageBucket, UsageRecord};
use vault_core::EgressMeta;

use crate::refusal::{Code, ErrorShape, Refusal};
use crate::{Backend, OwnedRequest};

use answer::detect;
pub use meter::{Meter, Metered, UpBody};

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
    /// Asks the writer to store everything queued now (at a clean stop).
    flushes: mpsc::Sender<tokio::sync::oneshot::Sender<()>>,
    flush_receiver: Mutex<Option<mpsc::Receiver<tokio::sync::oneshot::Sender<()>>>>,
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
        let (flushes, flush_receiver) = mpsc::channel(4);
        Arc::new(Accounting {
            prices,
            queue,
            receiver: Mutex::new(Some(receiver)),
            actions,
            action_receiver: Mutex::new(Some(action_receiver)),
            flushes,
            flush_receiver: Mutex::new(Some(flush_receiver)),
            dropped_total: AtomicU64::new(0),
            dropped_pending: AtomicU64::new(0),
            tally: Mutex::new(HashMap::new()),
        })
    }

    /// Stores every record and action queued so far (the writer otherwise
    /// waits up to [`BATCH_WAIT`] to fill a batch), and returns when they
    /// are; a server calls it at a clean stop, so the last answers' usage is
    /// not lost. Bounded by `within`; without a running writer, returns at once.
    pub async fn flush(&self, within: Duration) {
        let (done, flushed) = tokio::sync::oneshot::channel();
        if self.flushes.send(done).await.is_ok() {
            let _ = tokio::time::timeout(within, flushed).await;
        }
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
    let (Some(mut records), Some(mut actions), Some(mut flushes)) = (
        take(&accounting.receiver),
        take(&accounting.action_receiver),
        take(&accounting.flush_receiver),
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
                Some(action) => run_action(&*backend, action).await,
                None => return,
            },
            Some(done) = flushes.recv() => {
                while let Ok(action) = actions.try_recv() {
                    run_action(&*backend, action).await;
                }
                loop {
                    let mut batch = Vec::new();
                    while batch.len() < BATCH {
                        match records.try_recv() {
                            Ok(r) => batch.push(r),
                            Err(_) => break,
                        }
                    }
                    let dropped = weak
                        .upgrade()
                        .map_or(0, |a| a.dropped_pending.swap(0, Ordering::Relaxed));
                    if batch.is_empty() && dropped == 0 {
                        break;
                    }
                    backend.record_usage(batch, dropped).await;
                }
                let _ = done.send(());
            }
        }
    }
}

/// What a mutex-held slot holds, taken (once).
fn take<T>(slot: &Mutex<Option<T>>) -> Option<T> {
    slot.lock().ok().and_then(|mut r| r.take())
}

async fn run_action<B: Backend>(backend: &B, action: Action) {
    match action {
        Action::Suspend { key_id, reason } => backend.suspend_key(key_id, reason).await,
        Action::Notify(event) => backend.notify(event).await,
    }
}
