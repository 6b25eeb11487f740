//! Text for a person's terminal. Much of what the vault prints was written by
//! someone else (file names, rotation commands, audit targets, agent names
//! from a synced vault); a newline in it would forge a line of `vault
//! approvals` or `vault audit log`, an ANSI escape could repaint the screen.
//! Every human-readable printer passes such text through [`safe`], which
//! shows control characters as visible escapes. JSON output needs none of
//! this: the JSON encoder already escapes them.

use std::borrow::Cow;
use std::fmt;

/// Whether `c` must not reach a terminal raw: C0 and C1 controls, DEL, the
/// Unicode line and paragraph separators and the bidirectional overrides
/// (which reorder what is shown).
fn is_unsafe(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{2028}' | '\u{2029}' | '\u{200e}' | '\u{200f}')
        || ('\u{202a}'..='\u{202e}').contains(&c)
        || ('\u{2066}'..='\u{2069}').contains(&c)
}

/// `text` with every unsafe character escaped (`\n`, `\t`, `\r`, `\x1b`,
/// `\u{202e}`); borrowed when there is none.
pub fn escape(text: &str) -> Cow<'_, str> {
    if !text.chars().any(is_unsafe) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if is_unsafe(c) && (c as u32) < 0x100 => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c if is_unsafe(c) => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// Displays `value` with its unsafe characters escaped: `println!("{}", safe(&name))`.
pub fn safe<T: fmt::Display>(value: T) -> Safe<T> {
    Safe(value)
}

/// See [`safe`].
pub struct Safe<T>(T);

impl<T: fmt::Display> fmt::Display for Safe<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&escape(&self.0.to_string()))
    }
}

/// A library's tab-separated listing line with every column passed through [`safe`].
pub fn columns(line: impl fmt::Display) -> String {
    let line = line.to_string();
    line.split('\t')
        .map(|c| escape(c).into_owned())
        .collect::<Vec<_>>()
        .join("\t")
}

/// The last component of `path`, for messages that must not give a path.
pub fn file_name(path: &std::path::Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// A command-line parser's usage error (clap's layout) as one line, for a JSON
/// body: its lines up to the usage line, without the `error: ` prefix and help
/// footer.
pub fn usage_message(text: &str) -> String {
    text.lines()
        .take_while(|l| !l.starts_with("Usage:") && !l.starts_with("For more information"))
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
        .trim_start_matches("error: ")
        .to_owned()
}

/// The one shape of an error printed under `--json`: `{"error": {"code", "message"}}`.
pub fn error_json(code: &str, message: &str) -> String {
    serde_json::json!({"error": {"code": code, "message": message}}).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_become_visible_escapes() {
        assert_eq!(escape("plain/path.env"), "plain/path.env");
        assert!(matches!(escape("plain"), Cow::Borrowed(_)));
        assert_eq!(
            escape("a\nb\r\tc\u{1b}[31md\u{7f}\u{9b}"),
            "a\\nb\\r\\tc\\x1b[31md\\x7f\\x9b"
        );
        assert_eq!(escape("x\u{202e}y\u{2028}"), "x\\u{202e}y\\u{2028}");
        assert_eq!(safe(format_args!("{}", "1\n2")).to_string(), "1\\n2");
    }

    #[test]
    fn a_usage_error_reads_as_one_line_without_its_footer() {
        let clap = "error: unexpected argument 'x' found\n\n  tip: try '-- x'\n\nUsage: vault ls [AGENT]\n\nFor more information, try '--help'.\n";
        assert_eq!(
            usage_message(clap),
            "unexpected argument 'x' found tip: try '-- x'"
        );
    }
}
