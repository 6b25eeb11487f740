//! Ids the vault hands out, as types, so one kind cannot be passed where
//! another is expected (issue 14, "newtypes for key, token and approval
//! ids"). Each is parsed once, where text enters (a command's argument, a
//! form field, a broker's hold), and serialised as the plain string it is.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// An approval's id: 8 lowercase hex digits, as `vault approvals` lists it.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ApprovalId(String);

impl ApprovalId {
    /// `text` as an approval id. Text of any other shape names no approval,
    /// so it is refused as an unknown id is: not found (exit 4, `not_found`).
    ///
    /// # Errors
    /// `text` is not 8 lowercase hex digits.
    pub fn parse(text: &str) -> Result<ApprovalId> {
        let hex = |b: u8| b.is_ascii_digit() || (b'a'..=b'f').contains(&b);
        if text.len() == 8 && text.bytes().all(hex) {
            return Ok(ApprovalId(text.to_owned()));
        }
        Err(Error::NotFound {
            what: "approval",
            name: text.to_owned(),
            suggestion: None,
        })
    }

    /// A fresh random id.
    pub(crate) fn generate() -> Result<ApprovalId> {
        Ok(ApprovalId(crate::credential::hex(
            &crate::crypto::rand::array::<4>()?,
        )))
    }

    /// An id read back from the store, which only ever holds generated ones.
    pub(crate) fn from_store(text: String) -> ApprovalId {
        ApprovalId(text)
    }

    /// The id as text (SQL parameters, URLs).
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ApprovalId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl PartialEq<str> for ApprovalId {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

impl PartialEq<&str> for ApprovalId {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

/// A 16-hex-digit id the vault hands out (a named key's, a token's), with
/// one parse at the edge and the plain string it is on the wire.
macro_rules! hex16_id {
    ($(#[$doc:meta])* $name:ident, $what:literal) => {
        $(#[$doc])*
        #[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// `text` as an id of this kind. Text of any other shape names
            /// none, so it is refused as an unknown id is: not found.
            ///
            /// # Errors
            /// `text` is not 16 lowercase hex digits.
            pub fn parse(text: &str) -> Result<$name> {
                let hex = |b: u8| b.is_ascii_digit() || (b'a'..=b'f').contains(&b);
                if text.len() == 16 && text.bytes().all(hex) {
                    return Ok($name(text.to_owned()));
                }
                Err(Error::NotFound {
                    what: $what,
                    name: text.to_owned(),
                    suggestion: None,
                })
            }

            /// A fresh random id.
            pub(crate) fn generate() -> Result<$name> {
                Ok($name(crate::credential::hex(&crate::crypto::rand::array::<8>()?)))
            }

            /// An id read back from the store or a verified token, which only
            /// ever hold generated ones.
            pub(crate) fn from_store(text: String) -> $name {
                $name(text)
            }

            /// The id as text (SQL parameters, URLs).
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.0 == other
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.0 == *other
            }
        }

        impl PartialEq<String> for $name {
            fn eq(&self, other: &String) -> bool {
                &self.0 == other
            }
        }

        impl PartialEq<$name> for String {
            fn eq(&self, other: &$name) -> bool {
                self == &other.0
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }

        impl std::borrow::Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }

        impl std::ops::Deref for $name {
            type Target = str;
            fn deref(&self) -> &str {
                &self.0
            }
        }
    };
}

hex16_id!(
    /// A named key's public id (`vault keys ls`), never the key itself.
    KeyId,
    "key"
);

hex16_id!(
    /// A token's id (`vault token verify`), never the token itself.
    TokenId,
    "token"
);

#[cfg(test)]
mod tests {
    use super::{ApprovalId, KeyId, TokenId};

    // issue 14, "newtypes for key, token and approval ids"
    #[test]
    fn key_and_token_ids_parse_only_in_their_shape_and_serialise_as_text() {
        let id = KeyId::parse("0123456789abcdef").unwrap();
        assert_eq!(serde_json::to_value(&id).unwrap(), "0123456789abcdef");
        assert_eq!(id, "0123456789abcdef");
        for bad in [
            "",
            "0123456789abcde",
            "0123456789ABCDEF",
            "hermes-key",
            "0123456789abcdef0",
        ] {
            assert_eq!(
                KeyId::parse(bad).unwrap_err().code(),
                "not_found",
                "{bad:?}"
            );
            assert_eq!(
                TokenId::parse(bad).unwrap_err().code(),
                "not_found",
                "{bad:?}"
            );
        }
        let t = TokenId::generate().unwrap();
        assert_eq!(TokenId::parse(t.as_str()).unwrap(), t);
    }

    // issue 14, "newtypes for key, token and approval ids": one parse, at the edge
    #[test]
    fn an_approval_id_parses_only_in_its_own_shape_and_serialises_as_its_text() {
        let id = ApprovalId::parse("ab12cd34").unwrap();
        assert_eq!(id.to_string(), "ab12cd34");
        assert_eq!(serde_json::to_value(&id).unwrap(), "ab12cd34");
        for bad in [
            "",
            "ab12cd3",
            "ab12cd345",
            "AB12CD34",
            "ab12cd3g",
            "../etc/x",
        ] {
            let err = ApprovalId::parse(bad).unwrap_err();
            assert_eq!(err.code(), "not_found", "{bad:?}");
        }
        let generated = ApprovalId::generate().unwrap();
        assert_eq!(ApprovalId::parse(generated.as_str()).unwrap(), generated);
    }
}
