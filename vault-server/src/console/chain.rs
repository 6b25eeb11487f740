//! The audit page's chain status (issue 17). Verifying the whole trail takes
//! about a second per 100,000 records, and the vault serves one caller at a
//! time, so no request waits for it: a page checks at most
//! [`INLINE_RECORDS`] records itself, from the newest checkpoint it has (this
//! server's own, or the last full walk kept in the vault, schema 016), and
//! hands anything longer to one background walk that takes the vault
//! [`STEP_RECORDS`] records at a time, letting other requests in between.
//! The page shows the newest finished result, what it covered and when,
//! and says when a walk is running. A broken chain stays shown as broken
//! (and the kept checkpoint is forgotten) until a walk from the start finds
//! it intact again.

use std::sync::Mutex;

use vault_core::{AuditCheckpoint, AuditVerdict, AuditVerified, Principal, Vault, VerifyStep};

use crate::error::ApiError;
use crate::state::AppState;

const OP: &Principal = &Principal::Operator;

/// Most records a page view verifies before handing the rest to the
/// background (about 10 ms).
pub(crate) const INLINE_RECORDS: usize = 1_000;
/// Most records one background step verifies while holding the vault.
pub(crate) const STEP_RECORDS: usize = 2_000;

/// A finished check.
#[derive(Clone, Debug)]
pub(crate) struct Checked {
    pub verdict: AuditVerdict,
    /// When it finished (Unix ms).
    pub at_ms: i64,
    /// The record it started after: 0 (or the prune point) for a walk from
    /// the start, else the checkpoint it went on from.
    pub from_seq: i64,
    /// It walked from the trail's start.
    pub full: bool,
}

/// A walk in the background.
#[derive(Clone, Debug)]
pub(crate) struct Running {
    pub full: bool,
    pub from_seq: i64,
    /// Checked through this record so far.
    pub at_seq: i64,
    pub started_ms: i64,
}

/// The console's chain state for this server's life.
#[derive(Default)]
pub(crate) struct ChainState {
    /// How far this server has verified (`None`: not yet, or found broken).
    checkpoint: Option<AuditCheckpoint>,
    last: Option<Checked>,
    running: Option<Running>,
}

/// What the audit page shows.
#[derive(Clone, Debug, Default)]
pub(crate) struct ChainView {
    pub last: Option<Checked>,
    /// The last complete walk from the start, as kept in the vault.
    pub full_walk: Option<(i64, i64)>,
    pub running: Option<Running>,
}

