//! Where the spend page and the overview's spend columns get their numbers:
//! vault-core's usage records of brokered requests (issue 16, schema 011),
//! summed by [`vault_core::Vault::usage_buckets`] and priced here with the
//! broker's price table (or the shipped one with `VAULT_HOME/prices.toml`
//! over it, as `vault usage` does), so the console and the CLI agree.

use std::collections::BTreeMap;

use vault_core::prices::PriceTable;
use vault_core::usage::{GroupBy, PageSums, UsageBucket, UsageFilter};
use vault_core::{Principal, Vault};

use crate::error::ApiError;

const OP: &Principal = &Principal::Operator;

/// How spend is grouped over time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Bucket {
    Hour,
    Day,
}

impl Bucket {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Bucket::Hour => "hour",
            Bucket::Day => "day",
        }
    }

    pub(crate) fn parse(text: Option<&str>) -> Bucket {
        match text {
            Some("hour") => Bucket::Hour,
            _ => Bucket::Day,
        }
    }

    /// How far back the page looks: a day by hour, 30 days by day.
    pub(crate) fn range_secs(self) -> i64 {
        match self {
            Bucket::Hour => 86_400,
            Bucket::Day => 30 * 86_400,
        }
    }
}

/// One group's totals.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct SpendLine {
    /// What the line is: an agent, `agent/key`, a host, a model or a time.
    pub label: String,
    pub requests: u64,
    pub tokens: u64,
    /// US dollars, in millionths (no float rounding in sums).
    pub cost_micros: i64,
}

/// Spend over a range, grouped several ways.
#[derive(Clone, Debug, Default)]
pub(crate) struct SpendReport {
    /// Whether any brokered request is recorded in the range.
    pub recorded: bool,
    pub over_time: Vec<SpendLine>,
    pub by_agent: Vec<SpendLine>,
    pub by_key: Vec<SpendLine>,
    pub by_host: Vec<SpendLine>,
    pub by_model: Vec<SpendLine>,
    /// Models with tokens but no price (their cost is not in the sums).
    pub unpriced: Vec<String>,
    pub prices_as_of: String,
}

/// Spend today and this month of one agent, in micro-dollars (`None`: no
/// brokered request recorded this month).
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct AgentSpend {
    pub today: Option<i64>,
    pub month: Option<i64>,
}

/// The price table the broker uses, else the shipped one with the
/// operator's `prices.toml` over it (an unreadable file: the shipped one).
pub(crate) fn prices(state: &crate::state::AppState) -> PriceTable {
    if let Some(acc) = &state.inner.accounting {
        return acc.prices().clone();
    }
    let path = state.home().join("prices.toml");
    std::fs::read_to_string(&path)
        .ok()
        .and_then(|text| PriceTable::with_overrides(&text, &path.display().to_string()).ok())
        .unwrap_or_else(PriceTable::shipped)
}

fn cost(prices: &PriceTable, b: &UsageBucket) -> i64 {
    b.model
        .as_deref()
        .and_then(|m| prices.cost_micro_usd(m, &b.tokens))
        .map_or(0, |c| i64::try_from(c).unwrap_or(i64::MAX))
}

fn add(map: &mut BTreeMap<String, SpendLine>, label: String, b: &UsageBucket, c: i64) {
    let line = map.entry(label.clone()).or_insert_with(|| SpendLine {
        label,
        ..Default::default()
    });
    line.requests += b.requests;
    line.tokens += b.tokens.total();
    line.cost_micros += c;
}

fn by_cost(map: BTreeMap<String, SpendLine>) -> Vec<SpendLine> {
    let mut v: Vec<SpendLine> = map.into_values().collect();
    v.sort_by(|a, b| {
        b.cost_micros
            .cmp(&a.cost_micros)
            .then(b.requests.cmp(&a.requests))
    });
    v
}

/// `2026-12-01T13:00Z` for an hour bucket's unix-ms label.
fn hour_label(ms: &str) -> String {
    ms.parse::<i64>()
        .map(|ms| {
            let t = vault_core::view::rfc3339(ms / 1000);
            format!("{}Z", &t[..t.len().min(16)])
        })
        .unwrap_or_else(|_| ms.to_owned())
}

