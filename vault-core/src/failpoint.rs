//! Crash injection for tests: with the `failpoints` feature (on only in test
//! builds), `VAULT_FAILPOINT=NAME` makes the process abort at the step named
//! NAME, like a kill -9: no destructors, no flushes, no cleanup.

/// Aborts here if this failpoint is armed; a no-op in normal builds.
#[inline]
pub(crate) fn hit(name: &str) {
    #[cfg(feature = "failpoints")]
    if std::env::var("VAULT_FAILPOINT").is_ok_and(|armed| armed == name) {
        std::process::abort();
    }
    #[cfg(not(feature = "failpoints"))]
    let _ = name;
}
