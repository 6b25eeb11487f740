//! What wiring vault into an agent runtime did (`vault integrate`), as JSON
//! and as the lines a person reads, with the step that is still theirs.

use std::path::Path;

use serde_json::{json, Value};
use vault_guard::integrate::openclaw::Change;
use vault_guard::integrate::{HermesInstalled, HooksInstalled};

/// `vault integrate hermes --json`.
pub fn hermes_json(done: &HermesInstalled) -> Value {
    json!({
        "profile_dir": done.profile_dir, "plugin_dir": done.plugin_dir, "config": done.config,
        "changed_config": done.changed_config, "notes": done.notes,
        "key_in_env_file": done.key_in_env_file,
    })
}

/// `vault integrate hermes` for a person (stderr lines); `key_env` is the
/// variable the agent's key is read from.
pub fn hermes_lines(done: &HermesInstalled, key_env: &str) -> Vec<String> {
    let mut lines = vec![format!(
        "installed the vault secret source in {}",
        done.plugin_dir.display()
    )];
    if done.changed_config {
        lines.push(format!("enabled it in {}", done.config.display()));
    }
    lines.extend(done.notes.iter().map(|n| format!("note: {n}")));
    if !done.key_in_env_file {
        let env = done.profile_dir.join(".env");
        lines.push(format!(
            "next: put the agent's key in {} (`vault issue NAME-key --write-env {}`, \
             var {key_env}), or in the service environment",
            env.display(),
            env.display()
        ));
    }
    lines.push(
        "Hermes applies plugin secret sources to processes started after plugin \
         discovery (the gateway's sessions, cron, subagents)"
            .into(),
    );
    lines
}

/// `vault integrate claude-code|gemini --json`.
pub fn hooks_json(done: &HooksInstalled) -> Value {
    json!({"settings": done.settings, "command": done.command, "added": done.added})
}

/// `vault integrate claude-code|gemini` for a person.
pub fn hooks_line(done: &HooksInstalled) -> String {
    let (path, command, added) = (done.settings.display(), &done.command, done.added);
    if added > 0 {
        format!(
            "added {added} hook(s) to {path}: {command} (exit 2 blocks a prompt or tool call \
             holding a secret)"
        )
    } else {
        format!("{path} already runs {command}")
    }
}

/// `vault integrate openclaw --json`: each setting changed or left.
pub fn openclaw_json(path: &Path, changes: &[(&str, Change)]) -> Value {
    let list: Vec<_> = changes
        .iter()
        .map(|(key, c)| match c {
            Change::Set(before) => {
                json!({"key": key, "changed": true, "before": before, "after": true})
            }
            Change::Unchanged => json!({"key": key, "changed": false, "after": true}),
        })
        .collect();
    json!({"config": path.display().to_string(), "keys": list, "env": ["OPENCLAW_PROXY_URL"]})
}

/// `vault integrate openclaw` for a person: one line per setting, then the
/// next step; every line ends in a newline.
pub fn openclaw_text(path: &Path, changes: &[(&str, Change)]) -> String {
    let mut out = String::new();
    for (key, change) in changes {
        out += &match change {
            Change::Set(None) => format!("{}: set {key} = true (was unset)\n", path.display()),
            Change::Set(Some(v)) => format!("{}: set {key} = true (was {v})\n", path.display()),
            Change::Unchanged => format!("{}: {key} is already true\n", path.display()),
        };
    }
    out.push_str(
        "OPENCLAW_PROXY_URL: set by `vault run --broker` and written by `vault env --broker`, \
         beside HTTPS_PROXY\n\
         next: vault run --broker --agent AGENT -- openclaw gateway\n\
         note: these settings persist; OpenClaw started without the broker's variables will not \
         reach its proxy (set proxy.enabled false to go back)\n",
    );
    out
}
