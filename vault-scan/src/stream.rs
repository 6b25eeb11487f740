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
        if let Some(nl) = self.buf[uncommitted..].iter().rposition(|&b| b == b'\n') {
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
        self.out
    }

    /// Scans `buf[..end]` and reports matches that end past the committed point.
    fn scan_to(&mut self, end: usize) {
        let committed_rel = (self.committed - self.base) as usize;
        let hits = self.scanner.scan(&self.buf[..end], self.known);
        let mut line = self.base_line;
        let mut col = self.base_col;
        let mut pos = 0usize;
        for hit in hits {
            if hit.end <= committed_rel {
                continue;
            }
            let abs = self.base + hit.start as u64;
            if !self.reported.insert((hit.rule_id.clone(), abs)) {
                continue;
            }
            // Advance the line/column cursor to the hit (hits are sorted by start).
            for &b in &self.buf[pos..hit.start] {
                if b == b'\n' {
                    line += 1;
                    col = 0;
                } else if b & 0xC0 != 0x80 {
                    col += 1;
                }
            }
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
            let dropped = &self.buf[..cut];
            let newlines = dropped.iter().filter(|&&b| b == b'\n').count() as u64;
            let tail = match dropped.iter().rposition(|&b| b == b'\n') {
                Some(p) => {
                    self.base_col = 0;
                    &dropped[p + 1..]
                }
                None => dropped,
            };
            self.base_line += newlines;
            self.base_col += tail.iter().filter(|&&b| b & 0xC0 != 0x80).count() as u64;
            self.buf.drain(..cut);
            self.base += cut as u64;
            self.reported.retain(|(_, off)| *off >= self.base);
        }
    }
}
