//! Unit tests of usage accounting: answer parsing, metering and budgets.

use super::answer::*;
use super::*;
use bytes::Bytes;
use http_body_util::BodyExt as _;
use vault_core::usage::Provider;

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
