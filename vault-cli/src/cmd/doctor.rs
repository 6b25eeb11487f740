//! `vault doctor`: vault-core's review of policies, keys, files and the KDF,
//! the scanner's checks of env files and hooked repositories
//! ([`vault_guard::doctor`]), and this shell's `VAULT_ADDR`
//! ([`vault_client::addr_findings`]); printed here.

use std::path::{Path, PathBuf};

use anyhow::Result;
use vault_core::doctor::{self, Severity};

use super::Context;
use crate::exit;

/// `vault doctor`.
#[derive(clap::Args, Debug)]
pub struct DoctorArgs {
    /// Also check these files: permissions, and (env files) vault credentials
    /// or provider secrets in them. Hermes and OpenClaw env files and the
    /// registered targets are checked without being named.
    #[arg(long = "file", value_name = "FILE")]
    files: Vec<PathBuf>,
}

pub fn doctor(ctx: &Context, args: DoctorArgs) -> Result<()> {
    let vault = ctx.unlock()?;
    let mut files: Vec<&Path> = args.files.iter().map(|p| p.as_path()).collect();
    if let Some(p) = &ctx.passphrase_file {
        files.push(p);
    }
    let mut findings = doctor::review(&vault, &files)?;
    let matcher = ctx.matcher();
    findings.extend(vault_guard::doctor::env_file_findings(
        &vault,
        matcher.as_ref(),
        &args.files,
    )?);
    findings.extend(vault_guard::doctor::hook_findings(&ctx.home));
    findings.extend(vault_client::addr_findings());
    findings.sort_by(|a, b| b.severity.cmp(&a.severity).then(a.check.cmp(b.check)));
    let high = findings.iter().any(|f| f.severity == Severity::High);
    if ctx.json {
        let items: Vec<_> = findings
            .iter()
            .map(|f| serde_json::json!({"check": f.check, "severity": f.severity.as_str(), "message": f.message, "fix": f.fix}))
            .collect();
        ctx.print_json(&serde_json::json!({ "findings": items }))?;
    } else if findings.is_empty() {
        println!("no findings: every agent holds only its own secrets, keys are fresh, files are private");
    } else {
        for f in &findings {
            println!(
                "[{}] {}: {}\n    fix: {}",
                f.severity.as_str(),
                f.check,
                vault_present::text::safe(&f.message),
                vault_present::text::safe(&f.fix)
            );
        }
    }
    if high {
        return Err(exit::with_code(exit::REFUSED));
    }
    Ok(())
}
