//! The seam through which the caller recognises vault-managed values (ripgrep's Matcher seam).
//!
//! The scanner never holds vault plaintexts. The caller (vault-cli) implements
//! [`KnownSecrets`] over what the vault stores publicly:
//!
//! * (a) **vault credentials**: every `avk_`/`avt_` match whose checksum is valid is handed to
//!   [`KnownSecrets::credential`], which can name the agent and key by the credential's hash.
//! * (b) **stored third-party secrets** of any shape: the vault keeps a keyed fingerprint
//!   (e.g. HMAC-SHA-256 under a scan key) of each stored value and its length. The engine
//!   splits input into candidate tokens (runs between whitespace, quotes, `=`, `:`, `,`, `;`,
//!   brackets) whose length is in [`KnownSecrets::lengths`], and asks
//!   [`KnownSecrets::matches`] about each, so only a few candidates per line are hashed.
//!
//! Every provider-rule match whose length is known is also offered to `matches`, so a
//! finding of a stored OpenAI key says which vault entry it is.

/// What the matcher says about a vault-managed value. Holds names and hashes, never values.
#[derive(Clone, Debug, PartialEq, Eq, Hash, serde::Serialize)]
pub struct ManagedInfo {
    /// Human-readable owner, e.g. `agent research / key ci-deploy` or `secret openai/prod`.
    pub label: String,
    /// A public identifier of the value (key hash or fingerprint id), never the value.
    pub id: String,
    /// What to do about it, from the caller who knows its state (a live key
    /// rotates, a revoked one only needs deleting); `None`: rotate it with the vault.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub advice: Option<String>,
}

/// Implemented by the caller to recognise vault-managed values.
///
/// `Sync` because directory scans may run from several threads.
pub trait KnownSecrets: Sync {
    /// Called for an `avk_`/`avt_` candidate whose checksum is valid (prefix included).
    /// Return who it belongs to, or `None` if this vault did not issue it (it is then still
    /// reported, as an unknown vault credential).
    fn credential(&self, candidate: &[u8]) -> Option<ManagedInfo>;

    /// The byte lengths of stored third-party values. Candidates of other lengths are never
    /// passed to [`KnownSecrets::matches`]. Sorted or not; duplicates are fine.
    fn lengths(&self) -> &[usize];

    /// Whether `candidate` is a stored value (by keyed fingerprint, compared in constant time
    /// by the implementation).
    fn matches(&self, candidate: &[u8]) -> Option<ManagedInfo>;
}

/// Bytes that end a candidate token for [`KnownSecrets::matches`].
pub(crate) fn is_delimiter(b: u8) -> bool {
    matches!(
        b,
        b' ' | b'\t'
            | b'\n'
            | b'\r'
            | b'"'
            | b'\''
            | b'`'
            | b'='
            | b':'
            | b','
            | b';'
            | b'('
            | b')'
            | b'['
            | b']'
            | b'{'
            | b'}'
            | b'<'
            | b'>'
            | b'\\'
    )
}
