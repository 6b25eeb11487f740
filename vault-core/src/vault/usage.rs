//! Recording and reporting brokered egress usage (schema/011_usage.sql). The
//! broker hands records over in batches from its writer; reports price the
//! stored token counts with the table in force when they are asked for.

use crate::store::Store as _;
use std::collections::BTreeMap;

use super::{require_operator, Principal, Vault};
use crate::error::Result;
use crate::prices::PriceTable;
use crate::store::{self, usage};
use crate::usage::{UsageBucket, UsageFilter, UsageRecord, UsageReport, UsageRow};

/// What `vault usage` shows: the keys (of `filter.agent` when it names one),
/// their audit-trail counts, brokered egress grouped as `filter.by` asks,
/// and, when that is not per key, the same egress per key beside it.
#[derive(Debug)]
pub struct UsageOverview {
    /// The keys, in [`Vault::list_keys`] order.
    pub keys: Vec<super::KeyInfo>,
    /// Audit-trail counts by key id ([`Vault::usage`]).
    pub counts: BTreeMap<String, super::KeyUsage>,
    /// Brokered egress grouped as asked.
    pub report: UsageReport,
    /// Brokered egress per key, when `report` is grouped otherwise.
    pub per_key: Option<UsageReport>,
}

impl UsageOverview {
    /// Brokered egress per key: [`Self::per_key`], else the report itself.
    pub fn per_key(&self) -> &UsageReport {
        self.per_key.as_ref().unwrap_or(&self.report)
    }
}

impl Vault {
    /// The keys, counts and priced egress `vault usage` shows ([`UsageOverview`]).
    ///
    /// # Errors
    /// [`crate::Error::Refused`] for an agent; database errors.
    pub fn usage_overview(
        &self,
        actor: &Principal,
        filter: &UsageFilter,
        prices: &PriceTable,
    ) -> Result<UsageOverview> {
        let mut keys = self.list_keys(actor, None)?;
        keys.retain(|k| filter.agent.as_ref().is_none_or(|a| k.agent == *a));
        let report = self.usage_report(actor, filter, prices)?;
        let per_key = match filter.by {
            crate::usage::GroupBy::Key => None,
            _ => {
                let by = crate::usage::GroupBy::Key;
                let per_key = UsageFilter {
                    by,
                    ..filter.clone()
                };
                Some(self.usage_report(actor, &per_key, prices)?)
            }
        };
        let counts = self.usage()?;
        Ok(UsageOverview {
            keys,
            counts,
            report,
            per_key,
        })
    }

    /// Stores `records` and a count of records the broker could not queue,
    /// in one transaction.
    ///
    /// # Errors
    /// Database errors.
    pub fn record_usage(&mut self, records: &[UsageRecord], dropped: u64) -> Result<()> {
        self.trail_write(|| {
            let tx = self.store.write(&Principal::Operator)?;
            usage::insert(&tx, records)?;
            usage::insert_dropped(&tx, store::now_ms(), dropped)?;
            tx.commit()
        })
    }

    /// Stored usage summed per agent, key, group and model, unpriced.
    ///
    /// # Errors
    /// [`crate::Error::Refused`] for an agent; database errors.
    pub fn usage_buckets(
        &self,
        actor: &Principal,
        filter: &UsageFilter,
    ) -> Result<Vec<UsageBucket>> {
        require_operator(actor, "read egress usage")?;
        usage::buckets(&self.store, filter)
    }

    /// [`Vault::usage_buckets`] from the daily rollup (schema 014): whole
    /// UTC days from the one holding `filter.since_ms` (an hour grouping is
    /// summed per day). What the console's day views read.
    ///
    /// # Errors
    /// [`crate::Error::Refused`] for an agent; database errors.
    pub fn usage_daily_buckets(
        &self,
        actor: &Principal,
        filter: &UsageFilter,
    ) -> Result<Vec<UsageBucket>> {
        require_operator(actor, "read egress usage")?;
        usage::daily_buckets(&self.store, filter)
    }

    /// Every agent's usage summed from the spend page's rollups (schema
    /// 016): by day or host from the UTC day holding `since_ms`, by key from
    /// the calendar month starting at `since_ms`.
    ///
    /// # Errors
    /// [`crate::Error::Refused`] for an agent; database errors.
    pub fn usage_page_buckets(
        &self,
        actor: &Principal,
        by: crate::usage::PageSums,
        since_ms: i64,
    ) -> Result<Vec<UsageBucket>> {
        require_operator(actor, "read egress usage")?;
        usage::page_buckets(&self.store, by, since_ms)
    }

