//! The doctor's checks that need the scanner (`vault doctor`): env files
//! scanned for vault credentials outside registered targets and for provider
//! secrets the vault does not manage, and git repositories whose pre-commit
//! hook went missing. vault-core's [`vault_core::doctor::review`] does the
//! rest; the CLI prints both.

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use vault_core::doctor::{Finding, Severity};
use vault_core::{KeyStatus, Principal, Vault};
use vault_scan::{KnownSecrets, ScanOptions, Scanner};

use crate::error::{invalid, Context as _, Result};
use crate::leak::Matcher;

/// What marks a pre-commit hook as vault's own (`vault hook install` writes it).
pub const HOOK_MARKER: &str = "# vault pre-commit hook";

/// Where `vault hook install` records the repositories it protects.
const HOOKED_REPOS: &str = "hooked-repos";

/// The env files agent runtimes read by default, where they exist: found
/// the way `vault target add` finds them ([`crate::runtimes`]), so a profile's
/// `HERMES_HOME` or an `OPENCLAW_PROFILE` leads both to the same files.
fn runtime_env_files() -> Vec<PathBuf> {
    let home = dirs::home_dir().unwrap_or_default();
    let hermes = crate::runtimes::hermes_root().unwrap_or_else(|_| home.join(".hermes"));
    let openclaw = crate::runtimes::openclaw_state_dir().unwrap_or_else(|_| home.join(".openclaw"));
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
/// `matcher` is the vault's ([`Matcher::try_load_at`]), if it could be read.
///
/// # Errors
/// Vault errors, or the scan rules do not load.
pub fn env_file_findings(
    vault: &Vault,
    matcher: Option<&Matcher>,
    named: &[PathBuf],
) -> Result<Vec<Finding>> {
    let op = &Principal::Operator;
    let targets = vault.list_targets(op, None)?;
    let key_agent: BTreeMap<String, (String, KeyStatus, String)> = vault
        .list_keys(op, None)?
        .into_iter()
        .map(|k| (k.key_id.into(), (k.agent.to_string(), k.status, k.name)))
        .collect();
    let mut files: Vec<PathBuf> = named.to_vec();
    files.extend(targets.iter().map(|t| t.path.clone()));
    files.extend(runtime_env_files());
    files.sort();
    files.dedup();
    let scanner =
        Scanner::builtin().map_err(|e| invalid(format!("loading the scan rules: {e}")))?;
    let known = matcher.map(|m| m as &dyn KnownSecrets);
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
                    let (agent, status, name) = key_agent
                        .get(&m.id)
                        .cloned()
                        .unwrap_or((String::new(), KeyStatus::Active, String::new()));
                    if let Some(finding) = leaked_key_finding(&at, file, &m.label, status, &name) {
                        findings.push(finding);
                        continue;
                    }
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

/// A vault key found where registering the file as a target is the wrong
/// advice (issue 19): a key already dead only needs its line gone, and a
/// file that is no env file (a transcript, a log) is a leak, not a place a
/// runtime loads its key from.
fn leaked_key_finding(
    at: &str,
    file: &Path,
    label: &str,
    status: KeyStatus,
    name: &str,
) -> Option<Finding> {
    let scrub = format!("vault scrub {}", file.display());
    if status == KeyStatus::Revoked {
        return Some(Finding {
            check: "dead-key-in-file",
            severity: Severity::Low,
            message: format!("{at} holds {label}, which is revoked and works nowhere"),
            fix: format!("delete the line, or `{scrub}`; nothing needs rotating"),
        });
    }
    if is_env_file(file) {
        return None;
    }
    Some(Finding {
        check: "leaked-key-in-file",
        severity: Severity::High,
        message: format!(
            "{at} holds {label} and is no env file (a transcript or a log?): the key has leaked"
        ),
        fix: format!("vault rotate {name}  (its targets get the successor), then {scrub}"),
    })
}

/// Whether every line that is not blank or a comment is `NAME=value` (or
/// `export NAME=value`): what dotenv loaders read. A transcript is JSON or text.
fn is_env_file(file: &Path) -> bool {
    let Ok(text) = std::fs::read_to_string(file) else {
        return true;
    };
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .all(|l| {
            let l = l.strip_prefix("export ").unwrap_or(l);
            l.split_once('=').is_some_and(|(k, _)| {
                !k.is_empty()
                    && k.chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
            })
        })
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}

/// Repositories `vault hook install` protected whose hook is gone or replaced.
pub fn hook_findings(home: &Path) -> Vec<Finding> {
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
        let ours = std::fs::read_to_string(&hook).is_ok_and(|t| t.contains(HOOK_MARKER));
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
///
/// # Errors
/// The list cannot be written.
pub fn register_repo(home: &Path, repo: &Path, add: bool) -> Result<()> {
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
