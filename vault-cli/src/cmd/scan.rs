//! `vault scan` and `vault hook`: find leaked secrets in files, git staging,
//! transcripts and stdin, name the vault-managed ones without the passphrase,
//! and (`--rotate`) act on them: rotate leaked keys, revoke leaked tokens,
//! open approvals for leaked third-party secrets.

use std::io::IsTerminal;
use std::path::PathBuf;

use anyhow::Result;
use vault_guard::leak::Matcher;
use vault_present::progress::show_progress;
use vault_scan::{output, KnownSecrets, Report, ScanOptions, Scanner};

use super::Context;
use crate::exit;

/// `vault scan`.
#[derive(clap::Args, Debug)]
pub struct ScanArgs {
    /// Files and directories. .gitignore is respected.
    #[arg(default_value = ".")]
    paths: Vec<PathBuf>,
    /// List the rules (id, confidence, name, documentation) and scan nothing.
    #[arg(long, conflicts_with_all = ["paths", "staged", "stdin"])]
    rules: bool,
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
    /// With --staged: let the check pass over files it could not scan (over the size cap),
    /// which otherwise block. For a commit: `VAULT_SCAN_ALLOW_SKIPPED=1 git commit`.
    #[arg(long, env = "VAULT_SCAN_ALLOW_SKIPPED", value_parser = clap::builder::FalseyValueParser::new())]
    allow_skipped: bool,
    /// Files larger than this many bytes are not scanned (and reported as skipped).
    #[arg(long, value_name = "BYTES", default_value_t = 256 << 20)]
    max_file_size: u64,
    /// Also report GitHub/npm-shaped values whose documented checksum fails (low
    /// confidence, `invalid_checksum`); they are not tokens, so they are left out by default.
    #[arg(long)]
    include_invalid: bool,
    /// Show findings at this confidence or above: `medium` (provider formats and generic
    /// assignments outside test, fixture, example and documentation paths), `high`
    /// (provider formats only) or `low` (everything, published test keys included).
    #[arg(long, value_name = "LEVEL", default_value = "medium", value_parser = ["low", "medium", "high"])]
    confidence: String,
    /// Act on vault-managed findings: rotate leaked keys, revoke leaked tokens,
    /// open approvals for leaked stored secrets (needs the passphrase).
    #[arg(long)]
    rotate: bool,
    /// Answer as an agent runtime's hook: `claude-code` prints nothing on stdout,
    /// exits 0 when clean and 2 (Claude Code's only blocking code) with the
    /// redacted reason on stderr on a finding or an error.
    #[arg(long, value_enum, requires = "stdin", value_name = "RUNTIME")]
    hook: Option<HookMode>,
}

/// Hook protocols `vault scan --stdin --hook` speaks.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum HookMode {
    /// Claude Code command hooks (UserPromptSubmit, PreToolUse): exit 2 blocks,
    /// stderr is the reason Claude and the person see; exit 1 would not block.
    ClaudeCode,
    /// Gemini CLI command hooks (BeforeAgent, BeforeTool): exit 2 blocks with
    /// stderr as the reason; on exit 0 stdout must be JSON, so `{}` is printed.
    Gemini,
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

