//! The policy loader: any text is a policy or a clear error, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vault_core::Policy;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(policy) = Policy::from_toml(text) {
            assert!(policy.max_token_ttl().as_secs() <= 24 * 3600);
        }
    }
});
