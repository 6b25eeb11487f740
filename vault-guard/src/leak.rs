//! Where the scanner meets the vault: a `KnownSecrets` matcher that names
//! vault keys (by hash), tokens (by key id) and stored secrets (by keyed
//! fingerprint) without the passphrase, and the actions a leak calls for,
//! notifications included. Shared by `vault scan`, `vault watch`, `vault
//! scrub`, `vault doctor` and `POST /v1/scan`, so a leak is met the same way
//! whichever front end found it.

use std::collections::HashSet;
use std::path::Path;
use std::sync::Mutex;

use vault_core::known::{KnownCredentials, TokenIdentity};
use vault_core::{LeakAction, Location, SecretBytes, SecretPath, SecretString, Vault};
use vault_scan::{KnownSecrets, ManagedInfo, Report};

// The scanner looks for tokens as long as the vault mints: a shorter bound there lets a
// token with many scopes leak unseen (issue 13). A mismatch fails the build.
const _: () = assert!(vault_scan::VAULT_TOKEN_MAX_LEN == vault_core::credential::MAX_TOKEN_LEN);

/// The vault's own view for the scanner: named keys by hash, stored secrets
/// by keyed fingerprint. It remembers, in zeroizing memory, which vault
/// credentials it recognised, so `--rotate` can act on them.
pub struct Matcher {
    known: KnownCredentials,
    /// The vault's token signer, when the caller holds the unlocked vault: only then is a
    /// token named by its key (issue 13, finding 20).
    signer: Option<vault_core::TokenSigner>,
    lengths: Vec<usize>,
    seen: Mutex<Vec<Seen>>,
    /// When set, the only stored secrets this matcher names: a scan on an
    /// agent's behalf must not tell it whether a text holds a value it
    /// could not read (issue 13, finding 1).
    only: Option<HashSet<SecretPath>>,
}

/// A vault credential the matcher recognised, kept to act on.
pub enum Seen {
    /// A named key or token (its text, zeroized on drop).
    Credential(SecretString),
    /// A stored secret, by path, with the value found (zeroized on drop):
    /// the vault checks it is still the current one before acting.
    Secret(SecretPath, SecretBytes),
}

impl Matcher {
    /// The vault's known credentials, read without the passphrase; `None`
    /// when there is no vault (provider rules still apply). A vault that
    /// cannot be read is logged (`tracing`) and scanned without; a front end
    /// that tells a person so uses [`Matcher::try_load_at`].
    pub fn load(home: &Path) -> Option<Matcher> {
        Matcher::load_at(&Location::Dir(home.to_owned()))
    }

    /// [`Matcher::load`] of the vault at `location`: its SQLite file, or its
    /// PostgreSQL database (a vault there has no `vault.db`).
    pub fn load_at(location: &Location) -> Option<Matcher> {
        Matcher::try_load_at(location).unwrap_or_else(|e| {
            tracing::warn!("scanning without the vault's known credentials: {e}");
            None
        })
    }

    /// [`Matcher::load`], with the reason a vault that exists could not be read.
    ///
    /// # Errors
    /// The vault's files exist but cannot be read.
    pub fn try_load(home: &Path) -> vault_core::Result<Option<Matcher>> {
        Matcher::try_load_at(&Location::Dir(home.to_owned()))
    }

