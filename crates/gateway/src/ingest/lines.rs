//! The pure parts of a history import: splitting a streamed NDJSON body into numbered lines,
//! and pacing publication. No IO here, so both are tested without a socket or a clock.
//!
//! # Lines
//! Bytes arrive in arbitrary pieces; [`LineSplitter`] yields each complete line with its
//! number in the file (blank lines are counted, so numbers match `sed -n Np`, `tail -n +N`
//! and editors, but yield nothing). A line longer than `max_line_bytes` is never buffered:
//! its bytes are only counted until its end, and it is yielded as [`Line::TooLong`] — so the
//! memory an import holds is one partial line at most, whatever the body looks like.
//!
//! # Pacing
//! [`pause_before`] says how long to wait before publishing the next batch so that an import
//! never publishes more than `per_sec` events per second on average since it started.

use std::time::Duration;

/// One line of the body.
#[derive(Debug, PartialEq, Eq)]
pub enum Line {
    /// A non-blank line within the size limit (without its line break).
    Event { number: u64, bytes: Vec<u8> },
    /// A line over the size limit: only its length was kept.
    TooLong { number: u64, bytes: usize },
}

impl Line {
    pub fn number(&self) -> u64 {
        match self {
            Line::Event { number, .. } | Line::TooLong { number, .. } => *number,
        }
    }
}

/// Splits a body arriving in pieces into numbered lines.
#[derive(Debug)]
pub struct LineSplitter {
    max_line_bytes: usize,
    /// The number the line being assembled will have.
    number: u64,
    /// The current line's bytes so far (at most `max_line_bytes`).
    partial: Vec<u8>,
    /// The current line's length when it is over the limit (its bytes are dropped).
    oversized: Option<usize>,
}

impl LineSplitter {
    /// A splitter whose first line is number `first_line`.
    pub fn new(max_line_bytes: usize, first_line: u64) -> Self {
        Self {
            max_line_bytes,
            number: first_line,
            partial: Vec::new(),
            oversized: None,
        }
    }

    /// Feeds the next piece of the body; complete lines are appended to `out`.
    pub fn push(&mut self, mut data: &[u8], out: &mut Vec<Line>) {
        while !data.is_empty() {
            let (piece, rest, ends_line) = match data.iter().position(|byte| *byte == b'\n') {
                Some(at) => (&data[..at], &data[at + 1..], true),
                None => (data, &[][..], false),
            };
            self.extend(piece);
            if ends_line {
                self.end_line(out);
            }
            data = rest;
        }
    }

    /// The body ended: a last line without a line break is complete too.
    pub fn finish(&mut self, out: &mut Vec<Line>) {
        if !self.partial.is_empty() || self.oversized.is_some() {
            self.end_line(out);
        }
    }

    /// The number of the last line started (complete or not), for reporting where a body
    /// stopped.
    pub fn lines_started(&self) -> u64 {
        self.number.saturating_sub(1)
    }

    fn extend(&mut self, piece: &[u8]) {
        if let Some(length) = &mut self.oversized {
            *length += piece.len();
            return;
        }
        if self.partial.len() + piece.len() > self.max_line_bytes {
            self.oversized = Some(self.partial.len() + piece.len());
            self.partial = Vec::new();
            return;
        }
        self.partial.extend_from_slice(piece);
    }

    fn end_line(&mut self, out: &mut Vec<Line>) {
        let number = self.number;
        self.number = self.number.saturating_add(1);
        if let Some(bytes) = self.oversized.take() {
            out.push(Line::TooLong { number, bytes });
            return;
        }
        let bytes = std::mem::take(&mut self.partial);
        if !bytes.trim_ascii().is_empty() {
            out.push(Line::Event { number, bytes });
        }
    }
}

/// How long to wait before publishing more, when `published` events went out in `elapsed`
/// since the import started and at most `per_sec` may go out per second.
pub fn pause_before(published: u64, elapsed: Duration, per_sec: u32) -> Duration {
    let due = Duration::from_secs_f64(published as f64 / f64::from(per_sec.max(1)));
    due.saturating_sub(elapsed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(pieces: &[&[u8]], max: usize, first: u64) -> Vec<Line> {
        let mut splitter = LineSplitter::new(max, first);
        let mut out = Vec::new();
        for piece in pieces {
            splitter.push(piece, &mut out);
        }
        splitter.finish(&mut out);
        out
    }

    fn event(number: u64, bytes: &[u8]) -> Line {
        Line::Event {
            number,
            bytes: bytes.to_vec(),
        }
    }

    #[test]
    fn lines_are_numbered_in_the_file_whatever_the_pieces() {
        let body = b"{\"a\":1}\n\n  \n{\"b\":2}\r\n{\"c\":3}";
        let whole = split(&[body], 100, 1);
        assert_eq!(
            whole,
            vec![
                event(1, b"{\"a\":1}"),
                event(4, b"{\"b\":2}\r"),
                event(5, b"{\"c\":3}")
            ]
        );
        // Byte by byte gives the same lines.
        let bytes: Vec<&[u8]> = body.chunks(1).collect();
        assert_eq!(split(&bytes, 100, 1), whole);
        // Resuming: numbering starts where the client says.
        assert_eq!(split(&[b"{}\n{}\n"], 100, 41)[1], event(42, b"{}"));
    }

    #[test]
    fn an_oversized_line_is_counted_not_kept_and_the_next_lines_survive() {
        let long = vec![b'x'; 50];
        let mut splitter = LineSplitter::new(10, 1);
        let mut out = Vec::new();
        splitter.push(b"{}\nabc", &mut out);
        for piece in long.chunks(7) {
            splitter.push(piece, &mut out);
            assert!(
                splitter.partial.len() <= 10,
                "never buffered past the limit"
            );
        }
        splitter.push(b"\n{\"ok\":1}\n", &mut out);
        splitter.finish(&mut out);
        assert_eq!(
            out,
            vec![
                event(1, b"{}"),
                Line::TooLong {
                    number: 2,
                    bytes: 53
                },
                event(3, b"{\"ok\":1}")
            ]
        );
        // A body ending inside an oversized line reports it too.
        assert_eq!(
            split(&[b"{}\n", &long], 10, 1)[1],
            Line::TooLong {
                number: 2,
                bytes: 50
            }
        );
        // Exactly at the limit is fine.
        assert_eq!(split(&[&long[..10]], 10, 1), vec![event(1, &long[..10])]);
    }

    #[test]
    fn lines_started_names_where_a_body_stopped() {
        let mut splitter = LineSplitter::new(100, 1);
        let mut out = Vec::new();
        splitter.push(b"{}\n{}\n{\"half", &mut out);
        assert_eq!(out.len(), 2);
        assert_eq!(splitter.lines_started(), 2);
    }

    #[test]
    fn pacing_keeps_the_average_rate() {
        let rate = 1000;
        assert_eq!(pause_before(0, Duration::ZERO, rate), Duration::ZERO);
        // 500 events out after 100 ms at 1,000/s: wait until 500 ms.
        assert_eq!(
            pause_before(500, Duration::from_millis(100), rate),
            Duration::from_millis(400)
        );
        // Already slower than the rate: no wait.
        assert_eq!(
            pause_before(500, Duration::from_secs(2), rate),
            Duration::ZERO
        );
        // A zero rate (refused by the config) cannot divide by zero.
        assert_eq!(pause_before(1, Duration::ZERO, 0), Duration::from_secs(1));
    }
}
