//! `vault doctor`: vault-core's review of policies, keys, files and the KDF,
//! the scanner's checks of env files and hooked repositories
//! ([`vault_guard::doctor`]), and this shell's `VAULT_ADDR`; printed here.

use std::path::{Path, PathBuf};

use anyhow::Result;
use vault_core::doctor::{self, Finding, Severity};

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
    findings.extend(addr_findings());
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
                crate::output::safe(&f.message),
                crate::output::safe(&f.fix)
            );
        }
    }
    if high {
        return Err(exit::with_code(exit::REFUSED));
    }
    Ok(())
}

/// `VAULT_ADDR` as this shell would use it: plain HTTP, even to loopback,
/// authenticates no server (issue 13, finding 9).
fn addr_findings() -> Vec<Finding> {
    let Some(addr) = std::env::var("VAULT_ADDR").ok().filter(|a| !a.is_empty()) else {
        return Vec::new();
    };
    let insecure = std::env::var("VAULT_INSECURE_HTTP").is_ok_and(|v| v == "1");
    match crate::remote::parse_addr(&addr, insecure) {
        Ok(crate::remote::Addr::Http {
            base, tls: false, ..
        }) => vec![Finding {
            check: "remote-plain-http",
            severity: Severity::Medium,
            message: format!(
                "VAULT_ADDR is {base}: plain HTTP authenticates no server, so whoever holds that port gets the agent's named key"
            ),
            fix: vault_core::doctor::PLAIN_LOOPBACK_FIX.into(),
        }],
        Ok(_) => Vec::new(),
        Err(e) => vec![Finding {
            check: "remote-bad-addr",
            severity: Severity::Medium,
            message: format!("VAULT_ADDR is not usable: {e}"),
            fix: "set VAULT_ADDR=unix:PATH, https://HOST:PORT or http://127.0.0.1:PORT".into(),
        }],
    }
}
