//! One module per subcommand. Each gets a [`Context`] with what every
//! command may need: where the vault is, how to get the passphrase, and
//! whether to print JSON.

pub mod agent;
pub mod audit;
pub mod backup;
pub mod demo;
pub mod doctor;
pub mod egress;
pub mod import;
pub mod init;
pub mod integrate;
pub mod keys;
pub mod notify;
pub mod rekey;
pub mod resolve;
pub mod rotate;
pub mod run;
pub mod scan;
pub mod scrub;
pub mod secret;
pub mod server;
pub mod shell;
pub mod token;
pub mod ui;
pub mod watch;

use std::io::Write;
use std::path::PathBuf;

use anyhow::Result;
use vault_core::Vault;
use vault_guard::leak::Matcher;
use vault_scan::Report;

use crate::{exit, Cli, Command};

/// What every subcommand may need.
pub struct Context {
    /// The vault directory.
    pub home: PathBuf,
    /// Where the vault is: `home`, and the `--database` when one is named.
    pub location: vault_core::Location,
    /// Where the passphrase comes from, when not prompted.
    pub passphrase_file: Option<PathBuf>,
    /// Print JSON.
    pub json: bool,
    /// Names for "did you mean", read at unlock (the operator's view only).
    pub hints: std::cell::OnceCell<vault_core::suggest::NameHints>,
}

impl Context {
    /// Unlocks the vault, prompting if no passphrase file was given.
    pub fn unlock(&self) -> Result<Vault> {
        if !self.location.may_hold_vault() {
            if vault_client::addr_from_env().is_some() {
                return Err(exit::usage(vault_client::LOCAL_ONLY));
            }
            return Err(vault_core::Error::NoVault {
                path: self.home.clone(),
            }
            .into());
        }
        // three tries at a prompt (issue 19), one from a file or a script
        let file = self.passphrase_file.as_deref();
        let mut vault = vault_prompt::unlock(&self.location, file, |tries| {
            eprintln!("vault: wrong passphrase, try again ({tries} left)");
        })?;
        vault.set_audit_context(Some(format!("cli pid {}", std::process::id())), None);
        let _ = self
            .hints
            .set(vault_core::suggest::NameHints::of(&vault).unwrap_or_default());
        // A rotation a crash interrupted is finished before anything else runs.
        // Notified as the server notifies its own resumes (issue 14).
        let resumed = vault_guard::notify::resume_rotations(&mut vault)?;
        for err in &resumed.undelivered {
            eprintln!("vault: warning: {err}");
        }
        for r in &resumed.reports {
            let lines = vault_present::rotation::resumed_lines(r);
            lines.iter().for_each(|l| eprintln!("{l}"));
        }
        Ok(vault)
    }

    /// The scanner's view of this vault's credentials, read without the
    /// passphrase; a vault that cannot be read is said on stderr and the scan
    /// goes on with the provider rules alone.
    pub fn matcher(&self) -> Option<vault_guard::leak::Matcher> {
        vault_guard::leak::Matcher::try_load_at(&self.location).unwrap_or_else(|e| {
            eprintln!("vault: warning: scanning without the vault's known credentials: {e}");
            None
        })
    }

    /// Acts on every vault credential `matcher` recognised since the last call
    /// ([`vault_guard::leak::act`]: rotate, revoke, open approvals, notify)
    /// and says what it did; nothing, not even the unlock, when it saw none.
    pub fn act_on_leaks(&self, matcher: &Option<Matcher>, report: &Report) -> Result<()> {
        if let Some(m) = matcher.as_ref().filter(|m| m.has_seen()) {
            let acted = vault_guard::leak::act(&mut self.unlock()?, m.take_seen(), report)?;
            print_acted(&acted);
        }
        Ok(())
    }

    /// Prints one JSON value and a newline on stdout.
    pub fn print_json(&self, value: &serde_json::Value) -> Result<()> {
        let mut out = std::io::stdout().lock();
        writeln!(out, "{value}")?;
        Ok(())
    }
}

/// Tells the operator, well before the hard limit, that the data key needs replacing.
pub fn warn_dek_usage(vault: &Vault) {
    if let Some(w) = vault.dek_usage().ok().and_then(|u| u.warning()) {
        eprintln!("vault: warning: {w}");
    }
}

