//! JSON string escapes never hide a vault key from transcript scanning (issue 13, finding 5):
//! a string is scanned decoded whenever its decoded text differs from its raw bytes.

use proptest::prelude::*;
use vault_scan::{crc32_base62, redact, scan_bytes, ScanOptions};

use crate::scanner;

const BASE62: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

fn key(body: &[u8]) -> String {
    let body: Vec<u8> = body.iter().map(|&b| BASE62[b as usize % 62]).collect();
    let mut k = b"avk_".to_vec();
    k.extend_from_slice(&body);
    k.extend_from_slice(&crc32_base62(&body));
    String::from_utf8(k).unwrap()
}

/// `text` with the characters `mask` picks written as `\uXXXX` (hex case from `upper`).
fn escaped(text: &str, mask: &[bool], upper: bool) -> String {
    text.chars()
        .zip(mask.iter().cycle())
        .map(|(c, &e)| {
            if e {
                let u = format!("\\u{:04x}", c as u32);
                if upper {
                    u.to_uppercase().replace("\\U", "\\u")
                } else {
                    u
                }
            } else {
                c.to_string()
            }
        })
        .collect()
}

fn found(doc: &str, name: &str, key: &str) -> bool {
    let r = scan_bytes(
        scanner(),
        None,
        name,
        doc.as_bytes(),
        &ScanOptions::default(),
    );
    r.findings
        .iter()
        .any(|f| f.rule == "vault.named-key" && f.redacted == redact(key.as_bytes()))
}

// issue 13, finding 5
#[test]
fn a_unicode_escaped_first_letter_and_go_angle_brackets_do_not_hide_a_key() {
    let k = key(b"0123456789abcdefghijklmnopqrstuv");
    let first = format!("{{\"content\":\"\\u0061{}\"}}\n", &k[1..]);
    let go = format!("{{\"content\":\"see \\u003c{k}\\u003e\"}}\n");
    let member = format!("{{\"\\u0061{}\":1}}\n", &k[1..]);
    for doc in [&first, &go, &member] {
        assert!(found(doc, "t.jsonl", &k), "hidden in {doc}");
        assert!(found(doc.trim_end(), "t.json", &k), "hidden in {doc}");
    }
    // Inside a JSON string that is itself JSON (tool-call arguments).
    let inner = format!("{{\"c\":\"\\u0061{}\"}}", &k[1..]);
    let nested = format!(
        "{{\"arguments\":{}}}\n",
        serde_json::to_string(&inner).unwrap()
    );
    assert!(found(&nested, "t.jsonl", &k), "hidden in {nested}");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    // issue 13, finding 5
    #[test]
    fn escaping_any_characters_of_a_key_in_a_json_string_never_hides_it(
        // A real key body is random: a degenerate one (all zeros, say) is a placeholder the
        // scanner rightly leaves alone when no vault recognises it, whatever its escaping.
        body in proptest::collection::vec(any::<u8>(), 32).prop_filter(
            "a key body with the spread of a random one",
            |b| b.iter().collect::<std::collections::HashSet<_>>().len() >= 16,
        ),
        mask in proptest::collection::vec(any::<bool>(), 1..50),
        upper in any::<bool>(),
        before in "[ <(\"'=:]{0,3}",
        after in "[ >)\"',;.]{0,3}",
        jsonl in any::<bool>(),
    ) {
        let k = key(&body);
        let around = format!("{before}{k}{after}");
        let value = escaped(&around, &mask, upper);
        // `before`/`after` may hold a quote: written escaped, the string stays valid JSON.
        let value = value.replace('"', "\\u0022");
        let doc = format!("{{\"role\":\"user\",\"content\":\"{value}\"}}");
        let (doc, name) = if jsonl { (doc + "\n", "s.jsonl") } else { (doc, "s.json") };
        prop_assert!(serde_json::from_str::<serde_json::Value>(doc.trim()).is_ok(), "{}", doc);
        prop_assert!(found(&doc, name, &k), "hidden in {}", doc);
    }
}

/// A fresh fake PEM body: base64 lines of random bytes, 64 characters each.
fn fake_pem() -> String {
    let body = crate::rules::random_chars(
        b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/",
        64 * 6,
    );
    let lines: Vec<&str> = (0..6).map(|i| &body[i * 64..(i + 1) * 64]).collect();
    format!(
        "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
        lines.join("\n")
    )
}

/// `(line, rule)` of every PEM finding in `doc` scanned as `name`.
fn pem_findings(doc: &str, name: &str) -> Vec<(u64, Option<String>)> {
    scan_bytes(
        scanner(),
        None,
        name,
        doc.as_bytes(),
        &ScanOptions::default(),
    )
    .findings
    .into_iter()
    .filter(|f| f.rule == "private-key.pem")
    .map(|f| (f.line, f.json_pointer))
    .collect()
}

// issue 18, item 4: a PEM key in a JSON string (a service-account file) was reported twice,
// at its line and again at line 1, column 1; it is one finding at the `private_key` line.
#[test]
fn a_pem_key_in_a_service_account_file_is_one_finding_at_its_line() {
    let pem = serde_json::to_string(&fake_pem()).unwrap();
    let doc = format!(
        "{{\n  \"type\": \"service_account\",\n  \"project_id\": \"fake-demo\",\n  \
         \"private_key_id\": \"{}\",\n  \"private_key\": {pem},\n  \
         \"client_email\": \"svc@fake-demo.iam.gserviceaccount.com\"\n}}\n",
        crate::rules::random_chars(b"0123456789abcdef", 40)
    );
    let found = pem_findings(&doc, "service-account.json");
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].0, 5, "{found:?}");

    // The same key in an array, and in JSON inside a JSON string (a tool call's arguments)
    // on line 3 of a JSONL transcript: one finding each, on the value's line.
    let inner = serde_json::json!({ "files": [ { "content": fake_pem() } ] }).to_string();
    let record = serde_json::json!({ "type": "tool_use", "input": { "arguments": inner } });
    let jsonl = format!("{{\"type\":\"start\"}}\n{{\"keys\":[{pem}]}}\n{record}\n");
    let found = pem_findings(&jsonl, "session.jsonl");
    let lines: Vec<u64> = found.iter().map(|f| f.0).collect();
    assert_eq!(lines, vec![2, 3], "{found:?}");
}
