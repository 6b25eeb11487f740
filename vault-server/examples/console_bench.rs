//! Console page times (issue 17, "Speed"): a vault seeded with 50 agents,
//! 500 named keys, 100 secrets, an audit trail of AUDIT_ROWS records
//! (default 100 000) and a year of brokered usage, USAGE_ROWS records
//! (default 200 000) over 365 days, then every console page requested through the real
//! router ROUNDS times (default 20), printing the median and worst server
//! time of each, `EXPLAIN QUERY PLAN` of the pages' queries, and how long
//! the audit chain's background walk takes while the page stays fast.
//! Run by bench/console.sh.

use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::Request;
use tower::ServiceExt;
use vault_core::{
    AgentName, KdfParams, Policy, Principal, SecretBytes, SecretPath, SecretString, Vault,
    CONSOLE_SESSION_TTL,
};

const OP: &Principal = &Principal::Operator;

fn env_num(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let audit_rows = env_num("AUDIT_ROWS", 100_000);
    let usage_rows = env_num("USAGE_ROWS", 200_000);
    let rounds = env_num("ROUNDS", 20);
    let dir = tempfile::tempdir().expect("temp dir");
    let mut v = Vault::init(
        &dir.path().join("vault"),
        &SecretString::new("console bench passphrase".into()),
        KdfParams::FLOOR,
    )
    .expect("init");
    let t = Instant::now();
    let mut key_ids = Vec::new();
    for a in 0..50 {
        let agent = AgentName::parse(&format!("agent-{a:02}")).expect("name");
        v.add_agent(OP, &agent, &Policy::default()).expect("agent");
        for s in 0..2 {
            let path = SecretPath::parse(&format!("{agent}/SECRET_{s}")).expect("path");
            v.set_secret(OP, &path, &SecretBytes::new(b"bench-value".to_vec()))
                .expect("secret");
        }
        for k in 0..10 {
            let name = AgentName::parse(&format!("agent-{a:02}-key-{k}")).expect("name");
            let issued = v
                .issue_key(OP, &name, &agent, Duration::from_secs(86_400), false)
                .expect("key");
            key_ids.push((agent.clone(), issued.info.key_id));
        }
    }
    let (_, committed) = v.in_one_transaction(|v| {
        for i in 0..audit_rows {
            let (agent, key_id) = &key_ids[i % key_ids.len()];
            let action = if i % 3 == 0 {
                vault_core::AuditAction::TokenMint
            } else {
                vault_core::AuditAction::SecretRead
            };
            v.audit(
                &Principal::Agent(agent.clone()),
                Some(key_id),
                action,
                Some("SECRET_0"),
                vault_core::AuditOutcome::Ok,
            )
            .expect("audit");
        }
    });
    committed.expect("commit");
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as i64;
    let year_ms = 365 * 86_400_000_i64;
    let models = ["gpt-4o", "gpt-4o-mini", "claude-sonnet-4-5", "o3-mini"];
    let hosts = [
        "api.openai.com:443",
        "api.anthropic.com:443",
        "openrouter.ai:443",
    ];
    let mut batch = Vec::with_capacity(10_000);
    for i in 0..usage_rows {
        let (agent, key_id) = &key_ids[i % key_ids.len()];
        batch.push(vault_core::usage::UsageRecord {
            at_ms: now_ms - (i as i64 * year_ms / usage_rows.max(1) as i64),
            agent: agent.clone(),
            key_id: key_id.to_string(),
            host: hosts[i % hosts.len()].into(),
            method: "POST".into(),
            path: "/v1/chat/completions".into(),
            rule: Some(0),
            status: 200,
            bytes_up: 2_000,
            bytes_down: 4_000,
            latency_ms: 300,
            duration_ms: 900,
            provider: Some(vault_core::usage::Provider::OpenAi),
            model: Some(models[i % models.len()].into()),
            tokens: vault_core::usage::Tokens {
                input: 1_200,
                output: 300,
                cache_read: 0,
                cache_write: 0,
            },
            estimated: false,
            cut: false,
        });
        if batch.len() == 10_000 {
            v.record_usage(&batch, 0).expect("usage");
            batch.clear();
        }
    }
    v.record_usage(&batch, 0).expect("usage");
    println!(
        "seeded 50 agents, {} keys, 100 secrets, {audit_rows} audit records, {usage_rows} usage records over a year in {:.1} s",
        key_ids.len(),
        t.elapsed().as_secs_f64()
    );
    println!("\nEXPLAIN QUERY PLAN of the console's queries:");
    for (name, plan) in v.console_query_plans().expect("plans") {
        println!("  {name}:\n    {}", plan.join("\n    "));
    }
    println!("\ncore queries behind the pages (ms):");
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as i64;
    let since = now_ms - 29 * 86_400_000;
    let month = vault_core::view::rfc3339(now_ms / 1000);
    for (name, by) in [
        (
            "spend by day, 30 days (016 rollup)",
            vault_core::usage::PageSums::Day,
        ),
        (
            "spend by host, 30 days (016 rollup)",
            vault_core::usage::PageSums::Host,
        ),
    ] {
        let t = Instant::now();
        let n = v.usage_page_buckets(OP, by, since).expect("usage").len();
        println!(
            "  {name:<40} {:>8.1}  ({n} buckets)",
            t.elapsed().as_secs_f64() * 1000.0
        );
    }
    let midnight = now_ms - now_ms.rem_euclid(86_400_000);
    let day_of_month: i64 = month[8..10].parse().unwrap_or(1);
    let t = Instant::now();
    let n = v
        .usage_page_buckets(
            OP,
            vault_core::usage::PageSums::Key,
            midnight - (day_of_month - 1) * 86_400_000,
        )
        .expect("usage")
        .len();
    println!(
        "  {:<40} {:>8.1}  ({n} buckets)",
        "spend by key, this month (016 rollup)",
        t.elapsed().as_secs_f64() * 1000.0
    );
    // (name, grouping, days, from the daily rollup of schema 014)
    for (name, by, days, daily) in [
        (
            "usage by key, 30 days (014 rollup)",
            vault_core::usage::GroupBy::Key,
            30,
            true,
        ),
        (
            "usage by day, 30 days (request rows)",
            vault_core::usage::GroupBy::Day,
            30,
            false,
        ),
        (
            "usage by hour, 1 day",
            vault_core::usage::GroupBy::Hour,
            1,
            false,
        ),
    ] {
        let filter = vault_core::usage::UsageFilter {
            agent: None,
            since_ms: Some(now_ms - days * 86_400_000),
            by,
        };
        let t = Instant::now();
        let n = if daily {
            v.usage_daily_buckets(OP, &filter)
        } else {
            v.usage_buckets(OP, &filter)
        }
        .expect("usage")
        .len();
        println!(
            "  {name:<40} {:>8.1}  ({n} buckets)",
            t.elapsed().as_secs_f64() * 1000.0
        );
    }
    let t = Instant::now();
    let _ = v.audit_count_by_key(
        OP,
        vault_core::AuditAction::TokenMint,
        now_ms - now_ms.rem_euclid(86_400_000),
    );
    println!(
        "  {:<40} {:>8.1}",
        "tokens minted today per key",
        t.elapsed().as_secs_f64() * 1000.0
    );
    let t = Instant::now();
    let _ = v.list_keys(OP, None);
    println!(
        "  {:<40} {:>8.1}",
        "list 500 keys (row tags checked)",
        t.elapsed().as_secs_f64() * 1000.0
    );
    let session = v
        .console_session_open(OP, CONSOLE_SESSION_TTL)
        .expect("session");
    let cookie = format!("vault_console={}", session.id.expose_secret());
    let state =
        vault_server::AppState::new(v, SecretString::new("vadm_bench".into())).expect("state");
    let app = vault_server::app(state);
    let fetch = |req: Request<Body>| {
        let app = app.clone();
        async move {
            let t = Instant::now();
            let r = app.oneshot(req).await.expect("answer");
            let status = r.status();
            let body = axum::body::to_bytes(r.into_body(), 64 << 20)
                .await
                .expect("body");
            let ms = t.elapsed().as_secs_f64() * 1000.0;
            assert!(status.is_success() || status.is_redirection(), "{status}");
            (ms, String::from_utf8_lossy(&body).into_owned())
        }
    };
    let audit_get = || {
        Request::builder()
            .uri("/ui/audit")
            .header("host", "127.0.0.1:8200")
            .header("cookie", &cookie)
            .body(Body::empty())
            .expect("request")
    };
    // The chain: no page walks it; the first look starts a full walk in the
    // background, and looks while it runs stay fast.
    println!("\naudit chain verification (issue 17: never inside a request):");
    for round in ["first look (starts a full walk)", "verify all again (POST)"] {
        let start = Instant::now();
        let (ms, body) = if round.starts_with("first") {
            fetch(audit_get()).await
        } else {
            let (_, page) = fetch(audit_get()).await;
            let mark = "name=\"csrf\" value=\"";
            let at = page.find(mark).expect("csrf") + mark.len();
            let csrf = page[at..at + 64].to_owned();
            fetch(
                Request::builder()
                    .method("POST")
                    .uri("/ui/audit/verify")
                    .header("host", "127.0.0.1:8200")
                    .header("origin", "http://127.0.0.1:8200")
                    .header("cookie", &cookie)
                    .header("content-type", "application/x-www-form-urlencoded")
                    .body(Body::from(format!("csrf={csrf}")))
                    .expect("request"),
            )
            .await
        };
        let _ = body;
        let mut looks = Vec::new();
        for _ in 0..3_000 {
            let (ms, body) = fetch(audit_get()).await;
            looks.push(ms);
            if !body.contains("is running") {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let walk = start.elapsed().as_secs_f64();
        looks.sort_by(f64::total_cmp);
        println!(
            "  {round:<40} {ms:>8.1} ms; walk done in {walk:.2} s; audit page meanwhile: median {:.1} ms, worst {:.1} ms ({} looks)",
            looks[looks.len() / 2],
            looks[looks.len() - 1],
            looks.len()
        );
    }
    println!("\nserver time per page over {rounds} requests (goal < 50 ms):");
    println!("  {:<40} {:>10} {:>10}", "page", "median ms", "worst ms");
    for page in [
        "/ui/",
        "/ui/spend",
        "/ui/spend?bucket=hour",
        "/ui/approvals",
        "/ui/leaks",
        "/ui/audit",
        "/ui/audit?agent=agent-07",
        "/ui/audit?action=token.mint",
        "/ui/doctor",
    ] {
        let mut times = Vec::with_capacity(rounds);
        for _ in 0..rounds {
            let req = Request::builder()
                .uri(page)
                .header("host", "127.0.0.1:8200")
                .header("cookie", &cookie)
                .body(Body::empty())
                .expect("request");
            let t = Instant::now();
            let r = app.clone().oneshot(req).await.expect("answer");
            let status = r.status();
            let _ = axum::body::to_bytes(r.into_body(), 64 << 20).await;
            times.push(t.elapsed().as_secs_f64() * 1000.0);
            assert!(status.is_success(), "{page}: {status}");
        }
        times.sort_by(f64::total_cmp);
        println!(
            "  {:<40} {:>10.1} {:>10.1}",
            page,
            times[times.len() / 2],
            times[times.len() - 1]
        );
    }
}
