//! The thread that checkpoints a SQLite vault's WAL for the server, so that
//! no request's commit pays for a checkpoint (vault-core's
//! store/wal_checkpoint.rs says why). It wakes every [`INTERVAL`] and stops
//! when its handle is dropped.

use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread::JoinHandle;
use std::time::Duration;

use vault_core::{Vault, WalCheckpointer};

/// How often the WAL is looked at; a look that finds nothing new copies and
/// syncs nothing.
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

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use vault_core::{
        AgentName, KdfParams, Policy, Principal, SecretBytes, SecretPath, SecretString, Vault,
        DB_FILE,
    };

    use crate::AppState;

    /// Threads of this process with that name (nextest runs each test in a
    /// process of its own).
    fn threads_named(name: &str) -> usize {
        std::fs::read_dir("/proc/self/task")
            .unwrap()
            .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
            .filter(|comm| comm.trim_end() == name)
            .count()
    }

    /// Waits up to 10 s for `count` threads named `name`: a new thread
    /// names itself once it runs, after `spawn` has returned.
    async fn wait_for_threads(name: &str, count: usize) -> usize {
        let deadline = Instant::now() + Duration::from_secs(10);
        while threads_named(name) != count && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        threads_named(name)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_server_on_sqlite_checkpoints_its_wal_on_a_thread_of_its_own_and_stops_it() {
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path().join("v");
        let pass = SecretString::new("pw".into());
        let mut vault = Vault::init(&home, &pass, KdfParams::FLOOR).unwrap();
        let hermes = AgentName::parse("hermes").unwrap();
        vault
            .add_agent(&Principal::Operator, &hermes, &Policy::default())
            .unwrap();
        let before = threads_named("wal-checkpoint");
        let state = AppState::new(vault, SecretString::new("admin".into())).unwrap();
        assert_eq!(
            wait_for_threads("wal-checkpoint", before + 1).await,
            before + 1
        );
        let db = home.join(DB_FILE);
        let size = || std::fs::metadata(&db).unwrap().len();
        let at_start = size();
        // ~1,600 WAL pages: past SQLite's own autocheckpoint, short of the
        // writer's backstop, so a vault.db that grows was checkpointed by
        // the thread
        state
            .with_vault(|v| {
                let path = SecretPath::parse("hermes/TOKEN").unwrap();
                for i in 0..400 {
                    let value = SecretBytes::new(format!("value {i}").into_bytes());
                    v.set_secret(&Principal::Operator, &path, &value)?;
                }
                Ok(())
            })
            .await
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while size() == at_start && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(size() > at_start, "vault.db never received the WAL's pages");
        drop(state);
        assert_eq!(
            threads_named("wal-checkpoint"),
            before,
            "stopped with the server"
        );
    }
}
