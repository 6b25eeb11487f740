//! The one thread that owns the unlocked vault. Handlers send it jobs. Secret
//! reads, env fetches and token mints that queue up together run in one
//! SQLite transaction (group commit), so 64 waiting clients pay for one
//! commit, not 64; their answers leave only after the commit that holds
//! their audit records. Everything else runs alone, in its own transactions.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::mpsc;
use std::thread::JoinHandle;

use tokio::sync::oneshot;
use vault_core::Vault;

use crate::checkpoints::CheckpointThread;
use crate::error::ApiError;

/// Most jobs sharing one commit.
pub(crate) const MAX_BATCH: usize = 64;

/// Sends a batched job's answer once the batch's fate is known: `None` when
/// it committed, the error to answer instead when it did not.
type Deliver = Box<dyn FnOnce(Option<ApiError>) + Send>;

/// A job that may share a commit: it runs, then waits to deliver.
type BatchedJob = Box<dyn FnOnce(&mut Vault) -> Deliver + Send>;

enum Job {
    Alone(Box<dyn FnOnce(&mut Vault) + Send>),
    Batched(BatchedJob),
}

/// Handle to the vault thread. Dropping it lets the thread finish the jobs
/// already queued, then drop (and so zeroize) the vault, and waits for that.
pub(crate) struct Worker {
    jobs: Option<mpsc::Sender<Job>>,
    thread: Option<JoinHandle<()>>,
    /// The WAL's checkpoints, off this thread (stopped after it).
    _checkpoints: Option<CheckpointThread>,
}

impl Worker {
    /// Moves `vault` onto its own thread.
    pub(crate) fn start(vault: Vault) -> std::io::Result<Worker> {
        let checkpoints = CheckpointThread::start(&vault);
        let (jobs, queue) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("vault".into())
            .spawn(move || serve(vault, &queue))?;
        Ok(Worker {
            jobs: Some(jobs),
            thread: Some(thread),
            _checkpoints: checkpoints,
        })
    }

    /// Runs `f` alone: its writes commit as it makes them (rotations, admin
    /// changes, anything with effects outside the database).
    pub(crate) async fn run<T, F>(&self, f: F) -> Result<T, ApiError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Vault) -> Result<T, ApiError> + Send + 'static,
    {
        let (answer, answered) = oneshot::channel();
        self.send(Job::Alone(Box::new(move |vault| {
            let _ = answer.send(f(vault));
        })))?;
        answered.await.map_err(|_| ApiError::internal())?
    }

    /// Runs `f` in the next group commit. `f` must touch only the database:
    /// if the batch does not commit, its answer is replaced by an error.
    pub(crate) async fn run_batched<T, F>(&self, f: F) -> Result<T, ApiError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Vault) -> Result<T, ApiError> + Send + 'static,
    {
        let (answer, answered) = oneshot::channel();
        self.send(Job::Batched(Box::new(move |vault| {
            let result = f(vault);
            Box::new(move |failed: Option<ApiError>| {
                let _ = answer.send(match failed {
                    None => result,
                    Some(e) => Err(e),
                });
            })
        })))?;
        answered.await.map_err(|_| ApiError::internal())?
    }

    fn send(&self, job: Job) -> Result<(), ApiError> {
        self.jobs
            .as_ref()
            .and_then(|jobs| jobs.send(job).ok())
            .ok_or_else(ApiError::internal)
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.jobs.take();
        if let Some(thread) = self.thread.take() {
            // The last handle can be dropped on the vault thread itself (by
            // a job that held a clone of the state); it must not wait for itself.
            if thread.thread().id() != std::thread::current().id() {
                let _ = thread.join();
            }
        }
    }
}

fn serve(mut vault: Vault, queue: &mpsc::Receiver<Job>) {
    let mut next = None;
    loop {
        let job = match next.take() {
            Some(job) => job,
            None => match queue.recv() {
                Ok(job) => job,
                Err(_) => return,
            },
        };
        // A `vault rekey` run elsewhere replaced the data key: take the new
        // one before this job needs it (a header read; see Vault::reload_if_rekeyed).
        match vault.reload_if_rekeyed() {
            Ok(true) => {
                tracing::info!("the vault was rekeyed by another process; data key reloaded")
            }
            // the job that follows meets it too, and answers 503
            Ok(false) | Err(vault_core::Error::DatabaseUnreachable { .. }) => {}
            Err(vault_core::Error::Rekeyed) => {
                tracing::error!("{}", crate::error::REKEYED_UNDER_NEW_PASSPHRASE)
            }
            Err(e) => {
                tracing::error!(error = %e, "the vault was rekeyed and its new data key could not be loaded")
            }
        }
        match job {
            // A panic drops the job's answer channel: its caller gets a 500,
            // and the thread goes on serving.
            Job::Alone(f) => {
                let _ = catch_unwind(AssertUnwindSafe(|| f(&mut vault)));
            }
            Job::Batched(first) => {
                let mut batch = vec![first];
                while batch.len() < MAX_BATCH {
                    match queue.try_recv() {
                        Ok(Job::Batched(f)) => batch.push(f),
                        Ok(alone) => {
                            next = Some(alone);
                            break;
                        }
                        Err(_) => break,
                    }
                }
                run_batch(&mut vault, batch);
            }
        }
    }
}

fn run_batch(vault: &mut Vault, batch: Vec<BatchedJob>) {
    if batch.len() == 1 {
        // Nothing to share a commit with: the job's own transactions commit.
        for f in batch {
            if let Ok(deliver) = catch_unwind(AssertUnwindSafe(|| f(vault))) {
                deliver(None);
            }
        }
        return;
    }
    let (delivers, committed) = vault.in_one_transaction(|vault| {
        batch
            .into_iter()
            .filter_map(|f| catch_unwind(AssertUnwindSafe(|| f(vault))).ok())
            .collect::<Vec<_>>()
    });
    match committed {
        Ok(()) => delivers.into_iter().for_each(|d| d(None)),
        Err(e) => {
            // Fail closed: the reads' audit records are gone, so are the answers.
            tracing::error!(error = %e, "group commit failed");
            // a database that went away says so (503), as an unbatched request would
            let lost = matches!(e, vault_core::Error::DatabaseUnreachable { .. });
            delivers.into_iter().for_each(|d| {
                d(Some(if lost {
                    ApiError::from(vault_core::Error::DatabaseUnreachable {
                        reason: e.to_string(),
                    })
                } else {
                    ApiError::internal()
                }))
            });
        }
    }
}
