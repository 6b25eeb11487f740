//! Matching what an agent sends: the URL, the headers and body bytes run
//! through vault-scan and the vault's known-credential matcher, what a match
//! means for the leak flow, redaction, and the held request's preview.

use hyper::header::{self, HeaderName, HeaderValue};
use vault_core::{SecretBytes, SecretPath, SecretString};
use vault_scan::{Confidence, Match};

use crate::hold::PREVIEW_CHARS;
use crate::refusal::{Code, Refusal};

use super::*;

/// What a scan found, for the leak flow and the refusal.
#[derive(Default)]
pub(super) struct Found {
    pub(super) rules: Vec<String>,
    pub(super) items: Vec<Leaked>,
    /// A finding `redact` cannot rewrite (percent-decoded, past the bound).
    pub(super) unredactable: bool,
}

impl Found {
    pub(super) fn add(&mut self, data: &[u8], matches: &[Match], unredactable: bool) {
        self.unredactable |= unredactable;
        for m in matches {
            if !self.rules.contains(&m.rule) {
                self.rules.push(m.rule.clone());
            }
            if let Some(item) = leaked(data, m) {
                let dup = self.items.iter().any(|i| match (i, &item) {
                    (Leaked::Secret(a, x), Leaked::Secret(b, y)) => {
                        a == b && x.ct_eq(y.expose_secret())
                    }
                    (Leaked::Credential(a), Leaked::Credential(b)) => {
                        a.expose_secret() == b.expose_secret()
                    }
                    _ => false,
                });
                if !dup {
                    self.items.push(item);
                }
            }
        }
    }
}

/// What the vault can act on for a match: a vault credential by its text, a
/// stored secret by path; a provider secret the vault does not hold, nothing.
pub(super) fn leaked(data: &[u8], m: &Match) -> Option<Leaked> {
    if let Some(path) = m
        .managed
        .as_ref()
        .and_then(|i| i.id.strip_prefix("secret:"))
    {
        let value = SecretBytes::from_slice(data.get(m.start..m.end)?);
        return SecretPath::parse(path)
            .ok()
            .map(|p| Leaked::Secret(p, value));
    }
    if m.provider == "vault" {
        let text = std::str::from_utf8(data.get(m.start..m.end)?).ok()?;
        return Some(Leaked::Credential(SecretString::new(text.to_owned())));
    }
    None
}

/// The matches that stop a request: vault credentials (known or not), stored
/// secrets (but the one this rule attaches), high-confidence provider secrets.
pub(super) fn blocking(ob: &Outbound, bound: Option<&SecretPath>, data: &[u8]) -> Vec<Match> {
    let bound_id = bound.map(|p| format!("secret:{p}"));
    ob.scanner
        .find(data, ob.known())
        .into_iter()
        .filter(|m| {
            if let Some(info) = &m.managed {
                return bound_id.as_deref() != Some(info.id.as_str());
            }
            !m.invalid_checksum && (m.provider == "vault" || m.confidence == Confidence::High)
        })
        .collect()
}

pub(super) fn scan_url(
    ob: &Outbound,
    bound: Option<&SecretPath>,
    path_and_query: &mut String,
    redact: bool,
    found: &mut Found,
) -> Result<(), Refusal> {
    let raw = path_and_query.as_bytes();
    let matches = blocking(ob, bound, raw);
    if !matches.is_empty() {
        found.add(raw, &matches, !redact);
        if redact {
            // `<` and `>` may not appear in a request target: percent-encoded there
            let fixed = redact_bytes(raw, &matches)
                .into_iter()
                .flat_map(|b| match b {
                    b'<' => b"%3C".to_vec(),
                    b'>' => b"%3E".to_vec(),
                    b => vec![b],
                })
                .collect();
            *path_and_query = String::from_utf8(fixed).map_err(|_| {
                Refusal::new(Code::BadProxyRequest, "the request target is not text")
            })?;
        }
    }
    if path_and_query.contains('%') {
        let decoded = percent_decode(path_and_query.as_bytes());
        let more = blocking(ob, bound, &decoded);
        if !more.is_empty() {
            found.add(&decoded, &more, true);
        }
    }
    Ok(())
}

