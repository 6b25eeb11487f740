//! Tokens for a person: what minting and verifying say beside the token.

use vault_core::view::TokenView;

/// After `vault token` printed a token: whose it is, what it may do, when
/// it ends.
pub fn minted_line(view: &TokenView) -> String {
    format!(
        "token {} for agent {} ({}), expires {}",
        view.token_id,
        view.agent,
        view.scopes_line(),
        view.expires_at
    )
}

/// `vault token verify` for a valid token.
pub fn verified_line(view: &TokenView) -> String {
    format!(
        "valid: token {} of key {} for agent {} ({}), expires {}",
        view.token_id,
        view.key_id,
        view.agent,
        view.scopes_line(),
        view.expires_at
    )
}