/// The spend report from `now - bucket.range_secs()` on, grouped by `bucket`.
pub(crate) fn spend(
    vault: &Vault,
    prices: &PriceTable,
    now_secs: i64,
    bucket: Bucket,
) -> Result<SpendReport, ApiError> {
    // By day: whole UTC days (today and the 29 before), read from the daily
    // rollup (schema 014); by hour: the last 24 hours of request rows.
    let since_ms = match bucket {
        Bucket::Hour => (now_secs - bucket.range_secs()) * 1000,
        Bucket::Day => {
            (now_secs - now_secs.rem_euclid(86_400) - bucket.range_secs() + 86_400) * 1000
        }
    };
    // By hour: the last 24 hours of request rows, every grouping at once.
    // By day: the page's own rollups (schema 016): per day and per host over
    // the 30 days, per agent and key over this calendar month, a few hundred
    // rows each rather than one per day, key, host and model.
    let (timed, hosts, keyed) = match bucket {
        Bucket::Hour => {
            let sums = |by: GroupBy| {
                vault.usage_buckets(
                    OP,
                    &UsageFilter {
                        agent: None,
                        since_ms: Some(since_ms),
                        by,
                    },
                )
            };
            (sums(GroupBy::Hour)?, sums(GroupBy::Host)?, None)
        }
        Bucket::Day => (
            vault.usage_page_buckets(OP, PageSums::Day, since_ms)?,
            vault.usage_page_buckets(OP, PageSums::Host, since_ms)?,
            Some(vault.usage_page_buckets(OP, PageSums::Key, month_start(now_secs) * 1000)?),
        ),
    };
    let mut over_time = BTreeMap::new();
    let mut by_agent = BTreeMap::new();
    let mut by_key = BTreeMap::new();
    let mut by_model = BTreeMap::new();
    let mut by_host = BTreeMap::new();
    let mut unpriced = Vec::new();
    for b in &timed {
        let c = cost(prices, b);
        if let Some(m) = &b.model {
            if b.tokens.total() > 0
                && prices.cost_micro_usd(m, &b.tokens).is_none()
                && !unpriced.contains(m)
            {
                unpriced.push(m.clone());
            }
        }
        let when = b.group.clone().unwrap_or_default();
        let when = match bucket {
            Bucket::Hour => hour_label(&when),
            Bucket::Day => when,
        };
        add(&mut over_time, when, b, c);
        add(
            &mut by_model,
            b.model.clone().unwrap_or_else(|| "(no model)".into()),
            b,
            c,
        );
        if keyed.is_none() {
            add(&mut by_agent, b.agent.clone(), b, c);
            let key = b.key.clone().unwrap_or_else(|| b.key_id.clone());
            add(&mut by_key, format!("{}/{key}", b.agent), b, c);
        }
    }
    for b in keyed.iter().flatten() {
        let c = cost(prices, b);
        add(&mut by_agent, b.agent.clone(), b, c);
        let key = b.key.clone().unwrap_or_else(|| b.key_id.clone());
        add(&mut by_key, format!("{}/{key}", b.agent), b, c);
    }
    for b in &hosts {
        add(
            &mut by_host,
            b.group.clone().unwrap_or_default(),
            b,
            cost(prices, b),
        );
    }
    Ok(SpendReport {
        recorded: !timed.is_empty(),
        // time runs in order; the rest by cost
        over_time: over_time.into_values().collect(),
        by_agent: by_cost(by_agent),
        by_key: by_cost(by_key),
        by_host: by_cost(by_host),
        by_model: by_cost(by_model),
        unpriced,
        prices_as_of: prices.as_of().to_owned(),
    })
}

/// The UTC midnight (unix seconds) starting the month that holds `now_secs`.
pub(crate) fn month_start(now_secs: i64) -> i64 {
    let midnight = now_secs - now_secs.rem_euclid(86_400);
    let day_of_month: i64 = vault_core::view::rfc3339(now_secs)[8..10]
        .parse()
        .unwrap_or(1);
    midnight - (day_of_month - 1) * 86_400
}

/// Spend today and this month (UTC) of every agent with brokered requests:
/// this month from the per-month rollup (one row per key and model), today
/// from the daily one (schema 014) since midnight.
pub(crate) fn agent_spend(
    vault: &Vault,
    prices: &PriceTable,
    now_secs: i64,
) -> Result<BTreeMap<String, AgentSpend>, ApiError> {
    let midnight = now_secs - now_secs.rem_euclid(86_400);
    let mut out: BTreeMap<String, AgentSpend> = BTreeMap::new();
    for b in &vault.usage_page_buckets(OP, PageSums::Key, month_start(now_secs) * 1000)? {
        *out.entry(b.agent.clone())
            .or_default()
            .month
            .get_or_insert(0) += cost(prices, b);
    }
    let today = vault.usage_daily_buckets(
        OP,
        &UsageFilter {
            agent: None,
            since_ms: Some(midnight * 1000),
            by: GroupBy::Key,
        },
    )?;
    for b in &today {
        *out.entry(b.agent.clone())
            .or_default()
            .today
            .get_or_insert(0) += cost(prices, b);
    }
    for e in out.values_mut() {
        e.today.get_or_insert(0);
    }
    Ok(out)
}

/// `$1.234567` as `$1.23` (under a cent shows as `<$0.01`).
pub(crate) fn dollars(micros: i64) -> String {
    if micros > 0 && micros < 10_000 {
        return "<$0.01".into();
    }
    let cents = (micros + 5_000) / 10_000;
    format!("${}.{:02}", cents / 100, cents % 100)
}

#[cfg(test)]
mod tests {
    #[test]
    fn dollars_round_to_cents() {
        assert_eq!(super::dollars(0), "$0.00");
        assert_eq!(super::dollars(1), "<$0.01");
        assert_eq!(super::dollars(1_234_567), "$1.23");
        assert_eq!(super::dollars(1_995_000), "$2.00");
    }

    #[test]
    fn a_month_starts_at_its_first_utc_midnight() {
        // 2026-12-01T13:00Z and 2026-11-30T23:59Z
        assert_eq!(super::month_start(1_796_130_000), 1_796_083_200);
        assert_eq!(super::month_start(1_796_083_199), 1_793_491_200);
    }

    #[test]
    fn hour_labels_read_as_times() {
        assert_eq!(super::hour_label("3600000"), "1970-01-01T01:00Z");
    }
}
