//! `vault doctor`: vault-core's review of policies, keys, files and the KDF,
//! plus the checks that need this crate's reach: env files scanned for vault
//! credentials outside registered targets and for provider secrets the vault
//! does not manage, and git repositories whose pre-commit hook went missing.

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};
use vault_core::doctor::{self, Finding, Severity};
use vault_core::{Principal, Vault};
use vault_guard::leak::Matcher;
use vault_scan::{KnownSecrets, ScanOptions, Scanner};

use super::Context;
use crate::exit;

/// Where `vault hook install` records the repositories it protects.
const HOOKED_REPOS: &str = "hooked-repos";

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
    findings.extend(env_file_findings(&vault, &ctx.home, &args.files)?);
    findings.extend(hook_findings(&ctx.home));
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
        std::process::exit(exit::REFUSED);
    }
    Ok(())
}

/// The env files agent runtimes read by default, where they exist.
fn runtime_env_files() -> Vec<PathBuf> {
    let home = dirs::home_dir().unwrap_or_default();
    let hermes = std::env::var_os("HERMES_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| home.join(".hermes"));
    let openclaw = std::env::var_os("OPENCLAW_STATE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| home.join(".openclaw"));
    let mut out = vec![
        hermes.join(".env"),
        openclaw.join(".env"),
        home.join(".config/openclaw/gateway.env"),
    ];
    if let Ok(profiles) = std::fs::read_dir(hermes.join("profiles")) {
        out.extend(profiles.flatten().map(|p| p.path().join(".env")));
    }
    out.retain(|p| p.is_file());
    out
}

/// Env files scanned with the built-in rules and the vault's matcher. A vault
/// key in a file that is not one of its agent's registered targets will not
/// be rewritten when the key rotates; a stored secret's value in a file
/// defeats the vault; a provider secret the vault does not hold is unmanaged.
fn env_file_findings(vault: &Vault, home: &Path, named: &[PathBuf]) -> Result<Vec<Finding>> {
    let op = &Principal::Operator;
    let targets = vault.list_targets(op, None)?;
    let key_agent: BTreeMap<String, String> = vault
        .list_keys(op, None)?
        .into_iter()
        .map(|k| (k.key_id, k.agent.to_string()))
        .collect();
    let mut files: Vec<PathBuf> = named.to_vec();
    files.extend(targets.iter().map(|t| t.path.clone()));
    files.extend(runtime_env_files());
    files.sort();
    files.dedup();
    let scanner =
        Scanner::builtin().map_err(|e| exit::usage(format!("loading the scan rules: {e}")))?;
    let matcher = Matcher::load(home);
    let known = matcher.as_ref().map(|m| m as &dyn KnownSecrets);
    let mut findings = Vec::new();
    for file in files.iter().filter(|f| f.is_file()) {
        let report = vault_scan::scan_file(&scanner, known, file, &ScanOptions::default());
        for err in &report.errors {
            findings.push(Finding {
                check: "unreadable-env-file",
                severity: Severity::Low,
                message: format!("{}: {}", err.path, err.message),
                fix: "check the file's owner and mode".into(),
            });
        }
        for f in &report.findings {
            let at = format!("{}:{}", file.display(), f.line);
            let finding = match &f.managed {
                Some(m) if m.id.starts_with("secret:") => Finding {
                    check: "stored-secret-in-file",
                    severity: Severity::High,
                    message: format!("{at} holds the value of {} in clear", m.label),
                    fix: format!(
                        "delete that line and inject the value at start: vault run --agent {} -- CMD",
                        m.label
                            .trim_start_matches("secret ")
                            .split('/')
                            .next()
                            .unwrap_or("AGENT")
                    ),
                },
                Some(m) => {
                    let agent = key_agent.get(&m.id).cloned().unwrap_or_default();
                    let registered = targets.iter().any(|t| {
                        t.agent.as_str() == agent && same_file(&t.path, file)
                    });
                    if registered {
                        continue;
                    }
                    Finding {
                        check: "unregistered-env-file",
                        severity: Severity::High,
                        message: format!(
                            "{at} holds {} but is not a registered target: a rotation will leave the dead key there",
                            m.label
                        ),
                        fix: format!(
                            "vault target add --agent {agent} --env-file {}  (or delete the line)",
                            file.display()
                        ),
                    }
                }
                None => Finding {
                    check: "unmanaged-secret",
                    severity: Severity::Medium,
                    message: format!(
                        "{at} holds a {} ({}) the vault does not manage: {}",
                        f.name, f.rule, f.redacted
                    ),
                    fix: "store it with `vault set AGENT/NAME` (value on stdin), delete the line, \
                          and inject it with `vault run --agent AGENT`"
                        .into(),
                },
            };
            findings.push(finding);
        }
    }
    Ok(findings)
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}

/// Repositories `vault hook install` protected whose hook is gone or replaced.
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

fn hook_findings(home: &Path) -> Vec<Finding> {
    let mut findings = Vec::new();
    for repo in registered_repos(home) {
        let hooks = std::process::Command::new("git")
            .arg("-C")
            .arg(&repo)
            .args(["rev-parse", "--git-path", "hooks"])
            .output();
        let hook = match hooks {
            Ok(out) if out.status.success() => {
                let rel = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
                repo.join(rel).join("pre-commit")
            }
            _ => {
                findings.push(Finding {
                    check: "repo-without-hook",
                    severity: Severity::Low,
                    message: format!("{} is no longer a git repository", repo.display()),
                    fix: format!(
                        "forget it: remove its line from {}",
                        home.join(HOOKED_REPOS).display()
                    ),
                });
                continue;
            }
        };
        let ours =
            std::fs::read_to_string(&hook).is_ok_and(|t| t.contains(super::scan::HOOK_MARKER));
        if !ours {
            findings.push(Finding {
                check: "repo-without-hook",
                severity: Severity::Medium,
                message: format!(
                    "{} had vault's pre-commit hook and no longer has it: staged secrets are not checked",
                    repo.display()
                ),
                fix: format!("cd {} && vault hook install --chain", repo.display()),
            });
        }
    }
    findings
}

fn registered_repos(home: &Path) -> Vec<PathBuf> {
    std::fs::read_to_string(home.join(HOOKED_REPOS))
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.is_empty())
        .map(PathBuf::from)
        .collect()
}

/// Adds (or removes) `repo` in the list doctor checks. Only when a vault
/// exists: the hook works without one, and nothing is created for it.
pub(crate) fn register_repo(home: &Path, repo: &Path, add: bool) -> Result<()> {
    if !home.is_dir() {
        return Ok(());
    }
    let mut repos = registered_repos(home);
    repos.retain(|r| r != repo);
    if add {
        repos.push(repo.to_owned());
    }
    let path = home.join(HOOKED_REPOS);
    let tmp = home.join(format!("{HOOKED_REPOS}.tmp"));
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .with_context(|| format!("writing {}", tmp.display()))?;
    for r in &repos {
        writeln!(f, "{}", r.display())?;
    }
    f.sync_all()?;
    std::fs::rename(&tmp, &path)?;
    Ok(())
}
