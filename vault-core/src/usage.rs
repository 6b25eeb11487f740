//! What brokered egress cost: the record the broker makes of each request it
//! forwards ([`UsageRecord`]), the report the operator asks for
//! ([`UsageReport`], built by [`crate::Vault::usage_report`]), and the price
//! table that turns raw token counts into money at report time
//! ([`crate::prices`]). Records hold names, ids, sizes and counts: never a
//! body, a header value or a query string.

use serde::Serialize;

use crate::names::AgentName;
/// The spend page's rollups (schema 016), by what they sum.
pub use crate::store::usage::PageSums;

/// A model API the broker reads token usage from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Provider {
    /// OpenAI chat completions and responses.
    OpenAi,
    /// Anthropic messages.
    Anthropic,
    /// OpenRouter (OpenAI's shape under `/api/v1/`).
    OpenRouter,
    /// Google Gemini `generateContent` and `streamGenerateContent`.
    Gemini,
}

impl Provider {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Provider::OpenAi => "openai",
            Provider::Anthropic => "anthropic",
            Provider::OpenRouter => "openrouter",
            Provider::Gemini => "gemini",
        }
    }

    /// The provider of a wire name.
    pub fn parse(s: &str) -> Option<Provider> {
        [
            Provider::OpenAi,
            Provider::Anthropic,
            Provider::OpenRouter,
            Provider::Gemini,
        ]
        .into_iter()
        .find(|p| p.as_str() == s)
    }
}

/// Token counts, normalised across providers: `input` excludes cached input
/// (OpenAI and Gemini report cached tokens inside the prompt count; they are
/// moved to `cache_read`), `output` includes reasoning tokens.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Tokens {
    /// Input tokens read fresh.
    pub input: u64,
    /// Output tokens (reasoning included).
    pub output: u64,
    /// Input tokens read from the provider's prompt cache.
    pub cache_read: u64,
    /// Input tokens written to the prompt cache (Anthropic).
    pub cache_write: u64,
}

impl Tokens {
    /// All four summed.
    pub fn total(&self) -> u64 {
        self.input + self.output + self.cache_read + self.cache_write
    }

    /// Adds `other` in.
    pub fn add(&mut self, other: &Tokens) {
        self.input += other.input;
        self.output += other.output;
        self.cache_read += other.cache_read;
        self.cache_write += other.cache_write;
    }
}

/// One forwarded request, as the broker records it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UsageRecord {
    /// Unix ms when the answer ended (or was cut).
    pub at_ms: i64,
    /// The agent.
    pub agent: AgentName,
    /// The key (for a token, the key it was minted from).
    pub key_id: String,
    /// `host:port`.
    pub host: String,
    /// The method.
    pub method: String,
    /// The path, without the query.
    pub path: String,
    /// Index of the `[[egress]]` rule that matched (None: tunnelled).
    pub rule: Option<u32>,
    /// The upstream's status (0: no answer).
    pub status: u16,
    /// Request body bytes sent upstream.
    pub bytes_up: u64,
    /// Answer body bytes received.
    pub bytes_down: u64,
    /// Time to the answer's head.
    pub latency_ms: u64,
    /// Time to the answer's end.
    pub duration_ms: u64,
    /// The model API, when the request was one.
    pub provider: Option<Provider>,
    /// The model the answer (or request) named.
    pub model: Option<String>,
    /// Token counts.
    pub tokens: Tokens,
    /// No usage in the answer: the counts are estimated (see the broker's usage module).
    pub estimated: bool,
    /// The client went away before the answer ended.
    pub cut: bool,
}

/// How a report groups rows within each key.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum GroupBy {
    /// One row per key.
    #[default]
    Key,
    /// Per key and host.
    Host,
    /// Per key and model.
    Model,
    /// Per key and UTC day.
    Day,
    /// Per key and UTC hour (the broker's budget tally starts from this).
    Hour,
}

impl GroupBy {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            GroupBy::Key => "key",
            GroupBy::Host => "host",
            GroupBy::Model => "model",
            GroupBy::Day => "day",
            GroupBy::Hour => "hour",
        }
    }
}

/// What a report covers.
#[derive(Clone, Debug, Default)]
pub struct UsageFilter {
    /// Only this agent.
    pub agent: Option<AgentName>,
    /// Only records at or after this unix ms.
    pub since_ms: Option<i64>,
    /// The grouping.
    pub by: GroupBy,
}

/// One group of a report.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct UsageRow {
    /// The agent.
    pub agent: String,
    /// The key id.
    pub key_id: String,
    /// The key's name (None: no such key in this vault any more).
    pub key: Option<String>,
    /// The host, model or day (`YYYY-MM-DD`) grouped by; None when by key.
    pub group: Option<String>,
    /// Requests forwarded.
    pub requests: u64,
    /// Of which with estimated counts.
    pub estimated_requests: u64,
    /// Of which cut by the client.
    pub cut_requests: u64,
    /// Tokens.
    pub tokens: Tokens,
    /// Request body bytes.
    pub bytes_up: u64,
    /// Answer body bytes.
    pub bytes_down: u64,
    /// Cost in micro-dollars of the priced tokens.
    pub cost_micro_usd: u64,
    /// Models in this group the price table does not know (their tokens cost nothing here).
    pub unpriced_models: Vec<String>,
}

/// A report: its rows and what it may be missing.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct UsageReport {
    /// The rows, by agent, key, then group.
    pub rows: Vec<UsageRow>,
    /// Records the broker dropped (its writer fell behind) in the window.
    pub dropped_records: u64,
    /// The price table's date.
    pub prices_as_of: String,
}

/// One stored group before pricing (a model per row, so each is priced alone).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UsageBucket {
    /// The agent.
    pub agent: String,
    /// The key id.
    pub key_id: String,
    /// The key's name, if it still exists.
    pub key: Option<String>,
    /// The group value (host, `YYYY-MM-DD`, or the hour's unix ms); None by key or model.
    pub group: Option<String>,
    /// The model.
    pub model: Option<String>,
    /// Requests.
    pub requests: u64,
    /// Of which estimated.
    pub estimated_requests: u64,
    /// Of which cut.
    pub cut_requests: u64,
    /// Tokens.
    pub tokens: Tokens,
    /// Request body bytes.
    pub bytes_up: u64,
    /// Answer body bytes.
    pub bytes_down: u64,
}
