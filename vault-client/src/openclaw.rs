//! OpenClaw's `exec` SecretRef provider protocol (`vault resolve --openclaw`), so an
//! OpenClaw config holds only refs like `{source: "exec", provider: "vault",
//! id: "GITHUB_TOKEN"}` and never a plaintext credential.
//!
//! It speaks OpenClaw's exec-provider protocol version 1, as the gateway's
//! own resolver (`resolveExecRefs` / `parseExecValues` in the `openclaw` npm
//! package) expects it: one JSON request on stdin
//! (`{"protocolVersion": 1, "provider": "vault", "ids": [...]}`), one JSON
//! answer on stdout (`{"protocolVersion": 1, "values": {...}, "errors":
//! {id: {"code": "NOT_FOUND"}}}`), exit 0. OpenClaw treats any nonzero exit
//! as a failure of the whole batch and ignores stdout then, so per-id
//! problems go in `errors` and only a broken request or an unusable key
//! exits nonzero.
//!
//! It acts as the calling agent: its named key from the environment
//! (`VAULT_AGENT_KEY`, or the variable `--key-env` names) and `VAULT_ADDR`,
//! through a running `vault server`, exactly like remote mode. A secret the
//! agent may not read answers `NOT_FOUND`, the same as a missing one, so the
//! answer does not tell an agent what other agents hold. OpenClaw runs the
//! command with an empty environment except the `passEnv` allowlist and with
//! the command's directory as cwd, so nothing here needs `HOME` or
//! `VAULT_HOME`.

use std::io::Read;

use vault_core::{SecretName, SecretPath, SecretString};
use zeroize::Zeroizing;

use crate::{Remote, Result};

/// The most a request may hold; OpenClaw's own provider output cap is the
/// same 1 MiB, and its requests are far smaller (256 KiB batch limit).
pub const MAX_REQUEST_BYTES: u64 = 1024 * 1024;

/// The protocol version this speaks.
const PROTOCOL_VERSION: u64 = 1;

/// Parses a request: the ids, deduplicated in order, or why it is malformed.
/// The message never quotes the input (it may hold anything).
pub fn read_request(input: &mut dyn Read) -> std::result::Result<Vec<String>, String> {
    let mut buf = Vec::new();
    input
        .take(MAX_REQUEST_BYTES + 1)
        .read_to_end(&mut buf)
        .map_err(|e| format!("reading the request: {e}"))?;
    if buf.len() as u64 > MAX_REQUEST_BYTES {
        return Err(format!(
            "the request is larger than {MAX_REQUEST_BYTES} bytes"
        ));
    }
    let value: serde_json::Value = serde_json::from_slice(&buf).map_err(|e| {
        format!(
            "the request is not JSON (line {}, column {})",
            e.line(),
            e.column()
        )
    })?;
    let Some(object) = value.as_object() else {
        return Err("the request is not a JSON object".into());
    };
    if object
        .get("protocolVersion")
        .and_then(serde_json::Value::as_u64)
        != Some(PROTOCOL_VERSION)
    {
        return Err(format!(
            "protocolVersion must be {PROTOCOL_VERSION} (the only version this speaks)"
        ));
    }
    if !object
        .get("provider")
        .is_some_and(serde_json::Value::is_string)
    {
        return Err("provider must be a string".into());
    }
    let Some(list) = object.get("ids").and_then(serde_json::Value::as_array) else {
        return Err("ids must be an array of strings".into());
    };
    let mut ids: Vec<String> = Vec::with_capacity(list.len());
    for item in list {
        let Some(id) = item.as_str() else {
            return Err("ids must be an array of strings".into());
        };
        if !ids.iter().any(|seen| seen == id) {
            ids.push(id.to_owned());
        }
    }
    Ok(ids)
}

/// What one id names, or why it is refused without asking the server.
#[derive(Debug, PartialEq, Eq)]
pub enum Id {
    /// `NAME` (the agent's own) or `AGENT/NAME`, as the server takes it.
    Secret(String),
    /// Path tricks, control characters, or not a secret name at all.
    Invalid,
}

/// Checks one id: `NAME` or `AGENT/NAME`, nothing else. `..`, a second `/`,
/// NUL and control characters never reach the server.
pub fn classify_id(id: &str) -> Id {
    if id.is_empty()
        || id.len() > 256
        || id.chars().any(char::is_control)
        || id.matches('/').count() > 1
    {
        return Id::Invalid;
    }
    let ok = match id.split_once('/') {
        Some(_) => SecretPath::parse(id).is_ok(),
        None => SecretName::parse(id).is_ok(),
    };
    if ok {
        Id::Secret(id.to_owned())
    } else {
        Id::Invalid
    }
}

