//! Redaction and fingerprints: the only forms in which a secret leaves the crate.

use ring::digest;

/// Values shorter than this are shown as `…` alone: a few characters of a
/// short value are a large part of what a guess has to find.
pub const SHORTEST_SHOWN: usize = 16;

/// A secret shown as `ghp_FA…l4WV`: a head of at most six bytes and a tail of
/// at most four, together never more than a quarter of the value, and nothing
/// of a value shorter than [`SHORTEST_SHOWN`] bytes.
pub fn redact(secret: &[u8]) -> String {
    let len = secret.len();
    let shown = if len < SHORTEST_SHOWN {
        0
    } else {
        (len / 4).min(10)
    };
    let tail = (shown / 2).min(4);
    let head = (shown - tail).min(6);
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
        // issue 19, finding 7: a 19-character value showed 8 of its characters
        assert_eq!(redact(b"s3cr3t-v4lue-19-chr"), "s3…hr");
        assert_eq!(redact(b"fifteen-chars-x"), "…");
    }
}