/// A background walk to start: from where, and whether from the start.
pub(crate) struct Start {
    from: Option<AuditCheckpoint>,
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// The kept checkpoint; one whose MAC fails is itself a broken chain
/// (someone moved it without the passphrase).
fn kept(v: &Vault) -> Result<Result<Option<AuditVerified>, AuditVerdict>, ApiError> {
    match v.audit_verified(OP) {
        Ok(k) => Ok(Ok(k)),
        Err(vault_core::Error::Integrity { what }) => Ok(Err(AuditVerdict::Broken {
            seq: 0,
            reason: format!("{what}; it was edited without the passphrase"),
        })),
        Err(e) => Err(e.into()),
    }
}

fn view(s: &ChainState, kept: Option<&AuditVerified>) -> ChainView {
    ChainView {
        last: s.last.clone(),
        full_walk: kept.map(|k| (k.through_seq, k.verified_at_ms)),
        running: s.running.clone(),
    }
}

/// Records a finished check: the checkpoint to go on from, the result, and
/// in the vault the end of a full walk (kept) or a break (the kept one
/// forgotten).
fn finish(
    v: &mut Vault,
    chain: &Mutex<ChainState>,
    verdict: AuditVerdict,
    checkpoint: Option<AuditCheckpoint>,
    from_seq: i64,
    full: bool,
) -> Result<(), ApiError> {
    match &checkpoint {
        Some(c) if c.is_full_walk() => {
            v.record_audit_verified(OP, c)?;
        }
        Some(_) => {}
        None => {
            v.forget_audit_verified(OP)?;
        }
    }
    if let Ok(mut s) = chain.lock() {
        s.checkpoint = checkpoint;
        s.last = Some(Checked {
            verdict,
            at_ms: now_ms(),
            from_seq,
            full,
        });
        s.running = None;
    }
    Ok(())
}

/// What a page view does, on the vault's thread: show the state, after
/// checking what is new since the newest checkpoint (at most
/// [`INLINE_RECORDS`] records; a longer stretch starts a background walk,
/// returned for the caller to spawn). Nothing is checked while a walk runs
/// or once the chain was found broken.
pub(crate) fn look(
    v: &mut Vault,
    chain: &Mutex<ChainState>,
) -> Result<(ChainView, Option<Start>), ApiError> {
    let kept = match kept(v)? {
        Ok(k) => k,
        Err(broken) => {
            finish(v, chain, broken, None, 0, false)?;
            None
        }
    };
    let from = {
        let Ok(s) = chain.lock() else {
            return Ok((ChainView::default(), None));
        };
        let broken = matches!(
            s.last,
            Some(Checked {
                verdict: AuditVerdict::Broken { .. },
                ..
            })
        );
        if broken || s.running.is_some() {
            return Ok((view(&s, kept.as_ref()), None));
        }
        // this server's checkpoint, or the kept one if it reaches further
        match (&s.checkpoint, &kept) {
            (Some(c), Some(k)) if k.checkpoint.seq() > c.seq() => Some(k.checkpoint.clone()),
            (Some(c), _) => Some(c.clone()),
            (None, Some(k)) => Some(k.checkpoint.clone()),
            (None, None) => None,
        }
    };
    let from_seq = from.as_ref().map_or(0, AuditCheckpoint::seq);
    let full = from.is_none();
    let start = match v.verify_audit_step(OP, from.as_ref(), INLINE_RECORDS)? {
        VerifyStep::Done(verdict, c) => {
            finish(v, chain, verdict, c, from_seq, full)?;
            None
        }
        VerifyStep::More(c) => {
            if let Ok(mut s) = chain.lock() {
                s.running = Some(Running {
                    full,
                    from_seq,
                    at_seq: c.seq(),
                    started_ms: now_ms(),
                });
            }
            Some(Start { from: Some(c) })
        }
    };
    let kept = v.audit_verified(OP).ok().flatten();
    let s = chain.lock().map_err(|_| ApiError::internal())?;
    Ok((view(&s, kept.as_ref()), start))
}

/// "Verify all again": a walk from the trail's start in the background,
/// unless one is running (then `None`: nothing new started).
pub(crate) fn start_full(chain: &Mutex<ChainState>) -> Option<Start> {
    let mut s = chain.lock().ok()?;
    if s.running.is_some() {
        return None;
    }
    s.running = Some(Running {
        full: true,
        from_seq: 0,
        at_seq: 0,
        started_ms: now_ms(),
    });
    Some(Start { from: None })
}

/// Runs a walk [`look`] or [`start_full`] set up, a step at a time.
pub(crate) fn spawn(state: AppState, start: Start) {
    tokio::spawn(async move {
        fn chain(st: &AppState) -> &Mutex<ChainState> {
            &st.inner.console.chain
        }
        let (full, from_seq) = chain(&state)
            .lock()
            .ok()
            .and_then(|s| s.running.as_ref().map(|r| (r.full, r.from_seq)))
            .unwrap_or((start.from.is_none(), 0));
        let mut at = start.from;
        loop {
            let st = state.clone();
            let cp = at.take();
            let step = state
                .with_vault(
                    move |v| match v.verify_audit_step(OP, cp.as_ref(), STEP_RECORDS)? {
                        VerifyStep::More(c) => Ok(Some(c)),
                        VerifyStep::Done(verdict, c) => {
                            finish(v, &st.inner.console.chain, verdict, c, from_seq, full)?;
                            Ok(None)
                        }
                    },
                )
                .await;
            match step {
                Ok(Some(c)) => {
                    if let Ok(mut s) = chain(&state).lock() {
                        if let Some(r) = s.running.as_mut() {
                            r.at_seq = c.seq();
                        }
                    }
                    at = Some(c);
                    tokio::task::yield_now().await;
                }
                Ok(None) => break,
                Err(e) => {
                    tracing::warn!("console: the audit chain walk stopped: {}", e.code());
                    if let Ok(mut s) = chain(&state).lock() {
                        s.running = None;
                    }
                    break;
                }
            }
        }
    });
}
