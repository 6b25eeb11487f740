//! Why a credential was refused: one variant per reason, one stable wire
//! name ([`Denial::as_str`]) for the CLI's `--json` errors, the server's
//! `{"error": {"code"}}`, the audit outcome `denied:CODE` and the broker's
//! refusals. The names are a contract (README, DESIGN.md): a variant is added,
//! never renamed.

use std::fmt;

/// The reason a named key or token was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Denial {
    /// The credential's checksum does not match: a typo or a forgery.
    BadChecksum,
    /// A token whose signature does not verify.
    BadSignature,
    /// A named key past its expiry.
    KeyExpired,
    /// A named key revoked by a person or a rotation.
    KeyRevoked,
    /// A named key suspended for anomalous use.
    KeySuspended,
    /// Not a named key.
    MalformedKey,
    /// Not a token.
    MalformedToken,
    /// A token (or key) whose scopes do not cover what was asked.
    OutOfScope,
    /// A token past its expiry.
    TokenExpired,
    /// A token revoked (or attenuated from one revoked).
    TokenRevoked,
    /// A well-formed key the vault does not know.
    UnknownKey,
}

impl Denial {
    /// Every reason.
    pub const ALL: &'static [Denial] = &[
        Denial::BadChecksum,
        Denial::BadSignature,
        Denial::KeyExpired,
        Denial::KeyRevoked,
        Denial::KeySuspended,
        Denial::MalformedKey,
        Denial::MalformedToken,
        Denial::OutOfScope,
        Denial::TokenExpired,
        Denial::TokenRevoked,
        Denial::UnknownKey,
    ];

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Denial::BadChecksum => "bad_checksum",
            Denial::BadSignature => "bad_signature",
            Denial::KeyExpired => "key_expired",
            Denial::KeyRevoked => "key_revoked",
            Denial::KeySuspended => "key_suspended",
            Denial::MalformedKey => "malformed_key",
            Denial::MalformedToken => "malformed_token",
            Denial::OutOfScope => "out_of_scope",
            Denial::TokenExpired => "token_expired",
            Denial::TokenRevoked => "token_revoked",
            Denial::UnknownKey => "unknown_key",
        }
    }
}

impl fmt::Display for Denial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
