//! Redaction and fingerprints: the only forms in which a secret leaves the crate.

use ring::digest;

/// A secret shown as `ghp_Ab…9xQz`: at most a quarter of it (six bytes) at the head and a
/// quarter (four bytes) at the tail, so at least half, the hidden middle, never appears.
pub fn redact(secret: &[u8]) -> String {
    let len = secret.len();
    let head = (len / 4).min(6);
    let tail = (len / 4).min(4);
    let mut out = String::with_capacity(head + tail + 3);
    out.push_str(&String::from_utf8_lossy(&secret[..head]));
    out.push('…');
    out.push_str(&String::from_utf8_lossy(&secret[len - tail..]));
    out
}

/// A stable fingerprint for baselines: SHA-256 over a domain tag, the rule id and the secret,
/// cut to 64 bits (16 hex chars).
///
/// # Security
/// Like any unkeyed hash of a secret, it confirms a guess of a low-entropy secret; it is meant
/// for baseline files kept next to the code that holds the finding anyway.
pub fn fingerprint(rule_id: &str, secret: &[u8]) -> String {
    let mut ctx = digest::Context::new(&digest::SHA256);
    ctx.update(b"vault-scan fingerprint v1\0");
    ctx.update(rule_id.as_bytes());
    ctx.update(b"\0");
    ctx.update(secret);
    let d = ctx.finish();
    d.as_ref()[..8].iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redaction_shape() {
        assert_eq!(
            redact(b"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"),
            "ghp_FA…l4WV"
        );
        assert_eq!(redact(b"abc"), "…");
    }
}
