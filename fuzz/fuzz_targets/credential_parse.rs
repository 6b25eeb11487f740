//! Named-key and token parsing: hostile strings must be rejected, never panic,
//! and anything accepted must round-trip.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vault_core::credential::{encode_token, parse_token_body};
use vault_core::NamedKey;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(key) = NamedKey::parse(text) {
        assert_eq!(key.expose_secret(), text.trim());
    }
    if let Ok(body) = parse_token_body(text) {
        assert_eq!(parse_token_body(&encode_token(&body)).unwrap(), body);
    }
    // whatever the bytes, encoding then parsing gives them back
    if !data.is_empty() && data.len() < 1000 {
        assert_eq!(parse_token_body(&encode_token(data)).unwrap(), data);
    }
});
