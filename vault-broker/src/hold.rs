//! Draft-only requests: a request an `approval = true` rule matches waits in
//! this process, its body in memory, while a person decides through the vault
//! (`vault approve ID` / `vault deny ID`, from any process: the decision is a
//! row of the vault, polled here a few times a second). It goes out exactly
//! once if approved; denied, timed out, or dropped with the connection, it
//! never goes out. Nothing of it is written anywhere but the approval (agent,
//! method, host, path, a redacted preview), so a stopped server cannot send it
//! later by surprise.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use vault_core::{HoldOutcome, SecretString};

use crate::refusal::{Code, Refusal};
use crate::Backend;

/// Largest body a held request may have: it waits in memory.
pub const MAX_HELD_BODY: usize = 1 << 20;

/// How often the approval is read back while a request waits.
const POLL_EVERY: Duration = Duration::from_millis(200);

/// The preview of a held body shown to the person deciding, at most.
pub(crate) const PREVIEW_CHARS: usize = 600;

/// Requests one agent may have held at once. Past it a new one is refused
/// (`approval_queue_full`): a looping agent can neither fill the broker's
/// memory with held bodies nor bury the approvals a person reads.
pub const MAX_HELD_PER_AGENT: usize = 16;

/// How many requests each agent has held now.
#[derive(Default)]
pub(crate) struct HeldCounts(Mutex<HashMap<String, usize>>);

/// One held request's place in its agent's count, given back when dropped.
pub(crate) struct HeldSlot {
    counts: Arc<HeldCounts>,
    agent: String,
}

impl HeldCounts {
    /// A place for one more held request of `agent`, or the refusal past
    /// [`MAX_HELD_PER_AGENT`].
    pub(crate) fn take(self: &Arc<Self>, agent: &str) -> Result<HeldSlot, Refusal> {
        let full = || {
            Refusal::new(
                Code::ApprovalQueueFull,
                format!(
                    "agent {agent} already has {MAX_HELD_PER_AGENT} requests waiting for a person's                      approval; this one was not held nor sent (the operator decides the waiting ones                      with: vault approvals, vault approve ID, vault deny ID)"
                ),
            )
        };
        let mut counts = self.0.lock().map_err(|_| full())?;
        let n = counts.entry(agent.to_owned()).or_insert(0);
        if *n >= MAX_HELD_PER_AGENT {
            return Err(full());
        }
        *n += 1;
        Ok(HeldSlot {
            counts: self.clone(),
            agent: agent.to_owned(),
        })
    }
}

impl Drop for HeldSlot {
    fn drop(&mut self) {
        if let Ok(mut counts) = self.counts.0.lock() {
            if let Some(n) = counts.get_mut(&self.agent) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    counts.remove(&self.agent);
                }
            }
        }
    }
}

/// What the approval of a held request shows.
#[derive(Clone, Debug)]
pub struct HeldRequest {
    /// The method.
    pub method: String,
    /// The CONNECT target's host.
    pub host: String,
    /// The CONNECT target's port.
    pub port: u16,
    /// The path, without the query.
    pub path: String,
    /// The query, secrets redacted and cut short.
    pub query: String,
    /// The body's length in bytes.
    pub body_len: usize,
    /// The body, secrets redacted and cut short.
    pub preview: String,
}

/// Holds the request until a decision: `Ok` means approved and claimed by
/// this call, so the caller sends it, once.
pub(crate) async fn wait_for_person<B: Backend>(
    backend: &Arc<B>,
    credential: Arc<SecretString>,
    held: HeldRequest,
    wait: Duration,
) -> Result<(), Refusal> {
    let what = format!("{} {}:{}{}", held.method, held.host, held.port, held.path);
    let id = backend.hold_open(credential, held, wait).await?;
    tracing::info!(approval = %id, "broker: holding a request until a person decides");
    // Dropped before a decision (the agent hung up, the server stops): the
    // approval is closed, so a later `vault approve` sends nothing.
    let mut guard = CloseOnDrop {
        backend: backend.clone(),
        id: Some(id.clone()),
    };
    let deadline = Instant::now() + wait;
    loop {
        let now = Instant::now();
        let give_up = now >= deadline;
        let outcome = backend.hold_poll(id.clone(), give_up).await?;
        let refusal = match outcome {
            HoldOutcome::Waiting if !give_up => {
                tokio::time::sleep(POLL_EVERY.min(deadline - now)).await;
                continue;
            }
            HoldOutcome::Send => {
                guard.id = None;
                return Ok(());
            }
            HoldOutcome::Denied => Refusal::new(
                Code::ApprovalDenied,
                format!(
                    "{what} was held for approval {id}, and a person denied it; it was not sent"
                ),
            ),
            HoldOutcome::Unverified => Refusal::new(
                Code::ApprovalDenied,
                format!(
                    "{what} was held for approval {id}, whose record did not verify (changed \
                     without the passphrase?); it was not sent"
                ),
            ),
            HoldOutcome::Waiting | HoldOutcome::TimedOut => Refusal::new(
                Code::ApprovalTimeout,
                format!(
                    "{what} was held for approval {id}, and nobody decided within {}s; it was not \
                     sent (the operator decides with: vault approvals, vault approve ID)",
                    wait.as_secs()
                ),
            ),
        };
        guard.id = None;
        return Err(refusal);
    }
}

struct CloseOnDrop<B: Backend> {
    backend: Arc<B>,
    id: Option<String>,
}

impl<B: Backend> Drop for CloseOnDrop<B> {
    fn drop(&mut self) {
        let Some(id) = self.id.take() else { return };
        let backend = self.backend.clone();
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                backend.hold_close(id).await;
            });
        }
    }
}
