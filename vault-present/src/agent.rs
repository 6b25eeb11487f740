//! Agents for a person or a script: the listing, and one agent shown whole
//! (its policy, the names of its secrets, its keys; never a value).

use serde_json::{json, Value};
use vault_core::view::{rfc3339, KeyView};
use vault_core::{AgentInfo, AgentName, KeyInfo, Policy, SecretInfo};

use crate::text::safe;

/// One `vault agent ls` line.
pub fn list_line(a: &AgentInfo) -> String {
    format!(
        "{}\t{} secret(s)\tcreated {}",
        a.name,
        a.secret_count,
        rfc3339(a.created_at)
    )
}

/// One agent as `vault agent show` gathers it.
pub struct Shown<'a> {
    /// The agent.
    pub name: &'a AgentName,
    /// Its policy.
    pub policy: &'a Policy,
    /// Its secrets (names only are shown).
    pub secrets: &'a [SecretInfo],
    /// Its named keys.
    pub keys: &'a [KeyInfo],
}

impl Shown<'_> {
    fn secret_names(&self) -> Vec<String> {
        self.secrets
            .iter()
            .map(|s| s.path.name.to_string())
            .collect()
    }

    /// The `--json` body.
    pub fn json(&self) -> Value {
        json!({
            "name": self.name.as_str(),
            "policy": self.policy.doc(),
            "secrets": self.secret_names(),
            "keys": self.keys.iter().map(KeyView::from).collect::<Vec<_>>(),
        })
    }

    /// The lines for a person; every line ends in a newline.
    pub fn human(&self) -> String {
        let doc = self.policy.doc();
        let mut out = format!("agent {}\n", self.name);
        out += &format!("  may read:      {}\n", safe(doc.secrets.join(", ")));
        out += &format!("  token scopes:  {}\n", doc.scopes.join(", "));
        out += &format!("  max token ttl: {}\n", doc.max_token_ttl);
        out += &format!("  secrets:       {}\n", self.secret_names().join(", "));
        for k in self.keys {
            out += &format!("  key {} ({}) {}\n", k.name, k.key_id, k.status.as_str());
        }
        out
    }
}
