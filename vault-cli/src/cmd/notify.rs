//! `vault notify`: where leak, rotation and approval events go (a command or
//! a loopback webhook). The events themselves are vault-core's
//! [`vault_core::notify::Event`], shared with the server.

use anyhow::Result;
use vault_core::notify::Event;
use vault_core::{NotifyConfig, Principal};

use super::Context;

/// `vault notify ...`.
#[derive(clap::Subcommand, Debug)]
pub enum NotifyCommand {
    /// Send events to a command (JSON on stdin) and/or a loopback webhook (JSON POST).
    Set {
        /// Run with /bin/sh -c for each event.
        #[arg(long)]
        command: Option<String>,
        /// http://127.0.0.1:PORT/path; loopback only.
        #[arg(long)]
        webhook: Option<String>,
    },
    /// Show where events go.
    Show,
    /// Stop sending events.
    Clear,
    /// Send a test event.
    Test,
}

pub fn run(ctx: &Context, command: NotifyCommand) -> Result<()> {
    let mut vault = ctx.unlock()?;
    match command {
        NotifyCommand::Set { command, webhook } => {
            vault.set_notify_config(&Principal::Operator, &NotifyConfig { command, webhook })?;
            eprintln!("notifications configured");
        }
        NotifyCommand::Clear => {
            vault.set_notify_config(&Principal::Operator, &NotifyConfig::default())?;
            eprintln!("notifications off");
        }
        NotifyCommand::Show => {
            let c = vault.notify_config()?;
            if ctx.json {
                ctx.print_json(&serde_json::json!({"command": c.command, "webhook": c.webhook}))?;
            } else {
                let show = |v: &Option<String>| {
                    vault_present::text::safe(v.as_deref().unwrap_or("(none)")).to_string()
                };
                println!("command: {}", show(&c.command));
                println!("webhook: {}", show(&c.webhook));
            }
        }
        NotifyCommand::Test => {
            let errors = vault_guard::notify::send(&vault, &Event::Test);
            if errors.is_empty() {
                eprintln!("test event delivered");
            } else {
                return Err(crate::exit::refused(errors.join("; ")));
            }
        }
    }
    Ok(())
}
