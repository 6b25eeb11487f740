//! How an audited action ended: the `outcome` column of the audit trail,
//! `ok`, `denied:CODE` or `error:CODE`, CODE being a stable error code
//! ([`crate::Error::code`], [`Denial::as_str`]) or one of the broker's
//! refusal codes. Written through [`AuditOutcome`] and read through
//! [`OutcomeKind::of`], so no caller spells an outcome as text (issue 14).
//! The store keeps the text ([`AuditOutcome::as_str`] at its boundary).

use std::borrow::Cow;

use crate::error::Error;
use crate::wire::wire_enum;
use crate::Denial;

wire_enum! {
    /// How an audited action ended, the part of `outcome` before any `:CODE`.
    pub enum OutcomeKind {
        /// It happened.
        Ok => "ok",
        /// It was refused; the code says why.
        Denied => "denied",
        /// It failed; the code says how.
        Error => "error",
    }
}

impl OutcomeKind {
    /// The kind of a stored outcome; `None` for text no build writes.
    pub fn of(outcome: &str) -> Option<OutcomeKind> {
        match outcome.split_once(':') {
            // a refusal or a failure always says why
            None => (outcome == OutcomeKind::Ok.as_str()).then_some(OutcomeKind::Ok),
            Some((_, "")) => None,
            Some((kind, _)) => OutcomeKind::parse(kind),
        }
    }
}

/// What an audit record says about how its action ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuditOutcome {
    /// It happened: `ok`.
    Ok,
    /// It happened, changed on the way: `ok:CODE`.
    Changed(&'static str),
    /// Refused: `denied:CODE`.
    Denied(&'static str),
    /// Failed: `error:CODE`.
    Error(&'static str),
}

impl AuditOutcome {
    /// The broker found no rule for the host.
    pub const EGRESS_DENIED: AuditOutcome = AuditOutcome::Denied("egress_denied");
    /// A rule matched the host but not the method.
    pub const EGRESS_METHOD_DENIED: AuditOutcome = AuditOutcome::Denied("egress_method_denied");
    /// The outgoing request carried a secret; it went out with the secret replaced.
    pub const REDACTED: AuditOutcome = AuditOutcome::Changed("redacted");
    /// The outgoing request carried a secret it must not.
    pub const EXFILTRATION_BLOCKED: AuditOutcome = AuditOutcome::Denied("exfiltration_blocked");
    /// A rotation could not write a target file.
    pub const TARGET_FAILED: AuditOutcome = AuditOutcome::Error("target");

    /// Refused for `denial`.
    pub fn denial(denial: Denial) -> AuditOutcome {
        AuditOutcome::Denied(denial.as_str())
    }

    /// Refused with `error`'s code.
    pub fn denied_by(error: &Error) -> AuditOutcome {
        AuditOutcome::Denied(error.code())
    }

    /// Failed with `error`'s code.
    pub fn failed_with(error: &Error) -> AuditOutcome {
        AuditOutcome::Error(error.code())
    }

    /// `ok` for `Ok`, else refused with the error's code.
    pub fn of<T>(result: &Result<T, Error>) -> AuditOutcome {
        match result {
            Ok(_) => AuditOutcome::Ok,
            Err(e) => AuditOutcome::denied_by(e),
        }
    }

    /// Its kind.
    pub fn kind(self) -> OutcomeKind {
        match self {
            AuditOutcome::Ok | AuditOutcome::Changed(_) => OutcomeKind::Ok,
            AuditOutcome::Denied(_) => OutcomeKind::Denied,
            AuditOutcome::Error(_) => OutcomeKind::Error,
        }
    }

    /// The one wire name: the `outcome` column's text.
    pub fn as_str(self) -> Cow<'static, str> {
        match self {
            AuditOutcome::Ok => Cow::Borrowed(OutcomeKind::Ok.as_str()),
            AuditOutcome::Changed(code)
            | AuditOutcome::Denied(code)
            | AuditOutcome::Error(code) => Cow::Owned(format!("{}:{code}", self.kind().as_str())),
        }
    }
}

impl std::fmt::Display for AuditOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // issue 14, "audit action and outcome" typed: what is written reads back as its kind
    #[test]
    fn every_outcome_written_reads_back_as_its_kind_and_nothing_else_does() {
        let written = [
            AuditOutcome::Ok,
            AuditOutcome::denial(Denial::UnknownKey),
            AuditOutcome::denied_by(&Error::RateLimited {
                retry_after_secs: 1,
            }),
            AuditOutcome::EGRESS_DENIED,
            AuditOutcome::REDACTED,
            AuditOutcome::TARGET_FAILED,
        ];
        for outcome in written {
            assert_eq!(OutcomeKind::of(&outcome.as_str()), Some(outcome.kind()));
        }
        assert_eq!(AuditOutcome::Ok.as_str(), "ok");
        assert_eq!(
            AuditOutcome::denial(Denial::OutOfScope).as_str(),
            "denied:out_of_scope"
        );
        assert_eq!(AuditOutcome::TARGET_FAILED.as_str(), "error:target");
        assert_eq!(AuditOutcome::REDACTED.as_str(), "ok:redacted");
        for odd in ["", "ok:", "denied", "okay", "refused:x", "DENIED:x"] {
            assert_eq!(OutcomeKind::of(odd), None, "{odd}");
        }
    }
}