/// Fetches every valid id through one token and renders the answer into
/// zeroizing memory.
///
/// # Errors
/// The server could not be reached, or refused the key (a missing or
/// forbidden secret is a per-id `NOT_FOUND`, not an error).
pub fn answer(remote: &Remote, ids: &[String]) -> Result<Zeroizing<Vec<u8>>> {
    let mut values: Vec<(&str, SecretString)> = Vec::new();
    let mut errors: Vec<(&str, &'static str)> = Vec::new();
    let wanted: Vec<(&str, Id)> = ids
        .iter()
        .map(|id| (id.as_str(), classify_id(id)))
        .collect();
    if wanted.iter().any(|(_, id)| matches!(id, Id::Secret(_))) {
        let (token, _) = remote.mint(Some(vec!["secrets:read".into()]), Some(60))?;
        for (id, what) in &wanted {
            match what {
                Id::Secret(name) => match remote.read(&token, name)? {
                    Some(value) => values.push((id, value)),
                    None => errors.push((id, "NOT_FOUND")),
                },
                Id::Invalid => errors.push((id, "INVALID_ID")),
            }
        }
    } else {
        errors.extend(wanted.iter().map(|(id, _)| (*id, "INVALID_ID")));
    }
    render(&values, &errors)
}

/// `{"protocolVersion":1,"values":{...},"errors":{...}}` and a newline.
/// Written by hand into zeroizing memory: a `serde_json::Value` would copy
/// every secret into a plain `String`.
fn render(
    values: &[(&str, SecretString)],
    errors: &[(&str, &'static str)],
) -> Result<Zeroizing<Vec<u8>>> {
    let mut out = Zeroizing::new(Vec::with_capacity(256));
    out.extend_from_slice(b"{\"protocolVersion\":1,\"values\":{");
    for (i, (id, value)) in values.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        serde_json::to_writer(&mut *out, id)?;
        out.push(b':');
        serde_json::to_writer(&mut *out, value.expose_secret())?;
    }
    out.push(b'}');
    if !errors.is_empty() {
        out.extend_from_slice(b",\"errors\":{");
        for (i, (id, code)) in errors.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            serde_json::to_writer(&mut *out, id)?;
            out.extend_from_slice(b":{\"code\":");
            serde_json::to_writer(&mut *out, code)?;
            out.push(b'}');
        }
        out.push(b'}');
    }
    out.extend_from_slice(b"}\n");
    Ok(out)
}

/// The body of a request-level failure:
/// `{"protocolVersion":1,"error":{"code","message"}}`. Messages hold names
/// and reasons, never values.
pub fn error_body(code: &str, message: &str) -> serde_json::Value {
    serde_json::json!({
        "protocolVersion": PROTOCOL_VERSION,
        "error": {"code": code, "message": message},
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> std::result::Result<Vec<String>, String> {
        read_request(&mut text.as_bytes())
    }

    #[test]
    fn a_well_formed_request_gives_its_ids_once_each() {
        let ids = parse(r#"{"protocolVersion":1,"provider":"vault","ids":["A","b/C","A"]}"#);
        assert_eq!(ids.unwrap(), vec!["A".to_owned(), "b/C".to_owned()]);
    }

    #[test]
    fn malformed_requests_are_refused_without_quoting_them() {
        for bad in [
            "",
            "not json",
            "[]",
            r#"{"protocolVersion":2,"provider":"vault","ids":[]}"#,
            r#"{"protocolVersion":"1","provider":"vault","ids":[]}"#,
            r#"{"protocolVersion":1,"ids":[]}"#,
            r#"{"protocolVersion":1,"provider":"vault","ids":[1]}"#,
            r#"{"protocolVersion":1,"provider":"vault","ids":"A"}"#,
            r#"{"protocolVersion":1,"provider":"vault","ids":["secret-ish",null]}"#,
        ] {
            let err = parse(bad).unwrap_err();
            assert!(!err.contains("secret-ish"), "{err}");
        }
    }

    #[test]
    fn a_request_over_one_mebibyte_is_refused() {
        let big = format!(
            r#"{{"protocolVersion":1,"provider":"vault","ids":["{}"]}}"#,
            "A".repeat(MAX_REQUEST_BYTES as usize)
        );
        assert!(parse(&big).unwrap_err().contains("larger than"));
    }

    #[test]
    fn path_tricks_are_invalid_ids() {
        for bad in [
            "",
            "..",
            "../x/Y",
            "a/../B",
            "a/b/C",
            "/A",
            "A/",
            "A\0B",
            "A\nB",
            "a/B\u{7f}",
            "A B",
        ] {
            assert_eq!(classify_id(bad), Id::Invalid, "{bad:?}");
        }
        assert_eq!(
            classify_id("GITHUB_TOKEN"),
            Id::Secret("GITHUB_TOKEN".into())
        );
        assert_eq!(
            classify_id("hermes-marketing/GITHUB_TOKEN"),
            Id::Secret("hermes-marketing/GITHUB_TOKEN".into())
        );
    }

    #[test]
    fn the_answer_is_the_shape_openclaw_parses() {
        let values = vec![("A", SecretString::new("v\"1".into()))];
        let body = render(&values, &[("B", "NOT_FOUND")]).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"protocolVersion": 1, "values": {"A": "v\"1"},
                               "errors": {"B": {"code": "NOT_FOUND"}}})
        );
        let body = render(&[], &[]).unwrap();
        assert_eq!(&body[..], b"{\"protocolVersion\":1,\"values\":{}}\n");
    }
}
