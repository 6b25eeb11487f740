//! Rows of `egress_usage` and `egress_usage_dropped` (not authorization
//! state: untagged, see schema/011_usage.sql).

use rusqlite::{params, Connection};

use crate::error::Result;
use crate::usage::{GroupBy, Tokens, UsageBucket, UsageFilter, UsageRecord};

pub(crate) fn insert(conn: &Connection, records: &[UsageRecord]) -> Result<()> {
    let mut stmt = conn.prepare_cached(
        "INSERT INTO egress_usage (at, agent, key_id, host, method, path, rule, status, bytes_up,
            bytes_down, latency_ms, duration_ms, provider, model, input_tokens, output_tokens,
            cache_read_tokens, cache_write_tokens, estimated, cut)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20)",
    )?;
    let n = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
    for r in records {
        stmt.execute(params![
            r.at_ms,
            r.agent.as_str(),
            r.key_id,
            r.host,
            r.method,
            r.path,
            r.rule,
            r.status,
            n(r.bytes_up),
            n(r.bytes_down),
            n(r.latency_ms),
            n(r.duration_ms),
            r.provider.map(|p| p.as_str()),
            r.model,
            n(r.tokens.input),
            n(r.tokens.output),
            n(r.tokens.cache_read),
            n(r.tokens.cache_write),
            r.estimated,
            r.cut,
        ])?;
    }
    Ok(())
}

pub(crate) fn insert_dropped(conn: &Connection, at_ms: i64, count: u64) -> Result<()> {
    if count > 0 {
        conn.execute(
            "INSERT INTO egress_usage_dropped (at, count) VALUES (?1, ?2)",
            params![at_ms, i64::try_from(count).unwrap_or(i64::MAX)],
        )?;
    }
    Ok(())
}

pub(crate) fn dropped_since(conn: &Connection, since_ms: i64) -> Result<u64> {
    let n: i64 = conn.query_row(
        "SELECT coalesce(sum(count), 0) FROM egress_usage_dropped WHERE at >= ?1",
        [since_ms],
        |r| r.get(0),
    )?;
    Ok(u64::try_from(n).unwrap_or(0))
}

/// The SQL of [`buckets`] for one grouping (also for `EXPLAIN QUERY PLAN`
/// in the console's bench).
pub(crate) fn buckets_sql(by: GroupBy) -> String {
    let group = match by {
        GroupBy::Key | GroupBy::Model => "NULL",
        GroupBy::Host => "u.host",
        GroupBy::Day => "strftime('%Y-%m-%d', u.at / 1000, 'unixepoch')",
        GroupBy::Hour => "CAST((u.at / 3600000) * 3600000 AS TEXT)",
    };
    format!(
        "SELECT u.agent, u.key_id, (SELECT k.name FROM agent_keys k WHERE k.key_id = u.key_id),
                {group} AS g, u.model, count(*), sum(u.estimated), sum(u.cut),
                sum(u.input_tokens), sum(u.output_tokens), sum(u.cache_read_tokens),
                sum(u.cache_write_tokens), sum(u.bytes_up), sum(u.bytes_down)
         FROM egress_usage u
         WHERE u.at >= ?1 AND (?2 IS NULL OR u.agent = ?2)
         GROUP BY u.agent, u.key_id, g, u.model
         ORDER BY u.agent, u.key_id, g, u.model"
    )
}

/// Sums per agent, key, group and model. The group expression is chosen from
/// a closed set (never text from the caller).
pub(crate) fn buckets(conn: &Connection, filter: &UsageFilter) -> Result<Vec<UsageBucket>> {
    let sql = buckets_sql(filter.by);
    let mut stmt = conn.prepare_cached(&sql)?;
    let u = |v: i64| u64::try_from(v).unwrap_or(0);
    let rows = stmt.query_map(
        params![
            filter.since_ms.unwrap_or(0),
            filter.agent.as_ref().map(|a| a.as_str())
        ],
        |r| {
            Ok(UsageBucket {
                agent: r.get(0)?,
                key_id: r.get(1)?,
                key: r.get(2)?,
                group: r.get(3)?,
                model: r.get(4)?,
                requests: u(r.get(5)?),
                estimated_requests: u(r.get(6)?),
                cut_requests: u(r.get(7)?),
                tokens: Tokens {
                    input: u(r.get(8)?),
                    output: u(r.get(9)?),
                    cache_read: u(r.get(10)?),
                    cache_write: u(r.get(11)?),
                },
                bytes_up: u(r.get(12)?),
                bytes_down: u(r.get(13)?),
            })
        },
    )?;
    Ok(rows.collect::<Result<_, _>>()?)
}
