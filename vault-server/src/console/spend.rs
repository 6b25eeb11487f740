//! Where the spend page and the overview's spend columns get their numbers.
//!
//! PLACEHOLDER (issue 17, waiting on issue 16's usage recording): the vault
//! does not record usage or spend per request yet, so [`spend`] returns an
//! empty report and the pages say so. When vault-core's usage API lands,
//! this one function is where it is read; the pages, charts and tables
//! already take this shape.

use vault_core::Vault;

use crate::error::ApiError;

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
}

/// One group's totals.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct SpendLine {
    /// What the line is: an agent, `agent/key`, a host, a model or a time.
    pub label: String,
    pub requests: u64,
    /// US dollars, in millionths (no float rounding in sums).
    pub cost_micros: i64,
}

/// Spend over a range, grouped several ways.
#[derive(Clone, Debug, Default)]
pub(crate) struct SpendReport {
    /// Whether this vault records usage at all.
    pub recorded: bool,
    pub over_time: Vec<SpendLine>,
    pub by_agent: Vec<SpendLine>,
    pub by_key: Vec<SpendLine>,
    pub by_host: Vec<SpendLine>,
    pub by_model: Vec<SpendLine>,
}

/// Spend today and this month of one agent, in micro-dollars (`None`: not recorded).
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct AgentSpend {
    pub today: Option<i64>,
    pub month: Option<i64>,
}

/// The spend report from `since` (unix seconds) on, grouped by `bucket`.
pub(crate) fn spend(_vault: &Vault, _since: i64, _bucket: Bucket) -> Result<SpendReport, ApiError> {
    Ok(SpendReport::default())
}

/// Spend today and this month of `agent`.
pub(crate) fn agent_spend(_vault: &Vault, _agent: &str) -> Result<AgentSpend, ApiError> {
    Ok(AgentSpend::default())
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
}
