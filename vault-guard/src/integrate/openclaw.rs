//! The OpenClaw settings (`vault integrate openclaw --broker`) that make its
//! traffic go through the egress broker. OpenClaw ignores `HTTPS_PROXY` for
//! most of its traffic: its proxy layer needs `proxy.enabled` and the
//! `OPENCLAW_PROXY_URL` variable, and its `web_fetch` tool needs
//! `tools.web.fetch.useTrustedEnvProxy`, or requests "appear to work but
//! silently bypass" the proxy (the broker survey's pitfall 3).
//!
//! The two config keys go into `openclaw.json` (`OPENCLAW_CONFIG_PATH`, else
//! the state directory's); the variable is set by `vault run --broker` and
//! written by `vault env --broker` beside `HTTPS_PROXY`, with the same
//! credential (so a key rotation rewrites it too). The file is edited as
//! strict JSON: a JSON5 file (comments, trailing commas) is refused with the
//! `openclaw config set` lines to run instead, rather than losing its comments.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::error::{refused, Context as _, Result};

/// The keys set, as dotted paths, each to `true`.
pub const KEYS: [&str; 2] = ["proxy.enabled", "tools.web.fetch.useTrustedEnvProxy"];

/// What changed for one key.
#[derive(Debug, PartialEq, Eq)]
pub enum Change {
    /// Set from the previous value (`None`: absent).
    Set(Option<Value>),
    /// Already `true`.
    Unchanged,
}

/// `OPENCLAW_CONFIG_PATH`, else `openclaw.json` in the state directory.
///
/// # Errors
/// No home directory, or an invalid `OPENCLAW_PROFILE`.
pub fn config_path() -> Result<PathBuf> {
    if let Some(p) = std::env::var_os("OPENCLAW_CONFIG_PATH").filter(|v| !v.is_empty()) {
        return Ok(PathBuf::from(p));
    }
    Ok(crate::runtimes::openclaw_state_dir()?.join("openclaw.json"))
}

/// Sets each of [`KEYS`] to `true` in the JSON file at `path` (created, with
/// its directory, if absent), writing only when something changed.
///
/// # Errors
/// The file is not strict JSON, or a key's parent is not an object
/// (refused, with what to do instead), or it cannot be written.
pub fn apply(path: &Path) -> Result<Vec<(&'static str, Change)>> {
    let mut doc = match std::fs::read_to_string(path) {
        Ok(text) if text.trim().is_empty() => Value::Object(Default::default()),
        Ok(text) => serde_json::from_str::<Value>(&text).map_err(|e| {
            refused(format!(
                "{} is not strict JSON ({e}); to keep its comments, run instead:\n  \
                 openclaw config set proxy.enabled true\n  \
                 openclaw config set tools.web.fetch.useTrustedEnvProxy true",
                path.display()
            ))
        })?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Value::Object(Default::default()),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    let mut changes = Vec::new();
    for key in KEYS {
        changes.push((key, set_true(&mut doc, key, path)?));
    }
    if changes.iter().any(|(_, c)| *c != Change::Unchanged) {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            use std::os::unix::fs::DirBuilderExt;
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .with_context(|| format!("creating {}", dir.display()))?;
        }
        let mut text = serde_json::to_string_pretty(&doc)?;
        text.push('\n');
        vault_core::envfile::write_private_atomic(path, text.as_bytes())?;
    }
    Ok(changes)
}

fn set_true(doc: &mut Value, dotted: &str, path: &Path) -> Result<Change> {
    let mut node = doc;
    let parts: Vec<&str> = dotted.split('.').collect();
    for (i, part) in parts.iter().enumerate() {
        let Value::Object(map) = node else {
            return Err(refused(format!(
                "{}: {} is not an object, so {dotted} cannot be set; fix it by hand",
                path.display(),
                parts[..i].join(".")
            )));
        };
        if i == parts.len() - 1 {
            let before = map.insert((*part).to_owned(), Value::Bool(true));
            return Ok(match before {
                Some(Value::Bool(true)) => Change::Unchanged,
                other => Change::Set(other),
            });
        }
        node = map
            .entry((*part).to_owned())
            .or_insert_with(|| Value::Object(Default::default()));
    }
    Ok(Change::Unchanged)
}

#[cfg(test)]
mod tests {
    use super::*;

    // issue 15 remainder, item 6: keys are set in place, others kept, twice is once
    #[test]
    fn openclaw_proxy_keys_are_set_once_and_other_settings_survive() {
        let dir = tempfile::TempDir::new().unwrap();
        let file = dir.path().join("openclaw.json");
        std::fs::write(
            &file,
            r#"{"proxy": {"enabled": false, "other": 1}, "agents": {"list": ["a"]}}"#,
        )
        .unwrap();
        let changes = apply(&file).unwrap();
        assert_eq!(
            changes[0],
            ("proxy.enabled", Change::Set(Some(Value::Bool(false))))
        );
        assert_eq!(
            changes[1],
            ("tools.web.fetch.useTrustedEnvProxy", Change::Set(None))
        );
        let doc: Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
        assert_eq!(doc["proxy"]["enabled"], true);
        assert_eq!(doc["proxy"]["other"], 1);
        assert_eq!(doc["tools"]["web"]["fetch"]["useTrustedEnvProxy"], true);
        assert_eq!(doc["agents"]["list"][0], "a");
        let again = apply(&file).unwrap();
        assert!(again.iter().all(|(_, c)| *c == Change::Unchanged));
        // JSON5 is refused, not rewritten without its comments
        std::fs::write(&file, "{ // mine\n proxy: {},\n}").unwrap();
        assert!(apply(&file).is_err());
        assert!(std::fs::read_to_string(&file).unwrap().contains("// mine"));
        // a key in the way is refused
        std::fs::write(&file, r#"{"tools": {"web": "x"}}"#).unwrap();
        assert!(apply(&file).is_err());
    }
}
