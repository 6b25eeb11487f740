//! Denials of named keys this vault does not know, coalesced per peer.
//! Anyone who can reach the port can send random keys with a valid
//! checksum; one durable audit row each grew the trail by 2 GB an hour from
//! one loopback client with no credential (issue 13, finding 6). Now each
//! peer's first denial in a minute is recorded at once and the rest of that
//! minute as one record with their count; at most [`MAX_PEERS`] peers are
//! tracked apart, the rest together as `other`. So the trail grows by at
//! most two records a minute per tracked peer, and no denial goes uncounted.

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// The coalescing window.
pub(crate) const WINDOW: Duration = Duration::from_secs(60);

/// Peers tracked apart; beyond them all count as [`OTHER`].
pub(crate) const MAX_PEERS: usize = 256;

/// The name under which untracked peers are counted together.
const OTHER: &str = "other";

/// One audit record to write: `count` denials from `peer`; `first` when it
/// is the first of its window (then `count` is 1).
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Due {
    pub peer: String,
    pub count: u64,
    pub first: bool,
}

struct Tally {
    since: Instant,
    /// Denials of this window not recorded yet.
    pending: u64,
}

/// The per-peer counts of the current windows.
#[derive(Default)]
pub(crate) struct UnknownKeys {
    peers: HashMap<String, Tally>,
}

impl UnknownKeys {
    /// Counts one denial from `peer` at `now`; returns what to record now.
    pub(crate) fn note(&mut self, peer: &str, now: Instant) -> Vec<Due> {
        let peer = if self.peers.len() >= MAX_PEERS && !self.peers.contains_key(peer) {
            OTHER
        } else {
            peer
        };
        let mut due = Vec::new();
        if let Some(t) = self.peers.get_mut(peer) {
            if now.duration_since(t.since) < WINDOW {
                t.pending += 1;
                return due;
            }
            if t.pending > 0 {
                due.push(Due {
                    peer: peer.to_owned(),
                    count: t.pending,
                    first: false,
                });
            }
            self.peers.remove(peer);
        }
        self.peers.insert(
            peer.to_owned(),
            Tally {
                since: now,
                pending: 0,
            },
        );
        due.push(Due {
            peer: peer.to_owned(),
            count: 1,
            first: true,
        });
        due
    }

    /// Closes the windows that have ended by `now` (every window when
    /// `all`, at stop) and returns their counts still to record.
    pub(crate) fn flush(&mut self, now: Instant, all: bool) -> Vec<Due> {
        let mut due = Vec::new();
        self.peers.retain(|peer, t| {
            if !all && now.duration_since(t.since) < WINDOW {
                return true;
            }
            if t.pending > 0 {
                due.push(Due {
                    peer: peer.clone(),
                    count: t.pending,
                    first: false,
                });
            }
            false
        });
        due
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // issue 13, finding 6
    #[test]
    fn a_flood_from_one_peer_is_two_records_a_window_and_every_denial_is_counted() {
        let mut u = UnknownKeys::default();
        let t0 = Instant::now();
        let mut due = Vec::new();
        for i in 0..10_000u32 {
            due.extend(u.note("127.0.0.1", t0 + Duration::from_micros(u64::from(i))));
        }
        assert_eq!(due.len(), 1);
        assert!(u.flush(t0 + Duration::from_secs(1), false).is_empty());
        due.extend(u.flush(t0 + WINDOW, false));
        assert_eq!(due.len(), 2);
        assert_eq!(due.iter().map(|d| d.count).sum::<u64>(), 10_000);
        // a new window starts with a record of its own
        assert!(u.note("127.0.0.1", t0 + WINDOW * 2)[0].first);
    }

    // issue 13, finding 6
    #[test]
    fn many_peers_are_capped_and_the_rest_counted_together() {
        let mut u = UnknownKeys::default();
        let t0 = Instant::now();
        let mut first = 0;
        for i in 0..(MAX_PEERS as u32 * 4) {
            first += u.note(&format!("10.0.{}.{}", i / 256, i % 256), t0).len();
        }
        assert_eq!(first, MAX_PEERS + 1);
        let rest = u.flush(t0, true);
        assert_eq!(rest.len(), 1);
        assert_eq!(rest[0].peer, OTHER);
        assert_eq!(rest[0].count, MAX_PEERS as u64 * 3 - 1);
    }
}
