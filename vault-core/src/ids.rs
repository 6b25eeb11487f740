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

#[cfg(test)]
mod tests {
    use super::ApprovalId;

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
