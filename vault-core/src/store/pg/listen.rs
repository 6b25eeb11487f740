//! `LISTEN vault_keys` (issue 20): a server on a shared database hears that
//! another one revoked, suspended, reinstated or issued a key at the other's
//! commit, instead of at its next periodic refresh (which stays, for a
//! dropped connection or a lost notification). The writers' side is
//! `store::keys::announce`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use ::postgres::fallible_iterator::FallibleIterator;

use crate::error::Result;

/// The channel key changes are announced on.
pub(crate) const CHANNEL: &str = "vault_keys";

/// How often the listening thread checks whether it should stop, and waits
/// before reconnecting after the connection dropped.
const POLL: Duration = Duration::from_millis(500);

/// A listening thread; dropping it stops the thread within [`POLL`].
#[derive(Debug)]
pub struct KeyChanges {
    stop: Arc<AtomicBool>,
}

impl Drop for KeyChanges {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Connects to `url` (as the servers' role: LISTEN needs no privilege) and
/// calls `on_change` after each commit that announced a key change, and
/// once after every (re)connection, for what was missed while not listening.
/// The first connection is made here, so a bad URL is an error at start.
pub(crate) fn listen(url: &str, on_change: Box<dyn Fn() + Send>) -> Result<KeyChanges> {
    let mut client = Some(start(url)?);
    let stop = Arc::new(AtomicBool::new(false));
    let stopped = stop.clone();
    let url = url.to_owned();
    std::thread::Builder::new()
        .name("vault-listen".into())
        .spawn(move || {
            while !stopped.load(Ordering::Relaxed) {
                let Some(mut c) = client.take().or_else(|| start(&url).ok()) else {
                    std::thread::sleep(POLL);
                    continue;
                };
                on_change();
                while !stopped.load(Ordering::Relaxed) {
                    let mut notes = c.notifications();
                    let heard = match notes.timeout_iter(POLL).next() {
                        Ok(Some(_)) => true,
                        Ok(None) => false,
                        Err(_) => break,
                    };
                    // one refresh for a burst
                    while let Ok(Some(_)) = notes.iter().next() {}
                    drop(notes);
                    if heard {
                        on_change();
                    }
                    if c.is_closed() {
                        break;
                    }
                }
            }
        })
        .map_err(|e| crate::Error::Io {
            path: "vault-listen thread".into(),
            source: e,
        })?;
    Ok(KeyChanges { stop })
}

fn start(url: &str) -> Result<::postgres::Client> {
    let mut client = super::connect(url)?;
    client.batch_execute(&format!("LISTEN {CHANNEL}"))?;
    Ok(client)
}
