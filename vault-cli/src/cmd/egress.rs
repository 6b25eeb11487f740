//! `vault egress services`: the built-in services `[[egress]] service = "..."`
//! names (vault-core's table), printed.

use std::io::Write as _;

use anyhow::Result;

use super::Context;

/// `vault egress ...`.
#[derive(clap::Subcommand, Debug)]
pub enum EgressCommand {
    /// List the built-in services: host, auth scheme and default secret name.
    Services,
}

/// Runs `vault egress ...` (no vault needed: the table is built in).
pub fn run(ctx: &Context, command: EgressCommand) -> Result<()> {
    use vault_core::policy::egress::Service;
    match command {
        EgressCommand::Services => {
            if ctx.json {
                let list: Vec<_> = Service::ALL
                    .iter()
                    .map(|s| {
                        let spec = s.spec();
                        serde_json::json!({
                            "service": s.as_str(), "host": spec.host, "auth": spec.auth,
                            "secret": spec.secret, "path_prefix": spec.path_prefix,
                        })
                    })
                    .collect();
                return ctx.print_json(&serde_json::json!({ "services": list }));
            }
            let mut out = std::io::stdout().lock();
            writeln!(
                out,
                "{:<12} {:<36} {:<22} SECRET",
                "SERVICE", "HOST", "AUTH"
            )?;
            for s in Service::ALL {
                let spec = s.spec();
                let host = match spec.path_prefix {
                    Some(p) => format!("{}{p}", spec.host),
                    None => spec.host.to_owned(),
                };
                writeln!(
                    out,
                    "{:<12} {host:<36} {:<22} {}",
                    s.as_str(),
                    spec.auth,
                    spec.secret
                )?;
            }
            Ok(())
        }
    }
}
