//! Rows of `egress_usage` and `egress_usage_dropped` (not authorization
//! state: untagged, see schema/011_usage.sql).

use crate::store::sql::{args, Backend, Handle, Row};

use crate::error::Result;
use crate::usage::{GroupBy, Tokens, UsageBucket, UsageFilter, UsageRecord};

pub(crate) fn insert(conn: &Handle, records: &[UsageRecord]) -> Result<()> {
    let sql = "INSERT INTO egress_usage (at, agent, key_id, host, method, path, rule, status, bytes_up,
            bytes_down, latency_ms, duration_ms, provider, model, input_tokens, output_tokens,
            cache_read_tokens, cache_write_tokens, estimated, cut)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20)";
    let n = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
    for r in records {
        conn.execute(
            sql,
            args![
                r.at_ms,
                r.agent.as_str(),
                &r.key_id,
                &r.host,
                &r.method,
                &r.path,
                r.rule.map(i64::from),
                i64::from(r.status),
                n(r.bytes_up),
                n(r.bytes_down),
                n(r.latency_ms),
                n(r.duration_ms),
                r.provider.map(|p| p.as_str()),
                &r.model,
                n(r.tokens.input),
                n(r.tokens.output),
                n(r.tokens.cache_read),
                n(r.tokens.cache_write),
                r.estimated,
                r.cut,
            ],
        )?;
    }
    Ok(())
}

pub(crate) fn insert_dropped(conn: &Handle, at_ms: i64, count: u64) -> Result<()> {
    if count > 0 {
        conn.execute(
            "INSERT INTO egress_usage_dropped (at, count) VALUES (?1, ?2)",
            args![at_ms, i64::try_from(count).unwrap_or(i64::MAX)],
        )?;
    }
    Ok(())
}

pub(crate) fn dropped_since(conn: &Handle, since_ms: i64) -> Result<u64> {
    let n: i64 = conn.query_one(
        "SELECT CAST(coalesce(sum(count), 0) AS BIGINT) FROM egress_usage_dropped WHERE at >= ?1",
        args![since_ms],
        |r| r.get(0),
    )?;
    Ok(u64::try_from(n).unwrap_or(0))
}

/// The SQL of [`buckets`] for one grouping (also for `EXPLAIN QUERY PLAN`
/// in the console's bench).
pub(crate) fn buckets_sql(backend: Backend, by: GroupBy) -> String {
    let day = day_of(backend, "u.at");
    let group = match by {
        GroupBy::Key | GroupBy::Model => "NULL",
        GroupBy::Host => "u.host",
        GroupBy::Day => day.as_str(),
        GroupBy::Hour => "CAST((u.at / 3600000) * 3600000 AS TEXT)",
    };
    format!(
        "SELECT u.agent, u.key_id, (SELECT k.name FROM agent_keys k WHERE k.key_id = u.key_id),
                {group} AS g, u.model, count(*), {}, {}, {}, {}, {}, {}, {}, {}
         FROM egress_usage u
         WHERE u.at >= ?1 AND (?2 IS NULL OR u.agent = ?2)
         GROUP BY u.agent, u.key_id, g, u.model
         ORDER BY u.agent, u.key_id, g, u.model",
        sum("u.estimated"),
        sum("u.cut"),
        sum("u.input_tokens"),
        sum("u.output_tokens"),
        sum("u.cache_read_tokens"),
        sum("u.cache_write_tokens"),
        sum("u.bytes_up"),
        sum("u.bytes_down"),
    )
}

/// `SUM(col)` as a 64-bit integer on every backend (PostgreSQL sums
/// integers to NUMERIC).
fn sum(col: &str) -> String {
    format!("CAST(sum({col}) AS BIGINT)")
}

/// The UTC day (`YYYY-MM-DD`) of a unix-ms column: the one date function
/// the store needs, which each backend spells its own way.
fn day_of(backend: Backend, ms: &str) -> String {
    match backend {
        Backend::Sqlite => format!("strftime('%Y-%m-%d', {ms} / 1000, 'unixepoch')"),
        Backend::Postgres => {
            format!("to_char(to_timestamp({ms} / 1000) AT TIME ZONE 'UTC', 'YYYY-MM-DD')")
        }
    }
}

/// Sums per agent, key, group and model. The group expression is chosen from
/// a closed set (never text from the caller).
pub(crate) fn buckets(conn: &Handle, filter: &UsageFilter) -> Result<Vec<UsageBucket>> {
    let sql = buckets_sql(conn.backend(), filter.by);
    conn.query_all(
        &sql,
        args![
            filter.since_ms.unwrap_or(0),
            filter.agent.as_ref().map(|a| a.as_str())
        ],
        bucket_of,
    )
}