pub(super) fn scan_headers(
    ob: &Outbound,
    bound: Option<&SecretPath>,
    headers: &mut hyper::HeaderMap,
    replaced: Option<&HeaderName>,
    redact: bool,
    found: &mut Found,
) -> Result<(), Refusal> {
    // One scan over all of them; header by header only when it found something.
    let mut all = Vec::new();
    for (name, value) in headers.iter() {
        if Some(name) != replaced {
            all.extend_from_slice(value.as_bytes());
            all.push(b'\n');
        }
    }
    if blocking(ob, bound, &all).is_empty() {
        return Ok(());
    }
    for (name, value) in headers.iter_mut() {
        if Some(name) == replaced {
            continue;
        }
        let matches = blocking(ob, bound, value.as_bytes());
        if matches.is_empty() {
            continue;
        }
        found.add(value.as_bytes(), &matches, !redact);
        if redact {
            let fixed = redact_bytes(value.as_bytes(), &matches);
            *value = HeaderValue::from_bytes(&fixed)
                .map_err(|_| Refusal::new(Code::BadProxyRequest, "a header is not text"))?;
        }
    }
    Ok(())
}

/// `data` with each match replaced by `<redacted:RULE>` (overlaps merged).
pub(crate) fn redact_bytes(data: &[u8], matches: &[Match]) -> Vec<u8> {
    let mut sorted: Vec<&Match> = matches.iter().collect();
    sorted.sort_by_key(|m| (m.start, std::cmp::Reverse(m.end)));
    let mut out = Vec::with_capacity(data.len());
    let mut at = 0;
    for m in sorted {
        if m.start < at {
            continue;
        }
        out.extend_from_slice(&data[at..m.start]);
        out.extend_from_slice(format!("<redacted:{}>", m.rule).as_bytes());
        at = m.end;
    }
    out.extend_from_slice(&data[at..]);
    out
}

/// A short, redacted, printable preview of `data` for an approval.
pub(super) fn preview(ob: Option<&Outbound>, data: &[u8]) -> String {
    let Some(ob) = ob else {
        return format!(
            "({} bytes, not shown: no scanner to redact them)",
            data.len()
        );
    };
    let head = &data[..data.len().min(PREVIEW_CHARS * 4)];
    // every match, low confidence included: this is only for a person to read
    let matches = ob.scanner.find(head, ob.known());
    let redacted = redact_bytes(head, &matches);
    let text = String::from_utf8_lossy(&redacted);
    let mut out: String = text
        .chars()
        .take(PREVIEW_CHARS)
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if text.chars().count() > PREVIEW_CHARS || head.len() < data.len() {
        out.push('…');
    }
    out
}

pub(super) fn encoded(headers: &hyper::HeaderMap) -> bool {
    headers
        .get_all(header::CONTENT_ENCODING)
        .iter()
        .any(|v| !v.as_bytes().eq_ignore_ascii_case(b"identity"))
}

pub(super) fn is_form(headers: &hyper::HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.to_ascii_lowercase()
                .starts_with("application/x-www-form-urlencoded")
        })
}

