//! Crash injection for tests: with the `failpoints` feature (on only in test
//! builds), `VAULT_FAILPOINT=NAME` makes the process abort at the step named
//! NAME, like a kill -9: no destructors, no flushes, no cleanup.
//! `VAULT_FAILPOINT=NAME:pause` stops it there instead, for good, so a test
//! can SIGKILL a process while it is known to be inside that step.
//! `VAULT_FAILPOINT=NAME:pause-until=FILE` waits there until FILE exists,
//! then goes on: a test changes the world (restarts the database) while the
//! process is known to be inside that step.

/// Aborts (or pauses) here if this failpoint is armed; a no-op in normal builds.
#[inline]
pub(crate) fn hit(name: &str) {
    #[cfg(feature = "failpoints")]
    if let Ok(armed) = std::env::var("VAULT_FAILPOINT") {
        if armed == name {
            std::process::abort();
        }
        if armed.strip_suffix(":pause") == Some(name) {
            loop {
                std::thread::park();
            }
        }
        if let Some(file) = armed
            .strip_prefix(name)
            .and_then(|rest| rest.strip_prefix(":pause-until="))
        {
            while !std::path::Path::new(file).exists() {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
        }
    }
    #[cfg(not(feature = "failpoints"))]
    let _ = name;
}