pub fn scan(ctx: &Context, args: ScanArgs) -> Result<()> {
    let scanner =
        Scanner::builtin().map_err(|e| exit::usage(format!("loading the scan rules: {e}")))?;
    if args.rules {
        output::print_rules(&scanner, ctx.json || args.format == Format::Json)?;
        return Ok(());
    }
    let matcher = ctx.matcher();
    let known: Option<&dyn KnownSecrets> = matcher.as_ref().map(|m| m as &dyn KnownSecrets);
    let options = ScanOptions {
        respect_ignore: !args.no_ignore,
        max_file_size: Some(args.max_file_size),
        include_invalid: args.include_invalid,
        // The parser admits only the three names.
        min_confidence: vault_scan::Confidence::parse(&args.confidence)
            .unwrap_or(vault_scan::Confidence::Medium),
        ..ScanOptions::default()
    };
    let mut report: Report = if args.staged {
        vault_guard::hook::scan_staged(&scanner, known, &options)?
    } else if args.stdin {
        let stdin = &mut std::io::stdin().lock();
        vault_scan::scan_reader_with(&scanner, known, "<stdin>", stdin, &options)
    } else {
        let paths = &args.paths;
        let machine = ctx.json || args.format != Format::Human;
        if show_progress(std::io::stderr().is_terminal(), machine) {
            let mut bar = vault_present::progress::Bar::default();
            let report =
                vault_scan::scan_paths_with_progress(&scanner, known, paths, &options, &mut bar);
            bar.finish();
            report
        } else {
            vault_scan::scan_paths(&scanner, known, paths, &options)
        }
    };
    if let Some(file) = &args.baseline {
        vault_guard::baseline::apply(file, &mut report.findings)?;
    }
    if let Some(file) = &args.write_baseline {
        let n = vault_guard::baseline::write(file, &report.findings)?;
        eprintln!("wrote {n} accepted finding(s) to {}", file.display());
        return Ok(());
    }
    if let Some(mode) = args.hook {
        return hook_answer(ctx, mode, &matcher, &report, args.rotate);
    }
    let mut out = std::io::stdout().lock();
    match (args.format, ctx.json) {
        (Format::Json, _) | (_, true) => output::write_json(&mut out, &report)?,
        (Format::Sarif, _) => output::write_sarif(&mut out, &report)?,
        (Format::Human, _) => {
            output::write_human(&mut out, &report, std::io::stdout().is_terminal())?;
            if args.staged && !report.findings.is_empty() {
                eprintln!("{}", vault_present::scan::COMMIT_BLOCKED);
            }
        }
    }
    drop(out);
    // A file the check could not read may hold anything: in a commit it blocks unless the
    // user accepts that by name (issue 13, finding 4).
    let blocked_by_skips =
        args.staged && !args.allow_skipped && report.unscanned().next().is_some();
    if blocked_by_skips {
        let lines = vault_present::scan::unscanned_lines(&report);
        lines.iter().for_each(|l| eprintln!("{l}"));
    }
    if args.rotate {
        ctx.act_on_leaks(&matcher, &report)?;
    }
    let mut code = report.exit_code();
    if code == 0 && blocked_by_skips {
        code = exit::REFUSED;
    }
    if code != 0 {
        return Err(exit::with_code(code));
    }
    Ok(())
}

/// Claude Code blocks a prompt or tool call only on exit 2 and shows stderr as
/// the reason; JSON on stdout is read only on exit 0, and on exit 0 a
/// UserPromptSubmit hook's stdout is added to the prompt, so nothing goes
/// there. A scan that could not run blocks too: a hook that fails open
/// protects nothing.
fn hook_answer(
    ctx: &Context,
    mode: HookMode,
    matcher: &Option<Matcher>,
    report: &Report,
    rotate: bool,
) -> Result<()> {
    let Some(reason) = vault_present::scan::hook_block_reason(report) else {
        if mode == HookMode::Gemini {
            println!("{{}}");
        }
        return Ok(());
    };
    eprintln!("{reason}");
    if !report.errors.is_empty() {
        return Err(exit::with_code(2));
    }
    if rotate {
        ctx.act_on_leaks(matcher, report)?;
    }
    Err(exit::with_code(2))
}

pub fn hook(ctx: &Context, command: HookCommand) -> Result<()> {
    match command {
        HookCommand::Install { force, chain } => {
            let exe = std::env::current_exe()?;
            let hook = vault_guard::hook::install(&ctx.home, &exe, force, chain)?;
            eprintln!("installed {}", hook.display());
        }
        HookCommand::Uninstall => {
            let done = vault_guard::hook::uninstall(&ctx.home)?;
            if done.restored_chained {
                eprintln!("removed vault's hook and restored the one it chained");
            } else {
                eprintln!("removed {}", done.hook.display());
            }
        }
    }
    Ok(())
}
