//! Scanning a byte stream pushed in arbitrary chunks, with line and column for each match.
//!
//! Text is scanned up to the last complete line; a carry of the previous lines is kept so
//! multi-line matches (PEM blocks) are still seen whole. Whether input arrives whole, in
//! chunks split anywhere, or line by line, the findings are the same (tested). A line longer
//! than [`MAX_SEGMENT`] is scanned in pieces so memory stays bounded.

use std::collections::HashSet;

use crate::engine::{Hit, Scanner};
use crate::known::KnownSecrets;

/// Longest run kept in memory before a line is scanned in pieces.
pub const MAX_SEGMENT: usize = 8 << 20;
/// Bytes of already-scanned text kept for matches that span lines.
const CARRY: usize = 4096;

/// A match with its place in the stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Located {
    pub offset: u64,
    pub line: u64,
    pub column: u64,
    pub hit: Hit,
}

/// Incremental scanner over one input.
pub(crate) struct StreamScanner<'a> {
    scanner: &'a Scanner,
    known: Option<&'a dyn KnownSecrets>,
    buf: Vec<u8>,
    /// Absolute offset of `buf[0]`.
    base: u64,
    /// Line (1-based) and column (0-based chars) of `buf[0]`.
    base_line: u64,
    base_col: u64,
    /// Absolute offset up to which text has been scanned.
    committed: u64,
    reported: HashSet<(String, u64)>,
    out: Vec<Located>,
}

impl<'a> StreamScanner<'a> {
    pub fn new(scanner: &'a Scanner, known: Option<&'a dyn KnownSecrets>) -> Self {
        StreamScanner {
            scanner,
            known,
            buf: Vec::new(),
            base: 0,
            base_line: 1,
            base_col: 0,
            committed: 0,
            reported: HashSet::new(),
            out: Vec::new(),
        }
    }

    pub fn push(&mut self, chunk: &[u8]) {
        self.buf.extend_from_slice(chunk);
        let uncommitted = (self.committed - self.base) as usize;
        if let Some(nl) = memchr::memrchr(b'\n', &self.buf[uncommitted..]) {
            self.scan_to(uncommitted + nl + 1);
        } else if self.buf.len() - uncommitted > MAX_SEGMENT {
            self.scan_to(self.buf.len());
        }
    }

    pub fn finish(mut self) -> Vec<Located> {
        let len = self.buf.len();
        if (self.committed - self.base) as usize != len {
            self.scan_to(len);
        }
        // a match confirmed late (see `scan_to`) goes back to its place
        self.out.sort_by_key(|l| l.offset);
        self.out
    }

    /// Scans `buf[..end]` and reports matches not reported yet. A match may end
    /// before the committed point and still be new: a rule whose keyword is
    /// context (`keyword_distance`) confirms a value only once text after it,
    /// on a later line, has arrived.
    fn scan_to(&mut self, end: usize) {
        let hits = self.scanner.scan(&self.buf[..end], self.known);
        let mut line = self.base_line;
        let mut col = self.base_col;
        let mut pos = 0usize;
        for hit in hits {
            let abs = self.base + hit.start as u64;
            if !self.reported.insert((hit.rule_id.clone(), abs)) {
                continue;
            }
            // Advance the line/column cursor to the hit (hits are sorted by start).
            advance(&self.buf[pos..hit.start], &mut line, &mut col);
            pos = hit.start;
            self.out.push(Located {
                offset: abs,
                line,
                column: col + 1,
                hit,
            });
        }
        self.committed = self.base + end as u64;
        // Drop all but a carry of whole lines before the committed point.
        let keep_from = end.saturating_sub(CARRY);
        let cut = if keep_from == 0 {
            0
        } else {
            match self.buf[keep_from..end].iter().position(|&b| b == b'\n') {
                Some(p) => keep_from + p + 1,
                None => end,
            }
        };
        if cut > 0 {
            advance(&self.buf[..cut], &mut self.base_line, &mut self.base_col);
            self.buf.drain(..cut);
            self.base += cut as u64;
            self.reported.retain(|(_, off)| *off >= self.base);
        }
    }
}

/// Moves a (line, 0-based column in chars) cursor over `text`. Newlines are counted with
/// SIMD (`memchr`); characters only on the last line.
fn advance(text: &[u8], line: &mut u64, col: &mut u64) {
    let tail = match memchr::memrchr(b'\n', text) {
        Some(p) => {
            *line += memchr::memchr_iter(b'\n', text).count() as u64;
            *col = 0;
            &text[p + 1..]
        }
        None => text,
    };
    *col += tail.iter().filter(|&&b| b & 0xC0 != 0x80).count() as u64;
}