pub(super) fn percent_decode(data: &[u8]) -> Vec<u8> {
    let hex = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    let mut out = Vec::with_capacity(data.len());
    let mut i = 0;
    while i < data.len() {
        match data[i] {
            b'%' if i + 2 < data.len() => match (hex(data[i + 1]), hex(data[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push(h << 4 | l);
                    i += 3;
                    continue;
                }
                _ => out.push(b'%'),
            },
            b'+' => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    out
}

/// Whether `data` holds a JSON string escape that can hide a value's bytes
/// (`\u0067hp_...`, `\/`): agents' JSON encoders emit them for `/`, `+`,
/// `<` or anything non-ASCII, and a prompt can ask for them on purpose.
pub(super) fn has_json_escape(data: &[u8]) -> bool {
    data.windows(2)
        .any(|w| w[0] == b'\\' && matches!(w[1], b'u' | b'/' | b'\\'))
}

/// `data` with JSON string escapes decoded (`\uXXXX`, surrogate pairs
/// included, `\/`, `\\`, `\"`), everything else kept: what a JSON parser
/// upstream would read out of the strings, for the scanner.
pub(super) fn json_unescape(data: &[u8]) -> Vec<u8> {
    let hex4 = |at: usize| -> Option<u16> {
        let digits = std::str::from_utf8(data.get(at..at + 4)?).ok()?;
        u16::from_str_radix(digits, 16).ok()
    };
    let mut out = Vec::with_capacity(data.len());
    let mut i = 0;
    while i < data.len() {
        if data[i] != b'\\' || i + 1 >= data.len() {
            out.push(data[i]);
            i += 1;
            continue;
        }
        match data[i + 1] {
            b'u' => {
                let Some(unit) = hex4(i + 2) else {
                    out.push(b'\\');
                    i += 1;
                    continue;
                };
                let mut units = vec![unit];
                let mut used = 6;
                // a high surrogate takes the low one after it
                if (0xD800..0xDC00).contains(&unit) && data.get(i + 6..i + 8) == Some(b"\\u") {
                    if let Some(low) = hex4(i + 8) {
                        units.push(low);
                        used = 12;
                    }
                }
                for c in char::decode_utf16(units) {
                    let c = c.unwrap_or(char::REPLACEMENT_CHARACTER);
                    out.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes());
                }
                i += used;
            }
            b @ (b'/' | b'\\' | b'"') => {
                out.push(b);
                i += 2;
            }
            _ => {
                out.push(data[i]);
                i += 1;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    // issue 16 remainder: JSON `\u` escapes are decoded before the egress scan
    #[test]
    fn json_escapes_are_decoded_so_an_escaped_value_is_still_found() {
        let ob = outbound();
        // ghp_... with its first letters and an underscore written as \u escapes
        let text = br#"{"prompt":"deploy with \u0067hp\u005fFAKE0000000000000000000000DEMO44l4WV please"}"#;
        assert!(has_json_escape(text));
        assert!(
            blocking(&ob, None, text).is_empty(),
            "escaped: the raw scan misses it"
        );
        let m = blocking(&ob, None, &json_unescape(text));
        assert_eq!(m.len(), 1, "{m:?}");
        assert_eq!(
            json_unescape(br#"a\/b \ud83d\ude00 \"q\" \\ \n \u12"#),
            "a/b \u{1F600} \"q\" \\ \\n \\u12".as_bytes()
        );
    }

    fn outbound() -> Outbound {
        Outbound {
            scanner: Arc::new(Scanner::builtin().unwrap()),
            known: None,
        }
    }

    // issue 16, exfiltration: redaction replaces each value with its rule, keeps the rest
    #[test]
    fn redaction_replaces_each_value_and_keeps_the_text_around_it() {
        let ob = outbound();
        let text = b"{\"prompt\":\"deploy with 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 please\"}";
        let m = blocking(&ob, None, text);
        assert_eq!(m.len(), 1, "{m:?}");
        let out = String::from_utf8(redact_bytes(text, &m)).unwrap();
        assert_eq!(
            out,
            "{\"prompt\":\"deploy with <redacted:github.pat-classic> please\"}"
        );
        assert!(blocking(&ob, None, b"{\"prompt\":\"hello\"}").is_empty());
    }

    // issue 16, exfiltration: percent-encoded values are decoded before scanning
    #[test]
    fn percent_decoding_reveals_encoded_values() {
        assert_eq!(percent_decode(b"a%2Fb+c%zz%4"), b"a/b c%zz%4".to_vec());
    }
}