/// One stderr line per action on a leak, and a warning per notification not delivered.
pub fn print_acted(acted: &vault_guard::leak::Acted) {
    let lines = vault_present::leak::acted_lines(acted);
    lines.iter().for_each(|l| eprintln!("{l}"));
}

/// Sends an event, saying on stderr if a notifier failed.
pub fn send_notice(vault: &Vault, e: &vault_core::notify::Event) {
    for err in vault_guard::notify::send(vault, e) {
        eprintln!("vault: warning: {err}");
    }
}

/// Runs the parsed command line.
pub fn run(cli: Cli) -> Result<()> {
    // Runs before the vault directory is worked out: OpenClaw starts it with
    // an empty environment (no HOME), and it never touches a local vault.
    let command = match cli.command {
        Command::Resolve(args) => return resolve::run(args),
        Command::Completions(args) => return shell::completions(args),
        Command::Man => return shell::man(),
        other => other,
    };
    let location = vault_core::Location::from_env(cli.database)?;
    let ctx = Context {
        home: location.dir().to_owned(),
        location,
        // `--passphrase-file ""` means no file, like an empty VAULT_PASSPHRASE_FILE
        passphrase_file: cli.passphrase_file.filter(|p| !p.as_os_str().is_empty()),
        json: cli.json,
        hints: Default::default(),
    };
    let result = match command {
        Command::Init(args) => init::run(&ctx, args),
        Command::Agent(c) => agent::run(&ctx, c),
        Command::Set(args) => secret::set(&ctx, args),
        Command::Get(args) => secret::get(&ctx, args),
        Command::Ls(args) => secret::ls(&ctx, args),
        Command::Rm(args) => secret::rm(&ctx, args),
        Command::History(args) => secret::history(&ctx, args),
        Command::Issue(args) => keys::issue(&ctx, args),
        Command::Keys(c) => keys::keys(&ctx, c),
        Command::Token(args) => token::run(&ctx, args),
        Command::Run(args) => run::run(&ctx, args),
        Command::Env(args) => run::env(&ctx, args),
        Command::Egress(c) => egress::run(&ctx, c),
        Command::Target(c) => rotate::target(&ctx, c),
        Command::Rotate(args) => rotate::rotate(&ctx, args),
        Command::Rotation(c) => rotate::rotation(&ctx, c),
        Command::Rollback(args) => rotate::rollback(&ctx, args),
        Command::Approvals { pending } => rotate::approvals(&ctx, pending),
        Command::Approve { id } => rotate::decide(&ctx, &id, true),
        Command::Deny { id } => rotate::decide(&ctx, &id, false),
        Command::Notify(c) => notify::run(&ctx, c),
        Command::Scan(args) => scan::scan(&ctx, args),
        Command::Scrub(args) => scrub::run(&ctx, args),
        Command::Integrate(c) => integrate::run(&ctx, c),
        Command::Watch(args) => watch::run(&ctx, args),
        Command::Hook(c) => scan::hook(&ctx, c),
        Command::Server(args) => server::run(&ctx, args),
        Command::Ui(args) => ui::run(&ctx, args),
        Command::Resolve(args) => resolve::run(args),
        Command::Audit(c) => audit::audit(&ctx, c),
        Command::Usage(args) => audit::usage(&ctx, args),
        Command::Doctor(args) => doctor::doctor(&ctx, args),
        Command::Passwd(args) => rekey::passwd(&ctx, args),
        Command::Rekey(args) => rekey::rekey(&ctx, args),
        Command::Demo(args) => demo::run(&ctx, args),
        Command::Import(args) => import::import(&ctx, args),
        Command::Backup(args) => backup::backup(&ctx, args),
        Command::Restore(args) => backup::restore(&ctx, args),
        Command::Migrate(args) => backup::migrate(&ctx, args),
        Command::Completions(args) => shell::completions(args),
        Command::Man => shell::man(),
    };
    result.map_err(|mut e| {
        if let (Some(hints), Some(core)) = (ctx.hints.get(), e.downcast_mut()) {
            hints.attach(core);
        }
        e
    })
}

/// clap's parser for a duration flag: the same grammar as policy files (vault-core's
/// `parse_duration`), so no flag accepts a form another refuses.
pub fn parse_duration_flag(s: &str) -> std::result::Result<std::time::Duration, String> {
    vault_core::policy::parse_duration(s)
        .ok_or_else(|| format!("{s:?} is not a duration like 30s, 15m or 1h30m"))
}
