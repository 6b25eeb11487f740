//! Issue 16's speed figure: what egress scanning adds to one brokered request
//! with a 16 KB body (a chat prompt), on against off in the same run, with
//! the server's real matcher over a vault holding 200 secrets. Prints p50 and
//! p99 of each and the difference (goal: under 0.5 ms added at p99). Run with
//! `cargo bench -p vault-server --bench egress_scan`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use vault_broker::Outbound;
use vault_core::{AgentName, KdfParams, Principal, SecretBytes, SecretPath, SecretString, Vault};

const ROUNDS: usize = 3000;

fn main() {
    let dir = tempfile::TempDir::new().unwrap();
    let home = dir.path().join("v");
    let pass = SecretString::new("benchmark passphrase".into());
    let mut vault = Vault::init(&home, &pass, KdfParams::FLOOR).unwrap();
    let agent = AgentName::parse("hermes").unwrap();
    vault
        .add_agent(&Principal::Operator, &agent, &Default::default())
        .unwrap();
    for i in 0..200 {
        // values of many lengths, so the matcher hashes many candidates
        let value: String = (0..(16 + i % 48))
            .map(|j| {
                char::from(b"abcdefghijkmnopqrstuvwxyzABCDEFGH23456789"[(i * 7 + j * 13) % 41])
            })
            .collect();
        let path = SecretPath::parse(&format!("hermes/S{i}")).unwrap();
        vault
            .set_secret(
                &Principal::Operator,
                &path,
                &SecretBytes::from_slice(value.as_bytes()),
            )
            .unwrap();
    }
    let signer = vault.token_signer().unwrap();
    drop(vault);
    let matcher = vault_guard::leak::Matcher::load(&home)
        .unwrap()
        .with_token_signer(signer);
    let ob = Outbound {
        scanner: Arc::new(vault_scan::Scanner::builtin().unwrap()),
        known: Some(Arc::new(matcher)),
    };
    let words = "the quick brown fox reviews the deployment plan, checks config.yaml, \
                 and asks the model to summarise error logs from the last run; ";
    let content: String = words.repeat(16 * 1024 / words.len());
    let body = serde_json::json!({
        "model": "gpt-4o-mini",
        "messages": [{"role": "user", "content": content}],
    })
    .to_string()
    .into_bytes();
    assert!(body.len() >= 16 * 1024, "{}", body.len());
    let mut headers = hyper::HeaderMap::new();
    for (k, v) in [
        ("authorization", "Bearer vault-brokered"),
        ("content-type", "application/json"),
        ("user-agent", "OpenAI/Python 2.54.0"),
        ("x-stainless-lang", "python"),
        ("accept", "application/json"),
    ] {
        headers.insert(k, v.parse().unwrap());
    }
    let mut on = Vec::with_capacity(ROUNDS);
    let mut off = Vec::with_capacity(ROUNDS);
    for round in 0..ROUNDS + 200 {
        // off: what the broker does with the body anyway (one copy)
        let t = Instant::now();
        let copy = std::hint::black_box(body.clone());
        let off_t = t.elapsed();
        let t = Instant::now();
        let mut h = headers.clone();
        let mut pq = "/v1/chat/completions".to_owned();
        let n = vault_broker::testing::scan_request(&ob, &mut h, &mut pq, &copy);
        let on_t = t.elapsed() + off_t;
        assert_eq!(n, 0);
        if round >= 200 {
            on.push(on_t);
            off.push(off_t);
        }
    }
    let pct = |v: &mut Vec<Duration>, p: f64| {
        v.sort();
        v[((v.len() as f64 * p) as usize).min(v.len() - 1)]
    };
    let (on50, on90, on99) = (pct(&mut on, 0.50), pct(&mut on, 0.90), pct(&mut on, 0.99));
    let (off50, off90, off99) = (
        pct(&mut off, 0.50),
        pct(&mut off, 0.90),
        pct(&mut off, 0.99),
    );
    // Wall-clock: on a loaded machine p99 measures the scheduler as much as the scan.
    println!(
        "egress scan, {} byte body, {ROUNDS} rounds (wall clock)",
        body.len()
    );
    println!("  off: p50 {off50:?}  p90 {off90:?}  p99 {off99:?}");
    println!("  on:  p50 {on50:?}  p90 {on90:?}  p99 {on99:?}");
    println!(
        "  added: p50 {:?}  p90 {:?}  p99 {:?} (goal < 500us at p99)",
        on50.saturating_sub(off50),
        on90.saturating_sub(off90),
        on99.saturating_sub(off99)
    );
}
