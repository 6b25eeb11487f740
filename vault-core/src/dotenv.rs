//! Reading a whole dotenv file for `vault import`: the inverse of
//! [`crate::envfile::dotenv_value`], so what `vault env --format dotenv`
//! writes comes back byte for byte, and the hand-written forms python-dotenv
//! accepts on one line (`export NAME=value`, comments, `NAME = value # note`).
//!
//! Exists apart from [`crate::envfile`] (which edits one variable in place)
//! because an import must account for every line: a line it cannot read is
//! an error naming its line number and never its text, since the text is
//! most likely a secret.

use zeroize::Zeroizing;

use crate::secret::SecretBytes;

/// One `NAME=value` definition.
pub struct Entry {
    /// 1-based line number.
    pub line: usize,
    /// The variable name as written (not yet checked against the secret-name rule).
    pub name: String,
    /// The decoded value.
    pub value: SecretBytes,
}

impl std::fmt::Debug for Entry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Entry")
            .field("line", &self.line)
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// Why a line could not be read. Says what is wrong, never what the line holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LineError {
    /// 1-based line number.
    pub line: usize,
    /// What is wrong.
    pub reason: &'static str,
}

impl std::fmt::Display for LineError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "line {}: {} (the line is not shown)",
            self.line, self.reason
        )
    }
}

/// Parses dotenv text: blank lines and `#` comments are skipped; every other
/// line must be `[export ]NAME=VALUE` where VALUE is bare (trimmed, ` #...`
/// dropped), `'single quoted'` (literal) or `"double quoted"` (`\\ \" \n \r
/// \t` decoded), optionally followed by whitespace and a `# comment`.
///
/// # Errors
/// The first line that is not of that form.
pub fn parse(text: &str) -> Result<Vec<Entry>, LineError> {
    let mut out = Vec::new();
    for (i, raw) in text.split('\n').enumerate() {
        let line = i + 1;
        let err = |reason| LineError { line, reason };
        let l = raw.strip_suffix('\r').unwrap_or(raw).trim();
        if l.is_empty() || l.starts_with('#') {
            continue;
        }
        let l = l.strip_prefix("export ").map_or(l, str::trim_start);
        let Some((name, rest)) = l.split_once('=') else {
            return Err(err("not NAME=value"));
        };
        let name = name.trim_end();
        let rest = rest.trim_start();
        let value = match rest.chars().next() {
            Some(q @ ('\'' | '"')) => {
                let (value, after) =
                    quoted(&rest[1..], q).ok_or_else(|| err("unterminated quote"))?;
                let after = after.trim_start();
                if !(after.is_empty() || after.starts_with('#')) {
                    return Err(err("text after the closing quote"));
                }
                value
            }
            _ => {
                let bare = match rest.find(" #").or_else(|| rest.find("\t#")) {
                    Some(at) => &rest[..at],
                    None => rest,
                };
                Zeroizing::new(bare.trim_end().to_owned())
            }
        };
        out.push(Entry {
            line,
            name: name.to_owned(),
            value: SecretBytes::from_slice(value.as_bytes()),
        });
    }
    Ok(out)
}

/// The value inside quotes `q` and the text after the closing quote.
fn quoted(s: &str, q: char) -> Option<(Zeroizing<String>, &str)> {
    let mut value = Zeroizing::new(String::with_capacity(s.len()));
    let mut chars = s.char_indices();
    while let Some((at, c)) = chars.next() {
        if c == q {
            return Some((value, &s[at + c.len_utf8()..]));
        }
        if c == '\\' && q == '"' {
            match chars.next()?.1 {
                'n' => value.push('\n'),
                'r' => value.push('\r'),
                't' => value.push('\t'),
                other => value.push(other),
            }
        } else {
            value.push(c);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::envfile::dotenv_value;

    fn values(text: &str) -> Vec<(String, String)> {
        parse(text)
            .unwrap()
            .into_iter()
            .map(|e| {
                let v = String::from_utf8(e.value.expose_secret().to_vec()).unwrap();
                (e.name, v)
            })
            .collect()
    }

    #[test]
    fn reads_back_every_form_the_writer_produces() {
        // issue 19, import: the writer's encodings round-trip
        let samples = [
            "avk_abc123",
            "a b $X #c",
            "it's\n",
            "a\\b",
            "say \"hi\" & $HOME",
            "  padded  ",
            "ünïcödé ✓ 秘密",
            "# not a comment",
            "x=y=z",
        ];
        for s in samples {
            let text = format!("K={}\n", dotenv_value(s).unwrap());
            assert_eq!(values(&text), [("K".to_owned(), s.to_owned())], "{text}");
        }
    }

    #[test]
    fn hand_written_forms_and_errors_name_the_line_not_the_text() {
        let text = "# c\n\nexport A = 1 # note\nB='x y'  # c\nC=\"q\\tq\"\r\n";
        assert_eq!(
            values(text),
            [
                ("A".into(), "1".into()),
                ("B".into(), "x y".into()),
                ("C".into(), "q\tq".into())
            ]
        );
        let e = parse("A=1\nsk-live-0123456789abcdef\n").unwrap_err();
        assert_eq!(e.line, 2);
        assert!(!e.to_string().contains("sk-live"));
        assert_eq!(parse("A='open\n").unwrap_err().reason, "unterminated quote");
        assert_eq!(
            parse("A='x' y\n").unwrap_err().reason,
            "text after the closing quote"
        );
    }
}
