//! Moving an existing plaintext `.env` (or a JSON object) into the vault as
//! one agent's secrets (`vault import`): every entry is read and checked
//! before anything is stored, so a bad line stores nothing; errors give line
//! or entry numbers, never line text; re-importing the same file makes no
//! new versions.

use zeroize::Zeroizing;

use crate::{validate_value, AgentName, Principal, Result, SecretBytes, SecretName, SecretPath};
use crate::{Vault, SECRET_NAME_RULE};

/// How the file is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// `NAME=value` lines; comments, `export` and quotes as python-dotenv reads them.
    Dotenv,
    /// One JSON object of `"NAME": "value"` strings.
    Json,
}

/// One entry: where it is (`line N`, `entry N`), its name as written, its value.
pub type Entry = (String, String, SecretBytes);

/// The entries of `text` in file order, or why it is malformed (a position
/// and a reason, never the text).
///
/// # Errors
/// A line or entry that is not `NAME=value` / a string value.
pub fn parse(text: &str, format: Format) -> std::result::Result<Vec<Entry>, String> {
    match format {
        Format::Dotenv => Ok(crate::dotenv::parse(text)
            .map_err(|e| e.to_string())?
            .into_iter()
            .map(|e| (format!("line {}", e.line), e.name, e.value))
            .collect()),
        Format::Json => {
            // serde_json's messages quote the offending input; only its position is kept.
            let mut map: serde_json::Map<String, serde_json::Value> = serde_json::from_str(text)
                .map_err(|e| {
                    format!(
                        "line {} column {}: not a JSON object of \"NAME\": \"value\" strings",
                        e.line(),
                        e.column()
                    )
                })?;
            // what `vault env --format json` writes: {"env": {"NAME": "value"}}
            if map.len() == 1 && map.get("env").is_some_and(serde_json::Value::is_object) {
                if let Some(serde_json::Value::Object(inner)) = map.remove("env") {
                    map = inner;
                }
            }
            map.into_iter()
                .enumerate()
                .map(|(i, (name, value))| match value {
                    serde_json::Value::String(s) => {
                        let s = Zeroizing::new(s);
                        Ok((
                            format!("entry {}", i + 1),
                            name,
                            SecretBytes::from_slice(s.as_bytes()),
                        ))
                    }
                    _ => Err(format!(
                        "entry {}: the value is not a string (values are not shown)",
                        i + 1
                    )),
                })
                .collect()
        }
    }
}

/// Checks every entry as `agent`'s secret: a valid name, defined once, a
/// value the vault stores.
///
/// # Errors
/// The first entry that fails, by position and name, never by value.
pub fn check(
    agent: &AgentName,
    entries: Vec<Entry>,
) -> std::result::Result<Vec<(SecretPath, SecretBytes)>, String> {
    let mut checked = Vec::with_capacity(entries.len());
    let mut first_line: std::collections::HashMap<String, String> = Default::default();
    for (line, name, value) in entries {
        let name = SecretName::parse(&name).map_err(|_| {
            format!("{line}: invalid secret name ({SECRET_NAME_RULE}) (the line is not shown)")
        })?;
        if let Some(first) = first_line.insert(name.to_string(), line.clone()) {
            return Err(format!(
                "{line}: {name} is defined again (first on {first})"
            ));
        }
        validate_value(&value).map_err(|e| format!("{line}: {name}: {e}"))?;
        checked.push((
            SecretPath {
                agent: agent.clone(),
                name,
            },
            value,
        ));
    }
    Ok(checked)
}

/// One stored entry: its name, version, and whether a new version was made.
pub type Stored = (String, i64, bool);

/// Stores `checked` in one transaction; an entry whose value is already the
/// current one makes no new version.
///
/// # Errors
/// The agent does not exist (before anything is stored), or storing failed
/// (then nothing is).
pub fn store(
    vault: &mut Vault,
    agent: &AgentName,
    checked: &[(SecretPath, SecretBytes)],
) -> Result<Vec<Stored>> {
    let op = &Principal::Operator;
    // A missing agent fails here, before the first value is stored.
    vault.policy(op, agent)?;
    let (stored, committed) = vault.in_one_transaction(|vault| -> Result<Vec<Stored>> {
        let mut stored = Vec::with_capacity(checked.len());
        for (path, value) in checked {
            // Re-importing the same file makes no new versions.
            let same = match vault.get_secret(op, path) {
                Ok((current, version)) if current.ct_eq(value.expose_secret()) => Some(version),
                _ => None,
            };
            match same {
                Some(version) => stored.push((path.name.to_string(), version, false)),
                None => {
                    let version = vault.set_secret(op, path, value)?;
                    stored.push((path.name.to_string(), version, true));
                }
            }
        }
        Ok(stored)
    });
    let stored = stored?;
    committed?;
    Ok(stored)
}