    /// [`Matcher::load_at`], with the reason a vault that exists could not
    /// be read (a database that refuses the connection included).
    ///
    /// # Errors
    /// The vault's files or database exist but cannot be read.
    pub fn try_load_at(location: &Location) -> vault_core::Result<Option<Matcher>> {
        match KnownCredentials::load_at(location) {
            Ok(known) => Ok(Some(Matcher::of(known))),
            Err(vault_core::Error::NoVault { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The known credentials of an open vault, read through its store on
    /// either backend (a server on PostgreSQL has no `vault.db` for
    /// [`Matcher::load`]).
    ///
    /// # Errors
    /// The store cannot be read.
    pub fn of_vault(vault: &Vault) -> vault_core::Result<Matcher> {
        Ok(Matcher::of(KnownCredentials::of_vault(vault)?))
    }

    fn of(known: KnownCredentials) -> Matcher {
        Matcher {
            lengths: known.secret_lengths().iter().copied().collect(),
            known,
            signer: None,
            seen: Mutex::new(Vec::new()),
            only: None,
        }
    }

    /// Names tokens by their key once `signer` (from the unlocked vault,
    /// [`Vault::token_signer`]) verifies their signature.
    pub fn with_token_signer(mut self, signer: vault_core::TokenSigner) -> Matcher {
        self.signer = Some(signer);
        self
    }

    /// The same matcher naming only the stored secrets in `readable`; any
    /// other stored value is not recognised at all.
    pub fn only_secrets(mut self, readable: HashSet<SecretPath>) -> Matcher {
        self.only = Some(readable);
        self
    }

    /// Splits what was recognised since the last call into what a scan on
    /// `agent`'s behalf may act on and a note for each item left alone.
    /// A key or token found in full is acted on whoever it belongs to: the
    /// text itself shows it leaked, and once rotated or revoked it cannot be
    /// used to ask again. A stored secret only when it is `agent`'s own: an
    /// agent granted a read of another's secret could otherwise rerun that
    /// secret's rotation command at will (issue 13, finding 1).
    pub fn take_actionable(&self, agent: &str) -> (Vec<Seen>, Vec<String>) {
        let mut act = Vec::new();
        let mut left = Vec::new();
        for item in self.take_seen() {
            match &item {
                Seen::Secret(path, _) if path.agent.as_str() != agent => left.push(format!(
                    "left alone: secret {path} belongs to agent {}; only its own agent's scans or the operator rotate it",
                    path.agent
                )),
                _ => act.push(item),
            }
        }
        (act, left)
    }

    /// Whether the last scans recognised any vault credential.
    pub fn has_seen(&self) -> bool {
        self.seen.lock().is_ok_and(|s| !s.is_empty())
    }

    /// The credentials recognised since the last call, each once however
    /// many times it was found.
    pub fn take_seen(&self) -> Vec<Seen> {
        self.seen
            .lock()
            .map(|mut s| std::mem::take(&mut *s))
            .unwrap_or_default()
    }
}

impl KnownSecrets for Matcher {
    fn credential(&self, candidate: &[u8]) -> Option<ManagedInfo> {
        let text = std::str::from_utf8(candidate).ok()?;
        let info = if let Some(k) = self.known.identify_key(text) {
            ManagedInfo {
                label: format!("agent {} / key {}", k.agent, k.name),
                id: k.key_id.clone(),
                advice: Some(key_advice(k, "rotate it (`vault rotate NAME`)")),
            }
        } else if let Some(t) = self.known.identify_token(text, self.signer.as_ref()) {
            match t {
                TokenIdentity::Verified(k) => ManagedInfo {
                    label: format!("agent {} / token of key {}", k.agent, k.name),
                    id: k.key_id.clone(),
                    advice: Some(key_advice(
                        k,
                        "revoke it (`vault scan --rotate` on this file)",
                    )),
                },
                TokenIdentity::Unverified => ManagedInfo {
                    label: "vault token format, unverified".into(),
                    id: "token:unverified".into(),
                    advice: Some(
                        "not verified as this vault's (no unlocked vault): rerun the scan \
                         unlocked to know"
                            .into(),
                    ),
                },
            }
        } else {
            return None;
        };
        if let Ok(mut seen) = self.seen.lock() {
            // once per credential: a transcript store holds each value several
            // times (a row and its FTS copies), and one leak is one action
            let known = seen
                .iter()
                .any(|s| matches!(s, Seen::Credential(t) if t.expose_secret() == text));
            if !known {
                seen.push(Seen::Credential(SecretString::new(text.to_owned())));
            }
        }
        Some(info)
    }

    fn lengths(&self) -> &[usize] {
        &self.lengths
    }

    fn matches(&self, candidate: &[u8]) -> Option<ManagedInfo> {
        let path = self.known.identify_secret(candidate)?.clone();
        if self.only.as_ref().is_some_and(|only| !only.contains(&path)) {
            return None;
        }
        let info = ManagedInfo {
            label: format!("secret {path}"),
            id: format!("secret:{path}"),
            advice: Some(format!(
                "rotate it at its provider, then store the new value with `vault set {path}` \
                 (or `vault scan --rotate` with a rotation command set)"
            )),
        };
        if let Ok(mut seen) = self.seen.lock() {
            if !seen
                .iter()
                .any(|s| matches!(s, Seen::Secret(p, v) if *p == path && v.ct_eq(candidate)))
            {
                seen.push(Seen::Secret(path, SecretBytes::from_slice(candidate)));
            }
        }
        Some(info)
    }
}

/// What to do about a vault key (or a token of it) found in text: a revoked
/// key works nowhere, so only the line needs deleting.
fn key_advice(k: &vault_core::known::KnownKey, live: &str) -> String {
    if k.status == vault_core::KeyStatus::Revoked.as_str() {
        "revoked, it works nowhere: delete the line (or `vault scrub FILE`); nothing needs rotating"
            .into()
    } else {
        let live = live.replace("NAME", &k.name);
        format!("live: {live}, then `vault scrub FILE`")
    }
}

/// What acting on a leak did.
#[derive(Debug, Default)]
pub struct Acted {
    /// What was done, one per credential acted on.
    pub actions: Vec<LeakAction>,
    /// Notifications that could not be delivered (never a value).
    pub undelivered: Vec<String>,
}

/// Acts on recognised credentials: a key rotates, a token is revoked, a
/// stored secret is marked compromised and an approval opened (or rotated at
/// once in `auto` mode). `report` supplies where each secret was found.
/// Each action is notified as soon as it is taken
/// ([`vault_core::notify::Event::for_leak`]), whichever front end found the
/// leak, so the caller has nothing left to send (issue 14).
///
/// # Errors
/// Vault errors; actions already taken stay taken, and were notified.
pub fn act(vault: &mut Vault, seen: Vec<Seen>, report: &Report) -> vault_core::Result<Acted> {
    let mut acted = Acted::default();
    for item in seen {
        let action = match &item {
            Seen::Credential(text) => vault.handle_leaked_credential(text.expose_secret())?,
            Seen::Secret(path, value) => {
                let id = format!("secret:{path}");
                let location = report
                    .findings
                    .iter()
                    .find(|f| f.managed.as_ref().is_some_and(|m| m.id == id))
                    .map(|f| format!("{}:{}", f.path, f.line))
                    .unwrap_or_else(|| "a scanned input".into());
                vault.report_secret_leak(path, value, &location)?
            }
        };
        if !matches!(action, LeakAction::Unknown) {
            // A value rotated away already is said, not notified: nothing was done.
            if !matches!(action, LeakAction::SecretAlreadyRotated) {
                for event in vault_core::notify::Event::for_leak(&action) {
                    acted.undelivered.extend(crate::notify::send(vault, &event));
                }
            }
            acted.actions.push(action);
        }
    }
    Ok(acted)
}

/// One line saying what an action did (ids and names, never values); the
/// same text the `leak` notification carries.
pub fn describe(action: &LeakAction) -> String {
    vault_core::notify::describe_leak(action)
}
