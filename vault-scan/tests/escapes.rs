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
