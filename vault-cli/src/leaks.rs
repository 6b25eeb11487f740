//! Acting on the leaks a scan found, for `vault scan --rotate`, its hooks
//! and `vault watch` alike: [`vault_guard::leak::act`] acts and notifies,
//! [`vault_present::leak`] words it, this says it on stderr.

use anyhow::Result;
use vault_guard::leak::{self, Acted, Matcher};
use vault_scan::Report;

/// Acts on every vault credential the matcher recognised since the last
/// call, and says what it did.
pub fn act_on_leaks(
    vault: &mut vault_core::Vault,
    matcher: &Matcher,
    report: &Report,
) -> Result<()> {
    let acted = leak::act(vault, matcher.take_seen(), report)?;
    print_acted(&acted);
    Ok(())
}

/// One stderr line per action, and a warning per notification not delivered.
pub fn print_acted(acted: &Acted) {
    vault_present::leak::acted_lines(acted)
        .iter()
        .for_each(|l| eprintln!("{l}"));
}
