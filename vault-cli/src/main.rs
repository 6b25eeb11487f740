//! `vault`: the command line over vault-core. Thin: parse arguments, read
//! passphrases and values from safe places, call the library, print. Exit
//! codes live in one place, [`exit`].

mod cmd;
mod exit;

use std::io::Write;
use std::path::PathBuf;

use clap::{Parser, Subcommand};
use vault_guard::redact;

/// A local secrets vault for AI agents: one encrypted SQLite file, one named key
/// per agent, only that agent's secrets in its environment.
///
/// Secrets are read only from a no-echo prompt, stdin or a file, never from
/// arguments. The passphrase comes from a prompt, --passphrase-file or
/// VAULT_PASSPHRASE_FILE. The vault lives in VAULT_HOME (default: the
/// platform data directory, e.g. ~/.local/share/vault).
///
/// Exit codes: 0 ok, 1 findings or refused, 2 usage or input error,
/// 3 wrong passphrase or bad credential, 4 not found.
#[derive(Parser, Debug)]
#[command(name = "vault", version, max_term_width = 100)]
pub struct Cli {
    /// Read the passphrase from the first line of FILE (also VAULT_PASSPHRASE_FILE).
    #[arg(
        long,
        global = true,
        value_name = "FILE",
        env = "VAULT_PASSPHRASE_FILE"
    )]
    passphrase_file: Option<PathBuf>,

    /// The vault's PostgreSQL database, postgres://USER@HOST:PORT/DB (also VAULT_DATABASE_URL).
    #[arg(
        long,
        global = true,
        value_name = "URL",
        env = "VAULT_DATABASE_URL",
        hide_env_values = true
    )]
    database: Option<String>,
    /// Print machine-readable JSON (errors too, as {"error": {"code", "message"}}).
    #[arg(long, global = true)]
    json: bool,

    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Create a vault: ask for a passphrase twice, calibrate Argon2id to ~0.5 s.
    Init(cmd::init::Args),
    /// Register, list, show or remove agents.
    #[command(subcommand)]
    Agent(cmd::agent::Command),
    /// Store a new version of AGENT/NAME; the value comes from stdin or a no-echo prompt.
    Set(cmd::secret::SetArgs),
    /// Print the value of AGENT/NAME (the only command that shows a value).
    Get(cmd::secret::GetArgs),
    /// List secrets (names and versions, never values).
    Ls(cmd::secret::LsArgs),
    /// Delete AGENT/NAME and all its versions.
    Rm(cmd::secret::RmArgs),
    /// List the versions of AGENT/NAME (dates, never values).
    History(cmd::secret::HistoryArgs),
    /// Issue a named key to an agent: shown once, or written into its env file.
    Issue(cmd::keys::IssueArgs),
    /// List and revoke named keys.
    #[command(subcommand)]
    Keys(cmd::keys::KeysCommand),
    /// Mint a short-lived scoped token from a named key (VAULT_AGENT_KEY or
    /// --key-file); `token verify` and `token revoke` read a token on stdin.
    Token(cmd::token::Args),
    /// Run a command with exactly one agent's secrets in its environment.
    Run(cmd::run::RunArgs),
    /// Print one agent's secrets as dotenv, JSON or shell, or write them to a file.
    #[command(visible_alias = "export")]
    Env(cmd::run::EnvArgs),
    /// Store every variable of a dotenv (or JSON) file as AGENT's secrets; prints
    /// names and versions, never values.
    Import(cmd::import::ImportArgs),
    /// Brokered egress: the built-in services `[[egress]] service = "..."` names.
    #[command(subcommand)]
    Egress(cmd::egress::EgressCommand),
    /// Register the env files where agents' keys live; rotations rewrite them.
    #[command(subcommand)]
    Target(cmd::rotate::TargetCommand),
    /// Rotate a named key (successor written to every target, then the old one
    /// revoked) or a stored secret with its rotation command.
    Rotate(cmd::rotate::RotateArgs),
    /// Configure how stored secrets rotate; list, show or remove key rotations.
    #[command(subcommand)]
    Rotation(cmd::rotate::RotationCommand),
    /// Store a kept version of AGENT/NAME again as its current value.
    Rollback(cmd::rotate::RollbackArgs),
    /// List approvals waiting for a person (and past ones).
    Approvals {
        /// Only those still waiting for a decision.
        #[arg(long)]
        pending: bool,
    },
    /// Approve a drafted action (e.g. rotating a leaked third-party secret).
    Approve {
        /// The approval id.
        id: String,
    },
    /// Deny a drafted action; nothing it drafted happens.
    Deny {
        /// The approval id.
        id: String,
    },
    /// Where leak, rotation and approval events go (a command or loopback webhook).
    #[command(subcommand)]
    Notify(cmd::notify::NotifyCommand),
    /// Find leaked secrets in files, staged changes, transcripts or stdin
    /// (exit 1 on findings, 2 if anything could not be read).
    Scan(cmd::scan::ScanArgs),
    /// After a leak, replace leaked values in transcripts (JSONL files, Hermes and
    /// OpenClaw SQLite stores) with a redaction marker.
    Scrub(cmd::scrub::Args),
    /// Follow transcript files as they grow; rotate vault keys that leak into them.
    Watch(cmd::watch::Args),
    /// Install or remove the git pre-commit hook that runs `vault scan --staged`.
    #[command(subcommand)]
    Hook(cmd::scan::HookCommand),
    /// Answer a secret runtime's request as the calling agent, through a running
    /// server: `--openclaw` speaks OpenClaw's exec SecretRef provider protocol.
    Resolve(cmd::resolve::Args),
    /// Wire vault into an agent runtime: the Hermes secret-source plugin, Claude
    /// Code hooks.
    #[command(subcommand)]
    Integrate(cmd::integrate::Command),
    /// Serve agents over HTTP (loopback by default, TLS or a Unix socket): tokens, secrets and
    /// env without the passphrase.
    Server(cmd::server::Args),
    /// The server's web console: print a one-time sign-in URL (and open it when a
    /// browser is there); `vault ui logout --all` signs every browser out.
    Ui(cmd::ui::UiArgs),
    /// The hash-chained audit trail: `audit log`, `audit verify`.
    #[command(subcommand)]
    Audit(cmd::audit::AuditCommand),
    /// Per-key usage: tokens minted, reads, denials, last use; and through the
    /// broker, requests, model tokens and cost (`--by host|model|day`).
    Usage(cmd::audit::UsageArgs),
    /// The least-privilege review: findings with severity and the fix (exit 1 on high).
    Doctor(cmd::doctor::DoctorArgs),
    /// Change the passphrase: rewraps the data key, values untouched.
    ///
    /// The old passphrase then still opens any earlier copy of the vault (a
    /// backup, a synced copy), whose data key is the same. `--new-data-key`
    /// also replaces the data key and re-encrypts every value, as `vault
    /// rekey` does; that is the default while a stored secret is marked
    /// compromised (`--keep-data-key` opts out).
    Passwd(cmd::rekey::PasswdArgs),
    /// Replace the data key and re-encrypt every value in one transaction.
    Rekey(cmd::rekey::RekeyArgs),
    /// A guided tour in a throwaway vault: every step printed as it runs.
    Demo(cmd::demo::Args),
    /// Write a consistent copy of the whole vault to a new 0600 file, safe while
    /// servers run (unlike `cp vault.db`, which loses what is in the WAL).
    Backup(cmd::backup::BackupArgs),
    /// Replace the vault with a backup, after checking its integrity and audit
    /// chain; keys revoked since stay revoked.
    Restore(cmd::backup::RestoreArgs),
    /// Copy the vault from SQLite into PostgreSQL, or back (`--to`), as stored.
    Migrate(cmd::backup::MigrateArgs),
    /// Print a shell completion script: `vault completions bash|zsh|fish`.
    Completions(cmd::shell::CompletionsArgs),
    /// Print the vault(1) man page (roff).
    Man,
}

