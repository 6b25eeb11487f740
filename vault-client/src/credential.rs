//! Where a credential comes from: a file, else an environment variable, never
//! an argument (argv is readable by every local user through `ps` and
//! `/proc`). One function, so the CLI's token, remote and console commands
//! and any program embedding this crate read a named key or token by the
//! same rule and name the same flag when it is missing.

use std::path::Path;

use vault_core::SecretString;

use crate::error::{invalid, Error, Result};

/// A credential (`what`: a named key, a token) from `file`, else from the
/// environment variable `var`; never from an argument. Surrounding
/// whitespace is dropped.
///
/// # Errors
/// Neither is there, the file cannot be read, or the credential is empty.
pub fn credential_from(var: &str, file: Option<&Path>, what: &str) -> Result<SecretString> {
    let text = match file {
        Some(path) => std::fs::read_to_string(path).map_err(|source| Error::Read {
            context: format!("reading the {what} from {}", path.display()),
            source,
        })?,
        None => std::env::var(var).map_err(|_| {
            // the flag as spelled, not "the file option" (issue 19)
            let flag = match var {
                "VAULT_TOKEN" => "--token-file FILE",
                "VAULT_ADMIN_TOKEN" => "--admin-token-file FILE",
                _ => "--key-file FILE",
            };
            invalid(format!(
                "no {what}: set {var} or give {flag} (never the {what} itself as an argument)"
            ))
        })?,
    };
    let text = SecretString::new(text);
    let trimmed = text.expose_secret().trim();
    if trimmed.is_empty() {
        return Err(invalid(format!("the {what} is empty")));
    }
    Ok(SecretString::new(trimmed.to_owned()))
}
