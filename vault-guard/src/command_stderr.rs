//! What a failed rotation command wrote to stderr, shown to the person who
//! ran `vault rotate AGENT/NAME` by hand (issue 19: "its stderr is hidden
//! even on a terminal in a manual run"). The rule: a manual run shows it,
//! whether stderr is a terminal or not (a person who ran the command asked
//! for its outcome, and a script that captured it may need it too); a run
//! nobody watches (the watcher's automatic rotation, an approval carried out
//! later, the server) records only how the command ended, never its stderr.
//!
//! Before it is shown it is bounded (its last [`MAX_LINES`] lines, at most
//! [`MAX_CHARS`] characters) and redacted: vault-core has already cut out the
//! old value and whatever the command printed; here every match of the
//! scanner's rules, and every word [`crate::redact::sensitive_words`] flags,
//! becomes `[redacted]`.

/// Lines of stderr shown at most (its last ones).
pub const MAX_LINES: usize = 8;
/// Characters of stderr shown at most.
pub const MAX_CHARS: usize = 800;

/// `vault rotate AGENT/NAME`: runs the secret's rotation command now, as the
/// operator, and on its failure says what it wrote to stderr ([`with_stderr`]).
/// Returns the new version.
pub fn rotate_by_hand(
    vault: &mut vault_core::Vault,
    path: &vault_core::SecretPath,
) -> crate::Result<i64> {
    vault
        .rotate_secret(&vault_core::Principal::Operator, path)
        .map_err(with_stderr)
}

/// `e` as the person who ran the rotation by hand should read it: a
/// [`vault_core::Error::CommandFailed`] gains the redacted tail of the
/// command's stderr (and becomes a refusal with that message); any other
/// error passes through unchanged.
pub fn with_stderr(e: vault_core::Error) -> crate::Error {
    let vault_core::Error::CommandFailed { stderr, .. } = &e else {
        return e.into();
    };
    match excerpt(stderr.expose()) {
        Some(tail) => crate::Error::Refused(format!(
            "{e}; the old value stays current. Its stderr (last lines, secrets redacted): {tail}"
        )),
        None => crate::Error::Refused(format!(
            "{e}; the old value stays current. It wrote nothing to stderr"
        )),
    }
}

/// The redacted, bounded tail of `stderr`, its lines joined by ` | `; None
/// when it holds nothing but white space.
pub fn excerpt(stderr: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(stderr);
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim_end)
        .filter(|l| !l.trim().is_empty())
        .collect();
    let tail = lines[lines.len().saturating_sub(MAX_LINES)..].join(" | ");
    if tail.is_empty() {
        return None;
    }
    // Redacted whole, then cut to size: a cut made first could fall inside a
    // secret and leave a piece too short for any rule to know (issue 19).
    // The tail is small (vault-core keeps the last 4 KiB of stderr).
    let tail = redact(&tail);
    let n = tail.chars().count();
    Some(if n > MAX_CHARS {
        let kept: String = tail.chars().skip(n - MAX_CHARS).collect();
        format!("…{kept}")
    } else {
        tail
    })
}

/// `text` with every scanner match and every sensitive word replaced by
/// `[redacted]` (one scanner, built once).
fn redact(text: &str) -> String {
    let mut bytes = text.as_bytes().to_vec();
    if let Some(scanner) = crate::redact::builtin_scanner() {
        let mut matches = scanner.find(&bytes, None);
        matches.sort_by_key(|m| std::cmp::Reverse(m.start));
        for m in matches {
            if m.end <= bytes.len() && m.start < m.end {
                bytes.splice(m.start..m.end, b"[redacted]".iter().copied());
            }
        }
    }
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let mut words: Vec<String> = text.split_whitespace().map(str::to_owned).collect();
    words.sort();
    words.dedup();
    let flagged = crate::redact::sensitive_words(words);
    text.split_inclusive(char::is_whitespace)
        .map(|piece| {
            let word = piece.trim_end();
            if flagged.iter().any(|f| f == word) {
                format!("[redacted]{}", &piece[word.len()..])
            } else {
                piece.to_owned()
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_are_redacted_and_the_tail_is_kept() {
        let stderr = b"line 1\nline 2\nline 3\nline 4\nline 5\nline 6\nline 7\n\
            curl: token ghp_1234567890abcdefghijABCDEFGHIJ012345 refused\n\
            also Zx8Qp2Lk9Wm4Rt7Yb3Nc6Vd1 and KEY=secretvalue\n\
            error: 401 Unauthorized\n";
        let got = excerpt(stderr).unwrap();
        assert!(!got.contains("ghp_1234"), "{got}");
        assert!(!got.contains("Zx8Qp2"), "{got}");
        assert!(!got.contains("secretvalue"), "{got}");
        assert!(got.contains("error: 401 Unauthorized"), "{got}");
        assert!(got.starts_with("line 3 | "), "{got}");
        assert_eq!(got.matches("[redacted]").count(), 3, "{got}");
    }

    // issue 19: the excerpt was cut to 4 x 800 characters before redaction, so
    // a secret across that edge lost its prefix and showed in part
    #[test]
    fn a_secret_across_the_old_cut_edge_is_redacted_whole() {
        let body: String = "Qm7Xp2Lr9Tz4Wc8Yb1Nd6Vf3Hk5Js0Ga".repeat(2);
        let secret = format!("avt_{}", &body[..60]);
        let other = format!("avt_{}", "Rk3Lm8Np2Qs7Tv1Wx6Yz4Bc9Df5Gh0Jk".repeat(5));
        let other = &other[..158];
        // the old cut began 20 characters before the secret's end
        let mut line = secret.clone();
        for _ in 0..20 {
            line.push(' ');
            line.push_str(other);
        }
        assert_eq!(line.len() - MAX_CHARS * 4, secret.len() - 20);
        let got = excerpt(line.as_bytes()).unwrap();
        for piece in secret.as_bytes().windows(8) {
            let piece = std::str::from_utf8(piece).unwrap();
            assert!(!got.contains(piece), "{piece:?} shown in {got}");
        }
        assert_eq!(got.matches("[redacted]").count(), 21, "{got}");
    }

    #[test]
    fn a_long_stderr_is_bounded_and_an_empty_one_is_none() {
        let long = "x ".repeat(5000);
        let got = excerpt(long.as_bytes()).unwrap();
        assert!(got.chars().count() <= MAX_CHARS + 1, "{}", got.len());
        assert_eq!(excerpt(b"  \n\n"), None);
    }
}
