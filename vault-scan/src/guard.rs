//! Which keyword hits can start a match, derived from a rule's pattern, so the engine skips
//! the confirm regex for hits that cannot (issue 18: on the CPython stdlib short token
//! prefixes such as `ion_`, `re_`, `dd_` and `b_` occur thousands of times inside
//! identifiers, `function_`, `score_`, `add_`, and each ran a confirm regex that could not
//! match there).
//!
//! A pattern of the form `(?:^|[^A-Za-z0-9_])(ion_...)...`, a boundary then text that always
//! begins with one of the rule's keywords, has that keyword at the start of every match,
//! preceded by the start of input or a byte of the boundary's class. A hit of the rule's
//! keywords preceded by any other byte can still lie inside a match, but that match also holds
//! its leading keyword, whose hit is searched; so skipping the other hit loses nothing. What
//! cannot be shown from the pattern's syntax gets no guard, and every hit is searched.

use regex_syntax::hir::literal::{ExtractKind, Extractor};
use regex_syntax::hir::{Hir, HirKind, Look};

/// The bytes that may stand right before a keyword hit that starts a match; a hit at the
/// input's first byte is always searched.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Guard {
    before: [bool; 256],
}

impl Guard {
    /// Whether a hit starting at `start` in `data` may start a match.
    pub(crate) fn allows(&self, data: &[u8], start: usize) -> bool {
        start == 0 || self.before[usize::from(data[start - 1])]
    }

    /// The guard of a pattern with `keywords` (compared ignoring ASCII case when
    /// `ignore_case`), or `None` when the pattern's syntax does not show one.
    pub(crate) fn derive(pattern: &str, keywords: &[String], ignore_case: bool) -> Option<Guard> {
        let hir = regex_syntax::ParserBuilder::new()
            .unicode(false)
            .utf8(false)
            .build()
            .parse(pattern)
            .ok()?;
        let HirKind::Concat(parts) = hir.kind() else {
            return None;
        };
        let (boundary, rest) = parts.split_first()?;
        let before = boundary_bytes(boundary)?;
        // Every match of the rest must begin with one of the keywords: its prefix literals
        // are finite and each starts with a keyword.
        let rest = Hir::concat(rest.to_vec());
        let seq = Extractor::new().kind(ExtractKind::Prefix).extract(&rest);
        let literals = seq.literals()?;
        let starts_with_keyword = |lit: &[u8]| {
            keywords.iter().any(|k| {
                let k = k.as_bytes();
                lit.len() >= k.len()
                    && if ignore_case {
                        lit[..k.len()].eq_ignore_ascii_case(k)
                    } else {
                        &lit[..k.len()] == k
                    }
            })
        };
        if literals.is_empty() || !literals.iter().all(|l| starts_with_keyword(l.as_bytes())) {
            return None;
        }
        // A `\b` boundary is one only before a word byte: every keyword must begin with one.
        if matches!(boundary.kind(), HirKind::Look(l) if is_word_look(*l))
            && !keywords
                .iter()
                .all(|k| k.as_bytes().first().is_some_and(|b| is_word(*b)))
        {
            return None;
        }
        Some(Guard { before })
    }
}

/// The bytes a leading boundary lets stand before what follows it: `(?:^|[class])`, `^`, or
/// `\b`. `None` for anything else.
fn boundary_bytes(hir: &Hir) -> Option<[bool; 256]> {
    let mut before = [false; 256];
    match hir.kind() {
        HirKind::Alternation(alts) => {
            for alt in alts {
                match alt.kind() {
                    HirKind::Look(look) => add_look(*look, &mut before)?,
                    HirKind::Class(regex_syntax::hir::Class::Bytes(class)) => {
                        for r in class.iter() {
                            for b in r.start()..=r.end() {
                                before[usize::from(b)] = true;
                            }
                        }
                    }
                    _ => return None,
                }
            }
        }
        HirKind::Look(look) => add_look(*look, &mut before)?,
        _ => return None,
    }
    Some(before)
}

/// Adds what `look` lets stand before the next byte (the input's start is always allowed).
fn add_look(look: Look, before: &mut [bool; 256]) -> Option<()> {
    match look {
        Look::Start => {}
        Look::StartLF => before[usize::from(b'\n')] = true,
        Look::StartCRLF => {
            before[usize::from(b'\n')] = true;
            before[usize::from(b'\r')] = true;
        }
        l if is_word_look(l) => {
            for (b, slot) in before.iter_mut().enumerate() {
                *slot = !u8::try_from(b).is_ok_and(is_word);
            }
        }
        _ => return None,
    }
    Some(())
}

fn is_word_look(look: Look) -> bool {
    matches!(
        look,
        Look::WordAscii | Look::WordStartAscii | Look::WordStartHalfAscii
    )
}

fn is_word(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kw(k: &[&str]) -> Vec<String> {
        k.iter().map(|s| (*s).to_string()).collect()
    }

    #[test]
    fn a_bounded_token_prefix_gets_a_guard_that_skips_hits_inside_identifiers() {
        let g = Guard::derive(
            r"(?:^|[^A-Za-z0-9_])(ion_[A-Za-z0-9]{42})(?:[^A-Za-z0-9_-]|$)",
            &kw(&["ion_"]),
            false,
        )
        .expect("a guard");
        let data = b"function_x = 1; key=ion_abc";
        assert!(!g.allows(data, 4), "`ion_` inside `function_`");
        assert!(g.allows(data, 20), "after `=`");
        assert!(g.allows(b"ion_abc", 0), "at the input's start");
    }

    #[test]
    fn a_name_keyed_alternation_gets_a_case_insensitive_guard() {
        let g = Guard::derive(
            r"(?:^|[^A-Za-z])(?i:datadog|dd_|dd-)[\w. \t-]{0,24}?(?i:key|token)=([A-Za-z0-9]{16,64})",
            &kw(&["datadog", "dd_", "dd-"]),
            true,
        )
        .expect("a guard");
        assert!(!g.allows(b"add_key", 1));
        assert!(g.allows(b"1DD_API_KEY", 1), "a digit is not a letter here");
    }

    #[test]
    fn patterns_that_do_not_show_the_keyword_at_the_start_get_no_guard() {
        // The keyword is context before the match.
        assert!(Guard::derive(
            r"(?:^|[^A-Za-z0-9_:]|bot)([0-9]{8,10}:[A-Za-z0-9_-]{35})",
            &kw(&["bot"]),
            true
        )
        .is_none());
        // The keyword is in the middle.
        assert!(Guard::derive(r"(?:^|\s)[a-z]+://[^@]+@", &kw(&["://"]), false).is_none());
        // No leading boundary.
        assert!(Guard::derive(r"ghp_[A-Za-z0-9]{36}", &kw(&["ghp_"]), false).is_none());
        // A case-sensitive keyword the pattern spells in another case.
        assert!(Guard::derive(r"(?:^|[^a-z])(?i:sg\.)[a-z]{4}", &kw(&["SG."]), false).is_none());
        // `\b` before a keyword that starts with a non-word byte is no boundary.
        assert!(Guard::derive(r"\b(-abc)", &kw(&["-abc"]), false).is_none());
    }

    #[test]
    fn a_word_boundary_allows_only_non_word_bytes_before() {
        let g = Guard::derive(r"\b(tok_[a-z]{8})", &kw(&["tok_"]), false).expect("a guard");
        assert!(!g.allows(b"xtok_", 1));
        assert!(g.allows(b" tok_", 1));
        assert!(g.allows(b"-tok_", 1));
    }
}
