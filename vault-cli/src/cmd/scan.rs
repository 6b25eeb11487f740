//! `vault scan` and `vault hook`: find leaked secrets in files, git staging,
//! transcripts and stdin, name the vault-managed ones without the passphrase,
//! and (`--rotate`) act on them: rotate leaked keys, revoke leaked tokens,
//! open approvals for leaked third-party secrets.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use anyhow::{Context as _, Result};
use vault_core::known::KnownCredentials;
use vault_core::{LeakAction, SecretPath, SecretString};
use vault_scan::{output, Baseline, KnownSecrets, ManagedInfo, Report, ScanOptions, Scanner};

use super::Context;
use crate::exit;

/// `vault scan`.
#[derive(clap::Args, Debug)]
pub struct ScanArgs {
    /// Files and directories (default: the current directory). .gitignore is respected.
    paths: Vec<PathBuf>,
    /// Scan what is staged for commit (the index, not the working tree).
    #[arg(long, conflicts_with_all = ["paths", "stdin"])]
    staged: bool,
    /// Scan standard input (an agent hook checking a message before it is kept).
    #[arg(long, conflicts_with = "paths")]
    stdin: bool,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Human)]
    format: Format,
    /// Scan files .gitignore would skip.
    #[arg(long)]
    no_ignore: bool,
    /// Accepted findings (a JSON baseline written with --write-baseline) to leave out.
    #[arg(long, value_name = "FILE")]
    baseline: Option<PathBuf>,
    /// Write the current findings as a baseline to FILE and exit 0.
    #[arg(long, value_name = "FILE")]
    write_baseline: Option<PathBuf>,
    /// Act on vault-managed findings: rotate leaked keys, revoke leaked tokens,
    /// open approvals for leaked stored secrets (needs the passphrase).
    #[arg(long)]
    rotate: bool,
}

/// Output formats of `vault scan`.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// Redacted findings for a person.
    Human,
    /// {"findings": [...], "errors": [...]}.
    Json,
    /// SARIF 2.1.0 for code-scanning tools.
    Sarif,
}

/// `vault hook ...`.
#[derive(clap::Subcommand, Debug)]
pub enum HookCommand {
    /// Install a git pre-commit hook running `vault scan --staged`.
    Install {
        /// Replace a pre-commit hook vault did not write.
        #[arg(long)]
        force: bool,
        /// Keep a hook vault did not write, running it before the scan.
        #[arg(long, conflicts_with = "force")]
        chain: bool,
    },
    /// Remove vault's pre-commit hook (restoring a chained one).
    Uninstall,
}

/// The vault's own view for the scanner: named keys by hash, stored secrets
/// by keyed fingerprint. It remembers, in zeroizing memory, which vault
/// credentials it recognised, so `--rotate` can act on them.
pub struct Matcher {
    known: KnownCredentials,
    lengths: Vec<usize>,
    seen: Mutex<Vec<Seen>>,
}

enum Seen {
    Credential(SecretString),
    Secret(SecretPath),
}

impl Matcher {
    /// The vault's known credentials, read without the passphrase; `None`
    /// when there is no vault (provider rules still apply).
    pub fn load(home: &Path) -> Option<Matcher> {
        match KnownCredentials::load(home) {
            Ok(known) => Some(Matcher {
                lengths: known.secret_lengths().iter().copied().collect(),
                known,
                seen: Mutex::new(Vec::new()),
            }),
            Err(vault_core::Error::NoVault { .. }) => None,
            Err(e) => {
                eprintln!("vault: warning: scanning without the vault's known credentials: {e}");
                None
            }
        }
    }

    /// Whether the last scans recognised any vault credential.
    pub fn has_seen(&self) -> bool {
        self.seen.lock().is_ok_and(|s| !s.is_empty())
    }
}

impl KnownSecrets for Matcher {
    fn credential(&self, candidate: &[u8]) -> Option<ManagedInfo> {
        let text = std::str::from_utf8(candidate).ok()?;
        let info = if let Some(k) = self.known.identify_key(text) {
            ManagedInfo {
                label: format!("agent {} / key {}", k.agent, k.name),
                id: k.key_id.clone(),
            }
        } else if let Some(k) = self.known.identify_token(text) {
            ManagedInfo {
                label: format!("agent {} / token of key {}", k.agent, k.name),
                id: k.key_id.clone(),
            }
        } else {
            return None;
        };
        if let Ok(mut seen) = self.seen.lock() {
            seen.push(Seen::Credential(SecretString::new(text.to_owned())));
        }
        Some(info)
    }

