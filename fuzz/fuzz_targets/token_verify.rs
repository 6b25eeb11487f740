//! Token verification: arbitrary text, and arbitrary claim bytes under a valid
//! checksum, must fail cleanly without the signing key; no panics.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vault_core::credential::encode_token;
use vault_core::TokenSigner;

fuzz_target!(|data: &[u8]| {
    let signer = TokenSigner::new(&[7u8; 32]);
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = signer.verify(text, 1_000_000);
    }
    if !data.is_empty() {
        assert!(signer.verify(&encode_token(data), 1_000_000).is_err());
    }
});
