//! `vault import --agent A FILE`: moving an existing plaintext `.env` (or a
//! JSON object) into the vault, the first thing someone coming from a `.env`
//! file does. Reading, checking and storing are [`vault_core::import`]'s; the
//! report gives names and versions, never values, and ends by telling the
//! operator that the plaintext file still holds every value.

use std::path::PathBuf;

use anyhow::Result;
use vault_core::{import, AgentName};
use zeroize::Zeroizing;

use super::Context;
use crate::exit;

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
    /// `--format json` a JSON object {"NAME": "value"} or {"env": {...}}.
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
    let format = match args.format {
        ImportFormat::Dotenv => import::Format::Dotenv,
        ImportFormat::Json => import::Format::Json,
    };
    let entries = import::parse(text, format).map_err(|e| {
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
    let checked = import::check(&agent, entries).map_err(|e| {
        exit::usage(format!(
            "{}: {e}; nothing was imported",
            args.file.display()
        ))
    })?;
    let mut vault = ctx.unlock()?;
    let stored = import::store(&mut vault, &agent, &checked)?;
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