/// One row of [`buckets_sql`] or [`daily_buckets_sql`] (the same columns).
fn bucket_of(r: &Row<'_>) -> Result<UsageBucket> {
    let u = |v: i64| u64::try_from(v).unwrap_or(0);
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
}

/// The UTC midnight (unix ms) starting the day that holds `ms`.
pub(crate) fn day_start_ms(ms: i64) -> i64 {
    ms.div_euclid(86_400_000) * 86_400_000
}

/// The SQL of [`daily_buckets`] for one grouping (also for `EXPLAIN QUERY
/// PLAN` in the console's bench). Unlike [`buckets_sql`], a day or host
/// grouping is summed over every agent and key (per model, which prices
/// it): a chart over time or a table by host wants one row per day or host,
/// not one per agent, key, day and model.
pub(crate) fn daily_buckets_sql(backend: Backend, by: GroupBy) -> String {
    let day = day_of(backend, "d.day");
    let (agent, key_id, key, group, by_cols) = match by {
        GroupBy::Key | GroupBy::Model => (
            "d.agent",
            "d.key_id",
            "(SELECT k.name FROM agent_keys k WHERE k.key_id = d.key_id)",
            "NULL",
            "d.agent, d.key_id, d.model",
        ),
        GroupBy::Host => ("''", "''", "NULL", "d.host", "d.host, d.model"),
        // the rollup has no hours: an hour grouping is summed per day
        GroupBy::Day | GroupBy::Hour => (
            "''",
            "''",
            "NULL",
            if by == GroupBy::Day {
                day.as_str()
            } else {
                "CAST(d.day AS TEXT)"
            },
            "d.day, d.model",
        ),
    };
    format!(
        "SELECT {agent}, {key_id}, {key}, {group} AS g, nullif(d.model, ''), {}, {}, {}, {}, {},
                {}, {}, {}, {}
         FROM egress_usage_daily d
         WHERE d.day >= ?1 AND (?2 IS NULL OR d.agent = ?2)
         GROUP BY {by_cols}
         ORDER BY {by_cols}",
        sum("d.requests"),
        sum("d.estimated"),
        sum("d.cut"),
        sum("d.input_tokens"),
        sum("d.output_tokens"),
        sum("d.cache_read_tokens"),
        sum("d.cache_write_tokens"),
        sum("d.bytes_up"),
        sum("d.bytes_down"),
    )
}

/// Sums from the daily rollup (schema 014): whole UTC days from the one
/// holding `filter.since_ms`, one row read per day, agent, key, host and
/// model rather than one per request; grouped as [`daily_buckets_sql`] says
/// (a day or host grouping has empty agent and key).
pub(crate) fn daily_buckets(conn: &Handle, filter: &UsageFilter) -> Result<Vec<UsageBucket>> {
    let sql = daily_buckets_sql(conn.backend(), filter.by);
    conn.query_all(
        &sql,
        args![
            day_start_ms(filter.since_ms.unwrap_or(0)),
            filter.agent.as_ref().map(|a| a.as_str())
        ],
        bucket_of,
    )
}

/// Which of the spend page's rollups (schema 016) to sum.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PageSums {
    /// Per UTC day and model, over every host (the chart over time).
    Day,
    /// Per host and model (the host table).
    Host,
    /// Per agent, key and model over calendar months (the agent and key tables).
    Key,
}

/// The SQL of [`page_buckets`] (also for `EXPLAIN QUERY PLAN`): each reads
/// one rollup by its primary key's leading column, a few hundred rows a
/// month for a day or host and one per key and model for a month.
pub(crate) fn page_buckets_sql(backend: Backend, by: PageSums) -> String {
    let day = day_of(backend, "d.day");
    let (table, start, agent, key_id, key, group, by_cols) = match by {
        PageSums::Day => (
            "egress_usage_day_host",
            "day",
            "''",
            "''",
            "NULL",
            day.as_str(),
            "d.day, d.model",
        ),
        PageSums::Host => (
            "egress_usage_day_host",
            "day",
            "''",
            "''",
            "NULL",
            "d.host",
            "d.host, d.model",
        ),
        PageSums::Key => (
            "egress_usage_month_key",
            "month",
            "d.agent",
            "d.key_id",
            "(SELECT k.name FROM agent_keys k WHERE k.key_id = d.key_id)",
            "NULL",
            "d.agent, d.key_id, d.model",
        ),
    };
    format!(
        "SELECT {agent}, {key_id}, {key}, {group} AS g, nullif(d.model, ''), {}, {}, {}, {}, {},
                {}, {}, {}, {}
         FROM {table} d
         WHERE d.{start} >= ?1
         GROUP BY {by_cols}
         ORDER BY {by_cols}",
        sum("d.requests"),
        sum("d.estimated"),
        sum("d.cut"),
        sum("d.input_tokens"),
        sum("d.output_tokens"),
        sum("d.cache_read_tokens"),
        sum("d.cache_write_tokens"),
        sum("d.bytes_up"),
        sum("d.bytes_down"),
    )
}

