//! Breadth check against Kingfisher's rule examples (../shared/peer-suite):
//! `breadth kingfisher-examples.json` prints, per provider, positives found / total and
//! negatives wrongly reported.

use std::collections::BTreeMap;

use vault_scan::{scan_bytes, ScanOptions, Scanner};

fn main() {
    let Some(path) = std::env::args().nth(1) else {
        eprintln!("usage: breadth kingfisher-examples.json");
        std::process::exit(2);
    };
    let text = std::fs::read(&path).unwrap_or_else(|e| {
        eprintln!("cannot read {path}: {e}");
        std::process::exit(2)
    });
    let doc: serde_json::Value = serde_json::from_slice(&text).unwrap_or_else(|e| {
        eprintln!("invalid JSON: {e}");
        std::process::exit(2)
    });
    let scanner = Scanner::builtin().expect("built-in rules compile");
    let opts = ScanOptions::default();
    // provider -> (positives found, positives, negatives reported, negatives)
    let mut per: BTreeMap<String, (u32, u32, u32, u32)> = BTreeMap::new();
    for ex in doc["examples"].as_array().into_iter().flatten() {
        let provider = ex["provider"].as_str().unwrap_or("?").to_string();
        let body = ex["text"].as_str().unwrap_or("");
        let found = !scan_bytes(&scanner, None, "example", body.as_bytes(), &opts)
            .findings
            .is_empty();
        let e = per.entry(provider).or_default();
        if ex["kind"] == "positive" {
            e.1 += 1;
            e.0 += u32::from(found);
        } else {
            e.3 += 1;
            e.2 += u32::from(found);
        }
    }
    let (mut pf, mut pt, mut nf, mut nt, mut prov_hit) = (0, 0, 0, 0, 0);
    for (p, (a, b, c, d)) in &per {
        println!("{p:28} positives {a:3}/{b:3}  negatives reported {c:3}/{d:3}");
        pf += a;
        pt += b;
        nf += c;
        nt += d;
        prov_hit += u32::from(*a > 0);
    }
    println!(
        "TOTAL positives {pf}/{pt}, providers with any positive found {prov_hit}/{}, negatives reported {nf}/{nt}",
        per.len()
    );
}
