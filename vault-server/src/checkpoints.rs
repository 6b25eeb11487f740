//! The thread that checkpoints a SQLite vault's WAL for the server, so that
//! no request's commit pays for a checkpoint (vault-core's
//! store/wal_checkpoint.rs says why). It wakes every [`INTERVAL`] and stops
//! when its handle is dropped.

use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread::JoinHandle;
use std::time::Duration;

use vault_core::{Vault, WalCheckpointer};

/// How often the WAL is looked at; a look that finds nothing new costs no
/// disk flush. At 10,000 brokered requests a second this copies a few
/// thousand pages at a time, well before the writer's backstop.
pub(crate) const INTERVAL: Duration = Duration::from_millis(100);

/// Handle to the checkpoint thread; dropping it stops the thread and waits.
pub(crate) struct CheckpointThread {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl CheckpointThread {
    /// Takes the WAL checkpoints off `vault`'s connection and starts the
    /// thread that runs them. `None` when there is nothing to take (a vault
    /// on PostgreSQL) or it could not be done: the writer then goes on
    /// checkpointing as SQLite does by default, or at its backstop.
    pub(crate) fn start(vault: &Vault) -> Option<CheckpointThread> {
        let checkpointer = match vault.checkpoint_elsewhere() {
            Ok(found) => found?,
            Err(e) => {
                tracing::warn!(error = %e, "could not open the WAL checkpoint connection; the writer checkpoints");
                return None;
            }
        };
        let (stop, stopped) = mpsc::channel();
        let spawned = std::thread::Builder::new()
            .name("wal-checkpoint".into())
            .spawn(move || run(&checkpointer, &stopped));
        match spawned {
            Ok(thread) => Some(CheckpointThread {
                stop: Some(stop),
                thread: Some(thread),
            }),
            Err(e) => {
                tracing::warn!(error = %e, "could not start the WAL checkpoint thread; the writer checkpoints at its backstop");
                None
            }
        }
    }
}

fn run(checkpointer: &WalCheckpointer, stopped: &mpsc::Receiver<()>) {
    let mut failing = false;
    while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(INTERVAL) {
        match checkpointer.checkpoint() {
            Ok(_) => failing = false,
            // said once per run of failures, not every 100 ms
            Err(e) if !failing => {
                failing = true;
                tracing::warn!(error = %e, "WAL checkpoint failed; trying again");
            }
            Err(_) => {}
        }
    }
}

impl Drop for CheckpointThread {
    fn drop(&mut self) {
        self.stop.take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
