//! The notification vocabulary: one serialisable [`Event`] for everything a
//! front end reports (CLI commands and the server alike), so a leak found by
//! `vault scan --rotate` and one found through `POST /v1/scan` send the same
//! event. Delivery (a command, a loopback webhook) is vault-guard's; the settings
//! are [`crate::Vault::notify_config`].
//! An event names what happened and to whom: ids, names and paths, never a value.

use serde::Serialize;

use crate::{LeakAction, RotationReport, RotationState};

pub use crate::vault::parse_loopback_url;

/// Something a person may want to hear about. On the wire, `{"event": KIND,
/// "at": RFC 3339, ...fields}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// `vault notify test`.
    Test,
    /// A vault credential or stored secret was found where it must not be;
    /// `action` says what was done about it.
    Leak {
        /// One line, as [`describe_leak`] writes it.
        action: String,
    },
    /// A named key was rotated (or the rotation stalled).
    #[serde(rename = "rotation")]
    KeyRotation {
        /// Whose key.
        agent: String,
        /// The key's name.
        key: String,
        /// The key replaced.
        old_key_id: String,
        /// Its successor.
        new_key_id: String,
        /// `done` or `stalled`.
        state: String,
        /// Target files that hold the new key.
        written: Vec<String>,
        /// What failed (never a value).
        errors: Vec<String>,
    },
    /// A stored secret was rotated by its command.
    #[serde(rename = "rotation")]
    SecretRotation {
        /// `agent/NAME`.
        secret: String,
        /// The new version.
        version: i64,
    },
    /// A decision waits for a person (`vault approve ID`).
    ApprovalNeeded {
        /// The approval's id.
        approval_id: String,
    },
    /// An agent went over a `[budget]` limit: the broker refused its request
    /// (and suspended the key when the policy says `suspend_on_anomaly`).
    EgressLimit {
        /// The agent.
        agent: String,
        /// The key whose request crossed the limit.
        key_id: String,
        /// The policy field, e.g. `budget_usd_per_day`.
        limit: String,
        /// The figure, e.g. `$5.02 today`.
        spent: String,
        /// The limit's value, e.g. `$5.00`.
        threshold: String,
        /// Whether the key was suspended.
        suspended: bool,
    },
    /// An agent's spend this clock hour crossed its `alert_spend_usd_per_hour`
    /// (sent once per hour).
    SpendAlert {
        /// The agent.
        agent: String,
        /// The key whose request crossed it.
        key_id: String,
        /// Spend so far this hour, e.g. `$2.10`.
        spent_this_hour: String,
        /// The alert's threshold.
        threshold: String,
    },
    /// A key was suspended for anomalous use (its approval reinstates it).
    KeySuspended {
        /// Whose key.
        agent: String,
        /// The key suspended.
        key_id: String,
        /// The approval that reinstates it, if still open.
        approval_id: Option<String>,
    },
}

impl Event {
    /// The event for a key rotation's outcome.
    pub fn rotation(r: &RotationReport) -> Event {
        Event::KeyRotation {
            agent: r.agent.as_str().to_owned(),
            key: r.key_name.clone(),
            old_key_id: r.old_key_id.clone(),
            new_key_id: r.new_key_id.clone(),
            state: match r.state {
                RotationState::Done => "done",
                RotationState::Stalled => "stalled",
            }
            .to_owned(),
            written: r
                .written
                .iter()
                .map(|p| p.to_string_lossy().into_owned())
                .collect(),
            errors: r.errors.clone(),
        }
    }

    /// The events a leak action calls for, the same whichever front end
    /// found the leak: what it led to (a rotation, an approval), then the leak.
    pub fn for_leak(action: &LeakAction) -> Vec<Event> {
        let mut events = Vec::new();
        match action {
            LeakAction::KeyRotated(r) => events.push(Event::rotation(r)),
            LeakAction::ApprovalOpened { approval_id } => events.push(Event::ApprovalNeeded {
                approval_id: approval_id.to_string(),
            }),
            _ => {}
        }
        events.push(Event::Leak {
            action: describe_leak(action),
        });
        events
    }

    /// The JSON sent: the event's fields, its kind as `event`, and `at`.
    pub fn to_json(&self) -> serde_json::Value {
        let mut value = serde_json::to_value(self).unwrap_or_default();
        if let Some(map) = value.as_object_mut() {
            map.insert(
                "at".into(),
                humantime::format_rfc3339_seconds(std::time::SystemTime::now())
                    .to_string()
                    .into(),
            );
        }
        value
    }
}

/// One line saying what a leak action did (ids and names, never values).
pub fn describe_leak(action: &LeakAction) -> String {
    match action {
        LeakAction::KeyRotated(r) => format!(
            "rotated key {} of {}: {} -> {}{}",
            r.key_name,
            r.agent,
            r.old_key_id,
            r.new_key_id,
            // where the operator finds it (not the vault's path); never the key
            r.key_file
                .as_ref()
                .and_then(|f| f.file_name())
                .map(|f| format!(
                    "; no target holds the new key: it is in the vault directory, {}",
                    f.to_string_lossy()
                ))
                .unwrap_or_default()
        ),
        LeakAction::KeyAlreadyDead { key_id } => {
            format!("key {key_id} was already revoked or expired")
        }
        LeakAction::TokenRevoked { token_id } => format!("revoked token {token_id}"),
        LeakAction::TokenAlreadyDead => "a leaked token had already expired".into(),
        LeakAction::ApprovalOpened { approval_id } => format!("opened approval {approval_id}"),
        LeakAction::SecretRotated { version } => {
            format!("rotated a leaked stored secret to version {version}")
        }
        LeakAction::SecretNeedsManualRotation => {
            "a leaked stored secret has no rotation command: store a new value with `vault set`"
                .into()
        }
        LeakAction::SecretAlreadyRotated => {
            "a stored secret's value from before its last rotation: nothing to rotate; scrub it"
                .into()
        }
        LeakAction::Unknown => "not a credential of this vault".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_carries_its_kind_and_time_beside_its_fields() {
        let v = Event::ApprovalNeeded {
            approval_id: "ab12cd34".into(),
        }
        .to_json();
        assert_eq!(v["event"], "approval_needed");
        assert_eq!(v["approval_id"], "ab12cd34");
        assert!(v["at"].as_str().is_some_and(|t| t.ends_with('Z')));
        let v = Event::SecretRotation {
            secret: "a/B".into(),
            version: 2,
        }
        .to_json();
        assert_eq!(v["event"], "rotation");
        assert_eq!(Event::Test.to_json()["event"], "test");
    }
}