    fn lengths(&self) -> &[usize] {
        &self.lengths
    }

    fn matches(&self, candidate: &[u8]) -> Option<ManagedInfo> {
        let path = self.known.identify_secret(candidate)?.clone();
        let info = ManagedInfo {
            label: format!("secret {path}"),
            id: format!("secret:{path}"),
        };
        if let Ok(mut seen) = self.seen.lock() {
            seen.push(Seen::Secret(path));
        }
        Some(info)
    }
}

pub fn scan(ctx: &Context, args: ScanArgs) -> Result<()> {
    let scanner =
        Scanner::builtin().map_err(|e| exit::usage(format!("loading the scan rules: {e}")))?;
    let matcher = Matcher::load(&ctx.home);
    let known: Option<&dyn KnownSecrets> = matcher.as_ref().map(|m| m as &dyn KnownSecrets);
    let options = ScanOptions {
        respect_ignore: !args.no_ignore,
        ..ScanOptions::default()
    };
    let mut report: Report = if args.staged {
        vault_scan::scan_staged(&scanner, known, Path::new("."), &options)
    } else if args.stdin {
        vault_scan::scan_reader(&scanner, known, "<stdin>", &mut std::io::stdin().lock())
    } else {
        let paths = if args.paths.is_empty() {
            vec![PathBuf::from(".")]
        } else {
            args.paths.clone()
        };
        vault_scan::scan_paths(&scanner, known, &paths, &options)
    };
    if let Some(file) = &args.baseline {
        let text = std::fs::read_to_string(file)
            .with_context(|| format!("reading the baseline {}", file.display()))?;
        let baseline = Baseline::parse(&text).map_err(|e| {
            exit::usage(format!("the baseline {} is not valid: {e}", file.display()))
        })?;
        baseline.filter(&mut report.findings);
    }
    if let Some(file) = &args.write_baseline {
        let baseline = Baseline::from_findings(&report.findings);
        std::fs::write(file, serde_json::to_string_pretty(&baseline)?)?;
        eprintln!(
            "wrote {} accepted finding(s) to {}",
            report.findings.len(),
            file.display()
        );
        return Ok(());
    }
    let mut out = std::io::stdout().lock();
    match (args.format, ctx.json) {
        (Format::Json, _) | (_, true) => output::write_json(&mut out, &report)?,
        (Format::Sarif, _) => output::write_sarif(&mut out, &report)?,
        (Format::Human, _) => {
            output::write_human(&mut out, &report, std::io::stdout().is_terminal())?;
            if args.staged && !report.findings.is_empty() {
                eprintln!(
                    "\nvault: the commit is blocked: remove the secret from the staged files \
                     (then `git add` them again), rotate it if it was real (`vault rotate`), or, \
                     for a false positive, add `vault:allow` on its line. `git commit --no-verify` \
                     skips this check; don't."
                );
            }
        }
    }
    drop(out);
    if args.rotate {
        if let Some(m) = matcher.as_ref().filter(|m| m.has_seen()) {
            let mut vault = ctx.unlock()?;
            act_on_leaks(&mut vault, m, &report)?;
        }
    }
    let code = report.exit_code();
    if code != 0 {
        std::process::exit(code);
    }
    Ok(())
}

