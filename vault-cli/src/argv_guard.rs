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
//! "Looks like a credential", and the message said instead, are
//! [`vault_guard::redact`]'s. A
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
