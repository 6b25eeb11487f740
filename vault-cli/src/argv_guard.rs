//! Keeps values typed on the command line out of error messages.
//!
//! People paste a token where a name goes (`vault get avt_08R7...`) or write
//! `vault set MAILCHIMP_API_KEY=abc123-us6` or `vault set A/NAME hunter2`.
//! clap's errors, and ours, quote
//! the offending argument back, which puts the value on the terminal, in
//! scrollback and in CI logs a second time. Any error whose text contains an
//! argument that looks like a credential or a `NAME=value` is replaced by one
//! that names no value and says what to do: values come from stdin or a
//! prompt, and a value that was typed on a command line is in the shell
//! history and must be rotated.
//!
//! "Looks like a credential" is [`vault_guard::redact`]'s judgement. A
//! surplus positional word (clap's "unexpected argument" that is not a
//! flag) is hidden whatever it looks like: there, a short value such as
//! `hunter2` is the likely case.

use std::ffi::OsString;

/// The command-line words that must not be echoed.
pub fn sensitive(args: &[OsString]) -> Vec<String> {
    vault_guard::redact::sensitive_words(
        args.iter()
            .skip(1)
            .map(|a| a.to_string_lossy().into_owned()),
    )
}

/// The replacement message if `message` quotes any of `sensitive`.
pub fn guard(message: &str, sensitive: &[String]) -> Option<String> {
    // An error may quote part of a word (`invalid secret name "KEY=value"` for
    // `AGENT/KEY=value`): the value part counts on its own.
    let hit = sensitive.iter().find(|w| {
        message.contains(w.as_str())
            || matches!(w.split_once('='), Some((name, value))
                if !value.is_empty() && vault_guard::redact::is_name(name) && message.contains(value))
    })?;
    let hint = match hit.split_once('=') {
        Some((name, _)) if vault_guard::redact::is_name(name) => format!(
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
