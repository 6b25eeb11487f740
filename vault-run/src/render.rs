//! An agent's env as text: dotenv for python-dotenv, Hermes, Node and
//! Compose; JSON; or `export` lines for a POSIX shell. What `vault env`
//! prints and `vault env --broker --write` writes.

use std::collections::BTreeMap;

use vault_core::{envfile, SecretBytes, SecretName};

use crate::error::{Context as _, Result};

/// How an env is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// `NAME=value` lines.
    Dotenv,
    /// `{"env": {"NAME": "value"}}`.
    Json,
    /// `export NAME='value'` lines.
    Shell,
}

/// The env as text in `format`. Values are valid UTF-8 (`set` refuses others).
///
/// # Errors
/// A value dotenv cannot carry (the variable is named, the value is not).
pub fn render(env: &[(SecretName, SecretBytes)], format: Format) -> Result<String> {
    let mut out = String::new();
    match format {
        Format::Json => {
            let map: BTreeMap<&str, &str> = env
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str().unwrap_or_default()))
                .collect();
            out = serde_json::to_string(&serde_json::json!({ "env": map }))?;
            out.push('\n');
        }
        Format::Dotenv => {
            for (k, v) in env {
                let value = envfile::dotenv_value(v.as_str().unwrap_or_default())
                    .with_context(|| format!("variable {k}"))?;
                out.push_str(&format!("{k}={value}\n"));
            }
        }
        Format::Shell => {
            for (k, v) in env {
                out.push_str(&format!(
                    "export {k}={}\n",
                    envfile::shell_value(v.as_str().unwrap_or_default())
                ));
            }
        }
    }
    Ok(out)
}
