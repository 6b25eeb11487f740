//! JSON and JSONL transcripts: secrets hidden by string escapes (`\n`, `\u0041`, `\"`) or
//! inside JSON-in-JSON strings (tool-call arguments) are found by decoding every string and
//! scanning the decoded text. Each such finding points back to the raw file: the exact
//! line and column when the secret's bytes occur there, else the line of the JSON string
//! literal holding it plus the JSON pointer of the string. A decoded match inside a literal
//! where the raw pass already reported the same rule (a PEM key whose `\n` escapes the raw
//! rule accepts) is that finding, not a second one (issue 18, item 4).

use std::collections::{HashMap, HashSet};

use serde_json::Value;

use crate::engine::Scanner;
use crate::finding::{Finding, ScanError};
use crate::known::KnownSecrets;
use crate::stream::Located;

/// Findings that only appear after decoding, and per-file parse errors.
pub(crate) fn decoded_findings(
    scanner: &Scanner,
    known: Option<&dyn KnownSecrets>,
    name: &str,
    data: &[u8],
    raw: &[Located],
) -> (Vec<Finding>, Vec<ScanError>) {
    let mut ctx = Ctx {
        scanner,
        known,
        name,
        data,
        taken: raw
            .iter()
            .map(|l| (l.hit.fingerprint.clone(), l.offset))
            .collect(),
        raw_rules: raw
            .iter()
            .map(|l| (l.hit.rule_id.clone(), l.offset as usize))
            .collect(),
        out: Vec::new(),
        seen_unlocated: HashSet::new(),
        escaped: HashMap::new(),
    };
    let mut errors = Vec::new();
    // A document nested past the decoder's depth limit fails to parse whether valid or not;
    // it is said so (below), not called invalid, and the raw pass has scanned every byte.
    let deep_doc = match serde_json::from_slice::<Value>(data) {
        Ok(v) => {
            escaped_literals(data, Literals::At(0), &mut ctx.escaped);
            ctx.walk(&v, String::new(), 0, data.len(), 1);
            return (ctx.out, errors);
        }
        Err(e) => too_deep(&e),
    };
    let mut offset = 0usize;
    let mut bad_lines = Vec::new();
    let mut deep_lines = Vec::new();
    for (i, line) in data.split(|&b| b == b'\n').enumerate() {
        let start = offset;
        offset += line.len() + 1;
        if line.iter().all(|b| b.is_ascii_whitespace()) {
            continue;
        }
        match serde_json::from_slice::<Value>(line) {
            Ok(v) => {
                escaped_literals(line, Literals::At(start), &mut ctx.escaped);
                ctx.walk(&v, String::new(), start, start + line.len(), i as u64 + 1);
                ctx.escaped.clear();
            }
            Err(e) if too_deep(&e) => deep_lines.push(i + 1),
            Err(_) => bad_lines.push(i + 1),
        }
    }
    let shown = |lines: &[usize]| -> String {
        let s: Vec<String> = lines.iter().take(5).map(|n| n.to_string()).collect();
        format!("{} line(s) ({})", lines.len(), s.join(", "))
    };
    if !bad_lines.is_empty() {
        errors.push(ScanError {
            path: name.into(),
            message: format!(
                "invalid JSON on {}; those lines were scanned as plain text",
                shown(&bad_lines)
            ),
        });
    }
    if deep_doc && deep_lines.is_empty() {
        errors.push(ScanError {
            path: name.into(),
            message: format!(
                "JSON nested deeper than {MAX_DEPTH} levels: scanned as plain text, escapes \
                 not decoded"
            ),
        });
    }
    if !deep_lines.is_empty() {
        errors.push(ScanError {
            path: name.into(),
            message: format!(
                "JSON nested deeper than {MAX_DEPTH} levels on {}: scanned as plain text, \
                 escapes not decoded",
                shown(&deep_lines)
            ),
        });
    }
    (ctx.out, errors)
}

/// serde_json's recursion limit: deeper documents fail to parse, so are not decoded.
const MAX_DEPTH: usize = 128;

fn too_deep(e: &serde_json::Error) -> bool {
    e.to_string().starts_with("recursion limit exceeded")
}

struct Ctx<'a> {
    scanner: &'a Scanner,
    known: Option<&'a dyn KnownSecrets>,
    name: &'a str,
    data: &'a [u8],
    /// (fingerprint, absolute offset) already reported.
    taken: HashSet<(String, u64)>,
    /// (rule id, absolute offset) of every raw finding.
    raw_rules: Vec<(String, usize)>,
    out: Vec<Finding>,
    seen_unlocated: HashSet<(String, String)>,
    /// Decoded values of the string literals written with an escape in the text being
    /// walked (exactly the strings whose decoded text differs from the raw bytes the raw
    /// pass scanned), each with the raw spans `[open quote, close quote]` of the literals
    /// in the file that decode to it.
    escaped: HashMap<String, Vec<(usize, usize)>>,
}

/// Where the literals [`escaped_literals`] finds sit in the file.
#[derive(Clone, Copy)]
enum Literals {
    /// The text is the file's bytes from this offset.
    At(usize),
    /// The text is a decoded string (JSON in JSON) whose raw literal has this span.
    Inside((usize, usize)),
}

