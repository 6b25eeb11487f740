//! `vault import --agent A FILE`: moving an existing plaintext `.env` (or a
//! JSON object) into the vault, the first thing someone coming from a `.env`
//! file does. Every line is read and checked before anything is stored, so a
//! bad line stores nothing; errors give line numbers, never line text; the
//! report gives names and versions, never values, and ends by telling the
//! operator that the plaintext file still holds every value.

use std::path::PathBuf;

use anyhow::Result;
use vault_core::{validate_value, AgentName, Principal, SecretBytes, SecretName, SecretPath};
use zeroize::Zeroizing;

use super::Context;
use crate::exit;

const OP: &Principal = &Principal::Operator;

/// `vault import --agent A FILE`.
#[derive(clap::Args, Debug)]
pub struct ImportArgs {
    /// The agent whose secrets these become.
    #[arg(long)]
    agent: String,
    /// How FILE is written.
    #[arg(long, value_enum, default_value_t = ImportFormat::Dotenv)]
    format: ImportFormat,
    /// A dotenv file (as `vault env --format dotenv` writes it), or with
    /// `--format json` a JSON object {"NAME": "value"}.
    #[arg(value_name = "FILE")]
    file: PathBuf,
}

/// What `vault import` reads.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ImportFormat {
    /// NAME=value lines; comments, `export` and quotes as python-dotenv reads them.
    Dotenv,
    /// One JSON object of NAME: "value" strings.
    Json,
}

pub fn import(ctx: &Context, args: ImportArgs) -> Result<()> {
    let agent = AgentName::parse(&args.agent)?;
    let bytes = Zeroizing::new(
        std::fs::read(&args.file)
            .map_err(|e| exit::usage(format!("cannot read {}: {e}", args.file.display())))?,
    );
    let text = std::str::from_utf8(&bytes)
        .map_err(|_| exit::usage(format!("{} is not UTF-8 text", args.file.display())))?;
    let entries = parse(text, args.format).map_err(|e| {
        exit::usage(format!(
            "{}: {e}; nothing was imported",
            args.file.display()
        ))
    })?;
    if entries.is_empty() {
        return Err(exit::usage(format!(
            "{} defines no variables; nothing was imported",
            args.file.display()
        )));
    }
    // Everything is checked before the vault is unlocked or touched.
    let mut checked: Vec<(SecretPath, SecretBytes)> = Vec::with_capacity(entries.len());
    let mut first_line: std::collections::HashMap<String, String> = Default::default();
    for (line, name, value) in entries {
        let at = |what: String| {
            exit::usage(format!(
                "{}: {what}; nothing was imported",
                args.file.display()
            ))
        };
        let name = SecretName::parse(&name).map_err(|_| {
            at(format!(
                "{line}: invalid secret name ({}) (the line is not shown)",
                vault_core::SECRET_NAME_RULE
            ))
        })?;
        if let Some(first) = first_line.insert(name.to_string(), line.clone()) {
            return Err(at(format!(
                "{line}: {name} is defined again (first on {first})"
            )));
        }
        validate_value(&value).map_err(|e| at(format!("{line}: {name}: {e}")))?;
        checked.push((
            SecretPath {
                agent: agent.clone(),
                name,
            },
            value,
        ));
    }
    let mut vault = ctx.unlock()?;
    // A missing agent fails here, before the first value is stored.
    vault.policy(OP, &agent)?;
    let (stored, committed) =
        vault.in_one_transaction(|vault| -> Result<Vec<(String, i64, bool)>> {
            let mut stored = Vec::with_capacity(checked.len());
            for (path, value) in &checked {
                // Re-importing the same file makes no new versions.
                let same = match vault.get_secret(OP, path) {
                    Ok((current, version)) if current.ct_eq(value.expose_secret()) => Some(version),
                    _ => None,
                };
                match same {
                    Some(version) => stored.push((path.name.to_string(), version, false)),
                    None => {
                        let version = vault.set_secret(OP, path, value)?;
                        stored.push((path.name.to_string(), version, true));
                    }
                }
            }
            Ok(stored)
        });
    let stored = stored?;
    committed?;
    super::warn_dek_usage(&vault);
    let advice = format!(
        "{} still holds every value in plain text: delete it (`shred -u {}` or `rm`) once `vault ls {agent}` shows what you expect",
        args.file.display(),
        args.file.display()
    );
    if ctx.json {
        let items: Vec<_> = stored
            .iter()
            .map(|(name, version, new)| serde_json::json!({"name": format!("{agent}/{name}"), "version": version, "changed": new}))
            .collect();
        ctx.print_json(&serde_json::json!({
            "agent": agent.as_str(),
            "imported": items,
            "file": args.file.display().to_string(),
            "advice": advice,
        }))?;
    } else {
        for (name, version, new) in &stored {
            let note = if *new { "" } else { " (unchanged)" };
            eprintln!("stored {agent}/{name} version {version}{note}");
        }
        eprintln!("imported {} variable(s) into {agent}", stored.len());
        eprintln!("vault: {advice}");
    }
    Ok(())
}

/// (where, name, value) in file order; `where` is `line N` or `entry N`.
fn parse(text: &str, format: ImportFormat) -> Result<Vec<(String, String, SecretBytes)>> {
    match format {
        ImportFormat::Dotenv => Ok(vault_core::dotenv::parse(text)
            .map_err(|e| anyhow::anyhow!("{e}"))?
            .into_iter()
            .map(|e| (format!("line {}", e.line), e.name, e.value))
            .collect()),
        ImportFormat::Json => {
            // serde_json's messages quote the offending input; only its position is kept.
            let map: serde_json::Map<String, serde_json::Value> = serde_json::from_str(text)
                .map_err(|e| {
                    anyhow::anyhow!(
                        "line {} column {}: not a JSON object of \"NAME\": \"value\" strings",
                        e.line(),
                        e.column()
                    )
                })?;
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
                    _ => Err(anyhow::anyhow!(
                        "entry {}: the value is not a string (values are not shown)",
                        i + 1
                    )),
                })
                .collect()
        }
    }
}
