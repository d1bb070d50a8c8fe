//! Reading the NDJSON export line by line with bounded memory.
//!
//! A line is the event bytes without their `\n` (no `\r` stripping: the bytes are hashed as
//! they are). Each line's leaf is hashed while it is read, so a line longer than
//! [`MAX_KEPT_LINE`] still gets its leaf, although only its first bytes are kept: memory is
//! bounded by that limit, not by the export, whatever the export holds.

use std::io::{self, BufRead};

use crate::merkle::{Hash, LeafHasher};

/// The longest line kept for parsing: far above an event (the gateway accepts 1 MiB bodies by
/// default), so only a garbled or hostile line reaches it.
pub const MAX_KEPT_LINE: usize = 16 * 1024 * 1024;

/// One line of the export.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportLine<'a> {
    /// From 1, as editors count.
    pub number: u64,
    /// `SHA-256(0x00 || line bytes)`.
    pub leaf: Hash,
    /// The line, or `None` when it is longer than the kept limit.
    pub bytes: Option<&'a [u8]>,
    pub length: u64,
}

impl<'a> ExportLine<'a> {
    /// A line held whole in memory (tests, and callers that have the bytes).
    pub fn from_bytes(number: u64, bytes: &'a [u8]) -> Self {
        Self {
            number,
            leaf: crate::merkle::leaf_hash(bytes),
            bytes: Some(bytes),
            length: bytes.len() as u64,
        }
    }
}

pub struct LineReader<R> {
    input: R,
    kept: Vec<u8>,
    limit: usize,
    number: u64,
}

impl<R: BufRead> LineReader<R> {
    pub fn new(input: R) -> Self {
        Self::with_limit(input, MAX_KEPT_LINE)
    }

    pub fn with_limit(input: R, limit: usize) -> Self {
        Self {
            input,
            kept: Vec::new(),
            limit,
            number: 0,
        }
    }

    /// The next line, `None` at the end. A last line without `\n` counts as a line.
    pub fn next_line(&mut self) -> io::Result<Option<ExportLine<'_>>> {
        self.kept.clear();
        let mut hasher = LeafHasher::new();
        let mut length = 0u64;
        let mut too_long = false;
        let mut read_anything = false;
        loop {
            let available = self.input.fill_buf()?;
            if available.is_empty() {
                if !read_anything {
                    return Ok(None);
                }
                break;
            }
            read_anything = true;
            let newline = available.iter().position(|&byte| byte == b'\n');
            let chunk = &available[..newline.unwrap_or(available.len())];
            hasher.update(chunk);
            length += chunk.len() as u64;
            if !too_long && self.kept.len() + chunk.len() > self.limit {
                too_long = true;
                self.kept = Vec::new();
            }
            if !too_long {
                self.kept.extend_from_slice(chunk);
            }
            let consumed = chunk.len() + usize::from(newline.is_some());
            self.input.consume(consumed);
            if newline.is_some() {
                break;
            }
        }
        self.number += 1;
        Ok(Some(ExportLine {
            number: self.number,
            leaf: hasher.finish(),
            bytes: (!too_long).then_some(self.kept.as_slice()),
            length,
        }))
    }
}

#[cfg(test)]
mod tests {
    use std::io::{BufReader, Cursor};

    use super::*;
    use crate::merkle::leaf_hash;

    fn lines(input: &[u8], limit: usize, buffer: usize) -> Vec<(u64, Option<Vec<u8>>, Hash)> {
        let mut reader = LineReader::with_limit(BufReader::with_capacity(buffer, input), limit);
        let mut lines = Vec::new();
        while let Some(line) = reader.next_line().unwrap() {
            lines.push((line.number, line.bytes.map(<[u8]>::to_vec), line.leaf));
        }
        lines
    }

    #[test]
    fn lines_split_on_newline_whatever_the_buffer_size() {
        let input = b"{\"a\":1}\n{\"b\":22}\r\n\nlast";
        for buffer in [1, 3, 64] {
            let read = lines(input, 1024, buffer);
            let expected: Vec<(u64, Option<Vec<u8>>, Hash)> =
                [&b"{\"a\":1}"[..], b"{\"b\":22}\r", b"", b"last"]
                    .iter()
                    .zip(1..)
                    .map(|(bytes, number)| (number, Some(bytes.to_vec()), leaf_hash(bytes)))
                    .collect();
            assert_eq!(read, expected, "buffer {buffer}");
        }
    }

    #[test]
    fn a_final_newline_does_not_make_an_extra_line_and_empty_input_has_none() {
        assert_eq!(lines(b"x\n", 16, 8).len(), 1);
        assert!(lines(b"", 16, 8).is_empty());
    }

    #[test]
    fn a_line_over_the_limit_is_not_kept_but_still_hashed() {
        let long = vec![b'x'; 100];
        let mut input = long.clone();
        input.extend_from_slice(b"\nshort\n");
        let read = lines(&input, 10, 7);
        assert_eq!(read[0], (1, None, leaf_hash(&long)));
        assert_eq!(read[1], (2, Some(b"short".to_vec()), leaf_hash(b"short")));
    }

    #[test]
    fn from_bytes_hashes_like_the_reader() {
        let line = ExportLine::from_bytes(3, b"abc");
        let mut reader = LineReader::new(Cursor::new(b"abc"));
        let read = reader.next_line().unwrap().unwrap();
        assert_eq!((line.leaf, line.length), (read.leaf, read.length));
    }
}
