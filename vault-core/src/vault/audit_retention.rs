//! What the audit trail keeps (issue 19): by age, by size, or both. One
//! setting (`audit.retention`) holds the policy default in its canonical
//! text (`90d`, `100MB`, `90d 100MB`), parsed here into
//! [`AuditRetention`], so the rest of the vault sees types, not text; a
//! vault that set only an age before keeps meaning the same.
//!
//! A size counts the records as stored: every column's bytes
//! (`octet_length`) plus the 80 bytes of the fixed ones (seq, time, chain
//! hash, MAC). It is what the trail holds, not the file's size: SQLite
//! reuses the freed pages rather than shrinking the file.

use std::fmt;
use std::time::Duration;

/// A number of bytes, written with a unit (`100MB`, `1GiB`, `500kB`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct ByteSize(pub u64);

/// The units a size may carry: decimal (kB = 1,000) and binary (KiB = 1,024).
const UNITS: [(&str, u64); 9] = [
    ("b", 1),
    ("kb", 1_000),
    ("mb", 1_000_000),
    ("gb", 1_000_000_000),
    ("tb", 1_000_000_000_000),
    ("kib", 1 << 10),
    ("mib", 1 << 20),
    ("gib", 1 << 30),
    ("tib", 1 << 40),
];

impl ByteSize {
    /// Parses a size above zero with a unit (case does not matter). A bare
    /// number is refused: `100` could mean bytes or megabytes. The error is
    /// the sentence to show.
    pub fn parse(text: &str) -> Result<ByteSize, String> {
        let t = text.trim();
        let split = t
            .find(|c: char| !c.is_ascii_digit() && c != '.')
            .unwrap_or(t.len());
        let (number, unit) = (&t[..split], t[split..].trim().to_ascii_lowercase());
        let bad = || {
            format!(
                "{text:?} is not a size like 100MB or 1GiB (units: B, kB, MB, GB, KiB, MiB, GiB)"
            )
        };
        let n: f64 = number.parse().map_err(|_| bad())?;
        if n == 0.0 {
            return Err(format!("{text:?}: give a size above zero, like 100MB"));
        }
        let factor = UNITS
            .iter()
            .find(|(u, _)| *u == unit)
            .map(|(_, f)| *f)
            .ok_or_else(bad)?;
        let bytes = n * factor as f64;
        if !bytes.is_finite() || bytes >= u64::MAX as f64 {
            return Err(bad());
        }
        match bytes as u64 {
            0 => Err(format!("{text:?}: give a size above zero, like 100MB")),
            b => Ok(ByteSize(b)),
        }
    }

    /// Whether `text` looks like a size rather than an age (it ends in `b`).
    pub fn looks_like(text: &str) -> bool {
        text.trim().to_ascii_lowercase().ends_with('b')
    }
}

impl fmt::Display for ByteSize {
    /// The largest unit that divides it exactly, so it parses back the same.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let unit = UNITS
            .iter()
            .rev()
            .filter(|(_, factor)| self.0 % factor == 0)
            .max_by_key(|(_, factor)| *factor)
            .map_or(("b", 1), |(u, f)| (*u, *f));
        let name = match unit.0 {
            "b" => "B",
            "kb" => "kB",
            "mb" => "MB",
            "gb" => "GB",
            "tb" => "TB",
            "kib" => "KiB",
            "mib" => "MiB",
            "gib" => "GiB",
            _ => "TiB",
        };
        write!(f, "{}{name}", self.0 / unit.1)
    }
}

/// The policy default `vault audit prune` applies with no cutoff: records
/// older than `age`, and the oldest records beyond `size`, are removed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AuditRetention {
    /// Remove records older than this.
    pub age: Option<Duration>,
    /// Keep at most this many bytes of the newest records.
    pub size: Option<ByteSize>,
}

/// The smallest size the policy default may keep: pruning to less at every
/// `vault audit prune` would leave almost no trail.
pub const MIN_RETENTION_SIZE: ByteSize = ByteSize(1_000_000);