/// The one place the process ends: every command returns, so the destructors
/// that zeroize keys and restore the terminal have run by now (ripgrep's shape).
fn main() {
    let code = try_main();
    std::process::exit(code);
}

/// Parses, runs the command and turns its outcome into the exit code.
fn try_main() -> i32 {
    // First thing: no core dump and no same-user ptrace of a process that may
    // hold the unlocked data key (children of `vault run` get it back at exec).
    let _ = nix::sys::prctl::set_dumpable(false);
    // A `VAULT_*` variable set and empty is unset (issue 19), not an error about a flag
    // nobody typed. Still one thread here, so changing the environment is sound.
    for (name, value) in std::env::vars_os() {
        if value.is_empty() && name.to_string_lossy().starts_with("VAULT_") {
            std::env::remove_var(name);
        }
    }
    let argv: Vec<std::ffi::OsString> = std::env::args_os().collect();
    // `--json` before any `--`: usage errors are JSON too (issue 19)
    let json_asked = argv
        .iter()
        .skip(1)
        .take_while(|a| *a != "--")
        .any(|a| a == "--json");
    let cli = match Cli::try_parse_from(&argv) {
        Ok(cli) => cli,
        Err(e) => {
            use clap::error::{ContextKind, ContextValue, ErrorKind::*};
            let shown = matches!(
                e.kind(),
                DisplayHelp | DisplayVersion | DisplayHelpOnMissingArgumentOrSubcommand
            );
            if !shown {
                let surplus = match e.get(ContextKind::InvalidArg) {
                    Some(ContextValue::String(a)) if e.kind() == UnknownArgument => Some(&a[..]),
                    _ => None,
                };
                let guarded = redact::guard_usage(&e.to_string(), &argv, surplus);
                if json_asked {
                    let text = guarded.unwrap_or_else(|| e.to_string());
                    let message = vault_present::text::usage_message(&text);
                    let body = vault_present::text::error_json("usage", &message);
                    let _ = writeln!(std::io::stdout(), "{body}");
                    return exit::USAGE;
                }
                if let Some(safe) = guarded {
                    let _ = writeln!(std::io::stderr(), "error: {safe}");
                    return exit::USAGE;
                }
            }
            // clap's own exit, without ending the process here: help and
            // version on stdout with 0, usage errors on stderr with 2
            let _ = e.print();
            return e.exit_code();
        }
    };
    let json = cli.json;
    let result = cmd::run(cli);
    match result {
        Ok(()) => exit::OK,
        Err(err) if exit::code_of(&err).is_some() => exit::code_of(&err).unwrap_or(exit::USAGE),
        Err(err) if exit::is_broken_pipe(&err) => exit::OK,
        Err(err) => {
            let (code, name) = exit::classify(&err);
            let message = exit::message(&err);
            let message =
                redact::guard_message(&message, &redact::sensitive_args(&argv)).unwrap_or(message);
            if json {
                let body = vault_present::text::error_json(&name, &message);
                let _ = writeln!(std::io::stdout(), "{body}");
            } else {
                // messages quote file names and stored text: one line, no escapes
                let _ = writeln!(
                    std::io::stderr(),
                    "vault: error: {}",
                    vault_present::text::safe(&message)
                );
            }
            code
        }
    }
}
