//! Whether a word a person typed may be a secret value, so a front end
//! never echoes it back in an error (`vault get avt_08R7...`, `vault set
//! MAILCHIMP_API_KEY=abc123-us6`): the echo would put the value on the
//! terminal, in scrollback and in CI logs a second time.
//!
//! "May be a secret" is the vault-scan crate's provider rules (the same
//! rules `vault scan` uses, with their checksums: precise for prefixed keys
//! such as `ghp_`, `sk-`, `AKIA`), vault's own `avk_`/`avt_` prefixes with any
//! body (a truncated key is still most of one), a `NAME=value` pair, plus a
//! length and entropy floor for unprefixed random tokens no rule anchors on
//! (24+ characters of one word, no path separator, over 3.5 bits per
//! character). A false positive only hides a harmless word from one message;
//! a false negative would print a secret, so the check leans wide.

/// The scanner's built-in rules, compiled once per process (hundreds of
/// regexes: the redaction of every error message and stderr excerpt would
/// otherwise build them again); None if they do not load.
pub(crate) fn builtin_scanner() -> Option<&'static vault_scan::Scanner> {
    static SCANNER: std::sync::OnceLock<Option<vault_scan::Scanner>> = std::sync::OnceLock::new();
    SCANNER
        .get_or_init(|| vault_scan::Scanner::builtin().ok())
        .as_ref()
}

/// Words among `words` that may be secret values, in order.
pub fn sensitive_words(words: impl IntoIterator<Item = String>) -> Vec<String> {
    let scanner = builtin_scanner();
    words
        .into_iter()
        .filter(|w| {
            is_name_value(w) || own_credential(w) || looks_random(w) || scanner_hit(scanner, w)
        })
        .collect()
}

/// The words of a command line (`args[0]`, the program, left out) that must
/// not be echoed: people paste a token where a name goes, or write `vault
/// set A/NAME hunter2`, and an error quoting the argument back would show it.
pub fn sensitive_args(args: &[std::ffi::OsString]) -> Vec<String> {
    sensitive_words(
        args.iter()
            .skip(1)
            .map(|a| a.to_string_lossy().into_owned()),
    )
}

/// [`guard_message`] for a usage error of the parser over `args`: `surplus`,
/// a positional word the parser found where no more arguments go, is hidden
/// whatever it looks like (there, a short value such as `hunter2` is the
/// likely case); a flag (`-x`) is not a value.
pub fn guard_usage(
    message: &str,
    args: &[std::ffi::OsString],
    surplus: Option<&str>,
) -> Option<String> {
    let mut sensitive = sensitive_args(args);
    sensitive.extend(surplus.filter(|w| !w.starts_with('-')).map(str::to_owned));
    guard_message(message, &sensitive)
}

/// The message to show instead of `message` when it quotes any of
/// `sensitive` (an error quoting the argument back), naming no value and
/// saying what to do; None when it quotes none. An error may quote part of a
/// word (`invalid secret name "KEY=value"` for `AGENT/KEY=value`): the value
/// part counts on its own.
pub fn guard_message(message: &str, sensitive: &[String]) -> Option<String> {
    let hit = sensitive.iter().find(|w| {
        message.contains(w.as_str())
            || matches!(w.split_once('='), Some((name, value))
                if !value.is_empty() && is_name(name) && message.contains(value))
    })?;
    let hint = match hit.split_once('=') {
        Some((name, _)) if is_name(name) => format!(
            " To store {name}: `vault set AGENT/{leaf}`, then give the value on stdin or at the prompt.",
            leaf = name.rsplit('/').next().unwrap_or(name)
        ),
        _ => String::new(),
    };
    Some(format!(
        "an argument that may be a secret value (it looks like a credential or NAME=value, or it \
         is a surplus word where no more arguments go) was given on the command line; it is not \
         shown here. vault never takes values from arguments: they come \
         from stdin or a no-echo prompt (`vault set AGENT/NAME`).{hint} A value typed on a command \
         line is in your shell history: treat it as leaked and rotate it. See `vault --help`."
    ))
}

/// Whether `s` is `NAME` or `AGENT/NAME` as the vault names secrets.
pub fn is_name(s: &str) -> bool {
    let leaf = match s.split_once('/') {
        Some((agent, leaf)) if vault_core::AgentName::parse(agent).is_ok() => leaf,
        Some(_) => return false,
        None => s,
    };
    vault_core::SecretName::parse(leaf).is_ok()
}

fn is_name_value(w: &str) -> bool {
    matches!(w.split_once('='), Some((name, value)) if !value.is_empty() && is_name(name))
}

/// vault's own `avk_`/`avt_` prefix with a body, checksum or not: a
/// truncated or mistyped key is still most of a real one.
fn own_credential(w: &str) -> bool {
    (w.starts_with("avk_") || w.starts_with("avt_")) && w.len() >= 12
}

fn looks_random(w: &str) -> bool {
    w.len() >= 24
        && !w.starts_with('-')
        && !w.contains(['/', ' ', '\t'])
        && shannon_bits_per_char(w.as_bytes()) > 3.5
}

fn scanner_hit(scanner: Option<&vault_scan::Scanner>, w: &str) -> bool {
    let Some(scanner) = scanner else {
        return false;
    };
    let opts = vault_scan::ScanOptions::default();
    !vault_scan::scan_bytes(scanner, None, "argv", w.as_bytes(), &opts)
        .findings
        .is_empty()
}

fn shannon_bits_per_char(bytes: &[u8]) -> f64 {
    let mut counts = [0u32; 256];
    for b in bytes {
        counts[*b as usize] += 1;
    }
    let n = bytes.len() as f64;
    counts
        .iter()
        .filter(|c| **c > 0)
        .map(|c| {
            let p = f64::from(*c) / n;
            -p * p.log2()
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn name_values_and_random_tokens_are_sensitive_names_and_paths_are_not() {
        // issue 19, argv echo
        let words = [
            "MAILCHIMP_API_KEY=abc123-us6",
            "hermes/KEY=v",
            "hermes-marketing/GITHUB_TOKEN",
            "--listen=127.0.0.1:8200",
            "Zx8Qp2Lk9Wm4Rt7Yb3Nc6Vd1",
            "avt_08R7AbcdefGh",
            "/tmp/some/long/path/to/a/file.env",
            "ls",
        ]
        .map(String::from);
        assert_eq!(
            sensitive_words(words),
            [
                "MAILCHIMP_API_KEY=abc123-us6",
                "hermes/KEY=v",
                "Zx8Qp2Lk9Wm4Rt7Yb3Nc6Vd1",
                "avt_08R7AbcdefGh"
            ]
        );
    }

    #[test]
    fn a_surplus_word_is_hidden_whatever_it_looks_like_but_a_flag_is_not() {
        let args: Vec<std::ffi::OsString> =
            ["vault", "set", "a/N", "hunter2"].map(Into::into).into();
        let msg = "error: unexpected argument 'hunter2' found";
        assert!(guard_message(msg, &sensitive_args(&args)).is_none());
        let guarded = guard_usage(msg, &args, Some("hunter2")).unwrap();
        assert!(!guarded.contains("hunter2"), "{guarded}");
        assert!(guard_usage(
            "error: unexpected argument '--nope' found",
            &args,
            Some("--nope")
        )
        .is_none());
    }
}
