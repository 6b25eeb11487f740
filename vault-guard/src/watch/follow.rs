//! The loop `vault watch` runs over a [`Watcher`]: woken by file events
//! when the system gives them, polling otherwise, with a slow full pass for
//! writes no event reported, and a stop flag (set by a signal handler)
//! looked at often, so the process ends soon and cleanly.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use vault_core::Vault;

use super::{Happened, Wake, Watcher};

/// How long a watcher on file events waits before looking at its stop flag.
const STOP_CHECK: Duration = Duration::from_millis(200);
/// With file events, a full pass this often catches writes no event reported.
const FULL_PASS_EVERY: Duration = Duration::from_secs(5);

/// How to follow.
#[derive(Clone, Copy, Debug)]
pub struct Follow {
    /// One pass over what is new, then return.
    pub once: bool,
    /// Poll even where file events could be had.
    pub poll: bool,
    /// How often to poll (and the longest wait for an event).
    pub interval: Duration,
}

/// How following started, for the front end to say.
#[derive(Debug)]
pub enum Started {
    /// Woken by file events.
    Events,
    /// Polling every `Follow::interval`: asked for (`None`), or the reason
    /// events could not be had.
    Polling(Option<String>),
}

impl Watcher {
    /// Follows the paths until `stop` is set (or after one pass with
    /// [`Follow::once`]), giving what each pass noticed to `on`; `started`
    /// hears once how (not for a single pass).
    ///
    /// # Errors
    /// As [`Watcher::pass`].
    pub fn follow<E: From<crate::Error>>(
        &mut self,
        vault: &mut Vault,
        how: Follow,
        stop: &AtomicBool,
        started: impl FnOnce(Started),
        mut on: impl FnMut(Happened<'_>) -> std::result::Result<(), E>,
    ) -> std::result::Result<(), E> {
        let events = match (how.once, how.poll) {
            (true, _) => None,
            (false, true) => {
                started(Started::Polling(None));
                None
            }
            (false, false) => match self.events() {
                Ok(events) => {
                    started(Started::Events);
                    Some(events)
                }
                Err(why) => {
                    started(Started::Polling(Some(why)));
                    None
                }
            },
        };
        // what was there before the first event
        self.pass(vault, &mut on)?;
        let mut last_full = Instant::now();
        loop {
            if how.once || stop.load(Ordering::SeqCst) {
                return Ok(());
            }
            match &events {
                Some(events) => {
                    let mut wake = events.wait(STOP_CHECK.min(how.interval));
                    if matches!(wake, Wake::Nothing) && last_full.elapsed() >= FULL_PASS_EVERY {
                        wake = Wake::Everything;
                    }
                    if matches!(wake, Wake::Everything) {
                        last_full = Instant::now();
                    }
                    self.pass_woken(vault, wake, &mut on)?;
                }
                None => {
                    std::thread::sleep(how.interval);
                    self.pass(vault, &mut on)?;
                }
            }
        }
    }
}
