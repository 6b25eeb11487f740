//! Column conversions for the vocabulary enums: each is stored by its one
//! wire name, so the store takes and returns the enum and the SQL columns keep
//! the strings older files hold (no migration). An unknown name in a column
//! is an error naming the column's type, never a silent default.

use rusqlite::types::{FromSql, FromSqlError, FromSqlResult, ToSql, ToSqlOutput, ValueRef};

use crate::{ApprovalKind, ApprovalState, RotationReason, RotationStep};

macro_rules! column {
    ($($ty:ident),+) => {$(
        impl ToSql for $ty {
            fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
                Ok(ToSqlOutput::from(self.as_str()))
            }
        }

        impl FromSql for $ty {
            fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
                let name = value.as_str()?;
                $ty::parse(name).ok_or_else(|| {
                    FromSqlError::Other(
                        format!(concat!("unknown ", stringify!($ty), " {:?} (a newer vault?)"), name)
                            .into(),
                    )
                })
            }
        }
    )+};
}

column!(ApprovalKind, ApprovalState, RotationReason, RotationStep);