/// Acts on every vault credential the matcher recognised since the last call.
pub fn act_on_leaks(
    vault: &mut vault_core::Vault,
    matcher: &Matcher,
    report: &Report,
) -> Result<()> {
    let seen = std::mem::take(
        &mut *matcher
            .seen
            .lock()
            .map_err(|_| exit::usage("scanner state poisoned"))?,
    );
    for item in seen {
        let action = match &item {
            Seen::Credential(text) => vault.handle_leaked_credential(text.expose_secret())?,
            Seen::Secret(path) => {
                let id = format!("secret:{path}");
                let location = report
                    .findings
                    .iter()
                    .find(|f| f.managed.as_ref().is_some_and(|m| m.id == id))
                    .map(|f| format!("{}:{}", f.path, f.line))
                    .unwrap_or_else(|| "a scanned file".into());
                vault.report_secret_leak(path, &location)?
            }
        };
        let line = match &action {
            LeakAction::KeyRotated(r) => {
                super::notify::send(vault, &super::rotate::rotation_event(r));
                if let Some(k) = &r.new_key {
                    eprintln!(
                        "vault: no target holds the new key of {}; it is shown once: {}",
                        r.key_name,
                        k.expose_secret()
                    );
                }
                format!(
                    "rotated key {} of {}: {} -> {}",
                    r.key_name, r.agent, r.old_key_id, r.new_key_id
                )
            }
            LeakAction::KeyAlreadyDead { key_id } => {
                format!("key {key_id} was already revoked or expired")
            }
            LeakAction::TokenRevoked { token_id } => format!("revoked token {token_id}"),
            LeakAction::TokenAlreadyDead => "a leaked token had already expired".into(),
            LeakAction::ApprovalOpened { approval_id } => {
                super::notify::send(
                    vault,
                    &super::notify::event(
                        "approval_needed",
                        serde_json::json!({"approval_id": approval_id}),
                    ),
                );
                format!("opened approval {approval_id}: run `vault approvals` to review, `vault approve {approval_id}` to rotate")
            }
            LeakAction::SecretRotated { version } => {
                format!("rotated a leaked stored secret to version {version}")
            }
            LeakAction::SecretNeedsManualRotation => {
                "a leaked stored secret has no rotation command: store a new value with `vault set`"
                    .into()
            }
            LeakAction::Unknown => continue,
        };
        super::notify::send(
            vault,
            &super::notify::event("leak", serde_json::json!({"action": line})),
        );
        eprintln!("vault: {line}");
    }
    Ok(())
}

const HOOK_MARKER: &str = "# vault pre-commit hook";

pub fn hook(_ctx: &Context, command: HookCommand) -> Result<()> {
    let out = std::process::Command::new("git")
        .args(["rev-parse", "--git-path", "hooks"])
        .output()
        .context("running git")?;
    if !out.status.success() {
        return Err(exit::usage("not inside a git repository"));
    }
    let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let hook = dir.join("pre-commit");
    let chained = dir.join("pre-commit.vault-chained");
    let ours = |p: &Path| std::fs::read_to_string(p).is_ok_and(|t| t.contains(HOOK_MARKER));
    match command {
        HookCommand::Install { force, chain } => {
            if hook.exists() && !ours(&hook) {
                if chain {
                    std::fs::rename(&hook, &chained)?;
                } else if !force {
                    return Err(exit::refused(format!(
                        "{} exists and vault did not write it; pass --chain to run it before the scan, or --force to replace it",
                        hook.display()
                    )));
                }
            }
            let exe = std::env::current_exe()?;
            let script = format!(
                "#!/bin/sh\n{HOOK_MARKER} (written by `vault hook install`; remove with `vault hook uninstall`)\n\
                 set -e\n\
                 if [ -x \"$(dirname \"$0\")/pre-commit.vault-chained\" ]; then \"$(dirname \"$0\")/pre-commit.vault-chained\" \"$@\"; fi\n\
                 VAULT=\"${{VAULT_BIN:-{}}}\"\n\
                 command -v \"$VAULT\" >/dev/null 2>&1 || VAULT=vault\n\
                 exec \"$VAULT\" scan --staged\n",
                exe.display()
            );
            std::fs::write(&hook, script)?;
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o755))?;
            eprintln!("installed {}", hook.display());
        }
        HookCommand::Uninstall => {
            if !ours(&hook) {
                return Err(exit::refused(format!(
                    "{} is not vault's hook; leaving it",
                    hook.display()
                )));
            }
            std::fs::remove_file(&hook)?;
            if chained.exists() {
                std::fs::rename(&chained, &hook)?;
                eprintln!("removed vault's hook and restored the one it chained");
            } else {
                eprintln!("removed {}", hook.display());
            }
        }
    }
    Ok(())
}
