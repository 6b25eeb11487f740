//! "Did you mean" for an agent, key or secret name that does not exist
//! (issue 19): a typo should name the close existing name, not leave the
//! operator to list everything.
//!
//! Only the operator's front end asks for these: an agent's request for a
//! name it may not see must stay indistinguishable from a missing one, so the
//! server never attaches a suggestion.

use crate::error::Error;
use crate::vault::{KeyStatus, Principal, Vault};

/// Edits (insert, delete, substitute, swap) a typo may be away from the name meant.
const MAX_DISTANCE: usize = 2;

/// The names a suggestion may come from, read once after unlocking.
#[derive(Debug, Default)]
pub struct NameHints {
    agents: Vec<String>,
    keys: Vec<String>,
    secrets: Vec<String>,
}

impl NameHints {
    /// Every agent, usable key and secret name the operator can see.
    ///
    /// # Errors
    /// Database and integrity errors from the listings.
    pub fn of(vault: &Vault) -> crate::Result<Self> {
        let op = &Principal::Operator;
        Ok(NameHints {
            agents: vault
                .list_agents(op)?
                .into_iter()
                .map(|a| a.name.to_string())
                .collect(),
            keys: vault
                .list_keys(op, None)?
                .into_iter()
                .filter(|k| matches!(k.status, KeyStatus::Active | KeyStatus::Retiring))
                .map(|k| k.name)
                .collect(),
            secrets: vault
                .list_secrets(op, None)?
                .into_iter()
                .map(|s| s.path.to_string())
                .collect(),
        })
    }

    /// Attaches the one close name to a "not found" error, when there is one.
    pub fn attach(&self, err: &mut Error) {
        if let Error::NotFound {
            what,
            name,
            suggestion,
        } = err
        {
            let pool = match *what {
                "agent" => &self.agents,
                "key" => &self.keys,
                "secret" => &self.secrets,
                _ => return,
            };
            if suggestion.is_none() {
                *suggestion = closest(name, pool);
            }
        }
    }
}

/// The one candidate nearest to `typed` within [`MAX_DISTANCE`]; none when
/// two are equally near (a guess between them would mislead).
fn closest(typed: &str, pool: &[String]) -> Option<String> {
    let mut best: Option<(usize, &String)> = None;
    let mut tied = false;
    for candidate in pool {
        let d = strsim::osa_distance(typed, candidate);
        if d == 0 || d > MAX_DISTANCE {
            continue;
        }
        match best {
            Some((b, c)) if d == b && c != candidate => tied = true,
            Some((b, _)) if d >= b => {}
            _ => {
                best = Some((d, candidate));
                tied = false;
            }
        }
    }
    best.filter(|_| !tied).map(|(_, c)| c.clone())
}

/// How a suggestion reads at the end of a "not found" message.
pub(crate) fn shown(suggestion: Option<&str>) -> String {
    suggestion.map_or_else(String::new, |s| format!(" (did you mean \"{s}\"?)"))
}

#[cfg(test)]
mod tests {
    use super::closest;

    fn pool(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| (*s).to_string()).collect()
    }

    #[test]
    fn closest_names_the_one_near_name_and_no_guess_between_two() {
        let p = pool(&["hermes", "openclaw", "hermit"]);
        assert_eq!(closest("hremes", &p).as_deref(), Some("hermes"));
        assert_eq!(closest("opnclaw", &p).as_deref(), Some("openclaw"));
        assert_eq!(closest("zzz", &p), None);
        // "hermis" is one edit from both hermes and hermit
        assert_eq!(closest("hermis", &p), None);
    }
}
