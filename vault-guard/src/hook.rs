//! The git pre-commit hook that runs `vault scan --staged` (`vault hook
//! install|uninstall`): written into the repository's hooks directory as git
//! itself names it, chaining a hook vault did not write when asked, and
//! recorded for `vault doctor`'s check of hooked repositories.

use std::path::{Path, PathBuf};

use crate::doctor::{register_repo, HOOK_MARKER};
use crate::error::{invalid, refused, Context as _, Error, Result};

/// Where the hook lives and where a chained one is kept.
struct Hooks {
    hook: PathBuf,
    chained: PathBuf,
}

/// Said wherever a command needs a repository and the current directory is in none
/// (git's own answer there, for `diff --cached`, is a usage text naming no vault flag).
const NOT_A_REPO: &str =
    "not inside a git repository: run this in a repository's working tree (`git init` makes one)";

fn hooks_dir() -> Result<Hooks> {
    let out = std::process::Command::new("git")
        .args(["rev-parse", "--git-path", "hooks"])
        .output()
        .context("running git")?;
    if !out.status.success() {
        return Err(invalid(NOT_A_REPO));
    }
    let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    Ok(Hooks {
        hook: dir.join("pre-commit"),
        chained: dir.join("pre-commit.vault-chained"),
    })
}

fn ours(p: &Path) -> bool {
    std::fs::read_to_string(p).is_ok_and(|t| t.contains(HOOK_MARKER))
}

/// Installs the hook of the repository the current directory is in,
/// running the binary at `exe` (or `$VAULT_BIN`, or `vault` on PATH), and
/// records the repository in `home`. A hook vault did not write is refused
/// unless `force` (replaced) or `chain` (kept, and run before the scan).
/// Returns the hook's path.
///
/// # Errors
/// Not in a git repository, or a foreign hook without `force` or `chain`.
pub fn install(home: &Path, exe: &Path, force: bool, chain: bool) -> Result<PathBuf> {
    let Hooks { hook, chained } = hooks_dir()?;
    if hook.exists() && !ours(&hook) {
        if chain {
            std::fs::rename(&hook, &chained)?;
        } else if !force {
            return Err(refused(format!(
                "{} exists and vault did not write it; pass --chain to run it before the scan, or --force to replace it",
                hook.display()
            )));
        }
    }
    let script = format!(
        "#!/bin/sh\n{HOOK_MARKER} (written by `vault hook install`; remove with `vault hook uninstall`)\n\
         set -e\n\
         if [ -x \"$(dirname \"$0\")/pre-commit.vault-chained\" ]; then \"$(dirname \"$0\")/pre-commit.vault-chained\" \"$@\"; fi\n\
         VAULT=\"${{VAULT_BIN:-{}}}\"\n\
         command -v \"$VAULT\" >/dev/null 2>&1 || VAULT=vault\n\
         exec \"$VAULT\" scan --staged\n",
        exe.display()
    );
    crate::fs::write_atomic(&hook, script.as_bytes(), 0o755)?;
    if let Some(repo) = repo_root() {
        register_repo(home, &repo, true)?;
    }
    Ok(hook)
}

/// What [`uninstall`] did.
#[derive(Debug)]
pub struct Uninstalled {
    /// The hook removed.
    pub hook: PathBuf,
    /// Whether a hook vault had chained was put back in its place.
    pub restored_chained: bool,
}

/// Removes vault's hook (restoring a chained one) and forgets the repository.
///
/// # Errors
/// Not in a git repository, no hook there (`not_found`), or the hook there is not
/// vault's (left alone).
pub fn uninstall(home: &Path) -> Result<Uninstalled> {
    let Hooks { hook, chained } = hooks_dir()?;
    // Nothing there is not a foreign hook: say what is missing (issue 19).
    if hook.symlink_metadata().is_err() {
        return Err(Error::Vault(vault_core::Error::NotFound {
            what: "pre-commit hook",
            name: hook.display().to_string(),
            suggestion: None,
        }));
    }
    if !ours(&hook) {
        return Err(refused(format!(
            "{} is not vault's hook; leaving it",
            hook.display()
        )));
    }
    std::fs::remove_file(&hook)?;
    if let Some(repo) = repo_root() {
        register_repo(home, &repo, false)?;
    }
    let restored_chained = chained.exists();
    if restored_chained {
        std::fs::rename(&chained, &hook)?;
    }
    Ok(Uninstalled {
        hook,
        restored_chained,
    })
}

/// Scans what is staged in the repository the current directory is in (`vault scan
/// --staged`); outside one, a clear error rather than git's usage text.
///
/// # Errors
/// Not in a git repository, or git cannot be run.
pub fn scan_staged(
    scanner: &vault_scan::Scanner,
    known: Option<&dyn vault_scan::KnownSecrets>,
    options: &vault_scan::ScanOptions,
) -> Result<vault_scan::Report> {
    let out = std::process::Command::new("git")
        .args(["rev-parse", "--git-dir"])
        .output()
        .context("running git")?;
    if !out.status.success() {
        return Err(invalid(NOT_A_REPO));
    }
    Ok(vault_scan::scan_staged(
        scanner,
        known,
        Path::new("."),
        options,
    ))
}

/// The working tree's top directory, when inside one.
fn repo_root() -> Option<PathBuf> {
    let out = std::process::Command::new("git")
        .args(["rev-parse", "--show-toplevel"])
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()))
}
