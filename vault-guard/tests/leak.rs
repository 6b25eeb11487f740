//! Acting on a leak notifies from the flow itself (issue 14, item 1): a
//! front end that only calls [`leak::act`] (the server's `POST /v1/scan`,
//! the broker, `vault scan --rotate`) sends the same events.

use std::path::Path;
use std::time::Duration;

use vault_core::{
    AgentName, KdfParams, LeakAction, NotifyConfig, Policy, Principal, SecretString, Vault,
};
use vault_guard::leak::{self, Matcher};
use vault_scan::{KnownSecrets, ScanOptions, Scanner};

const OP: &Principal = &Principal::Operator;

/// A vault whose notify command appends each event to `sink`; returns it and a named key.
fn vault_notifying_into(home: &Path, sink: &Path) -> (Vault, String) {
    let pass = SecretString::new("correct horse battery staple".into());
    let mut vault = Vault::init(home, &pass, KdfParams::FLOOR).unwrap();
    let agent = AgentName::parse("hermes").unwrap();
    vault.add_agent(OP, &agent, &Policy::default()).unwrap();
    let issued = vault
        .issue_key(
            OP,
            &AgentName::parse("hermes-key").unwrap(),
            &agent,
            Duration::from_secs(3600),
            false,
        )
        .unwrap();
    let command = format!("cat >> {0}; echo >> {0}", sink.display());
    vault
        .set_notify_config(
            OP,
            &NotifyConfig {
                command: Some(command),
                webhook: None,
            },
        )
        .unwrap();
    (vault, issued.key.expose_secret().to_owned())
}

fn events(sink: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(sink)
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn acting_on_a_leaked_key_notifies_without_the_caller_sending_anything() {
    // issue 14, item 1
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("vault");
    let sink = dir.path().join("events.jsonl");
    let (mut vault, key) = vault_notifying_into(&home, &sink);
    let matcher = Matcher::try_load(&home).unwrap().unwrap();
    let scanner = Scanner::builtin().unwrap();
    let text = format!("the agent said: {key}\n");
    let report = vault_scan::scan_bytes(
        &scanner,
        Some(&matcher as &dyn KnownSecrets),
        "<transcript>",
        text.as_bytes(),
        &ScanOptions::default(),
    );
    assert_eq!(report.findings.len(), 1);

    let acted = leak::act(&mut vault, matcher.take_seen(), &report).unwrap();

    assert!(acted.undelivered.is_empty(), "{:?}", acted.undelivered);
    assert!(matches!(acted.actions[..], [LeakAction::KeyRotated(_)]));
    let sent = events(&sink);
    let kinds: Vec<_> = sent.iter().map(|e| e["event"].clone()).collect();
    assert_eq!(kinds, ["rotation", "leak"]);
    assert_eq!(sent[0]["key"], "hermes-key");
    assert_eq!(sent[0]["state"], "done");
    assert!(!std::fs::read_to_string(&sink).unwrap().contains(&key));
}

#[test]
fn a_vault_that_cannot_be_read_is_an_error_to_try_load_and_nothing_to_load() {
    // issue 14, item 1: the library says why instead of printing it
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("vault");
    std::fs::create_dir(&home).unwrap();
    std::fs::write(home.join("vault.db"), b"not a database at all, only text").unwrap();
    assert!(Matcher::try_load(&home).is_err());
    assert!(Matcher::load(&home).is_none());
    let missing = dir.path().join("missing");
    assert!(Matcher::try_load(&missing).unwrap().is_none());
}