/// Sums of every agent's usage from the spend page's rollups: from the UTC
/// day holding `since_ms` (a day or host grouping), or from the calendar
/// month starting at `since_ms` (a key grouping; `since_ms` must be a
/// month's first midnight, else the month it falls in is left out).
pub(crate) fn page_buckets(conn: &Handle, by: PageSums, since_ms: i64) -> Result<Vec<UsageBucket>> {
    let since = match by {
        PageSums::Day | PageSums::Host => day_start_ms(since_ms),
        PageSums::Key => since_ms,
    };
    conn.query_all(
        &page_buckets_sql(conn.backend(), by),
        args![since],
        bucket_of,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::names::AgentName;
    use crate::usage::Provider;

    fn record(at_ms: i64, agent: &str, model: Option<&str>, input: u64) -> UsageRecord {
        UsageRecord {
            at_ms,
            agent: AgentName::parse(agent).unwrap(),
            key_id: format!("{agent}-key"),
            host: "api.openai.com:443".into(),
            method: "POST".into(),
            path: "/v1/chat/completions".into(),
            rule: Some(0),
            status: 200,
            bytes_up: 10,
            bytes_down: 20,
            latency_ms: 1,
            duration_ms: 2,
            provider: Some(Provider::OpenAi),
            model: model.map(str::to_owned),
            tokens: Tokens {
                input,
                output: 3,
                cache_read: 1,
                cache_write: 0,
            },
            estimated: model.is_none(),
            cut: false,
        }
    }

    // issue 17 remainder: the daily rollup (schema 014) holds exactly what
    // summing the request rows by day gives, through inserts and deletes,
    // for rows that existed before the migration too
    #[test]
    fn the_daily_rollup_matches_the_request_rows_by_day() {
        let dir = tempfile::tempdir().unwrap();
        let conn = crate::store::create(&dir.path().join("v.db")).unwrap();
        let day = 86_400_000;
        let t0 = 20_000 * day + 5_000;
        let mut rows = Vec::new();
        for i in 0..60 {
            let agent = if i % 3 == 0 { "hermes" } else { "codex" };
            let model = if i % 4 == 0 { None } else { Some("gpt-4o") };
            rows.push(record(
                t0 + (i % 5) * day + i * 1000,
                agent,
                model,
                100 + i as u64,
            ));
        }
        insert(&conn, &rows).unwrap();
        conn.execute("DELETE FROM egress_usage WHERE usage_id % 7 = 0", args![])
            .unwrap();
        // the migration's own backfill: rebuilt from the rows as they are now
        let from_rows = |by| {
            let f = UsageFilter {
                agent: None,
                since_ms: Some(t0 + day),
                by,
            };
            let mut raw = buckets(
                &conn,
                &UsageFilter {
                    since_ms: Some(day_start_ms(t0 + day)),
                    ..f.clone()
                },
            )
            .unwrap();
            let mut daily = daily_buckets(&conn, &f).unwrap();
            raw.sort_by(|a, b| format!("{a:?}").cmp(&format!("{b:?}")));
            daily.sort_by(|a, b| format!("{a:?}").cmp(&format!("{b:?}")));
            (raw, daily)
        };
        // by key: the same buckets; by day or host: the same sums over agents and keys
        let (raw, daily) = from_rows(GroupBy::Key);
        assert!(!raw.is_empty());
        assert_eq!(raw, daily);
        for by in [GroupBy::Day, GroupBy::Host] {
            let (raw, daily) = from_rows(by);
            let mut summed: Vec<(Option<String>, Option<String>, u64, u64)> = Vec::new();
            for b in &raw {
                match summed.iter_mut().find(|s| s.0 == b.group && s.1 == b.model) {
                    Some(s) => {
                        s.2 += b.requests;
                        s.3 += b.tokens.input;
                    }
                    None => {
                        summed.push((b.group.clone(), b.model.clone(), b.requests, b.tokens.input))
                    }
                }
            }
            let mut got: Vec<_> = daily
                .iter()
                .map(|b| (b.group.clone(), b.model.clone(), b.requests, b.tokens.input))
                .collect();
            summed.sort();
            got.sort();
            assert_eq!(summed, got, "{by:?}");
        }
        let backfill = |conn: &Handle| -> Vec<(i64, String, i64, i64)> {
            conn.query_all(
                "SELECT day, agent || model, requests, input_tokens FROM egress_usage_daily ORDER BY 1, 2",
                args![],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )
            .unwrap()
        };
        let kept = backfill(&conn);
        conn.execute_batch(
            "DELETE FROM egress_usage_daily;
             INSERT INTO egress_usage_daily
             SELECT (at / 86400000) * 86400000, agent, key_id, host, coalesce(model, ''), count(*),
                    sum(estimated), sum(cut), sum(input_tokens), sum(output_tokens),
                    sum(cache_read_tokens), sum(cache_write_tokens), sum(bytes_up), sum(bytes_down)
             FROM egress_usage GROUP BY 1, 2, 3, 4, 5;",
        )
        .unwrap();
        assert_eq!(kept, backfill(&conn), "triggers and the backfill agree");
    }

    // issue 17, item 1: the spend page's rollups (schema 016) hold what
    // summing the request rows gives, by day, by host and by key over a
    // calendar month, through inserts and deletes, and the migration's
    // backfill builds the same rows the triggers keep
    #[test]
    fn the_page_rollups_match_the_request_rows() {
        let dir = tempfile::tempdir().unwrap();
        let conn = crate::store::create(&dir.path().join("v.db")).unwrap();
        let day = 86_400_000;
        // 2026-11-27T00:00Z: rows over five days across a month's end
        let t0 = 1_795_737_600_000;
        let mut rows = Vec::new();
        for i in 0..80 {
            let agent = ["hermes", "codex", "openclaw"][i % 3];
            let model = if i % 5 == 0 {
                None
            } else {
                Some(["gpt-4o", "o3-mini"][i % 2])
            };
            let mut r = record(
                t0 + (i as i64 % 5) * day + i as i64 * 1000,
                agent,
                model,
                100 + i as u64,
            );
            r.host = ["api.openai.com:443", "openrouter.ai:443"][i % 2].into();
            r.key_id = format!("{agent}-key-{}", i % 2);
            rows.push(r);
        }
        insert(&conn, &rows).unwrap();
        conn.execute("DELETE FROM egress_usage WHERE usage_id % 7 = 0", args![])
            .unwrap();
        type Sum = (Option<String>, String, Option<String>, u64, u64, u64);
        let key = |b: &UsageBucket, g: Option<String>| -> Sum {
            (
                g,
                format!("{}/{}", b.agent, b.key_id),
                b.model.clone(),
                b.requests,
                b.tokens.input,
                b.bytes_down,
            )
        };
        let fold = |v: Vec<Sum>| -> Vec<Sum> {
            let mut out: Vec<Sum> = Vec::new();
            for s in v {
                match out
                    .iter_mut()
                    .find(|o| o.0 == s.0 && o.1 == s.1 && o.2 == s.2)
                {
                    Some(o) => {
                        o.3 += s.3;
                        o.4 += s.4;
                        o.5 += s.5;
                    }
                    None => out.push(s),
                }
            }
            out.sort();
            out
        };
        let raw = |since: i64, by: GroupBy| {
            buckets(
                &conn,
                &UsageFilter {
                    agent: None,
                    since_ms: Some(since),
                    by,
                },
            )
            .unwrap()
        };
        let check = |conn: &Handle| {
            let since = t0 + day;
            for (by, group) in [
                (PageSums::Day, GroupBy::Day),
                (PageSums::Host, GroupBy::Host),
            ] {
                let want = fold(
                    raw(since, group)
                        .iter()
                        .map(|b| {
                            let mut s = key(b, b.group.clone());
                            s.1 = String::new();
                            s
                        })
                        .collect(),
                );
                let got = fold(
                    page_buckets(conn, by, since)
                        .unwrap()
                        .iter()
                        .map(|b| {
                            let mut s = key(b, b.group.clone());
                            s.1 = String::new();
                            s
                        })
                        .collect(),
                );
                assert!(!got.is_empty());
                assert_eq!(want, got, "{by:?}");
            }
            // December: the month's first midnight on
            let december = t0 + 4 * day;
            let want = fold(
                raw(december, GroupBy::Key)
                    .iter()
                    .map(|b| key(b, None))
                    .collect(),
            );
            let got = fold(
                page_buckets(conn, PageSums::Key, december)
                    .unwrap()
                    .iter()
                    .map(|b| key(b, None))
                    .collect(),
            );
            assert!(!got.is_empty());
            assert_eq!(want, got, "by key this month");
        };
        check(&conn);
        // the migration's backfill, run over the rows as they are now
        let sql = include_str!("../../../schema/016_console_speed.sql");
        let backfill: Vec<&str> = sql
            .split(';')
            .filter(|s| {
                s.trim_start().starts_with("INSERT INTO egress_usage_")
                    && s.contains("FROM egress_usage u")
            })
            .collect();
        assert_eq!(backfill.len(), 2);
        conn.execute_batch(
            "DELETE FROM egress_usage_day_host; DELETE FROM egress_usage_month_key;",
        )
        .unwrap();
        for b in backfill {
            conn.execute_batch(b).unwrap();
        }
        check(&conn);
    }
}