    /// Usage per named key (and per host, model or day), priced with `prices`.
    ///
    /// # Errors
    /// [`crate::Error::Refused`] for an agent; database errors.
    pub fn usage_report(
        &self,
        actor: &Principal,
        filter: &UsageFilter,
        prices: &PriceTable,
    ) -> Result<UsageReport> {
        let buckets = self.usage_buckets(actor, filter)?;
        let mut rows: BTreeMap<(String, String, Option<String>), UsageRow> = BTreeMap::new();
        let by_model = filter.by == crate::usage::GroupBy::Model;
        for b in buckets {
            let group = if by_model {
                Some(b.model.clone().unwrap_or_else(|| "-".into()))
            } else {
                b.group.clone()
            };
            let row = rows
                .entry((b.agent.clone(), b.key_id.clone(), group.clone()))
                .or_insert_with(|| UsageRow {
                    agent: b.agent.clone(),
                    key_id: b.key_id.clone(),
                    key: b.key.clone(),
                    group,
                    requests: 0,
                    estimated_requests: 0,
                    cut_requests: 0,
                    tokens: Default::default(),
                    bytes_up: 0,
                    bytes_down: 0,
                    cost_micro_usd: 0,
                    unpriced_models: Vec::new(),
                });
            row.requests += b.requests;
            row.estimated_requests += b.estimated_requests;
            row.cut_requests += b.cut_requests;
            row.tokens.add(&b.tokens);
            row.bytes_up += b.bytes_up;
            row.bytes_down += b.bytes_down;
            if let Some(model) = &b.model {
                match prices.cost_micro_usd(model, &b.tokens) {
                    Some(c) => row.cost_micro_usd += c,
                    None if b.tokens.total() > 0 && !row.unpriced_models.contains(model) => {
                        row.unpriced_models.push(model.clone());
                    }
                    None => {}
                }
            }
        }
        Ok(UsageReport {
            rows: rows.into_values().collect(),
            dropped_records: usage::dropped_since(&self.store, filter.since_ms.unwrap_or(0))?,
            prices_as_of: prices.as_of().to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use crate::prices::PriceTable;
    use crate::usage::{GroupBy, Provider, Tokens, UsageFilter, UsageRecord};
    use crate::{AgentName, KdfParams, Principal, SecretString, Vault};

    fn record(agent: &str, key: &str, at_ms: i64, model: &str, input: u64) -> UsageRecord {
        UsageRecord {
            at_ms,
            agent: AgentName::parse(agent).unwrap(),
            key_id: key.into(),
            host: "api.openai.com:443".into(),
            method: "POST".into(),
            path: "/v1/chat/completions".into(),
            rule: Some(0),
            status: 200,
            bytes_up: 10,
            bytes_down: 20,
            latency_ms: 5,
            duration_ms: 9,
            provider: Some(Provider::OpenAi),
            model: Some(model.into()),
            tokens: Tokens {
                input,
                output: 100,
                cache_read: 0,
                cache_write: 0,
            },
            estimated: false,
            cut: false,
        }
    }

    // issue 16, usage: records are stored in batches and reported per key,
    // host, model and day, priced at report time, filtered by agent and time
    #[test]
    fn usage_is_recorded_in_batches_and_reported_per_key_model_and_day() {
        let dir = tempfile::TempDir::new().unwrap();
        let mut v = Vault::init(
            &dir.path().join("v"),
            &SecretString::new("pw".into()),
            KdfParams::TEST_ONLY,
        )
        .unwrap();
        let day = 86_400_000;
        let batch = [
            record("hermes", "k1", 10 * day, "gpt-4o-2024-08-06", 1_000),
            record("hermes", "k1", 10 * day + 5, "gpt-4o", 1_000),
            record("hermes", "k1", 11 * day, "gpt-4o-mini", 1_000),
            record("hermes", "k2", 11 * day, "mystery-model", 7),
            record("finance", "k3", 11 * day, "gpt-4o", 1),
        ];
        v.record_usage(&batch[..2], 0).unwrap();
        v.record_usage(&batch[2..], 3).unwrap();
        let prices = PriceTable::shipped();
        let op = &Principal::Operator;
        let hermes = AgentName::parse("hermes").unwrap();
        let filter = |by, since_ms| UsageFilter {
            agent: Some(hermes.clone()),
            since_ms,
            by,
        };
        let r = v
            .usage_report(op, &filter(GroupBy::Key, None), &prices)
            .unwrap();
        assert_eq!(r.rows.len(), 2, "{r:?}");
        assert_eq!(r.dropped_records, 3);
        let k1 = &r.rows[0];
        assert_eq!((k1.key_id.as_str(), k1.requests), ("k1", 3));
        assert_eq!(k1.tokens.input, 3_000);
        // 2 x gpt-4o (1000 x 2.5 + 100 x 10) + gpt-4o-mini (1000 x 0.15 + 100 x 0.6)
        assert_eq!(k1.cost_micro_usd, 2 * 3_500 + 210);
        assert_eq!(r.rows[1].unpriced_models, vec!["mystery-model".to_owned()]);
        let by_day = v
            .usage_report(op, &filter(GroupBy::Day, None), &prices)
            .unwrap();
        let days: Vec<_> = by_day
            .rows
            .iter()
            .map(|r| (r.key_id.as_str(), r.group.clone().unwrap(), r.requests))
            .collect();
        assert_eq!(
            days,
            [
                ("k1", "1970-01-11".to_owned(), 2),
                ("k1", "1970-01-12".to_owned(), 1),
                ("k2", "1970-01-12".to_owned(), 1)
            ]
        );
        let by_model = v
            .usage_report(op, &filter(GroupBy::Model, Some(11 * day)), &prices)
            .unwrap();
        let models: Vec<_> = by_model
            .rows
            .iter()
            .map(|r| r.group.clone().unwrap())
            .collect();
        assert_eq!(models, ["gpt-4o-mini", "mystery-model"]);
        let all = v
            .usage_report(
                op,
                &UsageFilter {
                    by: GroupBy::Host,
                    ..Default::default()
                },
                &prices,
            )
            .unwrap();
        assert_eq!(all.rows.len(), 3);
        assert_eq!(all.rows[0].group.as_deref(), Some("api.openai.com:443"));
        let agent = Principal::Agent(hermes.clone());
        assert!(v
            .usage_report(&agent, &filter(GroupBy::Key, None), &prices)
            .is_err());
    }
}