impl AuditRetention {
    /// Parses the words of `vault audit retention` (or the stored setting):
    /// an age (`90d`), a size (`100MB`), or one of each. The error is the
    /// sentence to show.
    pub fn parse(words: &[&str]) -> Result<AuditRetention, String> {
        let mut out = AuditRetention::default();
        // the words that are not a size are one age (`2d 12h` as typed before)
        let mut age_words = Vec::new();
        for word in words.iter().flat_map(|w| w.split_whitespace()) {
            if !ByteSize::looks_like(word) {
                age_words.push(word);
                continue;
            }
            if out.size.is_some() {
                return Err("give at most one size".into());
            }
            let size = ByteSize::parse(word)?;
            if size < MIN_RETENTION_SIZE {
                return Err(format!(
                    "audit retention {word:?}: keep at least {MIN_RETENTION_SIZE}"
                ));
            }
            out.size = Some(size);
        }
        if !age_words.is_empty() {
            let text = age_words.join(" ");
            match crate::policy::parse_duration(&text) {
                Some(d) if d >= Duration::from_secs(86_400) => out.age = Some(d),
                _ => {
                    return Err(format!(
                        "audit retention {text:?}: give an age of a day or more, like 90d, \
                         or a size like 100MB"
                    ))
                }
            }
        }
        if out.age.is_none() && out.size.is_none() {
            return Err("give an age (like 90d), a size (like 100MB), or both".into());
        }
        Ok(out)
    }
}

impl fmt::Display for AuditRetention {
    /// The canonical text the setting stores (`90d`, `100MB`, `90d 100MB`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let age = self.age.map(|d| {
            let secs = d.as_secs();
            match [(86_400, "d"), (3_600, "h"), (60, "m")]
                .into_iter()
                .find(|(unit, _)| secs % unit == 0)
            {
                Some((unit, name)) => format!("{}{name}", secs / unit),
                None => format!("{secs}s"),
            }
        });
        let size = self.size.map(|s| s.to_string());
        let words: Vec<String> = [age, size].into_iter().flatten().collect();
        f.write_str(&words.join(" "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_need_a_unit_and_a_value_above_zero() {
        assert_eq!(ByteSize::parse("100MB"), Ok(ByteSize(100_000_000)));
        assert_eq!(ByteSize::parse("1GiB"), Ok(ByteSize(1 << 30)));
        assert_eq!(ByteSize::parse(" 1.5kb "), Ok(ByteSize(1_500)));
        assert_eq!(ByteSize::parse("2048B"), Ok(ByteSize(2_048)));
        for bad in ["100", "MB", "ten MB", "-5MB", "1e3MB", "5 parsecs", ""] {
            let e = ByteSize::parse(bad).unwrap_err();
            assert!(e.contains("is not a size like 100MB"), "{bad}: {e}");
        }
        for zero in ["0MB", "0", "0.0kB"] {
            let e = ByteSize::parse(zero).unwrap_err();
            assert!(e.contains("above zero"), "{zero}: {e}");
        }
        assert!(ByteSize::parse("0.0001B").is_err(), "under a byte");
        assert!(ByteSize::parse("99999999999TiB").is_err());
    }

    #[test]
    fn a_size_prints_in_the_unit_it_parses_back_from() {
        for s in ["100MB", "1GiB", "1500B", "3kB", "5TiB"] {
            let size = ByteSize::parse(s).unwrap();
            assert_eq!(
                ByteSize::parse(&size.to_string()),
                Ok(size),
                "{s} -> {size}"
            );
        }
        assert_eq!(ByteSize(100_000_000).to_string(), "100MB");
        assert_eq!(ByteSize(1 << 20).to_string(), "1MiB");
    }

    #[test]
    fn retention_is_an_age_a_size_or_both_and_round_trips() {
        let both = AuditRetention::parse(&["90d", "100MB"]).unwrap();
        assert_eq!(both.age, Some(Duration::from_secs(90 * 86_400)));
        assert_eq!(both.size, Some(ByteSize(100_000_000)));
        assert_eq!(AuditRetention::parse(&[&both.to_string()]), Ok(both));
        // the setting as an age-only vault stored it
        let age = AuditRetention::parse(&["30d"]).unwrap();
        assert_eq!((age.age.is_some(), age.size), (true, None));
        assert!(AuditRetention::parse(&["1h"]).is_err(), "under a day");
        assert!(AuditRetention::parse(&["10kB"]).is_err(), "under the floor");
        assert!(AuditRetention::parse(&["1GB", "2GB"]).is_err());
        assert_eq!(both.to_string(), "90d 100MB");
        let typed = AuditRetention::parse(&["2d 12h"]).unwrap();
        assert_eq!(typed.to_string(), "60h");
        assert_eq!(AuditRetention::parse(&["60h"]), Ok(typed));
        assert!(AuditRetention::parse(&[]).is_err());
        assert!(AuditRetention::parse(&["garbage"]).is_err());
    }
}
