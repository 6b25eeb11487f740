//! What a scan that blocks says: a commit stopped by `vault scan --staged`,
//! and an agent runtime's hook refusing a prompt or tool call. The reasons
//! name rules and redacted forms, never a secret.

use vault_scan::Report;

/// After the findings of a blocked commit: how to get past it honestly.
pub const COMMIT_BLOCKED: &str = "\nvault: the commit is blocked: remove the secret from the \
    staged files (then `git add` them again), rotate it if it was real (at its provider, then \
    `vault set`; a vault key with `vault rotate`), or, for a false positive, add `vault:allow` on its line (a vault-managed credential is never \
    allowed). `git commit --no-verify` skips this check; don't.";

/// A commit blocked because files could not be scanned: one line per file,
/// then how to commit them unscanned on purpose (issue 13, finding 4).
pub fn unscanned_lines(report: &Report) -> Vec<String> {
    let mut lines: Vec<String> = report
        .unscanned()
        .map(|s| {
            format!(
                "vault: not scanned: {}: {}",
                s.path.escape_debug(),
                s.reason
            )
        })
        .collect();
    lines.push(format!(
        "vault: the commit is blocked: {} staged file(s) could not be scanned. To commit \
         them unscanned: `VAULT_SCAN_ALLOW_SKIPPED=1 git commit` (or `vault scan --staged \
         --allow-skipped`).",
        lines.len()
    ));
    lines
}

/// The reason a hook gives when it blocks, or None when it lets the text
/// through. A scan that could not run blocks too: a hook that fails open
/// protects nothing.
pub fn hook_block_reason(report: &Report) -> Option<String> {
    if let Some(e) = report.errors.first() {
        return Some(format!(
            "vault: blocked: the secret scan could not run ({}), so this is not let through",
            e.message
        ));
    }
    if report.findings.is_empty() {
        return None;
    }
    let mut reason = format!(
        "vault: blocked: this holds {} secret(s), which would be kept in the transcript:",
        report.findings.len()
    );
    for f in &report.findings {
        let whose = f.managed.as_ref().map(|m| format!(" ({})", m.label));
        reason += &format!("\n  {} {}{}", f.rule, f.redacted, whose.unwrap_or_default());
    }
    reason.push_str(
        "\nRemove the secret and refer to it by name instead (the agent gets it from its \
         environment). If it was real, rotate it: at its provider, then `vault set` the new \
         value (a vault key: `vault rotate`).",
    );
    Some(reason)
}
