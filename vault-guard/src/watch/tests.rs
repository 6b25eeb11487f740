//! The watcher's reload decisions, driven on a real vault.

use std::time::Duration;

use vault_core::{AgentName, KdfParams, LeakAction, Policy, Principal, SecretString, Vault};

use super::*;

const OP: &Principal = &Principal::Operator;

#[test]
fn a_key_issued_behind_a_stamp_that_missed_it_is_still_recognised_and_rotated() {
    // A write can leave the database's size and mtime as they were (a coarse mtime
    // tick, a WAL rewritten to its old size): the watcher then holds a stamp that
    // says nothing changed. A vault key it does not know must still make it look
    // again, or the leak is passed over as unmanaged and the key stays live.
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("vault");
    let pass = SecretString::new("correct horse battery staple".into());
    let mut vault = Vault::init(&home, &pass, KdfParams::FLOOR).unwrap();
    let agent = AgentName::parse("hermes").unwrap();
    vault.add_agent(OP, &agent, &Policy::default()).unwrap();
    let watched = dir.path().join("chat.log");
    std::fs::write(&watched, "nothing yet\n").unwrap();
    let mut watcher = Watcher::new(
        &vault_core::Location::Dir(home.clone()),
        std::slice::from_ref(&watched),
    )
    .unwrap();

    let issued = vault
        .issue_key(
            OP,
            &AgentName::parse("late-key").unwrap(),
            &agent,
            Duration::from_secs(3600),
            false,
        )
        .unwrap();
    watcher.stamp = db_stamp(&vault_core::Location::Dir(home.clone())); // the stamp that missed the write
    let mut text = std::fs::read_to_string(&watched).unwrap();
    text.push_str(&format!("{}\n", issued.key.expose_secret()));
    std::fs::write(&watched, text).unwrap();

    let mut actions = Vec::new();
    watcher
        .pass(&mut vault, |happened| {
            if let Happened::Acted(acted) = happened {
                actions.extend(acted.actions);
            }
            Ok::<(), crate::Error>(())
        })
        .unwrap();

    assert!(
        matches!(actions[..], [LeakAction::KeyRotated(_)]),
        "the late key was not acted on: {actions:?}"
    );
}