/// Adds to `out` the decoded value of every JSON string literal in `text` that holds a
/// backslash escape. A literal without one decodes to its own bytes, which the raw pass
/// has scanned already; one with any escape (`\u0061vk_`, Go's `\u003c`) is scanned
/// again decoded (issue 13, finding 5). `text` is a JSON value serde_json accepted, so
/// quotes outside strings only open strings.
fn escaped_literals(text: &[u8], at: Literals, out: &mut HashMap<String, Vec<(usize, usize)>>) {
    let mut i = 0;
    while let Some(open) = memchr::memchr(b'"', &text[i..]).map(|p| i + p) {
        let mut j = open + 1;
        let mut has_escape = false;
        while j < text.len() {
            match text[j] {
                b'\\' => {
                    has_escape = true;
                    j += 2;
                }
                b'"' => break,
                _ => j += 1,
            }
        }
        let close = j.min(text.len().saturating_sub(1));
        if has_escape {
            if let Ok(s) = serde_json::from_slice::<String>(&text[open..=close]) {
                let span = match at {
                    Literals::At(base) => (base + open, base + close),
                    Literals::Inside(span) => span,
                };
                out.entry(s).or_default().push(span);
            }
        }
        i = close + 1;
        if i >= text.len() {
            break;
        }
    }
}

impl Ctx<'_> {
    fn walk(&mut self, v: &Value, pointer: String, from: usize, to: usize, line: u64) {
        match v {
            Value::String(s) => self.string(s, &pointer, from, to, line),
            Value::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    self.walk(item, format!("{pointer}/{i}"), from, to, line);
                }
            }
            Value::Object(map) => {
                for (k, item) in map {
                    let member = format!("{pointer}/{}", k.replace('~', "~0").replace('/', "~1"));
                    // A member name can hide a key behind escapes as well as a value can.
                    self.string(k, &member, from, to, line);
                    self.walk(item, member, from, to, line);
                }
            }
            _ => {}
        }
    }

    fn string(&mut self, s: &str, pointer: &str, from: usize, to: usize, line: u64) {
        let t = s.trim_start_matches(['\0', ' ', '\n', '\r', '\t']);
        // The raw literal of this string: the first one in the walked region decoding to it.
        let span = self
            .escaped
            .get(s)
            .and_then(|spans| spans.iter().copied().find(|&(a, _)| a >= from && a < to));
        if t.starts_with('{') || t.starts_with('[') {
            if let Ok(inner) = serde_json::from_str::<Value>(t) {
                // The inner document's raw text is this decoded string, all inside its
                // literal (a JSON document in a string always has escaped quotes).
                let at = Literals::Inside(span.unwrap_or((from, from)));
                escaped_literals(t.as_bytes(), at, &mut self.escaped);
                self.walk(&inner, format!("{pointer}#"), from, to, line);
            }
        }
        if !self.escaped.contains_key(s) {
            // Identical bytes sit in the raw text, which the raw pass already scanned.
            return;
        }
        for hit in self.scanner.scan(s.as_bytes(), self.known) {
            let secret = &s.as_bytes()[hit.start..hit.end];
            let region = &self.data[from..to];
            let occurrences: Vec<usize> = find_all(region, secret).map(|p| from + p).collect();
            let free = occurrences
                .iter()
                .copied()
                .find(|&o| !self.taken.contains(&(hit.fingerprint.clone(), o as u64)));
            let (line, column, pointer) = match (occurrences.is_empty(), free) {
                (false, None) => continue,
                (_, Some(o)) => {
                    self.taken.insert((hit.fingerprint.clone(), o as u64));
                    let (l, c) = line_col(self.data, o);
                    (l, c, Some(pointer.to_string()))
                }
                (true, None) => {
                    if let Some((open, close)) = span {
                        // The raw pass reported this rule inside the same literal: the same
                        // secret, already at its real place.
                        if self
                            .raw_rules
                            .iter()
                            .any(|(r, o)| *r == hit.rule_id && (open..=close).contains(o))
                        {
                            continue;
                        }
                    }
                    let key = (
                        hit.fingerprint.clone(),
                        format!("{span:?}:{line}:{pointer}"),
                    );
                    if !self.seen_unlocated.insert(key) {
                        continue;
                    }
                    match span {
                        // The value's own line and column, just inside its opening quote.
                        Some((open, _)) => {
                            let (l, c) = line_col(self.data, open + 1);
                            (l, c, Some(pointer.to_string()))
                        }
                        None => {
                            let (l, _) = line_col(self.data, from);
                            (l.max(line), 1, Some(pointer.to_string()))
                        }
                    }
                }
            };
            self.out.push(Finding {
                invalid_checksum: hit.invalid_checksum,
                path: self.name.into(),
                line,
                column,
                sqlite: None,
                json_pointer: pointer,
                rule: hit.rule_id,
                provider: hit.provider,
                name: hit.rule_name,
                confidence: hit.confidence,
                redacted: hit.redacted,
                fingerprint: hit.fingerprint,
                managed: hit.managed,
            });
        }
    }
}

fn find_all<'h>(hay: &'h [u8], needle: &'h [u8]) -> impl Iterator<Item = usize> + 'h {
    let n = needle.len().max(1);
    hay.windows(n)
        .enumerate()
        .filter(move |(_, w)| *w == needle)
        .map(|(i, _)| i)
}

/// 1-based line and column (Unicode chars) of `offset`.
pub(crate) fn line_col(data: &[u8], offset: usize) -> (u64, u64) {
    let before = &data[..offset.min(data.len())];
    let line = before.iter().filter(|&&b| b == b'\n').count() as u64 + 1;
    let ls = before
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |p| p + 1);
    let col = before[ls..].iter().filter(|&&b| b & 0xC0 != 0x80).count() as u64 + 1;
    (line, col)
}
