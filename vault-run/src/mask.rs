//! Streaming replacement of secret values in a child's output, like `op run`.
//! Matches split across reads are still caught: a tail that could be the
//! start of a value is held back until the next read decides it.

use std::io::{Read, Write};

use aho_corasick::{AhoCorasick, MatchKind};
use zeroize::Zeroizing;

/// What a concealed value is replaced with.
pub const CONCEALED: &[u8] = b"<concealed by vault>";
/// Values shorter than this are not masked: they would hide ordinary text.
pub const MIN_MASKED_LEN: usize = 4;

/// Replaces values in a byte stream.
pub struct Masker {
    matcher: AhoCorasick,
    values: Vec<Zeroizing<Vec<u8>>>,
    pending: Zeroizing<Vec<u8>>,
}

impl Masker {
    /// A masker for `values` (those shorter than [`MIN_MASKED_LEN`] are skipped).
    /// `None` when nothing is left to mask.
    pub fn new<'a>(values: impl IntoIterator<Item = &'a [u8]>) -> Option<Masker> {
        let values: Vec<Zeroizing<Vec<u8>>> = values
            .into_iter()
            .filter(|v| v.len() >= MIN_MASKED_LEN)
            .map(|v| Zeroizing::new(v.to_vec()))
            .collect();
        if values.is_empty() {
            return None;
        }
        let matcher = AhoCorasick::builder()
            .match_kind(MatchKind::LeftmostLongest)
            .build(values.iter().map(|v| v.as_slice()))
            .ok()?;
        Some(Masker {
            matcher,
            values,
            pending: Zeroizing::new(Vec::new()),
        })
    }

    /// Feeds a chunk; returns what can be written now.
    pub fn feed(&mut self, chunk: &[u8]) -> Vec<u8> {
        self.pending.extend_from_slice(chunk);
        let buf = std::mem::take(&mut *self.pending);
        let mut out = Vec::with_capacity(buf.len());
        let mut last = 0;
        for m in self.matcher.find_iter(&buf) {
            out.extend_from_slice(&buf[last..m.start()]);
            out.extend_from_slice(CONCEALED);
            last = m.end();
        }
        let hold = self.partial_tail(&buf[last..]);
        let keep_from = buf.len() - hold;
        out.extend_from_slice(&buf[last..keep_from]);
        self.pending = Zeroizing::new(buf[keep_from..].to_vec());
        let mut buf = buf;
        zeroize::Zeroize::zeroize(&mut buf);
        out
    }

    /// Flushes whatever was held back at end of stream.
    pub fn finish(&mut self) -> Vec<u8> {
        std::mem::take(&mut *self.pending)
    }

    /// The longest suffix of `tail` that is a proper prefix of some value.
    fn partial_tail(&self, tail: &[u8]) -> usize {
        let longest = self.values.iter().map(|v| v.len() - 1).max().unwrap_or(0);
        (1..=longest.min(tail.len()))
            .rev()
            .find(|&k| {
                let suffix = &tail[tail.len() - k..];
                self.values
                    .iter()
                    .any(|v| v.len() > k && v.starts_with(suffix))
            })
            .unwrap_or(0)
    }
}

/// Copies `from` to `to`, masking; flushes after every read so a child's
/// output appears as it is written.
pub fn copy_masked(
    mut from: impl Read,
    mut to: impl Write,
    mut masker: Masker,
) -> std::io::Result<()> {
    let mut buf = Zeroizing::new(vec![0u8; 16 * 1024]);
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        to.write_all(&masker.feed(&buf[..n]))?;
        to.flush()?;
    }
    to.write_all(&masker.finish())?;
    to.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run_chunks(values: &[&str], input: &str, chunk: usize) -> String {
        let mut m = Masker::new(values.iter().map(|v| v.as_bytes())).unwrap();
        let mut out = Vec::new();
        for c in input.as_bytes().chunks(chunk) {
            out.extend(m.feed(c));
        }
        out.extend(m.finish());
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn masks_across_every_chunk_boundary() {
        let input = "token=s3cr3t-value and again s3cr3t-value; s3cr3t-valu is not it; other=abcd";
        let want = "token=<concealed by vault> and again <concealed by vault>; s3cr3t-valu is not it; other=<concealed by vault>";
        for chunk in 1..=input.len() {
            assert_eq!(
                run_chunks(&["s3cr3t-value", "abcd"], input, chunk),
                want,
                "chunk {chunk}"
            );
        }
    }

    #[test]
    fn short_values_are_not_masked() {
        assert!(Masker::new([b"abc".as_slice()]).is_none());
    }

    #[test]
    fn output_is_not_held_back_needlessly() {
        let mut m = Masker::new([b"secretvalue".as_slice()]).unwrap();
        assert_eq!(m.feed(b"hello world\n"), b"hello world\n");
        assert_eq!(m.feed(b"x secr"), b"x ");
        assert_eq!(m.feed(b"etvalue!"), b"<concealed by vault>!");
    }
}
