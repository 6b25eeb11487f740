//! Column conversions for the vocabulary enums: each is stored by its one
//! wire name, so the store takes and returns the enum and the SQL columns keep
//! the strings older files hold (no migration). An unknown name in a column
//! is an error naming the column's type, never a silent default.

use crate::error::Result;
use crate::store::sql::{Column, Row, Value};
use crate::{ApprovalKind, ApprovalState, KeyStatus, RotationReason, RotationStep};

macro_rules! column {
    ($($ty:ident => $parse:path, $what:literal;)+) => {$(
        impl From<$ty> for Value<'static> {
            fn from(v: $ty) -> Self {
                Value::Text(Some(v.as_str()))
            }
        }

        impl Column for $ty {
            fn from_row(row: &Row<'_>, idx: usize) -> Result<Self> {
                let name: String = row.get(idx)?;
                $parse(&name).ok_or_else(|| row.bad_value(idx, format!($what, name)))
            }
        }
    )+};
}

column! {
    ApprovalKind => ApprovalKind::parse, "unknown ApprovalKind {:?} (a newer vault?)";
    ApprovalState => ApprovalState::parse, "unknown ApprovalState {:?} (a newer vault?)";
    RotationReason => RotationReason::parse, "unknown RotationReason {:?} (a newer vault?)";
    RotationStep => RotationStep::parse, "unknown RotationStep {:?} (a newer vault?)";
    KeyStatus => KeyStatus::parse_stored, "unknown key status {:?}";
}
