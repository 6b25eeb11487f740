//! Every rule's own examples and negative examples (Nosey Parker checks these too).

use std::collections::HashSet;

use vault_scan::{builtin_rules, scan_bytes, ScanOptions};

use crate::scanner;

#[test]
fn at_least_150_rules_with_unique_ids() {
    let rules = builtin_rules().unwrap();
    assert!(rules.len() >= 150, "{} rules", rules.len());
    let ids: HashSet<_> = rules.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids.len(), rules.len(), "duplicate rule ids");
    scanner().check().unwrap();
}

#[test]
fn every_example_is_found_by_its_rule() {
    let mut failures = Vec::new();
    for rule in builtin_rules().unwrap() {
        assert!(!rule.examples.is_empty(), "{} has no examples", rule.id);
        for ex in &rule.examples {
            let r = scan_bytes(
                scanner(),
                None,
                "snippet.txt",
                ex.as_bytes(),
                &ScanOptions::default(),
            );
            // One value, one finding (issue 18): a keyed rule's example that is also the
            // same provider's documented format, or matches its other keyed rule, is
            // reported once, by the other rule.
            let keyed_twin = rule.id.ends_with("keyed")
                && r.findings
                    .iter()
                    .any(|f| f.provider == rule.provider && f.rule != rule.id);
            if !keyed_twin && !r.findings.iter().any(|f| f.rule == rule.id) {
                failures.push(format!("{}: {ex}", rule.id));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "examples not found:\n{}",
        failures.join("\n")
    );
}

#[test]
fn no_negative_example_is_found_by_its_rule() {
    let mut failures = Vec::new();
    for rule in builtin_rules().unwrap() {
        for ex in &rule.negative_examples {
            let r = scan_bytes(
                scanner(),
                None,
                "snippet.txt",
                ex.as_bytes(),
                &ScanOptions::default(),
            );
            if r.findings.iter().any(|f| f.rule == rule.id) {
                failures.push(format!("{}: {ex}", rule.id));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "negatives found:\n{}",
        failures.join("\n")
    );
}

#[test]
fn placeholders_are_not_findings() {
    for text in [
        "aws_access_key_id = AKIAIOSFODNN7EXAMPLE",
        "OPENAI_API_KEY=sk-xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
        "api_key = <YOUR_API_KEY>",
        "api_key = ${API_KEY}",
        "api_key = os.environ['API_KEY']",
        "token: ghp_************************************",
        "VAULT=avk_FAKE000000000000000000000000DEMO1ccykh",
    ] {
        let r = scan_bytes(
            scanner(),
            None,
            "x.txt",
            text.as_bytes(),
            &ScanOptions::default(),
        );
        assert!(r.findings.is_empty(), "{text}: {:?}", r.findings);
    }
}

#[test]
fn checksum_decides_existence_for_github_and_vault() {
    let opts = ScanOptions::default();
    let good = scan_bytes(
        scanner(),
        None,
        "a",
        b"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",
        &opts,
    );
    assert_eq!(good.findings[0].confidence.as_str(), "high");
    // issue 18, item 2: a failed checksum is not a GitHub token; only asked for, it is low.
    let bad_text: &[u8] = b"ghp_FAKE0000000000000000000000DEMO44l4WW";
    let bad = scan_bytes(scanner(), None, "a", bad_text, &opts);
    assert!(bad.findings.is_empty(), "{:?}", bad.findings);
    let with_invalid = ScanOptions {
        include_invalid: true,
        ..ScanOptions::default()
    };
    let bad = scan_bytes(scanner(), None, "a", bad_text, &with_invalid);
    assert_eq!(bad.findings[0].confidence.as_str(), "low");
    assert!(bad.findings[0].invalid_checksum);
    let avt = scan_bytes(
        scanner(),
        None,
        "a",
        b"avt_FAKE0000000000000000000000000000000000000000DEMO1kwPkg",
        &opts,
    );
    assert_eq!(avt.findings[0].rule, "vault.token");
}

#[test]
fn inline_allow_comment_suppresses() {
    let text = b"GH=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 # vault:allow\n";
    let r = scan_bytes(scanner(), None, "a", text, &ScanOptions::default());
    assert!(r.findings.is_empty());
}

/// `n` random characters of `alphabet`, drawn at test time (never a real secret).
pub(crate) fn random_chars(alphabet: &[u8], n: usize) -> String {
    use ring::rand::SecureRandom;
    let rng = ring::rand::SystemRandom::new();
    let mut bytes = vec![0u8; n];
    rng.fill(&mut bytes).unwrap();
    // A little modulo bias is harmless in a test value.
    bytes
        .iter()
        .map(|b| alphabet[usize::from(*b) % alphabet.len()] as char)
        .collect()
}

const BASE64URL: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

fn rules_found(text: &str) -> Vec<String> {
    scan_bytes(
        scanner(),
        None,
        "x.env",
        text.as_bytes(),
        &ScanOptions::default(),
    )
    .findings
    .into_iter()
    .map(|f| f.rule)
    .collect()
}

// issue 18, item 1: PyPI tokens are macaroons whose length grows with their caveats; the
// rule once accepted exactly 60 characters after the prefix, so real ones were never found.
#[test]
fn pypi_tokens_of_every_macaroon_length_are_found() {
    for (prefix, rule) in [
        ("pypi-AgEIcHlwaS5vcmc", "pypi.upload-token"),
        ("pypi-AgENdGVzdC5weXBpLm9yZw", "pypi.test-upload-token"),
    ] {
        for len in [90, 168, 199, 400] {
            let token = format!("{prefix}{}", random_chars(BASE64URL, len));
            let found = rules_found(&format!("TWINE_PASSWORD={token}\n"));
            assert!(
                found.iter().any(|r| r == rule),
                "{rule}: {len}-char body not found"
            );
        }
    }
}

// issue 18, item 1: the other formats whose documented length is not fixed (Vault service
// and batch tokens, Google OAuth refresh tokens, Facebook access tokens).
#[test]
fn variable_length_tokens_are_found_at_lengths_seen_in_use() {
    const ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    for (prefix, alphabet, lens, rule) in [
        (
            "hvs.",
            BASE64URL,
            &[91, 95, 120][..],
            "hashicorp.vault-service-token",
        ),
        (
            "hvb.",
            BASE64URL,
            &[138, 160, 300][..],
            "hashicorp.vault-batch-token",
        ),
        (
            "1//0",
            BASE64URL,
            &[99, 103][..],
            "google.oauth-refresh-token",
        ),
        (
            "EAACEdEose0cBA",
            ALNUM,
            &[60, 180][..],
            "facebook.access-token",
        ),
    ] {
        for &len in lens {
            let token = format!("{prefix}{}", random_chars(alphabet, len));
            let found = rules_found(&format!("TOKEN={token}\n"));
            assert!(
                found.iter().any(|r| r == rule),
                "{rule}: {len}-char body not found"
            );
        }
    }
}

const BASE62: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// A fresh token of GitHub's documented shape: `prefix`, `body_len` random base62
/// characters, then the CRC32 of the body as 6 base62 digits.
fn checksummed(prefix: &str, body_len: usize) -> String {
    let body = random_chars(BASE62, body_len);
    let check = vault_scan::crc32_base62(body.as_bytes());
    format!(
        "{prefix}{body}{}",
        String::from_utf8(check.to_vec()).unwrap()
    )
}

/// `token` with its last checksum character changed, so the checksum fails.
fn broken(token: &str) -> String {
    let mut t = token.to_string();
    let last = t.pop().unwrap();
    t.push(if last == 'A' { 'B' } else { 'A' });
    t
}

// issue 18, item 2: GitHub and npm document a CRC32 checksum in every token, so a value of
// the shape whose checksum fails is not their token: not reported by default, reported at
// low confidence and marked with `include_invalid`; valid fresh tokens are high.
#[test]
fn github_and_npm_tokens_failing_their_checksum_are_not_findings_by_default() {
    let with_invalid = ScanOptions {
        include_invalid: true,
        ..ScanOptions::default()
    };
    for (prefix, body_len, rule) in [
        ("ghp_", 30, "github.pat-classic"),
        ("gho_", 30, "github.oauth-token"),
        ("ghu_", 30, "github.user-to-server-token"),
        ("ghs_", 30, "github.server-to-server-token"),
        ("ghr_", 30, "github.refresh-token"),
        ("ghr_", 70, "github.refresh-token"),
        ("npm_", 30, "npm.access-token"),
    ] {
        for _ in 0..8 {
            let good = checksummed(prefix, body_len);
            let bad = broken(&good);
            let scan = |t: &str, o: &ScanOptions| {
                scan_bytes(
                    scanner(),
                    None,
                    "x.env",
                    format!("TOKEN={t}\n").as_bytes(),
                    o,
                )
                .findings
                .into_iter()
                .filter(|f| f.rule == rule)
                .collect::<Vec<_>>()
            };
            let found = scan(&good, &ScanOptions::default());
            assert_eq!(found.len(), 1, "{rule}: valid token not found");
            assert_eq!(found[0].confidence.as_str(), "high");
            assert!(!found[0].invalid_checksum);
            assert!(
                scan(&bad, &ScanOptions::default()).is_empty(),
                "{rule}: bad checksum reported"
            );
            let found = scan(&bad, &with_invalid);
            assert_eq!(found.len(), 1, "{rule}: --include-invalid lost it");
            assert_eq!(found[0].confidence.as_str(), "low");
            assert!(found[0].invalid_checksum);
            // The JSON output says why it is there.
            let json = serde_json::to_value(&found[0]).unwrap();
            assert_eq!(json["invalid_checksum"], true);
        }
    }
}

// issue 18, item 3: documented examples are not findings (the rules' negative examples hold
// the published values), but the same shapes with fresh secrets still are.
#[test]
fn documentation_examples_are_not_findings_but_fresh_values_in_their_place_are() {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let jwt_io = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiaWF0IjoxNTE2MjM5MDIyfQ.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c";
    assert!(!rules_found(&format!("Bearer {jwt_io}")).contains(&"jwt".to_string()));
    let payload = b64.encode(format!(
        r#"{{"sub":"{}","name":"John Doe"}}"#,
        random_chars(BASE62, 12)
    ));
    let fresh = format!(
        "eyJhbGciOiJIUzI1NiJ9.{payload}.{}",
        random_chars(BASE64URL, 43)
    );
    assert!(rules_found(&format!("Bearer {fresh}")).contains(&"jwt".to_string()));

    for url in [
        "postgres://user:pass@localhost:5432/db",
        "mysql://foo:bar@example.com/db",
        "mongodb://username:password@127.0.0.1:27017/app",
    ] {
        let found = rules_found(&format!("DATABASE_URL={url}"));
        assert!(
            !found.contains(&"database.url-with-password".to_string()),
            "{url}"
        );
    }
    let password = random_chars(BASE62, 20);
    for url in [
        format!("postgres://user:{password}@localhost:5432/db"),
        "postgres://user:pass@db.prod.internal:5432/db".to_string(),
    ] {
        let found = rules_found(&format!("DATABASE_URL={url}"));
        assert!(
            found.contains(&"database.url-with-password".to_string()),
            "{url}"
        );
    }

    let pinpoint_id = random_chars(b"0123456789abcdef", 32);
    let found = rules_found(&format!(r#"{{"SegmentId": "{pinpoint_id}"}}"#));
    assert!(!found.contains(&"segment.keyed".to_string()));
    let write_key = random_chars(BASE62, 32);
    let found = rules_found(&format!("SEGMENT_WRITE_KEY={write_key}"));
    assert!(found.contains(&"segment.keyed".to_string()));
}

// issue 18, item 3: identifier-only rules are gone. A Twilio account SID (AC...) or API key
// SID (SK...) names an account or key; the secret is its auth token or key secret.
#[test]
fn a_twilio_account_or_key_sid_alone_is_not_a_finding() {
    let hex = random_chars(b"0123456789abcdef", 32);
    for text in [
        format!("TWILIO_ACCOUNT_SID=AC{hex}\n"),
        format!("const twilioApiKeySid = 'SK{hex}'\n"),
    ] {
        let r = scan_bytes(
            scanner(),
            None,
            "src/app.js",
            text.as_bytes(),
            &ScanOptions::default(),
        );
        assert!(r.findings.is_empty(), "{text}: {:?}", r.findings);
    }
    let rules = builtin_rules().unwrap();
    assert!(!rules.iter().any(|r| r.id == "twilio.account-sid"));
}

// issue 18, breadth: a credential named after its provider (`MAILERLITE_API_KEY=`,
// `bugsnag secret ...`) is found whatever its shape, once, at medium confidence; what sits
// there but is code or an identifier is not (the generic rules' value-shape checks).
#[test]
fn a_credential_named_for_its_provider_is_found_and_code_under_that_name_is_not() {
    let value = random_chars(
        b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789",
        32,
    );
    for (text, rule) in [
        (
            format!("MAILERLITE_API_KEY=\"{value}\"\n"),
            "mailerlite.name-keyed",
        ),
        (format!("bugsnag secret {value}\n"), "bugsnag.name-keyed"),
        (
            format!("paydirtapp SECRET key {value}\n"),
            "paydirt.name-keyed",
        ),
        (format!("  deepgramKEY: '{value}'\n"), "deepgram.name-keyed"),
    ] {
        let r = scan_bytes(
            scanner(),
            None,
            "config/app.env",
            text.as_bytes(),
            &ScanOptions::default(),
        );
        assert_eq!(r.findings.len(), 1, "{text}: {:?}", r.findings);
        assert_eq!(r.findings[0].rule, rule, "{text}");
        assert_eq!(r.findings[0].confidence.as_str(), "medium", "{text}");
    }
    for text in [
        "mailerlite_api_key = settings.mailerlite_api_key\n",
        "MAILERLITE_API_KEY=\"${MAILERLITE_API_KEY}\"\n",
        "bugsnag_api_key = os.environ.get('BUGSNAG_API_KEY')\n",
        "let datadogApiKey = loadDatadogApiKeyFromEnvironment(config)\n",
        "the bugsnag token is described in docs/bugsnag_configuration_reference\n",
        // Seen on real code (a crate's .gitlab-ci.yml): `path` is no `pat`, a file no value.
        "    - cargo codeclimate --clippy --codeclimate-path gl-code-quality-report.json\n",
        "    - gitlab-cargo-audit --output-path gl-dep-report.json\n",
    ] {
        let r = scan_bytes(
            scanner(),
            None,
            "config/app.env",
            text.as_bytes(),
            &ScanOptions::default(),
        );
        assert!(r.findings.is_empty(), "{text}: {:?}", r.findings);
    }
}

// issue 18, breadth: URL passwords are read for FTP, SMB, LDAP and postgis too, and a
// password may hold `@`; on a documentation domain (RFC 2606) no password is real, whatever
// it looks like (the url crate's docs: `ftp://rms:secret123@example.com`).
#[test]
fn url_passwords_are_found_for_more_schemes_but_not_on_documentation_domains() {
    let pw = random_chars(
        b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789",
        16,
    );
    for text in [
        format!("ftp://deploy:{pw}@ftp.fake-corp.net/in"),
        format!("CONNECTION_URI=\"postgis://gis:{pw}@x@db.fake-corp.net:5434/geo\""),
        format!("ldaps://cn=admin:{pw}@ldap.fake-corp.net"),
    ] {
        let r = scan_bytes(
            scanner(),
            None,
            "src/app.rs",
            text.as_bytes(),
            &ScanOptions::default(),
        );
        assert_eq!(r.findings.len(), 1, "{text}: {:?}", r.findings);
        assert_eq!(r.findings[0].rule, "database.url-with-password", "{text}");
    }
    for text in [
        format!("/// let url = Url::parse(\"ftp://rms:{pw}@example.com\")?;"),
        format!("ftp://user1:{pw}@files.example.org/"),
        "ftp://rms:secret123@example.com".to_string(),
    ] {
        let r = scan_bytes(
            scanner(),
            None,
            "src/lib.rs",
            text.as_bytes(),
            &ScanOptions::default(),
        );
        assert!(r.findings.is_empty(), "{text}: {:?}", r.findings);
    }
}

/// The whole match of `rule`'s pattern on `text`, compiled as the engine compiles it.
fn whole_matches(rule: &vault_scan::Rule, text: &str) -> Vec<std::ops::Range<usize>> {
    let pattern = rule.pattern.replace(
        "VAULT_TOKEN_MAX_BODY",
        &(vault_scan::VAULT_TOKEN_MAX_LEN - 4).to_string(),
    );
    let re = regex::bytes::RegexBuilder::new(&pattern)
        .unicode(false)
        .build()
        .unwrap();
    re.find_iter(text.as_bytes()).map(|m| m.range()).collect()
}

// issue 18, rules as data: a bounded pattern's windows are derived from its longest match,
// which is sound only if every match holds one of the rule's keywords: checked on every
// example, so a rule whose keyword sits outside its match cannot slip in unnoticed.
#[test]
fn derived_windows_hold_every_match_because_every_match_holds_a_keyword() {
    let mut failures = Vec::new();
    let mut derived = 0;
    for rule in builtin_rules().unwrap() {
        let w = rule.windows().unwrap();
        if !w.derived {
            assert!(
                rule.max_match_len().unwrap().is_none(),
                "{}: stated windows on a bounded pattern",
                rule.id
            );
            continue;
        }
        derived += 1;
        for ex in &rule.examples {
            for m in whole_matches(&rule, ex) {
                // Context keywords (`keyword_distance`) must lie within that distance.
                let d = rule.keyword_distance.unwrap_or(0);
                let hay = &ex.as_bytes()[m.start.saturating_sub(d)..(m.end + d).min(ex.len())];
                let holds = rule.keywords.iter().any(|k| {
                    hay.windows(k.len()).any(|w| {
                        if rule.ignore_case {
                            w.eq_ignore_ascii_case(k.as_bytes())
                        } else {
                            w == k.as_bytes()
                        }
                    })
                });
                if !holds {
                    failures.push(format!("{}: {ex}", rule.id));
                }
                assert!(m.len() <= w.before + w.after, "{}: {ex}", rule.id);
            }
        }
    }
    assert!(derived >= 150, "{derived} rules with derived windows");
    assert!(
        failures.is_empty(),
        "a match without its keyword (derived windows would not hold it):\n{}",
        failures.join("\n")
    );
}

// issue 18, rules as data: windows are not written by hand where the pattern bounds them; a
// stated one would go stale the day the pattern's length changes.
#[test]
fn a_window_stated_for_a_bounded_pattern_is_refused() {
    let text = r#"
[[rule]]
id = "example.token"
provider = "example"
name = "Example token"
description = "ex_ and 40 hex characters."
references = ["https://example.com/docs/tokens"]
pattern = '''ex_[a-f0-9]{40}'''
keywords = ["ex_"]
window = 60
examples = ["ex_deadbeef00000000000000000000000000000beef"]
"#;
    let rules = vault_scan::parse_rules(text).unwrap();
    let err = vault_scan::Scanner::new(rules.clone())
        .unwrap()
        .check()
        .unwrap_err();
    assert!(err.to_string().contains("derived"), "{err}");
    let mut unbounded = rules;
    unbounded[0].pattern = "ex_[a-f0-9]{40,}".into();
    vault_scan::Scanner::new(unbounded)
        .unwrap()
        .check()
        .unwrap();
}

// issue 18, rules as data: the longest vault token is found whole with no window stated
// anywhere (the rule used to have one set in code); its window is derived from the pattern.
#[test]
fn the_longest_vault_token_is_found_through_its_derived_window() {
    let body = random_chars(
        b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz",
        vault_scan::VAULT_TOKEN_MAX_LEN - 4 - 6,
    );
    let check = vault_scan::crc32_base62(body.as_bytes());
    let token = format!("avt_{body}{}", std::str::from_utf8(&check).unwrap());
    assert_eq!(token.len(), vault_scan::VAULT_TOKEN_MAX_LEN);
    let text = format!("{}\nVAULT_TOKEN={token}\n", "x ".repeat(3000));
    let r = scan_bytes(
        scanner(),
        None,
        "app.env",
        text.as_bytes(),
        &ScanOptions::default(),
    );
    assert_eq!(r.findings.len(), 1, "{:?}", r.findings);
    assert_eq!(r.findings[0].rule, "vault.token");
    assert_eq!(r.findings[0].column, 13);
}

// issue 18, rules as data: no two rules claim one provider format. Every example's value is
// reported by its own rule alone, unless the rules declare the overlap with a reason.
#[test]
fn no_two_rules_claim_one_value_unless_the_overlap_is_declared() {
    let rules = builtin_rules().unwrap();
    let declared = |a: &str, b: &str| {
        let says = |x: &str, y: &str| {
            rules.iter().any(|r| {
                r.id == x
                    && r.overlaps
                        .iter()
                        .any(|o| o.rule == y && !o.reason.is_empty())
            })
        };
        says(a, b) || says(b, a)
    };
    let mut failures = std::collections::BTreeSet::new();
    for rule in &rules {
        for ex in &rule.examples {
            let found = scanner().find(ex.as_bytes(), None);
            for own in found.iter().filter(|m| m.rule == rule.id) {
                for other in &found {
                    let overlapping = other.start < own.end && own.start < other.end;
                    if other.rule != rule.id && overlapping && !declared(&rule.id, &other.rule) {
                        failures.insert(format!("{} and {}: {ex}", rule.id, other.rule));
                    }
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "values claimed by two rules (declare `overlaps` with a reason, or narrow one):\n{}",
        failures.into_iter().collect::<Vec<_>>().join("\n")
    );
}

// issue 18, rules as data: every rule names the provider's documentation of its format
// (an https URL, or for the vault's own formats a file of this repository). Name-keyed
// rules claim no format, only that a value sits under the provider's name; they cite the
// provider's documentation of its API key. The few whose documentation page this project
// could not name are listed here: the list may only shrink.
const WITHOUT_REFERENCE: &[&str] = &[
    "ecostruxure.name-keyed",
    "getemail.name-keyed",
    "instabot.name-keyed",
    "runscope.name-keyed",
    "speechtext.name-keyed",
];

#[test]
fn every_rule_names_the_providers_documentation() {
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut failures = Vec::new();
    let mut exempt = Vec::new();
    for rule in builtin_rules().unwrap() {
        for r in &rule.references {
            if !(r.starts_with("https://") || repo.join(r).is_file()) {
                failures.push(format!(
                    "{}: {r} is neither an https URL nor a file here",
                    rule.id
                ));
            }
        }
        if rule.references.is_empty() {
            if WITHOUT_REFERENCE.contains(&rule.id.as_str()) {
                exempt.push(rule.id.clone());
            } else {
                failures.push(format!("{}: no reference", rule.id));
            }
        } else if WITHOUT_REFERENCE.contains(&rule.id.as_str()) {
            failures.push(format!(
                "{}: has a reference now; remove it from WITHOUT_REFERENCE",
                rule.id
            ));
        }
        assert!(
            !rule.description.trim().is_empty(),
            "{}: no description",
            rule.id
        );
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // Every listed id is a rule (a removed rule leaves the list too).
    assert_eq!(exempt.len(), WITHOUT_REFERENCE.len(), "{exempt:?}");
}

// issue 18, rules as data (found by the overlap check above): a provider's name inside a
// longer name is not that provider. `box` in DROPBOX_API_KEY, MAPBOX_API_KEY or
// KICKBOX_API_KEY named Box; keyed rules now start their name at a word's start, as the
// name-keyed ones do.
#[test]
fn a_providers_name_inside_a_longer_name_is_not_that_provider() {
    let value = random_chars(BASE64URL, 32).replace(['-', '_'], "x");
    for name in [
        "DROPBOX_TOKEN",
        "MAPBOX_API_KEY",
        "KICKBOX_API_KEY",
        "DATABOX_API_KEY",
    ] {
        let text = format!("{name}=\"{value}\"");
        assert!(
            !rules_found(&text).iter().any(|r| r == "box.keyed"),
            "{text}: {:?}",
            rules_found(&text)
        );
    }
    let text = format!("BOX_TOKEN=\"{value}\"");
    assert!(
        rules_found(&text).iter().any(|r| r == "box.keyed"),
        "{text}"
    );
}
