//! The vault's one source of wall-clock time: every expiry, rate-limit window
//! and approval deadline reads it (through `store::now` / `store::now_ms`), so
//! time is a parameter for tests rather than something they sleep through.
//! With the `failpoints` feature (test builds only, like [`crate::failpoint`])
//! `VAULT_CLOCK_SKEW_SECS=N` sets the clock N seconds ahead (or behind, for a
//! negative N) in that process: an end-to-end test checks that a token expired
//! by running `vault` an hour later, not by waiting. Normal builds ignore it.

/// Milliseconds since the Unix epoch, as this process's clock reads them.
pub(crate) fn now_ms() -> i64 {
    real_ms().saturating_add(skew_ms())
}

/// Seconds since the Unix epoch (rounded down).
pub(crate) fn now() -> i64 {
    now_ms().div_euclid(1000)
}

fn real_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

#[cfg(feature = "failpoints")]
fn skew_ms() -> i64 {
    std::env::var("VAULT_CLOCK_SKEW_SECS")
        .ok()
        .and_then(|s| s.trim().parse::<i64>().ok())
        .map_or(0, |s| s.saturating_mul(1000))
}

#[cfg(not(feature = "failpoints"))]
fn skew_ms() -> i64 {
    0
}
